//! Quorum decisions for one request, as plain state machines: which replicas a write goes to,
//! who stands in for a down replica (sloppy quorum), which replicas a read asks, when enough
//! have answered, and which replicas a read must repair.
//!
//! The node crate feeds these with liveness and answers and carries out the steps; nothing
//! here waits, sends or stores, so every decision is tested in one thread.
//!
//! Laws the tests check:
//! - a request succeeds exactly when the acknowledgements it collected meet its level, and
//!   fails as soon as the outstanding answers can no longer meet it (never later);
//! - a stand-in's acknowledgement counts like a replica's unless the request is `strict`;
//! - a hint the coordinator keeps for itself never counts;
//! - read repair targets exactly the replicas whose state differs from the merged one.

use crate::actor::ActorId;
use crate::consistency::Required;
use crate::error::CoreError;
use crate::object::StoredObject;
use std::collections::BTreeMap;

/// One replica of a key and whether the failure detector believes it is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub node: ActorId,
    pub alive: bool,
}

/// A key's replicas in one datacenter, plus the live nodes there that are not replicas (in a
/// stable order) and may stand in for a down replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcReplicas {
    pub dc: String,
    pub replicas: Vec<Slot>,
    pub spares: Vec<ActorId>,
}

impl DcReplicas {
    pub fn alive(&self) -> impl Iterator<Item = ActorId> + '_ {
        self.replicas.iter().filter(|s| s.alive).map(|s| s.node)
    }

    pub fn contains(&self, node: &ActorId) -> bool {
        self.replicas.iter().any(|s| s.node == *node)
    }
}

/// What the coordinator (or a relay) does for one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send the object to a live replica.
    Replicate { node: ActorId, dc: String },
    /// The replica is down: a live non-replica of the same DC keeps the object as a hint and
    /// hands it over when the replica returns. Counts toward W unless strict.
    StandIn {
        target: ActorId,
        spare: ActorId,
        dc: String,
    },
    /// No stand-in is available (or the request is strict): the sender keeps the hint itself.
    /// Never counts toward W.
    KeepHint { target: ActorId, dc: String },
    /// A remote DC's share: sent once, to `via`, which stores and fans out there and answers
    /// when `wait_for` of that DC's replicas hold it.
    Relay {
        dc: String,
        via: ActorId,
        wait_for: usize,
    },
    /// A remote DC's share when the level waits for none of it: queued on this node's
    /// replication stream to that DC (see [`crate::stream`]), which delivers it once, in
    /// order, whatever the link does meanwhile.
    Stream { dc: String },
}

/// Steps for the replicas of one DC, seen from `sender`, which already holds the object when
/// it is itself a replica there.
pub fn plan_dc(sender: &ActorId, dc: &DcReplicas, strict: bool) -> Vec<Step> {
    let mut spares = dc.spares.iter().filter(|s| *s != sender);
    let mut steps = Vec::with_capacity(dc.replicas.len());
    for slot in dc.replicas.iter().filter(|s| s.node != *sender) {
        let step = if slot.alive {
            Step::Replicate {
                node: slot.node,
                dc: dc.dc.clone(),
            }
        } else if let Some(spare) = spares.next().filter(|_| !strict) {
            Step::StandIn {
                target: slot.node,
                spare: *spare,
                dc: dc.dc.clone(),
            }
        } else {
            Step::KeepHint {
                target: slot.node,
                dc: dc.dc.clone(),
            }
        };
        steps.push(step);
    }
    steps
}

/// Every step of a write coordinated by `coordinator` (a replica in `local_dc`, which has
/// stored the object already). Remote DCs get one relay each, through a live replica, or a
/// live spare when all their replicas are down; a DC with nobody alive gets kept hints.
pub fn plan_write(
    coordinator: &ActorId,
    local_dc: &str,
    dcs: &[DcReplicas],
    required: &Required,
    strict: bool,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for dc in dcs {
        if dc.dc == local_dc {
            steps.extend(plan_dc(coordinator, dc, strict));
            continue;
        }
        if matches!(required, Required::Local(_)) {
            steps.push(Step::Stream { dc: dc.dc.clone() });
            continue;
        }
        let via = dc.alive().next().or_else(|| dc.spares.first().copied());
        match via {
            Some(via) => steps.push(Step::Relay {
                dc: dc.dc.clone(),
                via,
                wait_for: remote_wait(required, &dc.dc, dc.replicas.len()),
            }),
            None => steps.extend(dc.replicas.iter().map(|s| Step::KeepHint {
                target: s.node,
                dc: dc.dc.clone(),
            })),
        }
    }
    steps
}

/// How many acknowledgements a relay must wait for before answering: none for `LOCAL_*`
/// (the answer is not needed), that DC's quorum for EACH_QUORUM, and all of its replicas for
/// the levels counted over every DC (the coordinator cannot know which DC will make up the
/// count, so it asks for everything a DC can give).
pub fn remote_wait(required: &Required, dc: &str, replicas: usize) -> usize {
    match required {
        Required::Local(_) => 0,
        Required::EachDc(per) => per.iter().find(|(d, _)| d == dc).map_or(0, |(_, n)| *n),
        Required::Total(_) => replicas,
    }
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Waiting,
    Done,
    Failed(CoreError),
}

/// Acknowledgement counting shared by reads and writes.
#[derive(Debug, Clone)]
struct Tally {
    level: String,
    required: Required,
    local_dc: String,
    /// Per DC: (acknowledged, still possible, replicas).
    dcs: BTreeMap<String, (usize, usize, usize)>,
}

impl Tally {
    fn new(level: &str, required: Required, local_dc: &str) -> Self {
        Self {
            level: level.to_string(),
            required,
            local_dc: local_dc.to_string(),
            dcs: BTreeMap::new(),
        }
    }

    fn expect(&mut self, dc: &str, possible: usize, replicas: usize) {
        let e = self.dcs.entry(dc.to_string()).or_insert((0, 0, 0));
        e.1 += possible;
        e.2 += replicas;
    }

    fn ack(&mut self, dc: &str, n: usize) {
        if let Some(e) = self.dcs.get_mut(dc) {
            let n = n.min(e.1);
            e.0 += n;
            e.1 -= n;
        }
    }

    fn fail(&mut self, dc: &str, n: usize) {
        if let Some(e) = self.dcs.get_mut(dc) {
            e.1 = e.1.saturating_sub(n);
        }
    }

    fn count(&self, f: impl Fn(&(usize, usize, usize)) -> usize, dc: Option<&str>) -> usize {
        self.dcs
            .iter()
            .filter(|(d, _)| dc.is_none_or(|want| *d == want))
            .map(|(_, e)| f(e))
            .sum()
    }

    fn progress(&self) -> Progress {
        let acked = |dc: Option<&str>| self.count(|e| e.0, dc);
        let possible = |dc: Option<&str>| self.count(|e| e.0 + e.1, dc);
        let (met, reachable, needed, scope) = match &self.required {
            Required::Total(n) => (acked(None) >= *n, possible(None) >= *n, *n, String::new()),
            Required::Local(n) => {
                let dc = Some(self.local_dc.as_str());
                (
                    acked(dc) >= *n,
                    possible(dc) >= *n,
                    *n,
                    format!(" in datacenter {}", self.local_dc),
                )
            }
            Required::EachDc(per) => {
                let met = per.iter().all(|(dc, n)| acked(Some(dc)) >= *n);
                let short = per.iter().find(|(dc, n)| possible(Some(dc)) < *n);
                match short {
                    Some((dc, n)) => (met, false, *n, format!(" in datacenter {dc}")),
                    None => (met, true, 0, String::new()),
                }
            }
        };
        if met {
            Progress::Done
        } else if !reachable {
            Progress::Failed(CoreError::Unavailable {
                level: self.level.clone(),
                needed,
                scope,
                reachable: self.describe(),
            })
        } else {
            Progress::Waiting
        }
    }

    /// "dc1 2/3 acknowledged (1 pending), dc2 0/3": what an operator needs to see in an error.
    fn describe(&self) -> String {
        self.dcs
            .iter()
            .map(|(dc, (acked, pending, replicas))| {
                if *pending > 0 {
                    format!("{dc} {acked}/{replicas} acknowledged ({pending} pending)")
                } else {
                    format!("{dc} {acked}/{replicas} acknowledged")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Counts a write's acknowledgements. The coordinator's own store is one acknowledgement in
/// its DC.
#[derive(Debug, Clone)]
pub struct WriteQuorum {
    tally: Tally,
    strict: bool,
}

impl WriteQuorum {
    /// `dcs` are the key's replicas; what can still count is derived from liveness and the
    /// stand-ins available, so an impossible request fails before anything is sent.
    pub fn new(
        level: &str,
        required: Required,
        local_dc: &str,
        dcs: &[DcReplicas],
        strict: bool,
    ) -> Self {
        let mut tally = Tally::new(level, required, local_dc);
        for dc in dcs {
            let alive = dc.alive().count();
            let down = dc.replicas.len() - alive;
            let stand_ins = if strict { 0 } else { down.min(dc.spares.len()) };
            tally.expect(&dc.dc, alive + stand_ins, dc.replicas.len());
        }
        Self { tally, strict }
    }

    /// `n` replicas of `dc` hold the write, `hinted` of them through a stand-in.
    pub fn ack(&mut self, dc: &str, n: usize, hinted: usize) -> Progress {
        let hinted = hinted.min(n);
        if self.strict {
            // A stand-in was never counted as possible for a strict request.
            self.tally.ack(dc, n - hinted);
        } else {
            self.tally.ack(dc, n);
        }
        self.tally.progress()
    }

    /// `n` attempts in `dc` failed or ended as hints the sender keeps.
    pub fn fail(&mut self, dc: &str, n: usize) -> Progress {
        self.tally.fail(dc, n);
        self.tally.progress()
    }

    pub fn progress(&self) -> Progress {
        self.tally.progress()
    }

    /// Ends a request whose deadline passed while some answers were still due.
    pub fn timed_out(&self) -> CoreError {
        timeout_error(&self.tally)
    }
}

fn timeout_error(tally: &Tally) -> CoreError {
    let mut t = tally.clone();
    for e in t.dcs.values_mut() {
        e.1 = 0;
    }
    match t.progress() {
        Progress::Failed(e) => e,
        _ => CoreError::Unavailable {
            level: tally.level.clone(),
            needed: 0,
            scope: String::new(),
            reachable: tally.describe(),
        },
    }
}

/// Which replicas a read may ask: the live ones in the local DC for `LOCAL_*`, every live
/// one otherwise.
pub fn plan_read(
    local_dc: &str,
    dcs: &[DcReplicas],
    required: &Required,
) -> Vec<(ActorId, String)> {
    dcs.iter()
        .filter(|dc| !matches!(required, Required::Local(_)) || dc.dc == local_dc)
        .flat_map(|dc| dc.alive().map(|n| (n, dc.dc.clone())))
        .collect()
}

/// A replica and its datacenter.
pub type ReplicaInDc = (ActorId, String);

/// Splits a read's scope into the replicas asked at once and the rest. The first group is
/// just enough to meet the level, cheapest first (the coordinator itself, then its own DC);
/// the rest are asked when one of the first fails, or all at once for a full read-repair pass.
pub fn split_read(
    me: &ActorId,
    local_dc: &str,
    mut scope: Vec<ReplicaInDc>,
    required: &Required,
) -> (Vec<ReplicaInDc>, Vec<ReplicaInDc>) {
    scope.sort_by_key(|(n, dc)| (n != me, dc != local_dc));
    let mut first = Vec::new();
    let mut rest = Vec::new();
    for (node, dc) in scope {
        let want = match required {
            Required::Total(n) | Required::Local(n) => first.len() < *n,
            Required::EachDc(per) => {
                let need = per.iter().find(|(d, _)| *d == dc).map_or(0, |(_, n)| *n);
                first.iter().filter(|(_, d)| *d == dc).count() < need
            }
        };
        if want {
            first.push((node, dc));
        } else {
            rest.push((node, dc));
        }
    }
    (first, rest)
}

/// Collects a read's answers and merges them.
#[derive(Debug, Clone)]
pub struct ReadQuorum {
    tally: Tally,
    merged: Option<StoredObject>,
    answers: Vec<(ActorId, Option<Vec<u8>>)>,
}

impl ReadQuorum {
    pub fn new(level: &str, required: Required, local_dc: &str, dcs: &[DcReplicas]) -> Self {
        let mut tally = Tally::new(level, required.clone(), local_dc);
        let asked = plan_read(local_dc, dcs, &required);
        for dc in dcs {
            let n = asked.iter().filter(|(_, d)| *d == dc.dc).count();
            tally.expect(&dc.dc, n, dc.replicas.len());
        }
        Self {
            tally,
            merged: None,
            answers: Vec::new(),
        }
    }

    /// A replica's state (None: it holds nothing for the key).
    pub fn answer(
        &mut self,
        node: ActorId,
        dc: &str,
        state: Option<StoredObject>,
    ) -> Result<Progress, CoreError> {
        if let Some(obj) = &state {
            // Merge before replacing, so a state that cannot merge leaves the rest intact.
            let next = match &self.merged {
                Some(m) => m.merge(obj)?,
                None => obj.clone(),
            };
            self.merged = Some(next);
        }
        self.answers
            .push((node, state.as_ref().map(StoredObject::replicated_bytes)));
        self.tally.ack(dc, 1);
        Ok(self.tally.progress())
    }

    pub fn fail(&mut self, dc: &str) -> Progress {
        self.tally.fail(dc, 1);
        self.tally.progress()
    }

    pub fn progress(&self) -> Progress {
        self.tally.progress()
    }

    pub fn timed_out(&self) -> CoreError {
        timeout_error(&self.tally)
    }

    pub fn merged(&self) -> Option<&StoredObject> {
        self.merged.as_ref()
    }

    /// Replicas that answered with something other than the merged state: the read-repair
    /// targets. Call it once every answer is in (or the stragglers are given up on).
    pub fn stale(&self) -> Vec<ActorId> {
        let Some(merged) = &self.merged else {
            return Vec::new();
        };
        let want = merged.replicated_bytes();
        self.answers
            .iter()
            .filter(|(_, got)| got.as_deref() != Some(want.as_slice()))
            .map(|(n, _)| *n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Consistency;
    use crate::ValueKind;
    use crate::consistency::{ReplicaCounts, required};
    use crate::replica::{Write, WriteOutcome, apply_write};

    fn id(n: u8) -> ActorId {
        ActorId([n; 16])
    }

    fn dc(name: &str, replicas: &[(u8, bool)], spares: &[u8]) -> DcReplicas {
        DcReplicas {
            dc: name.into(),
            replicas: replicas
                .iter()
                .map(|(n, alive)| Slot {
                    node: id(*n),
                    alive: *alive,
                })
                .collect(),
            spares: spares.iter().map(|n| id(*n)).collect(),
        }
    }

    fn req(level: Consistency, dcs: &[DcReplicas]) -> Required {
        let counts = ReplicaCounts {
            per_dc: dcs
                .iter()
                .map(|d| (d.dc.clone(), d.replicas.len()))
                .collect(),
            local_dc: "dc1".into(),
        };
        required(level, None, &counts).expect("satisfiable")
    }

    fn two_dcs(dc1: &[(u8, bool)], dc2: &[(u8, bool)]) -> Vec<DcReplicas> {
        vec![dc("dc1", dc1, &[4]), dc("dc2", dc2, &[14])]
    }

    #[test]
    fn plan_sends_local_replicas_and_one_relay_or_stream_entry_per_remote_dc() {
        let dcs = two_dcs(
            &[(1, true), (2, true), (3, true)],
            &[(11, true), (12, true), (13, true)],
        );
        let r = req(Consistency::EachQuorum, &dcs);
        let steps = plan_write(&id(1), "dc1", &dcs, &r, false);
        assert_eq!(
            steps,
            vec![
                Step::Replicate {
                    node: id(2),
                    dc: "dc1".into()
                },
                Step::Replicate {
                    node: id(3),
                    dc: "dc1".into()
                },
                Step::Relay {
                    dc: "dc2".into(),
                    via: id(11),
                    wait_for: 2
                },
            ]
        );
        let local = plan_write(
            &id(1),
            "dc1",
            &dcs,
            &req(Consistency::LocalQuorum, &dcs),
            false,
        );
        // Nothing waits for dc2: its share goes on the stream.
        assert!(local.contains(&Step::Stream { dc: "dc2".into() }));
        assert!(!local.iter().any(|s| matches!(s, Step::Relay { .. })));
    }

    #[test]
    fn down_replica_gets_a_stand_in_or_a_kept_hint() {
        let dcs = vec![dc("dc1", &[(1, true), (2, false), (3, false)], &[4])];
        let steps = plan_write(&id(1), "dc1", &dcs, &Required::Local(2), false);
        assert_eq!(
            steps,
            vec![
                Step::StandIn {
                    target: id(2),
                    spare: id(4),
                    dc: "dc1".into()
                },
                Step::KeepHint {
                    target: id(3),
                    dc: "dc1".into()
                },
            ]
        );
        let strict = plan_write(&id(1), "dc1", &dcs, &Required::Local(2), true);
        assert!(strict.iter().all(|s| matches!(s, Step::KeepHint { .. })));
    }

    #[test]
    fn remote_dc_with_all_replicas_down_relays_through_a_spare_or_keeps_hints() {
        let dcs = two_dcs(&[(1, true)], &[(11, false), (12, false)]);
        let steps = plan_write(&id(1), "dc1", &dcs, &Required::Total(2), false);
        assert_eq!(
            steps,
            vec![Step::Relay {
                dc: "dc2".into(),
                via: id(14),
                wait_for: 2
            }]
        );
        let dead = vec![
            dc("dc1", &[(1, true)], &[]),
            dc("dc2", &[(11, false), (12, false)], &[]),
        ];
        let steps = plan_write(&id(1), "dc1", &dead, &Required::Total(2), false);
        assert_eq!(steps.len(), 2);
        assert!(steps.iter().all(|s| matches!(s, Step::KeepHint { .. })));
    }

    #[test]
    fn write_quorum_counts_stand_ins_unless_strict() {
        let dcs = vec![dc("dc1", &[(1, true), (2, false), (3, true)], &[4])];
        let mut q = WriteQuorum::new("LOCAL_QUORUM", Required::Local(2), "dc1", &dcs, false);
        assert_eq!(q.ack("dc1", 1, 0), Progress::Waiting);
        assert_eq!(q.ack("dc1", 1, 1), Progress::Done);

        let mut strict = WriteQuorum::new("LOCAL_QUORUM", Required::Local(2), "dc1", &dcs, true);
        assert_eq!(strict.ack("dc1", 1, 0), Progress::Waiting);
        assert_eq!(
            strict.ack("dc1", 1, 1),
            Progress::Waiting,
            "a stand-in must not count"
        );
        assert_eq!(strict.ack("dc1", 1, 0), Progress::Done);
    }

    #[test]
    fn write_quorum_fails_as_soon_as_it_cannot_succeed() {
        let dcs = vec![dc("dc1", &[(1, true), (2, true), (3, true)], &[])];
        let mut q = WriteQuorum::new("ALL", Required::Total(3), "dc1", &dcs, false);
        assert_eq!(q.ack("dc1", 1, 0), Progress::Waiting);
        match q.fail("dc1", 1) {
            Progress::Failed(CoreError::Unavailable {
                level,
                needed,
                reachable,
                ..
            }) => {
                assert_eq!(level, "ALL");
                assert_eq!(needed, 3);
                assert!(reachable.contains("dc1 1/3"), "{reachable}");
            }
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn each_quorum_with_a_dead_dc_fails_up_front_naming_it() {
        let dcs = vec![
            dc("dc1", &[(1, true), (2, true), (3, true)], &[]),
            dc("dc2", &[(11, false), (12, false), (13, false)], &[]),
        ];
        let q = WriteQuorum::new(
            "EACH_QUORUM",
            req(Consistency::EachQuorum, &dcs),
            "dc1",
            &dcs,
            false,
        );
        let Progress::Failed(e) = q.progress() else {
            panic!("EACH_QUORUM with a dead DC must fail before sending");
        };
        let msg = e.to_string();
        assert!(
            msg.contains("EACH_QUORUM") && msg.contains("datacenter dc2"),
            "{msg}"
        );
        assert!(msg.contains("dc2 0/3"), "{msg}");
        // LOCAL_QUORUM is untouched by the dead DC.
        let mut local = WriteQuorum::new("LOCAL_QUORUM", Required::Local(2), "dc1", &dcs, false);
        assert_eq!(local.ack("dc1", 2, 0), Progress::Done);
    }

    #[test]
    fn relayed_acks_count_for_their_dc() {
        let dcs = vec![
            dc("dc1", &[(1, true), (2, true), (3, true)], &[]),
            dc("dc2", &[(11, true), (12, true), (13, true)], &[]),
        ];
        let mut q = WriteQuorum::new("QUORUM", Required::Total(4), "dc1", &dcs, false);
        assert_eq!(q.ack("dc1", 1, 0), Progress::Waiting);
        assert_eq!(q.ack("dc2", 3, 0), Progress::Done);
        let t = WriteQuorum::new("QUORUM", Required::Total(4), "dc1", &dcs, false).timed_out();
        assert!(t.to_string().contains("dc1 0/3"), "{t}");
    }

    fn obj(actor: u8, data: &[u8], base: Option<&StoredObject>) -> StoredObject {
        match apply_write(
            ValueKind::Siblings,
            base,
            Write {
                actor: id(actor),
                context: base.map(StoredObject::context).as_ref(),
                data: Some(data.to_vec()),
                request_id: [data[0]; 16],
                timestamp: 1,
                max_siblings: 100,
            },
        ) {
            Ok(WriteOutcome::Applied { object, .. }) => object,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn read_merges_answers_and_names_stale_replicas() {
        let dcs = vec![dc("dc1", &[(1, true), (2, true), (3, true)], &[])];
        let v1 = obj(1, b"a", None);
        let v2 = obj(1, b"b", Some(&v1));
        let mut q = ReadQuorum::new("LOCAL_QUORUM", Required::Local(2), "dc1", &dcs);
        assert_eq!(
            q.answer(id(1), "dc1", Some(v2.clone())).expect("merge"),
            Progress::Waiting
        );
        assert_eq!(
            q.answer(id(2), "dc1", Some(v1)).expect("merge"),
            Progress::Done
        );
        assert_eq!(q.merged(), Some(&v2));
        assert_eq!(q.answer(id(3), "dc1", None).expect("merge"), Progress::Done);
        assert_eq!(q.stale(), vec![id(2), id(3)]);
    }

    #[test]
    fn local_reads_never_ask_another_dc() {
        let dcs = two_dcs(&[(1, true), (2, false)], &[(11, true)]);
        let asked = plan_read("dc1", &dcs, &Required::Local(1));
        assert_eq!(asked, vec![(id(1), "dc1".to_string())]);
        let all = plan_read("dc1", &dcs, &Required::Total(2));
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn a_read_asks_just_enough_replicas_self_and_local_first() {
        let dcs = two_dcs(
            &[(1, true), (2, true), (3, true)],
            &[(11, true), (12, true), (13, true)],
        );
        let scope = plan_read("dc1", &dcs, &Required::Local(2));
        let (first, rest) = split_read(&id(2), "dc1", scope, &Required::Local(2));
        assert_eq!(first, vec![(id(2), "dc1".into()), (id(1), "dc1".into())]);
        assert_eq!(rest, vec![(id(3), "dc1".into())]);

        let each = Required::EachDc(vec![("dc1".into(), 2), ("dc2".into(), 2)]);
        let scope = plan_read("dc1", &dcs, &each);
        let (first, rest) = split_read(&id(1), "dc1", scope, &each);
        assert_eq!(first.len(), 4);
        assert_eq!(first.iter().filter(|(_, d)| d == "dc2").count(), 2);
        assert_eq!(rest.len(), 2);

        let quorum = Required::Total(4);
        let scope = plan_read("dc1", &dcs, &quorum);
        let (first, _) = split_read(&id(12), "dc2", scope, &quorum);
        assert_eq!(first[0].0, id(12), "the coordinator reads itself first");
        assert_eq!(
            first.iter().filter(|(_, d)| d == "dc2").count(),
            3,
            "its own DC next"
        );
    }
}
