//! The one conversion between the core's CRDT types and their wire form, shared by the
//! server and the SDK.

use crate::v1;
use meridian_core::ValueKind;
use meridian_core::crdt::{CrdtKind, Field, Op, Value};
use std::collections::BTreeMap;

impl From<ValueKind> for v1::ValueKind {
    fn from(k: ValueKind) -> Self {
        match k {
            ValueKind::Siblings => v1::ValueKind::Siblings,
            ValueKind::Lww => v1::ValueKind::Lww,
            ValueKind::Counter => v1::ValueKind::Counter,
            ValueKind::Set => v1::ValueKind::Set,
            ValueKind::Map => v1::ValueKind::Map,
            ValueKind::Register => v1::ValueKind::Register,
            ValueKind::MvRegister => v1::ValueKind::MvRegister,
            ValueKind::Flag => v1::ValueKind::Flag,
        }
    }
}

/// A wire value kind; UNSPECIFIED is `siblings`.
pub fn value_kind_from_wire(raw: i32) -> Result<ValueKind, String> {
    Ok(match v1::ValueKind::try_from(raw) {
        Ok(v1::ValueKind::Unspecified | v1::ValueKind::Siblings) => ValueKind::Siblings,
        Ok(v1::ValueKind::Lww) => ValueKind::Lww,
        Ok(v1::ValueKind::Counter) => ValueKind::Counter,
        Ok(v1::ValueKind::Set) => ValueKind::Set,
        Ok(v1::ValueKind::Map) => ValueKind::Map,
        Ok(v1::ValueKind::Register) => ValueKind::Register,
        Ok(v1::ValueKind::MvRegister) => ValueKind::MvRegister,
        Ok(v1::ValueKind::Flag) => ValueKind::Flag,
        Err(_) => {
            let names: Vec<&str> = ValueKind::ALL.iter().map(|k| k.name()).collect();
            return Err(format!(
                "unknown value kind {raw}; expected one of {}",
                names.join(", ")
            ));
        }
    })
}

impl From<CrdtKind> for v1::CrdtKind {
    fn from(k: CrdtKind) -> Self {
        match k {
            CrdtKind::Counter => v1::CrdtKind::Counter,
            CrdtKind::Set => v1::CrdtKind::Set,
            CrdtKind::Map => v1::CrdtKind::Map,
            CrdtKind::Register => v1::CrdtKind::Register,
            CrdtKind::MvRegister => v1::CrdtKind::MvRegister,
            CrdtKind::Flag => v1::CrdtKind::Flag,
        }
    }
}

fn crdt_kind_from_wire(raw: i32) -> Result<CrdtKind, String> {
    Ok(match v1::CrdtKind::try_from(raw) {
        Ok(v1::CrdtKind::Counter) => CrdtKind::Counter,
        Ok(v1::CrdtKind::Set) => CrdtKind::Set,
        Ok(v1::CrdtKind::Map) => CrdtKind::Map,
        Ok(v1::CrdtKind::Register) => CrdtKind::Register,
        Ok(v1::CrdtKind::MvRegister) => CrdtKind::MvRegister,
        Ok(v1::CrdtKind::Flag) => CrdtKind::Flag,
        Ok(v1::CrdtKind::Unspecified) => {
            return Err(
                "a map field needs a kind (counter, set, map, register, mvregister \
                        or flag)"
                    .into(),
            );
        }
        Err(_) => return Err(format!("unknown field kind {raw}")),
    })
}

fn field_from_wire(f: Option<v1::Field>) -> Result<Field, String> {
    let f = f.ok_or("a map operation needs its field")?;
    Ok(Field::new(f.name, crdt_kind_from_wire(f.kind)?))
}

fn field_to_wire(f: &Field) -> v1::Field {
    v1::Field {
        name: f.name.clone(),
        kind: v1::CrdtKind::from(f.kind) as i32,
    }
}

fn elements(e: Vec<impl Into<Vec<u8>>>) -> Vec<serde_bytes::ByteBuf> {
    e.into_iter()
        .map(|b| serde_bytes::ByteBuf::from(b.into()))
        .collect()
}

fn elements_to_wire(e: &[serde_bytes::ByteBuf]) -> v1::Elements {
    v1::Elements {
        elements: e.iter().map(|b| b.to_vec().into()).collect(),
    }
}

/// A wire operation; structural errors only (limits are the core's `check_ops`).
pub fn op_from_wire(op: v1::CrdtOp) -> Result<Op, String> {
    use v1::crdt_op::Op as W;
    Ok(
        match op
            .op
            .ok_or("an operation is empty: set one of its fields")?
        {
            W::Increment(n) => Op::Increment(n),
            W::Add(e) => Op::Add(elements(e.elements)),
            W::Remove(e) => Op::Remove(elements(e.elements)),
            W::Assign(v) => Op::Assign(serde_bytes::ByteBuf::from(v.to_vec())),
            W::Enable(true) => Op::Enable,
            W::Enable(false) => Op::Disable,
            W::Update(u) => Op::Update {
                field: field_from_wire(u.field)?,
                op: Box::new(op_from_wire(
                    *u.op.ok_or("a field update needs its operation")?,
                )?),
            },
            W::RemoveField(f) => Op::RemoveField(field_from_wire(Some(f))?),
        },
    )
}

pub fn op_to_wire(op: &Op) -> v1::CrdtOp {
    use v1::crdt_op::Op as W;
    let op = match op {
        Op::Increment(n) => W::Increment(*n),
        Op::Add(e) => W::Add(elements_to_wire(e)),
        Op::Remove(e) => W::Remove(elements_to_wire(e)),
        Op::Assign(v) => W::Assign(v.to_vec().into()),
        Op::Enable => W::Enable(true),
        Op::Disable => W::Enable(false),
        Op::Update { field, op } => W::Update(Box::new(v1::FieldUpdate {
            field: Some(field_to_wire(field)),
            op: Some(Box::new(op_to_wire(op))),
        })),
        Op::RemoveField(f) => W::RemoveField(field_to_wire(f)),
    };
    v1::CrdtOp { op: Some(op) }
}

pub fn value_to_wire(v: &Value) -> v1::CrdtValue {
    use v1::crdt_value::Value as W;
    let value = match v {
        Value::Counter(n) => W::Counter(*n),
        Value::Set(e) => W::Set(elements_to_wire(e)),
        Value::Register(r) => W::Register(v1::RegisterValue {
            value: r.as_ref().map(|b| b.to_vec().into()),
        }),
        Value::MvRegister(e) => W::MvRegister(elements_to_wire(e)),
        Value::Flag(f) => W::Flag(*f),
        Value::Map(fields) => W::Map(v1::MapValue {
            entries: fields
                .iter()
                .map(|(f, v)| v1::MapEntry {
                    field: Some(field_to_wire(f)),
                    value: Some(value_to_wire(v)),
                })
                .collect(),
        }),
    };
    v1::CrdtValue { value: Some(value) }
}

pub fn value_from_wire(v: v1::CrdtValue) -> Result<Value, String> {
    use v1::crdt_value::Value as W;
    Ok(match v.value.ok_or("a CRDT value is empty")? {
        W::Counter(n) => Value::Counter(n),
        W::Set(e) => Value::Set(elements(e.elements)),
        W::Register(r) => Value::Register(r.value.map(|b| serde_bytes::ByteBuf::from(b.to_vec()))),
        W::MvRegister(e) => Value::MvRegister(elements(e.elements)),
        W::Flag(f) => Value::Flag(f),
        W::Map(m) => {
            let mut fields = BTreeMap::new();
            for e in m.entries {
                let field = field_from_wire(e.field)?;
                let value = value_from_wire(e.value.ok_or("a map entry has no value")?)?;
                fields.insert(field, value);
            }
            Value::Map(fields)
        }
    })
}
