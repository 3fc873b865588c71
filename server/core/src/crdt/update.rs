//! The rule a replica applies to a client's update of a CRDT key, and to a fetch.
//!
//! As for puts, only the replica that holds the key's state applies an update, under the
//! key's lock; it returns the new state to persist and the delta to send everywhere else.

use super::{Crdt, CrdtKind, DotContext, Op, Value};
use crate::actor::ActorId;
use crate::context::CausalContext;
use crate::error::CoreError;
use crate::limits::MAX_CRDT_BYTES;
use crate::object::{CrdtObject, RecentWrite, StoredObject, merge_recent};
use crate::version::RequestId;

#[derive(Debug, Clone)]
pub struct Update<'a> {
    /// This replica's actor id.
    pub actor: ActorId,
    pub ops: &'a [Op],
    /// The context of the client's fetch, if it sent one: removes and assignments then
    /// replace only what that fetch saw.
    pub context: Option<&'a CausalContext>,
    pub request_id: RequestId,
    /// A fresh hybrid logical timestamp from this node.
    pub timestamp: u64,
}

/// What a fetch, or an updater, is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub value: Value,
    /// What a later remove needs to take away exactly what this reply showed.
    pub context: CausalContext,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Persist `object` here, send `delta` to the other replicas, then reply.
    Applied {
        object: Box<StoredObject>,
        delta: Box<StoredObject>,
        reply: Fetched,
    },
    /// The request id was applied before: acknowledge again, change nothing.
    Duplicate { reply: Fetched },
}

fn state_of(kind: CrdtKind, current: Option<&StoredObject>) -> Result<CrdtObject, CoreError> {
    match current {
        None => Ok(CrdtObject {
            state: Crdt::new(kind),
            recent: Vec::new(),
        }),
        Some(StoredObject::Crdt(c)) if c.state.kind() == kind => Ok(c.clone()),
        Some(other) => Err(CoreError::KindMismatch {
            actual: kind.name().into(),
            found: other.kind_name().into(),
        }),
    }
}

/// The value and context a fetch returns; an absent key reads as the type's empty value.
pub fn fetch(kind: CrdtKind, current: Option<&StoredObject>) -> Result<Fetched, CoreError> {
    Ok(reply(&state_of(kind, current)?))
}

fn reply(c: &CrdtObject) -> Fetched {
    Fetched {
        value: c.state.value(),
        context: c.clock().with_hlc(c.max_timestamp()),
    }
}

/// Applies an update's operations, all or none.
///
/// - A request id this key has seen is acknowledged without applying anything again.
/// - An operation that does not fit the type is refused, naming both.
/// - An update that would grow the state past [`MAX_CRDT_BYTES`] is refused.
/// - The update's timestamp is later than everything the key and the client's context
///   saw, so a register assigned after a read wins over what the read showed.
pub fn apply_update(
    kind: CrdtKind,
    current: Option<&StoredObject>,
    u: Update<'_>,
) -> Result<UpdateOutcome, CoreError> {
    let state = state_of(kind, current)?;
    if state.recent.iter().any(|r| r.request_id == u.request_id) {
        return Ok(UpdateOutcome::Duplicate {
            reply: reply(&state),
        });
    }
    let floor = state.max_timestamp().saturating_add(1);
    let timestamp = u
        .timestamp
        .max(floor)
        .max(u.context.map_or(0, |c| c.hlc().saturating_add(1)));
    let observed = u
        .context
        .map(|c| DotContext::from_parts(c.entries().iter().copied().collect(), Default::default()));
    let (next, delta) = state
        .state
        .apply(u.ops, u.actor, timestamp, observed.as_ref())?;
    let first_dot = next.context().vector().get(&u.actor).map_or(0, |&n| n);
    let written = RecentWrite {
        timestamp,
        dot: crate::dvv::Dot {
            actor: u.actor,
            counter: first_dot,
        },
        request_id: u.request_id,
    };
    let object = CrdtObject {
        state: next,
        recent: merge_recent(&[written], &state.recent),
    };
    let size = object.encoded_len();
    if size > MAX_CRDT_BYTES && size > state.encoded_len() {
        return Err(CoreError::CrdtTooLarge {
            kind: kind.name().into(),
            size,
            limit: MAX_CRDT_BYTES,
        });
    }
    let delta = StoredObject::Crdt(CrdtObject {
        state: delta,
        recent: vec![written],
    });
    Ok(UpdateOutcome::Applied {
        reply: reply(&object),
        object: Box::new(StoredObject::Crdt(object)),
        delta: Box::new(delta),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_bytes::ByteBuf;

    const A: ActorId = ActorId([1; 16]);
    const B: ActorId = ActorId([2; 16]);

    fn update<'a>(
        actor: ActorId,
        ops: &'a [Op],
        id: u8,
        ctx: Option<&'a CausalContext>,
    ) -> Update<'a> {
        Update {
            actor,
            ops,
            context: ctx,
            request_id: [id; 16],
            timestamp: 100,
        }
    }

    fn applied(o: UpdateOutcome) -> (StoredObject, StoredObject, Fetched) {
        match o {
            UpdateOutcome::Applied {
                object,
                delta,
                reply,
            } => (*object, *delta, reply),
            UpdateOutcome::Duplicate { .. } => panic!("expected a new update"),
        }
    }

    #[test]
    fn a_retried_increment_counts_once_even_at_another_replica() {
        let ops = [Op::Increment(5)];
        let (at_a, delta, reply) =
            applied(apply_update(CrdtKind::Counter, None, update(A, &ops, 7, None)).unwrap());
        assert_eq!(reply.value, Value::Counter(5));
        // The same request again at A, and at B once B has the delta.
        let again = apply_update(CrdtKind::Counter, Some(&at_a), update(A, &ops, 7, None));
        assert!(matches!(again, Ok(UpdateOutcome::Duplicate { .. })));
        let at_b = StoredObject::Crdt(match &delta {
            StoredObject::Crdt(d) => d.clone(),
            _ => unreachable!(),
        });
        let again = apply_update(CrdtKind::Counter, Some(&at_b), update(B, &ops, 7, None));
        match again.unwrap() {
            UpdateOutcome::Duplicate { reply } => assert_eq!(reply.value, Value::Counter(5)),
            other => panic!("counted twice: {other:?}"),
        }
    }

    #[test]
    fn the_delta_joined_anywhere_equals_the_update_and_stays_small() {
        let big: Vec<ByteBuf> = (0..1_000)
            .map(|i| ByteBuf::from(format!("item-{i}").into_bytes()))
            .collect();
        let (set, _, _) = applied(
            apply_update(CrdtKind::Set, None, update(A, &[Op::Add(big)], 1, None)).unwrap(),
        );
        let one = [Op::Add(vec![ByteBuf::from(b"new".to_vec())])];
        let (after, delta, _) =
            applied(apply_update(CrdtKind::Set, Some(&set), update(A, &one, 2, None)).unwrap());
        assert_eq!(set.merge(&delta).unwrap(), after);
        assert!(delta.encode().len() < 200, "{} bytes", delta.encode().len());
    }

    #[test]
    fn a_remove_with_a_fetch_context_spares_later_adds() {
        let x = || vec![ByteBuf::from(b"x".to_vec())];
        let (s1, _, _) = applied(
            apply_update(CrdtKind::Set, None, update(A, &[Op::Add(x())], 1, None)).unwrap(),
        );
        let seen = fetch(CrdtKind::Set, Some(&s1)).unwrap();
        let (s2, _, _) = applied(
            apply_update(
                CrdtKind::Set,
                Some(&s1),
                update(B, &[Op::Add(x())], 2, None),
            )
            .unwrap(),
        );
        let (s3, _, reply) = applied(
            apply_update(
                CrdtKind::Set,
                Some(&s2),
                update(A, &[Op::Remove(x())], 3, Some(&seen.context)),
            )
            .unwrap(),
        );
        assert_eq!(reply.value, Value::Set(x().into_iter().collect()));
        assert_eq!(fetch(CrdtKind::Set, Some(&s3)).unwrap().value, reply.value);
    }

    #[test]
    fn a_register_assigned_after_a_fetch_wins_over_what_it_saw() {
        let assign = |v: &str| [Op::Assign(ByteBuf::from(v.as_bytes().to_vec()))];
        let ops = assign("old");
        let mut u = update(A, &ops, 1, None);
        u.timestamp = 1_000;
        let (s1, _, seen) = applied(apply_update(CrdtKind::Register, None, u).unwrap());
        // B's clock lags far behind, but it saw the fetch's context.
        let ops = assign("new");
        let mut u = update(B, &ops, 2, Some(&seen.context));
        u.timestamp = 5;
        let (_, _, reply) = applied(apply_update(CrdtKind::Register, Some(&s1), u).unwrap());
        assert_eq!(
            reply.value,
            Value::Register(Some(ByteBuf::from(b"new".to_vec())))
        );
    }

    #[test]
    fn a_state_may_not_grow_past_the_limit_but_may_shrink_from_beyond_it() {
        // Each replica adds 5 MiB in one update; joined, the set holds 10 MiB.
        let half = |tag: u8| -> Vec<ByteBuf> {
            (0..640u32)
                .map(|i| {
                    let mut e = vec![tag; 8 * 1024];
                    e[..4].copy_from_slice(&i.to_be_bytes());
                    ByteBuf::from(e)
                })
                .collect()
        };
        let (a, b) = (half(b'a'), half(b'b'));
        let (at_a, _, _) = applied(
            apply_update(
                CrdtKind::Set,
                None,
                update(A, &[Op::Add(a.clone())], 1, None),
            )
            .unwrap(),
        );
        let (at_b, _, _) = applied(
            apply_update(
                CrdtKind::Set,
                None,
                update(B, &[Op::Add(b.clone())], 2, None),
            )
            .unwrap(),
        );
        // Both at once from one client is refused, naming the size and the limit.
        let both = [Op::Add(a.clone()), Op::Add(b)];
        let err = apply_update(CrdtKind::Set, None, update(A, &both, 3, None)).unwrap_err();
        assert!(matches!(
            err,
            CoreError::CrdtTooLarge {
                limit: MAX_CRDT_BYTES,
                ..
            }
        ));
        assert!(err.to_string().contains("at most 8388608 bytes"), "{err}");
        // Concurrent adds may still join past it; from there a remove is taken, an add is not.
        let joined = at_a.merge(&at_b).unwrap();
        let more = [Op::Add(vec![ByteBuf::from(b"more".to_vec())])];
        let err = apply_update(CrdtKind::Set, Some(&joined), update(A, &more, 4, None));
        assert!(matches!(err, Err(CoreError::CrdtTooLarge { .. })));
        let fewer = [Op::Remove(a[..10].to_vec())];
        let (smaller, _, _) = applied(
            apply_update(CrdtKind::Set, Some(&joined), update(A, &fewer, 5, None)).unwrap(),
        );
        let StoredObject::Crdt(c) = &smaller else {
            unreachable!()
        };
        assert_eq!(c.encoded_len(), smaller.encode().len());
    }

    #[test]
    fn updates_of_the_wrong_kind_are_refused() {
        let (c, _, _) = applied(
            apply_update(
                CrdtKind::Counter,
                None,
                update(A, &[Op::Increment(1)], 1, None),
            )
            .unwrap(),
        );
        let err = apply_update(CrdtKind::Set, Some(&c), update(A, &[Op::Enable], 2, None));
        assert!(matches!(err, Err(CoreError::KindMismatch { .. })));
        let err = apply_update(
            CrdtKind::Counter,
            Some(&c),
            update(A, &[Op::Enable], 2, None),
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "operation `enable` does not apply to a counter"
        );
    }
}
