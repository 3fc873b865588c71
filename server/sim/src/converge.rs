//! How fast a layout change spreads: a cluster of many nodes holding the same layout, one new
//! node that starts with none, and every node running the core's `LayoutAgent` and history
//! merge on its 200 ms tick over a network with DC latencies. Measured in simulated time:
//! until the join is committed somewhere, and until every node holds that version.
//! `meridian-sim --converge NODES DCS` prints the figures.
//!
//! Fingerprints spread by gossip as in the node: every 500 ms each node push-pulls its view
//! (each node's layout version and fingerprint, newest per node wins) with three random
//! peers; a node exchanges histories only with peers its view says differ.

use crate::rng::Rng;
use meridian_core::ActorId;
use meridian_core::layout::agent::{LayoutAgent, PeerLayout};
use meridian_core::layout::{Digest, LayoutHistory, LayoutMember, Role};
use std::collections::BTreeMap;
use std::sync::Arc;

const TICK: u64 = 200;
const GOSSIP_EVERY: u64 = 500;
const GOSSIP_FANOUT: usize = 3;

/// What one node's gossip view says of another: (generation, version, fingerprint).
type Entry = (u64, u64, Digest);

pub struct Convergence {
    pub nodes: usize,
    pub dcs: usize,
    /// Simulated ms from the new node's start to the first commit of its join.
    pub committed_ms: u64,
    /// Simulated ms from the new node's start until every node holds that version.
    pub converged_ms: u64,
    pub exchanges: u64,
    /// Encoded size of the settled history before the join: what one exchange carries.
    pub history_bytes: usize,
}

struct Node {
    agent: LayoutAgent,
    history: Arc<LayoutHistory>,
    fingerprint: Digest,
}

enum Event {
    Tick(usize),
    Gossip(usize),
    /// A history arrives at `to`; `reply_to` gets `to`'s merged history back.
    Arrive {
        to: usize,
        history: Arc<LayoutHistory>,
        reply_to: Option<usize>,
    },
}

fn member(rng: &mut Rng, dc: &str) -> LayoutMember {
    let mut id = rng.bytes16();
    id[12..].copy_from_slice(&[0; 4]);
    LayoutMember {
        id: ActorId(id),
        dc: dc.to_string(),
        rack: format!("r{}", rng.range(0, 10)),
        capacity: [1, 2, 4][rng.range(0, 3) as usize],
        role: Role::Storage,
    }
}

pub fn measure(count: usize, dcs: usize, seed: u64) -> Convergence {
    let mut rng = Rng::new(seed);
    let names: Vec<String> = (1..=dcs).map(|d| format!("dc{d}")).collect();
    let members: Vec<LayoutMember> = (0..count)
        .map(|i| member(&mut rng, &names[i % dcs]))
        .collect();
    let history = crate::founding::cluster(&members, [7; 32], true);
    let base = Arc::new(history);
    let base_fp = base.fingerprint();
    let agent = |m: LayoutMember| LayoutAgent {
        me: m,
        expects_peers: true,
        bootstrap_grace_ms: 3_000,
    };
    let mut nodes: Vec<Node> = members
        .into_iter()
        .map(|m| Node {
            agent: agent(m),
            history: base.clone(),
            fingerprint: base_fp,
        })
        .collect();
    let newcomer = member(&mut rng, &names[0]);
    let empty = LayoutHistory::default();
    nodes.push(Node {
        agent: agent(newcomer.clone()),
        fingerprint: empty.fingerprint(),
        history: Arc::new(empty),
    });
    let dc_of: Vec<String> = nodes.iter().map(|n| n.agent.me.dc.clone()).collect();
    let mut queue: BTreeMap<(u64, u64), Event> = BTreeMap::new();
    let mut seq = 0u64;
    let mut push = |q: &mut BTreeMap<(u64, u64), Event>, t: u64, e: Event| {
        seq += 1;
        q.insert((t, seq), e);
    };
    let n = nodes.len();
    let entry = |node: &Node, generation: u64| {
        (
            generation,
            node.history.current().map_or(0, |v| v.version),
            node.fingerprint,
        )
    };
    // The cluster knows itself; nobody knows the newcomer yet (gossip introduces it), and
    // it knows everyone (its seeds told it).
    let mut initial: Vec<Entry> = nodes.iter().map(|nd| entry(nd, 0)).collect();
    initial[n - 1] = (0, base.current().map_or(0, |v| v.version), base_fp);
    let mut views: Vec<Vec<Entry>> = vec![initial; n];
    let mut generation = vec![0u64; n];
    generation[n - 1] = 1;
    views[n - 1][n - 1] = entry(&nodes[n - 1], 1);
    for i in 0..n {
        let at = rng.range(0, TICK);
        push(&mut queue, at, Event::Tick(i));
        let at = rng.range(0, GOSSIP_EVERY);
        push(&mut queue, at, Event::Gossip(i));
    }
    let mut out = Convergence {
        nodes: nodes.len(),
        dcs,
        committed_ms: 0,
        converged_ms: 0,
        exchanges: 0,
        history_bytes: base.encode().len(),
    };
    while let Some(((now, _), event)) = queue.pop_first() {
        if now > 600_000 {
            break;
        }
        match event {
            Event::Gossip(i) => {
                for _ in 0..GOSSIP_FANOUT {
                    let j = rng.range(0, n as u64) as usize;
                    if j == i {
                        continue;
                    }
                    let (vi, vj) = if i < j {
                        let (a, b) = views.split_at_mut(j);
                        (&mut a[i], &mut b[0])
                    } else {
                        let (a, b) = views.split_at_mut(i);
                        (&mut b[0], &mut a[j])
                    };
                    // Push-pull: the newer entry for each node wins on both sides.
                    for (a, b) in vi.iter_mut().zip(vj.iter_mut()) {
                        if a.0 > b.0 {
                            *b = *a;
                        } else if b.0 > a.0 {
                            *a = *b;
                        }
                    }
                }
                push(&mut queue, now + GOSSIP_EVERY, Event::Gossip(i));
            }
            Event::Tick(i) => {
                let mine = nodes[i].fingerprint;
                let peers: Vec<PeerLayout> = (0..n)
                    .filter(|j| *j != i)
                    .map(|j| PeerLayout {
                        id: nodes[j].agent.me.id,
                        version: views[i][j].1,
                        differs: views[i][j].2 != mine,
                    })
                    .collect();
                let partners = nodes[i].agent.exchange_with(&peers, 1, rng.next_u64());
                for p in partners {
                    let Some(j) = nodes.iter().position(|n| n.agent.me.id == p) else {
                        continue;
                    };
                    let delay = latency(&mut rng, &dc_of[i], &dc_of[j]);
                    out.exchanges += 1;
                    let history = nodes[i].history.clone();
                    push(
                        &mut queue,
                        now + delay,
                        Event::Arrive {
                            to: j,
                            history,
                            reply_to: Some(i),
                        },
                    );
                }
                let node = &mut nodes[i];
                if !node.agent.idle(&node.history) {
                    let mut h = (*node.history).clone();
                    let o = node.agent.step(&mut h, now, &peers, [0; 32], |_| true);
                    h.compact();
                    if o.committed.is_some() && out.committed_ms == 0 {
                        out.committed_ms = now;
                    }
                    if set(node, h) {
                        generation[i] += 1;
                        views[i][i] = entry(&nodes[i], generation[i]);
                    }
                }
                push(&mut queue, now + TICK, Event::Tick(i));
            }
            Event::Arrive {
                to,
                history,
                reply_to,
            } => {
                let node = &mut nodes[to];
                let mut h = (*node.history).clone();
                h.merge(&history);
                h.compact();
                if set(node, h) {
                    generation[to] += 1;
                    views[to][to] = entry(&nodes[to], generation[to]);
                }
                if let Some(back) = reply_to {
                    let delay = latency(&mut rng, &dc_of[to], &dc_of[back]);
                    let history = nodes[to].history.clone();
                    push(
                        &mut queue,
                        now + delay,
                        Event::Arrive {
                            to: back,
                            history,
                            reply_to: None,
                        },
                    );
                }
            }
        }
        // Converged: every node holds one history, and it has the newcomer as a member.
        let first = nodes[0].fingerprint;
        if nodes[0]
            .history
            .current()
            .is_some_and(|v| v.member(&newcomer.id).is_some())
            && nodes.iter().all(|n| n.fingerprint == first)
        {
            out.converged_ms = now;
            break;
        }
    }
    out
}

/// Adopts `h`; returns whether it changed anything.
fn set(node: &mut Node, h: LayoutHistory) -> bool {
    if h == *node.history {
        return false;
    }
    node.fingerprint = h.fingerprint();
    node.history = Arc::new(h);
    true
}

fn latency(rng: &mut Rng, a: &str, b: &str) -> u64 {
    if a == b {
        rng.range(1, 5)
    } else {
        rng.range(20, 60)
    }
}
