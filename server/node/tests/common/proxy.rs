//! A TCP proxy in front of one node's gRPC port for the traffic of other datacenters (the
//! node publishes it with `--wan-grpc-addr`): tests cut a WAN link by blocking it, which
//! drops open connections and refuses new ones, and slow it with a one-way delay in each
//! direction. `examples/wan_proxy.rs` runs the same proxy as a process for the benchmarks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct State {
    target: Mutex<Option<SocketAddr>>,
    blocked: AtomicBool,
    delay_ms: AtomicU64,
    /// Bumped by `block`: connections from before end.
    cut: tokio::sync::watch::Sender<u64>,
}

pub struct WanProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WanProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.state.cut.send_modify(|g| *g += 1);
    }
}

impl WanProxy {
    /// Listens on `ip`, port 0. Must run inside a tokio runtime.
    pub fn start(ip: &str) -> WanProxy {
        let std = std::net::TcpListener::bind(format!("{ip}:0")).expect("bind proxy");
        std.set_nonblocking(true).expect("nonblocking");
        let addr = std.local_addr().expect("proxy addr");
        let listener = TcpListener::from_std(std).expect("tokio listener");
        let state = Arc::new(State {
            target: Mutex::new(None),
            blocked: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            cut: tokio::sync::watch::channel(0).0,
        });
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let target = *s.target.lock().expect("proxy lock");
                let Some(target) = target.filter(|_| !s.blocked.load(Ordering::SeqCst)) else {
                    drop(inbound);
                    continue;
                };
                tokio::spawn(relay(inbound, target, s.clone()));
            }
        });
        WanProxy { addr, state, task }
    }

    /// Where connections go (the node's gRPC port, which changes when it restarts).
    pub fn set_target(&self, target: SocketAddr) {
        *self.state.target.lock().expect("proxy lock") = Some(target);
    }

    pub fn block(&self) {
        self.state.blocked.store(true, Ordering::SeqCst);
        self.state.cut.send_modify(|g| *g += 1);
    }

    pub fn unblock(&self) {
        self.state.blocked.store(false, Ordering::SeqCst);
    }

    /// Holds every chunk this long before passing it on, in each direction.
    pub fn delay(&self, d: Duration) {
        self.state
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }
}

async fn relay(inbound: TcpStream, target: SocketAddr, state: Arc<State>) {
    // Subscribe before connecting and look at `blocked` after: a cut made while this
    // connection was being opened still ends it.
    let mut cut = state.cut.subscribe();
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    if state.blocked.load(Ordering::SeqCst) {
        return;
    }
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (ri, wi) = inbound.into_split();
    let (ro, wo) = outbound.into_split();
    tokio::select! {
        _ = pump(ri, wo, state.clone()) => {}
        _ = pump(ro, wi, state.clone()) => {}
        _ = cut.changed() => {}
    }
}

/// A delay line: the reader stamps each chunk with when it may leave, and the writer holds
/// it until then, so a delay adds latency without capping throughput (a link of 40 ms
/// still carries many chunks in flight, as a real one does). Order is kept; a full line
/// stops the reader, which pushes back on the sender through TCP.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<State>,
) {
    let (line, mut out) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(1024);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let delay = Duration::from_millis(state.delay_ms.load(Ordering::SeqCst));
            let due = tokio::time::Instant::now() + delay;
            if line.send((due, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = out.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    // The writer drains what the reader queued before its end.
    tokio::join!(reader, writer);
}
