//! Striped per-key locks: writes to one key are serialised on its replica (each write reads
//! the key's state, applies the core's rules and stores the result), while writes to
//! different keys run in parallel.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub struct KeyLocks {
    stripes: Vec<Mutex<()>>,
}

impl KeyLocks {
    pub fn new(stripes: usize) -> Self {
        Self {
            stripes: (0..stripes.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Held only across synchronous work (no await), so a std mutex is right. A panic while
    /// holding it leaves nothing half-done in memory (state is in RocksDB), so poisoning is
    /// ignored.
    pub fn lock(&self, key_hash: u64) -> MutexGuard<'_, ()> {
        let i = (key_hash % self.stripes.len() as u64) as usize;
        self.stripes[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
