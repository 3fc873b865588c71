//! `Client` and its keyspace handles. Every operation is one body in `ops` over an SDK
//! keyspace handle; the classes only parse arguments.

use crate::crdt::{Counter, Flag, Map, Register, Set, Target};
use crate::errors::to_js;
use crate::resolver::{JsResolver, ResolverFn, UpdateFn, call_update};
use crate::values::{
    BytesArg, Fetched, GetResult, KeyspaceInfo, KeyspaceSpec, ReadOpts, WriteOpts, WriteResult,
    context, keyspace_options, millis, read_options, to_bytes, whole, write_options,
};
use meridian_sdk::Resolver;
use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;
use std::sync::Arc;

/// How to connect.
#[napi(object)]
#[derive(Default)]
pub struct ClientOptions {
    /// Per-request deadline in milliseconds (default 5000).
    pub timeout_ms: Option<f64>,
    /// Deadline for opening a connection in milliseconds (default 3000).
    pub connect_timeout_ms: Option<f64>,
    /// Extra attempts for requests that failed with UNAVAILABLE (default 2).
    pub retries: Option<f64>,
    /// The client's datacenter; default: that of the first endpoint that answers.
    pub local_dc: Option<String>,
    /// Let LOCAL_* requests fail over to other datacenters (default false).
    pub failover_to_other_dcs: Option<bool>,
    /// Route each request to a replica of its key (default true).
    pub routing: Option<bool>,
    /// How long a resolver may run in milliseconds (default 1000).
    pub resolver_timeout_ms: Option<f64>,
}

/// A keyspace handle's defaults.
#[napi(object, object_to_js = false)]
pub struct HandleOptions {
    /// Registered with the client for this keyspace.
    pub resolver: Option<ResolverFn>,
    /// Level for every call of the handle.
    pub consistency: Option<String>,
    /// Deadline for every call of the handle, in milliseconds.
    pub timeout_ms: Option<f64>,
}

/// Connects to a cluster; rejects with UNAVAILABLE when no endpoint answers.
#[napi]
pub async fn connect(
    endpoints: Either<String, Vec<String>>,
    options: Option<ClientOptions>,
) -> napi::Result<Client> {
    let endpoints = match endpoints {
        Either::A(one) => vec![one],
        Either::B(many) => many,
    };
    let o = options.unwrap_or_default();
    let mut b = meridian_sdk::Client::builder(endpoints)
        .retries(
            o.retries
                .map(|n| whole("retries", n))
                .transpose()?
                .unwrap_or(2) as usize,
        )
        .failover_to_other_dcs(o.failover_to_other_dcs.unwrap_or(false))
        .routing(o.routing.unwrap_or(true));
    if let Some(t) = millis("timeoutMs", o.timeout_ms)? {
        b = b.timeout(t);
    }
    if let Some(t) = millis("connectTimeoutMs", o.connect_timeout_ms)? {
        b = b.connect_timeout(t);
    }
    if let Some(t) = millis("resolverTimeoutMs", o.resolver_timeout_ms)? {
        b = b.resolver_timeout(t);
    }
    if let Some(dc) = o.local_dc {
        b = b.local_dc(dc);
    }
    let inner = b.connect().await.map_err(to_js)?;
    Ok(Client { inner })
}

/// A connection to a Meridian cluster; every operation returns a Promise.
#[napi]
pub struct Client {
    inner: meridian_sdk::Client,
}

#[napi]
impl Client {
    /// Reads every live sibling of a key.
    #[napi]
    pub async fn get(
        &self,
        keyspace: String,
        key: BytesArg,
        options: Option<ReadOpts>,
    ) -> napi::Result<GetResult> {
        ops::get(self.inner.keyspace(keyspace), key, options).await
    }

    /// Writes a value; with the context of a read it replaces what that read saw.
    #[napi]
    pub async fn put(
        &self,
        keyspace: String,
        key: BytesArg,
        value: BytesArg,
        context: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<WriteResult> {
        ops::put(self.inner.keyspace(keyspace), key, value, context, options).await
    }

    /// Deletes a key; with a context it removes what that read saw.
    #[napi]
    pub async fn delete(
        &self,
        keyspace: String,
        key: BytesArg,
        context: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<WriteResult> {
        ops::delete(self.inner.keyspace(keyspace), key, context, options).await
    }

    /// Applies CRDT operations (JSON form, e.g. [{increment: 5}]) to a key of a CRDT
    /// keyspace, in order and all or none; resolves to the value after them.
    #[napi(
        ts_args_type = "keyspace: string, key: BytesArg, ops: Array<object>, context?: Buffer | undefined | null, options?: WriteOpts | undefined | null"
    )]
    pub async fn apply(
        &self,
        keyspace: String,
        key: BytesArg,
        ops: serde_json::Value,
        context: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<Fetched> {
        ops::apply(self.inner.keyspace(keyspace), key, ops, context, options).await
    }

    /// Reads a key of a CRDT keyspace; a key never updated reads as its type's empty value.
    #[napi]
    pub async fn fetch(
        &self,
        keyspace: String,
        key: BytesArg,
        options: Option<ReadOpts>,
    ) -> napi::Result<Fetched> {
        ops::fetch(self.inner.keyspace(keyspace), key, options).await
    }

    /// Reads a key, merges its siblings with the resolver (or the keyspace's) and writes the
    /// merge back. Resolves to the value, or null for a missing key.
    #[napi]
    pub async fn get_resolved(
        &self,
        keyspace: String,
        key: BytesArg,
        resolver: Option<ResolverFn>,
        options: Option<ReadOpts>,
    ) -> napi::Result<Option<Buffer>> {
        ops::get_resolved(self.inner.keyspace(keyspace), key, resolver, options).await
    }

    /// Read-modify-write: `fn(current) => new value`, or null to delete the key.
    #[napi]
    pub async fn update(
        &self,
        keyspace: String,
        key: BytesArg,
        update: UpdateFn,
        resolver: Option<ResolverFn>,
        options: Option<ReadOpts>,
    ) -> napi::Result<WriteResult> {
        ops::update(
            self.inner.keyspace(keyspace),
            key,
            update,
            resolver,
            options,
        )
        .await
    }

    /// A handle on one keyspace with default options for its calls; `resolver` registers the
    /// keyspace's resolver with the client, for every call that names none.
    #[napi]
    pub fn keyspace(&self, name: String, options: Option<HandleOptions>) -> napi::Result<Keyspace> {
        let mut ks = self.inner.keyspace(name.clone());
        if let Some(o) = options {
            if let Some(r) = o.resolver {
                self.inner.set_resolver(&name, Arc::new(JsResolver(r)));
            }
            ks = ks
                .with_read_options(read_options(Some(ReadOpts {
                    consistency: o.consistency.clone(),
                    timeout_ms: o.timeout_ms,
                }))?)
                .with_write_options(write_options(Some(WriteOpts {
                    consistency: o.consistency,
                    timeout_ms: o.timeout_ms,
                    request_id: None,
                }))?);
        }
        Ok(Keyspace { ks })
    }

    /// A handle on one key of a `counter` keyspace.
    #[napi]
    pub fn counter(&self, keyspace: String, key: BytesArg) -> Counter {
        Counter(self.target(keyspace, key))
    }

    /// A handle on one key of a `set` keyspace.
    #[napi]
    pub fn set(&self, keyspace: String, key: BytesArg) -> Set {
        Set(self.target(keyspace, key))
    }

    /// A handle on one key of a `flag` keyspace.
    #[napi]
    pub fn flag(&self, keyspace: String, key: BytesArg) -> Flag {
        Flag(self.target(keyspace, key))
    }

    /// A handle on one key of a `register` or `mvregister` keyspace.
    #[napi]
    pub fn register(&self, keyspace: String, key: BytesArg) -> Register {
        Register(self.target(keyspace, key))
    }

    /// A handle on one key of a `map` keyspace.
    #[napi]
    pub fn map(&self, keyspace: String, key: BytesArg) -> Map {
        Map(self.target(keyspace, key))
    }

    /// Registers the resolver used for `keyspace` when a call names none (null clears).
    #[napi]
    pub fn set_resolver(&self, keyspace: String, resolver: Option<ResolverFn>) {
        match resolver {
            Some(r) => self.inner.set_resolver(&keyspace, Arc::new(JsResolver(r))),
            None => self.inner.clear_resolver(&keyspace),
        }
    }

    /// Creates a keyspace (idempotent for an identical definition).
    #[napi]
    pub async fn create_keyspace(
        &self,
        name: String,
        spec: Option<KeyspaceSpec>,
    ) -> napi::Result<KeyspaceInfo> {
        let opts = keyspace_options(spec)?;
        self.inner
            .create_keyspace_with(&name, &opts)
            .await
            .map(KeyspaceInfo::from)
            .map_err(to_js)
    }

    /// Every keyspace the cluster knows.
    #[napi]
    pub async fn list_keyspaces(&self) -> napi::Result<Vec<KeyspaceInfo>> {
        let all = self.inner.list_keyspaces().await.map_err(to_js)?;
        Ok(all.into_iter().map(KeyspaceInfo::from).collect())
    }

    /// Ends the client's streams; later calls reject with CANCELLED. Idempotent.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.inner.close().await;
        Ok(())
    }

    /// Whether `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_closed()
    }
}

impl Client {
    fn target(&self, keyspace: String, key: BytesArg) -> Target {
        Target {
            ks: self.inner.keyspace(keyspace),
            key: to_bytes(key),
        }
    }
}

/// A keyspace handle: the client's operations without the keyspace name.
#[napi]
pub struct Keyspace {
    ks: meridian_sdk::Keyspace,
}

#[napi]
impl Keyspace {
    /// The keyspace's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.ks.name().to_string()
    }

    /// Reads every live sibling of a key.
    #[napi]
    pub async fn get(&self, key: BytesArg, options: Option<ReadOpts>) -> napi::Result<GetResult> {
        ops::get(self.ks.clone(), key, options).await
    }

    /// Writes a value; with the context of a read it replaces what that read saw.
    #[napi]
    pub async fn put(
        &self,
        key: BytesArg,
        value: BytesArg,
        context: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<WriteResult> {
        ops::put(self.ks.clone(), key, value, context, options).await
    }

    /// Deletes a key; with a context it removes what that read saw.
    #[napi]
    pub async fn delete(
        &self,
        key: BytesArg,
        context: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<WriteResult> {
        ops::delete(self.ks.clone(), key, context, options).await
    }

    /// Applies CRDT operations (JSON form, e.g. [{increment: 5}]) to a key of this CRDT
    /// keyspace, in order and all or none; resolves to the value after them.
    #[napi(
        ts_args_type = "key: BytesArg, ops: Array<object>, context?: Buffer | undefined | null, options?: WriteOpts | undefined | null"
    )]
    pub async fn apply(
        &self,
        key: BytesArg,
        ops: serde_json::Value,
        context: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<Fetched> {
        ops::apply(self.ks.clone(), key, ops, context, options).await
    }

    /// Reads a key of this CRDT keyspace; a key never updated reads as its type's empty
    /// value.
    #[napi]
    pub async fn fetch(&self, key: BytesArg, options: Option<ReadOpts>) -> napi::Result<Fetched> {
        ops::fetch(self.ks.clone(), key, options).await
    }

    /// Reads a key, merges its siblings and writes the merge back.
    #[napi]
    pub async fn get_resolved(
        &self,
        key: BytesArg,
        resolver: Option<ResolverFn>,
        options: Option<ReadOpts>,
    ) -> napi::Result<Option<Buffer>> {
        ops::get_resolved(self.ks.clone(), key, resolver, options).await
    }

    /// Read-modify-write: `fn(current) => new value`, or null to delete the key.
    #[napi]
    pub async fn update(
        &self,
        key: BytesArg,
        update: UpdateFn,
        resolver: Option<ResolverFn>,
        options: Option<ReadOpts>,
    ) -> napi::Result<WriteResult> {
        ops::update(self.ks.clone(), key, update, resolver, options).await
    }
}

/// The operations, once, over an SDK keyspace handle.
mod ops {
    use super::*;

    /// One level and deadline for the read and the write of a read-modify-write.
    fn both(
        o: Option<ReadOpts>,
    ) -> napi::Result<(meridian_sdk::ReadOptions, meridian_sdk::WriteOptions)> {
        let o = o.unwrap_or_default();
        let write = write_options(Some(WriteOpts {
            consistency: o.consistency.clone(),
            timeout_ms: o.timeout_ms,
            request_id: None,
        }))?;
        Ok((read_options(Some(o))?, write))
    }

    pub(super) async fn apply(
        ks: meridian_sdk::Keyspace,
        key: BytesArg,
        ops: serde_json::Value,
        ctx: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<Fetched> {
        let ops = meridian_sdk::crdt::ops_from_json(&ops).map_err(to_js)?;
        let write = write_options(options)?;
        let ctx = context(ctx);
        ks.apply_with(to_bytes(key), ops, ctx.as_ref(), &write)
            .await
            .map(Fetched::from)
            .map_err(to_js)
    }

    pub(super) async fn fetch(
        ks: meridian_sdk::Keyspace,
        key: BytesArg,
        options: Option<ReadOpts>,
    ) -> napi::Result<Fetched> {
        let read = read_options(options)?;
        ks.fetch_with(to_bytes(key), &read)
            .await
            .map(Fetched::from)
            .map_err(to_js)
    }

    pub(super) async fn get(
        ks: meridian_sdk::Keyspace,
        key: BytesArg,
        options: Option<ReadOpts>,
    ) -> napi::Result<GetResult> {
        let read = read_options(options)?;
        let found = ks.get_with(to_bytes(key), &read).await.map_err(to_js)?;
        Ok(GetResult::from(found))
    }

    pub(super) async fn put(
        ks: meridian_sdk::Keyspace,
        key: BytesArg,
        value: BytesArg,
        ctx: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<WriteResult> {
        let write = write_options(options)?;
        let ctx = context(ctx);
        ks.put_with(to_bytes(key), to_bytes(value), ctx.as_ref(), &write)
            .await
            .map(WriteResult::from)
            .map_err(to_js)
    }

    pub(super) async fn delete(
        ks: meridian_sdk::Keyspace,
        key: BytesArg,
        ctx: Option<Buffer>,
        options: Option<WriteOpts>,
    ) -> napi::Result<WriteResult> {
        let write = write_options(options)?;
        let ctx = context(ctx);
        ks.delete_with(to_bytes(key), ctx.as_ref(), &write)
            .await
            .map(WriteResult::from)
            .map_err(to_js)
    }

    pub(super) async fn get_resolved(
        ks: meridian_sdk::Keyspace,
        key: BytesArg,
        resolver: Option<ResolverFn>,
        options: Option<ReadOpts>,
    ) -> napi::Result<Option<Buffer>> {
        let (read, write) = both(options)?;
        let resolver = resolver.map(JsResolver);
        let value = ks
            .client()
            .get_resolved_with(
                ks.name(),
                to_bytes(key),
                resolver.as_ref().map(|r| r as &dyn Resolver),
                &ks.read_options(&read),
                &ks.write_options(&write),
            )
            .await
            .map_err(to_js)?;
        Ok(value.map(|v| Buffer::from(v.to_vec())))
    }

    pub(super) async fn update(
        ks: meridian_sdk::Keyspace,
        key: BytesArg,
        f: UpdateFn,
        resolver: Option<ResolverFn>,
        options: Option<ReadOpts>,
    ) -> napi::Result<WriteResult> {
        let (read, write) = both(options)?;
        let resolver = resolver.map(JsResolver);
        ks.client()
            .update_with(
                ks.name(),
                to_bytes(key),
                resolver.as_ref().map(|r| r as &dyn Resolver),
                &ks.read_options(&read),
                &ks.write_options(&write),
                |current| async move { call_update(&f, current).await },
            )
            .await
            .map(WriteResult::from)
            .map_err(to_js)
    }
}
