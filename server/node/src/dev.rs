//! `meridian dev`: a local cluster of two datacenters on loopback addresses, one process per
//! node, all data under one folder. Restarting on the same folder keeps the data (node ids
//! live in each node's data directory, and addresses are fixed per node).

use crate::cli::DevArgs;
use anyhow::Context as _;
use meridian_sdk::proto as pb;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct DevNode {
    name: String,
    dc: String,
    child: Child,
    grpc: String,
    http: String,
    id: String,
}

pub async fn run(a: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("creating {}", a.data_dir.display()))?;
    let exe = std::env::current_exe().context("locating the meridian binary")?;
    let dcs = ["dc1", "dc2"];
    let seeds: Vec<String> = dcs
        .iter()
        .enumerate()
        .map(|(d, _)| format!("127.0.0.{}:{}", (d + 1) * 10 + 1, a.port + 20))
        .collect();
    let mut nodes = Vec::new();
    for (d, dc) in dcs.iter().enumerate() {
        for n in 1..=a.nodes_per_dc {
            let ip = format!("127.0.0.{}", (d + 1) * 10 + usize::from(n));
            let name = format!("{dc}-n{n}");
            let dir = a.data_dir.join(&name);
            let log = std::fs::File::create(a.data_dir.join(format!("{name}.log")))
                .with_context(|| format!("creating the log of {name}"))?;
            let mut child = Command::new(&exe)
                .arg("server")
                .arg("--data-dir")
                .arg(&dir)
                .args(["--grpc-addr", &format!("{ip}:{}", a.port)])
                .args(["--http-addr", &format!("{ip}:{}", a.port + 10)])
                .args(["--gossip-addr", &format!("{ip}:{}", a.port + 20)])
                .args(["--dc", dc, "--rack", &format!("rack{n}")])
                .args(["--seeds", &seeds.join(",")])
                .env("MERIDIAN_GOSSIP_INTERVAL_MS", "200")
                .stdout(Stdio::piped())
                .stderr(Stdio::from(log))
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {name}"))?;
            let stdout = child.stdout.take().context("child stdout")?;
            let mut lines = BufReader::new(stdout).lines();
            let ready = tokio::time::timeout(Duration::from_secs(60), async {
                while let Some(line) = lines.next_line().await? {
                    if line.starts_with("MERIDIAN_READY") {
                        return Ok::<_, std::io::Error>(Some(line));
                    }
                }
                Ok(None)
            })
            .await;
            let line = match ready {
                Ok(Ok(Some(line))) => line,
                _ => anyhow::bail!(
                    "{name} did not start; see {}",
                    a.data_dir.join(format!("{name}.log")).display()
                ),
            };
            let field = |k: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(&format!("{k}=")).map(str::to_string))
                    .unwrap_or_default()
            };
            nodes.push(DevNode {
                name,
                dc: dc.to_string(),
                grpc: field("grpc"),
                http: field("http"),
                id: field("node_id"),
                child,
            });
        }
    }
    let first = nodes[0].grpc.clone();
    wait_for_cluster(&first, nodes.len()).await?;
    // Three replicas per DC, or as many as there are nodes.
    let rf = u32::from(a.nodes_per_dc.min(3));
    create_demo(&first, rf).await?;
    let endpoints: Vec<String> = nodes.iter().map(|n| n.grpc.clone()).collect();
    wait_for_keyspace(&endpoints, "demo").await?;
    println!(
        "Meridian dev cluster: {} nodes, data in {}",
        nodes.len(),
        a.data_dir.display()
    );
    println!("{:<8} {:<4} {:<36} {:<24} http", "node", "dc", "id", "grpc");
    for n in &nodes {
        println!(
            "{:<8} {:<4} {:<36} {:<24} {}",
            n.name, n.dc, n.id, n.grpc, n.http
        );
    }
    println!("keyspace `demo` is replicated {{dc1 = {rf}, dc2 = {rf}}}; try:");
    println!(
        "  curl -X PUT --data 'hello' {}/v1/data/demo/greeting",
        nodes[0].http
    );
    println!(
        "  curl {}/v1/data/demo/greeting",
        nodes[nodes.len() - 1].http
    );
    println!(
        "  export MERIDIAN_ENDPOINT={}   # where `meridian get/put/counter/...` go",
        nodes[0].grpc
    );
    println!("Ctrl-C stops the cluster.");
    // SIGTERM too: a script or supervisor stopping `meridian dev` must not leave its nodes
    // running as orphans that hold the ports.
    crate::server::shutdown_signal().await;
    println!("stopping...");
    for n in &nodes {
        if let Some(pid) = n.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
    }
    for n in &mut nodes {
        if tokio::time::timeout(Duration::from_secs(20), n.child.wait())
            .await
            .is_err()
        {
            let _ = n.child.kill().await;
        }
    }
    println!("stopped");
    Ok(())
}

/// Waits until the first node sees every node up and every node caught up with placement.
async fn wait_for_cluster(endpoint: &str, expected: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut c) = pb::admin_client::AdminClient::connect(endpoint.to_string()).await
            && let Ok(t) = c.topology(pb::TopologyRequest {}).await
        {
            let t = t.into_inner();
            let up = t.members.iter().filter(|m| m.state == "up").count();
            if up >= expected
                && t.read_version == t.epoch
                && t.members
                    .iter()
                    .all(|m| m.state != "up" || m.synced_epoch >= t.epoch)
            {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the cluster did not form within 60 s; see the node logs");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every node knows the keyspace: the banner invites a read on the last node right
/// after a write on the first, which must not meet "keyspace does not exist" while the
/// definition is still spreading.
async fn wait_for_keyspace(endpoints: &[String], name: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for endpoint in endpoints {
        loop {
            if let Ok(mut c) = pb::admin_client::AdminClient::connect(endpoint.clone()).await
                && let Ok(r) = c.list_keyspaces(pb::ListKeyspacesRequest {}).await
                && r.into_inner()
                    .keyspaces
                    .iter()
                    .any(|k| k.spec.as_ref().is_some_and(|s| s.name == name))
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("keyspace {name} did not reach {endpoint} within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

async fn create_demo(endpoint: &str, rf: u32) -> anyhow::Result<()> {
    let mut c = pb::admin_client::AdminClient::connect(endpoint.to_string()).await?;
    c.create_keyspace(pb::CreateKeyspaceRequest {
        spec: Some(pb::KeyspaceSpec {
            name: "demo".into(),
            replication: [("dc1".to_string(), rf), ("dc2".to_string(), rf)].into(),
            ..Default::default()
        }),
    })
    .await
    .context("creating keyspace demo")?;
    Ok(())
}
