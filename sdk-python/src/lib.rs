//! `meridian._meridian`: the Python binding of the Rust SDK.
//!
//! Everything a call does (routing, retries, deadlines, resolution, timeouts) happens in
//! `meridian-sdk`; this crate converts arguments and results, maps errors to exception
//! classes in one place (`errors.rs`), and runs the SDK's futures either on the caller's
//! thread with the GIL released (`Client`) or as asyncio awaitables (`AsyncClient`). Both
//! clients share the operations in `ops.rs`.

mod awaitable;
mod clients;
mod crdt;
mod errors;
mod interpreter;
mod ops;
mod resolver;
mod values;

use pyo3::prelude::*;

#[pymodule]
fn _meridian(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<clients::Client>()?;
    m.add_class::<clients::Keyspace>()?;
    m.add_class::<clients::AsyncClient>()?;
    m.add_class::<clients::AsyncKeyspace>()?;
    m.add_class::<values::GetResult>()?;
    m.add_class::<values::WriteResult>()?;
    m.add_class::<values::Fetched>()?;
    m.add_class::<values::Context>()?;
    m.add_class::<values::KeyspaceInfo>()?;
    crdt::register(m)?;
    errors::register(m)?;
    interpreter::register(m)?;
    Ok(())
}
