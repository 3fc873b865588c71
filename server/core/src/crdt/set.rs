//! Sets with observed-remove, add-wins semantics: a remove takes away the adds it saw (those
//! in the context it was given, or at the replica that applies it); an add it did not see
//! survives. A removed element leaves nothing behind but the dots in the context.

use super::Minter;
use super::dots::DotContext;
use super::store::{DotMap, DotSet, DotStore};
use crate::dvv::Dot;
use crate::error::CoreError;
use serde_bytes::ByteBuf;

pub type SetStore = DotMap<ByteBuf, DotSet>;

pub fn add(
    s: &SetStore,
    elements: &[ByteBuf],
    m: &mut Minter,
) -> Result<(SetStore, Vec<Dot>), CoreError> {
    let mut delta = SetStore::default();
    let mut seen = Vec::new();
    for e in elements {
        if delta.0.contains_key(e) {
            continue;
        }
        if let Some(old) = s.0.get(e) {
            old.collect_dots(&mut seen);
        }
        let dot = m.mint()?;
        seen.push(dot);
        delta.0.insert(e.clone(), DotSet([dot].into()));
    }
    Ok((delta, seen))
}

pub fn remove(s: &SetStore, elements: &[ByteBuf], observed: Option<&DotContext>) -> Vec<Dot> {
    let mut seen = Vec::new();
    for e in elements {
        if let Some(old) = s.0.get(e) {
            seen.extend(
                old.0
                    .iter()
                    .filter(|d| observed.is_none_or(|o| o.contains(d))),
            );
        }
    }
    seen
}

pub fn members(s: &SetStore) -> Vec<ByteBuf> {
    s.0.keys().cloned().collect()
}
