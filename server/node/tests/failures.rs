//! Failure handling that must not wedge, with real `meridian` processes: a backlog of
//! large values reaches a replica that was down (hint batches are bounded by bytes, not
//! count), and one object that cannot be merged is set aside instead of blocking the hints
//! queued behind it. One test at a time (see `serial`).

mod common;

use common::{TestCluster, eventually, metric_sum, serial, w};
use meridian_core::keyspace::keyspace_id;
use meridian_core::limits::MAX_CONFIGURABLE_VALUE_BYTES;
use meridian_core::partition::storage_key;
use meridian_sdk::{Consistency, proto as pb};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(90);

/// A client that sends everything to node `i` (no routing to other replicas).
async fn pinned(c: &TestCluster, i: usize) -> meridian_sdk::Client {
    meridian_sdk::Client::builder([c.node(i).grpc.clone()])
        .timeout(Duration::from_secs(30))
        .retries(0)
        .routing(false)
        .connect()
        .await
        .expect("connect")
}

async fn big_keyspace(c: &TestCluster, name: &str) {
    let mut admin = c.admin(0).await;
    admin
        .create_keyspace(pb::CreateKeyspaceRequest {
            spec: Some(pb::KeyspaceSpec {
                name: name.into(),
                replication: [("dc1".to_string(), 3)].into(),
                max_value_bytes: MAX_CONFIGURABLE_VALUE_BYTES,
                ..Default::default()
            }),
        })
        .await
        .expect("create keyspace");
    for (i, _) in c.running() {
        eventually(DEADLINE, "keyspace known everywhere", || async {
            let mut a = c.admin(i).await;
            a.describe_keyspace(pb::DescribeKeyspaceRequest { name: name.into() })
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_2_mib_values_reaches_a_replica_that_was_down() {
    let _serial = serial().await;
    let mut c = TestCluster::start(31, &[("dc1", "r1", 1), ("dc1", "r2", 1), ("dc1", "r3", 1)]);
    c.converged().await;
    big_keyspace(&c, "big").await;
    let client = pinned(&c, 0).await;
    // Key + value at the largest limit a keyspace may have.
    let value = |i: usize| vec![i as u8; MAX_CONFIGURABLE_VALUE_BYTES as usize - 16];
    client
        .put_with("big", "k-all", value(255), None, &w(Consistency::All))
        .await
        .expect("a 2 MiB put at ALL");
    for i in 0..3 {
        assert!(c.stored_on(i, "big", "k-all").await, "node {i} holds it");
    }
    // 36 of them while node 2 is down: 72 MiB of hints on node 0, more than one peer message
    // may carry (64 MiB), so they must go over in several batches.
    c.kill(2);
    c.sees_down(0, 2).await;
    for i in 0..36 {
        client
            .put_with(
                "big",
                format!("k{i}"),
                value(i),
                None,
                &w(Consistency::Quorum),
            )
            .await
            .expect("put at QUORUM with one replica down");
    }
    assert!(c.hints_on(0).await >= 36, "node 0 keeps hints for node 2");
    c.restart(2);
    eventually(DEADLINE, "every hint delivered", || async {
        (c.hints_total().await == 0).then_some(())
    })
    .await;
    for i in 0..36 {
        let key = format!("k{i}");
        assert!(c.stored_on(2, "big", &key).await, "node 2 holds {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmergeable_hint_is_set_aside_and_the_queue_behind_it_is_delivered() {
    let _serial = serial().await;
    let mut c = TestCluster::start(32, &[("dc1", "r1", 1), ("dc1", "r2", 1), ("dc1", "r3", 1)]);
    c.converged().await;
    c.create_keyspace("app", &[("dc1", 3)]).await;
    let node2 = c.id_bytes(2);
    c.kill(2);
    c.sees_down(1, 2).await;
    // A corrupt object, first in node 1's queue for node 2 (as a stand-in would keep it).
    let mut peer = meridian_proto::v1::peer_client::PeerClient::connect(c.node(1).grpc.clone())
        .await
        .expect("peer client");
    peer.replicate(meridian_proto::v1::ReplicateRequest {
        objects: vec![meridian_proto::v1::ObjectState {
            storage_key: storage_key(keyspace_id("app"), b"poison").into(),
            object: vec![0xFF, 0x00, 0x01].into(),
        }],
        hint_for: node2.into(),
    })
    .await
    .expect("stand-in keeps the object");
    // Then a real write, which node 1 coordinates and keeps a hint of for node 2.
    let client = pinned(&c, 1).await;
    client
        .put_with("app", "good", "value", None, &w(Consistency::Quorum))
        .await
        .expect("put");
    assert_eq!(c.hints_on(1).await, 2);
    c.restart(2);
    eventually(
        DEADLINE,
        "the good hint delivered past the bad one",
        || async { c.stored_on(2, "app", "good").await.then_some(()) },
    )
    .await;
    eventually(DEADLINE, "the queue is empty", || async {
        (c.hints_on(1).await == 0).then_some(())
    })
    .await;
    assert_eq!(
        metric_sum(&c, "meridian_objects_set_aside_total").await,
        1.0
    );
    assert!(!c.stored_on(2, "app", "poison").await);
}
