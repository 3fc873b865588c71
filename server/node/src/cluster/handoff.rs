//! Hint replay: hands held writes to their replica once the failure detector sees it up.

use super::Cluster;
use super::membership::now_ms;
use meridian_core::handoff::{self, HintRoute, Redirect};
use meridian_core::limits::MAX_BATCH_BYTES;
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
                match handoff::route(&topo, &target) {
                    HintRoute::Redirect => self.redirect(target).await,
                    HintRoute::Wait => {}
                    HintRoute::Deliver => {
                        if let Err(e) = self.deliver(target).await {
                            tracing::debug!(target_node = %target, error = %e, "hint delivery paused");
                        }
                    }
                }
            }
        }
    }

    /// Hints whose target no longer owns anything (it left) or that are addressed to this
    /// node go to the key's current replicas instead.
    async fn redirect(&self, target: meridian_core::ActorId) {
        loop {
            let Ok(batch) = self
                .hints
                .next_batch(target, BATCH, MAX_BATCH_BYTES, now_ms())
            else {
                return;
            };
            if batch.is_empty() {
                return;
            }
            for h in &batch {
                let state = pb::ObjectState {
                    storage_key: h.storage_key.clone().into(),
                    object: h.object.clone().into(),
                };
                let Some((partition, ks_id, _)) =
                    meridian_core::partition::parse_storage_key(&h.storage_key)
                else {
                    continue;
                };
                let Some(ks) = self
                    .engine
                    .keyspaces()
                    .list()
                    .into_iter()
                    .find(|k| k.id() == ks_id)
                else {
                    continue;
                };
                let topo = self.topology();
                for to in handoff::redirect(&topo, &ks, partition) {
                    let (node, delivered) = match to {
                        Redirect::MergeHere => match self.merge_local(&state) {
                            Err(e) if e.is_bad_object() => {
                                self.set_aside("hint", target, &state, &e.to_string());
                                continue;
                            }
                            r => (self.me, r.map(|_| ())),
                        },
                        Redirect::Send(node) => (node, self.replicate_to(node, &state, None).await),
                        Redirect::KeepFor(node) => (
                            node,
                            Err(crate::error::NodeError::Unavailable("replica down".into())),
                        ),
                    };
                    // Not delivered: keep it as a hint for that replica instead.
                    if delivered.is_err()
                        && node != self.me
                        && let Err(e) = self.hints.add(
                            node,
                            &state.storage_key,
                            &state.object,
                            now_ms(),
                            self.engine.syncs_storage_key(&state.storage_key),
                        )
                    {
                        tracing::error!(node = %node, error = %e, "cannot store hint");
                    }
                }
            }
            if self.hints.delivered(target, &batch).is_err() {
                return;
            }
        }
    }

    async fn deliver(&self, target: meridian_core::ActorId) -> crate::error::NodeResult<()> {
        loop {
            let batch = self
                .hints
                .next_batch(target, BATCH, MAX_BATCH_BYTES, now_ms())?;
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
            let response = client
                .replicate(pb::ReplicateRequest {
                    objects,
                    hint_for: Default::default(),
                })
                .await
                .map_err(|s| super::peers::peer_error(&target, "hint delivery", s))?
                .into_inner();
            // What the target could not merge will not merge on a retry either: it is set
            // aside here, and the rest of the queue moves on.
            for r in &response.rejected {
                if let Some(h) = batch.iter().find(|h| h.storage_key == r.storage_key) {
                    let state = pb::ObjectState {
                        storage_key: h.storage_key.clone().into(),
                        object: h.object.clone().into(),
                    };
                    self.set_aside("hint", target, &state, &r.reason);
                }
            }
            self.hints.delivered(target, &batch)?;
            tracing::debug!(target_node = %target, hints = batch.len(), "hints delivered");
        }
    }

    /// Before this node leaves, every hint it holds moves to another live node (of the
    /// target's DC when possible), which keeps it as a stand-in and replays it later.
    pub(super) async fn hand_off_hints(&self) {
        for target in self.hints.targets() {
            let topo = self.topology();
            let Some(heir) = handoff::heir(&topo, &target) else {
                tracing::warn!(target_node = %target, "no live node to take this node's hints");
                continue;
            };
            while let Ok(batch) = self
                .hints
                .next_batch(target, BATCH, MAX_BATCH_BYTES, now_ms())
            {
                if batch.is_empty() {
                    break;
                }
                let mut ok = true;
                for h in &batch {
                    let state = pb::ObjectState {
                        storage_key: h.storage_key.clone().into(),
                        object: h.object.clone().into(),
                    };
                    ok &= self.replicate_to(heir, &state, Some(target)).await.is_ok();
                }
                if !ok || self.hints.delivered(target, &batch).is_err() {
                    tracing::warn!(target_node = %target, heir = %heir, "handing hints over failed");
                    break;
                }
            }
        }
    }
}
