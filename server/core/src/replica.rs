//! The rules a replica applies to a client write or read of one key.
//!
//! Pure functions: the node reads the key's stored object, calls these, and persists the
//! result before replying. Serialising writes to one key (so two writes never read the same
//! old object) is the caller's job; minting a dot is only ever done here, by the replica that
//! holds the key's state.

use crate::actor::ActorId;
use crate::context::CausalContext;
use crate::dvv::DvvSet;
use crate::error::CoreError;
use crate::keyspace::ValueKind;
use crate::limits::MAX_SIBLINGS_BYTES;
use crate::lww::LwwRegister;
use crate::object::{RecentWrite, SiblingsState, StoredObject, merge_recent};
use crate::version::{RequestId, Version};

/// A client write as the minting replica sees it.
#[derive(Debug, Clone)]
pub struct Write<'a> {
    /// This replica's actor id.
    pub actor: ActorId,
    /// The context the client sent; `None` when it sent none.
    pub context: Option<&'a CausalContext>,
    /// The new value, or `None` for a delete (a tombstone).
    pub data: Option<Vec<u8>>,
    pub request_id: RequestId,
    /// A fresh hybrid logical timestamp from this node.
    pub timestamp: u64,
    /// The keyspace's sibling limit.
    pub max_siblings: usize,
}

/// What a writer is told: the new context and, when versions concurrent with its write
/// survive it, every live value that context covers.
///
/// A version vector cannot say "saw 1 and 3 but not 2": a context handed out without the
/// values it covers would let the writer's next write supersede a sibling it never saw. So
/// when anything but the writer's own value survives, the reply carries the values as a read
/// does; when only its own value survives, the context alone is safe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteReply {
    pub context: CausalContext,
    /// Empty when the writer's value (or nothing, after a delete) is all that is live.
    pub siblings: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Persist `object`, then send `reply`.
    Applied {
        object: StoredObject,
        reply: WriteReply,
        /// Versions the key now holds (tombstones included), for the sibling metrics.
        siblings: usize,
    },
    /// The request id was seen before: acknowledge again, store nothing, mint nothing.
    Duplicate { reply: WriteReply },
}

/// Applies a put or delete to a key's current state.
///
/// - With a context: supersedes exactly the versions the context covers.
/// - A put without a context supersedes nothing (the new value becomes a sibling).
/// - A delete without a context supersedes what this replica holds now, as if the client had
///   read first; anything it has not yet received stays.
/// - A request id seen before on this key is acknowledged without a new dot.
/// - A write that would take the key past `max_siblings` without reducing the count is
///   refused, naming the count and the limit.
/// - The new version's timestamp is later than every timestamp the context saw.
pub fn apply_write(
    kind: ValueKind,
    current: Option<&StoredObject>,
    w: Write<'_>,
) -> Result<WriteOutcome, CoreError> {
    match kind {
        ValueKind::Siblings => apply_siblings_write(current, w),
        ValueKind::Lww => apply_lww_write(current, w),
        crdt => Err(CoreError::WrongCrdtOp {
            op: if w.data.is_some() { "put" } else { "delete" }.into(),
            kind: format!("{crdt} keyspace (it takes {crdt} operations)"),
        }),
    }
}

fn apply_siblings_write(
    current: Option<&StoredObject>,
    w: Write<'_>,
) -> Result<WriteOutcome, CoreError> {
    let empty = SiblingsState::default();
    let state = match current {
        None => &empty,
        Some(StoredObject::Siblings(s)) => s,
        Some(other) => {
            return Err(CoreError::KindMismatch {
                actual: ValueKind::Siblings.name().into(),
                found: other.kind_name().into(),
            });
        }
    };
    let seen_before = state.recent.iter().any(|r| r.request_id == w.request_id)
        || state.dvv.values().any(|v| v.request_id == w.request_id);
    if seen_before {
        let object = StoredObject::Siblings(state.clone());
        return Ok(WriteOutcome::Duplicate {
            reply: reply_for(&object, &w.request_id),
        });
    }
    let own_read;
    let context = match (w.context, &w.data) {
        (Some(c), _) => c,
        (None, Some(_)) => {
            own_read = CausalContext::empty();
            &own_read
        }
        (None, None) => {
            own_read = state.dvv.join();
            &own_read
        }
    };
    let timestamp = after(w.timestamp, w.context);
    let version = Version {
        data: w.data,
        request_id: w.request_id,
        timestamp,
    };
    let (dvv, dot) = state.dvv.update(context, w.actor, version, timestamp)?;
    let before = state.dvv.len();
    let after = dvv.len();
    if after > w.max_siblings && after > before {
        return Err(CoreError::TooManySiblings {
            count: before,
            next: after,
            limit: w.max_siblings,
        });
    }
    let (bytes_before, bytes_after) = (live_bytes(&state.dvv), live_bytes(&dvv));
    if bytes_after > MAX_SIBLINGS_BYTES && bytes_after > bytes_before {
        return Err(CoreError::SiblingsTooLarge {
            bytes: bytes_after,
            limit: MAX_SIBLINGS_BYTES,
        });
    }
    let written = RecentWrite {
        timestamp,
        dot,
        request_id: w.request_id,
    };
    let recent = merge_recent(&[written], &state.recent);
    let object = StoredObject::Siblings(SiblingsState { dvv, recent });
    Ok(WriteOutcome::Applied {
        reply: reply_for(&object, &w.request_id),
        object,
        siblings: after,
    })
}

/// The bytes of a key's live values, which a read returns together.
fn live_bytes(dvv: &DvvSet<Version>) -> usize {
    dvv.values()
        .filter_map(|v| v.data.as_ref())
        .map(Vec::len)
        .sum()
}

/// A timestamp later than `ts` and than everything the context saw.
fn after(ts: u64, context: Option<&CausalContext>) -> u64 {
    ts.max(context.map_or(0, |c| c.hlc().saturating_add(1)))
}

/// The reply to the writer of `request_id`, given the key's state after its write.
fn reply_for(object: &StoredObject, request_id: &RequestId) -> WriteReply {
    let context = object.context();
    let StoredObject::Siblings(s) = object else {
        return WriteReply {
            context,
            siblings: Vec::new(),
        };
    };
    let live = live_versions(s);
    let only_own = live.iter().all(|v| v.request_id == *request_id);
    WriteReply {
        context,
        siblings: if only_own {
            Vec::new()
        } else {
            live.into_iter().filter_map(|v| v.data.clone()).collect()
        },
    }
}

/// The versions a reader sees: tombstones hidden, and a write minted twice (a retry that
/// reached a second replica before the first one's copy did) shown once. The context still
/// covers both dots, so the reader's next write supersedes both.
///
/// A request is one write however many dots it got: once any of its dots is superseded
/// (covered by the clock, no longer held), its other copies are superseded too and hidden.
/// Otherwise the first replica's copy, returning after a crash or a partition, would come
/// back as a sibling of the very write that replaced it. The stored state keeps the copy
/// (a DVV cannot drop one value from the middle of an actor's run without breaking the
/// merge laws) and reads return a context that covers it, so the next write removes it.
fn live_versions(state: &SiblingsState) -> Vec<&Version> {
    let live_dots: Vec<crate::dvv::Dot> = state.dvv.dotted_values().map(|(d, _)| d).collect();
    let superseded: Vec<&RequestId> = state
        .recent
        .iter()
        .filter(|r| state.dvv.covers(r.dot) && !live_dots.contains(&r.dot))
        .map(|r| &r.request_id)
        .collect();
    let mut out: Vec<&Version> = Vec::new();
    for v in state.dvv.values().filter(|v| !v.is_tombstone()) {
        if superseded.contains(&&v.request_id) {
            continue;
        }
        if !out
            .iter()
            .any(|o| o.request_id == v.request_id && o.data == v.data)
        {
            out.push(v);
        }
    }
    out
}

fn apply_lww_write(
    current: Option<&StoredObject>,
    w: Write<'_>,
) -> Result<WriteOutcome, CoreError> {
    let current = match current {
        None => None,
        Some(StoredObject::Lww(r)) => Some(r),
        Some(other) => {
            return Err(CoreError::KindMismatch {
                actual: ValueKind::Lww.name().into(),
                found: other.kind_name().into(),
            });
        }
    };
    if let Some(r) = current.filter(|r| r.has_seen(&w.request_id)) {
        return Ok(WriteOutcome::Duplicate {
            reply: reply_for(&StoredObject::Lww(r.clone()), &w.request_id),
        });
    }
    // A write must beat what this replica holds, even if its clock lags the stored value, and
    // what the client read, even if this replica has not received it yet.
    let floor = current.map_or(0, |r| r.version.timestamp.saturating_add(1));
    let timestamp = after(w.timestamp, w.context).max(floor);
    let written = RecentWrite {
        timestamp,
        // LWW mints no dots; the actor and timestamp name the write as uniquely.
        dot: crate::dvv::Dot {
            actor: w.actor,
            counter: timestamp,
        },
        request_id: w.request_id,
    };
    let register = LwwRegister {
        actor: w.actor,
        version: Version {
            timestamp,
            data: w.data,
            request_id: w.request_id,
        },
        recent: merge_recent(&[written], current.map_or(&[][..], |r| &r.recent)),
    };
    let object = StoredObject::Lww(register);
    Ok(WriteOutcome::Applied {
        reply: reply_for(&object, &w.request_id),
        object,
        siblings: 1,
    })
}

/// What a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadView {
    /// Live values (tombstones hidden), in a deterministic order.
    pub values: Vec<Vec<u8>>,
    /// Covers everything the replica holds, tombstones included, so a write with it
    /// supersedes deletes too.
    pub context: CausalContext,
    /// Versions stored, tombstones included.
    pub stored_versions: usize,
}

impl ReadView {
    pub fn found(&self) -> bool {
        !self.values.is_empty()
    }
}

pub fn read(current: Option<&StoredObject>) -> ReadView {
    match current {
        None => ReadView {
            values: Vec::new(),
            context: CausalContext::empty(),
            stored_versions: 0,
        },
        Some(o @ StoredObject::Siblings(s)) => ReadView {
            values: live_versions(s)
                .into_iter()
                .filter_map(|v| v.data.clone())
                .collect(),
            context: o.context(),
            stored_versions: s.dvv.len(),
        },
        Some(o @ StoredObject::Lww(r)) => ReadView {
            values: r.version.data.clone().into_iter().collect(),
            context: o.context(),
            stored_versions: 1,
        },
        // CRDT values are read with `crdt::Value`, not as bytes; a byte read sees none.
        Some(o @ StoredObject::Crdt(_)) => ReadView {
            values: Vec::new(),
            context: o.context(),
            stored_versions: 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: ActorId = ActorId([1; 16]);

    struct Replica {
        kind: ValueKind,
        obj: Option<StoredObject>,
        next_id: u8,
        clock: u64,
    }

    impl Replica {
        fn new(kind: ValueKind) -> Self {
            Self {
                kind,
                obj: None,
                next_id: 0,
                clock: 1000,
            }
        }

        fn write_with_id(
            &mut self,
            data: Option<&[u8]>,
            ctx: Option<&CausalContext>,
            id: RequestId,
            limit: usize,
        ) -> Result<CausalContext, CoreError> {
            Ok(self.write_reply(data, ctx, id, limit)?.context)
        }

        fn write_reply(
            &mut self,
            data: Option<&[u8]>,
            ctx: Option<&CausalContext>,
            id: RequestId,
            limit: usize,
        ) -> Result<WriteReply, CoreError> {
            self.clock += 1;
            let out = apply_write(
                self.kind,
                self.obj.as_ref(),
                Write {
                    actor: NODE,
                    context: ctx,
                    data: data.map(<[u8]>::to_vec),
                    request_id: id,
                    timestamp: self.clock,
                    max_siblings: limit,
                },
            )?;
            Ok(match out {
                WriteOutcome::Applied { object, reply, .. } => {
                    self.obj = Some(object);
                    reply
                }
                WriteOutcome::Duplicate { reply } => reply,
            })
        }

        fn write(&mut self, data: Option<&[u8]>, ctx: Option<&CausalContext>) -> CausalContext {
            self.next_id += 1;
            let id = [self.next_id; 16];
            self.write_with_id(data, ctx, id, 100).unwrap()
        }

        fn values(&self) -> Vec<Vec<u8>> {
            let mut v = read(self.obj.as_ref()).values;
            v.sort();
            v
        }
    }

    #[test]
    fn puts_without_context_make_siblings_and_a_put_with_context_resolves() {
        let mut r = Replica::new(ValueKind::Siblings);
        r.write(Some(b"a"), None);
        r.write(Some(b"b"), None);
        assert_eq!(r.values(), vec![b"a".to_vec(), b"b".to_vec()]);
        let ctx = read(r.obj.as_ref()).context;
        r.write(Some(b"c"), Some(&ctx));
        assert_eq!(r.values(), vec![b"c".to_vec()]);
    }

    #[test]
    fn retry_with_same_request_id_mints_nothing() {
        let mut r = Replica::new(ValueKind::Siblings);
        let c1 = r.write_with_id(Some(b"a"), None, [9; 16], 100).unwrap();
        let c2 = r.write_with_id(Some(b"a"), None, [9; 16], 100).unwrap();
        assert_eq!(c1, c2);
        assert_eq!(r.values().len(), 1);
        // Even after a later write superseded it, the retry is still recognised.
        r.write(Some(b"b"), Some(&c1));
        r.write_with_id(Some(b"a"), None, [9; 16], 100).unwrap();
        assert_eq!(r.values(), vec![b"b".to_vec()]);
    }

    #[test]
    fn delete_with_context_hides_the_key_and_keeps_the_clock() {
        let mut r = Replica::new(ValueKind::Siblings);
        let ctx = r.write(Some(b"a"), None);
        r.write(None, Some(&ctx));
        let view = read(r.obj.as_ref());
        assert!(!view.found());
        assert_eq!(view.stored_versions, 1);
        assert_eq!(view.context.entries()[0].1, ctx.entries()[0].1 + 1);
    }

    #[test]
    fn delete_that_missed_a_concurrent_value_keeps_it() {
        let mut r = Replica::new(ValueKind::Siblings);
        let ctx = r.write(Some(b"a"), None);
        r.write(Some(b"concurrent"), None);
        r.write(None, Some(&ctx));
        assert_eq!(r.values(), vec![b"concurrent".to_vec()]);
    }

    #[test]
    fn delete_without_context_removes_what_the_replica_holds() {
        let mut r = Replica::new(ValueKind::Siblings);
        r.write(Some(b"a"), None);
        r.write(Some(b"b"), None);
        r.write(None, None);
        assert!(r.values().is_empty());
        // A put with the context of that delete's result replaces the tombstone.
        let ctx = read(r.obj.as_ref()).context;
        r.write(Some(b"c"), Some(&ctx));
        assert_eq!(read(r.obj.as_ref()).stored_versions, 1);
    }

    #[test]
    fn sibling_guard_rejects_growth_past_the_limit_but_allows_reduction() {
        let mut r = Replica::new(ValueKind::Siblings);
        for i in 0..5u8 {
            r.write_with_id(Some(&[i]), None, [i + 100; 16], 5).unwrap();
        }
        let err = r.write_with_id(Some(b"x"), None, [200; 16], 5).unwrap_err();
        assert_eq!(
            err,
            CoreError::TooManySiblings {
                count: 5,
                next: 6,
                limit: 5
            }
        );
        assert!(err.to_string().contains("limit is 5"), "{err}");
        // A context that covers the siblings resolves them, even at the limit.
        let ctx = read(r.obj.as_ref()).context;
        r.write_with_id(Some(b"y"), Some(&ctx), [201; 16], 5)
            .unwrap();
        assert_eq!(r.values(), vec![b"y".to_vec()]);
    }

    #[test]
    fn siblings_may_not_grow_past_their_byte_limit_but_may_always_be_resolved() {
        let mut r = Replica::new(ValueKind::Siblings);
        let third = vec![7u8; MAX_SIBLINGS_BYTES / 3 + 1];
        r.write_with_id(Some(&third), None, [1; 16], 100).unwrap();
        r.write_with_id(Some(&third), None, [2; 16], 100).unwrap();
        let err = r
            .write_with_id(Some(&third), None, [3; 16], 100)
            .unwrap_err();
        assert_eq!(
            err,
            CoreError::SiblingsTooLarge {
                bytes: 3 * third.len(),
                limit: MAX_SIBLINGS_BYTES
            }
        );
        assert!(err.to_string().contains("8388608 bytes"), "{err}");
        assert_eq!(r.values().len(), 2, "the refused write stored nothing");
        // A write with the read's context replaces both, however large it is.
        let ctx = read(r.obj.as_ref()).context;
        r.write_with_id(Some(&third), Some(&ctx), [4; 16], 100)
            .unwrap();
        assert_eq!(r.values().len(), 1);
    }

    #[test]
    fn lww_keeps_only_the_latest_and_orders_after_the_stored_value() {
        let mut r = Replica::new(ValueKind::Lww);
        r.write(Some(b"a"), None);
        r.write(Some(b"b"), None);
        assert_eq!(r.values(), vec![b"b".to_vec()]);
        r.clock = 0; // wall clock went backwards
        r.write(Some(b"c"), None);
        assert_eq!(r.values(), vec![b"c".to_vec()]);
        r.write(None, None);
        assert!(r.values().is_empty());
    }

    #[test]
    fn kind_mismatch_is_an_error() {
        let mut r = Replica::new(ValueKind::Lww);
        r.write(Some(b"a"), None);
        r.kind = ValueKind::Siblings;
        assert!(matches!(
            r.write_with_id(Some(b"b"), None, [50; 16], 100),
            Err(CoreError::KindMismatch { .. })
        ));
    }

    fn apply(r: &mut Replica, data: &[u8], ctx: Option<&CausalContext>, id: u8) -> WriteReply {
        r.write_reply(Some(data), ctx, [id; 16], 100).unwrap()
    }

    /// C1 reads {R1:1}; C2 blind-writes b (R1:2); C1 puts c with {R1:1}. The reply's context
    /// covers b, so it must come with b: otherwise C1's next put would silently drop it.
    #[test]
    fn a_put_whose_context_covers_an_unseen_sibling_returns_it() {
        let mut r = Replica::new(ValueKind::Siblings);
        let first = apply(&mut r, b"a", None, 1);
        assert!(
            first.siblings.is_empty(),
            "only the writer's own value is live"
        );
        let c1_read = read(r.obj.as_ref()).context;
        apply(&mut r, b"b", None, 2);
        let reply = apply(&mut r, b"c", Some(&c1_read), 3);
        let mut siblings = reply.siblings.clone();
        siblings.sort();
        assert_eq!(siblings, vec![b"b".to_vec(), b"c".to_vec()]);
        // Writing back with that context now supersedes b knowingly.
        let resolved = apply(&mut r, b"b+c", Some(&reply.context), 4);
        assert!(resolved.siblings.is_empty());
        assert_eq!(r.values(), vec![b"b+c".to_vec()]);
    }

    #[test]
    fn a_retried_write_that_was_superseded_returns_what_is_live() {
        let mut r = Replica::new(ValueKind::Siblings);
        apply(&mut r, b"a", None, 1);
        apply(&mut r, b"b", None, 2);
        let again = apply(&mut r, b"a", None, 1);
        let mut siblings = again.siblings;
        siblings.sort();
        assert_eq!(siblings, vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn a_write_minted_twice_for_one_request_reads_as_one_value() {
        // The first replica minted, failed to answer, and the retry minted at a second one
        // before the copies met: both versions survive the merge but read as one.
        let mut r1 = Replica::new(ValueKind::Siblings);
        apply(&mut r1, b"x", None, 7);
        let mut r2 = Replica::new(ValueKind::Siblings);
        r2.clock = 5000;
        let out = apply_write(
            ValueKind::Siblings,
            None,
            Write {
                actor: ActorId([2; 16]),
                context: None,
                data: Some(b"x".to_vec()),
                request_id: [7; 16],
                timestamp: 5000,
                max_siblings: 100,
            },
        )
        .unwrap();
        let WriteOutcome::Applied { object, .. } = out else {
            panic!("fresh replica applies")
        };
        r2.obj = Some(object);
        let merged = r1
            .obj
            .as_ref()
            .unwrap()
            .merge(r2.obj.as_ref().unwrap())
            .unwrap();
        assert_eq!(merged.sibling_count(), 2);
        assert_eq!(read(Some(&merged)).values, vec![b"x".to_vec()]);
        // And the merged record recognises the request at either replica.
        r1.obj = Some(merged);
        let again = apply(&mut r1, b"x", None, 7);
        assert!(again.siblings.is_empty());
        assert_eq!(r1.obj.as_ref().unwrap().sibling_count(), 2);
    }

    #[test]
    fn a_retry_minted_again_elsewhere_stays_superseded_when_the_first_copy_returns() {
        // Replica 1 minted request 7 ("x") and went down before anyone got it; the client's
        // retry minted "x" again on replica 2, and a later write with a context from
        // replica 2 superseded it there. Replica 1's copy coming back is the same write: it
        // must not come back as a sibling of the write that superseded it.
        let mut r1 = Replica::new(ValueKind::Siblings);
        apply(&mut r1, b"x", None, 7);
        let mut r2 = Replica {
            kind: ValueKind::Siblings,
            obj: None,
            next_id: 0,
            clock: 5000,
        };
        let out = apply_write(
            ValueKind::Siblings,
            None,
            Write {
                actor: ActorId([2; 16]),
                context: None,
                data: Some(b"x".to_vec()),
                request_id: [7; 16],
                timestamp: 5000,
                max_siblings: 100,
            },
        )
        .unwrap();
        let WriteOutcome::Applied { object, .. } = out else {
            panic!("fresh replica applies")
        };
        r2.obj = Some(object);
        let ctx = read(r2.obj.as_ref()).context;
        let out = apply_write(
            ValueKind::Siblings,
            r2.obj.as_ref(),
            Write {
                actor: ActorId([2; 16]),
                context: Some(&ctx),
                data: Some(b"y".to_vec()),
                request_id: [8; 16],
                timestamp: 5001,
                max_siblings: 100,
            },
        )
        .unwrap();
        let WriteOutcome::Applied { object, .. } = out else {
            panic!("applies")
        };
        let merged = r1.obj.as_ref().unwrap().merge(&object).unwrap();
        assert_eq!(read(Some(&merged)).values, vec![b"y".to_vec()]);
        // The context covers the hidden copy, so the next write drops it for good.
        r1.obj = Some(merged);
        let ctx = read(r1.obj.as_ref()).context;
        r1.write(Some(b"z"), Some(&ctx));
        assert_eq!(r1.obj.as_ref().unwrap().sibling_count(), 1);
    }

    #[test]
    fn a_late_copy_of_an_lww_request_superseded_since_mints_nothing() {
        // The network delivers a client's put twice; between the two copies a write that
        // had read the first one replaced it. The second copy must be acknowledged as a
        // duplicate, not minted again with a later timestamp (which would bring it back).
        let mut r = Replica::new(ValueKind::Lww);
        let first = apply(&mut r, b"a", None, 1);
        apply(&mut r, b"b", Some(&first.context), 2);
        apply(&mut r, b"a", None, 1);
        assert_eq!(r.values(), vec![b"b".to_vec()]);
    }

    #[test]
    fn lww_write_after_a_read_wins_even_if_the_replica_clock_lags() {
        // The value was read from a replica whose clock is far ahead; the write lands on a
        // replica that has not received it and whose clock lags.
        let mut ahead = Replica::new(ValueKind::Lww);
        ahead.clock = 1_000_000;
        apply(&mut ahead, b"old", None, 1);
        let ctx = read(ahead.obj.as_ref()).context;
        assert!(ctx.hlc() > 1_000_000);
        let mut behind = Replica::new(ValueKind::Lww);
        apply(&mut behind, b"new", Some(&ctx), 2);
        let merged = ahead
            .obj
            .as_ref()
            .unwrap()
            .merge(behind.obj.as_ref().unwrap())
            .unwrap();
        assert_eq!(read(Some(&merged)).values, vec![b"new".to_vec()]);
    }

    #[test]
    fn an_exhausted_counter_is_an_error_not_a_wrap() {
        let mut r = Replica::new(ValueKind::Siblings);
        apply(&mut r, b"a", None, 1);
        // Only a context the server sealed reaches here; one at u64::MAX cannot be minted past.
        let huge = CausalContext::decode(&{
            let mut b = vec![2, 1];
            b.extend_from_slice(NODE.as_bytes());
            b.extend_from_slice(&[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0,
            ]);
            b
        })
        .unwrap();
        let err = r
            .write_with_id(Some(b"b"), Some(&huge), [9; 16], 100)
            .unwrap_err();
        assert!(matches!(err, CoreError::ClockOverflow { .. }), "{err}");
        assert_eq!(r.values(), vec![b"a".to_vec()], "nothing changed");
    }
}
