//! Node configuration: one TOML file, overridden by `MERIDIAN_*` environment variables and
//! then by command-line flags. Every field has a default, so an empty file (or none) works.
//! `meridian config` prints the effective configuration with each field's meaning.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

pub const DEFAULT_GRPC_PORT: u16 = 7070;
pub const DEFAULT_HTTP_PORT: u16 = 7080;
pub const DEFAULT_GOSSIP_PORT: u16 = 7946;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub server: ServerConfig,
    pub cluster: ClusterConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Relative share of partitions this node takes in its datacenter (1 to 1000). Default 1.
    pub capacity: u32,
    /// UDP address for gossip. Port 0 picks one. Default 127.0.0.1:7946.
    pub gossip_addr: SocketAddr,
    /// Gossip addresses (HOST:PORT) of nodes to join through. Empty: start a new cluster.
    pub seeds: Vec<String>,
    /// Name shared by all nodes of one cluster; gossip from another cluster is ignored.
    pub cluster_id: String,
    /// Gossip round interval in milliseconds. Default 500.
    pub gossip_interval_ms: u64,
    /// Failure detector sensitivity (phi accrual). Lower marks nodes down sooner. Default 8.
    pub phi_threshold: f64,
    /// Deadline for one node-to-node request, in milliseconds. Default 2000.
    pub peer_timeout_ms: u64,
    /// Refuse sloppy quorum: stand-ins still take hints but do not count toward W.
    pub strict_quorum: bool,
    /// Share of reads (0 to 1) that ask every replica in scope instead of just enough for
    /// the level, repairing the ones a quorum read would skip. Default 0.1.
    pub read_repair_chance: f64,
    /// Hints older than this are dropped (and counted). Default 10800 (3 h).
    pub hint_max_age_secs: u64,
    /// Hints kept per node at most; the oldest are dropped (and counted). Default 1000000.
    pub hint_max_count: u64,
    /// Anti-entropy exchanges this node starts per second, each with one peer over one
    /// keyspace's shared partitions (0 turns continuous anti-entropy off; `admin repair`
    /// still works). Default 2.
    pub anti_entropy_exchanges_per_sec: f64,
    /// Bytes per second continuous anti-entropy may send and receive. Default 8388608 (8 MiB).
    pub anti_entropy_bytes_per_sec: u64,
    /// Bytes of writes each replication stream to a remote DC queues in full; past that it
    /// queues references (keys only, a quarter of this more), then drops writes to
    /// anti-entropy, counting each. Default 268435456 (256 MiB).
    pub stream_max_bytes: u64,
    /// A tombstone every replica (in every DC) holds is purged this long after that was
    /// confirmed; must exceed `hint_max_age_secs`, since a hint or a queued stream write
    /// older than the delete could otherwise bring the deleted value back. Default 14400 (4 h).
    pub tombstone_grace_secs: u64,
    /// Partitions per second this node sweeps for tombstones it is the reaper of (0 turns
    /// tombstone GC off: deleted keys then keep their tombstones). Default 10.
    pub tombstone_sweeps_per_sec: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where RocksDB and the node's identity live. Default "./meridian-data".
    pub data_dir: PathBuf,
    /// gRPC listen address (data + admin API). Port 0 picks a free port. Default 127.0.0.1:7070.
    pub grpc_addr: SocketAddr,
    /// HTTP listen address (JSON API, /metrics, /health). Default 127.0.0.1:7080.
    pub http_addr: SocketAddr,
    /// Datacenter this node runs in. Default "dc1".
    pub datacenter: String,
    /// Rack (failure domain) inside the datacenter. Default "rack1".
    pub rack: String,
    /// gRPC address (HOST:PORT) nodes in other datacenters use to reach this one, when it
    /// differs from `grpc_addr` (NAT, a public address, a proxy). Default: `grpc_addr`.
    pub wan_grpc_addr: Option<String>,
    /// The node id to take when the data directory is empty: a node whose disk was replaced
    /// comes back as itself (anti-entropy refills it) instead of as a new member. Refused
    /// when the directory holds another node's data. Default: none (a new id).
    pub node_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// fsync the write-ahead log before acknowledging a write (group commit: concurrent
    /// writers share one fsync). Off by default; an acknowledged write then still survives a
    /// crash of the process (kill -9), but not of the machine. Keyspaces may override.
    pub sync_writes: bool,
    /// RocksDB block cache for hot data, in MiB. Default 256.
    pub block_cache_mb: usize,
    /// Memtable size per column family, in MiB. Default 64.
    pub write_buffer_mb: usize,
    /// Compression of stored values: "lz4" (default), "zstd" or "none".
    pub compression: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Sibling limit for keyspaces created without one (and for `default`). Default 100.
    pub max_siblings: u32,
    /// Key + value limit in bytes for keyspaces created without one. Default 10240.
    pub max_value_bytes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Requests one client stream may have in flight; more wait (backpressure). Default 1024.
    pub max_in_flight_per_stream: usize,
    /// Deadline for a request that names none, in milliseconds. Default 5000.
    pub default_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// tracing filter, e.g. "info" or "meridian=debug". Default "info". RUST_LOG overrides.
    pub level: String,
    /// "text" (default) or "json".
    pub format: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./meridian-data"),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_GRPC_PORT)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_HTTP_PORT)),
            datacenter: "dc1".into(),
            rack: "rack1".into(),
            node_id: None,
            wan_grpc_addr: None,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            sync_writes: false,
            block_cache_mb: 256,
            write_buffer_mb: 64,
            compression: "lz4".into(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_siblings: meridian_core::limits::DEFAULT_MAX_SIBLINGS,
            max_value_bytes: meridian_core::limits::DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_in_flight_per_stream: 1024,
            default_timeout_ms: 5000,
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            capacity: 1,
            gossip_addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_GOSSIP_PORT)),
            seeds: Vec::new(),
            cluster_id: "meridian".into(),
            gossip_interval_ms: 500,
            phi_threshold: 8.0,
            peer_timeout_ms: 2000,
            strict_quorum: false,
            read_repair_chance: 0.1,
            hint_max_age_secs: 3 * 3600,
            hint_max_count: 1_000_000,
            anti_entropy_exchanges_per_sec: 2.0,
            anti_entropy_bytes_per_sec: 8 << 20,
            stream_max_bytes: 256 << 20,
            tombstone_grace_secs: 4 * 3600,
            tombstone_sweeps_per_sec: 10.0,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

impl Config {
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let cfg: Config = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        match self.storage.compression.as_str() {
            "lz4" | "zstd" | "none" => {}
            other => anyhow::bail!(
                "storage.compression {other:?} is not one of \"lz4\", \"zstd\", \"none\""
            ),
        }
        match self.log.format.as_str() {
            "text" | "json" => {}
            other => anyhow::bail!("log.format {other:?} is not \"text\" or \"json\""),
        }
        if self.server.max_in_flight_per_stream == 0 {
            anyhow::bail!("server.max_in_flight_per_stream must be at least 1");
        }
        if !(1..=1000).contains(&self.cluster.capacity) {
            anyhow::bail!(
                "cluster.capacity {} is out of range: it must be 1 to 1000",
                self.cluster.capacity
            );
        }
        let rate = self.cluster.anti_entropy_exchanges_per_sec;
        if !(0.0..=1000.0).contains(&rate) {
            anyhow::bail!(
                "cluster.anti_entropy_exchanges_per_sec {rate} is out of range: it must be 0 to 1000"
            );
        }
        if self.cluster.anti_entropy_bytes_per_sec == 0 {
            anyhow::bail!(
                "cluster.anti_entropy_bytes_per_sec must be positive (set \
                 anti_entropy_exchanges_per_sec = 0 to turn anti-entropy off)"
            );
        }
        if self.cluster.stream_max_bytes < 4096 {
            anyhow::bail!(
                "cluster.stream_max_bytes {} is too small: it must be at least 4096 (one \
                 write must fit)",
                self.cluster.stream_max_bytes
            );
        }
        if self.cluster.tombstone_grace_secs <= self.cluster.hint_max_age_secs {
            anyhow::bail!(
                "cluster.tombstone_grace_secs {} must be longer than cluster.hint_max_age_secs                  {}: a hint older than the delete could bring a purged key back",
                self.cluster.tombstone_grace_secs,
                self.cluster.hint_max_age_secs
            );
        }
        let sweeps = self.cluster.tombstone_sweeps_per_sec;
        if !(0.0..=1000.0).contains(&sweeps) {
            anyhow::bail!(
                "cluster.tombstone_sweeps_per_sec {sweeps} is out of range: it must be 0 to 1000"
            );
        }
        if !(0.0..=1.0).contains(&self.cluster.read_repair_chance) {
            anyhow::bail!(
                "cluster.read_repair_chance {} is out of range: it must be 0 to 1",
                self.cluster.read_repair_chance
            );
        }
        if self.cluster.gossip_interval_ms == 0 || self.cluster.peer_timeout_ms == 0 {
            anyhow::bail!(
                "cluster.gossip_interval_ms and cluster.peer_timeout_ms must be positive"
            );
        }
        if self.node.datacenter.is_empty() || self.node.rack.is_empty() {
            anyhow::bail!("node.datacenter and node.rack must not be empty");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.node.grpc_addr.port(), DEFAULT_GRPC_PORT);
        assert!(!c.storage.sync_writes);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let e = Config::from_toml("[storage]\nsync_writs = true").unwrap_err();
        assert!(e.to_string().contains("sync_writs"), "{e}");
        let e = Config::from_toml("[storage]\ncompression = \"snappy\"").unwrap_err();
        assert!(e.to_string().contains("snappy"), "{e}");
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../../../meridian.example.toml");
        Config::from_toml(text).unwrap();
    }
}
