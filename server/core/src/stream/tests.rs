use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn limits(max_bytes: u64) -> Limits {
    Limits {
        max_bytes,
        batch_entries: 3,
        batch_bytes: 1 << 20,
        window: 2,
        max_age_ms: u64::MAX,
    }
}

fn node(n: u8) -> ActorId {
    ActorId::from_bytes([n; 16])
}

#[test]
fn a_full_queue_sheds_to_references_then_drops_and_counts_every_write() {
    let mut out = Outbox::recover(limits(100), 1, 0, []);
    assert_eq!(out.admit(7, 60, 10), Admission::Full { seq: 0 });
    assert_eq!(out.admit(7, 60, 10), Admission::Reference { seq: 1 });
    assert_eq!(out.admit(8, 30, 10), Admission::Full { seq: 2 });
    assert_eq!(out.admit(9, 60, 10), Admission::Reference { seq: 3 });
    // References may take a quarter of the budget (25 bytes): the next one no longer fits.
    assert_eq!(out.admit(9, 60, 10), Admission::Dropped);
    assert_eq!(out.admit(11, 60, 10), Admission::Dropped);
    let depth = out.depth();
    assert_eq!(
        (depth.entries, depth.full_bytes, depth.reference_bytes),
        (4, 90, 20)
    );
    assert_eq!(
        out.shed(),
        Shed {
            references: 2,
            dropped: 2
        }
    );
    // Anti-entropy for the dropped partitions waits until the stream has drained.
    assert!(out.take_dropped().is_none());
    let first = out.next_batch().unwrap();
    let (session, opens) = out.sent(first, 4);
    assert!(opens);
    let after = out.on_reply(session, first, Some(Reply::Applied { end: 4 }), 2);
    assert_eq!(after.delete_before, Some(4));
    assert_eq!(out.depth(), Depth::default());
    let owed = out.take_dropped().unwrap();
    assert_eq!(owed.iter().collect::<Vec<_>>(), vec![9, 11]);
    assert!(out.take_dropped().is_none(), "handed out once");
}

#[test]
fn a_sink_refuses_a_batch_after_a_gap_and_names_what_it_expects() {
    let mut inbox = Inbox::default();
    let batch = |first: u64, end: u64, opens: bool| Batch {
        source: node(1),
        session: 5,
        opens,
        first,
        entries: (first..end)
            .map(|seq| Entry {
                seq,
                written_ms: 0,
                storage_key: vec![1],
                object: vec![2],
            })
            .collect(),
        end,
    };
    // A batch of a session it never saw opened.
    assert_eq!(
        inbox.check(&batch(3, 6, false)),
        Verdict::Refuse(Reply::Gap { expected: None })
    );
    assert_eq!(inbox.check(&batch(3, 6, true)), Verdict::Apply { skip: 0 });
    assert_eq!(inbox.applied(&batch(3, 6, true)), Reply::Applied { end: 6 });
    // The next batch was lost: the one after it is refused.
    assert_eq!(
        inbox.check(&batch(9, 12, false)),
        Verdict::Refuse(Reply::Gap { expected: Some(6) })
    );
    // A resend overlapping what was applied skips the overlap.
    assert_eq!(inbox.check(&batch(4, 9, false)), Verdict::Apply { skip: 2 });
    assert_eq!(inbox.gaps, 2);
}

#[derive(Debug, Clone)]
enum Op {
    Admit(u16),
    Send,
    Deliver(usize),
    Lose(usize),
    Answer(usize),
    LoseAnswer(usize),
    SinkRestart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u16..40).prop_map(Op::Admit),
        3 => Just(Op::Send),
        3 => any::<usize>().prop_map(Op::Deliver),
        1 => any::<usize>().prop_map(Op::Lose),
        3 => any::<usize>().prop_map(Op::Answer),
        1 => any::<usize>().prop_map(Op::LoseAnswer),
        1 => Just(Op::SinkRestart),
    ]
}

/// A sender, a sink, and a network that loses and reorders both ways.
struct Model {
    out: Outbox,
    /// What the executor holds on disk: sequence → (bytes, reference).
    queue: BTreeMap<u64, (u64, bool)>,
    admitted: BTreeSet<u64>,
    inbox: Inbox,
    applied: BTreeSet<u64>,
    requests: Vec<Batch>,
    answers: Vec<(u64, u64, Reply)>,
    sessions: u64,
}

impl Model {
    fn new() -> Self {
        Self {
            out: Outbox::recover(limits(200), 0, 0, []),
            queue: BTreeMap::new(),
            admitted: BTreeSet::new(),
            inbox: Inbox::default(),
            applied: BTreeSet::new(),
            requests: Vec::new(),
            answers: Vec::new(),
            sessions: 0,
        }
    }

    fn session(&mut self) -> u64 {
        self.sessions += 1;
        self.sessions
    }

    fn after(&mut self, a: AfterReply) {
        if let Some(before) = a.delete_before {
            let keep = self.queue.split_off(&before);
            for seq in self.queue.keys() {
                assert!(self.applied.contains(seq), "entry {seq} deleted unapplied");
            }
            self.queue = keep;
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Admit(size) => match self.out.admit(size % 4, u64::from(size), 4) {
                Admission::Full { seq } => {
                    self.queue.insert(seq, (u64::from(size), false));
                    self.admitted.insert(seq);
                }
                Admission::Reference { seq } => {
                    self.queue.insert(seq, (4, true));
                    self.admitted.insert(seq);
                }
                Admission::Dropped => {}
            },
            Op::Send => {
                let Some(first) = self.out.next_batch() else {
                    return;
                };
                let entries: Vec<Entry> = self
                    .queue
                    .range(first..)
                    .take(self.out.limits().batch_entries)
                    .map(|(seq, _)| Entry {
                        seq: *seq,
                        written_ms: 0,
                        storage_key: vec![],
                        object: vec![],
                    })
                    .collect();
                let end = entries.last().map_or(first, |e| e.seq + 1);
                let (session, opens) = self.out.sent(first, end);
                self.requests.push(Batch {
                    source: node(1),
                    session,
                    opens,
                    first,
                    entries,
                    end,
                });
            }
            Op::Deliver(i) if !self.requests.is_empty() => {
                let batch = self.requests.remove(i % self.requests.len());
                let reply = match self.inbox.check(&batch) {
                    Verdict::Apply { skip } => {
                        self.applied
                            .extend(batch.entries[skip..].iter().map(|e| e.seq));
                        self.inbox.applied(&batch)
                    }
                    Verdict::Refuse(r) => r,
                };
                self.answers.push((batch.session, batch.first, reply));
            }
            Op::Lose(i) if !self.requests.is_empty() => {
                let batch = self.requests.remove(i % self.requests.len());
                let s = self.session();
                let a = self.out.on_reply(batch.session, batch.first, None, s);
                self.after(a);
            }
            Op::Answer(i) if !self.answers.is_empty() => {
                let (session, first, reply) = self.answers.remove(i % self.answers.len());
                let s = self.session();
                let a = self.out.on_reply(session, first, Some(reply), s);
                self.after(a);
            }
            Op::LoseAnswer(i) if !self.answers.is_empty() => {
                let (session, first, _) = self.answers.remove(i % self.answers.len());
                let s = self.session();
                let a = self.out.on_reply(session, first, None, s);
                self.after(a);
            }
            Op::SinkRestart => self.inbox = Inbox::default(),
            _ => {}
        }
        let d = self.out.depth();
        assert_eq!(d.entries, self.queue.len() as u64);
        let (full, refs) =
            self.queue.values().fold(
                (0, 0),
                |(f, r), (b, is_ref)| {
                    if *is_ref { (f, r + b) } else { (f + b, r) }
                },
            );
        assert_eq!((d.full_bytes, d.reference_bytes), (full, refs));
        assert!(d.full_bytes <= 200 && d.reference_bytes <= 50);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the network loses or reorders, and however often the sink forgets its
    /// sessions, an entry is deleted only once applied; and once the network behaves, the
    /// stream drains with every admitted write applied.
    #[test]
    fn no_admitted_write_is_lost(ops in proptest::collection::vec(op(), 0..200)) {
        let mut m = Model::new();
        for op in ops {
            m.step(op);
        }
        // Heal: in-flight messages are lost (the calls time out), then the network is kind.
        while !m.requests.is_empty() {
            m.step(Op::Lose(0));
        }
        while !m.answers.is_empty() {
            m.step(Op::LoseAnswer(0));
        }
        for _ in 0..10_000 {
            if m.out.drained() {
                break;
            }
            m.step(Op::Send);
            while !m.requests.is_empty() {
                m.step(Op::Deliver(0));
            }
            while !m.answers.is_empty() {
                m.step(Op::Answer(0));
            }
        }
        prop_assert!(m.out.drained(), "the stream did not drain");
        prop_assert!(m.queue.is_empty());
        prop_assert_eq!(&m.applied, &m.admitted);
    }
}

#[test]
fn queue_keys_keep_each_dc_apart_and_in_sequence_order() {
    let a = queue_key("dc1", 7);
    assert_eq!(parse_queue_key(&a), Some(("dc1".to_string(), 7)));
    // "dc1" must not prefix "dc10"'s entries, or one queue's scan would read the other's.
    assert!(!queue_key("dc10", 0).starts_with(&queue_prefix("dc1")));
    assert!(queue_key("dc1", 255) < queue_key("dc1", 256));
    let mut scan = QueueScan::default();
    let full = Queued::new(1, b"k", Some(b"v")).encode();
    let reference = Queued::new(1, b"k", None).encode();
    scan.add(&queue_key("dc1", 4), &full);
    // Sequence 5 is missing (its put failed): counted as an empty reference.
    scan.add(&queue_key("dc1", 6), &reference);
    let queues = scan.finish(limits(1 << 20), || 9);
    assert_eq!(queues.len(), 1);
    let (dc, out) = &queues[0];
    assert_eq!(dc, "dc1");
    assert_eq!(out.next_batch(), Some(4));
    assert_eq!(
        out.depth(),
        Depth {
            entries: 3,
            full_bytes: full.len() as u64,
            reference_bytes: reference.len() as u64,
        }
    );
}

#[test]
fn a_write_queued_longer_than_the_maximum_age_goes_as_the_keys_state_now() {
    let q = Queued::new(1_000, b"k", Some(b"old"));
    let now = |_: &[u8]| Ok::<_, ()>(Some(b"now".to_vec()));
    let fresh = q.clone().into_entry(7, 2_000, 1_000, now).unwrap().unwrap();
    assert_eq!(fresh.object, b"old");
    let stale = q.clone().into_entry(7, 2_001, 1_000, now).unwrap().unwrap();
    assert_eq!(stale.object, b"now");
    // A key purged meanwhile sends nothing.
    let gone = q
        .into_entry(7, 2_001, 1_000, |_| Ok::<_, ()>(None))
        .unwrap();
    assert!(gone.is_none());
}
