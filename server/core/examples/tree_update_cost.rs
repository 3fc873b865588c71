//! What keeping the Merkle trees current adds to a write: the same client writes through a
//! `Keeper` over an in-memory store, with and without `Tracked` (which records each write's
//! tree delta under its partition's lock), alternating so both see the same machine. The
//! node pays this on every write whether continuous anti-entropy runs or not, so
//! `scripts/bench-ae-cost.sh` (exchanges on ÷ off) does not show it.
//!
//! cargo run --release -p meridian-core --example tree_update_cost -- [KEYS] [WRITES] [VALUE_BYTES]

use meridian_core::keeper::{ClientWrite, Keeper};
use meridian_core::merkle::{Forest, Tracked};
use meridian_core::store::{MemStore, Store};
use meridian_core::{ActorId, ContextSeal, KeyspaceSpec, ValueKind};
use std::sync::Arc;
use std::time::Instant;

/// Seconds per write for `writes` updates spread over `keys` keys (each key written once
/// first, untimed).
fn run<S: Store>(keeper: &Keeper<S>, keys: usize, writes: usize, value: &[u8]) -> f64
where
    S::Error: std::fmt::Debug,
{
    let ks = KeyspaceSpec::new("bench", ValueKind::Siblings);
    let write = |i: usize, n: usize| {
        let key = format!("user:{:08}", i % keys);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(n as u64).to_le_bytes());
        keeper
            .mint(
                &ks,
                ClientWrite {
                    key: key.as_bytes(),
                    value: Some(value),
                    context: &[],
                    request_id: id,
                },
                1_700_000_000_000 + n as u64,
                false,
            )
            .expect("mint");
    };
    for i in 0..keys {
        write(i, i);
    }
    let t = Instant::now();
    // A stride that visits keys out of order, as a hashed workload does.
    for n in 0..writes {
        write(n.wrapping_mul(7919), keys + n);
    }
    t.elapsed().as_secs_f64() / writes as f64
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("KEYS WRITES VALUE_BYTES must be numbers"))
        .collect();
    let keys = args.first().copied().unwrap_or(100_000);
    let writes = args.get(1).copied().unwrap_or(200_000);
    let value = vec![b'v'; args.get(2).copied().unwrap_or(1024)];
    println!("keys={keys} writes={writes} value={}B", value.len());
    println!("round  without trees  with trees  difference");
    for round in 1..=3 {
        let plain = Keeper::new(MemStore::new(), ActorId([1; 16]), ContextSeal::new([7; 32]));
        let without = run(&plain, keys, writes, &value);
        drop(plain);
        let tracked = Tracked {
            inner: MemStore::new(),
            forest: Arc::new(Forest::new(true)),
        };
        let keeper = Keeper::new(tracked, ActorId([1; 16]), ContextSeal::new([7; 32]));
        let with = run(&keeper, keys, writes, &value);
        println!(
            "{round:>5}  {:>10.2} µs  {:>7.2} µs  {:>+7.2} µs ({:+.1}%)",
            without * 1e6,
            with * 1e6,
            (with - without) * 1e6,
            100.0 * (with - without) / without
        );
    }
}
