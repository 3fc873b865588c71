//! The layout: the cluster's members and the partition assignment, as replicated data.
//!
//! A layout version is computed once, by the node that commits it, and then copied verbatim:
//! every node that holds version v holds byte-identical members and assignments (the digest
//! says so at a glance). Nothing about it is re-derived from gossip or clocks, so a late
//! message or a skewed clock cannot make one version mean two placements. How versions are
//! staged, committed, merged and retired is in [`history`].

pub mod agent;
pub mod history;
pub mod ownership;
pub mod streaming;

use crate::actor::ActorId;
use crate::ring::{Change, Member, Placement};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

pub use history::{LayoutHistory, Staged, StagedChange, Stamp};

/// What a member does. Only storage members own partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Holds data: takes partitions in proportion to its capacity.
    Storage,
    /// Takes client requests and coordinates them, holds no data.
    Gateway,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Storage => "storage",
            Role::Gateway => "gateway",
        }
    }
}

/// A member as a layout version records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutMember {
    pub id: ActorId,
    pub dc: String,
    pub rack: String,
    pub capacity: u32,
    pub role: Role,
}

impl LayoutMember {
    fn placement_member(&self) -> Option<Member> {
        (self.role == Role::Storage).then(|| Member {
            id: self.id,
            dc: self.dc.clone(),
            rack: self.rack.clone(),
            capacity: self.capacity.max(1),
        })
    }
}

/// A version's digest: BLAKE3 of its canonical encoding, first 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Digest(pub [u8; 16]);

impl fmt::Display for Digest {
    /// The first 8 bytes in hex: enough for a person to compare two nodes' views.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// One committed layout version.
#[derive(Clone, Serialize, Deserialize)]
pub struct LayoutVersion {
    pub version: u64,
    /// Digest of the version this one was computed from (zero for the first).
    pub parent: Digest,
    /// The cluster secret, chosen with the first version and carried unchanged: contexts are
    /// sealed with it (see [`crate::seal`]).
    secret: [u8; 32],
    /// Sorted by id.
    members: Arc<Vec<LayoutMember>>,
    /// Shared: histories are cloned on every exchange, and a version never changes.
    placement: Arc<Placement>,
    /// Derived from the fields above when a version is built or decoded, never sent: the
    /// history compares digests constantly, and each one hashes tens of kilobytes.
    #[serde(skip)]
    digest: Digest,
}

/// Equal when the digests are: every way a version comes into being (built, or decoded and
/// checked) derives its digest from its content, and histories compare versions on every
/// exchange, where comparing whole placements would dominate.
impl PartialEq for LayoutVersion {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version && self.digest == other.digest
    }
}

impl Eq for LayoutVersion {}

impl fmt::Debug for LayoutVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayoutVersion")
            .field("version", &self.version)
            .field("digest", &self.digest())
            .field("parent", &self.parent)
            .field("members", &self.members.len())
            .finish()
    }
}

impl LayoutVersion {
    /// The first version of a new cluster: its first member, and a fresh secret (randomness
    /// is an input).
    pub fn bootstrap(first: LayoutMember, secret: [u8; 32]) -> Self {
        let empty = Self {
            version: 0,
            parent: Digest::default(),
            secret,
            members: Arc::default(),
            placement: Arc::new(Placement::empty()),
            digest: Digest::default(),
        };
        empty.next(&[(first.id, StagedChange::join_of(&first))])
    }

    /// The version after this one with `changes` applied (each node at most once).
    pub(crate) fn next(&self, changes: &[(ActorId, StagedChange)]) -> Self {
        let mut members = (*self.members).clone();
        let mut placement_changes = Vec::new();
        for (id, change) in changes {
            let old = members.iter().position(|m| m.id == *id);
            let old_member = old.map(|i| members.remove(i));
            match change {
                StagedChange::Join {
                    dc,
                    rack,
                    capacity,
                    role,
                } => {
                    let m = LayoutMember {
                        id: *id,
                        dc: dc.clone(),
                        rack: rack.clone(),
                        capacity: *capacity,
                        role: *role,
                    };
                    match m.placement_member() {
                        Some(pm) => placement_changes.push(Change::Join(pm)),
                        None if old_member.is_some() => placement_changes.push(Change::Leave(*id)),
                        None => {}
                    }
                    members.push(m);
                }
                StagedChange::Remove => {
                    if old_member.is_some() {
                        placement_changes.push(Change::Leave(*id));
                    }
                }
            }
        }
        members.sort_by_key(|m| m.id);
        Self {
            version: self.version + 1,
            parent: if self.version == 0 {
                Digest::default()
            } else {
                self.digest
            },
            secret: self.secret,
            members: Arc::new(members),
            placement: Arc::new(self.placement.apply_all(&placement_changes)),
            digest: Digest::default(),
        }
        .with_digest()
    }

    fn with_digest(mut self) -> Self {
        let hash = blake3::hash(&self.encode());
        self.digest.0.copy_from_slice(&hash.as_bytes()[..16]);
        self
    }

    pub fn members(&self) -> &[LayoutMember] {
        &self.members
    }

    pub fn member(&self, id: &ActorId) -> Option<&LayoutMember> {
        self.members
            .binary_search_by(|m| m.id.cmp(id))
            .ok()
            .map(|i| &self.members[i])
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// Canonical bytes: what is replicated and what the digest covers.
    pub fn encode(&self) -> Vec<u8> {
        // Plain owned data into a Vec cannot fail to serialise.
        postcard::to_extend(self, Vec::new()).unwrap_or_default()
    }

    /// Decodes a version from a peer (see [`LayoutVersion::checked`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let v: LayoutVersion = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        v.checked()
    }

    /// A version deserialised from a peer, checked (its placement is well-formed and names
    /// exactly its storage members) and with its digest computed.
    pub(crate) fn checked(self) -> Result<Self, String> {
        self.placement.validate()?;
        if self.members.windows(2).any(|w| w[0].id >= w[1].id) {
            return Err("layout members are not sorted by id".into());
        }
        let storage: Vec<ActorId> = self
            .members
            .iter()
            .filter(|m| m.role == Role::Storage)
            .map(|m| m.id)
            .collect();
        let mut placed: Vec<ActorId> = self.placement.members().map(|m| m.id).collect();
        placed.sort();
        if storage != placed {
            return Err("layout placement does not match its storage members".into());
        }
        Ok(self.with_digest())
    }

    pub fn digest(&self) -> Digest {
        self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn member(n: u8, dc: &str) -> LayoutMember {
        LayoutMember {
            id: ActorId([n; 16]),
            dc: dc.into(),
            rack: format!("r{}", n % 3),
            capacity: 1,
            role: Role::Storage,
        }
    }

    #[test]
    fn versions_are_replicated_verbatim_and_checked() {
        let v1 = LayoutVersion::bootstrap(member(1, "dc1"), [9; 32]);
        assert_eq!(v1.version, 1);
        let v2 = v1.next(&[
            (ActorId([2; 16]), StagedChange::join_of(&member(2, "dc1"))),
            (ActorId([3; 16]), StagedChange::join_of(&member(3, "dc2"))),
        ]);
        assert_eq!(v2.parent, v1.digest());
        let copy = LayoutVersion::decode(&v2.encode()).unwrap();
        assert_eq!(copy.encode(), v2.encode());
        assert_eq!(copy.digest(), v2.digest());
        assert_eq!(copy.placement().owners("dc2", 7, 3), vec![ActorId([3; 16])]);
        let mut bytes = v2.encode();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let _ = LayoutVersion::decode(&bytes); // an error or a different version, never a panic
        assert!(LayoutVersion::decode(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn gateways_own_nothing() {
        let mut g = member(2, "dc1");
        g.role = Role::Gateway;
        let v = LayoutVersion::bootstrap(member(1, "dc1"), [0; 32])
            .next(&[(g.id, StagedChange::join_of(&g))]);
        assert!(v.member(&g.id).is_some());
        assert!(v.placement().member(&g.id).is_none());
        assert!(LayoutVersion::decode(&v.encode()).is_ok());
    }
}
