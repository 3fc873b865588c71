//! One anti-entropy exchange between two replicas of some partitions of a keyspace.
//!
//! The initiator walks both trees top-down. Each round trip asks for the hashes of every
//! child of every node that differed one level up, so finding any number of diverged keys
//! costs one round trip per level (5), then one for the per-key digests of the differing
//! leaves, one or more to fetch the objects it lacks (bounded by bytes), and one or more to
//! push what the responder lacks. Objects are merged with the keyspace's join on both sides,
//! so an exchange never picks a winner: it only makes each side hold the union.
//!
//! Both sides run the same code here: [`Exchange`] is the initiator's state machine (a reply
//! in, the next request out) and [`answer`] the responder. Network I/O is the caller's; the
//! replica's trees, scans and merges come through the synchronous [`Replica`] trait, as the
//! write rules reach storage through [`Store`](crate::store::Store).

use super::{
    Forest, LEVEL_BITS, PARTITION_LEVEL, PartitionSet, SEGMENT_BITS, SEGMENT_LEVEL, children,
    entry_hash, locate, partition_of_hash, partitions_under,
};
use crate::limits::{MAX_BATCH_BYTES, batches_by_bytes};
use crate::partition::slice_prefix;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Leaves one exchange compares at most; the rest wait for the next exchange (their roots
/// still differ), which keeps one exchange's memory and message sizes bounded.
pub const MAX_LEAVES: usize = 4096;
/// Keys one exchange fetches at most.
pub const MAX_KEYS: usize = 16_384;
/// Partitions whose leaves one exchange compares at most: each costs a scan of that
/// partition on both sides, so this bounds an exchange's disk work (and its time, which
/// must fit a peer call) to a small share of the data however much differs.
pub const MAX_PARTITIONS: usize = 256;
/// Bytes of objects one exchange pushes at most (in batches of `MAX_BATCH_BYTES`).
pub const MAX_PUSH_BYTES: usize = 4 * MAX_BATCH_BYTES;
/// Times an exchange starts over because the responder's trees of some partitions were
/// being rebuilt, before it gives up for now.
const MAX_RESTARTS: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    #[serde(with = "serde_bytes")]
    pub storage_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// One key's digest: its placement hash (its id in the exchange) and the hash of what the
/// replica holds. Keys whose placement hashes collide share one digest, the XOR of theirs,
/// and are fetched together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    #[serde(with = "fixed64")]
    pub key_hash: u64,
    #[serde(with = "fixed64")]
    pub entry: u64,
}

/// Hashes are uniformly random: eight bytes each, where a varint would take ten.
mod fixed64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&v.to_le_bytes(), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        <[u8; 8]>::deserialize(d).map(u64::from_le_bytes)
    }
}

mod fixed64s {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|h| h.to_le_bytes()).collect();
        serde_bytes::serialize(&bytes, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let bytes: Vec<u8> = serde_bytes::deserialize(d)?;
        if !bytes.len().is_multiple_of(8) {
            return Err(serde::de::Error::custom(
                "hash list is not a multiple of 8 bytes",
            ));
        }
        Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The hashes of the nodes at `level` below `parents` (nodes at `level - 1`), in order,
    /// leaving out nodes inside partitions outside `partitions`. Level 0 is the root.
    Hashes {
        keyspace: u64,
        partitions: PartitionSet,
        level: u8,
        parents: Vec<u32>,
    },
    /// Per-key digests of these leaves.
    Digests { keyspace: u64, leaves: Vec<u32> },
    /// The stored objects of these keys, up to a byte budget.
    Fetch { keyspace: u64, keys: Vec<u64> },
    /// Objects for the responder to merge.
    Push { objects: Vec<Object> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Empty `hashes` and a non-empty `unready` when some of the partitions asked about have
    /// no tree yet: the initiator leaves those out and starts over.
    Hashes {
        #[serde(with = "fixed64s")]
        hashes: Vec<u64>,
        unready: Vec<u16>,
    },
    /// Sorted by key hash.
    Digests {
        digests: Vec<Digest>,
    },
    /// `truncated`: the byte budget ran out; ask again for the keys not sent.
    Objects {
        objects: Vec<Object>,
        truncated: bool,
    },
    Pushed {
        merged: u32,
        rejected: u32,
    },
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, Vec::new()).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ExchangeError<std::convert::Infallible>> {
        postcard::from_bytes(bytes)
            .map_err(|e| ExchangeError::BadRequest(format!("unreadable exchange request: {e}")))
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, Vec::new()).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ExchangeError<std::convert::Infallible>> {
        postcard::from_bytes(bytes)
            .map_err(|e| ExchangeError::Protocol(format!("unreadable exchange reply: {e}")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError<E> {
    #[error("storage: {0}")]
    Store(E),
    /// The peer asked for something malformed or beyond a limit.
    #[error("bad exchange request: {0}")]
    BadRequest(String),
    /// The peer's reply does not fit what was asked.
    #[error("exchange protocol violation: {0}")]
    Protocol(String),
}

impl ExchangeError<std::convert::Infallible> {
    pub fn widen<E>(self) -> ExchangeError<E> {
        match self {
            ExchangeError::Store(never) => match never {},
            ExchangeError::BadRequest(s) => ExchangeError::BadRequest(s),
            ExchangeError::Protocol(s) => ExchangeError::Protocol(s),
        }
    }
}

/// What merging one object did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    Changed,
    Unchanged,
    /// The object cannot be merged here (corrupt, or of another kind); the rest go on.
    Rejected(String),
}

/// A replica's side of an exchange.
pub trait Replica {
    type Error;

    fn forest(&self) -> &Forest;

    /// Visits the stored (storage key, bytes) under `prefix` in key order until `visit`
    /// returns false.
    fn scan(
        &self,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), Self::Error>;

    fn merge(&self, storage_key: &[u8], object: &[u8]) -> Result<Merged, Self::Error>;

    /// Whether this replica holds `partition` of `keyspace` now. A partition it does not
    /// (it moved away, or the peer's layout is older) is never compared, sent or taken: the
    /// peer would otherwise push back data this node has already handed on and deleted.
    fn holds(&self, keyspace: u64, partition: u16) -> bool {
        let _ = (keyspace, partition);
        true
    }
}

/// This replica's digests of the given leaves, sorted by key hash.
pub fn digests<R: Replica>(
    replica: &R,
    keyspace: u64,
    leaves: &BTreeSet<u32>,
) -> Result<Vec<Digest>, R::Error> {
    let partitions: BTreeSet<u16> = leaves.iter().map(|l| (l >> SEGMENT_BITS) as u16).collect();
    let mut by_key: BTreeMap<u64, u64> = BTreeMap::new();
    for p in partitions {
        replica.scan(&slice_prefix(p, keyspace), &mut |skey, bytes| {
            if let Some(loc) = locate(skey).filter(|l| leaves.contains(&l.leaf())) {
                *by_key.entry(loc.key_hash).or_insert(0) ^= entry_hash(skey, bytes);
            }
            true
        })?;
    }
    Ok(by_key
        .into_iter()
        .map(|(key_hash, entry)| Digest { key_hash, entry })
        .collect())
}

/// This replica's objects for the given key hashes, at most `budget` bytes of them (at least
/// one), and whether some were left out.
pub fn objects<R: Replica>(
    replica: &R,
    keyspace: u64,
    keys: &BTreeSet<u64>,
    budget: usize,
) -> Result<(Vec<Object>, bool), R::Error> {
    let partitions: BTreeSet<u16> = keys.iter().map(|k| partition_of_hash(*k)).collect();
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    for p in partitions {
        replica.scan(&slice_prefix(p, keyspace), &mut |skey, value| {
            if !locate(skey).is_some_and(|l| keys.contains(&l.key_hash)) {
                return true;
            }
            let n = skey.len() + value.len();
            if !out.is_empty() && bytes.saturating_add(n) > budget {
                truncated = true;
                return false;
            }
            bytes += n;
            out.push(Object {
                storage_key: skey.to_vec(),
                bytes: value.to_vec(),
            });
            true
        })?;
        if truncated {
            break;
        }
    }
    Ok((out, truncated))
}

/// The nodes at `level` a [`Request::Hashes`] names, in reply order.
fn nodes_asked(level: usize, parents: &[u32], filter: &PartitionSet) -> Vec<u32> {
    if level == 0 {
        return vec![0];
    }
    parents
        .iter()
        .flat_map(|p| children(level - 1, *p))
        .filter(|n| {
            level < PARTITION_LEVEL || filter.contains(partitions_under(level, *n).start as u16)
        })
        .collect()
}

/// Answers one request from a peer.
pub fn answer<R: Replica>(replica: &R, req: Request) -> Result<Reply, ExchangeError<R::Error>> {
    match req {
        Request::Hashes {
            keyspace,
            partitions,
            level,
            parents,
        } => {
            let level = usize::from(level);
            if !partitions.is_valid() {
                return Err(ExchangeError::BadRequest("malformed partition set".into()));
            }
            if level > SEGMENT_LEVEL {
                return Err(ExchangeError::BadRequest(format!(
                    "level {level} is below the leaves (deepest is {SEGMENT_LEVEL})"
                )));
            }
            if level > 0 {
                let parent_limit = 1u32 << LEVEL_BITS[level - 1];
                if let Some(bad) = parents.iter().find(|p| **p >= parent_limit) {
                    return Err(ExchangeError::BadRequest(format!(
                        "node {bad} does not exist at level {}",
                        level - 1
                    )));
                }
                if parents.len() > parent_limit as usize {
                    return Err(ExchangeError::BadRequest(format!(
                        "{} parents asked at level {} (it has {parent_limit})",
                        parents.len(),
                        level - 1
                    )));
                }
            }
            let forest = replica.forest();
            let mut unready = forest.unready(&partitions);
            for p in partitions.iter() {
                if !replica.holds(keyspace, p) {
                    unready.insert(p);
                }
            }
            if !unready.is_empty() {
                return Ok(Reply::Hashes {
                    hashes: Vec::new(),
                    unready: unready.iter().collect(),
                });
            }
            let hashes = nodes_asked(level, &parents, &partitions)
                .into_iter()
                .filter_map(|n| forest.hash(keyspace, level, n, &partitions))
                .collect();
            Ok(Reply::Hashes {
                hashes,
                unready: Vec::new(),
            })
        }
        Request::Digests { keyspace, leaves } => {
            if leaves.len() > MAX_LEAVES {
                return Err(ExchangeError::BadRequest(format!(
                    "{} leaves asked (limit {MAX_LEAVES})",
                    leaves.len()
                )));
            }
            let leaves: BTreeSet<u32> = leaves
                .into_iter()
                .filter(|l| replica.holds(keyspace, (l >> SEGMENT_BITS) as u16))
                .collect();
            let digests = digests(replica, keyspace, &leaves).map_err(ExchangeError::Store)?;
            Ok(Reply::Digests { digests })
        }
        Request::Fetch { keyspace, keys } => {
            if keys.len() > MAX_KEYS {
                return Err(ExchangeError::BadRequest(format!(
                    "{} keys asked (limit {MAX_KEYS})",
                    keys.len()
                )));
            }
            let keys: BTreeSet<u64> = keys
                .into_iter()
                .filter(|k| replica.holds(keyspace, partition_of_hash(*k)))
                .collect();
            let (objects, truncated) =
                objects(replica, keyspace, &keys, MAX_BATCH_BYTES).map_err(ExchangeError::Store)?;
            Ok(Reply::Objects { objects, truncated })
        }
        Request::Push { objects } => {
            let (mut merged, mut rejected) = (0, 0);
            for o in objects {
                let held =
                    locate(&o.storage_key).is_some_and(|l| replica.holds(l.keyspace, l.partition));
                if !held {
                    rejected += 1;
                    continue;
                }
                match replica
                    .merge(&o.storage_key, &o.bytes)
                    .map_err(ExchangeError::Store)?
                {
                    Merged::Changed => merged += 1,
                    Merged::Unchanged => {}
                    Merged::Rejected(_) => rejected += 1,
                }
            }
            Ok(Reply::Pushed { merged, rejected })
        }
    }
}

/// What one exchange did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub round_trips: u32,
    /// The roots matched at once.
    pub in_sync: bool,
    /// Leaves whose per-key digests were compared.
    pub leaves: u64,
    /// Keys fetched from the peer and merged here, and how many of them changed this replica.
    pub fetched: u64,
    pub repaired_here: u64,
    /// Objects pushed to the peer, and how many of them changed it.
    pub pushed: u64,
    pub repaired_there: u64,
    /// Objects either side could not merge.
    pub rejected: u64,
    /// A limit cut this exchange short: differences remain for the next one.
    pub more: bool,
    /// Partitions left out because one side's trees were still being built, or the peer
    /// does not hold them (any more).
    pub deferred: u64,
}

pub enum Step {
    Send(Request),
    Done(Stats),
}

enum Phase {
    Hashes {
        level: usize,
        parents: Vec<u32>,
    },
    Digests {
        leaves: BTreeSet<u32>,
    },
    Fetch {
        leaves: BTreeSet<u32>,
        theirs: BTreeMap<u64, u64>,
        pending: BTreeSet<u64>,
    },
    Push {
        batches: Vec<Vec<Object>>,
    },
}

/// The initiator of an exchange.
pub struct Exchange {
    keyspace: u64,
    partitions: PartitionSet,
    phase: Phase,
    restarts: u32,
    pub stats: Stats,
}

impl Exchange {
    /// Compares `partitions` of `keyspace` (the caller leaves out partitions whose local
    /// trees are not ready). Returns the machine and the first request.
    pub fn start(keyspace: u64, partitions: PartitionSet) -> (Self, Request) {
        let ex = Self {
            keyspace,
            partitions,
            phase: Phase::Hashes {
                level: 0,
                parents: Vec::new(),
            },
            restarts: 0,
            stats: Stats::default(),
        };
        let req = ex.hashes(0, Vec::new());
        (ex, req)
    }

    fn hashes(&self, level: usize, parents: Vec<u32>) -> Request {
        Request::Hashes {
            keyspace: self.keyspace,
            partitions: self.partitions.clone(),
            level: level as u8,
            parents,
        }
    }

    /// Feeds the peer's reply to the last request; returns the next one, or the outcome.
    pub fn on_reply<R: Replica>(
        &mut self,
        replica: &R,
        reply: Reply,
    ) -> Result<Step, ExchangeError<R::Error>> {
        self.stats.round_trips += 1;
        let phase = std::mem::replace(
            &mut self.phase,
            Phase::Push {
                batches: Vec::new(),
            },
        );
        match (phase, reply) {
            (Phase::Hashes { level, parents }, Reply::Hashes { hashes, unready }) => {
                self.on_hashes(replica, level, parents, hashes, unready)
            }
            (Phase::Digests { leaves }, Reply::Digests { digests }) => {
                self.on_digests(replica, leaves, digests)
            }
            (
                Phase::Fetch {
                    leaves,
                    theirs,
                    pending,
                },
                Reply::Objects { objects, truncated },
            ) => self.on_objects(replica, leaves, theirs, pending, objects, truncated),
            (Phase::Push { batches }, Reply::Pushed { merged, rejected }) => {
                self.stats.repaired_there += u64::from(merged);
                self.stats.rejected += u64::from(rejected);
                self.next_push(batches)
            }
            (_, other) => Err(ExchangeError::Protocol(format!(
                "unexpected reply {}",
                match other {
                    Reply::Hashes { .. } => "hashes",
                    Reply::Digests { .. } => "digests",
                    Reply::Objects { .. } => "objects",
                    Reply::Pushed { .. } => "pushed",
                }
            ))),
        }
    }

    fn on_hashes<R: Replica>(
        &mut self,
        replica: &R,
        level: usize,
        parents: Vec<u32>,
        hashes: Vec<u64>,
        unready: Vec<u16>,
    ) -> Result<Step, ExchangeError<R::Error>> {
        if !unready.is_empty() {
            let unready: PartitionSet = unready.into_iter().collect();
            self.stats.deferred += unready.len() as u64;
            self.partitions = self.partitions.minus(&unready);
            self.restarts += 1;
            // Those partitions are compared by a later exchange.
            self.stats.more = true;
            if self.partitions.is_empty() || self.restarts > MAX_RESTARTS {
                return Ok(Step::Done(self.stats.clone()));
            }
            self.phase = Phase::Hashes {
                level: 0,
                parents: Vec::new(),
            };
            return Ok(Step::Send(self.hashes(0, Vec::new())));
        }
        let nodes = nodes_asked(level, &parents, &self.partitions);
        if nodes.len() != hashes.len() {
            return Err(ExchangeError::Protocol(format!(
                "{} hashes for {} nodes at level {level}",
                hashes.len(),
                nodes.len()
            )));
        }
        let forest = replica.forest();
        let differing: Vec<u32> = nodes
            .into_iter()
            .zip(hashes)
            .filter(|(n, theirs)| {
                forest.hash(self.keyspace, level, *n, &self.partitions) != Some(*theirs)
            })
            .map(|(n, _)| n)
            .collect();
        if differing.is_empty() {
            self.stats.in_sync = level == 0;
            return Ok(Step::Done(self.stats.clone()));
        }
        let mut differing = differing;
        // Descend into at most MAX_PARTITIONS partitions: the levels below are asked for
        // only where this exchange will finish the job, and the next exchange re-walks
        // just the levels above.
        if level == PARTITION_LEVEL && differing.len() > MAX_PARTITIONS {
            differing.truncate(MAX_PARTITIONS);
            self.stats.more = true;
        }
        if level < SEGMENT_LEVEL {
            self.phase = Phase::Hashes {
                level: level + 1,
                parents: differing.clone(),
            };
            return Ok(Step::Send(self.hashes(level + 1, differing)));
        }
        let mut leaves: BTreeSet<u32> = differing.into_iter().collect();
        if leaves.len() > MAX_LEAVES {
            leaves = leaves.into_iter().take(MAX_LEAVES).collect();
            self.stats.more = true;
        }
        self.stats.leaves += leaves.len() as u64;
        self.phase = Phase::Digests {
            leaves: leaves.clone(),
        };
        Ok(Step::Send(Request::Digests {
            keyspace: self.keyspace,
            leaves: leaves.into_iter().collect(),
        }))
    }

    fn on_digests<R: Replica>(
        &mut self,
        replica: &R,
        leaves: BTreeSet<u32>,
        reported: Vec<Digest>,
    ) -> Result<Step, ExchangeError<R::Error>> {
        let mut theirs = BTreeMap::new();
        for d in reported {
            let leaf = (d.key_hash >> (64 - super::TREE_BITS)) as u32;
            if !leaves.contains(&leaf) {
                return Err(ExchangeError::Protocol(format!(
                    "digest of key hash {:#x} outside the leaves asked",
                    d.key_hash
                )));
            }
            theirs.insert(d.key_hash, d.entry);
        }
        let mine: BTreeMap<u64, u64> = digests(replica, self.keyspace, &leaves)
            .map_err(ExchangeError::Store)?
            .into_iter()
            .map(|d| (d.key_hash, d.entry))
            .collect();
        let mut pending: BTreeSet<u64> = theirs
            .iter()
            .filter(|(k, e)| mine.get(k) != Some(e))
            .map(|(k, _)| *k)
            .collect();
        if pending.len() > MAX_KEYS {
            pending = pending.into_iter().take(MAX_KEYS).collect();
            self.stats.more = true;
        }
        self.fetch_or_push(replica, leaves, theirs, pending)
    }

    fn fetch_or_push<R: Replica>(
        &mut self,
        replica: &R,
        leaves: BTreeSet<u32>,
        theirs: BTreeMap<u64, u64>,
        pending: BTreeSet<u64>,
    ) -> Result<Step, ExchangeError<R::Error>> {
        if !pending.is_empty() {
            let keys = pending.iter().copied().collect();
            self.phase = Phase::Fetch {
                leaves,
                theirs,
                pending,
            };
            return Ok(Step::Send(Request::Fetch {
                keyspace: self.keyspace,
                keys,
            }));
        }
        // Everything of theirs is merged here: push whatever of ours they lack or hold
        // differently (after the merge, ours covers theirs).
        let mine = digests(replica, self.keyspace, &leaves).map_err(ExchangeError::Store)?;
        let mut push: BTreeSet<u64> = mine
            .iter()
            .filter(|d| theirs.get(&d.key_hash) != Some(&d.entry))
            .map(|d| d.key_hash)
            .collect();
        if push.len() > MAX_KEYS {
            push = push.into_iter().take(MAX_KEYS).collect();
            self.stats.more = true;
        }
        let (objects, truncated) =
            objects(replica, self.keyspace, &push, MAX_PUSH_BYTES).map_err(ExchangeError::Store)?;
        self.stats.more |= truncated;
        self.stats.pushed += objects.len() as u64;
        let mut batches = batches_by_bytes(
            objects,
            |o| o.storage_key.len() + o.bytes.len(),
            MAX_BATCH_BYTES,
        );
        batches.reverse();
        self.next_push(batches)
    }

    fn next_push<E>(&mut self, mut batches: Vec<Vec<Object>>) -> Result<Step, ExchangeError<E>> {
        match batches.pop() {
            Some(objects) => {
                self.phase = Phase::Push { batches };
                Ok(Step::Send(Request::Push { objects }))
            }
            None => Ok(Step::Done(self.stats.clone())),
        }
    }

    fn on_objects<R: Replica>(
        &mut self,
        replica: &R,
        leaves: BTreeSet<u32>,
        theirs: BTreeMap<u64, u64>,
        mut pending: BTreeSet<u64>,
        objects: Vec<Object>,
        truncated: bool,
    ) -> Result<Step, ExchangeError<R::Error>> {
        if truncated && objects.is_empty() {
            return Err(ExchangeError::Protocol(
                "an empty reply claims to be truncated".into(),
            ));
        }
        let mut received = BTreeSet::new();
        for o in objects {
            // Checked against everything this request asked for: keys that share a hash
            // arrive together, under one asked-for hash.
            let key = locate(&o.storage_key)
                .filter(|l| l.keyspace == self.keyspace && pending.contains(&l.key_hash))
                .ok_or_else(|| ExchangeError::Protocol("an object that was not asked for".into()))?
                .key_hash;
            received.insert(key);
            self.stats.fetched += 1;
            match replica
                .merge(&o.storage_key, &o.bytes)
                .map_err(ExchangeError::Store)?
            {
                Merged::Changed => self.stats.repaired_here += 1,
                Merged::Unchanged => {}
                Merged::Rejected(_) => self.stats.rejected += 1,
            }
        }
        // Two keys sharing a hash may straddle a truncated reply's cut: the one left out
        // still differs, and the next exchange finds it.
        pending.retain(|k| !received.contains(k));
        if truncated && !pending.is_empty() {
            let keys = pending.iter().copied().collect();
            self.phase = Phase::Fetch {
                leaves,
                theirs,
                pending,
            };
            return Ok(Step::Send(Request::Fetch {
                keyspace: self.keyspace,
                keys,
            }));
        }
        self.fetch_or_push(replica, leaves, theirs, BTreeSet::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keeper::{ClientWrite, Keeper, KeeperError};
    use crate::merkle::Tracked;
    use crate::store::{MemStore, Store};
    use crate::{ActorId, ContextSeal, KeyspaceSpec, ValueKind};
    use proptest::prelude::*;
    use std::rc::Rc;
    use std::sync::Arc;

    /// A replica as the simulation builds one: the keeper's rules over a tracked MemStore.
    struct Mem {
        store: Rc<MemStore>,
        forest: Arc<Forest>,
        keeper: Keeper<Tracked<Rc<MemStore>>>,
        /// Partitions it holds; `None`: all.
        held: Option<PartitionSet>,
    }

    impl Mem {
        fn new(actor: u8) -> Self {
            let store = Rc::new(MemStore::new());
            let forest = Arc::new(Forest::new(true));
            let tracked = Tracked {
                inner: store.clone(),
                forest: forest.clone(),
            };
            Self {
                store,
                forest,
                keeper: Keeper::new(tracked, ActorId([actor; 16]), ContextSeal::new([7; 32])),
                held: None,
            }
        }

        fn put(&self, ks: &KeyspaceSpec, key: &[u8], value: &[u8]) {
            let w = ClientWrite {
                key,
                value: Some(value),
                context: &[],
                request_id: *blake3::hash(value).as_bytes().first_chunk().unwrap(),
            };
            self.keeper.mint(ks, w, 1, false).unwrap();
        }

        fn copy_to(&self, other: &Mem, skey: &[u8]) {
            let bytes = self.store.get(skey).unwrap().unwrap();
            other.keeper.merge(skey, &bytes, false).unwrap();
        }
    }

    impl Replica for Mem {
        type Error = std::convert::Infallible;

        fn forest(&self) -> &Forest {
            &self.forest
        }

        fn scan(
            &self,
            prefix: &[u8],
            visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<(), Self::Error> {
            for (k, v) in self.store.scan(prefix) {
                if !visit(&k, &v) {
                    break;
                }
            }
            Ok(())
        }

        fn merge(&self, skey: &[u8], object: &[u8]) -> Result<Merged, Self::Error> {
            match self.keeper.merge(skey, object, false) {
                Ok(true) => Ok(Merged::Changed),
                Ok(false) => Ok(Merged::Unchanged),
                Err(KeeperError::Core(e)) => Ok(Merged::Rejected(e.to_string())),
                Err(KeeperError::Store(e)) => match e {},
            }
        }

        fn holds(&self, _keyspace: u64, partition: u16) -> bool {
            self.held.as_ref().is_none_or(|h| h.contains(partition))
        }
    }

    /// Runs one exchange from `a` to `b` over encoded messages; returns its stats and the
    /// bytes that crossed.
    fn exchange(a: &Mem, b: &Mem, ks: u64, partitions: PartitionSet) -> (Stats, usize) {
        let (mut ex, mut req) = Exchange::start(ks, partitions);
        let mut bytes = 0;
        for _ in 0..64 {
            let wire = req.encode();
            bytes += wire.len();
            let reply = answer(b, Request::decode(&wire).unwrap()).unwrap();
            let wire = reply.encode();
            bytes += wire.len();
            match ex.on_reply(a, Reply::decode(&wire).unwrap()).unwrap() {
                Step::Send(r) => req = r,
                Step::Done(stats) => return (stats, bytes),
            }
        }
        panic!("the exchange did not finish in 64 round trips");
    }

    fn spec() -> KeyspaceSpec {
        KeyspaceSpec::new("k", ValueKind::Siblings)
    }

    #[test]
    fn replicas_in_sync_compare_in_one_round_trip() {
        let (a, b, ks) = (Mem::new(1), Mem::new(2), spec());
        for i in 0..300u32 {
            a.put(&ks, &i.to_be_bytes(), b"v");
            a.copy_to(
                &b,
                &crate::partition::storage_key(ks.id(), &i.to_be_bytes()),
            );
        }
        let (stats, bytes) = exchange(&a, &b, ks.id(), PartitionSet::all());
        assert!(stats.in_sync);
        assert_eq!(stats.round_trips, 1);
        assert!(bytes < 600, "{bytes} bytes to compare two equal replicas");
    }

    #[test]
    fn diverged_keys_are_found_in_a_bounded_number_of_round_trips_and_repaired_both_ways() {
        let (a, b, ks) = (Mem::new(1), Mem::new(2), spec());
        for i in 0..3000u32 {
            a.put(&ks, &i.to_be_bytes(), b"base");
            a.copy_to(
                &b,
                &crate::partition::storage_key(ks.id(), &i.to_be_bytes()),
            );
        }
        // Only on a, only on b, and concurrent writes on both (siblings after repair).
        for i in 3000..3040u32 {
            a.put(&ks, &i.to_be_bytes(), b"a-only");
        }
        for i in 3040..3080u32 {
            b.put(&ks, &i.to_be_bytes(), b"b-only");
        }
        for i in 0..40u32 {
            a.put(&ks, &i.to_be_bytes(), b"a-new");
            b.put(&ks, &(i * 7).to_be_bytes(), b"b-new");
        }
        let (stats, _) = exchange(&a, &b, ks.id(), PartitionSet::all());
        assert!(!stats.in_sync && !stats.more);
        // Five levels, digests, one fetch, one push.
        assert_eq!(stats.round_trips, 8, "{stats:?}");
        assert_eq!(a.store.entries(), b.store.entries());
        let again = exchange(&a, &b, ks.id(), PartitionSet::all()).0;
        assert!(again.in_sync, "{again:?}");
        let concurrent = crate::partition::storage_key(ks.id(), &7u32.to_be_bytes());
        let obj = a.keeper.load(&concurrent).unwrap().unwrap();
        // The base, and the two concurrent writes (puts without a context supersede nothing).
        assert_eq!(obj.sibling_count(), 3, "the concurrent writes both survive");
    }

    #[test]
    fn an_exchange_touches_only_the_partitions_it_was_given() {
        let (a, b, ks) = (Mem::new(1), Mem::new(2), spec());
        for i in 0..400u32 {
            b.put(&ks, &i.to_be_bytes(), b"v");
        }
        let shared: PartitionSet = (0..2048u16).collect();
        let (stats, _) = exchange(&a, &b, ks.id(), shared.clone());
        assert!(stats.fetched > 0);
        for (k, _) in a.store.entries() {
            let p = crate::merkle::locate(&k).unwrap().partition;
            assert!(shared.contains(p), "key of partition {p} crossed");
        }
        assert!(exchange(&a, &b, ks.id(), shared).0.in_sync);
        assert!(!exchange(&a, &b, ks.id(), PartitionSet::all()).0.in_sync);
    }

    #[test]
    fn partitions_the_responder_is_still_rebuilding_are_left_for_later() {
        let (a, b, ks) = (Mem::new(1), Mem::new(2), spec());
        for i in 0..200u32 {
            b.put(&ks, &i.to_be_bytes(), b"v");
        }
        let skey = crate::partition::storage_key(ks.id(), &5u32.to_be_bytes());
        let p = crate::merkle::locate(&skey).unwrap().partition;
        // As after an unclean stop: one partition's tree is not built yet.
        *b.forest.lock(p) = Default::default();
        let (stats, _) = exchange(&a, &b, ks.id(), PartitionSet::all());
        assert!(stats.more);
        assert!(a.store.get(&skey).unwrap().is_none());
        assert_eq!(
            a.store.entries().len(),
            b.store.entries().len() - b.store.scan(&p.to_be_bytes()).len()
        );
    }

    #[test]
    fn objects_arriving_twice_under_one_asked_hash_are_all_taken() {
        // Keys that share a placement hash come back together under one asked-for hash;
        // the same key sent twice exercises that path without forging a collision.
        let (a, b, ks) = (Mem::new(1), Mem::new(2), spec());
        for i in 0..20u32 {
            b.put(&ks, &i.to_be_bytes(), b"v");
        }
        let (mut ex, mut req) = Exchange::start(ks.id(), PartitionSet::all());
        loop {
            let mut reply = answer(&b, req).unwrap();
            if let Reply::Objects { objects, .. } = &mut reply {
                let first = objects[0].clone();
                objects.push(first);
            }
            match ex.on_reply(&a, reply).unwrap() {
                Step::Send(r) => req = r,
                Step::Done(stats) => {
                    assert_eq!(stats.repaired_here, 20, "{stats:?}");
                    break;
                }
            }
        }
        assert_eq!(a.store.entries(), b.store.entries());
    }

    #[test]
    fn a_replica_never_compares_takes_or_sends_a_partition_it_does_not_hold() {
        let (a, mut b, ks) = (Mem::new(1), Mem::new(2), spec());
        for i in 0..300u32 {
            a.put(&ks, &i.to_be_bytes(), b"from-a");
        }
        // b has handed the lower half of the partitions on: a's older view still offers them.
        b.held = Some((2048..4096u16).collect());
        let (stats, _) = exchange(&a, &b, ks.id(), PartitionSet::all());
        assert!(
            stats.more,
            "the partitions b refused are left for a later exchange"
        );
        for (k, _) in b.store.entries() {
            let p = crate::merkle::locate(&k).unwrap().partition;
            assert!(
                p >= 2048,
                "b took a key of partition {p}, which it does not hold"
            );
        }
        assert!(!b.store.entries().is_empty());
        // A push straight to b of a partition it does not hold is refused too.
        let skey = (0..300u32)
            .map(|i| crate::partition::storage_key(ks.id(), &i.to_be_bytes()))
            .find(|k| crate::merkle::locate(k).unwrap().partition < 2048)
            .unwrap();
        let bytes = a.store.get(&skey).unwrap().unwrap();
        let pushed = answer(
            &b,
            Request::Push {
                objects: vec![Object {
                    storage_key: skey.clone(),
                    bytes,
                }],
            },
        )
        .unwrap();
        assert_eq!(
            pushed,
            Reply::Pushed {
                merged: 0,
                rejected: 1
            }
        );
        assert!(b.store.get(&skey).unwrap().is_none());
    }

    #[test]
    fn a_key_stored_under_the_wrong_partition_is_refused() {
        let (a, b, ks) = (Mem::new(1), Mem::new(2), spec());
        a.put(&ks, b"k", b"v");
        let skey = crate::partition::storage_key(ks.id(), b"k");
        let bytes = a.store.get(&skey).unwrap().unwrap();
        let mut wrong = skey.clone();
        wrong[1] ^= 1;
        let e = b.keeper.merge(&wrong, &bytes, false).unwrap_err();
        assert!(format!("{e:?}").contains("stored under partition"), "{e:?}");
    }

    #[test]
    fn malformed_requests_are_refused_with_the_limit_named() {
        let b = Mem::new(2);
        let bad_level = Request::Hashes {
            keyspace: 1,
            partitions: PartitionSet::all(),
            level: 9,
            parents: vec![],
        };
        let e = answer(&b, bad_level).unwrap_err().to_string();
        assert!(e.contains("level 9"), "{e}");
        let bad_node = Request::Hashes {
            keyspace: 1,
            partitions: PartitionSet::all(),
            level: 3,
            parents: vec![5000],
        };
        assert!(
            answer(&b, bad_node)
                .unwrap_err()
                .to_string()
                .contains("5000")
        );
        let too_many = Request::Fetch {
            keyspace: 1,
            keys: vec![0; MAX_KEYS + 1],
        };
        let e = answer(&b, too_many).unwrap_err().to_string();
        assert!(e.contains(&MAX_KEYS.to_string()), "{e}");
        assert!(Request::decode(&[0xff, 0xff, 0xff]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever the two replicas hold, one exchange makes them equal and a second one
        /// finds nothing.
        #[test]
        fn one_exchange_makes_two_replicas_equal(
            writes in proptest::collection::vec((any::<bool>(), 0u16..600, 0u8..3), 0..200)
        ) {
            let (a, b, ks) = (Mem::new(1), Mem::new(2), spec());
            for (on_a, k, v) in &writes {
                let r = if *on_a { &a } else { &b };
                r.put(&ks, &k.to_be_bytes(), &[*v]);
            }
            let (stats, _) = exchange(&a, &b, ks.id(), PartitionSet::all());
            prop_assert!(!stats.more);
            prop_assert_eq!(a.store.entries(), b.store.entries());
            prop_assert!(exchange(&a, &b, ks.id(), PartitionSet::all()).0.in_sync);
            prop_assert!(exchange(&b, &a, ks.id(), PartitionSet::all()).0.in_sync);
        }
    }
}
