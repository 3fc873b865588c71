//! Command-line interface. `meridian server` runs a node; the other subcommands are clients
//! built on the Rust SDK.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "meridian",
    version,
    about = "Meridian: a geo-replicated key-value store"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node.
    Server(ServerArgs),
    /// Print the effective configuration (file + environment + flags) as TOML.
    Config(ServerArgs),
    /// Read a key: prints each sibling, and the context on stderr.
    Get(KeyArgs),
    /// Write a key.
    Put(PutArgs),
    /// Delete a key.
    Delete(KeyArgs),
    /// Manage keyspaces.
    #[command(subcommand)]
    Keyspace(KeyspaceCommand),
    /// Counter keyspaces: incr, decr, get. Prints the value (JSON) after the operation.
    #[command(subcommand)]
    Counter(CounterCommand),
    /// Set keyspaces: add, remove, members.
    #[command(subcommand)]
    Set(SetCommand),
    /// Flag keyspaces: enable, disable, get.
    #[command(subcommand)]
    Flag(FlagCommand),
    /// Register and mvregister keyspaces: set, get.
    #[command(subcommand)]
    Register(RegisterCommand),
    /// Any CRDT keyspace (maps too): update with JSON operations, fetch as JSON.
    #[command(subcommand)]
    Crdt(CrdtCommand),
    /// Show the node's identity and addresses.
    Node(EndpointArgs),
    /// Cluster administration: members, ring, hints, inspect, decommission.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Start a local cluster of 2 datacenters x 3 nodes on 127.0.0.x.
    Dev(DevArgs),
    /// Load generator: YCSB workloads against Meridian, Redis or the echo target.
    Bench(crate::bench::BenchArgs),
    /// Serve the bare gRPC echo target (same stack and stream path, no storage) for the bench.
    EchoServer(EchoArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// TOML configuration file (see meridian.example.toml).
    #[arg(long, env = "MERIDIAN_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "MERIDIAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// gRPC address other datacenters reach this node at, if not --grpc-addr (HOST:PORT).
    #[arg(long, env = "MERIDIAN_WAN_GRPC_ADDR")]
    pub wan_grpc_addr: Option<String>,
    /// Come back as this node id on an empty data directory (after a disk replacement).
    #[arg(long, env = "MERIDIAN_NODE_ID")]
    pub node_id: Option<String>,
    /// gRPC listen address, HOST:PORT (port 0 picks one).
    #[arg(long, env = "MERIDIAN_GRPC_ADDR")]
    pub grpc_addr: Option<String>,
    /// HTTP listen address, HOST:PORT (port 0 picks one).
    #[arg(long, env = "MERIDIAN_HTTP_ADDR")]
    pub http_addr: Option<String>,
    #[arg(long, env = "MERIDIAN_DC")]
    pub dc: Option<String>,
    #[arg(long, env = "MERIDIAN_RACK")]
    pub rack: Option<String>,
    /// Share of partitions relative to the DC's other nodes (1 to 1000).
    #[arg(long, env = "MERIDIAN_CAPACITY")]
    pub capacity: Option<u32>,
    /// UDP gossip address, HOST:PORT (port 0 picks one).
    #[arg(long, env = "MERIDIAN_GOSSIP_ADDR")]
    pub gossip_addr: Option<String>,
    /// Gossip addresses of nodes to join through, comma-separated HOST:PORT.
    #[arg(long, env = "MERIDIAN_SEEDS", value_delimiter = ',')]
    pub seeds: Option<Vec<String>>,
    /// Gossip round interval in milliseconds (failure detection scales with it).
    #[arg(long, env = "MERIDIAN_GOSSIP_INTERVAL_MS")]
    pub gossip_interval_ms: Option<u64>,
    /// Failure detector threshold (phi accrual); lower marks dead nodes down sooner.
    #[arg(long, env = "MERIDIAN_PHI_THRESHOLD")]
    pub phi_threshold: Option<f64>,
    /// Deadline of one node-to-node request in milliseconds.
    #[arg(long, env = "MERIDIAN_PEER_TIMEOUT_MS")]
    pub peer_timeout_ms: Option<u64>,
    /// Share of reads (0 to 1) that ask every replica in scope, repairing the stale ones.
    #[arg(long, env = "MERIDIAN_READ_REPAIR_CHANCE")]
    pub read_repair_chance: Option<f64>,
    /// Hints older than this many seconds are dropped (and counted).
    #[arg(long, env = "MERIDIAN_HINT_MAX_AGE_SECS")]
    pub hint_max_age_secs: Option<u64>,
    /// Hints kept per target node at most (the oldest are dropped and counted).
    #[arg(long, env = "MERIDIAN_HINT_MAX_COUNT")]
    pub hint_max_count: Option<u64>,
    /// Anti-entropy exchanges started per second (0: only on `admin repair`).
    #[arg(long, env = "MERIDIAN_ANTI_ENTROPY_EXCHANGES_PER_SEC")]
    pub anti_entropy_exchanges_per_sec: Option<f64>,
    /// Bytes per second continuous anti-entropy may move.
    #[arg(long, env = "MERIDIAN_ANTI_ENTROPY_BYTES_PER_SEC")]
    pub anti_entropy_bytes_per_sec: Option<u64>,
    /// Bytes of writes each cross-DC replication stream queues in full before shedding.
    #[arg(long, env = "MERIDIAN_STREAM_MAX_BYTES")]
    pub stream_max_bytes: Option<u64>,
    /// Seconds between every replica holding a tombstone and its purge (> hint max age).
    #[arg(long, env = "MERIDIAN_TOMBSTONE_GRACE_SECS")]
    pub tombstone_grace_secs: Option<u64>,
    /// Partitions swept for purgeable tombstones per second (0: tombstone GC off).
    #[arg(long, env = "MERIDIAN_TOMBSTONE_SWEEPS_PER_SEC")]
    pub tombstone_sweeps_per_sec: Option<f64>,
    /// fsync the WAL before acknowledging writes (group commit).
    #[arg(long, env = "MERIDIAN_SYNC_WRITES")]
    pub sync_writes: Option<bool>,
    #[arg(long, env = "MERIDIAN_LOG")]
    pub log: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "MERIDIAN_LOG_FORMAT")]
    pub log_format: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct EndpointArgs {
    /// gRPC endpoint URL.
    #[arg(
        long,
        env = "MERIDIAN_ENDPOINT",
        default_value = "http://127.0.0.1:7070"
    )]
    pub endpoint: String,
}

#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    #[arg(long, short = 'k', default_value = "default")]
    pub keyspace: String,
    pub key: String,
    /// Context (base64url) from an earlier read or write.
    #[arg(long)]
    pub context: Option<String>,
    /// ONE, TWO, QUORUM, ALL, LOCAL_ONE, LOCAL_QUORUM or EACH_QUORUM.
    #[arg(long)]
    pub consistency: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// The value; `-` reads it from standard input.
    pub value: String,
}

#[derive(Debug, Clone, Args)]
pub struct AmountArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    #[arg(default_value_t = 1, allow_negative_numbers = true)]
    pub by: i64,
}

#[derive(Debug, Clone, Args)]
pub struct ElementsArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    #[arg(required = true)]
    pub elements: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum CounterCommand {
    /// Add BY (default 1; may be negative).
    Incr(AmountArgs),
    /// Subtract BY (default 1).
    Decr(AmountArgs),
    Get(KeyArgs),
}

#[derive(Debug, Subcommand)]
pub enum SetCommand {
    Add(ElementsArgs),
    /// Remove elements: the adds the --context saw, or all the replica holds.
    Remove(ElementsArgs),
    Members(KeyArgs),
}

#[derive(Debug, Subcommand)]
pub enum FlagCommand {
    Enable(KeyArgs),
    Disable(KeyArgs),
    Get(KeyArgs),
}

#[derive(Debug, Subcommand)]
pub enum RegisterCommand {
    /// Assign a value (`-` reads standard input).
    Set(PutArgs),
    Get(KeyArgs),
}

#[derive(Debug, Subcommand)]
pub enum CrdtCommand {
    /// Apply operations given as JSON, e.g.
    /// '[{"update": {"field": "visits:counter", "op": {"increment": 1}}}]'.
    Update(OpsArgs),
    Fetch(KeyArgs),
}

#[derive(Debug, Clone, Args)]
pub struct OpsArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// A JSON array of operations (see the HTTP API in the README).
    pub ops: String,
}

#[derive(Debug, Subcommand)]
pub enum KeyspaceCommand {
    /// Create a keyspace (identical re-creation is a no-op).
    Create(KeyspaceCreateArgs),
    /// List keyspaces.
    List(EndpointArgs),
}

#[derive(Debug, Clone, Args)]
pub struct KeyspaceCreateArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    pub name: String,
    /// siblings (default), lww, or a CRDT: counter, set, map, register, mvregister, flag.
    #[arg(long, default_value = "siblings")]
    pub kind: String,
    /// Replicas per datacenter, e.g. dc1=3,dc2=3.
    #[arg(long, value_delimiter = ',')]
    pub replication: Vec<String>,
    /// Largest key + value in bytes (default 10240).
    #[arg(long)]
    pub max_value_bytes: Option<u32>,
    /// Sibling limit per key (default 100).
    #[arg(long)]
    pub max_siblings: Option<u32>,
    /// fsync every write to this keyspace.
    #[arg(long)]
    pub sync_writes: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Members with liveness, placement share and the layout version each has synced.
    Members(EndpointArgs),
    /// The placement: replicas per node by rank, and the first partitions' owners.
    Ring(EndpointArgs),
    /// A node's replication streams (queue and sink per remote DC, lag per source DC) and
    /// hints (or every node's with --all).
    Status {
        #[command(flatten)]
        endpoint: EndpointArgs,
        #[arg(long)]
        all: bool,
    },
    /// Hint queues of a node (or every node with --all).
    Hints {
        #[command(flatten)]
        endpoint: EndpointArgs,
        #[arg(long)]
        all: bool,
    },
    /// A key's state on each of its replicas (or one node): siblings, clock, tombstones.
    Inspect {
        #[command(flatten)]
        endpoint: EndpointArgs,
        keyspace: String,
        key: String,
        /// Node id (or unique prefix) to inspect instead of every replica.
        #[arg(long)]
        node: Option<String>,
    },
    /// Move a node's data to its new owners, then remove it from the cluster.
    Decommission {
        #[command(flatten)]
        endpoint: EndpointArgs,
        /// Node id (or unique prefix).
        node: String,
    },
    /// Layout versions (digests, acknowledgements) and staged changes.
    Layout(EndpointArgs),
    /// Run anti-entropy now: every node compares its Merkle trees with every replica it
    /// shares partitions with and exchanges the keys that differ (or only the --endpoint
    /// node with --this-node).
    Repair {
        #[command(flatten)]
        endpoint: EndpointArgs,
        /// Only this keyspace (default: every keyspace).
        keyspace: Option<String>,
        /// Only compare with replicas in this datacenter.
        #[arg(long)]
        dc: Option<String>,
        /// Only the node at --endpoint, not every member.
        #[arg(long)]
        this_node: bool,
    },
    /// Take a dead member out of the layout for good; its partitions are rebuilt from the
    /// other replicas. A node that is up must be decommissioned instead.
    Remove {
        #[command(flatten)]
        endpoint: EndpointArgs,
        /// Node id (or unique prefix).
        node: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Folder holding every node's data; reused on restart.
    #[arg(long, default_value = "./meridian-dev")]
    pub data_dir: PathBuf,
    /// gRPC port on every node's address (HTTP is +10, gossip +20).
    #[arg(long, default_value_t = 7070, value_parser = clap::value_parser!(u16).range(1..=65515))]
    pub port: u16,
    /// Nodes per datacenter (1 to 9: node n of DC d listens on 127.0.0.{d}{n}).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub nodes_per_dc: u8,
}

#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    #[arg(long, default_value = "127.0.0.1:7090")]
    pub grpc_addr: String,
    /// Size of the value returned for a get.
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,
}
