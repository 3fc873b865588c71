//! Operator views of the layout and the changes an operator makes to it: the topology
//! (members, their standing and ownership), the layout history (versions, digests,
//! acknowledgements, staged changes) and the removal of a dead member.

use crate::cluster::Cluster;
use crate::cluster::topology::Standing;
use crate::error::{NodeError, NodeResult};
use meridian_core::ActorId;
use meridian_core::layout::StagedChange;
use meridian_core::ring::MAX_REPLICAS_PER_DC;
use meridian_proto::v1 as pb;
use std::collections::BTreeSet;

pub fn topology(cluster: &Cluster) -> pb::TopologyResponse {
    let topo = cluster.topology();
    let placement = topo.current();
    let hints = cluster.hints.total();
    let mut known: BTreeSet<ActorId> = topo.members.keys().copied().collect();
    for v in topo.chain() {
        known.extend(v.members().iter().map(|m| m.id));
    }
    known.insert(cluster.me);
    let ids: Vec<ActorId> = known.into_iter().collect();
    let members = ids
        .iter()
        .map(|id| {
            let gossip = topo.members.get(id);
            let layout = topo.chain().iter().rev().find_map(|v| v.member(id));
            let state = match topo.standing(id) {
                Standing::Left => "left",
                _ if !topo.alive(id) => "down",
                Standing::Joining => "joining",
                Standing::Leaving => "leaving",
                Standing::Member => "up",
            };
            pb::Member {
                node_id: id.to_string(),
                datacenter: layout
                    .map(|m| m.dc.clone())
                    .or_else(|| gossip.map(|g| g.meta.dc.clone()))
                    .unwrap_or_default(),
                rack: layout
                    .map(|m| m.rack.clone())
                    .or_else(|| gossip.map(|g| g.meta.rack.clone()))
                    .unwrap_or_default(),
                capacity: layout
                    .map(|m| m.capacity)
                    .or_else(|| gossip.map(|g| g.meta.capacity))
                    .unwrap_or_default(),
                grpc_addr: gossip.map(|g| g.meta.grpc.clone()).unwrap_or_default(),
                http_addr: gossip.map(|g| g.meta.http.clone()).unwrap_or_default(),
                state: state.into(),
                synced_epoch: topo.history.acked_version(id).unwrap_or(0),
                partitions: placement.partitions_of(id, MAX_REPLICAS_PER_DC).len() as u32,
                hints_queued: if *id == cluster.me { hints } else { 0 },
                role: layout.map_or("storage", |m| m.role.name()).into(),
                layout_version: if *id == cluster.me {
                    topo.epoch()
                } else {
                    gossip.map_or(0, |g| g.layout_version)
                },
            }
        })
        .collect();
    let mut datacenters = Vec::new();
    for dc in placement.dcs() {
        let width = placement.owners(dc, 0, MAX_REPLICAS_PER_DC).len();
        let partitions = meridian_core::partition::PARTITIONS as usize;
        let mut owners = Vec::with_capacity(partitions * width);
        for p in 0..partitions {
            let list = placement.owners(dc, p as u16, width);
            for i in 0..width {
                let idx = list
                    .get(i)
                    .and_then(|n| ids.iter().position(|x| x == n))
                    .map_or(u32::MAX, |i| i as u32);
                owners.push(idx);
            }
        }
        datacenters.push(pb::DcOwners {
            datacenter: dc.to_string(),
            width: width as u32,
            owners,
        });
    }
    pb::TopologyResponse {
        epoch: topo.epoch(),
        partitions: meridian_core::partition::PARTITIONS,
        members,
        datacenters,
        node_id: cluster.me.to_string(),
        layout_digest: topo
            .current_version()
            .map(|v| v.digest().to_string())
            .unwrap_or_default(),
        read_version: topo.read_version(),
    }
}

pub fn layout(cluster: &Cluster) -> pb::LayoutResponse {
    let topo = cluster.topology();
    let history = &topo.history;
    let versions = topo
        .chain()
        .iter()
        .map(|v| pb::LayoutVersionInfo {
            version: v.version,
            digest: v.digest().to_string(),
            parent: v.parent.to_string(),
            members: v.members().iter().map(|m| m.id.to_string()).collect(),
            acked: v
                .members()
                .iter()
                .filter(|m| history.acked(&m.id, v))
                .map(|m| m.id.to_string())
                .collect(),
        })
        .collect();
    let pending: Vec<ActorId> = history.pending().iter().map(|(id, _)| *id).collect();
    let staged = history
        .staged()
        .iter()
        .map(|(id, s)| pb::StagedChangeInfo {
            node_id: id.to_string(),
            change: s.change.to_string(),
            pending: pending.contains(id),
            staged_at_version: s.stamp.version,
            author: s.stamp.author.to_string(),
        })
        .collect();
    pb::LayoutResponse {
        versions,
        staged,
        node_id: cluster.me.to_string(),
    }
}

/// Removes a member that will not come back: staged and committed here; the survivors
/// stream its partitions from the other replicas.
pub fn remove(cluster: &Cluster, wanted: &str) -> NodeResult<pb::RemoveResponse> {
    let topo = cluster.topology();
    let want = wanted.replace('-', "").to_ascii_lowercase();
    if want.is_empty() {
        return Err(NodeError::InvalidArgument("a node id is required".into()));
    }
    let mut candidates: BTreeSet<ActorId> = BTreeSet::new();
    for v in topo.chain() {
        candidates.extend(v.members().iter().map(|m| m.id));
    }
    let matches: Vec<ActorId> = candidates
        .into_iter()
        .filter(|id| id.to_string().starts_with(&want))
        .collect();
    let id = match matches.as_slice() {
        [one] => *one,
        [] => {
            return Err(NodeError::NotFound(format!(
                "no member of the layout has an id starting with {wanted:?}"
            )));
        }
        _ => {
            return Err(NodeError::InvalidArgument(format!(
                "{} members have ids starting with {wanted:?}; give more characters",
                matches.len()
            )));
        }
    };
    if id == cluster.me || topo.alive(&id) {
        return Err(NodeError::FailedPrecondition(format!(
            "node {id} is up: remove is for members that will never come back; use \
             `meridian admin decommission {id}` to move its data away first"
        )));
    }
    let version = cluster.layout.update(|h| {
        h.stage(cluster.me, id, StagedChange::Remove);
        h.commit();
        h.current().map_or(0, |v| v.version)
    })?;
    tracing::info!(node = %id, version, "removed a member from the layout");
    Ok(pb::RemoveResponse {
        node_id: id.to_string(),
        version,
    })
}
