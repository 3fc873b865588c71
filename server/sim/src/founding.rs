//! The cluster a simulation starts from: every member in one committed layout version that
//! all of them have acknowledged, as if it had been running for a while.

use meridian_core::layout::{LayoutHistory, LayoutMember, StagedChange};

/// Version 1 founded by the first member, version 2 with everyone; `settle` also records
/// every member's acknowledgement and retires version 1.
pub fn cluster(members: &[LayoutMember], secret: [u8; 32], settle: bool) -> LayoutHistory {
    let Some(first) = members.first() else {
        return LayoutHistory::default();
    };
    let mut history = LayoutHistory::bootstrap(first.clone(), secret);
    for m in &members[1..] {
        history.stage(first.id, m.id, StagedChange::join_of(m));
    }
    history.commit();
    if settle {
        for m in members {
            history.ack(m.id, 2);
        }
        history.settle(|_| true);
        history.compact();
    }
    history
}
