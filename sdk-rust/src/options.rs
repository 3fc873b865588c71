//! Per-request options and enums mirrored from the protocol.

use meridian_proto::v1 as pb;
use std::time::Duration;

/// How many replicas must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Consistency {
    One,
    Two,
    Quorum,
    All,
    LocalOne,
    LocalQuorum,
    EachQuorum,
}

impl Consistency {
    pub(crate) fn to_proto(self) -> pb::Consistency {
        match self {
            Consistency::One => pb::Consistency::One,
            Consistency::Two => pb::Consistency::Two,
            Consistency::Quorum => pb::Consistency::Quorum,
            Consistency::All => pb::Consistency::All,
            Consistency::LocalOne => pb::Consistency::LocalOne,
            Consistency::LocalQuorum => pb::Consistency::LocalQuorum,
            Consistency::EachQuorum => pb::Consistency::EachQuorum,
        }
    }
}

impl std::str::FromStr for Consistency {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(
            match s.trim().to_ascii_uppercase().replace('-', "_").as_str() {
                "ONE" => Consistency::One,
                "TWO" => Consistency::Two,
                "QUORUM" => Consistency::Quorum,
                "ALL" => Consistency::All,
                "LOCAL_ONE" => Consistency::LocalOne,
                "LOCAL_QUORUM" => Consistency::LocalQuorum,
                "EACH_QUORUM" => Consistency::EachQuorum,
                _ => {
                    return Err(crate::Error::new(
                        crate::ErrorCode::InvalidArgument,
                        format!(
                            "unknown consistency {s:?}; expected ONE, TWO, QUORUM, ALL, LOCAL_ONE, \
                         LOCAL_QUORUM or EACH_QUORUM"
                        ),
                    ));
                }
            },
        )
    }
}

/// Value kind of a keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueKind {
    Siblings,
    Lww,
}

#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// `None`: the keyspace default.
    pub consistency: Option<Consistency>,
    /// `None`: the client's default timeout.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub consistency: Option<Consistency>,
    pub timeout: Option<Duration>,
    /// Reuse an id to make a write idempotent across your own retries; `None` draws one.
    pub request_id: Option<[u8; 16]>,
}
