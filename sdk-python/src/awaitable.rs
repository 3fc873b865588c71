//! An SDK future as an asyncio future of the running loop.
//!
//! The future runs on the tokio runtime, inside the calling task's locals (so an `async def`
//! resolver awaits on the same loop). Its outcome is handed to the loop with
//! `call_soon_threadsafe` through [`interpreter::enter`](crate::interpreter::enter), so a
//! call that ends while Python exits never touches the interpreter. Cancelling the asyncio
//! future (`asyncio.wait_for`, a cancelled task) aborts the Rust future.

use crate::interpreter;
use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use std::future::Future;

pub(crate) fn future_into_py<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let locals = pyo3_async_runtimes::tokio::get_current_locals(py)?;
    let event_loop = locals.event_loop(py);
    let py_fut = event_loop.call_method0("create_future")?;
    let target = py_fut.clone().unbind();
    let event_loop = event_loop.unbind();
    let task = pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
        let outcome = pyo3_async_runtimes::tokio::scope(locals, fut).await;
        interpreter::enter(move |py| {
            let settle = Settle {
                target,
                outcome: Some(outcome.and_then(|v| v.into_py_any(py))),
            };
            // A closed loop (the program moved on) has no one left to tell.
            let _ = event_loop
                .bind(py)
                .call_method1("call_soon_threadsafe", (settle,));
        });
    });
    py_fut.call_method1("add_done_callback", (AbortOnCancel(task.abort_handle()),))?;
    Ok(py_fut)
}

/// Completes the asyncio future on its loop's thread, unless it was cancelled meanwhile.
#[pyclass]
struct Settle {
    target: Py<PyAny>,
    outcome: Option<PyResult<Py<PyAny>>>,
}

#[pymethods]
impl Settle {
    fn __call__(&mut self, py: Python<'_>) -> PyResult<()> {
        let target = self.target.bind(py);
        if target.call_method0("done")?.is_truthy()? {
            return Ok(());
        }
        match self.outcome.take() {
            Some(Ok(value)) => target.call_method1("set_result", (value,))?,
            Some(Err(e)) => target.call_method1("set_exception", (e.into_value(py),))?,
            None => return Ok(()),
        };
        Ok(())
    }
}

/// Aborts the Rust future when its asyncio future is cancelled.
#[pyclass]
struct AbortOnCancel(tokio::task::AbortHandle);

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0("cancelled")?.is_truthy()? {
            self.0.abort();
        }
        Ok(())
    }
}
