//! The multiplexed `Session` stream: many requests in flight on one HTTP/2 stream, each
//! run as its own task and answered as soon as it completes, so a slow request never holds
//! up the ones behind it.
//!
//! Backpressure: at most `max_in_flight` requests of one stream run at once; past that the
//! server stops reading the stream, and HTTP/2 flow control pushes back on the client.

use meridian_proto::v1 as pb;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

/// Executes one operation. Implemented by the storage engine and by the bench's echo target,
/// so both run the exact same stream machinery.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, op: pb::Operation) -> pb::OperationResult;
}

#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_in_flight: usize,
    pub default_timeout: Duration,
}

pub type ResponseStream = ReceiverStream<Result<pb::StreamResponse, Status>>;

pub fn serve<H: Handler>(
    handler: Arc<H>,
    mut inbound: Streaming<pb::StreamRequest>,
    limits: SessionLimits,
) -> ResponseStream {
    let (tx, rx) = mpsc::channel(limits.max_in_flight.max(1));
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let request = match inbound.message().await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(error = %status, "session stream ended with an error");
                    break;
                }
            };
            let handler = handler.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let timeout = if request.timeout_ms == 0 {
                    limits.default_timeout
                } else {
                    Duration::from_millis(u64::from(request.timeout_ms))
                };
                let result = match request.operation {
                    None => status_only(
                        tonic::Code::InvalidArgument,
                        "stream request has no operation",
                    ),
                    Some(op) => match tokio::time::timeout(timeout, handler.handle(op)).await {
                        Ok(r) => r,
                        Err(_) => status_only(
                            tonic::Code::DeadlineExceeded,
                            &format!("deadline of {} ms exceeded", timeout.as_millis()),
                        ),
                    },
                };
                let _ = tx
                    .send(Ok(pb::StreamResponse {
                        id: request.id,
                        result: Some(result),
                    }))
                    .await;
                drop(permit);
            });
        }
    });
    ReceiverStream::new(rx)
}

fn status_only(code: tonic::Code, message: &str) -> pb::OperationResult {
    pb::OperationResult {
        status: Some(pb::Status {
            code: code as i32,
            message: message.to_string(),
        }),
        result: None,
    }
}
