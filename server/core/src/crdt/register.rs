//! Registers. One store serves both kinds: an assignment replaces the values it saw, so
//! concurrent assignments coexist. A multi-value register shows them all; a last-writer-wins
//! register shows the one with the highest (hybrid logical timestamp, dot) — a total order,
//! so every replica shows the same one — and the next assignment clears the rest.

use super::Minter;
use super::dots::DotContext;
use super::store::DotFun;
use crate::dvv::Dot;
use crate::error::CoreError;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    pub hlc: u64,
    pub value: ByteBuf,
}

pub type RegisterStore = DotFun<Stamped>;

pub fn assign(
    s: &RegisterStore,
    value: &ByteBuf,
    observed: Option<&DotContext>,
    m: &mut Minter,
) -> Result<(RegisterStore, Vec<Dot>), CoreError> {
    let dot = m.mint()?;
    let mut seen: Vec<Dot> =
        s.0.keys()
            .filter(|d| observed.is_none_or(|o| o.contains(d)))
            .copied()
            .collect();
    seen.push(dot);
    let stamped = Stamped {
        hlc: m.hlc,
        value: value.clone(),
    };
    Ok((DotFun([(dot, stamped)].into()), seen))
}

/// The last writer's value.
pub fn winner(s: &RegisterStore) -> Option<&ByteBuf> {
    s.0.iter()
        .max_by_key(|(d, v)| (v.hlc, **d))
        .map(|(_, v)| &v.value)
}

/// The distinct concurrent values, in byte order: two replicas that assigned the same
/// value concurrently agree, so a reader sees it once, as a set shows an element added twice.
pub fn values(s: &RegisterStore) -> Vec<ByteBuf> {
    let distinct: std::collections::BTreeSet<&ByteBuf> = s.0.values().map(|v| &v.value).collect();
    distinct.into_iter().cloned().collect()
}
