//! The simulation's replication streams: the node crate's `streams.rs` and `stream_sink.rs`
//! over the simulated network. The queue lives in a [`MemStore`] that a crash truncates to
//! what was flushed, like the data; the core's `Outbox` and `Inbox` decide everything else.

use super::{Ctx, Origin, Pending, SimNode};
use crate::msg::{Req, Resp};
use meridian_core::ActorId;
use meridian_core::partition::parse_storage_key;
use meridian_core::store::{MemStore, Store};
use meridian_core::stream::{
    Admission, Batch, Entry, Limits, Outbox, QueueScan, Queued, Verdict, parse_queue_key,
    queue_key, queue_prefix,
};
use std::collections::{BTreeMap, VecDeque};

/// One remote DC's stream.
pub(super) struct SimStream {
    outbox: Outbox,
    sink: Option<ActorId>,
    /// A call failed: wait for the next tick before sending again.
    paused: bool,
}

/// A batch being applied, one per source at a time.
struct Applying {
    origin: (ActorId, u64),
    batch: Batch,
    remaining: usize,
    failed: bool,
}

/// A batch and the call it came with.
type Arrived = ((ActorId, u64), Batch);

#[derive(Default)]
pub(super) struct Sink {
    inbox: meridian_core::stream::Inbox,
    applying: BTreeMap<ActorId, Applying>,
    waiting: BTreeMap<ActorId, VecDeque<Arrived>>,
}

/// The queues as found in `log` (after a restart).
pub(super) fn recover(
    log: &MemStore,
    limits: Limits,
    session: impl FnMut() -> u64,
) -> BTreeMap<String, SimStream> {
    let mut scan = QueueScan::default();
    for (k, v) in log.entries() {
        scan.add(&k, &v);
    }
    scan.finish(limits, session)
        .into_iter()
        .map(|(dc, outbox)| {
            let s = SimStream {
                outbox,
                sink: None,
                paused: false,
            };
            (dc, s)
        })
        .collect()
}

impl SimNode {
    fn next_session(&mut self) -> u64 {
        self.session_seq += 1;
        (u64::from(self.incarnation) << 32) | self.session_seq
    }

    /// `Effect::Stream`: queue a coordinated write for `dc`.
    pub(super) fn stream_append(&mut self, dc: &str, skey: &[u8], object: &[u8], now: u64) {
        let Some((partition, _, _)) = parse_storage_key(skey) else {
            return;
        };
        if !self.streams.contains_key(dc) {
            let session = self.next_session();
            let s = SimStream {
                outbox: Outbox::recover(self.stream_limits, session, 0, []),
                sink: None,
                paused: false,
            };
            self.streams.insert(dc.to_string(), s);
        }
        let durable = self.durable(skey);
        let Some(s) = self.streams.get_mut(dc) else {
            return;
        };
        let full = Queued::new(now, skey, Some(object)).encode();
        let reference_len = (full.len() - object.len() + 1) as u64;
        match s.outbox.admit(partition, full.len() as u64, reference_len) {
            Admission::Full { seq } => {
                let _ = self.stream_log.put(&queue_key(dc, seq), &full, durable);
            }
            Admission::Reference { seq } => {
                let r = Queued::new(now, skey, None).encode();
                let _ = self.stream_log.put(&queue_key(dc, seq), &r, durable);
                self.stream_references += 1;
            }
            Admission::Dropped => self.stream_dropped += 1,
        }
    }

    /// Every tick: pick each stream's sink, resume paused streams, send what the window
    /// allows.
    pub(super) fn stream_tick(&mut self, ctx: &mut Ctx<'_>) {
        let dcs: Vec<String> = self.streams.keys().cloned().collect();
        for dc in dcs {
            let sink = self.pick_sink(&dc, ctx);
            let session = self.next_session();
            if let Some(s) = self.streams.get_mut(&dc) {
                s.paused = false;
                if s.sink != sink {
                    s.sink = sink;
                    s.outbox.restart(session);
                }
                // What the dropped writes owe is carried by continuous anti-entropy (geo
                // runs) or the read-repair pass (classic runs).
                let _ = s.outbox.take_dropped();
            }
            self.stream_send(&dc, ctx);
        }
    }

    fn pick_sink(&self, dc: &str, ctx: &Ctx<'_>) -> Option<ActorId> {
        let current = self.streams.get(dc).and_then(|s| s.sink);
        if let Some(c) = current
            && ctx.up.contains(&c)
        {
            return Some(c);
        }
        let version = self.history.current()?;
        version
            .members()
            .iter()
            .filter(|m| m.dc == dc && m.id != self.id && ctx.up.contains(&m.id))
            .map(|m| m.id)
            .max_by_key(|id| {
                let mut h = blake3::Hasher::new();
                h.update(&self.id.0);
                h.update(&id.0);
                *h.finalize().as_bytes()
            })
    }

    fn stream_send(&mut self, dc: &str, ctx: &mut Ctx<'_>) {
        loop {
            let Some(s) = self.streams.get_mut(dc) else {
                return;
            };
            let (Some(sink), false) = (s.sink, s.paused) else {
                return;
            };
            let Some(first) = s.outbox.next_batch() else {
                return;
            };
            let limits = s.outbox.limits();
            let mut entries = Vec::new();
            let mut end = first;
            for (k, v) in self.stream_log.scan(&queue_prefix(dc)) {
                let Some((_, seq)) = parse_queue_key(&k) else {
                    continue;
                };
                if seq < first {
                    continue;
                }
                if entries.len() >= limits.batch_entries {
                    break;
                }
                end = seq + 1;
                let Ok(q) = Queued::decode(&v) else {
                    continue;
                };
                let current = |skey: &[u8]| self.data.get(skey);
                let entry = q
                    .into_entry(seq, ctx.now, limits.max_age_ms, current)
                    .unwrap_or_else(|e| match e {});
                if let Some(entry) = entry {
                    entries.push(entry);
                }
            }
            if end == first {
                end = first + 1;
            }
            let (session, opens) = s.outbox.sent(first, end);
            let batch = Batch {
                source: self.id,
                session,
                opens,
                first,
                entries,
                end,
            };
            let pending = Pending::StreamBatch {
                dc: dc.to_string(),
                session,
                first,
            };
            self.call(sink, Req::StreamBatch(batch), pending, ctx);
        }
    }

    /// The sink's answer to a batch (or the call's failure).
    pub(super) fn stream_reply(
        &mut self,
        dc: String,
        session: u64,
        first: u64,
        resp: Resp,
        ctx: &mut Ctx<'_>,
    ) {
        let reply = match resp {
            Resp::StreamReply(r) => Some(r),
            _ => None,
        };
        let new_session = self.next_session();
        let Some(s) = self.streams.get_mut(&dc) else {
            return;
        };
        let after = s.outbox.on_reply(session, first, reply, new_session);
        if after.back_off {
            s.paused = true;
        }
        if let Some(before) = after.delete_before {
            for (k, _) in self.stream_log.scan(&queue_prefix(&dc)) {
                if parse_queue_key(&k).is_some_and(|(_, seq)| seq < before) {
                    self.stream_log.remove(&k);
                }
            }
        }
        self.stream_send(&dc, ctx);
    }

    /// A batch from another DC: applied after the source's batch before it.
    pub(super) fn stream_receive(
        &mut self,
        origin: (ActorId, u64),
        batch: Batch,
        ctx: &mut Ctx<'_>,
    ) {
        let source = batch.source;
        if self.sink.applying.contains_key(&source) {
            self.sink
                .waiting
                .entry(source)
                .or_default()
                .push_back((origin, batch));
            return;
        }
        let skip = match self.sink.inbox.check(&batch) {
            Verdict::Refuse(r) => return self.respond(origin, Resp::StreamReply(r), ctx),
            Verdict::Apply { skip } => skip,
        };
        let entries: Vec<Entry> = batch.entries[skip.min(batch.entries.len())..].to_vec();
        self.sink.applying.insert(
            source,
            Applying {
                origin,
                batch,
                remaining: entries.len() + 1,
                failed: false,
            },
        );
        for e in entries {
            let keyspace = parse_storage_key(&e.storage_key).and_then(|(_, ks, _)| {
                self.keyspaces
                    .iter()
                    .find(|k| k.id() == ks)
                    .map(|k| k.name.clone())
            });
            match keyspace {
                Some(name) => self.relay(
                    Origin::Batch(source),
                    name,
                    e.storage_key,
                    e.object,
                    usize::MAX,
                    false,
                    ctx,
                ),
                None => self.stream_entry_done(source, Resp::Refused, ctx),
            }
        }
        // The count started one high so no early answer could finish the batch mid-loop.
        self.stream_entry_done(source, Resp::Relayed(Vec::new()), ctx);
    }

    /// One write of the source's batch has been relayed in this DC (or failed to be).
    pub(super) fn stream_entry_done(&mut self, source: ActorId, resp: Resp, ctx: &mut Ctx<'_>) {
        let Some(a) = self.sink.applying.get_mut(&source) else {
            return;
        };
        a.failed |= matches!(resp, Resp::Refused);
        a.remaining -= 1;
        if a.remaining > 0 {
            return;
        }
        let Some(a) = self.sink.applying.remove(&source) else {
            return;
        };
        let resp = if a.failed {
            Resp::Refused
        } else {
            Resp::StreamReply(self.sink.inbox.applied(&a.batch))
        };
        self.respond(a.origin, resp, ctx);
        let next = self
            .sink
            .waiting
            .get_mut(&source)
            .and_then(VecDeque::pop_front);
        if let Some((origin, batch)) = next {
            self.stream_receive(origin, batch, ctx);
        }
    }

    /// Writes queued on this node's streams and not yet acknowledged.
    pub fn stream_queued(&self) -> u64 {
        self.streams
            .values()
            .map(|s| s.outbox.depth().entries)
            .sum()
    }
}
