//! Last-writer-wins registers, for keyspaces of kind `lww`: users who prefer losing a
//! concurrent write to handling siblings.
//!
//! Merge keeps the version with the larger (timestamp, actor) pair: a total order, so merge
//! is commutative, associative and idempotent, and every replica picks the same winner.
//!
//! The register also remembers the request ids of recent writes (as a siblings object does),
//! so a request that arrives again — a retry, or a copy the network duplicated or delayed —
//! after a later write replaced it is recognised and acknowledged, not minted again with a
//! newer timestamp that would bring it back. The record merges as the top N of a union,
//! itself a semilattice, so the register's laws hold.

use crate::actor::ActorId;
use crate::object::{RecentWrite, merge_recent};
use crate::version::Version;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwRegister {
    pub actor: ActorId,
    pub version: Version,
    /// Recent writes to the key, newest first (see [`merge_recent`]).
    pub recent: Vec<RecentWrite>,
}

impl LwwRegister {
    fn rank(&self) -> (u64, ActorId, &Option<Vec<u8>>) {
        (self.version.timestamp, self.actor, &self.version.data)
    }

    pub fn merge(&self, other: &Self) -> Self {
        let winner = if other.rank() > self.rank() {
            other
        } else {
            self
        };
        Self {
            actor: winner.actor,
            version: winner.version.clone(),
            recent: merge_recent(&self.recent, &other.recent),
        }
    }

    /// Whether the request minted this value or a recent write to the key.
    pub fn has_seen(&self, request_id: &crate::version::RequestId) -> bool {
        self.version.request_id == *request_id
            || self.recent.iter().any(|r| r.request_id == *request_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reg() -> impl Strategy<Value = LwwRegister> {
        (
            0u64..5,
            0u8..3,
            proptest::option::of(0u8..3),
            proptest::collection::vec((0u64..5, 0u8..3), 0..20),
        )
            .prop_map(|(ts, a, d, recent)| LwwRegister {
                actor: ActorId([a; 16]),
                version: Version {
                    data: d.map(|d| vec![d]),
                    request_id: [0; 16],
                    timestamp: ts,
                },
                recent: merge_recent(
                    &recent
                        .into_iter()
                        .map(|(t, r)| RecentWrite {
                            timestamp: t,
                            dot: crate::dvv::Dot {
                                actor: ActorId([r; 16]),
                                counter: t,
                            },
                            request_id: [r; 16],
                        })
                        .collect::<Vec<_>>(),
                    &[],
                ),
            })
    }

    proptest! {
        #[test]
        fn merge_laws(a in reg(), b in reg(), c in reg()) {
            prop_assert_eq!(a.merge(&b), b.merge(&a));
            prop_assert_eq!(a.merge(&b).merge(&c), a.merge(&b.merge(&c)));
            prop_assert_eq!(a.merge(&a), a.clone());
        }
    }
}
