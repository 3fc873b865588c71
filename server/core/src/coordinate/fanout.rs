//! Carrying out a write's steps in one DC (or a relay to another): who is sent the object,
//! who stands in when a replica fails or is slow, and who keeps a hint when nobody can take
//! it. Shared by the write coordinator and the relay, which differ only in what they count.
//!
//! Laws:
//! - each replica is resolved at most once: the first copy that lands counts, and a replica
//!   whose every attempt failed is resolved as failed, with a hint kept for it;
//! - a stand-in is sent only to a live non-replica, never to the sender, and each spare stands
//!   in for one replica at most (planned stand-ins take the first spares);
//! - nothing is ever dropped silently: every failed attempt without a successful twin ends in
//!   a [`Effect::KeepHint`].

use super::{Answer, CallId, Effect, Message};
use crate::actor::ActorId;
use crate::quorum::{DcReplicas, Step};
use std::collections::BTreeMap;

/// A replica's fate: `Some(through_stand_in)` once a copy of the write landed, `None` when
/// every attempt failed.
pub(super) type Resolved = Vec<(ActorId, Option<bool>)>;

#[derive(Debug, Clone)]
enum Call {
    Direct {
        target: ActorId,
    },
    StandIn {
        target: ActorId,
    },
    Relay {
        replicas: Vec<ActorId>,
        wait_for: usize,
    },
}

#[derive(Debug, Clone, Default)]
struct Target {
    dc: String,
    direct_pending: bool,
    stand_in_pending: bool,
    stand_in_tried: bool,
    resolved: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Fanout {
    me: ActorId,
    dcs: Vec<DcReplicas>,
    strict: bool,
    next_call: CallId,
    calls: BTreeMap<CallId, Call>,
    targets: BTreeMap<ActorId, Target>,
}

impl Fanout {
    pub(super) fn new(me: ActorId, dcs: Vec<DcReplicas>, strict: bool) -> Self {
        Self {
            me,
            dcs,
            strict,
            next_call: 0,
            calls: BTreeMap::new(),
            targets: BTreeMap::new(),
        }
    }

    /// Whether some call is still unanswered.
    pub(super) fn pending(&self) -> bool {
        !self.calls.is_empty()
    }

    /// Whether some replica has only a direct attempt outstanding (a stand-in could help).
    pub(super) fn has_slow(&self) -> bool {
        !self.strict
            && self
                .targets
                .values()
                .any(|t| t.direct_pending && !t.stand_in_tried && !t.resolved)
    }

    fn send<R>(&mut self, to: ActorId, message: Message, call: Call, out: &mut Vec<Effect<R>>) {
        let id = self.next_call;
        self.next_call += 1;
        self.calls.insert(id, call);
        out.push(Effect::Send {
            call: id,
            to,
            message,
        });
    }

    pub(super) fn start<R>(&mut self, steps: Vec<Step>, out: &mut Vec<Effect<R>>) {
        for step in steps {
            match step {
                Step::Replicate { node, dc } => {
                    self.targets.insert(
                        node,
                        Target {
                            dc,
                            direct_pending: true,
                            ..Target::default()
                        },
                    );
                    let call = Call::Direct { target: node };
                    self.send(node, Message::Replicate { hint_for: None }, call, out);
                }
                Step::StandIn { target, spare, dc } => {
                    self.targets.insert(
                        target,
                        Target {
                            dc,
                            stand_in_pending: true,
                            stand_in_tried: true,
                            ..Target::default()
                        },
                    );
                    let message = Message::Replicate {
                        hint_for: Some(target),
                    };
                    self.send(spare, message, Call::StandIn { target }, out);
                }
                // Planned for a down replica nobody can stand in for: never counted.
                Step::KeepHint { target, .. } => out.push(Effect::KeepHint { target }),
                Step::Stream { dc } => out.push(Effect::Stream { dc }),
                Step::Relay { dc, via, wait_for } => {
                    let replicas = self
                        .dcs
                        .iter()
                        .find(|d| d.dc == dc)
                        .map(|d| d.replicas.iter().map(|s| s.node).collect())
                        .unwrap_or_default();
                    let call = Call::Relay { replicas, wait_for };
                    self.send(via, Message::Relay { wait_for }, call, out);
                }
            }
        }
    }

    /// The spare that stands in for `target`: planned stand-ins take the first spares (one
    /// per down replica), then each live replica the sender sent to gets its own, so no node
    /// stands in twice (the sender holds its copy already and needs none).
    fn spare_for(&self, target: &ActorId) -> Option<ActorId> {
        if self.strict {
            return None;
        }
        let dc = &self.targets.get(target)?.dc;
        let d = self.dcs.iter().find(|d| d.dc == *dc)?;
        let down = d.replicas.iter().filter(|s| !s.alive).count();
        let rank = d
            .replicas
            .iter()
            .filter(|s| s.alive && s.node != self.me)
            .position(|s| s.node == *target)?;
        d.spares
            .iter()
            .filter(|s| **s != self.me)
            .nth(down + rank)
            .copied()
    }

    fn try_stand_in<R>(&mut self, target: ActorId, out: &mut Vec<Effect<R>>) -> bool {
        let Some(spare) = self.spare_for(&target) else {
            return false;
        };
        if let Some(t) = self.targets.get_mut(&target) {
            t.stand_in_tried = true;
            t.stand_in_pending = true;
        }
        let message = Message::Replicate {
            hint_for: Some(target),
        };
        self.send(spare, message, Call::StandIn { target }, out);
        true
    }

    /// At the replacement point of `timing` (once, before the reply), sends stand-ins for
    /// the replicas still silent.
    pub(super) fn replace_if_due<R>(
        &mut self,
        timing: &super::Timing,
        now: u64,
        replied: bool,
        replaced: &mut bool,
        out: &mut Vec<Effect<R>>,
    ) {
        if timing.replace_due(now, replied, *replaced) {
            *replaced = true;
            self.replace_slow(out);
        }
    }

    /// Sends stand-ins for replicas that have not answered yet; their own answer still counts
    /// if it comes first.
    pub(super) fn replace_slow<R>(&mut self, out: &mut Vec<Effect<R>>) {
        let slow: Vec<ActorId> = self
            .targets
            .iter()
            .filter(|(_, t)| t.direct_pending && !t.stand_in_tried && !t.resolved)
            .map(|(n, _)| *n)
            .collect();
        for target in slow {
            self.try_stand_in(target, out);
        }
    }

    fn resolve(&mut self, target: ActorId, outcome: Option<bool>, resolved: &mut Resolved) {
        if let Some(t) = self.targets.get_mut(&target) {
            if t.resolved {
                return;
            }
            t.resolved = true;
        }
        resolved.push((target, outcome));
    }

    pub(super) fn answer<R>(
        &mut self,
        call: CallId,
        answer: Answer,
        out: &mut Vec<Effect<R>>,
    ) -> Resolved {
        let mut resolved = Vec::new();
        let Some(c) = self.calls.remove(&call) else {
            return resolved;
        };
        let stored = matches!(answer, Answer::Stored);
        match c {
            Call::Direct { target } => {
                if let Some(t) = self.targets.get_mut(&target) {
                    t.direct_pending = false;
                }
                if stored {
                    self.resolve(target, Some(false), &mut resolved);
                } else {
                    self.after_failure(target, out, &mut resolved);
                }
            }
            Call::StandIn { target } => {
                if let Some(t) = self.targets.get_mut(&target) {
                    t.stand_in_pending = false;
                }
                if stored {
                    self.resolve(target, Some(true), &mut resolved);
                } else {
                    self.after_failure(target, out, &mut resolved);
                }
            }
            Call::Relay { replicas, wait_for } => {
                let acked = match answer {
                    Answer::Relayed(acked) => Some(acked),
                    _ => None,
                };
                // Nobody there has stored it yet (a spare relays, the replicas are slow, or
                // the relay failed): keep hints until it reaches them, so the write cannot
                // vanish with the relay.
                if acked.as_ref().is_none_or(|a| a.is_empty()) {
                    for r in &replicas {
                        out.push(Effect::KeepHint { target: *r });
                    }
                }
                let acked = acked.unwrap_or_default();
                for r in &replicas {
                    match acked.iter().find(|(n, _)| n == r) {
                        Some((_, hinted)) => resolved.push((*r, Some(*hinted))),
                        // What the relay did not report by its deadline cannot count.
                        None if wait_for > 0 || acked.is_empty() => resolved.push((*r, None)),
                        None => {}
                    }
                }
            }
        }
        resolved
    }

    /// One attempt for `target` failed: wait for its twin, try a stand-in, or keep a hint.
    fn after_failure<R>(
        &mut self,
        target: ActorId,
        out: &mut Vec<Effect<R>>,
        resolved: &mut Resolved,
    ) {
        let Some(t) = self.targets.get(&target) else {
            return;
        };
        if t.resolved || t.direct_pending || t.stand_in_pending {
            return;
        }
        if !t.stand_in_tried && self.try_stand_in(target, out) {
            return;
        }
        out.push(Effect::KeepHint { target });
        self.resolve(target, None, resolved);
    }
}
