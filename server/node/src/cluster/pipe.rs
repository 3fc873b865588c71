//! A long-lived stream to one peer carrying many replication and read requests at once,
//! tagged by id and answered in any order. One HTTP/2 stream instead of one per request:
//! fewer frames, fewer syscalls, and writes coalesce under load.

use crate::error::{NodeError, NodeResult};
use meridian_proto::v1 as pb;
use pb::peer_client::PeerClient;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<pb::PeerResponse>>>>;

pub struct Pipe {
    tx: mpsc::Sender<pb::PeerRequest>,
    waiters: Waiters,
    next_id: AtomicU64,
    alive: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pipe {
    pub async fn open(mut client: PeerClient<Channel>, depth: usize) -> NodeResult<Arc<Self>> {
        let (tx, rx) = mpsc::channel(depth.max(1));
        let mut inbound = client
            .pipe(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|s| NodeError::Unavailable(format!("opening peer pipe: {}", s.message())))?
            .into_inner();
        let waiters: Waiters = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let pipe = Arc::new(Self {
            tx,
            waiters: waiters.clone(),
            next_id: AtomicU64::new(1),
            alive: alive.clone(),
        });
        tokio::spawn(async move {
            while let Ok(Some(resp)) = inbound.message().await {
                if let Some(w) = lock(&waiters).remove(&resp.id) {
                    let _ = w.send(resp);
                }
            }
            // Broken: dropping the waiters fails every request still in flight.
            alive.store(false, Ordering::Release);
            lock(&waiters).clear();
        });
        Ok(pipe)
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire) && !self.tx.is_closed()
    }

    pub async fn call(
        &self,
        op: pb::peer_request::Op,
        timeout: Duration,
    ) -> NodeResult<pb::PeerResponse> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(id, tx);
        let sent =
            tokio::time::timeout(timeout, self.tx.send(pb::PeerRequest { id, op: Some(op) })).await;
        if !matches!(sent, Ok(Ok(()))) {
            lock(&self.waiters).remove(&id);
            self.alive.store(false, Ordering::Release);
            return Err(NodeError::Unavailable("peer pipe closed or full".into()));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(resp)) => {
                let status = resp.status.clone().unwrap_or_default();
                if status.code != 0 {
                    return Err(NodeError::Remote {
                        code: tonic::Code::from_i32(status.code),
                        message: status.message,
                    });
                }
                Ok(resp)
            }
            Ok(Err(_)) => Err(NodeError::Unavailable("peer pipe broke".into())),
            Err(_) => {
                lock(&self.waiters).remove(&id);
                Err(NodeError::Unavailable(format!(
                    "peer did not answer within {} ms",
                    timeout.as_millis()
                )))
            }
        }
    }
}
