//! `meridian bench`: YCSB core workloads A, B and C against Meridian (through the Rust SDK,
//! so over the multiplexed streams), against Redis with the same concurrency, or against the
//! bare echo target. Prints ops/s and latency percentiles; `scripts/bench.sh` runs all three
//! side by side.

pub mod echo;
pub mod ycsb;

use anyhow::Context as _;
use async_trait::async_trait;
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use meridian_sdk::{Client, Context};
use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ycsb::{ScrambledZipfian, Workload, key_name};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// meridian, redis, or echo (the echo target speaks Meridian's protocol).
    #[arg(long, default_value = "meridian")]
    pub target: String,
    /// Label for the result row (defaults to the target and keyspace).
    #[arg(long)]
    pub label: Option<String>,
    #[arg(
        long,
        env = "MERIDIAN_ENDPOINT",
        default_value = "http://127.0.0.1:7070"
    )]
    pub endpoint: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    pub redis_url: String,
    #[arg(long, default_value = "default")]
    pub keyspace: String,
    /// Comma-separated YCSB workloads: a (50/50), b (95/5), c (read only).
    #[arg(long, default_value = "a,b,c", value_delimiter = ',')]
    pub workloads: Vec<String>,
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,
    /// Concurrent clients (tasks with one request in flight each).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds per workload.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Operations per second across all clients (0: as fast as they go). Paced clients
    /// measure latency from when an operation was due, not when it started, so a stall
    /// shows in the percentiles instead of just slowing the load (coordinated omission).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Skip loading the records (they are already there).
    #[arg(long)]
    pub skip_load: bool,
    /// Streams the Meridian SDK opens.
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    #[arg(long)]
    pub no_progress: bool,
    /// Consistency of the `incr` workload's increments (default: the keyspace's).
    #[arg(long)]
    pub consistency: Option<String>,
}

/// One system under test.
#[async_trait]
trait Target: Send + Sync {
    /// Returns the number of siblings seen.
    async fn read(&self, key: &str) -> anyhow::Result<usize>;
    async fn write(&self, key: &str, value: Bytes) -> anyhow::Result<()>;
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    async fn increment(&self, key: &str) -> anyhow::Result<()>;
}

/// Meridian through the SDK. Updates carry the latest context this client holds for the key
/// (from its last get or put), as a real read-modify-write client would, so siblings stay
/// bounded; the largest sibling count seen is reported.
struct MeridianTarget {
    client: Client,
    keyspace: String,
    contexts: Vec<Mutex<HashMap<String, Context>>>,
    max_siblings: AtomicUsize,
    write_options: meridian_sdk::WriteOptions,
}

impl MeridianTarget {
    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Context>> {
        let h = key
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        &self.contexts[h % self.contexts.len()]
    }

    fn remember(&self, key: &str, ctx: Context) {
        if let Ok(mut m) = self.shard(key).lock() {
            m.insert(key.to_string(), ctx);
        }
    }
}

#[async_trait]
impl Target for MeridianTarget {
    async fn read(&self, key: &str) -> anyhow::Result<usize> {
        let r = self.client.get(&self.keyspace, key).await?;
        let n = r.values.len();
        self.max_siblings.fetch_max(n, Ordering::Relaxed);
        self.remember(key, r.context);
        Ok(n)
    }

    async fn write(&self, key: &str, value: Bytes) -> anyhow::Result<()> {
        let ctx = self
            .shard(key)
            .lock()
            .ok()
            .and_then(|m| m.get(key).cloned());
        let new = self
            .client
            .put(&self.keyspace, key, value, ctx.as_ref())
            .await?;
        self.remember(key, new.context);
        Ok(())
    }

    /// With the context of the client's last write or read of the key, which it forgets.
    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let ctx = self.shard(key).lock().ok().and_then(|mut m| m.remove(key));
        self.client
            .delete(&self.keyspace, key, ctx.as_ref())
            .await?;
        Ok(())
    }

    /// At the level `--consistency` names (else the keyspace's).
    async fn increment(&self, key: &str) -> anyhow::Result<()> {
        let ops = vec![meridian_sdk::crdt::Op::Increment(1)];
        self.client
            .apply_with(&self.keyspace, key, ops, None, &self.write_options)
            .await?;
        Ok(())
    }
}

struct RedisTarget {
    conns: Vec<redis::aio::MultiplexedConnection>,
    next: AtomicUsize,
}

impl RedisTarget {
    fn conn(&self) -> redis::aio::MultiplexedConnection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }
}

#[async_trait]
impl Target for RedisTarget {
    async fn read(&self, key: &str) -> anyhow::Result<usize> {
        let v: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn())
            .await?;
        Ok(usize::from(v.is_some()))
    }

    async fn write(&self, key: &str, value: Bytes) -> anyhow::Result<()> {
        let () = redis::cmd("SET")
            .arg(key)
            .arg(&value[..])
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let _: u64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn increment(&self, key: &str) -> anyhow::Result<()> {
        let _: i64 = redis::cmd("INCR")
            .arg(key)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let workloads = args
        .workloads
        .iter()
        .map(|w| Workload::parse(w))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let concurrency = args.concurrency.max(1);
    let (target, label): (Arc<dyn Target>, String) = match args.target.as_str() {
        "meridian" | "echo" => {
            let client = Client::builder([args.endpoint.clone()])
                .streams_per_endpoint(args.streams)
                .timeout(Duration::from_secs(10))
                .connect()
                .await
                .with_context(|| format!("connecting to {}", args.endpoint))?;
            let t = MeridianTarget {
                client,
                keyspace: args.keyspace.clone(),
                contexts: (0..64).map(|_| Mutex::new(HashMap::new())).collect(),
                max_siblings: AtomicUsize::new(0),
                write_options: meridian_sdk::WriteOptions {
                    consistency: args
                        .consistency
                        .as_deref()
                        .map(meridian_sdk::consistency_from_name)
                        .transpose()?,
                    ..Default::default()
                },
            };
            let label = if args.target == "echo" {
                "grpc echo".to_string()
            } else {
                format!("meridian ({})", args.keyspace)
            };
            (Arc::new(t), label)
        }
        "redis" => {
            let client = redis::Client::open(args.redis_url.as_str())?;
            let mut conns = Vec::new();
            for _ in 0..concurrency {
                conns.push(
                    client
                        .get_multiplexed_async_connection()
                        .await
                        .with_context(|| format!("connecting to {}", args.redis_url))?,
                );
            }
            let t = RedisTarget {
                conns,
                next: AtomicUsize::new(0),
            };
            (Arc::new(t), "redis".to_string())
        }
        other => anyhow::bail!("unknown target {other:?}; expected meridian, redis or echo"),
    };
    let label = args.label.clone().unwrap_or(label);
    let value = Bytes::from(vec![b'v'; args.value_size]);

    if !args.skip_load {
        load(&*target, &args, concurrency, &value).await?;
    }
    println!(
        "{:<24} {:>3} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7}",
        "target", "wl", "ops/s", "p50 µs", "p95 µs", "p99 µs", "p99.9 µs", "errors", "max sib"
    );
    for w in workloads {
        let r = run_workload(target.clone(), &args, concurrency, w, &value).await?;
        println!(
            "{:<24} {:>3} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7}",
            label,
            w.name,
            r.ops_per_sec,
            r.hist.value_at_quantile(0.5),
            r.hist.value_at_quantile(0.95),
            r.hist.value_at_quantile(0.99),
            r.hist.value_at_quantile(0.999),
            r.errors,
            r.max_siblings
        );
    }
    Ok(())
}

fn progress(args: &BenchArgs, len: u64, what: &str) -> indicatif::ProgressBar {
    if args.no_progress {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, {eta})",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

async fn load(
    target: &dyn Target,
    args: &BenchArgs,
    concurrency: usize,
    value: &Bytes,
) -> anyhow::Result<()> {
    let pb = progress(args, args.records, "load");
    let next = AtomicU64::new(0);
    let workers = (0..concurrency).map(|_| async {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= args.records {
                return Ok::<(), anyhow::Error>(());
            }
            target.write(&key_name(i), value.clone()).await?;
            pb.inc(1);
        }
    });
    futures::future::try_join_all(workers).await?;
    pb.finish_and_clear();
    Ok(())
}

struct RunResult {
    ops_per_sec: f64,
    hist: Histogram<u64>,
    errors: u64,
    max_siblings: usize,
}

async fn run_workload(
    target: Arc<dyn Target>,
    args: &BenchArgs,
    concurrency: usize,
    w: Workload,
    value: &Bytes,
) -> anyhow::Result<RunResult> {
    let duration = Duration::from_secs_f64(args.duration.max(0.1));
    let zipf = Arc::new(ScrambledZipfian::new(args.records));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let max_sib = Arc::new(AtomicUsize::new(0));
    let pb = progress(args, duration.as_secs(), &format!("workload {}", w.name));
    let start = Instant::now();
    // Each paced client owns every `concurrency`-th slot of the schedule.
    let interval =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(concurrency as f64 / args.rate));
    // Sessions: each client keeps its share of `records` keys live.
    let live = (args.records / concurrency as u64).max(1);
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let (target, zipf, stop, errors, max_sib, value) = (
            target.clone(),
            zipf.clone(),
            stop.clone(),
            errors.clone(),
            max_sib.clone(),
            value.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .map_err(|e| anyhow::anyhow!("histogram: {e}"))?;
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_rng(&mut rand::rng());
            let mut ops = 0u64;
            let mut created = 0u64;
            // (when the next operation is due, the client's interval)
            let mut pace = interval.map(|i| (start + i.mul_f64(c as f64 / concurrency as f64), i));
            while !stop.load(Ordering::Relaxed) {
                let t = match pace.as_mut() {
                    Some((due, i)) => {
                        tokio::time::sleep_until((*due).into()).await;
                        let t = *due;
                        *due += *i;
                        t
                    }
                    None => Instant::now(),
                };
                let r = if w.increments {
                    target.increment(&key_name(zipf.next(&mut rng))).await
                } else if w.sessions {
                    let key = format!("session:{c}:{created}");
                    let r = target.write(&key, value.clone()).await;
                    created += 1;
                    match created.checked_sub(live + 1) {
                        Some(old) if r.is_ok() => {
                            target.delete(&format!("session:{c}:{old}")).await
                        }
                        _ => r,
                    }
                } else if rng.random::<f64>() < w.read_fraction {
                    let key = key_name(zipf.next(&mut rng));
                    target.read(&key).await.map(|n| {
                        max_sib.fetch_max(n, Ordering::Relaxed);
                    })
                } else {
                    let key = key_name(zipf.next(&mut rng));
                    target.write(&key, value.clone()).await
                };
                match r {
                    Ok(()) => {
                        let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                        ops += 1;
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok::<_, anyhow::Error>((hist, ops))
        }));
    }
    while start.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(250).min(duration)).await;
        pb.set_position(start.elapsed().as_secs());
    }
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| anyhow::anyhow!("histogram: {e}"))?;
    let mut ops = 0;
    for t in tasks {
        let (h, n) = t.await??;
        hist.add(&h)
            .map_err(|e| anyhow::anyhow!("histogram: {e}"))?;
        ops += n;
    }
    let elapsed = start.elapsed().as_secs_f64();
    pb.finish_and_clear();
    Ok(RunResult {
        ops_per_sec: ops as f64 / elapsed,
        hist,
        errors: errors.load(Ordering::Relaxed),
        max_siblings: max_sib.load(Ordering::Relaxed),
    })
}
