//! The storage a replica's rules run against.
//!
//! Synchronous on purpose: the rules read a key's state, decide, and persist it before anyone
//! hears of the write, and none of that may interleave with another write to the same key.
//! The node implements it over RocksDB; tests and the simulation use [`MemStore`], which can
//! also lose what was never made durable, as a power cut would.

use std::cell::RefCell;
use std::collections::BTreeMap;

pub trait Store {
    type Error;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;

    /// Stores `value`; `durable` asks for it to survive a power cut before this returns
    /// (otherwise it survives the process being killed, not the machine losing power).
    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<(), Self::Error>;

    /// Stores `value` over `old`, the bytes the caller read under the key's lock: a store
    /// that keeps hash trees (see [`crate::merkle::Tracked`]) updates them from the two
    /// versions alone.
    fn replace(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        value: &[u8],
        durable: bool,
    ) -> Result<(), Self::Error> {
        let _ = old;
        self.put(key, value, durable)
    }

    /// Removes a key whose stored bytes the caller read (`old`) under the key's lock: only
    /// a purged tombstone leaves this way.
    fn delete(&self, key: &[u8], old: &[u8], durable: bool) -> Result<(), Self::Error>;
}

impl<T: Store + ?Sized> Store for &T {
    type Error = T::Error;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        (**self).get(key)
    }

    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<(), Self::Error> {
        (**self).put(key, value, durable)
    }

    fn replace(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        value: &[u8],
        durable: bool,
    ) -> Result<(), Self::Error> {
        (**self).replace(key, old, value, durable)
    }

    fn delete(&self, key: &[u8], old: &[u8], durable: bool) -> Result<(), Self::Error> {
        (**self).delete(key, old, durable)
    }
}

impl<T: Store + ?Sized> Store for std::sync::Arc<T> {
    type Error = T::Error;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        (**self).get(key)
    }

    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<(), Self::Error> {
        (**self).put(key, value, durable)
    }

    fn replace(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        value: &[u8],
        durable: bool,
    ) -> Result<(), Self::Error> {
        (**self).replace(key, old, value, durable)
    }

    fn delete(&self, key: &[u8], old: &[u8], durable: bool) -> Result<(), Self::Error> {
        (**self).delete(key, old, durable)
    }
}

impl<T: Store + ?Sized> Store for std::rc::Rc<T> {
    type Error = T::Error;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        (**self).get(key)
    }

    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<(), Self::Error> {
        (**self).put(key, value, durable)
    }

    fn replace(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        value: &[u8],
        durable: bool,
    ) -> Result<(), Self::Error> {
        (**self).replace(key, old, value, durable)
    }

    fn delete(&self, key: &[u8], old: &[u8], durable: bool) -> Result<(), Self::Error> {
        (**self).delete(key, old, durable)
    }
}

/// An in-memory store that tells apart what reached "disk" from what a crash would lose.
#[derive(Debug, Default)]
pub struct MemStore {
    durable: RefCell<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Written without `durable` since the last sync point: lost by [`MemStore::crash`].
    volatile: RefCell<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A power cut: everything not made durable is gone.
    pub fn crash(&self) {
        self.volatile.borrow_mut().clear();
    }

    /// The OS flushed its page cache: what was written is now durable.
    pub fn flush(&self) {
        let mut v = self.volatile.borrow_mut();
        self.durable.borrow_mut().append(&mut v);
    }

    /// Every key and value, durable or not, in key order.
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut all = self.durable.borrow().clone();
        for (k, v) in self.volatile.borrow().iter() {
            all.insert(k.clone(), v.clone());
        }
        all.into_iter().collect()
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn scan(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for map in [&self.durable, &self.volatile] {
            let map = map.borrow();
            for (k, v) in map
                .range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(prefix))
            {
                out.insert(k.clone(), v.clone());
            }
        }
        out.into_iter().collect()
    }

    /// Deletes every key that starts with `prefix` (durably); returns how many went.
    pub fn delete_prefix(&self, prefix: &[u8]) -> usize {
        let mut n = 0;
        for map in [&self.durable, &self.volatile] {
            let mut map = map.borrow_mut();
            let keys: Vec<Vec<u8>> = map
                .range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, _)| k.clone())
                .collect();
            n += keys.len();
            for k in keys {
                map.remove(&k);
            }
        }
        n
    }

    /// Removes a key (durably: deletions in the simulation are hint bookkeeping, which
    /// replays idempotently if a crash brought one back).
    pub fn remove(&self, key: &[u8]) {
        self.volatile.borrow_mut().remove(key);
        self.durable.borrow_mut().remove(key);
    }
}

impl Store for MemStore {
    type Error = std::convert::Infallible;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        if let Some(v) = self.volatile.borrow().get(key) {
            return Ok(Some(v.clone()));
        }
        Ok(self.durable.borrow().get(key).cloned())
    }

    fn put(&self, key: &[u8], value: &[u8], durable: bool) -> Result<(), Self::Error> {
        if durable {
            // A synced write also syncs the log before it (one WAL).
            self.flush();
            self.durable
                .borrow_mut()
                .insert(key.to_vec(), value.to_vec());
        } else {
            self.volatile
                .borrow_mut()
                .insert(key.to_vec(), value.to_vec());
        }
        Ok(())
    }

    /// Always durable here: a purge a crash undid would only bring a tombstone back, which
    /// the next sweep purges again; the simulation checks the stricter case.
    fn delete(&self, key: &[u8], _old: &[u8], _durable: bool) -> Result<(), Self::Error> {
        self.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_loses_exactly_what_was_not_synced_since_the_last_durable_write() {
        let s = MemStore::new();
        s.put(b"a", b"1", false).unwrap();
        s.put(b"b", b"2", true).unwrap();
        s.put(b"c", b"3", false).unwrap();
        s.crash();
        assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.get(b"c").unwrap(), None);
    }
}
