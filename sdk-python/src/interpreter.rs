//! Entering Python from the runtime's threads, and leaving it before the interpreter exits.
//!
//! An `AsyncClient` call ends on a tokio thread, which takes the GIL to hand the result to
//! asyncio; a resolver runs there too. If the main thread finishes meanwhile and Python
//! begins to finalize, a thread that asks for the GIL is ended by Python 3.11 with
//! `pthread_exit`, which a Rust thread does not survive: the process aborts or segfaults on
//! its way out. So every entry from a runtime thread goes through [`enter`], and a hook that
//! `atexit` runs (before finalization starts) closes the door and waits, without the GIL,
//! for the threads inside to leave. After that, entries are refused and what they carried
//! is leaked: the process is ending.

use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static INSIDE: AtomicUsize = AtomicUsize::new(0);
static CLOSED: AtomicBool = AtomicBool::new(false);

/// How long the exit hook waits for a thread inside Python (a slow resolver, say).
const EXIT_WAIT: Duration = Duration::from_secs(2);

struct Leave;

impl Drop for Leave {
    fn drop(&mut self) {
        INSIDE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `f` with the GIL, or returns `None` (leaking `f` and what it holds) once the
/// interpreter is exiting.
pub(crate) fn enter<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    // Counted before the check: the exit hook either sees this thread inside, or this
    // thread sees the door closed.
    INSIDE.fetch_add(1, Ordering::SeqCst);
    let _leave = Leave;
    if CLOSED.load(Ordering::SeqCst) {
        std::mem::forget(f);
        return None;
    }
    Some(Python::attach(f))
}

/// Run by `atexit`: no runtime thread enters Python from now on.
#[pyfunction]
fn _close_for_exit(py: Python<'_>) {
    CLOSED.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + EXIT_WAIT;
    py.detach(|| {
        while INSIDE.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let hook = wrap_pyfunction!(_close_for_exit, m)?;
    m.py().import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}
