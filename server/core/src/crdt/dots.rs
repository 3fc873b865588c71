//! The causal context of a CRDT object: every dot the object has seen, live or removed.
//!
//! A version vector alone cannot describe a delta: the delta of one add has seen one dot of
//! its actor, not all the earlier ones, and a vector would claim it had (and so remove what
//! it never saw). So the context is a vector plus a *cloud* of dots beyond it. Joining
//! full states leaves the cloud empty; a state that took a delta out of order holds the gap
//! in its cloud until the missing dot arrives, by its own delta or by anti-entropy.
//!
//! Laws (property-tested in `crdt::tests`): `join` is commutative, associative and
//! idempotent, and the representation is canonical — a dot is in the vector or in the cloud,
//! never both, and the cloud never holds the vector's next dot — so equal contexts encode to
//! equal bytes.

use crate::actor::ActorId;
use crate::dvv::Dot;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DotContext {
    /// Per actor, the highest counter n such that dots 1..=n are all seen. No zero entries.
    vv: BTreeMap<ActorId, u64>,
    /// Seen dots beyond the vector, each above its actor's entry + 1.
    cloud: BTreeSet<Dot>,
}

impl DotContext {
    pub fn contains(&self, dot: &Dot) -> bool {
        self.vv.get(&dot.actor).is_some_and(|&n| dot.counter <= n) || self.cloud.contains(dot)
    }

    /// The next dot `actor` mints: above every dot of it this context has seen.
    pub fn next_dot(&self, actor: ActorId) -> Option<Dot> {
        let in_vv = self.vv.get(&actor).copied().unwrap_or(0);
        let in_cloud = self
            .cloud
            .range(
                Dot { actor, counter: 0 }..=Dot {
                    actor,
                    counter: u64::MAX,
                },
            )
            .next_back()
            .map_or(0, |d| d.counter);
        let counter = in_vv.max(in_cloud).checked_add(1)?;
        Some(Dot { actor, counter })
    }

    pub fn insert(&mut self, dot: Dot) {
        if !self.contains(&dot) && dot.counter > 0 {
            self.cloud.insert(dot);
            self.compact_actor(dot.actor);
        }
    }

    pub fn extend(&mut self, dots: impl IntoIterator<Item = Dot>) {
        for d in dots {
            self.insert(d);
        }
    }

    pub fn join(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for (&actor, &n) in &other.vv {
            let e = out.vv.entry(actor).or_insert(0);
            *e = (*e).max(n);
        }
        out.cloud.extend(other.cloud.iter().copied());
        let actors: BTreeSet<ActorId> = out.cloud.iter().map(|d| d.actor).collect();
        for a in actors {
            out.compact_actor(a);
        }
        out
    }

    /// Moves `actor`'s cloud dots that continue its vector entry into the vector, and drops
    /// the ones the vector already covers.
    fn compact_actor(&mut self, actor: ActorId) {
        let mut n = self.vv.get(&actor).copied().unwrap_or(0);
        let mine: Vec<Dot> = self
            .cloud
            .range(
                Dot { actor, counter: 0 }..=Dot {
                    actor,
                    counter: u64::MAX,
                },
            )
            .copied()
            .collect();
        for d in mine {
            if d.counter <= n {
                self.cloud.remove(&d);
            } else if d.counter == n + 1 {
                self.cloud.remove(&d);
                n += 1;
            } else {
                break;
            }
        }
        if n > 0 {
            self.vv.insert(actor, n);
        }
    }

    /// The vector part: what a client context carries for removes.
    pub fn vector(&self) -> &BTreeMap<ActorId, u64> {
        &self.vv
    }

    pub fn cloud(&self) -> &BTreeSet<Dot> {
        &self.cloud
    }

    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// Rebuilds a context from its parts, restoring the canonical form; for decoding.
    pub fn from_parts(vv: BTreeMap<ActorId, u64>, cloud: BTreeSet<Dot>) -> Self {
        let mut out = Self {
            vv: vv.into_iter().filter(|&(_, n)| n > 0).collect(),
            cloud: BTreeSet::new(),
        };
        out.extend(cloud);
        out
    }

    /// Whether this is in canonical form (for checking decoded input).
    pub fn is_canonical(&self) -> bool {
        self.vv.values().all(|&n| n > 0)
            && self.cloud.iter().all(|d| {
                let n = self.vv.get(&d.actor).copied().unwrap_or(0);
                d.counter > n + 1
            })
    }
}
