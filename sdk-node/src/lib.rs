//! `@meridian/client`: the Node.js binding of the Rust SDK (napi-rs).
//!
//! Everything a call does (routing, retries, deadlines, resolution, timeouts) happens in
//! `meridian-sdk`; this crate converts arguments and results and runs the SDK's futures as
//! Promises. JavaScript resolvers are called through weak threadsafe functions: they never
//! keep the process alive, and the JS thread never waits on Rust. `meridian.js` turns the
//! coded errors of `errors.rs` into `MeridianError` instances.

// The #[napi] exports are registered only outside cfg(test), so a test build (clippy
// --all-targets) sees them as unused.
#![cfg_attr(test, allow(dead_code))]

mod client;
mod crdt;
mod errors;
mod resolver;
mod values;
