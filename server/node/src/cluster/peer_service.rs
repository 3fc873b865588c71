//! The `meridian.v1.Peer` service: what other nodes ask of this one.

use super::Cluster;
use super::coordinator::WriteOp;
use super::membership::now_ms;
use crate::error::NodeError;
use crate::grpc::ops;
use meridian_core::ActorId;
use meridian_proto::v1 as pb;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};

const STREAM_CHUNK: usize = 512;

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
        let req = req.into_inner();
        if req.hint_for.is_empty() {
            for obj in &req.objects {
                self.cluster.merge_local(obj)?;
            }
        } else {
            let bytes: [u8; 16] = req
                .hint_for
                .as_ref()
                .try_into()
                .map_err(|_| Status::invalid_argument("hint_for must be a 16-byte node id"))?;
            let target = ActorId::from_bytes(bytes);
            for obj in &req.objects {
                self.cluster
                    .hints
                    .add(target, &obj.storage_key, &obj.object, now_ms())?;
            }
        }
        Ok(Response::new(pb::ReplicateResponse {}))
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
        let mut objects = Vec::new();
        for skey in req.into_inner().storage_keys {
            let object = self
                .cluster
                .engine
                .storage()
                .get_data(&skey)?
                .unwrap_or_default();
            objects.push(pb::ObjectState {
                storage_key: skey,
                object: object.into(),
            });
        }
        Ok(Response::new(pb::ReadResponse { objects }))
    }

    type StreamPartitionStream = ChunkStream;

    async fn stream_partition(
        &self,
        req: Request<pb::PartitionRequest>,
    ) -> Result<Response<Self::StreamPartitionStream>, Status> {
        let mut partitions = Vec::new();
        for p in req.into_inner().partitions {
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
                    let objects = chunk
                        .into_iter()
                        .map(|(k, v)| pb::ObjectState {
                            storage_key: k.into(),
                            object: v.into(),
                        })
                        .collect();
                    if tx.send(Ok(pb::PartitionChunk { objects })).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
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
                value: Some(p.value.to_vec()),
                context: p.context.to_vec(),
                request_id: p.request_id.to_vec(),
                consistency: ops::consistency(p.consistency)?,
                explicit_acks: p.w,
            },
            Op::Delete(d) => WriteOp {
                keyspace: d.keyspace,
                key: d.key.to_vec(),
                value: None,
                context: d.context.to_vec(),
                request_id: d.request_id.to_vec(),
                consistency: ops::consistency(d.consistency)?,
                explicit_acks: d.w,
            },
            Op::Get(_) => {
                return Err(NodeError::InvalidArgument("reads are never forwarded".into()).into());
            }
        };
        let is_put = write.value.is_some();
        let result = match self.cluster.write_forwarded(write).await {
            Ok(context) if is_put => {
                ops::success(pb::operation_result::Result::Put(pb::PutResponse {
                    context: context.into(),
                }))
            }
            Ok(context) => ops::success(pb::operation_result::Result::Delete(pb::DeleteResponse {
                context: context.into(),
            })),
            Err(e) => ops::failure(&e),
        };
        Ok(Response::new(result))
    }
}
