//! The keyspace registry: definitions persisted in the metadata column family and cached in
//! memory for the data path.

use crate::config::LimitsConfig;
use crate::error::{NodeError, NodeResult};
use crate::storage::Storage;
use meridian_core::keyspace::{DEFAULT_KEYSPACE, validate_name};
use meridian_core::{KeyspaceSpec, ValueKind};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

const PREFIX: &str = "keyspace/";

pub struct Keyspaces {
    cache: RwLock<BTreeMap<String, Arc<KeyspaceSpec>>>,
}

impl Keyspaces {
    /// Loads stored definitions and makes sure `default` exists.
    pub fn load(storage: &Storage, limits: &LimitsConfig) -> NodeResult<Self> {
        let mut map = BTreeMap::new();
        for (k, v) in storage.meta_with_prefix(PREFIX)? {
            let spec: KeyspaceSpec = serde_json::from_slice(&v).map_err(|e| {
                NodeError::Storage(format!("stored keyspace {k} is unreadable: {e}"))
            })?;
            map.insert(spec.name.clone(), Arc::new(spec));
        }
        let me = Self {
            cache: RwLock::new(map),
        };
        if me.get(DEFAULT_KEYSPACE).is_err() {
            let mut spec = KeyspaceSpec::new(DEFAULT_KEYSPACE, ValueKind::Siblings);
            spec.max_siblings = limits.max_siblings;
            spec.max_value_bytes = limits.max_value_bytes;
            me.create(storage, spec)?;
        }
        Ok(me)
    }

    pub fn get(&self, name: &str) -> NodeResult<Arc<KeyspaceSpec>> {
        let map = self
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(name) {
            Some(spec) => Ok(spec.clone()),
            None => {
                // Name the real problem when the name could never exist.
                validate_name(name)?;
                Err(NodeError::KeyspaceNotFound(name.to_string()))
            }
        }
    }

    pub fn list(&self) -> Vec<Arc<KeyspaceSpec>> {
        let map = self
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.values().cloned().collect()
    }

    /// Creates a keyspace. The same definition again is a no-op; a different one for an
    /// existing name is refused, since kind and limits shape what is stored.
    pub fn create(&self, storage: &Storage, spec: KeyspaceSpec) -> NodeResult<Arc<KeyspaceSpec>> {
        spec.validate()?;
        let mut map = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = map.get(&spec.name) {
            if **existing == spec {
                return Ok(existing.clone());
            }
            return Err(NodeError::KeyspaceExists {
                name: spec.name.clone(),
                existing: serde_json::to_string(&**existing).unwrap_or_default(),
            });
        }
        let bytes = serde_json::to_vec(&spec)
            .map_err(|e| NodeError::Internal(format!("encoding keyspace: {e}")))?;
        storage.put_meta(&format!("{PREFIX}{}", spec.name), &bytes)?;
        let spec = Arc::new(spec);
        map.insert(spec.name.clone(), spec.clone());
        tracing::info!(keyspace = %spec.name, kind = %spec.kind, "keyspace created");
        Ok(spec)
    }

    /// Takes a definition decided by the cluster (see keyspace_sync), replacing a local one.
    pub fn adopt(&self, storage: &Storage, spec: KeyspaceSpec) -> NodeResult<()> {
        let mut map = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.get(&spec.name).is_some_and(|e| **e == spec) {
            return Ok(());
        }
        spec.validate()?;
        let bytes = serde_json::to_vec(&spec)
            .map_err(|e| NodeError::Internal(format!("encoding keyspace: {e}")))?;
        storage.put_meta(&format!("{PREFIX}{}", spec.name), &bytes)?;
        tracing::info!(keyspace = %spec.name, kind = %spec.kind, "keyspace definition adopted");
        map.insert(spec.name.clone(), Arc::new(spec));
        Ok(())
    }
}
