//! The `crdts` crate as a reference model.
//!
//! Our types are built for deltas that arrive in any order (see the module doc of
//! [`super`]), but what a reader sees must be what the well-known designs show: a PN-counter,
//! an add-wins OR-set (Orswot), a multi-value register, a last-writer-wins register, a map
//! of OR-sets, and the enable-wins flag, which is an OR-set of one element. These tests run
//! the same random history of local operations and whole-state syncs on three replicas of
//! ours and of the crate's, and compare every replica's value after every step.
//!
//! The last test records why the crate's types are not used as they are: its add carries
//! one dot and is dropped when a later dot of the same actor got there first.

use super::*;
use crdts::{CmRDT, CvRDT, LWWReg, MVReg, Map, Orswot, PNCounter};
use proptest::prelude::*;

type Elem = Vec<u8>;

fn actor(i: usize) -> ActorId {
    ActorId([i as u8 + 1; 16])
}

fn bytes(e: &[u8]) -> ByteBuf {
    ByteBuf::from(e.to_vec())
}

/// The crate's counterpart of one of our replicas.
#[derive(Clone)]
enum Reference {
    Counter(PNCounter<usize>),
    Set(Orswot<Elem, usize>),
    Flag(Orswot<(), usize>),
    MvRegister(MVReg<Elem, usize>),
    Register(LWWReg<Option<Elem>, (u64, usize)>),
}

impl Reference {
    fn new(kind: CrdtKind) -> Self {
        match kind {
            CrdtKind::Counter => Self::Counter(PNCounter::new()),
            CrdtKind::Set => Self::Set(Orswot::new()),
            CrdtKind::Flag => Self::Flag(Orswot::new()),
            CrdtKind::MvRegister => Self::MvRegister(MVReg::new()),
            CrdtKind::Register => Self::Register(LWWReg {
                val: None,
                marker: (0, 0),
            }),
            CrdtKind::Map => unreachable!("maps are compared in their own test"),
        }
    }

    /// Applies our operation as the crate would, with the replica's whole context.
    fn apply(&mut self, op: &Op, at: usize, hlc: u64) {
        match (self, op) {
            (Self::Counter(c), Op::Increment(n)) => {
                let op = if *n >= 0 {
                    c.inc_many(at, n.unsigned_abs())
                } else {
                    c.dec_many(at, n.unsigned_abs())
                };
                c.apply(op);
            }
            (Self::Set(s), Op::Add(es)) => {
                let ctx = s.read_ctx().derive_add_ctx(at);
                s.apply(s.add_all(es.iter().map(|e| e.to_vec()), ctx));
            }
            (Self::Set(s), Op::Remove(es)) => {
                let ctx = s.read_ctx().derive_rm_ctx();
                s.apply(s.rm_all(es.iter().map(|e| e.to_vec()), ctx));
            }
            (Self::Flag(f), Op::Enable) => {
                let ctx = f.read_ctx().derive_add_ctx(at);
                f.apply(f.add((), ctx));
            }
            (Self::Flag(f), Op::Disable) => {
                let ctx = f.read_ctx().derive_rm_ctx();
                f.apply(f.rm((), ctx));
            }
            (Self::MvRegister(r), Op::Assign(v)) => {
                let ctx = r.read_ctx().derive_add_ctx(at);
                r.apply(r.write(v.to_vec(), ctx));
            }
            (Self::Register(r), Op::Assign(v)) => r.update(Some(v.to_vec()), (hlc, at)),
            (_, op) => panic!("no reference for {op:?}"),
        }
    }

    fn merge(&mut self, other: &Self) {
        match (self, other.clone()) {
            (Self::Counter(a), Self::Counter(b)) => a.merge(b),
            (Self::Set(a), Self::Set(b)) => a.merge(b),
            (Self::Flag(a), Self::Flag(b)) => a.merge(b),
            (Self::MvRegister(a), Self::MvRegister(b)) => a.merge(b),
            (Self::Register(a), Self::Register(b)) => a.merge(b),
            _ => panic!("replicas of different kinds"),
        }
    }

    /// The value as ours shows it: elements sorted.
    fn value(&self) -> Value {
        let sorted = |it: &mut dyn Iterator<Item = Elem>| {
            let mut v: Vec<ByteBuf> = it.map(ByteBuf::from).collect();
            v.sort();
            v.dedup();
            v
        };
        match self {
            Self::Counter(c) => Value::Counter(c.read().to_string().parse().expect("fits i64")),
            Self::Set(s) => Value::Set(sorted(&mut s.read().val.into_iter())),
            Self::Flag(f) => Value::Flag(f.contains(&()).val),
            Self::MvRegister(r) => Value::MvRegister(sorted(&mut r.read().val.into_iter())),
            Self::Register(r) => Value::Register(r.val.clone().map(ByteBuf::from)),
        }
    }
}

fn elems() -> impl Strategy<Value = Vec<ByteBuf>> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "c"]).prop_map(|e| bytes(e.as_bytes())),
        1..3,
    )
}

fn op(kind: CrdtKind) -> BoxedStrategy<Op> {
    match kind {
        CrdtKind::Counter => (-1_000i64..1_000).prop_map(Op::Increment).boxed(),
        CrdtKind::Set => {
            prop_oneof![elems().prop_map(Op::Add), elems().prop_map(Op::Remove)].boxed()
        }
        CrdtKind::Flag => prop_oneof![Just(Op::Enable), Just(Op::Disable)].boxed(),
        CrdtKind::Register | CrdtKind::MvRegister => prop::sample::select(vec!["x", "y", "z"])
            .prop_map(|v| Op::Assign(bytes(v.as_bytes())))
            .boxed(),
        CrdtKind::Map => unreachable!("maps are compared in their own test"),
    }
}

/// The kinds the crate models soundly; its map is not (see the last test).
const REFERENCED: [CrdtKind; 5] = [
    CrdtKind::Counter,
    CrdtKind::Set,
    CrdtKind::Flag,
    CrdtKind::Register,
    CrdtKind::MvRegister,
];

#[derive(Debug, Clone)]
enum Step {
    Op(usize, Op),
    Sync(usize, usize),
}

fn kind_and_history() -> impl Strategy<Value = (CrdtKind, Vec<Step>)> {
    prop::sample::select(REFERENCED.to_vec()).prop_flat_map(|kind| {
        let step = prop_oneof![
            3 => (0..3usize, op(kind)).prop_map(|(i, op)| Step::Op(i, op)),
            1 => (0..3usize, 0..3usize).prop_map(|(i, j)| Step::Sync(i, j)),
        ];
        (Just(kind), prop::collection::vec(step, 1..32))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_replica_reads_what_the_crates_types_read((kind, steps) in kind_and_history()) {
        let mut ours = vec![Crdt::new(kind); 3];
        let mut theirs = vec![Reference::new(kind); 3];
        for (n, step) in steps.iter().enumerate() {
            let hlc = n as u64 + 1;
            match step {
                Step::Op(i, op) => {
                    let (next, _) = ours[*i]
                        .apply(std::slice::from_ref(op), actor(*i), hlc, None)
                        .expect("op applies");
                    ours[*i] = next;
                    theirs[*i].apply(op, *i, hlc);
                }
                Step::Sync(i, j) => {
                    ours[*i] = ours[*i].join(&ours[*j]).expect("same kind");
                    let other = theirs[*j].clone();
                    theirs[*i].merge(&other);
                }
            }
            for (r, (o, t)) in ours.iter().zip(&theirs).enumerate() {
                prop_assert_eq!(o.value(), t.value(), "replica {} after step {} ({:?})", r, n, step);
            }
        }
    }
}

#[test]
fn an_add_overtaken_by_a_later_one_is_lost_by_the_crates_op_but_not_by_our_delta() {
    let x = || b"x".to_vec();
    let y = || b"y".to_vec();
    // Theirs: replica 0 adds x, then y; replica 1 receives the second op first.
    let mut origin: Orswot<Elem, usize> = Orswot::new();
    let first = origin.add(x(), origin.read_ctx().derive_add_ctx(0));
    origin.apply(first.clone());
    let second = origin.add(y(), origin.read_ctx().derive_add_ctx(0));
    origin.apply(second.clone());
    let mut late: Orswot<Elem, usize> = Orswot::new();
    late.apply(second);
    late.apply(first);
    assert_eq!(
        late.read().val.len(),
        1,
        "the crate drops the overtaken add"
    );

    // Ours: the same two deltas in the same wrong order.
    let origin = Crdt::new(CrdtKind::Set);
    let (origin, first) = origin
        .apply(&[Op::Add(vec![bytes(&x())])], actor(0), 1, None)
        .unwrap();
    let (_, second) = origin
        .apply(&[Op::Add(vec![bytes(&y())])], actor(0), 2, None)
        .unwrap();
    let late = Crdt::new(CrdtKind::Set)
        .join(&second)
        .unwrap()
        .join(&first)
        .unwrap();
    assert_eq!(late.value(), Value::Set(vec![bytes(&x()), bytes(&y())]));
}

#[test]
fn a_stale_copy_joined_into_a_map_revives_a_removed_field_in_the_crate_but_not_in_ours() {
    // Replica 0 adds c to field p; replica 2 copies replica 0; replica 0 removes the field,
    // then removes a (absent) from the field again. Replica 2's copy is older than replica 0
    // in every respect, so joining it into replica 0 must change nothing.
    type RefMap = Map<String, Orswot<Elem, usize>, usize>;
    let mut r0: RefMap = Map::new();
    let add = r0.update("p", r0.read_ctx().derive_add_ctx(0), |s, ctx| {
        s.add(b"c".to_vec(), ctx)
    });
    r0.apply(add);
    let stale = r0.clone();
    r0.apply(r0.rm("p", r0.read_ctx().derive_rm_ctx()));
    let rm = r0.update("p", r0.read_ctx().derive_add_ctx(0), |s, ctx| {
        s.rm(b"a".to_vec(), crdts::ctx::RmCtx { clock: ctx.clock })
    });
    r0.apply(rm);
    let before = r0.get(&"p".to_string()).val.map(|s| s.read().val);
    assert!(before.is_none_or(|s| s.is_empty()));
    r0.merge(stale);
    let after = r0.get(&"p".to_string()).val.map(|s| s.read().val);
    assert_eq!(
        after.map(|s| s.len()),
        Some(1),
        "the crate's join brings c back"
    );

    let p = Field::new("p", CrdtKind::Set);
    let update = |op| Op::Update {
        field: p.clone(),
        op: Box::new(op),
    };
    let r0 = Crdt::new(CrdtKind::Map);
    let (r0, _) = r0
        .apply(&[update(Op::Add(vec![bytes(b"c")]))], actor(0), 1, None)
        .unwrap();
    let stale = r0.clone();
    let (r0, _) = r0
        .apply(&[Op::RemoveField(p.clone())], actor(0), 2, None)
        .unwrap();
    let (r0, _) = r0
        .apply(&[update(Op::Remove(vec![bytes(b"a")]))], actor(0), 3, None)
        .unwrap();
    assert_eq!(r0.value(), Value::Map(BTreeMap::new()));
    assert_eq!(r0.join(&stale).unwrap(), r0);
}
