//! The client subcommands: thin wrappers over the Rust SDK.

use crate::cli::{EndpointArgs, KeyArgs, KeyspaceCreateArgs, PutArgs};
use anyhow::Context as _;
use meridian_sdk::{Client, Consistency, Context, ReadOptions, WriteOptions, proto as pb};
use std::io::{Read, Write};

pub(crate) async fn connect(e: &EndpointArgs) -> anyhow::Result<Client> {
    Client::builder([e.endpoint.clone()])
        .streams_per_endpoint(1)
        .connect()
        .await
        .with_context(|| format!("connecting to {}", e.endpoint))
}

pub(crate) fn parse_common(a: &KeyArgs) -> anyhow::Result<(Option<Context>, Option<Consistency>)> {
    let ctx = a.context.as_deref().map(Context::from_base64).transpose()?;
    let c = a
        .consistency
        .as_deref()
        .map(str::parse::<Consistency>)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    Ok((ctx, c))
}

pub async fn get(a: KeyArgs) -> anyhow::Result<()> {
    let client = connect(&a.endpoint).await?;
    let (_, consistency) = parse_common(&a)?;
    let r = client
        .get_with(
            &a.keyspace,
            &a.key,
            &ReadOptions {
                consistency,
                timeout: None,
            },
        )
        .await?;
    let mut out = std::io::stdout().lock();
    for v in &r.values {
        out.write_all(v)?;
        out.write_all(b"\n")?;
    }
    eprintln!("context: {}", r.context.to_base64());
    if r.values.len() > 1 {
        eprintln!("{} siblings", r.values.len());
    }
    if r.values.is_empty() {
        anyhow::bail!("key {:?} not found in keyspace {:?}", a.key, a.keyspace);
    }
    Ok(())
}

pub async fn put(a: PutArgs) -> anyhow::Result<()> {
    let client = connect(&a.key.endpoint).await?;
    let (ctx, consistency) = parse_common(&a.key)?;
    let value = if a.value == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        buf
    } else {
        a.value.into_bytes()
    };
    let opts = WriteOptions {
        consistency,
        ..Default::default()
    };
    let w = client
        .put_with(&a.key.keyspace, &a.key.key, value, ctx.as_ref(), &opts)
        .await?;
    print_write(&w);
    Ok(())
}

pub async fn delete(a: KeyArgs) -> anyhow::Result<()> {
    let client = connect(&a.endpoint).await?;
    let (ctx, consistency) = parse_common(&a)?;
    let opts = WriteOptions {
        consistency,
        ..Default::default()
    };
    let w = client
        .delete_with(&a.keyspace, &a.key, ctx.as_ref(), &opts)
        .await?;
    print_write(&w);
    Ok(())
}

/// The new context on stdout; values that survived the write (and that the context covers)
/// on stderr, so scripts can keep capturing the context.
fn print_write(w: &meridian_sdk::WriteResult) {
    println!("{}", w.context.to_base64());
    if w.has_siblings() {
        eprintln!(
            "{} values are live after this write (concurrent writes survived it); the context covers them all:",
            w.siblings.len()
        );
        for v in &w.siblings {
            eprintln!("  {}", String::from_utf8_lossy(v));
        }
    }
}

pub async fn keyspace_create(a: KeyspaceCreateArgs) -> anyhow::Result<()> {
    let client = connect(&a.endpoint).await?;
    let kind = pb::ValueKind::from(
        a.kind
            .parse::<meridian_core::ValueKind>()
            .map_err(|e| anyhow::anyhow!(e))?,
    );
    let mut replication = std::collections::HashMap::new();
    for item in &a.replication {
        let (dc, n) = item
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("replication {item:?} is not DC=N"))?;
        let n: u32 = n
            .parse()
            .map_err(|_| anyhow::anyhow!("replication {item:?}: {n:?} is not a number"))?;
        replication.insert(dc.to_string(), n);
    }
    let spec = pb::KeyspaceSpec {
        name: a.name,
        kind: kind as i32,
        replication,
        max_value_bytes: a.max_value_bytes.unwrap_or(0),
        max_siblings: a.max_siblings.unwrap_or(0),
        sync_writes: a.sync_writes,
        ..Default::default()
    };
    let info = client.create_keyspace_spec(spec).await?;
    println!(
        "keyspace {} ({}, max_value_bytes={}, max_siblings={})",
        info.name, info.kind, info.max_value_bytes, info.max_siblings
    );
    Ok(())
}

pub async fn keyspace_list(e: EndpointArgs) -> anyhow::Result<()> {
    let client = connect(&e).await?;
    for ks in client.list_keyspaces().await? {
        // The replication as `--replication` takes it, DCs in order.
        let replication: std::collections::BTreeMap<_, _> = ks.replication.iter().collect();
        let replication: Vec<String> = replication
            .into_iter()
            .map(|(dc, n)| format!("{dc}={n}"))
            .collect();
        println!(
            "{}\t{}\treplication={}\tmax_value_bytes={}\tmax_siblings={}",
            ks.name,
            ks.kind,
            replication.join(","),
            ks.max_value_bytes,
            ks.max_siblings
        );
    }
    Ok(())
}

pub async fn node(e: EndpointArgs) -> anyhow::Result<()> {
    let client = connect(&e).await?;
    let n = client.node_info().await?;
    println!(
        "node {}\nactor {} (incarnation {})\ndc {}\nrack {}\nversion {}\ngrpc {}\nhttp {}\ndata_dir {}\nuptime {}s",
        n.node_id,
        n.actor,
        n.incarnation,
        n.datacenter,
        n.rack,
        n.version,
        n.grpc_addr,
        n.http_addr,
        n.data_dir,
        n.uptime_seconds
    );
    Ok(())
}
