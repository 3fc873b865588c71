//! The background loop that keeps this node's layout in step with the cluster's:
//!
//! - **Exchange.** Each node gossips a fingerprint of its layout history; when a live peer's
//!   differs, the two exchange histories (push-pull) and both hold the join.
//! - **Bootstrap.** A node started without seeds founds a new cluster: version 1 with itself
//!   and a random secret. One started with seeds waits for their layout; only if none of the
//!   live peers has one after a grace period does the smallest id among them found it.
//! - **Join.** Once it holds the cluster's layout, a node stages its own join (or its new rack
//!   or capacity) and commits it: no operator step. A removed node never rejoins under its id.
//! - **Commit and settle.** Any pending change is committed (the same pending changes on the
//!   same version give byte-identical versions, so nodes committing at once agree), and old
//!   versions retire once their live owners have acknowledged the newer one.

use super::Cluster;
use crate::error::{NodeError, NodeResult};
use meridian_core::layout::{LayoutHistory, LayoutMember, StagedChange};
use meridian_proto::v1 as pb;
use rand::seq::IteratorRandom;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(200);
/// How long a node with seeds waits for a peer's layout before the cluster is founded.
const BOOTSTRAP_GRACE: Duration = Duration::from_secs(3);

pub struct LayoutSync {
    cluster: Arc<Cluster>,
    started: Instant,
    published: Option<String>,
    warned_removed: bool,
}

impl LayoutSync {
    pub fn spawn(cluster: Arc<Cluster>) {
        let me = Self {
            cluster,
            started: Instant::now(),
            published: None,
            warned_removed: false,
        };
        tokio::spawn(me.run());
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            if let Err(e) = self.step().await {
                tracing::warn!(error = %e, "layout sync step failed");
            }
        }
    }

    async fn step(&mut self) -> NodeResult<()> {
        let before = self.cluster.layout.fingerprint();
        self.exchange(1).await;
        self.bootstrap_or_join()?;
        // Settling only matters while a transition is under way (most ticks, nothing is).
        let topo = self.cluster.topology();
        if self.cluster.layout.get().chain().len() > 1 {
            self.cluster
                .layout
                .update(|h| h.settle(|id| topo.alive(id)))?;
        }
        if self.cluster.layout.fingerprint() != before {
            // A change made here spreads at once rather than at the next gossip round.
            self.exchange(2).await;
        }
        self.publish().await;
        Ok(())
    }

    async fn publish(&mut self) {
        let fp = self.cluster.layout.fingerprint().to_string();
        if self.published.as_ref() != Some(&fp) {
            let version = self.cluster.layout.get().current().map_or(0, |v| v.version);
            self.cluster.membership.publish_layout(version, &fp).await;
            self.published = Some(fp);
        }
    }

    /// Exchanges histories with up to `n` live peers whose fingerprint differs from ours.
    async fn exchange(&self, n: usize) {
        let topo = self.cluster.topology();
        let mine = self.cluster.layout.fingerprint().to_string();
        let peers: Vec<_> = topo
            .members
            .values()
            .filter(|m| m.alive && m.meta.id != self.cluster.me)
            .filter(|m| !m.layout_hash.is_empty() && m.layout_hash != mine)
            .map(|m| (m.meta.id, m.meta.grpc.clone()))
            .choose_multiple(&mut rand::rng(), n);
        for (peer, url) in peers {
            if let Err(e) = self.exchange_with(peer, &url).await {
                tracing::debug!(peer = %peer, error = %e, "layout exchange failed");
            }
        }
    }

    async fn exchange_with(&self, peer: meridian_core::ActorId, url: &str) -> NodeResult<()> {
        let mut client = self.cluster.peers.client(peer, url)?;
        let history = self.cluster.layout.get().encode();
        let reply = client
            .exchange_layout(pb::LayoutState {
                history: history.into(),
            })
            .await
            .map_err(|s| super::peers::peer_error(&peer, "layout exchange", s))?
            .into_inner();
        let theirs = LayoutHistory::decode(&reply.history).map_err(|e| {
            NodeError::Internal(format!("node {peer} sent an unreadable layout: {e}"))
        })?;
        self.cluster.layout.update(|h| h.merge(&theirs))
    }

    fn bootstrap_or_join(&mut self) -> NodeResult<()> {
        let c = &self.cluster;
        let me = c.me;
        let meta = c.meta();
        let desired = LayoutMember {
            id: me,
            dc: meta.dc.clone(),
            rack: meta.rack.clone(),
            capacity: meta.capacity.max(1),
            role: c.role,
        };
        let history = c.layout.get();
        if history.current().is_none() {
            if self.may_found_cluster() {
                c.layout.found(desired)?;
            }
            return Ok(());
        }
        if history.is_removed(&me) {
            if !self.warned_removed && !c.topology().owns_somewhere(&me) {
                tracing::warn!(
                    "this node was removed from the layout and owns nothing; to use this \
                     machine again, wipe its data directory and start it as a new node"
                );
                self.warned_removed = true;
            }
        } else {
            let change = StagedChange::join_of(&desired);
            let reflected = history
                .current()
                .and_then(|v| v.member(&me))
                .is_some_and(|m| StagedChange::join_of(m) == change);
            let staged = history.staged().get(&me).map(|s| &s.change) == Some(&change);
            if !reflected && !staged {
                c.layout.update(|h| h.stage(me, me, change.clone()))?;
                tracing::info!(dc = %meta.dc, rack = %meta.rack, "staged this node's join");
            }
        }
        if !c.layout.get().pending().is_empty() {
            let committed = c
                .layout
                .update(|h| h.commit().map(|v| (v.version, v.digest())))?;
            if let Some((version, digest)) = committed {
                tracing::info!(version, digest = %digest, "committed a layout version");
            }
        }
        Ok(())
    }

    /// Whether this node founds the cluster: it was given no seeds, or none of the live
    /// peers holds a layout after the grace period and this node has the smallest id.
    fn may_found_cluster(&self) -> bool {
        if !self.cluster.expects_peers {
            return true;
        }
        if self.started.elapsed() < BOOTSTRAP_GRACE {
            return false;
        }
        let topo = self.cluster.topology();
        let live: Vec<_> = topo
            .members
            .values()
            .filter(|m| m.alive && m.meta.id != self.cluster.me)
            .collect();
        !live.is_empty()
            && live.iter().all(|m| m.layout_version == 0)
            && live.iter().all(|m| m.meta.id > self.cluster.me)
    }
}
