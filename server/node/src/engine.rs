//! The single-node data path: validate, look up the keyspace, apply the core's rules to the
//! key's stored state under its lock, persist, reply.
//!
//! A reply is only produced after the write it acknowledges is in RocksDB's WAL (and fsynced
//! when the keyspace asks for it).

use crate::cluster::coordinator::Change;
use crate::error::{NodeError, NodeResult};
use crate::keyspaces::Keyspaces;
use crate::locks::KeyLocks;
use crate::metrics::Metrics;
use crate::storage::Storage;
use meridian_core::keeper::{ClientUpdate, ClientWrite, Keeper, KeeperError};
use meridian_core::limits::{WARN_SIBLINGS, check_key, check_value};
use meridian_core::merkle::{Forest, Tracked};
use meridian_core::partition::{key_hash, parse_storage_key, slice_prefix};
use meridian_core::tombstones::{self, Candidate};
use meridian_core::{ActorId, ContextSeal, CoreError, KeyspaceSpec, StoredObject};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use meridian_core::keeper::{Minted, ReadReply, WriteAck};

pub struct Engine {
    storage: Arc<Storage>,
    keyspaces: Keyspaces,
    locks: KeyLocks,
    /// The core's replica rules over this node's RocksDB: minting, merging, sealing. Every
    /// write goes through the tracked store, which keeps the Merkle trees current.
    keeper: Keeper<Tracked<Arc<Storage>>>,
    forest: Arc<Forest>,
    default_sync: bool,
    pub metrics: Arc<Metrics>,
}

impl From<KeeperError<NodeError>> for NodeError {
    fn from(e: KeeperError<NodeError>) -> Self {
        match e {
            KeeperError::Core(e) => NodeError::Core(e),
            KeeperError::Store(e) => e,
        }
    }
}

/// A put, delete or CRDT update.
#[derive(Debug, Clone, Copy)]
pub struct WriteRequest<'a> {
    pub keyspace: &'a str,
    pub key: &'a [u8],
    pub change: &'a Change,
    /// Encoded context; empty means none was sent.
    pub context: &'a [u8],
    /// 16 bytes, or empty to have the node draw one.
    pub request_id: &'a [u8],
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
        // Trees are rebuilt from the data after every start (`merkle_trees.rs`); until a
        // partition's is, exchanges leave it out.
        let forest = Arc::new(Forest::new(false));
        let tracked = Tracked {
            inner: storage.clone(),
            forest: forest.clone(),
        };
        Self {
            keeper: Keeper::new(tracked, actor, seal),
            forest,
            storage,
            keyspaces,
            locks: KeyLocks::new(4096),
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

    /// This replica's Merkle trees.
    pub fn forest(&self) -> &Arc<Forest> {
        &self.forest
    }

    /// Deletes a partition's data and empties its trees, under the partition's tree lock so
    /// no write lands between the two.
    pub fn drop_partition(&self, partition: u16) -> NodeResult<u64> {
        let mut bytes = 0;
        self.forest.rebuild(partition, || {
            bytes = self.storage.delete_data_prefix(&partition.to_be_bytes())?;
            Ok::<_, NodeError>(Vec::new())
        })?;
        Ok(bytes)
    }

    /// Every key of keyspace `ks_id` in `partition` whose state is only tombstones (see
    /// [`meridian_core::tombstones`]).
    pub fn dead_keys(&self, partition: u16, ks_id: u64, now_ms: u64) -> NodeResult<Vec<Candidate>> {
        let mut out = Vec::new();
        self.storage
            .scan_data(&slice_prefix(partition, ks_id), &mut |k, v| {
                out.extend(tombstones::candidate(k, v, now_ms));
                true
            })?;
        Ok(out)
    }

    /// Removes a key if it still holds exactly `candidate`'s tombstone; whether it is gone.
    pub fn purge(&self, candidate: &Candidate) -> NodeResult<bool> {
        let Some((_, ks_id, key)) = parse_storage_key(&candidate.storage_key) else {
            return Err(NodeError::InvalidArgument(
                "peer sent a malformed storage key".into(),
            ));
        };
        let _guard = self.locks.lock(key_hash(ks_id, key));
        let outcome = self.keeper.purge(candidate, self.syncs_id(ks_id))?;
        if outcome == tombstones::Purge::Removed {
            self.metrics.tombstones_purged.inc();
        }
        Ok(outcome.gone())
    }

    /// Rebuilds a partition's trees from its data; returns whether they had drifted from
    /// what the data says.
    pub fn rebuild_trees(&self, partition: u16) -> NodeResult<bool> {
        self.forest.rebuild(partition, || {
            let mut entries = Vec::new();
            self.storage
                .scan_data(&partition.to_be_bytes(), &mut |k, v| {
                    entries.push((k.to_vec(), v.to_vec()));
                    true
                })?;
            Ok::<_, NodeError>(entries)
        })
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
        let (reply, stored) = self.keeper.reply_for(ks_id, key, object);
        if stored > 0 {
            self.metrics.siblings.observe(stored as f64);
        }
        reply
    }

    /// A fetch's answer for a (merged) object of a CRDT key: its value and sealed context.
    pub fn fetch_reply(
        &self,
        ks: &KeyspaceSpec,
        key: &[u8],
        object: Option<&StoredObject>,
    ) -> NodeResult<(meridian_core::crdt::Value, Vec<u8>)> {
        Ok(self.keeper.fetch_reply(ks, key, object)?)
    }

    /// Adopts the layout's cluster secret for sealing contexts.
    pub fn set_seal(&self, seal: ContextSeal) {
        self.keeper.set_seal(seal);
    }

    /// The minting actor (this node in its current incarnation).
    pub fn actor(&self) -> ActorId {
        self.keeper.actor()
    }

    /// Mints under `actor` (a new incarnation) from now on.
    pub fn set_actor(&self, actor: ActorId) {
        self.keeper.set_actor(actor);
    }

    /// This replica's stored object for a storage key.
    pub fn local_object(&self, skey: &[u8]) -> NodeResult<Option<StoredObject>> {
        Ok(self.keeper.load(skey)?)
    }

    /// Merges a peer's state of a key (replication, hints, read repair, streaming). Never
    /// mints and never refuses for sibling count: replica sync must always converge.
    pub fn merge_remote(&self, skey: &[u8], encoded: &[u8]) -> NodeResult<bool> {
        let Some((_, ks_id, key)) = parse_storage_key(skey) else {
            return Err(NodeError::InvalidArgument(
                "peer sent a malformed storage key".into(),
            ));
        };
        let _guard = self.locks.lock(key_hash(ks_id, key));
        // Replica copies count toward W, so they are as durable as the coordinator's.
        Ok(self.keeper.merge(skey, encoded, self.syncs_id(ks_id))?)
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
        self.observe(req.change.name(), || self.write_inner(req))
    }

    /// Checks a write as the coordinator would, without applying it (used before forwarding,
    /// so a bad request gets the same error wherever it lands).
    pub fn validate_write(&self, req: &WriteRequest<'_>) -> NodeResult<Arc<KeyspaceSpec>> {
        let ks = self.keyspaces.get(req.keyspace)?;
        check_key(req.key)?;
        match (req.change, ks.kind.crdt()) {
            (Change::Put(v), None) => check_value(req.key, v, ks.max_value_bytes)?,
            (Change::Delete, None) => {}
            (Change::Update(ops), Some(_)) => {
                meridian_core::crdt::check_ops(ops, ks.max_value_bytes as usize)?;
            }
            (Change::Put(_) | Change::Delete, Some(kind)) => {
                return Err(CoreError::WrongCrdtOp {
                    op: req.change.name().into(),
                    kind: format!("{kind} keyspace (it takes {kind} operations with update)"),
                }
                .into());
            }
            (Change::Update(_), None) => {
                return Err(CoreError::WrongCrdtOp {
                    op: "update".into(),
                    kind: format!(
                        "{} keyspace (it takes get, put and delete; CRDT operations need a \
                         keyspace of kind counter, set, map, register, mvregister or flag)",
                        ks.kind
                    ),
                }
                .into());
            }
        }
        self.keeper.open_context(&ks, req.key, req.context)?;
        if !matches!(req.request_id.len(), 0 | 16) {
            return Err(CoreError::MalformedRequestId {
                len: req.request_id.len(),
            }
            .into());
        }
        Ok(ks)
    }

    fn write_inner(&self, req: &WriteRequest<'_>) -> NodeResult<Minted> {
        let ks = self.validate_write(req)?;
        let request_id: [u8; 16] = match req.request_id.len() {
            0 => *uuid::Uuid::new_v4().as_bytes(),
            len => req
                .request_id
                .try_into()
                .map_err(|_| CoreError::MalformedRequestId { len })?,
        };
        let sync = ks.sync_writes.unwrap_or(self.default_sync);
        let value = match req.change {
            Change::Put(v) => Some(v.as_slice()),
            Change::Delete => None,
            Change::Update(ops) => {
                let update = ClientUpdate {
                    key: req.key,
                    ops,
                    context: req.context,
                    request_id,
                };
                let _guard = self.locks.lock(key_hash(ks.id(), req.key));
                let minted = self.keeper.update(&ks, update, wall_ms(), sync)?;
                if minted.duplicate {
                    self.metrics.duplicate_writes.inc();
                }
                return Ok(minted);
            }
        };
        let write = ClientWrite {
            key: req.key,
            value,
            context: req.context,
            request_id,
        };
        let _guard = self.locks.lock(key_hash(ks.id(), req.key));
        match self.keeper.mint(&ks, write, wall_ms(), sync) {
            Ok(minted) if minted.duplicate => {
                self.metrics.duplicate_writes.inc();
                Ok(minted)
            }
            Ok(minted) => {
                self.metrics.siblings.observe(minted.siblings as f64);
                // Once, as the key crosses the threshold: a client write adds at most one.
                if minted.siblings == WARN_SIBLINGS + 1 {
                    self.metrics.sibling_warnings.inc();
                    tracing::warn!(
                        keyspace = %ks.name,
                        key = %String::from_utf8_lossy(req.key),
                        siblings = minted.siblings,
                        limit = ks.max_siblings,
                        "key has many siblings; clients should write back with their read's context"
                    );
                }
                Ok(minted)
            }
            Err(KeeperError::Core(
                e @ (CoreError::TooManySiblings { .. } | CoreError::SiblingsTooLarge { .. }),
            )) => {
                self.metrics.sibling_rejections.inc();
                tracing::warn!(keyspace = %ks.name, error = %e, "write refused");
                Err(e.into())
            }
            Err(e) => Err(e.into()),
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
