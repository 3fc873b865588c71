//! A WAN partition with real `meridian` processes: every node's traffic from the other DC
//! goes through a proxy the test controls (`--wan-grpc-addr`), so the test cuts dc1 from dc2
//! while both take writes and deletes, then heals the link and waits for convergence.

mod common;

use common::{TestCluster, eventually, metric_sum, r, serial, w};
use meridian_sdk::Consistency;
use std::collections::BTreeSet;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(120);

fn key(prefix: &str, i: usize) -> String {
    format!("{prefix}{i}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_of_a_dc_partition_take_writes_and_deletes_and_converge_after_it_heals() {
    let _serial = serial().await;
    let c = TestCluster::start_wan(
        44,
        &[
            ("dc1", "r1", 1),
            ("dc1", "r2", 1),
            ("dc2", "r1", 1),
            ("dc2", "r2", 1),
        ],
        &["--anti-entropy-exchanges-per-sec", "10"],
    );
    c.converged().await;
    c.create_keyspace("geo", &[("dc1", 2), ("dc2", 2)]).await;
    let dc1 = c.client(0).await;
    let dc2 = c.client(2).await;
    let local = w(Consistency::LocalQuorum);

    // Keys each side will delete during the partition, written everywhere first.
    for i in 0..20 {
        dc1.put_with("geo", key("d", i), "doomed", None, &w(Consistency::All))
            .await
            .expect("put at ALL");
    }

    c.cut_wan("dc1", "dc2", true);
    let mut acked: Vec<(String, String)> = Vec::new();
    for i in 0..25 {
        for (client, side) in [(&dc1, "a"), (&dc2, "b")] {
            let (k, v) = (key(side, i), format!("{side}-{i}"));
            client
                .put_with("geo", &k, v.clone(), None, &local)
                .await
                .expect("a LOCAL_QUORUM put during the partition");
            acked.push((k, v));
        }
        // The same key on both sides: concurrent, so both must survive as siblings.
        for (client, side) in [(&dc1, "a"), (&dc2, "b")] {
            let v = format!("both-{side}-{i}");
            client
                .put_with("geo", key("s", i), v.clone(), None, &local)
                .await
                .expect("a concurrent put during the partition");
            acked.push((key("s", i), v));
        }
    }
    // Each side deletes its half of the doomed keys, with the context of a read.
    for i in 0..20 {
        let client = if i < 10 { &dc1 } else { &dc2 };
        let got = client
            .get_with("geo", key("d", i), &r(Consistency::LocalQuorum))
            .await
            .expect("read before delete");
        client
            .delete_with("geo", key("d", i), Some(&got.context), &local)
            .await
            .expect("a LOCAL_QUORUM delete during the partition");
    }
    // The cut holds: dc2 has not seen dc1's writes.
    for i in 0..25 {
        assert!(
            !c.stored_on(2, "geo", &key("a", i)).await,
            "a write crossed the cut WAN link"
        );
    }

    c.cut_wan("dc1", "dc2", false);
    let mut keys: BTreeSet<String> = acked.iter().map(|(k, _)| k.clone()).collect();
    keys.extend((0..20).map(|i| key("d", i)));
    eventually(
        DEADLINE,
        "every replica in both DCs holds the same state",
        || async {
            for k in &keys {
                let states = c.replica_states("geo", k).await;
                if states.len() != 4 || states.windows(2).any(|s| s[0].1 != s[1].1) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;

    // Every acknowledged write is there, on either side; every deleted key stays deleted.
    for client in [&dc1, &dc2] {
        for (k, v) in &acked {
            let got = client
                .get_with("geo", k, &r(Consistency::One))
                .await
                .expect("read after heal");
            assert!(
                got.values.iter().any(|x| x.as_ref() == v.as_bytes()),
                "{k}: acknowledged {v:?} is missing ({:?})",
                got.values
            );
        }
        for i in 0..20 {
            let got = client
                .get_with("geo", key("d", i), &r(Consistency::One))
                .await
                .expect("read of a deleted key");
            assert!(!got.is_found(), "deleted d{i} came back: {:?}", got.values);
        }
    }
}

/// What node `i` reports of its stream to `dc`.
async fn outbound(
    c: &TestCluster,
    i: usize,
    dc: &str,
) -> Option<meridian_sdk::proto::OutboundStream> {
    let mut admin = c.admin(i).await;
    let s = admin
        .streams(meridian_sdk::proto::StreamsRequest {})
        .await
        .expect("streams")
        .into_inner();
    s.outbound.into_iter().find(|o| o.datacenter == dc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_overflows_during_a_long_partition_sheds_counts_and_still_converges() {
    let _serial = serial().await;
    // A queue of 4 KiB: a few dozen writes in full, a few dozen more as references, and the
    // rest dropped to anti-entropy. Continuous anti-entropy is off, so only the stream and
    // the catch-up it owes for what it dropped can bring dc2 up to date.
    let c = TestCluster::start_wan(
        45,
        &[("dc1", "r1", 1), ("dc2", "r1", 1)],
        &[
            "--stream-max-bytes",
            "4096",
            "--anti-entropy-exchanges-per-sec",
            "0",
        ],
    );
    c.converged().await;
    c.create_keyspace("geo", &[("dc1", 1), ("dc2", 1)]).await;
    let dc1 = c.client(0).await;
    let local = w(Consistency::LocalQuorum);

    // Before the cut the stream carries writes across within moments.
    dc1.put_with("geo", "before", "v", None, &local)
        .await
        .expect("put before the cut");
    eventually(DEADLINE, "the stream delivers to dc2", || async {
        c.stored_on(1, "geo", "before").await.then_some(())
    })
    .await;

    c.cut_wan("dc1", "dc2", true);
    let value = "x".repeat(200);
    for i in 0..300 {
        dc1.put_with("geo", key("o", i), value.clone(), None, &local)
            .await
            .expect("a LOCAL_QUORUM put during the partition");
    }
    let during = outbound(&c, 0, "dc2").await.expect("a stream to dc2");
    assert!(
        during.shed_to_references > 0 && during.dropped > 0,
        "a full queue sheds to references, then drops: {during:?}"
    );
    assert!(
        during.queued_bytes <= 4096 + 1024,
        "the queue stays within its budget: {during:?}"
    );
    let status = c.cli(0, &["admin", "status"]).await;
    assert!(
        status.contains("stream to dc2") && status.contains("dropped to anti-entropy"),
        "admin status shows the stream: {status}"
    );
    assert!(
        metric_sum(&c, "meridian_stream_shed_total").await >= during.dropped as f64,
        "the drops are counted in the metrics"
    );

    c.cut_wan("dc1", "dc2", false);
    eventually(
        DEADLINE,
        "dc2 holds every write of the partition",
        || async {
            for i in 0..300 {
                let states = c.replica_states("geo", &key("o", i)).await;
                if states.len() != 2 || states[0].1 != states[1].1 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    eventually(DEADLINE, "the stream drains", || async {
        let o = outbound(&c, 0, "dc2").await?;
        (o.queued == 0).then_some(())
    })
    .await;
    let mut admin = c.admin(1).await;
    let inbound = admin
        .streams(meridian_sdk::proto::StreamsRequest {})
        .await
        .expect("streams")
        .into_inner()
        .inbound;
    let from_dc1 = inbound
        .iter()
        .find(|i| i.datacenter == "dc1")
        .expect("dc2 reports what it received from dc1");
    assert!(
        from_dc1.applied > 0 && from_dc1.lag_p99_ms >= from_dc1.lag_p50_ms,
        "{from_dc1:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumes_after_its_node_is_killed_during_a_partition() {
    let _serial = serial().await;
    // Continuous anti-entropy off: only the stream's durable queue can carry the writes.
    let mut c = TestCluster::start_wan(
        46,
        &[("dc1", "r1", 1), ("dc2", "r1", 1)],
        &["--anti-entropy-exchanges-per-sec", "0"],
    );
    c.converged().await;
    c.create_keyspace("geo", &[("dc1", 1), ("dc2", 1)]).await;
    let local = w(Consistency::LocalQuorum);

    c.cut_wan("dc1", "dc2", true);
    {
        let dc1 = c.client(0).await;
        for i in 0..100 {
            dc1.put_with("geo", key("k", i), format!("v{i}"), None, &local)
                .await
                .expect("a LOCAL_QUORUM put during the partition");
        }
    }
    let before = outbound(&c, 0, "dc2").await.expect("a stream to dc2");
    assert_eq!(before.queued, 100, "{before:?}");

    // kill -9: the queue is in RocksDB, so the restarted node finds it and resumes.
    c.restart(0);
    let after = eventually(DEADLINE, "the restarted node reports its queue", || async {
        outbound(&c, 0, "dc2").await
    })
    .await;
    assert_eq!(
        after.queued, 100,
        "the queue survived the restart: {after:?}"
    );
    assert!(!c.stored_on(1, "geo", &key("k", 0)).await);

    c.cut_wan("dc1", "dc2", false);
    eventually(
        DEADLINE,
        "dc2 holds every write queued before the restart",
        || async {
            for i in 0..100 {
                if !c.stored_on(1, "geo", &key("k", i)).await {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    eventually(DEADLINE, "the stream drains", || async {
        let o = outbound(&c, 0, "dc2").await?;
        (o.queued == 0 && o.dropped == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_are_purged_only_once_both_dcs_hold_them_and_deleted_keys_stay_deleted() {
    let _serial = serial().await;
    // A grace of 2 s (hints live 1 s), and every partition swept about once a second.
    let c = TestCluster::start_wan(
        47,
        &[("dc1", "r1", 1), ("dc2", "r1", 1)],
        &[
            "--hint-max-age-secs",
            "1",
            "--tombstone-grace-secs",
            "2",
            "--tombstone-sweeps-per-sec",
            "1000",
        ],
    );
    c.converged().await;
    c.create_keyspace("sessions", &[("dc1", 1), ("dc2", 1)])
        .await;
    let dc1 = c.client(0).await;
    let dc2 = c.client(1).await;
    let local = w(Consistency::LocalQuorum);
    const N: usize = 40;
    for i in 0..N {
        dc1.put_with("sessions", key("s", i), "alive", None, &local)
            .await
            .expect("put");
    }
    eventually(DEADLINE, "dc2 holds every session", || async {
        for i in 0..N {
            if !c.stored_on(1, "sessions", &key("s", i)).await {
                return None;
            }
        }
        Some(())
    })
    .await;
    // A context read before the delete: after the purge it must not supersede new values.
    let old = dc2
        .get_with("sessions", key("s", 0), &r(Consistency::LocalOne))
        .await
        .expect("get")
        .context;

    // Cut off, each DC deletes half of the sessions.
    c.cut_wan("dc1", "dc2", true);
    for i in 0..N {
        let client = if i % 2 == 0 { &dc1 } else { &dc2 };
        client
            .delete_with("sessions", key("s", i), None, &local)
            .await
            .expect("a LOCAL_QUORUM delete during the partition");
    }
    eventually(
        DEADLINE,
        "the reaper's sweeps fail while dc2 is cut off",
        || async {
            (metric_sum(&c, "meridian_tombstone_sweep_failures_total").await >= 20.0).then_some(())
        },
    )
    .await;
    assert_eq!(
        metric_sum(&c, "meridian_tombstones_confirmed_total").await,
        0.0,
        "no tombstone is confirmed while a replica cannot answer"
    );
    assert_eq!(
        metric_sum(&c, "meridian_tombstones_purged_total").await,
        0.0
    );
    for i in 0..N {
        assert!(
            c.stored_on(i % 2, "sessions", &key("s", i)).await,
            "the tombstone of s{i} stays while the other DC may hold the value"
        );
    }

    c.cut_wan("dc1", "dc2", false);
    eventually(
        DEADLINE,
        "every tombstone is purged on both DCs",
        || async {
            for i in 0..N {
                for node in 0..2 {
                    if c.stored_on(node, "sessions", &key("s", i)).await {
                        return None;
                    }
                }
            }
            Some(())
        },
    )
    .await;
    assert!(metric_sum(&c, "meridian_tombstones_purged_total").await >= (2 * N) as f64);
    for (client, dc) in [(&dc1, "dc1"), (&dc2, "dc2")] {
        for i in 0..N {
            let got = client
                .get_with("sessions", key("s", i), &r(Consistency::LocalQuorum))
                .await
                .expect("get");
            assert!(got.values.is_empty(), "s{i} came back in {dc}: {got:?}");
        }
    }

    // A new value after the purge, then a write with the context read before the delete:
    // that context never saw the new value, so both survive as siblings.
    dc1.put_with("sessions", key("s", 0), "new", None, &local)
        .await
        .expect("put after the purge");
    eventually(DEADLINE, "dc2 has the new value", || async {
        let got = dc2
            .get_with("sessions", key("s", 0), &r(Consistency::LocalOne))
            .await
            .ok()?;
        (!got.values.is_empty()).then_some(())
    })
    .await;
    dc2.put_with("sessions", key("s", 0), "stale", Some(&old), &local)
        .await
        .expect("put with an old context");
    let got = dc2
        .get_with("sessions", key("s", 0), &r(Consistency::LocalOne))
        .await
        .expect("get");
    assert_eq!(
        common::sorted(&got.values),
        vec![b"new".to_vec(), b"stale".to_vec()],
        "a context from before the purge superseded a value it never saw"
    );
}
