//! Tombstone GC: when a deleted key may leave the disk without coming back.
//!
//! A tombstone must outlive every copy of what it deleted. Copies live on replicas (which
//! anti-entropy and the write path reconcile) and in transit: hints, replication streams,
//! read repairs. So a tombstone is purged in two steps, one partition at a time, by the
//! partition's *reaper* (its replica with the smallest actor id, across every DC):
//!
//! 1. **Confirm.** The reaper asks every other replica of the partition, in every DC, whether
//!    it holds byte-for-byte the reaper's tombstone ([`Candidate::digest`]). Only when all
//!    say yes is the key *confirmed*, with the time (a [`Confirmed`] record the reaper keeps).
//! 2. **Purge**, at least `grace` after the confirmation. From the confirmation on no replica
//!    holds the deleted value any more, so no new copy of it can be made; copies made before
//!    it are hints and stream entries, which are delivered within the maximum hint age or not
//!    at all, and `grace` is longer than that. The reaper asks every other replica to purge
//!    the key *if it still holds that very tombstone*, and purges its own copy only when
//!    all of them did. A replica that took a newer write meanwhile keeps it, and the reaper
//!    forgets the key.
//!
//! Laws (tested below and by the simulation's resurrection check):
//! - nothing but a state made only of tombstones is ever purged;
//! - a key is purged only where its state still has the digest every replica confirmed;
//! - no purge happens sooner than `grace` after every replica was known to hold the tombstone.
//!
//! A purge that reached only some replicas is harmless: anti-entropy copies the tombstone
//! back to the ones that dropped it, and a later sweep purges it everywhere. Dots stay unique
//! across purges because a replica starts a key's counter at its clock (see
//! [`crate::dvv::DvvSet::event_from`]).

use crate::actor::ActorId;
use crate::hlc;
use crate::object::StoredObject;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xxhash_rust::xxh3::xxh3_64;

/// The most tombstones one sweep of one partition asks about (the rest wait for the next).
pub const SWEEP_LIMIT: usize = 4096;

/// A tombstone the reaper holds: which key, and exactly which state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Candidate {
    #[serde(with = "serde_bytes")]
    pub storage_key: Vec<u8>,
    /// [`digest`] of the stored bytes.
    pub digest: u64,
}

/// The reaper's record that every replica held a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    pub digest: u64,
    /// Wall clock (ms) when the last replica's answer arrived.
    pub at_ms: u64,
}

impl Confirmed {
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.digest.to_be_bytes());
        out[8..].copy_from_slice(&self.at_ms.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let digest = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let at_ms = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
        Some(Self { digest, at_ms })
    }
}

/// Identifies a stored state: equal digests mean the replicas hold the same bytes.
pub fn digest(stored: &[u8]) -> u64 {
    xxh3_64(stored)
}

/// Whether an object is nothing but tombstones, the newest at least `min_age_ms` old.
pub fn is_dead(object: &StoredObject, now_ms: u64, min_age_ms: u64) -> bool {
    let (dead, newest) = match object {
        StoredObject::Siblings(s) => (
            !s.dvv.is_empty() && s.dvv.values().all(|v| v.is_tombstone()),
            s.dvv.values().map(|v| v.timestamp).max().unwrap_or(0),
        ),
        StoredObject::Lww(r) => (r.version.is_tombstone(), r.version.timestamp),
        // An empty CRDT still holds its context, which keeps a late delta from bringing
        // back what was removed: it is never purged.
        StoredObject::Crdt(_) => (false, 0),
    };
    dead && hlc::wall_ms(newest).saturating_add(min_age_ms) <= now_ms
}

/// A stored key as a sweep sees it: a candidate when its state is dead (an undecodable one
/// is left for anti-entropy and the operator, never purged).
pub fn candidate(storage_key: &[u8], stored: &[u8], now_ms: u64) -> Option<Candidate> {
    let object = StoredObject::decode(stored).ok()?;
    is_dead(&object, now_ms, 0).then(|| Candidate {
        storage_key: storage_key.to_vec(),
        digest: digest(stored),
    })
}

/// What a purge found at a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// The tombstone was there and is deleted.
    Removed,
    /// The key held nothing (purged before).
    Absent,
    /// The key holds something else now: kept.
    Kept,
}

impl Purge {
    /// Whether the key is gone from this replica.
    pub fn gone(self) -> bool {
        self != Purge::Kept
    }
}

/// What a reaper asks each other replica of one partition: the same request to all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Do you hold exactly these?
    pub ask: Vec<Candidate>,
    /// Purge these if you still hold exactly them.
    pub purge: Vec<Candidate>,
}

/// A replica's answer, one flag per entry of the request, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub held: Vec<bool>,
    /// True when the key is gone now (purged, or already absent).
    pub purged: Vec<bool>,
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("malformed tombstone request: {e}"))
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("malformed tombstone reply: {e}"))
    }
}

/// How a replica answers a reaper. `state` gives a key's stored bytes; `purge` removes a key
/// if its stored bytes still have the digest, and says whether the key is gone afterwards.
pub fn answer<E>(
    request: &Request,
    mut state: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, E>,
    mut purge: impl FnMut(&Candidate) -> Result<bool, E>,
) -> Result<Reply, E> {
    let mut reply = Reply::default();
    for c in &request.ask {
        let held = state(&c.storage_key)?.is_some_and(|b| digest(&b) == c.digest);
        reply.held.push(held);
    }
    for c in &request.purge {
        reply.purged.push(purge(c)?);
    }
    Ok(reply)
}

/// One sweep of one partition by its reaper.
#[derive(Debug, Clone)]
pub struct Sweep {
    request: Request,
    peers: usize,
    /// Per `ask` entry, how many peers said they hold it.
    held: Vec<usize>,
    /// Per `purge` entry, how many peers purged it.
    purged: Vec<usize>,
    /// Pending confirmations the scan found no matching tombstone for.
    forget: Vec<Vec<u8>>,
}

/// What the reaper does once a sweep's replies are in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Record these as confirmed now.
    pub confirm: Vec<(Vec<u8>, Confirmed)>,
    /// Purge these locally (if still this digest), then drop their records.
    pub purge: Vec<Candidate>,
    /// Drop these records: the key changed, vanished, or was purged everywhere.
    pub forget: Vec<Vec<u8>>,
}

impl Sweep {
    /// Plans a sweep from the reaper's dead keys in the partition (see [`is_dead`]) and its
    /// confirmation records there. `peers` is the number of other replicas.
    pub fn plan(
        dead: Vec<Candidate>,
        records: BTreeMap<Vec<u8>, Confirmed>,
        peers: usize,
        now_ms: u64,
        grace_ms: u64,
    ) -> Self {
        let mut request = Request::default();
        let mut records = records;
        for c in dead {
            match records.remove(&c.storage_key) {
                Some(r) if r.digest == c.digest => {
                    if r.at_ms.saturating_add(grace_ms) <= now_ms {
                        request.purge.push(c);
                    }
                }
                // Unconfirmed, or confirmed for an older state: ask (again).
                _ => {
                    if request.ask.len() < SWEEP_LIMIT {
                        request.ask.push(c);
                    }
                }
            }
        }
        // What is left had no matching dead key: it changed or is gone.
        let forget: Vec<Vec<u8>> = records.into_keys().collect();
        Self {
            held: vec![0; request.ask.len()],
            purged: vec![0; request.purge.len()],
            request,
            peers,
            forget,
        }
    }

    /// The request to send to every peer (nothing to send when empty).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Nothing to ask and nothing to forget: the sweep can be skipped.
    pub fn is_empty(&self) -> bool {
        !self.asks_peers() && self.forget.is_empty()
    }

    /// Whether the peers have anything to answer (otherwise finish at once).
    pub fn asks_peers(&self) -> bool {
        !self.request.ask.is_empty() || !self.request.purge.is_empty()
    }

    /// Counts one peer's reply. A reply of the wrong shape counts as "no" everywhere.
    pub fn on_reply(&mut self, reply: &Reply) {
        if reply.held.len() != self.held.len() || reply.purged.len() != self.purged.len() {
            return;
        }
        for (n, yes) in self.held.iter_mut().zip(&reply.held) {
            *n += usize::from(*yes);
        }
        for (n, yes) in self.purged.iter_mut().zip(&reply.purged) {
            *n += usize::from(*yes);
        }
    }

    /// What to do locally, given every reply that arrived (a peer that did not answer
    /// simply did not confirm or purge).
    pub fn finish(self, now_ms: u64) -> Outcome {
        let peers = self.peers;
        let mut out = Outcome {
            forget: self.forget,
            ..Outcome::default()
        };
        for (c, n) in self.request.ask.into_iter().zip(self.held) {
            if n == peers {
                out.confirm.push((
                    c.storage_key,
                    Confirmed {
                        digest: c.digest,
                        at_ms: now_ms,
                    },
                ));
            }
        }
        for (c, n) in self.request.purge.into_iter().zip(self.purged) {
            if n == peers {
                out.purge.push(c);
            }
        }
        out
    }
}

/// The reaper of a partition among its replicas (every DC): the smallest actor id.
pub fn reaper(replicas: &[ActorId]) -> Option<ActorId> {
    replicas.iter().min().copied()
}

#[cfg(test)]
mod tests;
