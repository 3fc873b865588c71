//! Membership changes move data: after a join or a leave, each node streams in the partitions
//! it gained (from their earlier owners in its DC), then gossips the epoch it has caught up
//! with. Until every active member has, writes go to old and new owners alike (see
//! topology.rs), so no acknowledged write is missed by the move.

use super::Cluster;
use super::membership::{Status, now_ms};
use crate::error::{NodeError, NodeResult};
use meridian_core::ActorId;
use meridian_proto::v1 as pb;
use std::sync::Arc;
use std::time::Duration;

impl Cluster {
    pub(super) async fn stream_gained_partitions(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(300));
        loop {
            tick.tick().await;
            let topo = self.topology();
            let meta = self.meta();
            let epoch = topo.epoch();
            if meta.synced_epoch >= epoch || meta.status != Status::Up {
                continue;
            }
            if topo.current().member(&self.me).is_none() {
                continue;
            }
            // A fresh node first sees only itself; it must not claim to have caught up
            // with that lonely placement before gossip has shown it the cluster.
            if self.expects_peers && topo.members.len() < 2 {
                continue;
            }
            // Rank matters, not just presence in the (wider) preference list: a node that
            // moves up into the first N owners must fetch what it did not receive as N+1st.
            let width = self
                .engine
                .keyspaces()
                .list()
                .iter()
                .flat_map(|ks| topo.factors(ks))
                .filter(|(dc, _)| *dc == self.my_dc)
                .map(|(_, rf)| rf)
                .max()
                .unwrap_or(1);
            let gained = topo.gained(meta.synced_epoch, width);
            let total = gained.len();
            let started = std::time::Instant::now();
            // One stream per source, covering every gained partition it held.
            let mut by_source: std::collections::BTreeMap<ActorId, Vec<u16>> = Default::default();
            let mut unsourced = 0usize;
            for (partition, sources) in &gained {
                let live: Vec<_> = sources.iter().filter(|s| topo.alive(s)).collect();
                if live.is_empty() && !sources.is_empty() {
                    unsourced += 1;
                }
                for s in live {
                    by_source.entry(*s).or_default().push(*partition);
                }
            }
            let mut objects = 0u64;
            let mut complete = unsourced == 0;
            for (source, partitions) in by_source {
                match self.pull_partitions(source, &partitions).await {
                    Ok(n) => objects += n,
                    Err(e) => {
                        complete = false;
                        tracing::warn!(source = %source, error = %e, "partition stream failed");
                    }
                }
            }
            if !complete {
                // Some partition had no reachable source; try again on the next tick.
                continue;
            }
            if self.topology().epoch() != epoch {
                continue;
            }
            match self.update_meta(|m| m.synced_epoch = epoch).await {
                Ok(_) => tracing::info!(
                    epoch,
                    partitions = total,
                    objects,
                    ms = started.elapsed().as_millis() as u64,
                    "caught up with placement"
                ),
                Err(e) => tracing::error!(error = %e, "cannot record the synced epoch"),
            }
        }
    }

    async fn pull_partitions(&self, source: ActorId, partitions: &[u16]) -> NodeResult<u64> {
        let topo = self.topology();
        let url = topo
            .grpc_of(&source)
            .ok_or_else(|| NodeError::Unavailable(format!("no address for node {source}")))?;
        let mut client = self.peers.client(source, url)?;
        let mut stream = client
            .stream_partition(pb::PartitionRequest {
                partitions: partitions.iter().map(|p| u32::from(*p)).collect(),
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
                self.merge_local(obj)?;
                n += 1;
            }
        }
        self.metrics.streamed_objects.inc_by(n);
        Ok(n)
    }

    /// Starts this node's decommission and reports progress until every remaining member has
    /// streamed in what it gained; then marks the node left and asks it to stop.
    pub async fn decommission(
        self: Arc<Self>,
        tx: tokio::sync::mpsc::Sender<Result<pb::DecommissionProgress, tonic::Status>>,
    ) {
        if self.meta().status == Status::Up {
            let r = self
                .update_meta(|m| {
                    m.status = Status::Leaving;
                    m.left_at = now_ms();
                })
                .await;
            if let Err(e) = r {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
            tracing::info!("decommission started");
        }
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let topo = self.topology();
            let epoch = topo.epoch();
            let mine_gone = topo.current().member(&self.me).is_none();
            let active: Vec<_> = topo
                .members
                .values()
                .filter(|m| m.meta.status == Status::Up)
                .collect();
            let pending = active
                .iter()
                .filter(|m| m.meta.synced_epoch < epoch)
                .count();
            let done = mine_gone && pending == 0;
            if done {
                self.hand_off_hints().await;
                // Tell the cluster first, so that when the operator sees "done" every node
                // is about to (or already does) see the node as gone.
                let meta = self
                    .update_meta(|m| m.status = Status::Left)
                    .await
                    .unwrap_or_else(|_| self.meta());
                self.membership.publish_gone(&meta).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            let progress = pb::DecommissionProgress {
                epoch,
                pending_nodes: pending as u32,
                total_nodes: active.len() as u32,
                done,
                message: if done {
                    "data moved; the node has left and stops now".into()
                } else if !mine_gone {
                    "waiting for the cluster to see the node leaving".into()
                } else {
                    format!("{pending} of {} nodes still streaming", active.len())
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
