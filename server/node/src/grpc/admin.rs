//! The `meridian.v1.Admin` service: keyspaces and node information.

use crate::engine::Engine;
use crate::error::NodeError;
use meridian_core::{KeyspaceSpec, ValueKind};
use meridian_proto::v1 as pb;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

pub struct AdminService {
    pub engine: Arc<Engine>,
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
    let kind = match pb::ValueKind::try_from(p.kind) {
        Ok(pb::ValueKind::Unspecified | pb::ValueKind::Siblings) => ValueKind::Siblings,
        Ok(pb::ValueKind::Lww) => ValueKind::Lww,
        Err(_) => {
            return Err(NodeError::InvalidArgument(format!(
                "unknown value kind {}; expected siblings or lww",
                p.kind
            )));
        }
    };
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
    let consistency = |c: meridian_core::Consistency| -> i32 {
        use meridian_core::Consistency as C;
        (match c {
            C::One => pb::Consistency::One,
            C::Two => pb::Consistency::Two,
            C::Quorum => pb::Consistency::Quorum,
            C::All => pb::Consistency::All,
            C::LocalOne => pb::Consistency::LocalOne,
            C::LocalQuorum => pb::Consistency::LocalQuorum,
            C::EachQuorum => pb::Consistency::EachQuorum,
        }) as i32
    };
    pb::Keyspace {
        id: s.id(),
        spec: Some(pb::KeyspaceSpec {
            name: s.name.clone(),
            kind: match s.kind {
                ValueKind::Siblings => pb::ValueKind::Siblings,
                ValueKind::Lww => pb::ValueKind::Lww,
            } as i32,
            replication: s.replication.clone().into_iter().collect(),
            read_consistency: consistency(s.read_consistency),
            write_consistency: consistency(s.write_consistency),
            max_value_bytes: s.max_value_bytes,
            max_siblings: s.max_siblings,
            sync_writes: s.sync_writes,
        }),
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn create_keyspace(
        &self,
        req: Request<pb::CreateKeyspaceRequest>,
    ) -> Result<Response<pb::Keyspace>, Status> {
        let spec = req
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("spec is required"))?;
        let spec = spec_from_proto(spec, &self.node)?;
        let created = self
            .engine
            .keyspaces()
            .create(self.engine.storage(), spec)?;
        Ok(Response::new(spec_to_proto(&created)))
    }

    async fn list_keyspaces(
        &self,
        _req: Request<pb::ListKeyspacesRequest>,
    ) -> Result<Response<pb::ListKeyspacesResponse>, Status> {
        let keyspaces = self
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
        let spec = self.engine.keyspaces().get(&req.into_inner().name)?;
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
        }))
    }
}
