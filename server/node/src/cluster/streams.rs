//! Cross-DC replication streams, the sending side: a durable queue per remote DC of the
//! writes this node coordinated at a `LOCAL_*` level, and one small worker per queue that
//! sends it in batches to a node of that DC (the *sink*) and deletes what the sink
//! acknowledged. The core's [`Outbox`] decides admission, shedding and what to resend; this
//! file keeps the entries in RocksDB and moves them.
//!
//! The queue survives restarts: entries are deleted only once applied in the remote DC, so a
//! restart or a partition of any length resumes where it stopped. When the queue passes its
//! byte budget, writes are queued as references (the key only; its state is read when sent),
//! then dropped and left to anti-entropy, which runs over their partitions once the stream
//! has drained. Every shed write is counted.

use super::Cluster;
use crate::error::{NodeError, NodeResult};
use crate::metrics::Metrics;
use crate::storage::Storage;
use meridian_core::ActorId;
use meridian_core::merkle::PartitionSet;
use meridian_core::partition::parse_storage_key;
use meridian_core::stream::{
    Admission, Batch, Depth, Limits, Outbox, QueueScan, Queued, Reply, Shed, parse_queue_key,
    queue_key, queue_prefix,
};
use meridian_proto::v1 as pb;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// One remote DC's queue.
struct Queue {
    dc: String,
    prefix: Vec<u8>,
    outbox: Mutex<Outbox>,
    wake: Notify,
    sent: AtomicU64,
    sink: Mutex<Option<ActorId>>,
}

impl Queue {
    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn key(&self, seq: u64) -> Vec<u8> {
        queue_key(&self.dc, seq)
    }
}

/// A queue's figures for `meridian admin streams`.
#[derive(Debug, Clone)]
pub struct QueueStatus {
    pub dc: String,
    pub depth: Depth,
    pub shed: Shed,
    pub sent: u64,
    pub sink: Option<ActorId>,
}

pub struct Streams {
    storage: Arc<Storage>,
    metrics: Arc<Metrics>,
    limits: Limits,
    queues: Mutex<BTreeMap<String, Arc<Queue>>>,
    /// Queues without a worker yet (created before the cluster started its tasks, or by a
    /// write to a DC seen for the first time).
    unstarted: Mutex<Vec<String>>,
    new_queue: Notify,
}

fn session() -> u64 {
    rand::random()
}

impl Streams {
    /// Opens the queues a previous run left behind and accounts for what they hold.
    pub fn open(storage: Arc<Storage>, metrics: Arc<Metrics>, limits: Limits) -> NodeResult<Self> {
        let me = Self {
            storage,
            metrics,
            limits,
            queues: Mutex::new(BTreeMap::new()),
            unstarted: Mutex::new(Vec::new()),
            new_queue: Notify::new(),
        };
        let mut after: Option<Vec<u8>> = None;
        let mut scan = QueueScan::default();
        loop {
            let chunk = me.storage.stream_range(&[], after.as_deref(), 4096)?;
            let Some((last, _)) = chunk.last() else {
                break;
            };
            after = Some(last.clone());
            for (k, v) in &chunk {
                scan.add(k, v);
            }
        }
        for (dc, outbox) in scan.finish(limits, session) {
            let n = outbox.depth().entries;
            tracing::info!(dc = %dc, writes = n, "replication stream queue recovered from disk");
            me.insert(&dc, || outbox);
        }
        Ok(me)
    }

    /// The queue of `dc`, made from `outbox` unless it exists.
    fn insert(&self, dc: &str, outbox: impl FnOnce() -> Outbox) -> Arc<Queue> {
        let mut queues = self.queues();
        if let Some(q) = queues.get(dc) {
            return q.clone();
        }
        let q = Arc::new(Queue {
            dc: dc.to_string(),
            prefix: queue_prefix(dc),
            outbox: Mutex::new(outbox()),
            wake: Notify::new(),
            sent: AtomicU64::new(0),
            sink: Mutex::new(None),
        });
        queues.insert(dc.to_string(), q.clone());
        drop(queues);
        self.unstarted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(dc.to_string());
        self.new_queue.notify_one();
        q
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Queue>>> {
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn queue(&self, dc: &str) -> Arc<Queue> {
        self.insert(dc, || Outbox::recover(self.limits, session(), 0, []))
    }

    /// Queues a coordinated write for `dc`. Called on the write path before the client is
    /// answered, so an acknowledged write is on the stream (as durable as the write itself).
    pub fn append(&self, dc: &str, storage_key: &[u8], object: &[u8], now_ms: u64, sync: bool) {
        let Some((partition, _, _)) = parse_storage_key(storage_key) else {
            return;
        };
        let q = self.queue(dc);
        let full = Queued::new(now_ms, storage_key, Some(object)).encode();
        // Encoded sizes: the budget counts what the disk holds.
        let reference_len = full.len() - object.len() + 1;
        // One lock across admission and the put: the sender reads the queue in sequence
        // order and must never see a later entry before an earlier one is written.
        let mut outbox = q.outbox();
        let admission = outbox.admit(partition, full.len() as u64, reference_len as u64);
        let stored = match admission {
            Admission::Full { seq } => self.storage.put_stream(&q.key(seq), &full, sync),
            Admission::Reference { seq } => {
                self.metrics
                    .stream_shed
                    .with_label_values(&[dc, "reference"])
                    .inc();
                let r = Queued::new(now_ms, storage_key, None).encode();
                self.storage.put_stream(&q.key(seq), &r, sync)
            }
            Admission::Dropped => {
                self.metrics
                    .stream_shed
                    .with_label_values(&[dc, "dropped"])
                    .inc();
                Ok(())
            }
        };
        let depth = outbox.depth();
        drop(outbox);
        if let Err(e) = stored {
            // The sender skips the hole; anti-entropy carries the write.
            tracing::error!(dc = %dc, error = %e, "cannot queue a write on the replication stream");
        }
        self.gauge(dc, depth);
        q.wake.notify_one();
    }

    fn gauge(&self, dc: &str, depth: Depth) {
        self.metrics
            .stream_queued
            .with_label_values(&[dc])
            .set(depth.entries as i64);
        self.metrics
            .stream_queued_bytes
            .with_label_values(&[dc])
            .set((depth.full_bytes + depth.reference_bytes) as i64);
    }

    pub fn status(&self) -> Vec<QueueStatus> {
        self.queues()
            .iter()
            .map(|(dc, q)| {
                // Lock order, as in the sender: sink, then outbox (one at a time here).
                let sink = *q
                    .sink
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (depth, shed) = {
                    let outbox = q.outbox();
                    (outbox.depth(), outbox.shed())
                };
                QueueStatus {
                    dc: dc.clone(),
                    depth,
                    shed,
                    sent: q.sent.load(Ordering::Relaxed),
                    sink,
                }
            })
            .collect()
    }
}

/// Starts a [`StreamSender`] for every queue, now and as new ones appear.
pub struct StreamWorkers;

impl StreamWorkers {
    pub fn spawn(cluster: Arc<Cluster>) {
        tokio::spawn(async move {
            loop {
                let notified = cluster.streams.new_queue.notified();
                let start: Vec<String> = std::mem::take(
                    &mut *cluster
                        .streams
                        .unstarted
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                );
                for dc in start {
                    let queue = cluster.streams.queue(&dc);
                    let sender = StreamSender {
                        cluster: cluster.clone(),
                        dc,
                        queue,
                    };
                    tokio::spawn(sender.run());
                }
                notified.await;
            }
        });
    }
}

/// Sends one queue: keeps up to the window of batches in flight to the sink, deletes what it
/// acknowledges, rewinds on gaps, backs off on failures, and runs anti-entropy over the
/// partitions of dropped writes once the queue drains.
struct StreamSender {
    cluster: Arc<Cluster>,
    dc: String,
    queue: Arc<Queue>,
}

/// The answer to one batch: (session, first, reply or `None` on failure).
type Answered = (u64, u64, Option<Reply>);

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl StreamSender {
    async fn run(self) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Answered>();
        let mut backoff = BACKOFF_MIN;
        let mut paused_until: Option<tokio::time::Instant> = None;
        let mut catching_up: Option<tokio::task::JoinHandle<Option<PartitionSet>>> = None;
        loop {
            let sink = self.pick_sink();
            self.switch_sink(sink);
            let paused = paused_until.is_some_and(|t| tokio::time::Instant::now() < t);
            if let (Some(sink), false) = (sink, paused) {
                loop {
                    // Not in the loop's condition: that guard would live through the body.
                    let next = self.queue.outbox().next_batch();
                    let Some(first) = next else {
                        break;
                    };
                    match self.read_batch(first) {
                        Ok(batch) => self.send(sink, batch, tx.clone()),
                        Err(e) => {
                            tracing::warn!(dc = %self.dc, error = %e, "cannot read the replication stream queue");
                            break;
                        }
                    }
                }
            }
            self.catch_up(&mut catching_up).await;
            let wake = self.queue.wake.notified();
            tokio::select! {
                Some((of_session, first, reply)) = rx.recv() => {
                    let failed = reply.is_none();
                    let (trimmed, after) = {
                        let mut outbox = self.queue.outbox();
                        let trimmed = outbox.acked();
                        (trimmed, outbox.on_reply(of_session, first, reply, session()))
                    };
                    if let Some(before) = after.delete_before {
                        let keys = (trimmed..before).map(|seq| self.queue.key(seq));
                        if let Err(e) = self.cluster.engine.storage().delete_streams(keys) {
                            tracing::warn!(dc = %self.dc, error = %e, "cannot trim the replication stream queue");
                        }
                        backoff = BACKOFF_MIN;
                    }
                    if after.back_off {
                        if failed {
                            self.cluster.metrics.peer_errors.inc();
                        }
                        paused_until = Some(tokio::time::Instant::now() + backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    let depth = self.queue.outbox().depth();
                    self.cluster.streams.gauge(&self.dc, depth);
                }
                _ = wake => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// The live node of the DC this node's batches go to: the same one as long as it lives
    /// (so its session stays valid), and spread over the DC's nodes across senders.
    fn pick_sink(&self) -> Option<ActorId> {
        let topo = self.cluster.topology();
        let current = *self
            .queue
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = current
            && topo.alive(&c)
        {
            return Some(c);
        }
        topo.members
            .iter()
            .filter(|(id, m)| m.meta.dc == self.dc && m.alive && **id != self.cluster.me)
            .map(|(id, _)| *id)
            .max_by_key(|id| {
                let mut h = blake3::Hasher::new();
                h.update(self.cluster.me.as_bytes());
                h.update(id.as_bytes());
                *h.finalize().as_bytes()
            })
    }

    fn switch_sink(&self, sink: Option<ActorId>) {
        let mut current = self
            .queue
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current != sink {
            if let Some(s) = sink {
                tracing::info!(dc = %self.dc, sink = %s, "replication stream sends to a new sink");
            }
            *current = sink;
            self.queue.outbox().restart(session());
        }
    }

    /// Reads the next batch from `first`, resolving references to the key's current state.
    fn read_batch(&self, first: u64) -> NodeResult<Batch> {
        let limits = self.queue.outbox().limits();
        let storage = self.cluster.engine.storage();
        let from = self.queue.key(first);
        // `after` is exclusive: start just before `first`.
        let after = first.checked_sub(1).map(|s| self.queue.key(s));
        let rows =
            storage.stream_range(&self.queue.prefix, after.as_deref(), limits.batch_entries)?;
        let mut entries = Vec::with_capacity(rows.len());
        let mut bytes = 0u64;
        let mut end = first;
        for (k, v) in rows {
            if k < from {
                continue;
            }
            let Some((_, seq)) = parse_queue_key(&k) else {
                continue;
            };
            if bytes >= limits.batch_bytes && !entries.is_empty() {
                break;
            }
            end = seq + 1;
            let Ok(q) = Queued::decode(&v) else {
                tracing::warn!(dc = %self.dc, seq, "skipping an unreadable replication stream entry");
                continue;
            };
            let now = super::membership::now_ms();
            let Some(entry) =
                q.into_entry(seq, now, limits.max_age_ms, |skey| storage.get_data(skey))?
            else {
                continue;
            };
            bytes += (entry.storage_key.len() + entry.object.len()) as u64;
            entries.push(entry);
        }
        if end == first {
            // Nothing stored at or after `first`: holes only (writes whose put failed).
            end = first + 1;
        }
        let (session, opens) = self.queue.outbox().sent(first, end);
        Ok(Batch {
            source: self.cluster.me,
            session,
            opens,
            first,
            entries,
            end,
        })
    }

    fn send(&self, sink: ActorId, batch: Batch, tx: mpsc::UnboundedSender<Answered>) {
        let cluster = self.cluster.clone();
        let dc = self.dc.clone();
        let queue = self.queue.clone();
        tokio::spawn(async move {
            let (session, first, n) = (batch.session, batch.first, batch.entries.len() as u64);
            let payload: usize = batch
                .entries
                .iter()
                .map(|e| e.storage_key.len() + e.object.len())
                .sum();
            let body = batch.encode();
            let bytes = body.len() as u64;
            let reply = async {
                let url = cluster.address_of(&sink)?;
                let mut client = cluster.peers.bulk_client(sink, &url)?;
                let r = client
                    .replication_stream(pb::StreamMessage { body: body.into() })
                    .await
                    .map_err(|s| super::peers::peer_error(&sink, "replication stream", s))?
                    .into_inner();
                Reply::decode(&r.body).map_err(|e| {
                    NodeError::Unavailable(format!("node {sink}: bad stream reply: {e}"))
                })
            }
            .await;
            let reply = match reply {
                Ok(r) => {
                    if matches!(r, Reply::Applied { .. }) {
                        queue.sent.fetch_add(n, Ordering::Relaxed);
                        cluster
                            .metrics
                            .stream_sent
                            .with_label_values(&[&dc])
                            .inc_by(n);
                        cluster
                            .metrics
                            .stream_payload_bytes
                            .with_label_values(&[&dc])
                            .inc_by(payload as u64);
                    }
                    cluster
                        .metrics
                        .stream_bytes
                        .with_label_values(&[&dc])
                        .inc_by(bytes);
                    Some(r)
                }
                Err(e) => {
                    tracing::debug!(dc = %dc, sink = %sink, error = %e, "replication stream batch failed");
                    None
                }
            };
            let _ = tx.send((session, first, reply));
        });
    }

    /// Once the queue has drained, runs anti-entropy with the DC over the partitions of the
    /// writes it dropped; what fails stays owed.
    async fn catch_up(&self, running: &mut Option<tokio::task::JoinHandle<Option<PartitionSet>>>) {
        if let Some(h) = running {
            if !h.is_finished() {
                return;
            }
            if let Some(h) = running.take()
                && let Ok(Some(owed)) = h.await
            {
                self.queue.outbox().owe(&owed);
            }
        }
        let Some(dropped) = self.queue.outbox().take_dropped() else {
            return;
        };
        let cluster = self.cluster.clone();
        let dc = self.dc.clone();
        *running = Some(tokio::spawn(async move {
            cluster.repair_partitions(&dc, &dropped).await.err().map(|e| {
                tracing::warn!(dc = %dc, error = %e, "anti-entropy for writes the stream dropped failed; will retry");
                dropped
            })
        }));
    }
}

impl Cluster {
    /// Exchanges with every replica in `dc` over `partitions` (of every keyspace) until they
    /// agree: what a stream that dropped writes owes that DC.
    pub async fn repair_partitions(
        self: &Arc<Self>,
        dc: &str,
        partitions: &PartitionSet,
    ) -> NodeResult<()> {
        let plan = self.exchange_plan(None, Some(dc))?;
        let mut repaired = 0;
        for (_, ks, peer, set) in plan {
            let set = set.intersect(partitions);
            if set.is_empty() {
                continue;
            }
            for _ in 0..1_000 {
                let o = self.exchange(peer, ks, set.clone()).await?;
                repaired += o.stats.repaired_here + o.stats.repaired_there;
                self.metrics.ae_exchanges.inc();
                self.metrics.ae_bytes.inc_by(o.bytes);
                if !o.stats.more {
                    break;
                }
                if o.stats.deferred > 0 && o.stats.fetched + o.stats.pushed == 0 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        self.metrics.ae_repaired.inc_by(repaired);
        tracing::info!(dc = %dc, partitions = partitions.len(), repaired, "anti-entropy covered the writes the stream dropped");
        Ok(())
    }
}
