//! One real `meridian` process per test, driven through the Rust SDK, HTTP and raw gRPC.

mod common;

use common::{Node, sorted};
use meridian_sdk::{Context, ErrorCode, FnResolver, WriteOptions, proto as pb};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn ctx_counter(ctx: &Context) -> u64 {
    let c = meridian_core::seal::peek(ctx.as_bytes()).expect("valid context");
    assert!(
        c.len() <= 1,
        "one node means at most one clock entry, got {}",
        c.len()
    );
    c.entries().first().map_or(0, |e| e.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_blind_puts_are_siblings_and_a_put_with_context_resolves_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;
    c.put("default", "k", "a", None).await.unwrap();
    c.put("default", "k", "b", None).await.unwrap();
    let read = c.get("default", "k").await.unwrap();
    assert_eq!(sorted(&read.values), vec![b"a".to_vec(), b"b".to_vec()]);
    c.put("default", "k", "c", Some(&read.context))
        .await
        .unwrap();
    let read = c.get("default", "k").await.unwrap();
    assert_eq!(sorted(&read.values), vec![b"c".to_vec()]);

    // The resolver path does the same through the SDK helpers.
    c.put("default", "k", "d", None).await.unwrap();
    let resolver = FnResolver(|_k: &[u8], sibs: Vec<bytes::Bytes>| {
        let mut parts: Vec<_> = sibs
            .iter()
            .map(|s| String::from_utf8_lossy(s).to_string())
            .collect();
        parts.sort();
        Ok(bytes::Bytes::from(parts.join("+")))
    });
    let merged = c
        .get_resolved("default", "k", Some(&resolver))
        .await
        .unwrap();
    assert_eq!(merged.as_deref(), Some(&b"c+d"[..]));
    assert_eq!(
        sorted(&c.get("default", "k").await.unwrap().values),
        vec![b"c+d".to_vec()]
    );
}

/// (value, dot counter it got, counter of the context it was written with)
type AckedWrite = (Vec<u8>, u64, u64);

/// 20 tasks do read-modify-write with contexts on one key. No read sees more than 20
/// siblings; afterwards every acknowledged value is either still there or was covered by
/// the context of a later acknowledged write; the clock has one entry (one server node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_read_modify_write_keeps_siblings_bounded_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;
    // (value, dot counter it got, counter of the context it was written with)
    let acked: Arc<Mutex<Vec<AckedWrite>>> = Arc::default();
    let max_seen = Arc::new(Mutex::new(0usize));
    let mut tasks = Vec::new();
    for t in 0..20 {
        let (c, acked, max_seen) = (c.clone(), acked.clone(), max_seen.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                let read = c.get("default", "hot").await.unwrap();
                {
                    let mut m = max_seen.lock().unwrap();
                    *m = (*m).max(read.values.len());
                }
                assert!(
                    read.values.len() <= 20,
                    "read saw {} siblings",
                    read.values.len()
                );
                let value = format!("t{t}-{i}").into_bytes();
                let new = c
                    .put("default", "hot", value.clone(), Some(&read.context))
                    .await
                    .unwrap();
                acked.lock().unwrap().push((
                    value,
                    ctx_counter(&new.context),
                    ctx_counter(&read.context),
                ));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let final_read = c.get("default", "hot").await.unwrap();
    ctx_counter(&final_read.context);
    let present: BTreeSet<Vec<u8>> = final_read.values.iter().map(|b| b.to_vec()).collect();
    let acked = acked.lock().unwrap();
    // On one node the new dot is the context's counter right after the write.
    let max_read_ctx = |dot: u64| acked.iter().any(|(_, _, read_ctx)| *read_ctx >= dot);
    for (value, dot, _) in acked.iter() {
        assert!(
            present.contains(value) || max_read_ctx(*dot),
            "acknowledged value {} (dot {dot}) is neither present nor superseded",
            String::from_utf8_lossy(value)
        );
    }
    // And nothing superseded is still present.
    for (value, dot, _) in acked.iter() {
        if present.contains(value) {
            assert!(
                !max_read_ctx(*dot),
                "superseded value {} still present",
                String::from_utf8_lossy(value)
            );
        }
    }
    assert!(final_read.values.len() <= 20);
    assert_eq!(acked.len(), 300);
    eprintln!("max siblings seen by a read: {}", max_seen.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_put_with_the_same_request_id_creates_no_sibling() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;
    let opts = WriteOptions {
        request_id: Some([42; 16]),
        ..Default::default()
    };
    let first = c.put_with("default", "r", "v", None, &opts).await.unwrap();
    // The reply was "lost"; the client retries the same write.
    let second = c.put_with("default", "r", "v", None, &opts).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(c.get("default", "r").await.unwrap().values.len(), 1);

    // Over HTTP, the request id header does the same.
    let http = reqwest::Client::new();
    let url = format!("{}/v1/data/default/r2", node.http);
    for _ in 0..3 {
        let r = http
            .put(&url)
            .header(
                "meridian-request-id",
                "6f9619ff-8b86-d011-b42d-00c04fc964ff",
            )
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    assert_eq!(c.get("default", "r2").await.unwrap().values.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sibling_guard_refuses_the_101st_sibling_but_accepts_a_resolving_write() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;
    for i in 0..100 {
        c.put("default", "crowded", format!("v{i}"), None)
            .await
            .unwrap();
    }
    let err = c.put("default", "crowded", "v100", None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FailedPrecondition, "{err}");
    assert!(
        err.message.contains("100 siblings") && err.message.contains("limit is 100"),
        "{err}"
    );
    let read = c.get("default", "crowded").await.unwrap();
    assert_eq!(read.values.len(), 100);
    c.put("default", "crowded", "merged", Some(&read.context))
        .await
        .unwrap();
    assert_eq!(
        sorted(&c.get("default", "crowded").await.unwrap().values),
        vec![b"merged".to_vec()]
    );
    // The metric counted the refusal.
    let metrics = reqwest::get(format!("{}/metrics", node.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("meridian_sibling_rejections_total 1"),
        "{metrics}"
    );
}

/// Large values within the keyspace's limits could still pile up into a key no read can
/// return (the SDK takes 16 MiB replies): the siblings' bytes together are bounded too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siblings_may_not_pile_up_past_8_mib_but_a_resolving_write_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;
    let options = meridian_sdk::KeyspaceOptions {
        max_value_bytes: Some(2 << 20),
        ..Default::default()
    };
    c.create_keyspace_with("blobs", &options).await.unwrap();
    let blob = vec![b'x'; (2 << 20) - 16];
    for _ in 0..4 {
        c.put("blobs", "k", blob.clone(), None).await.unwrap();
    }
    let err = c.put("blobs", "k", blob.clone(), None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FailedPrecondition, "{err}");
    assert!(
        err.message.contains("at most 8388608 bytes of siblings"),
        "{err}"
    );
    let read = c.get("blobs", "k").await.unwrap();
    assert_eq!(read.values.len(), 4);
    c.put("blobs", "k", blob.clone(), Some(&read.context))
        .await
        .unwrap();
    assert_eq!(c.get("blobs", "k").await.unwrap().values.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_remove_what_they_saw_and_keep_concurrent_values() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;
    let ctx = c.put("default", "d", "a", None).await.unwrap();
    c.delete("default", "d", Some(&ctx.context)).await.unwrap();
    let read = c.get("default", "d").await.unwrap();
    assert!(!read.is_found());
    assert!(
        !read.context.is_empty(),
        "a deleted key still returns its context"
    );

    // A delete that did not see a concurrent value leaves it as a sibling.
    let seen = c.put("default", "d2", "seen", None).await.unwrap();
    c.put("default", "d2", "concurrent", None).await.unwrap();
    c.delete("default", "d2", Some(&seen.context))
        .await
        .unwrap();
    assert_eq!(
        sorted(&c.get("default", "d2").await.unwrap().values),
        vec![b"concurrent".to_vec()]
    );

    // Without a context, delete removes what the node holds.
    c.delete("default", "d2", None).await.unwrap();
    assert!(!c.get("default", "d2").await.unwrap().is_found());

    // HTTP: a deleted key is 404 with its context header.
    let r = reqwest::get(format!("{}/v1/data/d2", node.http))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("meridian-context").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    for sync in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start_with(dir.path(), &["--sync-writes", &sync.to_string()]);
        let c = node.client().await;
        let mut expected = BTreeMap::new();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                let mut done = Vec::new();
                for i in 0..50 {
                    let key = format!("k{t}-{i}");
                    let value = format!("value-{t}-{i}-{sync}");
                    c.put("default", &key, value.clone(), None).await.unwrap();
                    done.push((key, value));
                }
                done
            }));
        }
        for t in tasks {
            expected.extend(t.await.unwrap());
        }
        node.kill9();
        let node = Node::start(dir.path());
        let c = node.client().await;
        for (k, v) in &expected {
            let r = c.get("default", k).await.unwrap();
            assert_eq!(
                sorted(&r.values),
                vec![v.as_bytes().to_vec()],
                "key {k} (sync_writes={sync})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;

    let e = c.put("default", "", "v", None).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.contains("empty") && e.message.contains("1024"),
        "{e}"
    );

    let long_key = "k".repeat(1025);
    let e = c.put("default", &long_key, "v", None).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.contains("1025") && e.message.contains("1024"),
        "{e}"
    );

    let e = c
        .put("default", "big", vec![0u8; 10 * 1024], None)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("10240"), "{e}");
    assert!(
        !c.get("default", "big").await.unwrap().is_found(),
        "nothing stored"
    );

    let bad_ctx = Context::from_bytes(vec![7u8, 1, 2, 3]);
    let e = c
        .put("default", "k", "v", Some(&bad_ctx))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.starts_with("malformed context"), "{e}");
    assert!(
        !c.get("default", "k").await.unwrap().is_found(),
        "nothing stored"
    );

    let e = c.get("nosuch", "k").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("nosuch"), "{e}");

    // HTTP: the same problems, as 400/404/413 with a JSON error naming them.
    let http = reqwest::Client::new();
    let check = |status: u16, body: &str, needle: &str| {
        assert!(
            body.contains(needle),
            "status {status}: {body} should mention {needle}"
        );
        let v: serde_json::Value = serde_json::from_str(body).expect("JSON error body");
        assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string());
    };
    let r = http
        .put(format!("{}/v1/data/default/big", node.http))
        .body(vec![0u8; 20_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    check(413, &r.text().await.unwrap(), "10240");
    let r = http
        .put(format!("{}/v1/data/default/{}", node.http, long_key))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    check(413, &r.text().await.unwrap(), "1024");
    let r = http
        .put(format!("{}/v1/data/default/", node.http))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    check(400, &r.text().await.unwrap(), "empty");
    let r = http
        .put(format!("{}/v1/data/default/k", node.http))
        .header("meridian-context", "!!!not-base64!!!")
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    check(400, &r.text().await.unwrap(), "malformed context");
    let r = http
        .put(format!("{}/v1/data/a/b/c", node.http))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    check(400, &r.text().await.unwrap(), "bad data path");
    // A body beyond the HTTP API's own limit, and a misspelt parameter, get the same form.
    let r = http
        .put(format!("{}/v1/data/default/huge", node.http))
        .body(vec![0u8; 5 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // The server read the rest of the body, so the client saw the answer (not a broken pipe)
    // and the kept-alive connection carries the next request.
    assert!(r.headers().get("connection").is_none());
    check(413, &r.text().await.unwrap(), "4194304 bytes");
    let r = http
        .put(format!("{}/v1/data/default/k?consitency=ONE", node.http))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    check(400, &r.text().await.unwrap(), "consitency");
    let r = http
        .get(format!("{}/v1/data/nosuch/k", node.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    check(404, &r.text().await.unwrap(), "nosuch");
    assert!(
        !c.get("default", "k").await.unwrap().is_found(),
        "nothing stored by bad requests"
    );

    // Unsatisfiable consistency on one node is a clear UNAVAILABLE.
    let opts = WriteOptions {
        consistency: Some(meridian_sdk::Consistency::Two),
        ..Default::default()
    };
    let e = c
        .put_with("default", "k", "v", None, &opts)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(e.message.contains("TWO needs 2 replicas"), "{e}");

    // The node is still healthy after all of that.
    c.put("default", "ok", "fine", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lww_keyspace_keeps_the_last_write() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.client().await;
    c.create_keyspace("sessions", meridian_sdk::ValueKind::Lww, BTreeMap::new())
        .await
        .unwrap();
    // Creating it again identically is fine; with another kind it is refused.
    c.create_keyspace("sessions", meridian_sdk::ValueKind::Lww, BTreeMap::new())
        .await
        .unwrap();
    let e = c
        .create_keyspace(
            "sessions",
            meridian_sdk::ValueKind::Siblings,
            BTreeMap::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    c.put("sessions", "s", "one", None).await.unwrap();
    c.put("sessions", "s", "two", None).await.unwrap();
    assert_eq!(
        sorted(&c.get("sessions", "s").await.unwrap().values),
        vec![b"two".to_vec()]
    );
    let names: Vec<_> = c
        .list_keyspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, vec!["default".to_string(), "sessions".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_serving_and_metrics_parse() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let channel = tonic::transport::Endpoint::from_shared(node.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", "meridian.v1.Kv"] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );
    }
    // Unary RPCs work for tools; a missing key is NOT_FOUND with its context as metadata.
    let mut kv = pb::kv_client::KvClient::new(channel);
    let e = kv
        .get(pb::GetRequest {
            keyspace: "default".into(),
            key: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.metadata().get_bin("meridian-context-bin").is_some());

    let c = node.client().await;
    c.put("default", "m", "v", None).await.unwrap();
    c.get("default", "m").await.unwrap();
    let text = reqwest::get(format!("{}/metrics", node.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut samples = 0;
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (name_labels, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = name_labels.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':'),
            "bad metric name in {line:?}"
        );
        if let Some(labels) = name_labels.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line:?}"
            );
        }
        samples += 1;
    }
    assert!(samples > 10);
    assert!(
        text.contains("meridian_requests_total{code=\"OK\",op=\"put\"} 1"),
        "{text}"
    );
}

/// A node that stops answering (its address now accepts connections and never speaks) must
/// not hold a request past its deadline, however many retries are allowed: the deadline is
/// one for all attempts, and opening a stream counts against it. Connecting to such an
/// address fails within the connect timeout too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_ends_at_its_deadline_when_the_node_stops_answering() {
    let dir = tempfile::tempdir().unwrap();
    // An address of its own: no other test's listener can take the port once it is freed.
    let node = Node::start_with(dir.path(), &["--grpc-addr", "127.0.250.1:0"]);
    let url = node.grpc.clone();
    let c = meridian_sdk::Client::builder([url.clone()])
        .timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .retries(50)
        .routing(false)
        .connect()
        .await
        .unwrap();
    c.put("default", "k", "v", None).await.unwrap();
    node.kill9();
    // The same address, now a listener that accepts and never answers.
    let addr = url.trim_start_matches("http://").to_string();
    let silent = common::eventually(Duration::from_secs(30), "port free again", || async {
        std::net::TcpListener::bind(&addr).ok()
    })
    .await;
    let outcome = tokio::time::timeout(Duration::from_secs(60), c.get("default", "k")).await;
    let err = outcome
        .expect("the request ended instead of hanging")
        .expect_err("nothing answers");
    assert!(
        matches!(
            err.code,
            ErrorCode::Unavailable | ErrorCode::DeadlineExceeded
        ),
        "{err:?}"
    );
    let connect = tokio::time::timeout(
        Duration::from_secs(60),
        meridian_sdk::Client::builder([url])
            .connect_timeout(Duration::from_secs(2))
            .routing(false)
            .connect(),
    )
    .await;
    assert!(
        connect.expect("connect ended instead of hanging").is_err(),
        "a silent address cannot be connected to"
    );
    drop(silent);
}

/// `meridian admin status | head -1` once panicked in `println!` when `head` closed the
/// pipe. The reader here is gone before the command writes (it first connects over gRPC), so
/// the command's first write meets a closed pipe: it must end quietly, by SIGPIPE as Unix
/// tools do, not with a panic.
#[cfg(unix)]
#[test]
fn a_command_whose_output_pipe_closes_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["admin", "status", "--endpoint", &node.grpc])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "expected an end by SIGPIPE, got {:?}; stderr: {stderr}",
        out.status
    );
}
