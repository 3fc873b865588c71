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
