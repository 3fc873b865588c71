//! Anti-entropy on a node: the core's Merkle exchange ([`meridian_core::merkle::exchange`])
//! carried over the `Peer.AntiEntropy` call, and the two background loops around it.
//!
//! - [`TreeKeeper`] builds every partition's trees from the data after a start (the node
//!   serves meanwhile; exchanges leave unbuilt partitions out), then rescans one partition
//!   a second for ever, so a tree that drifted from its data (a lost update, corrupted
//!   memory) is found, counted in `meridian_merkle_drift_total`, and replaced.
//! - [`AntiEntropy`] starts exchanges continuously: one peer and one keyspace at a time,
//!   round-robin over every replica this node shares partitions with, in every DC, within
//!   `anti_entropy_exchanges_per_sec` and `anti_entropy_bytes_per_sec`.
//!
//! `meridian admin repair` runs the same [`Cluster::exchange`] on demand.

use super::Cluster;
use super::topology::Topology;
use crate::engine::Engine;
use crate::error::{NodeError, NodeResult};
use meridian_core::ActorId;
use meridian_core::merkle::exchange::{Exchange, Merged, Replica, Reply, Request, Stats, Step};
use meridian_core::merkle::{Forest, PartitionSet};
use meridian_core::partition::PARTITIONS;
use meridian_proto::v1 as pb;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// This node's data as the exchange sees it, and (answering a peer) the layout that says
/// which partitions it holds.
pub struct NodeReplica<'a> {
    engine: &'a Engine,
    topology: Option<Arc<Topology>>,
    held: RefCell<BTreeMap<u64, PartitionSet>>,
}

impl<'a> NodeReplica<'a> {
    pub fn new(engine: &'a Engine, topology: Option<Arc<Topology>>) -> Self {
        Self {
            engine,
            topology,
            held: RefCell::new(BTreeMap::new()),
        }
    }
}

impl Replica for NodeReplica<'_> {
    type Error = NodeError;

    fn forest(&self) -> &Forest {
        self.engine.forest()
    }

    /// A replica of the partition in some active layout version (so one still streaming
    /// in, or not yet reclaimed, takes part).
    fn holds(&self, keyspace: u64, partition: u16) -> bool {
        let Some(topo) = &self.topology else {
            return true;
        };
        let mut held = self.held.borrow_mut();
        let set = held.entry(keyspace).or_insert_with(|| {
            let specs = self.engine.keyspaces().list();
            let Some(spec) = specs.iter().find(|k| k.id() == keyspace) else {
                return PartitionSet::default();
            };
            topo.held_partitions(spec)
        });
        set.contains(partition)
    }

    fn scan(&self, prefix: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> NodeResult<()> {
        self.engine.storage().scan_data(prefix, visit)
    }

    fn merge(&self, storage_key: &[u8], object: &[u8]) -> NodeResult<Merged> {
        match self.engine.merge_remote(storage_key, object) {
            Ok(true) => Ok(Merged::Changed),
            Ok(false) => Ok(Merged::Unchanged),
            Err(e) if e.is_bad_object() => {
                tracing::warn!(error = %e, "anti-entropy: an object could not be merged");
                Ok(Merged::Rejected(e.to_string()))
            }
            Err(e) => Err(e),
        }
    }
}

/// Answers one step of an exchange a peer started (storage work, so off the async threads).
pub async fn answer(cluster: &Cluster, body: &[u8]) -> NodeResult<Vec<u8>> {
    let req = Request::decode(body).map_err(|e| NodeError::InvalidArgument(e.to_string()))?;
    let engine = cluster.engine.clone();
    let topology = cluster.topology();
    let reply = tokio::task::spawn_blocking(move || {
        meridian_core::merkle::exchange::answer(&NodeReplica::new(&engine, Some(topology)), req)
    })
    .await
    .map_err(|e| NodeError::Internal(format!("anti-entropy task failed: {e}")))??;
    Ok(reply.encode())
}

/// What one exchange did, with the bytes it moved (requests and replies).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub stats: Stats,
    pub bytes: u64,
    pub partitions: usize,
}

impl Cluster {
    /// Runs one exchange with `peer` over `partitions` of keyspace `ks` (minus those whose
    /// trees are not built here yet).
    pub async fn exchange(
        self: &Arc<Self>,
        peer: ActorId,
        ks: u64,
        partitions: PartitionSet,
    ) -> NodeResult<Outcome> {
        let url = self
            .topology()
            .grpc_of(&peer)
            .map(str::to_string)
            .ok_or_else(|| NodeError::Unavailable(format!("node {peer} has no known address")))?;
        let mut client = self.peers.bulk_client(peer, &url)?;
        let unready = self.engine.forest().unready(&partitions);
        let partitions = partitions.minus(&unready);
        let mut out = Outcome {
            partitions: partitions.len(),
            ..Outcome::default()
        };
        out.stats.deferred = unready.len() as u64;
        out.stats.more = !unready.is_empty();
        if partitions.is_empty() {
            return Ok(out);
        }
        let (mut ex, mut req) = Exchange::start(ks, partitions);
        loop {
            let body = req.encode();
            out.bytes += body.len() as u64;
            let resp = client
                .anti_entropy(pb::AntiEntropyMessage { body: body.into() })
                .await
                .map_err(|s| super::peers::peer_error(&peer, "anti-entropy", s))?
                .into_inner();
            out.bytes += resp.body.len() as u64;
            let reply = Reply::decode(&resp.body)
                .map_err(|e| NodeError::Unavailable(format!("node {peer}: {e}")))?;
            let engine = self.engine.clone();
            let (back, step) = tokio::task::spawn_blocking(move || {
                let step = ex.on_reply(&NodeReplica::new(&engine, None), reply);
                (ex, step)
            })
            .await
            .map_err(|e| NodeError::Internal(format!("anti-entropy task failed: {e}")))?;
            ex = back;
            match step? {
                Step::Send(next) => req = next,
                Step::Done(stats) => {
                    out.stats = Stats {
                        more: stats.more || out.stats.more,
                        deferred: stats.deferred + out.stats.deferred,
                        ..stats
                    };
                    return Ok(out);
                }
            }
        }
    }

    /// The partitions of keyspace `name` this node shares with `peer` under the current
    /// layout.
    pub fn shared_with(&self, name: &str, peer: &ActorId) -> Option<PartitionSet> {
        let spec = self.engine.keyspaces().get(name).ok()?;
        self.topology().shared_partitions(&spec).remove(peer)
    }

    /// Every (keyspace, peer, shared partitions) this node compares, optionally only with
    /// peers of one DC.
    pub fn exchange_plan(
        &self,
        keyspace: Option<&str>,
        dc: Option<&str>,
    ) -> NodeResult<Vec<(String, u64, ActorId, PartitionSet)>> {
        let topo = self.topology();
        let specs = match keyspace {
            Some(name) => vec![self.engine.keyspaces().get(name)?],
            None => self.engine.keyspaces().list(),
        };
        let mut plan = Vec::new();
        for ks in specs {
            for (peer, set) in topo.shared_partitions(&ks) {
                let peer_dc = topo.members.get(&peer).map(|m| m.meta.dc.as_str());
                if dc.is_some_and(|d| peer_dc != Some(d)) {
                    continue;
                }
                plan.push((ks.name.clone(), ks.id(), peer, set));
            }
        }
        Ok(plan)
    }
}

/// Builds the trees after a start, then keeps checking them against the data.
pub struct TreeKeeper {
    engine: Arc<Engine>,
}

impl TreeKeeper {
    pub fn spawn(engine: Arc<Engine>) {
        tokio::spawn(Self { engine }.run());
    }

    async fn run(self) {
        let started = Instant::now();
        for p in 0..PARTITIONS as u16 {
            if let Err(e) = self.rebuild(p).await {
                tracing::warn!(partition = p, error = %e, "building a Merkle tree failed; retrying later");
            }
        }
        tracing::info!(secs = started.elapsed().as_secs_f64(), "Merkle trees built");
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        // A slow rescan pushes the next one back instead of letting ticks pile up.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next = 0u32;
        loop {
            tick.tick().await;
            let p = (next % PARTITIONS) as u16;
            next = next.wrapping_add(1);
            match self.rebuild(p).await {
                Ok(true) => {
                    self.engine.metrics.merkle_drift.inc();
                    tracing::warn!(
                        partition = p,
                        "a Merkle tree disagreed with its data; rebuilt it"
                    );
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "checking a Merkle tree failed")
                }
            }
        }
    }

    async fn rebuild(&self, p: u16) -> NodeResult<bool> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.rebuild_trees(p))
            .await
            .map_err(|e| NodeError::Internal(format!("tree task failed: {e}")))?
    }
}

/// Continuous, throttled exchanges with every peer.
pub struct AntiEntropy {
    cluster: Arc<Cluster>,
    per_exchange: Duration,
    bytes_per_sec: u64,
}

impl AntiEntropy {
    pub fn spawn(cluster: Arc<Cluster>, exchanges_per_sec: f64, bytes_per_sec: u64) {
        if exchanges_per_sec <= 0.0 {
            tracing::info!("continuous anti-entropy is off");
            return;
        }
        let me = Self {
            cluster,
            per_exchange: Duration::from_secs_f64(1.0 / exchanges_per_sec),
            bytes_per_sec: bytes_per_sec.max(1),
        };
        tokio::spawn(me.run());
    }

    async fn run(self) {
        loop {
            let plan = match self.cluster.exchange_plan(None, None) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "planning anti-entropy failed");
                    Vec::new()
                }
            };
            let topo = self.cluster.topology();
            let plan: Vec<_> = plan.into_iter().filter(|p| topo.alive(&p.2)).collect();
            drop(topo);
            if plan.is_empty() {
                tokio::time::sleep(self.per_exchange.max(Duration::from_secs(1))).await;
                continue;
            }
            for (name, ks, peer, _) in plan {
                let started = Instant::now();
                // The layout may have moved on since the round began: compare what the two
                // share now.
                let Some(set) = self.cluster.shared_with(&name, &peer) else {
                    continue;
                };
                let bytes = match self.cluster.exchange(peer, ks, set).await {
                    Ok(o) => {
                        let m = &self.cluster.metrics;
                        m.ae_exchanges.inc();
                        m.ae_bytes.inc_by(o.bytes);
                        let repaired = o.stats.repaired_here + o.stats.repaired_there;
                        m.ae_repaired.inc_by(repaired);
                        if repaired > 0 {
                            tracing::info!(
                                keyspace = %name,
                                peer = %peer,
                                repaired_here = o.stats.repaired_here,
                                repaired_there = o.stats.repaired_there,
                                bytes = o.bytes,
                                "anti-entropy repaired keys"
                            );
                        }
                        o.bytes
                    }
                    Err(e) => {
                        self.cluster.metrics.ae_failures.inc();
                        tracing::debug!(keyspace = %name, peer = %peer, error = %e, "anti-entropy exchange failed");
                        // A peer that fails (down, slow, overloaded) is not asked again at
                        // once: wait as if the exchange had used a second's worth of bytes.
                        self.bytes_per_sec
                    }
                };
                // Pace by whichever budget this exchange used up more of.
                let by_bytes = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
                let wait = self
                    .per_exchange
                    .max(by_bytes)
                    .saturating_sub(started.elapsed());
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Exchanges one (peer, keyspace) pair runs at most in a repair before moving on: each
/// compares a bounded number of leaves and keys, so a wiped replica takes several.
const REPAIR_ROUNDS: u32 = 10_000;
/// How long a repair waits for partitions that cannot be compared yet.
const REPAIR_WAIT: Duration = Duration::from_secs(120);

impl Cluster {
    /// `meridian admin repair` on this node: exchanges with every replica it shares
    /// partitions with (of one keyspace, or every one; in one DC, or every one), each pair
    /// until nothing differs, reporting progress after each pair and a summary at the end.
    pub async fn repair(
        self: Arc<Self>,
        keyspace: Option<String>,
        dc: Option<String>,
        tx: tokio::sync::mpsc::Sender<Result<pb::RepairProgress, tonic::Status>>,
    ) {
        let plan = match self.exchange_plan(keyspace.as_deref(), dc.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        let mut progress = pb::RepairProgress {
            node_id: self.me.to_string(),
            exchanges_total: plan.len() as u32,
            message: format!("{} peer/keyspace pairs to compare", plan.len()),
            ..Default::default()
        };
        if tx.send(Ok(progress.clone())).await.is_err() {
            return;
        }
        for (name, ks, peer, set) in plan {
            let mut rounds = 0;
            let started = Instant::now();
            let result = loop {
                rounds += 1;
                match self.exchange(peer, ks, set.clone()).await {
                    // Trees still being built on one side: wait for them, not spin.
                    Ok(o)
                        if o.stats.more
                            && o.stats.deferred > 0
                            && o.stats.fetched + o.stats.pushed == 0 =>
                    {
                        if started.elapsed() > REPAIR_WAIT {
                            break Err(NodeError::Unavailable(format!(
                                "{} partitions still not comparable after {}s (trees being \
                                 built, or the two nodes disagree on the layout)",
                                o.stats.deferred,
                                REPAIR_WAIT.as_secs()
                            )));
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Ok(o) => {
                        if rounds == 1 {
                            progress.partitions_compared += o.partitions as u64;
                        }
                        progress.keys_repaired += o.stats.repaired_here + o.stats.repaired_there;
                        progress.bytes += o.bytes;
                        self.metrics.ae_exchanges.inc();
                        self.metrics.ae_bytes.inc_by(o.bytes);
                        self.metrics
                            .ae_repaired
                            .inc_by(o.stats.repaired_here + o.stats.repaired_there);
                        if !o.stats.more || rounds >= REPAIR_ROUNDS {
                            break Ok(());
                        }
                    }
                    Err(e) => break Err(e),
                }
            };
            progress.exchanges_done += 1;
            progress.message = match result {
                Ok(()) => format!("{name} with {peer}: done"),
                Err(e) => {
                    self.metrics.ae_failures.inc();
                    progress.failed += 1;
                    format!("{name} with {peer}: failed: {e}")
                }
            };
            if tx.send(Ok(progress.clone())).await.is_err() {
                return;
            }
        }
        progress.finished = true;
        progress.message = "finished".into();
        let _ = tx.send(Ok(progress)).await;
    }
}
