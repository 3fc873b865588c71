//! The Rust side of `scripts/bench-sdks.sh`: put and get ops/s with N concurrent callers on
//! one client, then the latency of `get_resolved` on a key with two siblings, one caller.
//! The Python and Node programs (`examples/python/bench.py`, `examples/node/bench.mjs`) do
//! the same through their bindings, so the difference is what the binding costs.
//!
//! `sdk_bench ENDPOINT SECONDS CALLERS RESOLVES`

use bytes::Bytes;
use meridian_sdk::{Client, FnResolver};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Puts and gets go to a last-writer-wins keyspace (the script creates it), so blind puts do
/// not pile up siblings that later gets would carry.
const KEYSPACE: &str = "bench-lww";

fn arg(i: usize, default: &str) -> String {
    std::env::args()
        .nth(i)
        .unwrap_or_else(|| default.to_string())
}

async fn rate(client: &Client, seconds: f64, callers: usize, put: bool) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let value = Bytes::from(vec![b'v'; 100]);
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let (client, done, value) = (client.clone(), done.clone(), value.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < end {
                    let key = format!("bench-{c}-{}", i % 1000);
                    let ok = if put {
                        client
                            .put(KEYSPACE, &key, value.clone(), None)
                            .await
                            .is_ok()
                    } else {
                        client.get(KEYSPACE, &key).await.is_ok()
                    };
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let started = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint = arg(1, "http://127.0.0.1:7070");
    let seconds: f64 = arg(2, "5").parse()?;
    let callers: usize = arg(3, "16").parse()?;
    let resolves: usize = arg(4, "2000").parse()?;
    let client = Client::connect([endpoint]).await?;
    let put = rate(&client, seconds, callers, true).await;
    let get = rate(&client, seconds, callers, false).await;

    let first = |_k: &[u8], s: Vec<Bytes>| Ok(s.into_iter().next().unwrap_or_default());
    let resolver = FnResolver(first);
    let mut micros = Vec::with_capacity(resolves);
    for i in 0..resolves {
        let key = format!("resolve-{}-{i}", std::process::id());
        client.put("default", &key, "a", None).await?;
        client.put("default", &key, "b", None).await?;
        let t = Instant::now();
        client
            .get_resolved("default", &key, Some(&resolver))
            .await?;
        micros.push(t.elapsed().as_secs_f64() * 1e6);
    }
    // One caller's plain gets: what a call through the binding costs without a resolver.
    let mut gets = Vec::with_capacity(resolves);
    for i in 0..resolves {
        let t = Instant::now();
        client
            .get(KEYSPACE, format!("bench-0-{}", i % 1000))
            .await?;
        gets.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let p50 = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[(v.len() - 1) / 2]
    };
    let get_p50 = p50(gets);
    micros.sort_by(f64::total_cmp);
    let pct = |p: f64| micros[((micros.len() - 1) as f64 * p) as usize];
    println!(
        "sdk=rust callers={callers} put_ops={put:.0} get_ops={get:.0} get_p50_us={get_p50:.0} resolve_p50_us={:.0} resolve_p99_us={:.0}",
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
