//! `meridian server`: opens storage, builds the engine, serves gRPC and HTTP until Ctrl-C or
//! SIGTERM, then shuts down cleanly (RocksDB is closed when the last handle drops).

use crate::config::Config;
use crate::engine::Engine;
use crate::grpc::admin::{AdminService, NodeFacts};
use crate::grpc::kv::KvService;
use crate::grpc::ops::EngineHandler;
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
use tokio_stream::wrappers::TcpListenerStream;

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let storage = Arc::new(
        Storage::open(&cfg.node.data_dir, &cfg.storage)
            .with_context(|| format!("opening storage in {}", cfg.node.data_dir.display()))?,
    );
    let node_id = identity::load_or_create(&storage)?;
    let keyspaces = Keyspaces::load(&storage, &cfg.limits)?;
    let metrics = Arc::new(Metrics::new());
    let engine = Arc::new(Engine::new(
        storage.clone(),
        keyspaces,
        identity::actor(node_id),
        cfg.node.datacenter.clone(),
        cfg.storage.sync_writes,
        metrics,
    ));

    let grpc_listener = TcpListener::bind(cfg.node.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC address {}", cfg.node.grpc_addr))?;
    let http_listener = TcpListener::bind(cfg.node.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", cfg.node.http_addr))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;

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
    let handler = Arc::new(EngineHandler {
        engine: engine.clone(),
    });
    let admin = AdminService {
        engine: engine.clone(),
        node: facts.clone(),
    };

    let shutdown = shutdown_signal();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let grpc = tokio::spawn(serve_grpc(
        handler,
        Some(admin),
        limits,
        grpc_listener,
        stop_rx.clone(),
    ));
    let mut http_stop = stop_rx.clone();
    let http_server = axum::serve(http_listener, http::router(engine.clone()))
        .with_graceful_shutdown(async move {
            let _ = http_stop.changed().await;
        });
    let http_task = tokio::spawn(async move { http_server.await });

    tracing::info!(
        node_id = %node_id, grpc = %grpc_addr, http = %http_addr,
        dc = %cfg.node.datacenter, rack = %cfg.node.rack,
        data_dir = %cfg.node.data_dir.display(), "meridian node serving"
    );
    // One machine-readable line on stdout, so scripts and tests can find the real ports
    // when they asked for port 0.
    println!("MERIDIAN_READY node_id={node_id} grpc=http://{grpc_addr} http=http://{http_addr}");

    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = grpc.await;
    let _ = http_task.await;
    drop(engine);
    drop(storage);
    Ok(())
}

/// Serves the KV service (with any handler), the admin service when given, health and
/// reflection. Also used by the bench's echo target, so both share one network stack.
pub async fn serve_grpc<H: Handler>(
    handler: Arc<H>,
    admin: Option<AdminService>,
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
    let kv = pb::kv_server::KvServer::new(KvService::new(handler, limits))
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20);
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(kv)
        .add_optional_service(admin.map(pb::admin_server::AdminServer::new));
    router
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = stop.changed().await;
        })
        .await?;
    Ok(())
}

async fn shutdown_signal() {
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
