//! The cluster layer of a node: membership, ownership, the request coordinator, hinted
//! handoff and partition streaming. `Cluster` owns the shared state; background tasks keep
//! the topology, keyspaces, hints and streamed partitions up to date.

pub mod coordinator;
pub mod handoff;
pub mod hints;
pub mod keyspace_sync;
pub mod membership;
pub mod peer_service;
pub mod peers;
pub mod pipe;
pub mod rebalance;
pub mod topology;

use crate::engine::Engine;
use crate::error::NodeResult;
use crate::metrics::Metrics;
use hints::Hints;
use membership::{Membership, NodeMeta};
use meridian_core::ActorId;
use peers::Peers;
use std::sync::{Arc, Mutex, RwLock};
use topology::Topology;

/// Behaviour switches from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub strict: bool,
    pub expects_peers: bool,
    pub read_repair_chance: f64,
}

pub struct Cluster {
    pub me: ActorId,
    pub my_dc: String,
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    pub peers: Peers,
    pub hints: Hints,
    pub membership: Membership,
    pub strict: bool,
    /// Seeds were configured: this node is joining an existing cluster.
    pub expects_peers: bool,
    /// Share of reads that ask every replica in scope, so replicas a quorum read would not
    /// touch get repaired too.
    pub read_repair_chance: f64,
    topology: RwLock<Arc<Topology>>,
    /// This node's own published metadata.
    meta: Mutex<NodeMeta>,
    /// Fired when a decommission has finished and the node should stop.
    pub stop: tokio::sync::watch::Sender<bool>,
}

impl Cluster {
    pub fn new(
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        membership: Membership,
        hints: Hints,
        peers: Peers,
        meta: NodeMeta,
        settings: Settings,
    ) -> Arc<Self> {
        let view = membership.watch().borrow().clone();
        let topo = Topology::build(meta.id, &meta.dc, &view, None);
        let (stop, _) = tokio::sync::watch::channel(false);
        Arc::new(Self {
            me: meta.id,
            my_dc: meta.dc.clone(),
            engine,
            metrics,
            peers,
            hints,
            membership,
            strict: settings.strict,
            expects_peers: settings.expects_peers,
            read_repair_chance: settings.read_repair_chance,
            topology: RwLock::new(Arc::new(topo)),
            meta: Mutex::new(meta),
            stop,
        })
    }

    pub fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn meta(&self) -> NodeMeta {
        self.meta
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Changes this node's own metadata and gossips it.
    pub async fn update_meta(&self, f: impl FnOnce(&mut NodeMeta)) -> NodeResult<NodeMeta> {
        let meta = {
            let mut m = self
                .meta
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut m);
            m.clone()
        };
        self.membership.publish(&meta).await?;
        Ok(meta)
    }

    /// Starts the background tasks: topology refresh, keyspace sync, hint replay, streaming.
    pub fn spawn_tasks(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move { me.follow_membership().await });
        let me = self.clone();
        tokio::spawn(async move { me.replay_hints().await });
        let me = self.clone();
        tokio::spawn(async move { me.sync_keyspaces().await });
        let me = self.clone();
        tokio::spawn(async move { me.stream_gained_partitions().await });
    }

    async fn follow_membership(self: Arc<Self>) {
        let mut rx = self.membership.watch();
        loop {
            let view = rx.borrow_and_update().clone();
            let prev = self.topology();
            let next = Topology::build(self.me, &self.my_dc, &view, Some(&prev));
            if next.epoch() != prev.epoch() {
                tracing::info!(
                    epoch = next.epoch(),
                    members = next.current().members().count(),
                    "placement changed"
                );
            }
            *self
                .topology
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
            if rx.changed().await.is_err() {
                break;
            }
        }
    }
}
