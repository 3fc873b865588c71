//! The `meridian.v1.Peer` service: what other nodes ask of this one.

use super::Cluster;
use super::coordinator::{Change, WriteOp};
use super::membership::now_ms;
use crate::error::NodeError;
use crate::grpc::ops;
use meridian_core::ActorId;
use meridian_proto::v1 as pb;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};

const STREAM_CHUNK: usize = 512;
use meridian_core::limits::{MAX_BATCH_BYTES, batches_by_bytes};
/// Answers a pipe may have queued before the sender waits.
const PIPE_DEPTH: usize = 1024;

type PipeStream = Pin<Box<dyn futures::Stream<Item = Result<pb::PeerResponse, Status>> + Send>>;

/// Merges replicated objects, or keeps them as hints when this node stands in for another.
/// Stores replicated objects (or keeps them as hints). An object that cannot be merged is
/// reported back, not allowed to fail the others; a storage failure fails the call.
fn apply_replicate(
    cluster: &Cluster,
    req: &pb::ReplicateRequest,
) -> Result<Vec<pb::RejectedObject>, NodeError> {
    let mut rejected = Vec::new();
    if req.hint_for.is_empty() {
        for obj in &req.objects {
            match cluster.merge_local(obj) {
                Ok(_) => {}
                Err(e) if e.is_bad_object() => rejected.push(pb::RejectedObject {
                    storage_key: obj.storage_key.clone(),
                    reason: e.to_string(),
                }),
                Err(e) => return Err(e),
            }
        }
        return Ok(rejected);
    }
    let bytes: [u8; 16] = req
        .hint_for
        .as_ref()
        .try_into()
        .map_err(|_| NodeError::InvalidArgument("hint_for must be a 16-byte node id".into()))?;
    let target = ActorId::from_bytes(bytes);
    for obj in &req.objects {
        cluster.hints.add(
            target,
            &obj.storage_key,
            &obj.object,
            now_ms(),
            cluster.engine.syncs_storage_key(&obj.storage_key),
        )?;
    }
    Ok(rejected)
}

/// A pipe call carries one object: one that cannot be merged fails the call.
fn replicate_one(cluster: &Cluster, req: &pb::ReplicateRequest) -> Result<(), NodeError> {
    match apply_replicate(cluster, req)?.first() {
        Some(r) => Err(NodeError::InvalidArgument(format!(
            "cannot merge the object: {}",
            r.reason
        ))),
        None => Ok(()),
    }
}

/// This replica's stored objects for the given storage keys (empty bytes: nothing stored).
fn read_states(cluster: &Cluster, req: pb::ReadRequest) -> Result<pb::ReadResponse, NodeError> {
    let mut objects = Vec::with_capacity(req.storage_keys.len());
    for skey in req.storage_keys {
        let object = cluster
            .engine
            .storage()
            .get_data(&skey)?
            .unwrap_or_default();
        objects.push(pb::ObjectState {
            storage_key: skey,
            object: object.into(),
        });
    }
    Ok(pb::ReadResponse { objects })
}

pub struct PeerService {
    pub cluster: Arc<Cluster>,
}

type ChunkStream = Pin<Box<dyn futures::Stream<Item = Result<pb::PartitionChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    async fn replicate(
        &self,
        req: Request<pb::ReplicateRequest>,
    ) -> Result<Response<pb::ReplicateResponse>, Status> {
        let rejected = apply_replicate(&self.cluster, &req.into_inner())?;
        Ok(Response::new(pb::ReplicateResponse { rejected }))
    }

    type PipeStream = PipeStream;

    async fn pipe(
        &self,
        req: Request<tonic::Streaming<pb::PeerRequest>>,
    ) -> Result<Response<Self::PipeStream>, Status> {
        let mut inbound = req.into_inner();
        let cluster = self.cluster.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(PIPE_DEPTH);
        tokio::spawn(async move {
            // Both operations are short local storage calls: answered in order, inline.
            while let Ok(Some(r)) = inbound.message().await {
                let (status, read) = match r.op {
                    Some(pb::peer_request::Op::Replicate(rep)) => {
                        (replicate_one(&cluster, &rep).err(), None)
                    }
                    Some(pb::peer_request::Op::Read(rd)) => match read_states(&cluster, rd) {
                        Ok(resp) => (None, Some(resp)),
                        Err(e) => (Some(e), None),
                    },
                    None => (
                        Some(NodeError::InvalidArgument("empty peer request".into())),
                        None,
                    ),
                };
                let resp = pb::PeerResponse {
                    id: r.id,
                    status: Some(status.as_ref().map_or_else(ops::ok, pb::Status::from)),
                    read,
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn relay(
        &self,
        req: Request<pb::RelayRequest>,
    ) -> Result<Response<pb::RelayResponse>, Status> {
        Ok(Response::new(self.cluster.relay(req.into_inner()).await?))
    }

    async fn read(
        &self,
        req: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadResponse>, Status> {
        Ok(Response::new(read_states(&self.cluster, req.into_inner())?))
    }

    type StreamPartitionStream = ChunkStream;

    async fn stream_partition(
        &self,
        req: Request<pb::PartitionRequest>,
    ) -> Result<Response<Self::StreamPartitionStream>, Status> {
        let req = req.into_inner();
        let keyspaces = req.keyspace_ids;
        let mut partitions = Vec::new();
        for p in req.partitions {
            let p = u16::try_from(p)
                .ok()
                .filter(|p| u32::from(*p) < meridian_core::partition::PARTITIONS)
                .ok_or_else(|| Status::invalid_argument(format!("partition {p} out of range")))?;
            partitions.push(p);
        }
        let engine = self.cluster.engine.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            for partition in partitions {
                let prefix = partition.to_be_bytes();
                let mut after: Option<Vec<u8>> = None;
                loop {
                    let chunk =
                        match engine
                            .storage()
                            .data_range(&prefix, after.as_deref(), STREAM_CHUNK)
                        {
                            Ok(c) => c,
                            Err(e) => {
                                let _ = tx.send(Err(Status::from(e))).await;
                                return;
                            }
                        };
                    let Some((last, _)) = chunk.last() else {
                        break;
                    };
                    after = Some(last.clone());
                    let objects: Vec<pb::ObjectState> = chunk
                        .into_iter()
                        .filter(|(k, _)| {
                            keyspaces.is_empty()
                                || meridian_core::partition::parse_storage_key(k)
                                    .is_some_and(|(_, ks, _)| keyspaces.contains(&ks))
                        })
                        .map(|(k, v)| pb::ObjectState {
                            storage_key: k.into(),
                            object: v.into(),
                        })
                        .collect();
                    // Bounded by bytes, not count: a run of large values never makes a
                    // message the peer refuses.
                    let messages = batches_by_bytes(
                        objects,
                        |o: &pb::ObjectState| o.storage_key.len() + o.object.len(),
                        MAX_BATCH_BYTES,
                    );
                    for objects in messages {
                        if tx.send(Ok(pb::PartitionChunk { objects })).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn exchange_layout(
        &self,
        req: Request<pb::LayoutState>,
    ) -> Result<Response<pb::LayoutState>, Status> {
        let theirs = meridian_core::layout::LayoutHistory::decode(&req.into_inner().history)
            .map_err(|e| Status::invalid_argument(format!("unreadable layout history: {e}")))?;
        let layout = &self.cluster.layout;
        layout.update(|h| h.merge(&theirs))?;
        Ok(Response::new(pb::LayoutState {
            history: layout.get().encode().into(),
        }))
    }

    async fn anti_entropy(
        &self,
        req: Request<pb::AntiEntropyMessage>,
    ) -> Result<Response<pb::AntiEntropyMessage>, Status> {
        let body = super::anti_entropy::answer(&self.cluster, &req.into_inner().body).await?;
        Ok(Response::new(pb::AntiEntropyMessage { body: body.into() }))
    }

    async fn replication_stream(
        &self,
        req: Request<pb::StreamMessage>,
    ) -> Result<Response<pb::StreamMessage>, Status> {
        let body = self.cluster.receive_stream(&req.into_inner().body).await?;
        Ok(Response::new(pb::StreamMessage { body: body.into() }))
    }

    async fn tombstones(
        &self,
        req: Request<pb::TombstoneMessage>,
    ) -> Result<Response<pb::TombstoneMessage>, Status> {
        let body = super::reaper::answer(&self.cluster, &req.into_inner().body).await?;
        Ok(Response::new(pb::TombstoneMessage { body: body.into() }))
    }

    async fn forward(
        &self,
        req: Request<pb::ForwardRequest>,
    ) -> Result<Response<pb::OperationResult>, Status> {
        use pb::operation::Op;
        let op = req
            .into_inner()
            .operation
            .and_then(|o| o.op)
            .ok_or_else(|| Status::invalid_argument("forwarded operation is empty"))?;
        let write = match op {
            Op::Put(p) => WriteOp {
                keyspace: p.keyspace,
                key: p.key.to_vec(),
                change: Change::Put(p.value.to_vec()),
                context: p.context.to_vec(),
                request_id: p.request_id.to_vec(),
                consistency: ops::consistency(p.consistency)?,
                explicit_acks: p.w,
            },
            Op::Delete(d) => WriteOp {
                keyspace: d.keyspace,
                key: d.key.to_vec(),
                change: Change::Delete,
                context: d.context.to_vec(),
                request_id: d.request_id.to_vec(),
                consistency: ops::consistency(d.consistency)?,
                explicit_acks: d.w,
            },
            Op::Update(u) => ops::update_op(u)?,
            Op::Get(_) | Op::Fetch(_) => {
                return Err(NodeError::InvalidArgument("reads are never forwarded".into()).into());
            }
        };
        let change = write.change.clone();
        let result = match self.cluster.write_forwarded(write).await {
            Ok(ack) => ops::success(ops::write_result(&change, ack)),
            Err(e) => ops::failure(&e),
        };
        Ok(Response::new(result))
    }
}
