//! The workload: clients that read and write a few hot keys with fresh, stale and missing
//! contexts, delete with contexts, and retry with the same request id after a timeout or an
//! error (to another node, too). Every write is recorded with the values its context had
//! seen, which is what the checks judge the outcome by.

use crate::msg::{Req, Resp};
use crate::rng::Rng;
use meridian_core::crdt::{CrdtKind, Field, Op};
use meridian_core::keeper::Change;
use meridian_core::{ActorId, Consistency};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;

/// One write as the client issued it.
#[derive(Debug, Clone)]
pub struct Record {
    pub client: usize,
    pub keyspace: String,
    pub key: Vec<u8>,
    /// `None`: a delete, or a CRDT update.
    pub value: Option<Vec<u8>>,
    /// A CRDT update's operations.
    pub ops: Vec<Op>,
    /// The live values of the reply whose context this write sent.
    pub seen: Vec<Vec<u8>>,
    /// Sent with no context or an outdated one: may add a sibling.
    pub blind: bool,
    pub acked: bool,
    /// Times it was sent (retries included).
    pub attempts: u32,
    /// Acknowledged by one replica: lost for good if that replica dies for good first.
    pub single_copy: bool,
}

#[derive(Debug, Clone)]
struct Known {
    context: Vec<u8>,
    values: Vec<Vec<u8>>,
}

#[derive(Debug)]
enum OpKind {
    Write(usize),
    Read,
}

/// The operation in flight.
#[derive(Debug)]
struct InFlight {
    rpc: u64,
    kind: OpKind,
    req: Req,
    attempts: u32,
    ks_key: (String, Vec<u8>),
}

pub struct Client {
    pub id: ActorId,
    pub index: usize,
    pub dc: String,
    pub ops_left: u32,
    known: BTreeMap<(String, Vec<u8>), Vec<Known>>,
    op: Option<InFlight>,
    next_rpc: u64,
    written: u64,
    /// Where the current operation was last sent: a retry goes there again first, so the
    /// node that may have minted it sees the request id again.
    pub target: Option<ActorId>,
}

/// What the world should do after a client step.
pub enum Next {
    /// Send `req` (a new rpc) to some node; `write` says whether it must go to a replica.
    Send { rpc: u64, req: Req },
    /// Idle: schedule the next operation.
    Idle,
}

pub const RETRIES: u32 = 2;

const WRITE_LEVELS: &[Consistency] = &[
    Consistency::Quorum,
    Consistency::LocalQuorum,
    Consistency::LocalOne,
    Consistency::One,
    Consistency::EachQuorum,
];
const READ_LEVELS: &[Consistency] = &[
    Consistency::Quorum,
    Consistency::LocalQuorum,
    Consistency::LocalOne,
    Consistency::One,
];

impl Client {
    pub fn new(index: usize, dc: &str, ops: u32) -> Self {
        let mut id = [0xC0u8; 16];
        id[8..].copy_from_slice(&(index as u64).to_be_bytes());
        Self {
            id: ActorId(id),
            index,
            dc: dc.to_string(),
            ops_left: ops,
            known: BTreeMap::new(),
            op: None,
            next_rpc: 0,
            written: 0,
            target: None,
        }
    }

    pub fn in_flight(&self) -> Option<u64> {
        self.op.as_ref().map(|o| o.rpc)
    }

    /// The key the current operation is about (writes go to one of its replicas).
    pub fn current_key(&self) -> Option<&(String, Vec<u8>)> {
        self.op.as_ref().map(|o| &o.ks_key)
    }

    pub fn is_write(&self) -> bool {
        matches!(self.op.as_ref().map(|o| &o.kind), Some(OpKind::Write(_)))
    }

    fn rpc(&mut self) -> u64 {
        self.next_rpc += 1;
        self.next_rpc
    }

    /// Starts the next operation.
    pub fn start(
        &mut self,
        rng: &mut Rng,
        keyspaces: &[String],
        keys: usize,
        records: &mut Vec<Record>,
    ) -> Option<Next> {
        if self.ops_left == 0 {
            return None;
        }
        self.ops_left -= 1;
        let ks = rng.pick(keyspaces)?.clone();
        let key = format!("k{}", rng.range(0, keys as u64)).into_bytes();
        let ks_key = (ks.clone(), key.clone());
        let rpc = self.rpc();
        if let Some(ops) = self.crdt_ops(rng, &ks, &key, records) {
            return self.send_update(rng, rpc, ks_key, ops, records);
        }
        if rng.chance(0.35) {
            let level = *rng.pick(READ_LEVELS)?;
            let req = Req::ClientRead {
                keyspace: ks,
                key,
                level,
                repair: rng.chance(0.1),
            };
            self.op = Some(InFlight {
                rpc,
                kind: OpKind::Read,
                req: req.clone(),
                attempts: 0,
                ks_key,
            });
            return Some(Next::Send { rpc, req });
        }
        let history = self.known.get(&ks_key).cloned().unwrap_or_default();
        let (known, blind) = match (history.last(), rng.range(0, 10)) {
            (Some(k), 0..=5) => (Some(k.clone()), false),
            (Some(_), 6..=7) => (rng.pick(&history).cloned(), true),
            _ => (None, true),
        };
        let delete = known.is_some() && rng.chance(0.15);
        self.written += 1;
        let value = (!delete).then(|| format!("c{}-{}", self.index, self.written).into_bytes());
        let mut request_id = rng.bytes16();
        request_id[0] = self.index as u8;
        let record = Record {
            client: self.index,
            keyspace: ks.clone(),
            key: key.clone(),
            value: value.clone(),
            ops: Vec::new(),
            seen: known.as_ref().map(|k| k.values.clone()).unwrap_or_default(),
            blind,
            acked: false,
            attempts: 1,
            single_copy: false,
        };
        records.push(record);
        let level = *rng.pick(WRITE_LEVELS)?;
        if let Some(r) = records.last_mut() {
            r.single_copy = matches!(level, Consistency::One | Consistency::LocalOne);
        }
        let req = Req::ClientWrite {
            keyspace: ks,
            key,
            change: value.map_or(Change::Delete, Change::Put),
            context: known.map(|k| k.context).unwrap_or_default(),
            request_id,
            level,
            forwarded: false,
        };
        self.op = Some(InFlight {
            rpc,
            kind: OpKind::Write(records.len() - 1),
            req: req.clone(),
            attempts: 0,
            ks_key,
        });
        Some(Next::Send { rpc, req })
    }

    /// The operations of a CRDT update when `ks` is a CRDT keyspace: counters take
    /// increments; carts take adds of new elements and removes of ones this client added.
    fn crdt_ops(
        &mut self,
        rng: &mut Rng,
        ks: &str,
        key: &[u8],
        records: &[Record],
    ) -> Option<Vec<Op>> {
        match ks {
            "counters" => Some(vec![Op::Increment(rng.range(1, 10) as i64)]),
            "carts" => {
                let mine: Vec<&ByteBuf> = records
                    .iter()
                    .filter(|r| r.client == self.index && r.keyspace == ks && r.key == key)
                    .flat_map(|r| r.ops.iter())
                    .filter_map(|op| match op {
                        Op::Add(e) => e.first(),
                        _ => None,
                    })
                    .collect();
                if !mine.is_empty() && rng.chance(0.3) {
                    let e = (*rng.pick(&mine)?).clone();
                    return Some(vec![Op::Remove(vec![e])]);
                }
                self.written += 1;
                let e = format!("c{}-{}", self.index, self.written).into_bytes();
                Some(vec![Op::Add(vec![ByteBuf::from(e)])])
            }
            "profiles" => {
                let field = |name: &str, kind| Field::new(name, kind);
                let update = |f: Field, op: Op| Op::Update {
                    field: f,
                    op: Box::new(op),
                };
                self.written += 1;
                let tag = format!("c{}-{}", self.index, self.written).into_bytes();
                let mut ops = vec![update(
                    field("visits", CrdtKind::Counter),
                    Op::Increment(rng.range(1, 5) as i64),
                )];
                if rng.chance(0.5) {
                    ops.push(update(
                        field("tags", CrdtKind::Set),
                        Op::Add(vec![ByteBuf::from(tag)]),
                    ));
                }
                if rng.chance(0.2) {
                    ops.push(update(
                        field("prefs", CrdtKind::Map),
                        update(field("dark", CrdtKind::Flag), Op::Enable),
                    ));
                }
                Some(ops)
            }
            _ => None,
        }
    }

    fn send_update(
        &mut self,
        rng: &mut Rng,
        rpc: u64,
        ks_key: (String, Vec<u8>),
        ops: Vec<Op>,
        records: &mut Vec<Record>,
    ) -> Option<Next> {
        let mut request_id = rng.bytes16();
        request_id[0] = self.index as u8;
        let level = *rng.pick(WRITE_LEVELS)?;
        records.push(Record {
            client: self.index,
            keyspace: ks_key.0.clone(),
            key: ks_key.1.clone(),
            value: None,
            ops: ops.clone(),
            seen: Vec::new(),
            blind: true,
            acked: false,
            attempts: 1,
            single_copy: matches!(level, Consistency::One | Consistency::LocalOne),
        });
        let req = Req::ClientWrite {
            keyspace: ks_key.0.clone(),
            key: ks_key.1.clone(),
            change: Change::Update(ops),
            context: Vec::new(),
            request_id,
            level,
            forwarded: false,
        };
        self.op = Some(InFlight {
            rpc,
            kind: OpKind::Write(records.len() - 1),
            req: req.clone(),
            attempts: 0,
            ks_key,
        });
        Some(Next::Send { rpc, req })
    }

    /// An answer, or a timeout (`None`), for rpc `rpc`.
    pub fn on_answer(&mut self, rpc: u64, resp: Option<Resp>, records: &mut [Record]) -> Next {
        let Some(op) = self.op.as_mut() else {
            return Next::Idle;
        };
        if op.rpc != rpc {
            return Next::Idle;
        }
        let ok = match (&op.kind, resp) {
            (OpKind::Write(i), Some(Resp::Written(Ok(ack)))) => {
                let record = &mut records[*i];
                record.acked = true;
                let values = if ack.siblings.is_empty() {
                    record.value.iter().cloned().collect()
                } else {
                    ack.siblings
                };
                let known = Known {
                    context: ack.context,
                    values,
                };
                self.known.entry(op.ks_key.clone()).or_default().push(known);
                true
            }
            (OpKind::Read, Some(Resp::ReadDone(Ok(reply)))) => {
                let known = Known {
                    context: reply.context,
                    values: reply.values,
                };
                self.known.entry(op.ks_key.clone()).or_default().push(known);
                true
            }
            _ => false,
        };
        if ok || op.attempts >= RETRIES {
            self.op = None;
            self.target = None;
            return Next::Idle;
        }
        // Retry with the same request id: the server must not mint it twice into siblings.
        op.attempts += 1;
        if let OpKind::Write(i) = op.kind {
            records[i].attempts += 1;
        }
        self.next_rpc += 1;
        op.rpc = self.next_rpc;
        Next::Send {
            rpc: op.rpc,
            req: op.req.clone(),
        }
    }
}
