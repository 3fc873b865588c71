//! Sealed contexts: the wire form of a [`CausalContext`], bound to one key by a MAC.
//!
//! A context is a promise about what its holder has seen. Taken from another key (an
//! application bug) or written by hand, it would supersede values its holder never saw, on
//! this key and, once merged into the key's clock, in writes other replicas mint later. So the
//! server only accepts contexts it issued for this very key: the bytes end with a short MAC
//! (BLAKE3 keyed with the cluster secret, truncated to 8 bytes) over the keyspace id, the key
//! and the context body, and [`ContextSeal::open`] checks it before the context is used.

use crate::context::CausalContext;
use crate::error::CoreError;

/// Bytes of MAC at the end of a sealed context: forging one takes ~2^64 online guesses.
pub const MAC_BYTES: usize = 8;
const DOMAIN: &[u8] = b"meridian/context/v2";

/// Seals and opens contexts with the cluster secret.
#[derive(Clone)]
pub struct ContextSeal {
    secret: [u8; 32],
}

impl std::fmt::Debug for ContextSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContextSeal(..)")
    }
}

impl ContextSeal {
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    fn mac(&self, keyspace_id: u64, key: &[u8], body: &[u8]) -> [u8; MAC_BYTES] {
        let mut h = blake3::Hasher::new_keyed(&self.secret);
        h.update(DOMAIN);
        h.update(&keyspace_id.to_be_bytes());
        h.update(&(key.len() as u64).to_be_bytes());
        h.update(key);
        h.update(body);
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&h.finalize().as_bytes()[..MAC_BYTES]);
        out
    }

    /// The bytes a client gets for `ctx` on this key.
    pub fn seal(&self, keyspace_id: u64, key: &[u8], ctx: &CausalContext) -> Vec<u8> {
        let mut out = ctx.encode();
        let mac = self.mac(keyspace_id, key, &out);
        out.extend_from_slice(&mac);
        out
    }

    /// Checks and decodes a client's context for this key. Empty bytes are the empty context.
    ///
    /// Malformed bytes are refused as "malformed context"; well-formed bytes whose MAC does
    /// not match are refused as [`CoreError::ForeignContext`]. Nothing is used before both
    /// checks pass.
    pub fn open(
        &self,
        keyspace_id: u64,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<CausalContext, CoreError> {
        if bytes.is_empty() {
            return Ok(CausalContext::empty());
        }
        if bytes.len() <= MAC_BYTES {
            return Err(CoreError::MalformedContext(format!(
                "{} bytes is too short to be a context",
                bytes.len()
            )));
        }
        let (body, mac) = bytes.split_at(bytes.len() - MAC_BYTES);
        let ctx = CausalContext::decode(body)?;
        let expected = self.mac(keyspace_id, key, body);
        // Not constant-time: a context's MAC guards against misuse and forgery by guessing,
        // and an 8-byte comparison leaks nothing a network attacker can time usefully.
        if expected != mac {
            return Err(CoreError::ForeignContext);
        }
        Ok(ctx)
    }
}

/// Decodes a sealed context without checking its MAC: for showing a context to a person and
/// for tests. A write must never use a context that was only peeked at.
pub fn peek(bytes: &[u8]) -> Result<CausalContext, CoreError> {
    if bytes.is_empty() {
        return Ok(CausalContext::empty());
    }
    let body_len = bytes.len().checked_sub(MAC_BYTES).ok_or_else(|| {
        CoreError::MalformedContext(format!(
            "{} bytes is too short to be a context",
            bytes.len()
        ))
    })?;
    CausalContext::decode(&bytes[..body_len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ActorId;
    use proptest::prelude::*;

    fn sample() -> CausalContext {
        CausalContext::from_sorted_unchecked(vec![(ActorId([1; 16]), 3), (ActorId([2; 16]), 9)])
            .with_hlc(77)
    }

    #[test]
    fn a_context_opens_only_for_its_own_key() {
        let seal = ContextSeal::new([7; 32]);
        let bytes = seal.seal(1, b"cart:1", &sample());
        assert_eq!(seal.open(1, b"cart:1", &bytes).unwrap(), sample());
        assert_eq!(
            seal.open(1, b"cart:2", &bytes),
            Err(CoreError::ForeignContext)
        );
        assert_eq!(
            seal.open(2, b"cart:1", &bytes),
            Err(CoreError::ForeignContext)
        );
        let other_cluster = ContextSeal::new([8; 32]);
        assert_eq!(
            other_cluster.open(1, b"cart:1", &bytes),
            Err(CoreError::ForeignContext)
        );
        assert_eq!(
            seal.open(1, b"cart:1", &[]).unwrap(),
            CausalContext::empty()
        );
    }

    #[test]
    fn a_hand_made_context_is_refused() {
        let seal = ContextSeal::new([7; 32]);
        // A huge counter for some actor, as an attacker would write it, with any MAC.
        let forged = CausalContext::from_sorted_unchecked(vec![(ActorId([1; 16]), u64::MAX)]);
        let mut bytes = forged.encode();
        bytes.extend_from_slice(&[0; MAC_BYTES]);
        assert_eq!(seal.open(1, b"k", &bytes), Err(CoreError::ForeignContext));
        let e = seal.open(1, b"k", &[2, 0]).unwrap_err();
        assert!(e.to_string().starts_with("malformed context"), "{e}");
        let e = ContextSeal::new([7; 32])
            .open(1, b"k", b"not a context at all")
            .unwrap_err();
        assert!(e.to_string().starts_with("malformed context"), "{e}");
    }

    proptest! {
        /// Flipping any bit of a sealed context makes it unusable: malformed or foreign,
        /// never a different valid context.
        #[test]
        fn any_altered_bit_is_refused(byte in 0usize..64, bit in 0u8..8) {
            let seal = ContextSeal::new([3; 32]);
            let mut bytes = seal.seal(5, b"key", &sample());
            let i = byte % bytes.len();
            bytes[i] ^= 1 << bit;
            prop_assert!(seal.open(5, b"key", &bytes).is_err());
        }
    }
}
