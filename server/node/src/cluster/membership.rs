//! Membership and liveness over gossip (chitchat: scuttlebutt anti-entropy of per-node
//! key-values plus a phi-accrual failure detector).
//!
//! Every node publishes its own metadata (dc, rack, capacity, addresses, join time, status,
//! the placement epoch it has finished streaming for) and the keyspace definitions it knows.
//! Members are also remembered on disk, so a restarted node still counts a peer that is down
//! right now as a member: liveness never changes ownership, only join and leave do.

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
const GONE_KEY_PREFIX: &str = "gone.";

/// A member's lifecycle; liveness is tracked separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Up,
    /// Decommission started: its partitions are moving to new owners.
    Leaving,
    /// Decommission finished: owns nothing.
    Left,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Leaving => "leaving",
            Status::Left => "left",
        }
    }
}

/// What a node tells the cluster about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    pub id: ActorId,
    pub dc: String,
    pub rack: String,
    pub capacity: u32,
    pub grpc: String,
    pub http: String,
    /// Milliseconds since the epoch of the node's first start: orders joins identically on
    /// every node.
    pub joined_at: u64,
    pub status: Status,
    pub left_at: u64,
    pub synced_epoch: u64,
}

impl NodeMeta {
    fn to_kvs(&self) -> Vec<(String, String)> {
        vec![
            ("dc".into(), self.dc.clone()),
            ("rack".into(), self.rack.clone()),
            ("capacity".into(), self.capacity.to_string()),
            ("grpc".into(), self.grpc.clone()),
            ("http".into(), self.http.clone()),
            ("joined_at".into(), self.joined_at.to_string()),
            ("status".into(), self.status.name().into()),
            ("left_at".into(), self.left_at.to_string()),
            ("synced_epoch".into(), self.synced_epoch.to_string()),
        ]
    }

    fn from_state(id: ActorId, get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let status = match get("status")?.as_str() {
            "up" => Status::Up,
            "leaving" => Status::Leaving,
            "left" => Status::Left,
            _ => return None,
        };
        Some(Self {
            id,
            dc: get("dc")?,
            rack: get("rack")?,
            capacity: get("capacity")?.parse().ok()?,
            grpc: get("grpc")?,
            http: get("http")?,
            joined_at: get("joined_at")?.parse().ok()?,
            status,
            left_at: get("left_at")?.parse().ok()?,
            synced_epoch: get("synced_epoch")?.parse().ok()?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberState {
    pub meta: NodeMeta,
    pub alive: bool,
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

    /// Publishes a change to this node's own metadata (status, synced epoch).
    pub async fn publish(&self, meta: &NodeMeta) -> NodeResult<()> {
        remember(&self.storage, meta)?;
        self.handle
            .with_chitchat(|c| {
                let state = c.self_node_state();
                for (k, v) in meta.to_kvs() {
                    state.set(k, v);
                }
            })
            .await;
        Ok(())
    }

    /// Publishes a keyspace definition so every node learns it.
    pub async fn publish_keyspace(&self, name: &str, json: &str) {
        let key = format!("{KEYSPACE_KEY_PREFIX}{name}");
        let json = json.to_string();
        self.handle
            .with_chitchat(|c| c.self_node_state().set(key.clone(), json.clone()))
            .await;
    }

    /// Remembers a member that left, so nodes that join later still fold the same history.
    pub async fn publish_gone(&self, meta: &NodeMeta) {
        let key = format!("{GONE_KEY_PREFIX}{}", meta.id);
        let Ok(json) = serde_json::to_string(meta) else {
            return;
        };
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
    // Members remembered on disk first; gossip overrides with fresher data.
    if let Ok(stored) = storage.meta_with_prefix(MEMBER_PREFIX) {
        for (_, bytes) in stored {
            if let Ok(meta) = serde_json::from_slice::<NodeMeta>(&bytes) {
                view.members
                    .insert(meta.id, MemberState { meta, alive: false });
            }
        }
    }
    let mut gone = Vec::new();
    let mut gossiped = Vec::new();
    {
        let c = chitchat.lock().await;
        let live: Vec<ChitchatId> = c.live_nodes().cloned().collect();
        // Highest generation wins when a restarted node still has an old state around.
        let mut newest: BTreeMap<ActorId, (u64, NodeMeta, bool)> = BTreeMap::new();
        for (cid, state) in c.node_states() {
            for (k, v) in state.key_values() {
                if let Some(name) = k.strip_prefix(KEYSPACE_KEY_PREFIX) {
                    let defs = view.keyspaces.entry(name.to_string()).or_default();
                    if !defs.iter().any(|d| d == v) {
                        defs.push(v.to_string());
                    }
                } else if k.starts_with(GONE_KEY_PREFIX)
                    && let Ok(meta) = serde_json::from_str::<NodeMeta>(v)
                {
                    gone.push(meta);
                }
            }
            let Ok(uuid) = uuid::Uuid::parse_str(&cid.node_id) else {
                continue;
            };
            let id = ActorId::from_bytes(*uuid.as_bytes());
            let Some(meta) = NodeMeta::from_state(id, |k| state.get(k).map(str::to_string)) else {
                continue;
            };
            let alive = live.contains(cid);
            if newest
                .get(&id)
                .is_none_or(|(generation, _, _)| *generation <= cid.generation_id)
            {
                newest.insert(id, (cid.generation_id, meta, alive));
            }
        }
        gossiped.extend(newest.into_values().map(|(_, meta, alive)| (meta, alive)));
    }
    let updates = gone.into_iter().map(|m| (m, false)).chain(gossiped);
    for (meta, alive) in updates {
        let entry = view.members.entry(meta.id).or_insert(MemberState {
            meta: meta.clone(),
            alive: false,
        });
        entry.alive |= alive;
        // A member's lifecycle only moves forward (up, leaving, left); stale gossip from an
        // older generation must not bring a departed node back.
        if meta.status >= entry.meta.status {
            entry.meta = meta;
        }
        if entry.meta.status == Status::Left {
            entry.alive = false;
        }
        let _ = remember(storage, &entry.meta);
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

/// The node's first start time, kept so that a restart does not reorder its join.
pub fn joined_at(storage: &Storage) -> NodeResult<u64> {
    const KEY: &str = "node/joined_at";
    if let Some(bytes) = storage.get_meta(KEY)?
        && let Ok(arr) = <[u8; 8]>::try_from(bytes.as_slice())
    {
        return Ok(u64::from_be_bytes(arr));
    }
    let t = now_ms();
    storage.put_meta(KEY, &t.to_be_bytes())?;
    Ok(t)
}

/// Loads this node's own remembered metadata (status and synced epoch survive restarts).
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
