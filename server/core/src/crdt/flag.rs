//! Enable-wins flags: enabling mints a dot, disabling removes the dots it saw; an enable the
//! disable did not see survives. (The `crdts` crate has no such flag.)

use super::Minter;
use super::dots::DotContext;
use super::store::DotSet;
use crate::dvv::Dot;
use crate::error::CoreError;

pub type FlagStore = DotSet;

pub fn enable(s: &FlagStore, m: &mut Minter) -> Result<(FlagStore, Vec<Dot>), CoreError> {
    let dot = m.mint()?;
    let mut seen: Vec<Dot> = s.0.iter().copied().collect();
    seen.push(dot);
    Ok((DotSet([dot].into()), seen))
}

pub fn disable(s: &FlagStore, observed: Option<&DotContext>) -> Vec<Dot> {
    s.0.iter()
        .filter(|d| observed.is_none_or(|o| o.contains(d)))
        .copied()
        .collect()
}

pub fn is_enabled(s: &FlagStore) -> bool {
    !s.0.is_empty()
}
