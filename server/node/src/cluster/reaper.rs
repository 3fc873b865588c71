//! Tombstone GC on a node: the core's two-step purge ([`meridian_core::tombstones`]) carried
//! over the `Peer.Tombstones` call.
//!
//! [`Reaper`] walks the partitions one at a time, at `tombstone_sweeps_per_sec`. For each
//! keyspace whose partition this node is the reaper of (its smallest replica id, in every
//! DC, while no layout change is under way) it scans its tombstones, asks every other
//! replica about them in one call each, records the confirmed ones in the `reaper` column
//! family, and purges those confirmed at least `tombstone_grace_secs` ago everywhere. A
//! replica that does not answer confirms and purges nothing, so a DC that is cut off holds
//! every tombstone of its partitions until it is back.

use super::Cluster;
use super::membership::now_ms;
use crate::error::{NodeError, NodeResult};
use meridian_core::ActorId;
use meridian_core::partition::{PARTITIONS, slice_prefix};
use meridian_core::tombstones::{self, Confirmed, Reply, Request, Sweep};
use meridian_proto::v1 as pb;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub struct Reaper {
    cluster: Arc<Cluster>,
    per_partition: Duration,
    grace_ms: u64,
}

impl Reaper {
    pub fn spawn(cluster: Arc<Cluster>, sweeps_per_sec: f64, grace_secs: u64) {
        if sweeps_per_sec <= 0.0 {
            tracing::info!("tombstone GC is off");
            return;
        }
        let me = Self {
            cluster,
            per_partition: Duration::from_secs_f64(1.0 / sweeps_per_sec),
            grace_ms: grace_secs.saturating_mul(1000),
        };
        tokio::spawn(me.run());
    }

    async fn run(self) {
        let mut stop = self.cluster.stop.subscribe();
        loop {
            for p in 0..PARTITIONS as u16 {
                if let Err(e) = self.sweep(p).await {
                    self.cluster.metrics.reaper_failures.inc();
                    tracing::debug!(partition = p, error = %e, "tombstone sweep failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.per_partition) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    async fn sweep(&self, partition: u16) -> NodeResult<()> {
        let topo = self.cluster.topology();
        for spec in self.cluster.engine.keyspaces().list() {
            let Some(peers) = topo.reaper_peers(&spec, partition) else {
                continue;
            };
            self.sweep_keyspace(partition, spec.id(), &peers).await?;
        }
        Ok(())
    }

    async fn sweep_keyspace(&self, partition: u16, ks: u64, peers: &[ActorId]) -> NodeResult<()> {
        let engine = self.cluster.engine.clone();
        let now = now_ms();
        let grace = self.grace_ms;
        let peer_count = peers.len();
        let sweep = tokio::task::spawn_blocking(move || -> NodeResult<Sweep> {
            // Every dead key: a record whose key the scan did not reach would be forgotten.
            let dead = engine.dead_keys(partition, ks, now)?;
            let records = confirmed(&engine, partition, ks)?;
            Ok(Sweep::plan(dead, records, peer_count, now, grace))
        })
        .await
        .map_err(|e| NodeError::Internal(format!("tombstone sweep task failed: {e}")))??;
        if sweep.is_empty() {
            return Ok(());
        }
        let mut sweep = sweep;
        let body = sweep.request().encode();
        let mut failed = None;
        if sweep.asks_peers() {
            for peer in peers {
                match self.ask(*peer, &body).await {
                    Ok(reply) => sweep.on_reply(&reply),
                    Err(e) => failed = Some(e),
                }
            }
        }
        let outcome = sweep.finish(now_ms());
        let engine = self.cluster.engine.clone();
        let metrics = self.cluster.metrics.clone();
        tokio::task::spawn_blocking(move || -> NodeResult<()> {
            let mut forget = outcome.forget;
            for c in &outcome.purge {
                engine.purge(c)?;
                forget.push(c.storage_key.clone());
            }
            let put: Vec<(Vec<u8>, Vec<u8>)> = outcome
                .confirm
                .iter()
                .map(|(k, c)| (k.clone(), c.encode().to_vec()))
                .collect();
            metrics.tombstones_confirmed.inc_by(put.len() as u64);
            engine.storage().update_confirmed(&put, forget.into_iter())
        })
        .await
        .map_err(|e| NodeError::Internal(format!("tombstone sweep task failed: {e}")))??;
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn ask(&self, peer: ActorId, body: &[u8]) -> NodeResult<Reply> {
        let url = self
            .cluster
            .topology()
            .grpc_of(&peer)
            .map(str::to_string)
            .ok_or_else(|| NodeError::Unavailable(format!("node {peer} has no known address")))?;
        let mut client = self.cluster.peers.bulk_client(peer, &url)?;
        let resp = client
            .tombstones(pb::TombstoneMessage {
                body: body.to_vec().into(),
            })
            .await
            .map_err(|s| super::peers::peer_error(&peer, "tombstone sweep", s))?
            .into_inner();
        Reply::decode(&resp.body).map_err(|e| NodeError::Unavailable(format!("node {peer}: {e}")))
    }
}

/// The reaper's confirmation records for one keyspace's slice of a partition.
fn confirmed(
    engine: &crate::engine::Engine,
    partition: u16,
    ks: u64,
) -> NodeResult<BTreeMap<Vec<u8>, Confirmed>> {
    let prefix = slice_prefix(partition, ks);
    let mut out = BTreeMap::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = engine
            .storage()
            .confirmed_range(&prefix, after.as_deref(), 1024)?;
        let Some((last, _)) = page.last() else {
            return Ok(out);
        };
        after = Some(last.clone());
        for (k, v) in page {
            match Confirmed::decode(&v) {
                Some(c) => {
                    out.insert(k, c);
                }
                // Unreadable: confirm again rather than purge on a guess.
                None => {
                    out.insert(
                        k,
                        Confirmed {
                            digest: 0,
                            at_ms: u64::MAX,
                        },
                    );
                }
            }
        }
    }
}

/// A reaper's question, answered on this node.
pub async fn answer(cluster: &Cluster, body: &[u8]) -> Result<Vec<u8>, tonic::Status> {
    let request = Request::decode(body).map_err(tonic::Status::invalid_argument)?;
    let engine = cluster.engine.clone();
    let reply = tokio::task::spawn_blocking(move || {
        tombstones::answer(
            &request,
            |k| engine.storage().get_data(k),
            |c| engine.purge(c),
        )
    })
    .await
    .map_err(|e| tonic::Status::internal(format!("tombstone task failed: {e}")))?
    .map_err(tonic::Status::from)?;
    Ok(reply.encode())
}
