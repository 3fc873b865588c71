//! The request protocol as state machines: a write's coordinator, a remote DC's relay, a
//! read's coordinator.
//!
//! Each takes inputs (start, a peer's answer to one call, the clock) and returns effects
//! (send a message, keep a hint, repair a replica, reply to the client). The node carries the
//! effects out over gRPC and RocksDB; the simulation carries them out over a seeded network.
//! Both run this code, so what the simulation proves about it holds for the node.
//!
//! Every call a machine makes is answered exactly once: with the peer's answer, or with
//! [`Answer::Failed`] when the transport gives up (the node's peer timeout, the simulation's
//! call timeout). A machine therefore always reaches [`finished`](WriteCoordinator::finished)
//! and never waits on a message that was lost.

mod fanout;
mod read;
mod relay;
mod write;

pub use read::ReadCoordinator;
pub use relay::RelayCoordinator;
pub use write::WriteCoordinator;

use crate::actor::ActorId;
use crate::consistency::{Consistency, ReplicaCounts, Required, required};
use crate::error::CoreError;
use crate::object::StoredObject;
use crate::quorum::DcReplicas;

/// Names one call a machine made, so its answer finds its way back.
pub type CallId = u64;

/// What a call asks of its peer. The payload (the request's object) is the executor's: it is
/// the same for every call of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Merge the object; with `hint_for`, keep it for that down replica instead.
    Replicate { hint_for: Option<ActorId> },
    /// A remote DC's share of a write: store and fan it out there, and answer once
    /// `wait_for` of each active version's replicas there hold it.
    Relay { wait_for: usize },
    /// Send the key's state.
    Read,
}

/// A peer's answer to one call.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The peer merged (or, for a stand-in, kept) the object.
    Stored,
    /// A relay's report: the replicas of its DC that hold the write, and whether through a
    /// stand-in.
    Relayed(Vec<(ActorId, bool)>),
    /// A replica's state of the key (`None`: it holds nothing).
    State(Option<StoredObject>),
    /// Refused, unreachable, or no answer before the transport's timeout.
    Failed,
}

/// Something the executor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect<R> {
    Send {
        call: CallId,
        to: ActorId,
        message: Message,
    },
    /// Keep the object as a hint for `target` and hand it over when it is back.
    KeepHint { target: ActorId },
    /// Send the read's merged state to a replica that answered with less.
    Repair { to: ActorId, object: StoredObject },
    /// Queue the object on this node's replication stream to `dc`: nothing waits for it.
    Stream { dc: String },
    /// The client's answer; emitted once.
    Reply(R),
}

/// What every request machine does once started; the executors (node and simulation) drive
/// any of them with one loop.
pub trait Machine {
    /// What the client is told.
    type Reply;

    /// A peer answered call `call` (or the transport gave up on it).
    fn on_answer(&mut self, call: CallId, answer: Answer) -> Vec<Effect<Self::Reply>>;

    /// The clock reached `now`, in milliseconds since the machine started.
    fn on_timer(&mut self, now: u64) -> Vec<Effect<Self::Reply>>;

    /// When [`on_timer`](Self::on_timer) next has something to do.
    fn next_timer(&self) -> Option<u64>;

    /// Replied, and nothing more will happen: every call is answered.
    fn finished(&self) -> bool;
}

/// When a request gives up, and when it stops waiting for a slow replica and asks another
/// (a stand-in for a write, the next replica for a read). Milliseconds from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub deadline: u64,
    pub replace_after: u64,
}

impl Timing {
    /// Replace a slow replica after a third of the deadline: early enough that the stand-in
    /// still answers in time, late enough that a healthy replica rarely loses the race.
    pub fn with_deadline(deadline: u64) -> Self {
        Self {
            deadline,
            replace_after: deadline / 3,
        }
    }

    /// When a machine's timer is next due: never once it replied; at the replacement point
    /// while replacing a slow peer is still to do and may help; otherwise at the deadline.
    pub fn next(&self, replied: bool, replaced: bool, may_replace: bool) -> Option<u64> {
        if replied {
            None
        } else if !replaced && may_replace {
            Some(self.replace_after)
        } else {
            Some(self.deadline)
        }
    }

    /// Whether slow peers are to be replaced now (once, before the reply).
    pub fn replace_due(&self, now: u64, replied: bool, replaced: bool) -> bool {
        !replied && !replaced && now >= self.replace_after
    }
}

/// Where a client write arriving at a node is coordinated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRoute {
    /// Here: this node is a replica of the key in its own DC.
    Coordinate,
    /// Only replicas mint: hand it to this one, which coordinates without forwarding again
    /// (a second hop could loop while two nodes disagree about the layout).
    Forward(ActorId),
}

/// A replica coordinates; a non-replica forwards to a live replica of its own DC, or, unless
/// the level is `LOCAL_*` (which would then be counted in another DC), to one elsewhere.
pub fn route_write(
    me: &ActorId,
    my_dc: &str,
    dcs: &[DcReplicas],
    level: Consistency,
) -> Result<WriteRoute, CoreError> {
    let local = dcs.iter().find(|d| d.dc == my_dc);
    if local.is_some_and(|d| d.contains(me)) {
        return Ok(WriteRoute::Coordinate);
    }
    if let Some(t) = local.and_then(|d| d.alive().next()) {
        return Ok(WriteRoute::Forward(t));
    }
    let unreachable = |scope: String| CoreError::NoReplicaReachable {
        level: level.name().to_string(),
        scope,
    };
    if matches!(level, Consistency::LocalOne | Consistency::LocalQuorum) {
        return Err(unreachable(format!(" in datacenter {my_dc}")));
    }
    dcs.iter()
        .find_map(|d| d.alive().next())
        .map(WriteRoute::Forward)
        .ok_or_else(|| unreachable(String::new()))
}

/// A level (or explicit count) as its name in errors.
pub fn level_name(level: Consistency, explicit: u32) -> String {
    if explicit > 0 {
        format!("explicit count {explicit}")
    } else {
        level.name().to_string()
    }
}

/// The acknowledgements `level` needs over the replicas `dcs`, seen from `my_dc`.
pub fn required_for(
    level: Consistency,
    explicit: u32,
    my_dc: &str,
    dcs: &[DcReplicas],
) -> Result<Required, CoreError> {
    let counts = ReplicaCounts {
        per_dc: dcs
            .iter()
            .map(|d| (d.dc.clone(), d.replicas.len()))
            .collect(),
        local_dc: my_dc.to_string(),
    };
    let explicit = (explicit > 0).then_some(explicit as usize);
    required(level, explicit, &counts)
}

#[cfg(test)]
mod tests;
