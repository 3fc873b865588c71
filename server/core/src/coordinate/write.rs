//! Coordinating one write: the minting replica sends the object to the key's replicas in its
//! DC and one relay per remote DC, counts acknowledgements per active layout version, and
//! answers the client once every version's level is met, or fails as soon as one cannot be.
//!
//! After the reply it keeps going until every call is answered, so a replica that failed
//! late still gets a hint.

use super::fanout::{Fanout, Resolved};
use super::{Answer, CallId, Effect, Machine, Timing, level_name, required_for};
use crate::actor::ActorId;
use crate::consistency::Consistency;
use crate::error::CoreError;
use crate::quorum::{DcReplicas, Progress, Step, plan_write};
use crate::transition::VersionedWrite;

pub type WriteEffect = Effect<Result<(), CoreError>>;

#[derive(Debug, Clone)]
pub struct WriteCoordinator {
    me: ActorId,
    quorum: VersionedWrite,
    fanout: Fanout,
    steps: Vec<Step>,
    /// The coordinator is itself a replica in its DC: its own store is one acknowledgement.
    mine: bool,
    timing: Timing,
    replied: bool,
    replaced: bool,
}

impl WriteCoordinator {
    /// Plans a write of a key whose replicas are `dcs` (the union over active versions) and
    /// `sets` (each active version's own). Fails before anything is minted when the live
    /// replicas cannot meet the level.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: ActorId,
        my_dc: &str,
        level: Consistency,
        explicit: u32,
        dcs: Vec<DcReplicas>,
        sets: Vec<Vec<DcReplicas>>,
        strict: bool,
        timing: Timing,
    ) -> Result<Self, CoreError> {
        // The union decides what remote DCs are asked to wait for; each version's own set
        // decides what counts.
        let required = required_for(level, explicit, my_dc, &dcs)?;
        let name = level_name(level, explicit);
        let mut per_version = Vec::with_capacity(sets.len());
        for set in sets {
            let r = required_for(level, explicit, my_dc, &set)?;
            per_version.push((set, r));
        }
        let quorum = VersionedWrite::new(&name, per_version, my_dc, strict);
        if let Progress::Failed(e) = quorum.progress() {
            return Err(e);
        }
        let steps = plan_write(&me, my_dc, &dcs, &required, strict);
        let mine = dcs.iter().any(|d| d.dc == my_dc && d.contains(&me));
        Ok(Self {
            me,
            quorum,
            fanout: Fanout::new(me, dcs, strict),
            steps,
            mine,
            timing,
            replied: false,
            replaced: false,
        })
    }

    /// The object is minted and stored here: send it out.
    pub fn start(&mut self) -> Vec<WriteEffect> {
        let mut out = Vec::new();
        if self.mine {
            self.quorum.ack(&self.me, false);
        }
        let steps = std::mem::take(&mut self.steps);
        self.fanout.start(steps, &mut out);
        self.check(&mut out);
        out
    }

    fn count(&mut self, resolved: Resolved) {
        for (node, outcome) in resolved {
            match outcome {
                Some(hinted) => self.quorum.ack(&node, hinted),
                None => self.quorum.fail(&node),
            };
        }
    }

    fn check(&mut self, out: &mut Vec<WriteEffect>) {
        if self.replied {
            return;
        }
        let reply = match self.quorum.progress() {
            Progress::Done => Ok(()),
            Progress::Failed(e) => Err(e),
            Progress::Waiting if !self.fanout.pending() => Err(self.quorum.timed_out()),
            Progress::Waiting => return,
        };
        self.replied = true;
        out.push(Effect::Reply(reply));
    }
}

impl Machine for WriteCoordinator {
    type Reply = Result<(), CoreError>;

    fn on_answer(&mut self, call: CallId, answer: Answer) -> Vec<WriteEffect> {
        let mut out = Vec::new();
        let resolved = self.fanout.answer(call, answer, &mut out);
        self.count(resolved);
        self.check(&mut out);
        out
    }

    fn on_timer(&mut self, now: u64) -> Vec<WriteEffect> {
        let mut out = Vec::new();
        self.fanout.replace_if_due(
            &self.timing,
            now,
            self.replied,
            &mut self.replaced,
            &mut out,
        );
        if !self.replied && now >= self.timing.deadline {
            self.replied = true;
            out.push(Effect::Reply(Err(self.quorum.timed_out())));
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
