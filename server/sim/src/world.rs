//! The simulated world: nodes in several datacenters, clients, and a network that drops,
//! duplicates, delays and reorders messages, partitions nodes and whole DCs, and crashes
//! nodes, all from one seed, in one thread, on one clock.
//!
//! A run has three phases: chaos (faults and client traffic), healing (faults stop, crashed
//! nodes restart, clients finish, hints drain), and a read-repair pass over every key (in the
//! geo scenario, anti-entropy alone instead). Then the checks in `check.rs` run.

use crate::check;
use crate::client::{Client, Next, Record};
use crate::msg::{Msg, Req};
use crate::node::{Ctx, Output, SimNode, Timer};
use crate::rng::Rng;
use meridian_core::keeper::Change;
use meridian_core::layout::{LayoutHistory, LayoutMember, Role, StagedChange};
use meridian_core::partition::partition_of;
use meridian_core::{ActorId, Consistency, KeyspaceSpec, ValueKind};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

const CHAOS_END: u64 = 20_000;
const CLIENTS_END: u64 = 26_000;
/// The read-repair pass waits for the layout to settle on every live node, checking every
/// second from here, and gives up waiting at `SETTLE_BY` (the checks then report it).
const REPAIR_AT: u64 = 45_000;
const SETTLE_BY: u64 = 120_000;
/// How long the run goes on after the repair pass.
const AFTER_REPAIR: u64 = 10_000;
const HINT_TICK: u64 = 200;
/// Each node sends its replication streams this often (and as acknowledgements come back).
const STREAM_TICK: u64 = 100;
/// Each node starts an anti-entropy exchange this often (geo runs).
const AE_TICK: u64 = 250;
/// Each node starts a tombstone sweep this often (geo runs).
const REAPER_TICK: u64 = 200;
/// Geo runs: hints and queued stream writes live this long, and a tombstone every replica
/// holds is purged this long after that was confirmed (longer, as on a real node).
const HINT_MAX_AGE: u64 = 3_000;
const TOMBSTONE_GRACE: u64 = 4_000;
/// How long anti-entropy has to converge every replica once the layout settled (geo runs).
const AE_SETTLE: u64 = 20_000;
const FLUSH_EVERY: u64 = 2_000;
const CLIENT_TIMEOUT: u64 = 1_500;
const KEYS: usize = 5;

/// Geo runs give each stream a queue small enough that a DC cut fills it, so shedding to
/// references and to anti-entropy is exercised; classic runs never shed.
fn stream_limits(scenario: Scenario) -> meridian_core::stream::Limits {
    let mut limits = meridian_core::stream::Limits::default();
    if scenario == Scenario::Geo {
        limits.max_bytes = 512;
        limits.batch_entries = 16;
    }
    limits
}

/// Geo runs age hints out and purge tombstones, as a real node does.
fn configure_gc(node: &mut SimNode, scenario: Scenario) {
    if scenario == Scenario::Geo {
        node.hint_max_age = Some(HINT_MAX_AGE);
        node.stream_limits.max_age_ms = HINT_MAX_AGE;
        node.gc = Some(crate::node::GcSettings {
            grace: TOMBSTONE_GRACE,
            sweep_timeout: 1_500,
        });
    }
}

/// The outcome of one seed.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    /// BLAKE3 of every event in order: one seed, one trace.
    pub trace: String,
    pub violations: Vec<String>,
    pub stats: Stats,
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub events: u64,
    pub nodes: usize,
    pub dcs: usize,
    pub writes: usize,
    pub acked: usize,
    pub crashes: u32,
    pub partitions: u32,
    pub dropped: u64,
    pub hints_left: usize,
    pub joins: u32,
    pub dcs_added: u32,
    pub decommissions: u32,
    pub removals: u32,
    pub layout_version: u64,
    /// Decommissioned nodes that handed their hints off and stopped.
    pub stopped: u32,
    /// Keys anti-entropy changed (geo runs).
    pub ae_repaired: u64,
    /// Writes the replication streams queued as references, dropped to anti-entropy, and
    /// still held at the end (by live nodes; a killed node's queue dies with it).
    pub stream_references: u64,
    pub stream_dropped: u64,
    pub stream_left: u64,
    /// Tombstones purged (summed over nodes) and hints dropped for age (geo runs).
    pub purged: u64,
    pub hints_expired: u64,
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: ActorId,
        to: ActorId,
        msg: Msg,
    },
    NodeTimer {
        node: usize,
        timer: Timer,
    },
    ClientTick(usize),
    ClientTimeout {
        client: usize,
        rpc: u64,
    },
    Fault,
    Restart(usize),
    Heal(usize),
    /// A layout change: a join, a new DC, a decommission or a dead node's removal.
    Change,
    /// An operator removes a node that died for good.
    Remove(usize),
    Flush,
    EndChaos,
    RepairPass,
}

struct World {
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    nodes: Vec<SimNode>,
    clients: Vec<Client>,
    records: Vec<Record>,
    keyspaces: Rc<Vec<KeyspaceSpec>>,
    /// Active partitions: pairs that cannot talk, by partition number.
    cuts: BTreeMap<usize, BTreeSet<(ActorId, ActorId)>>,
    next_cut: usize,
    /// Nodes that are gone for good (they never restart): killed, or decommissioned.
    dead: BTreeSet<usize>,
    /// A node died for good (not a clean decommission).
    killed: bool,
    /// The DC a run may add, and whether it did.
    future_dc: String,
    changes: u32,
    chaos: bool,
    scenario: Scenario,
    /// When the run stops.
    end: u64,
    /// `MERIDIAN_SIM_TRACE` set: print every event with its payload.
    verbose: bool,
    trace: blake3::Hasher,
    stats: Stats,
}

/// The scenario a seed runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Faults, layout changes and client traffic; a read-repair pass over every key at the
    /// end brings replicas together.
    Classic,
    /// The same, plus anti-entropy on every node, DC partitions that last 3–12 s, and no
    /// read-repair pass: anti-entropy alone must converge every replica, and every
    /// partition's Merkle tree must then be equal on all its replicas.
    Geo,
}

pub fn run(seed: u64) -> Report {
    run_scenario(seed, Scenario::Classic)
}

pub fn run_scenario(seed: u64, scenario: Scenario) -> Report {
    let mut w = World::new(seed, scenario);
    w.run();
    let view = w.view_node();
    let died = w.killed;
    let mut violations = check::check(&w.nodes, view, died, &w.keyspaces, KEYS, &w.records);
    if scenario == Scenario::Geo {
        violations.extend(check::trees_agree(&w.nodes, view, &w.keyspaces));
    }
    for (i, n) in w.nodes.iter().enumerate() {
        if !w.dead.contains(&i) && n.stream_queued() > 0 {
            violations.push(format!(
                "node {} still holds {} writes on its replication streams after healing",
                n.id,
                n.stream_queued()
            ));
        }
    }
    w.stats.layout_version = w.nodes[view].version();
    w.stats.writes = w.records.len();
    w.stats.acked = w.records.iter().filter(|r| r.acked).count();
    w.stats.hints_left = w.nodes.iter().map(SimNode::hint_count).sum();
    w.stats.ae_repaired = w.nodes.iter().map(|n| n.ae_repaired).sum();
    w.stats.purged = w.nodes.iter().map(|n| n.purged).sum();
    w.stats.hints_expired = w.nodes.iter().map(|n| n.hints_expired).sum();
    w.stats.stream_references = w.nodes.iter().map(|n| n.stream_references).sum();
    w.stats.stream_dropped = w.nodes.iter().map(|n| n.stream_dropped).sum();
    w.stats.stream_left = w
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| !w.dead.contains(i))
        .map(|(_, n)| n.stream_queued())
        .sum();
    Report {
        seed,
        trace: w.trace.finalize().to_hex().to_string(),
        violations,
        stats: w.stats,
    }
}

/// Six keyspaces in every DC (three of them CRDTs); the durable ones also in `future`, a DC
/// that may be added during the run (its nodes must then stream them from the others
/// before they serve).
fn keyspaces(dcs: &[String], future: &str) -> Vec<KeyspaceSpec> {
    let mut out = Vec::new();
    for (name, kind, sync) in [
        ("durable", ValueKind::Siblings, true),
        ("volatile", ValueKind::Siblings, false),
        ("lww", ValueKind::Lww, true),
        ("counters", ValueKind::Counter, true),
        ("carts", ValueKind::Set, true),
        ("profiles", ValueKind::Map, true),
    ] {
        let mut ks = KeyspaceSpec::new(name, kind);
        ks.sync_writes = Some(sync);
        for dc in dcs {
            ks.replication.insert(dc.clone(), 3);
        }
        if sync {
            ks.replication.insert(future.to_string(), 2);
        }
        out.push(ks);
    }
    out
}

impl World {
    fn new(seed: u64, scenario: Scenario) -> Self {
        let mut rng = Rng::new(seed);
        let dc_count = rng.range(2, 4) as usize;
        let per_dc = rng.range(3, 5) as usize;
        let dcs: Vec<String> = (1..=dc_count).map(|d| format!("dc{d}")).collect();
        let mut members = Vec::new();
        for dc in &dcs {
            for r in 0..per_dc {
                let mut id = rng.bytes16();
                id[12..].copy_from_slice(&[0; 4]);
                members.push(LayoutMember {
                    id: ActorId(id),
                    dc: dc.clone(),
                    rack: format!("r{r}"),
                    capacity: 1,
                    role: Role::Storage,
                });
            }
        }
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(&rng.bytes16());
        secret[16..].copy_from_slice(&rng.bytes16());
        let history = crate::founding::cluster(&members, secret, true);
        let future_dc = format!("dc{}", dc_count + 1);
        let keyspaces = Rc::new(keyspaces(&dcs, &future_dc));
        let nodes = members
            .iter()
            .map(|m| {
                let skew = rng.range(0, 50);
                let mut n = SimNode::new(m.clone(), history.clone(), keyspaces.clone(), skew, 0);
                n.stream_limits = stream_limits(scenario);
                configure_gc(&mut n, scenario);
                n
            })
            .collect::<Vec<_>>();
        let client_count = rng.range(3, 7) as usize;
        let clients = (0..client_count)
            .map(|i| {
                let dc = &dcs[i % dcs.len()];
                Client::new(i, dc, rng.range(20, 60) as u32)
            })
            .collect();
        let stats = Stats {
            nodes: nodes.len(),
            dcs: dc_count,
            ..Stats::default()
        };
        let mut w = Self {
            rng,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            nodes,
            clients,
            records: Vec::new(),
            keyspaces,
            cuts: BTreeMap::new(),
            next_cut: 0,
            dead: BTreeSet::new(),
            killed: false,
            future_dc,
            changes: 0,
            chaos: true,
            scenario,
            end: REPAIR_AT + AFTER_REPAIR,
            verbose: std::env::var_os("MERIDIAN_SIM_TRACE").is_some(),
            trace: blake3::Hasher::new(),
            stats,
        };
        for i in 0..w.nodes.len() {
            w.arm(i);
        }
        let first_change = w.rng.range(2_000, 6_000);
        w.at(first_change, Event::Change);
        for c in 0..w.clients.len() {
            let at = w.rng.range(0, 100);
            w.at(at, Event::ClientTick(c));
        }
        w.at(500, Event::Fault);
        w.at(FLUSH_EVERY, Event::Flush);
        w.at(CHAOS_END, Event::EndChaos);
        w.at(REPAIR_AT, Event::RepairPass);
        w
    }

    /// Starts a node's periodic timers.
    fn arm(&mut self, node: usize) {
        for timer in [Timer::HintTick, Timer::LayoutTick] {
            let at = self.now + self.rng.range(1, HINT_TICK);
            self.at(at, Event::NodeTimer { node, timer });
        }
        let at = self.now + self.rng.range(1, STREAM_TICK);
        self.at(
            at,
            Event::NodeTimer {
                node,
                timer: Timer::StreamTick,
            },
        );
        if self.scenario == Scenario::Geo {
            let at = self.now + self.rng.range(1, REAPER_TICK);
            self.at(
                at,
                Event::NodeTimer {
                    node,
                    timer: Timer::ReaperTick,
                },
            );
            let at = self.now + self.rng.range(1, AE_TICK);
            self.at(
                at,
                Event::NodeTimer {
                    node,
                    timer: Timer::AntiEntropyTick,
                },
            );
        }
    }

    fn at(&mut self, time: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((time, self.seq), event);
    }

    fn run(&mut self) {
        while let Some(((time, _), event)) = self.queue.pop_first() {
            if time > self.end {
                break;
            }
            self.now = time;
            self.stats.events += 1;
            let line = describe(&event);
            if self.verbose {
                eprintln!("{time} {line} {}", detail(&event));
            }
            self.trace.update(format!("{time} {line}\n").as_bytes());
            self.handle(event);
        }
    }

    fn up(&self) -> BTreeSet<ActorId> {
        self.nodes.iter().filter(|n| n.up).map(|n| n.id).collect()
    }

    fn node_index(&self, id: &ActorId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == *id)
    }

    fn cut(&self, a: &ActorId, b: &ActorId) -> bool {
        self.cuts.values().any(|c| c.contains(&(*a, *b)))
    }

    /// Puts a message on the wire, with this phase's faults.
    fn send(&mut self, from: ActorId, to: ActorId, msg: Msg) {
        if from == to {
            return self.at(self.now, Event::Deliver { from, to, msg });
        }
        if self.cut(&from, &to) || (self.chaos && self.rng.chance(0.02)) {
            self.stats.dropped += 1;
            return;
        }
        let dc_of = |id: &ActorId| {
            self.nodes
                .iter()
                .find(|n| n.id == *id)
                .map(|n| n.dc.clone())
                .or_else(|| {
                    self.clients
                        .iter()
                        .find(|c| c.id == *id)
                        .map(|c| c.dc.clone())
                })
        };
        let same_dc = dc_of(&from) == dc_of(&to);
        let mut delay = if same_dc {
            self.rng.range(1, 5)
        } else {
            self.rng.range(20, 60)
        };
        if self.chaos && self.rng.chance(0.05) {
            delay += self.rng.range(100, 800);
        }
        if self.chaos && self.rng.chance(0.02) {
            let again = delay + self.rng.range(0, 200);
            self.at(
                self.now + again,
                Event::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
        self.at(self.now + delay, Event::Deliver { from, to, msg });
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { from, to, msg } => self.deliver(from, to, msg),
            Event::NodeTimer { node, timer } => {
                if !self.nodes[node].up {
                    return;
                }
                let every = match timer {
                    Timer::HintTick | Timer::LayoutTick => Some(HINT_TICK),
                    Timer::AntiEntropyTick => Some(AE_TICK),
                    Timer::ReaperTick => Some(REAPER_TICK),
                    Timer::StreamTick => Some(STREAM_TICK),
                    _ => None,
                };
                let rearm = timer.clone();
                self.with_node(node, |n, ctx| n.on_timer(timer, ctx));
                if self.nodes[node].stopped {
                    // A finished decommission: the process is gone for good.
                    self.dead.insert(node);
                    self.stats.stopped += 1;
                    return;
                }
                if let Some(every) = every {
                    self.at(self.now + every, Event::NodeTimer { node, timer: rearm });
                }
            }
            Event::ClientTick(c) => self.client_start(c),
            Event::ClientTimeout { client, rpc } => {
                if self.clients[client].in_flight() == Some(rpc) {
                    let next = self.clients[client].on_answer(rpc, None, &mut self.records);
                    self.client_next(client, next);
                }
            }
            Event::Fault => self.fault(),
            Event::Restart(i) => {
                if !self.nodes[i].up && !self.dead.contains(&i) {
                    self.nodes[i].restart(self.now);
                    self.arm(i);
                }
            }
            Event::Change => self.layout_change(),
            Event::Remove(i) => {
                // Any live member may do it (the operator's `meridian admin remove`).
                let id = self.nodes[i].id;
                let live: Vec<usize> = (0..self.nodes.len())
                    .filter(|j| self.nodes[*j].up && self.nodes[*j].version() > 0)
                    .collect();
                if let Some(j) = self.rng.pick(&live).copied() {
                    self.nodes[j].stage(id, StagedChange::Remove);
                    self.stats.removals += 1;
                }
            }
            Event::Heal(i) => {
                self.cuts.remove(&i);
            }
            Event::Flush => {
                for n in &self.nodes {
                    if n.up {
                        n.flush();
                    }
                }
                self.at(self.now + FLUSH_EVERY, Event::Flush);
            }
            Event::EndChaos => {
                self.chaos = false;
                self.cuts.clear();
                for i in 0..self.nodes.len() {
                    self.handle(Event::Restart(i));
                }
            }
            Event::RepairPass => {
                let settled = self
                    .nodes
                    .iter()
                    .filter(|n| n.up)
                    .all(|n| n.history.chain().len() == 1);
                if settled || self.now >= SETTLE_BY {
                    match self.scenario {
                        Scenario::Classic => {
                            self.repair_pass();
                            self.end = self.now + AFTER_REPAIR;
                        }
                        // No reads: anti-entropy alone has this long to converge.
                        Scenario::Geo => self.end = self.now + AE_SETTLE,
                    }
                } else {
                    self.end = self.now + 1_000 + AFTER_REPAIR;
                    self.at(self.now + 1_000, Event::RepairPass);
                }
            }
        }
    }

    fn with_node(&mut self, i: usize, f: impl FnOnce(&mut SimNode, &mut Ctx<'_>)) {
        let up = self.up();
        let layouts: BTreeMap<ActorId, (u64, meridian_core::layout::Digest)> = self
            .nodes
            .iter()
            .filter(|n| n.up)
            .map(|n| (n.id, (n.version(), n.fingerprint)))
            .collect();
        let random = self.rng.next_u64();
        self.nodes[i].clock = self.now;
        let mut ctx = Ctx {
            now: self.now,
            up: &up,
            layouts: &layouts,
            random,
            out: Vec::new(),
        };
        f(&mut self.nodes[i], &mut ctx);
        let from = self.nodes[i].id;
        for o in ctx.out {
            match o {
                Output::Send { to, msg } => self.send(from, to, msg),
                Output::Timer { at, timer } => self.at(at, Event::NodeTimer { node: i, timer }),
            }
        }
    }

    fn deliver(&mut self, from: ActorId, to: ActorId, msg: Msg) {
        if let Some(i) = self.node_index(&to) {
            if self.nodes[i].up {
                self.with_node(i, |n, ctx| n.on_message(from, msg, ctx));
            }
            return;
        }
        let Some(c) = self.clients.iter().position(|c| c.id == to) else {
            return;
        };
        if let Msg::Resp { rpc, resp } = msg {
            let next = self.clients[c].on_answer(rpc, Some(resp), &mut self.records);
            self.client_next(c, next);
        }
    }

    fn client_start(&mut self, c: usize) {
        if self.now >= CLIENTS_END || self.clients[c].in_flight().is_some() {
            return;
        }
        let names: Vec<String> = self.keyspaces.iter().map(|k| k.name.clone()).collect();
        let next = self.clients[c].start(&mut self.rng, &names, KEYS, &mut self.records);
        if let Some(next) = next {
            self.client_next(c, next);
        }
    }

    fn client_next(&mut self, c: usize, next: Next) {
        match next {
            Next::Idle => {
                let at = self.now + self.rng.range(5, 80);
                self.at(at, Event::ClientTick(c));
            }
            Next::Send { rpc, req } => {
                let Some(target) = self.client_target(c) else {
                    // Nobody up in the client's DC: give the attempt up after the timeout.
                    self.at(
                        self.now + CLIENT_TIMEOUT,
                        Event::ClientTimeout { client: c, rpc },
                    );
                    return;
                };
                self.clients[c].target = Some(target);
                let from = self.clients[c].id;
                self.send(from, target, Msg::Req { rpc, req });
                self.at(
                    self.now + CLIENT_TIMEOUT,
                    Event::ClientTimeout { client: c, rpc },
                );
            }
        }
    }

    /// Where a client sends its request: writes to a replica of the key in its DC (as the
    /// SDK routes them), reads to any node of its DC; nodes believed up first.
    fn client_target(&mut self, c: usize) -> Option<ActorId> {
        let client = &self.clients[c];
        let up = self.up();
        if let Some(t) = client.target.filter(|t| up.contains(t)) {
            return Some(t);
        }
        // An LWW write is retried only where it was first sent: minted again elsewhere it
        // would get a later timestamp and could beat a write that had already seen it.
        if client.is_write()
            && let Some(t) = client.target
            && client
                .current_key()
                .and_then(|(ks, _)| self.keyspaces.iter().find(|k| &k.name == ks))
                .is_some_and(|k| k.kind == ValueKind::Lww)
        {
            return Some(t);
        }
        let local: Vec<ActorId> = self
            .nodes
            .iter()
            .filter(|n| n.dc == client.dc && up.contains(&n.id))
            .map(|n| n.id)
            .collect();
        let mut candidates = local.clone();
        // Mostly as the SDK routes (to a replica); sometimes to any node of the DC, which
        // forwards a write it cannot coordinate.
        let routed = self.rng.chance(0.7);
        if routed
            && client.is_write()
            && let Some((ks_name, key)) = client.current_key()
            && let Some(ks) = self.keyspaces.iter().find(|k| &k.name == ks_name)
        {
            let own = self.nodes[self.view_node()].ownership(&up);
            let replicas: Vec<ActorId> = own
                .replicas(ks, partition_of(ks.id(), key))
                .into_iter()
                .filter(|d| d.dc == client.dc)
                .flat_map(|d| d.alive().collect::<Vec<_>>())
                .collect();
            if !replicas.is_empty() {
                candidates = replicas;
            }
        }
        self.rng.pick(&candidates).copied()
    }

    /// The live node with the newest layout: whose view clients route by (the SDK fetches
    /// the topology from a node it reaches).
    pub(crate) fn view_node(&self) -> usize {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].up)
            .max_by_key(|i| (self.nodes[*i].version(), std::cmp::Reverse(*i)))
            .unwrap_or(0)
    }

    /// One layout change, then the next one, a few times while the chaos phase lasts.
    fn layout_change(&mut self) {
        if !self.chaos || self.changes >= 3 {
            return;
        }
        self.changes += 1;
        let dcs: Vec<String> = {
            let mut d: Vec<String> = self.nodes.iter().map(|n| n.dc.clone()).collect();
            d.sort();
            d.dedup();
            d
        };
        match self.rng.range(0, 4) {
            0 => {
                let dc = self.rng.pick(&dcs).cloned().unwrap_or_default();
                self.add_node(&dc);
                self.stats.joins += 1;
            }
            1 if !dcs.contains(&self.future_dc) => {
                let dc = self.future_dc.clone();
                for _ in 0..3 {
                    self.add_node(&dc);
                }
                self.stats.dcs_added += 1;
            }
            2 => {
                // A member of a DC that keeps three storage nodes decommissions itself.
                if let Some(i) = self.removable() {
                    let id = self.nodes[i].id;
                    self.nodes[i].stage(id, StagedChange::Remove);
                    self.stats.decommissions += 1;
                }
            }
            _ => {
                // A member dies for good; an operator removes it a little later.
                if let Some(i) = self.removable()
                    && self.nodes.iter().all(|n| n.up)
                {
                    self.nodes[i].crash();
                    self.dead.insert(i);
                    self.killed = true;
                    self.stats.crashes += 1;
                    let at = self.now + self.rng.range(500, 2_000);
                    self.at(at, Event::Remove(i));
                }
            }
        }
        let next = self.now + self.rng.range(2_000, 6_000);
        self.at(next, Event::Change);
    }

    /// A live member whose DC would keep at least three members without it.
    fn removable(&mut self) -> Option<usize> {
        let view = self.nodes[self.view_node()].history.clone();
        let current = view.current()?;
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                let n = &self.nodes[*i];
                n.up && !view.is_removed(&n.id)
                    && current.member(&n.id).is_some()
                    && current
                        .members()
                        .iter()
                        .filter(|m| m.dc == n.dc && !view.is_removed(&m.id))
                        .count()
                        > 3
            })
            .collect();
        self.rng.pick(&candidates).copied()
    }

    /// A new node starts in `dc` and joins by itself (it learns the layout from its peers).
    fn add_node(&mut self, dc: &str) {
        let mut id = self.rng.bytes16();
        id[12..].copy_from_slice(&[0; 4]);
        let racks = self.nodes.iter().filter(|n| n.dc == dc).count();
        let member = LayoutMember {
            id: ActorId(id),
            dc: dc.to_string(),
            rack: format!("r{racks}"),
            capacity: 1,
            role: Role::Storage,
        };
        let skew = self.rng.range(0, 50);
        let mut node = SimNode::new(
            member,
            LayoutHistory::default(),
            self.keyspaces.clone(),
            skew,
            self.now,
        );
        node.stream_limits = stream_limits(self.scenario);
        configure_gc(&mut node, self.scenario);
        self.nodes.push(node);
        self.stats.nodes += 1;
        self.arm(self.nodes.len() - 1);
    }

    /// One fault, then the next one scheduled, while the chaos phase lasts.
    fn fault(&mut self) {
        if !self.chaos {
            return;
        }
        let down = self.nodes.iter().filter(|n| !n.up).count();
        match self.rng.range(0, 4) {
            0 if down == 0 => {
                let i = self.rng.range(0, self.nodes.len() as u64) as usize;
                if self.dead.contains(&i) {
                    return self.at(self.now + 500, Event::Fault);
                }
                self.nodes[i].crash();
                self.stats.crashes += 1;
                let back = self.now + self.rng.range(500, 4_000);
                self.at(back, Event::Restart(i));
            }
            1 => {
                let i = self.rng.range(0, self.nodes.len() as u64) as usize;
                let me = self.nodes[i].id;
                let others: Vec<ActorId> = self.nodes.iter().map(|n| n.id).collect();
                self.partition(&[me], &others);
            }
            2 => {
                let dc = self.nodes[self.rng.range(0, self.nodes.len() as u64) as usize]
                    .dc
                    .clone();
                let inside: Vec<ActorId> = self
                    .nodes
                    .iter()
                    .filter(|n| n.dc == dc)
                    .map(|n| n.id)
                    .collect();
                let outside: Vec<ActorId> = self
                    .nodes
                    .iter()
                    .filter(|n| n.dc != dc)
                    .map(|n| n.id)
                    .collect();
                self.partition(&inside, &outside);
            }
            _ => {}
        }
        let next = self.now + self.rng.range(500, 3_000);
        self.at(next, Event::Fault);
    }

    fn partition(&mut self, a: &[ActorId], b: &[ActorId]) {
        let mut pairs = BTreeSet::new();
        for x in a {
            for y in b {
                if x != y {
                    pairs.insert((*x, *y));
                    pairs.insert((*y, *x));
                }
            }
        }
        let id = self.next_cut;
        self.next_cut += 1;
        self.cuts.insert(id, pairs);
        self.stats.partitions += 1;
        let heal = match self.scenario {
            Scenario::Classic => self.now + self.rng.range(500, 3_000),
            Scenario::Geo => self.now + self.rng.range(3_000, 12_000),
        };
        self.at(heal, Event::Heal(id));
    }

    /// Reads every key once through the protocol, asking every replica, so read repair
    /// brings replicas a crash left behind (a coordinator that died mid-fan-out) up to date.
    fn repair_pass(&mut self) {
        let janitor = ActorId([0xEE; 16]);
        let names: Vec<String> = self.keyspaces.iter().map(|k| k.name.clone()).collect();
        for (rpc, (ks, k)) in names
            .iter()
            .flat_map(|ks| (0..KEYS).map(move |k| (ks.clone(), k)))
            .enumerate()
        {
            let live: Vec<usize> = (0..self.nodes.len())
                .filter(|i| self.nodes[*i].up)
                .collect();
            let Some(node) = self.rng.pick(&live).copied() else {
                return;
            };
            let req = Req::ClientRead {
                keyspace: ks,
                key: format!("k{k}").into_bytes(),
                level: Consistency::One,
                repair: true,
            };
            let to = self.nodes[node].id;
            self.send(
                janitor,
                to,
                Msg::Req {
                    rpc: rpc as u64,
                    req,
                },
            );
        }
    }
}

/// What a message carries, for a human reading a replay.
fn detail(event: &Event) -> String {
    let values = |o: &[u8]| {
        meridian_core::StoredObject::decode(o)
            .map(|o| {
                meridian_core::replica::read(Some(&o))
                    .values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    match event {
        Event::Deliver {
            msg: Msg::Req { req, .. },
            ..
        } => match req {
            Req::Replicate {
                object, hint_for, ..
            } => {
                format!("[{}] hint_for={hint_for:?}", values(object))
            }
            Req::Relay {
                object, wait_for, ..
            } => format!("[{}] wait_for={wait_for}", values(object)),
            Req::ClientWrite {
                keyspace,
                key,
                change,
                level,
                ..
            } => format!(
                "{keyspace}/{} {} {level}",
                String::from_utf8_lossy(key),
                match change {
                    Change::Put(v) => format!("= {:?}", String::from_utf8_lossy(v)),
                    Change::Delete => "deleted".into(),
                    Change::Update(ops) => format!("{ops:?}"),
                }
            ),
            Req::ClientRead {
                keyspace,
                key,
                level,
                ..
            } => {
                format!("{keyspace}/{} {level}", String::from_utf8_lossy(key))
            }
            Req::AntiEntropy(r) => format!("{r:?}").chars().take(200).collect(),
            Req::Tombstones(r) => format!("ask {} purge {}", r.ask.len(), r.purge.len()),
            Req::StreamBatch(b) => b
                .entries
                .iter()
                .map(|e| format!("{}:[{}]", e.seq, values(&e.object)))
                .collect::<Vec<_>>()
                .join(" "),
            Req::Read { .. } | Req::Layout { .. } | Req::Stream { .. } => String::new(),
        },
        Event::Deliver {
            msg: Msg::Resp { resp, .. },
            ..
        } => format!("{resp:?}").chars().take(200).collect(),
        _ => String::new(),
    }
}

/// An event as the trace records it: enough to tell two runs apart, cheap to hash.
fn describe(event: &Event) -> String {
    match event {
        Event::Deliver { from, to, msg } => format!("deliver {from} {to} {}", msg.describe()),
        Event::NodeTimer { node, timer } => format!("timer {node} {timer:?}"),
        other => format!("{other:?}"),
    }
}
