//! The rules a replica applies to a client write or read of one key.
//!
//! Pure functions: the node reads the key's stored object, calls these, and persists the
//! result before replying. Serialising writes to one key (so two writes never read the same
//! old object) is the caller's job; minting a dot is only ever done here, by the replica that
//! holds the key's state.

use crate::actor::ActorId;
use crate::context::CausalContext;
use crate::error::CoreError;
use crate::keyspace::ValueKind;
use crate::lww::LwwRegister;
use crate::object::{RECENT_REQUESTS, SiblingsState, StoredObject};
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Persist `object`, then reply with `context`.
    Applied {
        object: StoredObject,
        context: CausalContext,
        /// Versions the key now holds (tombstones included), for the sibling metrics.
        siblings: usize,
    },
    /// The request id was seen before: acknowledge again, store nothing, mint nothing.
    Duplicate { context: CausalContext },
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
pub fn apply_write(
    kind: ValueKind,
    current: Option<&StoredObject>,
    w: Write<'_>,
) -> Result<WriteOutcome, CoreError> {
    match kind {
        ValueKind::Siblings => apply_siblings_write(current, w),
        ValueKind::Lww => apply_lww_write(current, w),
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
    let seen_before = state.recent.iter().any(|(id, _)| *id == w.request_id)
        || state.dvv.values().any(|v| v.request_id == w.request_id);
    if seen_before {
        return Ok(WriteOutcome::Duplicate {
            context: state.dvv.join(),
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
    let version = Version {
        data: w.data,
        request_id: w.request_id,
        timestamp: w.timestamp,
    };
    let (dvv, dot) = state.dvv.update(context, w.actor, version);
    let before = state.dvv.len();
    let after = dvv.len();
    if after > w.max_siblings && after > before {
        return Err(CoreError::TooManySiblings {
            count: before,
            next: after,
            limit: w.max_siblings,
        });
    }
    let mut recent = Vec::with_capacity(RECENT_REQUESTS);
    recent.push((w.request_id, dot));
    recent.extend(state.recent.iter().take(RECENT_REQUESTS - 1).copied());
    let context = dvv.join();
    Ok(WriteOutcome::Applied {
        object: StoredObject::Siblings(SiblingsState { dvv, recent }),
        context,
        siblings: after,
    })
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
    if current.is_some_and(|r| r.version.request_id == w.request_id) {
        return Ok(WriteOutcome::Duplicate {
            context: CausalContext::empty(),
        });
    }
    // A write must beat what this replica holds, even if its clock lags the stored value.
    let floor = current.map_or(0, |r| r.version.timestamp.saturating_add(1));
    let register = LwwRegister {
        actor: w.actor,
        version: Version {
            data: w.data,
            request_id: w.request_id,
            timestamp: w.timestamp.max(floor),
        },
    };
    Ok(WriteOutcome::Applied {
        object: StoredObject::Lww(register),
        context: CausalContext::empty(),
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
        Some(StoredObject::Siblings(s)) => ReadView {
            values: s.dvv.values().filter_map(|v| v.data.clone()).collect(),
            context: s.dvv.join(),
            stored_versions: s.dvv.len(),
        },
        Some(StoredObject::Lww(r)) => ReadView {
            values: r.version.data.clone().into_iter().collect(),
            context: CausalContext::empty(),
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
                WriteOutcome::Applied {
                    object, context, ..
                } => {
                    self.obj = Some(object);
                    context
                }
                WriteOutcome::Duplicate { context } => context,
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
        assert_eq!(view.context.entries()[0].1, 2);
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
}
