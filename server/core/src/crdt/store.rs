//! Dot stores: the contents of a causal CRDT, each piece tagged with the dot that made it.
//!
//! Joining two stores needs both sides' contexts: a piece present on one side only is kept
//! if the other side never saw its dot (it is new) and dropped if it did (it was removed
//! there). That one rule gives add-wins sets, enable-wins flags, multi-value registers and
//! update-wins maps.
//!
//! Counters refine the rule (see [`newest_per_actor`]); every other slot keeps it plain.

use super::dots::DotContext;
use crate::dvv::Dot;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub trait DotStore: Clone + Default + PartialEq {
    fn join(&self, ctx: &DotContext, other: &Self, octx: &DotContext) -> Self;
    fn collect_dots(&self, out: &mut Vec<Dot>);
    fn is_bottom(&self) -> bool;

    fn dots(&self) -> Vec<Dot> {
        let mut out = Vec::new();
        self.collect_dots(&mut out);
        out
    }
}

/// Keeps the pieces of a slot that survive a join (see the module doc).
fn survivors<'a, V: Clone + 'a>(
    ours: impl Iterator<Item = (&'a Dot, &'a V)>,
    ctx: &DotContext,
    theirs: &BTreeMap<Dot, V>,
    octx: &DotContext,
) -> BTreeMap<Dot, V> {
    let mut out: BTreeMap<Dot, V> = BTreeMap::new();
    for (d, v) in ours {
        if theirs.contains_key(d) || !octx.contains(d) {
            out.insert(*d, v.clone());
        }
    }
    for (d, v) in theirs {
        if !ctx.contains(d) {
            out.entry(*d).or_insert_with(|| v.clone());
        }
    }
    out
}

/// Keeps each actor's highest dot of a slot.
///
/// Right where an actor's newer piece always includes its older ones, as a counter's running
/// contribution does: the actor minted the newer dot while holding the older one, and its
/// delta saw it. A replica that received an actor's third increment but not its second then
/// counts the actor once at once, instead of twice until the second arrives. A register
/// keeps the plain rule: an assignment made with a client's context may leave the
/// assigner's own earlier value standing, as a concurrent one.
pub fn newest_per_actor<V>(slot: BTreeMap<Dot, V>) -> BTreeMap<Dot, V> {
    // BTreeMap orders dots by (actor, counter): keep the last of each actor's run.
    let mut newest = BTreeMap::new();
    let mut it = slot.into_iter().peekable();
    while let Some((d, v)) = it.next() {
        if it.peek().is_none_or(|(n, _)| n.actor != d.actor) {
            newest.insert(d, v);
        }
    }
    newest
}

/// A slot of bare dots: a flag, or one element of a set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DotSet(pub BTreeSet<Dot>);

impl DotStore for DotSet {
    fn join(&self, ctx: &DotContext, other: &Self, octx: &DotContext) -> Self {
        let ours: BTreeMap<Dot, ()> = self.0.iter().map(|d| (*d, ())).collect();
        let theirs: BTreeMap<Dot, ()> = other.0.iter().map(|d| (*d, ())).collect();
        DotSet(
            survivors(ours.iter(), ctx, &theirs, octx)
                .into_keys()
                .collect(),
        )
    }

    fn collect_dots(&self, out: &mut Vec<Dot>) {
        out.extend(self.0.iter().copied());
    }

    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }
}

/// A slot of dots carrying values: a register's writes, or a counter's per-actor totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DotFun<V>(pub BTreeMap<Dot, V>);

impl<V> Default for DotFun<V> {
    fn default() -> Self {
        DotFun(BTreeMap::new())
    }
}

impl<V: Clone + PartialEq> DotStore for DotFun<V> {
    fn join(&self, ctx: &DotContext, other: &Self, octx: &DotContext) -> Self {
        DotFun(survivors(self.0.iter(), ctx, &other.0, octx))
    }

    fn collect_dots(&self, out: &mut Vec<Dot>) {
        out.extend(self.0.keys().copied());
    }

    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }
}

/// Named slots, each a store of its own: a set's elements, or a map's fields. A slot that
/// joins to nothing is gone, so a removed element or field leaves no tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DotMap<K: Ord, S>(pub BTreeMap<K, S>);

impl<K: Ord, S> Default for DotMap<K, S> {
    fn default() -> Self {
        DotMap(BTreeMap::new())
    }
}

impl<K: Ord + Clone, S: DotStore> DotStore for DotMap<K, S> {
    fn join(&self, ctx: &DotContext, other: &Self, octx: &DotContext) -> Self {
        let empty = S::default();
        let mut out = BTreeMap::new();
        let keys: BTreeSet<&K> = self.0.keys().chain(other.0.keys()).collect();
        for k in keys {
            let a = self.0.get(k).unwrap_or(&empty);
            let b = other.0.get(k).unwrap_or(&empty);
            let joined = a.join(ctx, b, octx);
            if !joined.is_bottom() {
                out.insert(k.clone(), joined);
            }
        }
        DotMap(out)
    }

    fn collect_dots(&self, out: &mut Vec<Dot>) {
        for s in self.0.values() {
            s.collect_dots(out);
        }
    }

    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }
}
