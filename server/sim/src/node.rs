//! One simulated node: the core's [`Keeper`] over an in-memory store, and the core's request
//! machines, executed over the simulated network. This file is the simulation's counterpart of
//! the node crate's `drive.rs` and `peer_service.rs`: it moves messages and keeps hints; every
//! decision is the core's.

use crate::msg::{Msg, Req, Resp};
use meridian_core::coordinate::{
    Answer, CallId, Effect, Machine, Message, ReadCoordinator, RelayCoordinator, Timing,
    WriteCoordinator,
};
use meridian_core::keeper::{ClientWrite, Keeper, WriteAck};
use meridian_core::layout::LayoutHistory;
use meridian_core::layout::ownership::Ownership;
use meridian_core::partition::{parse_storage_key, partition_of, storage_key};
use meridian_core::store::{MemStore, Store};
use meridian_core::{ActorId, ContextSeal, KeyspaceSpec, StoredObject};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

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
    pub out: Vec<Output>,
}

enum Kind {
    Write(WriteCoordinator, WriteAck),
    Relay(RelayCoordinator, bool),
    Read(ReadCoordinator, u64, Vec<u8>),
}

struct Job {
    kind: Kind,
    started: u64,
    skey: Vec<u8>,
    object: Vec<u8>,
    keyspace: String,
    origin: (ActorId, u64),
    timer: Option<u64>,
}

enum Input {
    Start,
    Answer(CallId, Answer),
    Timer,
}

enum Pending {
    Call { job: u64, call: CallId },
    Hint(Vec<u8>),
    Fire,
}

pub struct SimNode {
    pub id: ActorId,
    pub dc: String,
    pub up: bool,
    pub incarnation: u32,
    pub data: Rc<MemStore>,
    pub hints: Rc<MemStore>,
    keeper: Keeper<Rc<MemStore>>,
    pub history: Arc<LayoutHistory>,
    keyspaces: Rc<Vec<KeyspaceSpec>>,
    seal: ContextSeal,
    /// This node's wall clock runs this far ahead of simulated time.
    skew: u64,
    jobs: BTreeMap<u64, Job>,
    next_job: u64,
    pending: BTreeMap<u64, Pending>,
    next_rpc: u64,
    hint_seq: u64,
    hints_in_flight: BTreeSet<Vec<u8>>,
}

impl SimNode {
    pub fn new(
        id: ActorId,
        dc: &str,
        history: Arc<LayoutHistory>,
        keyspaces: Rc<Vec<KeyspaceSpec>>,
        skew: u64,
    ) -> Self {
        let seal = history
            .current()
            .map(|v| ContextSeal::new(*v.secret()))
            .unwrap_or_else(|| ContextSeal::new([0; 32]));
        let data = Rc::new(MemStore::new());
        Self {
            id,
            dc: dc.to_string(),
            up: true,
            incarnation: 0,
            keeper: Keeper::new(
                data.clone(),
                ActorId::for_incarnation(id.0, 0),
                seal.clone(),
            ),
            data,
            hints: Rc::new(MemStore::new()),
            history,
            keyspaces,
            seal,
            skew,
            jobs: BTreeMap::new(),
            next_job: 0,
            pending: BTreeMap::new(),
            next_rpc: 0,
            hint_seq: 0,
            hints_in_flight: BTreeSet::new(),
        }
    }

    /// Power cut: unsynced writes, hints and every request in flight are gone.
    pub fn crash(&mut self) {
        self.up = false;
        self.data.crash();
        self.hints.crash();
        self.jobs.clear();
        self.pending.clear();
        self.hints_in_flight.clear();
    }

    /// Back after a crash, minting under the next incarnation (the node's rule after an
    /// unclean stop), so no dot it minted and lost is minted again.
    pub fn restart(&mut self) {
        self.incarnation += 1;
        let actor = ActorId::for_incarnation(self.id.0, self.incarnation);
        self.keeper = Keeper::new(self.data.clone(), actor, self.seal.clone());
        self.up = true;
    }

    /// The OS wrote its page cache back.
    pub fn flush(&self) {
        self.data.flush();
        self.hints.flush();
    }

    pub fn keeper(&self) -> &Keeper<Rc<MemStore>> {
        &self.keeper
    }

    pub fn ownership(&self, up: &BTreeSet<ActorId>) -> Ownership {
        Ownership::new(self.id, &self.dc, self.history.clone(), up.clone())
    }

    pub fn hint_count(&self) -> usize {
        self.hints.entries().len()
    }

    fn keyspace(&self, name: &str) -> Option<KeyspaceSpec> {
        self.keyspaces.iter().find(|k| k.name == name).cloned()
    }

    fn durable(&self, skey: &[u8]) -> bool {
        parse_storage_key(skey).is_some_and(|(_, id, _)| {
            self.keyspaces
                .iter()
                .any(|k| k.id() == id && k.sync_writes == Some(true))
        })
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
            } => self.relay(origin, keyspace, skey, object, wait_for, strict, ctx),
            Req::ClientWrite {
                keyspace,
                key,
                value,
                context,
                request_id,
                level,
            } => {
                let Some(ks) = self.keyspace(&keyspace) else {
                    return self.respond(origin, Resp::Written(Err("no keyspace".into())), ctx);
                };
                let own = self.ownership(ctx.up);
                let p = partition_of(ks.id(), &key);
                let timing = Timing::with_deadline(WRITE_DEADLINE);
                let (dcs, sets) = (own.replicas(&ks, p), own.write_sets(&ks, p));
                let machine = match WriteCoordinator::new(
                    self.id, &self.dc, level, 0, dcs, sets, false, timing,
                ) {
                    Ok(m) => m,
                    Err(e) => {
                        return self.respond(origin, Resp::Written(Err(e.to_string())), ctx);
                    }
                };
                let write = ClientWrite {
                    key: &key,
                    value: value.as_deref(),
                    context: &context,
                    request_id,
                };
                let durable = ks.sync_writes == Some(true);
                let minted = match self.keeper.mint(&ks, write, ctx.now + self.skew, durable) {
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
                    origin,
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
                    origin,
                    timer: None,
                };
                self.launch(job, ctx);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn relay(
        &mut self,
        origin: (ActorId, u64),
        keyspace: String,
        skey: Vec<u8>,
        object: Vec<u8>,
        wait_for: usize,
        strict: bool,
        ctx: &mut Ctx<'_>,
    ) {
        let (Some(ks), Some((p, _, _))) = (self.keyspace(&keyspace), parse_storage_key(&skey))
        else {
            return self.respond(origin, Resp::Refused, ctx);
        };
        let own = self.ownership(ctx.up);
        let Some(dc) = own.replicas(&ks, p).into_iter().find(|d| d.dc == self.dc) else {
            return self.respond(origin, Resp::Relayed(Vec::new()), ctx);
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
            return self.respond(origin, Resp::Refused, ctx);
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
            self.respond(job.origin, resp, ctx);
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

    fn keep_hint(&mut self, target: ActorId, skey: &[u8], object: &[u8]) {
        if object.is_empty() {
            return;
        }
        let mut key = target.0.to_vec();
        key.extend_from_slice(&self.hint_seq.to_be_bytes());
        self.hint_seq += 1;
        let mut value = (skey.len() as u32).to_be_bytes().to_vec();
        value.extend_from_slice(skey);
        value.extend_from_slice(object);
        let durable = self.durable(skey);
        self.hints
            .put(&key, &value, durable)
            .unwrap_or_else(|e| match e {});
    }

    /// Hands hints over to targets believed up; a hint is deleted once its target stored it.
    fn replay_hints(&mut self, ctx: &mut Ctx<'_>) {
        let mut sent = 0;
        for (key, value) in self.hints.entries() {
            if sent >= HINTS_PER_TICK {
                break;
            }
            let Ok(target) = <[u8; 16]>::try_from(&key[..16]) else {
                continue;
            };
            let target = ActorId(target);
            if self.hints_in_flight.contains(&key) || !ctx.up.contains(&target) {
                continue;
            }
            let Some(len) = value.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
                continue;
            };
            let len = u32::from_be_bytes(len) as usize;
            let (Some(skey), Some(object)) = (value.get(4..4 + len), value.get(4 + len..)) else {
                continue;
            };
            let req = Req::Replicate {
                skey: skey.to_vec(),
                object: object.to_vec(),
                hint_for: None,
            };
            self.hints_in_flight.insert(key.clone());
            self.call(target, req, Pending::Hint(key), ctx);
            sent += 1;
        }
    }
}
