//! Starts real `meridian` processes for integration tests: port 0 (the node reports the
//! ports it bound), a temporary data directory, polling with generous deadlines, and the
//! process killed when the test's handle drops.

#![allow(dead_code)]

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
    pub data_dir: PathBuf,
}

impl Node {
    pub fn start(data_dir: &Path) -> Node {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
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
            data_dir: data_dir.to_path_buf(),
            child,
        }
    }

    /// SIGKILL: no shutdown hooks, no flush. What survives this was durable.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
