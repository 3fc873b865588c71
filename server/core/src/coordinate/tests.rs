use super::*;
use crate::lww::LwwRegister;
use crate::quorum::Slot;
use crate::version::Version;

fn id(n: u8) -> ActorId {
    ActorId([n; 16])
}

fn dc(name: &str, replicas: &[(u8, bool)], spares: &[u8]) -> DcReplicas {
    DcReplicas {
        dc: name.into(),
        replicas: replicas
            .iter()
            .map(|(n, alive)| Slot {
                node: id(*n),
                alive: *alive,
            })
            .collect(),
        spares: spares.iter().map(|n| id(*n)).collect(),
    }
}

fn timing() -> Timing {
    Timing::with_deadline(900)
}

fn sends<R>(effects: &[Effect<R>]) -> Vec<(CallId, ActorId, Message)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { call, to, message } => Some((*call, *to, message.clone())),
            _ => None,
        })
        .collect()
}

fn hints<R>(effects: &[Effect<R>]) -> Vec<ActorId> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::KeepHint { target } => Some(*target),
            _ => None,
        })
        .collect()
}

fn reply<R: Clone>(effects: &[Effect<R>]) -> Option<R> {
    effects.iter().find_map(|e| match e {
        Effect::Reply(r) => Some(r.clone()),
        _ => None,
    })
}

fn write(dcs: Vec<DcReplicas>, level: Consistency) -> WriteCoordinator {
    WriteCoordinator::new(
        id(1),
        "dc1",
        level,
        0,
        dcs.clone(),
        vec![dcs],
        false,
        timing(),
    )
    .expect("satisfiable")
}

fn call_to(s: &[(CallId, ActorId, Message)], node: u8) -> CallId {
    s.iter()
        .find(|(_, to, _)| *to == id(node))
        .map(|(c, _, _)| *c)
        .expect("a call to that node")
}

#[test]
fn a_quorum_write_answers_at_the_second_copy_and_keeps_going_for_the_third() {
    let mut w = write(
        vec![dc("dc1", &[(1, true), (2, true), (3, true)], &[])],
        Consistency::Quorum,
    );
    let out = w.start();
    let s = sends(&out);
    assert_eq!(s.len(), 2);
    assert_eq!(reply(&out), None);
    let out = w.on_answer(call_to(&s, 2), Answer::Stored);
    assert_eq!(reply(&out), Some(Ok(())));
    assert!(!w.finished(), "the call to node 3 is still out");
    // A late failure still leaves a hint behind: the write must reach node 3 eventually.
    let out = w.on_answer(call_to(&s, 3), Answer::Failed);
    assert_eq!(hints(&out), vec![id(3)]);
    assert!(w.finished());
}

#[test]
fn a_failed_replica_gets_a_stand_in_that_counts() {
    let mut w = write(
        vec![dc("dc1", &[(1, true), (2, true), (3, true)], &[4])],
        Consistency::All,
    );
    let s = sends(&w.start());
    let out = w.on_answer(call_to(&s, 2), Answer::Failed);
    let standin = sends(&out);
    assert_eq!(
        standin
            .iter()
            .map(|(_, to, m)| (*to, m.clone()))
            .collect::<Vec<_>>(),
        vec![(
            id(4),
            Message::Replicate {
                hint_for: Some(id(2))
            }
        )]
    );
    assert!(hints(&out).is_empty());
    assert_eq!(reply(&w.on_answer(call_to(&s, 3), Answer::Stored)), None);
    assert_eq!(
        reply(&w.on_answer(standin[0].0, Answer::Stored)),
        Some(Ok(()))
    );
}

#[test]
fn a_slow_replica_is_replaced_in_time_and_whichever_lands_first_counts_once() {
    let mut w = write(
        vec![dc("dc1", &[(1, true), (2, true), (3, true)], &[4])],
        Consistency::All,
    );
    let s = sends(&w.start());
    w.on_answer(call_to(&s, 3), Answer::Stored);
    assert_eq!(w.next_timer(), Some(300));
    let out = w.on_timer(300);
    let standin = sends(&out);
    assert_eq!(standin.len(), 1, "one stand-in, for the slow node 2");
    assert_eq!(standin[0].1, id(4));
    let out = w.on_answer(standin[0].0, Answer::Stored);
    assert_eq!(reply(&out), Some(Ok(())), "answered before the deadline");
    // Node 2 answers late: counted already, nothing more to do, no hint needed.
    let out = w.on_answer(call_to(&s, 2), Answer::Stored);
    assert!(out.is_empty());
    assert!(w.finished());
}

#[test]
fn when_every_attempt_fails_the_write_fails_and_hints_remain() {
    let mut w = write(
        vec![dc("dc1", &[(1, true), (2, true), (3, true)], &[])],
        Consistency::Quorum,
    );
    let s = sends(&w.start());
    w.on_answer(call_to(&s, 2), Answer::Failed);
    let out = w.on_answer(call_to(&s, 3), Answer::Failed);
    assert!(matches!(
        reply(&out),
        Some(Err(CoreError::Unavailable { .. }))
    ));
    assert_eq!(hints(&out), vec![id(3)]);
}

#[test]
fn the_deadline_fails_a_write_whose_replicas_never_answer() {
    let mut w = write(
        vec![dc("dc1", &[(1, true), (2, true), (3, true)], &[])],
        Consistency::All,
    );
    w.start();
    assert!(w.on_timer(299).is_empty());
    let out = w.on_timer(900);
    assert!(matches!(
        reply(&out),
        Some(Err(CoreError::Unavailable { .. }))
    ));
    assert_eq!(w.next_timer(), None);
}

#[test]
fn a_local_level_queues_the_remote_share_on_the_stream_and_sends_it_nothing() {
    let dcs = vec![
        dc("dc1", &[(1, true)], &[]),
        dc("dc2", &[(5, true), (6, true)], &[]),
    ];
    let mut w = write(dcs, Consistency::LocalOne);
    let out = w.start();
    assert_eq!(
        reply(&out),
        Some(Ok(())),
        "LOCAL_ONE is met by the coordinator"
    );
    assert!(sends(&out).is_empty());
    assert!(out.contains(&Effect::Stream { dc: "dc2".into() }));
    assert!(w.finished());
}

#[test]
fn a_relay_that_stored_nowhere_leaves_hints_for_the_whole_remote_dc() {
    let dcs = vec![
        dc("dc1", &[(1, true)], &[]),
        dc("dc2", &[(5, true), (6, true)], &[]),
    ];
    let mut w = write(dcs, Consistency::All);
    let out = w.start();
    let s = sends(&out);
    assert_eq!(s[0].2, Message::Relay { wait_for: 2 });
    let out = w.on_answer(s[0].0, Answer::Relayed(vec![]));
    assert_eq!(hints(&out), vec![id(5), id(6)]);
    assert!(matches!(reply(&out), Some(Err(_))));
    assert!(w.finished());
}

#[test]
fn a_quorum_across_dcs_counts_the_nodes_a_relay_names() {
    let dcs = vec![
        dc("dc1", &[(1, true)], &[]),
        dc("dc2", &[(5, true), (6, true)], &[]),
    ];
    let mut w = write(dcs, Consistency::All);
    let s = sends(&w.start());
    assert_eq!(s[0].2, Message::Relay { wait_for: 2 });
    let out = w.on_answer(s[0].0, Answer::Relayed(vec![(id(5), false)]));
    assert!(
        matches!(reply(&out), Some(Err(_))),
        "node 6 was not reported, so ALL fails"
    );
}

#[test]
fn a_relay_answers_once_each_version_has_its_count() {
    let here = dc("dc2", &[(5, true), (6, true), (7, true)], &[]);
    let sets = vec![vec![id(5), id(6), id(7)], vec![id(5), id(7), id(8)]];
    let mut r = RelayCoordinator::new(id(5), here, sets, 2, false, timing());
    let out = r.start(true);
    assert_eq!(reply(&out), None);
    let s = sends(&out);
    assert_eq!(s.len(), 2);
    let out = r.on_answer(call_to(&s, 6), Answer::Stored);
    assert_eq!(reply(&out), None, "version 2 has only node 5 so far");
    let out = r.on_answer(call_to(&s, 7), Answer::Stored);
    let acked = reply(&out).expect("answered");
    assert_eq!(acked.len(), 3);
}

fn object(ts: u64) -> StoredObject {
    StoredObject::Lww(LwwRegister {
        actor: id(9),
        version: Version {
            data: Some(vec![ts as u8]),
            request_id: [ts as u8; 16],
            timestamp: ts,
        },
        recent: Vec::new(),
    })
}

#[test]
fn a_read_replaces_a_failed_replica_and_repairs_the_stale_one() {
    let dcs = vec![dc("dc1", &[(1, true), (2, true), (3, true)], &[])];
    let mut r =
        ReadCoordinator::new(id(1), "dc1", Consistency::Quorum, 0, &dcs, false, timing()).unwrap();
    assert!(!r.local_only());
    let s = sends(&r.start());
    assert_eq!(s.len(), 2);
    let out = r.on_answer(call_to(&s, 2), Answer::Failed);
    let more = sends(&out);
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].1, id(3));
    assert_eq!(
        reply(&r.on_answer(call_to(&s, 1), Answer::State(Some(object(1))))),
        None
    );
    let out = r.on_answer(more[0].0, Answer::State(Some(object(2))));
    assert_eq!(reply(&out), Some(Ok(Some(object(2)))));
    assert!(out.contains(&Effect::Repair {
        to: id(1),
        object: object(2)
    }));
    assert!(r.finished());
}

#[test]
fn a_slow_read_asks_the_next_replica_before_the_deadline() {
    let dcs = vec![dc("dc1", &[(1, true), (2, true), (3, true)], &[])];
    let mut r =
        ReadCoordinator::new(id(1), "dc1", Consistency::Quorum, 0, &dcs, false, timing()).unwrap();
    let s = sends(&r.start());
    r.on_answer(call_to(&s, 1), Answer::State(None));
    let out = r.on_timer(300);
    let more = sends(&out);
    assert_eq!(more.len(), 1);
    let out = r.on_answer(more[0].0, Answer::State(None));
    assert_eq!(reply(&out), Some(Ok(None)));
    assert!(!r.finished(), "node 2 may still answer and need repair");
    r.on_answer(call_to(&s, 2), Answer::Failed);
    assert!(r.finished());
}

#[test]
fn a_replica_coordinates_and_a_non_replica_forwards_within_its_dc_first() {
    let dcs = vec![
        dc("dc1", &[(2, false), (3, true)], &[]),
        dc("dc2", &[(5, true)], &[]),
    ];
    assert_eq!(
        route_write(&id(3), "dc1", &dcs, Consistency::Quorum),
        Ok(WriteRoute::Coordinate)
    );
    assert_eq!(
        route_write(&id(1), "dc1", &dcs, Consistency::Quorum),
        Ok(WriteRoute::Forward(id(3)))
    );
    let down = vec![dc("dc1", &[(2, false)], &[]), dc("dc2", &[(5, true)], &[])];
    assert_eq!(
        route_write(&id(1), "dc1", &down, Consistency::One),
        Ok(WriteRoute::Forward(id(5)))
    );
    assert!(matches!(
        route_write(&id(1), "dc1", &down, Consistency::LocalQuorum),
        Err(CoreError::NoReplicaReachable { .. })
    ));
}
