//! Cluster behaviour with real `meridian` processes on loopback: replication across
//! datacenters, sloppy quorum and hinted handoff, a whole datacenter lost, siblings from both
//! datacenters, and join/decommission under load. One test at a time (see `serial`), each
//! with its own 127.0.N.0/24 and bounded waits.

mod common;

use common::{TestCluster, eventually, metric_sum, node_metric, r, serial, w};
use meridian_sdk::{Client, Consistency, ErrorCode, proto as pb};
use std::collections::BTreeMap;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn two_dcs() -> Vec<(&'static str, &'static str, u32)> {
    vec![
        ("dc1", "r1", 1),
        ("dc1", "r2", 1),
        ("dc1", "r3", 1),
        ("dc2", "r1", 1),
        ("dc2", "r2", 1),
        ("dc2", "r3", 1),
    ]
}

async fn client(c: &TestCluster, i: usize) -> Client {
    c.client(i).await
}

/// Creates keyspace `demo` and waits until every running node knows it.
async fn create_demo(c: &TestCluster, replication: &[(&str, u32)]) {
    c.create_keyspace("demo", replication).await;
}

/// Every running replica of `key` holds the same state.
async fn replicas_agree(c: &TestCluster, key: &str, expected_replicas: usize) -> bool {
    let states = c.replica_states("demo", key).await;
    states.len() == expected_replicas
        && states
            .iter()
            .all(|(_, bytes, present)| *present && *bytes == states[0].1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_quorum_write_in_dc1_is_visible_to_local_quorum_reads_in_dc2() {
    let _serial = serial().await;
    let c = TestCluster::start(11, &two_dcs());
    c.converged().await;
    create_demo(&c, &[("dc1", 3), ("dc2", 3)]).await;

    let dc1 = client(&c, 0).await;
    dc1.put_with(
        "demo",
        "cart:1",
        "apples",
        None,
        &w(Consistency::LocalQuorum),
    )
    .await
    .expect("LOCAL_QUORUM write in dc1");
    let dc2 = client(&c, 4).await;
    let got = eventually(DEADLINE, "the write to reach dc2", || async {
        let g = dc2
            .get_with("demo", "cart:1", &r(Consistency::LocalQuorum))
            .await
            .ok()?;
        g.is_found().then_some(g)
    })
    .await;
    assert_eq!(got.values, vec![bytes::Bytes::from("apples")]);
    // And every one of the six replicas ends with the same state.
    eventually(DEADLINE, "all six replicas to agree", || async {
        replicas_agree(&c, "cart:1", 6).await.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_gets_its_writes_through_hints_when_it_returns() {
    let _serial = serial().await;
    let mut c = TestCluster::start(12, &two_dcs());
    c.converged().await;
    create_demo(&c, &[("dc1", 3), ("dc2", 3)]).await;

    c.kill(2);
    c.sees_down(0, 2).await;
    c.sees_down(1, 2).await;
    let dc1 = client(&c, 0).await;
    for k in 0..40 {
        dc1.put_with(
            "demo",
            format!("k{k}"),
            format!("v{k}"),
            None,
            &w(Consistency::LocalQuorum),
        )
        .await
        .expect("LOCAL_QUORUM write with one dc1 node down");
        let g = dc1
            .get_with("demo", format!("k{k}"), &r(Consistency::LocalQuorum))
            .await
            .expect("LOCAL_QUORUM read with one dc1 node down");
        assert_eq!(g.values.len(), 1);
    }
    // dc1 has no spare node (all three are replicas), so the coordinators keep the hints.
    let queued = c.hints_total().await;
    assert!(
        queued >= 40,
        "expected hints for the down node, found {queued}"
    );

    c.restart(2);
    eventually(DEADLINE, "hints to drain", || async {
        (c.hints_total().await == 0).then_some(())
    })
    .await;
    for k in 0..40 {
        let key = format!("k{k}");
        eventually(DEADLINE, "replicas to match after handoff", || async {
            replicas_agree(&c, &key, 6).await.then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_survive_a_restart_of_the_node_holding_them() {
    let _serial = serial().await;
    let mut c = TestCluster::start(13, &[("dc1", "r1", 1), ("dc1", "r2", 1), ("dc1", "r3", 1)]);
    c.converged().await;
    create_demo(&c, &[("dc1", 3)]).await;

    c.kill(2);
    c.sees_down(0, 2).await;
    // Not routed: node 0 coordinates every write, so node 0 holds every hint.
    let coordinator = Client::builder([c.node(0).grpc.clone()])
        .routing(false)
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect");
    for k in 0..20 {
        coordinator
            .put_with(
                "demo",
                format!("h{k}"),
                "x",
                None,
                &w(Consistency::LocalQuorum),
            )
            .await
            .expect("write with one node down");
    }
    let before = c.hints_on(0).await;
    assert!(before >= 20, "node 0 should hold hints, holds {before}");

    // The holder restarts (kill -9) while the target is still down.
    c.restart(0);
    let after = c.hints_on(0).await;
    assert_eq!(after, before, "hints must survive the holder's restart");

    c.restart(2);
    eventually(DEADLINE, "hints to drain", || async {
        (c.hints_total().await == 0).then_some(())
    })
    .await;
    for k in 0..20 {
        let key = format!("h{k}");
        eventually(
            DEADLINE,
            "the returned node to hold every hinted write",
            || async { replicas_agree(&c, &key, 3).await.then_some(()) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_whole_dc_keeps_local_quorum_and_fails_each_quorum_clearly() {
    let _serial = serial().await;
    let mut c = TestCluster::start(14, &two_dcs());
    c.converged().await;
    create_demo(&c, &[("dc1", 3), ("dc2", 3)]).await;

    for i in 3..6 {
        c.kill(i);
    }
    for i in 3..6 {
        c.sees_down(0, i).await;
    }
    let dc1 = client(&c, 1).await;
    dc1.put_with("demo", "k", "v", None, &w(Consistency::LocalQuorum))
        .await
        .expect("LOCAL_QUORUM write survives losing dc2");
    let g = dc1
        .get_with("demo", "k", &r(Consistency::LocalQuorum))
        .await
        .expect("LOCAL_QUORUM read survives losing dc2");
    assert_eq!(g.values, vec![bytes::Bytes::from("v")]);

    let err = dc1
        .put_with("demo", "k2", "v", None, &w(Consistency::EachQuorum))
        .await
        .expect_err("EACH_QUORUM cannot succeed without dc2");
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("EACH_QUORUM") && msg.contains("dc2"), "{msg}");
    assert!(
        msg.contains("reachable"),
        "the error names what was reachable: {msg}"
    );
    let err = dc1
        .get_with("demo", "k", &r(Consistency::EachQuorum))
        .await
        .expect_err("EACH_QUORUM read cannot succeed without dc2");
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_blind_writes_in_both_dcs_become_siblings_everywhere() {
    let _serial = serial().await;
    let c = TestCluster::start(15, &two_dcs());
    c.converged().await;
    create_demo(&c, &[("dc1", 3), ("dc2", 3)]).await;

    let dc1 = client(&c, 0).await;
    let dc2 = client(&c, 3).await;
    let one = w(Consistency::LocalOne);
    let (a, b) = tokio::join!(
        dc1.put_with("demo", "profile", "from-dc1", None, &one),
        dc2.put_with("demo", "profile", "from-dc2", None, &one),
    );
    a.expect("dc1 write");
    b.expect("dc2 write");
    for (i, _) in c.running() {
        let cl = client(&c, i).await;
        let got = eventually(DEADLINE, "both siblings on every node's reads", || async {
            let g = cl
                .get_with("demo", "profile", &r(Consistency::LocalQuorum))
                .await
                .ok()?;
            (g.values.len() == 2).then_some(g)
        })
        .await;
        let mut vals: Vec<_> = got.values.iter().map(|v| v.to_vec()).collect();
        vals.sort();
        assert_eq!(vals, vec![b"from-dc1".to_vec(), b"from-dc2".to_vec()]);
    }
    eventually(DEADLINE, "all replicas to agree", || async {
        replicas_agree(&c, "profile", 6).await.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_and_decommission_under_write_load_lose_no_acknowledged_write() {
    let _serial = serial().await;
    let mut c = TestCluster::start(16, &[("dc1", "r1", 1), ("dc1", "r2", 1), ("dc1", "r3", 1)]);
    c.converged().await;
    create_demo(&c, &[("dc1", 3)]).await;

    // Writers on two nodes that stay, recording every acknowledged write.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for (w_id, node) in [(0usize, 0usize), (1, 1)] {
        let cl = client(&c, node).await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = BTreeMap::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("w{w_id}-{n}");
                let val = format!("{n}");
                if cl
                    .put_with(
                        "demo",
                        &key,
                        val.clone(),
                        None,
                        &w(Consistency::LocalQuorum),
                    )
                    .await
                    .is_ok()
                {
                    acked.insert(key, val);
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Join: a fourth node takes over a share of the partitions.
    let joined = c.add("dc1", "r4", 1);
    c.converged().await;
    let t = c.topology(0).await.expect("topology");
    let member = t
        .members
        .iter()
        .find(|m| m.node_id == c.ids[joined])
        .expect("joined node is a member");
    assert!(member.partitions > 0, "the new node owns partitions");
    // The partitions that moved to the new node are deleted from their old owners once the
    // previous version retired.
    let reclaimed = eventually(DEADLINE, "moved partitions reclaimed", || async {
        let n = metric_sum(&c, "meridian_reclaimed_bytes_total").await;
        (n > 0.0).then_some(n)
    })
    .await;
    println!("{reclaimed} bytes reclaimed");

    // Decommission node 2 with the CLI, as an operator would.
    let leaving = c.ids[2].clone();
    c.cli(0, &["admin", "decommission", &leaving]).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = BTreeMap::new();
    for w in writers {
        acked.extend(w.await.expect("writer"));
    }
    assert!(
        acked.len() > 50,
        "the load generator wrote too little: {}",
        acked.len()
    );
    c.kill(2);
    // Before any read can repair them: every remaining replica, including one that moved up
    // into the first three owners of a partition when node 2 left, holds every
    // acknowledged write, through streaming and the writes to old and new owners alone.
    let checked = std::time::Instant::now();
    let mut admins = Vec::new();
    for (i, _) in c.running() {
        admins.push(c.admin(i).await);
    }
    // Writes during each transition needed their level in every active version's replica
    // set, and each new owner streamed before its version was acknowledged: all three
    // replicas come to hold every acknowledged write through the transitions and hinted
    // handoff alone (a replica that timed out gets its hint), with no read to repair them.
    for key in acked.keys() {
        let req = pb::InspectRequest {
            keyspace: "demo".into(),
            key: key.as_bytes().to_vec().into(),
        };
        let start = std::time::Instant::now();
        loop {
            let mut holders = 0;
            let mut missing = Vec::new();
            for a in admins.iter_mut() {
                let r = a.inspect(req.clone()).await.expect("inspect").into_inner();
                if r.replica {
                    holders += 1;
                    if !r.present {
                        missing.push(r.node_id);
                    }
                }
            }
            assert_eq!(holders, 3, "key {key}");
            if missing.is_empty() {
                break;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "replicas {missing:?} lack acknowledged key {key} after {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!(
        "{} acknowledged keys checked on the replicas in {:?}",
        acked.len(),
        checked.elapsed()
    );
    let reader = client(&c, 3).await;
    for (key, val) in &acked {
        let g = reader
            .get_with("demo", key, &r(Consistency::All))
            .await
            .unwrap_or_else(|e| panic!("ALL read of {key} failed: {e}"));
        assert_eq!(g.values, vec![bytes::Bytes::from(val.clone())], "key {key}");
    }
    let gone = c.ids[2].clone();
    let left = eventually(
        DEADLINE,
        "every node to see the decommissioned node as left",
        || async {
            for (i, _) in c.running() {
                let t = c.topology(i).await?;
                if t.members.iter().find(|m| m.node_id == gone)?.state != "left" {
                    return None;
                }
            }
            let t = c.topology(0).await?;
            t.members.into_iter().find(|m| m.node_id == gone)
        },
    )
    .await;
    assert_eq!(left.partitions, 0);
}

/// Put requests the given nodes took, from their metrics.
async fn put_requests(c: &TestCluster, nodes: std::ops::Range<usize>) -> f64 {
    let mut t = 0.0;
    for i in nodes {
        t += node_metric(c.node(i), "meridian_requests_total", "op=\"put\"").await;
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_routes_to_local_replicas_and_fails_over_to_the_other_dc_only_below_local_levels() {
    let _serial = serial().await;
    let mut c = TestCluster::start(17, &two_dcs());
    c.converged().await;
    create_demo(&c, &[("dc1", 3), ("dc2", 3)]).await;

    // Given only a dc1 address, a dc2 client learns the topology and writes to dc2 replicas.
    let cl = Client::builder([c.node(0).grpc.clone()])
        .local_dc("dc2")
        .timeout(Duration::from_secs(10))
        .retries(4)
        .connect()
        .await
        .expect("connect");
    assert!(
        cl.topology_epoch().is_some(),
        "the client fetched the topology"
    );
    for k in 0..30 {
        cl.put_with(
            "demo",
            format!("r{k}"),
            "v",
            None,
            &w(Consistency::LocalQuorum),
        )
        .await
        .expect("routed write");
    }
    assert_eq!(
        metric_sum(&c, "meridian_forwarded_writes_total").await,
        0.0,
        "routed writes land on a replica and are never forwarded"
    );
    // A retried write counts again where it is retried, so dc2 sees at least 30 puts.
    let dc1_puts = put_requests(&c, 0..3).await;
    let dc2_puts = put_requests(&c, 3..6).await;
    assert!(
        dc1_puts == 0.0 && dc2_puts >= 30.0,
        "every write was coordinated in the client's DC: dc1 {dc1_puts}, dc2 {dc2_puts}"
    );

    // dc2 goes away: the client fails over to dc1 (ONE can be met there).
    for i in 3..6 {
        c.kill(i);
    }
    for k in 0..10 {
        cl.put_with("demo", format!("f{k}"), "v", None, &w(Consistency::One))
            .await
            .expect("write fails over to the other DC");
    }
    let g = cl
        .get_with("demo", "f3", &r(Consistency::One))
        .await
        .expect("read fails over to the other DC");
    assert_eq!(g.values, vec![bytes::Bytes::from("v")]);
    // LOCAL_* does not: it would be counted in dc1 and mean something else there.
    let err = cl
        .put_with("demo", "l1", "v", None, &w(Consistency::LocalQuorum))
        .await
        .expect_err("LOCAL_QUORUM with the client's DC down");
    assert_eq!(err.code, meridian_sdk::ErrorCode::Unavailable, "{err:?}");
    let g = cl
        .get_with("demo", "l1", &r(Consistency::One))
        .await
        .expect("read at ONE from dc1");
    assert!(g.values.is_empty(), "nothing was written in dc1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_repair_a_replica_that_missed_a_write() {
    let _serial = serial().await;
    // Hints expire at once and anti-entropy is off here, so only read repair can bring the
    // missed write back.
    let cfg = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(cfg.path(), "[cluster]\nhint_max_age_secs = 0\n").expect("write config");
    let path = cfg.path().display().to_string();
    let mut c = TestCluster::start_with(
        18,
        &[("dc1", "r1", 1), ("dc1", "r2", 1), ("dc1", "r3", 1)],
        &["--config", &path, "--anti-entropy-exchanges-per-sec", "0"],
    );
    c.converged().await;
    create_demo(&c, &[("dc1", 3)]).await;

    c.kill(2);
    c.sees_down(0, 2).await;
    let cl = client(&c, 0).await;
    cl.put_with(
        "demo",
        "repair-me",
        "v1",
        None,
        &w(Consistency::LocalQuorum),
    )
    .await
    .expect("write with one replica down");
    c.restart(2);
    c.converged().await;
    eventually(DEADLINE, "the expired hint to be dropped", || async {
        (c.hints_total().await == 0).then_some(())
    })
    .await;
    let states = c.replica_states("demo", "repair-me").await;
    let missing: Vec<_> = states.iter().filter(|(_, _, present)| !present).collect();
    assert_eq!(
        missing.len(),
        1,
        "exactly the restarted replica lacks the write: {states:?}"
    );

    // ALL asks every replica; quorum reads skip one (except for a sampled share of reads).
    let g = cl
        .get_with("demo", "repair-me", &r(Consistency::All))
        .await
        .expect("read");
    assert_eq!(g.values, vec![bytes::Bytes::from("v1")]);
    eventually(DEADLINE, "read repair to fix the stale replica", || async {
        replicas_agree(&c, "repair-me", 3).await.then_some(())
    })
    .await;
    assert!(metric_sum(&c, "meridian_read_repairs_total").await >= 1.0);
}
