//! Hinted handoff: writes held for a replica that was down or did not answer, in their own
//! RocksDB column family so they survive a restart of the node holding them.
//!
//! Hints carry the replica's full object state, not the client operation, so delivering one
//! is a merge at the target (idempotent, order-free) and never mints a version. Queues are
//! bounded per target by count and by age; what is dropped is counted, never silent.

use crate::error::{NodeError, NodeResult};
use crate::metrics::Metrics;
use crate::storage::Storage;
use meridian_core::ActorId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Serialize, Deserialize)]
struct HintRecord {
    created_ms: u64,
    #[serde(with = "serde_bytes")]
    storage_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    object: Vec<u8>,
}

/// One hint ready to deliver.
pub struct Hint {
    pub hint_key: Vec<u8>,
    pub storage_key: Vec<u8>,
    pub object: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    pub count: u64,
    pub bytes: u64,
    pub oldest_ms: Option<u64>,
}

pub struct Hints {
    storage: Arc<Storage>,
    metrics: Arc<Metrics>,
    seq: AtomicU64,
    max_age_ms: u64,
    max_count: u64,
    queues: Mutex<BTreeMap<ActorId, QueueStats>>,
    pub dropped: AtomicU64,
    pub delivered: AtomicU64,
}

impl Hints {
    /// Opens the queues and counts what a previous run left behind.
    pub fn open(
        storage: Arc<Storage>,
        metrics: Arc<Metrics>,
        max_age_secs: u64,
        max_count: u64,
    ) -> NodeResult<Self> {
        let mut queues: BTreeMap<ActorId, QueueStats> = BTreeMap::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let chunk = storage.hints_range(&[], after.as_deref(), 4096)?;
            let Some((last, _)) = chunk.last() else {
                break;
            };
            after = Some(last.clone());
            for (k, v) in &chunk {
                let (Some(target), Ok(rec)) = (target_of(k), postcard::from_bytes::<HintRecord>(v))
                else {
                    continue;
                };
                let q = queues.entry(target).or_default();
                q.count += 1;
                q.bytes += v.len() as u64;
                q.oldest_ms = Some(
                    q.oldest_ms
                        .map_or(rec.created_ms, |o| o.min(rec.created_ms)),
                );
            }
        }
        let total: u64 = queues.values().map(|q| q.count).sum();
        metrics.hints_queued.set(total as i64);
        if total > 0 {
            tracing::info!(
                hints = total,
                targets = queues.len(),
                "hints recovered from disk"
            );
        }
        Ok(Self {
            storage,
            metrics,
            seq: AtomicU64::new(0),
            max_age_ms: max_age_secs.saturating_mul(1000),
            max_count: max_count.max(1),
            queues: Mutex::new(queues),
            dropped: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        })
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, BTreeMap<ActorId, QueueStats>> {
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Time-ordered and unique within this process; later runs start later, so the oldest
    /// hint of a target is always the first key of its prefix.
    fn next_seq(&self, now_ms: u64) -> u64 {
        let floor = now_ms << 16;
        let mut cur = self.seq.load(Ordering::Relaxed);
        loop {
            let next = floor.max(cur + 1);
            match self
                .seq
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => cur = seen,
            }
        }
    }

    pub fn add(
        &self,
        target: ActorId,
        storage_key: &[u8],
        object: &[u8],
        now_ms: u64,
        sync: bool,
    ) -> NodeResult<()> {
        let rec = HintRecord {
            created_ms: now_ms,
            storage_key: storage_key.to_vec(),
            object: object.to_vec(),
        };
        let value = postcard::to_allocvec(&rec)
            .map_err(|e| NodeError::Internal(format!("encoding hint: {e}")))?;
        let mut key = target.as_bytes().to_vec();
        key.extend_from_slice(&self.next_seq(now_ms).to_be_bytes());
        self.storage.put_hint(&key, &value, sync)?;
        let over = {
            let mut queues = self.queues();
            let q = queues.entry(target).or_default();
            q.count += 1;
            q.bytes += value.len() as u64;
            q.oldest_ms.get_or_insert(now_ms);
            q.count > self.max_count
        };
        self.metrics.hints_queued.inc();
        self.metrics.hints_written.inc();
        if over {
            // Oldest first: the newest state of a key matters most, and older hints for the
            // same key are usually superseded by it anyway.
            let oldest = self.storage.hints_range(target.as_bytes(), None, 1)?;
            self.discard(target, &oldest, "hint queue full")?;
        }
        Ok(())
    }

    fn discard(&self, target: ActorId, items: &[(Vec<u8>, Vec<u8>)], why: &str) -> NodeResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = items.iter().map(|(k, _)| k.clone()).collect();
        self.storage.delete_hints(&keys)?;
        let n = items.len() as u64;
        let bytes: u64 = items.iter().map(|(_, v)| v.len() as u64).sum();
        self.account_removed(target, n, bytes);
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.metrics.hints_dropped.inc_by(n);
        tracing::warn!(target_node = %target, dropped = n, reason = why, "hints dropped");
        Ok(())
    }

    fn account_removed(&self, target: ActorId, n: u64, bytes: u64) {
        let mut queues = self.queues();
        if let Some(q) = queues.get_mut(&target) {
            q.count = q.count.saturating_sub(n);
            q.bytes = q.bytes.saturating_sub(bytes);
            if q.count == 0 {
                queues.remove(&target);
            }
        }
        self.metrics.hints_queued.sub(n as i64);
    }

    /// Targets with hints waiting.
    pub fn targets(&self) -> Vec<ActorId> {
        self.queues().keys().copied().collect()
    }

    pub fn stats(&self) -> BTreeMap<ActorId, QueueStats> {
        self.queues().clone()
    }

    pub fn total(&self) -> u64 {
        self.queues().values().map(|q| q.count).sum()
    }

    /// The next hints for `target`, oldest first; expired ones are dropped on the way.
    /// The target's oldest hints: at most `limit` of them and `max_bytes` of payload (at
    /// least one, however large).
    pub fn next_batch(
        &self,
        target: ActorId,
        limit: usize,
        max_bytes: usize,
        now_ms: u64,
    ) -> NodeResult<Vec<Hint>> {
        let mut items = self.storage.hints_range(target.as_bytes(), None, limit)?;
        let mut bytes = 0usize;
        let keep = items
            .iter()
            .take_while(|(_, v)| {
                let first = bytes == 0;
                bytes = bytes.saturating_add(v.len());
                first || bytes <= max_bytes
            })
            .count();
        items.truncate(keep);
        let mut expired = Vec::new();
        let mut out = Vec::new();
        for (k, v) in items {
            match postcard::from_bytes::<HintRecord>(&v) {
                Ok(rec) if now_ms.saturating_sub(rec.created_ms) <= self.max_age_ms => {
                    out.push(Hint {
                        hint_key: k,
                        storage_key: rec.storage_key,
                        object: rec.object,
                    });
                }
                _ => expired.push((k, v)),
            }
        }
        self.discard(target, &expired, "hint expired or unreadable")?;
        if out.is_empty() {
            // Recompute the oldest age lazily: the queue may be empty now.
            let mut queues = self.queues();
            if let Some(q) = queues.get_mut(&target)
                && q.count == 0
            {
                queues.remove(&target);
            }
        }
        Ok(out)
    }

    /// Hints the target has acknowledged.
    pub fn delivered(&self, target: ActorId, hints: &[Hint]) -> NodeResult<()> {
        let keys: Vec<Vec<u8>> = hints.iter().map(|h| h.hint_key.clone()).collect();
        self.storage.delete_hints(&keys)?;
        let bytes: u64 = hints
            .iter()
            .map(|h| (h.storage_key.len() + h.object.len() + 12) as u64)
            .sum();
        self.account_removed(target, hints.len() as u64, bytes);
        if let Some(q) = self.queues().get_mut(&target) {
            q.oldest_ms = None;
        }
        self.delivered
            .fetch_add(hints.len() as u64, Ordering::Relaxed);
        self.metrics.hints_delivered.inc_by(hints.len() as u64);
        Ok(())
    }
}

fn target_of(key: &[u8]) -> Option<ActorId> {
    let bytes: [u8; 16] = key.get(..16)?.try_into().ok()?;
    Some(ActorId::from_bytes(bytes))
}
