//! Layout changes with real `meridian` processes: a datacenter added to a running cluster is
//! filled from the others before it serves reads; a dead member is removed and its
//! partitions rebuilt from the survivors; a decommission finishes while another member is
//! down; a wiped node comes back as a new member. One test at a time (see `serial`).

mod common;

use common::{TestCluster, eventually, r, serial, w};
use meridian_sdk::{Consistency, proto as pb};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_datacenter_is_filled_from_the_others_before_it_serves_reads() {
    let _serial = serial().await;
    let mut c = TestCluster::start(17, &[("dc1", "r1", 1), ("dc1", "r2", 1), ("dc1", "r3", 1)]);
    c.converged().await;
    // `geo` will live in dc2 once it exists; `local` never does.
    c.create_keyspace("geo", &[("dc1", 3), ("dc2", 2)]).await;
    c.create_keyspace("local", &[("dc1", 3)]).await;
    let writer = c.client(0).await;
    let keys: Vec<String> = (0..150).map(|i| format!("k{i}")).collect();
    for k in &keys {
        for ks in ["geo", "local"] {
            writer
                .put_with(ks, k, k.clone(), None, &w(Consistency::LocalQuorum))
                .await
                .expect("write before dc2 exists");
        }
    }

    let a = c.add("dc2", "r1", 1);
    let b = c.add("dc2", "r2", 1);
    c.converged().await;
    let t = c.topology(a).await.expect("topology");
    assert!(t.datacenters.iter().any(|d| d.datacenter == "dc2"));

    // Each dc2 node is a replica of every `geo` key (factor 2, two nodes) and answers
    // LOCAL_ONE from its own store: it must have streamed everything from dc1.
    for node in [a, b] {
        let reader = c.client(node).await;
        for k in &keys {
            let g = reader
                .get_with("geo", k, &r(Consistency::LocalOne))
                .await
                .unwrap_or_else(|e| panic!("LOCAL_ONE read of {k} in dc2 failed: {e}"));
            assert_eq!(g.values, vec![bytes::Bytes::from(k.clone())], "key {k}");
        }
        // Nothing of the keyspace that does not replicate into dc2 was copied there.
        for k in keys.iter().take(20) {
            assert!(!c.stored_on(node, "local", k).await, "local/{k} on dc2");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_member_is_removed_and_a_decommission_finishes_while_it_is_down() {
    let _serial = serial().await;
    let mut c = TestCluster::start(
        18,
        &[
            ("dc1", "r1", 1),
            ("dc1", "r2", 1),
            ("dc1", "r3", 1),
            ("dc1", "r1", 1),
            ("dc1", "r2", 1),
        ],
    );
    c.converged().await;
    c.create_keyspace("demo", &[("dc1", 3)]).await;
    let writer = c.client(0).await;
    let keys: Vec<String> = (0..150).map(|i| format!("k{i}")).collect();
    for k in &keys {
        writer
            .put_with("demo", k, k.clone(), None, &w(Consistency::LocalQuorum))
            .await
            .expect("write");
    }

    // Node 4's disk dies: it is down, and stays down while node 3 is decommissioned.
    c.kill(4);
    c.sees_down(0, 4).await;
    c.sees_down(3, 4).await;
    let out = c
        .cli(0, &["admin", "decommission", &c.ids[3].clone()])
        .await;
    println!("{out}");
    c.kill(3);

    // Node 4 comes back with an empty disk: a new member under a new id. The old id is
    // removed; its partitions are rebuilt from the other replicas.
    let dead = c.wipe(4);
    assert_ne!(dead, c.ids[4]);
    let out = c.cli(1, &["admin", "remove", &dead[..12]]).await;
    assert!(out.contains("removed in layout version"), "{out}");
    c.converged().await;
    let layout = c.cli(2, &["admin", "layout"]).await;
    assert!(layout.contains("current, settled"), "{layout}");
    assert!(!layout.contains("PENDING"), "{layout}");
    let t = c.topology(0).await.expect("topology");
    for gone in [&dead, &c.ids[3]] {
        let m = t
            .members
            .iter()
            .find(|m| &m.node_id == gone)
            .expect("a departed member is still listed");
        assert_eq!((m.state.as_str(), m.partitions), ("left", 0), "{gone}");
    }
    // Every running node holds the same layout (converged checked the digest), and every
    // key is on all three of its replicas among the four live nodes, through streaming
    // alone (no read has touched them yet).
    for k in &keys {
        let holders = eventually(DEADLINE, "every replica to hold the key", || async {
            let states = c.replica_states("demo", k).await;
            (states.len() == 3 && states.iter().all(|(_, _, present)| *present))
                .then_some(states.len())
        })
        .await;
        assert_eq!(holders, 3);
    }
    // Partitions that moved away were deleted from their old owners once the versions
    // that gave them retired: no non-replica keeps a copy.
    for k in &keys {
        eventually(DEADLINE, "non-replicas to drop their copies", || async {
            for (i, _) in c.running() {
                let r = c
                    .admin(i)
                    .await
                    .inspect(pb::InspectRequest {
                        keyspace: "demo".into(),
                        key: k.as_bytes().to_vec().into(),
                    })
                    .await
                    .ok()?
                    .into_inner();
                if !r.replica && r.present {
                    return None;
                }
            }
            Some(())
        })
        .await;
    }
    let reader = c.client(4).await;
    for k in &keys {
        let g = reader
            .get_with("demo", k, &r(Consistency::All))
            .await
            .unwrap_or_else(|e| panic!("ALL read of {k} failed: {e}"));
        assert_eq!(g.values, vec![bytes::Bytes::from(k.clone())], "key {k}");
    }
}
