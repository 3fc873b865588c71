//! Meridian's sans-IO core.
//!
//! Everything that decides *what* happens to a key lives here: causality (the DVVSet), the
//! write rules a replica applies, keyspace definitions and limits, the placement hash, and the
//! canonical encodings that later let Merkle trees compare replicas byte for byte. Nothing in
//! this crate performs I/O, reads a clock or draws random numbers: time, node ids and request
//! ids arrive as inputs, so the same inputs always give the same outputs.

pub mod actor;
pub mod consistency;
pub mod context;
pub mod coordinate;
pub mod crdt;
pub mod describe;
pub mod dvv;
pub mod error;
pub mod handoff;
pub mod hlc;
pub mod keeper;
pub mod keyspace;
pub mod layout;
pub mod limits;
pub mod lww;
pub mod merkle;
pub mod object;
pub mod partition;
pub mod quorum;
pub mod replica;
pub mod ring;
pub mod seal;
pub mod store;
pub mod stream;
pub mod tombstones;
pub mod transition;
pub mod version;

pub use actor::ActorId;
pub use consistency::Consistency;
pub use context::CausalContext;
pub use dvv::DvvSet;
pub use error::CoreError;
pub use keyspace::{KeyspaceSpec, ValueKind};
pub use object::StoredObject;
pub use seal::ContextSeal;
pub use version::{RequestId, Version};
