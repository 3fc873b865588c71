//! CRDT keyspaces: values the servers merge, with typed handles.
//!
//! ```no_run
//! # async fn demo(client: meridian_sdk::Client) -> Result<(), meridian_sdk::Error> {
//! let visits = client.counter("stats", "page:home");
//! visits.increment(1).await?;
//! let cart = client.set("carts", "user:7");
//! cart.add(["apples", "pears"]).await?;
//! let seen = cart.fetch().await?;
//! cart.remove_seen(["pears"], &seen.context).await?;
//! # Ok(()) }
//! ```

use crate::client::{Client, consistency, request_id, unexpected};
use crate::context::Context;
use crate::error::{Error, ErrorCode, Result};
use crate::options::{ReadOptions, WriteOptions};
use bytes::Bytes;
pub use meridian_core::crdt::{CrdtKind, Field, Op, Value};
use meridian_proto::v1 as pb;
use serde_bytes::ByteBuf;

/// A CRDT key's value and the context that scopes later removes to what it showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub value: Value,
    pub context: Context,
}

fn decode(value: Option<pb::CrdtValue>, context: Bytes) -> Result<Fetched> {
    let value = value.ok_or_else(unexpected)?;
    let value = meridian_proto::crdt::value_from_wire(value)
        .map_err(|e| Error::new(ErrorCode::Internal, format!("server sent {e}")))?;
    Ok(Fetched {
        value,
        context: Context(context),
    })
}

fn elements<I, E>(items: I) -> Vec<ByteBuf>
where
    I: IntoIterator<Item = E>,
    E: AsRef<[u8]>,
{
    items
        .into_iter()
        .map(|e| ByteBuf::from(e.as_ref().to_vec()))
        .collect()
}

impl Client {
    /// Applies operations (the protocol's `Update`) to a key of a CRDT keyspace, in order and all or none. With the
    /// context of a fetch, removes take away only what that fetch showed. Returns the value
    /// after the update.
    pub async fn apply(
        &self,
        keyspace: &str,
        key: impl AsRef<[u8]>,
        ops: Vec<Op>,
        context: Option<&Context>,
    ) -> Result<Fetched> {
        self.apply_with(keyspace, key, ops, context, &WriteOptions::default())
            .await
    }

    pub async fn apply_with(
        &self,
        keyspace: &str,
        key: impl AsRef<[u8]>,
        ops: Vec<Op>,
        context: Option<&Context>,
        opts: &WriteOptions,
    ) -> Result<Fetched> {
        let op = pb::operation::Op::Update(pb::UpdateRequest {
            keyspace: keyspace.to_string(),
            key: Bytes::copy_from_slice(key.as_ref()),
            ops: ops.iter().map(meridian_proto::crdt::op_to_wire).collect(),
            context: context.map(|c| c.0.clone()).unwrap_or_default(),
            request_id: request_id(opts.request_id),
            consistency: consistency(opts.consistency),
            w: 0,
        });
        match self.execute(op, opts.timeout).await?.result {
            Some(pb::operation_result::Result::Update(u)) => decode(u.value, u.context),
            _ => Err(unexpected()),
        }
    }

    /// Reads a key of a CRDT keyspace; a key never updated reads as its type's empty value.
    pub async fn fetch(&self, keyspace: &str, key: impl AsRef<[u8]>) -> Result<Fetched> {
        self.fetch_with(keyspace, key, &ReadOptions::default())
            .await
    }

    pub async fn fetch_with(
        &self,
        keyspace: &str,
        key: impl AsRef<[u8]>,
        opts: &ReadOptions,
    ) -> Result<Fetched> {
        let op = pb::operation::Op::Fetch(pb::FetchRequest {
            keyspace: keyspace.to_string(),
            key: Bytes::copy_from_slice(key.as_ref()),
            consistency: consistency(opts.consistency),
            r: 0,
        });
        match self.execute(op, opts.timeout).await?.result {
            Some(pb::operation_result::Result::Fetch(f)) => decode(f.value, f.context),
            _ => Err(unexpected()),
        }
    }

    /// A handle on one key of a `counter` keyspace.
    pub fn counter(&self, keyspace: &str, key: impl AsRef<[u8]>) -> Counter {
        Counter(self.handle(keyspace, key))
    }

    /// A handle on one key of a `set` keyspace.
    pub fn set(&self, keyspace: &str, key: impl AsRef<[u8]>) -> Set {
        Set(self.handle(keyspace, key))
    }

    /// A handle on one key of a `flag` keyspace.
    pub fn flag(&self, keyspace: &str, key: impl AsRef<[u8]>) -> Flag {
        Flag(self.handle(keyspace, key))
    }

    /// A handle on one key of a `register` or `mvregister` keyspace.
    pub fn register(&self, keyspace: &str, key: impl AsRef<[u8]>) -> Register {
        Register(self.handle(keyspace, key))
    }

    /// A handle on one key of a `map` keyspace.
    pub fn map(&self, keyspace: &str, key: impl AsRef<[u8]>) -> Map {
        Map(self.handle(keyspace, key))
    }

    fn handle(&self, keyspace: &str, key: impl AsRef<[u8]>) -> Handle {
        Handle {
            client: self.clone(),
            keyspace: keyspace.to_string(),
            key: Bytes::copy_from_slice(key.as_ref()),
        }
    }
}

impl crate::Keyspace {
    /// [`Client::apply_with`] on this keyspace, under the handle's write defaults.
    pub async fn apply_with(
        &self,
        key: impl AsRef<[u8]>,
        ops: Vec<Op>,
        context: Option<&Context>,
        opts: &WriteOptions,
    ) -> Result<Fetched> {
        self.client()
            .apply_with(self.name(), key, ops, context, &self.write_options(opts))
            .await
    }

    /// [`Client::fetch_with`] on this keyspace, under the handle's read defaults.
    pub async fn fetch_with(&self, key: impl AsRef<[u8]>, opts: &ReadOptions) -> Result<Fetched> {
        self.client()
            .fetch_with(self.name(), key, &self.read_options(opts))
            .await
    }
}

/// Operations from their JSON form (the HTTP API's, see the README): how the Python and
/// Node.js bindings take them, so the form is parsed in one place.
pub fn ops_from_json(json: &serde_json::Value) -> Result<Vec<Op>> {
    meridian_proto::crdt_json::ops_from_json(json)
        .map_err(|e| Error::new(ErrorCode::InvalidArgument, e))
}

/// A value in its JSON form: a counter is a number, a set an array, a map an object of
/// `"name:kind"` fields; bytes are strings, or `{"base64": ...}` when not UTF-8.
pub fn value_to_json(value: &Value) -> serde_json::Value {
    meridian_proto::crdt_json::value_to_json(value)
}

/// One key of a CRDT keyspace; the typed handles wrap it.
#[derive(Clone)]
struct Handle {
    client: Client,
    keyspace: String,
    key: Bytes,
}

impl Handle {
    async fn update(&self, ops: Vec<Op>, context: Option<&Context>) -> Result<Fetched> {
        self.client
            .apply(&self.keyspace, &self.key, ops, context)
            .await
    }

    async fn fetch(&self) -> Result<Fetched> {
        self.client.fetch(&self.keyspace, &self.key).await
    }
}

fn kind_error(want: &str, got: &Value) -> Error {
    Error::new(
        ErrorCode::Internal,
        format!("expected a {want} value, the server sent {got:?}"),
    )
}

fn counter_of(f: Fetched) -> Result<i64> {
    match f.value {
        Value::Counter(n) => Ok(n),
        other => Err(kind_error("counter", &other)),
    }
}

fn members_of(f: Fetched) -> Result<Vec<Bytes>> {
    match f.value {
        Value::Set(m) => Ok(m.into_iter().map(|b| Bytes::from(b.into_vec())).collect()),
        other => Err(kind_error("set", &other)),
    }
}

fn flag_of(f: Fetched) -> Result<bool> {
    match f.value {
        Value::Flag(b) => Ok(b),
        other => Err(kind_error("flag", &other)),
    }
}

/// A counter: increments from every datacenter add up.
#[derive(Clone)]
pub struct Counter(Handle);

impl Counter {
    /// Adds `by` (negative decrements); returns the value after it, as the coordinating
    /// replica sees it.
    pub async fn increment(&self, by: i64) -> Result<i64> {
        counter_of(self.0.update(vec![Op::Increment(by)], None).await?)
    }

    pub async fn decrement(&self, by: i64) -> Result<i64> {
        let by = by.checked_neg().ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidArgument,
                format!("cannot decrement by {by}: its negation does not fit in an i64"),
            )
        })?;
        self.increment(by).await
    }

    pub async fn value(&self) -> Result<i64> {
        counter_of(self.0.fetch().await?)
    }
}

/// An add-wins set: a remove takes away the adds it saw, never a concurrent one.
#[derive(Clone)]
pub struct Set(Handle);

impl Set {
    /// Adds elements; returns the members after it.
    pub async fn add<I, E>(&self, items: I) -> Result<Vec<Bytes>>
    where
        I: IntoIterator<Item = E>,
        E: AsRef<[u8]>,
    {
        members_of(self.0.update(vec![Op::Add(elements(items))], None).await?)
    }

    /// Removes elements as the coordinating replica holds them now.
    pub async fn remove<I, E>(&self, items: I) -> Result<Vec<Bytes>>
    where
        I: IntoIterator<Item = E>,
        E: AsRef<[u8]>,
    {
        members_of(
            self.0
                .update(vec![Op::Remove(elements(items))], None)
                .await?,
        )
    }

    /// Removes the adds of these elements that a fetch showed; adds it did not see stay.
    pub async fn remove_seen<I, E>(&self, items: I, seen: &Context) -> Result<Vec<Bytes>>
    where
        I: IntoIterator<Item = E>,
        E: AsRef<[u8]>,
    {
        members_of(
            self.0
                .update(vec![Op::Remove(elements(items))], Some(seen))
                .await?,
        )
    }

    pub async fn members(&self) -> Result<Vec<Bytes>> {
        members_of(self.0.fetch().await?)
    }

    /// The members with the context for [`Set::remove_seen`].
    pub async fn fetch(&self) -> Result<Fetched> {
        self.0.fetch().await
    }
}

/// An enable-wins flag.
#[derive(Clone)]
pub struct Flag(Handle);

impl Flag {
    pub async fn enable(&self) -> Result<bool> {
        flag_of(self.0.update(vec![Op::Enable], None).await?)
    }

    pub async fn disable(&self) -> Result<bool> {
        flag_of(self.0.update(vec![Op::Disable], None).await?)
    }

    pub async fn get(&self) -> Result<bool> {
        flag_of(self.0.fetch().await?)
    }
}

/// A register: last writer wins in a `register` keyspace; concurrent values are all kept
/// in an `mvregister` one.
#[derive(Clone)]
pub struct Register(Handle);

impl Register {
    /// Assigns a value, replacing what the coordinating replica holds (or, with a context,
    /// what that fetch showed).
    pub async fn assign(&self, value: impl AsRef<[u8]>, seen: Option<&Context>) -> Result<Fetched> {
        let v = ByteBuf::from(value.as_ref().to_vec());
        self.0.update(vec![Op::Assign(v)], seen).await
    }

    /// The value and context; `Value::Register` or `Value::MvRegister` by keyspace kind.
    pub async fn fetch(&self) -> Result<Fetched> {
        self.0.fetch().await
    }
}

/// A map of named, typed fields, each a CRDT of its own.
#[derive(Clone)]
pub struct Map(Handle);

impl Map {
    /// Applies field operations ([`Op::Update`], [`Op::RemoveField`]) all or none.
    pub async fn update(&self, ops: Vec<Op>, seen: Option<&Context>) -> Result<Fetched> {
        self.0.update(ops, seen).await
    }

    pub async fn fetch(&self) -> Result<Fetched> {
        self.0.fetch().await
    }
}
