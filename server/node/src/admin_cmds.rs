//! `meridian admin ...`: operator views of the cluster (members, ring, hints, a key on every
//! replica) and decommission with a progress bar.

use crate::cli::{AdminCommand, EndpointArgs};
use anyhow::Context as _;
use meridian_sdk::proto as pb;
use pb::admin_client::AdminClient;
use std::collections::BTreeMap;
use tonic::transport::Channel;

async fn admin(endpoint: &str) -> anyhow::Result<AdminClient<Channel>> {
    AdminClient::connect(endpoint.to_string())
        .await
        .with_context(|| format!("connecting to {endpoint}"))
}

async fn topology(e: &EndpointArgs) -> anyhow::Result<pb::TopologyResponse> {
    Ok(admin(&e.endpoint)
        .await?
        .topology(pb::TopologyRequest {})
        .await?
        .into_inner())
}

/// Finds a member by full id or unique prefix (ids are long; operators type prefixes).
fn find_member<'a>(topo: &'a pb::TopologyResponse, id: &str) -> anyhow::Result<&'a pb::Member> {
    let want = id.replace('-', "").to_ascii_lowercase();
    let matches: Vec<_> = topo
        .members
        .iter()
        .filter(|m| m.node_id.starts_with(&want))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => anyhow::bail!("no member has an id starting with {id:?}"),
        _ => anyhow::bail!(
            "{} members have ids starting with {id:?}; give more characters",
            matches.len()
        ),
    }
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Members(e) => members(&e).await,
        AdminCommand::Ring(e) => ring(&e).await,
        AdminCommand::Hints { endpoint, all } => hints(&endpoint, all).await,
        AdminCommand::Status { endpoint, all } => status(&endpoint, all).await,
        AdminCommand::Inspect {
            endpoint,
            keyspace,
            key,
            node,
        } => inspect(&endpoint, &keyspace, &key, node.as_deref()).await,
        AdminCommand::Decommission { endpoint, node } => decommission(&endpoint, &node).await,
        AdminCommand::Layout(e) => layout(&e).await,
        AdminCommand::Remove { endpoint, node } => remove(&endpoint, &node).await,
        AdminCommand::Repair {
            endpoint,
            keyspace,
            dc,
            this_node,
        } => repair(&endpoint, keyspace, dc, this_node).await,
    }
}

async fn repair(
    e: &EndpointArgs,
    keyspace: Option<String>,
    dc: Option<String>,
    this_node: bool,
) -> anyhow::Result<()> {
    let targets: Vec<(String, String)> = if this_node {
        vec![(String::new(), e.endpoint.clone())]
    } else {
        topology(e)
            .await?
            .members
            .into_iter()
            .filter(|m| m.state == "up")
            .map(|m| (m.node_id, m.grpc_addr))
            .collect()
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} exchanges  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut partitions, mut keys, mut bytes, mut failed) = (0u64, 0u64, 0u64, 0u32);
    for (id, addr) in &targets {
        let mut stream = admin(addr)
            .await?
            .repair(pb::RepairRequest {
                keyspace: keyspace.clone().unwrap_or_default(),
                dc: dc.clone().unwrap_or_default(),
            })
            .await?
            .into_inner();
        let mut last = pb::RepairProgress::default();
        let mut counted = false;
        while let Some(p) = stream.message().await? {
            if !counted {
                bar.inc_length(u64::from(p.exchanges_total));
                counted = true;
            }
            bar.inc(u64::from(p.exchanges_done - last.exchanges_done));
            let node = if id.is_empty() { &p.node_id } else { id };
            bar.set_message(format!(
                "node {}: {}",
                &node[..node.len().min(8)],
                p.message
            ));
            last = p;
        }
        if !last.finished {
            bar.abandon();
            anyhow::bail!("node {id} closed the repair stream before it finished");
        }
        partitions += last.partitions_compared;
        keys += last.keys_repaired;
        bytes += last.bytes;
        failed += last.failed;
    }
    bar.finish_and_clear();
    println!(
        "repair finished on {} node(s): {partitions} partition comparisons, {keys} keys repaired, {bytes} bytes exchanged, {failed} exchanges failed",
        targets.len()
    );
    if failed > 0 {
        anyhow::bail!(
            "{failed} exchanges failed (peers down or unreachable); run repair again once they are up"
        );
    }
    Ok(())
}

async fn members(e: &EndpointArgs) -> anyhow::Result<()> {
    let topo = topology(e).await?;
    println!(
        "layout version {} digest {}{}  (as seen by node {})",
        topo.epoch,
        topo.layout_digest,
        if topo.read_version < topo.epoch {
            format!(
                ", reads from version {} while data moves",
                topo.read_version
            )
        } else {
            String::new()
        },
        topo.node_id
    );
    println!(
        "{:<32}  {:<6} {:<8} {:>4}  {:<8} {:>10} {:>6}  grpc",
        "node", "dc", "rack", "cap", "state", "partitions", "synced"
    );
    for m in &topo.members {
        println!(
            "{:<32}  {:<6} {:<8} {:>4}  {:<8} {:>10} {:>6}  {}",
            m.node_id,
            m.datacenter,
            m.rack,
            m.capacity,
            m.state,
            m.partitions,
            m.synced_epoch,
            m.grpc_addr
        );
    }
    Ok(())
}

async fn ring(e: &EndpointArgs) -> anyhow::Result<()> {
    let topo = topology(e).await?;
    println!("epoch {}, {} partitions", topo.epoch, topo.partitions);
    for dc in &topo.datacenters {
        let width = dc.width as usize;
        println!(
            "\ndatacenter {} (preference lists of {width})",
            dc.datacenter
        );
        // Replica counts per node and rank: rank 0 is the first owner of a partition.
        let mut counts: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, idx) in dc.owners.iter().enumerate() {
            counts.entry(*idx).or_insert_with(|| vec![0; width])[i % width.max(1)] += 1;
        }
        let total_cap: u32 = topo
            .members
            .iter()
            .filter(|m| m.datacenter == dc.datacenter && m.state != "left")
            .map(|m| m.capacity)
            .sum();
        println!(
            "{:<32} {:<8} {:>4} {:>7}  replicas by rank",
            "node", "rack", "cap", "share"
        );
        for (idx, ranks) in counts {
            let Some(m) = topo.members.get(idx as usize) else {
                continue;
            };
            println!(
                "{:<32} {:<8} {:>4} {:>6.1}%  {:?}",
                m.node_id,
                m.rack,
                m.capacity,
                100.0 * f64::from(m.capacity) / f64::from(total_cap.max(1)),
                ranks
            );
        }
        let show = 4.min(topo.partitions as usize);
        for p in 0..show {
            let list: Vec<String> = dc.owners[p * width..(p + 1) * width]
                .iter()
                .filter_map(|i| topo.members.get(*i as usize))
                .map(|m| m.node_id[..8].to_string())
                .collect();
            println!("  partition {p}: {}", list.join(" "));
        }
    }
    Ok(())
}

/// The node at the endpoint, or every live member with `all`: (label, gRPC address).
async fn endpoints(e: &EndpointArgs, all: bool) -> anyhow::Result<Vec<(String, String)>> {
    Ok(if all {
        topology(e)
            .await?
            .members
            .into_iter()
            .filter(|m| m.state == "up")
            .map(|m| (m.node_id, m.grpc_addr))
            .collect()
    } else {
        vec![(String::new(), e.endpoint.clone())]
    })
}

async fn status(e: &EndpointArgs, all: bool) -> anyhow::Result<()> {
    for (id, url) in endpoints(e, all).await? {
        let mut client = admin(&url).await?;
        let info = client.node_info(pb::NodeInfoRequest {}).await?.into_inner();
        let label = if id.is_empty() { url.clone() } else { id };
        let h = client.hints(pb::HintsRequest {}).await?.into_inner();
        let s = client.streams(pb::StreamsRequest {}).await?.into_inner();
        let queued: u64 = h.queues.iter().map(|q| q.count).sum();
        println!(
            "{label} ({}, up {} s): {queued} hints queued",
            info.datacenter, info.uptime_seconds
        );
        for o in &s.outbound {
            let sink = if o.sink.is_empty() {
                "no live node"
            } else {
                o.sink.as_str()
            };
            println!(
                "  stream to {}: {} writes queued ({} bytes, {} in references), {} sent, \
                 {} shed to references, {} dropped to anti-entropy; sink {sink}",
                o.datacenter,
                o.queued,
                o.queued_bytes,
                o.queued_reference_bytes,
                o.sent,
                o.shed_to_references,
                o.dropped
            );
        }
        for i in &s.inbound {
            println!(
                "  stream from {}: {} writes applied, lag p50 {} ms, p99 {} ms, {} gaps refused",
                i.datacenter, i.applied, i.lag_p50_ms, i.lag_p99_ms, i.gaps
            );
        }
        if s.outbound.is_empty() && s.inbound.is_empty() {
            println!("  no replication streams (a single DC, or no cross-DC writes yet)");
        }
    }
    Ok(())
}

async fn hints(e: &EndpointArgs, all: bool) -> anyhow::Result<()> {
    for (id, url) in endpoints(e, all).await? {
        let h = admin(&url)
            .await?
            .hints(pb::HintsRequest {})
            .await?
            .into_inner();
        let label = if id.is_empty() { url.clone() } else { id };
        let queued: u64 = h.queues.iter().map(|q| q.count).sum();
        println!(
            "{label}: {queued} hints queued, {} delivered, {} dropped",
            h.delivered, h.dropped
        );
        for q in h.queues {
            println!(
                "  for {}: {} hints, {} bytes, oldest {} ms",
                q.target, q.count, q.bytes, q.oldest_age_ms
            );
        }
    }
    Ok(())
}

async fn inspect(
    e: &EndpointArgs,
    keyspace: &str,
    key: &str,
    node: Option<&str>,
) -> anyhow::Result<()> {
    let topo = topology(e).await?;
    let req = pb::InspectRequest {
        keyspace: keyspace.to_string(),
        key: key.as_bytes().to_vec().into(),
    };
    let first = admin(&e.endpoint)
        .await?
        .inspect(req.clone())
        .await?
        .into_inner();
    let targets: Vec<&pb::Member> = match node {
        Some(n) => vec![find_member(&topo, n)?],
        None => first
            .replicas
            .iter()
            .filter_map(|id| topo.members.iter().find(|m| m.node_id == *id))
            .collect(),
    };
    let mut states = Vec::new();
    for m in targets {
        println!(
            "== node {} ({}, {}) [{}]",
            m.node_id, m.datacenter, m.rack, m.state
        );
        match admin(&m.grpc_addr).await {
            Ok(mut c) => match c.inspect(req.clone()).await {
                Ok(r) => {
                    let r = r.into_inner();
                    println!("{}", r.text);
                    states.push(r.replicated);
                }
                Err(s) => println!("unreachable: {}", s.message()),
            },
            Err(err) => println!("unreachable: {err:#}"),
        }
    }
    if states.len() > 1 {
        let same = states.windows(2).all(|w| w[0] == w[1]);
        println!(
            "replicas {}",
            if same {
                "agree"
            } else {
                "DIFFER (hints, read repair or streaming will converge them)"
            }
        );
    }
    Ok(())
}

async fn decommission(e: &EndpointArgs, node: &str) -> anyhow::Result<()> {
    let topo = topology(e).await?;
    let m = find_member(&topo, node)?;
    let mut client = admin(&m.grpc_addr).await?;
    let mut stream = client
        .decommission(pb::DecommissionRequest {
            node_id: m.node_id.clone(),
        })
        .await?
        .into_inner();
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} nodes caught up  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    while let Some(p) = stream.message().await? {
        bar.set_length(u64::from(p.total_nodes.max(1)));
        bar.set_position(u64::from(p.total_nodes.saturating_sub(p.pending_nodes)));
        bar.set_message(format!("epoch {}: {}", p.epoch, p.message));
        if p.done {
            bar.finish_with_message(format!("node {} has left (epoch {})", m.node_id, p.epoch));
            return Ok(());
        }
    }
    bar.abandon();
    anyhow::bail!("the node closed the stream before the decommission finished")
}

async fn layout(e: &EndpointArgs) -> anyhow::Result<()> {
    let l = admin(&e.endpoint)
        .await?
        .layout(pb::LayoutRequest {})
        .await?
        .into_inner();
    println!("layout as seen by node {}", l.node_id);
    let last = l.versions.len().saturating_sub(1);
    for (i, v) in l.versions.iter().enumerate() {
        let role = match (i == 0, i == last) {
            (true, true) => "current, settled",
            (true, false) => "read version (retires once the newer ones are synced)",
            (false, true) => "current",
            (false, false) => "active",
        };
        println!(
            "version {}  digest {}  parent {}  [{role}]",
            v.version, v.digest, v.parent
        );
        println!(
            "  {} members, {} acknowledged",
            v.members.len(),
            v.acked.len()
        );
        for m in &v.members {
            let mark = if v.acked.contains(m) {
                "synced"
            } else {
                "streaming"
            };
            println!("    {m}  {mark}");
        }
    }
    if l.staged.is_empty() {
        println!("no staged changes");
    } else {
        println!("staged changes:");
        for s in &l.staged {
            println!(
                "  {}  {}  {} (staged at version {} by {})",
                s.node_id,
                s.change,
                if s.pending { "PENDING" } else { "committed" },
                s.staged_at_version,
                s.author
            );
        }
    }
    Ok(())
}

async fn remove(e: &EndpointArgs, node: &str) -> anyhow::Result<()> {
    let r = admin(&e.endpoint)
        .await?
        .remove(pb::RemoveRequest {
            node_id: node.to_string(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    println!(
        "node {} removed in layout version {}; its partitions stream from the other replicas",
        r.node_id, r.version
    );
    Ok(())
}
