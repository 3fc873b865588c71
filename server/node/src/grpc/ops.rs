//! Runs one protocol `Operation` against the engine: the translation between wire messages
//! and the engine, shared by the unary, batch and streaming RPCs.

use crate::engine::{Engine, WriteRequest};
use crate::error::{NodeError, NodeResult};
use crate::grpc::session::Handler;
use meridian_core::Consistency;
use meridian_proto::v1 as pb;
use pb::operation::Op;
use pb::operation_result::Result as R;
use std::sync::Arc;

pub struct EngineHandler {
    pub engine: Arc<Engine>,
}

#[async_trait::async_trait]
impl Handler for EngineHandler {
    async fn handle(&self, op: pb::Operation) -> pb::OperationResult {
        let Some(op) = op.op else {
            return failure(&NodeError::InvalidArgument(
                "operation is empty: set get, put or delete".into(),
            ));
        };
        match op {
            Op::Get(g) => match get(&self.engine, &g) {
                Ok(reply) => {
                    let status = if reply.found {
                        ok()
                    } else {
                        pb::Status {
                            code: tonic::Code::NotFound as i32,
                            message: "key not found".into(),
                        }
                    };
                    pb::OperationResult {
                        status: Some(status),
                        result: Some(R::Get(reply)),
                    }
                }
                Err(e) => failure(&e),
            },
            Op::Put(p) => {
                let syncs = self.engine.syncs(&p.keyspace);
                let r = run_write(&self.engine, syncs, move |e| put(e, &p)).await;
                match r {
                    Ok(context) => success(R::Put(pb::PutResponse {
                        context: context.into(),
                    })),
                    Err(e) => failure(&e),
                }
            }
            Op::Delete(d) => {
                let syncs = self.engine.syncs(&d.keyspace);
                let r = run_write(&self.engine, syncs, move |e| delete(e, &d)).await;
                match r {
                    Ok(context) => success(R::Delete(pb::DeleteResponse {
                        context: context.into(),
                    })),
                    Err(e) => failure(&e),
                }
            }
        }
    }
}

/// Writes that fsync block for a disk flush, so they run on the blocking pool, where many of
/// them can wait together and share one fsync; others are quick enough to run inline.
async fn run_write<F>(engine: &Arc<Engine>, syncs: bool, f: F) -> NodeResult<Vec<u8>>
where
    F: FnOnce(&Engine) -> NodeResult<Vec<u8>> + Send + 'static,
{
    if !syncs {
        return f(engine);
    }
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || f(&engine))
        .await
        .map_err(|e| NodeError::Internal(format!("write task failed: {e}")))?
}

pub fn consistency(raw: i32) -> NodeResult<Option<Consistency>> {
    Ok(match pb::Consistency::try_from(raw) {
        Ok(pb::Consistency::Unspecified) => None,
        Ok(pb::Consistency::One) => Some(Consistency::One),
        Ok(pb::Consistency::Two) => Some(Consistency::Two),
        Ok(pb::Consistency::Quorum) => Some(Consistency::Quorum),
        Ok(pb::Consistency::All) => Some(Consistency::All),
        Ok(pb::Consistency::LocalOne) => Some(Consistency::LocalOne),
        Ok(pb::Consistency::LocalQuorum) => Some(Consistency::LocalQuorum),
        Ok(pb::Consistency::EachQuorum) => Some(Consistency::EachQuorum),
        Err(_) => {
            return Err(NodeError::InvalidArgument(format!(
                "unknown consistency value {raw}"
            )));
        }
    })
}

pub fn get(engine: &Engine, g: &pb::GetRequest) -> NodeResult<pb::GetResponse> {
    let reply = engine.get(&g.keyspace, &g.key, consistency(g.consistency)?, g.r)?;
    Ok(pb::GetResponse {
        found: reply.found(),
        values: reply.values.into_iter().map(Into::into).collect(),
        context: reply.context.into(),
    })
}

pub fn put(engine: &Engine, p: &pb::PutRequest) -> NodeResult<Vec<u8>> {
    engine.write(&WriteRequest {
        keyspace: &p.keyspace,
        key: &p.key,
        value: Some(&p.value),
        context: &p.context,
        request_id: &p.request_id,
        consistency: consistency(p.consistency)?,
        explicit_acks: p.w,
    })
}

pub fn delete(engine: &Engine, d: &pb::DeleteRequest) -> NodeResult<Vec<u8>> {
    engine.write(&WriteRequest {
        keyspace: &d.keyspace,
        key: &d.key,
        value: None,
        context: &d.context,
        request_id: &d.request_id,
        consistency: consistency(d.consistency)?,
        explicit_acks: d.w,
    })
}

pub fn ok() -> pb::Status {
    pb::Status {
        code: 0,
        message: String::new(),
    }
}

pub fn success(result: R) -> pb::OperationResult {
    pb::OperationResult {
        status: Some(ok()),
        result: Some(result),
    }
}

pub fn failure(e: &NodeError) -> pb::OperationResult {
    pb::OperationResult {
        status: Some(e.into()),
        result: None,
    }
}
