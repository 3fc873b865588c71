//! Ownership as the request path needs it: the active layout versions (from the layout
//! history, never re-derived) joined with which nodes are believed up.
//!
//! While a transition is under way several versions are active. A write goes to the key's
//! replicas in every one of them and needs its level met in each ([`write_sets`]); a read is
//! answered by the oldest active version, whose owners all hold what they own
//! ([`read_replicas`]).
//!
//! Liveness is an input (the node's gossip, the simulation's failure detector), so the same
//! history and the same beliefs give the same replicas everywhere.
//!
//! [`write_sets`]: Ownership::write_sets
//! [`read_replicas`]: Ownership::read_replicas

use crate::actor::ActorId;
use crate::keyspace::{DEFAULT_REPLICATION, KeyspaceSpec};
use crate::layout::{Digest, LayoutHistory, LayoutVersion, Role};
use crate::quorum::{DcReplicas, Slot};
use crate::ring::{MAX_REPLICAS_PER_DC, Placement};
use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

static EMPTY: LazyLock<Placement> = LazyLock::new(Placement::empty);

/// Where a member stands in the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Known from gossip, not yet in a committed version.
    Joining,
    /// In the current version.
    Member,
    /// Out of the current version but still an owner in an older active one.
    Leaving,
    /// In no active version.
    Left,
}

#[derive(Debug, Clone)]
pub struct Ownership {
    pub me: ActorId,
    pub my_dc: String,
    pub history: Arc<LayoutHistory>,
    /// Active versions, oldest first; empty before this node has a layout.
    chain: Vec<LayoutVersion>,
    /// Nodes believed up (this node always is).
    up: BTreeSet<ActorId>,
}

impl Ownership {
    pub fn new(
        me: ActorId,
        my_dc: &str,
        history: Arc<LayoutHistory>,
        up: BTreeSet<ActorId>,
    ) -> Self {
        let chain = history.chain().into_iter().cloned().collect();
        Self {
            me,
            my_dc: my_dc.to_string(),
            history,
            chain,
            up,
        }
    }

    /// The current layout version (0 before the node has one).
    pub fn epoch(&self) -> u64 {
        self.chain.last().map_or(0, |v| v.version)
    }

    pub fn read_version(&self) -> u64 {
        self.chain.first().map_or(0, |v| v.version)
    }

    pub fn chain(&self) -> &[LayoutVersion] {
        &self.chain
    }

    pub fn current_version(&self) -> Option<&LayoutVersion> {
        self.chain.last()
    }

    pub fn current(&self) -> &Placement {
        self.chain.last().map_or(&EMPTY, |v| v.placement())
    }

    pub fn alive(&self, node: &ActorId) -> bool {
        *node == self.me || self.up.contains(node)
    }

    pub fn standing(&self, node: &ActorId) -> Standing {
        let in_version = |v: &LayoutVersion| v.member(node).is_some();
        match self.chain.last() {
            Some(cur) if in_version(cur) => Standing::Member,
            _ if self.chain.iter().any(in_version) => Standing::Leaving,
            _ if self.history.is_removed(node) => Standing::Left,
            _ => Standing::Joining,
        }
    }

    /// Whether `node` owns data in some active version.
    pub fn owns_somewhere(&self, node: &ActorId) -> bool {
        self.chain
            .iter()
            .any(|v| v.placement().member(node).is_some())
    }

    /// For each other replica this node shares partitions of `ks` with under the current
    /// version, in any DC, those partitions: what anti-entropy compares with it. Partitions
    /// are the same in every DC, so a replica in another DC compares like a local one.
    pub fn shared_partitions(
        &self,
        ks: &KeyspaceSpec,
    ) -> std::collections::BTreeMap<ActorId, crate::merkle::PartitionSet> {
        let placement = self.current();
        let factors = factors_at(placement, ks);
        let mut out: std::collections::BTreeMap<ActorId, crate::merkle::PartitionSet> =
            Default::default();
        for p in 0..crate::partition::PARTITIONS as u16 {
            let owners: Vec<ActorId> = factors
                .iter()
                .flat_map(|(dc, rf)| placement.owners_iter(dc, p, *rf))
                .collect();
            if !owners.contains(&self.me) {
                continue;
            }
            for n in owners.into_iter().filter(|n| *n != self.me) {
                out.entry(n).or_default().insert(p);
            }
        }
        out
    }

    /// The partitions of `ks` this node owns in some active version (in its DC): what it
    /// still holds or is being given, and so what anti-entropy may compare with it.
    pub fn held_partitions(&self, ks: &KeyspaceSpec) -> crate::merkle::PartitionSet {
        let mut held = crate::merkle::PartitionSet::default();
        for v in &self.chain {
            let placement = v.placement();
            let Some(rf) = factors_at(placement, ks)
                .into_iter()
                .find(|(dc, _)| *dc == self.my_dc)
                .map(|(_, rf)| rf)
            else {
                continue;
            };
            for p in 0..crate::partition::PARTITIONS as u16 {
                if placement
                    .owners_iter(&self.my_dc, p, rf)
                    .any(|n| n == self.me)
                {
                    held.insert(p);
                }
            }
        }
        held
    }

    /// Datacenters a keyspace lives in under the current version, with its factor there.
    pub fn factors(&self, ks: &KeyspaceSpec) -> Vec<(String, usize)> {
        factors_at(self.current(), ks)
    }

    /// The key's replicas in `version`, with liveness and the live nodes of each DC that may
    /// stand in for a down one.
    fn replicas_at(
        &self,
        placement: &Placement,
        ks: &KeyspaceSpec,
        partition: u16,
    ) -> Vec<DcReplicas> {
        factors_at(placement, ks)
            .into_iter()
            .map(|(dc, rf)| {
                let nodes = placement.owners(&dc, partition, rf);
                let spares = self.spares(&dc, partition, &nodes);
                DcReplicas {
                    replicas: nodes
                        .into_iter()
                        .map(|node| Slot {
                            node,
                            alive: self.alive(&node),
                        })
                        .collect(),
                    dc,
                    spares,
                }
            })
            .collect()
    }

    /// Stand-ins: the rest of the current preference list first, then anyone else in the DC.
    fn spares(&self, dc: &str, partition: u16, replicas: &[ActorId]) -> Vec<ActorId> {
        let current = self.current();
        let mut spares: Vec<ActorId> = current
            .owners(dc, partition, MAX_REPLICAS_PER_DC)
            .into_iter()
            .chain(current.members().filter(|m| m.dc == dc).map(|m| m.id))
            .filter(|n| !replicas.contains(n) && self.alive(n))
            .collect();
        dedup_keep_order(&mut spares);
        spares
    }

    /// The key's replica set in every active version, oldest first (identical sets once).
    pub fn write_sets(&self, ks: &KeyspaceSpec, partition: u16) -> Vec<Vec<DcReplicas>> {
        let mut sets: Vec<Vec<DcReplicas>> = Vec::new();
        for v in &self.chain {
            let set = self.replicas_at(v.placement(), ks, partition);
            if !sets.contains(&set) {
                sets.push(set);
            }
        }
        sets
    }

    /// Every replica of the key in any active version, per DC: where a write is sent.
    pub fn replicas(&self, ks: &KeyspaceSpec, partition: u16) -> Vec<DcReplicas> {
        let mut union: Vec<DcReplicas> = Vec::new();
        for set in self.write_sets(ks, partition) {
            for dc in set {
                match union.iter_mut().find(|d| d.dc == dc.dc) {
                    Some(u) => {
                        for slot in dc.replicas {
                            if !u.contains(&slot.node) {
                                u.replicas.push(slot);
                            }
                        }
                    }
                    None => union.push(dc),
                }
            }
        }
        for dc in &mut union {
            let nodes: Vec<ActorId> = dc.replicas.iter().map(|s| s.node).collect();
            dc.spares.retain(|s| !nodes.contains(s));
        }
        union
    }

    /// When this node is the reaper of partition `partition` of `ks` (see
    /// [`crate::tombstones`]), the other replicas it must hear from, in every DC. `None`
    /// while a layout change is under way: replicas are then moving, and a node about to
    /// receive the partition could be sent a deleted value by its old owner after a purge.
    pub fn reaper_peers(&self, ks: &KeyspaceSpec, partition: u16) -> Option<Vec<ActorId>> {
        if self.chain.len() != 1 {
            return None;
        }
        let replicas: Vec<ActorId> = self
            .replicas(ks, partition)
            .into_iter()
            .flat_map(|dc| dc.replicas.into_iter().map(|s| s.node))
            .collect();
        if crate::tombstones::reaper(&replicas) != Some(self.me) {
            return None;
        }
        Some(replicas.into_iter().filter(|n| *n != self.me).collect())
    }

    /// The key's replicas in the oldest active version: where reads are answered. An owner
    /// that has not acknowledged that version (it was down when the version settled, and
    /// has not caught up since) is treated as down: it may lack what it owns.
    pub fn read_replicas(&self, ks: &KeyspaceSpec, partition: u16) -> Vec<DcReplicas> {
        let Some(v) = self.chain.first() else {
            return Vec::new();
        };
        let mut dcs = self.replicas_at(v.placement(), ks, partition);
        // The founding version has nothing to stream: its owners hold it by definition.
        if v.parent != Digest::default() {
            for dc in &mut dcs {
                for slot in &mut dc.replicas {
                    slot.alive &= self.history.acked(&slot.node, v);
                }
            }
        }
        dcs
    }

    /// Partitions this node owns in the current version, among the first `width` owners of
    /// its DC, that it did not own in version `since` (all of them when `None`): what it has
    /// to stream in before it acknowledges the version. With the sources for each and
    /// whether they are remote: the other owners in its DC that hold the data (owners in the
    /// read version, or in a later version they acknowledged) or, for a DC where none of
    /// those is up (a new DC), those owners in the other DCs.
    pub fn gained(&self, since: Option<u64>, width: usize) -> Vec<(u16, Vec<ActorId>, bool)> {
        let before = since.and_then(|s| self.chain.iter().find(|v| v.version == s));
        // Who holds each version's data: everyone for the read version, else those who
        // acknowledged it. Looked up once per version, not once per partition and owner.
        let holders: Vec<Option<BTreeSet<ActorId>>> = self
            .chain
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (i > 0).then(|| {
                    v.members()
                        .iter()
                        .map(|m| m.id)
                        .filter(|id| self.history.acked(id, v))
                        .collect()
                })
            })
            .collect();
        let mut out = Vec::new();
        for p in self.current().partitions_of(&self.me, width) {
            if let Some(b) = before
                && b.placement()
                    .owners_iter(&self.my_dc, p, width)
                    .any(|n| n == self.me)
            {
                continue;
            }
            let mut local = Vec::new();
            let mut remote = Vec::new();
            for (i, v) in self.chain.iter().enumerate() {
                let placement = v.placement();
                for dc in placement.dcs() {
                    // Here, owners past `width` hold nothing of the partition; elsewhere
                    // the factors are not known, so every listed owner is asked.
                    let ranks = if dc == self.my_dc {
                        width
                    } else {
                        MAX_REPLICAS_PER_DC
                    };
                    for n in placement.owners_iter(dc, p, ranks) {
                        let holds = holders[i].as_ref().is_none_or(|h| h.contains(&n));
                        let list = if dc == self.my_dc {
                            &mut local
                        } else {
                            &mut remote
                        };
                        if holds && n != self.me && !list.contains(&n) {
                            list.push(n);
                        }
                    }
                }
            }
            // A local source that is down cannot serve the stream: when no local holder is
            // up (say the DC's only node that had streamed died and was removed), the other
            // DCs serve it, or the new owners would wait for it forever.
            if local.iter().any(|n| self.alive(n)) {
                out.push((p, local, false));
            } else {
                out.push((p, remote, true));
            }
        }
        out
    }

    /// Whether this node is a storage member of the current version.
    pub fn stores_data(&self) -> bool {
        self.current_version()
            .and_then(|v| v.member(&self.me))
            .is_some_and(|m| m.role == Role::Storage)
    }
}

/// Datacenters a keyspace lives in under `placement`, with its factor there (capped at the
/// DC's size).
fn factors_at(placement: &Placement, ks: &KeyspaceSpec) -> Vec<(String, usize)> {
    placement
        .dcs()
        .filter_map(|dc| {
            let rf = if ks.replication.is_empty() {
                DEFAULT_REPLICATION as usize
            } else {
                *ks.replication.get(dc)? as usize
            };
            let size = placement.members().filter(|m| m.dc == dc).count();
            let rf = rf.min(size).min(MAX_REPLICAS_PER_DC);
            (rf > 0).then(|| (dc.to_string(), rf))
        })
        .collect()
}

fn dedup_keep_order(v: &mut Vec<ActorId>) {
    let mut seen = Vec::with_capacity(v.len());
    v.retain(|n| {
        if seen.contains(n) {
            false
        } else {
            seen.push(*n);
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{LayoutMember, StagedChange};

    fn id(n: u8) -> ActorId {
        ActorId([n; 16])
    }

    fn lm(n: u8, dc: &str) -> LayoutMember {
        LayoutMember {
            id: id(n),
            dc: dc.into(),
            rack: format!("r{n}"),
            capacity: 1,
            role: Role::Storage,
        }
    }

    fn own(me: ActorId, dc: &str, up: BTreeSet<ActorId>, h: Arc<LayoutHistory>) -> Ownership {
        Ownership::new(me, dc, h, up)
    }

    fn view(nodes: &[u8]) -> BTreeSet<ActorId> {
        nodes.iter().map(|n| id(*n)).collect()
    }

    fn history(nodes: &[(u8, &str)]) -> LayoutHistory {
        let mut h = LayoutHistory::bootstrap(lm(nodes[0].0, nodes[0].1), [1; 32]);
        for (n, dc) in &nodes[1..] {
            h.stage(id(1), id(*n), StagedChange::join_of(&lm(*n, dc)));
        }
        h.commit();
        for (n, _) in nodes {
            h.ack(id(*n), 2);
        }
        h.settle(|_| true);
        h
    }

    fn nodes(dcs: &[DcReplicas]) -> Vec<Vec<ActorId>> {
        dcs.iter()
            .map(|d| d.replicas.iter().map(|s| s.node).collect())
            .collect()
    }

    fn spec(dc1: u32) -> KeyspaceSpec {
        let mut s = KeyspaceSpec::new("k", crate::ValueKind::Siblings);
        s.replication.insert("dc1".into(), dc1);
        s
    }

    #[test]
    fn replicas_compare_exactly_the_partitions_they_share_in_every_dc() {
        let nodes = [(1, "dc1"), (2, "dc1"), (3, "dc1"), (4, "dc2"), (5, "dc2")];
        let h = Arc::new(history(&nodes));
        let mut ks = spec(2);
        ks.replication.insert("dc2".into(), 1);
        let up = view(&[1, 2, 3, 4, 5]);
        let views: Vec<_> = nodes
            .iter()
            .map(|(n, dc)| own(id(*n), dc, up.clone(), h.clone()).shared_partitions(&ks))
            .collect();
        for (i, (a, _)) in nodes.iter().enumerate() {
            let me = own(id(*a), nodes[i].1, up.clone(), h.clone());
            for (peer, set) in &views[i] {
                let j = nodes.iter().position(|(n, _)| id(*n) == *peer).unwrap();
                // Symmetric: the peer compares the same partitions with this node.
                assert_eq!(views[j].get(&id(*a)), Some(set));
                for p in set.iter() {
                    let owners: Vec<ActorId> = me
                        .replicas(&ks, p)
                        .into_iter()
                        .flat_map(|d| d.replicas)
                        .map(|s| s.node)
                        .collect();
                    assert!(owners.contains(&id(*a)) && owners.contains(peer));
                }
            }
        }
        // What a node holds is what it shares with someone, here where every partition has
        // replicas elsewhere.
        for (i, (n, dc)) in nodes.iter().enumerate() {
            let me = own(id(*n), dc, up.clone(), h.clone());
            let shared: crate::merkle::PartitionSet = views[i]
                .values()
                .flat_map(|s| s.iter().collect::<Vec<_>>())
                .collect();
            assert_eq!(me.held_partitions(&ks), shared);
        }
        // dc2's single replica of each partition shares it with both of dc1's.
        let n4: usize = views[3].values().map(|s| s.len()).sum();
        let n5: usize = views[4].values().map(|s| s.len()).sum();
        assert_eq!(n4 + n5, 2 * crate::partition::PARTITIONS as usize);
    }

    #[test]
    fn while_a_member_streams_writes_reach_both_versions_and_reads_the_old_one() {
        let mut h = history(&[(1, "dc1"), (2, "dc1"), (3, "dc1")]);
        let before = own(id(1), "dc1", view(&[1, 2, 3]), Arc::new(h.clone()));
        h.stage(id(4), id(4), StagedChange::join_of(&lm(4, "dc1")));
        h.commit();
        let during = own(id(1), "dc1", view(&[1, 2, 3, 4]), Arc::new(h.clone()));
        assert_eq!((during.read_version(), during.epoch()), (2, 3));
        let ks = spec(2);
        let mut moved = 0;
        for p in 0..64u16 {
            let sets = during.write_sets(&ks, p);
            let old = before.replicas(&ks, p);
            assert_eq!(
                nodes(&during.read_replicas(&ks, p)),
                nodes(&old),
                "reads stay on version 2"
            );
            if sets.len() == 2 {
                moved += 1;
                assert_eq!(nodes(&sets[0]), nodes(&old));
                assert!(during.replicas(&ks, p)[0].replicas.len() > 2);
            }
        }
        assert!(moved > 0, "the join moved some of the first 64 partitions");
        // Once everyone acknowledged version 3, it is the only active one.
        for n in 1..=4 {
            h.ack(id(n), 3);
        }
        assert!(h.settle(|_| true));
        let after = own(id(1), "dc1", view(&[1, 2, 3, 4]), Arc::new(h));
        for p in 0..64u16 {
            assert_eq!(after.write_sets(&ks, p).len(), 1);
            assert_eq!(after.replicas(&ks, p)[0].replicas.len(), 2);
        }
    }

    #[test]
    fn a_reclaimed_partition_goes_to_its_current_owners_here() {
        let mut h = history(&[(1, "dc1"), (2, "dc1"), (3, "dc1")]);
        h.stage(id(4), id(4), StagedChange::join_of(&lm(4, "dc1")));
        h.commit();
        for n in 1..=4 {
            h.ack(id(n), 3);
        }
        assert!(h.settle(|_| true));
        let t1 = own(id(1), "dc1", view(&[1, 2, 3, 4]), Arc::new(h));
        let ks = spec(2);
        let reclaim = t1
            .reclaimable(std::slice::from_ref(&ks), None)
            .expect("settled");
        assert!(!reclaim.partitions.is_empty());
        for &p in reclaim.partitions.iter().take(64) {
            let heirs = t1.reclaim_heirs(&ks, p);
            assert_eq!(heirs, t1.current().owners("dc1", p, 2));
            assert!(!heirs.contains(&id(1)));
        }
        // A keyspace that does not live in this DC has no heirs here.
        let mut elsewhere = KeyspaceSpec::new("e", crate::ValueKind::Siblings);
        elsewhere.replication.insert("dc2".into(), 1);
        assert!(
            t1.reclaim_heirs(&elsewhere, reclaim.partitions[0])
                .is_empty()
        );
    }

    #[test]
    fn a_new_node_streams_from_its_dc_and_a_new_dc_from_the_others() {
        let mut h = history(&[(1, "dc1"), (2, "dc1"), (3, "dc1")]);
        h.stage(id(4), id(4), StagedChange::join_of(&lm(4, "dc1")));
        h.stage(id(5), id(5), StagedChange::join_of(&lm(5, "dc2")));
        h.commit();
        let t4 = own(id(4), "dc1", view(&[1, 2, 3, 4, 5]), Arc::new(h.clone()));
        let gained = t4.gained(None, 3);
        assert_eq!(gained.len(), t4.current().partitions_of(&id(4), 3).len());
        for (_, sources, remote) in &gained {
            assert!(!remote);
            assert!(!sources.is_empty() && !sources.contains(&id(4)));
        }
        let t5 = own(id(5), "dc2", view(&[1, 2, 3, 4, 5]), Arc::new(h.clone()));
        let gained = t5.gained(None, 1);
        assert_eq!(gained.len(), crate::partition::PARTITIONS as usize);
        assert!(gained.iter().all(|(_, s, remote)| *remote && !s.is_empty()));
        // Node 4 is new too: it holds nothing until it acknowledges the version, so it is
        // no source for anyone yet, and then it is.
        assert!(
            t4.gained(None, 3)
                .iter()
                .all(|(_, s, _)| !s.contains(&id(4)))
        );
        let mut h6 = h;
        h6.stage(id(6), id(6), StagedChange::join_of(&lm(6, "dc2")));
        h6.commit();
        let t6 = own(
            id(6),
            "dc2",
            view(&[1, 2, 3, 4, 5, 6]),
            Arc::new(h6.clone()),
        );
        assert!(
            t6.gained(None, 2)
                .iter()
                .all(|(_, s, remote)| *remote && !s.contains(&id(5)))
        );
        h6.ack(id(5), 3);
        let t6 = own(
            id(6),
            "dc2",
            view(&[1, 2, 3, 4, 5, 6]),
            Arc::new(h6.clone()),
        );
        assert!(
            t6.gained(None, 2)
                .iter()
                .all(|(_, s, remote)| !*remote && s == &vec![id(5)])
        );
        // Node 5 dies (simulation seed 11464): its DC-mate must not wait for it, the other DC
        // serves the stream again.
        let t6 = own(id(6), "dc2", view(&[1, 2, 3, 4, 6]), Arc::new(h6));
        assert!(
            t6.gained(None, 2)
                .iter()
                .all(|(_, s, remote)| *remote && !s.is_empty() && !s.contains(&id(5)))
        );
        // A settled member gains nothing in a version that did not move its partitions.
        let t1 = own(
            id(1),
            "dc1",
            view(&[1, 2, 3]),
            Arc::new(history(&[(1, "dc1"), (2, "dc1")])),
        );
        assert!(t1.gained(Some(2), 3).is_empty());
    }
}
