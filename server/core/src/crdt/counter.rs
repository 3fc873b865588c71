//! Counters: any actor may add any i64; the value is the sum.
//!
//! Each actor holds one slot entry: its own running contribution under its newest dot. An
//! increment replaces the entry, so the delta is one entry whatever the history, and a
//! replica that missed earlier deltas still counts the actor once. Removing a counter field
//! of a map drops the contributions the remover saw; an actor that increments concurrently
//! keeps its whole contribution (update beats remove).

use super::Minter;
use super::dots::DotContext;
use super::store::{DotFun, DotStore, newest_per_actor};
use crate::dvv::Dot;
use crate::error::CoreError;

/// Per actor, its running contribution under its newest dot.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CounterStore(pub DotFun<i64>);

impl DotStore for CounterStore {
    fn join(&self, ctx: &DotContext, other: &Self, octx: &DotContext) -> Self {
        let joined = self.0.join(ctx, &other.0, octx);
        CounterStore(DotFun(newest_per_actor(joined.0)))
    }

    fn collect_dots(&self, out: &mut Vec<Dot>) {
        self.0.collect_dots(out);
    }

    fn is_bottom(&self) -> bool {
        self.0.is_bottom()
    }
}

pub fn increment(
    s: &CounterStore,
    by: i64,
    m: &mut Minter,
) -> Result<(CounterStore, Vec<Dot>), CoreError> {
    let mine: Vec<(Dot, i64)> =
        s.0.0
            .iter()
            .filter(|(d, _)| d.actor == m.actor)
            .map(|(d, v)| (*d, *v))
            .collect();
    // A join keeps one entry per actor; were there more, the newest holds the running total.
    let current = mine.last().map_or(0, |(_, v)| *v);
    let next = current
        .checked_add(by)
        .ok_or(CoreError::CounterOverflow { by })?;
    let total = value_wide(s) + i128::from(by);
    if i64::try_from(total).is_err() {
        return Err(CoreError::CounterOverflow { by });
    }
    let dot = m.mint()?;
    let mut seen: Vec<Dot> = mine.into_iter().map(|(d, _)| d).collect();
    seen.push(dot);
    Ok((CounterStore(DotFun([(dot, next)].into())), seen))
}

fn value_wide(s: &CounterStore) -> i128 {
    s.0.0.values().map(|&v| i128::from(v)).sum()
}

/// The sum, clamped to i64: concurrent increments in other datacenters can together pass
/// the range an increment is checked against.
pub fn value(s: &CounterStore) -> i64 {
    let v = value_wide(s);
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}
