//! Conversions between JavaScript values and the SDK's types, and the result classes.

use crate::errors::{invalid, to_js};
use bytes::Bytes;
use meridian_sdk::{Consistency, KeyspaceOptions, ReadOptions, ValueKind, WriteOptions};
use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Keys and values: a Buffer, or a string taken as UTF-8.
pub(crate) type BytesArg = Either<Buffer, String>;

pub(crate) fn to_bytes(v: BytesArg) -> Bytes {
    match v {
        Either::A(b) => Bytes::copy_from_slice(&b),
        Either::B(s) => Bytes::from(s),
    }
}

pub(crate) fn buffers(values: &[Bytes]) -> Vec<Buffer> {
    values.iter().map(|v| Buffer::from(v.to_vec())).collect()
}

fn consistency(level: Option<&str>) -> napi::Result<Option<Consistency>> {
    level
        .map(|l| meridian_sdk::consistency_from_name(l).map_err(to_js))
        .transpose()
}

pub(crate) fn millis(what: &str, ms: Option<f64>) -> napi::Result<Option<Duration>> {
    ms.map(|ms| meridian_sdk::positive_duration(what, ms, Duration::from_millis(1)).map_err(to_js))
        .transpose()
}

/// Options of a read.
#[napi(object)]
#[derive(Default)]
pub struct ReadOpts {
    /// ONE, QUORUM, ALL, LOCAL_ONE, LOCAL_QUORUM or EACH_QUORUM; default: the keyspace's.
    pub consistency: Option<String>,
    /// Deadline of the call in milliseconds; default: the client's.
    pub timeout_ms: Option<f64>,
}

/// Options of a write.
#[napi(object)]
#[derive(Default)]
pub struct WriteOpts {
    /// ONE, QUORUM, ALL, LOCAL_ONE, LOCAL_QUORUM or EACH_QUORUM; default: the keyspace's.
    pub consistency: Option<String>,
    /// Deadline of the call in milliseconds; default: the client's.
    pub timeout_ms: Option<f64>,
    /// 16 bytes that make the write idempotent across your own retries.
    pub request_id: Option<Buffer>,
}

pub(crate) fn read_options(o: Option<ReadOpts>) -> napi::Result<ReadOptions> {
    let o = o.unwrap_or_default();
    Ok(ReadOptions {
        consistency: consistency(o.consistency.as_deref())?,
        timeout: millis("timeoutMs", o.timeout_ms)?,
    })
}

pub(crate) fn write_options(o: Option<WriteOpts>) -> napi::Result<WriteOptions> {
    let o = o.unwrap_or_default();
    let request_id = o
        .request_id
        .map(|id| {
            <[u8; 16]>::try_from(&id[..]).map_err(|_| {
                invalid(format!(
                    "requestId must be exactly 16 bytes, not {}",
                    id.len()
                ))
            })
        })
        .transpose()?;
    Ok(WriteOptions {
        consistency: consistency(o.consistency.as_deref())?,
        timeout: millis("timeoutMs", o.timeout_ms)?,
        request_id,
    })
}

pub(crate) fn context(c: Option<Buffer>) -> Option<meridian_sdk::Context> {
    c.map(|c| meridian_sdk::Context::from_bytes(c.to_vec()))
}

/// The definition of a new keyspace; omitted fields take the server's defaults.
#[napi(object)]
#[derive(Default)]
pub struct KeyspaceSpec {
    /// "siblings" (default) or "lww".
    pub kind: Option<String>,
    /// Replicas per datacenter, e.g. `{ dc1: 3, dc2: 3 }`.
    pub replication: Option<HashMap<String, f64>>,
    pub read_consistency: Option<String>,
    pub write_consistency: Option<String>,
    /// Largest key + value in bytes.
    pub max_value_bytes: Option<f64>,
    /// Writes that would grow a key past this many siblings are refused.
    pub max_siblings: Option<f64>,
}

pub(crate) fn keyspace_options(s: Option<KeyspaceSpec>) -> napi::Result<KeyspaceOptions> {
    let s = s.unwrap_or_default();
    let kind = match s.kind.as_deref() {
        None => ValueKind::Siblings,
        Some(name) => meridian_sdk::value_kind_from_name(name).map_err(to_js)?,
    };
    Ok(KeyspaceOptions {
        kind: Some(kind),
        replication: s
            .replication
            .unwrap_or_default()
            .into_iter()
            .map(|(dc, n)| Ok((dc.clone(), whole(&format!("replication.{dc}"), n)?)))
            .collect::<napi::Result<_>>()?,
        read_consistency: consistency(s.read_consistency.as_deref())?,
        write_consistency: consistency(s.write_consistency.as_deref())?,
        max_value_bytes: s
            .max_value_bytes
            .map(|n| whole("maxValueBytes", n))
            .transpose()?,
        max_siblings: s
            .max_siblings
            .map(|n| whole("maxSiblings", n))
            .transpose()?,
    })
}

/// A count from JavaScript: napi's own conversion would take -1 as 4294967295 and 1.5 as 1.
pub(crate) fn whole(what: &str, n: f64) -> napi::Result<u32> {
    if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) {
        Ok(n as u32)
    } else {
        Err(to_js(meridian_sdk::Error::new(
            meridian_sdk::ErrorCode::InvalidArgument,
            format!(
                "{what} must be a whole number from 0 to {}, not {n}",
                u32::MAX
            ),
        )))
    }
}

/// The result of a read: every live sibling and the context to write back with.
#[napi]
pub struct GetResult {
    values: Vec<Bytes>,
    context: Bytes,
}

impl From<meridian_sdk::GetResult> for GetResult {
    fn from(r: meridian_sdk::GetResult) -> Self {
        GetResult {
            values: r.values,
            context: Bytes::copy_from_slice(r.context.as_bytes()),
        }
    }
}

#[napi]
impl GetResult {
    /// Every live value (empty when the key is missing or deleted).
    #[napi(getter)]
    pub fn siblings(&self) -> Vec<Buffer> {
        buffers(&self.values)
    }

    /// The one value, or null when the key is missing. Throws UNRESOLVED_SIBLINGS when there
    /// are several: read `siblings`, or use `getResolved`.
    #[napi(getter)]
    pub fn value(&self) -> napi::Result<Option<Buffer>> {
        match self.values.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(Buffer::from(one.to_vec()))),
            many => Err(to_js(meridian_sdk::Error::new(
                meridian_sdk::ErrorCode::UnresolvedSiblings,
                format!(
                    "the key has {} siblings: read .siblings, or use getResolved or update with \
                     a resolver",
                    many.len()
                ),
            ))),
        }
    }

    /// Pass this to the next put or delete of the key. Opaque.
    #[napi(getter)]
    pub fn context(&self) -> Buffer {
        Buffer::from(self.context.to_vec())
    }

    /// Whether the key has a live value.
    #[napi(getter)]
    pub fn found(&self) -> bool {
        !self.values.is_empty()
    }
}

/// What a write returns. `siblings` is empty unless concurrent values survived the write;
/// then it holds them all (this write's included) and `context` covers them.
#[napi(object)]
pub struct WriteResult {
    pub siblings: Vec<Buffer>,
    pub context: Buffer,
}

impl From<meridian_sdk::WriteResult> for WriteResult {
    fn from(w: meridian_sdk::WriteResult) -> Self {
        WriteResult {
            siblings: buffers(&w.siblings),
            context: Buffer::from(w.context.as_bytes().to_vec()),
        }
    }
}

/// A keyspace as the server describes it.
#[napi(object)]
pub struct KeyspaceInfo {
    pub name: String,
    /// "siblings" or "lww".
    pub kind: String,
    /// Replicas per datacenter.
    pub replication: HashMap<String, u32>,
    pub max_value_bytes: u32,
    pub max_siblings: u32,
}

impl From<meridian_sdk::KeyspaceInfo> for KeyspaceInfo {
    fn from(k: meridian_sdk::KeyspaceInfo) -> Self {
        KeyspaceInfo {
            name: k.name,
            kind: k.kind.name().to_string(),
            replication: k
                .replication
                .into_iter()
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
            max_value_bytes: k.max_value_bytes,
            max_siblings: k.max_siblings,
        }
    }
}

/// A CRDT key's value in its JSON form (a counter is a number, a set an array, a map an
/// object of "name:kind" fields; bytes are strings, or {base64} when not UTF-8) and the
/// context that scopes later removes to what it showed.
#[napi(object)]
pub struct Fetched {
    pub value: serde_json::Value,
    pub context: Buffer,
}

impl From<meridian_sdk::Fetched> for Fetched {
    fn from(f: meridian_sdk::Fetched) -> Self {
        Fetched {
            value: meridian_sdk::crdt::value_to_json(&f.value),
            context: Buffer::from(f.context.as_bytes().to_vec()),
        }
    }
}
