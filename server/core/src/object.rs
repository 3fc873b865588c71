//! What a replica stores under one key, and its canonical encoding.

use crate::actor::ActorId;
use crate::context::CausalContext;
use crate::dvv::{Dot, DvvSet};
use crate::error::CoreError;
use crate::lww::LwwRegister;
use crate::version::{RequestId, Version};
use serde::{Deserialize, Serialize};

/// First byte of every stored object; bump it when the layout changes.
const OBJECT_FORMAT: u8 = 1;
/// How many recent request ids a key remembers, so a retry is recognised even after a later
/// write superseded the version it created.
pub const RECENT_REQUESTS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredObject {
    Siblings(SiblingsState),
    Lww(LwwRegister),
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SiblingsState {
    pub dvv: DvvSet<Version>,
    /// Newest first: (request id, the dot it minted). Replica-local bookkeeping, not part of
    /// the replicated state (see [`StoredObject::replicated_bytes`]).
    pub recent: Vec<(RequestId, Dot)>,
}

impl StoredObject {
    pub fn kind_name(&self) -> &'static str {
        match self {
            StoredObject::Siblings(_) => "siblings",
            StoredObject::Lww(_) => "lww",
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

    /// The replicated state only (no replica-local bookkeeping): two replicas that agree on a
    /// key produce equal bytes here, which is what Merkle trees hash.
    pub fn replicated_bytes(&self) -> Vec<u8> {
        let mut out = vec![OBJECT_FORMAT];
        let body = match self {
            StoredObject::Siblings(s) => postcard::to_extend(&s.dvv, Vec::new()),
            StoredObject::Lww(r) => postcard::to_extend(r, Vec::new()),
        };
        out.extend_from_slice(&body.unwrap_or_default());
        out
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
        if let StoredObject::Siblings(s) = &obj {
            s.dvv.validate().map_err(CoreError::CorruptObject)?;
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
                    recent: a.recent.clone(),
                }))
            }
            (StoredObject::Lww(a), StoredObject::Lww(b)) => Ok(StoredObject::Lww(a.merge(b))),
            (a, b) => Err(CoreError::KindMismatch {
                actual: a.kind_name().into(),
                found: b.kind_name().into(),
            }),
        }
    }

    /// The context a reader of this object gets.
    pub fn context(&self) -> CausalContext {
        match self {
            StoredObject::Siblings(s) => s.dvv.join(),
            StoredObject::Lww(_) => CausalContext::empty(),
        }
    }

    /// Number of stored versions, tombstones included.
    pub fn sibling_count(&self) -> usize {
        match self {
            StoredObject::Siblings(s) => s.dvv.len(),
            StoredObject::Lww(_) => 1,
        }
    }

    /// Actors in the clock (bounded by the number of server nodes that minted).
    pub fn clock_actors(&self) -> Vec<ActorId> {
        match self {
            StoredObject::Siblings(s) => s.dvv.entries().iter().map(|e| e.actor).collect(),
            StoredObject::Lww(r) => vec![r.actor],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredObject {
        let mut s = SiblingsState::default();
        let v = |d: &[u8]| Version {
            data: Some(d.to_vec()),
            request_id: [3; 16],
            timestamp: 42,
        };
        s.dvv.event(ActorId([1; 16]), v(b"a"));
        s.dvv.event(ActorId([2; 16]), v(b"b"));
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
        flipped[0] = 2;
        assert!(StoredObject::decode(&flipped).is_err());
    }
}
