//! A CRDT value with its context: what a key of a CRDT keyspace holds, and what a delta is.

use super::dots::DotContext;
use super::encoding::Encoded;
use super::typed::Store;
use super::{CrdtKind, Minter, Op, Value};
use crate::actor::ActorId;
use crate::error::CoreError;
use serde::{Deserialize, Serialize};

/// Encoded through [`super::encoding`]: an actor table and short dots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Encoded", try_from = "Encoded")]
pub struct Crdt {
    ctx: DotContext,
    store: Store,
}

impl From<Crdt> for Encoded {
    fn from(c: Crdt) -> Self {
        Encoded::from(&c)
    }
}

impl Crdt {
    pub fn new(kind: CrdtKind) -> Self {
        Self {
            ctx: DotContext::default(),
            store: Store::empty(kind),
        }
    }

    pub(crate) fn from_parts(ctx: DotContext, store: Store) -> Self {
        Self { ctx, store }
    }

    pub fn kind(&self) -> CrdtKind {
        self.store.kind()
    }

    pub fn context(&self) -> &DotContext {
        &self.ctx
    }

    pub fn value(&self) -> Value {
        self.store.value()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The join of two states (or deltas) of one key.
    pub fn join(&self, other: &Self) -> Result<Self, CoreError> {
        let store = self
            .store
            .join(&self.ctx, &other.store, &other.ctx)
            .ok_or_else(|| CoreError::KindMismatch {
                actual: self.kind().name().into(),
                found: other.kind().name().into(),
            })?;
        Ok(Self {
            ctx: self.ctx.join(&other.ctx),
            store,
        })
    }

    /// Applies an update's operations in order at the coordinating replica `actor`:
    /// returns the new state and the delta that takes any replica there.
    ///
    /// `observed` is the context of the client's read, if it sent one: removes and
    /// assignments then replace only what that read saw. Without it they replace what this
    /// replica holds. The update is all or nothing: an operation that fails leaves no trace.
    pub fn apply(
        &self,
        ops: &[Op],
        actor: ActorId,
        hlc: u64,
        observed: Option<&DotContext>,
    ) -> Result<(Crdt, Crdt), CoreError> {
        let mut state = self.clone();
        let mut delta = Crdt::new(self.kind());
        for op in ops {
            let first = state
                .ctx
                .next_dot(actor)
                .ok_or(CoreError::ClockOverflow { actor })?;
            let mut m = Minter::starting_at(first, hlc);
            let (store, seen) = state.store.delta(op, observed, &mut m)?;
            let mut ctx = DotContext::default();
            ctx.extend(seen);
            let d = Crdt { ctx, store };
            state = state.join(&d)?;
            delta = delta.join(&d)?;
        }
        Ok((state, delta))
    }

    /// Whether a decoded value keeps the invariants every join produces.
    pub fn is_valid(&self) -> bool {
        if !self.ctx.is_canonical() || !self.store.is_well_typed() {
            return false;
        }
        let mut dots = Vec::new();
        self.store.collect_dots(&mut dots);
        dots.iter().all(|d| self.ctx.contains(d))
    }
}
