//! Keyspace definitions: a namespace of keys with its own value kind, replication, default
//! consistency and limits.

use crate::consistency::Consistency;
use crate::crdt::CrdtKind;
use crate::error::CoreError;
use crate::limits::{DEFAULT_MAX_SIBLINGS, DEFAULT_MAX_VALUE_BYTES, MAX_CONFIGURABLE_VALUE_BYTES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub const MAX_KEYSPACE_NAME: usize = 64;
/// The keyspace that exists from first start, so `/v1/data/{key}` works with no setup.
pub const DEFAULT_KEYSPACE: &str = "default";
/// Replication factor per DC when a keyspace names none (capped at the DC's size).
pub const DEFAULT_REPLICATION: u32 = 3;

/// What a keyspace stores. Fixed at creation: changing it would reinterpret stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// Opaque bytes; concurrent writes are kept as siblings.
    Siblings,
    /// Opaque bytes; the highest hybrid logical timestamp wins, no siblings.
    Lww,
    // CRDTs, merged by the servers (see `crdt`); updated by operations, never put.
    Counter,
    Set,
    Map,
    Register,
    MvRegister,
    Flag,
}

impl ValueKind {
    pub const ALL: [ValueKind; 8] = [
        ValueKind::Siblings,
        ValueKind::Lww,
        ValueKind::Counter,
        ValueKind::Set,
        ValueKind::Map,
        ValueKind::Register,
        ValueKind::MvRegister,
        ValueKind::Flag,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Siblings => "siblings",
            ValueKind::Lww => "lww",
            other => other.crdt().map_or("?", CrdtKind::name),
        }
    }

    /// The CRDT type of a CRDT keyspace; `None` for keyspaces of opaque values.
    pub fn crdt(self) -> Option<CrdtKind> {
        Some(match self {
            ValueKind::Siblings | ValueKind::Lww => return None,
            ValueKind::Counter => CrdtKind::Counter,
            ValueKind::Set => CrdtKind::Set,
            ValueKind::Map => CrdtKind::Map,
            ValueKind::Register => CrdtKind::Register,
            ValueKind::MvRegister => CrdtKind::MvRegister,
            ValueKind::Flag => CrdtKind::Flag,
        })
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ValueKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown value kind {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyspaceSpec {
    pub name: String,
    pub kind: ValueKind,
    /// Replicas per datacenter. Empty: DEFAULT_REPLICATION in each known DC.
    pub replication: BTreeMap<String, u32>,
    pub read_consistency: Consistency,
    pub write_consistency: Consistency,
    /// Largest key + value accepted, in bytes.
    pub max_value_bytes: u32,
    /// Writes that would grow a key past this many siblings are refused.
    pub max_siblings: u32,
    /// fsync the WAL before acknowledging; `None` follows the node's setting.
    pub sync_writes: Option<bool>,
}

impl KeyspaceSpec {
    pub fn new(name: impl Into<String>, kind: ValueKind) -> Self {
        Self {
            name: name.into(),
            kind,
            replication: BTreeMap::new(),
            read_consistency: Consistency::LocalQuorum,
            write_consistency: Consistency::LocalQuorum,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_siblings: DEFAULT_MAX_SIBLINGS,
            sync_writes: None,
        }
    }

    /// Stable id derived from the name: two DCs that create the same name while cut off
    /// agree on the id, and storage keys never need renumbering.
    pub fn id(&self) -> u64 {
        keyspace_id(&self.name)
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        validate_name(&self.name)?;
        if self.max_value_bytes == 0 || self.max_value_bytes > MAX_CONFIGURABLE_VALUE_BYTES {
            return Err(CoreError::InvalidKeyspace(format!(
                "max_value_bytes {} is outside 1..={MAX_CONFIGURABLE_VALUE_BYTES}",
                self.max_value_bytes
            )));
        }
        if self.max_siblings == 0 || self.max_siblings > 10_000 {
            return Err(CoreError::InvalidKeyspace(format!(
                "max_siblings {} is outside 1..=10000",
                self.max_siblings
            )));
        }
        for (dc, n) in &self.replication {
            if dc.is_empty() || *n == 0 || *n > 15 {
                return Err(CoreError::InvalidKeyspace(format!(
                    "replication for datacenter {dc:?} is {n}; it must be 1..=15 and the name non-empty"
                )));
            }
        }
        Ok(())
    }
}

pub fn keyspace_id(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), 0x6d65_7269_6469_616e)
}

pub fn validate_name(name: &str) -> Result<(), CoreError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty()
        || name.len() > MAX_KEYSPACE_NAME
        || !ok_chars
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(CoreError::InvalidKeyspace(format!(
            "name {name:?} must be 1 to {MAX_KEYSPACE_NAME} characters of A-Z a-z 0-9 _ - ., \
             starting with a letter or digit"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("carts").is_ok());
        assert!(validate_name("a.b-c_9").is_ok());
        for bad in ["", "-x", "a/b", "é", &"x".repeat(65)] {
            let e = validate_name(bad).unwrap_err();
            assert!(e.to_string().contains("1 to 64"), "{e}");
        }
    }

    #[test]
    fn limits_are_checked() {
        let mut s = KeyspaceSpec::new("k", ValueKind::Siblings);
        assert!(s.validate().is_ok());
        s.max_value_bytes = MAX_CONFIGURABLE_VALUE_BYTES + 1;
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("max_value_bytes")
        );
    }

    #[test]
    fn id_depends_only_on_name() {
        let a = KeyspaceSpec::new("x", ValueKind::Siblings);
        let b = KeyspaceSpec::new("x", ValueKind::Lww);
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), KeyspaceSpec::new("y", ValueKind::Lww).id());
    }
}
