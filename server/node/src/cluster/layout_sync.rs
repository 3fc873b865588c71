//! The background loop that keeps this node's layout in step with the cluster's. The rules
//! (founding, joining, committing, settling, whom to exchange with) are the core's
//! [`LayoutAgent`]; this loop feeds it gossip's view of the peers, applies its changes
//! through the [`LayoutKeeper`](super::layout::LayoutKeeper) and carries out the exchanges
//! over gRPC (push-pull: both sides hold the merge afterwards).

use super::Cluster;
use crate::error::{NodeError, NodeResult};
use meridian_core::layout::LayoutHistory;
use meridian_core::layout::LayoutMember;
use meridian_core::layout::agent::{LayoutAgent, PeerLayout};
use meridian_proto::v1 as pb;
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

    fn agent(&self) -> LayoutAgent {
        let c = &self.cluster;
        let meta = c.meta();
        LayoutAgent {
            me: LayoutMember {
                id: c.me,
                dc: meta.dc.clone(),
                rack: meta.rack.clone(),
                capacity: meta.capacity.max(1),
                role: c.role,
            },
            expects_peers: c.expects_peers,
            bootstrap_grace_ms: BOOTSTRAP_GRACE.as_millis() as u64,
        }
    }

    /// Gossip's view of the live peers' layouts.
    fn peers(&self) -> Vec<PeerLayout> {
        let topo = self.cluster.topology();
        let mine = self.cluster.layout.fingerprint().to_string();
        topo.members
            .values()
            .filter(|m| m.alive && m.meta.id != self.cluster.me)
            .map(|m| PeerLayout {
                id: m.meta.id,
                version: m.layout_version,
                differs: !m.layout_hash.is_empty() && m.layout_hash != mine,
            })
            .collect()
    }

    async fn step(&mut self) -> NodeResult<()> {
        let before = self.cluster.layout.fingerprint();
        let agent = self.agent();
        self.exchange(&agent, 1).await;
        let peers = self.peers();
        let topo = self.cluster.topology();
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let elapsed = self.started.elapsed().as_millis() as u64;
        let out = if agent.idle(&self.cluster.layout.get()) {
            Default::default()
        } else {
            self.cluster
                .layout
                .update(|h| agent.step(h, elapsed, &peers, secret, |id| topo.alive(id)))?
        };
        if out.founded {
            tracing::info!("founded a new cluster: layout version 1");
        }
        if out.staged {
            tracing::info!(dc = %agent.me.dc, rack = %agent.me.rack, "staged this node's join");
        }
        if let Some((version, digest)) = out.committed {
            tracing::info!(version, digest = %digest, "committed a layout version");
        }
        if out.removed && !self.warned_removed && !topo.owns_somewhere(&self.cluster.me) {
            tracing::warn!(
                "this node was removed from the layout and owns nothing; to use this machine \
                 again, wipe its data directory and start it as a new node"
            );
            self.warned_removed = true;
        }
        if self.cluster.layout.fingerprint() != before {
            // A change made here spreads at once rather than at the next gossip round.
            self.exchange(&agent, 2).await;
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
    async fn exchange(&self, agent: &LayoutAgent, n: usize) {
        let topo = self.cluster.topology();
        for peer in agent.exchange_with(&self.peers(), n, rand::random()) {
            let Some(url) = topo.grpc_of(&peer).map(str::to_string) else {
                continue;
            };
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
}
