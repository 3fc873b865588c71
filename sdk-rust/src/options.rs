//! Per-request options and enums mirrored from the protocol.

use std::collections::BTreeMap;
use std::time::Duration;

/// How many replicas must answer: the server's own levels (meridian-core), so the SDK and
/// the server can never disagree on what a level is or how it is spelled (`"LOCAL_QUORUM"`
/// parses with `str::parse`).
pub use meridian_core::Consistency;

/// Value kind of a keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueKind {
    Siblings,
    Lww,
}

#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// `None`: the keyspace default.
    pub consistency: Option<Consistency>,
    /// `None`: the client's default timeout.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub consistency: Option<Consistency>,
    pub timeout: Option<Duration>,
    /// Reuse an id to make a write idempotent across your own retries; `None` draws one.
    pub request_id: Option<[u8; 16]>,
}

/// The definition of a new keyspace; `None` and empty fields take the server's defaults.
#[derive(Debug, Clone, Default)]
pub struct KeyspaceOptions {
    /// Default: siblings.
    pub kind: Option<ValueKind>,
    /// Replicas per datacenter, e.g. `{"dc1": 3}`. Empty: 3 in each known DC, capped at
    /// its size.
    pub replication: BTreeMap<String, u32>,
    pub read_consistency: Option<Consistency>,
    pub write_consistency: Option<Consistency>,
    /// Largest key + value in bytes.
    pub max_value_bytes: Option<u32>,
    /// Writes that would grow a key past this many siblings are refused.
    pub max_siblings: Option<u32>,
}
