//! A remote DC's share of a write, at the node that received it: store it here if this node
//! is a replica, fan it out to the DC's other replicas, and answer once `wait_for` of each
//! active version's replicas here hold it (at once when `wait_for` is 0), with the list of
//! who does, so the coordinator counts nodes, not numbers.

use super::fanout::Fanout;
use super::{Answer, CallId, Effect, Machine, Timing};
use crate::actor::ActorId;
use crate::quorum::{DcReplicas, Step, plan_dc};

/// The replicas that hold the write, and whether through a stand-in.
pub type RelayEffect = Effect<Vec<(ActorId, bool)>>;

#[derive(Debug, Clone)]
pub struct RelayCoordinator {
    me: ActorId,
    fanout: Fanout,
    steps: Vec<Step>,
    /// Each active version's replicas in this DC.
    sets: Vec<Vec<ActorId>>,
    wait_for: usize,
    acked: Vec<(ActorId, bool)>,
    timing: Timing,
    replied: bool,
    replaced: bool,
}

impl RelayCoordinator {
    pub fn new(
        me: ActorId,
        dc: DcReplicas,
        sets: Vec<Vec<ActorId>>,
        wait_for: usize,
        strict: bool,
        timing: Timing,
    ) -> Self {
        let steps = plan_dc(&me, &dc, strict);
        Self {
            me,
            fanout: Fanout::new(me, vec![dc], strict),
            steps,
            sets,
            wait_for,
            acked: Vec::new(),
            timing,
            replied: false,
            replaced: false,
        }
    }

    /// `stored_here`: this node is a replica here and has merged the object.
    pub fn start(&mut self, stored_here: bool) -> Vec<RelayEffect> {
        let mut out = Vec::new();
        if stored_here {
            self.acked.push((self.me, false));
        }
        let steps = std::mem::take(&mut self.steps);
        self.fanout.start(steps, &mut out);
        self.check(&mut out);
        out
    }

    fn enough(&self) -> bool {
        self.sets.iter().all(|set| {
            let n = self.acked.iter().filter(|(a, _)| set.contains(a)).count();
            n >= self.wait_for.min(set.len())
        })
    }

    fn check(&mut self, out: &mut Vec<RelayEffect>) {
        if self.replied {
            return;
        }
        if self.wait_for == 0 || self.enough() || !self.fanout.pending() {
            self.replied = true;
            out.push(Effect::Reply(self.acked.clone()));
        }
    }
}

impl Machine for RelayCoordinator {
    type Reply = Vec<(ActorId, bool)>;

    fn on_answer(&mut self, call: CallId, answer: Answer) -> Vec<RelayEffect> {
        let mut out = Vec::new();
        for (node, outcome) in self.fanout.answer(call, answer, &mut out) {
            if let Some(hinted) = outcome {
                self.acked.push((node, hinted));
            }
        }
        self.check(&mut out);
        out
    }

    fn on_timer(&mut self, now: u64) -> Vec<RelayEffect> {
        let mut out = Vec::new();
        self.fanout.replace_if_due(
            &self.timing,
            now,
            self.replied,
            &mut self.replaced,
            &mut out,
        );
        if !self.replied && now >= self.timing.deadline {
            // Answer with what we have, well before the coordinator's call to us times out.
            self.replied = true;
            out.push(Effect::Reply(self.acked.clone()));
        }
        out
    }

    fn next_timer(&self) -> Option<u64> {
        self.timing
            .next(self.replied, self.replaced, self.fanout.has_slow())
    }

    fn finished(&self) -> bool {
        self.replied && !self.fanout.pending()
    }
}
