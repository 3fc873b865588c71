//! The `meridian.v1` wire protocol: generated messages, clients and servers.
//!
//! The `.proto` files under `proto/meridian/v1` are the source of truth; everything here is
//! generated at build time.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod v1 {
    tonic::include_proto!("meridian.v1");
}

/// Encoded file descriptors, served by gRPC reflection so `grpcurl` works without .proto files.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("meridian_descriptor");
