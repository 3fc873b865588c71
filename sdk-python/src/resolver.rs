//! Python callables as SDK resolvers and update functions.
//!
//! The GIL is taken only for the call itself. A callable that returns an awaitable (an
//! `async def`) is awaited on the asyncio loop of the `AsyncClient` call that needs it; the
//! blocking `Client` has no loop to run it on and says so.

use crate::values::{bytes_list, to_bytes};
use async_trait::async_trait;
use bytes::Bytes;
use meridian_sdk::{Error, Resolver};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::future::Future;
use std::pin::Pin;

/// An exception raised by the application's callable, carried through the SDK unchanged and
/// re-raised as it was.
pub(crate) struct Raised(pub(crate) PyErr);

impl std::fmt::Debug for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Raised {}

pub(crate) fn raised(e: PyErr) -> Error {
    Error::resolver_failed(Raised(e))
}

/// Whether a callable may return an awaitable.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// `Client`: the caller's thread blocks; there is no event loop to await on.
    Blocking,
    /// `AsyncClient`: awaitables run on the calling task's event loop.
    Asyncio,
}

type Awaiting = Pin<Box<dyn Future<Output = PyResult<Py<PyAny>>> + Send>>;

/// Calls `f(*args)` with the GIL held for the call only, then awaits what it returned if it
/// is awaitable.
pub(crate) async fn call(
    f: &Py<PyAny>,
    mode: Mode,
    args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>>,
) -> Result<Py<PyAny>, Error> {
    enum Step {
        Done(Py<PyAny>),
        Await(Awaiting),
    }
    let step = crate::interpreter::enter(|py| -> PyResult<Step> {
        let out = f.bind(py).call1(args(py)?)?;
        if !out.hasattr("__await__")? {
            return Ok(Step::Done(out.unbind()));
        }
        match mode {
            Mode::Asyncio => Ok(Step::Await(Box::pin(
                pyo3_async_runtimes::tokio::into_future(out)?,
            ))),
            Mode::Blocking => {
                if out.hasattr("close")? {
                    // Closed, so Python does not warn that it was never awaited.
                    out.call_method0("close")?;
                }
                Err(pyo3::exceptions::PyTypeError::new_err(
                    "the callable returned an awaitable: async resolvers and update functions \
                     need AsyncClient",
                ))
            }
        }
    })
    .unwrap_or_else(exiting)
    .map_err(raised)?;
    match step {
        Step::Done(out) => Ok(out),
        Step::Await(fut) => fut.await.map_err(raised),
    }
}

/// The callable's result as a value: bytes or str, or None (which an update function
/// returns to delete the key).
pub(crate) fn value_of(out: Py<PyAny>) -> Result<Option<Bytes>, Error> {
    crate::interpreter::enter(|py| {
        let out = out.bind(py);
        if out.is_none() {
            return Ok(None);
        }
        to_bytes("the value a resolver or update function returns", out).map(Some)
    })
    .unwrap_or_else(exiting)
    .map_err(raised)
}

/// What a callable's call becomes once the interpreter is exiting.
fn exiting<T>() -> PyResult<T> {
    Err(pyo3::exceptions::PyRuntimeError::new_err(
        "the interpreter is exiting: the callable was not called",
    ))
}

/// A Python callable `siblings -> value` as an SDK resolver.
pub(crate) struct PyResolver {
    pub(crate) f: Py<PyAny>,
    pub(crate) mode: Mode,
}

#[async_trait]
impl Resolver for PyResolver {
    async fn resolve(&self, _key: &[u8], siblings: Vec<Bytes>) -> meridian_sdk::Result<Bytes> {
        let out = call(&self.f, self.mode, |py| {
            PyTuple::new(py, [bytes_list(py, &siblings)?])
        })
        .await?;
        value_of(out)?.ok_or_else(|| {
            raised(pyo3::exceptions::PyTypeError::new_err(
                "a resolver must return the merged value (bytes or str), not None",
            ))
        })
    }
}

/// Checks that a resolver can be called at all, before anything is sent.
pub(crate) fn resolver(obj: Option<Bound<'_, PyAny>>, mode: Mode) -> PyResult<Option<PyResolver>> {
    match obj.filter(|o| !o.is_none()) {
        None => Ok(None),
        Some(f) if f.is_callable() => Ok(Some(PyResolver {
            f: f.unbind(),
            mode,
        })),
        Some(f) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "a resolver must be callable (siblings -> value), not {}",
            f.get_type().name()?
        ))),
    }
}
