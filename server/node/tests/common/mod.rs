//! Starts real `meridian` processes for integration tests: port 0 (the node reports the
//! ports it bound), a temporary data directory, polling with generous deadlines, and the
//! process killed when the test's handle drops.

#![allow(dead_code)]

pub mod proxy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const START_DEADLINE: Duration = Duration::from_secs(60);

pub struct Node {
    child: Child,
    pub grpc: String,
    pub http: String,
    pub gossip: String,
    pub node_id: String,
    pub data_dir: PathBuf,
}

impl Node {
    pub fn start(data_dir: &Path) -> Node {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meridian"));
        cmd.arg("server").arg("--data-dir").arg(data_dir);
        for (flag, default) in [
            ("--grpc-addr", "127.0.0.1:0"),
            ("--http-addr", "127.0.0.1:0"),
            ("--gossip-addr", "127.0.0.1:0"),
        ] {
            if !extra.contains(&flag) {
                cmd.args([flag, default]);
            }
        }
        let mut child = cmd
            .args(extra)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn meridian");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("MERIDIAN_READY") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(START_DEADLINE) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("meridian did not report ready within {START_DEADLINE:?}");
            }
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .expect("ready line field")
                .to_string()
        };
        Node {
            grpc: field("grpc"),
            http: field("http"),
            gossip: field("gossip"),
            node_id: field("node_id").replace('-', ""),
            data_dir: data_dir.to_path_buf(),
            child,
        }
    }

    /// SIGKILL: no shutdown hooks, no flush. What survives this was durable.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the process to exit: a clean stop.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < START_DEADLINE {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("meridian did not stop within {START_DEADLINE:?} of SIGTERM");
    }

    /// Runs the `meridian` CLI against this node: (stdout, stderr, success); panics when it
    /// takes longer than two minutes.
    pub async fn cli(&self, args: &[&str]) -> (String, String, bool) {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--endpoint", &self.grpc]);
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(&all)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), out)
            .await
            .expect("the command finishes in time")
            .expect("run meridian");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.success(),
        )
    }

    pub async fn client(&self) -> meridian_sdk::Client {
        meridian_sdk::Client::builder([self.grpc.clone()])
            .timeout(Duration::from_secs(20))
            .connect()
            .await
            .expect("connect")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Values in byte order, to compare sibling sets.
pub fn sorted(values: &[bytes::Bytes]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = values.iter().map(|b| b.to_vec()).collect();
    v.sort();
    v
}

/// Write options at one consistency level.
pub fn w(level: meridian_sdk::Consistency) -> meridian_sdk::WriteOptions {
    meridian_sdk::WriteOptions {
        consistency: Some(level),
        ..Default::default()
    }
}

/// Read options at one consistency level.
pub fn r(level: meridian_sdk::Consistency) -> meridian_sdk::ReadOptions {
    meridian_sdk::ReadOptions {
        consistency: Some(level),
        ..Default::default()
    }
}

/// Polls `f` until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Failure-detector and timeout settings for tests: a dead node is marked down in about a
/// second, and a peer that does not answer is given up on quickly.
pub const TEST_CLUSTER_FLAGS: &[&str] = &[
    "--gossip-interval-ms",
    "100",
    "--phi-threshold",
    "6",
    "--peer-timeout-ms",
    "1500",
];

/// Cluster tests share ports, CPU and the failure detector's patience: run them one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// A cluster of real processes on `127.0.<net>.<n>`, each with its own data directory.
pub struct TestCluster {
    pub nodes: Vec<Option<Node>>,
    pub layout: Vec<(String, String, u32)>,
    dirs: Vec<tempfile::TempDir>,
    net: u8,
    /// Node ids by index (stable across restarts: they live in the data directory).
    pub ids: Vec<String>,
    /// Extra server flags for every node.
    pub extra: Vec<String>,
    /// One per node when started with `start_wan`: the address other DCs reach it at.
    pub proxies: Vec<proxy::WanProxy>,
}

impl TestCluster {
    /// `layout`: (dc, rack, capacity) per node. Every node seeds from the first one.
    pub fn start(net: u8, layout: &[(&str, &str, u32)]) -> TestCluster {
        Self::start_with(net, layout, &[])
    }

    pub fn start_with(net: u8, layout: &[(&str, &str, u32)], extra: &[&str]) -> TestCluster {
        Self::launch(net, layout, extra, false)
    }

    /// Like `start_with`, but every node's traffic from other DCs goes through its own
    /// [`proxy::WanProxy`] (on 127.0.N.(101+i)), so a test can cut or slow the WAN.
    pub fn start_wan(net: u8, layout: &[(&str, &str, u32)], extra: &[&str]) -> TestCluster {
        Self::launch(net, layout, extra, true)
    }

    fn launch(net: u8, layout: &[(&str, &str, u32)], extra: &[&str], wan: bool) -> TestCluster {
        let proxies = if wan {
            (0..layout.len())
                .map(|i| proxy::WanProxy::start(&format!("127.0.{net}.{}", 101 + i)))
                .collect()
        } else {
            Vec::new()
        };
        let mut c = TestCluster {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            nodes: Vec::new(),
            layout: layout
                .iter()
                .map(|(d, r, cap)| (d.to_string(), r.to_string(), *cap))
                .collect(),
            dirs: Vec::new(),
            net,
            ids: Vec::new(),
            proxies,
        };
        for i in 0..layout.len() {
            c.dirs.push(tempfile::tempdir().expect("tempdir"));
            let node = c.spawn(i);
            c.ids.push(node.node_id.clone());
            c.nodes.push(Some(node));
        }
        c
    }

    /// Cuts (or restores) all traffic between datacenters `a` and `b`.
    pub fn cut_wan(&self, a: &str, b: &str, cut: bool) {
        for (i, (dc, _, _)) in self.layout.iter().enumerate() {
            if dc == a || dc == b {
                if cut {
                    self.proxies[i].block();
                } else {
                    self.proxies[i].unblock();
                }
            }
        }
    }

    /// Adds a node (a join) and returns its index.
    pub fn add(&mut self, dc: &str, rack: &str, capacity: u32) -> usize {
        self.layout.push((dc.into(), rack.into(), capacity));
        self.dirs.push(tempfile::tempdir().expect("tempdir"));
        let i = self.layout.len() - 1;
        if !self.proxies.is_empty() {
            let ip = format!("127.0.{}.{}", self.net, 101 + i);
            self.proxies.push(proxy::WanProxy::start(&ip));
        }
        let node = self.spawn(i);
        self.ids.push(node.node_id.clone());
        self.nodes.push(Some(node));
        i
    }

    fn spawn(&self, i: usize) -> Node {
        let ip = format!("127.0.{}.{}", self.net, i + 1);
        let (dc, rack, cap) = &self.layout[i];
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .filter_map(|(_, n)| n.as_ref().map(|n| n.gossip.clone()))
            .collect();
        let grpc = format!("{ip}:0");
        let http = format!("{ip}:0");
        let gossip = format!("{ip}:0");
        let cap = cap.to_string();
        let seeds = seeds.join(",");
        let mut args: Vec<&str> = vec![
            "--grpc-addr",
            &grpc,
            "--http-addr",
            &http,
            "--gossip-addr",
            &gossip,
            "--dc",
            dc,
            "--rack",
            rack,
            "--capacity",
            &cap,
        ];
        if !seeds.is_empty() {
            args.extend(["--seeds", &seeds]);
        }
        args.extend(TEST_CLUSTER_FLAGS);
        args.extend(self.extra.iter().map(String::as_str));
        let wan = self.proxies.get(i).map(|p| p.addr.to_string());
        if let Some(w) = &wan {
            args.extend(["--wan-grpc-addr", w]);
        }
        let node = Node::start_with(self.dirs[i].path(), &args);
        if let Some(p) = self.proxies.get(i) {
            let target = node
                .grpc
                .trim_start_matches("http://")
                .parse()
                .expect("node's gRPC address");
            p.set_target(target);
        }
        node
    }

    /// Wipes node `i`'s data directory and starts it again: it comes back under a new id
    /// (the id lives with the data). Returns the old id.
    pub fn wipe(&mut self, i: usize) -> String {
        self.kill(i);
        self.dirs[i] = tempfile::tempdir().expect("tempdir");
        let node = self.spawn(i);
        let old = std::mem::replace(&mut self.ids[i], node.node_id.clone());
        self.nodes[i] = Some(node);
        old
    }

    /// Replaces node `i`'s disk: an empty data directory, started again as the same node
    /// (`--node-id`), so it stays a member and anti-entropy must refill it.
    pub fn replace_disk(&mut self, i: usize) {
        self.kill(i);
        self.dirs[i] = tempfile::tempdir().expect("tempdir");
        let id = self.ids[i].clone();
        self.extra.extend(["--node-id".to_string(), id.clone()]);
        let node = self.spawn(i);
        self.extra.truncate(self.extra.len() - 2);
        assert_eq!(node.node_id, id, "the node came back under its own id");
        self.nodes[i] = Some(node);
    }

    /// A client of node `i` alone, without retries: each call shows what that node did.
    pub async fn client(&self, i: usize) -> meridian_sdk::Client {
        meridian_sdk::Client::builder([self.node(i).grpc.clone()])
            .timeout(Duration::from_secs(10))
            .retries(0)
            .connect()
            .await
            .expect("connect")
    }

    /// Creates a keyspace and waits until every running node knows it.
    pub async fn create_keyspace(&self, name: &str, replication: &[(&str, u32)]) {
        self.create_keyspace_of(name, meridian_sdk::ValueKind::Siblings, replication)
            .await;
    }

    /// Creates a keyspace of a value kind and waits until every running node knows it.
    pub async fn create_keyspace_of(
        &self,
        name: &str,
        kind: meridian_sdk::ValueKind,
        replication: &[(&str, u32)],
    ) {
        use meridian_sdk::proto as pb;
        let mut admin = self.admin(0).await;
        admin
            .create_keyspace(pb::CreateKeyspaceRequest {
                spec: Some(pb::KeyspaceSpec {
                    name: name.into(),
                    kind: pb::ValueKind::from(kind) as i32,
                    replication: replication
                        .iter()
                        .map(|(d, n)| (d.to_string(), *n))
                        .collect(),
                    ..Default::default()
                }),
            })
            .await
            .expect("create keyspace");
        for (i, _) in self.running() {
            eventually(
                Duration::from_secs(60),
                "keyspace gossiped to every node",
                || async {
                    let mut a = self.admin(i).await;
                    a.describe_keyspace(pb::DescribeKeyspaceRequest { name: name.into() })
                        .await
                        .ok()
                        .map(|_| ())
                },
            )
            .await;
        }
    }

    /// Runs the `meridian` CLI against node `i` and returns its stdout; panics with its
    /// stderr when it fails or takes longer than two minutes.
    pub async fn cli(&self, i: usize, args: &[&str]) -> String {
        let (stdout, stderr, ok) = self.node(i).cli(args).await;
        assert!(ok, "meridian {args:?} failed: {stderr}");
        stdout
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node is running")
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.kill9();
        }
    }

    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let node = self.spawn(i);
        self.nodes[i] = Some(node);
    }

    pub fn running(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
    }

    pub async fn admin(
        &self,
        i: usize,
    ) -> meridian_sdk::proto::admin_client::AdminClient<tonic::transport::Channel> {
        // No Nagle: small request/response pairs otherwise wait on delayed ACKs.
        let channel = tonic::transport::Endpoint::from_shared(self.node(i).grpc.clone())
            .expect("endpoint")
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("admin connect");
        meridian_sdk::proto::admin_client::AdminClient::new(channel)
    }

    pub async fn topology(&self, i: usize) -> Option<meridian_sdk::proto::TopologyResponse> {
        let mut c =
            meridian_sdk::proto::admin_client::AdminClient::connect(self.node(i).grpc.clone())
                .await
                .ok()?;
        Some(
            c.topology(meridian_sdk::proto::TopologyRequest {})
                .await
                .ok()?
                .into_inner(),
        )
    }

    /// Waits until every running node sees every running node up, every killed node down,
    /// the same layout version with the same digest, no transition under way, and every
    /// member synced with that version.
    pub async fn converged(&self) {
        let running: Vec<String> = self.running().map(|(i, _)| self.ids[i].clone()).collect();
        eventually(Duration::from_secs(90), "cluster convergence", || async {
            let mut layout = None;
            for (i, _) in self.running() {
                let t = self.topology(i).await?;
                let mine = (t.epoch, t.layout_digest.clone());
                if *layout.get_or_insert(mine.clone()) != mine || t.read_version != t.epoch {
                    return None;
                }
                for m in &t.members {
                    let want_up = running.contains(&m.node_id);
                    if m.state == "left" {
                        continue;
                    }
                    if want_up != (m.state == "up") {
                        return None;
                    }
                    if want_up && m.synced_epoch < t.epoch {
                        return None;
                    }
                }
            }
            Some(())
        })
        .await
    }

    /// Waits until node `observer` sees node `target` as down.
    pub async fn sees_down(&self, observer: usize, target: usize) {
        let id = self.ids[target].clone();
        eventually(Duration::from_secs(60), "node marked down", || async {
            let t = self.topology(observer).await?;
            t.members
                .iter()
                .any(|m| m.node_id == id && m.state == "down")
                .then_some(())
        })
        .await
    }

    /// Whether node `i` stores `key` of `keyspace` (its local state, no read path).
    pub async fn stored_on(&self, i: usize, keyspace: &str, key: &str) -> bool {
        let mut a = self.admin(i).await;
        a.inspect(meridian_sdk::proto::InspectRequest {
            keyspace: keyspace.into(),
            key: key.as_bytes().to_vec().into(),
        })
        .await
        .is_ok_and(|r| r.into_inner().present)
    }

    /// Node `i`'s id as bytes.
    pub fn id_bytes(&self, i: usize) -> Vec<u8> {
        let hex = &self.node(i).node_id;
        (0..hex.len() / 2)
            .map(|j| u8::from_str_radix(&hex[2 * j..2 * j + 2], 16).expect("hex node id"))
            .collect()
    }

    /// Hints queued on node `i`.
    pub async fn hints_on(&self, i: usize) -> u64 {
        let mut admin = self.admin(i).await;
        admin
            .hints(meridian_sdk::proto::HintsRequest {})
            .await
            .expect("hints")
            .into_inner()
            .queues
            .iter()
            .map(|q| q.count)
            .sum()
    }

    /// Total hints queued on running nodes.
    pub async fn hints_total(&self) -> u64 {
        let mut total = 0;
        for (i, _) in self.running() {
            total += self.hints_on(i).await;
        }
        total
    }

    /// Each running replica's canonical state of a key (node id → bytes).
    pub async fn replica_states(&self, keyspace: &str, key: &str) -> Vec<(String, Vec<u8>, bool)> {
        let mut out = Vec::new();
        for (_, n) in self.running() {
            let mut c = meridian_sdk::proto::admin_client::AdminClient::connect(n.grpc.clone())
                .await
                .expect("admin");
            let r = c
                .inspect(meridian_sdk::proto::InspectRequest {
                    keyspace: keyspace.into(),
                    key: key.as_bytes().to_vec().into(),
                })
                .await
                .expect("inspect")
                .into_inner();
            if r.replica {
                out.push((r.node_id, r.replicated.to_vec(), r.present));
            }
        }
        out
    }
}

/// Sum of a counter over the running nodes' /metrics.
pub async fn metric_sum(c: &TestCluster, name: &str) -> f64 {
    let mut total = 0.0;
    for (_, n) in c.running() {
        total += node_metric(n, name, "").await;
    }
    total
}

/// Sum of a metric's series on one node whose line contains `label` (e.g. `op="put"`).
pub async fn node_metric(n: &Node, name: &str, label: &str) -> f64 {
    let body = reqwest::get(format!("{}/metrics", n.http))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>()
}
