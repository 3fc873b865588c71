//! Writes while a layout change is under way.
//!
//! While more than one layout version is active, a key can have different replica sets in
//! each. Counting a quorum over their union is not enough: when {A, B, C} become {A, D, E},
//! three of the union's five can be {B, C, D}, only one of version 2's replicas, and a later
//! read at quorum from version 2's owners can miss the write. So a write needs its level met in *every* active
//! version's replica set; one acknowledgement counts in every set that holds the node.
//!
//! Laws (tested): with one active version this is exactly [`WriteQuorum`]; the write is done
//! only when each version's quorum is met, and fails as soon as any version's can no longer
//! be.

use crate::actor::ActorId;
use crate::consistency::Required;
use crate::error::CoreError;
use crate::quorum::{DcReplicas, Progress, WriteQuorum};

/// Acknowledgement counting for one write over every active version's replica set.
#[derive(Debug, Clone)]
pub struct VersionedWrite {
    sets: Vec<(Vec<DcReplicas>, WriteQuorum)>,
}

impl VersionedWrite {
    /// `sets`: per active version, the key's replicas and the count that version needs.
    pub fn new(
        level: &str,
        sets: Vec<(Vec<DcReplicas>, Required)>,
        local_dc: &str,
        strict: bool,
    ) -> Self {
        Self {
            sets: sets
                .into_iter()
                .map(|(dcs, required)| {
                    let q = WriteQuorum::new(level, required, local_dc, &dcs, strict);
                    (dcs, q)
                })
                .collect(),
        }
    }

    /// `node` holds the write (through a stand-in when `hinted`).
    pub fn ack(&mut self, node: &ActorId, hinted: bool) -> Progress {
        for (dcs, q) in &mut self.sets {
            if let Some(dc) = dcs.iter().find(|d| d.contains(node)) {
                q.ack(&dc.dc, 1, usize::from(hinted));
            }
        }
        self.progress()
    }

    /// The attempt for `node` failed (or ended as a hint the sender keeps).
    pub fn fail(&mut self, node: &ActorId) -> Progress {
        for (dcs, q) in &mut self.sets {
            if let Some(dc) = dcs.iter().find(|d| d.contains(node)) {
                q.fail(&dc.dc, 1);
            }
        }
        self.progress()
    }

    pub fn progress(&self) -> Progress {
        let mut done = true;
        for (_, q) in &self.sets {
            match q.progress() {
                Progress::Failed(e) => return Progress::Failed(e),
                Progress::Waiting => done = false,
                Progress::Done => {}
            }
        }
        if done {
            Progress::Done
        } else {
            Progress::Waiting
        }
    }

    /// The error for a deadline that passed: the first version still short of its count.
    pub fn timed_out(&self) -> CoreError {
        self.sets
            .iter()
            .find(|(_, q)| q.progress() != Progress::Done)
            .or(self.sets.first())
            .map(|(_, q)| q.timed_out())
            .unwrap_or_else(|| CoreError::Unavailable {
                level: String::new(),
                needed: 0,
                scope: String::new(),
                reachable: "no replica set".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::Slot;

    fn id(n: u8) -> ActorId {
        ActorId([n; 16])
    }

    fn dc(nodes: &[u8]) -> Vec<DcReplicas> {
        vec![DcReplicas {
            dc: "dc1".into(),
            replicas: nodes
                .iter()
                .map(|n| Slot {
                    node: id(*n),
                    alive: true,
                })
                .collect(),
            spares: Vec::new(),
        }]
    }

    /// Version 1: {1, 2, 3}; version 2: {1, 4, 5}. Quorum 2 in each.
    fn swap_two() -> VersionedWrite {
        VersionedWrite::new(
            "QUORUM",
            vec![
                (dc(&[1, 2, 3]), Required::Total(2)),
                (dc(&[1, 4, 5]), Required::Total(2)),
            ],
            "dc1",
            false,
        )
    }

    #[test]
    fn a_majority_of_the_union_is_not_a_quorum_of_each_version() {
        let mut w = swap_two();
        assert_eq!(w.ack(&id(2), false), Progress::Waiting);
        assert_eq!(w.ack(&id(3), false), Progress::Waiting);
        // Three of the union's five, but version 2 has only one.
        assert_eq!(w.ack(&id(4), false), Progress::Waiting);
        assert_eq!(w.ack(&id(5), false), Progress::Done);
    }

    #[test]
    fn one_version_short_fails_the_write() {
        let mut w = swap_two();
        w.ack(&id(2), false);
        w.ack(&id(3), false);
        assert_eq!(w.fail(&id(4)), Progress::Waiting);
        match w.fail(&id(5)) {
            Progress::Failed(CoreError::Unavailable { needed, .. }) => assert_eq!(needed, 2),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn with_one_version_it_counts_like_a_write_quorum() {
        let sets = dc(&[1, 2, 3]);
        let mut w = VersionedWrite::new(
            "QUORUM",
            vec![(sets.clone(), Required::Total(2))],
            "dc1",
            false,
        );
        let mut q = WriteQuorum::new("QUORUM", Required::Total(2), "dc1", &sets, false);
        assert_eq!(w.fail(&id(1)), q.fail("dc1", 1));
        assert_eq!(w.ack(&id(2), true), q.ack("dc1", 1, 1));
        assert_eq!(w.ack(&id(3), false), q.ack("dc1", 1, 0));
        assert_eq!(w.progress(), Progress::Done);
    }
}
