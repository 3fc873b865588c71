//! Causality holes closed, shown against a real `meridian` process: a write's reply never
//! hands out a context without the values it covers, contexts only work on the key they were
//! issued for, and an unclean stop moves the node to a new minting actor.

mod common;

use common::{Node, sorted};
use meridian_core::seal::peek;
use meridian_sdk::{Context, ErrorCode};

/// C1 reads {R1:1}; C2 blind-writes b; C1 puts c with its read's context. The reply's
/// context covers b, so the reply carries b: C1's next write with it supersedes b knowingly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_returns_the_siblings_its_context_covers() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;
    let first = c.put("default", "cart", "a", None).await.unwrap();
    assert!(!first.has_siblings(), "only the writer's value is live");
    let c1_read = c.get("default", "cart").await.unwrap();
    c.put("default", "cart", "b", None).await.unwrap();
    let reply = c
        .put("default", "cart", "c", Some(&c1_read.context))
        .await
        .unwrap();
    assert_eq!(sorted(&reply.siblings), vec![b"b".to_vec(), b"c".to_vec()]);
    let resolved = c
        .put("default", "cart", "b+c", Some(&reply.context))
        .await
        .unwrap();
    assert!(!resolved.has_siblings());
    assert_eq!(
        sorted(&c.get("default", "cart").await.unwrap().values),
        vec![b"b+c".to_vec()]
    );

    // The same over HTTP: 200 with the siblings when some survive, 204 when none do.
    let http = reqwest::Client::new();
    let url = format!("{}/v1/data/default/h", node.http);
    let r = http.put(&url).body("a").send().await.unwrap();
    assert_eq!(r.status(), 204);
    let stale = r.headers()["meridian-context"]
        .to_str()
        .unwrap()
        .to_string();
    http.put(&url).body("b").send().await.unwrap();
    let r = http
        .put(&url)
        .header("meridian-context", &stale)
        .body("c")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ctx = r.headers()["meridian-context"]
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let mut texts: Vec<&str> = body["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    texts.sort();
    assert_eq!(texts, vec!["b", "c"]);
    assert_eq!(body["context"].as_str(), Some(ctx.as_str()));
    let r = http
        .put(&url)
        .header("meridian-context", &ctx)
        .body("b+c")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // A delete with a stale context reports the concurrent value it left.
    let seen = c.put("default", "d", "seen", None).await.unwrap();
    c.put("default", "d", "concurrent", None).await.unwrap();
    let del = c.delete("default", "d", Some(&seen.context)).await.unwrap();
    assert_eq!(sorted(&del.siblings), vec![b"concurrent".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_works_only_on_the_key_it_was_issued_for() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;
    c.put("default", "a", "1", None).await.unwrap();
    c.put("default", "b", "x", None).await.unwrap();
    c.put("default", "b", "y", None).await.unwrap();
    let a_ctx = c.get("default", "a").await.unwrap().context;

    // A context from another key (an application bug) changes nothing.
    let e = c.put("default", "b", "z", Some(&a_ctx)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    assert!(e.message.contains("does not belong to this key"), "{e}");
    let e = c.delete("default", "b", Some(&a_ctx)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    assert_eq!(
        sorted(&c.get("default", "b").await.unwrap().values),
        vec![b"x".to_vec(), b"y".to_vec()]
    );

    // A hand-made context claiming u64::MAX for the node's own actor, with a made-up MAC:
    // refused, and the key stays readable and writable.
    let b_ctx = peek(c.get("default", "b").await.unwrap().context.as_bytes()).unwrap();
    let actor = b_ctx.entries()[0].0;
    let mut forged = vec![2u8, 1];
    forged.extend_from_slice(actor.as_bytes());
    forged.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    forged.push(0);
    forged.extend_from_slice(&[0xab; 8]);
    let e = c
        .put("default", "b", "z", Some(&Context::from_bytes(forged)))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    assert!(e.message.contains("does not belong to this key"), "{e}");
    let read = c.get("default", "b").await.unwrap();
    assert_eq!(read.values.len(), 2);
    c.put("default", "b", "z", Some(&read.context))
        .await
        .unwrap();
    assert_eq!(
        sorted(&c.get("default", "b").await.unwrap().values),
        vec![b"z".to_vec()]
    );

    // Over HTTP the error names the problem too.
    let r = reqwest::Client::new()
        .put(format!("{}/v1/data/default/b", node.http))
        .header("meridian-context", a_ctx.to_base64())
        .body("w")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("does not belong to this key"),
        "HTTP error names the problem"
    );
}

/// Actors in a key's clock, with their incarnation.
async fn clock(c: &meridian_sdk::Client, key: &str) -> Vec<(String, u32)> {
    let read = c.get("default", key).await.expect("read the key");
    let ctx = peek(read.context.as_bytes()).expect("a context the node issued");
    ctx.entries()
        .iter()
        .map(|(a, _)| (a.to_string()[..24].to_string(), a.incarnation()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclean_stop_mints_under_a_new_incarnation_and_a_clean_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let id = node.node_id.clone();
    let c = node.client().await;
    c.put("default", "k", "before-crash", None).await.unwrap();
    assert_eq!(clock(&c, "k").await, vec![(id[..24].to_string(), 0)]);
    node.kill9();

    let node = Node::start(dir.path());
    let c = node.client().await;
    c.put("default", "k", "after-crash", None).await.unwrap();
    let actors = clock(&c, "k").await;
    assert_eq!(actors.len(), 2, "a new actor: {actors:?}");
    assert!(actors.iter().all(|(prefix, _)| *prefix == id[..24]));
    let mut incarnations: Vec<u32> = actors.iter().map(|a| a.1).collect();
    incarnations.sort();
    assert_eq!(incarnations, vec![0, 1]);
    assert_eq!(c.get("default", "k").await.unwrap().values.len(), 2);
    node.stop();

    let node = Node::start(dir.path());
    let c = node.client().await;
    c.put("default", "k", "after-clean-stop", None)
        .await
        .unwrap();
    assert_eq!(
        clock(&c, "k").await.len(),
        2,
        "a clean stop keeps the actor"
    );
}
