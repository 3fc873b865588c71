//! One CRDT value of any kind, as a dot store: what a key of a CRDT keyspace holds, and what
//! a field of a map holds. Operations turn into deltas here, and deltas and states join here.

use super::counter::{self, CounterStore};
use super::dots::DotContext;
use super::flag::{self, FlagStore};
use super::register::{self, RegisterStore};
use super::set::{self, SetStore};
use super::store::DotStore;
use super::{CrdtKind, Field, Minter, Op, Value};
use crate::dvv::Dot;
use crate::error::CoreError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Store {
    Counter(CounterStore),
    Set(SetStore),
    Register(RegisterStore),
    MvRegister(RegisterStore),
    Flag(FlagStore),
    /// Fields are named and typed: `a` the counter and `a` the set are two fields.
    Map(BTreeMap<Field, Store>),
}

impl Store {
    pub fn empty(kind: CrdtKind) -> Self {
        match kind {
            CrdtKind::Counter => Store::Counter(Default::default()),
            CrdtKind::Set => Store::Set(Default::default()),
            CrdtKind::Register => Store::Register(Default::default()),
            CrdtKind::MvRegister => Store::MvRegister(Default::default()),
            CrdtKind::Flag => Store::Flag(Default::default()),
            CrdtKind::Map => Store::Map(BTreeMap::new()),
        }
    }

    pub fn kind(&self) -> CrdtKind {
        match self {
            Store::Counter(_) => CrdtKind::Counter,
            Store::Set(_) => CrdtKind::Set,
            Store::Register(_) => CrdtKind::Register,
            Store::MvRegister(_) => CrdtKind::MvRegister,
            Store::Flag(_) => CrdtKind::Flag,
            Store::Map(_) => CrdtKind::Map,
        }
    }

    /// Joins two stores of the same kind; `None` for different kinds, which never meet in
    /// one keyspace or one typed field.
    pub fn join(&self, ctx: &DotContext, other: &Self, octx: &DotContext) -> Option<Self> {
        Some(match (self, other) {
            (Store::Counter(a), Store::Counter(b)) => Store::Counter(a.join(ctx, b, octx)),
            (Store::Set(a), Store::Set(b)) => Store::Set(a.join(ctx, b, octx)),
            (Store::Register(a), Store::Register(b)) => Store::Register(a.join(ctx, b, octx)),
            (Store::MvRegister(a), Store::MvRegister(b)) => Store::MvRegister(a.join(ctx, b, octx)),
            (Store::Flag(a), Store::Flag(b)) => Store::Flag(a.join(ctx, b, octx)),
            (Store::Map(a), Store::Map(b)) => {
                let mut out = BTreeMap::new();
                let fields: BTreeSet<&Field> = a.keys().chain(b.keys()).collect();
                for f in fields {
                    let empty = Store::empty(f.kind);
                    let x = a.get(f).unwrap_or(&empty);
                    let y = b.get(f).unwrap_or(&empty);
                    let joined = x.join(ctx, y, octx)?;
                    if !joined.is_bottom() {
                        out.insert(f.clone(), joined);
                    }
                }
                Store::Map(out)
            }
            _ => return None,
        })
    }

    pub fn collect_dots(&self, out: &mut Vec<Dot>) {
        match self {
            Store::Counter(s) => s.collect_dots(out),
            Store::Set(s) => s.collect_dots(out),
            Store::Register(s) | Store::MvRegister(s) => s.collect_dots(out),
            Store::Flag(s) => s.collect_dots(out),
            Store::Map(fields) => fields.values().for_each(|s| s.collect_dots(out)),
        }
    }

    pub fn is_bottom(&self) -> bool {
        match self {
            Store::Counter(s) => s.is_bottom(),
            Store::Set(s) => s.is_bottom(),
            Store::Register(s) | Store::MvRegister(s) => s.is_bottom(),
            Store::Flag(s) => s.is_bottom(),
            Store::Map(fields) => fields.is_empty(),
        }
    }

    /// Whether every field holds the kind its name says, all the way down, and no slot is
    /// empty (decoded input: a join never leaves an empty slot behind).
    pub fn is_well_typed(&self) -> bool {
        match self {
            Store::Map(fields) => fields
                .iter()
                .all(|(f, s)| s.kind() == f.kind && !s.is_bottom() && s.is_well_typed()),
            Store::Set(elements) => elements.0.values().all(|d| !d.is_bottom()),
            _ => true,
        }
    }

    /// The delta of one operation: the pieces it adds, and the dots it has seen (the new
    /// ones and those it replaces or removes).
    pub fn delta(
        &self,
        op: &Op,
        observed: Option<&DotContext>,
        m: &mut Minter,
    ) -> Result<(Store, Vec<Dot>), CoreError> {
        let mismatch = || CoreError::WrongCrdtOp {
            op: op.name().to_string(),
            kind: self.kind().name().to_string(),
        };
        Ok(match (self, op) {
            (Store::Counter(s), Op::Increment(by)) => {
                let (d, seen) = counter::increment(s, *by, m)?;
                (Store::Counter(d), seen)
            }
            (Store::Set(s), Op::Add(elements)) => {
                let (d, seen) = set::add(s, elements, m)?;
                (Store::Set(d), seen)
            }
            (Store::Set(s), Op::Remove(elements)) => (
                Store::Set(Default::default()),
                set::remove(s, elements, observed),
            ),
            (Store::Register(s), Op::Assign(v)) => {
                let (d, seen) = register::assign(s, v, observed, m)?;
                (Store::Register(d), seen)
            }
            (Store::MvRegister(s), Op::Assign(v)) => {
                let (d, seen) = register::assign(s, v, observed, m)?;
                (Store::MvRegister(d), seen)
            }
            (Store::Flag(s), Op::Enable) => {
                let (d, seen) = flag::enable(s, m)?;
                (Store::Flag(d), seen)
            }
            (Store::Flag(s), Op::Disable) => {
                (Store::Flag(Default::default()), flag::disable(s, observed))
            }
            (Store::Map(fields), Op::Update { field, op }) => {
                let empty = Store::empty(field.kind);
                let current = fields.get(field).unwrap_or(&empty);
                let (d, seen) = current.delta(op, observed, m).map_err(|e| match e {
                    CoreError::WrongCrdtOp { op, kind } => CoreError::WrongCrdtOp {
                        op,
                        kind: format!("{kind} (field {:?})", field.name),
                    },
                    e => e,
                })?;
                let mut out = BTreeMap::new();
                if !d.is_bottom() {
                    out.insert(field.clone(), d);
                }
                (Store::Map(out), seen)
            }
            (Store::Map(fields), Op::RemoveField(field)) => {
                let mut seen = Vec::new();
                if let Some(s) = fields.get(field) {
                    s.collect_dots(&mut seen);
                }
                seen.retain(|d| observed.is_none_or(|o| o.contains(d)));
                (Store::Map(BTreeMap::new()), seen)
            }
            _ => return Err(mismatch()),
        })
    }

    pub fn value(&self) -> Value {
        match self {
            Store::Counter(s) => Value::Counter(counter::value(s)),
            Store::Set(s) => Value::Set(set::members(s)),
            Store::Register(s) => Value::Register(register::winner(s).cloned()),
            Store::MvRegister(s) => Value::MvRegister(register::values(s)),
            Store::Flag(s) => Value::Flag(flag::is_enabled(s)),
            Store::Map(fields) => {
                Value::Map(fields.iter().map(|(f, s)| (f.clone(), s.value())).collect())
            }
        }
    }
}
