use super::*;
use proptest::prelude::*;
use typed::Store;

fn actor(i: u8) -> ActorId {
    ActorId([i + 1; 16])
}

fn bytes(s: &str) -> ByteBuf {
    ByteBuf::from(s.as_bytes().to_vec())
}

fn encode(c: &Crdt) -> Vec<u8> {
    postcard::to_allocvec(c).expect("encodes")
}

/// Applies `ops` at replica `at` of `states`, asserting the delta law on the way.
fn apply(states: &mut [Crdt], at: usize, ops: &[Op], hlc: u64) -> Crdt {
    let (next, delta) = states[at]
        .apply(ops, actor(at as u8), hlc, None)
        .expect("op applies");
    assert_eq!(states[at].join(&delta).expect("same kind"), next);
    states[at] = next;
    delta
}

fn field(name: &str, kind: CrdtKind) -> Field {
    Field::new(name, kind)
}

// ---- semantics ----

#[test]
fn counter_sums_every_actors_increments() {
    let mut r = vec![Crdt::new(CrdtKind::Counter); 2];
    apply(&mut r, 0, &[Op::Increment(5)], 1);
    apply(&mut r, 1, &[Op::Increment(-2), Op::Increment(10)], 2);
    apply(&mut r, 0, &[Op::Increment(1)], 3);
    let merged = r[0].join(&r[1]).unwrap();
    assert_eq!(merged.value(), Value::Counter(14));
    // One entry per actor, whatever the number of increments.
    let Store::Counter(s) = merged.store() else {
        panic!("a counter")
    };
    assert_eq!(s.0.0.len(), 2);
}

#[test]
fn counter_refuses_overflow_and_changes_nothing() {
    let mut r = vec![Crdt::new(CrdtKind::Counter)];
    apply(&mut r, 0, &[Op::Increment(i64::MAX)], 1);
    let err = r[0]
        .apply(&[Op::Increment(1)], actor(0), 2, None)
        .unwrap_err();
    assert_eq!(err, CoreError::CounterOverflow { by: 1 });
    assert!(err.to_string().contains("64-bit"));
    assert_eq!(r[0].value(), Value::Counter(i64::MAX));
}

#[test]
fn concurrent_add_wins_over_remove() {
    let mut r = vec![Crdt::new(CrdtKind::Set); 2];
    let d = apply(&mut r, 0, &[Op::Add(vec![bytes("x"), bytes("y")])], 1);
    r[1] = r[1].join(&d).unwrap();
    // Replica 1 removes x while replica 0 adds it again: the unseen add survives.
    apply(&mut r, 1, &[Op::Remove(vec![bytes("x"), bytes("y")])], 2);
    apply(&mut r, 0, &[Op::Add(vec![bytes("x")])], 3);
    let merged = r[0].join(&r[1]).unwrap();
    assert_eq!(merged.value(), Value::Set(vec![bytes("x")]));
}

#[test]
fn remove_with_a_read_context_spares_adds_the_read_did_not_see() {
    let mut r = vec![Crdt::new(CrdtKind::Set)];
    apply(&mut r, 0, &[Op::Add(vec![bytes("a")])], 1);
    let read = r[0].context().clone();
    // Another client adds `a` again after the read.
    apply(&mut r, 0, &[Op::Add(vec![bytes("a")])], 2);
    let (after, _) = r[0]
        .apply(&[Op::Remove(vec![bytes("a")])], actor(0), 3, Some(&read))
        .unwrap();
    assert_eq!(after.value(), Value::Set(vec![bytes("a")]));
    let (after, _) = r[0]
        .apply(&[Op::Remove(vec![bytes("a")])], actor(0), 3, None)
        .unwrap();
    assert_eq!(after.value(), Value::Set(vec![]));
}

#[test]
fn flag_enable_wins() {
    let mut r = vec![Crdt::new(CrdtKind::Flag); 2];
    let d = apply(&mut r, 0, &[Op::Enable], 1);
    r[1] = r[1].join(&d).unwrap();
    apply(&mut r, 1, &[Op::Disable], 2);
    assert_eq!(r[1].value(), Value::Flag(false));
    apply(&mut r, 0, &[Op::Enable], 3);
    assert_eq!(r[0].join(&r[1]).unwrap().value(), Value::Flag(true));
}

#[test]
fn registers_lww_shows_the_latest_and_mv_shows_all_concurrent() {
    for kind in [CrdtKind::Register, CrdtKind::MvRegister] {
        let mut r = vec![Crdt::new(kind); 2];
        apply(&mut r, 0, &[Op::Assign(bytes("early"))], 10);
        apply(&mut r, 1, &[Op::Assign(bytes("late"))], 20);
        let merged = r[0].join(&r[1]).unwrap();
        let want = if kind == CrdtKind::Register {
            Value::Register(Some(bytes("late")))
        } else {
            Value::MvRegister(vec![bytes("early"), bytes("late")])
        };
        assert_eq!(merged.value(), want);
        // An assignment that saw both replaces both.
        let (next, _) = merged
            .apply(&[Op::Assign(bytes("one"))], actor(0), 30, None)
            .unwrap();
        let want = if kind == CrdtKind::Register {
            Value::Register(Some(bytes("one")))
        } else {
            Value::MvRegister(vec![bytes("one")])
        };
        assert_eq!(next.value(), want);
    }
    // The same value assigned concurrently shows once.
    let mut r = vec![Crdt::new(CrdtKind::MvRegister); 2];
    apply(&mut r, 0, &[Op::Assign(bytes("same"))], 10);
    apply(&mut r, 1, &[Op::Assign(bytes("same"))], 20);
    let merged = r[0].join(&r[1]).unwrap();
    assert_eq!(merged.value(), Value::MvRegister(vec![bytes("same")]));
}

#[test]
fn map_update_beats_concurrent_remove_and_nested_maps_merge() {
    let cart = field("cart", CrdtKind::Set);
    let visits = field("visits", CrdtKind::Counter);
    let prefs = field("prefs", CrdtKind::Map);
    let dark = field("dark", CrdtKind::Flag);
    let lang = field("lang", CrdtKind::Register);
    let upd = |f: &Field, op: Op| Op::Update {
        field: f.clone(),
        op: Box::new(op),
    };
    let mut r = vec![Crdt::new(CrdtKind::Map); 2];
    let d = apply(
        &mut r,
        0,
        &[
            upd(&cart, Op::Add(vec![bytes("apple")])),
            upd(&visits, Op::Increment(1)),
        ],
        1,
    );
    r[1] = r[1].join(&d).unwrap();
    // dc2 removes the cart while dc1 adds to it; both edit the nested map.
    apply(&mut r, 1, &[Op::RemoveField(cart.clone())], 2);
    apply(&mut r, 1, &[upd(&prefs, upd(&dark, Op::Enable))], 2);
    apply(&mut r, 0, &[upd(&cart, Op::Add(vec![bytes("pear")]))], 3);
    apply(
        &mut r,
        0,
        &[upd(&prefs, upd(&lang, Op::Assign(bytes("fr"))))],
        3,
    );
    let merged = r[0].join(&r[1]).unwrap();
    let Value::Map(fields) = merged.value() else {
        panic!("a map")
    };
    // The concurrent add survives the remove; the add the remove saw does not.
    assert_eq!(fields[&cart], Value::Set(vec![bytes("pear")]));
    assert_eq!(fields[&visits], Value::Counter(1));
    let Value::Map(p) = &fields[&prefs] else {
        panic!("a nested map")
    };
    assert_eq!(p[&dark], Value::Flag(true));
    assert_eq!(p[&lang], Value::Register(Some(bytes("fr"))));
}

#[test]
fn an_operation_of_another_type_is_refused_with_its_names() {
    let c = Crdt::new(CrdtKind::Counter);
    let err = c
        .apply(&[Op::Add(vec![bytes("x")])], actor(0), 1, None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "operation `add` does not apply to a counter"
    );
    let m = Crdt::new(CrdtKind::Map);
    let bad = Op::Update {
        field: field("n", CrdtKind::Counter),
        op: Box::new(Op::Enable),
    };
    let err = m.apply(&[bad], actor(0), 1, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "operation `enable` does not apply to a counter (field \"n\")"
    );
    // All or nothing: a failing second op leaves the first one unapplied.
    let err = c.apply(&[Op::Increment(1), Op::Enable], actor(0), 1, None);
    assert!(err.is_err());
    assert!(Crdt::new(CrdtKind::Set).join(&c).is_err());
}

#[test]
fn removes_leave_no_tombstones() {
    let mut r = vec![Crdt::new(CrdtKind::Set)];
    let elements: Vec<ByteBuf> = (0..10_000).map(|i| bytes(&format!("e{i:05}"))).collect();
    apply(&mut r, 0, &[Op::Add(elements.clone())], 1);
    apply(&mut r, 0, &[Op::Remove(elements[..1_000].to_vec())], 2);
    let Value::Set(members) = r[0].value() else {
        panic!("a set")
    };
    assert_eq!(members.len(), 9_000);
    // The context is one vector entry; each live element holds one dot.
    assert_eq!(r[0].context().vector().len(), 1);
    assert!(r[0].context().cloud().is_empty());
    // What the 9,000 survivors cost when added alone (their dots are larger numbers, so a
    // few varints are a byte longer): the removes left nothing.
    let mut fresh = vec![Crdt::new(CrdtKind::Set)];
    apply(&mut fresh, 0, &[Op::Add(elements[1_000..].to_vec())], 1);
    let (after, alone) = (encode(&r[0]).len(), encode(&fresh[0]).len());
    assert!(
        after * 100 <= alone * 101,
        "{after} bytes after the removes, {alone} without them"
    );
}

#[test]
fn a_delta_that_overtakes_an_earlier_one_loses_nothing() {
    let mut r = vec![Crdt::new(CrdtKind::Set); 2];
    let first = apply(&mut r, 0, &[Op::Add(vec![bytes("a")])], 1);
    let second = apply(&mut r, 0, &[Op::Add(vec![bytes("b")])], 2);
    r[1] = r[1].join(&second).unwrap();
    assert_eq!(r[1].value(), Value::Set(vec![bytes("b")]));
    assert!(!r[1].context().cloud().is_empty());
    r[1] = r[1].join(&first).unwrap();
    assert_eq!(r[1], r[0]);
    assert!(r[1].context().cloud().is_empty());
}

#[test]
fn one_add_to_a_large_set_makes_a_small_delta() {
    let mut r = vec![Crdt::new(CrdtKind::Set)];
    let elements: Vec<ByteBuf> = (0..100_000).map(|i| bytes(&format!("e{i:06}"))).collect();
    apply(&mut r, 0, &[Op::Add(elements)], 1);
    let delta = apply(&mut r, 0, &[Op::Add(vec![bytes("one more")])], 2);
    assert!(encode(&delta).len() < 100, "{} bytes", encode(&delta).len());
}

// ---- laws ----

const KINDS: [CrdtKind; 6] = CrdtKind::ALL;

fn leaf_op(kind: CrdtKind) -> BoxedStrategy<Op> {
    let elem = prop::sample::select(vec!["a", "b", "c"]).prop_map(bytes);
    match kind {
        CrdtKind::Counter => (-5i64..6).prop_map(Op::Increment).boxed(),
        CrdtKind::Set => prop_oneof![
            prop::collection::vec(elem.clone(), 1..3).prop_map(Op::Add),
            prop::collection::vec(elem, 1..3).prop_map(Op::Remove),
        ]
        .boxed(),
        CrdtKind::Register | CrdtKind::MvRegister => elem.prop_map(Op::Assign).boxed(),
        CrdtKind::Flag => prop_oneof![Just(Op::Enable), Just(Op::Disable)].boxed(),
        CrdtKind::Map => {
            let leaf_field = (
                prop::sample::select(vec!["x", "y"]),
                prop::sample::select(vec![CrdtKind::Counter, CrdtKind::Set, CrdtKind::Flag]),
            )
                .prop_map(|(n, k)| Field::new(n, k));
            let nested = leaf_field.clone().prop_flat_map(|f| {
                leaf_op(f.kind).prop_map(move |op| Op::Update {
                    field: f.clone(),
                    op: Box::new(op),
                })
            });
            let outer = prop::sample::select(vec!["p", "q"]);
            prop_oneof![
                3 => nested.clone(),
                1 => leaf_field.clone().prop_map(Op::RemoveField),
                2 => (outer.clone(), nested).prop_map(|(n, op)| Op::Update {
                    field: Field::new(n, CrdtKind::Map),
                    op: Box::new(op),
                }),
                1 => outer.prop_map(|n| Op::RemoveField(Field::new(n, CrdtKind::Map))),
            ]
            .boxed()
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// Replica i applies an op, with or without the context of replica j's state.
    Op(usize, Op, Option<usize>),
    /// Replica i joins replica j's whole state.
    Sync(usize, usize),
    /// Replica i joins the k-th delta minted so far (mod their number).
    Deliver(usize, usize),
}

fn history(kind: CrdtKind) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        4 => (0..3usize, leaf_op(kind), prop::option::of(0..3usize))
            .prop_map(|(i, op, ctx)| Step::Op(i, op, ctx)),
        1 => (0..3usize, 0..3usize).prop_map(|(i, j)| Step::Sync(i, j)),
        2 => (0..3usize, any::<usize>()).prop_map(|(i, k)| Step::Deliver(i, k)),
    ];
    prop::collection::vec(step, 1..24)
}

/// Runs a history: the replicas' states and every delta minted, in order.
fn run(kind: CrdtKind, steps: &[Step]) -> (Vec<Crdt>, Vec<Crdt>) {
    let mut states = vec![Crdt::new(kind); 3];
    let mut deltas = Vec::new();
    for (t, step) in steps.iter().enumerate() {
        match step {
            Step::Op(i, op, ctx) => {
                let observed = ctx.map(|j| states[j].context().clone());
                match states[*i].apply(
                    std::slice::from_ref(op),
                    actor(*i as u8),
                    t as u64,
                    observed.as_ref(),
                ) {
                    Ok((next, delta)) => {
                        assert_eq!(states[*i].join(&delta).unwrap(), next, "delta law");
                        states[*i] = next;
                        deltas.push(delta);
                    }
                    Err(e) => panic!("{op:?} failed: {e}"),
                }
            }
            Step::Sync(i, j) => states[*i] = states[*i].join(&states[*j]).unwrap(),
            Step::Deliver(i, k) if !deltas.is_empty() => {
                let d = &deltas[k % deltas.len()];
                states[*i] = states[*i].join(d).unwrap();
            }
            Step::Deliver(..) => {}
        }
    }
    (states, deltas)
}

fn kind_and_history() -> impl Strategy<Value = (CrdtKind, Vec<Step>)> {
    prop::sample::select(KINDS.to_vec()).prop_flat_map(|k| (Just(k), history(k)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn join_is_commutative_associative_idempotent_and_canonical((kind, steps) in kind_and_history()) {
        let (states, deltas) = run(kind, &steps);
        let pool: Vec<&Crdt> = states.iter().chain(deltas.iter()).collect();
        for a in &pool {
            prop_assert!(a.is_valid());
            prop_assert_eq!(&a.join(a).unwrap(), *a);
        }
        for a in pool.iter().take(6) {
            for b in pool.iter().take(6) {
                let ab = a.join(b).unwrap();
                let ba = b.join(a).unwrap();
                prop_assert_eq!(encode(&ab), encode(&ba));
                for c in pool.iter().take(4) {
                    prop_assert_eq!(
                        ab.join(c).unwrap(),
                        a.join(&b.join(c).unwrap()).unwrap()
                    );
                }
            }
        }
    }

    #[test]
    fn deltas_in_any_order_equal_the_states_that_made_them(
        (kind, steps) in kind_and_history(),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..64),
    ) {
        let (states, deltas) = run(kind, &steps);
        let all_states = states
            .iter()
            .fold(Crdt::new(kind), |acc, s| acc.join(s).unwrap());
        // Every delta once, in a shuffled order, with random duplicates on top.
        let mut idx: Vec<usize> = (0..deltas.len()).collect();
        if !deltas.is_empty() {
            for (n, i) in order.iter().enumerate() {
                let j = i.index(deltas.len());
                if n < idx.len() {
                    idx.swap(n, j);
                } else {
                    idx.push(j);
                }
            }
        }
        let all_deltas = idx
            .iter()
            .fold(Crdt::new(kind), |acc, &i| acc.join(&deltas[i]).unwrap());
        prop_assert_eq!(all_deltas.value(), all_states.value());
        prop_assert_eq!(encode(&all_deltas), encode(&all_states));
    }
}

#[test]
fn the_encoding_names_each_actor_once_and_refuses_what_no_join_makes() {
    let mut r = vec![Crdt::new(CrdtKind::Set); 3];
    for i in 0..3 {
        apply(&mut r, i, &[Op::Add(vec![bytes(&format!("e{i}"))])], 1);
    }
    let merged = r[0].join(&r[1]).unwrap().join(&r[2]).unwrap();
    let bytes_ = encode(&merged);
    let back: Crdt = postcard::from_bytes(&bytes_).unwrap();
    assert_eq!(back, merged);
    // Three actors of 16 bytes, each named once.
    assert!(bytes_.len() < 3 * 16 + 40, "{} bytes", bytes_.len());
    let obj = crate::object::StoredObject::Crdt(crate::object::CrdtObject {
        state: merged,
        recent: Vec::new(),
    });
    let mut enc = obj.encode();
    assert_eq!(crate::object::StoredObject::decode(&enc).unwrap(), obj);
    // Every truncation or flipped byte is an error or a valid object, never a panic.
    for cut in 0..enc.len() {
        let _ = crate::object::StoredObject::decode(&enc[..cut]);
    }
    for i in 1..enc.len() {
        enc[i] ^= 0x5a;
        if let Ok(crate::object::StoredObject::Crdt(c)) = crate::object::StoredObject::decode(&enc)
        {
            assert!(c.state.is_valid());
        }
        enc[i] ^= 0x5a;
    }
}
