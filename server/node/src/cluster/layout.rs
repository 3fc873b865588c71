//! This node's copy of the cluster layout (see `meridian_core::layout`): loaded from disk at
//! start, changed only through [`LayoutKeeper::update`], which compacts, persists (fsynced)
//! and announces every change. Everything that decides ownership reads it from here.

use crate::error::{NodeError, NodeResult};
use crate::storage::Storage;
use meridian_core::layout::agent::LayoutAgent;
use meridian_core::layout::{Digest, LayoutHistory, LayoutMember};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

const HISTORY_KEY: &str = "layout/history";

pub struct LayoutKeeper {
    storage: Arc<Storage>,
    /// The history and its fingerprint, computed once per change: peers' fingerprints are
    /// compared with it on every sync tick.
    current: Mutex<(Arc<LayoutHistory>, Digest)>,
    tx: watch::Sender<Arc<LayoutHistory>>,
}

impl LayoutKeeper {
    pub fn load(storage: Arc<Storage>) -> NodeResult<Self> {
        let history = match storage.get_meta(HISTORY_KEY)? {
            Some(bytes) => LayoutHistory::decode(&bytes)
                .map_err(|e| NodeError::Storage(format!("stored layout is corrupt: {e}")))?,
            None => LayoutHistory::default(),
        };
        let fingerprint = history.fingerprint();
        let history = Arc::new(history);
        let (tx, _) = watch::channel(history.clone());
        Ok(Self {
            storage,
            current: Mutex::new((history, fingerprint)),
            tx,
        })
    }

    pub fn get(&self) -> Arc<LayoutHistory> {
        self.lock().0.clone()
    }

    /// Fingerprint of the history [`get`](Self::get) returns.
    pub fn fingerprint(&self) -> Digest {
        self.lock().1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Arc<LayoutHistory>, Digest)> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Founds a new cluster with `first` as its only member and a fresh random secret, unless
    /// this node already holds a layout. Returns whether it founded one.
    pub fn found(&self, first: LayoutMember) -> NodeResult<bool> {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let founded = self.update(|h| LayoutAgent::found(h, first, secret))?;
        if founded {
            tracing::info!("founded a new cluster: layout version 1");
        }
        Ok(founded)
    }

    pub fn watch(&self) -> watch::Receiver<Arc<LayoutHistory>> {
        self.tx.subscribe()
    }

    /// Applies `f` to a copy, compacts it and, when anything changed, stores it durably
    /// before anyone acts on it (a node must never forget a version it acknowledged or
    /// committed). Returns what `f` returned.
    pub fn update<R>(&self, f: impl FnOnce(&mut LayoutHistory) -> R) -> NodeResult<R> {
        let mut guard = self.lock();
        let mut next = (*guard.0).clone();
        let r = f(&mut next);
        next.compact();
        if next != *guard.0 {
            let bytes = next.encode();
            self.storage.put_meta(HISTORY_KEY, &bytes)?;
            let fingerprint = next.fingerprint();
            let next = Arc::new(next);
            *guard = (next.clone(), fingerprint);
            self.tx.send_replace(next);
        }
        Ok(r)
    }
}
