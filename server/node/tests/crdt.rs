//! CRDT keyspaces with real `meridian` processes: the typed operations through the Rust SDK,
//! the errors for operations that do not fit, and counters and sets across a DC partition.

mod common;

use common::{Node, TestCluster, eventually, serial, w};
use meridian_sdk::crdt::{CrdtKind, Field, Op, Value};
use meridian_sdk::{Consistency, ErrorCode, KeyspaceOptions, ValueKind, WriteOptions};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(120);

async fn create(c: &meridian_sdk::Client, name: &str, kind: ValueKind) {
    let opts = KeyspaceOptions {
        kind: Some(kind),
        ..Default::default()
    };
    c.create_keyspace_with(name, &opts).await.expect("create");
}

fn bytes(items: &[&str]) -> Vec<bytes::Bytes> {
    items
        .iter()
        .map(|s| bytes::Bytes::from(s.as_bytes().to_vec()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_through_the_sdk_on_one_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;
    for (name, kind) in [
        ("hits", ValueKind::Counter),
        ("carts", ValueKind::Set),
        ("flags", ValueKind::Flag),
        ("names", ValueKind::Register),
        ("profiles", ValueKind::Map),
    ] {
        create(&c, name, kind).await;
    }
    let listed = c.list_keyspaces().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|k| k.name == "hits" && k.kind == ValueKind::Counter)
    );

    // Counter: a key never written reads 0; increments and decrements add up.
    let hits = c.counter("hits", "home");
    assert_eq!(hits.value().await.unwrap(), 0);
    assert_eq!(hits.increment(5).await.unwrap(), 5);
    assert_eq!(hits.decrement(2).await.unwrap(), 3);
    assert_eq!(hits.value().await.unwrap(), 3);

    // Set: add, remove scoped by a fetch's context spares a later add.
    let cart = c.set("carts", "u1");
    assert_eq!(
        cart.add(["pear", "apple"]).await.unwrap(),
        bytes(&["apple", "pear"])
    );
    let seen = cart.fetch().await.unwrap();
    cart.add(["pear"]).await.unwrap();
    cart.remove_seen(["pear", "apple"], &seen.context)
        .await
        .unwrap();
    assert_eq!(cart.members().await.unwrap(), bytes(&["pear"]));
    cart.remove(["pear"]).await.unwrap();
    assert!(cart.members().await.unwrap().is_empty());

    // Flag and register.
    let dark = c.flag("flags", "dark-mode");
    assert!(!dark.get().await.unwrap());
    assert!(dark.enable().await.unwrap());
    assert!(!dark.disable().await.unwrap());
    let name = c.register("names", "u1");
    name.assign("Ada", None).await.unwrap();
    let got = name.assign("Grace", None).await.unwrap();
    assert_eq!(got.value, Value::Register(Some(b"Grace".to_vec().into())));

    // Map: nested fields of several types in one all-or-nothing update.
    let profile = c.map("profiles", "u1");
    let visits = Field::new("visits", CrdtKind::Counter);
    let tags = Field::new("tags", CrdtKind::Set);
    let out = profile
        .update(
            vec![
                Op::Update {
                    field: visits.clone(),
                    op: Box::new(Op::Increment(2)),
                },
                Op::Update {
                    field: tags.clone(),
                    op: Box::new(Op::Add(vec![b"vip".to_vec().into()])),
                },
            ],
            None,
        )
        .await
        .unwrap();
    let Value::Map(fields) = out.value else {
        panic!("a map")
    };
    assert_eq!(fields[&visits], Value::Counter(2));
    assert_eq!(fields[&tags], Value::Set(vec![b"vip".to_vec().into()]));
    let out = profile
        .update(vec![Op::RemoveField(tags.clone())], None)
        .await
        .unwrap();
    let Value::Map(fields) = out.value else {
        panic!("a map")
    };
    assert!(!fields.contains_key(&tags));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_increment_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;
    create(&c, "hits", ValueKind::Counter).await;
    let opts = WriteOptions {
        request_id: Some([7; 16]),
        ..Default::default()
    };
    for _ in 0..3 {
        let got = c
            .apply_with("hits", "k", vec![Op::Increment(10)], None, &opts)
            .await
            .unwrap();
        assert_eq!(got.value, Value::Counter(10));
    }
    assert_eq!(c.counter("hits", "k").value().await.unwrap(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_that_do_not_fit_the_keyspace_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;
    create(&c, "hits", ValueKind::Counter).await;

    let err = c.put("hits", "k", "5", None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(
        err.message
            .contains("`put` does not apply to a counter keyspace"),
        "{err}"
    );
    let err = c.get("hits", "k").await.unwrap_err();
    assert!(
        err.message.contains("`get` does not apply to a counter"),
        "{err}"
    );
    let err = c.set("hits", "k").add(["x"]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(
        err.message.contains("`add` does not apply to a counter"),
        "{err}"
    );
    let err = c.counter("default", "k").increment(1).await.unwrap_err();
    assert!(
        err.message
            .contains("`update` does not apply to a siblings keyspace"),
        "{err}"
    );
    let err = c.counter("default", "k").value().await.unwrap_err();
    assert!(
        err.message
            .contains("`fetch` does not apply to a siblings keyspace"),
        "{err}"
    );

    // Bounds: the counter's range, element size, empty updates.
    let hits = c.counter("hits", "big");
    hits.increment(i64::MAX).await.unwrap();
    let err = hits.increment(1).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.message.contains("64-bit"), "{err}");
    assert_eq!(hits.value().await.unwrap(), i64::MAX);
    create(&c, "carts", ValueKind::Set).await;
    let huge = vec![b'x'; 20_000];
    let err = c.set("carts", "k").add([huge]).await.unwrap_err();
    assert!(
        err.message.contains("the keyspace limit is 10240 bytes"),
        "{err}"
    );
    let err = c.apply("carts", "k", vec![], None).await.unwrap_err();
    assert!(err.message.contains("an update takes 1 to 1000"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_sets_updated_on_both_sides_of_a_dc_partition_converge() {
    let _serial = serial().await;
    let c = TestCluster::start_wan(
        61,
        &[
            ("dc1", "r1", 1),
            ("dc1", "r2", 1),
            ("dc2", "r1", 1),
            ("dc2", "r2", 1),
        ],
        &["--anti-entropy-exchanges-per-sec", "10"],
    );
    c.converged().await;
    c.create_keyspace_of("hits", ValueKind::Counter, &[("dc1", 2), ("dc2", 2)])
        .await;
    c.create_keyspace_of("carts", ValueKind::Set, &[("dc1", 2), ("dc2", 2)])
        .await;
    let dc1 = c.client(0).await;
    let dc2 = c.client(2).await;
    let local = w(Consistency::LocalQuorum);
    let all = w(Consistency::All);
    dc1.apply_with(
        "carts",
        "cart",
        vec![Op::Add(vec![b"milk".to_vec().into()])],
        None,
        &all,
    )
    .await
    .expect("add at ALL");

    c.cut_wan("dc1", "dc2", true);
    let mut acked = 0i64;
    for i in 0..20 {
        for (client, by) in [(&dc1, 1i64), (&dc2, 10i64)] {
            client
                .apply_with("hits", "views", vec![Op::Increment(by)], None, &local)
                .await
                .expect("a LOCAL_QUORUM increment during the partition");
            acked += by;
        }
        let _ = i;
    }
    // dc1 removes milk (it saw the add); dc2 adds it again, concurrently: add wins.
    dc1.apply_with(
        "carts",
        "cart",
        vec![Op::Remove(vec![b"milk".to_vec().into()])],
        None,
        &local,
    )
    .await
    .expect("remove during the partition");
    dc2.apply_with(
        "carts",
        "cart",
        vec![Op::Add(vec![
            b"milk".to_vec().into(),
            b"eggs".to_vec().into(),
        ])],
        None,
        &local,
    )
    .await
    .expect("add during the partition");
    // Each side sees only its own increments.
    let one = meridian_sdk::ReadOptions {
        consistency: Some(Consistency::LocalQuorum),
        ..Default::default()
    };
    let side = dc1.fetch_with("hits", "views", &one).await.unwrap();
    assert_eq!(side.value, Value::Counter(20));

    c.cut_wan("dc1", "dc2", false);
    for (i, client) in [(0usize, &dc1), (2, &dc2)] {
        eventually(
            DEADLINE,
            &format!("node {i} sees the whole count"),
            || async {
                let got = client.fetch_with("hits", "views", &one).await.ok()?;
                (got.value == Value::Counter(acked)).then_some(())
            },
        )
        .await;
        eventually(
            DEADLINE,
            &format!("node {i} sees the concurrent add win"),
            || async {
                let got = client.fetch_with("carts", "cart", &one).await.ok()?;
                let want = Value::Set(vec![b"eggs".to_vec().into(), b"milk".to_vec().into()]);
                (got.value == want).then_some(())
            },
        )
        .await;
    }
}

/// The CLI's stdout (trimmed), stderr and success.
async fn cli(node: &Node, args: &[&str]) -> (String, String, bool) {
    let (out, err, ok) = node.cli(args).await;
    (out.trim().to_string(), err, ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_http_api_speak_json() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    for (name, kind) in [("hits", "counter"), ("carts", "set"), ("profiles", "map")] {
        let (_, err, ok) = cli(&node, &["keyspace", "create", name, "--kind", kind]).await;
        assert!(ok, "{err}");
    }
    let (_, err, ok) = cli(&node, &["keyspace", "create", "x", "--kind", "bag"]).await;
    assert!(
        !ok && err.contains("expected one of siblings, lww, counter"),
        "{err}"
    );

    assert_eq!(
        cli(&node, &["counter", "incr", "-k", "hits", "home"])
            .await
            .0,
        "1"
    );
    assert_eq!(
        cli(&node, &["counter", "incr", "-k", "hits", "home", "-5"])
            .await
            .0,
        "-4"
    );
    assert_eq!(
        cli(&node, &["counter", "decr", "-k", "hits", "home", "6"])
            .await
            .0,
        "-10"
    );
    assert_eq!(
        cli(&node, &["counter", "get", "-k", "hits", "home"])
            .await
            .0,
        "-10"
    );
    assert_eq!(
        cli(&node, &["set", "add", "-k", "carts", "u1", "b", "a"])
            .await
            .0,
        r#"["a","b"]"#
    );
    assert_eq!(
        cli(&node, &["set", "remove", "-k", "carts", "u1", "a"])
            .await
            .0,
        r#"["b"]"#
    );
    let ops = r#"[{"update": {"field": "visits:counter", "op": {"increment": 2}}},
                  {"update": {"field": "prefs:map", "op": {"update": {"field": "dark:flag", "op": {"enable": true}}}}}]"#;
    assert_eq!(
        cli(&node, &["crdt", "update", "-k", "profiles", "u1", ops])
            .await
            .0,
        r#"{"prefs:map":{"dark:flag":true},"visits:counter":2}"#
    );
    let (_, err, ok) = cli(
        &node,
        &["crdt", "update", "-k", "profiles", "u1", r#"[{"grow": 1}]"#],
    )
    .await;
    assert!(!ok && err.contains("unknown operation \"grow\""), "{err}");

    // HTTP: the same keys, JSON in and out, the context in the body and the header.
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}/v1/crdt/{path}", node.http);
    let got: serde_json::Value = http
        .get(url("hits/home"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str::<serde_json::Value>(&t).expect("JSON"))
        .unwrap();
    assert_eq!(got["value"], serde_json::json!(-10));
    let r = http
        .post(url("carts/u1"))
        .body(r#"{"ops": [{"add": ["c", {"base64": "/w=="}]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("meridian-context").is_some());
    let got: serde_json::Value = r
        .text()
        .await
        .map(|t| serde_json::from_str::<serde_json::Value>(&t).expect("JSON"))
        .unwrap();
    assert_eq!(
        got["value"],
        serde_json::json!(["b", "c", {"base64": "/w=="}])
    );
    // A remove with the fetch's context.
    let ctx = got["context"].as_str().unwrap().to_string();
    let body = serde_json::json!({ "ops": [{"remove": ["b"]}], "context": ctx });
    let got: serde_json::Value = http
        .post(url("carts/u1"))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str::<serde_json::Value>(&t).expect("JSON"))
        .unwrap();
    assert_eq!(got["value"], serde_json::json!(["c", {"base64": "/w=="}]));
    // Errors: JSON that is not an update, a put into a counter keyspace.
    let r = http.post(url("hits/home")).body("{").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r
        .text()
        .await
        .map(|t| serde_json::from_str::<serde_json::Value>(&t).expect("JSON"))
        .unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains("not JSON"),
        "{e}"
    );
    // A misspelt context is refused, not taken for an update without one, which would
    // remove what the client never saw.
    let body = serde_json::json!({ "ops": [{"remove": ["c"]}], "contxt": ctx });
    let r = http
        .post(url("carts/u1"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r
        .text()
        .await
        .map(|t| serde_json::from_str::<serde_json::Value>(&t).expect("JSON"))
        .unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"contxt\""),
        "{e}"
    );
    let r = http
        .put(format!("{}/v1/data/hits/home", node.http))
        .body("5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r
        .text()
        .await
        .map(|t| serde_json::from_str::<serde_json::Value>(&t).expect("JSON"))
        .unwrap();
    assert_eq!(e["error"]["code"], "INVALID_ARGUMENT");
}
