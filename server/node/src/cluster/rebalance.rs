//! Layout changes move data. When a new version gives this node partitions it did not hold,
//! it streams them in (from the earlier owners in its DC, or from the other DCs when its DC
//! is new) and then acknowledges the version in the layout history. Until every live owner
//! has, the older version stays active: writes reach old and new owners, reads stay with the
//! old ones (see topology.rs), so no acknowledged write is missed by the move.
//!
//! A node streams for version v only once every live node has adopted v, and a little later:
//! a write coordinated under an older layout would otherwise land on the old owners after
//! the stream had passed them.

use super::Cluster;
use crate::error::{NodeError, NodeResult};
use meridian_core::ActorId;
use meridian_core::layout::StagedChange;
use meridian_core::layout::streaming::StreamGate;
use meridian_proto::v1 as pb;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Cluster {
    /// Streams what each new layout version gives this node and then acknowledges it. The
    /// core decides when (`StreamGate`) and from whom (`Ownership::stream_plan`).
    pub(super) async fn stream_gained_partitions(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(300));
        let mut gate = StreamGate::default();
        let epoch = Instant::now();
        loop {
            tick.tick().await;
            let topo = self.topology();
            let keyspaces = self.engine.keyspaces().list();
            let Some(plan) = topo.stream_plan(&keyspaces) else {
                continue;
            };
            let version = plan.version;
            let lagging = topo
                .members
                .values()
                .filter(|m| m.alive && m.meta.id != self.me && m.layout_version < version)
                .count();
            let now = epoch.elapsed().as_millis() as u64;
            // In-flight writes coordinated under the previous layout end within a peer call.
            let wait = self.peers.timeout().as_millis() as u64;
            if !gate.ready(version, lagging, now, wait) {
                continue;
            }
            let started = Instant::now();
            let mut objects = 0u64;
            let mut complete = plan.complete;
            for pull in plan.pulls {
                match self
                    .pull_partitions(pull.source, &pull.partitions, pull.keyspaces)
                    .await
                {
                    Ok(n) => objects += n,
                    Err(e) => {
                        complete = false;
                        tracing::warn!(source = %pull.source, error = %e, "partition stream failed");
                    }
                }
            }
            if !complete {
                // Some partition had no reachable source; try again on the next tick.
                continue;
            }
            if self.topology().epoch() != version {
                continue;
            }
            match self.layout.update(|h| h.ack(self.me, version)) {
                Ok(()) => tracing::info!(
                    version,
                    partitions = plan.partitions,
                    objects,
                    ms = started.elapsed().as_millis() as u64,
                    "holds its data for the layout version: acknowledged"
                ),
                Err(e) => tracing::error!(error = %e, "cannot record the acknowledgement"),
            }
        }
    }

    async fn pull_partitions(
        &self,
        source: ActorId,
        partitions: &[u16],
        keyspace_ids: Vec<u64>,
    ) -> NodeResult<u64> {
        let topo = self.topology();
        let url = topo
            .grpc_of(&source)
            .ok_or_else(|| NodeError::Unavailable(format!("no address for node {source}")))?;
        let mut client = self.peers.client(source, url)?;
        let mut stream = client
            .stream_partition(pb::PartitionRequest {
                partitions: partitions.iter().map(|p| u32::from(*p)).collect(),
                keyspace_ids,
            })
            .await
            .map_err(|s| super::peers::peer_error(&source, "partition stream", s))?
            .into_inner();
        let mut n = 0u64;
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|s| super::peers::peer_error(&source, "partition stream", s))?
        {
            for obj in &chunk.objects {
                match self.merge_local(obj) {
                    Ok(_) => n += 1,
                    // One unmergeable object must not stop the stream (it would restart and
                    // fail on it forever): it is reported and set aside.
                    Err(e) if e.is_bad_object() => {
                        self.set_aside("stream", source, obj, &e.to_string())
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.metrics.streamed_objects.inc_by(n);
        Ok(n)
    }

    /// Whether a live peer gossips exactly this node's layout fingerprint.
    fn layout_held_elsewhere(&self) -> bool {
        let topo = self.topology();
        let mine = self.layout.fingerprint().to_string();
        let peers: Vec<meridian_core::layout::agent::PeerLayout> = topo
            .members
            .values()
            .filter(|m| m.alive && m.meta.id != self.me)
            .map(|m| meridian_core::layout::agent::PeerLayout {
                id: m.meta.id,
                version: m.layout_version,
                differs: m.layout_hash != mine,
            })
            .collect();
        meridian_core::layout::agent::LayoutAgent::history_held_elsewhere(&peers)
    }

    /// Starts this node's decommission (its removal from the layout) and reports progress
    /// until no active version gives it anything: the members of the new version have all
    /// acknowledged it (down ones do not hold it up). Then the node hands its hints over and
    /// stops.
    pub async fn decommission(
        self: Arc<Self>,
        tx: tokio::sync::mpsc::Sender<Result<pb::DecommissionProgress, tonic::Status>>,
    ) {
        if !self.layout.get().is_removed(&self.me) {
            let me = self.me;
            let r = self.layout.update(|h| {
                h.stage(me, me, StagedChange::Remove);
                h.commit().map(|v| v.version)
            });
            match r {
                Ok(v) => tracing::info!(version = ?v, "decommission started"),
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
        }
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let topo = self.topology();
            let epoch = topo.epoch();
            let mine_gone = topo
                .current_version()
                .is_some_and(|v| v.member(&self.me).is_none());
            let owners: Vec<ActorId> = topo.current().members().map(|m| m.id).collect();
            let pending = topo.current_version().map_or(0, |v| {
                owners
                    .iter()
                    .filter(|n| topo.alive(n) && !topo.history.acked(n, v))
                    .count()
            });
            let moved = mine_gone && !topo.owns_somewhere(&self.me);
            if moved {
                self.hand_off_hints().await;
            }
            // Stop only once a live peer holds exactly this node's layout history: a change
            // staged or committed here (an operator's `remove` sent to this node, say) would
            // otherwise stop with it (sim seed 462348).
            let done = moved && self.layout_held_elsewhere();
            let progress = pb::DecommissionProgress {
                epoch,
                pending_nodes: pending as u32,
                total_nodes: owners.len() as u32,
                done,
                message: if done {
                    "data moved; the node has left and stops now".into()
                } else if moved {
                    "data moved; waiting for a peer to hold this node's layout".into()
                } else if !mine_gone {
                    "waiting for the layout without this node".into()
                } else {
                    format!("{pending} of {} nodes still streaming", owners.len())
                },
            };
            // The admin client may have gone away; the decommission goes on regardless.
            let _ = tx.send(Ok(progress)).await;
            if done {
                let _ = self.stop.send(true);
                return;
            }
        }
    }
}
