//! The core's error type: every way a request can be refused by the rules in this crate.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CoreError {
    #[error("key is empty; keys must be 1 to {limit} bytes")]
    EmptyKey { limit: usize },
    #[error("key is {len} bytes; the limit is {limit} bytes")]
    KeyTooLong { len: usize, limit: usize },
    #[error("key + value is {size} bytes; the keyspace limit is {limit} bytes")]
    ValueTooLarge { size: usize, limit: usize },
    #[error("malformed context: {0}")]
    MalformedContext(String),
    /// The context's MAC does not match this key: it was issued for another key (or by
    /// another cluster), or it was altered.
    #[error(
        "context does not belong to this key: pass the context returned by a read or write \
         of this same key, unchanged"
    )]
    ForeignContext,
    /// A counter cannot grow past u64::MAX; refusing is better than wrapping to a used dot.
    #[error("the clock of actor {actor} is exhausted for this key")]
    ClockOverflow { actor: crate::ActorId },
    #[error("malformed storage key: {0}")]
    MalformedStorageKey(String),
    #[error("malformed request id: {len} bytes, expected 16 (or none)")]
    MalformedRequestId { len: usize },
    #[error(
        "key has {count} siblings and this write would make {next}; the limit is {limit}: \
         read the key and write back with its context to resolve them"
    )]
    TooManySiblings {
        count: usize,
        next: usize,
        limit: usize,
    },
    #[error(
        "this write would make the key's siblings {bytes} bytes together; a key holds at most \
         {limit} bytes of siblings: read the key and write back with its context to resolve them"
    )]
    SiblingsTooLarge { bytes: usize, limit: usize },
    #[error("invalid keyspace: {0}")]
    InvalidKeyspace(String),
    #[error(
        "consistency {level} needs {} but only {available} exist{where_}",
        count(*needed, "replica")
    )]
    Unsatisfiable {
        level: String,
        needed: usize,
        available: usize,
        where_: String,
    },
    /// Not enough replicas answered (or are alive) for the level; `reachable` says which did.
    #[error(
        "consistency {level} needs {}{scope}; reachable: {reachable}",
        count(*needed, "acknowledgement")
    )]
    Unavailable {
        level: String,
        needed: usize,
        scope: String,
        reachable: String,
    },
    /// Not a replica, and no replica to hand the write to.
    #[error("consistency {level} needs a replica{scope}, and none is reachable")]
    NoReplicaReachable { level: String, scope: String },
    #[error("stored object is corrupt: {0}")]
    CorruptObject(String),
    #[error(
        "this update would make the key's {kind} {size} bytes; a CRDT key holds at most \
         {limit} bytes (remove some of it, or spread it over more keys)"
    )]
    CrdtTooLarge {
        kind: String,
        size: usize,
        limit: usize,
    },
    #[error("invalid update: {0}")]
    InvalidUpdate(String),
    /// An operation of another type than the keyspace's (or the map field's).
    #[error("operation `{op}` does not apply to a {kind}")]
    WrongCrdtOp { op: String, kind: String },
    #[error(
        "adding {by} would take the counter past the range of a 64-bit signed integer \
         (-9223372036854775808 to 9223372036854775807)"
    )]
    CounterOverflow { by: i64 },
    #[error("keyspace is of kind {actual} but the stored object is {found}")]
    KindMismatch { actual: String, found: String },
}

/// "1 replica", "2 replicas".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
