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
use meridian_core::limits::{WARN_SIBLINGS, check_key, check_value};
use meridian_core::partition::{key_hash, parse_storage_key, storage_key};
use meridian_core::replica::{self, Write, WriteOutcome, WriteReply};
use meridian_core::{ActorId, CausalContext, ContextSeal, CoreError, KeyspaceSpec, StoredObject};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub struct Engine {
    storage: Arc<Storage>,
    keyspaces: Keyspaces,
    locks: KeyLocks,
    actor: ActorId,
    /// Contexts go out sealed to their key and come back checked, with the secret of the
    /// cluster's layout (set once the node holds one).
    seal: std::sync::RwLock<ContextSeal>,
    /// Largest hybrid logical timestamp issued or observed so far.
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

/// What a writer gets back: the sealed context and, when values concurrent with the write
/// survived it, every live value that context covers (see `replica::WriteReply`).
#[derive(Debug, Clone, Default)]
pub struct WriteAck {
    pub context: Vec<u8>,
    pub siblings: Vec<Vec<u8>>,
}

/// A minted write: the writer's reply, and the object every replica must merge.
#[derive(Debug, Clone)]
pub struct Minted {
    pub ack: WriteAck,
    pub storage_key: Vec<u8>,
    /// Encoded StoredObject (empty only for a retried write to a key that holds nothing).
    pub object: Vec<u8>,
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
}

impl Engine {
    pub fn new(
        storage: Arc<Storage>,
        keyspaces: Keyspaces,
        actor: ActorId,
        seal: ContextSeal,
        default_sync: bool,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            storage,
            keyspaces,
            locks: KeyLocks::new(4096),
            actor,
            seal: std::sync::RwLock::new(seal),
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

    /// What a client sees of a (merged) object of `key`.
    pub fn reply_for(&self, ks_id: u64, key: &[u8], object: Option<&StoredObject>) -> ReadReply {
        let view = replica::read(object);
        if view.stored_versions > 0 {
            self.metrics.siblings.observe(view.stored_versions as f64);
        }
        ReadReply {
            values: view.values,
            context: self.sealer().seal(ks_id, key, &view.context),
        }
    }

    fn sealer(&self) -> ContextSeal {
        self.seal
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Adopts the layout's cluster secret for sealing contexts.
    pub fn set_seal(&self, seal: ContextSeal) {
        *self
            .seal
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = seal;
    }

    /// The minting actor (this node in its current incarnation).
    pub fn actor(&self) -> ActorId {
        self.actor
    }

    fn ack_for(&self, ks_id: u64, key: &[u8], reply: WriteReply) -> WriteAck {
        WriteAck {
            context: self.sealer().seal(ks_id, key, &reply.context),
            siblings: reply.siblings,
        }
    }

    /// A client's context for this key: checked against the seal before anything uses it.
    /// `None` when the client sent none.
    fn open_context(
        &self,
        ks: &KeyspaceSpec,
        key: &[u8],
        bytes: &[u8],
    ) -> NodeResult<Option<CausalContext>> {
        if bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.sealer().open(ks.id(), key, bytes)?))
    }

    /// This replica's stored object for a storage key.
    pub fn local_object(&self, skey: &[u8]) -> NodeResult<Option<StoredObject>> {
        self.load(skey)
    }

    /// Merges a peer's state of a key (replication, hints, read repair, streaming). Never
    /// mints and never refuses for sibling count: replica sync must always converge.
    pub fn merge_remote(&self, skey: &[u8], encoded: &[u8]) -> NodeResult<bool> {
        let incoming = StoredObject::decode(encoded)?;
        self.observe_hlc(incoming.max_timestamp());
        let Some((_, ks_id, key)) = parse_storage_key(skey) else {
            return Err(NodeError::InvalidArgument(
                "peer sent a malformed storage key".into(),
            ));
        };
        let _guard = self.locks.lock(key_hash(ks_id, key));
        let merged = match self.load(skey)? {
            Some(current) => {
                let merged = current.merge(&incoming)?;
                if merged.replicated_bytes() == current.replicated_bytes() {
                    return Ok(false);
                }
                merged
            }
            None => incoming,
        };
        // Replica copies count toward W, so they are as durable as the coordinator's.
        self.storage
            .put_data(skey, &merged.encode(), self.syncs_id(ks_id))?;
        Ok(true)
    }

    fn syncs_id(&self, ks_id: u64) -> bool {
        self.keyspaces
            .list()
            .iter()
            .find(|k| k.id() == ks_id)
            .and_then(|k| k.sync_writes)
            .unwrap_or(self.default_sync)
    }

    /// Whether the keyspace a storage key belongs to fsyncs what it acknowledges: then a
    /// hint kept for one of its writes is fsynced too (it may be what a write counted on).
    pub fn syncs_storage_key(&self, skey: &[u8]) -> bool {
        parse_storage_key(skey).is_some_and(|(_, ks_id, _)| self.syncs_id(ks_id))
    }

    /// Applies a put or delete as the key's coordinating replica: mints the new version and
    /// returns the new context and the object to replicate.
    pub fn mint(&self, req: &WriteRequest<'_>) -> NodeResult<Minted> {
        let op = if req.value.is_some() { "put" } else { "delete" };
        self.observe(op, || self.write_inner(req))
    }

    /// Checks a write as the coordinator would, without applying it (used before forwarding,
    /// so a bad request gets the same error wherever it lands).
    pub fn validate_write(&self, req: &WriteRequest<'_>) -> NodeResult<Arc<KeyspaceSpec>> {
        let ks = self.keyspaces.get(req.keyspace)?;
        check_key(req.key)?;
        if let Some(v) = req.value {
            check_value(req.key, v, ks.max_value_bytes)?;
        }
        self.open_context(&ks, req.key, req.context)?;
        if !matches!(req.request_id.len(), 0 | 16) {
            return Err(CoreError::MalformedRequestId {
                len: req.request_id.len(),
            }
            .into());
        }
        Ok(ks)
    }

    fn write_inner(&self, req: &WriteRequest<'_>) -> NodeResult<Minted> {
        let ks = self.keyspaces.get(req.keyspace)?;
        check_key(req.key)?;
        if let Some(v) = req.value {
            check_value(req.key, v, ks.max_value_bytes)?;
        }
        let context = self.open_context(&ks, req.key, req.context)?;
        if let Some(c) = &context {
            self.observe_hlc(c.hlc());
        }
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
                reply,
                siblings,
            }) => {
                let encoded = object.encode();
                self.storage.put_data(&skey, &encoded, sync)?;
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
                Ok(Minted {
                    ack: self.ack_for(ks.id(), req.key, reply),
                    storage_key: skey,
                    object: encoded,
                })
            }
            Ok(WriteOutcome::Duplicate { reply }) => {
                self.metrics.duplicate_writes.inc();
                // A retry may follow a partial replication: send the current state again.
                let object = current.map(|o| o.encode()).unwrap_or_default();
                Ok(Minted {
                    ack: self.ack_for(ks.id(), req.key, reply),
                    storage_key: skey,
                    object,
                })
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

    /// Makes every later timestamp larger than `ts`, a timestamp seen in a peer's object or
    /// a client's context: a causally later write never gets an earlier timestamp.
    fn observe_hlc(&self, ts: u64) {
        self.hlc.fetch_max(ts, Ordering::Relaxed);
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
