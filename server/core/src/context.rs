//! The causal context a client carries between a read and its next write.
//!
//! It is the DVVSet's join: for each actor, the highest dot the reader saw, plus the largest
//! hybrid logical timestamp it saw (so the replica that takes its next write issues a later
//! one: in `lww` keyspaces a causally later write never loses to the value it read). Clients
//! treat it as opaque bytes: the wire form is sealed with a MAC over the key (see
//! [`crate::seal`]), and decoding refuses anything not produced by `encode`, so a corrupted,
//! hand-made or borrowed context cannot supersede values its holder never saw.

use crate::actor::ActorId;
use crate::error::CoreError;

/// First byte of every encoded context.
pub(crate) const CONTEXT_FORMAT: u8 = 2;
/// More entries than this cannot come from a real cluster (one entry per server incarnation).
pub const MAX_CONTEXT_ENTRIES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CausalContext {
    /// Sorted by actor, no duplicates, no zero counters.
    entries: Vec<(ActorId, u64)>,
    /// Largest hybrid logical timestamp among the versions the reader saw (0: none).
    hlc: u64,
}

impl CausalContext {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Callers guarantee the invariants (used by `DvvSet::join`, which keeps them).
    pub(crate) fn from_sorted_unchecked(entries: Vec<(ActorId, u64)>) -> Self {
        Self { entries, hlc: 0 }
    }

    /// The same context, remembering that its reader saw timestamp `hlc`.
    #[must_use]
    pub fn with_hlc(mut self, hlc: u64) -> Self {
        self.hlc = self.hlc.max(hlc);
        self
    }

    pub fn entries(&self) -> &[(ActorId, u64)] {
        &self.entries
    }

    pub fn hlc(&self) -> u64 {
        self.hlc
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pointwise maximum: what a client knows after seeing both.
    pub fn merge(&self, other: &Self) -> Self {
        let mut out = Vec::with_capacity(self.entries.len() + other.entries.len());
        let (mut i, mut j) = (0, 0);
        while i < self.entries.len() || j < other.entries.len() {
            match (self.entries.get(i), other.entries.get(j)) {
                (Some(a), Some(b)) if a.0 == b.0 => {
                    out.push((a.0, a.1.max(b.1)));
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a.0 < b.0 => {
                    out.push(*a);
                    i += 1;
                }
                (_, Some(b)) => {
                    out.push(*b);
                    j += 1;
                }
                (Some(a), None) => {
                    out.push(*a);
                    i += 1;
                }
                (None, None) => break,
            }
        }
        Self {
            entries: out,
            hlc: self.hlc.max(other.hlc),
        }
    }

    /// Canonical bytes (unsealed): format byte, entry count, (16-byte actor, counter) pairs,
    /// then the timestamp; counts, counters and the timestamp are LEB128 varints.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.entries.len() * 20);
        out.push(CONTEXT_FORMAT);
        put_varint(&mut out, self.entries.len() as u64);
        for (actor, counter) in &self.entries {
            out.extend_from_slice(actor.as_bytes());
            put_varint(&mut out, *counter);
        }
        put_varint(&mut out, self.hlc);
        out
    }

    /// Decodes unsealed bytes made by [`CausalContext::encode`]. Empty bytes are the empty
    /// context (a write that has seen nothing).
    pub fn decode(bytes: &[u8]) -> Result<Self, CoreError> {
        let bad = |why: &str| CoreError::MalformedContext(why.to_string());
        if bytes.is_empty() {
            return Ok(Self::empty());
        }
        if bytes[0] != CONTEXT_FORMAT {
            return Err(CoreError::MalformedContext(format!(
                "unknown format version {} (expected {CONTEXT_FORMAT})",
                bytes[0]
            )));
        }
        let mut rest = &bytes[1..];
        let count = take_varint(&mut rest).ok_or_else(|| bad("truncated entry count"))?;
        if count > MAX_CONTEXT_ENTRIES as u64 {
            return Err(CoreError::MalformedContext(format!(
                "{count} entries; at most {MAX_CONTEXT_ENTRIES} are allowed"
            )));
        }
        let mut entries = Vec::with_capacity(count as usize);
        for _ in 0..count {
            if rest.len() < 16 {
                return Err(bad("truncated actor id"));
            }
            let mut id = [0u8; 16];
            id.copy_from_slice(&rest[..16]);
            rest = &rest[16..];
            let counter = take_varint(&mut rest).ok_or_else(|| bad("truncated counter"))?;
            if counter == 0 {
                return Err(bad("zero counter"));
            }
            let actor = ActorId(id);
            if entries.last().is_some_and(|(prev, _)| *prev >= actor) {
                return Err(bad("entries not strictly sorted by actor"));
            }
            entries.push((actor, counter));
        }
        let hlc = take_varint(&mut rest).ok_or_else(|| bad("truncated timestamp"))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self { entries, hlc })
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a minimal LEB128 varint; non-minimal or overlong encodings are refused so that each
/// context has exactly one encoding.
fn take_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(i)?;
        let part = u64::from(b & 0x7f);
        if i == 9 && part > 1 {
            return None;
        }
        v |= part << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return None;
            }
            *buf = &buf[i + 1..];
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx(pairs: &[(u8, u64)]) -> CausalContext {
        CausalContext {
            entries: pairs.iter().map(|(a, n)| (ActorId([*a; 16]), *n)).collect(),
            hlc: 0,
        }
    }

    #[test]
    fn empty_bytes_are_the_empty_context() {
        assert_eq!(CausalContext::decode(&[]).unwrap(), CausalContext::empty());
        assert_eq!(
            CausalContext::decode(&CausalContext::empty().encode()).unwrap(),
            ctx(&[])
        );
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        let good = ctx(&[(1, 5), (2, 300)]).encode();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![9, 0], "unknown format version"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            ([good.clone(), vec![0]].concat(), "trailing bytes"),
            (ctx(&[(2, 1), (1, 1)]).encode(), "not strictly sorted"),
            (ctx(&[(1, 1), (1, 2)]).encode(), "not strictly sorted"),
            (vec![2, 0xff, 0xff, 0x03], "entries; at most 1024"),
            (vec![2, 0x80, 0x00], "truncated entry count"),
        ];
        for (bytes, why) in cases {
            let err = CausalContext::decode(&bytes).unwrap_err();
            assert!(err.to_string().starts_with("malformed context"), "{err}");
            assert!(err.to_string().contains(why), "{err} should mention {why}");
        }
    }

    proptest! {
        #[test]
        fn encode_decode_roundtrip(pairs in proptest::collection::btree_map(any::<u8>(), 1..u64::MAX, 0..20), hlc in any::<u64>()) {
            let c = ctx(&pairs.iter().map(|(a, n)| (*a, *n)).collect::<Vec<_>>()).with_hlc(hlc);
            prop_assert_eq!(CausalContext::decode(&c.encode()).unwrap(), c);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let (false, Ok(c)) = (bytes.is_empty(), CausalContext::decode(&bytes)) {
                // Whatever decodes re-encodes to the same bytes: one encoding per context.
                prop_assert_eq!(c.encode(), bytes);
            }
        }

        #[test]
        fn merge_is_a_join(a in proptest::collection::btree_map(0u8..8, 1u64..50, 0..8),
                           b in proptest::collection::btree_map(0u8..8, 1u64..50, 0..8),
                           ha in 0u64..9, hb in 0u64..9) {
            let ca = ctx(&a.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>()).with_hlc(ha);
            let cb = ctx(&b.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>()).with_hlc(hb);
            prop_assert_eq!(ca.merge(&cb), cb.merge(&ca));
            prop_assert_eq!(ca.merge(&ca), ca.clone());
            prop_assert_eq!(ca.merge(&cb).hlc(), ha.max(hb));
        }
    }
}
