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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::ops::success;
    use pb::operation_result::Result as R;
    use tokio::sync::Notify;

    /// Holds any get of key "slow" until released; answers everything else at once.
    struct GateHandler {
        release: Arc<Notify>,
    }

    #[async_trait::async_trait]
    impl Handler for GateHandler {
        async fn handle(&self, op: pb::Operation) -> pb::OperationResult {
            if let Some(pb::operation::Op::Get(g)) = &op.op {
                if &g.key[..] == b"slow" {
                    self.release.notified().await;
                }
                return success(R::Get(pb::GetResponse {
                    values: vec![g.key.clone()],
                    context: Default::default(),
                    found: true,
                }));
            }
            success(R::Put(pb::PutResponse::default()))
        }
    }

    fn get(id: u64, key: &'static str) -> pb::StreamRequest {
        pb::StreamRequest {
            id,
            timeout_ms: 60_000,
            operation: Some(pb::Operation {
                op: Some(pb::operation::Op::Get(pb::GetRequest {
                    keyspace: "default".into(),
                    key: key.into(),
                    ..Default::default()
                })),
            }),
        }
    }

    /// Serves a `GateHandler` on a free loopback port and opens one session stream to it.
    async fn open_session(
        release: Arc<Notify>,
    ) -> (
        mpsc::Sender<pb::StreamRequest>,
        Streaming<pb::StreamResponse>,
        tokio::sync::watch::Sender<bool>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let limits = SessionLimits {
            max_in_flight: 16,
            default_timeout: Duration::from_secs(60),
        };
        let handler = Arc::new(GateHandler { release });
        tokio::spawn(crate::server::serve_grpc(
            handler, None, limits, listener, stop_rx,
        ));
        let mut client = pb::kv_client::KvClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(4);
        let responses = client
            .session(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        (tx, responses, stop_tx)
    }

    /// Request 1 is stuck until request 2's answer has arrived: only a server that runs a
    /// stream's requests concurrently and answers out of order can pass.
    #[tokio::test]
    async fn a_slow_request_does_not_hold_up_later_ones_on_the_same_stream() {
        let release = Arc::new(Notify::new());
        let (tx, mut responses, _stop) = open_session(release.clone()).await;
        tx.send(get(1, "slow")).await.unwrap();
        tx.send(get(2, "fast")).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(30), responses.message())
            .await
            .expect("the fast request must be answered while the slow one waits")
            .unwrap()
            .unwrap();
        assert_eq!(first.id, 2);
        release.notify_one();
        let second = responses.message().await.unwrap().unwrap();
        assert_eq!(second.id, 1);
        match second.result.and_then(|r| r.result) {
            Some(R::Get(g)) => assert_eq!(&g.values[0][..], b"slow"),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A request past its deadline is answered with DEADLINE_EXCEEDED, on its own id.
    #[tokio::test]
    async fn deadlines_are_enforced_per_request() {
        let (tx, mut responses, _stop) = open_session(Arc::new(Notify::new())).await;
        let mut req = get(7, "slow");
        req.timeout_ms = 50;
        tx.send(req).await.unwrap();
        let r = responses.message().await.unwrap().unwrap();
        assert_eq!(r.id, 7);
        let status = r.result.unwrap().status.unwrap();
        assert_eq!(status.code, tonic::Code::DeadlineExceeded as i32);
        assert!(status.message.contains("50 ms"), "{}", status.message);
    }
}
