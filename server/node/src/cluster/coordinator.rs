//! The request path of a cluster node: any node takes a request; reads are coordinated where
//! they land, writes by a replica of the key (a non-replica forwards them, since only a
//! replica mints versions). What happens to a request is decided by the core's machines
//! (`meridian_core::coordinate`); this file picks the replicas, mints, and hands the machine
//! to the executor in `drive.rs`.

use super::Cluster;
use super::drive::Payload;
use crate::engine::{ReadReply, WriteAck, WriteRequest};
use crate::error::{NodeError, NodeResult};
use meridian_core::coordinate::{
    ReadCoordinator, RelayCoordinator, Timing, WriteCoordinator, WriteRoute, route_write,
};
use meridian_core::partition::partition_of;
use meridian_core::quorum::DcReplicas;
use meridian_core::{ActorId, Consistency, StoredObject};
use meridian_proto::v1 as pb;
use std::sync::Arc;
use tokio::sync::oneshot;

pub use meridian_core::keeper::Change;

/// A client write, owned so it can cross tasks and the network.
#[derive(Debug, Clone)]
pub struct WriteOp {
    pub keyspace: String,
    pub key: Vec<u8>,
    pub change: Change,
    pub context: Vec<u8>,
    pub request_id: Vec<u8>,
    pub consistency: Option<Consistency>,
    pub explicit_acks: u32,
}

impl WriteOp {
    fn as_request(&self) -> WriteRequest<'_> {
        WriteRequest {
            keyspace: &self.keyspace,
            key: &self.key,
            change: &self.change,
            context: &self.context,
            request_id: &self.request_id,
        }
    }

    fn to_operation(&self) -> pb::Operation {
        let consistency = self
            .consistency
            .map_or(0, |c| pb::Consistency::from(c) as i32);
        let op = match &self.change {
            Change::Put(v) => pb::operation::Op::Put(pb::PutRequest {
                keyspace: self.keyspace.clone(),
                key: self.key.clone().into(),
                value: v.clone().into(),
                context: self.context.clone().into(),
                request_id: self.request_id.clone().into(),
                consistency,
                w: self.explicit_acks,
            }),
            Change::Delete => pb::operation::Op::Delete(pb::DeleteRequest {
                keyspace: self.keyspace.clone(),
                key: self.key.clone().into(),
                context: self.context.clone().into(),
                request_id: self.request_id.clone().into(),
                consistency,
                w: self.explicit_acks,
            }),
            Change::Update(ops) => pb::operation::Op::Update(pb::UpdateRequest {
                keyspace: self.keyspace.clone(),
                key: self.key.clone().into(),
                ops: ops.iter().map(meridian_proto::crdt::op_to_wire).collect(),
                context: self.context.clone().into(),
                request_id: self.request_id.clone().into(),
                consistency,
                w: self.explicit_acks,
            }),
        };
        pb::Operation { op: Some(op) }
    }
}

/// Refuses requests before this node holds a layout: it cannot know the replicas yet.
fn require_layout(topo: &super::topology::Topology) -> NodeResult<()> {
    if topo.epoch() == 0 {
        return Err(NodeError::Unavailable(
            "this node has no cluster layout yet (it is still joining): retry shortly or use \
             another node"
                .into(),
        ));
    }
    Ok(())
}

impl Cluster {
    /// A client write arriving at this node.
    pub async fn write(self: &Arc<Self>, op: WriteOp) -> NodeResult<WriteAck> {
        let ks = self.engine.validate_write(&op.as_request())?;
        let topo = self.topology();
        require_layout(&topo)?;
        let partition = partition_of(ks.id(), &op.key);
        let dcs = topo.replicas(&ks, partition);
        let level = op.consistency.unwrap_or(ks.write_consistency);
        let target = match route_write(&self.me, &self.my_dc, &dcs, level)? {
            WriteRoute::Coordinate => {
                let sets = topo.write_sets(&ks, partition);
                return self.coordinate_write(op, ks, dcs, sets).await;
            }
            WriteRoute::Forward(target) => target,
        };
        self.metrics.forwarded.inc();
        self.forward(target, op).await
    }

    async fn forward(&self, target: ActorId, op: WriteOp) -> NodeResult<WriteAck> {
        let topo = self.topology();
        let url = topo
            .grpc_of(&target)
            .ok_or_else(|| NodeError::Unavailable(format!("no address known for node {target}")))?;
        let mut client = self.peers.client(target, url)?;
        let result = client
            .forward(pb::ForwardRequest {
                operation: Some(op.to_operation()),
            })
            .await
            .map_err(|s| {
                self.metrics.peer_errors.inc();
                super::peers::peer_error(&target, "forwarded write", s)
            })?
            .into_inner();
        let status = result.status.unwrap_or_default();
        if status.code != 0 {
            return Err(NodeError::Remote {
                code: tonic::Code::from_i32(status.code),
                message: status.message,
            });
        }
        crate::grpc::ops::write_ack(result.result)
    }

    /// A write forwarded to this node by a non-replica: coordinate it here, never forward
    /// again (a second hop could loop while two nodes disagree about the epoch).
    pub async fn write_forwarded(self: &Arc<Self>, op: WriteOp) -> NodeResult<WriteAck> {
        let ks = self.engine.validate_write(&op.as_request())?;
        let topo = self.topology();
        require_layout(&topo)?;
        let partition = partition_of(ks.id(), &op.key);
        let dcs = topo.replicas(&ks, partition);
        let sets = topo.write_sets(&ks, partition);
        self.coordinate_write(op, ks, dcs, sets).await
    }

    async fn coordinate_write(
        self: &Arc<Self>,
        op: WriteOp,
        ks: Arc<meridian_core::KeyspaceSpec>,
        dcs: Vec<DcReplicas>,
        sets: Vec<Vec<DcReplicas>>,
    ) -> NodeResult<WriteAck> {
        let level = op.consistency.unwrap_or(ks.write_consistency);
        // Shorter than a forwarding node's call to us, so it hears our verdict.
        let timing = Timing::with_deadline(self.peers.timeout().as_millis() as u64 * 3 / 4);
        // Refuses before minting when the live replicas cannot meet the level.
        let mut machine = WriteCoordinator::new(
            self.me,
            &self.my_dc,
            level,
            op.explicit_acks,
            dcs,
            sets,
            self.strict,
            timing,
        )?;
        let minted = if self.engine.syncs(&op.keyspace) {
            let engine = self.engine.clone();
            let op2 = op.clone();
            tokio::task::spawn_blocking(move || engine.mint(&op2.as_request()))
                .await
                .map_err(|e| NodeError::Internal(format!("write task failed: {e}")))??
        } else {
            self.engine.mint(&op.as_request())?
        };
        if minted.object.is_empty() {
            // A retry of a write to a key that holds nothing: there is nothing to send.
            return Ok(minted.ack);
        }
        let payload = Payload {
            state: pb::ObjectState {
                storage_key: minted.storage_key.clone().into(),
                object: minted.object.clone().into(),
            },
            keyspace: op.keyspace.clone(),
            strict: self.strict,
        };
        let effects = machine.start();
        let (tx, rx) = oneshot::channel();
        self.drive(machine, effects, payload, tx);
        rx.await
            .map_err(|_| NodeError::Internal("write ended without an answer".into()))??;
        Ok(minted.ack)
    }

    pub(super) async fn replicate_to(
        &self,
        node: ActorId,
        state: &pb::ObjectState,
        hint_for: Option<ActorId>,
    ) -> NodeResult<()> {
        let topo = self.topology();
        let url = topo
            .grpc_of(&node)
            .ok_or_else(|| NodeError::Unavailable(format!("no address known for node {node}")))?;
        let op = pb::peer_request::Op::Replicate(pb::ReplicateRequest {
            objects: vec![state.clone()],
            hint_for: hint_for
                .map(|h| h.as_bytes().to_vec().into())
                .unwrap_or_default(),
        });
        self.peers
            .call(node, url, op)
            .await
            .inspect_err(|_| self.metrics.peer_errors.inc())?;
        Ok(())
    }

    pub(super) async fn relay_to(
        &self,
        via: ActorId,
        payload: &Payload,
        wait_for: usize,
    ) -> NodeResult<Vec<(ActorId, bool)>> {
        let url = self.address_of(&via)?;
        let mut client = self.peers.client(via, &url)?;
        let r = client
            .relay(pb::RelayRequest {
                state: Some(payload.state.clone()),
                keyspace: payload.keyspace.clone(),
                wait_for: wait_for as u32,
                strict: payload.strict,
            })
            .await
            .map_err(|s| {
                self.metrics.peer_errors.inc();
                super::peers::peer_error(&via, "relay", s)
            })?
            .into_inner();
        let id = |b: &bytes::Bytes| {
            <[u8; 16]>::try_from(b.as_ref())
                .ok()
                .map(ActorId::from_bytes)
        };
        let hinted: Vec<ActorId> = r.hinted_nodes.iter().filter_map(id).collect();
        Ok(r.acked_nodes
            .iter()
            .filter_map(id)
            .map(|n| (n, hinted.contains(&n)))
            .collect())
    }

    pub(super) fn address_of(&self, node: &ActorId) -> NodeResult<String> {
        self.topology()
            .grpc_of(node)
            .map(str::to_string)
            .ok_or_else(|| NodeError::Unavailable(format!("no address known for node {node}")))
    }

    /// A remote DC's share of a write, arriving at this node: store it if this node is a
    /// replica, fan it out to the DC's other replicas, and answer once `wait_for` hold it.
    pub async fn relay(self: &Arc<Self>, req: pb::RelayRequest) -> NodeResult<pb::RelayResponse> {
        let state = req
            .state
            .ok_or_else(|| NodeError::InvalidArgument("relay without state".into()))?;
        let ks = self.engine.keyspaces().get(&req.keyspace)?;
        let Some((acked, dc)) = self
            .relay_here(state, ks, req.wait_for as usize, req.strict)
            .await?
        else {
            return Ok(pb::RelayResponse::default());
        };
        let hinted = acked.iter().filter(|(_, h)| *h).count();
        Ok(pb::RelayResponse {
            acks: acked.len() as u32,
            hinted_acks: hinted as u32,
            reachable: format!(
                "{} {}/{} acknowledged",
                dc.dc,
                acked.len(),
                dc.replicas.len()
            ),
            acked_nodes: acked
                .iter()
                .map(|(n, _)| n.as_bytes().to_vec().into())
                .collect(),
            hinted_nodes: acked
                .iter()
                .filter(|(_, h)| *h)
                .map(|(n, _)| n.as_bytes().to_vec().into())
                .collect(),
        })
    }

    /// A write arriving from another DC (a relay, or a replication stream's entry): stored
    /// here if this node is a replica, fanned out to the DC's other replicas, answered once
    /// `wait_for` of each active version's replicas here hold it (or keep a hint for it).
    /// `None` when the key has no replicas in this DC.
    pub(super) async fn relay_here(
        self: &Arc<Self>,
        state: pb::ObjectState,
        ks: Arc<meridian_core::KeyspaceSpec>,
        wait_for: usize,
        strict: bool,
    ) -> NodeResult<Option<(Vec<(ActorId, bool)>, DcReplicas)>> {
        let Some((partition, _, _)) =
            meridian_core::partition::parse_storage_key(&state.storage_key)
        else {
            return Err(NodeError::InvalidArgument(
                "relay with a malformed storage key".into(),
            ));
        };
        let topo = self.topology();
        require_layout(&topo)?;
        let dcs = topo.replicas(&ks, partition);
        let Some(dc) = dcs.iter().find(|d| d.dc == self.my_dc).cloned() else {
            return Ok(None);
        };
        // Each active version's replicas in this DC: the relay answers once `wait_for` of
        // each hold the write (or all it sent to have answered).
        let sets: Vec<Vec<ActorId>> = topo
            .write_sets(&ks, partition)
            .into_iter()
            .filter_map(|set| {
                set.into_iter()
                    .find(|d| d.dc == self.my_dc)
                    .map(|d| d.replicas.iter().map(|s| s.node).collect())
            })
            .collect();
        let stored_here = dc.contains(&self.me);
        if stored_here {
            self.merge_local(&state)?;
        }
        // Answer with what we have well before the coordinator's call to us times out.
        let timing = Timing::with_deadline(self.peers.timeout().as_millis() as u64 / 2);
        let mut machine =
            RelayCoordinator::new(self.me, dc.clone(), sets, wait_for, strict, timing);
        let effects = machine.start(stored_here);
        let payload = Payload {
            state,
            keyspace: ks.name.clone(),
            strict,
        };
        let (tx, rx) = oneshot::channel();
        self.drive(machine, effects, payload, tx);
        let acked = rx
            .await
            .map_err(|_| NodeError::Internal("relay ended without an answer".into()))?;
        Ok(Some((acked, dc)))
    }

    pub(super) fn merge_local(&self, state: &pb::ObjectState) -> NodeResult<bool> {
        if state.object.is_empty() {
            return Ok(false);
        }
        self.engine.merge_remote(&state.storage_key, &state.object)
    }

    /// A client read arriving at this node: ask the replicas the level needs (and the rest of
    /// the scope, for repair), merge, answer at quorum, then repair stale replicas in the
    /// background, including those that answer after the reply.
    pub async fn read(
        self: &Arc<Self>,
        keyspace: &str,
        key: &[u8],
        consistency: Option<Consistency>,
        explicit: u32,
    ) -> NodeResult<ReadReply> {
        let (ks, merged) = self
            .read_object(keyspace, key, consistency, explicit)
            .await?;
        if ks.kind.crdt().is_some() {
            return Err(meridian_core::CoreError::WrongCrdtOp {
                op: "get".into(),
                kind: format!("{} keyspace (read it with fetch)", ks.kind),
            }
            .into());
        }
        Ok(self.engine.reply_for(ks.id(), key, merged.as_ref()))
    }

    /// A CRDT key's value and context, read at the level asked.
    pub async fn fetch(
        self: &Arc<Self>,
        keyspace: &str,
        key: &[u8],
        consistency: Option<Consistency>,
        explicit: u32,
    ) -> NodeResult<(meridian_core::crdt::Value, Vec<u8>)> {
        let ks = self.engine.keyspaces().get(keyspace)?;
        // Refuses a fetch of an opaque keyspace before any replica is asked.
        self.engine.fetch_reply(&ks, key, None)?;
        let (ks, merged) = self
            .read_object(keyspace, key, consistency, explicit)
            .await?;
        self.engine.fetch_reply(&ks, key, merged.as_ref())
    }

    /// Reads a key's object from enough replicas for the level, merged (and repaired).
    async fn read_object(
        self: &Arc<Self>,
        keyspace: &str,
        key: &[u8],
        consistency: Option<Consistency>,
        explicit: u32,
    ) -> NodeResult<(Arc<meridian_core::KeyspaceSpec>, Option<StoredObject>)> {
        let ks = self.engine.keyspaces().get(keyspace)?;
        meridian_core::limits::check_key(key)?;
        let level = consistency.unwrap_or(ks.read_consistency);
        let topo = self.topology();
        require_layout(&topo)?;
        let skey = meridian_core::partition::storage_key(ks.id(), key);
        // Answered by the oldest active version: its owners hold everything they own.
        let dcs = topo.read_replicas(&ks, partition_of(ks.id(), key));
        let full_pass = rand::random::<f64>() < self.read_repair_chance;
        let timing = Timing::with_deadline(self.peers.timeout().as_millis() as u64 * 2);
        let mut machine = ReadCoordinator::new(
            self.me,
            &self.my_dc,
            level,
            explicit,
            &dcs,
            full_pass,
            timing,
        )?;
        // Fast path: this node alone meets the level and no repair pass is due.
        if machine.local_only() {
            return Ok((ks, self.engine.local_object(&skey)?));
        }
        let effects = machine.start();
        let payload = Payload {
            state: pb::ObjectState {
                storage_key: skey.into(),
                object: Default::default(),
            },
            keyspace: keyspace.to_string(),
            strict: self.strict,
        };
        let (tx, rx) = oneshot::channel();
        self.drive(machine, effects, payload, tx);
        let merged: Option<StoredObject> = rx
            .await
            .map_err(|_| NodeError::Internal("read ended without an answer".into()))??;
        Ok((ks, merged))
    }
}
