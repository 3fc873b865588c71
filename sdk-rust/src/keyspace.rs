//! A handle on one keyspace: the calls of [`Client`] without repeating the name, with
//! default options that every call of the handle uses.
//!
//! Bindings hand these out as `client.keyspace("carts")`, so the defaults live here once.

use crate::client::{Client, GetResult, WriteResult};
use crate::context::Context;
use crate::error::Result;
use crate::options::{ReadOptions, WriteOptions};
use crate::resolver::Resolver;
use bytes::Bytes;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Keyspace {
    client: Client,
    name: Arc<str>,
    read: ReadOptions,
    write: WriteOptions,
}

impl Client {
    /// A handle on `name`, sharing this client's streams.
    pub fn keyspace(&self, name: impl Into<Arc<str>>) -> Keyspace {
        Keyspace {
            client: self.clone(),
            name: name.into(),
            read: ReadOptions::default(),
            write: WriteOptions::default(),
        }
    }
}

impl Keyspace {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Options for reads through this handle (a call's own options win field by field).
    pub fn with_read_options(mut self, read: ReadOptions) -> Self {
        self.read = read;
        self
    }

    /// Options for writes through this handle; the request id is always the call's own.
    pub fn with_write_options(mut self, write: WriteOptions) -> Self {
        self.write = WriteOptions {
            request_id: None,
            ..write
        };
        self
    }

    /// Registers the keyspace's resolver with the client (see [`Client::set_resolver`]).
    pub fn with_resolver(self, resolver: Arc<dyn Resolver>) -> Self {
        self.client.set_resolver(&self.name, resolver);
        self
    }

    /// This handle's read defaults under a call's own options.
    pub fn read_options(&self, call: &ReadOptions) -> ReadOptions {
        ReadOptions {
            consistency: call.consistency.or(self.read.consistency),
            timeout: call.timeout.or(self.read.timeout),
        }
    }

    /// This handle's write defaults under a call's own options.
    pub fn write_options(&self, call: &WriteOptions) -> WriteOptions {
        WriteOptions {
            consistency: call.consistency.or(self.write.consistency),
            timeout: call.timeout.or(self.write.timeout),
            request_id: call.request_id,
        }
    }

    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<GetResult> {
        self.get_with(key, &ReadOptions::default()).await
    }

    pub async fn get_with(&self, key: impl AsRef<[u8]>, opts: &ReadOptions) -> Result<GetResult> {
        self.client
            .get_with(&self.name, key, &self.read_options(opts))
            .await
    }

    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
    ) -> Result<WriteResult> {
        self.put_with(key, value, context, &WriteOptions::default())
            .await
    }

    pub async fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        context: Option<&Context>,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        self.client
            .put_with(&self.name, key, value, context, &self.write_options(opts))
            .await
    }

    pub async fn delete(
        &self,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
    ) -> Result<WriteResult> {
        self.delete_with(key, context, &WriteOptions::default())
            .await
    }

    pub async fn delete_with(
        &self,
        key: impl AsRef<[u8]>,
        context: Option<&Context>,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        self.client
            .delete_with(&self.name, key, context, &self.write_options(opts))
            .await
    }

    /// See [`Client::get_resolved`].
    pub async fn get_resolved(
        &self,
        key: impl AsRef<[u8]>,
        resolver: Option<&dyn Resolver>,
    ) -> Result<Option<Bytes>> {
        self.client
            .get_resolved_with(&self.name, key, resolver, &self.read, &self.write)
            .await
    }

    /// See [`Client::update`].
    pub async fn update<F>(
        &self,
        key: impl AsRef<[u8]>,
        resolver: Option<&dyn Resolver>,
        f: F,
    ) -> Result<WriteResult>
    where
        F: FnOnce(Option<Bytes>) -> Option<Bytes>,
    {
        self.client
            .update_with(&self.name, key, resolver, &self.read, &self.write, |v| {
                std::future::ready(Ok(f(v)))
            })
            .await
    }
}
