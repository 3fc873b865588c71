//! Hash trees that let two replicas find the keys they disagree on without sending them.
//!
//! The tree of one keyspace covers the top [`TREE_BITS`] bits of the placement hash: the
//! first 12 bits are the partition (so a partition is a subtree, the same in every DC), the
//! next 6 pick one of [`SEGMENTS`] leaf segments inside it. Levels split the hash at
//! [`LEVEL_BITS`]: the root, 64 groups of 64 partitions, the partitions, 8 branches of each
//! partition, and the segments.
//!
//! A segment's hash is the XOR of its keys' [`entry_hash`]es. Laws (property-tested):
//! - a write changes the tree by `old ^ new` of one key, whatever else is in the segment, so
//!   the tree is maintained from the old and new version alone, never by a scan;
//! - XOR is commutative and associative: updates in any order give the same tree, a tree
//!   maintained by updates equals one built by scanning, and the hash of any set of
//!   partitions is the XOR of their roots, so two replicas that share only some partitions
//!   compare exactly those.
//!
//! Two replicas of a key hash it equally exactly when they hold the same state: the entry
//! hash covers the storage key and the object's canonical encoding.

pub mod exchange;
pub mod forest;
mod partitions;

pub use forest::{Forest, Tracked};
pub use partitions::PartitionSet;

use crate::partition::{PARTITIONS, key_hash, parse_storage_key};
use xxhash_rust::xxh3::Xxh3;

/// Leaf segments per partition.
pub const SEGMENT_BITS: u32 = 6;
pub const SEGMENTS: usize = 1 << SEGMENT_BITS;
const PARTITION_BITS: u32 = PARTITIONS.trailing_zeros();
/// Hash bits the whole tree resolves: partition then segment.
pub const TREE_BITS: u32 = PARTITION_BITS + SEGMENT_BITS;
/// How many leading hash bits identify a node at each level.
pub const LEVEL_BITS: [u32; 5] = [0, 6, PARTITION_BITS, PARTITION_BITS + 3, TREE_BITS];
/// The level whose nodes are whole partitions.
pub const PARTITION_LEVEL: usize = 2;
/// The leaves.
pub const SEGMENT_LEVEL: usize = LEVEL_BITS.len() - 1;

/// What one key contributes to its segment: a hash of its storage key and stored bytes.
/// Never zero, so a key is never invisible to the XOR.
pub fn entry_hash(storage_key: &[u8], object: &[u8]) -> u64 {
    let mut h = Xxh3::new();
    h.update(&(storage_key.len() as u64).to_le_bytes());
    h.update(storage_key);
    h.update(object);
    h.digest().max(1)
}

/// Where a stored key sits in its keyspace's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub keyspace: u64,
    pub partition: u16,
    /// Segment within the partition, `0..SEGMENTS`.
    pub segment: u8,
    /// The key's placement hash: its compact id in an exchange.
    pub key_hash: u64,
}

impl Location {
    /// The leaf's id at [`SEGMENT_LEVEL`].
    pub fn leaf(&self) -> u32 {
        (u32::from(self.partition) << SEGMENT_BITS) | u32::from(self.segment)
    }
}

pub fn locate(storage_key: &[u8]) -> Option<Location> {
    let (partition, keyspace, key) = parse_storage_key(storage_key)?;
    let key_hash = key_hash(keyspace, key);
    Some(Location {
        keyspace,
        partition,
        segment: segment_of_hash(key_hash),
        key_hash,
    })
}

/// The partition a key hash belongs to (the placement rule's top bits).
pub fn partition_of_hash(key_hash: u64) -> u16 {
    (key_hash >> (64 - PARTITION_BITS)) as u16
}

pub fn segment_of_hash(key_hash: u64) -> u8 {
    ((key_hash >> (64 - TREE_BITS)) as u8) & (SEGMENTS as u8 - 1)
}

/// The children of `node` (at `level`) one level down, in order.
pub fn children(level: usize, node: u32) -> impl Iterator<Item = u32> {
    let width = LEVEL_BITS[level + 1] - LEVEL_BITS[level];
    (0..1u32 << width).map(move |c| (node << width) | c)
}

/// The partitions under a node: one for nodes at or below [`PARTITION_LEVEL`], a range above.
pub fn partitions_under(level: usize, node: u32) -> std::ops::Range<u32> {
    let bits = LEVEL_BITS[level];
    if bits >= PARTITION_BITS {
        let p = node >> (bits - PARTITION_BITS);
        p..p + 1
    } else {
        let shift = PARTITION_BITS - bits;
        (node << shift)..((node + 1) << shift)
    }
}

/// The segments of one partition under a node at or below [`PARTITION_LEVEL`].
pub fn segments_under(level: usize, node: u32) -> std::ops::Range<usize> {
    let below = TREE_BITS - LEVEL_BITS[level];
    let within = (node as usize) & ((1usize << (LEVEL_BITS[level] - PARTITION_BITS)) - 1);
    (within << below)..((within + 1) << below)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::{partition_of, storage_key};

    #[test]
    fn a_keys_location_agrees_with_its_placement() {
        for i in 0..2000u32 {
            let key = format!("k{i}");
            let loc = locate(&storage_key(9, key.as_bytes())).unwrap();
            assert_eq!(loc.partition, partition_of(9, key.as_bytes()));
            assert_eq!(partition_of_hash(loc.key_hash), loc.partition);
            assert_eq!(loc.leaf() >> SEGMENT_BITS, u32::from(loc.partition));
        }
    }

    #[test]
    fn every_level_covers_the_level_below_exactly() {
        // Walking children from the root reaches every leaf once.
        let mut frontier = vec![0u32];
        for level in 0..SEGMENT_LEVEL {
            frontier = frontier
                .into_iter()
                .flat_map(|n| children(level, n))
                .collect();
        }
        assert_eq!(frontier.len(), PARTITIONS as usize * SEGMENTS);
        assert!(frontier.windows(2).all(|w| w[0] + 1 == w[1]));
        assert_eq!(partitions_under(0, 0), 0..PARTITIONS);
        assert_eq!(partitions_under(1, 1), 64..128);
        assert_eq!(partitions_under(3, 9), 1..2);
        assert_eq!(segments_under(PARTITION_LEVEL, 5), 0..SEGMENTS);
        assert_eq!(segments_under(3, 9), 8..16);
        assert_eq!(segments_under(SEGMENT_LEVEL, 70), 6..7);
    }
}
