use super::*;
use crate::object::SiblingsState;
use crate::version::Version;

fn cand(k: u8, digest: u64) -> Candidate {
    Candidate {
        storage_key: vec![k],
        digest,
    }
}

fn object(values: &[Option<&[u8]>], ts_ms: u64) -> StoredObject {
    let mut s = SiblingsState::default();
    for (i, v) in values.iter().enumerate() {
        s.dvv
            .event(
                ActorId([i as u8 + 1; 16]),
                Version {
                    data: v.map(<[u8]>::to_vec),
                    request_id: [i as u8; 16],
                    timestamp: ts_ms << hlc::LOGICAL_BITS,
                },
            )
            .unwrap();
    }
    StoredObject::Siblings(s)
}

#[test]
fn only_old_enough_states_of_nothing_but_tombstones_are_dead() {
    assert!(is_dead(&object(&[None], 1_000), 5_000, 4_000));
    assert!(!is_dead(&object(&[None], 1_000), 4_999, 4_000));
    assert!(!is_dead(&object(&[None, Some(b"x")], 1_000), 9_000, 0));
    assert!(!is_dead(&object(&[Some(b"x")], 1_000), 9_000, 0));
    assert!(!is_dead(&object(&[], 1_000), 9_000, 0));
}

#[test]
fn a_tombstone_is_confirmed_only_when_every_peer_holds_it() {
    let mut sweep = Sweep::plan(vec![cand(1, 10), cand(2, 20)], BTreeMap::new(), 2, 0, 100);
    assert_eq!(sweep.request().ask.len(), 2);
    sweep.on_reply(&Reply {
        held: vec![true, true],
        purged: vec![],
    });
    sweep.on_reply(&Reply {
        held: vec![true, false],
        purged: vec![],
    });
    let out = sweep.finish(50);
    assert_eq!(
        out.confirm,
        vec![(
            vec![1],
            Confirmed {
                digest: 10,
                at_ms: 50
            }
        )]
    );
    assert!(out.purge.is_empty());
}

#[test]
fn a_confirmed_tombstone_is_purged_after_the_grace_and_only_where_all_peers_purged() {
    let records: BTreeMap<_, _> = [
        (
            vec![1],
            Confirmed {
                digest: 10,
                at_ms: 0,
            },
        ),
        (
            vec![2],
            Confirmed {
                digest: 20,
                at_ms: 0,
            },
        ),
        // Confirmed too recently.
        (
            vec![3],
            Confirmed {
                digest: 30,
                at_ms: 50,
            },
        ),
        // The key changed since it was confirmed: ask again.
        (
            vec![4],
            Confirmed {
                digest: 41,
                at_ms: 0,
            },
        ),
        // The key is no longer a dead one here.
        (
            vec![5],
            Confirmed {
                digest: 50,
                at_ms: 0,
            },
        ),
    ]
    .into_iter()
    .collect();
    let dead = vec![cand(1, 10), cand(2, 20), cand(3, 30), cand(4, 40)];
    let mut sweep = Sweep::plan(dead, records, 1, 100, 100);
    assert_eq!(sweep.request().purge, vec![cand(1, 10), cand(2, 20)]);
    assert_eq!(sweep.request().ask, vec![cand(4, 40)]);
    sweep.on_reply(&Reply {
        held: vec![true],
        purged: vec![true, false],
    });
    let out = sweep.finish(100);
    assert_eq!(out.purge, vec![cand(1, 10)]);
    assert_eq!(out.forget, vec![vec![5]]);
    assert_eq!(out.confirm.len(), 1);
}

#[test]
fn a_reply_of_the_wrong_shape_confirms_nothing() {
    let mut sweep = Sweep::plan(vec![cand(1, 10)], BTreeMap::new(), 1, 0, 0);
    sweep.on_reply(&Reply {
        held: vec![true, true],
        purged: vec![],
    });
    assert!(sweep.finish(0).confirm.is_empty());
}

#[test]
fn a_replica_answers_by_digest_and_purges_only_the_state_asked_about() {
    let stored: BTreeMap<Vec<u8>, Vec<u8>> =
        [(vec![1], b"tomb".to_vec()), (vec![2], b"newer".to_vec())]
            .into_iter()
            .collect();
    let request = Request {
        ask: vec![
            cand(1, digest(b"tomb")),
            cand(2, digest(b"tomb")),
            cand(3, 1),
        ],
        purge: vec![cand(1, digest(b"tomb"))],
    };
    let mut purged = Vec::new();
    let reply = answer::<()>(
        &request,
        |k| Ok(stored.get(k).cloned()),
        |c| {
            purged.push(c.storage_key.clone());
            Ok(true)
        },
    )
    .unwrap();
    assert_eq!(reply.held, vec![true, false, false]);
    assert_eq!(reply.purged, vec![true]);
    assert_eq!(purged, vec![vec![1]]);
}

#[test]
fn confirmations_round_trip_their_encoding() {
    let c = Confirmed {
        digest: 0xdead_beef,
        at_ms: 1_700_000_000_000,
    };
    assert_eq!(Confirmed::decode(&c.encode()), Some(c));
    assert_eq!(Confirmed::decode(&[1, 2, 3]), None);
}
