//! One replica's trees: for every partition, the segment hashes of each keyspace it holds,
//! kept current by the store every write goes through ([`Tracked`]).
//!
//! Each partition has its own lock, held across a write's store call and its tree update, so
//! a rebuild that scans a partition under that lock never sees a write the tree missed or
//! counts one twice. A partition whose tree is not built yet (after a start that could not
//! trust a saved tree) is *unready*: writes leave its tree alone, and exchanges leave it out
//! until the rebuild has scanned it.

use super::{Location, PARTITION_LEVEL, PartitionSet, SEGMENTS, entry_hash, locate};
use super::{partitions_under, segments_under};
use crate::partition::PARTITIONS;
use crate::store::Store;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Segment hashes of one keyspace in one partition, with their XOR (the partition's root,
/// asked for by every exchange, kept rather than folded each time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    pub root: u64,
    pub leaves: [u64; SEGMENTS],
}

/// The trees of one partition, every keyspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionTrees {
    pub ready: bool,
    pub keyspaces: BTreeMap<u64, Segments>,
}

impl PartitionTrees {
    fn xor(&mut self, loc: &Location, delta: u64) {
        if !self.ready || delta == 0 {
            return;
        }
        let segs = self.keyspaces.entry(loc.keyspace).or_insert(Segments {
            root: 0,
            leaves: [0; SEGMENTS],
        });
        segs.leaves[usize::from(loc.segment)] ^= delta;
        segs.root ^= delta;
        if segs.root == 0 && segs.leaves.iter().all(|s| *s == 0) {
            self.keyspaces.remove(&loc.keyspace);
        }
    }

    /// XOR of the given segments of one keyspace.
    fn hash(&self, keyspace: u64, segments: std::ops::Range<usize>) -> u64 {
        self.keyspaces.get(&keyspace).map_or(0, |s| {
            if segments == (0..SEGMENTS) {
                s.root
            } else {
                s.leaves[segments].iter().fold(0, |a, b| a ^ b)
            }
        })
    }
}

#[derive(Debug)]
pub struct Forest {
    partitions: Vec<Mutex<PartitionTrees>>,
}

impl Forest {
    /// Every partition empty and `ready` (a new replica), or all waiting for a rebuild.
    pub fn new(ready: bool) -> Self {
        Self {
            partitions: (0..PARTITIONS)
                .map(|_| {
                    Mutex::new(PartitionTrees {
                        ready,
                        keyspaces: BTreeMap::new(),
                    })
                })
                .collect(),
        }
    }

    /// The partition's trees, locked. A poisoned lock only means a writer panicked between
    /// its store call and its XOR: the tree may be off, which the next rebuild or exchange
    /// corrects, so the trees are used anyway.
    pub fn lock(&self, partition: u16) -> MutexGuard<'_, PartitionTrees> {
        let slot = &self.partitions[usize::from(partition) % self.partitions.len()];
        slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a key's change from `old` to `new` stored bytes.
    pub fn record(&self, storage_key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) {
        let Some(loc) = locate(storage_key) else {
            return;
        };
        let mut trees = self.lock(loc.partition);
        trees.xor(&loc, delta(storage_key, old, new));
    }

    /// Replaces a partition's trees with ones built from `scan`, which runs under the
    /// partition's lock (so writes wait rather than slip between scan and swap). Returns
    /// whether ready trees disagreed with the scan: an update went missing, or memory was
    /// corrupted.
    pub fn rebuild<E>(
        &self,
        partition: u16,
        scan: impl FnOnce() -> Result<Vec<(Vec<u8>, Vec<u8>)>, E>,
    ) -> Result<bool, E> {
        let mut trees = self.lock(partition);
        let mut fresh = PartitionTrees {
            ready: true,
            keyspaces: BTreeMap::new(),
        };
        for (skey, bytes) in scan()? {
            if let Some(loc) = locate(&skey).filter(|l| l.partition == partition) {
                fresh.xor(&loc, entry_hash(&skey, &bytes));
            }
        }
        let drifted = trees.ready && trees.keyspaces != fresh.keyspaces;
        *trees = fresh;
        Ok(drifted)
    }

    /// Partitions in `of` whose trees are not built yet.
    pub fn unready(&self, of: &PartitionSet) -> PartitionSet {
        of.iter().filter(|p| !self.lock(*p).ready).collect()
    }

    /// The hash of one tree node of `keyspace`, restricted to the partitions in `filter`;
    /// `None` for a node inside a partition outside it (such nodes are left out of replies).
    pub fn hash(
        &self,
        keyspace: u64,
        level: usize,
        node: u32,
        filter: &PartitionSet,
    ) -> Option<u64> {
        if level >= PARTITION_LEVEL {
            let p = partitions_under(level, node).start as u16;
            if !filter.contains(p) {
                return None;
            }
            return Some(self.lock(p).hash(keyspace, segments_under(level, node)));
        }
        let mut h = 0;
        for p in partitions_under(level, node) {
            let p = p as u16;
            if filter.contains(p) {
                h ^= self.lock(p).hash(keyspace, 0..SEGMENTS);
            }
        }
        Some(h)
    }
}

fn delta(storage_key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) -> u64 {
    let h = |b: Option<&[u8]>| b.map_or(0, |b| entry_hash(storage_key, b));
    h(old) ^ h(new)
}

/// A store whose writes keep a [`Forest`] current: the write and its tree update happen
/// under the partition's lock.
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    pub inner: S,
    pub forest: Arc<Forest>,
}

impl<S: Store> Store for Tracked<S> {
    type Error = S::Error;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        self.inner.get(key)
    }

    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<(), Self::Error> {
        let Some(loc) = locate(key) else {
            return self.inner.put(key, value, durable);
        };
        let mut trees = self.forest.lock(loc.partition);
        let old = self.inner.get(key)?;
        self.inner.put(key, value, durable)?;
        trees.xor(&loc, delta(key, old.as_deref(), Some(value)));
        Ok(())
    }

    fn replace(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        value: &[u8],
        durable: bool,
    ) -> Result<(), Self::Error> {
        let Some(loc) = locate(key) else {
            return self.inner.put(key, value, durable);
        };
        let mut trees = self.forest.lock(loc.partition);
        self.inner.put(key, value, durable)?;
        trees.xor(&loc, delta(key, old, Some(value)));
        Ok(())
    }

    fn delete(&self, key: &[u8], old: &[u8], durable: bool) -> Result<(), Self::Error> {
        let Some(loc) = locate(key) else {
            return self.inner.delete(key, old, durable);
        };
        let mut trees = self.forest.lock(loc.partition);
        self.inner.delete(key, old, durable)?;
        trees.xor(&loc, delta(key, Some(old), None));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{LEVEL_BITS, SEGMENT_LEVEL, children};
    use crate::partition::storage_key;
    use crate::store::MemStore;
    use proptest::prelude::*;

    fn scan_of(store: &MemStore, p: u16) -> Vec<(Vec<u8>, Vec<u8>)> {
        store.scan(&p.to_be_bytes())
    }

    fn built_from(store: &MemStore) -> Forest {
        let f = Forest::new(false);
        for p in 0..PARTITIONS as u16 {
            f.rebuild(p, || Ok::<_, ()>(scan_of(store, p))).unwrap();
        }
        f
    }

    /// Every leaf of every keyspace: equal leaves mean every node above is equal too.
    fn segments(f: &Forest) -> Vec<BTreeMap<u64, Segments>> {
        (0..PARTITIONS as u16)
            .map(|p| f.lock(p).keyspaces.clone())
            .collect()
    }

    fn all_hashes(f: &Forest, ks: u64) -> Vec<Option<u64>> {
        let all = PartitionSet::all();
        let mut nodes = vec![0u32];
        let mut out = vec![f.hash(ks, 0, 0, &all)];
        for level in 0..SEGMENT_LEVEL {
            nodes = nodes.iter().flat_map(|n| children(level, *n)).collect();
            out.extend(nodes.iter().map(|n| f.hash(ks, level + 1, *n, &all)));
        }
        out
    }

    proptest! {
        /// Maintained by writes in any order, the trees equal the ones a scan builds.
        #[test]
        fn updates_in_any_order_equal_a_rebuild(
            writes in proptest::collection::vec((0u8..40, 0u8..4, 0u8..2), 1..120)
        ) {
            let store = MemStore::new();
            let forest = Arc::new(Forest::new(true));
            let tracked = Tracked { inner: &store, forest: forest.clone() };
            for (k, v, ks) in &writes {
                let skey = storage_key(u64::from(*ks), &[*k]);
                tracked.put(&skey, &[*v], false).unwrap();
            }
            let rebuilt = built_from(&store);
            prop_assert_eq!(segments(&forest), segments(&rebuilt));
            // Writing the same final states in reverse order gives the same trees.
            let again = MemStore::new();
            let forest2 = Arc::new(Forest::new(true));
            let t2 = Tracked { inner: &again, forest: forest2.clone() };
            for (k, v) in store.entries().into_iter().rev() {
                t2.put(&k, &v, false).unwrap();
            }
            prop_assert_eq!(segments(&forest), segments(&forest2));
        }

        /// The hash of a set of partitions is the XOR of the hashes of its parts.
        #[test]
        fn a_sets_hash_is_the_xor_of_its_partitions(
            keys in proptest::collection::vec(any::<u16>(), 1..200),
            pick in proptest::collection::vec(any::<bool>(), 64)
        ) {
            let store = MemStore::new();
            let forest = Arc::new(Forest::new(true));
            let t = Tracked { inner: &store, forest: forest.clone() };
            for k in &keys {
                t.put(&storage_key(1, &k.to_be_bytes()), b"v", false).unwrap();
            }
            let set: PartitionSet = (0..PARTITIONS as u16).filter(|p| pick[usize::from(*p) % 64]).collect();
            let xor = set.iter().fold(0, |a, p| {
                a ^ forest.hash(1, PARTITION_LEVEL, u32::from(p), &set).unwrap()
            });
            prop_assert_eq!(forest.hash(1, 0, 0, &set), Some(xor));
        }
    }

    #[test]
    fn a_changed_key_changes_exactly_its_path() {
        let store = MemStore::new();
        let forest = Arc::new(Forest::new(true));
        let t = Tracked {
            inner: &store,
            forest: forest.clone(),
        };
        for i in 0..500u32 {
            t.put(&storage_key(3, &i.to_be_bytes()), b"a", false)
                .unwrap();
        }
        let before = all_hashes(&forest, 3);
        let skey = storage_key(3, &77u32.to_be_bytes());
        let old = store.get(&skey).unwrap();
        t.replace(&skey, old.as_deref(), b"b", false).unwrap();
        let after = all_hashes(&forest, 3);
        let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        // Root, group, partition, branch, segment.
        assert_eq!(changed, LEVEL_BITS.len());
        t.replace(&skey, Some(b"b"), b"a", false).unwrap();
        assert_eq!(all_hashes(&forest, 3), before);
    }

    #[test]
    fn an_unready_partition_ignores_writes_until_it_is_rebuilt() {
        let store = MemStore::new();
        let forest = Arc::new(Forest::new(false));
        let t = Tracked {
            inner: &store,
            forest: forest.clone(),
        };
        let skey = storage_key(1, b"x");
        let p = locate(&skey).unwrap().partition;
        t.put(&skey, b"v", false).unwrap();
        let one: PartitionSet = [p].into_iter().collect();
        assert_eq!(forest.unready(&one), one);
        assert_eq!(forest.hash(1, 0, 0, &one), Some(0));
        forest
            .rebuild(p, || Ok::<_, ()>(scan_of(&store, p)))
            .unwrap();
        assert!(forest.unready(&one).is_empty());
        assert_eq!(forest.hash(1, 0, 0, &one), Some(entry_hash(&skey, b"v")));
    }
}
