//! The `meridian.v1.Kv` service. Every RPC funnels into the same `Handler`, so unary calls
//! (for grpcurl and simple clients), batches and the session stream behave identically.

use crate::grpc::session::{self, Handler, ResponseStream, SessionLimits};
use meridian_proto::v1 as pb;
use pb::operation::Op;
use pb::operation_result::Result as R;
use std::sync::Arc;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

pub struct KvService<H> {
    handler: Arc<H>,
    limits: SessionLimits,
}

impl<H: Handler> KvService<H> {
    pub fn new(handler: Arc<H>, limits: SessionLimits) -> Self {
        Self { handler, limits }
    }

    async fn unary(&self, op: Op) -> Result<pb::OperationResult, Status> {
        let result = self.handler.handle(pb::Operation { op: Some(op) }).await;
        let status = result.status.clone().unwrap_or_default();
        if status.code == 0 {
            return Ok(result);
        }
        let code = tonic::Code::from_i32(status.code);
        let mut err = Status::new(code, status.message);
        // A missing key still has a context (tombstones); unary callers get it as metadata.
        if let Some(R::Get(g)) = &result.result {
            err.metadata_mut().insert_bin(
                "meridian-context-bin",
                MetadataValue::from_bytes(&g.context),
            );
        }
        Err(err)
    }
}

fn wrong_result() -> Status {
    Status::internal("handler answered with the wrong result type")
}

#[tonic::async_trait]
impl<H: Handler> pb::kv_server::Kv for KvService<H> {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        match self.unary(Op::Get(req.into_inner())).await?.result {
            Some(R::Get(g)) => Ok(Response::new(g)),
            _ => Err(wrong_result()),
        }
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        match self.unary(Op::Put(req.into_inner())).await?.result {
            Some(R::Put(p)) => Ok(Response::new(p)),
            _ => Err(wrong_result()),
        }
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        match self.unary(Op::Delete(req.into_inner())).await?.result {
            Some(R::Delete(d)) => Ok(Response::new(d)),
            _ => Err(wrong_result()),
        }
    }

    async fn update(
        &self,
        req: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::UpdateResponse>, Status> {
        match self.unary(Op::Update(req.into_inner())).await?.result {
            Some(R::Update(u)) => Ok(Response::new(u)),
            _ => Err(wrong_result()),
        }
    }

    async fn fetch(
        &self,
        req: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        match self.unary(Op::Fetch(req.into_inner())).await?.result {
            Some(R::Fetch(f)) => Ok(Response::new(f)),
            _ => Err(wrong_result()),
        }
    }

    async fn batch(
        &self,
        req: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        let ops = req.into_inner().operations;
        if ops.len() > 10_000 {
            return Err(Status::invalid_argument(format!(
                "batch has {} operations; the limit is 10000",
                ops.len()
            )));
        }
        let results =
            futures::future::join_all(ops.into_iter().map(|op| self.handler.handle(op))).await;
        Ok(Response::new(pb::BatchResponse { results }))
    }

    type SessionStream = ResponseStream;

    async fn session(
        &self,
        req: Request<Streaming<pb::StreamRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        Ok(Response::new(session::serve(
            self.handler.clone(),
            req.into_inner(),
            self.limits,
        )))
    }
}
