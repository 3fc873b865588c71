//! The SDK conformance cases (`conformance/cases.json`), run through the Rust SDK against a
//! real node. The Python and Node suites run the same file, so the three SDKs cannot drift
//! apart.

mod common;

use async_trait::async_trait;
use bytes::Bytes;
use meridian_sdk::{
    Client, Context, Error, ErrorCode, KeyspaceOptions, Resolver, WriteOptions, WriteResult,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            let unit = o["repeat"].as_str().expect("repeat");
            unit.repeat(o["times"].as_u64().expect("times") as usize)
        }
        other => panic!("not a key or value: {other}"),
    }
}

fn items(v: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(v)
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn join(items: BTreeSet<String>) -> Bytes {
    Bytes::from(items.into_iter().collect::<Vec<_>>().join(","))
}

/// The application's own error, which the `raise` resolver fails with.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("resolver refused")
    }
}
impl std::error::Error for Refused {}

struct Named {
    name: String,
    timeout: Duration,
}

#[async_trait]
impl Resolver for Named {
    async fn resolve(&self, _key: &[u8], siblings: Vec<Bytes>) -> meridian_sdk::Result<Bytes> {
        match self.name.as_str() {
            "union" => Ok(join(siblings.iter().flat_map(|s| items(s)).collect())),
            "raise" => Err(Error::resolver_failed(Refused)),
            "slow" => {
                tokio::time::sleep(self.timeout * 3).await;
                Ok(Bytes::from_static(b"too late"))
            }
            other => panic!("unknown resolver {other}"),
        }
    }
}

fn sorted_text(values: &[Bytes]) -> Vec<String> {
    let mut v: Vec<String> = values
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    v.sort();
    v
}

fn expected_siblings(expect: &Value) -> Option<Vec<String>> {
    let mut v: Vec<String> = expect
        .get("siblings")?
        .as_array()
        .expect("siblings")
        .iter()
        .map(|s| s.as_str().expect("sibling").to_string())
        .collect();
    v.sort();
    Some(v)
}

/// What a step produced, reduced to what the cases can expect.
enum Outcome {
    Siblings(Vec<String>, Context),
    Value(Option<String>),
    /// A CRDT value in its JSON form, and the context of the reply.
    Crdt(Value, Context),
    Done,
}

async fn run_step(
    client: &Client,
    own: &str,
    step: &Value,
    saved: &HashMap<String, Context>,
    ids: &mut HashMap<String, [u8; 16]>,
    timeout: Duration,
) -> Result<Outcome, Error> {
    let keyspace = step
        .get("keyspace")
        .and_then(Value::as_str)
        .map(|k| k.replace("{case}", own))
        .unwrap_or_else(|| own.to_string());
    let key = step.get("key").map(text).unwrap_or_default();
    let context = match (step.get("context"), step.get("context_raw")) {
        (Some(name), _) => Some(saved[name.as_str().expect("context name")].clone()),
        (_, Some(raw)) => Some(Context::from_bytes(text(raw).into_bytes())),
        _ => None,
    };
    let mut opts = WriteOptions::default();
    if let Some(label) = step.get("request_id").and_then(Value::as_str) {
        opts.request_id = Some(
            *ids.entry(label.to_string())
                .or_insert_with(|| *uuid::Uuid::new_v4().as_bytes()),
        );
    }
    let resolver = step.get("resolver").and_then(Value::as_str).map(|n| Named {
        name: n.to_string(),
        timeout,
    });
    let resolver = resolver.as_ref().map(|r| r as &dyn Resolver);
    let written = |w: WriteResult| Outcome::Siblings(sorted_text(&w.siblings), w.context);
    Ok(match step["op"].as_str().expect("op") {
        "put" => written(
            client
                .put_with(
                    &keyspace,
                    &key,
                    text(&step["value"]),
                    context.as_ref(),
                    &opts,
                )
                .await?,
        ),
        "delete" => written(
            client
                .delete_with(&keyspace, &key, context.as_ref(), &opts)
                .await?,
        ),
        "get" => {
            let read = client.get(&keyspace, &key).await?;
            Outcome::Siblings(sorted_text(&read.values), read.context)
        }
        "get_resolved" => Outcome::Value(
            client
                .get_resolved(&keyspace, &key, resolver)
                .await?
                .map(|v| String::from_utf8_lossy(&v).into_owned()),
        ),
        "update" => {
            let append = step
                .get("append")
                .and_then(Value::as_str)
                .map(str::to_string);
            let delete = step.get("delete").and_then(Value::as_bool).unwrap_or(false);
            written(
                client
                    .update(&keyspace, &key, resolver, |current| {
                        if delete {
                            return None;
                        }
                        let mut all = current.as_deref().map(items).unwrap_or_default();
                        all.extend(append);
                        Some(join(all))
                    })
                    .await?,
            )
        }
        "apply" => {
            let ops = meridian_sdk::crdt::ops_from_json(&step["ops"])?;
            let got = client
                .apply_with(&keyspace, &key, ops, context.as_ref(), &opts)
                .await?;
            Outcome::Crdt(meridian_sdk::crdt::value_to_json(&got.value), got.context)
        }
        "fetch" => {
            let got = client.fetch(&keyspace, &key).await?;
            Outcome::Crdt(meridian_sdk::crdt::value_to_json(&got.value), got.context)
        }
        "create_keyspace" => {
            let kind = step
                .get("kind")
                .and_then(Value::as_str)
                .map(meridian_sdk::value_kind_from_name)
                .transpose()?;
            let replication: BTreeMap<String, u32> = step
                .get("replication")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(dc, n)| (dc.clone(), n.as_u64().expect("replicas") as u32))
                        .collect()
                })
                .unwrap_or_default();
            let opts = KeyspaceOptions {
                kind,
                replication,
                ..Default::default()
            };
            client.create_keyspace_with(&keyspace, &opts).await?;
            Outcome::Done
        }
        other => panic!("unknown op {other}"),
    })
}

#[tokio::test]
async fn every_conformance_case_holds_through_the_rust_sdk() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../conformance/cases.json");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read cases"))
        .expect("parse cases");
    let timeout = Duration::from_millis(file["resolver_timeout_ms"].as_u64().expect("timeout"));
    let dir = tempfile::tempdir().expect("tempdir");
    let node = common::Node::start(dir.path());
    let client = Client::builder([node.grpc.clone()])
        .timeout(Duration::from_secs(20))
        .resolver_timeout(timeout)
        .connect()
        .await
        .expect("connect");
    let cases = file["cases"].as_array().expect("cases");
    for (n, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().expect("name");
        let own = format!("conformance-{n}");
        let spec = case.get("keyspace").cloned().unwrap_or(Value::Null);
        let opts = KeyspaceOptions {
            kind: spec
                .get("kind")
                .and_then(Value::as_str)
                .map(|k| meridian_sdk::value_kind_from_name(k).expect("a kind")),
            max_value_bytes: spec
                .get("max_value_bytes")
                .and_then(Value::as_u64)
                .map(|v| v as u32),
            max_siblings: spec
                .get("max_siblings")
                .and_then(Value::as_u64)
                .map(|v| v as u32),
            ..Default::default()
        };
        client
            .create_keyspace_with(&own, &opts)
            .await
            .expect("create the case's keyspace");
        let mut saved = HashMap::new();
        let mut ids = HashMap::new();
        for (s, step) in case["steps"].as_array().expect("steps").iter().enumerate() {
            let at = format!("case {name:?}, step {s} ({step})");
            let expect = step.get("expect").cloned().unwrap_or(Value::Null);
            let outcome = run_step(&client, &own, step, &saved, &mut ids, timeout).await;
            if let Some(code) = expect.get("error").and_then(Value::as_str) {
                match outcome {
                    Err(e) => {
                        assert_eq!(e.code.as_str(), code, "{at}: wrong error {e}");
                        if e.code == ErrorCode::ResolverFailed {
                            let cause = std::error::Error::source(&e).expect("cause kept");
                            assert!(cause.downcast_ref::<Refused>().is_some(), "{at}: {cause}");
                        }
                    }
                    Ok(_) => panic!("{at}: succeeded, expected {code}"),
                }
                continue;
            }
            let outcome = outcome.unwrap_or_else(|e| panic!("{at}: failed: {e}"));
            match outcome {
                Outcome::Siblings(values, context) => {
                    if let Some(want) = expected_siblings(&expect) {
                        assert_eq!(values, want, "{at}");
                    }
                    if let Some(label) = step.get("save").and_then(Value::as_str) {
                        saved.insert(label.to_string(), context);
                    }
                }
                Outcome::Value(value) => {
                    if let Some(want) = expect.get("value") {
                        assert_eq!(value.as_deref(), want.as_str(), "{at}");
                    }
                }
                Outcome::Crdt(value, context) => {
                    if let Some(want) = expect.get("crdt") {
                        assert_eq!(&value, want, "{at}");
                    }
                    if let Some(label) = step.get("save").and_then(Value::as_str) {
                        saved.insert(label.to_string(), context);
                    }
                }
                Outcome::Done => {}
            }
        }
    }
    client.close().await;
    let after = client.get("default", "k").await.expect_err("closed client");
    assert_eq!(after.code, ErrorCode::Cancelled);
}
