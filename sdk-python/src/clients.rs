//! `Client` and `AsyncClient`, and their keyspace handles. The two clients differ only in how
//! they run an operation (the `Runner`), so their methods are written once, in the macros
//! below, over the operations in `ops.rs`.

use crate::crdt;
use crate::errors::invalid;
use crate::ops::{self, Asyncio, Blocking, Runner};
use crate::values::{keyspace_options, read_options, to_bytes, write_options};
use meridian_sdk::ClientBuilder;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use std::collections::BTreeMap;
use std::time::Duration;

#[allow(clippy::too_many_arguments)]
fn builder(
    endpoints: &Bound<'_, PyAny>,
    timeout: f64,
    connect_timeout: f64,
    retries: usize,
    local_dc: Option<String>,
    failover_to_other_dcs: bool,
    routing: bool,
    resolver_timeout: f64,
) -> PyResult<ClientBuilder> {
    let endpoints: Vec<String> = if let Ok(one) = endpoints.cast::<PyString>() {
        vec![one.to_cow()?.into_owned()]
    } else if let Ok(many) = endpoints.cast::<PyList>() {
        many.extract()?
    } else {
        endpoints.extract().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(
                "endpoints must be a str or a list of str, e.g. \"http://127.0.0.1:7070\"",
            )
        })?
    };
    let secs = |what: &str, s: f64| -> PyResult<Duration> {
        crate::values::seconds(what, Some(s))?
            .ok_or_else(|| invalid(format!("{what} must be a positive number of seconds")))
    };
    let mut b = meridian_sdk::Client::builder(endpoints)
        .timeout(secs("timeout", timeout)?)
        .connect_timeout(secs("connect_timeout", connect_timeout)?)
        .retries(retries)
        .failover_to_other_dcs(failover_to_other_dcs)
        .routing(routing)
        .resolver_timeout(secs("resolver_timeout", resolver_timeout)?);
    if let Some(dc) = local_dc {
        b = b.local_dc(dc);
    }
    Ok(b)
}

/// The methods of a client class: `$runner` decides blocking or awaitable; `$handle` is the
/// keyspace handle class it hands out; `$($extra)*` are the class's own methods
/// (construction, close, context manager).
macro_rules! client_methods {
    ($class:ident, $runner:ty, $handle:ident, [$counter:ty, $set:ty, $flag:ty, $register:ty, $map:ty], { $($extra:tt)* }) => {
        #[pymethods]
        impl $class {
            $($extra)*

            /// A handle on one key of a `counter` keyspace.
            fn counter(&self, keyspace: &str, key: &Bound<'_, PyAny>) -> PyResult<$counter> {
                Ok(<$counter>::new(self.inner.keyspace(keyspace), to_bytes("key", key)?))
            }

            /// A handle on one key of a `set` keyspace.
            fn set(&self, keyspace: &str, key: &Bound<'_, PyAny>) -> PyResult<$set> {
                Ok(<$set>::new(self.inner.keyspace(keyspace), to_bytes("key", key)?))
            }

            /// A handle on one key of a `flag` keyspace.
            fn flag(&self, keyspace: &str, key: &Bound<'_, PyAny>) -> PyResult<$flag> {
                Ok(<$flag>::new(self.inner.keyspace(keyspace), to_bytes("key", key)?))
            }

            /// A handle on one key of a `register` or `mvregister` keyspace.
            fn register(&self, keyspace: &str, key: &Bound<'_, PyAny>) -> PyResult<$register> {
                Ok(<$register>::new(self.inner.keyspace(keyspace), to_bytes("key", key)?))
            }

            /// A handle on one key of a `map` keyspace.
            fn map(&self, keyspace: &str, key: &Bound<'_, PyAny>) -> PyResult<$map> {
                Ok(<$map>::new(self.inner.keyspace(keyspace), to_bytes("key", key)?))
            }

            /// Reads every live sibling of a key.
            #[pyo3(signature = (keyspace, key, *, consistency=None, timeout=None))]
            fn get<'py>(
                &self,
                py: Python<'py>,
                keyspace: &str,
                key: &Bound<'py, PyAny>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.handle(keyspace).get(py, key, consistency, timeout)
            }

            /// Writes a value; with the context of a read it replaces what that read saw.
            #[pyo3(signature = (keyspace, key, value, context=None, *, consistency=None, timeout=None, request_id=None))]
            #[allow(clippy::too_many_arguments)]
            fn put<'py>(
                &self,
                py: Python<'py>,
                keyspace: &str,
                key: &Bound<'py, PyAny>,
                value: &Bound<'py, PyAny>,
                context: Option<&Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.handle(keyspace)
                    .put(py, key, value, context, consistency, timeout, request_id)
            }

            /// Deletes a key; with a context it removes what that read saw.
            #[pyo3(signature = (keyspace, key, context=None, *, consistency=None, timeout=None, request_id=None))]
            #[allow(clippy::too_many_arguments)]
            fn delete<'py>(
                &self,
                py: Python<'py>,
                keyspace: &str,
                key: &Bound<'py, PyAny>,
                context: Option<&Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.handle(keyspace)
                    .delete(py, key, context, consistency, timeout, request_id)
            }

            /// Applies CRDT operations (JSON form, e.g. [{"increment": 5}]) to a key of a CRDT
            /// keyspace, in order and all or none; returns the value after them.
            #[pyo3(signature = (keyspace, key, ops, context=None, *, consistency=None, timeout=None, request_id=None))]
            #[allow(clippy::too_many_arguments)]
            fn apply<'py>(
                &self,
                py: Python<'py>,
                keyspace: &str,
                key: &Bound<'py, PyAny>,
                ops: &Bound<'py, PyAny>,
                context: Option<&Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.handle(keyspace)
                    .apply(py, key, ops, context, consistency, timeout, request_id)
            }

            /// Reads a key of a CRDT keyspace; a key never updated reads as its type's empty value.
            #[pyo3(signature = (keyspace, key, *, consistency=None, timeout=None))]
            fn fetch<'py>(
                &self,
                py: Python<'py>,
                keyspace: &str,
                key: &Bound<'py, PyAny>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.handle(keyspace).fetch(py, key, consistency, timeout)
            }

            /// Reads a key, merges its siblings with the resolver and writes the merge back.
            #[pyo3(signature = (keyspace, key, resolver=None, *, consistency=None, timeout=None))]
            fn get_resolved<'py>(
                &self,
                py: Python<'py>,
                keyspace: &str,
                key: &Bound<'py, PyAny>,
                resolver: Option<Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.handle(keyspace)
                    .get_resolved(py, key, resolver, consistency, timeout)
            }

            /// Read-modify-write: `fn(current) -> new value`, or None to delete.
            #[pyo3(signature = (keyspace, key, fn_, resolver=None, *, consistency=None, timeout=None))]
            #[allow(clippy::too_many_arguments)]
            fn update<'py>(
                &self,
                py: Python<'py>,
                keyspace: &str,
                key: &Bound<'py, PyAny>,
                fn_: Bound<'py, PyAny>,
                resolver: Option<Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.handle(keyspace)
                    .update(py, key, fn_, resolver, consistency, timeout)
            }

            /// A handle on one keyspace with default options for its calls; `resolver` registers the
            /// keyspace's resolver with the client, for every call that names none.
            #[pyo3(signature = (name, *, resolver=None, consistency=None, timeout=None))]
            fn keyspace(
                &self,
                name: &str,
                resolver: Option<Bound<'_, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<$handle> {
                if resolver.is_some() {
                    self.set_resolver(name, resolver)?;
                }
                let ks = self
                    .inner
                    .keyspace(name)
                    .with_read_options(read_options(consistency, timeout)?)
                    .with_write_options(write_options(consistency, timeout, None)?);
                Ok($handle { ks })
            }

            /// Registers the resolver used for `keyspace` when a call names none (None clears).
            fn set_resolver(&self, keyspace: &str, resolver: Option<Bound<'_, PyAny>>) -> PyResult<()> {
                match crate::resolver::resolver(resolver, <$runner>::MODE)? {
                    Some(r) => self.inner.set_resolver(keyspace, std::sync::Arc::new(r)),
                    None => self.inner.clear_resolver(keyspace),
                }
                Ok(())
            }

            /// Creates a keyspace (idempotent for an identical definition).
            #[pyo3(signature = (name, *, kind="siblings", replication=None, read_consistency=None, write_consistency=None, max_value_bytes=None, max_siblings=None))]
            #[allow(clippy::too_many_arguments)]
            fn create_keyspace<'py>(
                &self,
                py: Python<'py>,
                name: String,
                kind: &str,
                replication: Option<BTreeMap<String, u32>>,
                read_consistency: Option<&str>,
                write_consistency: Option<&str>,
                max_value_bytes: Option<u32>,
                max_siblings: Option<u32>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let opts = keyspace_options(
                    kind,
                    replication,
                    read_consistency,
                    write_consistency,
                    max_value_bytes,
                    max_siblings,
                )?;
                <$runner>::run(py, ops::create_keyspace(self.inner.clone(), name, opts))
            }

            /// Every keyspace the cluster knows.
            fn list_keyspaces<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                <$runner>::run(py, ops::list_keyspaces(self.inner.clone()))
            }

            /// Ends the client's streams; later calls raise Cancelled. Idempotent.
            fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                <$runner>::run(py, ops::close(self.inner.clone()))
            }

            /// Whether `close()` was called.
            #[getter]
            fn closed(&self) -> bool {
                self.inner.is_closed()
            }

            fn __repr__(&self) -> String {
                format!("{}({:?})", stringify!($class), self.inner)
            }
        }

        impl $class {
            fn handle(&self, keyspace: &str) -> $handle {
                $handle {
                    ks: self.inner.keyspace(keyspace),
                }
            }
        }

        #[pymethods]
        impl $handle {
            /// The keyspace's name.
            #[getter]
            fn name(&self) -> &str {
                self.ks.name()
            }

            /// Applies CRDT operations (JSON form, e.g. [{"increment": 5}]) to a key of this
            /// CRDT keyspace, in order and all or none; returns the value after them.
            #[pyo3(signature = (key, ops, context=None, *, consistency=None, timeout=None, request_id=None))]
            #[allow(clippy::too_many_arguments)]
            fn apply<'py>(
                &self,
                py: Python<'py>,
                key: &Bound<'py, PyAny>,
                ops: &Bound<'py, PyAny>,
                context: Option<&Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let fut = ops::apply(
                    self.ks.clone(),
                    to_bytes("key", key)?,
                    crate::values::crdt_ops(ops)?,
                    crate::values::context(context)?,
                    write_options(consistency, timeout, request_id)?,
                );
                <$runner>::run(py, fut)
            }

            /// Reads a key of this CRDT keyspace; a key never updated reads as its type's empty
            /// value.
            #[pyo3(signature = (key, *, consistency=None, timeout=None))]
            fn fetch<'py>(
                &self,
                py: Python<'py>,
                key: &Bound<'py, PyAny>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let fut = ops::fetch(
                    self.ks.clone(),
                    to_bytes("key", key)?,
                    read_options(consistency, timeout)?,
                );
                <$runner>::run(py, fut)
            }

            /// Reads every live sibling of a key.
            #[pyo3(signature = (key, *, consistency=None, timeout=None))]
            fn get<'py>(
                &self,
                py: Python<'py>,
                key: &Bound<'py, PyAny>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let fut = ops::get(
                    self.ks.clone(),
                    to_bytes("key", key)?,
                    read_options(consistency, timeout)?,
                );
                <$runner>::run(py, fut)
            }

            /// Writes a value; with the context of a read it replaces what that read saw.
            #[pyo3(signature = (key, value, context=None, *, consistency=None, timeout=None, request_id=None))]
            #[allow(clippy::too_many_arguments)]
            fn put<'py>(
                &self,
                py: Python<'py>,
                key: &Bound<'py, PyAny>,
                value: &Bound<'py, PyAny>,
                context: Option<&Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let fut = ops::put(
                    self.ks.clone(),
                    to_bytes("key", key)?,
                    to_bytes("value", value)?,
                    crate::values::context(context)?,
                    write_options(consistency, timeout, request_id)?,
                );
                <$runner>::run(py, fut)
            }

            /// Deletes a key; with a context it removes what that read saw.
            #[pyo3(signature = (key, context=None, *, consistency=None, timeout=None, request_id=None))]
            fn delete<'py>(
                &self,
                py: Python<'py>,
                key: &Bound<'py, PyAny>,
                context: Option<&Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let fut = ops::delete(
                    self.ks.clone(),
                    to_bytes("key", key)?,
                    crate::values::context(context)?,
                    write_options(consistency, timeout, request_id)?,
                );
                <$runner>::run(py, fut)
            }

            /// Reads a key, merges its siblings with the resolver (or the keyspace's) and
            /// writes the merge back. Returns the value, or None for a missing key.
            #[pyo3(signature = (key, resolver=None, *, consistency=None, timeout=None))]
            fn get_resolved<'py>(
                &self,
                py: Python<'py>,
                key: &Bound<'py, PyAny>,
                resolver: Option<Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let fut = ops::get_resolved(
                    self.ks.clone(),
                    to_bytes("key", key)?,
                    crate::resolver::resolver(resolver, <$runner>::MODE)?,
                    read_options(consistency, timeout)?,
                    write_options(consistency, timeout, None)?,
                );
                <$runner>::run(py, fut)
            }

            /// Read-modify-write: `fn_(current) -> new value`, or None to delete the key.
            #[pyo3(signature = (key, fn_, resolver=None, *, consistency=None, timeout=None))]
            fn update<'py>(
                &self,
                py: Python<'py>,
                key: &Bound<'py, PyAny>,
                fn_: Bound<'py, PyAny>,
                resolver: Option<Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                if !fn_.is_callable() {
                    return Err(pyo3::exceptions::PyTypeError::new_err(
                        "update needs a callable: current value (bytes or None) -> new value, or None to delete",
                    ));
                }
                let fut = ops::update(
                    self.ks.clone(),
                    to_bytes("key", key)?,
                    fn_.unbind(),
                    <$runner>::MODE,
                    crate::resolver::resolver(resolver, <$runner>::MODE)?,
                    read_options(consistency, timeout)?,
                    write_options(consistency, timeout, None)?,
                );
                <$runner>::run(py, fut)
            }

            fn __repr__(&self) -> String {
                format!("{}({:?})", stringify!($handle), self.ks.name())
            }
        }
    };
}

/// A blocking client: each call waits on the calling thread with the GIL released, so one
/// client can be shared by many threads.
#[pyclass(frozen, module = "meridian")]
pub struct Client {
    inner: meridian_sdk::Client,
}

/// A keyspace handle of a `Client`.
#[pyclass(frozen, module = "meridian")]
pub struct Keyspace {
    ks: meridian_sdk::Keyspace,
}

/// An asyncio client: every operation returns an awaitable. Create with
/// `await AsyncClient.connect(...)`.
#[pyclass(frozen, module = "meridian")]
pub struct AsyncClient {
    inner: meridian_sdk::Client,
}

/// A keyspace handle of an `AsyncClient`.
#[pyclass(frozen, module = "meridian")]
pub struct AsyncKeyspace {
    ks: meridian_sdk::Keyspace,
}

client_methods!(
    Client,
    Blocking,
    Keyspace,
    [
        crdt::Counter,
        crdt::Set,
        crdt::Flag,
        crdt::Register,
        crdt::Map
    ],
    {
        /// Connects to a cluster; fails here (Unavailable) when no endpoint answers.
        #[new]
        #[pyo3(signature = (endpoints, *, timeout=5.0, connect_timeout=3.0, retries=2, local_dc=None, failover_to_other_dcs=false, routing=true, resolver_timeout=1.0))]
        #[allow(clippy::too_many_arguments)]
        fn new(
            py: Python<'_>,
            endpoints: &Bound<'_, PyAny>,
            timeout: f64,
            connect_timeout: f64,
            retries: usize,
            local_dc: Option<String>,
            failover_to_other_dcs: bool,
            routing: bool,
            resolver_timeout: f64,
        ) -> PyResult<Self> {
            let b = builder(
                endpoints,
                timeout,
                connect_timeout,
                retries,
                local_dc,
                failover_to_other_dcs,
                routing,
                resolver_timeout,
            )?;
            let inner = ops::block_on(py, async move {
                b.connect().await.map_err(crate::errors::to_py)
            })?;
            Ok(Client { inner })
        }

        fn __enter__(slf: Py<Self>) -> Py<Self> {
            slf
        }

        #[pyo3(signature = (*_exc))]
        fn __exit__(
            &self,
            py: Python<'_>,
            _exc: &Bound<'_, pyo3::types::PyTuple>,
        ) -> PyResult<bool> {
            self.close(py)?;
            Ok(false)
        }
    }
);

client_methods!(
    AsyncClient,
    Asyncio,
    AsyncKeyspace,
    [
        crdt::AsyncCounter,
        crdt::AsyncSet,
        crdt::AsyncFlag,
        crdt::AsyncRegister,
        crdt::AsyncMap
    ],
    {
        /// Connects to a cluster: `client = await AsyncClient.connect("http://127.0.0.1:7070")`.
        #[staticmethod]
        #[pyo3(signature = (endpoints, *, timeout=5.0, connect_timeout=3.0, retries=2, local_dc=None, failover_to_other_dcs=false, routing=true, resolver_timeout=1.0))]
        #[allow(clippy::too_many_arguments)]
        fn connect<'py>(
            py: Python<'py>,
            endpoints: &Bound<'py, PyAny>,
            timeout: f64,
            connect_timeout: f64,
            retries: usize,
            local_dc: Option<String>,
            failover_to_other_dcs: bool,
            routing: bool,
            resolver_timeout: f64,
        ) -> PyResult<Bound<'py, PyAny>> {
            let b = builder(
                endpoints,
                timeout,
                connect_timeout,
                retries,
                local_dc,
                failover_to_other_dcs,
                routing,
                resolver_timeout,
            )?;
            Asyncio::run(py, async move {
                let inner = b.connect().await.map_err(crate::errors::to_py)?;
                Ok(AsyncClient { inner })
            })
        }

        fn __aenter__<'py>(slf: Py<Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
            Asyncio::run(py, async move { Ok(slf) })
        }

        #[pyo3(signature = (*_exc))]
        fn __aexit__<'py>(
            &self,
            py: Python<'py>,
            _exc: &Bound<'py, pyo3::types::PyTuple>,
        ) -> PyResult<Bound<'py, PyAny>> {
            let inner = self.inner.clone();
            Asyncio::run(py, async move {
                inner.close().await;
                Ok(false)
            })
        }
    }
);
