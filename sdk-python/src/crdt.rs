//! Typed handles on one key of a CRDT keyspace (`client.counter("hits", "home")`), for both
//! clients: every method is one `apply` or `fetch` of the Rust SDK.

use crate::ops::{self, Asyncio, Blocking, Runner};
use crate::values::{read_options, to_bytes, write_options};
use bytes::Bytes;
use meridian_sdk::crdt::Op;
use meridian_sdk::{Context, Keyspace, ReadOptions, WriteOptions};
use pyo3::prelude::*;
use serde_bytes::ByteBuf;

/// A reply's value in its JSON form, handed to Python as `json.loads` makes it.
pub(crate) struct Json(serde_json::Value);

impl<'py> IntoPyObject<'py> for Json {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?
            .call_method1("loads", (self.0.to_string(),))
    }
}

async fn apply_value(
    ks: Keyspace,
    key: Bytes,
    op: Op,
    context: Option<Context>,
    write: WriteOptions,
) -> PyResult<Json> {
    Ok(Json(
        ops::apply(ks, key, vec![op], context, write).await?.value,
    ))
}

async fn fetch_value(ks: Keyspace, key: Bytes, read: ReadOptions) -> PyResult<Json> {
    Ok(Json(ops::fetch(ks, key, read).await?.value))
}

fn elements(items: &Bound<'_, PyAny>) -> PyResult<Vec<ByteBuf>> {
    if items.is_instance_of::<pyo3::types::PyString>()
        || items.is_instance_of::<pyo3::types::PyBytes>()
    {
        return Err(crate::errors::invalid(
            "elements must be a list (or another iterable) of str or bytes, not one str or bytes",
        ));
    }
    items
        .try_iter()?
        .map(|e| Ok(ByteBuf::from(to_bytes("element", &e?)?.to_vec())))
        .collect()
}

/// A counter amount. Python's own conversion error ("Python int too large to convert to C
/// long") names neither the argument nor the limit.
fn amount(by: &Bound<'_, PyAny>) -> PyResult<i64> {
    by.extract::<i64>().map_err(|e| {
        if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(by.py()) {
            crate::errors::invalid(format!(
                "the amount {by} does not fit in a 64-bit signed integer (-2**63 to 2**63 - 1)"
            ))
        } else {
            e
        }
    })
}

fn negate(by: i64) -> PyResult<i64> {
    by.checked_neg().ok_or_else(|| {
        crate::errors::invalid(format!(
            "cannot decrement by {by}: its negation does not fit in 64 bits"
        ))
    })
}

macro_rules! crdt_handles {
    ($runner:ty, $counter:ident, $set:ident, $flag:ident, $register:ident, $map:ident) => {
        /// One key of a `counter` keyspace: increments from every datacenter add up.
        #[pyclass(frozen, module = "meridian")]
        pub struct $counter {
            pub(crate) ks: Keyspace,
            pub(crate) key: Bytes,
        }

        impl $counter {
            pub(crate) fn new(ks: Keyspace, key: Bytes) -> Self {
                Self { ks, key }
            }
        }

        #[pymethods]
        impl $counter {
            /// Adds `by` (negative decrements); returns the value after it.
            #[pyo3(signature = (by=1, *, consistency=None, timeout=None, request_id=None))]
            fn increment<'py>(
                &self,
                py: Python<'py>,
                #[pyo3(from_py_with = amount)] by: i64,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let write = write_options(consistency, timeout, request_id)?;
                let fut = apply_value(self.ks.clone(), self.key.clone(), Op::Increment(by), None, write);
                <$runner>::run(py, fut)
            }

            /// Subtracts `by`; returns the value after it.
            #[pyo3(signature = (by=1, *, consistency=None, timeout=None, request_id=None))]
            fn decrement<'py>(
                &self,
                py: Python<'py>,
                #[pyo3(from_py_with = amount)] by: i64,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.increment(py, negate(by)?, consistency, timeout, request_id)
            }

            /// The counter's value (0 for a key never updated).
            #[pyo3(signature = (*, consistency=None, timeout=None))]
            fn value<'py>(
                &self,
                py: Python<'py>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let read = read_options(consistency, timeout)?;
                <$runner>::run(py, fetch_value(self.ks.clone(), self.key.clone(), read))
            }
        }

        /// One key of a `set` keyspace: add-wins, a remove takes away only the adds it saw.
        #[pyclass(frozen, module = "meridian")]
        pub struct $set {
            pub(crate) ks: Keyspace,
            pub(crate) key: Bytes,
        }

        impl $set {
            pub(crate) fn new(ks: Keyspace, key: Bytes) -> Self {
                Self { ks, key }
            }
        }

        #[pymethods]
        impl $set {
            /// Adds elements (str or bytes); returns the members after it.
            #[pyo3(signature = (elements, *, consistency=None, timeout=None, request_id=None))]
            fn add<'py>(
                &self,
                py: Python<'py>,
                elements: &Bound<'py, PyAny>,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let op = Op::Add(self::elements(elements)?);
                let write = write_options(consistency, timeout, request_id)?;
                <$runner>::run(py, apply_value(self.ks.clone(), self.key.clone(), op, None, write))
            }

            /// Removes elements: the adds that `context` (from `fetch`) saw, else all the
            /// coordinating replica holds. Returns the members after it.
            #[pyo3(signature = (elements, context=None, *, consistency=None, timeout=None, request_id=None))]
            #[allow(clippy::too_many_arguments)]
            fn remove<'py>(
                &self,
                py: Python<'py>,
                elements: &Bound<'py, PyAny>,
                context: Option<&Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let op = Op::Remove(self::elements(elements)?);
                let ctx = crate::values::context(context)?;
                let write = write_options(consistency, timeout, request_id)?;
                <$runner>::run(py, apply_value(self.ks.clone(), self.key.clone(), op, ctx, write))
            }

            /// The members, in byte order.
            #[pyo3(signature = (*, consistency=None, timeout=None))]
            fn members<'py>(
                &self,
                py: Python<'py>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let read = read_options(consistency, timeout)?;
                <$runner>::run(py, fetch_value(self.ks.clone(), self.key.clone(), read))
            }

            /// The members with the context for `remove`.
            #[pyo3(signature = (*, consistency=None, timeout=None))]
            fn fetch<'py>(
                &self,
                py: Python<'py>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let read = read_options(consistency, timeout)?;
                <$runner>::run(py, ops::fetch(self.ks.clone(), self.key.clone(), read))
            }
        }

        /// One key of a `flag` keyspace: enable wins over a concurrent disable.
        #[pyclass(frozen, module = "meridian")]
        pub struct $flag {
            pub(crate) ks: Keyspace,
            pub(crate) key: Bytes,
        }

        impl $flag {
            pub(crate) fn new(ks: Keyspace, key: Bytes) -> Self {
                Self { ks, key }
            }
        }

        #[pymethods]
        impl $flag {
            /// Enables the flag; returns True.
            #[pyo3(signature = (*, consistency=None, timeout=None, request_id=None))]
            fn enable<'py>(
                &self,
                py: Python<'py>,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let write = write_options(consistency, timeout, request_id)?;
                <$runner>::run(py, apply_value(self.ks.clone(), self.key.clone(), Op::Enable, None, write))
            }

            /// Disables what `context` saw (else all the coordinating replica holds); returns
            /// the flag after it.
            #[pyo3(signature = (context=None, *, consistency=None, timeout=None, request_id=None))]
            fn disable<'py>(
                &self,
                py: Python<'py>,
                context: Option<&Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let ctx = crate::values::context(context)?;
                let write = write_options(consistency, timeout, request_id)?;
                <$runner>::run(py, apply_value(self.ks.clone(), self.key.clone(), Op::Disable, ctx, write))
            }

            /// Whether the flag is enabled (False for a key never updated).
            #[pyo3(signature = (*, consistency=None, timeout=None))]
            fn get<'py>(
                &self,
                py: Python<'py>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let read = read_options(consistency, timeout)?;
                <$runner>::run(py, fetch_value(self.ks.clone(), self.key.clone(), read))
            }
        }

        /// One key of a `register` (last writer wins) or `mvregister` (concurrent values kept)
        /// keyspace.
        #[pyclass(frozen, module = "meridian")]
        pub struct $register {
            pub(crate) ks: Keyspace,
            pub(crate) key: Bytes,
        }

        impl $register {
            pub(crate) fn new(ks: Keyspace, key: Bytes) -> Self {
                Self { ks, key }
            }
        }

        #[pymethods]
        impl $register {
            /// Assigns a value, replacing what `context` saw (else what the coordinating
            /// replica holds); returns the value and context after it.
            #[pyo3(signature = (value, context=None, *, consistency=None, timeout=None, request_id=None))]
            #[allow(clippy::too_many_arguments)]
            fn assign<'py>(
                &self,
                py: Python<'py>,
                value: &Bound<'py, PyAny>,
                context: Option<&Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let op = Op::Assign(ByteBuf::from(to_bytes("value", value)?.to_vec()));
                let ctx = crate::values::context(context)?;
                let write = write_options(consistency, timeout, request_id)?;
                <$runner>::run(py, ops::apply(self.ks.clone(), self.key.clone(), vec![op], ctx, write))
            }

            /// The value (a list of concurrent values for an mvregister) and context.
            #[pyo3(signature = (*, consistency=None, timeout=None))]
            fn fetch<'py>(
                &self,
                py: Python<'py>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let read = read_options(consistency, timeout)?;
                <$runner>::run(py, ops::fetch(self.ks.clone(), self.key.clone(), read))
            }
        }

        /// One key of a `map` keyspace: named, typed fields, each a CRDT of its own.
        #[pyclass(frozen, module = "meridian")]
        pub struct $map {
            pub(crate) ks: Keyspace,
            pub(crate) key: Bytes,
        }

        impl $map {
            pub(crate) fn new(ks: Keyspace, key: Bytes) -> Self {
                Self { ks, key }
            }
        }

        #[pymethods]
        impl $map {
            /// Applies field operations in their JSON form, e.g.
            /// `[{"update": {"field": "visits:counter", "op": {"increment": 1}}}]`, all or
            /// none; returns the value and context after them.
            #[pyo3(signature = (ops, context=None, *, consistency=None, timeout=None, request_id=None))]
            #[allow(clippy::too_many_arguments)]
            fn update<'py>(
                &self,
                py: Python<'py>,
                ops: &Bound<'py, PyAny>,
                context: Option<&Bound<'py, PyAny>>,
                consistency: Option<&str>,
                timeout: Option<f64>,
                request_id: Option<&[u8]>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let ops = crate::values::crdt_ops(ops)?;
                let ctx = crate::values::context(context)?;
                let write = write_options(consistency, timeout, request_id)?;
                <$runner>::run(py, ops::apply(self.ks.clone(), self.key.clone(), ops, ctx, write))
            }

            /// The fields (a dict of "name:kind" keys) and context.
            #[pyo3(signature = (*, consistency=None, timeout=None))]
            fn fetch<'py>(
                &self,
                py: Python<'py>,
                consistency: Option<&str>,
                timeout: Option<f64>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let read = read_options(consistency, timeout)?;
                <$runner>::run(py, ops::fetch(self.ks.clone(), self.key.clone(), read))
            }
        }
    };
}

crdt_handles!(Blocking, Counter, Set, Flag, Register, Map);
crdt_handles!(
    Asyncio,
    AsyncCounter,
    AsyncSet,
    AsyncFlag,
    AsyncRegister,
    AsyncMap
);

/// Every handle class, for the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Counter>()?;
    m.add_class::<Set>()?;
    m.add_class::<Flag>()?;
    m.add_class::<Register>()?;
    m.add_class::<Map>()?;
    m.add_class::<AsyncCounter>()?;
    m.add_class::<AsyncSet>()?;
    m.add_class::<AsyncFlag>()?;
    m.add_class::<AsyncRegister>()?;
    m.add_class::<AsyncMap>()?;
    Ok(())
}
