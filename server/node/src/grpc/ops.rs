//! Runs one protocol `Operation` against the engine: the translation between wire messages
//! and the engine, shared by the unary, batch and streaming RPCs.

use crate::cluster::Cluster;
use crate::cluster::coordinator::{Change, WriteOp};
use crate::engine::WriteAck;
use crate::error::{NodeError, NodeResult};
use crate::grpc::session::Handler;
use meridian_core::Consistency;
use meridian_proto::v1 as pb;
use pb::operation::Op;
use pb::operation_result::Result as R;
use std::sync::Arc;

/// Serves client operations through the cluster coordinator.
pub struct ClusterHandler {
    pub cluster: Arc<Cluster>,
}

#[async_trait::async_trait]
impl Handler for ClusterHandler {
    async fn handle(&self, op: pb::Operation) -> pb::OperationResult {
        let Some(op) = op.op else {
            return failure(&NodeError::InvalidArgument(
                "operation is empty: set get, put, delete, update or fetch".into(),
            ));
        };
        match op {
            Op::Get(g) => match get(&self.cluster, &g).await {
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
            Op::Put(p) => match put(&self.cluster, p).await {
                Ok(ack) => success(put_result(ack)),
                Err(e) => failure(&e),
            },
            Op::Delete(d) => match delete(&self.cluster, d).await {
                Ok(ack) => success(delete_result(ack)),
                Err(e) => failure(&e),
            },
            Op::Update(u) => match update(&self.cluster, u).await {
                Ok(ack) => success(update_result(ack)),
                Err(e) => failure(&e),
            },
            Op::Fetch(f) => match fetch(&self.cluster, &f).await {
                Ok(reply) => success(R::Fetch(reply)),
                Err(e) => failure(&e),
            },
        }
    }
}

pub fn consistency(raw: i32) -> NodeResult<Option<Consistency>> {
    meridian_proto::consistency_from_wire(raw).map_err(NodeError::InvalidArgument)
}

pub async fn get(cluster: &Arc<Cluster>, g: &pb::GetRequest) -> NodeResult<pb::GetResponse> {
    let reply = cluster
        .read(&g.keyspace, &g.key, consistency(g.consistency)?, g.r)
        .await?;
    Ok(pb::GetResponse {
        found: reply.found(),
        values: reply.values.into_iter().map(Into::into).collect(),
        context: reply.context.into(),
    })
}

/// The wire form of a put's acknowledgement.
pub fn put_result(ack: WriteAck) -> R {
    R::Put(pb::PutResponse {
        context: ack.context.into(),
        siblings: ack.siblings.into_iter().map(Into::into).collect(),
    })
}

/// The wire form of a delete's acknowledgement.
pub fn delete_result(ack: WriteAck) -> R {
    R::Delete(pb::DeleteResponse {
        context: ack.context.into(),
        siblings: ack.siblings.into_iter().map(Into::into).collect(),
    })
}

/// The wire form of an update's acknowledgement.
pub fn update_result(ack: WriteAck) -> R {
    R::Update(pb::UpdateResponse {
        value: ack.value.as_ref().map(meridian_proto::crdt::value_to_wire),
        context: ack.context.into(),
    })
}

/// A write's acknowledgement back from the wire (a forwarded write's answer).
pub fn write_ack(result: Option<R>) -> NodeResult<WriteAck> {
    let (context, siblings, value) = match result {
        Some(R::Put(p)) => (p.context, p.siblings, None),
        Some(R::Delete(d)) => (d.context, d.siblings, None),
        Some(R::Update(u)) => (u.context, Vec::new(), u.value),
        _ => Default::default(),
    };
    let value = value
        .map(meridian_proto::crdt::value_from_wire)
        .transpose()
        .map_err(|e| NodeError::Internal(format!("a forwarded update's answer: {e}")))?;
    Ok(WriteAck {
        context: context.to_vec(),
        siblings: siblings.into_iter().map(|b| b.to_vec()).collect(),
        value,
    })
}

/// The wire form of a forwarded write's outcome, whichever kind it was.
pub fn write_result(change: &Change, ack: WriteAck) -> R {
    match change {
        Change::Put(_) => put_result(ack),
        Change::Delete => delete_result(ack),
        Change::Update(_) => update_result(ack),
    }
}

pub async fn put(cluster: &Arc<Cluster>, p: pb::PutRequest) -> NodeResult<WriteAck> {
    cluster
        .write(WriteOp {
            consistency: consistency(p.consistency)?,
            keyspace: p.keyspace,
            key: p.key.to_vec(),
            change: Change::Put(p.value.to_vec()),
            context: p.context.to_vec(),
            request_id: p.request_id.to_vec(),
            explicit_acks: p.w,
        })
        .await
}

pub async fn delete(cluster: &Arc<Cluster>, d: pb::DeleteRequest) -> NodeResult<WriteAck> {
    cluster
        .write(WriteOp {
            consistency: consistency(d.consistency)?,
            keyspace: d.keyspace,
            key: d.key.to_vec(),
            change: Change::Delete,
            context: d.context.to_vec(),
            request_id: d.request_id.to_vec(),
            explicit_acks: d.w,
        })
        .await
}

/// A wire update as the cluster takes it (from a client, or forwarded by a peer).
pub fn update_op(u: pb::UpdateRequest) -> NodeResult<WriteOp> {
    let ops = u
        .ops
        .into_iter()
        .map(meridian_proto::crdt::op_from_wire)
        .collect::<Result<Vec<_>, _>>()
        .map_err(NodeError::InvalidArgument)?;
    Ok(WriteOp {
        consistency: consistency(u.consistency)?,
        keyspace: u.keyspace,
        key: u.key.to_vec(),
        change: Change::Update(ops),
        context: u.context.to_vec(),
        request_id: u.request_id.to_vec(),
        explicit_acks: u.w,
    })
}

pub async fn update(cluster: &Arc<Cluster>, u: pb::UpdateRequest) -> NodeResult<WriteAck> {
    cluster.write(update_op(u)?).await
}

pub async fn fetch(cluster: &Arc<Cluster>, f: &pb::FetchRequest) -> NodeResult<pb::FetchResponse> {
    let (value, context) = cluster
        .fetch(&f.keyspace, &f.key, consistency(f.consistency)?, f.r)
        .await?;
    Ok(pb::FetchResponse {
        value: Some(meridian_proto::crdt::value_to_wire(&value)),
        context: context.into(),
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
