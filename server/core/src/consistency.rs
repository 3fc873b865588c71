//! Consistency levels and how many replica acknowledgements each needs.

use crate::error::CoreError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Consistency {
    One,
    Two,
    Quorum,
    All,
    LocalOne,
    LocalQuorum,
    EachQuorum,
}

impl Consistency {
    pub const ALL_LEVELS: [Consistency; 7] = [
        Consistency::One,
        Consistency::Two,
        Consistency::Quorum,
        Consistency::All,
        Consistency::LocalOne,
        Consistency::LocalQuorum,
        Consistency::EachQuorum,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Consistency::One => "ONE",
            Consistency::Two => "TWO",
            Consistency::Quorum => "QUORUM",
            Consistency::All => "ALL",
            Consistency::LocalOne => "LOCAL_ONE",
            Consistency::LocalQuorum => "LOCAL_QUORUM",
            Consistency::EachQuorum => "EACH_QUORUM",
        }
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Consistency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.trim().to_ascii_uppercase().replace('-', "_");
        Self::ALL_LEVELS
            .into_iter()
            .find(|c| c.name() == up)
            .ok_or_else(|| {
                format!(
                    "unknown consistency level {s:?}; expected one of {}",
                    Self::ALL_LEVELS.map(|c| c.name()).join(", ")
                )
            })
    }
}

/// Replica counts a request sees: per datacenter, with the receiving node's DC marked.
#[derive(Debug, Clone)]
pub struct ReplicaCounts {
    /// (datacenter, replicas of the key there).
    pub per_dc: Vec<(String, usize)>,
    pub local_dc: String,
}

impl ReplicaCounts {
    pub fn total(&self) -> usize {
        self.per_dc.iter().map(|(_, n)| n).sum()
    }

    pub fn local(&self) -> usize {
        self.per_dc
            .iter()
            .find(|(dc, _)| *dc == self.local_dc)
            .map_or(0, |(_, n)| *n)
    }
}

/// What a request must collect: acknowledgements from the local DC, from anywhere, and from
/// each DC separately (EACH_QUORUM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Required {
    Total(usize),
    Local(usize),
    EachDc(Vec<(String, usize)>),
}

/// The acknowledgements a level needs, or an error if the keyspace cannot satisfy it at all
/// (e.g. TWO on a keyspace with one replica). An explicit count overrides the level.
pub fn required(
    level: Consistency,
    explicit: Option<usize>,
    counts: &ReplicaCounts,
) -> Result<Required, CoreError> {
    let total = counts.total();
    let unsat = |name: String, needed: usize, available: usize, where_: &str| {
        Err(CoreError::Unsatisfiable {
            level: name,
            needed,
            available,
            where_: where_.to_string(),
        })
    };
    if let Some(n) = explicit {
        if n == 0 || n > total {
            return unsat(format!("explicit count {n}"), n.max(1), total, "");
        }
        return Ok(Required::Total(n));
    }
    let quorum = |n: usize| n / 2 + 1;
    let req = match level {
        Consistency::One => Required::Total(1),
        Consistency::Two => Required::Total(2),
        Consistency::Quorum => Required::Total(quorum(total)),
        Consistency::All => Required::Total(total),
        Consistency::LocalOne => Required::Local(1),
        Consistency::LocalQuorum => Required::Local(quorum(counts.local())),
        Consistency::EachQuorum => Required::EachDc(
            counts
                .per_dc
                .iter()
                .map(|(dc, n)| (dc.clone(), quorum(*n)))
                .collect(),
        ),
    };
    match &req {
        Required::Total(n) if *n > total => unsat(level.name().into(), *n, total, ""),
        Required::Local(n) if *n > counts.local() => {
            let why = if counts.local() == 0 {
                // Both happen: a keyspace placed elsewhere, and a datacenter whose nodes
                // joined but are not in the committed layout yet.
                ": the keyspace has no replicas there, or its nodes are not in the layout yet \
                 (see `meridian admin layout`)"
            } else {
                ""
            };
            unsat(
                level.name().into(),
                *n,
                counts.local(),
                &format!(" in datacenter {}{why}", counts.local_dc),
            )
        }
        _ => Ok(req),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(per_dc: &[(&str, usize)], local: &str) -> ReplicaCounts {
        ReplicaCounts {
            per_dc: per_dc.iter().map(|(d, n)| (d.to_string(), *n)).collect(),
            local_dc: local.into(),
        }
    }

    #[test]
    fn levels_over_two_dcs() {
        let c = counts(&[("dc1", 3), ("dc2", 3)], "dc1");
        let r = |l| required(l, None, &c).unwrap();
        assert_eq!(r(Consistency::Quorum), Required::Total(4));
        assert_eq!(r(Consistency::All), Required::Total(6));
        assert_eq!(r(Consistency::LocalQuorum), Required::Local(2));
        assert_eq!(r(Consistency::LocalOne), Required::Local(1));
        assert_eq!(
            r(Consistency::EachQuorum),
            Required::EachDc(vec![("dc1".into(), 2), ("dc2".into(), 2)])
        );
        assert_eq!(
            required(Consistency::One, Some(5), &c).unwrap(),
            Required::Total(5)
        );
    }

    #[test]
    fn unsatisfiable_levels_name_the_level_and_counts() {
        let c = counts(&[("dc1", 1)], "dc1");
        let e = required(Consistency::Two, None, &c).unwrap_err();
        assert_eq!(
            e.to_string(),
            "consistency TWO needs 2 replicas but only 1 exist"
        );
        let e = required(Consistency::One, Some(3), &c).unwrap_err();
        assert!(e.to_string().contains("explicit count 3"), "{e}");
        assert!(required(Consistency::LocalQuorum, None, &c).is_ok());
        // A datacenter with no replicas of the key says why that may be.
        let c = counts(&[("dc1", 1)], "dc2");
        let e = required(Consistency::LocalQuorum, None, &c).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("consistency LOCAL_QUORUM needs 1 replica but only 0 exist in datacenter dc2: the keyspace has no replicas there"),
            "{e}"
        );
    }

    #[test]
    fn parse_is_forgiving_about_case_and_dashes() {
        assert_eq!(
            "local-quorum".parse::<Consistency>(),
            Ok(Consistency::LocalQuorum)
        );
        let e = "SOME".parse::<Consistency>().unwrap_err();
        assert!(e.contains("EACH_QUORUM"), "{e}");
    }
}
