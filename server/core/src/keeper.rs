//! One replica's keys: the write rules of [`replica`](crate::replica) run against a
//! [`Store`], with the replica's actor id, its hybrid logical clock and the cluster's context
//! seal. The node runs it over RocksDB, the simulation over [`MemStore`](crate::store::MemStore):
//! the same code mints and merges in both.
//!
//! Laws:
//! - a write is persisted before its reply exists (the caller replies after `mint` returns);
//! - `merge` never mints and never refuses for sibling count: replica sync always converges;
//! - every timestamp issued is later than every timestamp seen (client contexts, peers'
//!   objects), so a causally later LWW write never loses to what it read;
//! - a client's context is opened against this key's seal before anything uses it.
//!
//! Serialising writes to one key is the caller's job (the node locks the key; the simulation
//! runs in one thread).

use crate::actor::ActorId;
use crate::context::CausalContext;
use crate::crdt::update::{Fetched, Update, UpdateOutcome, apply_update};
use crate::crdt::{CrdtKind, Op, Value};
use crate::error::CoreError;
use crate::keyspace::KeyspaceSpec;
use crate::object::StoredObject;
use crate::partition::{parse_storage_key, storage_key};
use crate::replica::{self, Write, WriteOutcome, WriteReply};
use crate::seal::ContextSeal;
use crate::store::Store;
use crate::version::RequestId;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A key's stored bytes and their decoding.
type Loaded = (Vec<u8>, StoredObject);

/// A failure of the rules (bad input, limits) or of the store underneath.
#[derive(Debug)]
pub enum KeeperError<E> {
    Core(CoreError),
    Store(E),
}

impl<E> From<CoreError> for KeeperError<E> {
    fn from(e: CoreError) -> Self {
        KeeperError::Core(e)
    }
}

/// What a writer gets back: the sealed context and, when values concurrent with the write
/// survived it, every live value that context covers (see [`WriteReply`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteAck {
    pub context: Vec<u8>,
    pub siblings: Vec<Vec<u8>>,
    /// A CRDT update's result: the key's value after it.
    pub value: Option<Value>,
}

/// What a read returns to a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReply {
    pub values: Vec<Vec<u8>>,
    /// Sealed causal context.
    pub context: Vec<u8>,
}

impl ReadReply {
    pub fn found(&self) -> bool {
        !self.values.is_empty()
    }
}

/// A minted write: the writer's reply, and the object every replica must merge.
#[derive(Debug, Clone)]
pub struct Minted {
    pub ack: WriteAck,
    pub storage_key: Vec<u8>,
    /// Encoded object (empty only for a retried write to a key that holds nothing).
    pub object: Vec<u8>,
    /// Versions the key holds now (tombstones included).
    pub siblings: usize,
    /// The request id had been seen: nothing new was minted.
    pub duplicate: bool,
}

/// What a client write does to its key, owned so it can cross tasks and the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(Vec<u8>),
    Delete,
    /// Operations on a key of a CRDT keyspace.
    Update(Vec<Op>),
}

impl Change {
    pub fn name(&self) -> &'static str {
        match self {
            Change::Put(_) => "put",
            Change::Delete => "delete",
            Change::Update(_) => "update",
        }
    }
}

/// A client's CRDT update as the keeper takes it.
#[derive(Debug, Clone, Copy)]
pub struct ClientUpdate<'a> {
    pub key: &'a [u8],
    pub ops: &'a [Op],
    /// Sealed context of a fetch; empty when the client sent none.
    pub context: &'a [u8],
    pub request_id: RequestId,
}

/// A client write as the keeper takes it.
#[derive(Debug, Clone, Copy)]
pub struct ClientWrite<'a> {
    pub key: &'a [u8],
    /// `None` deletes.
    pub value: Option<&'a [u8]>,
    /// Sealed context as the client sent it; empty when it sent none.
    pub context: &'a [u8],
    pub request_id: RequestId,
}

pub struct Keeper<S> {
    store: S,
    /// Changes only to a new incarnation (see [`Keeper::set_actor`]).
    actor: RwLock<ActorId>,
    seal: RwLock<ContextSeal>,
    /// Largest hybrid logical timestamp issued or observed.
    hlc: AtomicU64,
}

/// The CRDT type of a keyspace, or the error for an operation on one of opaque values.
fn crdt_kind(ks: &KeyspaceSpec, op: &str) -> Result<CrdtKind, CoreError> {
    ks.kind.crdt().ok_or_else(|| CoreError::WrongCrdtOp {
        op: op.into(),
        kind: format!(
            "{} keyspace (it takes get, put and delete; CRDT operations need a keyspace of \
             kind counter, set, map, register, mvregister or flag)",
            ks.kind
        ),
    })
}

impl<S: Store> Keeper<S> {
    pub fn new(store: S, actor: ActorId, seal: ContextSeal) -> Self {
        Self {
            store,
            actor: RwLock::new(actor),
            seal: RwLock::new(seal),
            hlc: AtomicU64::new(0),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The minting actor (this node in its current incarnation).
    pub fn actor(&self) -> ActorId {
        *self
            .actor
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Mints under a new actor from now on. Needed whenever this replica may have lost
    /// state it minted: after an unclean stop, and before it deletes partitions it no longer
    /// owns. Its counters there would otherwise start again at dots peers already hold, and
    /// a new value under a reused dot is silently taken for the old, superseded one.
    pub fn set_actor(&self, actor: ActorId) {
        *self
            .actor
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = actor;
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

    /// A client's context for this key, checked against the seal; `None` when it sent none.
    pub fn open_context(
        &self,
        ks: &KeyspaceSpec,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<Option<CausalContext>, CoreError> {
        if bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.sealer().open(ks.id(), key, bytes)?))
    }

    /// What a client sees of a (merged) object of `key`, and how many versions it stores.
    pub fn reply_for(
        &self,
        ks_id: u64,
        key: &[u8],
        object: Option<&StoredObject>,
    ) -> (ReadReply, usize) {
        let view = replica::read(object);
        let reply = ReadReply {
            values: view.values,
            context: self.sealer().seal(ks_id, key, &view.context),
        };
        (reply, view.stored_versions)
    }

    fn ack_for(&self, ks_id: u64, key: &[u8], reply: WriteReply) -> WriteAck {
        WriteAck {
            context: self.sealer().seal(ks_id, key, &reply.context),
            siblings: reply.siblings,
            value: None,
        }
    }

    /// What a fetch of a (merged) object of a CRDT key shows: its value and sealed context.
    pub fn fetch_reply(
        &self,
        ks: &KeyspaceSpec,
        key: &[u8],
        object: Option<&StoredObject>,
    ) -> Result<(Value, Vec<u8>), CoreError> {
        let kind = crdt_kind(ks, "fetch")?;
        let f = crate::crdt::update::fetch(kind, object)?;
        Ok((f.value, self.sealer().seal(ks.id(), key, &f.context)))
    }

    fn update_ack(&self, ks_id: u64, key: &[u8], reply: Fetched) -> WriteAck {
        WriteAck {
            context: self.sealer().seal(ks_id, key, &reply.context),
            siblings: Vec::new(),
            value: Some(reply.value),
        }
    }

    /// Applies a CRDT update as the key's coordinating replica and persists the new state.
    /// The returned object is the update's delta: what every other replica joins.
    pub fn update(
        &self,
        ks: &KeyspaceSpec,
        update: ClientUpdate<'_>,
        wall_ms: u64,
        durable: bool,
    ) -> Result<Minted, KeeperError<S::Error>> {
        let kind = crdt_kind(ks, "update")?;
        let context = self.open_context(ks, update.key, update.context)?;
        if let Some(c) = &context {
            self.observe(c.hlc());
        }
        let skey = storage_key(ks.id(), update.key);
        let (old_bytes, current) = match self.load_raw(&skey)? {
            Some((b, o)) => (Some(b), Some(o)),
            None => (None, None),
        };
        let outcome = apply_update(
            kind,
            current.as_ref(),
            Update {
                actor: self.actor(),
                ops: update.ops,
                context: context.as_ref(),
                request_id: update.request_id,
                timestamp: self.tick(wall_ms),
            },
        )?;
        match outcome {
            UpdateOutcome::Applied {
                object,
                delta,
                reply,
            } => {
                self.observe(object.max_timestamp());
                self.store
                    .replace(&skey, old_bytes.as_deref(), &object.encode(), durable)
                    .map_err(KeeperError::Store)?;
                Ok(Minted {
                    ack: self.update_ack(ks.id(), update.key, reply),
                    storage_key: skey,
                    object: delta.encode(),
                    siblings: 1,
                    duplicate: false,
                })
            }
            UpdateOutcome::Duplicate { reply } => Ok(Minted {
                ack: self.update_ack(ks.id(), update.key, reply),
                storage_key: skey,
                // A retry may follow a partial replication: send the whole state again.
                object: current.map(|o| o.encode()).unwrap_or_default(),
                siblings: 1,
                duplicate: true,
            }),
        }
    }

    pub fn load(&self, skey: &[u8]) -> Result<Option<StoredObject>, KeeperError<S::Error>> {
        Ok(self.load_raw(skey)?.map(|(_, o)| o))
    }

    /// The stored bytes with their decoding: a write replaces exactly these bytes.
    fn load_raw(&self, skey: &[u8]) -> Result<Option<Loaded>, KeeperError<S::Error>> {
        match self.store.get(skey).map_err(KeeperError::Store)? {
            None => Ok(None),
            Some(bytes) => {
                let object = StoredObject::decode(&bytes)?;
                Ok(Some((bytes, object)))
            }
        }
    }

    /// Applies a put or delete as the key's minting replica and persists the result
    /// (`durable`: before returning, fsynced). `wall_ms` is the wall clock now.
    pub fn mint(
        &self,
        ks: &KeyspaceSpec,
        write: ClientWrite<'_>,
        wall_ms: u64,
        durable: bool,
    ) -> Result<Minted, KeeperError<S::Error>> {
        let context = self.open_context(ks, write.key, write.context)?;
        if let Some(c) = &context {
            self.observe(c.hlc());
        }
        let skey = storage_key(ks.id(), write.key);
        let raw = self.load_raw(&skey)?;
        let (old_bytes, current) = match raw {
            Some((b, o)) => (Some(b), Some(o)),
            None => (None, None),
        };
        let outcome = replica::apply_write(
            ks.kind,
            current.as_ref(),
            Write {
                actor: self.actor(),
                context: context.as_ref(),
                data: write.value.map(<[u8]>::to_vec),
                request_id: write.request_id,
                timestamp: self.tick(wall_ms),
                max_siblings: ks.max_siblings as usize,
            },
        )?;
        match outcome {
            WriteOutcome::Applied {
                object,
                reply,
                siblings,
            } => {
                let encoded = object.encode();
                self.store
                    .replace(&skey, old_bytes.as_deref(), &encoded, durable)
                    .map_err(KeeperError::Store)?;
                Ok(Minted {
                    ack: self.ack_for(ks.id(), write.key, reply),
                    storage_key: skey,
                    object: encoded,
                    siblings,
                    duplicate: false,
                })
            }
            WriteOutcome::Duplicate { reply } => {
                // A retry may follow a partial replication: send the current state again.
                let siblings = current
                    .as_ref()
                    .map_or(0, |o| replica::read(Some(o)).stored_versions);
                Ok(Minted {
                    ack: self.ack_for(ks.id(), write.key, reply),
                    storage_key: skey,
                    object: current.map(|o| o.encode()).unwrap_or_default(),
                    siblings,
                    duplicate: true,
                })
            }
        }
    }

    /// Merges a peer's state of a key (replication, hints, read repair, streaming). Returns
    /// whether anything changed.
    pub fn merge(
        &self,
        skey: &[u8],
        encoded: &[u8],
        durable: bool,
    ) -> Result<bool, KeeperError<S::Error>> {
        let incoming = StoredObject::decode(encoded)?;
        self.observe(incoming.max_timestamp());
        match parse_storage_key(skey) {
            None => {
                return Err(CoreError::MalformedStorageKey(format!(
                    "{} bytes from a peer",
                    skey.len()
                ))
                .into());
            }
            // Stored under another partition than its hash gives, a key would be invisible
            // to reads and a stranger to every Merkle leaf.
            Some((p, ks, key)) if crate::partition::partition_of(ks, key) != p => {
                return Err(CoreError::MalformedStorageKey(format!(
                    "a key of partition {} stored under partition {p}",
                    crate::partition::partition_of(ks, key)
                ))
                .into());
            }
            Some(_) => {}
        }
        let (old_bytes, merged) = match self.load_raw(skey)? {
            Some((bytes, current)) => {
                let merged = current.merge(&incoming)?;
                if merged.replicated_bytes() == current.replicated_bytes() {
                    return Ok(false);
                }
                (Some(bytes), merged)
            }
            None => (None, incoming),
        };
        self.store
            .replace(skey, old_bytes.as_deref(), &merged.encode(), durable)
            .map_err(KeeperError::Store)?;
        Ok(true)
    }

    /// Removes a key if it still holds exactly the tombstone `candidate` names (see
    /// [`crate::tombstones`]).
    pub fn purge(
        &self,
        candidate: &crate::tombstones::Candidate,
        durable: bool,
    ) -> Result<crate::tombstones::Purge, KeeperError<S::Error>> {
        use crate::tombstones::{Purge, digest, is_dead};
        let Some((bytes, object)) = self.load_raw(&candidate.storage_key)? else {
            return Ok(Purge::Absent);
        };
        if digest(&bytes) != candidate.digest || !is_dead(&object, u64::MAX, 0) {
            return Ok(Purge::Kept);
        }
        self.store
            .delete(&candidate.storage_key, &bytes, durable)
            .map_err(KeeperError::Store)?;
        Ok(Purge::Removed)
    }

    /// Makes every later timestamp larger than `ts`.
    pub fn observe(&self, ts: u64) {
        self.hlc.fetch_max(ts, Ordering::Relaxed);
    }

    fn tick(&self, wall_ms: u64) -> u64 {
        let mut last = self.hlc.load(Ordering::Relaxed);
        loop {
            let next = crate::hlc::tick(last, wall_ms);
            match self
                .hlc
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}
