//! A WAN partition with real `meridian` processes: every node's traffic from the other DC
//! goes through a proxy the test controls (`--wan-grpc-addr`), so the test cuts dc1 from dc2
//! while both take writes and deletes, then heals the link and waits for convergence.

mod common;

use common::{TestCluster, eventually, r, w};
use meridian_sdk::Consistency;
use std::collections::BTreeSet;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(120);

fn key(prefix: &str, i: usize) -> String {
    format!("{prefix}{i}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_of_a_dc_partition_take_writes_and_deletes_and_converge_after_it_heals() {
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
