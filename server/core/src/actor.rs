//! Actor ids: who minted a dot.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The id of a server node acting as a DVV actor.
///
/// Actors are server nodes, never clients, so a key's clock has at most one entry per node
/// that ever coordinated a write for it. A node whose data directory is wiped must come back
/// with a fresh id: its old counters are gone, and reusing the id could mint a dot a peer has
/// already seen for a different value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorId(pub [u8; 16]);

impl ActorId {
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The actor a node mints with during one incarnation: the first 12 bytes of its node id
    /// followed by the incarnation, big-endian.
    ///
    /// A node that stopped uncleanly may have lost its last unsynced writes, and with them the
    /// counters it had minted; peers may already hold those dots with other values. Restarting
    /// under the next incarnation makes every later dot new, so a dot never names two values.
    /// The node id prefix keeps the actor readable (it starts like the node id) and 96 random
    /// bits keep actors of different nodes apart.
    pub fn for_incarnation(node: [u8; 16], incarnation: u32) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..12].copy_from_slice(&node[..12]);
        bytes[12..].copy_from_slice(&incarnation.to_be_bytes());
        Self(bytes)
    }

    /// The incarnation part of an actor made by [`ActorId::for_incarnation`].
    pub fn incarnation(&self) -> u32 {
        u32::from_be_bytes([self.0[12], self.0[13], self.0[14], self.0[15]])
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({self})")
    }
}

impl fmt::Display for ActorId {
    /// Lower-case hex, like the uuid the node crate derives it from, without dashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incarnations_are_distinct_actors_of_one_node() {
        let node = [0xab; 16];
        let a = ActorId::for_incarnation(node, 0);
        let b = ActorId::for_incarnation(node, 1);
        assert_ne!(a, b);
        assert_eq!(b.incarnation(), 1);
        assert_eq!(a.0[..12], node[..12]);
        assert!(b.to_string().starts_with("abababab"));
    }
}
