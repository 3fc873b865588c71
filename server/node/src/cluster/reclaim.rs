//! Deletes the data of partitions this node no longer owns, once the layout change that
//! moved them has retired: then every owner of the settled version has acknowledged it,
//! so the data lives on its new owners. Counted in `meridian_reclaimed_bytes_total`.

use super::Cluster;
use crate::error::NodeResult;
use meridian_core::layout::Digest;
use std::collections::BTreeSet;
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
        // Only when no transition is under way.
        let [settled] = topo.chain() else {
            return Ok(());
        };
        let key = (settled.version, settled.digest());
        if self.done_for == Some(key) {
            return Ok(());
        }
        // A node first holds everything it owns; one that is leaving stops instead.
        if !topo.stores_data() || !topo.history.acked(&c.me, settled) {
            return Ok(());
        }
        let width = c.local_width(&topo);
        let owned: BTreeSet<u16> = settled
            .placement()
            .partitions_of(&c.me, width)
            .into_iter()
            .collect();
        let mut bytes = 0u64;
        let mut partitions = 0usize;
        for p in 0..meridian_core::partition::PARTITIONS as u16 {
            if owned.contains(&p) {
                continue;
            }
            // A newer version may give the partition back: stop, and start over once that
            // one has settled.
            if c.topology().chain().len() != 1 || c.topology().epoch() != settled.version {
                return Ok(());
            }
            let n = c.engine.storage().delete_data_prefix(&p.to_be_bytes())?;
            if n > 0 {
                bytes += n;
                partitions += 1;
            }
        }
        c.metrics.reclaimed_bytes.inc_by(bytes);
        if bytes > 0 {
            tracing::info!(
                version = settled.version,
                partitions,
                bytes,
                "deleted data of partitions this node no longer owns"
            );
        }
        self.done_for = Some(key);
        Ok(())
    }
}
