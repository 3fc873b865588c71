//! A set of partitions as a fixed bitmap: 512 bytes on the wire whatever it holds, so the
//! set two replicas compare travels with every request and neither side has to agree on a
//! layout version to know what the other meant.

use crate::partition::PARTITIONS;
use serde::{Deserialize, Serialize};

const WORDS: usize = PARTITIONS as usize / 64;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSet {
    #[serde(with = "serde_bytes")]
    bits: Vec<u8>,
}

impl Default for PartitionSet {
    fn default() -> Self {
        Self {
            bits: vec![0; WORDS * 8],
        }
    }
}

impl std::fmt::Debug for PartitionSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PartitionSet({} partitions)", self.len())
    }
}

impl PartitionSet {
    pub fn all() -> Self {
        Self {
            bits: vec![0xff; WORDS * 8],
        }
    }

    /// A set decoded from a peer may have any length: only a full bitmap is valid.
    pub fn is_valid(&self) -> bool {
        self.bits.len() == WORDS * 8
    }

    pub fn insert(&mut self, p: u16) {
        if let Some(b) = self.bits.get_mut(usize::from(p) / 8) {
            *b |= 1 << (p % 8);
        }
    }

    pub fn remove(&mut self, p: u16) {
        if let Some(b) = self.bits.get_mut(usize::from(p) / 8) {
            *b &= !(1 << (p % 8));
        }
    }

    pub fn contains(&self, p: u16) -> bool {
        self.bits
            .get(usize::from(p) / 8)
            .is_some_and(|b| b & (1 << (p % 8)) != 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..PARTITIONS as u16).filter(|p| self.contains(*p))
    }

    pub fn len(&self) -> usize {
        self.bits.iter().map(|b| b.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|b| *b == 0)
    }

    /// Partitions in both.
    pub fn intersect(&self, other: &Self) -> Self {
        Self {
            bits: self
                .bits
                .iter()
                .zip(other.bits.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a & b)
                .collect(),
        }
    }

    /// Partitions in `self` and not in `other`.
    pub fn minus(&self, other: &Self) -> Self {
        Self {
            bits: self
                .bits
                .iter()
                .zip(other.bits.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a & !b)
                .collect(),
        }
    }
}

impl FromIterator<u16> for PartitionSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut s = Self::default();
        for p in iter {
            s.insert(p);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_and_difference() {
        let a: PartitionSet = [0u16, 7, 4095].into_iter().collect();
        assert!(a.contains(7) && a.contains(4095) && !a.contains(8));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 7, 4095]);
        let b: PartitionSet = [7u16].into_iter().collect();
        assert_eq!(a.minus(&b).iter().collect::<Vec<_>>(), vec![0, 4095]);
        assert_eq!(PartitionSet::all().len(), PARTITIONS as usize);
        assert!(PartitionSet::default().is_empty());
    }
}
