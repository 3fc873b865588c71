//! Deletes the data of partitions this node no longer owns, once the layout change that
//! moved them has retired: then every owner of the settled version has acknowledged it,
//! so the data lives on its new owners. Counted in `meridian_reclaimed_bytes_total`.
//!
//! Each object is first handed to the partition's current owners as a hint: a node that was
//! down while the change settled may hold the only copy of a write (see
//! [`meridian_core::layout::ownership::Ownership::reclaim_heirs`]).

use super::Cluster;
use crate::cluster::membership::now_ms;
use crate::error::NodeResult;
use meridian_core::layout::Digest;
use std::sync::Arc;
use std::time::Duration;

pub struct Reclaim {
    cluster: Arc<Cluster>,
    /// The settled version this node last reclaimed for.
    done_for: Option<(u64, Digest)>,
}

impl Reclaim {
    pub fn spawn(cluster: Arc<Cluster>) {
        let me = Self {
            cluster,
            done_for: None,
        };
        tokio::spawn(me.run());
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(e) = self.step() {
                tracing::warn!(error = %e, "reclaiming moved partitions failed");
            }
        }
    }

    fn step(&mut self) -> NodeResult<()> {
        let c = &self.cluster;
        let topo = c.topology();
        let Some(r) = topo.reclaimable(&c.engine.keyspaces().list(), self.done_for) else {
            return Ok(());
        };
        let present = r.partitions.iter().any(|p| {
            c.engine
                .storage()
                .data_range(&p.to_be_bytes(), None, 1)
                .is_ok_and(|d| !d.is_empty())
        });
        if present {
            // This node minted into what it is about to delete. Should a later version give
            // a partition back, its counters there would restart at dots peers still hold:
            // mint under a new incarnation first (durably), so every later dot is new.
            let incarnation = crate::identity::next_incarnation(c.engine.storage())?;
            let actor = meridian_core::ActorId::for_incarnation(*c.me.as_bytes(), incarnation);
            c.engine.set_actor(actor);
            tracing::info!(
                incarnation,
                "minting under a new incarnation before reclaiming"
            );
        }
        let mut bytes = 0u64;
        let mut partitions = 0usize;
        for p in r.partitions {
            // A newer version may give the partition back: stop, and start over once that
            // one has settled.
            let now = c.topology();
            if now.chain().len() != 1 || now.epoch() != r.version.0 {
                return Ok(());
            }
            self.hand_off(&now, p)?;
            let n = c.engine.drop_partition(p)?;
            if n > 0 {
                bytes += n;
                partitions += 1;
            }
        }
        c.metrics.reclaimed_bytes.inc_by(bytes);
        if bytes > 0 {
            tracing::info!(
                version = r.version.0,
                partitions,
                bytes,
                "deleted data of partitions this node no longer owns"
            );
        }
        self.done_for = Some(r.version);
        Ok(())
    }

    /// Keeps a hint of every object of partition `p` for each of its current owners here.
    fn hand_off(&self, topo: &super::topology::Topology, p: u16) -> NodeResult<()> {
        const PAGE: usize = 1_000;
        let c = &self.cluster;
        let keyspaces = c.engine.keyspaces().list();
        let prefix = p.to_be_bytes();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = c
                .engine
                .storage()
                .data_range(&prefix, after.as_deref(), PAGE)?;
            for (skey, object) in &page {
                let Some(ks) = meridian_core::partition::parse_storage_key(skey)
                    .and_then(|(_, id, _)| keyspaces.iter().find(|k| k.id() == id))
                else {
                    continue;
                };
                let sync = c.engine.syncs_storage_key(skey);
                for heir in topo.reclaim_heirs(ks, p) {
                    c.hints.add(heir, skey, object, now_ms(), sync)?;
                }
            }
            if page.len() < PAGE {
                return Ok(());
            }
            after = page.last().map(|(k, _)| k.clone());
        }
    }
}
