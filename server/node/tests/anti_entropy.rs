//! Anti-entropy with real `meridian` processes in two datacenters: a replica that missed
//! writes and whose hints were dropped, or whose disk was replaced, is refilled by Merkle
//! exchanges alone (no client reads), continuously or on `meridian admin repair`. One test
//! at a time (see `serial`).

mod common;

use common::{TestCluster, eventually, metric_sum, serial, w};
use meridian_sdk::Consistency;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(120);
const KEYS: usize = 150;

/// Two DCs of two nodes, every node a replica of every key; hints capped at one per target,
/// so a replica that is down misses all but the last write of a burst.
fn cluster(net: u8, ae_rate: &str) -> TestCluster {
    TestCluster::start_with(
        net,
        &[
            ("dc1", "r1", 1),
            ("dc1", "r2", 1),
            ("dc2", "r1", 1),
            ("dc2", "r2", 1),
        ],
        &[
            "--hint-max-count",
            "1",
            "--read-repair-chance",
            "0",
            "--anti-entropy-exchanges-per-sec",
            ae_rate,
        ],
    )
}

/// Writes k0..k{KEYS} = v0.. through node 0 at `level`.
async fn write_keys(c: &TestCluster, level: Consistency) {
    let client = c.client(0).await;
    for i in 0..KEYS {
        client
            .put_with("ae", format!("k{i}"), format!("v{i}"), None, &w(level))
            .await
            .unwrap_or_else(|e| panic!("put at {level:?}: {e}"));
    }
}

/// Writes KEYS keys through node 0 at LOCAL_QUORUM while node 3 (dc2) is down, then
/// brings node 3 back; returns how many of the keys node 3 holds right after it is up.
async fn miss_writes(c: &mut TestCluster) -> usize {
    c.converged().await;
    c.create_keyspace("ae", &[("dc1", 2), ("dc2", 2)]).await;
    c.kill(3);
    c.sees_down(0, 3).await;
    c.sees_down(2, 3).await;
    write_keys(c, Consistency::LocalQuorum).await;
    assert!(
        metric_sum(c, "meridian_hints_dropped_total").await > 0.0,
        "hints for node 3 were dropped, so they cannot be what refills it"
    );
    // The writes reach dc2 by the stream, behind the acknowledgements: let it drain while
    // node 3 is still down, or its tail would land on node 3 after the restart and be
    // counted as repaired by neither the count below nor anti-entropy.
    eventually(DEADLINE, "the replication streams drain", || async {
        (metric_sum(c, "meridian_stream_queued").await == 0.0).then_some(())
    })
    .await;
    c.restart(3);
    c.converged().await;
    // The hint the cap kept lands by itself (the dc2 node that relayed the stream holds
    // it): count node 3's keys after it, so only anti-entropy can account for the rest.
    eventually(DEADLINE, "the surviving hints are delivered", || async {
        (c.hints_total().await == 0).then_some(())
    })
    .await;
    let mut held = 0;
    for i in 0..KEYS {
        held += usize::from(c.stored_on(3, "ae", &format!("k{i}")).await);
    }
    held
}

async fn holds_all(c: &TestCluster, node: usize) -> bool {
    for i in 0..KEYS {
        if !c.stored_on(node, "ae", &format!("k{i}")).await {
            return false;
        }
    }
    true
}

/// Every running node holds the same bytes for every key.
async fn replicas_agree(c: &TestCluster) -> bool {
    for i in 0..KEYS {
        let states = c.replica_states("ae", &format!("k{i}")).await;
        if states.len() != 4 || states.windows(2).any(|s| s[0].1 != s[1].1) {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_missed_writes_and_lost_its_hints_is_refilled_without_reads() {
    let _serial = serial().await;
    let mut c = cluster(41, "20");
    let held = miss_writes(&mut c).await;
    eventually(DEADLINE, "anti-entropy refills node 3", || async {
        holds_all(&c, 3).await.then_some(())
    })
    .await;
    assert!(
        replicas_agree(&c).await,
        "all four replicas hold equal states"
    );
    // The counter moves when an exchange ends, which may be after node 3 already holds
    // every key, so wait for it rather than read it once.
    let lacked = (KEYS - held) as f64;
    eventually(
        DEADLINE,
        "anti-entropy reports what it repaired",
        || async {
            let repaired = metric_sum(&c, "meridian_anti_entropy_repaired_keys_total").await;
            (repaired >= lacked).then_some(())
        },
    )
    .await;
    // The test reads nothing (it inspects replicas' local state), so no read repaired.
    assert_eq!(metric_sum(&c, "meridian_read_repairs_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_repair_brings_a_replica_up_to_date_and_reports_what_it_did() {
    let _serial = serial().await;
    // Continuous anti-entropy off: only the command repairs.
    let mut c = cluster(42, "0");
    let held = miss_writes(&mut c).await;
    assert!(held < KEYS, "node 3 missed writes while it was down");
    // The node builds its trees after the start; repair leaves unbuilt partitions for a
    // later exchange, so run it until the node is whole.
    let mut outputs = Vec::new();
    let start = std::time::Instant::now();
    loop {
        outputs.push(c.cli(3, &["admin", "repair", "ae", "--this-node"]).await);
        if holds_all(&c, 3).await {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "admin repair did not refill node 3: {outputs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let summary = outputs.join("");
    assert!(
        summary.contains("repair finished on 1 node(s)"),
        "{summary}"
    );
    let repaired: u64 = outputs
        .iter()
        .filter_map(|o| {
            let (_, rest) = o.split_once("comparisons, ")?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    assert!(
        repaired >= (KEYS - held) as u64,
        "the summaries report {repaired} repaired keys; node 3 lacked {}",
        KEYS - held
    );
    // Node 2 (dc2) may have missed writes too, relayed through node 3 while it was down:
    // a cluster-wide repair settles everything, and the next one finds nothing to do.
    c.cli(0, &["admin", "repair"]).await;
    let again = c.cli(0, &["admin", "repair"]).await;
    assert!(again.contains("on 4 node(s)"), "{again}");
    assert!(again.contains(" 0 keys repaired"), "{again}");
    assert!(replicas_agree(&c).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_was_replaced_is_refilled_by_anti_entropy() {
    let _serial = serial().await;
    let mut c = cluster(43, "20");
    c.converged().await;
    c.create_keyspace("ae", &[("dc1", 2), ("dc2", 2)]).await;
    write_keys(&c, Consistency::All).await;
    assert!(holds_all(&c, 3).await);
    c.replace_disk(3);
    c.converged().await;
    eventually(
        DEADLINE,
        "anti-entropy refills the replaced disk",
        || async { holds_all(&c, 3).await.then_some(()) },
    )
    .await;
    assert!(replicas_agree(&c).await);
    // Still four members: it came back as itself, not as a fifth node joining.
    let members = c.topology(0).await.expect("topology").members;
    assert_eq!(members.len(), 4, "{members:?}");
    // It mints under a new incarnation: a write through it is a new dot, not a reused one.
    let replaced = c.client(3).await;
    replaced
        .put_with("ae", "k0", "after", None, &w(Consistency::All))
        .await
        .expect("a write through the replaced node");
    let states = c.replica_states("ae", "k0").await;
    assert_eq!(states.len(), 4);
    assert!(
        states.windows(2).all(|s| s[0].1 == s[1].1),
        "replicas agree on k0"
    );
}
