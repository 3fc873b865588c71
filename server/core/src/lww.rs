//! Last-writer-wins registers, for keyspaces of kind `lww`: users who prefer losing a
//! concurrent write to handling siblings.
//!
//! Merge keeps the version with the larger (timestamp, actor) pair: a total order, so merge
//! is commutative, associative and idempotent, and every replica picks the same winner.

use crate::actor::ActorId;
use crate::version::Version;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwRegister {
    pub actor: ActorId,
    pub version: Version,
}

impl LwwRegister {
    fn rank(&self) -> (u64, ActorId, &Option<Vec<u8>>) {
        (self.version.timestamp, self.actor, &self.version.data)
    }

    pub fn merge(&self, other: &Self) -> Self {
        if other.rank() > self.rank() {
            other.clone()
        } else {
            self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reg() -> impl Strategy<Value = LwwRegister> {
        (0u64..5, 0u8..3, proptest::option::of(0u8..3)).prop_map(|(ts, a, d)| LwwRegister {
            actor: ActorId([a; 16]),
            version: Version {
                data: d.map(|d| vec![d]),
                request_id: [0; 16],
                timestamp: ts,
            },
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
