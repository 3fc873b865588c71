//! The `meridian` binary: a node (`meridian server`) and its command-line tools.

mod admin_cmds;
mod bench;
mod cli;
mod client_cmds;
mod cluster;
mod config;
mod crdt_cmds;
mod dev;
mod engine;
mod error;
mod grpc;
mod http;
mod http_body;
mod identity;
mod keyspaces;
mod locks;
mod metrics;
mod server;
mod storage;

use clap::Parser;

/// glibc's allocator showed up as the top cost under load (many small, short-lived buffers
/// per request across threads); mimalloc's thread-local free lists handle that pattern far
/// better.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use cli::{Cli, Command, KeyspaceCommand, ServerArgs};
use config::Config;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Server(_) | Command::Dev(_) | Command::EchoServer(_)
    ) {
        end_quietly_on_closed_pipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Rust ignores SIGPIPE, so `meridian admin status | head` panicked in `println!` once
/// `head` had read enough. The command-line tools take the default action back and end
/// quietly, as other Unix tools do. Servers keep ignoring it: a peer closing a socket is an
/// error to handle there, not a reason to die.
#[cfg(unix)]
#[allow(unsafe_code)]
fn end_quietly_on_closed_pipe() {
    // SAFETY: called first thing in `main`, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn end_quietly_on_closed_pipe() {}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server(args) => {
            let cfg = effective_config(&args)?;
            init_logging(&cfg);
            server::run(cfg).await
        }
        Command::Config(args) => {
            let cfg = effective_config(&args)?;
            print!("{}", toml::to_string_pretty(&cfg)?);
            Ok(())
        }
        Command::Get(a) => client_cmds::get(a).await,
        Command::Put(a) => client_cmds::put(a).await,
        Command::Delete(a) => client_cmds::delete(a).await,
        Command::Keyspace(KeyspaceCommand::Create(a)) => client_cmds::keyspace_create(a).await,
        Command::Keyspace(KeyspaceCommand::List(a)) => client_cmds::keyspace_list(a).await,
        Command::Counter(c) => crdt_cmds::counter(c).await,
        Command::Set(c) => crdt_cmds::set(c).await,
        Command::Flag(c) => crdt_cmds::flag(c).await,
        Command::Register(c) => crdt_cmds::register(c).await,
        Command::Crdt(c) => crdt_cmds::crdt(c).await,
        Command::Node(a) => client_cmds::node(a).await,
        Command::Admin(c) => admin_cmds::run(c).await,
        Command::Dev(a) => dev::run(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::EchoServer(a) => bench::echo::serve(a).await,
    }
}

/// Defaults, then the file, then environment and flags (clap has merged those two).
fn effective_config(args: &ServerArgs) -> anyhow::Result<Config> {
    let mut cfg = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(a) = &args.wan_grpc_addr {
        cfg.node.wan_grpc_addr = Some(a.clone());
    }
    if let Some(id) = &args.node_id {
        cfg.node.node_id = Some(id.clone());
    }
    if let Some(d) = &args.data_dir {
        cfg.node.data_dir = d.clone();
    }
    if let Some(a) = &args.grpc_addr {
        cfg.node.grpc_addr = server::parse_addr("--grpc-addr", a)?;
    }
    if let Some(a) = &args.http_addr {
        cfg.node.http_addr = server::parse_addr("--http-addr", a)?;
    }
    if let Some(dc) = &args.dc {
        cfg.node.datacenter = dc.clone();
    }
    if let Some(rack) = &args.rack {
        cfg.node.rack = rack.clone();
    }
    if let Some(c) = args.capacity {
        cfg.cluster.capacity = c;
    }
    if let Some(a) = &args.gossip_addr {
        cfg.cluster.gossip_addr = server::parse_addr("--gossip-addr", a)?;
    }
    if let Some(seeds) = &args.seeds {
        cfg.cluster.seeds = seeds.iter().filter(|s| !s.is_empty()).cloned().collect();
    }
    if let Some(v) = args.gossip_interval_ms {
        cfg.cluster.gossip_interval_ms = v;
    }
    if let Some(v) = args.phi_threshold {
        cfg.cluster.phi_threshold = v;
    }
    if let Some(v) = args.peer_timeout_ms {
        cfg.cluster.peer_timeout_ms = v;
    }
    if let Some(v) = args.read_repair_chance {
        cfg.cluster.read_repair_chance = v;
    }
    if let Some(v) = args.hint_max_age_secs {
        cfg.cluster.hint_max_age_secs = v;
    }
    if let Some(v) = args.hint_max_count {
        cfg.cluster.hint_max_count = v;
    }
    if let Some(v) = args.anti_entropy_exchanges_per_sec {
        cfg.cluster.anti_entropy_exchanges_per_sec = v;
    }
    if let Some(v) = args.anti_entropy_bytes_per_sec {
        cfg.cluster.anti_entropy_bytes_per_sec = v;
    }
    if let Some(v) = args.tombstone_grace_secs {
        cfg.cluster.tombstone_grace_secs = v;
    }
    if let Some(v) = args.tombstone_sweeps_per_sec {
        cfg.cluster.tombstone_sweeps_per_sec = v;
    }
    if let Some(v) = args.stream_max_bytes {
        cfg.cluster.stream_max_bytes = v;
    }
    if let Some(s) = args.sync_writes {
        cfg.storage.sync_writes = s;
    }
    if let Some(l) = &args.log {
        cfg.log.level = l.clone();
    }
    if let Some(f) = &args.log_format {
        cfg.log.format = f.clone();
    }
    cfg.validate()?;
    Ok(cfg)
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
