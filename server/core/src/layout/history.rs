//! Layout history: staged changes, committed versions, sync acknowledgements, retirement.
//!
//! Every node keeps a [`LayoutHistory`] and exchanges it whole with its peers; [`merge`]
//! joins two histories. What a node acts on is derived from the merged state:
//!
//! - **The chain.** Versions form a chain by `parent` digest. Starting at the anchor (the
//!   oldest version still active), each next version is the candidate with the highest
//!   digest among those whose parent is the chosen one. Two nodes that commit v+1 at once
//!   therefore resolve the same way everywhere, and the loser's changes, not reflected in the
//!   winner, stay staged and are committed as v+2.
//! - **Staged changes** are per node, last-writer-wins by [`Stamp`] (layout version first,
//!   so a change staged after a commit beats every change that commit reflected). A change is
//!   pending while the current version does not reflect it.
//! - **Acknowledgements** (node, version, digest): the node holds all the data that version
//!   gives it. Digest-tagged, so an acknowledgement of a version that lost a concurrent
//!   commit never counts for the winner.
//! - **Retirement.** The anchor moves up to the newest version whose storage members have
//!   all acknowledged it (members the failure detector reports down do not block; `remove`
//!   takes dead ones out for good). Versions below the anchor are retired: writes go to every
//!   active version, reads to the anchor, whose owners hold everything.
//!
//! Laws (property-tested): `merge` is commutative, associative and idempotent, and nodes
//! that hold the same history derive the same chain.
//!
//! [`merge`]: LayoutHistory::merge

use super::{Digest, LayoutMember, LayoutVersion, Role};
use crate::actor::ActorId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A change an operator (or a joining node) asked for, not yet necessarily committed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StagedChange {
    /// Add the node, or change its dc, rack, capacity or role.
    Join {
        dc: String,
        rack: String,
        capacity: u32,
        role: Role,
    },
    /// Take the node out: decommission (it streams its data away first) or remove (it is
    /// dead; survivors stream its partitions). Either way it owns nothing afterwards.
    Remove,
}

impl StagedChange {
    pub fn join_of(m: &LayoutMember) -> Self {
        StagedChange::Join {
            dc: m.dc.clone(),
            rack: m.rack.clone(),
            capacity: m.capacity,
            role: m.role,
        }
    }

    /// Whether `version` already reflects this change for `id`.
    fn reflected(&self, id: &ActorId, version: Option<&LayoutVersion>) -> bool {
        let member = version.and_then(|v| v.member(id));
        match (self, member) {
            (StagedChange::Remove, m) => m.is_none(),
            (StagedChange::Join { .. }, None) => false,
            (c, Some(m)) => *c == StagedChange::join_of(m),
        }
    }
}

impl std::fmt::Display for StagedChange {
    /// "join dc1/r2 capacity 1 storage" or "remove": what `admin layout` shows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StagedChange::Join {
                dc,
                rack,
                capacity,
                role,
            } => write!(f, "join {dc}/{rack} capacity {capacity} {}", role.name()),
            StagedChange::Remove => f.write_str("remove"),
        }
    }
}

/// Orders staged changes of one node: layout version at staging, then a sequence number,
/// then the author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    pub version: u64,
    pub seq: u64,
    pub author: ActorId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    pub change: StagedChange,
    pub stamp: Stamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LayoutHistory {
    /// Candidate versions, sorted by (version, digest), at most one per digest.
    versions: Vec<LayoutVersion>,
    /// (version, digest) of the oldest active version; `None` before any retirement.
    anchor: Option<(u64, Digest)>,
    staged: BTreeMap<ActorId, Staged>,
    acks: BTreeSet<(ActorId, u64, Digest)>,
}

impl LayoutHistory {
    /// A history holding just the first version of a new cluster.
    pub fn bootstrap(first: LayoutMember, secret: [u8; 32]) -> Self {
        let mut h = Self::default();
        h.insert(LayoutVersion::bootstrap(first, secret));
        h
    }

    fn insert(&mut self, v: LayoutVersion) {
        let key = (v.version, v.digest());
        match self
            .versions
            .binary_search_by(|x| (x.version, x.digest()).cmp(&key))
        {
            Ok(_) => {}
            Err(i) => self.versions.insert(i, v),
        }
    }

    /// The active versions, oldest first: from the anchor (or the oldest known version) to
    /// the head, which is the highest (version, digest) among the versions that descend from
    /// the anchor by parent links. A late node that commits on a stale view forks below the
    /// head and loses, whatever its digest. Empty before the first version arrives.
    pub fn chain(&self) -> Vec<&LayoutVersion> {
        let start = match self.anchor {
            Some((v, d)) => self
                .versions
                .iter()
                .position(|x| x.version == v && x.digest() == d),
            None => {
                let lowest = self.versions.first().map(|x| x.version);
                self.versions
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| Some(x.version) == lowest)
                    .max_by_key(|(_, x)| x.digest())
                    .map(|(i, _)| i)
            }
        };
        let Some(start) = start else {
            return Vec::new();
        };
        // Versions are sorted by (version, digest): one pass finds every descendant, each
        // remembering its parent's index.
        let mut parent_of: BTreeMap<usize, usize> = BTreeMap::new();
        let mut reachable: BTreeMap<(u64, Digest), usize> = BTreeMap::new();
        let first = &self.versions[start];
        reachable.insert((first.version, first.digest()), start);
        let mut head = start;
        for (i, v) in self.versions.iter().enumerate().skip(start + 1) {
            if v.version == 0 {
                continue;
            }
            if let Some(&p) = reachable.get(&(v.version - 1, v.parent)) {
                reachable.insert((v.version, v.digest()), i);
                parent_of.insert(i, p);
                head = i;
            }
        }
        let mut out = vec![&self.versions[head]];
        let mut at = head;
        while let Some(&p) = parent_of.get(&at) {
            out.push(&self.versions[p]);
            at = p;
        }
        out.reverse();
        out
    }

    /// The newest committed version: where new ownership is decided.
    pub fn current(&self) -> Option<&LayoutVersion> {
        self.chain().last().copied()
    }

    /// The oldest active version: every one of its storage members holds what it owns, so
    /// reads are answered from it.
    pub fn read_version(&self) -> Option<&LayoutVersion> {
        self.chain().first().copied()
    }

    /// Joins another node's history into this one.
    pub fn merge(&mut self, other: &LayoutHistory) {
        for v in &other.versions {
            self.insert(v.clone());
        }
        self.anchor = match (self.anchor, other.anchor) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (id, s) in &other.staged {
            // Ties (never made by `stage`, but peers are untrusted) go to the larger change,
            // so the merge stays commutative.
            match self.staged.get(id) {
                Some(mine) if (mine.stamp, &mine.change) >= (s.stamp, &s.change) => {}
                _ => {
                    self.staged.insert(*id, s.clone());
                }
            }
        }
        self.acks.extend(other.acks.iter().copied());
    }

    /// Asks for a change of node `id`, authored by `author`.
    pub fn stage(&mut self, author: ActorId, id: ActorId, change: StagedChange) {
        let version = self.current().map_or(0, |v| v.version);
        let seq = self
            .staged
            .values()
            .filter(|s| s.stamp.version == version)
            .map(|s| s.stamp.seq + 1)
            .max()
            .unwrap_or(0);
        self.staged.insert(
            id,
            Staged {
                change,
                stamp: Stamp {
                    version,
                    seq,
                    author,
                },
            },
        );
    }

    /// Staged changes the current version does not reflect yet, by node id.
    pub fn pending(&self) -> Vec<(ActorId, &Staged)> {
        let current = self.current();
        self.staged
            .iter()
            .filter(|(id, s)| !s.change.reflected(id, current))
            .map(|(id, s)| (*id, s))
            .collect()
    }

    /// Every staged entry, reflected or not (what `admin layout` shows).
    pub fn staged(&self) -> &BTreeMap<ActorId, Staged> {
        &self.staged
    }

    /// Whether this node's removal was asked for: a removed node must not join again under
    /// the same id (wiping its data gives it a new one).
    pub fn is_removed(&self, id: &ActorId) -> bool {
        self.staged
            .get(id)
            .is_some_and(|s| s.change == StagedChange::Remove)
    }

    /// Commits every pending change as the next version, computed here once. Returns the
    /// new version, or `None` when nothing is pending or there is no version to build on.
    pub fn commit(&mut self) -> Option<&LayoutVersion> {
        let current = self.current()?;
        let changes: Vec<(ActorId, StagedChange)> = self
            .pending()
            .into_iter()
            .map(|(id, s)| (id, s.change.clone()))
            .collect();
        if changes.is_empty() {
            return None;
        }
        let next = current.next(&changes);
        let key = (next.version, next.digest());
        self.insert(next);
        self.versions
            .iter()
            .find(|x| (x.version, x.digest()) == key)
    }

    /// Records that `node` holds all the data of the current chain's `version`.
    pub fn ack(&mut self, node: ActorId, version: u64) {
        let digest = self
            .chain()
            .into_iter()
            .find(|v| v.version == version)
            .map(|v| v.digest());
        if let Some(d) = digest {
            self.acks.insert((node, version, d));
        }
    }

    /// Whether `node` acknowledged the chain's `version`.
    pub fn acked(&self, node: &ActorId, version: &LayoutVersion) -> bool {
        self.acks
            .contains(&(*node, version.version, version.digest()))
    }

    /// The newest active version `node` acknowledged, if any.
    pub fn acked_version(&self, node: &ActorId) -> Option<u64> {
        self.chain()
            .into_iter()
            .rev()
            .find(|v| self.acked(node, v))
            .map(|v| v.version)
    }

    /// Retires every version older than the newest one whose storage members have all
    /// acknowledged it (or are down: `is_up` is the failure detector). Returns whether the
    /// anchor moved.
    pub fn settle(&mut self, is_up: impl Fn(&ActorId) -> bool) -> bool {
        let chain = self.chain();
        let settled = chain.iter().skip(1).rev().find(|v| {
            v.members()
                .iter()
                .filter(|m| m.role == Role::Storage)
                .all(|m| !is_up(&m.id) || self.acked(&m.id, v))
        });
        let Some(v) = settled else {
            return false;
        };
        let anchor = (v.version, v.digest());
        self.anchor = Some(anchor);
        self.compact();
        true
    }

    /// Drops what can never matter again: versions below the anchor, candidates that lost
    /// at or below the current version, acknowledgements of retired versions, and staged
    /// joins the current version reflects. The chain is unchanged.
    pub fn compact(&mut self) {
        let chain: BTreeSet<(u64, Digest)> = self
            .chain()
            .iter()
            .map(|v| (v.version, v.digest()))
            .collect();
        let Some(&(top, _)) = chain.last() else {
            return;
        };
        let floor = self.anchor.map_or(0, |a| a.0);
        self.versions.retain(|v| {
            v.version >= floor && (v.version > top || chain.contains(&(v.version, v.digest())))
        });
        self.acks.retain(|(_, v, _)| *v >= floor);
        let current = self.current().cloned();
        self.staged.retain(|id, s| {
            matches!(s.change, StagedChange::Remove) || !s.change.reflected(id, current.as_ref())
        });
    }

    /// Canonical bytes of the whole history (what peers exchange).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, Vec::new()).unwrap_or_default()
    }

    /// A short hash of the whole history: two nodes with equal fingerprints hold the same
    /// history and have nothing to exchange.
    ///
    /// Versions enter by their digests, which cover their content: hashing whole placements
    /// on every change would cost more than the exchange the fingerprint saves.
    pub fn fingerprint(&self) -> Digest {
        let versions: Vec<(u64, Digest)> = self
            .versions
            .iter()
            .map(|v| (v.version, v.digest()))
            .collect();
        let summary = (versions, &self.anchor, &self.staged, &self.acks);
        let bytes = postcard::to_extend(&summary, Vec::new()).unwrap_or_default();
        let hash = blake3::hash(&bytes);
        let mut d = Digest::default();
        d.0.copy_from_slice(&hash.as_bytes()[..16]);
        d
    }

    /// Decodes a peer's history, checking every version (see [`LayoutVersion::checked`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let h: LayoutHistory = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        let mut out = LayoutHistory {
            versions: Vec::with_capacity(h.versions.len()),
            anchor: h.anchor,
            staged: h.staged,
            acks: h.acks,
        };
        for v in h.versions {
            out.insert(v.checked()?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u8) -> ActorId {
        ActorId([n; 16])
    }

    fn member(n: u8, dc: &str) -> LayoutMember {
        LayoutMember {
            id: id(n),
            dc: dc.into(),
            rack: format!("r{}", n % 3),
            capacity: 1,
            role: Role::Storage,
        }
    }

    fn join(h: &mut LayoutHistory, author: u8, n: u8, dc: &str) {
        h.stage(id(author), id(n), StagedChange::join_of(&member(n, dc)));
    }

    fn ids(v: &LayoutVersion) -> Vec<u8> {
        v.members().iter().map(|m| m.id.0[0]).collect()
    }

    #[test]
    fn concurrent_commits_resolve_the_same_way_and_the_loser_commits_next() {
        let mut a = LayoutHistory::bootstrap(member(1, "dc1"), [5; 32]);
        let mut b = a.clone();
        join(&mut a, 1, 2, "dc1");
        a.commit().unwrap();
        join(&mut b, 3, 3, "dc1");
        b.commit().unwrap();
        // Both hold a version 2, different ones.
        assert_ne!(a.current().unwrap().digest(), b.current().unwrap().digest());
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(
            ab.current().unwrap().digest(),
            ba.current().unwrap().digest()
        );
        assert_eq!(ab.current().unwrap().version, 2);
        // One of the joins lost; it is still pending and commits as version 3.
        let pending: Vec<ActorId> = ab.pending().iter().map(|p| p.0).collect();
        assert_eq!(pending.len(), 1);
        let v3 = ab.commit().unwrap().clone();
        assert_eq!(v3.version, 3);
        assert_eq!(ids(&v3), vec![1, 2, 3]);
        ba.merge(&ab);
        assert_eq!(ba.current().unwrap().encode(), v3.encode());
        assert!(ba.pending().is_empty());
    }

    #[test]
    fn a_stale_fork_loses_to_the_longer_chain_whatever_its_digest() {
        let mut h = LayoutHistory::bootstrap(member(1, "dc1"), [5; 32]);
        let stale = h.clone();
        join(&mut h, 1, 2, "dc1");
        h.commit().unwrap();
        join(&mut h, 1, 3, "dc1");
        h.commit().unwrap();
        let head = h.current().unwrap().clone();
        // Many different stale forks of version 2: some digest beats the real version 2.
        for n in 4..20 {
            let mut late = stale.clone();
            join(&mut late, n, n, "dc1");
            late.commit().unwrap();
            let mut m = h.clone();
            m.merge(&late);
            assert_eq!(m.current().unwrap().digest(), head.digest(), "fork {n}");
            assert_eq!(m.chain().len(), 3);
            // The fork's join is still pending and commits on top of the head.
            assert_eq!(m.pending().len(), 1);
            assert_eq!(m.commit().unwrap().version, 4);
        }
    }

    #[test]
    fn retirement_waits_for_live_members_and_not_for_down_ones() {
        let mut h = LayoutHistory::bootstrap(member(1, "dc1"), [5; 32]);
        join(&mut h, 1, 2, "dc1");
        join(&mut h, 1, 3, "dc1");
        h.commit().unwrap();
        assert_eq!(h.chain().len(), 2);
        assert!(!h.settle(|_| true), "nobody acknowledged version 2");
        h.ack(id(1), 2);
        h.ack(id(2), 2);
        assert!(!h.settle(|_| true), "node 3 has not");
        assert!(
            h.settle(|n| *n != id(3)),
            "node 3 is down: it does not block"
        );
        assert_eq!(h.chain().len(), 1);
        assert_eq!(h.read_version().unwrap().version, 2);
        // Removing the dead node commits version 3; the survivors stream and acknowledge it.
        h.stage(id(1), id(3), StagedChange::Remove);
        let v3 = h.commit().unwrap();
        assert_eq!(ids(v3), vec![1, 2]);
        assert!(h.is_removed(&id(3)));
        h.ack(id(1), 3);
        h.ack(id(2), 3);
        assert!(h.settle(|_| true));
        assert_eq!(h.read_version().unwrap().version, 3);
        assert!(h.pending().is_empty());
        let copy = LayoutHistory::decode(&h.encode()).unwrap();
        assert_eq!(copy, h);
    }

    #[test]
    fn an_acknowledgement_of_a_losing_version_does_not_count() {
        let mut a = LayoutHistory::bootstrap(member(1, "dc1"), [5; 32]);
        let mut b = a.clone();
        join(&mut a, 1, 2, "dc1");
        a.commit().unwrap();
        join(&mut b, 1, 3, "dc1");
        b.commit().unwrap();
        a.ack(id(1), 2);
        b.ack(id(1), 2);
        let mut m = a.clone();
        m.merge(&b);
        let winner = m.current().unwrap().clone();
        assert!(m.acked(&id(1), &winner));
        let loser_acks = m
            .acks
            .iter()
            .filter(|(n, v, d)| *n == id(1) && *v == 2 && *d != winner.digest())
            .count();
        assert_eq!(loser_acks, 1, "kept, but never counted for the winner");
    }

    /// Random operations on three replicas of the history.
    #[derive(Debug, Clone)]
    enum Op {
        Join { at: usize, node: u8, dc: u8 },
        Remove { at: usize, node: u8 },
        Commit { at: usize },
        Ack { at: usize, node: u8 },
        Settle { at: usize },
        Merge { from: usize, to: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 1..7u8, 0..2u8).prop_map(|(at, node, dc)| Op::Join { at, node, dc }),
            (0..3usize, 2..7u8).prop_map(|(at, node)| Op::Remove { at, node }),
            (0..3usize).prop_map(|at| Op::Commit { at }),
            (0..3usize, 1..7u8).prop_map(|(at, node)| Op::Ack { at, node }),
            (0..3usize).prop_map(|at| Op::Settle { at }),
            (0..3usize, 0..3usize).prop_map(|(from, to)| Op::Merge { from, to }),
        ]
    }

    fn run(ops: &[Op]) -> Vec<LayoutHistory> {
        let mut hs = vec![LayoutHistory::bootstrap(member(1, "dc1"), [1; 32]); 3];
        for op in ops {
            match *op {
                Op::Join { at, node, dc } => join(
                    &mut hs[at],
                    at as u8,
                    node,
                    if dc == 0 { "dc1" } else { "dc2" },
                ),
                Op::Remove { at, node } => {
                    hs[at].stage(id(at as u8), id(node), StagedChange::Remove)
                }
                Op::Commit { at } => {
                    hs[at].commit();
                }
                Op::Ack { at, node } => {
                    if let Some(v) = hs[at].current().map(|v| v.version) {
                        hs[at].ack(id(node), v);
                    }
                }
                Op::Settle { at } => {
                    hs[at].settle(|_| true);
                }
                Op::Merge { from, to } => {
                    let other = hs[from].clone();
                    hs[to].merge(&other);
                }
            }
        }
        hs
    }

    fn merged(a: &LayoutHistory, b: &LayoutHistory) -> LayoutHistory {
        let mut m = a.clone();
        m.merge(b);
        m
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn merge_laws(ops in proptest::collection::vec(op(), 0..30)) {
            let hs = run(&ops);
            let (a, b, c) = (&hs[0], &hs[1], &hs[2]);
            prop_assert_eq!(merged(a, b), merged(b, a));
            prop_assert_eq!(merged(&merged(a, b), c), merged(a, &merged(b, c)));
            prop_assert_eq!(merged(a, a), a.clone());
        }

        /// After everyone has exchanged histories, every node sees the same chain, and every
        /// version of it is byte-identical everywhere.
        #[test]
        fn exchanged_histories_agree(ops in proptest::collection::vec(op(), 0..30)) {
            let mut hs = run(&ops);
            let all = merged(&merged(&hs[0], &hs[1]), &hs[2]);
            for h in &mut hs {
                h.merge(&all);
            }
            let chains: Vec<Vec<Vec<u8>>> = hs
                .iter()
                .map(|h| h.chain().iter().map(|v| v.encode()).collect())
                .collect();
            prop_assert_eq!(&chains[0], &chains[1]);
            prop_assert_eq!(&chains[1], &chains[2]);
            // And every version on the chain extends its parent by one.
            for pair in hs[0].chain().windows(2) {
                prop_assert_eq!(pair[1].version, pair[0].version + 1);
                prop_assert_eq!(pair[1].parent, pair[0].digest());
            }
        }

        /// Compaction never changes what a node acts on.
        #[test]
        fn compaction_keeps_the_chain(ops in proptest::collection::vec(op(), 0..30)) {
            for h in run(&ops) {
                let mut c = h.clone();
                c.compact();
                let before: Vec<Vec<u8>> = h.chain().iter().map(|v| v.encode()).collect();
                let after: Vec<Vec<u8>> = c.chain().iter().map(|v| v.encode()).collect();
                prop_assert_eq!(before, after);
                prop_assert_eq!(
                    h.pending().iter().map(|p| p.0).collect::<Vec<_>>(),
                    c.pending().iter().map(|p| p.0).collect::<Vec<_>>()
                );
            }
        }
    }
}
