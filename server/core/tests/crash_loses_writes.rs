//! A node that stops uncleanly may lose its last unsynced writes, and with them the counters
//! it minted, after peers already received some of those dots. These tests replay that crash
//! against the DVVSet and check that restarting under a new incarnation (a new actor) keeps
//! every dot naming exactly one value, so replica sync stays a join.

use meridian_core::dvv::Dot;
use meridian_core::{ActorId, CausalContext, DvvSet};
use proptest::prelude::*;
use std::collections::BTreeMap;

const NODE_A: [u8; 16] = [0xaa; 16];
const NODE_B: [u8; 16] = [0xbb; 16];

#[derive(Debug, Clone)]
struct Scenario {
    /// Writes at A before the crash; `true` writes with A's current context.
    before: Vec<bool>,
    /// After which writes A's state was shipped to B.
    shipped: Vec<bool>,
    /// How many of A's last writes the crash loses.
    lost: usize,
    /// Writes at A after the restart.
    after: Vec<bool>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1usize..12)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec(any::<bool>(), n),
                proptest::collection::vec(any::<bool>(), n),
                0..=n,
                proptest::collection::vec(any::<bool>(), 1..8),
            )
        })
        .prop_map(|(before, shipped, lost, after)| Scenario {
            before,
            shipped,
            lost,
            after,
        })
}

/// Runs the scenario; `bump` says whether A restarts under a new incarnation. Returns every
/// (dot, value) pair any state ever held, and the final states of A and B.
fn run(s: &Scenario, bump: bool) -> (Vec<(Dot, u32)>, DvvSet<u32>, DvvSet<u32>) {
    let mut seen = Vec::new();
    let record = |set: &DvvSet<u32>, seen: &mut Vec<(Dot, u32)>| {
        seen.extend(set.dotted_values().map(|(d, v)| (d, *v)));
    };
    let actor0 = ActorId::for_incarnation(NODE_A, 0);
    let mut a = DvvSet::new();
    let mut b: DvvSet<u32> = DvvSet::new();
    let mut history = vec![a.clone()];
    let mut value = 0u32;
    for (i, with_ctx) in s.before.iter().enumerate() {
        value += 1;
        let ctx = if *with_ctx {
            a.join()
        } else {
            CausalContext::empty()
        };
        a = a.update(&ctx, actor0, value, 0).expect("counter space").0;
        record(&a, &mut seen);
        history.push(a.clone());
        if s.shipped[i] {
            b = b.sync(&a);
            record(&b, &mut seen);
        }
    }
    // The crash: A's durable state is what it had before its last `lost` writes.
    a = history[history.len() - 1 - s.lost].clone();
    let actor1 = if bump {
        ActorId::for_incarnation(NODE_A, 1)
    } else {
        actor0
    };
    for with_ctx in &s.after {
        value += 1;
        let ctx = if *with_ctx {
            a.join()
        } else {
            CausalContext::empty()
        };
        a = a.update(&ctx, actor1, value, 0).expect("counter space").0;
        record(&a, &mut seen);
    }
    let _ = NODE_B;
    (seen, a, b)
}

fn one_value_per_dot(seen: &[(Dot, u32)]) -> Result<(), String> {
    let mut by_dot: BTreeMap<Dot, u32> = BTreeMap::new();
    for (dot, v) in seen {
        if let Some(prev) = by_dot.insert(*dot, *v)
            && prev != *v
        {
            return Err(format!("dot {dot:?} names both {prev} and {v}"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// With a new incarnation after the crash, no dot is ever reused, and sync of the two
    /// replicas is still commutative and keeps every write that was not superseded.
    #[test]
    fn a_new_incarnation_never_reuses_a_dot(s in scenario()) {
        let (seen, a, b) = run(&s, true);
        prop_assert!(one_value_per_dot(&seen).is_ok(), "{:?}", one_value_per_dot(&seen));
        prop_assert_eq!(a.sync(&b), b.sync(&a));
        let merged = a.sync(&b);
        // Every write B received before the crash and A never superseded survives.
        for (dot, v) in b.dotted_values() {
            if !a.covers(dot) {
                prop_assert!(merged.dotted_values().any(|(d, w)| d == dot && w == v));
            }
        }
    }
}

/// The test above can fail: reusing the actor after losing shipped writes mints a dot that B
/// already holds for another value, and sync is then no longer commutative.
#[test]
fn reusing_the_actor_after_a_crash_breaks_the_join() {
    let s = Scenario {
        before: vec![false, false],
        shipped: vec![false, true],
        lost: 1,
        after: vec![false],
    };
    let (seen, a, b) = run(&s, false);
    assert!(one_value_per_dot(&seen).is_err());
    assert_ne!(a.sync(&b), b.sync(&a));
    let (seen, a, b) = run(&s, true);
    assert!(one_value_per_dot(&seen).is_ok());
    assert_eq!(a.sync(&b), b.sync(&a));
}
