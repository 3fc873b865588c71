//! Where held writes (hints) go. A hint waits for its target while the failure detector
//! reports it down and is handed to it when it is back; a hint whose target owns nothing any
//! more (it was decommissioned or removed), or that is addressed to this node itself, goes to
//! the key's current replicas instead, so a write is never stranded with a departed target.
//! The node (`handoff.rs`) and the simulation carry these decisions out.

use crate::actor::ActorId;
use crate::keyspace::KeyspaceSpec;
use crate::layout::ownership::Ownership;

/// What to do, now, with the hints held for one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintRoute {
    /// The target is up: hand them over.
    Deliver,
    /// The target left (or is this node): send them to the keys' current replicas.
    Redirect,
    /// The target is down: keep them.
    Wait,
}

pub fn route(own: &Ownership, target: &ActorId) -> HintRoute {
    let departed = own.epoch() > 0 && !own.owns_somewhere(target);
    if *target == own.me || departed {
        HintRoute::Redirect
    } else if own.alive(target) {
        HintRoute::Deliver
    } else {
        HintRoute::Wait
    }
}

/// Where one redirected hint goes, replica by replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirect {
    /// This node is a replica: merge it here.
    MergeHere,
    /// A live replica: send it; if that fails, keep a hint for it.
    Send(ActorId),
    /// A replica that is down: keep a hint for it.
    KeepFor(ActorId),
}

pub fn redirect(own: &Ownership, ks: &KeyspaceSpec, partition: u16) -> Vec<Redirect> {
    own.replicas(ks, partition)
        .into_iter()
        .flat_map(|dc| dc.replicas)
        .map(|slot| {
            if slot.node == own.me {
                Redirect::MergeHere
            } else if slot.alive {
                Redirect::Send(slot.node)
            } else {
                Redirect::KeepFor(slot.node)
            }
        })
        .collect()
}

/// Who takes over the hints a departing node holds for `target`: a live node that owns
/// data, in the target's DC when there is one (it replays them as a stand-in would).
pub fn heir(own: &Ownership, target: &ActorId) -> Option<ActorId> {
    let current = own.current_version()?;
    let target_dc = own
        .chain()
        .iter()
        .rev()
        .find_map(|v| v.member(target))
        .map(|m| m.dc.clone());
    let mut heirs: Vec<(bool, ActorId)> = current
        .members()
        .iter()
        .filter(|m| m.id != own.me && m.id != *target)
        .filter(|m| own.alive(&m.id) && own.owns_somewhere(&m.id))
        .map(|m| (Some(&m.dc) != target_dc.as_ref(), m.id))
        .collect();
    heirs.sort();
    heirs.first().map(|(_, id)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{LayoutHistory, LayoutMember, Role, StagedChange};
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn id(n: u8) -> ActorId {
        ActorId([n; 16])
    }

    fn member(n: u8) -> LayoutMember {
        LayoutMember {
            id: id(n),
            dc: "dc1".into(),
            rack: format!("r{n}"),
            capacity: 1,
            role: Role::Storage,
        }
    }

    #[test]
    fn hints_wait_for_a_down_target_and_go_elsewhere_once_it_left() {
        let mut h = LayoutHistory::bootstrap(member(1), [1; 32]);
        for n in 2..=4 {
            h.stage(id(1), id(n), StagedChange::join_of(&member(n)));
        }
        h.commit();
        let up: BTreeSet<ActorId> = [1, 2, 3].into_iter().map(id).collect();
        let own = Ownership::new(id(1), "dc1", Arc::new(h.clone()), up.clone());
        assert_eq!(route(&own, &id(2)), HintRoute::Deliver);
        assert_eq!(route(&own, &id(4)), HintRoute::Wait);
        assert_eq!(route(&own, &id(1)), HintRoute::Redirect);
        // Node 4 is removed and the change settles: its hints go to the current replicas.
        h.stage(id(1), id(4), StagedChange::Remove);
        h.commit();
        for n in 1..=3 {
            h.ack(id(n), 3);
        }
        h.settle(|n| up.contains(n));
        let own = Ownership::new(id(1), "dc1", Arc::new(h), up);
        assert_eq!(route(&own, &id(4)), HintRoute::Redirect);
        let mut ks = KeyspaceSpec::new("k", crate::ValueKind::Siblings);
        ks.replication.insert("dc1".into(), 3);
        let targets = redirect(&own, &ks, 7);
        assert_eq!(targets.len(), 3);
        assert!(targets.contains(&Redirect::MergeHere));
        assert!(!targets.contains(&Redirect::Send(id(4))));
        // Hints node 1 holds for node 2 go to a live owner other than both.
        assert_eq!(heir(&own, &id(2)), Some(id(3)));
    }
}
