//! CRDT keyspaces: values the servers merge themselves, so they never show siblings.
//!
//! Every type is a *causal* CRDT in the delta-state style: a dot store (the pieces of the
//! value, each tagged with the dot that made it; see [`store`]) plus a [`DotContext`] (every
//! dot the value has seen). An operation at the coordinating replica becomes a *delta*: a
//! small state holding only what the operation added and the dots it replaced or removed.
//! Joining the delta into any replica's state has the effect of the operation, so replicas
//! in other datacenters receive deltas, never whole states, and anti-entropy and read
//! repair join whole states with the same join.
//!
//! Why not the `crdts` crate's types as they are: its sets and maps keep a version vector
//! as their context, and applying an add whose dot is not its actor's next one drops it. A
//! delta that overtakes an earlier one — a hint replayed late, a stream batch retried —
//! would lose the earlier add. With a dot cloud the join is right in any order. The crate
//! also lacks the enable-wins flag, and its encoding follows HashMap order; ours uses
//! ordered maps only, so equal states encode to equal bytes, which Merkle trees need. Its
//! map, joined with a stale copy of itself, can bring back a field removed since the copy.
//! The crate stays as a reference model: `reference_tests` checks that every replica of ours
//! reads what the crate's counter, OR-set, registers and (as an OR-set of one element) flag
//! read, over random histories of operations and syncs, and records both defects above.
//!
//! Actors are server incarnations ([`ActorId`]), never clients, and a join keeps one dot per
//! actor in each slot: metadata grows with the servers that wrote, not with operations.
//! Removes leave no tombstones: a removed piece's dot stays in the context, whose vector
//! absorbs it.
//!
//! Laws (property-tested in `tests`): join is commutative, associative and idempotent; a
//! state joined with its own delta equals the state the operation produced; replicas that
//! exchanged deltas in any order, duplicated or not, equal replicas that exchanged states.

pub mod counter;
pub mod dots;
pub mod encoding;
pub mod flag;
pub mod object;
pub mod register;
pub mod set;
pub mod store;
pub mod typed;
pub mod update;

#[cfg(test)]
mod reference_tests;
#[cfg(test)]
mod tests;

use crate::actor::ActorId;
use crate::dvv::Dot;
use crate::error::CoreError;
pub use dots::DotContext;
pub use object::Crdt;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;
use std::fmt;

/// The CRDT kinds a keyspace (or a map field) can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CrdtKind {
    Counter,
    Set,
    Map,
    /// Last writer (by hybrid logical timestamp) wins.
    Register,
    /// Concurrent assignments are all kept until one that saw them replaces them.
    MvRegister,
    /// Enable wins over a concurrent disable.
    Flag,
}

impl CrdtKind {
    pub const ALL: [CrdtKind; 6] = [
        CrdtKind::Counter,
        CrdtKind::Set,
        CrdtKind::Map,
        CrdtKind::Register,
        CrdtKind::MvRegister,
        CrdtKind::Flag,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CrdtKind::Counter => "counter",
            CrdtKind::Set => "set",
            CrdtKind::Map => "map",
            CrdtKind::Register => "register",
            CrdtKind::MvRegister => "mvregister",
            CrdtKind::Flag => "flag",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for CrdtKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A map field: its name and its kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub kind: CrdtKind,
}

impl Field {
    pub fn new(name: impl Into<String>, kind: CrdtKind) -> Self {
        Self {
            name: name.into(),
            kind,
        }
    }
}

/// One operation of an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Counter: add any i64 (negative decrements).
    Increment(i64),
    /// Set: add elements.
    Add(Vec<ByteBuf>),
    /// Set: remove the adds of these elements that the context saw.
    Remove(Vec<ByteBuf>),
    /// Register: assign, replacing the values the context saw.
    Assign(ByteBuf),
    Enable,
    /// Flag: disable the enables the context saw.
    Disable,
    /// Map: apply an operation to a field, creating it if absent.
    Update {
        field: Field,
        op: Box<Op>,
    },
    /// Map: remove a field's content that the context saw.
    RemoveField(Field),
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Increment(_) => "increment",
            Op::Add(_) => "add",
            Op::Remove(_) => "remove",
            Op::Assign(_) => "assign",
            Op::Enable => "enable",
            Op::Disable => "disable",
            Op::Update { .. } => "update",
            Op::RemoveField(_) => "remove_field",
        }
    }
}

/// What a read shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Counter(i64),
    Set(Vec<ByteBuf>),
    Register(Option<ByteBuf>),
    MvRegister(Vec<ByteBuf>),
    Flag(bool),
    Map(BTreeMap<Field, Value>),
}

/// Operations in one update.
pub const MAX_OPS: usize = 1_000;
/// Bytes of a map field's name.
pub const MAX_FIELD_NAME: usize = 256;
/// Maps nested in maps.
pub const MAX_DEPTH: usize = 8;

/// Checks an update against the limits before anything is applied: a set element or a
/// register value may be as large as a value of the keyspace.
pub fn check_ops(ops: &[Op], max_value_bytes: usize) -> Result<(), CoreError> {
    if ops.is_empty() || ops.len() > MAX_OPS {
        return Err(CoreError::InvalidUpdate(format!(
            "{} operations; an update takes 1 to {MAX_OPS}",
            ops.len()
        )));
    }
    ops.iter()
        .try_for_each(|op| check_op(op, max_value_bytes, 0))
}

fn check_op(op: &Op, max: usize, depth: usize) -> Result<(), CoreError> {
    let too_big = |what: &str, len: usize| {
        CoreError::InvalidUpdate(format!(
            "{what} is {len} bytes; the keyspace limit is {max} bytes"
        ))
    };
    match op {
        Op::Add(e) | Op::Remove(e) => {
            if e.is_empty() {
                return Err(CoreError::InvalidUpdate(format!(
                    "`{}` names no elements",
                    op.name()
                )));
            }
            if let Some(big) = e.iter().find(|e| e.len() > max) {
                return Err(too_big("a set element", big.len()));
            }
        }
        Op::Assign(v) if v.len() > max => return Err(too_big("a register value", v.len())),
        Op::Update { field, op } => {
            check_field(field, depth)?;
            check_op(op, max, depth + 1)?;
        }
        Op::RemoveField(field) => check_field(field, depth)?,
        _ => {}
    }
    Ok(())
}

fn check_field(field: &Field, depth: usize) -> Result<(), CoreError> {
    if field.name.is_empty() || field.name.len() > MAX_FIELD_NAME {
        return Err(CoreError::InvalidUpdate(format!(
            "a field name is {} bytes; names are 1 to {MAX_FIELD_NAME} bytes",
            field.name.len()
        )));
    }
    if depth >= MAX_DEPTH {
        return Err(CoreError::InvalidUpdate(format!(
            "maps nest more than {MAX_DEPTH} deep"
        )));
    }
    Ok(())
}

/// Hands out the coordinator's new dots for one operation, and the timestamp it writes at.
pub struct Minter {
    pub actor: ActorId,
    pub hlc: u64,
    next: u64,
}

impl Minter {
    pub(crate) fn starting_at(first: Dot, hlc: u64) -> Self {
        Self {
            actor: first.actor,
            hlc,
            next: first.counter,
        }
    }

    pub(crate) fn mint(&mut self) -> Result<Dot, CoreError> {
        let counter = self.next;
        self.next = self
            .next
            .checked_add(1)
            .ok_or(CoreError::ClockOverflow { actor: self.actor })?;
        Ok(Dot {
            actor: self.actor,
            counter,
        })
    }
}
