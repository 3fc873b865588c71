//! Membership and liveness over gossip (chitchat: scuttlebutt anti-entropy of per-node
//! key-values plus a phi-accrual failure detector).
//!
//! Every node publishes its own metadata (dc, rack, capacity, addresses), the layout version
//! it holds with a hash of its layout history, and the keyspace definitions it knows. Members
//! are also remembered on disk, so a restarted node can still address a peer that is down
//! right now. Gossip never decides ownership: the layout does (see layout.rs).

use crate::config::ClusterConfig;
use crate::error::{NodeError, NodeResult};
use crate::storage::Storage;
use chitchat::transport::UdpTransport;
use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, spawn_chitchat};
use meridian_core::ActorId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const MEMBER_PREFIX: &str = "member/";
const KEYSPACE_KEY_PREFIX: &str = "ks.";
const LAYOUT_VERSION_KEY: &str = "layout_version";
const LAYOUT_HASH_KEY: &str = "layout_hash";

/// What a node tells the cluster about itself: where to reach it and where it sits. Who owns
/// what is not here: that is the layout (see layout.rs), which members join through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    pub id: ActorId,
    pub dc: String,
    pub rack: String,
    pub capacity: u32,
    pub grpc: String,
    pub http: String,
    /// Where nodes of other datacenters reach its gRPC (empty: `grpc`), for addresses that
    /// differ across a WAN (NAT, public addresses, a proxy).
    pub wan_grpc: String,
}

impl NodeMeta {
    fn to_kvs(&self) -> Vec<(String, String)> {
        vec![
            ("dc".into(), self.dc.clone()),
            ("rack".into(), self.rack.clone()),
            ("capacity".into(), self.capacity.to_string()),
            ("grpc".into(), self.grpc.clone()),
            ("http".into(), self.http.clone()),
            ("wan_grpc".into(), self.wan_grpc.clone()),
        ]
    }

    fn from_state(id: ActorId, get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        Some(Self {
            id,
            dc: get("dc")?,
            rack: get("rack")?,
            capacity: get("capacity")?.parse().ok()?,
            grpc: get("grpc")?,
            http: get("http")?,
            wan_grpc: get("wan_grpc").unwrap_or_default(),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberState {
    pub meta: NodeMeta,
    pub alive: bool,
    /// The layout version the node has adopted, and a hash of its whole layout history: a
    /// peer whose hash differs from ours has something to exchange.
    pub layout_version: u64,
    pub layout_hash: String,
}

/// The cluster as this node sees it right now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    pub members: BTreeMap<ActorId, MemberState>,
    /// Keyspace definitions (JSON) published by any node, by name.
    pub keyspaces: BTreeMap<String, Vec<String>>,
}

pub struct Membership {
    handle: ChitchatHandle,
    storage: Arc<Storage>,
    view: watch::Receiver<Arc<ClusterView>>,
}

impl Membership {
    pub async fn start(
        cfg: &ClusterConfig,
        gossip_addr: SocketAddr,
        me: NodeMeta,
        storage: Arc<Storage>,
    ) -> NodeResult<Self> {
        let interval = Duration::from_millis(cfg.gossip_interval_ms);
        let fd = FailureDetectorConfig {
            phi_threshold: cfg.phi_threshold,
            initial_interval: interval * 2,
            max_interval: interval * 20,
            ..FailureDetectorConfig::default()
        };
        let generation = now_ms();
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(me.id.to_string(), generation, gossip_addr),
            cluster_id: cfg.cluster_id.clone(),
            gossip_interval: interval,
            listen_addr: gossip_addr,
            seed_nodes: cfg.seeds.clone(),
            failure_detector_config: fd,
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let handle = spawn_chitchat(config, me.to_kvs(), &UdpTransport)
            .await
            .map_err(|e| {
                NodeError::Internal(format!("cannot start gossip on {gossip_addr}: {e}"))
            })?;
        remember(&storage, &me)?;
        let (tx, rx) = watch::channel(Arc::new(ClusterView::default()));
        let me = Self {
            handle,
            storage,
            view: rx,
        };
        me.refresh(&tx).await;
        let chitchat = me.handle.chitchat();
        let storage = me.storage.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tick.tick().await;
                if tx.is_closed() {
                    break;
                }
                let view = snapshot(&chitchat, &storage).await;
                if **tx.borrow() != view {
                    let _ = tx.send(Arc::new(view));
                }
            }
        });
        Ok(me)
    }

    async fn refresh(&self, tx: &watch::Sender<Arc<ClusterView>>) {
        let view = snapshot(&self.handle.chitchat(), &self.storage).await;
        let _ = tx.send(Arc::new(view));
    }

    pub fn watch(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.view.clone()
    }

    /// Publishes the layout this node holds, so peers know whether to exchange with it.
    pub async fn publish_layout(&self, version: u64, hash: &str) {
        let hash = hash.to_string();
        self.handle
            .with_chitchat(|c| {
                let state = c.self_node_state();
                state.set(LAYOUT_VERSION_KEY, version.to_string());
                state.set(LAYOUT_HASH_KEY, hash.clone());
            })
            .await;
    }

    /// Publishes a keyspace definition so every node learns it.
    pub async fn publish_keyspace(&self, name: &str, json: &str) {
        let key = format!("{KEYSPACE_KEY_PREFIX}{name}");
        let json = json.to_string();
        self.handle
            .with_chitchat(|c| c.self_node_state().set(key.clone(), json.clone()))
            .await;
    }
}

async fn snapshot(
    chitchat: &Arc<tokio::sync::Mutex<chitchat::Chitchat>>,
    storage: &Storage,
) -> ClusterView {
    let mut view = ClusterView::default();
    // Members remembered on disk first (a peer that is down now still has an address);
    // gossip overrides with fresher data.
    if let Ok(stored) = storage.meta_with_prefix(MEMBER_PREFIX) {
        for (_, bytes) in stored {
            if let Ok(meta) = serde_json::from_slice::<NodeMeta>(&bytes) {
                view.members.insert(
                    meta.id,
                    MemberState {
                        meta,
                        alive: false,
                        layout_version: 0,
                        layout_hash: String::new(),
                    },
                );
            }
        }
    }
    let c = chitchat.lock().await;
    let live: Vec<ChitchatId> = c.live_nodes().cloned().collect();
    // Highest generation wins when a restarted node still has an old state around.
    let mut newest: BTreeMap<ActorId, (u64, MemberState)> = BTreeMap::new();
    for (cid, state) in c.node_states() {
        for (k, v) in state.key_values() {
            if let Some(name) = k.strip_prefix(KEYSPACE_KEY_PREFIX) {
                let defs = view.keyspaces.entry(name.to_string()).or_default();
                if !defs.iter().any(|d| d == v) {
                    defs.push(v.to_string());
                }
            }
        }
        let Ok(uuid) = uuid::Uuid::parse_str(&cid.node_id) else {
            continue;
        };
        let id = ActorId::from_bytes(*uuid.as_bytes());
        let Some(meta) = NodeMeta::from_state(id, |k| state.get(k).map(str::to_string)) else {
            continue;
        };
        let member = MemberState {
            meta,
            alive: live.contains(cid),
            layout_version: state
                .get(LAYOUT_VERSION_KEY)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            layout_hash: state.get(LAYOUT_HASH_KEY).unwrap_or_default().to_string(),
        };
        if newest
            .get(&id)
            .is_none_or(|(generation, _)| *generation <= cid.generation_id)
        {
            newest.insert(id, (cid.generation_id, member));
        }
    }
    drop(c);
    for (_, member) in newest.into_values() {
        let _ = remember(storage, &member.meta);
        view.members.insert(member.meta.id, member);
    }
    for defs in view.keyspaces.values_mut() {
        defs.sort();
    }
    view
}

fn remember(storage: &Storage, meta: &NodeMeta) -> NodeResult<()> {
    let key = format!("{MEMBER_PREFIX}{}", meta.id);
    let bytes = serde_json::to_vec(meta)
        .map_err(|e| NodeError::Internal(format!("encoding member: {e}")))?;
    if storage.get_meta(&key)?.as_deref() != Some(bytes.as_slice()) {
        storage.put_meta(&key, &bytes)?;
    }
    Ok(())
}

/// Loads this node's own remembered metadata (where it was last started).
pub fn load_self(storage: &Storage, id: &ActorId) -> NodeResult<Option<NodeMeta>> {
    let key = format!("{MEMBER_PREFIX}{id}");
    Ok(storage
        .get_meta(&key)?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Picks a free UDP port when the configuration asks for port 0: gossip must advertise the
/// real port to peers.
pub fn resolve_gossip_addr(addr: SocketAddr) -> NodeResult<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let socket = std::net::UdpSocket::bind(addr)
        .map_err(|e| NodeError::Internal(format!("cannot bind gossip address {addr}: {e}")))?;
    socket
        .local_addr()
        .map_err(|e| NodeError::Internal(format!("gossip address: {e}")))
}
