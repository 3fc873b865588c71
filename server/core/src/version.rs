//! One stored version of a value: what a sibling is.

use serde::{Deserialize, Serialize};

/// A client-chosen id for one logical write, so a retried write is recognised.
pub type RequestId = [u8; 16];

/// A value as a replica stores it inside the DVVSet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// `None` is a tombstone: it supersedes like a value but is hidden from reads.
    #[serde(with = "serde_bytes")]
    pub data: Option<Vec<u8>>,
    /// Kept with the version so a retry of the same write can be acknowledged without minting.
    pub request_id: RequestId,
    /// Hybrid logical timestamp at the minting replica; informational for siblings
    /// (resolvers may use it), decisive for `lww` keyspaces.
    pub timestamp: u64,
}

impl Version {
    pub fn is_tombstone(&self) -> bool {
        self.data.is_none()
    }
}
