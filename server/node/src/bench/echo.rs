//! The bare gRPC echo target: the same tonic server, KV service and session stream as a
//! real node, answering without touching storage. It shows the RPC ceiling the storage path
//! is measured against.

use crate::cli::EchoArgs;
use crate::grpc::session::{Handler, SessionLimits};
use bytes::Bytes;
use meridian_proto::v1 as pb;
use pb::operation_result::Result as R;
use std::sync::Arc;
use std::time::Duration;

pub struct EchoHandler {
    value: Bytes,
    context: Bytes,
}

impl EchoHandler {
    pub fn new(value_size: usize) -> Self {
        Self {
            value: Bytes::from(vec![b'x'; value_size]),
            // About the size of a one-node context, so replies weigh what real ones do.
            context: Bytes::from(vec![1u8; 19]),
        }
    }
}

#[async_trait::async_trait]
impl Handler for EchoHandler {
    async fn handle(&self, op: pb::Operation) -> pb::OperationResult {
        let result = match op.op {
            Some(pb::operation::Op::Get(_)) => R::Get(pb::GetResponse {
                values: vec![self.value.clone()],
                context: self.context.clone(),
                found: true,
            }),
            Some(pb::operation::Op::Put(_)) => R::Put(pb::PutResponse {
                context: self.context.clone(),
                siblings: Vec::new(),
            }),
            Some(pb::operation::Op::Update(_) | pb::operation::Op::Fetch(_)) => {
                return crate::grpc::ops::failure(&crate::error::NodeError::InvalidArgument(
                    "the echo server answers get, put and delete only".into(),
                ));
            }
            Some(pb::operation::Op::Delete(_)) | None => R::Delete(pb::DeleteResponse {
                context: self.context.clone(),
                siblings: Vec::new(),
            }),
        };
        crate::grpc::ops::success(result)
    }
}

pub async fn serve(args: EchoArgs) -> anyhow::Result<()> {
    let addr = crate::server::parse_addr("--grpc-addr", &args.grpc_addr)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    println!("MERIDIAN_READY echo grpc=http://{local}");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    let limits = SessionLimits {
        max_in_flight: 1024,
        default_timeout: Duration::from_secs(5),
    };
    crate::server::serve_grpc(
        Arc::new(EchoHandler::new(args.value_size)),
        None,
        limits,
        listener,
        stop_rx,
    )
    .await
}
