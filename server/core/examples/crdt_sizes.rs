//! Sizes of CRDT state and deltas, as the node stores and ships them (`StoredObject`'s
//! encoding). `cargo run --release -p meridian-core --example crdt_sizes`
//!
//! - a set of 10,000 elements after 1,000 removes: stored bytes ÷ the elements' own bytes,
//!   and the same set had the 9,000 survivors been added alone (removes leave nothing);
//! - the delta one add to a 100,000-element set ships, against the whole set.

use meridian_core::ActorId;
use meridian_core::crdt::update::{Update, UpdateOutcome, apply_update};
use meridian_core::crdt::{CrdtKind, Op};
use meridian_core::object::StoredObject;
use serde_bytes::ByteBuf;

fn update(current: Option<&StoredObject>, ops: &[Op], id: u8) -> (StoredObject, StoredObject) {
    let u = Update {
        actor: ActorId([7; 16]),
        ops,
        context: None,
        request_id: [id; 16],
        timestamp: u64::from(id) + 1,
    };
    match apply_update(CrdtKind::Set, current, u) {
        Ok(UpdateOutcome::Applied { object, delta, .. }) => (*object, *delta),
        other => panic!("update failed: {other:?}"),
    }
}

fn elements(range: std::ops::Range<u32>) -> Vec<ByteBuf> {
    range
        .map(|i| ByteBuf::from(format!("item-{i:06}").into_bytes()))
        .collect()
}

fn main() {
    let all = elements(0..10_000);
    let own: usize = all[1_000..].iter().map(|e| e.len()).sum();
    let (set, _) = update(None, &[Op::Add(all.clone())], 1);
    let (after, _) = update(Some(&set), &[Op::Remove(all[..1_000].to_vec())], 2);
    let (alone, _) = update(None, &[Op::Add(all[1_000..].to_vec())], 1);
    let stored = after.encode().len();
    println!(
        "10,000-element set after 1,000 removes: {stored} bytes stored for {own} bytes of \
         elements ({:.2}×); the 9,000 added alone: {} bytes",
        stored as f64 / own as f64,
        alone.encode().len()
    );

    let mut big: Option<StoredObject> = None;
    for (i, chunk) in elements(0..100_000).chunks(10_000).enumerate() {
        big = Some(update(big.as_ref(), &[Op::Add(chunk.to_vec())], i as u8 + 1).0);
    }
    let big = big.expect("built");
    let one = [Op::Add(vec![ByteBuf::from(b"one more".to_vec())])];
    let (_, delta) = update(Some(&big), &one, 100);
    println!(
        "one add to a 100,000-element set: a {}-byte delta; the whole set is {} bytes",
        delta.encode().len(),
        big.encode().len()
    );
}
