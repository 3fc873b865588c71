//! The single-node data path: validate, look up the keyspace, apply the core's rules to the
//! key's stored state under its lock, persist, reply.
//!
//! A reply is only produced after the write it acknowledges is in RocksDB's WAL (and fsynced
//! when the keyspace asks for it).

use crate::error::{NodeError, NodeResult};
use crate::keyspaces::Keyspaces;
use crate::locks::KeyLocks;
use crate::metrics::Metrics;
use crate::storage::Storage;
use meridian_core::consistency::{ReplicaCounts, required};
use meridian_core::limits::{WARN_SIBLINGS, check_key, check_value};
use meridian_core::partition::{key_hash, storage_key};
use meridian_core::replica::{self, Write, WriteOutcome};
use meridian_core::{ActorId, CausalContext, Consistency, CoreError, StoredObject};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub struct Engine {
    storage: Arc<Storage>,
    keyspaces: Keyspaces,
    locks: KeyLocks,
    actor: ActorId,
    datacenter: String,
    /// Largest hybrid logical timestamp issued so far.
    hlc: AtomicU64,
    default_sync: bool,
    pub metrics: Arc<Metrics>,
}

/// What a read returns to a client.
#[derive(Debug, Clone)]
pub struct ReadReply {
    pub values: Vec<Vec<u8>>,
    /// Encoded causal context.
    pub context: Vec<u8>,
}

impl ReadReply {
    pub fn found(&self) -> bool {
        !self.values.is_empty()
    }
}

/// A put (value) or delete (no value).
#[derive(Debug, Clone, Copy)]
pub struct WriteRequest<'a> {
    pub keyspace: &'a str,
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
    /// Encoded context; empty means none was sent.
    pub context: &'a [u8],
    /// 16 bytes, or empty to have the node draw one.
    pub request_id: &'a [u8],
    pub consistency: Option<Consistency>,
    pub explicit_acks: u32,
}

impl Engine {
    pub fn new(
        storage: Arc<Storage>,
        keyspaces: Keyspaces,
        actor: ActorId,
        datacenter: String,
        default_sync: bool,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            storage,
            keyspaces,
            locks: KeyLocks::new(4096),
            actor,
            datacenter,
            hlc: AtomicU64::new(0),
            default_sync,
            metrics,
        }
    }

    pub fn keyspaces(&self) -> &Keyspaces {
        &self.keyspaces
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Whether a write to this keyspace fsyncs (and so should run off the async threads).
    pub fn syncs(&self, keyspace: &str) -> bool {
        self.keyspaces
            .get(keyspace)
            .map(|ks| ks.sync_writes.unwrap_or(self.default_sync))
            .unwrap_or(false)
    }

    pub fn get(
        &self,
        keyspace: &str,
        key: &[u8],
        consistency: Option<Consistency>,
        explicit: u32,
    ) -> NodeResult<ReadReply> {
        self.observe("get", || {
            let ks = self.keyspaces.get(keyspace)?;
            check_key(key)?;
            self.check_consistency(consistency.unwrap_or(ks.read_consistency), explicit)?;
            let skey = storage_key(ks.id(), key);
            let current = self.load(&skey)?;
            let view = replica::read(current.as_ref());
            if view.stored_versions > 0 {
                self.metrics.siblings.observe(view.stored_versions as f64);
            }
            Ok(ReadReply {
                values: view.values,
                context: view.context.encode(),
            })
        })
    }

    /// Applies a put or delete and returns the new encoded context.
    pub fn write(&self, req: &WriteRequest<'_>) -> NodeResult<Vec<u8>> {
        let op = if req.value.is_some() { "put" } else { "delete" };
        self.observe(op, || self.write_inner(req))
    }

    fn write_inner(&self, req: &WriteRequest<'_>) -> NodeResult<Vec<u8>> {
        let ks = self.keyspaces.get(req.keyspace)?;
        check_key(req.key)?;
        if let Some(v) = req.value {
            check_value(req.key, v, ks.max_value_bytes)?;
        }
        let context = if req.context.is_empty() {
            None
        } else {
            Some(CausalContext::decode(req.context)?)
        };
        let request_id: [u8; 16] = match req.request_id.len() {
            0 => *uuid::Uuid::new_v4().as_bytes(),
            16 => req
                .request_id
                .try_into()
                .map_err(|_| CoreError::MalformedRequestId {
                    len: req.request_id.len(),
                })?,
            len => return Err(CoreError::MalformedRequestId { len }.into()),
        };
        self.check_consistency(
            req.consistency.unwrap_or(ks.write_consistency),
            req.explicit_acks,
        )?;
        let sync = ks.sync_writes.unwrap_or(self.default_sync);
        let skey = storage_key(ks.id(), req.key);

        let _guard = self.locks.lock(key_hash(ks.id(), req.key));
        let current = self.load(&skey)?;
        let outcome = replica::apply_write(
            ks.kind,
            current.as_ref(),
            Write {
                actor: self.actor,
                context: context.as_ref(),
                data: req.value.map(<[u8]>::to_vec),
                request_id,
                timestamp: self.tick(),
                max_siblings: ks.max_siblings as usize,
            },
        );
        match outcome {
            Ok(WriteOutcome::Applied {
                object,
                context,
                siblings,
            }) => {
                self.storage.put_data(&skey, &object.encode(), sync)?;
                self.metrics.siblings.observe(siblings as f64);
                // Once, as the key crosses the threshold: a client write adds at most one.
                if siblings == WARN_SIBLINGS + 1 {
                    self.metrics.sibling_warnings.inc();
                    tracing::warn!(
                        keyspace = %ks.name,
                        key = %String::from_utf8_lossy(req.key),
                        siblings,
                        limit = ks.max_siblings,
                        "key has many siblings; clients should write back with their read's context"
                    );
                }
                Ok(context.encode())
            }
            Ok(WriteOutcome::Duplicate { context }) => {
                self.metrics.duplicate_writes.inc();
                Ok(context.encode())
            }
            Err(e @ CoreError::TooManySiblings { .. }) => {
                self.metrics.sibling_rejections.inc();
                tracing::warn!(keyspace = %ks.name, error = %e, "write refused");
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn load(&self, skey: &[u8]) -> NodeResult<Option<StoredObject>> {
        match self.storage.get_data(skey)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(StoredObject::decode(&bytes)?)),
        }
    }

    /// A single node is the only replica of every key: levels that need more fail clearly.
    fn check_consistency(&self, level: Consistency, explicit: u32) -> NodeResult<()> {
        let counts = ReplicaCounts {
            per_dc: vec![(self.datacenter.clone(), 1)],
            local_dc: self.datacenter.clone(),
        };
        let explicit = (explicit > 0).then_some(explicit as usize);
        required(level, explicit, &counts)?;
        Ok(())
    }

    fn tick(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut last = self.hlc.load(Ordering::Relaxed);
        loop {
            let next = meridian_core::hlc::tick(last, wall);
            match self
                .hlc
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    fn observe<T>(&self, op: &str, f: impl FnOnce() -> NodeResult<T>) -> NodeResult<T> {
        let start = Instant::now();
        let out = f();
        let code = match &out {
            Ok(_) => "OK",
            Err(e) => crate::error::code_name(e.grpc_code()),
        };
        self.metrics.requests.with_label_values(&[op, code]).inc();
        self.metrics
            .latency
            .with_label_values(&[op])
            .observe(start.elapsed().as_secs_f64());
        if let Err(
            e @ (NodeError::Storage(_) | NodeError::StorageFull(_) | NodeError::Internal(_)),
        ) = &out
        {
            tracing::error!(op, error = %e, "request failed");
        }
        out
    }
}
