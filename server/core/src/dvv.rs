//! Dotted version vector sets (DVVSet), after Almeida, Baquero, Gonçalves, Preguiça and Fonte,
//! "Scalable and Accurate Causality Tracking for Eventually Consistent Stores" (2014).
//!
//! A DVVSet holds, per actor, a counter `n` and the values that actor wrote that are still
//! live, newest first: the value at index `i` carries the dot `(actor, n - i)`. Every dot of
//! that actor up to `n` that is *not* in the list has been superseded. This packs a key's
//! whole causal history into one entry per server node, however many clients wrote to it.
//!
//! Laws (property-tested in `tests`):
//! - `sync` is commutative, associative and idempotent, so replicas can exchange state in any
//!   order, any number of times, and converge.
//! - `update(ctx, ..)` supersedes exactly the values whose dots `ctx` covers and keeps every
//!   other value as a sibling; an empty context supersedes nothing.
//! - The clock only grows: a dot, once minted, is never minted again for another value.

use crate::actor::ActorId;
use crate::context::CausalContext;
use crate::error::CoreError;
use serde::{Deserialize, Serialize};

/// A single event: the `counter`-th write coordinated by `actor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    pub actor: ActorId,
    pub counter: u64,
}

/// One actor's slice of the set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<V> {
    pub actor: ActorId,
    /// The highest dot of this actor that the set has seen (live or superseded).
    pub counter: u64,
    /// Live values, newest first; `values.len() <= counter` always.
    pub values: Vec<V>,
}

/// A DVVSet: entries sorted by actor, at most one per actor.
///
/// Equal causal states have equal representations (entries sorted, no empty-and-zero
/// entries), so a canonical encoding of two equal sets gives equal bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DvvSet<V> {
    entries: Vec<Entry<V>>,
}

impl<V> Default for DvvSet<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<V: Clone> DvvSet<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a set from decoded entries, checking the invariants an untrusted encoding
    /// could break (order, duplicates, more values than events).
    pub fn from_entries(entries: Vec<Entry<V>>) -> Result<Self, String> {
        let set = Self { entries };
        set.validate()?;
        Ok(set)
    }

    /// Checks the invariants an untrusted encoding could break: order, duplicates, zero
    /// counters, more values than events.
    pub fn validate(&self) -> Result<(), String> {
        for pair in self.entries.windows(2) {
            if pair[0].actor >= pair[1].actor {
                return Err("entries not strictly sorted by actor".into());
            }
        }
        for e in &self.entries {
            if e.counter == 0 {
                return Err(format!("actor {} has a zero counter", e.actor));
            }
            if e.values.len() as u64 > e.counter {
                return Err(format!(
                    "actor {} has {} values but counter {}",
                    e.actor,
                    e.values.len(),
                    e.counter
                ));
            }
        }
        Ok(())
    }

    pub fn entries(&self) -> &[Entry<V>] {
        &self.entries
    }

    /// Number of live values (siblings), tombstones included.
    pub fn len(&self) -> usize {
        self.entries.iter().map(|e| e.values.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live value, in a deterministic order (by actor, newest first).
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().flat_map(|e| e.values.iter())
    }

    /// Every live value with its dot.
    pub fn dotted_values(&self) -> impl Iterator<Item = (Dot, &V)> {
        self.entries.iter().flat_map(|e| {
            e.values.iter().enumerate().map(move |(i, v)| {
                (
                    Dot {
                        actor: e.actor,
                        counter: e.counter - i as u64,
                    },
                    v,
                )
            })
        })
    }

    /// The causal context: everything this set has seen, as a version vector.
    pub fn join(&self) -> CausalContext {
        CausalContext::from_sorted_unchecked(
            self.entries.iter().map(|e| (e.actor, e.counter)).collect(),
        )
    }

    /// Merges two replicas' states: a value survives if neither side has superseded it.
    pub fn sync(&self, other: &Self) -> Self {
        let mut out = Vec::with_capacity(self.entries.len().max(other.entries.len()));
        let (mut i, mut j) = (0, 0);
        while i < self.entries.len() || j < other.entries.len() {
            let a = self.entries.get(i);
            let b = other.entries.get(j);
            match (a, b) {
                (Some(a), Some(b)) if a.actor == b.actor => {
                    out.push(merge_entry(a, b));
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a.actor < b.actor => {
                    out.push(a.clone());
                    i += 1;
                }
                (Some(_), Some(b)) => {
                    out.push(b.clone());
                    j += 1;
                }
                (Some(a), None) => {
                    out.push(a.clone());
                    i += 1;
                }
                (None, Some(b)) => {
                    out.push(b.clone());
                    j += 1;
                }
                (None, None) => break,
            }
        }
        Self { entries: out }
    }

    /// Drops the values `context` covers and raises counters to it: what a replica does with
    /// the context a client read before it mints the client's new value.
    pub fn discard(&self, context: &CausalContext) -> Self {
        let mut out = Vec::with_capacity(self.entries.len() + context.len());
        let ctx = context.entries();
        let (mut i, mut j) = (0, 0);
        while i < self.entries.len() || j < ctx.len() {
            match (self.entries.get(i), ctx.get(j)) {
                (Some(e), Some(&(actor, seen))) if e.actor == actor => {
                    let kept = e.counter.saturating_sub(seen).min(e.values.len() as u64) as usize;
                    out.push(Entry {
                        actor,
                        counter: e.counter.max(seen),
                        values: e.values[..kept].to_vec(),
                    });
                    i += 1;
                    j += 1;
                }
                (Some(e), Some(&(actor, _))) if e.actor < actor => {
                    out.push(e.clone());
                    i += 1;
                }
                (Some(_), Some(&(actor, seen))) | (None, Some(&(actor, seen))) => {
                    if seen > 0 {
                        out.push(Entry {
                            actor,
                            counter: seen,
                            values: Vec::new(),
                        });
                    }
                    j += 1;
                }
                (Some(e), None) => {
                    out.push(e.clone());
                    i += 1;
                }
                (None, None) => break,
            }
        }
        Self { entries: out }
    }

    /// Records a new value minted by `actor`, newer than everything the set has seen from it.
    ///
    /// Counters grow with checked arithmetic: a counter at `u64::MAX` cannot mint again, and
    /// says so instead of wrapping to a dot that was used long ago.
    pub fn event(&mut self, actor: ActorId, value: V) -> Result<Dot, CoreError> {
        match self.entries.binary_search_by(|e| e.actor.cmp(&actor)) {
            Ok(idx) => {
                let e = &mut self.entries[idx];
                let counter = e
                    .counter
                    .checked_add(1)
                    .ok_or(CoreError::ClockOverflow { actor })?;
                e.counter = counter;
                e.values.insert(0, value);
                Ok(Dot { actor, counter })
            }
            Err(idx) => {
                self.entries.insert(
                    idx,
                    Entry {
                        actor,
                        counter: 1,
                        values: vec![value],
                    },
                );
                Ok(Dot { actor, counter: 1 })
            }
        }
    }

    /// A client write at the replica `actor`: supersede what `context` covers, keep the rest
    /// as siblings, and add `value` under a fresh dot.
    ///
    /// `fresh` is where `actor`'s counter starts when this set has no entry for it yet (see
    /// [`DvvSet::event_from`]); a stale context cannot lower it.
    pub fn update(
        &self,
        context: &CausalContext,
        actor: ActorId,
        value: V,
        fresh: u64,
    ) -> Result<(Self, Dot), CoreError> {
        let had_entry = self.entry(actor).is_some();
        let mut next = self.discard(context);
        let dot = next.event_from(actor, value, if had_entry { 0 } else { fresh })?;
        Ok((next, dot))
    }

    fn entry(&self, actor: ActorId) -> Option<&Entry<V>> {
        self.entries
            .binary_search_by(|e| e.actor.cmp(&actor))
            .ok()
            .map(|idx| &self.entries[idx])
    }

    /// Like [`DvvSet::event`], but the new dot's counter is at least `floor`.
    ///
    /// Why: once a key's tombstone is purged its clock is gone, and a replica that minted
    /// `(r, 1..n)` for it before would start again at `(r, 1)`. A client still holding a
    /// context from before the delete would then supersede the new value without having seen
    /// it. The minting replica passes its hybrid logical timestamp as the floor when it has no
    /// entry for the key: every mint consumes a distinct, larger timestamp on that node, so a
    /// counter started there is above every counter the node minted for any key before.
    pub fn event_from(&mut self, actor: ActorId, value: V, floor: u64) -> Result<Dot, CoreError> {
        let dot = self.event(actor, value)?;
        if dot.counter >= floor {
            return Ok(dot);
        }
        // Only an entry whose sole live value is the new one can jump: older values are
        // positional and would take other dots. (An entry a context created holds none.)
        match self.entries.binary_search_by(|e| e.actor.cmp(&actor)) {
            Ok(idx) if self.entries[idx].values.len() == 1 => {
                self.entries[idx].counter = floor;
                Ok(Dot {
                    actor,
                    counter: floor,
                })
            }
            _ => Ok(dot),
        }
    }

    /// Keeps the clock but drops every value for which `keep` is false (used to purge
    /// tombstones: the counters survive, so no dot is ever reused).
    pub fn retain_values(&mut self, mut keep: impl FnMut(&V) -> bool) {
        for e in &mut self.entries {
            // Values are positional (index = distance from `counter`); dropping one from the
            // middle would shift the dots of older ones, so only a suffix of dead values can go.
            while e.values.last().is_some_and(|v| !keep(v)) {
                e.values.pop();
            }
        }
    }

    /// Whether a dot is covered by this set's clock.
    pub fn covers(&self, dot: Dot) -> bool {
        self.entries
            .binary_search_by(|e| e.actor.cmp(&dot.actor))
            .is_ok_and(|idx| self.entries[idx].counter >= dot.counter)
    }
}

fn merge_entry<V: Clone>(a: &Entry<V>, b: &Entry<V>) -> Entry<V> {
    // The side with the higher counter has seen every newer dot; of the other side's range it
    // keeps only what both still hold. `take` counts from the newest value.
    let (hi, lo) = if a.counter >= b.counter {
        (a, b)
    } else {
        (b, a)
    };
    let newer = usize::try_from(hi.counter - lo.counter).unwrap_or(usize::MAX);
    let keep = newer.saturating_add(lo.values.len());
    Entry {
        actor: hi.actor,
        counter: hi.counter,
        values: hi.values.iter().take(keep).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn actor(n: u8) -> ActorId {
        ActorId([n; 16])
    }

    #[test]
    fn two_writes_without_context_are_siblings_and_a_write_with_context_replaces_both() {
        let s = DvvSet::new();
        let (s, _) = s.update(&CausalContext::empty(), actor(1), "a", 0).unwrap();
        let (s, _) = s.update(&CausalContext::empty(), actor(1), "b", 0).unwrap();
        assert_eq!(s.values().copied().collect::<Vec<_>>(), vec!["b", "a"]);
        let (s, dot) = s.update(&s.join(), actor(1), "c", 0).unwrap();
        assert_eq!(s.values().copied().collect::<Vec<_>>(), vec!["c"]);
        assert_eq!(dot.counter, 3);
    }

    #[test]
    fn stale_context_keeps_the_concurrent_value() {
        let s = DvvSet::new();
        let (s, _) = s.update(&CausalContext::empty(), actor(1), "a", 0).unwrap();
        let read = s.join();
        let (s, _) = s.update(&read, actor(1), "b", 0).unwrap(); // supersedes a
        let (s, _) = s.update(&read, actor(1), "c", 0).unwrap(); // concurrent with b
        let mut vals: Vec<_> = s.values().copied().collect();
        vals.sort();
        assert_eq!(vals, vec!["b", "c"]);
    }

    #[test]
    fn retain_keeps_clock() {
        let (s, _) = DvvSet::new()
            .update(&CausalContext::empty(), actor(1), None::<u8>, 0)
            .unwrap();
        let mut s2 = s.clone();
        s2.retain_values(Option::is_some);
        assert!(s2.is_empty());
        assert_eq!(s2.join(), s.join());
    }

    #[test]
    fn from_entries_rejects_broken_invariants() {
        let e = |a, n, v: Vec<u8>| Entry {
            actor: actor(a),
            counter: n,
            values: v,
        };
        assert!(DvvSet::from_entries(vec![e(2, 1, vec![]), e(1, 1, vec![])]).is_err());
        assert!(DvvSet::from_entries(vec![e(1, 1, vec![1, 2])]).is_err());
        assert!(DvvSet::from_entries(vec![e(1, 0, vec![])]).is_err());
        assert!(DvvSet::from_entries(vec![e(1, 2, vec![1, 2]), e(3, 1, vec![])]).is_ok());
    }

    /// A small model of the system: three replicas of one key, each an actor, with clients
    /// that read from one replica and write to another, and replicas that sync. Values are
    /// unique numbers, so every dot names exactly one value, as in the real system.
    #[derive(Debug, Clone)]
    enum Op {
        /// Client reads replica `from` and writes to replica `to` with that read's context.
        WriteWithContext { from: usize, to: usize },
        /// Client writes to `to` without context.
        BlindWrite { to: usize },
        /// Replica `to` merges replica `from`'s state.
        Sync { from: usize, to: usize },
    }

    const REPLICAS: usize = 3;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Op::WriteWithContext { from, to }),
            (0..REPLICAS).prop_map(|to| Op::BlindWrite { to }),
            (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Op::Sync { from, to }),
        ]
    }

    fn run(ops: &[Op]) -> Vec<DvvSet<u32>> {
        let mut replicas = vec![DvvSet::new(); REPLICAS];
        let mut next = 0u32;
        for op in ops {
            next += 1;
            match *op {
                Op::WriteWithContext { from, to } => {
                    let ctx = replicas[from].join();
                    replicas[to] = replicas[to]
                        .update(&ctx, actor(to as u8), next, 0)
                        .unwrap()
                        .0;
                }
                Op::BlindWrite { to } => {
                    replicas[to] = replicas[to]
                        .update(&CausalContext::empty(), actor(to as u8), next, 0)
                        .unwrap()
                        .0;
                }
                Op::Sync { from, to } => {
                    replicas[to] = replicas[to].sync(&replicas[from]);
                }
            }
        }
        replicas
    }

    #[derive(Debug, Clone)]
    enum PurgeOp {
        Read {
            from: usize,
        },
        /// Writes with the context of read number `read` (none if there is no such read).
        Write {
            to: usize,
            read: usize,
        },
        Sync {
            from: usize,
            to: usize,
        },
        /// Every replica drops the key, if they all hold the same state.
        PurgeEverywhere,
    }

    fn purge_op() -> impl Strategy<Value = PurgeOp> {
        prop_oneof![
            (0..REPLICAS).prop_map(|from| PurgeOp::Read { from }),
            (0..REPLICAS, 0..20usize).prop_map(|(to, read)| PurgeOp::Write { to, read }),
            (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| PurgeOp::Sync { from, to }),
            Just(PurgeOp::PurgeEverywhere),
        ]
    }

    fn states() -> impl Strategy<Value = Vec<DvvSet<u32>>> {
        proptest::collection::vec(op(), 0..40).prop_map(|ops| run(&ops))
    }

    fn value_set(s: &DvvSet<u32>) -> BTreeSet<(Dot, u32)> {
        s.dotted_values().map(|(d, v)| (d, *v)).collect()
    }

    proptest! {
        #[test]
        fn sync_is_commutative(rs in states()) {
            prop_assert_eq!(rs[0].sync(&rs[1]), rs[1].sync(&rs[0]));
        }

        #[test]
        fn sync_is_associative(rs in states()) {
            let left = rs[0].sync(&rs[1]).sync(&rs[2]);
            let right = rs[0].sync(&rs[1].sync(&rs[2]));
            prop_assert_eq!(left, right);
        }

        #[test]
        fn sync_is_idempotent(rs in states()) {
            prop_assert_eq!(rs[0].sync(&rs[0]), rs[0].clone());
            let once = rs[0].sync(&rs[1]);
            prop_assert_eq!(once.sync(&rs[1]), once.clone());
        }

        /// A value survives a sync unless the other side's clock covers it and the other
        /// side no longer holds it.
        #[test]
        fn sync_keeps_exactly_the_unsuperseded_values(rs in states()) {
            let merged = value_set(&rs[0].sync(&rs[1]));
            let a = value_set(&rs[0]);
            let b = value_set(&rs[1]);
            let mut expected = BTreeSet::new();
            for (d, v) in a.iter().chain(b.iter()) {
                let in_a = a.contains(&(*d, *v));
                let in_b = b.contains(&(*d, *v));
                let dead = (!in_a && rs[0].covers(*d)) || (!in_b && rs[1].covers(*d));
                if !dead {
                    expected.insert((*d, *v));
                }
            }
            prop_assert_eq!(merged, expected);
        }

        /// A write carrying the context of a read supersedes exactly what that read saw:
        /// values written after the read (concurrently) stay as siblings.
        #[test]
        fn write_with_read_context_supersedes_exactly_what_was_read(
            before in proptest::collection::vec(op(), 0..30),
            after in proptest::collection::vec(op(), 0..10),
            reader in 0..REPLICAS,
            writer in 0..REPLICAS,
        ) {
            let rs = run(&before);
            let read = rs[reader].clone();
            let ctx = read.join();
            // More history happens between the read and the write.
            let mut all = before.clone();
            all.extend(after);
            let rs = run(&all);
            let target = &rs[writer];
            let (written, dot) = target.update(&ctx, actor(writer as u8), u32::MAX, 0).unwrap();
            let mut expected: BTreeSet<_> = value_set(target)
                .into_iter()
                .filter(|(d, _)| {
                    !ctx.entries().iter().any(|(a, n)| *a == d.actor && *n >= d.counter)
                })
                .collect();
            expected.insert((dot, u32::MAX));
            prop_assert_eq!(value_set(&written), expected);
            // The new dot is fresh: nobody had seen it.
            prop_assert!(!target.covers(dot));
        }

        #[test]
        fn write_without_context_keeps_every_value(rs in states(), w in 0..REPLICAS) {
            let (written, dot) = rs[w].update(&CausalContext::empty(), actor(w as u8), u32::MAX, 0).unwrap();
            let mut expected = value_set(&rs[w]);
            expected.insert((dot, u32::MAX));
            prop_assert_eq!(value_set(&written), expected);
        }

        /// A key whose state every replica dropped (a purged tombstone) and then wrote again
        /// never has a value superseded by a context that was read before it existed: the
        /// minting replica starts a counter it has no entry for at a floor that only grows
        /// (here the step number, standing in for the node's hybrid logical clock).
        #[test]
        fn a_context_from_before_a_purge_supersedes_nothing_written_after(
            ops in proptest::collection::vec(purge_op(), 1..60),
        ) {
            let mut replicas = vec![DvvSet::<u32>::new(); REPLICAS];
            // Every value each replica's clock has causally seen (kept across a purge).
            let mut history = vec![BTreeSet::<u32>::new(); REPLICAS];
            // Contexts clients read, with the history each read saw.
            let mut reads: Vec<(CausalContext, BTreeSet<u32>)> = Vec::new();
            for (step, op) in ops.iter().enumerate() {
                let value = step as u32 + 1;
                let floor = step as u64 + 1;
                match *op {
                    PurgeOp::Read { from } => {
                        reads.push((replicas[from].join(), history[from].clone()));
                    }
                    PurgeOp::Write { to, read } => {
                        let (ctx, seen) = match reads.get(read) {
                            Some(r) => r.clone(),
                            None => (CausalContext::empty(), BTreeSet::new()),
                        };
                        let before: BTreeSet<u32> = replicas[to].values().copied().collect();
                        let (next, _) = replicas[to].update(&ctx, actor(to as u8), value, floor).unwrap();
                        let after: BTreeSet<u32> = next.values().copied().collect();
                        for gone in before.difference(&after) {
                            prop_assert!(seen.contains(gone), "value {gone} superseded by a context that never saw it");
                        }
                        replicas[to] = next;
                        history[to].extend(seen);
                        history[to].insert(value);
                    }
                    PurgeOp::Sync { from, to } => {
                        replicas[to] = replicas[to].sync(&replicas[from]);
                        let theirs = history[from].clone();
                        history[to].extend(theirs);
                    }
                    PurgeOp::PurgeEverywhere => {
                        if replicas.windows(2).all(|w| w[0] == w[1]) {
                            replicas = vec![DvvSet::new(); REPLICAS];
                        }
                    }
                }
            }
        }

        /// Clock entries are bounded by the number of actors, however many writes happen.
        #[test]
        fn clock_is_bounded_by_actors(rs in states()) {
            for r in &rs {
                prop_assert!(r.entries().len() <= REPLICAS);
            }
        }
    }
}
