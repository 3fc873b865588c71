//! This node's copy of the cluster layout (see `meridian_core::layout`): loaded from disk at
//! start, changed only through [`LayoutKeeper::update`], which compacts, persists (fsynced)
//! and announces every change. Everything that decides ownership reads it from here.

use crate::error::{NodeError, NodeResult};
use crate::storage::Storage;
use meridian_core::layout::LayoutHistory;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

const HISTORY_KEY: &str = "layout/history";

pub struct LayoutKeeper {
    storage: Arc<Storage>,
    current: Mutex<Arc<LayoutHistory>>,
    tx: watch::Sender<Arc<LayoutHistory>>,
}

impl LayoutKeeper {
    pub fn load(storage: Arc<Storage>) -> NodeResult<Self> {
        let history = match storage.get_meta(HISTORY_KEY)? {
            Some(bytes) => LayoutHistory::decode(&bytes)
                .map_err(|e| NodeError::Storage(format!("stored layout is corrupt: {e}")))?,
            None => LayoutHistory::default(),
        };
        let history = Arc::new(history);
        let (tx, _) = watch::channel(history.clone());
        Ok(Self {
            storage,
            current: Mutex::new(history),
            tx,
        })
    }

    pub fn get(&self) -> Arc<LayoutHistory> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn watch(&self) -> watch::Receiver<Arc<LayoutHistory>> {
        self.tx.subscribe()
    }

    /// Applies `f` to a copy, compacts it and, when anything changed, stores it durably
    /// before anyone acts on it (a node must never forget a version it acknowledged or
    /// committed). Returns what `f` returned.
    pub fn update<R>(&self, f: impl FnOnce(&mut LayoutHistory) -> R) -> NodeResult<R> {
        let mut guard = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = (**guard).clone();
        let r = f(&mut next);
        next.compact();
        if next != **guard {
            self.storage.put_meta(HISTORY_KEY, &next.encode())?;
            let next = Arc::new(next);
            *guard = next.clone();
            self.tx.send_replace(next);
        }
        Ok(r)
    }
}
