//! The Rust client for Meridian.
//!
//! ```no_run
//! # async fn demo() -> Result<(), meridian_sdk::Error> {
//! let client = meridian_sdk::Client::connect(["http://127.0.0.1:7070"]).await?;
//! let written = client.put("default", "cart:1", "apples", None).await?;
//! let read = client.get("default", "cart:1").await?;
//! client.put("default", "cart:1", "apples,pears", Some(&read.context)).await?;
//! # let _ = written; Ok(()) }
//! ```
//!
//! Operations travel over a few long-lived bidirectional gRPC streams per endpoint,
//! multiplexed by request id, which is several times cheaper than one unary call each. Every
//! write carries a request id that stays the same across retries, so a retried write never
//! creates a sibling. `Client` is cheap to clone and can be shared across tasks.

mod client;
mod context;
pub mod crdt;
mod error;
mod keyspace;
mod options;
mod resolver;
mod stream;

mod routing;

pub use client::{Client, ClientBuilder, GetResult, KeyspaceInfo, WriteResult};
pub use context::Context;
pub use crdt::{Counter, Fetched, Flag, Map, Register, Set};
pub use error::{Cause, Error, ErrorCode, Result};
pub use keyspace::Keyspace;
pub use options::{
    Consistency, KeyspaceOptions, ReadOptions, ValueKind, WriteOptions, consistency_from_name,
    positive_duration, value_kind_from_name,
};
pub use resolver::{FnResolver, Resolver};

/// The generated protocol, for callers who need what the client does not wrap.
pub use meridian_proto::v1 as proto;
