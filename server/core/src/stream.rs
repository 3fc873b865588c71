//! Cross-DC replication streams: how a write whose level does not wait for a remote DC
//! (`LOCAL_*`) still reaches it, once, in order, and without loss.
//!
//! Each node keeps one durable queue per remote DC of the writes it coordinated. The
//! [`Outbox`] decides what enters the queue and what is sent next; the node (or the
//! simulation) stores the entries and moves the bytes. A remote node, the stream's *sink*,
//! checks every batch with an [`Inbox`], applies it in its DC, and acknowledges it; only then
//! does the sender delete it. So a restart of either side, or a partition of any length,
//! loses nothing the queue held: the sender resends from its oldest unacknowledged entry.
//!
//! Laws (property-tested below):
//! - an entry is deleted only after the sink acknowledged a batch that held it or a later
//!   one of the same session (acknowledgements are cumulative and batches of one source are
//!   applied in order);
//! - a sink never applies a batch that starts after a gap: it names the sequence it expects
//!   instead, and the sender rewinds to it;
//! - the queue never holds more than `max_bytes` of full entries plus a quarter of that in
//!   references; past that, writes are dropped from the stream, every one counted, and their
//!   partitions are left to anti-entropy.

use crate::actor::ActorId;
use crate::merkle::PartitionSet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How big the queue and its batches may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of full entries the queue holds before it sheds to references.
    pub max_bytes: u64,
    /// Entries in one batch.
    pub batch_entries: usize,
    /// Bytes of one batch (at least one entry is always sent).
    pub batch_bytes: u64,
    /// Batches sent and not yet acknowledged: enough to keep a long link busy.
    pub window: usize,
    /// A queued write older than this (ms) is sent as a reference, the key's state now:
    /// the same bound as a hint's age, so tombstone GC's grace covers both (a write
    /// captured before a delete must not arrive after the tombstone was purged).
    pub max_age_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            batch_entries: 512,
            batch_bytes: 1 << 20,
            window: 64,
            max_age_ms: 3 * 3600 * 1000,
        }
    }
}

impl Limits {
    /// References may take this much beyond `max_bytes`: a key alone is small, so a
    /// quarter of the budget holds far more writes than the full entries did.
    pub fn reference_bytes(&self) -> u64 {
        self.max_bytes / 4
    }
}

/// What the queue keeps for one write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// The sender's wall clock when the write was queued, for the sink's lag figures.
    pub written_ms: u64,
    #[serde(with = "serde_bytes")]
    pub storage_key: Vec<u8>,
    /// The object as coordinated, or `None` for a reference: the sender reads the key's
    /// current state when it sends it.
    pub object: Option<serde_bytes::ByteBuf>,
}

impl Queued {
    /// A write as queued: with its object, or as a reference (`None`).
    pub fn new(written_ms: u64, storage_key: &[u8], object: Option<&[u8]>) -> Self {
        Self {
            written_ms,
            storage_key: storage_key.to_vec(),
            object: object.map(|o| serde_bytes::ByteBuf::from(o.to_vec())),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, Vec::new()).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    pub fn is_reference(&self) -> bool {
        self.object.is_none()
    }

    /// The entry to send at `seq`. A reference takes the key's state as it is now, read
    /// with `current` (it includes the queued write); one whose key holds nothing is
    /// skipped (`None`). A write queued more than `max_age_ms` before `now_ms` goes as a
    /// reference too (see [`Limits::max_age_ms`]).
    pub fn into_entry<E>(
        self,
        seq: u64,
        now_ms: u64,
        max_age_ms: u64,
        current: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<Option<Entry>, E> {
        let fresh = now_ms.saturating_sub(self.written_ms) <= max_age_ms;
        let object = match self.object.filter(|_| fresh) {
            Some(o) => o.into_vec(),
            None => match current(&self.storage_key)? {
                Some(o) => o,
                None => return Ok(None),
            },
        };
        Ok(Some(Entry {
            seq,
            written_ms: self.written_ms,
            storage_key: self.storage_key,
            object,
        }))
    }
}

/// Where a queue keeps its entries: the DC's name, length-prefixed so that "dc1" does not
/// prefix "dc10", then the sequence, big-endian, so the store's order is the queue's.
pub fn queue_prefix(dc: &str) -> Vec<u8> {
    let name = &dc.as_bytes()[..dc.len().min(255)];
    let mut p = Vec::with_capacity(name.len() + 9);
    p.push(name.len() as u8);
    p.extend_from_slice(name);
    p
}

pub fn queue_key(dc: &str, seq: u64) -> Vec<u8> {
    let mut k = queue_prefix(dc);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The (DC, sequence) of a stored entry's key.
pub fn parse_queue_key(key: &[u8]) -> Option<(String, u64)> {
    let len = usize::from(*key.first()?);
    let dc = std::str::from_utf8(key.get(1..1 + len)?).ok()?;
    let seq = u64::from_be_bytes(key.get(1 + len..)?.try_into().ok()?);
    Some((dc.to_string(), seq))
}

/// Rebuilds the queues from their stored entries, fed in key order (after a restart).
#[derive(Debug, Default)]
pub struct QueueScan {
    found: BTreeMap<String, (u64, Vec<(u64, bool)>)>,
}

impl QueueScan {
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        let Some((dc, seq)) = parse_queue_key(key) else {
            return;
        };
        let (first, sizes) = self.found.entry(dc).or_insert((seq, Vec::new()));
        // Sequences are dense; a hole (a write whose put failed) counts as an empty reference.
        while *first + (sizes.len() as u64) < seq {
            sizes.push((0, true));
        }
        let reference = Queued::decode(value).map_or(true, |q| q.is_reference());
        sizes.push((value.len() as u64, reference));
    }

    /// Each DC's queue, each in a fresh session drawn from `session`.
    pub fn finish(self, limits: Limits, mut session: impl FnMut() -> u64) -> Vec<(String, Outbox)> {
        self.found
            .into_iter()
            .map(|(dc, (first, sizes))| (dc, Outbox::recover(limits, session(), first, sizes)))
            .collect()
    }
}

/// One write on the wire: always the full state (a reference is resolved before sending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub written_ms: u64,
    #[serde(with = "serde_bytes")]
    pub storage_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub object: Vec<u8>,
}

/// What a sender sends its sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub source: ActorId,
    /// Changes whenever the sender starts over (a restart, a failed call, a new sink).
    pub session: u64,
    /// The first batch of a session: the sink takes `first` as where the session starts.
    pub opens: bool,
    pub first: u64,
    /// Sequences past `first` may be missing: entries whose reference found nothing to send.
    pub entries: Vec<Entry>,
    /// One past the last sequence this batch covers.
    pub end: u64,
}

/// The sink's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Everything of the session before `end` is applied.
    Applied { end: u64 },
    /// The batch does not follow what the sink applied: resend from `expected`, or open a
    /// new session when the sink does not know this one (`None`).
    Gap { expected: Option<u64> },
}

macro_rules! codec {
    ($t:ty) => {
        impl $t {
            pub fn encode(&self) -> Vec<u8> {
                postcard::to_extend(self, Vec::new()).unwrap_or_default()
            }

            pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
                postcard::from_bytes(bytes)
            }
        }
    };
}
codec!(Batch);
codec!(Reply);

/// How a write enters the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// With its object, at sequence `seq`.
    Full { seq: u64 },
    /// As a reference (the key alone), at sequence `seq`.
    Reference { seq: u64 },
    /// Not at all: the queue is full; anti-entropy will carry it.
    Dropped,
}

/// What the queue holds, for status and for the shedding decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    pub entries: u64,
    pub full_bytes: u64,
    pub reference_bytes: u64,
}

/// Counters since the start, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shed {
    /// Writes queued as references because the queue was full.
    pub references: u64,
    /// Writes not queued at all.
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    first: u64,
    end: u64,
}

/// An entry's queued size, with this bit set for a reference: four bytes of memory per
/// queued write keep the accounting exact whatever the batches' boundaries were.
const REFERENCE: u32 = 1 << 31;

/// The sender's side of one stream (this node → one remote DC). Sans-IO: the executor keeps
/// the entries, this keeps the sequence numbers and the accounting.
#[derive(Debug, Clone)]
pub struct Outbox {
    limits: Limits,
    session: u64,
    opened: bool,
    next_seq: u64,
    /// Everything before this is acknowledged (and deleted by the executor).
    acked: u64,
    /// The next sequence to send.
    cursor: u64,
    in_flight: VecDeque<InFlight>,
    /// The size of each entry from `acked` to `next_seq`.
    sizes: VecDeque<u32>,
    depth: Depth,
    shed: Shed,
    /// Partitions of dropped writes: anti-entropy with the DC must cover them.
    dropped: PartitionSet,
    any_dropped: bool,
}

/// What the executor must do after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AfterReply {
    /// Delete every queued entry before this sequence.
    pub delete_before: Option<u64>,
    /// The call failed or the sink lost the session: wait before sending again.
    pub back_off: bool,
}

impl Outbox {
    /// A stream whose queue, as found on disk, starts at `first` and holds entries of the
    /// given sizes (`(bytes, is_reference)`, one per sequence; a missing entry counts as an
    /// empty reference). `session` must differ from every earlier session of this node (the
    /// executor draws it at random).
    pub fn recover(
        limits: Limits,
        session: u64,
        first: u64,
        sizes: impl IntoIterator<Item = (u64, bool)>,
    ) -> Self {
        let mut depth = Depth::default();
        let sizes: VecDeque<u32> = sizes
            .into_iter()
            .map(|(bytes, reference)| {
                let bytes = bytes.min(u64::from(REFERENCE - 1)) as u32;
                add(&mut depth, bytes, reference);
                if reference { bytes | REFERENCE } else { bytes }
            })
            .collect();
        Self {
            limits,
            session,
            opened: false,
            next_seq: first + sizes.len() as u64,
            acked: first,
            cursor: first,
            in_flight: VecDeque::new(),
            sizes,
            depth,
            shed: Shed::default(),
            dropped: PartitionSet::default(),
            any_dropped: false,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn depth(&self) -> Depth {
        self.depth
    }

    pub fn shed(&self) -> Shed {
        self.shed
    }

    /// Decides how a write of `full` bytes (as queued with its object) or `reference` bytes
    /// (as a reference) enters the queue, and accounts for it.
    pub fn admit(&mut self, partition: u16, full: u64, reference: u64) -> Admission {
        let seq = self.next_seq;
        let (bytes, admission) = if self.depth.full_bytes + full <= self.limits.max_bytes {
            (full, Admission::Full { seq })
        } else if self.depth.reference_bytes + reference <= self.limits.reference_bytes() {
            self.shed.references += 1;
            (reference, Admission::Reference { seq })
        } else {
            self.shed.dropped += 1;
            self.dropped.insert(partition);
            self.any_dropped = true;
            return Admission::Dropped;
        };
        let bytes = bytes.min(u64::from(REFERENCE - 1)) as u32;
        let is_ref = matches!(admission, Admission::Reference { .. });
        add(&mut self.depth, bytes, is_ref);
        self.sizes
            .push_back(if is_ref { bytes | REFERENCE } else { bytes });
        self.next_seq += 1;
        admission
    }

    /// Where the next batch starts, if one may be sent now (something is unsent and the
    /// window has room). The executor reads up to the batch limits from there and reports
    /// what it read with [`sent`](Self::sent).
    pub fn next_batch(&self) -> Option<u64> {
        (self.cursor < self.next_seq && self.in_flight.len() < self.limits.window)
            .then_some(self.cursor)
    }

    /// The executor read the entries `first..end` and sends them: the batch's session, and
    /// whether it opens it.
    pub fn sent(&mut self, first: u64, end: u64) -> (u64, bool) {
        let opens = !self.opened && self.in_flight.is_empty();
        self.in_flight.push_back(InFlight { first, end });
        self.cursor = end;
        (self.session, opens)
    }

    /// The sink answered the batch that started at `first` in `session`; `None` when the
    /// call failed. Answers of an earlier session are stale and change nothing.
    pub fn on_reply(
        &mut self,
        session: u64,
        first: u64,
        reply: Option<Reply>,
        new_session: u64,
    ) -> AfterReply {
        if session != self.session || !self.in_flight.iter().any(|b| b.first == first) {
            return AfterReply::default();
        }
        match reply {
            Some(Reply::Applied { end }) => {
                self.opened = true;
                AfterReply {
                    delete_before: self.acknowledge(end),
                    back_off: false,
                }
            }
            Some(Reply::Gap {
                expected: Some(expected),
            }) if expected >= self.acked => {
                // Everything before `expected` is applied; resend from there.
                self.opened = true;
                let delete_before = self.acknowledge(expected);
                self.in_flight.clear();
                self.cursor = self.acked;
                AfterReply {
                    delete_before,
                    back_off: false,
                }
            }
            _ => {
                self.restart(new_session);
                AfterReply {
                    delete_before: None,
                    back_off: true,
                }
            }
        }
    }

    /// Starts over from the oldest unacknowledged entry in a new session (the sink changed,
    /// or the executor lost track of a call).
    pub fn restart(&mut self, new_session: u64) {
        self.session = new_session;
        self.opened = false;
        self.in_flight.clear();
        self.cursor = self.acked;
    }

    fn acknowledge(&mut self, end: u64) -> Option<u64> {
        let end = end.min(self.cursor);
        if end <= self.acked {
            return None;
        }
        while self.in_flight.front().is_some_and(|b| b.end <= end) {
            self.in_flight.pop_front();
        }
        for _ in self.acked..end {
            let Some(size) = self.sizes.pop_front() else {
                break;
            };
            let d = &mut self.depth;
            d.entries -= 1;
            if size & REFERENCE != 0 {
                d.reference_bytes -= u64::from(size & !REFERENCE);
            } else {
                d.full_bytes -= u64::from(size);
            }
        }
        self.acked = end;
        Some(end)
    }

    /// Everything before this sequence is acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Whether everything queued is acknowledged.
    pub fn drained(&self) -> bool {
        self.acked == self.next_seq
    }

    /// The partitions of writes dropped since the last call, once the queue has drained
    /// (so anti-entropy runs after what the stream still carries has landed).
    pub fn take_dropped(&mut self) -> Option<PartitionSet> {
        if !self.any_dropped || !self.drained() {
            return None;
        }
        self.any_dropped = false;
        Some(std::mem::take(&mut self.dropped))
    }

    /// Partitions handed out by [`take_dropped`](Self::take_dropped) whose anti-entropy
    /// failed: they stay owed.
    pub fn owe(&mut self, partitions: &PartitionSet) {
        for p in partitions.iter() {
            self.dropped.insert(p);
            self.any_dropped = true;
        }
    }
}

fn add(depth: &mut Depth, bytes: u32, reference: bool) {
    depth.entries += 1;
    if reference {
        depth.reference_bytes += u64::from(bytes);
    } else {
        depth.full_bytes += u64::from(bytes);
    }
}

/// The sink's side: where each source's current session stands. Batches of one source must
/// be checked and applied one at a time, in the order they arrive.
#[derive(Debug, Clone, Default)]
pub struct Inbox {
    sources: BTreeMap<ActorId, (u64, u64)>,
    /// Batches refused for a gap, for metrics.
    pub gaps: u64,
}

/// What to do with a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Apply its entries from index `skip` on (those before were applied already).
    Apply { skip: usize },
    /// Refuse it with this reply.
    Refuse(Reply),
}

impl Inbox {
    pub fn check(&mut self, batch: &Batch) -> Verdict {
        let known = self.sources.get(&batch.source).copied();
        let next = match known {
            Some((session, next)) if session == batch.session => next,
            _ if batch.opens => batch.first,
            _ => {
                self.gaps += 1;
                return Verdict::Refuse(Reply::Gap { expected: None });
            }
        };
        if batch.first > next {
            self.gaps += 1;
            return Verdict::Refuse(Reply::Gap {
                expected: Some(next),
            });
        }
        let skip = batch.entries.iter().take_while(|e| e.seq < next).count();
        Verdict::Apply { skip }
    }

    /// The batch's entries are applied: the session continues after it.
    pub fn applied(&mut self, batch: &Batch) -> Reply {
        let entry = self
            .sources
            .entry(batch.source)
            .or_insert((batch.session, batch.first));
        if entry.0 != batch.session {
            *entry = (batch.session, batch.first);
        }
        entry.1 = entry.1.max(batch.end);
        Reply::Applied { end: entry.1 }
    }
}

#[cfg(test)]
mod tests;
