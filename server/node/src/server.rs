//! `meridian server`: opens storage, builds the engine, serves gRPC and HTTP until Ctrl-C or
//! SIGTERM, then shuts down cleanly (RocksDB is closed when the last handle drops).

use crate::cluster::hints::Hints;
use crate::cluster::layout::LayoutKeeper;
use crate::cluster::membership::{self, Membership, NodeMeta};
use crate::cluster::peer_service::PeerService;
use crate::cluster::peers::Peers;
use crate::cluster::{Cluster, Parts, Settings};
use crate::config::Config;
use crate::engine::Engine;
use crate::grpc::admin::{AdminService, NodeFacts};
use crate::grpc::kv::KvService;
use crate::grpc::ops::ClusterHandler;
use crate::grpc::session::{Handler, SessionLimits};
use crate::keyspaces::Keyspaces;
use crate::metrics::Metrics;
use crate::storage::Storage;
use crate::{http, identity};
use anyhow::Context as _;
use meridian_proto::v1 as pb;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let storage = Arc::new(
        Storage::open(&cfg.node.data_dir, &cfg.storage)
            .with_context(|| format!("opening storage in {}", cfg.node.data_dir.display()))?,
    );
    let wanted = cfg
        .node
        .node_id
        .as_deref()
        .map(|s| {
            uuid::Uuid::parse_str(s)
                .with_context(|| format!("node.node_id {s:?} is not a node id (a UUID)"))
        })
        .transpose()?;
    let node_id = identity::load_or_create(&storage, wanted)?;
    let actor = identity::node(node_id);
    let incarnation = identity::start_incarnation(&storage)?;
    let keyspaces = Keyspaces::load(&storage, &cfg.limits)?;
    let metrics = Arc::new(Metrics::new());
    let layout = LayoutKeeper::load(storage.clone())?;
    let gossip_addr = membership::resolve_gossip_addr(cfg.cluster.gossip_addr)?;
    let expects_peers = cfg
        .cluster
        .seeds
        .iter()
        .any(|s| s.parse::<SocketAddr>().ok() != Some(gossip_addr));
    let role = meridian_core::layout::Role::Storage;
    if !expects_peers {
        // No seeds: this node founds a cluster before it serves (if it has none yet).
        layout.found(meridian_core::layout::LayoutMember {
            id: actor,
            dc: cfg.node.datacenter.clone(),
            rack: cfg.node.rack.clone(),
            capacity: cfg.cluster.capacity.max(1),
            role,
        })?;
    }
    // Until the node holds a layout it refuses requests, so this placeholder seals nothing.
    let secret = layout
        .get()
        .current()
        .map_or_else(|| placeholder_secret(&node_id), |v| *v.secret());
    let engine = Arc::new(Engine::new(
        storage.clone(),
        keyspaces,
        identity::actor(node_id, incarnation),
        meridian_core::ContextSeal::new(secret),
        cfg.storage.sync_writes,
        metrics.clone(),
    ));

    let grpc_listener = TcpListener::bind(cfg.node.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC address {}", cfg.node.grpc_addr))?;
    let http_listener = TcpListener::bind(cfg.node.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", cfg.node.http_addr))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;

    // Who this node is, as gossiped: addresses are fresh each start.
    let previous = membership::load_self(&storage, &actor)?;
    let meta = NodeMeta {
        id: actor,
        dc: cfg.node.datacenter.clone(),
        rack: cfg.node.rack.clone(),
        capacity: cfg.cluster.capacity,
        grpc: format!("http://{grpc_addr}"),
        http: format!("http://{http_addr}"),
        wan_grpc: match &cfg.node.wan_grpc_addr {
            Some(a) => {
                let addr: std::net::SocketAddr = a.parse().with_context(|| {
                    format!("node.wan_grpc_addr {a:?} is not HOST:PORT (an IP address and port)")
                })?;
                format!("http://{addr}")
            }
            None => String::new(),
        },
    };
    // A new rack or capacity is staged in the layout like a join; a new datacenter is not:
    // the data on this disk belongs to the old one.
    if let Some(p) = &previous
        && p.dc != meta.dc
    {
        anyhow::bail!(
            "this data directory belongs to a node in dc {:?}; moving a node's data to \
             another datacenter is not supported: decommission it and start a fresh node \
             instead",
            p.dc
        );
    }
    let membership = Membership::start(&cfg.cluster, gossip_addr, meta.clone(), storage.clone())
        .await
        .context("starting gossip")?;
    let hints = Hints::open(
        storage.clone(),
        metrics.clone(),
        cfg.cluster.hint_max_age_secs,
        cfg.cluster.hint_max_count,
    )?;
    let streams = crate::cluster::streams::Streams::open(
        storage.clone(),
        metrics.clone(),
        meridian_core::stream::Limits {
            max_bytes: cfg.cluster.stream_max_bytes,
            max_age_ms: cfg.cluster.hint_max_age_secs.saturating_mul(1000),
            ..Default::default()
        },
    )?;
    let peers = Peers::new(Duration::from_millis(cfg.cluster.peer_timeout_ms));
    let cluster = Cluster::new(
        Parts {
            engine: engine.clone(),
            metrics: metrics.clone(),
            membership,
            layout,
            hints,
            streams,
            peers,
        },
        meta,
        Settings {
            strict: cfg.cluster.strict_quorum,
            read_repair_chance: cfg.cluster.read_repair_chance,
            expects_peers,
            role,
            anti_entropy_exchanges_per_sec: cfg.cluster.anti_entropy_exchanges_per_sec,
            anti_entropy_bytes_per_sec: cfg.cluster.anti_entropy_bytes_per_sec,
            tombstone_sweeps_per_sec: cfg.cluster.tombstone_sweeps_per_sec,
            tombstone_grace_secs: cfg.cluster.tombstone_grace_secs,
        },
    );
    cluster.spawn_tasks();

    let facts = NodeFacts {
        node_id: node_id.to_string(),
        datacenter: cfg.node.datacenter.clone(),
        rack: cfg.node.rack.clone(),
        grpc_addr: format!("http://{grpc_addr}"),
        http_addr: format!("http://{http_addr}"),
        data_dir: cfg.node.data_dir.display().to_string(),
        started: Instant::now(),
        default_max_value_bytes: cfg.limits.max_value_bytes,
        default_max_siblings: cfg.limits.max_siblings,
    };
    let limits = SessionLimits {
        max_in_flight: cfg.server.max_in_flight_per_stream,
        default_timeout: Duration::from_millis(cfg.server.default_timeout_ms),
    };
    let handler = Arc::new(ClusterHandler {
        cluster: cluster.clone(),
    });
    let admin = AdminService {
        cluster: cluster.clone(),
        node: facts.clone(),
    };
    let peer = PeerService {
        cluster: cluster.clone(),
    };

    let shutdown = shutdown_signal();
    let mut decommissioned = cluster.stop.subscribe();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let grpc = tokio::spawn(serve_grpc(
        handler,
        Some((admin, peer)),
        limits,
        grpc_listener,
        stop_rx.clone(),
    ));
    let mut http_stop = stop_rx.clone();
    let http_server = axum::serve(http_listener, http::router(cluster.clone()))
        .with_graceful_shutdown(async move {
            let _ = http_stop.changed().await;
        });
    let http_task = tokio::spawn(async move { http_server.await });

    tracing::info!(
        node_id = %node_id, grpc = %grpc_addr, http = %http_addr, gossip = %gossip_addr,
        dc = %cfg.node.datacenter, rack = %cfg.node.rack,
        data_dir = %cfg.node.data_dir.display(), "meridian node serving"
    );
    // One machine-readable line on stdout, so scripts and tests can find the real ports
    // when they asked for port 0.
    println!(
        "MERIDIAN_READY node_id={node_id} grpc=http://{grpc_addr} http=http://{http_addr} gossip={gossip_addr}"
    );

    tokio::select! {
        _ = shutdown => {}
        _ = decommissioned.wait_for(|v| *v) => {
            tracing::info!("decommissioned: this node has left the cluster");
        }
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    // Graceful shutdown waits for open streams to end; peers keep theirs open, so give it
    // a bounded grace period and then close what is left. Acknowledged writes are in the WAL.
    let grace = Duration::from_secs(5);
    let mut grpc = grpc;
    if tokio::time::timeout(grace, &mut grpc).await.is_err() {
        tracing::info!("closing streams still open after {grace:?}");
        grpc.abort();
    }
    let mut http_task = http_task;
    if tokio::time::timeout(grace, &mut http_task).await.is_err() {
        http_task.abort();
    }
    drop(cluster);
    drop(engine);
    if let Err(e) = identity::stopped_cleanly(&storage) {
        tracing::error!(error = %e, "cannot record the clean stop; the next start takes a new incarnation");
    }
    drop(storage);
    Ok(())
}

/// A seal key for the moments before the node holds the cluster's layout (whose random
/// secret every node then seals with): requests are refused until then.
fn placeholder_secret(node_id: &uuid::Uuid) -> [u8; 32] {
    blake3::derive_key("meridian 2026 context seal placeholder", node_id.as_bytes())
}

/// Serves the KV service (with any handler), the admin service when given, health and
/// reflection. Also used by the bench's echo target, so both share one network stack.
pub async fn serve_grpc<H: Handler>(
    handler: Arc<H>,
    cluster_services: Option<(AdminService, PeerService)>,
    limits: SessionLimits,
    listener: TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::kv_server::KvServer<KvService<H>>>()
        .await;
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(meridian_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let (admin, peer) = match cluster_services {
        Some((a, p)) => (Some(a), Some(p)),
        None => (None, None),
    };
    let kv = pb::kv_server::KvServer::new(KvService::new(handler, limits))
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20);
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(kv)
        .add_optional_service(admin.map(pb::admin_server::AdminServer::new))
        .add_optional_service(peer.map(|p| {
            pb::peer_server::PeerServer::new(p)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20)
        }));
    // The builder's tcp_nodelay only applies to sockets tonic accepts itself; ours come from
    // our listener, so turn Nagle off here. Otherwise a unary reply's trailers wait for the
    // client's delayed ACK: milliseconds per call between nodes.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    });
    router
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.changed().await;
        })
        .await?;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Parses "HOST:PORT" for flags, with a message that names the flag.
pub fn parse_addr(flag: &str, s: &str) -> anyhow::Result<SocketAddr> {
    s.parse()
        .map_err(|e| anyhow::anyhow!("{flag} {s:?} is not HOST:PORT: {e}"))
}
