//! What a replica stores under one key, and its canonical encoding.

use crate::context::CausalContext;
use crate::crdt::Crdt;
use crate::dvv::{Dot, DvvSet};
use crate::error::CoreError;
use crate::lww::LwwRegister;
use crate::version::{RequestId, Version};
use serde::{Deserialize, Serialize};

/// First byte of every stored object; bump it when the layout changes.
const OBJECT_FORMAT: u8 = 3;
/// How many recent request ids a key remembers, so a retry is recognised even after a later
/// write superseded the version it created.
pub const RECENT_REQUESTS: usize = 16;

/// One remembered write: which request minted which dot, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecentWrite {
    /// First, so that the newest sort first when ordered descending.
    pub timestamp: u64,
    pub dot: Dot,
    pub request_id: RequestId,
}

/// Joins two replicas' records of recent writes: the union, newest first by (timestamp,
/// dot, request id), cut to [`RECENT_REQUESTS`].
///
/// The top N of a union under a total order is commutative, associative and idempotent, so
/// the record converges like the rest of the object and travels with it: a retry that lands
/// on another replica after the first one minted is still recognised there.
pub fn merge_recent(a: &[RecentWrite], b: &[RecentWrite]) -> Vec<RecentWrite> {
    let mut all: Vec<RecentWrite> = a.iter().chain(b).copied().collect();
    all.sort_unstable_by(|x, y| y.cmp(x));
    all.dedup();
    all.truncate(RECENT_REQUESTS);
    all
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredObject {
    Siblings(SiblingsState),
    Lww(LwwRegister),
    /// A key of a CRDT keyspace, or a delta of one: replicas join these.
    Crdt(CrdtObject),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrdtObject {
    pub state: Crdt,
    /// Recent updates, newest first (see [`merge_recent`]): a retried update is recognised
    /// at any replica, so an increment is never counted twice.
    pub recent: Vec<RecentWrite>,
}

impl CrdtObject {
    /// The vector part of the context: a remove made with it takes away what the read saw.
    /// Dots in the cloud are left out, so such a remove spares them, which is safe.
    pub fn clock(&self) -> CausalContext {
        CausalContext::from_sorted_unchecked(
            self.state
                .context()
                .vector()
                .iter()
                .map(|(a, n)| (*a, *n))
                .collect(),
        )
    }

    pub fn max_timestamp(&self) -> u64 {
        self.recent.iter().map(|w| w.timestamp).max().unwrap_or(0)
    }

    /// Bytes of its encoding as a stored object, counted without building it.
    pub fn encoded_len(&self) -> usize {
        // The format byte and the enum tag, then the body; counting plain owned data
        // cannot fail.
        2 + postcard::experimental::serialized_size(self).unwrap_or(0)
    }

    pub fn join(&self, other: &Self) -> Result<Self, CoreError> {
        Ok(Self {
            state: self.state.join(&other.state)?,
            recent: merge_recent(&self.recent, &other.recent),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SiblingsState {
    pub dvv: DvvSet<Version>,
    /// Recent writes, newest first (see [`merge_recent`]); replicated with the values.
    pub recent: Vec<RecentWrite>,
}

impl StoredObject {
    pub fn kind_name(&self) -> &'static str {
        match self {
            StoredObject::Siblings(_) => "siblings",
            StoredObject::Lww(_) => "lww",
            StoredObject::Crdt(c) => c.state.kind().name(),
        }
    }

    /// Bytes for storage: a format byte, then postcard. Deterministic: the same object always
    /// encodes to the same bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![OBJECT_FORMAT];
        // Serialising plain owned data into a Vec cannot fail.
        let body = postcard::to_extend(self, Vec::new()).unwrap_or_default();
        out.extend_from_slice(&body);
        out
    }

    /// The replicated state: two replicas that agree on a key produce equal bytes here, which
    /// is what read repair and Merkle trees compare. Everything an object holds is replicated
    /// (the request record too), so this is its canonical encoding.
    pub fn replicated_bytes(&self) -> Vec<u8> {
        self.encode()
    }

    /// The largest hybrid logical timestamp in the object: what a node that receives it must
    /// have seen before it issues its next timestamp.
    pub fn max_timestamp(&self) -> u64 {
        match self {
            StoredObject::Siblings(s) => s
                .dvv
                .values()
                .map(|v| v.timestamp)
                .chain(s.recent.iter().map(|r| r.timestamp))
                .max()
                .unwrap_or(0),
            StoredObject::Lww(r) => r
                .recent
                .iter()
                .map(|w| w.timestamp)
                .chain([r.version.timestamp])
                .max()
                .unwrap_or(0),
            StoredObject::Crdt(c) => c.max_timestamp(),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CoreError> {
        let (&format, body) = bytes
            .split_first()
            .ok_or_else(|| CoreError::CorruptObject("empty".into()))?;
        if format != OBJECT_FORMAT {
            return Err(CoreError::CorruptObject(format!(
                "unknown format {format} (expected {OBJECT_FORMAT})"
            )));
        }
        let obj: StoredObject =
            postcard::from_bytes(body).map_err(|e| CoreError::CorruptObject(e.to_string()))?;
        match &obj {
            StoredObject::Siblings(s) => s.dvv.validate().map_err(CoreError::CorruptObject)?,
            StoredObject::Crdt(c) if !c.state.is_valid() => {
                return Err(CoreError::CorruptObject(
                    "a CRDT whose context misses its own dots, or is not in canonical form".into(),
                ));
            }
            _ => {}
        }
        Ok(obj)
    }

    /// Merges two replicas' states of one key (replica sync, read repair, hints). Objects of
    /// different kinds cannot meet: a keyspace's kind never changes.
    pub fn merge(&self, other: &Self) -> Result<Self, CoreError> {
        match (self, other) {
            (StoredObject::Siblings(a), StoredObject::Siblings(b)) => {
                Ok(StoredObject::Siblings(SiblingsState {
                    dvv: a.dvv.sync(&b.dvv),
                    recent: merge_recent(&a.recent, &b.recent),
                }))
            }
            (StoredObject::Lww(a), StoredObject::Lww(b)) => Ok(StoredObject::Lww(a.merge(b))),
            (StoredObject::Crdt(a), StoredObject::Crdt(b)) => Ok(StoredObject::Crdt(a.join(b)?)),
            (a, b) => Err(CoreError::KindMismatch {
                actual: a.kind_name().into(),
                found: b.kind_name().into(),
            }),
        }
    }

    /// The context a reader of this object gets: the clock, and the newest timestamp seen.
    pub fn context(&self) -> CausalContext {
        let clock = match self {
            StoredObject::Siblings(s) => s.dvv.join(),
            StoredObject::Lww(_) => CausalContext::empty(),
            StoredObject::Crdt(c) => c.clock(),
        };
        clock.with_hlc(self.max_timestamp())
    }

    /// Number of stored versions, tombstones included.
    pub fn sibling_count(&self) -> usize {
        match self {
            StoredObject::Siblings(s) => s.dvv.len(),
            StoredObject::Lww(_) | StoredObject::Crdt(_) => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::ActorId;
    use proptest::prelude::*;

    fn sample() -> StoredObject {
        let mut s = SiblingsState::default();
        let v = |d: &[u8]| Version {
            data: Some(d.to_vec()),
            request_id: [3; 16],
            timestamp: 42,
        };
        s.dvv.event(ActorId([1; 16]), v(b"a")).unwrap();
        s.dvv.event(ActorId([2; 16]), v(b"b")).unwrap();
        StoredObject::Siblings(s)
    }

    #[test]
    fn roundtrip_and_determinism() {
        let o = sample();
        let bytes = o.encode();
        assert_eq!(bytes, sample().encode());
        assert_eq!(StoredObject::decode(&bytes).unwrap(), o);
    }

    #[test]
    fn corrupt_bytes_are_errors_not_panics() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            let _ = StoredObject::decode(&bytes[..cut]);
        }
        assert!(StoredObject::decode(&[]).is_err());
        assert!(StoredObject::decode(&[9, 0]).is_err());
        let mut flipped = bytes.clone();
        flipped[0] = 1; // an older format
        assert!(StoredObject::decode(&flipped).is_err());
    }

    fn recent() -> impl Strategy<Value = Vec<RecentWrite>> {
        proptest::collection::vec(
            (0u64..6, 0u8..3, 1u64..4, 0u8..4).prop_map(|(ts, a, n, id)| RecentWrite {
                timestamp: ts,
                dot: Dot {
                    actor: ActorId([a; 16]),
                    counter: n,
                },
                request_id: [id; 16],
            }),
            0..24,
        )
        .prop_map(|v| merge_recent(&v, &[]))
    }

    proptest! {
        #[test]
        fn recent_merge_laws(a in recent(), b in recent(), c in recent()) {
            prop_assert_eq!(merge_recent(&a, &b), merge_recent(&b, &a));
            prop_assert_eq!(
                merge_recent(&merge_recent(&a, &b), &c),
                merge_recent(&a, &merge_recent(&b, &c))
            );
            prop_assert_eq!(merge_recent(&a, &a), a.clone());
            prop_assert!(merge_recent(&a, &b).len() <= RECENT_REQUESTS);
        }
    }
}
