//! The `meridian.v1` wire protocol: generated messages, clients and servers.
//!
//! The `.proto` files under `proto/meridian/v1` are the source of truth; everything here is
//! generated at build time.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod crdt;
pub mod crdt_json;

pub mod v1 {
    tonic::include_proto!("meridian.v1");
}

/// Encoded file descriptors, served by gRPC reflection so `grpcurl` works without .proto files.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("meridian_descriptor");

/// The one mapping between the core's consistency levels and the wire enum, shared by the
/// server and the SDK.
impl From<meridian_core::Consistency> for v1::Consistency {
    fn from(c: meridian_core::Consistency) -> Self {
        use meridian_core::Consistency as C;
        match c {
            C::One => v1::Consistency::One,
            C::Two => v1::Consistency::Two,
            C::Quorum => v1::Consistency::Quorum,
            C::All => v1::Consistency::All,
            C::LocalOne => v1::Consistency::LocalOne,
            C::LocalQuorum => v1::Consistency::LocalQuorum,
            C::EachQuorum => v1::Consistency::EachQuorum,
        }
    }
}

/// A wire consistency value: `None` for UNSPECIFIED (the keyspace default), an error naming
/// the value for numbers no version of the protocol defines.
pub fn consistency_from_wire(raw: i32) -> Result<Option<meridian_core::Consistency>, String> {
    use meridian_core::Consistency as C;
    Ok(match v1::Consistency::try_from(raw) {
        Ok(v1::Consistency::Unspecified) => None,
        Ok(v1::Consistency::One) => Some(C::One),
        Ok(v1::Consistency::Two) => Some(C::Two),
        Ok(v1::Consistency::Quorum) => Some(C::Quorum),
        Ok(v1::Consistency::All) => Some(C::All),
        Ok(v1::Consistency::LocalOne) => Some(C::LocalOne),
        Ok(v1::Consistency::LocalQuorum) => Some(C::LocalQuorum),
        Ok(v1::Consistency::EachQuorum) => Some(C::EachQuorum),
        Err(_) => return Err(format!("unknown consistency value {raw}")),
    })
}
