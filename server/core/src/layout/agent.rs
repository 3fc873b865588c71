//! The layout's own protocol, as every node runs it on each tick: found the cluster when it
//! must, stage this node's join (or its new dc, rack, capacity or role), commit whatever is
//! pending, retire versions everyone has acknowledged, and pick whom to exchange histories
//! with. The node runs it over gossip and gRPC (`layout_sync.rs`), the simulation over its
//! seeded network: the same rules in both.
//!
//! Rules:
//! - **Founding.** A node given no seeds founds a cluster at once. One with seeds waits for
//!   their layout; only when every live peer still has none after a grace period does the
//!   one with the smallest id found it, so nodes started together found exactly one cluster.
//! - **Joining.** Once it holds a layout, a node stages its own join and commits it: no
//!   operator step. A removed node never rejoins under its id.
//! - **Committing.** Any node commits pending changes; the same changes on the same version
//!   give byte-identical versions, so nodes that commit at once agree, and concurrent commits
//!   of different changes resolve by the chain rule (see `history.rs`).
//! - **Exchange.** A node pushes and pulls histories with live peers whose fingerprint
//!   differs from its own; merge is a join, so the cluster converges on one history.

use crate::actor::ActorId;
use crate::layout::{LayoutHistory, LayoutMember, StagedChange};

/// What gossip says of a live peer's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLayout {
    pub id: ActorId,
    /// Its current version (0: it holds no layout yet).
    pub version: u64,
    /// Its history's fingerprint differs from ours.
    pub differs: bool,
}

/// What one tick did to the history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickOutcome {
    pub founded: bool,
    pub staged: bool,
    /// (version, digest) of a version this tick committed.
    pub committed: Option<(u64, crate::layout::Digest)>,
    /// The node is out of the layout for good.
    pub removed: bool,
}

#[derive(Debug, Clone)]
pub struct LayoutAgent {
    /// This node as it wants to be in the layout.
    pub me: LayoutMember,
    /// Started with seeds: it is meant to join an existing cluster.
    pub expects_peers: bool,
    /// How long a node with seeds waits for a peer's layout before founding one.
    pub bootstrap_grace_ms: u64,
}

impl LayoutAgent {
    /// Founds a cluster with `first` as its only member, unless `history` holds a layout.
    /// Returns whether it did.
    pub fn found(history: &mut LayoutHistory, first: LayoutMember, secret: [u8; 32]) -> bool {
        if history.current().is_some() {
            return false;
        }
        *history = LayoutHistory::bootstrap(first, secret);
        true
    }

    /// Whether [`step`](Self::step) surely changes nothing: a layout is held, this node's
    /// join is reflected or staged (or it was removed), nothing is pending and no transition
    /// is under way (while one is, settling depends on acknowledgements, so a tick may
    /// change something). Lets executors skip copying the history on quiet ticks.
    pub fn idle(&self, history: &LayoutHistory) -> bool {
        let Some(current) = history.current() else {
            return false;
        };
        let me = self.me.id;
        let change = StagedChange::join_of(&self.me);
        let joined = history.is_removed(&me)
            || current
                .member(&me)
                .is_some_and(|m| StagedChange::join_of(m) == change)
            || history.staged().get(&me).map(|s| &s.change) == Some(&change);
        joined && history.pending().is_empty() && history.chain().len() <= 1
    }

    /// One tick's changes to `history`. `elapsed_ms`: since this node started; `peers`: the
    /// live ones; `secret`: fresh randomness, used only if this tick founds the cluster;
    /// `is_up`: the failure detector.
    pub fn step(
        &self,
        history: &mut LayoutHistory,
        elapsed_ms: u64,
        peers: &[PeerLayout],
        secret: [u8; 32],
        is_up: impl Fn(&ActorId) -> bool,
    ) -> TickOutcome {
        let mut out = TickOutcome::default();
        if history.current().is_none() {
            if self.may_found(elapsed_ms, peers) {
                out.founded = Self::found(history, self.me.clone(), secret);
            }
            return out;
        }
        let me = self.me.id;
        if history.is_removed(&me) {
            out.removed = true;
        } else {
            let change = StagedChange::join_of(&self.me);
            let reflected = history
                .current()
                .and_then(|v| v.member(&me))
                .is_some_and(|m| StagedChange::join_of(m) == change);
            let staged = history.staged().get(&me).map(|s| &s.change) == Some(&change);
            if !reflected && !staged {
                history.stage(me, me, change);
                out.staged = true;
            }
        }
        if !history.pending().is_empty() {
            out.committed = history.commit().map(|v| (v.version, v.digest()));
        }
        // Settling only matters while a transition is under way.
        if history.chain().len() > 1 {
            history.settle(is_up);
        }
        out
    }

    /// Whether a node that is leaving for good may stop: only once a live peer holds exactly
    /// its history. Until then a change staged or committed here (an operator's `remove` sent
    /// to a decommissioned node, say) would stop with it and be lost (sim seed 462348).
    pub fn history_held_elsewhere(peers: &[PeerLayout]) -> bool {
        peers.iter().any(|p| p.version > 0 && !p.differs)
    }

    /// Up to `n` live peers whose history differs from ours, chosen with `pick` (randomness
    /// is an input).
    pub fn exchange_with(&self, peers: &[PeerLayout], n: usize, pick: u64) -> Vec<ActorId> {
        let mut differing: Vec<ActorId> = peers
            .iter()
            .filter(|p| p.id != self.me.id && p.differs)
            .map(|p| p.id)
            .collect();
        if differing.is_empty() {
            return differing;
        }
        let start = (pick % differing.len() as u64) as usize;
        differing.rotate_left(start);
        differing.truncate(n);
        differing
    }

    fn may_found(&self, elapsed_ms: u64, peers: &[PeerLayout]) -> bool {
        if !self.expects_peers {
            return true;
        }
        if elapsed_ms < self.bootstrap_grace_ms {
            return false;
        }
        let live: Vec<&PeerLayout> = peers.iter().filter(|p| p.id != self.me.id).collect();
        !live.is_empty()
            && live.iter().all(|p| p.version == 0)
            && live.iter().all(|p| p.id > self.me.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Role;

    fn member(n: u8) -> LayoutMember {
        LayoutMember {
            id: ActorId([n; 16]),
            dc: "dc1".into(),
            rack: format!("r{n}"),
            capacity: 1,
            role: Role::Storage,
        }
    }

    fn agent(n: u8, seeds: bool) -> LayoutAgent {
        LayoutAgent {
            me: member(n),
            expects_peers: seeds,
            bootstrap_grace_ms: 3_000,
        }
    }

    fn peer(n: u8, version: u64) -> PeerLayout {
        PeerLayout {
            id: ActorId([n; 16]),
            version,
            differs: true,
        }
    }

    #[test]
    fn nodes_started_together_found_one_cluster_and_the_others_join_it() {
        let (a, b) = (agent(1, true), agent(2, true));
        let (mut ha, mut hb) = (LayoutHistory::default(), LayoutHistory::default());
        let up = |_: &ActorId| true;
        // Within the grace period nobody founds.
        assert!(!a.step(&mut ha, 100, &[peer(2, 0)], [9; 32], up).founded);
        // After it, only the smallest id does.
        assert!(!b.step(&mut hb, 5_000, &[peer(1, 0)], [8; 32], up).founded);
        assert!(a.step(&mut ha, 5_000, &[peer(2, 0)], [9; 32], up).founded);
        // b learns the layout by exchange, then stages and commits its own join.
        hb.merge(&ha);
        let out = b.step(&mut hb, 5_200, &[peer(1, 1)], [8; 32], up);
        assert!(out.staged && out.committed.is_some());
        ha.merge(&hb);
        assert_eq!(ha.fingerprint(), hb.fingerprint());
        assert!(
            ha.current()
                .is_some_and(|v| v.member(&ActorId([2; 16])).is_some())
        );
        // Nothing left to do: a further tick changes nothing.
        let before = hb.clone();
        assert_eq!(
            b.step(&mut hb, 6_000, &[], [8; 32], up),
            TickOutcome::default()
        );
        assert_eq!(hb, before);
        // While version 2 is not acknowledged a tick may settle it: not idle. Once settled,
        // idle.
        assert!(!b.idle(&hb));
        hb.ack(ActorId([1; 16]), 2);
        hb.ack(ActorId([2; 16]), 2);
        b.step(&mut hb, 6_200, &[], [8; 32], up);
        assert!(b.idle(&hb));
        assert!(!a.idle(&LayoutHistory::default()));
    }

    #[test]
    fn a_seedless_node_founds_at_once_and_never_twice() {
        let a = agent(1, false);
        let mut h = LayoutHistory::default();
        assert!(a.step(&mut h, 0, &[], [1; 32], |_| true).founded);
        assert!(!LayoutAgent::found(&mut h, member(1), [2; 32]));
    }

    #[test]
    fn exchange_partners_are_live_peers_whose_history_differs() {
        let a = agent(1, false);
        let mut same = peer(3, 2);
        same.differs = false;
        let peers = [peer(2, 1), same, peer(4, 2)];
        for pick in 0..4 {
            let chosen = a.exchange_with(&peers, 1, pick);
            assert_eq!(chosen.len(), 1);
            assert_ne!(chosen[0], ActorId([3; 16]));
        }
        assert_eq!(a.exchange_with(&peers, 5, 0).len(), 2);
    }
}
