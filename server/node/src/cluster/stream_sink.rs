//! Cross-DC replication streams, the receiving side: a node of this DC applies another DC's
//! batches in order (the core's [`Inbox`] refuses one that follows a gap), fans each write
//! out to the key's replicas here, and acknowledges the batch once every write is held by
//! its replicas or by a hint. It also keeps the replication lag of each source DC.

use super::Cluster;
use crate::error::{NodeError, NodeResult};
use meridian_core::ActorId;
use meridian_core::partition::parse_storage_key;
use meridian_core::stream::{Batch, Inbox, Reply, Verdict};
use meridian_proto::v1 as pb;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// A batch holds at most this many writes (the senders' batches are far smaller).
const MAX_BATCH_ENTRIES: usize = 16_384;
/// Lag samples kept per source DC for the percentiles in `meridian admin streams`.
const LAG_SAMPLES: usize = 1024;

/// What one source DC's streams did here.
#[derive(Debug, Clone, Default)]
pub struct InboundStatus {
    pub applied: u64,
    pub lag_p50_ms: u64,
    pub lag_p99_ms: u64,
    pub gaps: u64,
}

#[derive(Default)]
struct SourceDc {
    applied: u64,
    gaps: u64,
    lags: VecDeque<u64>,
}

/// One source's batches: applied one at a time; a batch that arrives before the one it
/// follows (concurrent calls may overtake each other) waits for it this long before the sink
/// refuses it as a gap.
#[derive(Default)]
struct Source {
    applying: tokio::sync::Mutex<()>,
    applied: tokio::sync::Notify,
}

const OVERTAKEN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Default)]
pub struct StreamSink {
    inbox: Mutex<Inbox>,
    sources: Mutex<BTreeMap<ActorId, Arc<Source>>>,
    dcs: Mutex<BTreeMap<String, SourceDc>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl StreamSink {
    pub fn status(&self) -> BTreeMap<String, InboundStatus> {
        lock(&self.dcs)
            .iter()
            .map(|(dc, s)| {
                let mut lags: Vec<u64> = s.lags.iter().copied().collect();
                lags.sort_unstable();
                let pct = |q: f64| -> u64 {
                    if lags.is_empty() {
                        return 0;
                    }
                    let i = ((lags.len() as f64 * q).ceil() as usize).clamp(1, lags.len()) - 1;
                    lags[i]
                };
                let st = InboundStatus {
                    applied: s.applied,
                    lag_p50_ms: pct(0.50),
                    lag_p99_ms: pct(0.99),
                    gaps: s.gaps,
                };
                (dc.clone(), st)
            })
            .collect()
    }
}

fn validate(batch: &Batch) -> NodeResult<()> {
    if batch.entries.len() > MAX_BATCH_ENTRIES {
        return Err(NodeError::InvalidArgument(format!(
            "replication stream batch of {} writes; the limit is {MAX_BATCH_ENTRIES}",
            batch.entries.len()
        )));
    }
    let mut prev = None;
    for e in &batch.entries {
        if e.seq < batch.first || e.seq >= batch.end || prev.is_some_and(|p| e.seq <= p) {
            return Err(NodeError::InvalidArgument(format!(
                "replication stream batch {}..{} holds sequence {} out of order or range",
                batch.first, batch.end, e.seq
            )));
        }
        if parse_storage_key(&e.storage_key).is_none() {
            return Err(NodeError::InvalidArgument(
                "replication stream entry with a malformed storage key".into(),
            ));
        }
        prev = Some(e.seq);
    }
    Ok(())
}

impl Cluster {
    /// `Peer.ReplicationStream`: one batch from a node of another DC.
    pub async fn receive_stream(self: &Arc<Self>, body: &[u8]) -> NodeResult<Vec<u8>> {
        let batch = Batch::decode(body).map_err(|e| {
            NodeError::InvalidArgument(format!("malformed replication stream batch: {e}"))
        })?;
        validate(&batch)?;
        let source = lock(&self.sink.sources)
            .entry(batch.source)
            .or_default()
            .clone();
        let source_dc = self
            .topology()
            .members
            .get(&batch.source)
            .map_or_else(|| "unknown".to_string(), |m| m.meta.dc.clone());
        let deadline = tokio::time::Instant::now() + OVERTAKEN_WAIT;
        let (_applying, skip) = loop {
            let applied = source.applied.notified();
            let guard = source.applying.lock().await;
            let verdict = lock(&self.sink.inbox).check(&batch);
            match verdict {
                Verdict::Apply { skip } => break (guard, skip),
                // Overtaken by a later call of the same session: wait for the earlier one.
                Verdict::Refuse(Reply::Gap {
                    expected: Some(expected),
                }) if expected < batch.first && tokio::time::Instant::now() < deadline => {
                    drop(guard);
                    let _ = tokio::time::timeout_at(deadline, applied).await;
                }
                Verdict::Refuse(reply) => {
                    lock(&self.sink.dcs).entry(source_dc).or_default().gaps += 1;
                    self.metrics.stream_gaps.inc();
                    return Ok(reply.encode());
                }
            }
        };
        let entries = &batch.entries[skip.min(batch.entries.len())..];
        let applying = entries.iter().map(|e| {
            let me = self.clone();
            async move {
                let ks_id = parse_storage_key(&e.storage_key).map(|(_, ks, _)| ks);
                let ks = me
                    .engine
                    .keyspaces()
                    .list()
                    .into_iter()
                    .find(|k| Some(k.id()) == ks_id)
                    .ok_or_else(|| {
                        NodeError::Unavailable(
                            "a streamed write's keyspace is not known here yet".into(),
                        )
                    })?;
                let state = pb::ObjectState {
                    storage_key: e.storage_key.clone().into(),
                    object: e.object.clone().into(),
                };
                // Wait for every replica here (or a hint kept for it): the sender deletes
                // the write once this batch is acknowledged.
                me.relay_here(state, ks, usize::MAX, me.strict).await?;
                Ok::<u64, NodeError>(e.written_ms)
            }
        });
        let results = futures::future::join_all(applying).await;
        let now = super::membership::now_ms();
        let mut lags = Vec::with_capacity(results.len());
        for r in results {
            // A write that could not be applied fails the batch: the sender resends it.
            lags.push(now.saturating_sub(r?));
        }
        let reply = lock(&self.sink.inbox).applied(&batch);
        source.applied.notify_waiters();
        {
            let mut dcs = lock(&self.sink.dcs);
            let s = dcs.entry(source_dc.clone()).or_default();
            s.applied += lags.len() as u64;
            for lag in &lags {
                if s.lags.len() == LAG_SAMPLES {
                    s.lags.pop_front();
                }
                s.lags.push_back(*lag);
            }
        }
        let hist = self.metrics.stream_lag.with_label_values(&[&source_dc]);
        for lag in lags {
            hist.observe(lag as f64 / 1000.0);
        }
        debug_assert!(matches!(reply, Reply::Applied { .. }));
        Ok(reply.encode())
    }
}
