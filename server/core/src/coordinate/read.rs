//! Coordinating one read: ask just enough replicas for the level (the coordinator first, then
//! its own DC), ask another when one fails or is slow, answer at quorum with the merged
//! state, and once every answer is in, repair the replicas that answered with less.

use super::{Answer, CallId, Effect, Machine, Message, Timing, level_name, required_for};
use crate::actor::ActorId;
use crate::consistency::Consistency;
use crate::error::CoreError;
use crate::object::StoredObject;
use crate::quorum::{DcReplicas, Progress, ReadQuorum, ReplicaInDc, plan_read, split_read};
use std::collections::BTreeMap;

pub type ReadEffect = Effect<Result<Option<StoredObject>, CoreError>>;

#[derive(Debug, Clone)]
pub struct ReadCoordinator {
    me: ActorId,
    quorum: ReadQuorum,
    first: Vec<ReplicaInDc>,
    /// Not asked yet: replacements for failed or slow replicas.
    rest: Vec<ReplicaInDc>,
    full_pass: bool,
    calls: BTreeMap<CallId, ReplicaInDc>,
    next_call: CallId,
    timing: Timing,
    replied: bool,
    replaced: bool,
    repaired: bool,
}

impl ReadCoordinator {
    /// `dcs`: the key's replicas in the version reads are answered from. `repair_pass`: ask
    /// every live replica in scope (a read-repair pass), not just enough of them.
    pub fn new(
        me: ActorId,
        my_dc: &str,
        level: Consistency,
        explicit: u32,
        dcs: &[DcReplicas],
        repair_pass: bool,
        timing: Timing,
    ) -> Result<Self, CoreError> {
        let required = required_for(level, explicit, my_dc, dcs)?;
        let quorum = ReadQuorum::new(&level_name(level, explicit), required.clone(), my_dc, dcs);
        if let Progress::Failed(e) = quorum.progress() {
            return Err(e);
        }
        let scope = plan_read(my_dc, dcs, &required);
        let (first, rest) = split_read(&me, my_dc, scope, &required);
        let full_pass = repair_pass && !rest.is_empty();
        Ok(Self {
            me,
            quorum,
            first,
            rest,
            full_pass,
            calls: BTreeMap::new(),
            next_call: 0,
            timing,
            replied: false,
            replaced: false,
            repaired: false,
        })
    }

    /// This node alone meets the level and no repair pass is due: the executor may answer
    /// from its own store without running the machine.
    pub fn local_only(&self) -> bool {
        self.first.len() == 1 && self.first[0].0 == self.me && !self.full_pass
    }

    pub fn start(&mut self) -> Vec<ReadEffect> {
        let mut out = Vec::new();
        let mut asked = std::mem::take(&mut self.first);
        if self.full_pass {
            asked.append(&mut self.rest);
        }
        for (node, dc) in asked {
            self.ask(node, dc, &mut out);
        }
        out
    }

    fn ask(&mut self, node: ActorId, dc: String, out: &mut Vec<ReadEffect>) {
        let call = self.next_call;
        self.next_call += 1;
        self.calls.insert(call, (node, dc));
        out.push(Effect::Send {
            call,
            to: node,
            message: Message::Read,
        });
    }

    /// Asks one more replica, from `dc` when possible (EACH_QUORUM needs that DC's count).
    fn ask_replacement(&mut self, dc: &str, out: &mut Vec<ReadEffect>) {
        if self.rest.is_empty() {
            return;
        }
        let i = self.rest.iter().position(|(_, d)| d == dc).unwrap_or(0);
        let (node, dc) = self.rest.remove(i);
        self.ask(node, dc, out);
    }

    /// The state merged from every answer so far (what repairs send).
    pub fn merged(&self) -> Option<&StoredObject> {
        self.quorum.merged()
    }

    fn reply(&mut self, r: Result<Option<StoredObject>, CoreError>, out: &mut Vec<ReadEffect>) {
        self.replied = true;
        out.push(Effect::Reply(r));
    }

    /// Once nothing is outstanding: fail an unanswered read, then repair the stale replicas.
    fn settle(&mut self, out: &mut Vec<ReadEffect>) {
        if !self.calls.is_empty() || self.repaired {
            return;
        }
        if !self.replied {
            self.reply(Err(self.quorum.timed_out()), out);
        }
        self.repaired = true;
        if let Some(object) = self.quorum.merged() {
            for to in self.quorum.stale() {
                out.push(Effect::Repair {
                    to,
                    object: object.clone(),
                });
            }
        }
    }
}

impl Machine for ReadCoordinator {
    type Reply = Result<Option<StoredObject>, CoreError>;

    fn on_answer(&mut self, call: CallId, answer: Answer) -> Vec<ReadEffect> {
        let mut out = Vec::new();
        let Some((node, dc)) = self.calls.remove(&call) else {
            return out;
        };
        let progress = match answer {
            Answer::State(state) => match self.quorum.answer(node, &dc, state) {
                Ok(p) => p,
                // One replica's unmergeable state must not fail the read.
                Err(_) => self.quorum.fail(&dc),
            },
            _ => {
                self.ask_replacement(&dc, &mut out);
                self.quorum.fail(&dc)
            }
        };
        if !self.replied {
            match progress {
                Progress::Done => self.reply(Ok(self.quorum.merged().cloned()), &mut out),
                Progress::Failed(e) => self.reply(Err(e), &mut out),
                Progress::Waiting => {}
            }
        }
        self.settle(&mut out);
        out
    }

    fn on_timer(&mut self, now: u64) -> Vec<ReadEffect> {
        let mut out = Vec::new();
        if self.timing.replace_due(now, self.replied, self.replaced) {
            self.replaced = true;
            let slow: Vec<String> = self.calls.values().map(|(_, dc)| dc.clone()).collect();
            for dc in slow {
                self.ask_replacement(&dc, &mut out);
            }
        }
        if !self.replied && now >= self.timing.deadline {
            self.reply(Err(self.quorum.timed_out()), &mut out);
        }
        out
    }

    fn next_timer(&self) -> Option<u64> {
        self.timing
            .next(self.replied, self.replaced, !self.rest.is_empty())
    }

    fn finished(&self) -> bool {
        self.replied && self.repaired
    }
}
