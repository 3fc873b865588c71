//! gRPC services: the KV data API (unary, batch, and the multiplexed session stream) and
//! the admin API.

pub mod admin;
pub mod kv;
pub mod layout_admin;
pub mod ops;
pub mod session;
