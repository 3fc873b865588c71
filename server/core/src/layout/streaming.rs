//! When and from whom a node streams the partitions a new layout version gives it, before it
//! acknowledges the version, and which partitions it may delete once the change has retired.
//! The node runs this in `rebalance.rs` and `reclaim.rs`, the simulation in its node; both
//! only move (or delete) the bytes.
//!
//! Rules:
//! - a node streams for version v only once every live node has adopted v, and `wait` later:
//!   a write coordinated under an older layout would otherwise land on the old owners after
//!   the stream had passed them;
//! - each gained partition is pulled from every live owner that holds it (see
//!   [`Ownership::gained`]); from another DC only the keyspaces that live in this one;
//! - the version is acknowledged only when every gained partition had a live source and
//!   every pull succeeded.

use crate::actor::ActorId;
use crate::keyspace::KeyspaceSpec;
use crate::layout::ownership::Ownership;
use std::borrow::Borrow;
use std::collections::BTreeMap;

/// Holds streaming back until every live node has adopted the version for a while.
#[derive(Debug, Clone, Default)]
pub struct StreamGate {
    /// (version, when every live node was first seen holding it)
    adopted: Option<(u64, u64)>,
}

impl StreamGate {
    /// Whether a node may stream for `version` now. `lagging`: live nodes still on an older
    /// version; `wait_ms`: how long in-flight writes of the previous layout may take.
    pub fn ready(&mut self, version: u64, lagging: usize, now_ms: u64, wait_ms: u64) -> bool {
        if lagging > 0 {
            self.adopted = None;
            return false;
        }
        match self.adopted {
            Some((v, since)) if v == version => now_ms.saturating_sub(since) >= wait_ms,
            _ => {
                self.adopted = Some((version, now_ms));
                false
            }
        }
    }
}

/// One pull: these partitions from this source (only `keyspaces`, unless empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    pub source: ActorId,
    pub partitions: Vec<u16>,
    pub keyspaces: Vec<u64>,
}

/// Everything a node must pull before it acknowledges the current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    pub version: u64,
    pub pulls: Vec<Pull>,
    /// Every gained partition has a live source; if not, acknowledging must wait.
    pub complete: bool,
    pub partitions: usize,
}

/// Partitions a node no longer owns under a settled version: their data may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclaimable {
    /// The settled version (number, digest) this is computed for.
    pub version: (u64, crate::layout::Digest),
    pub partitions: Vec<u16>,
}

impl Ownership {
    /// What this node may delete: only when a single version is active (the change that
    /// moved the partitions has retired, so every owner of the settled version holds them),
    /// and only once this node holds its own share of it. `None` otherwise.
    /// `done`: the settled version last reclaimed for (nothing more to do for it).
    pub fn reclaimable<K: Borrow<KeyspaceSpec>>(
        &self,
        keyspaces: &[K],
        done: Option<(u64, crate::layout::Digest)>,
    ) -> Option<Reclaimable> {
        let [settled] = self.chain() else {
            return None;
        };
        if done == Some((settled.version, settled.digest())) {
            return None;
        }
        if !self.stores_data() || !self.history.acked(&self.me, settled) {
            return None;
        }
        let width = self.local_width(keyspaces);
        let owned: std::collections::BTreeSet<u16> = settled
            .placement()
            .partitions_of(&self.me, width)
            .into_iter()
            .collect();
        Some(Reclaimable {
            version: (settled.version, settled.digest()),
            partitions: (0..crate::partition::PARTITIONS as u16)
                .filter(|p| !owned.contains(p))
                .collect(),
        })
    }

    /// Who takes this node's copy of a keyspace's partition before the node deletes it: the
    /// partition's owners in this DC under the current version. Streaming made them hold
    /// what the old owners held while they were up, but a node that was down meanwhile may
    /// hold the only copy of a write (acknowledged at `ONE`, then a crash before any hint was
    /// kept): deleting it unsent would lose an acknowledged write (sim seed 362880).
    pub fn reclaim_heirs(&self, ks: &KeyspaceSpec, partition: u16) -> Vec<ActorId> {
        let Some(rf) = self
            .factors(ks)
            .into_iter()
            .find(|(dc, _)| *dc == self.my_dc)
            .map(|(_, rf)| rf)
        else {
            return Vec::new();
        };
        self.current()
            .owners_iter(&self.my_dc, partition, rf)
            .filter(|n| *n != self.me)
            .collect()
    }

    /// How many owners of a partition in this DC hold its data: the largest factor of any
    /// keyspace here. Rank matters, not just presence in the (wider) preference list: a node
    /// that moves up into the first N owners must fetch what it did not hold as N+1st.
    pub fn local_width<K: Borrow<KeyspaceSpec>>(&self, keyspaces: &[K]) -> usize {
        keyspaces
            .iter()
            .flat_map(|ks| self.factors(ks.borrow()))
            .filter(|(dc, _)| *dc == self.my_dc)
            .map(|(_, rf)| rf)
            .max()
            .unwrap_or(1)
    }

    /// The pulls this node needs for the current version, or `None` when it has nothing to
    /// do (no layout, no data role, or already acknowledged).
    pub fn stream_plan<K: Borrow<KeyspaceSpec>>(&self, keyspaces: &[K]) -> Option<StreamPlan> {
        let current = self.current_version()?;
        if !self.stores_data() || self.history.acked(&self.me, current) {
            return None;
        }
        let here: Vec<u64> = keyspaces
            .iter()
            .map(Borrow::borrow)
            .filter(|ks: &&KeyspaceSpec| self.factors(ks).iter().any(|(dc, _)| *dc == self.my_dc))
            .map(KeyspaceSpec::id)
            .collect();
        let width = self.local_width(keyspaces);
        let gained = self.gained(self.history.acked_version(&self.me), width);
        let mut by_source: BTreeMap<(ActorId, bool), Vec<u16>> = BTreeMap::new();
        let mut complete = true;
        for (partition, sources, remote) in &gained {
            let live: Vec<&ActorId> = sources.iter().filter(|s| self.alive(s)).collect();
            if live.is_empty() && !sources.is_empty() {
                complete = false;
            }
            for s in live {
                by_source.entry((*s, *remote)).or_default().push(*partition);
            }
        }
        let pulls = by_source
            .into_iter()
            // From another DC, only the keyspaces that live in this one (none: nothing).
            .filter(|((_, remote), _)| !remote || !here.is_empty())
            .map(|((source, remote), partitions)| Pull {
                source,
                partitions,
                keyspaces: if remote { here.clone() } else { Vec::new() },
            })
            .collect();
        Some(StreamPlan {
            version: current.version,
            pulls,
            complete,
            partitions: gained.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_a_wait_after_every_live_node_adopted_the_version() {
        let mut g = StreamGate::default();
        assert!(!g.ready(3, 1, 0, 500));
        assert!(!g.ready(3, 0, 100, 500));
        assert!(!g.ready(3, 0, 400, 500));
        assert!(g.ready(3, 0, 600, 500));
        // Someone falls behind again (a new version): the wait starts over.
        assert!(!g.ready(4, 0, 700, 500));
        assert!(!g.ready(4, 1, 1_300, 500));
        assert!(!g.ready(4, 0, 1_400, 500));
        assert!(g.ready(4, 0, 1_900, 500));
    }
}
