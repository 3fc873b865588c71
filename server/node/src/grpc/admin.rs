//! The `meridian.v1.Admin` service: keyspaces and node information.

use crate::cluster::Cluster;
use crate::cluster::membership::now_ms;
use crate::error::NodeError;
use crate::grpc::layout_admin;
use meridian_core::KeyspaceSpec;
use meridian_proto::v1 as pb;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

pub struct AdminService {
    pub cluster: Arc<Cluster>,
    pub node: NodeFacts,
}

#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub node_id: String,
    pub datacenter: String,
    pub rack: String,
    pub grpc_addr: String,
    pub http_addr: String,
    pub data_dir: String,
    pub started: Instant,
    pub default_max_value_bytes: u32,
    pub default_max_siblings: u32,
}

/// Protocol spec → core spec, filling defaults, refusing what cannot be right.
pub fn spec_from_proto(p: pb::KeyspaceSpec, facts: &NodeFacts) -> Result<KeyspaceSpec, NodeError> {
    let kind =
        meridian_proto::crdt::value_kind_from_wire(p.kind).map_err(NodeError::InvalidArgument)?;
    let mut spec = KeyspaceSpec::new(p.name, kind);
    spec.replication = p.replication.into_iter().collect();
    if let Some(c) = crate::grpc::ops::consistency(p.read_consistency)? {
        spec.read_consistency = c;
    }
    if let Some(c) = crate::grpc::ops::consistency(p.write_consistency)? {
        spec.write_consistency = c;
    }
    spec.max_value_bytes = if p.max_value_bytes == 0 {
        facts.default_max_value_bytes
    } else {
        p.max_value_bytes
    };
    spec.max_siblings = if p.max_siblings == 0 {
        facts.default_max_siblings
    } else {
        p.max_siblings
    };
    spec.sync_writes = p.sync_writes;
    Ok(spec)
}

pub fn spec_to_proto(s: &KeyspaceSpec) -> pb::Keyspace {
    let consistency = |c: meridian_core::Consistency| pb::Consistency::from(c) as i32;
    pb::Keyspace {
        id: s.id(),
        spec: Some(pb::KeyspaceSpec {
            name: s.name.clone(),
            kind: pb::ValueKind::from(s.kind) as i32,
            replication: s.replication.clone().into_iter().collect(),
            read_consistency: consistency(s.read_consistency),
            write_consistency: consistency(s.write_consistency),
            max_value_bytes: s.max_value_bytes,
            max_siblings: s.max_siblings,
            sync_writes: s.sync_writes,
        }),
    }
}

type ProgressStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::DecommissionProgress, Status>> + Send>>;

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn topology(
        &self,
        _req: Request<pb::TopologyRequest>,
    ) -> Result<Response<pb::TopologyResponse>, Status> {
        Ok(Response::new(layout_admin::topology(&self.cluster)))
    }

    async fn layout(
        &self,
        _req: Request<pb::LayoutRequest>,
    ) -> Result<Response<pb::LayoutResponse>, Status> {
        Ok(Response::new(layout_admin::layout(&self.cluster)))
    }

    async fn remove(
        &self,
        req: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        Ok(Response::new(layout_admin::remove(
            &self.cluster,
            &req.into_inner().node_id,
        )?))
    }

    async fn inspect(
        &self,
        req: Request<pb::InspectRequest>,
    ) -> Result<Response<pb::InspectResponse>, Status> {
        let req = req.into_inner();
        let ks = self.cluster.engine.keyspaces().get(&req.keyspace)?;
        meridian_core::limits::check_key(&req.key).map_err(NodeError::from)?;
        let skey = meridian_core::partition::storage_key(ks.id(), &req.key);
        let partition = meridian_core::partition::partition_of(ks.id(), &req.key);
        let topo = self.cluster.topology();
        let replicas: Vec<String> = topo
            .replicas(&ks, partition)
            .iter()
            .flat_map(|d| d.replicas.iter().map(|s| s.node.to_string()))
            .collect();
        let object = self.cluster.engine.local_object(&skey)?;
        let me = self.cluster.me.to_string();
        Ok(Response::new(pb::InspectResponse {
            replica: replicas.contains(&me),
            node_id: me,
            present: object.is_some(),
            text: object
                .as_ref()
                .map(|o| format!("partition {partition}\n{}", o.describe()))
                .unwrap_or_else(|| format!("partition {partition}\n(nothing stored)")),
            replicated: object
                .map(|o| o.replicated_bytes())
                .unwrap_or_default()
                .into(),
            replicas,
        }))
    }

    async fn hints(
        &self,
        _req: Request<pb::HintsRequest>,
    ) -> Result<Response<pb::HintsResponse>, Status> {
        let hints = &self.cluster.hints;
        let now = now_ms();
        let queues = hints
            .stats()
            .into_iter()
            .map(|(target, q)| pb::HintQueue {
                target: target.to_string(),
                count: q.count,
                bytes: q.bytes,
                oldest_age_ms: q.oldest_ms.map_or(0, |t| now.saturating_sub(t)),
            })
            .collect();
        Ok(Response::new(pb::HintsResponse {
            queues,
            dropped: hints.dropped.load(std::sync::atomic::Ordering::Relaxed),
            delivered: hints.delivered.load(std::sync::atomic::Ordering::Relaxed),
        }))
    }

    async fn streams(
        &self,
        _req: Request<pb::StreamsRequest>,
    ) -> Result<Response<pb::StreamsResponse>, Status> {
        let outbound = self
            .cluster
            .streams
            .status()
            .into_iter()
            .map(|q| pb::OutboundStream {
                datacenter: q.dc,
                queued: q.depth.entries,
                queued_bytes: q.depth.full_bytes + q.depth.reference_bytes,
                queued_reference_bytes: q.depth.reference_bytes,
                sent: q.sent,
                shed_to_references: q.shed.references,
                dropped: q.shed.dropped,
                sink: q.sink.map(|s| s.to_string()).unwrap_or_default(),
            })
            .collect();
        let inbound = self
            .cluster
            .sink
            .status()
            .into_iter()
            .map(|(dc, s)| pb::InboundStream {
                datacenter: dc,
                applied: s.applied,
                lag_p50_ms: s.lag_p50_ms,
                lag_p99_ms: s.lag_p99_ms,
                gaps: s.gaps,
            })
            .collect();
        Ok(Response::new(pb::StreamsResponse { outbound, inbound }))
    }

    type DecommissionStream = ProgressStream;

    type RepairStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::RepairProgress, Status>> + Send>>;

    async fn repair(
        &self,
        req: Request<pb::RepairRequest>,
    ) -> Result<Response<Self::RepairStream>, Status> {
        let req = req.into_inner();
        let keyspace = Some(req.keyspace).filter(|k| !k.is_empty());
        if let Some(k) = &keyspace {
            self.cluster.engine.keyspaces().get(k)?;
        }
        let dc = Some(req.dc).filter(|d| !d.is_empty());
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(self.cluster.clone().repair(keyspace, dc, tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn decommission(
        &self,
        req: Request<pb::DecommissionRequest>,
    ) -> Result<Response<Self::DecommissionStream>, Status> {
        let wanted = req.into_inner().node_id;
        let me = self.cluster.me.to_string();
        let wanted_norm = wanted.replace('-', "").to_ascii_lowercase();
        if !wanted.is_empty() && wanted_norm != me {
            return Err(Status::failed_precondition(format!(
                "decommission must be sent to the leaving node itself: this is node {me}, not {wanted}"
            )));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(self.cluster.clone().decommission(tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn create_keyspace(
        &self,
        req: Request<pb::CreateKeyspaceRequest>,
    ) -> Result<Response<pb::Keyspace>, Status> {
        let spec = req
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("spec is required"))?;
        let spec = spec_from_proto(spec, &self.node)?;
        let engine = &self.cluster.engine;
        let created = engine.keyspaces().create(engine.storage(), spec)?;
        Ok(Response::new(spec_to_proto(&created)))
    }

    async fn list_keyspaces(
        &self,
        _req: Request<pb::ListKeyspacesRequest>,
    ) -> Result<Response<pb::ListKeyspacesResponse>, Status> {
        let keyspaces = self
            .cluster
            .engine
            .keyspaces()
            .list()
            .iter()
            .map(|s| spec_to_proto(s))
            .collect();
        Ok(Response::new(pb::ListKeyspacesResponse { keyspaces }))
    }

    async fn describe_keyspace(
        &self,
        req: Request<pb::DescribeKeyspaceRequest>,
    ) -> Result<Response<pb::Keyspace>, Status> {
        let spec = self
            .cluster
            .engine
            .keyspaces()
            .get(&req.into_inner().name)?;
        Ok(Response::new(spec_to_proto(&spec)))
    }

    async fn node_info(
        &self,
        _req: Request<pb::NodeInfoRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        let n = &self.node;
        Ok(Response::new(pb::NodeInfoResponse {
            node_id: n.node_id.clone(),
            datacenter: n.datacenter.clone(),
            rack: n.rack.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            grpc_addr: n.grpc_addr.clone(),
            http_addr: n.http_addr.clone(),
            partitions: meridian_core::partition::PARTITIONS,
            uptime_seconds: n.started.elapsed().as_secs(),
            data_dir: n.data_dir.clone(),
            actor: self.cluster.engine.actor().to_string(),
            incarnation: self.cluster.engine.actor().incarnation(),
        }))
    }
}
