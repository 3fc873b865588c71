//! Conversions between Python values and the SDK's types, and the result classes.

use crate::errors::{invalid, to_py};
use bytes::Bytes;
use meridian_sdk::{Consistency, KeyspaceOptions, ReadOptions, WriteOptions};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use std::collections::BTreeMap;
use std::time::Duration;

/// Keys and values are `bytes` (or `str`, taken as UTF-8).
pub(crate) fn to_bytes(what: &str, obj: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Bytes::copy_from_slice(b.as_bytes()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Bytes::from(s.to_cow()?.into_owned()));
    }
    if let Ok(v) = obj.extract::<Vec<u8>>()
        && !obj.is_instance_of::<PyList>()
    {
        return Ok(Bytes::from(v));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "{what} must be bytes or str, not {}",
        obj.get_type().name()?
    )))
}

pub(crate) fn bytes_list<'py>(py: Python<'py>, values: &[Bytes]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, values.iter().map(|v| PyBytes::new(py, v)))
}

pub(crate) fn consistency(level: Option<&str>) -> PyResult<Option<Consistency>> {
    level
        .map(|l| meridian_sdk::consistency_from_name(l).map_err(to_py))
        .transpose()
}

pub(crate) fn seconds(what: &str, t: Option<f64>) -> PyResult<Option<Duration>> {
    t.map(|s| meridian_sdk::positive_duration(what, s, Duration::from_secs(1)).map_err(to_py))
        .transpose()
}

pub(crate) fn read_options(level: Option<&str>, timeout: Option<f64>) -> PyResult<ReadOptions> {
    Ok(ReadOptions {
        consistency: consistency(level)?,
        timeout: seconds("timeout", timeout)?,
    })
}

pub(crate) fn write_options(
    level: Option<&str>,
    timeout: Option<f64>,
    request_id: Option<&[u8]>,
) -> PyResult<WriteOptions> {
    let request_id = request_id
        .map(|id| {
            <[u8; 16]>::try_from(id).map_err(|_| {
                invalid(format!(
                    "request_id must be exactly 16 bytes, not {}",
                    id.len()
                ))
            })
        })
        .transpose()?;
    Ok(WriteOptions {
        consistency: consistency(level)?,
        timeout: seconds("timeout", timeout)?,
        request_id,
    })
}

/// A `Context`, raw bytes, or None.
pub(crate) fn context(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<meridian_sdk::Context>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(c) = obj.cast::<Context>() {
        return Ok(Some(c.get().0.clone()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Some(meridian_sdk::Context::from_bytes(
            b.as_bytes().to_vec(),
        )));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "context must be a Context (from a read or a write) or bytes, not {}",
        obj.get_type().name()?
    )))
}

pub(crate) fn keyspace_options(
    kind: &str,
    replication: Option<BTreeMap<String, u32>>,
    read_consistency: Option<&str>,
    write_consistency: Option<&str>,
    max_value_bytes: Option<u32>,
    max_siblings: Option<u32>,
) -> PyResult<KeyspaceOptions> {
    let kind = meridian_sdk::value_kind_from_name(kind).map_err(to_py)?;
    Ok(KeyspaceOptions {
        kind: Some(kind),
        replication: replication.unwrap_or_default(),
        read_consistency: consistency(read_consistency)?,
        write_consistency: consistency(write_consistency)?,
        max_value_bytes,
        max_siblings,
    })
}

/// What a read saw, to pass back on the next write of the key. Opaque.
#[pyclass(frozen, eq, hash, module = "meridian")]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Context(pub(crate) meridian_sdk::Context);

#[pymethods]
impl Context {
    /// The context from its `to_base64()` form (as in the HTTP header `meridian-context`).
    #[staticmethod]
    fn from_base64(s: &str) -> PyResult<Self> {
        meridian_sdk::Context::from_base64(s)
            .map(Context)
            .map_err(crate::errors::to_py)
    }

    /// The form the HTTP API's `meridian-context` header carries.
    fn to_base64(&self) -> String {
        self.0.to_base64()
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.0.as_bytes())
    }

    fn __bool__(&self) -> bool {
        !self.0.is_empty()
    }

    fn __repr__(&self) -> String {
        format!("Context({:?})", self.0.to_base64())
    }
}

/// The result of a read: every live sibling and the context to write back with.
#[pyclass(frozen, module = "meridian")]
pub struct GetResult {
    pub(crate) values: Vec<Bytes>,
    pub(crate) context: meridian_sdk::Context,
}

#[pymethods]
impl GetResult {
    /// Every live value (empty when the key is missing or deleted).
    #[getter]
    fn siblings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        bytes_list(py, &self.values)
    }

    /// The one value, or None when the key is missing. Raises UnresolvedSiblings when there
    /// are several: read `.siblings`, or use `get_resolved`.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        match self.values.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(PyBytes::new(py, one))),
            many => Err(crate::errors::to_py(meridian_sdk::Error::new(
                meridian_sdk::ErrorCode::UnresolvedSiblings,
                format!(
                    "the key has {} siblings: read .siblings, or use get_resolved or update \
                     with a resolver",
                    many.len()
                ),
            ))),
        }
    }

    /// Pass this to the next put or delete of the key.
    #[getter]
    fn context(&self) -> Context {
        Context(self.context.clone())
    }

    /// Whether the key has a live value.
    #[getter]
    fn found(&self) -> bool {
        !self.values.is_empty()
    }

    fn __len__(&self) -> usize {
        self.values.len()
    }

    fn __repr__(&self) -> String {
        format!("GetResult(siblings={:?})", self.values)
    }
}

/// What a write returns. `siblings` is empty unless concurrent values survived the write;
/// then it holds them all (this write's included) and `context` covers them.
#[pyclass(frozen, module = "meridian")]
pub struct WriteResult {
    pub(crate) inner: meridian_sdk::WriteResult,
}

#[pymethods]
impl WriteResult {
    /// The live values when concurrent ones survived the write; empty otherwise.
    #[getter]
    fn siblings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        bytes_list(py, &self.inner.siblings)
    }

    /// The context after the write, for the next write of the key.
    #[getter]
    fn context(&self) -> Context {
        Context(self.inner.context.clone())
    }

    fn __repr__(&self) -> String {
        format!("WriteResult(siblings={:?})", self.inner.siblings)
    }
}

/// A keyspace as the server describes it.
#[pyclass(frozen, get_all, module = "meridian")]
pub struct KeyspaceInfo {
    /// The keyspace's name.
    pub name: String,
    /// "siblings" or "lww".
    pub kind: String,
    /// Replicas per datacenter.
    pub replication: BTreeMap<String, u32>,
    /// Largest key + value in bytes.
    pub max_value_bytes: u32,
    /// Writes that would grow a key past this many siblings are refused.
    pub max_siblings: u32,
}

#[pymethods]
impl KeyspaceInfo {
    fn __repr__(&self) -> String {
        format!(
            "KeyspaceInfo(name={:?}, kind={:?}, replication={:?})",
            self.name, self.kind, self.replication
        )
    }
}

impl From<meridian_sdk::KeyspaceInfo> for KeyspaceInfo {
    fn from(k: meridian_sdk::KeyspaceInfo) -> Self {
        KeyspaceInfo {
            name: k.name,
            kind: k.kind.name().to_string(),
            replication: k.replication,
            max_value_bytes: k.max_value_bytes,
            max_siblings: k.max_siblings,
        }
    }
}

/// A CRDT key's value and the context that scopes later removes to what it showed.
#[pyclass(frozen, module = "meridian")]
pub struct Fetched {
    pub(crate) value: serde_json::Value,
    pub(crate) context: meridian_sdk::Context,
}

#[pymethods]
impl Fetched {
    /// The value in its JSON form: a counter is an int, a set a list, a register its value or
    /// None, a flag a bool, a map a dict of "name:kind" fields; bytes are str, or
    /// {"base64": ...} when not UTF-8.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?
            .call_method1("loads", (self.value.to_string(),))
    }

    /// Pass it to `apply` so removes take away only what this fetch showed.
    #[getter]
    fn context(&self) -> Context {
        Context(self.context.clone())
    }

    fn __repr__(&self) -> String {
        format!("Fetched(value={})", self.value)
    }
}

impl From<meridian_sdk::Fetched> for Fetched {
    fn from(f: meridian_sdk::Fetched) -> Self {
        Fetched {
            value: meridian_sdk::crdt::value_to_json(&f.value),
            context: f.context,
        }
    }
}

/// CRDT operations from their JSON form, given as Python lists and dicts.
pub(crate) fn crdt_ops(ops: &Bound<'_, PyAny>) -> PyResult<Vec<meridian_sdk::crdt::Op>> {
    let text: String = ops
        .py()
        .import("json")?
        .call_method1("dumps", (ops,))
        .map_err(|e| {
            crate::errors::invalid(format!(
                "operations must be JSON-like (lists, dicts, str, int, bool; bytes as \
                 {{\"base64\": ...}}): {e}"
            ))
        })?
        .extract()?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| crate::errors::invalid(format!("operations: {e}")))?;
    meridian_sdk::crdt::ops_from_json(&json).map_err(crate::errors::to_py)
}
