//! One simulated node: the core's [`Keeper`] over an in-memory store, and the core's request
//! machines, executed over the simulated network. This file is the simulation's counterpart of
//! the node crate's `drive.rs` and `peer_service.rs`: it moves messages and keeps hints; every
//! decision is the core's.

use crate::msg::{Msg, Req, Resp};
use meridian_core::coordinate::{
    Answer, CallId, Effect, Machine, Message, ReadCoordinator, RelayCoordinator, Timing,
    WriteCoordinator, WriteRoute, route_write,
};
use meridian_core::handoff::{self, HintRoute, Redirect};
use meridian_core::keeper::{Change, ClientUpdate, ClientWrite, Keeper, KeeperError, WriteAck};
use meridian_core::layout::agent::{LayoutAgent, PeerLayout};
use meridian_core::layout::ownership::Ownership;
use meridian_core::layout::streaming::{StreamGate, StreamPlan};
use meridian_core::layout::{Digest, LayoutHistory, LayoutMember};
use meridian_core::merkle::exchange::{self, Exchange, Merged, Replica, Step};
use meridian_core::merkle::{Forest, PartitionSet, Tracked};
use meridian_core::partition::{parse_storage_key, partition_of, storage_key};
use meridian_core::store::{MemStore, Store};
use meridian_core::{ActorId, ContextSeal, KeyspaceSpec, StoredObject};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

mod reaper;
mod stream;

pub use reaper::GcSettings;

/// A peer that has not answered in this long is given up on (the node's peer timeout).
pub const CALL_TIMEOUT: u64 = 500;
/// Shorter than a forwarding caller's timeout, as in the node.
pub const WRITE_DEADLINE: u64 = CALL_TIMEOUT * 3 / 4;
pub const RELAY_DEADLINE: u64 = CALL_TIMEOUT / 2;
pub const READ_DEADLINE: u64 = CALL_TIMEOUT * 2;
/// Hints handed over per tick, at most.
const HINTS_PER_TICK: usize = 16;

#[derive(Debug, Clone)]
pub enum Timer {
    Job(u64),
    CallTimeout(u64),
    HintTick,
    LayoutTick,
    /// Start an anti-entropy exchange if none is running (geo runs only).
    AntiEntropyTick,
    /// Tombstone GC: the next sweep (geo runs).
    ReaperTick,
    /// Send what the replication streams to other DCs hold.
    StreamTick,
}

#[derive(Debug)]
pub enum Output {
    Send { to: ActorId, msg: Msg },
    Timer { at: u64, timer: Timer },
}

/// What a node sees of the world when it handles an input.
pub struct Ctx<'a> {
    pub now: u64,
    /// Nodes the failure detector believes up.
    pub up: &'a BTreeSet<ActorId>,
    /// What gossip says of each live node's layout: (version, fingerprint).
    pub layouts: &'a BTreeMap<ActorId, (u64, Digest)>,
    /// Fresh randomness for this input.
    pub random: u64,
    pub out: Vec<Output>,
}

/// Ownership as last built: for which history (fingerprint) and which live set.
type OwnershipCache = (Digest, BTreeSet<ActorId>, Rc<Ownership>);

/// A layout version's streams in flight.
struct Streaming {
    version: u64,
    outstanding: usize,
    failed: bool,
}

enum Kind {
    Write(WriteCoordinator, WriteAck),
    Relay(RelayCoordinator, bool),
    Read(ReadCoordinator, u64, Vec<u8>),
}

/// Who a job answers: a peer's call, or the replication stream batch a relay belongs to.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Peer((ActorId, u64)),
    Batch(ActorId),
}

struct Job {
    kind: Kind,
    started: u64,
    skey: Vec<u8>,
    object: Vec<u8>,
    keyspace: String,
    origin: Origin,
    timer: Option<u64>,
}

enum Input {
    Start,
    Answer(CallId, Answer),
    Timer,
}

enum Pending {
    Call {
        job: u64,
        call: CallId,
    },
    /// A client write handed to a replica: its answer goes back to the client.
    Forward((ActorId, u64)),
    /// A hint handed to an heir before this node stops: deleted once the heir keeps it.
    HandOff(Vec<u8>),
    Hint(Vec<u8>),
    /// A hint redirected to a current replica: kept for it if the send fails.
    Redirected {
        node: ActorId,
        skey: Vec<u8>,
        object: Vec<u8>,
    },
    Layout,
    Stream,
    /// A step of this node's anti-entropy exchange with this peer.
    AntiEntropy(ActorId),
    /// This node's tombstone sweep, asking this peer.
    Tombstones(ActorId),
    /// A batch of the replication stream to `dc`.
    StreamBatch {
        dc: String,
        session: u64,
        first: u64,
    },
    Fire,
}

/// The keyspaces' shared partitions with each peer, for the current layout version (its
/// digest) they came from: they depend on its placement alone, not on who is up.
type SharedCache = (Digest, Rc<Vec<(u64, ActorId, PartitionSet)>>);

/// This node's data as an anti-entropy exchange sees it: the same keeper, trees and store
/// the node's requests use.
struct Local<'a> {
    data: &'a MemStore,
    forest: &'a Forest,
    keeper: &'a Keeper<Tracked<Rc<MemStore>>>,
    keyspaces: &'a [KeyspaceSpec],
    /// Partitions held per keyspace (answering a peer); `None`: not asked.
    held: Option<&'a BTreeMap<u64, PartitionSet>>,
}

impl Replica for Local<'_> {
    type Error = std::convert::Infallible;

    fn forest(&self) -> &Forest {
        self.forest
    }

    fn scan(
        &self,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), Self::Error> {
        for (k, v) in self.data.scan(prefix) {
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn merge(&self, skey: &[u8], object: &[u8]) -> Result<Merged, Self::Error> {
        let durable = durable(self.keyspaces, skey);
        Ok(match self.keeper.merge(skey, object, durable) {
            Ok(true) => Merged::Changed,
            Ok(false) => Merged::Unchanged,
            Err(KeeperError::Core(e)) => Merged::Rejected(e.to_string()),
            Err(KeeperError::Store(e)) => match e {},
        })
    }

    fn holds(&self, keyspace: u64, partition: u16) -> bool {
        self.held
            .is_none_or(|h| h.get(&keyspace).is_some_and(|s| s.contains(partition)))
    }
}

/// Partitions held per keyspace, for the active versions (their digests) they came from.
type HeldCache = (Vec<Digest>, Rc<BTreeMap<u64, PartitionSet>>);

fn durable(keyspaces: &[KeyspaceSpec], skey: &[u8]) -> bool {
    parse_storage_key(skey).is_some_and(|(_, id, _)| {
        keyspaces
            .iter()
            .any(|k| k.id() == id && k.sync_writes == Some(true))
    })
}

pub struct SimNode {
    pub id: ActorId,
    pub dc: String,
    pub up: bool,
    /// Decommissioned, hints handed off, stopped for good (cleanly).
    pub stopped: bool,
    pub incarnation: u32,
    pub data: Rc<MemStore>,
    pub hints: Rc<MemStore>,
    keeper: Keeper<Tracked<Rc<MemStore>>>,
    /// Merkle trees of `data`, kept by every write through the keeper.
    pub forest: Arc<Forest>,
    /// The exchange this node is running, if any.
    exchange: Option<Exchange>,
    /// Keys its finished exchanges changed, here or on the peer.
    pub ae_repaired: u64,
    shared_cache: Option<SharedCache>,
    held_cache: Option<HeldCache>,
    pub history: Arc<LayoutHistory>,
    /// The history as last made durable.
    stored_layout: Arc<LayoutHistory>,
    /// The history's fingerprint, as gossip would carry it.
    pub fingerprint: Digest,
    /// The history's current version, kept with the fingerprint: the world asks every
    /// node for both on every event.
    current: u64,
    own_cache: std::cell::RefCell<Option<OwnershipCache>>,
    /// The stream plan of the ownership it was computed from: a pure function of it (the
    /// keyspaces never change), asked for on every tick while a version is unacknowledged.
    plan_cache: Option<(Rc<Ownership>, Option<StreamPlan>)>,
    agent: LayoutAgent,
    gate: StreamGate,
    streaming: Option<Streaming>,
    /// The settled version this node last deleted moved partitions for.
    reclaimed_for: Option<(u64, Digest)>,
    started: u64,
    keyspaces: Rc<Vec<KeyspaceSpec>>,
    seal: ContextSeal,
    /// The layout's cluster secret the seal was made from.
    secret: Option<[u8; 32]>,
    /// This node's wall clock runs this far ahead of simulated time.
    skew: u64,
    jobs: BTreeMap<u64, Job>,
    next_job: u64,
    pending: BTreeMap<u64, Pending>,
    next_rpc: u64,
    hint_seq: u64,
    hints_in_flight: BTreeSet<Vec<u8>>,
    /// Replication streams to the other DCs, their durable queue, and their limits.
    streams: BTreeMap<String, stream::SimStream>,
    pub stream_log: Rc<MemStore>,
    pub stream_limits: meridian_core::stream::Limits,
    /// Tombstone GC and hint expiry (geo runs); `None` keeps tombstones and hints forever.
    pub gc: Option<GcSettings>,
    /// Hints older than this (ms) are dropped unsent (geo runs).
    pub hint_max_age: Option<u64>,
    sweeping: Option<reaper::Sweeping>,
    reaper_next: usize,
    /// The reaper's confirmation records.
    pub confirmed: Rc<MemStore>,
    /// Tombstones this node purged, and hints it dropped for age.
    pub purged: u64,
    pub hints_expired: u64,
    /// The world's clock at the last input this node handled.
    pub clock: u64,
    session_seq: u64,
    /// Other DCs' streams landing here.
    sink: stream::Sink,
    /// Writes the full streams queued as references, and dropped to anti-entropy.
    pub stream_references: u64,
    pub stream_dropped: u64,
}

impl SimNode {
    /// A node that starts as `me`, holding `history` (empty for a node that joins later:
    /// it learns the layout from its peers and joins by itself).
    pub fn new(
        me: LayoutMember,
        history: LayoutHistory,
        keyspaces: Rc<Vec<KeyspaceSpec>>,
        skew: u64,
        now: u64,
    ) -> Self {
        let data = Rc::new(MemStore::new());
        let forest = Arc::new(Forest::new(true));
        let seal = seal_of(&history);
        let history_secret = history.current().map(|v| *v.secret());
        let id = me.id;
        let mut node = Self {
            id,
            dc: me.dc.clone(),
            up: true,
            stopped: false,
            incarnation: 0,
            keeper: Keeper::new(
                Tracked {
                    inner: data.clone(),
                    forest: forest.clone(),
                },
                ActorId::for_incarnation(id.0, 0),
                seal.clone(),
            ),
            forest,
            exchange: None,
            ae_repaired: 0,
            shared_cache: None,
            held_cache: None,
            data,
            hints: Rc::new(MemStore::new()),
            fingerprint: history.fingerprint(),
            current: history.current().map_or(0, |v| v.version),
            own_cache: std::cell::RefCell::new(None),
            plan_cache: None,
            stored_layout: Arc::new(LayoutHistory::default()),
            history: Arc::new(history),
            agent: LayoutAgent {
                me,
                expects_peers: true,
                bootstrap_grace_ms: 3_000,
            },
            gate: StreamGate::default(),
            streaming: None,
            reclaimed_for: None,
            started: now,
            keyspaces,
            secret: history_secret,
            seal,
            skew,
            jobs: BTreeMap::new(),
            next_job: 0,
            pending: BTreeMap::new(),
            next_rpc: 0,
            hint_seq: 0,
            hints_in_flight: BTreeSet::new(),
            streams: BTreeMap::new(),
            stream_log: Rc::new(MemStore::new()),
            stream_limits: meridian_core::stream::Limits::default(),
            gc: None,
            hint_max_age: None,
            sweeping: None,
            reaper_next: 0,
            confirmed: Rc::new(MemStore::new()),
            purged: 0,
            hints_expired: 0,
            clock: now,
            session_seq: 0,
            sink: stream::Sink::default(),
            stream_references: 0,
            stream_dropped: 0,
        };
        node.persist_layout();
        node
    }

    /// Power cut: unsynced writes, hints and every request in flight are gone.
    pub fn crash(&mut self) {
        self.up = false;
        self.data.crash();
        self.hints.crash();
        self.jobs.clear();
        self.pending.clear();
        self.hints_in_flight.clear();
        self.stream_log.crash();
        self.confirmed.crash();
        self.sweeping = None;
        self.streams.clear();
        self.sink = stream::Sink::default();
        self.exchange = None;
        self.streaming = None;
        self.gate = StreamGate::default();
    }

    /// Back after a crash, minting under the next incarnation (the node's rule after an
    /// unclean stop), so no dot it minted and lost is minted again.
    pub fn restart(&mut self, now: u64) {
        // The layout was fsynced with every change: it is what the node comes back with.
        {
            let h = self.stored_layout.clone();
            self.fingerprint = h.fingerprint();
            self.current = h.current().map_or(0, |v| v.version);
            self.history = h;
            self.seal = seal_of(&self.history);
            self.secret = self.history.current().map(|v| *v.secret());
        }
        self.started = now;
        self.incarnation += 1;
        let actor = ActorId::for_incarnation(self.id.0, self.incarnation);
        // The trees were in memory: built again from what survived on disk.
        self.forest = Arc::new(Forest::new(false));
        for p in 0..meridian_core::partition::PARTITIONS as u16 {
            let _ = self.forest.rebuild(p, || {
                Ok::<_, std::convert::Infallible>(self.data.scan(&p.to_be_bytes()))
            });
        }
        let tracked = Tracked {
            inner: self.data.clone(),
            forest: self.forest.clone(),
        };
        self.keeper = Keeper::new(tracked, actor, self.seal.clone());
        let log = self.stream_log.clone();
        let limits = self.stream_limits;
        let mut sessions = 0;
        let incarnation = u64::from(self.incarnation);
        self.streams = stream::recover(&log, limits, || {
            sessions += 1;
            (incarnation << 32) | (1 << 31) | sessions
        });
        self.up = true;
    }

    /// The OS wrote its page cache back.
    pub fn flush(&self) {
        self.data.flush();
        self.hints.flush();
        self.stream_log.flush();
    }

    /// The current layout version (0 before the node has one).
    pub fn version(&self) -> u64 {
        self.current
    }

    pub fn keeper(&self) -> &Keeper<Tracked<Rc<MemStore>>> {
        &self.keeper
    }

    /// Ownership under this node's layout and `up`, rebuilt only when either changed (it
    /// copies the active versions).
    pub fn ownership(&self, up: &BTreeSet<ActorId>) -> Rc<Ownership> {
        let mut cache = self.own_cache.borrow_mut();
        if let Some((fp, u, own)) = cache.as_ref()
            && *fp == self.fingerprint
            && u == up
        {
            return own.clone();
        }
        let own = Rc::new(Ownership::new(
            self.id,
            &self.dc,
            self.history.clone(),
            up.clone(),
        ));
        *cache = Some((self.fingerprint, up.clone(), own.clone()));
        own
    }

    pub fn hint_count(&self) -> usize {
        self.hints.entries().len()
    }

    fn keyspace(&self, name: &str) -> Option<KeyspaceSpec> {
        self.keyspaces.iter().find(|k| k.name == name).cloned()
    }

    fn durable(&self, skey: &[u8]) -> bool {
        durable(&self.keyspaces, skey)
    }

    fn local(&self) -> Local<'_> {
        Local {
            data: &self.data,
            forest: &self.forest,
            keeper: &self.keeper,
            keyspaces: &self.keyspaces,
            held: None,
        }
    }

    /// What this node holds of each keyspace, under its layout's active versions.
    fn held(&mut self, ctx: &Ctx<'_>) -> Rc<BTreeMap<u64, PartitionSet>> {
        let own = self.ownership(ctx.up);
        let key: Vec<Digest> = own.chain().iter().map(|v| v.digest()).collect();
        if let Some((k, held)) = &self.held_cache
            && *k == key
        {
            return held.clone();
        }
        let held: Rc<BTreeMap<u64, PartitionSet>> = Rc::new(
            self.keyspaces
                .iter()
                .map(|ks| (ks.id(), own.held_partitions(ks)))
                .collect(),
        );
        self.held_cache = Some((key, held.clone()));
        held
    }

    /// Starts an exchange with one peer over one keyspace's shared partitions, chosen by
    /// the input's randomness among live peers (as the node goes round-robin over them).
    fn anti_entropy_tick(&mut self, ctx: &mut Ctx<'_>) {
        if self.exchange.is_some() || self.current == 0 {
            return;
        }
        let own = self.ownership(ctx.up);
        let current = self.history.current().map(|v| v.digest());
        let cached = self
            .shared_cache
            .as_ref()
            .filter(|(d, _)| Some(*d) == current)
            .map(|(_, s)| s.clone());
        let shared = cached.unwrap_or_else(|| {
            let all: Vec<(u64, ActorId, PartitionSet)> = self
                .keyspaces
                .iter()
                .flat_map(|ks| {
                    own.shared_partitions(ks)
                        .into_iter()
                        .map(|(peer, set)| (ks.id(), peer, set))
                })
                .collect();
            Rc::new(all)
        });
        if let Some(d) = current {
            self.shared_cache = Some((d, shared.clone()));
        }
        let live: Vec<&(u64, ActorId, PartitionSet)> = shared
            .iter()
            .filter(|(_, p, _)| ctx.up.contains(p))
            .collect();
        if live.is_empty() {
            return;
        }
        let (ks, peer, set) = live[(ctx.random % live.len() as u64) as usize];
        let (ex, req) = Exchange::start(*ks, set.clone());
        self.exchange = Some(ex);
        self.call(
            *peer,
            Req::AntiEntropy(req),
            Pending::AntiEntropy(*peer),
            ctx,
        );
    }

    fn anti_entropy_reply(&mut self, to: ActorId, resp: Resp, ctx: &mut Ctx<'_>) {
        let Some(mut ex) = self.exchange.take() else {
            return;
        };
        let Resp::AntiEntropy(reply) = resp else {
            return;
        };
        match ex.on_reply(&self.local(), reply) {
            Ok(Step::Send(req)) => {
                self.exchange = Some(ex);
                self.call(to, Req::AntiEntropy(req), Pending::AntiEntropy(to), ctx);
            }
            Ok(Step::Done(stats)) => {
                self.ae_repaired += stats.repaired_here + stats.repaired_there;
            }
            Err(_) => {}
        }
    }

    fn send(&mut self, to: ActorId, msg: Msg, ctx: &mut Ctx<'_>) {
        ctx.out.push(Output::Send { to, msg });
    }

    fn call(&mut self, to: ActorId, req: Req, pending: Pending, ctx: &mut Ctx<'_>) {
        let rpc = self.next_rpc;
        self.next_rpc += 1;
        self.pending.insert(rpc, pending);
        self.send(to, Msg::Req { rpc, req }, ctx);
        ctx.out.push(Output::Timer {
            at: ctx.now + CALL_TIMEOUT,
            timer: Timer::CallTimeout(rpc),
        });
    }

    fn respond(&mut self, to: (ActorId, u64), resp: Resp, ctx: &mut Ctx<'_>) {
        self.send(to.0, Msg::Resp { rpc: to.1, resp }, ctx);
    }

    fn answer(&mut self, to: Origin, resp: Resp, ctx: &mut Ctx<'_>) {
        match to {
            Origin::Peer(to) => self.respond(to, resp, ctx),
            Origin::Batch(source) => self.stream_entry_done(source, resp, ctx),
        }
    }

    pub fn on_message(&mut self, from: ActorId, msg: Msg, ctx: &mut Ctx<'_>) {
        match msg {
            Msg::Req { rpc, req } => self.on_request(from, rpc, req, ctx),
            Msg::Resp { rpc, resp } => self.on_response(rpc, resp, ctx),
        }
    }

    pub fn on_timer(&mut self, timer: Timer, ctx: &mut Ctx<'_>) {
        match timer {
            Timer::Job(id) => {
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.timer = None;
                }
                self.step(id, Input::Timer, ctx);
            }
            Timer::CallTimeout(rpc) => {
                if self.pending.contains_key(&rpc) {
                    self.on_response(rpc, Resp::Refused, ctx);
                }
            }
            Timer::HintTick => self.replay_hints(ctx),
            Timer::LayoutTick => self.layout_tick(ctx),
            Timer::AntiEntropyTick => self.anti_entropy_tick(ctx),
            Timer::ReaperTick => self.reaper_tick(ctx),
            Timer::StreamTick => self.stream_tick(ctx),
        }
    }

    fn on_request(&mut self, from: ActorId, rpc: u64, req: Req, ctx: &mut Ctx<'_>) {
        let origin = (from, rpc);
        match req {
            Req::Replicate {
                skey,
                object,
                hint_for,
            } => {
                let resp = match hint_for {
                    Some(target) if target != self.id => {
                        self.keep_hint(target, &skey, &object);
                        Resp::Stored
                    }
                    _ => match self.keeper.merge(&skey, &object, self.durable(&skey)) {
                        Ok(_) => Resp::Stored,
                        Err(_) => Resp::Refused,
                    },
                };
                self.respond(origin, resp, ctx);
            }
            Req::Layout { history } => {
                self.change_layout(|h| {
                    h.merge(&history);
                });
                let mine = self.history.clone();
                self.respond(origin, Resp::Layout(mine), ctx);
            }
            Req::Tombstones(request) => {
                let resp = self.answer_reaper(&request);
                self.respond(origin, resp, ctx);
            }
            Req::AntiEntropy(req) => {
                let held = self.held(ctx);
                let local = Local {
                    held: Some(&held),
                    ..self.local()
                };
                let resp = match exchange::answer(&local, req) {
                    Ok(reply) => Resp::AntiEntropy(reply),
                    Err(_) => Resp::Refused,
                };
                self.respond(origin, resp, ctx);
            }
            Req::Stream {
                partitions,
                keyspaces,
            } => {
                let mut objects = Vec::new();
                for p in partitions {
                    for (k, v) in self.data.scan(&p.to_be_bytes()) {
                        let wanted = parse_storage_key(&k).is_some_and(|(_, ks, _)| {
                            keyspaces.is_empty() || keyspaces.contains(&ks)
                        });
                        if wanted {
                            objects.push((k, v));
                        }
                    }
                }
                self.respond(origin, Resp::Objects(objects), ctx);
            }
            Req::Read { skey } => {
                let state = self.data.get(&skey).unwrap_or_else(|e| match e {});
                self.respond(origin, Resp::State(state), ctx);
            }
            Req::Relay {
                keyspace,
                skey,
                object,
                wait_for,
                strict,
            } => self.relay(
                Origin::Peer(origin),
                keyspace,
                skey,
                object,
                wait_for,
                strict,
                ctx,
            ),
            Req::StreamBatch(batch) => self.stream_receive(origin, batch, ctx),
            Req::ClientWrite {
                keyspace,
                key,
                change,
                context,
                request_id,
                level,
                forwarded,
            } => {
                let Some(ks) = self.keyspace(&keyspace) else {
                    return self.respond(origin, Resp::Written(Err("no keyspace".into())), ctx);
                };
                let own = self.ownership(ctx.up);
                let p = partition_of(ks.id(), &key);
                let timing = Timing::with_deadline(WRITE_DEADLINE);
                let (dcs, sets) = (own.replicas(&ks, p), own.write_sets(&ks, p));
                if !forwarded {
                    match route_write(&self.id, &self.dc, &dcs, level) {
                        Ok(WriteRoute::Coordinate) => {}
                        Ok(WriteRoute::Forward(target)) => {
                            let req = Req::ClientWrite {
                                keyspace,
                                key,
                                change,
                                context,
                                request_id,
                                level,
                                forwarded: true,
                            };
                            return self.call(target, req, Pending::Forward(origin), ctx);
                        }
                        Err(e) => {
                            return self.respond(origin, Resp::Written(Err(e.to_string())), ctx);
                        }
                    }
                }
                let machine = match WriteCoordinator::new(
                    self.id, &self.dc, level, 0, dcs, sets, false, timing,
                ) {
                    Ok(m) => m,
                    Err(e) => {
                        return self.respond(origin, Resp::Written(Err(e.to_string())), ctx);
                    }
                };
                let durable = ks.sync_writes == Some(true);
                let now = ctx.now + self.skew;
                let value = match &change {
                    Change::Put(v) => Some(v.as_slice()),
                    Change::Delete | Change::Update(_) => None,
                };
                let applied = match &change {
                    Change::Update(ops) => {
                        let update = ClientUpdate {
                            key: &key,
                            ops,
                            context: &context,
                            request_id,
                        };
                        self.keeper.update(&ks, update, now, durable)
                    }
                    Change::Put(_) | Change::Delete => {
                        let write = ClientWrite {
                            key: &key,
                            value,
                            context: &context,
                            request_id,
                        };
                        self.keeper.mint(&ks, write, now, durable)
                    }
                };
                let minted = match applied {
                    Ok(m) => m,
                    Err(e) => {
                        return self.respond(origin, Resp::Written(Err(format!("{e:?}"))), ctx);
                    }
                };
                if minted.object.is_empty() {
                    return self.respond(origin, Resp::Written(Ok(minted.ack)), ctx);
                }
                let job = Job {
                    kind: Kind::Write(machine, minted.ack),
                    started: ctx.now,
                    skey: minted.storage_key,
                    object: minted.object,
                    keyspace,
                    origin: Origin::Peer(origin),
                    timer: None,
                };
                self.launch(job, ctx);
            }
            Req::ClientRead {
                keyspace,
                key,
                level,
                repair,
            } => {
                let Some(ks) = self.keyspace(&keyspace) else {
                    return self.respond(origin, Resp::ReadDone(Err("no keyspace".into())), ctx);
                };
                let own = self.ownership(ctx.up);
                let dcs = own.read_replicas(&ks, partition_of(ks.id(), &key));
                let timing = Timing::with_deadline(READ_DEADLINE);
                let machine =
                    match ReadCoordinator::new(self.id, &self.dc, level, 0, &dcs, repair, timing) {
                        Ok(m) => m,
                        Err(e) => {
                            return self.respond(origin, Resp::ReadDone(Err(e.to_string())), ctx);
                        }
                    };
                let skey = storage_key(ks.id(), &key);
                if machine.local_only() {
                    let reply = match self.keeper.load(&skey) {
                        Ok(obj) => Ok(self.keeper.reply_for(ks.id(), &key, obj.as_ref()).0),
                        Err(e) => Err(format!("{e:?}")),
                    };
                    return self.respond(origin, Resp::ReadDone(reply), ctx);
                }
                let job = Job {
                    kind: Kind::Read(machine, ks.id(), key),
                    started: ctx.now,
                    skey,
                    object: Vec::new(),
                    keyspace,
                    origin: Origin::Peer(origin),
                    timer: None,
                };
                self.launch(job, ctx);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn relay(
        &mut self,
        origin: Origin,
        keyspace: String,
        skey: Vec<u8>,
        object: Vec<u8>,
        wait_for: usize,
        strict: bool,
        ctx: &mut Ctx<'_>,
    ) {
        let (Some(ks), Some((p, _, _))) = (self.keyspace(&keyspace), parse_storage_key(&skey))
        else {
            return self.answer(origin, Resp::Refused, ctx);
        };
        let own = self.ownership(ctx.up);
        let Some(dc) = own.replicas(&ks, p).into_iter().find(|d| d.dc == self.dc) else {
            return self.answer(origin, Resp::Relayed(Vec::new()), ctx);
        };
        let sets = own
            .write_sets(&ks, p)
            .into_iter()
            .filter_map(|set| {
                set.into_iter()
                    .find(|d| d.dc == self.dc)
                    .map(|d| d.replicas.iter().map(|s| s.node).collect())
            })
            .collect();
        let stored_here = dc.contains(&self.id);
        if stored_here
            && self
                .keeper
                .merge(&skey, &object, self.durable(&skey))
                .is_err()
        {
            return self.answer(origin, Resp::Refused, ctx);
        }
        let timing = Timing::with_deadline(RELAY_DEADLINE);
        let machine = RelayCoordinator::new(self.id, dc, sets, wait_for, strict, timing);
        let job = Job {
            kind: Kind::Relay(machine, stored_here),
            started: ctx.now,
            skey,
            object,
            keyspace,
            origin,
            timer: None,
        };
        self.launch(job, ctx);
    }

    fn launch(&mut self, job: Job, ctx: &mut Ctx<'_>) {
        let id = self.next_job;
        self.next_job += 1;
        self.jobs.insert(id, job);
        self.step(id, Input::Start, ctx);
    }

    fn step(&mut self, id: u64, input: Input, ctx: &mut Ctx<'_>) {
        let Some(mut job) = self.jobs.remove(&id) else {
            return;
        };
        let elapsed = ctx.now.saturating_sub(job.started);
        let (resp, finished, next) = match &mut job.kind {
            Kind::Write(m, ack) => {
                let effects = match input {
                    Input::Start => m.start(),
                    Input::Answer(c, a) => m.on_answer(c, a),
                    Input::Timer => m.on_timer(elapsed),
                };
                let ack = ack.clone();
                let reply = self.carry_out(id, &job.skey, &job.object, &job.keyspace, effects, ctx);
                let resp = reply.map(|r| Resp::Written(r.map(|()| ack).map_err(|e| e.to_string())));
                (resp, m.finished(), m.next_timer())
            }
            Kind::Relay(m, stored_here) => {
                let effects = match input {
                    Input::Start => m.start(*stored_here),
                    Input::Answer(c, a) => m.on_answer(c, a),
                    Input::Timer => m.on_timer(elapsed),
                };
                let reply = self.carry_out(id, &job.skey, &job.object, &job.keyspace, effects, ctx);
                (reply.map(Resp::Relayed), m.finished(), m.next_timer())
            }
            Kind::Read(m, ks_id, key) => {
                let effects = match input {
                    Input::Start => m.start(),
                    Input::Answer(c, a) => m.on_answer(c, a),
                    Input::Timer => m.on_timer(elapsed),
                };
                let reply = self.carry_out(id, &job.skey, &job.object, &job.keyspace, effects, ctx);
                let resp = reply.map(|r| {
                    Resp::ReadDone(
                        r.map(|obj| self.keeper.reply_for(*ks_id, key, obj.as_ref()).0)
                            .map_err(|e| e.to_string()),
                    )
                });
                (resp, m.finished(), m.next_timer())
            }
        };
        if let Some(resp) = resp {
            self.answer(job.origin, resp, ctx);
        }
        if finished {
            return;
        }
        if let Some(t) = next
            && job.timer != Some(t)
        {
            job.timer = Some(t);
            ctx.out.push(Output::Timer {
                at: job.started + t,
                timer: Timer::Job(id),
            });
        }
        self.jobs.insert(id, job);
    }

    /// Carries out a machine's effects; returns its reply, if it gave one.
    fn carry_out<R>(
        &mut self,
        job: u64,
        skey: &[u8],
        object: &[u8],
        keyspace: &str,
        effects: Vec<Effect<R>>,
        ctx: &mut Ctx<'_>,
    ) -> Option<R> {
        let mut reply = None;
        for effect in effects {
            match effect {
                Effect::Reply(r) => reply = Some(r),
                Effect::KeepHint { target } => self.keep_hint(target, skey, object),
                Effect::Stream { dc } => self.stream_append(&dc, skey, object, ctx.now + self.skew),
                Effect::Repair { to, object } => {
                    let req = Req::Replicate {
                        skey: skey.to_vec(),
                        object: object.encode(),
                        hint_for: None,
                    };
                    self.call(to, req, Pending::Fire, ctx);
                }
                Effect::Send { call, to, message } => {
                    let req = match message {
                        Message::Replicate { hint_for } => Req::Replicate {
                            skey: skey.to_vec(),
                            object: object.to_vec(),
                            hint_for,
                        },
                        Message::Relay { wait_for } => Req::Relay {
                            keyspace: keyspace.to_string(),
                            skey: skey.to_vec(),
                            object: object.to_vec(),
                            wait_for,
                            strict: false,
                        },
                        Message::Read => Req::Read {
                            skey: skey.to_vec(),
                        },
                    };
                    self.call(to, req, Pending::Call { job, call }, ctx);
                }
            }
        }
        reply
    }

    fn on_response(&mut self, rpc: u64, resp: Resp, ctx: &mut Ctx<'_>) {
        let Some(pending) = self.pending.remove(&rpc) else {
            // A duplicate, or the answer to a call already given up on.
            return;
        };
        match pending {
            Pending::Fire => {}
            Pending::HandOff(key) => {
                self.hints_in_flight.remove(&key);
                if matches!(resp, Resp::Stored) {
                    self.hints.remove(&key);
                }
            }
            Pending::Forward(origin) => {
                let resp = match resp {
                    Resp::Written(r) => Resp::Written(r),
                    _ => {
                        Resp::Written(Err("the replica it was forwarded to did not answer".into()))
                    }
                };
                self.respond(origin, resp, ctx);
            }
            Pending::Redirected { node, skey, object } => {
                if !matches!(resp, Resp::Stored) {
                    self.keep_hint(node, &skey, &object);
                }
            }
            Pending::Layout => {
                if let Resp::Layout(theirs) = resp {
                    self.change_layout(|h| {
                        h.merge(&theirs);
                    });
                }
            }
            Pending::Stream => self.streamed(resp),
            Pending::AntiEntropy(peer) => self.anti_entropy_reply(peer, resp, ctx),
            Pending::Tombstones(peer) => self.reaper_reply(peer, resp, ctx),
            Pending::StreamBatch { dc, session, first } => {
                self.stream_reply(dc, session, first, resp, ctx)
            }
            Pending::Hint(key) => {
                self.hints_in_flight.remove(&key);
                if matches!(resp, Resp::Stored) {
                    self.hints.remove(&key);
                }
            }
            Pending::Call { job, call } => {
                let answer = match resp {
                    Resp::Stored => Answer::Stored,
                    Resp::Relayed(acked) => Answer::Relayed(acked),
                    Resp::State(None) => Answer::State(None),
                    Resp::State(Some(bytes)) => match StoredObject::decode(&bytes) {
                        Ok(obj) => Answer::State(Some(obj)),
                        Err(_) => Answer::Failed,
                    },
                    _ => Answer::Failed,
                };
                self.step(job, Input::Answer(call, answer), ctx);
            }
        }
    }

    /// Changes the layout history, and when it changed, stores it durably first (a node must
    /// never forget a version it acknowledged or committed) and adopts its secret.
    fn change_layout<R>(&mut self, f: impl FnOnce(&mut LayoutHistory) -> R) -> R {
        let mut next = (*self.history).clone();
        let r = f(&mut next);
        next.compact();
        if next != *self.history {
            self.fingerprint = next.fingerprint();
            self.current = next.current().map_or(0, |v| v.version);
            self.history = Arc::new(next);
            self.persist_layout();
            let secret = self.history.current().map(|v| *v.secret());
            if secret != self.secret {
                self.secret = secret;
                self.seal = seal_of(&self.history);
                self.keeper.set_seal(self.seal.clone());
            }
        }
        r
    }

    /// The node fsyncs its layout with every change: what it comes back with after a crash.
    fn persist_layout(&mut self) {
        self.stored_layout = self.history.clone();
    }

    /// The layout agent's tick, then streaming for a version this node has not acknowledged.
    fn layout_tick(&mut self, ctx: &mut Ctx<'_>) {
        let mine = self.fingerprint;
        let peers: Vec<PeerLayout> = ctx
            .layouts
            .iter()
            .filter(|(id, _)| **id != self.id)
            .map(|(id, (version, fp))| PeerLayout {
                id: *id,
                version: *version,
                differs: *fp != mine,
            })
            .collect();
        for peer in self.agent.exchange_with(&peers, 1, ctx.random) {
            let req = Req::Layout {
                history: self.history.clone(),
            };
            self.call(peer, req, Pending::Layout, ctx);
        }
        let agent = self.agent.clone();
        let elapsed = ctx.now.saturating_sub(self.started);
        let up = ctx.up.clone();
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&ctx.random.to_be_bytes());
        if !agent.idle(&self.history) {
            self.change_layout(|h| agent.step(h, elapsed, &peers, secret, |id| up.contains(id)));
        }
        if self.streaming.is_some() {
            return;
        }
        let own = self.ownership(ctx.up);
        if self.history.is_removed(&self.id) && !own.owns_somewhere(&self.id) {
            let held = LayoutAgent::history_held_elsewhere(&peers);
            return self.leave(&own, held, ctx);
        }
        // Once a change has retired, the partitions it moved away are deleted here.
        if let Some(r) = own.reclaimable(&self.keyspaces, self.reclaimed_for) {
            let present = r
                .partitions
                .iter()
                .any(|p| !self.data.scan(&p.to_be_bytes()).is_empty());
            if present {
                // As the node does: a new incarnation before deleting what it minted into.
                self.incarnation += 1;
                self.keeper
                    .set_actor(ActorId::for_incarnation(self.id.0, self.incarnation));
            }
            for p in r.partitions {
                // Hand the copy to the current owners first (as hints, which survive a
                // crash and follow an owner that leaves), then delete it.
                for (skey, object) in self.data.scan(&p.to_be_bytes()) {
                    let heirs = parse_storage_key(&skey)
                        .and_then(|(_, id, _)| self.keyspaces.iter().find(|k| k.id() == id))
                        .map(|ks| own.reclaim_heirs(ks, p))
                        .unwrap_or_default();
                    for heir in heirs {
                        self.keep_hint(heir, &skey, &object);
                    }
                }
                let _ = self.forest.rebuild(p, || {
                    self.data.delete_prefix(&p.to_be_bytes());
                    Ok::<_, std::convert::Infallible>(Vec::new())
                });
            }
            self.reclaimed_for = Some(r.version);
        }
        let cached = self
            .plan_cache
            .as_ref()
            .filter(|(o, _)| Rc::ptr_eq(o, &own))
            .map(|(_, plan)| plan.clone());
        let plan = cached.unwrap_or_else(|| own.stream_plan(&self.keyspaces));
        self.plan_cache = Some((own.clone(), plan.clone()));
        let Some(plan) = plan else {
            return;
        };
        let lagging = ctx
            .layouts
            .iter()
            .filter(|(id, (v, _))| **id != self.id && *v < plan.version)
            .count();
        if !self
            .gate
            .ready(plan.version, lagging, ctx.now, CALL_TIMEOUT)
            || !plan.complete
        {
            return;
        }
        if plan.pulls.is_empty() {
            let (me, version) = (self.id, plan.version);
            self.change_layout(|h| h.ack(me, version));
            return;
        }
        self.streaming = Some(Streaming {
            version: plan.version,
            outstanding: plan.pulls.len(),
            failed: false,
        });
        for pull in plan.pulls {
            let req = Req::Stream {
                partitions: pull.partitions,
                keyspaces: pull.keyspaces,
            };
            self.call(pull.source, req, Pending::Stream, ctx);
        }
    }

    /// One pull answered (or given up on); the last one acknowledges the version if every
    /// pull brought its partitions.
    fn streamed(&mut self, resp: Resp) {
        let Some(mut s) = self.streaming.take() else {
            return;
        };
        match resp {
            Resp::Objects(objects) => {
                for (skey, object) in objects {
                    let durable = self.durable(&skey);
                    if self.keeper.merge(&skey, &object, durable).is_err() {
                        s.failed = true;
                    }
                }
            }
            _ => s.failed = true,
        }
        s.outstanding -= 1;
        if s.outstanding > 0 {
            self.streaming = Some(s);
            return;
        }
        let current = self.history.current().map(|v| v.version);
        if !s.failed && current == Some(s.version) {
            let me = self.id;
            self.change_layout(|h| h.ack(me, s.version));
        }
    }

    /// Decommissioned and owning nothing: hand every hint to an heir (the core's
    /// `handoff::heir`), then stop for good, cleanly.
    fn leave(&mut self, own: &Ownership, held: bool, ctx: &mut Ctx<'_>) {
        let hints = self.hints.entries();
        if hints.is_empty() && !held {
            // The exchange above brings a peer to this history; stop after that.
            return;
        }
        if hints.is_empty() {
            self.flush();
            self.up = false;
            self.stopped = true;
            return;
        }
        for (key, value) in hints.into_iter().take(HINTS_PER_TICK) {
            if self.hints_in_flight.contains(&key) {
                continue;
            }
            let Some((target, skey, object)) = parse_hint(&key, &value) else {
                continue;
            };
            let Some(heir) = handoff::heir(own, &target) else {
                continue;
            };
            let req = Req::Replicate {
                skey: skey.to_vec(),
                object: object.to_vec(),
                hint_for: Some(target),
            };
            self.hints_in_flight.insert(key.clone());
            self.call(heir, req, Pending::HandOff(key), ctx);
        }
    }

    /// Stages a change to the layout (an operator's `decommission` or `remove`).
    pub fn stage(&mut self, id: ActorId, change: meridian_core::layout::StagedChange) {
        let me = self.id;
        self.change_layout(|h| h.stage(me, id, change));
    }

    fn keep_hint(&mut self, target: ActorId, skey: &[u8], object: &[u8]) {
        if object.is_empty() {
            return;
        }
        let mut key = target.0.to_vec();
        key.extend_from_slice(&self.hint_seq.to_be_bytes());
        self.hint_seq += 1;
        let mut value = self.clock.to_be_bytes().to_vec();
        value.extend_from_slice(&(skey.len() as u32).to_be_bytes());
        value.extend_from_slice(skey);
        value.extend_from_slice(object);
        let durable = self.durable(skey);
        self.hints
            .put(&key, &value, durable)
            .unwrap_or_else(|e| match e {});
    }

    /// Hands hints over to targets believed up (a hint is deleted once its target stored
    /// it), and sends those of targets that left to the keys' current replicas: the core's
    /// `handoff` rules.
    fn replay_hints(&mut self, ctx: &mut Ctx<'_>) {
        let own = self.ownership(ctx.up);
        let mut sent = 0;
        for (key, value) in self.hints.entries() {
            if sent >= HINTS_PER_TICK {
                break;
            }
            // Like the node's hints: past the maximum age a hint is dropped, never sent
            // (tombstone GC's grace counts on it); anti-entropy repairs what it held.
            if self
                .hint_max_age
                .is_some_and(|age| ctx.now.saturating_sub(hint_created(&value)) > age)
                && !self.hints_in_flight.contains(&key)
            {
                self.hints.remove(&key);
                self.hints_expired += 1;
                continue;
            }
            let Some((target, skey, object)) = parse_hint(&key, &value) else {
                continue;
            };
            if self.hints_in_flight.contains(&key) {
                continue;
            }
            match handoff::route(&own, &target) {
                HintRoute::Wait => {}
                HintRoute::Deliver => {
                    let req = Req::Replicate {
                        skey: skey.to_vec(),
                        object: object.to_vec(),
                        hint_for: None,
                    };
                    self.hints_in_flight.insert(key.clone());
                    self.call(target, req, Pending::Hint(key), ctx);
                    sent += 1;
                }
                HintRoute::Redirect => {
                    let Some((partition, ks_id, _)) = parse_storage_key(skey) else {
                        continue;
                    };
                    let Some(ks) = self.keyspaces.iter().find(|k| k.id() == ks_id).cloned() else {
                        continue;
                    };
                    for to in handoff::redirect(&own, &ks, partition) {
                        match to {
                            Redirect::MergeHere => {
                                let durable = self.durable(skey);
                                let _ = self.keeper.merge(skey, object, durable);
                            }
                            Redirect::KeepFor(node) => self.keep_hint(node, skey, object),
                            Redirect::Send(node) => {
                                let req = Req::Replicate {
                                    skey: skey.to_vec(),
                                    object: object.to_vec(),
                                    hint_for: None,
                                };
                                let pending = Pending::Redirected {
                                    node,
                                    skey: skey.to_vec(),
                                    object: object.to_vec(),
                                };
                                self.call(node, req, pending, ctx);
                            }
                        }
                    }
                    self.hints.remove(&key);
                    sent += 1;
                }
            }
        }
    }
}

/// A stored hint: (target, storage key, object). Key = target + sequence; value = storage key
/// length (4 bytes, BE), storage key, object (see `keep_hint`).
/// A hint's target, storage key and object; its creation time is the first 8 bytes.
fn parse_hint<'a>(key: &[u8], value: &'a [u8]) -> Option<(ActorId, &'a [u8], &'a [u8])> {
    let target = ActorId(<[u8; 16]>::try_from(key.get(..16)?).ok()?);
    let value = value.get(8..)?;
    let len = u32::from_be_bytes(<[u8; 4]>::try_from(value.get(..4)?).ok()?) as usize;
    Some((target, value.get(4..4 + len)?, value.get(4 + len..)?))
}

fn hint_created(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

/// The context seal of a layout's cluster secret (a placeholder before the node has one).
fn seal_of(history: &LayoutHistory) -> ContextSeal {
    history
        .current()
        .map(|v| ContextSeal::new(*v.secret()))
        .unwrap_or_else(|| ContextSeal::new([0; 32]))
}
