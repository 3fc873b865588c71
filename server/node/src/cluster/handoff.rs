//! Hint replay: hands held writes to their replica once the failure detector sees it up.

use super::Cluster;
use super::membership::{Status, now_ms};
use meridian_proto::v1 as pb;
use std::sync::Arc;
use std::time::Duration;

const BATCH: usize = 256;

impl Cluster {
    pub(super) async fn replay_hints(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            for target in self.hints.targets() {
                let topo = self.topology();
                let departed = topo
                    .members
                    .get(&target)
                    .is_some_and(|m| m.meta.status == Status::Left);
                if target == self.me || departed {
                    // Our own hints (a stale plan) merge locally; a departed node's data now
                    // lives with its successors, which streamed it.
                    self.drain_locally(target);
                    continue;
                }
                if !topo.alive(&target) {
                    continue;
                }
                if let Err(e) = self.deliver(target).await {
                    tracing::debug!(target_node = %target, error = %e, "hint delivery paused");
                }
            }
        }
    }

    fn drain_locally(&self, target: meridian_core::ActorId) {
        while let Ok(batch) = self.hints.next_batch(target, BATCH, now_ms()) {
            if batch.is_empty() {
                break;
            }
            for h in &batch {
                let _ = self.engine.merge_remote(&h.storage_key, &h.object);
            }
            if self.hints.delivered(target, &batch).is_err() {
                break;
            }
        }
    }

    async fn deliver(&self, target: meridian_core::ActorId) -> crate::error::NodeResult<()> {
        loop {
            let batch = self.hints.next_batch(target, BATCH, now_ms())?;
            if batch.is_empty() {
                return Ok(());
            }
            let topo = self.topology();
            let Some(url) = topo.grpc_of(&target) else {
                return Ok(());
            };
            let mut client = self.peers.client(target, url)?;
            let objects = batch
                .iter()
                .map(|h| pb::ObjectState {
                    storage_key: h.storage_key.clone().into(),
                    object: h.object.clone().into(),
                })
                .collect();
            client
                .replicate(pb::ReplicateRequest {
                    objects,
                    hint_for: Default::default(),
                })
                .await
                .map_err(|s| super::peers::peer_error(&target, "hint delivery", s))?;
            self.hints.delivered(target, &batch)?;
            tracing::debug!(target_node = %target, hints = batch.len(), "hints delivered");
        }
    }
}
