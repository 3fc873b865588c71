//! The request path of a cluster node: any node takes a request; reads are coordinated where
//! they land, writes by a replica of the key (a non-replica forwards them, since only a
//! replica mints versions). The quorum decisions come from `meridian_core::quorum`; this file
//! sends the messages, stores the hints and waits.

use super::Cluster;
use crate::cluster::membership::now_ms;
use crate::engine::{ReadReply, WriteAck, WriteRequest};
use crate::error::{NodeError, NodeResult};
use meridian_core::consistency::{ReplicaCounts, Required, required};
use meridian_core::partition::partition_of;
use meridian_core::quorum::{
    DcReplicas, Progress, ReadQuorum, Step, plan_dc, plan_read, plan_write, split_read,
};
use meridian_core::transition::VersionedWrite;
use meridian_core::{ActorId, Consistency, StoredObject};
use meridian_proto::v1 as pb;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A client write, owned so it can cross tasks and the network.
#[derive(Debug, Clone)]
pub struct WriteOp {
    pub keyspace: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
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
            value: self.value.as_deref(),
            context: &self.context,
            request_id: &self.request_id,
        }
    }

    fn to_operation(&self) -> pb::Operation {
        let consistency = self
            .consistency
            .map_or(0, |c| pb::Consistency::from(c) as i32);
        let op = match &self.value {
            Some(v) => pb::operation::Op::Put(pb::PutRequest {
                keyspace: self.keyspace.clone(),
                key: self.key.clone().into(),
                value: v.clone().into(),
                context: self.context.clone().into(),
                request_id: self.request_id.clone().into(),
                consistency,
                w: self.explicit_acks,
            }),
            None => pb::operation::Op::Delete(pb::DeleteRequest {
                keyspace: self.keyspace.clone(),
                key: self.key.clone().into(),
                context: self.context.clone().into(),
                request_id: self.request_id.clone().into(),
                consistency,
                w: self.explicit_acks,
            }),
        };
        pb::Operation { op: Some(op) }
    }
}

fn level_name(level: Consistency, explicit: u32) -> String {
    if explicit > 0 {
        format!("explicit count {explicit}")
    } else {
        level.name().to_string()
    }
}

fn required_for(
    level: Consistency,
    explicit: u32,
    my_dc: &str,
    dcs: &[DcReplicas],
) -> NodeResult<Required> {
    let counts = ReplicaCounts {
        per_dc: dcs
            .iter()
            .map(|d| (d.dc.clone(), d.replicas.len()))
            .collect(),
        local_dc: my_dc.to_string(),
    };
    let explicit = (explicit > 0).then_some(explicit as usize);
    Ok(required(level, explicit, &counts)?)
}

/// What one write step reports back, per replica: `Some(through_stand_in)` when it holds the
/// write, `None` when the attempt failed. Hints kept for a replica planned as down are not
/// reported: they never counted as possible.
type StepReport = Vec<(ActorId, Option<bool>)>;

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
        let local = dcs.iter().find(|d| d.dc == self.my_dc);
        if local.is_some_and(|d| d.contains(&self.me)) {
            let sets = topo.write_sets(&ks, partition);
            return self.coordinate_write(op, ks, dcs, sets).await;
        }
        // Not a replica here: hand the write to one that is, in this DC if possible.
        let level = op.consistency.unwrap_or(ks.write_consistency);
        let local_target = local.and_then(|d| d.alive().next());
        let target = match local_target {
            Some(t) => t,
            None if matches!(level, Consistency::LocalOne | Consistency::LocalQuorum) => {
                return Err(NodeError::Unavailable(format!(
                    "consistency {level} needs a replica in datacenter {}, and none is reachable",
                    self.my_dc
                )));
            }
            None => dcs
                .iter()
                .flat_map(|d| d.alive().collect::<Vec<_>>())
                .next()
                .ok_or_else(|| {
                    NodeError::Unavailable(format!(
                        "no replica of the key is reachable for {level}"
                    ))
                })?,
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
        Ok(crate::grpc::ops::write_ack(result.result))
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
        // The union decides what remote DCs are asked to wait for; each version's own set
        // decides what counts.
        let required = required_for(level, op.explicit_acks, &self.my_dc, &dcs)?;
        let name = level_name(level, op.explicit_acks);
        let mut per_version = Vec::with_capacity(sets.len());
        for set in sets {
            let r = required_for(level, op.explicit_acks, &self.my_dc, &set)?;
            per_version.push((set, r));
        }
        let mut quorum = VersionedWrite::new(&name, per_version, &self.my_dc, self.strict);
        // Refuse before minting when the live replicas cannot meet the level.
        if let Progress::Failed(e) = quorum.progress() {
            return Err(e.into());
        }
        let syncs = self.engine.syncs(&op.keyspace);
        let minted = if syncs {
            let engine = self.engine.clone();
            let op2 = op.clone();
            tokio::task::spawn_blocking(move || engine.mint(&op2.as_request()))
                .await
                .map_err(|e| NodeError::Internal(format!("write task failed: {e}")))??
        } else {
            self.engine.mint(&op.as_request())?
        };
        let mine = dcs
            .iter()
            .any(|d| d.dc == self.my_dc && d.contains(&self.me));
        let mut progress = if mine {
            quorum.ack(&self.me, false)
        } else {
            quorum.progress()
        };
        let only_replica = dcs
            .iter()
            .all(|d| d.replicas.iter().all(|s| s.node == self.me));
        if minted.object.is_empty() || only_replica {
            return Ok(minted.ack);
        }
        let state = pb::ObjectState {
            storage_key: minted.storage_key.clone().into(),
            object: minted.object.clone().into(),
        };
        let steps = plan_write(&self.me, &self.my_dc, &dcs, &required, self.strict);
        let (tx, mut rx) = mpsc::unbounded_channel::<StepReport>();
        for step in steps {
            let me = self.clone();
            let tx = tx.clone();
            let state = state.clone();
            let dcs = dcs.clone();
            let keyspace = op.keyspace.clone();
            tokio::spawn(async move {
                let report = me.run_step(step, state, &dcs, &keyspace, me.strict).await;
                let _ = tx.send(report);
            });
        }
        drop(tx);
        // Shorter than a forwarding node's call to us, so it hears our verdict.
        let deadline = tokio::time::Instant::now() + self.peers.timeout() * 3 / 4;
        loop {
            match progress {
                Progress::Done => return Ok(minted.ack),
                Progress::Failed(e) => return Err(e.into()),
                Progress::Waiting => {}
            }
            let report = tokio::time::timeout_at(deadline, rx.recv()).await;
            progress = match report {
                Ok(Some(outcomes)) => {
                    for (node, outcome) in outcomes {
                        match outcome {
                            Some(hinted) => quorum.ack(&node, hinted),
                            None => quorum.fail(&node),
                        };
                    }
                    quorum.progress()
                }
                Ok(None) | Err(_) => return Err(quorum.timed_out().into()),
            };
        }
    }

    /// Carries out one step of a write and says how it went. A replica that cannot be
    /// reached gets a stand-in (or a hint kept here), so the write still reaches it later.
    async fn run_step(
        self: &Arc<Self>,
        step: Step,
        state: pb::ObjectState,
        dcs: &[DcReplicas],
        keyspace: &str,
        strict: bool,
    ) -> StepReport {
        match step {
            Step::Replicate { node, dc } => {
                if self.replicate_to(node, &state, None).await.is_ok() {
                    return vec![(node, Some(false))];
                }
                // Timed out or refused: sloppy quorum as if it had been down. Planned
                // stand-ins take the first spares (one per down replica); each live replica
                // gets its own spare after those, so no node stands in twice.
                let spare = dcs.iter().find(|d| d.dc == dc).and_then(|d| {
                    let down = d.replicas.iter().filter(|s| !s.alive).count();
                    let rank = d
                        .replicas
                        .iter()
                        .filter(|s| s.alive)
                        .position(|s| s.node == node)?;
                    d.spares
                        .iter()
                        .filter(|s| **s != self.me)
                        .nth(down + rank)
                        .copied()
                });
                let spare = spare.filter(|_| !strict);
                if let Some(spare) = spare
                    && self.replicate_to(spare, &state, Some(node)).await.is_ok()
                {
                    return vec![(node, Some(true))];
                }
                self.keep_hint(node, &state);
                vec![(node, None)]
            }
            Step::StandIn { target, spare, .. } => {
                if self.replicate_to(spare, &state, Some(target)).await.is_ok() {
                    return vec![(target, Some(true))];
                }
                self.keep_hint(target, &state);
                vec![(target, None)]
            }
            Step::KeepHint { target, .. } => {
                // Planned for a down replica: never counted as a possible acknowledgement.
                self.keep_hint(target, &state);
                Vec::new()
            }
            Step::Relay { dc, via, wait_for } => {
                let replicas: Vec<ActorId> = dcs
                    .iter()
                    .find(|d| d.dc == dc)
                    .map(|d| d.replicas.iter().map(|s| s.node).collect())
                    .unwrap_or_default();
                match self.relay_to(via, &state, keyspace, wait_for).await {
                    Ok(acked) => {
                        if acked.is_empty() {
                            // Nobody there has stored it yet (a spare relays, or the
                            // replicas are slow): keep hints until it reaches them, so the
                            // write cannot vanish with the relay.
                            for r in &replicas {
                                self.keep_hint(*r, &state);
                            }
                        }
                        let mut out: StepReport = acked
                            .iter()
                            .filter(|(n, _)| replicas.contains(n))
                            .map(|(n, hinted)| (*n, Some(*hinted)))
                            .collect();
                        if wait_for > 0 {
                            // What the relay did not report by its deadline cannot count.
                            out.extend(
                                replicas
                                    .iter()
                                    .filter(|r| !acked.iter().any(|(n, _)| n == *r))
                                    .map(|r| (*r, None)),
                            );
                        }
                        out
                    }
                    Err(_) => {
                        for r in &replicas {
                            self.keep_hint(*r, &state);
                        }
                        replicas.iter().map(|r| (*r, None)).collect()
                    }
                }
            }
        }
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

    async fn relay_to(
        &self,
        via: ActorId,
        state: &pb::ObjectState,
        keyspace: &str,
        wait_for: usize,
    ) -> NodeResult<Vec<(ActorId, bool)>> {
        let topo = self.topology();
        let url = topo
            .grpc_of(&via)
            .ok_or_else(|| NodeError::Unavailable(format!("no address known for node {via}")))?;
        let mut client = self.peers.client(via, url)?;
        let r = client
            .relay(pb::RelayRequest {
                state: Some(state.clone()),
                keyspace: keyspace.to_string(),
                wait_for: wait_for as u32,
                strict: self.strict,
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

    fn keep_hint(&self, target: ActorId, state: &pb::ObjectState) {
        if let Err(e) = self.hints.add(
            target,
            &state.storage_key,
            &state.object,
            now_ms(),
            self.engine.syncs_storage_key(&state.storage_key),
        ) {
            tracing::error!(target_node = %target, error = %e, "cannot store hint");
        }
    }

    /// A remote DC's share of a write, arriving at this node: store it if this node is a
    /// replica, fan it out to the DC's other replicas, and answer once `wait_for` hold it.
    pub async fn relay(self: &Arc<Self>, req: pb::RelayRequest) -> NodeResult<pb::RelayResponse> {
        let state = req
            .state
            .ok_or_else(|| NodeError::InvalidArgument("relay without state".into()))?;
        let ks = self.engine.keyspaces().get(&req.keyspace)?;
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
            return Ok(pb::RelayResponse::default());
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
        let mut acked: Vec<(ActorId, bool)> = Vec::new();
        if dc.contains(&self.me) {
            self.merge_local(&state)?;
            acked.push((self.me, false));
        }
        let strict = req.strict;
        let steps = plan_dc(&self.me, &dc, strict);
        let total = steps.len();
        let (tx, mut rx) = mpsc::unbounded_channel::<StepReport>();
        for step in steps {
            let me = self.clone();
            let tx = tx.clone();
            let state = state.clone();
            let dcs = vec![dc.clone()];
            let keyspace = req.keyspace.clone();
            tokio::spawn(async move {
                let report = me.run_step(step, state, &dcs, &keyspace, strict).await;
                let _ = tx.send(report);
            });
        }
        drop(tx);
        let wait_for = req.wait_for as usize;
        let enough = |acked: &[(ActorId, bool)]| {
            sets.iter().all(|set| {
                let n = acked.iter().filter(|(a, _)| set.contains(a)).count();
                n >= wait_for.min(set.len())
            })
        };
        // Answer with what we have well before the coordinator's call to us times out.
        let deadline = tokio::time::Instant::now() + self.peers.timeout() / 2;
        let mut done = 0;
        while wait_for > 0 && !enough(&acked) && done < total {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(report)) => {
                    acked.extend(
                        report
                            .into_iter()
                            .filter_map(|(n, outcome)| outcome.map(|hinted| (n, hinted))),
                    );
                    done += 1;
                }
                _ => break,
            }
        }
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
        let ks = self.engine.keyspaces().get(keyspace)?;
        meridian_core::limits::check_key(key)?;
        let level = consistency.unwrap_or(ks.read_consistency);
        let topo = self.topology();
        require_layout(&topo)?;
        let skey = meridian_core::partition::storage_key(ks.id(), key);
        // Answered by the oldest active version: its owners hold everything they own.
        let dcs = topo.read_replicas(&ks, partition_of(ks.id(), key));
        let required = required_for(level, explicit, &self.my_dc, &dcs)?;
        let name = level_name(level, explicit);
        let mut quorum = ReadQuorum::new(&name, required.clone(), &self.my_dc, &dcs);
        if let Progress::Failed(e) = quorum.progress() {
            return Err(e.into());
        }
        let scope = plan_read(&self.my_dc, &dcs, &required);
        let (first, mut rest) = split_read(&self.me, &self.my_dc, scope, &required);
        // Fast path: this node alone meets the level and no repair pass is due.
        let full_pass = !rest.is_empty() && rand::random::<f64>() < self.read_repair_chance;
        if first.len() == 1 && first[0].0 == self.me && !full_pass {
            let obj = self.engine.local_object(&skey)?;
            return Ok(self.engine.reply_for(ks.id(), key, obj.as_ref()));
        }
        let mut asked = first;
        if full_pass {
            asked.append(&mut rest);
        }
        let (tx, mut rx) =
            mpsc::unbounded_channel::<(ActorId, String, NodeResult<Option<StoredObject>>)>();
        let spawn_read = {
            let me = self.clone();
            let skey = skey.clone();
            move |node: ActorId, dc: String, tx: mpsc::UnboundedSender<_>| {
                let me = me.clone();
                let skey = skey.clone();
                tokio::spawn(async move {
                    let r = me.read_from(node, &skey).await;
                    let _ = tx.send((node, dc, r));
                });
            }
        };
        let mut pending = asked.len();
        for (node, dc) in asked {
            spawn_read(node, dc, tx.clone());
        }
        let (reply_tx, reply_rx) = oneshot::channel::<NodeResult<Option<StoredObject>>>();
        let me = self.clone();
        let timeout = self.peers.timeout() * 2;
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut reply_tx = Some(reply_tx);
            while pending > 0 {
                let next = tokio::time::timeout_at(deadline, rx.recv()).await;
                pending -= 1;
                let progress = match next {
                    Ok(Some((node, dc, Ok(obj)))) => match quorum.answer(node, &dc, obj) {
                        Ok(p) => p,
                        Err(e) => {
                            // One replica's unreadable state must not fail the read.
                            tracing::warn!(node = %node, error = %e, "replica state unreadable");
                            quorum.fail(&dc)
                        }
                    },
                    Ok(Some((_, dc, Err(_)))) => {
                        // Replace the failed replica, from the same DC when possible (EACH_QUORUM
                        // needs that DC's count).
                        if !rest.is_empty() {
                            let i = rest.iter().position(|(_, d)| *d == dc).unwrap_or(0);
                            let (node, next_dc) = rest.remove(i);
                            spawn_read(node, next_dc, tx.clone());
                            pending += 1;
                        }
                        quorum.fail(&dc)
                    }
                    Ok(None) | Err(_) => break,
                };
                match progress {
                    Progress::Done => {
                        if let Some(t) = reply_tx.take() {
                            let _ = t.send(Ok(quorum.merged().cloned()));
                        }
                    }
                    Progress::Failed(e) => {
                        if let Some(t) = reply_tx.take() {
                            let _ = t.send(Err(e.into()));
                        }
                    }
                    Progress::Waiting => {}
                }
            }
            if let Some(t) = reply_tx.take() {
                let _ = t.send(Err(quorum.timed_out().into()));
            }
            me.repair(&skey, &quorum).await;
        });
        let merged = reply_rx
            .await
            .map_err(|_| NodeError::Internal("read task ended without an answer".into()))??;
        Ok(self.engine.reply_for(ks.id(), key, merged.as_ref()))
    }

    async fn read_from(&self, node: ActorId, skey: &[u8]) -> NodeResult<Option<StoredObject>> {
        if node == self.me {
            return self.engine.local_object(skey);
        }
        let topo = self.topology();
        let url = topo
            .grpc_of(&node)
            .ok_or_else(|| NodeError::Unavailable(format!("no address known for node {node}")))?;
        let op = pb::peer_request::Op::Read(pb::ReadRequest {
            storage_keys: vec![skey.to_vec().into()],
        });
        let r = self
            .peers
            .call(node, url, op)
            .await
            .inspect_err(|_| self.metrics.peer_errors.inc())?;
        match r.read.as_ref().and_then(|r| r.objects.first()) {
            Some(o) if !o.object.is_empty() => Ok(Some(StoredObject::decode(&o.object)?)),
            _ => Ok(None),
        }
    }

    /// Read repair: the merged state goes to every replica that answered with less. Repairs
    /// merge at the receiver; they never mint.
    async fn repair(&self, skey: &[u8], quorum: &ReadQuorum) {
        let Some(merged) = quorum.merged() else {
            return;
        };
        let state = pb::ObjectState {
            storage_key: skey.to_vec().into(),
            object: merged.encode().into(),
        };
        for node in quorum.stale() {
            self.metrics.read_repairs.inc();
            let r = if node == self.me {
                self.merge_local(&state).map(|_| ())
            } else {
                self.replicate_to(node, &state, None).await
            };
            if let Err(e) = r {
                tracing::debug!(node = %node, error = %e, "read repair failed");
            }
        }
    }
}
