//! The CRDT subcommands: each builds operations and runs one update or fetch through the
//! Rust SDK, then prints the value as JSON (the HTTP API's form) and the context on stderr.

use crate::cli::{CounterCommand, CrdtCommand, FlagCommand, KeyArgs, RegisterCommand, SetCommand};
use crate::client_cmds::{connect, parse_common};
use meridian_proto::crdt_json::{ops_from_json, value_to_json};
use meridian_sdk::crdt::{Fetched, Op};
use meridian_sdk::{ReadOptions, WriteOptions};
use serde_bytes::ByteBuf;
use std::io::Read;

fn elements(items: &[String]) -> Vec<ByteBuf> {
    items
        .iter()
        .map(|e| ByteBuf::from(e.as_bytes().to_vec()))
        .collect()
}

fn print(f: &Fetched) {
    println!("{}", value_to_json(&f.value));
    eprintln!("context: {}", f.context.to_base64());
}

async fn update(a: &KeyArgs, ops: Vec<Op>) -> anyhow::Result<()> {
    let client = connect(&a.endpoint).await?;
    let (ctx, consistency) = parse_common(a)?;
    let opts = WriteOptions {
        consistency,
        ..Default::default()
    };
    let got = client
        .apply_with(&a.keyspace, &a.key, ops, ctx.as_ref(), &opts)
        .await?;
    print(&got);
    Ok(())
}

async fn fetch(a: &KeyArgs) -> anyhow::Result<()> {
    let client = connect(&a.endpoint).await?;
    let (_, consistency) = parse_common(a)?;
    let opts = ReadOptions {
        consistency,
        timeout: None,
    };
    print(&client.fetch_with(&a.keyspace, &a.key, &opts).await?);
    Ok(())
}

pub async fn counter(c: CounterCommand) -> anyhow::Result<()> {
    match c {
        CounterCommand::Incr(a) => update(&a.key, vec![Op::Increment(a.by)]).await,
        CounterCommand::Decr(a) => {
            let by =
                a.by.checked_neg()
                    .ok_or_else(|| anyhow::anyhow!("cannot decrement by {}", a.by))?;
            update(&a.key, vec![Op::Increment(by)]).await
        }
        CounterCommand::Get(a) => fetch(&a).await,
    }
}

pub async fn set(c: SetCommand) -> anyhow::Result<()> {
    match c {
        SetCommand::Add(a) => update(&a.key, vec![Op::Add(elements(&a.elements))]).await,
        SetCommand::Remove(a) => update(&a.key, vec![Op::Remove(elements(&a.elements))]).await,
        SetCommand::Members(a) => fetch(&a).await,
    }
}

pub async fn flag(c: FlagCommand) -> anyhow::Result<()> {
    match c {
        FlagCommand::Enable(a) => update(&a, vec![Op::Enable]).await,
        FlagCommand::Disable(a) => update(&a, vec![Op::Disable]).await,
        FlagCommand::Get(a) => fetch(&a).await,
    }
}

pub async fn register(c: RegisterCommand) -> anyhow::Result<()> {
    match c {
        RegisterCommand::Set(a) => {
            let value = if a.value == "-" {
                let mut buf = Vec::new();
                std::io::stdin().read_to_end(&mut buf)?;
                buf
            } else {
                a.value.into_bytes()
            };
            update(&a.key, vec![Op::Assign(ByteBuf::from(value))]).await
        }
        RegisterCommand::Get(a) => fetch(&a).await,
    }
}

pub async fn crdt(c: CrdtCommand) -> anyhow::Result<()> {
    match c {
        CrdtCommand::Update(a) => {
            let json: serde_json::Value = serde_json::from_str(&a.ops)
                .map_err(|e| anyhow::anyhow!("the operations are not JSON: {e}"))?;
            update(&a.key, ops_from_json(&json).map_err(anyhow::Error::msg)?).await
        }
        CrdtCommand::Fetch(a) => fetch(&a).await,
    }
}
