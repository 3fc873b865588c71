//! The cluster layer of a node: membership, the layout, ownership, the request coordinator,
//! hinted handoff and partition streaming. `Cluster` owns the shared state; background tasks
//! keep the layout, topology, keyspaces, hints and streamed partitions up to date.

pub mod anti_entropy;
pub mod coordinator;
mod drive;
pub mod handoff;
pub mod hints;
pub mod keyspace_sync;
pub mod layout;
pub mod layout_sync;
pub mod membership;
pub mod peer_service;
pub mod peers;
pub mod pipe;
pub mod reaper;
pub mod rebalance;
pub mod reclaim;
mod set_aside;
pub mod stream_sink;
pub mod streams;
pub mod topology;

use crate::engine::Engine;
use crate::metrics::Metrics;
use hints::Hints;
use layout::LayoutKeeper;
use membership::{Membership, NodeMeta};
use meridian_core::ActorId;
use peers::Peers;
use std::sync::{Arc, RwLock};
use topology::Topology;

/// Behaviour switches from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub strict: bool,
    pub expects_peers: bool,
    pub read_repair_chance: f64,
    pub role: meridian_core::layout::Role,
    pub anti_entropy_exchanges_per_sec: f64,
    pub anti_entropy_bytes_per_sec: u64,
    pub tombstone_sweeps_per_sec: f64,
    pub tombstone_grace_secs: u64,
}

pub struct Cluster {
    pub me: ActorId,
    pub my_dc: String,
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    pub peers: Peers,
    pub hints: Hints,
    /// This node's replication streams to the other DCs.
    pub streams: streams::Streams,
    /// Where other DCs' streams land on this node.
    pub sink: stream_sink::StreamSink,
    pub membership: Membership,
    pub layout: LayoutKeeper,
    pub strict: bool,
    /// Seeds were configured: this node is joining an existing cluster.
    pub expects_peers: bool,
    /// Share of reads that ask every replica in scope, so replicas a quorum read would not
    /// touch get repaired too.
    pub read_repair_chance: f64,
    topology: RwLock<Arc<Topology>>,
    /// This node's own published metadata.
    meta: NodeMeta,
    /// What this node does in the layout.
    pub role: meridian_core::layout::Role,
    /// Continuous anti-entropy's pace: exchanges per second and bytes per second.
    anti_entropy: (f64, u64),
    /// Tombstone GC's pace (partitions per second) and grace (seconds).
    reaper: (f64, u64),
    /// Fired when a decommission has finished and the node should stop.
    pub stop: tokio::sync::watch::Sender<bool>,
}

/// The components a cluster node is assembled from.
pub struct Parts {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    pub membership: Membership,
    pub layout: LayoutKeeper,
    pub hints: Hints,
    pub streams: streams::Streams,
    pub peers: Peers,
}

impl Cluster {
    pub fn new(parts: Parts, meta: NodeMeta, settings: Settings) -> Arc<Self> {
        let Parts {
            engine,
            metrics,
            membership,
            layout,
            hints,
            streams,
            peers,
        } = parts;
        let view = membership.watch().borrow().clone();
        let topo = Topology::build(meta.id, &meta.dc, &view, layout.get());
        let (stop, _) = tokio::sync::watch::channel(false);
        Arc::new(Self {
            me: meta.id,
            my_dc: meta.dc.clone(),
            engine,
            metrics,
            peers,
            hints,
            streams,
            sink: stream_sink::StreamSink::default(),
            membership,
            layout,
            strict: settings.strict,
            expects_peers: settings.expects_peers,
            read_repair_chance: settings.read_repair_chance,
            topology: RwLock::new(Arc::new(topo)),
            meta,
            role: settings.role,
            anti_entropy: (
                settings.anti_entropy_exchanges_per_sec,
                settings.anti_entropy_bytes_per_sec,
            ),
            reaper: (
                settings.tombstone_sweeps_per_sec,
                settings.tombstone_grace_secs,
            ),
            stop,
        })
    }

    pub fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn meta(&self) -> &NodeMeta {
        &self.meta
    }

    /// Starts the background tasks: topology refresh, keyspace sync, hint replay, streaming.
    pub fn spawn_tasks(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move { me.follow_membership().await });
        layout_sync::LayoutSync::spawn(self.clone());
        reclaim::Reclaim::spawn(self.clone());
        anti_entropy::TreeKeeper::spawn(self.engine.clone());
        anti_entropy::AntiEntropy::spawn(self.clone(), self.anti_entropy.0, self.anti_entropy.1);
        streams::StreamWorkers::spawn(self.clone());
        reaper::Reaper::spawn(self.clone(), self.reaper.0, self.reaper.1);
        let me = self.clone();
        tokio::spawn(async move { me.replay_hints().await });
        let me = self.clone();
        tokio::spawn(async move { me.sync_keyspaces().await });
        let me = self.clone();
        tokio::spawn(async move { me.stream_gained_partitions().await });
    }

    /// Rebuilds the topology whenever gossip or the layout changes.
    async fn follow_membership(self: Arc<Self>) {
        let mut members = self.membership.watch();
        let mut layout = self.layout.watch();
        loop {
            let view = members.borrow_and_update().clone();
            let history = layout.borrow_and_update().clone();
            let prev = self.topology();
            let next = Topology::build(self.me, &self.my_dc, &view, history);
            if next.epoch() != prev.epoch() || next.read_version() != prev.read_version() {
                tracing::info!(
                    version = next.epoch(),
                    read_version = next.read_version(),
                    members = next.current().members().count(),
                    "layout changed"
                );
                if let Some(v) = next.current_version() {
                    self.engine
                        .set_seal(meridian_core::ContextSeal::new(*v.secret()));
                }
            }
            *self
                .topology
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
            tokio::select! {
                r = members.changed() => if r.is_err() { break },
                r = layout.changed() => if r.is_err() { break },
            }
        }
    }
}
