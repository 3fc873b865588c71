//! One long-lived bidirectional `Session` stream carrying many requests at once.
//!
//! Requests are tagged with an id and answered in any order; a pending-table maps ids back to
//! the waiting callers. When the stream breaks, every request still in flight fails with
//! UNAVAILABLE and the stream is marked dead so the client opens a new one.

use crate::error::{Error, ErrorCode, Result};
use meridian_proto::v1 as pb;
use meridian_proto::v1::kv_client::KvClient;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::transport::Channel;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<pb::OperationResult>>>>>;

pub(crate) struct MuxStream {
    tx: mpsc::Sender<pb::StreamRequest>,
    pending: Pending,
    next_id: AtomicU64,
    alive: Arc<AtomicBool>,
    /// Caps requests in flight on this stream; the server caps too, this keeps the client
    /// from queueing without bound.
    slots: Semaphore,
}

impl MuxStream {
    pub(crate) async fn open(channel: Channel, max_in_flight: usize) -> Result<Arc<Self>> {
        let (tx, rx) = mpsc::channel::<pb::StreamRequest>(max_in_flight.max(1));
        let mut client = KvClient::new(channel)
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20);
        let response = client
            .session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?;
        let mut inbound = response.into_inner();
        let pending: Pending = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let stream = Arc::new(Self {
            tx,
            pending: pending.clone(),
            next_id: AtomicU64::new(1),
            alive: alive.clone(),
            slots: Semaphore::new(max_in_flight.max(1)),
        });
        tokio::spawn(async move {
            let why = loop {
                match inbound.message().await {
                    Ok(Some(resp)) => {
                        let waiter = lock(&pending).remove(&resp.id);
                        if let Some(waiter) = waiter {
                            let result = resp.result.ok_or_else(|| {
                                Error::new(
                                    ErrorCode::Internal,
                                    "server sent a response without a result",
                                )
                            });
                            let _ = waiter.send(result);
                        }
                    }
                    Ok(None) => break "stream closed by server".to_string(),
                    Err(status) => break format!("stream failed: {}", status.message()),
                }
            };
            alive.store(false, Ordering::Release);
            let drained: Vec<_> = lock(&pending).drain().collect();
            for (_, waiter) in drained {
                let _ = waiter.send(Err(Error::new(ErrorCode::Unavailable, why.clone())));
            }
        });
        Ok(stream)
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire) && !self.tx.is_closed()
    }

    pub(crate) async fn call(
        &self,
        operation: pb::Operation,
        timeout: Duration,
    ) -> Result<pb::OperationResult> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorCode::Unavailable, "stream closed"))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let request = pb::StreamRequest {
            id,
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            operation: Some(operation),
        };
        if self.tx.send(request).await.is_err() {
            lock(&self.pending).remove(&id);
            self.alive.store(false, Ordering::Release);
            return Err(Error::new(ErrorCode::Unavailable, "stream closed"));
        }
        // The server enforces the deadline; the margin covers the trip back.
        match tokio::time::timeout(timeout + Duration::from_millis(500), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::new(ErrorCode::Unavailable, "stream closed")),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(Error::new(
                    ErrorCode::DeadlineExceeded,
                    format!("no reply within {} ms", timeout.as_millis()),
                ))
            }
        }
    }
}

/// The pending table is only touched for a map insert or remove; a panic while holding it
/// cannot leave it inconsistent, so a poisoned lock is still safe to use.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
