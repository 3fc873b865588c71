//! The JSON form of CRDT operations and values: the HTTP API, the CLI and the Python and
//! Node.js SDKs all speak it, so it is written once, here.
//!
//! - Bytes (set elements, register values) are JSON strings when they are UTF-8, and
//!   `{"base64": "..."}` otherwise; either form is accepted.
//! - A map field is named `"name:kind"` (`"visits:counter"`, `"tags:set"`): a name may
//!   hold `:`, the kind is what follows the last one.
//! - Operations: `{"increment": 5}`, `{"add": ["a", "b"]}`, `{"remove": ["a"]}`,
//!   `{"assign": "v"}`, `{"enable": true}` (false disables),
//!   `{"update": {"field": "visits:counter", "op": {"increment": 1}}}`,
//!   `{"remove_field": "tags:set"}`.
//! - Values: a counter is a number, a set an array, a register its value or null, a
//!   multi-value register an array, a flag a boolean, a map an object of fields.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use meridian_core::crdt::{CrdtKind, Field, Op, Value};
use serde_bytes::ByteBuf;
use serde_json::{Map, Value as Json, json};

fn bad(msg: impl Into<String>) -> String {
    msg.into()
}

/// A JSON value as an error quotes it: at most 64 characters, so a megabyte of bad input
/// makes a short message.
pub fn brief(j: &Json) -> String {
    const MAX: usize = 64;
    let s = j.to_string();
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

fn bytes_to_json(b: &[u8]) -> Json {
    match std::str::from_utf8(b) {
        Ok(s) => Json::String(s.to_string()),
        Err(_) => json!({ "base64": STANDARD.encode(b) }),
    }
}

fn bytes_from_json(j: &Json, what: &str) -> Result<ByteBuf, String> {
    match j {
        Json::String(s) => Ok(ByteBuf::from(s.as_bytes().to_vec())),
        Json::Object(o) if o.len() == 1 => match o.get("base64") {
            Some(Json::String(s)) => STANDARD
                .decode(s)
                .map(ByteBuf::from)
                .map_err(|e| bad(format!("{what}: base64 does not decode: {e}"))),
            _ => Err(bad(format!(
                "{what}: expected a string or {{\"base64\": \"...\"}}"
            ))),
        },
        _ => Err(bad(format!(
            "{what}: expected a string or {{\"base64\": \"...\"}}"
        ))),
    }
}

fn elements_from_json(j: &Json, op: &str) -> Result<Vec<ByteBuf>, String> {
    let items = j
        .as_array()
        .ok_or_else(|| bad(format!("`{op}` takes an array of elements")))?;
    items
        .iter()
        .map(|e| bytes_from_json(e, &format!("an element of `{op}`")))
        .collect()
}

pub fn field_name(f: &Field) -> String {
    format!("{}:{}", f.name, f.kind)
}

pub fn field_from_str(s: &str) -> Result<Field, String> {
    let (name, kind) = s.rsplit_once(':').ok_or_else(|| {
        bad(format!(
            "field {s:?} has no kind: write \"name:kind\", e.g. \"visits:counter\""
        ))
    })?;
    let kind = CrdtKind::from_name(kind).ok_or_else(|| {
        bad(format!(
            "field {s:?}: unknown kind {kind:?}; expected counter, set, map, register, \
             mvregister or flag"
        ))
    })?;
    Ok(Field::new(name, kind))
}

fn field_from_json(j: &Json) -> Result<Field, String> {
    field_from_str(
        j.as_str()
            .ok_or_else(|| bad("a field is a string \"name:kind\""))?,
    )
}

pub fn op_from_json(j: &Json) -> Result<Op, String> {
    let o = j.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
        bad(format!(
            "an operation is an object with one key, not {}",
            brief(j)
        ))
    })?;
    let (name, arg) = o.iter().next().ok_or_else(|| bad("an empty operation"))?;
    Ok(match name.as_str() {
        "increment" => Op::Increment(arg.as_i64().ok_or_else(|| {
            bad(format!(
                "`increment` takes a 64-bit integer, not {}",
                brief(arg)
            ))
        })?),
        "add" => Op::Add(elements_from_json(arg, "add")?),
        "remove" => Op::Remove(elements_from_json(arg, "remove")?),
        "assign" => Op::Assign(bytes_from_json(arg, "`assign`")?),
        "enable" => match arg.as_bool() {
            Some(true) => Op::Enable,
            Some(false) => Op::Disable,
            None => return Err(bad("`enable` takes true or false")),
        },
        "update" => {
            let u = arg
                .as_object()
                .filter(|u| u.keys().all(|k| k == "field" || k == "op"))
                .ok_or_else(|| {
                    bad(format!(
                        "`update` takes {{\"field\": \"name:kind\", \"op\": {{...}}}}, not {}",
                        brief(arg)
                    ))
                })?;
            let field = field_from_json(u.get("field").unwrap_or(&Json::Null))?;
            let op = op_from_json(u.get("op").unwrap_or(&Json::Null))?;
            Op::Update {
                field,
                op: Box::new(op),
            }
        }
        "remove_field" => Op::RemoveField(field_from_json(arg)?),
        other => {
            return Err(bad(format!(
                "unknown operation {other:?}; expected increment, add, remove, assign, \
                 enable, update or remove_field"
            )));
        }
    })
}

pub fn ops_from_json(j: &Json) -> Result<Vec<Op>, String> {
    let ops = j
        .as_array()
        .ok_or_else(|| bad("\"ops\" is an array of operations"))?;
    ops.iter().map(op_from_json).collect()
}

pub fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Counter(n) => json!(n),
        Value::Set(e) | Value::MvRegister(e) => {
            Json::Array(e.iter().map(|b| bytes_to_json(b)).collect())
        }
        Value::Register(r) => r.as_ref().map_or(Json::Null, |b| bytes_to_json(b)),
        Value::Flag(f) => json!(f),
        Value::Map(fields) => {
            let mut m = Map::new();
            for (f, v) in fields {
                m.insert(field_name(f), value_to_json(v));
            }
            Json::Object(m)
        }
    }
}
