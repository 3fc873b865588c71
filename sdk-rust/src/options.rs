//! Per-request options and enums mirrored from the protocol.

use std::collections::BTreeMap;
use std::time::Duration;

/// How many replicas must answer: the server's own levels (meridian-core), so the SDK and
/// the server can never disagree on what a level is or how it is spelled (`"LOCAL_QUORUM"`
/// parses with `str::parse`).
pub use meridian_core::Consistency;

/// Value kind of a keyspace: opaque values (`Siblings`, `Lww`) or a CRDT type. The server's
/// own enum, as for [`Consistency`].
pub use meridian_core::ValueKind;

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

/// A consistency level from its name, any case (`"local_quorum"`), as the bindings take it.
pub fn consistency_from_name(name: &str) -> crate::Result<Consistency> {
    name.to_ascii_uppercase()
        .parse::<Consistency>()
        .map_err(|_| {
            crate::Error::new(
                crate::ErrorCode::InvalidArgument,
                format!(
                    "unknown consistency {name:?}: use ONE, TWO, QUORUM, ALL, LOCAL_ONE, \
                 LOCAL_QUORUM or EACH_QUORUM"
                ),
            )
        })
}

/// A value kind from its name, any case: `"siblings"`, `"lww"`, `"counter"`, `"set"`,
/// `"map"`, `"register"`, `"mvregister"` or `"flag"`.
pub fn value_kind_from_name(name: &str) -> crate::Result<ValueKind> {
    name.to_ascii_lowercase()
        .parse::<ValueKind>()
        .map_err(|e| crate::Error::new(crate::ErrorCode::InvalidArgument, e))
}

/// A timeout a binding was given as a number of `unit`s (`timeout=2.5` seconds in Python,
/// `timeoutMs: 2500` in JavaScript), which must be positive.
pub fn positive_duration(what: &str, value: f64, unit: Duration) -> crate::Result<Duration> {
    Duration::try_from_secs_f64(value * unit.as_secs_f64())
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            crate::Error::new(
                crate::ErrorCode::InvalidArgument,
                format!("{what} must be a positive number, not {value}"),
            )
        })
}
