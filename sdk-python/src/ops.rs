//! The operations both clients offer, as futures: `Client` blocks on them with the GIL
//! released, `AsyncClient` hands them to asyncio. One body per operation.

use crate::errors::to_py;
use crate::resolver::{Mode, PyResolver, call, value_of};
use crate::values::{Fetched, GetResult, KeyspaceInfo, WriteResult};
use bytes::Bytes;
use meridian_sdk::{Context, Keyspace, KeyspaceOptions, ReadOptions, Resolver, WriteOptions};
use pyo3::BoundObject;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use std::future::Future;

/// Runs an operation's future the way one kind of client does.
pub(crate) trait Runner {
    const MODE: Mode;

    fn run<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static;
}

/// The calling thread waits, without the GIL, so other Python threads run meanwhile.
pub(crate) struct Blocking;

impl Runner for Blocking {
    const MODE: Mode = Mode::Blocking;

    fn run<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let out = block_on(py, fut)?;
        out.into_pyobject(py)
            .map(|o| o.into_any().into_bound())
            .map_err(Into::into)
    }
}

/// Runs `fut` to completion on this thread with the GIL released.
pub(crate) fn block_on<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = PyResult<T>> + Send,
    T: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        // This thread is already running a call (a resolver or update function calling back
        // into the blocking client): blocking it again could never finish.
        return Err(crate::errors::to_py(meridian_sdk::Error::new(
            meridian_sdk::ErrorCode::InvalidArgument,
            "a blocking Client call cannot be made from inside a resolver or update function: \
             use the value passed in, or AsyncClient",
        )));
    }
    py.detach(|| pyo3_async_runtimes::tokio::get_runtime().block_on(fut))
}

/// An awaitable for the running asyncio loop.
pub(crate) struct Asyncio;

impl Runner for Asyncio {
    const MODE: Mode = Mode::Asyncio;

    fn run<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        crate::awaitable::future_into_py(py, fut)
    }
}

pub(crate) async fn get(ks: Keyspace, key: Bytes, read: ReadOptions) -> PyResult<GetResult> {
    let found = ks.get_with(key, &read).await.map_err(to_py)?;
    Ok(GetResult {
        values: found.values,
        context: found.context,
    })
}

pub(crate) async fn put(
    ks: Keyspace,
    key: Bytes,
    value: Bytes,
    context: Option<Context>,
    write: WriteOptions,
) -> PyResult<WriteResult> {
    let inner = ks
        .put_with(key, value, context.as_ref(), &write)
        .await
        .map_err(to_py)?;
    Ok(WriteResult { inner })
}

pub(crate) async fn delete(
    ks: Keyspace,
    key: Bytes,
    context: Option<Context>,
    write: WriteOptions,
) -> PyResult<WriteResult> {
    let inner = ks
        .delete_with(key, context.as_ref(), &write)
        .await
        .map_err(to_py)?;
    Ok(WriteResult { inner })
}

pub(crate) async fn get_resolved(
    ks: Keyspace,
    key: Bytes,
    resolver: Option<PyResolver>,
    read: ReadOptions,
    write: WriteOptions,
) -> PyResult<Option<std::borrow::Cow<'static, [u8]>>> {
    let value = ks
        .client()
        .get_resolved_with(
            ks.name(),
            key,
            resolver.as_ref().map(|r| r as &dyn Resolver),
            &ks.read_options(&read),
            &ks.write_options(&write),
        )
        .await
        .map_err(to_py)?;
    // Bytes become `bytes` when the result is handed to Python, not on this thread.
    Ok(value.map(|v| std::borrow::Cow::Owned(v.to_vec())))
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn update(
    ks: Keyspace,
    key: Bytes,
    f: Py<PyAny>,
    mode: Mode,
    resolver: Option<PyResolver>,
    read: ReadOptions,
    write: WriteOptions,
) -> PyResult<WriteResult> {
    let inner = ks
        .client()
        .update_with(
            ks.name(),
            key,
            resolver.as_ref().map(|r| r as &dyn Resolver),
            &ks.read_options(&read),
            &ks.write_options(&write),
            |current| async move {
                let out = call(&f, mode, |py| {
                    let current = current.as_ref().map(|v| PyBytes::new(py, v));
                    PyTuple::new(py, [current.into_pyobject(py)?])
                })
                .await?;
                value_of(out)
            },
        )
        .await
        .map_err(to_py)?;
    Ok(WriteResult { inner })
}

pub(crate) async fn apply(
    ks: Keyspace,
    key: Bytes,
    ops: Vec<meridian_sdk::crdt::Op>,
    context: Option<Context>,
    write: WriteOptions,
) -> PyResult<Fetched> {
    let got = ks
        .apply_with(key, ops, context.as_ref(), &write)
        .await
        .map_err(to_py)?;
    Ok(Fetched::from(got))
}

pub(crate) async fn fetch(ks: Keyspace, key: Bytes, read: ReadOptions) -> PyResult<Fetched> {
    let got = ks.fetch_with(key, &read).await.map_err(to_py)?;
    Ok(Fetched::from(got))
}

pub(crate) async fn create_keyspace(
    client: meridian_sdk::Client,
    name: String,
    opts: KeyspaceOptions,
) -> PyResult<KeyspaceInfo> {
    client
        .create_keyspace_with(&name, &opts)
        .await
        .map(KeyspaceInfo::from)
        .map_err(to_py)
}

pub(crate) async fn list_keyspaces(client: meridian_sdk::Client) -> PyResult<Vec<KeyspaceInfo>> {
    let all = client.list_keyspaces().await.map_err(to_py)?;
    Ok(all.into_iter().map(KeyspaceInfo::from).collect())
}

pub(crate) async fn close(client: meridian_sdk::Client) -> PyResult<()> {
    client.close().await;
    Ok(())
}
