//! From the gossiped member list to ownership: the placement history every node folds the
//! same way, the current epoch, and a key's replicas as the quorum logic needs them.
//!
//! Joins are ordered by (first-start time, id) and leaves by (leave time, id), so every node
//! that knows the same members folds the same changes in the same order and gets the same
//! placement. While some member has not finished streaming the partitions it gained
//! (`synced_epoch` behind the current epoch), a key's replicas are the union of its owners
//! since the oldest unfinished epoch: writes reach old and new owners, and quorums are counted
//! over the union so they still intersect the old owners' quorums.

use crate::cluster::membership::{ClusterView, MemberState, Status};
use meridian_core::keyspace::DEFAULT_REPLICATION;
use meridian_core::quorum::{DcReplicas, Slot};
use meridian_core::ring::{Change, MAX_REPLICAS_PER_DC, Member, Placement};
use meridian_core::{ActorId, KeyspaceSpec};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Topology {
    pub me: ActorId,
    pub my_dc: String,
    pub members: BTreeMap<ActorId, MemberState>,
    /// Placement after each epoch; index = epoch.
    pub history: Arc<Vec<Arc<Placement>>>,
    /// Oldest epoch some active member has not finished streaming for (== current when
    /// nothing is moving).
    pub settled: u64,
}

impl Topology {
    pub fn build(
        me: ActorId,
        my_dc: &str,
        view: &ClusterView,
        previous: Option<&Topology>,
    ) -> Self {
        let changes = changes(view);
        let history = match previous {
            Some(p) if same_changes(p, &changes) => p.history.clone(),
            _ => Arc::new(fold(&changes)),
        };
        let current = history.len() as u64 - 1;
        let settled = view
            .members
            .values()
            .filter(|m| m.meta.status == Status::Up)
            .map(|m| m.meta.synced_epoch)
            .min()
            .unwrap_or(current)
            .min(current);
        Self {
            me,
            my_dc: my_dc.to_string(),
            members: view.members.clone(),
            history,
            settled,
        }
    }

    pub fn epoch(&self) -> u64 {
        self.history.len() as u64 - 1
    }

    pub fn current(&self) -> &Placement {
        &self.history[self.history.len() - 1]
    }

    pub fn at(&self, epoch: u64) -> &Placement {
        let i = (epoch as usize).min(self.history.len() - 1);
        &self.history[i]
    }

    pub fn alive(&self, node: &ActorId) -> bool {
        *node == self.me || self.members.get(node).is_some_and(|m| m.alive)
    }

    pub fn grpc_of(&self, node: &ActorId) -> Option<&str> {
        self.members.get(node).map(|m| m.meta.grpc.as_str())
    }

    /// Members that own data in `dc` now.
    pub fn dc_size(&self, dc: &str) -> usize {
        self.current().members().filter(|m| m.dc == dc).count()
    }

    /// Datacenters a keyspace lives in, with its factor there (capped at the DC's size).
    pub fn factors(&self, ks: &KeyspaceSpec) -> Vec<(String, usize)> {
        let dcs: Vec<String> = self.current().dcs().map(str::to_string).collect();
        dcs.into_iter()
            .filter_map(|dc| {
                let rf = if ks.replication.is_empty() {
                    DEFAULT_REPLICATION as usize
                } else {
                    *ks.replication.get(&dc)? as usize
                };
                let rf = rf.min(self.dc_size(&dc)).min(MAX_REPLICAS_PER_DC);
                (rf > 0).then_some((dc, rf))
            })
            .collect()
    }

    /// The key's replicas per DC (the union of owners while partitions move), with liveness
    /// and the live non-replicas that can stand in for a down one.
    pub fn replicas(&self, ks: &KeyspaceSpec, partition: u16) -> Vec<DcReplicas> {
        let mut out = Vec::new();
        for (dc, rf) in self.factors(ks) {
            let mut nodes: Vec<ActorId> = Vec::new();
            for epoch in self.settled..=self.epoch() {
                for n in self.at(epoch).owners(&dc, partition, rf) {
                    let departed = self
                        .members
                        .get(&n)
                        .is_some_and(|m| m.meta.status == Status::Left);
                    if !departed && !nodes.contains(&n) {
                        nodes.push(n);
                    }
                }
            }
            // Stand-ins: the rest of the preference list first, then anyone else in the DC.
            let mut spares: Vec<ActorId> = self
                .current()
                .owners(&dc, partition, MAX_REPLICAS_PER_DC)
                .into_iter()
                .chain(
                    self.current()
                        .members()
                        .filter(|m| m.dc == dc)
                        .map(|m| m.id),
                )
                .filter(|n| !nodes.contains(n) && self.alive(n))
                .collect();
            dedup_keep_order(&mut spares);
            out.push(DcReplicas {
                dc,
                replicas: nodes
                    .into_iter()
                    .map(|node| Slot {
                        node,
                        alive: self.alive(&node),
                    })
                    .collect(),
                spares,
            });
        }
        out
    }

    /// Partitions this node must hold in its DC now, among the first `width` owners (the
    /// largest replication factor in use there), but did not hold at `since`: what it has to
    /// stream in. With the sources to stream each from (every earlier owner in the DC).
    pub fn gained(&self, since: u64, width: usize) -> Vec<(u16, Vec<ActorId>)> {
        let current = self.current();
        let mut out = Vec::new();
        let before = self.at(since);
        for p in current.partitions_of(&self.me, width) {
            if since > 0 && before.owners(&self.my_dc, p, width).contains(&self.me) {
                continue;
            }
            let mut sources = Vec::new();
            for e in since..=self.epoch() {
                for n in self.at(e).owners(&self.my_dc, p, MAX_REPLICAS_PER_DC) {
                    let departed = self
                        .members
                        .get(&n)
                        .is_some_and(|m| m.meta.status == Status::Left);
                    if n != self.me && !departed && !sources.contains(&n) {
                        sources.push(n);
                    }
                }
            }
            out.push((p, sources));
        }
        out
    }
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

/// Membership changes in the order every node folds them.
fn changes(view: &ClusterView) -> Vec<Change> {
    let mut events: Vec<(u64, u8, ActorId, Change)> = Vec::new();
    for m in view.members.values() {
        let meta = &m.meta;
        events.push((
            meta.joined_at,
            0,
            meta.id,
            Change::Join(Member {
                id: meta.id,
                dc: meta.dc.clone(),
                rack: meta.rack.clone(),
                capacity: meta.capacity.max(1),
            }),
        ));
        if meta.status != Status::Up {
            events.push((meta.left_at, 1, meta.id, Change::Leave(meta.id)));
        }
    }
    events.sort_by_key(|e| (e.0, e.1, e.2));
    events.into_iter().map(|e| e.3).collect()
}

fn same_changes(previous: &Topology, changes: &[Change]) -> bool {
    // The fold is deterministic, so equal change lists give equal histories.
    let prev_view = ClusterView {
        members: previous.members.clone(),
        keyspaces: BTreeMap::new(),
    };
    self::changes(&prev_view) == changes
}

/// Placement after each change that altered it; index = epoch.
fn fold(changes: &[Change]) -> Vec<Arc<Placement>> {
    let mut history = vec![Arc::new(Placement::empty())];
    for change in changes {
        let Some(last) = history.last() else {
            break;
        };
        let next = last.apply(change);
        if next.epoch() != last.epoch() {
            history.push(Arc::new(next));
        }
    }
    history
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::membership::NodeMeta;

    fn id(n: u8) -> ActorId {
        ActorId([n; 16])
    }

    fn member(n: u8, joined_at: u64, synced: u64) -> MemberState {
        MemberState {
            meta: NodeMeta {
                id: id(n),
                dc: "dc1".into(),
                rack: format!("r{n}"),
                capacity: 1,
                grpc: format!("http://n{n}"),
                http: String::new(),
                joined_at,
                status: Status::Up,
                left_at: 0,
                synced_epoch: synced,
            },
            alive: true,
        }
    }

    fn view(members: Vec<MemberState>) -> ClusterView {
        ClusterView {
            members: members.into_iter().map(|m| (m.meta.id, m)).collect(),
            keyspaces: BTreeMap::new(),
        }
    }

    #[test]
    fn joins_fold_in_time_order_whatever_the_ids() {
        // Node 9 joined first; ids sort the other way.
        let v = view(vec![member(1, 200, 2), member(9, 100, 2)]);
        let t = Topology::build(id(1), "dc1", &v, None);
        assert_eq!(t.epoch(), 2);
        assert_eq!(
            t.at(1).members().map(|m| m.id).collect::<Vec<_>>(),
            vec![id(9)]
        );
    }

    #[test]
    fn while_a_member_streams_writes_reach_old_and_new_owners() {
        let ks = KeyspaceSpec::new("k", meridian_core::ValueKind::Siblings);
        let mut spec = ks.clone();
        spec.replication.insert("dc1".into(), 2);
        // Three nodes settled at epoch 3, then node 4 joins and has not streamed yet.
        let settled = view(vec![member(1, 1, 3), member(2, 2, 3), member(3, 3, 3)]);
        let before = Topology::build(id(1), "dc1", &settled, None);
        let moving = view(vec![
            member(1, 1, 4),
            member(2, 2, 4),
            member(3, 3, 4),
            member(4, 4, 3),
        ]);
        let during = Topology::build(id(1), "dc1", &moving, None);
        assert_eq!(during.settled, 3);
        let mut widened = 0;
        for p in 0..64u16 {
            let old = before.current().owners("dc1", p, 2);
            let new = during.current().owners("dc1", p, 2);
            let replicas: Vec<ActorId> = during.replicas(&spec, p)[0]
                .replicas
                .iter()
                .map(|s| s.node)
                .collect();
            for n in old.iter().chain(new.iter()) {
                assert!(replicas.contains(n), "partition {p}: {n} missing");
            }
            if old != new {
                widened += 1;
                assert!(replicas.len() > 2);
            }
        }
        assert!(
            widened > 0,
            "the join moved some of the first 64 partitions"
        );
        // Once node 4 has caught up, only the new owners remain.
        let done = view(vec![
            member(1, 1, 4),
            member(2, 2, 4),
            member(3, 3, 4),
            member(4, 4, 4),
        ]);
        let after = Topology::build(id(1), "dc1", &done, None);
        for p in 0..64u16 {
            assert_eq!(after.replicas(&spec, p)[0].replicas.len(), 2);
        }
    }

    #[test]
    fn a_new_node_streams_what_it_gained_from_earlier_owners() {
        let v = view(vec![
            member(1, 1, 3),
            member(2, 2, 3),
            member(3, 3, 3),
            member(4, 4, 0),
        ]);
        let t = Topology::build(id(4), "dc1", &v, None);
        let gained = t.gained(0, 3);
        assert!(!gained.is_empty());
        assert_eq!(gained.len(), t.current().partitions_of(&id(4), 3).len());
        for (_, sources) in &gained {
            assert!(!sources.contains(&id(4)));
            assert!(!sources.is_empty());
        }
        // A settled member gains nothing when nothing changed.
        let t1 = Topology::build(id(1), "dc1", &v, None);
        assert!(t1.gained(t1.epoch(), 3).is_empty());
    }
}
