//! Meridian's deterministic simulation.
//!
//! Many nodes in several datacenters run the core's own code — the [`Keeper`] that mints and
//! merges, the write, relay and read machines of `meridian_core::coordinate`, the layout's
//! ownership rules — in one thread, over a network that drops, delays, duplicates and
//! reorders messages, partitions nodes and datacenters, and crashes nodes (losing what they
//! had not synced). Everything random comes from one seed, so a failing seed replays exactly:
//!
//! ```text
//! cargo run -p meridian-sim --release -- --seed 1234
//! ```
//!
//! [`Keeper`]: meridian_core::keeper::Keeper

mod check;
mod client;
pub mod converge;
mod founding;
mod msg;
mod node;
pub mod placement;
mod rng;
mod world;

pub use world::{Report, Scenario, Stats, run, run_scenario};
