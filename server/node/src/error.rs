//! The node's error type and the one place that maps errors to gRPC and HTTP status.

use axum::http::StatusCode;
use meridian_core::CoreError;
use thiserror::Error;
use tonic::Code;

#[derive(Debug, Error)]
pub enum NodeError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("keyspace {0:?} does not exist")]
    KeyspaceNotFound(String),
    #[error("keyspace {name:?} already exists with a different definition: {existing}")]
    KeyspaceExists { name: String, existing: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("storage full: {0}")]
    StorageFull(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A peer or forwarded request answered with this gRPC status; passed through as is.
    #[error("{message}")]
    Remote { code: Code, message: String },
    #[error("deadline of {0} ms exceeded")]
    DeadlineExceeded(u64),
    #[error("internal error: {0}")]
    Internal(String),
}

impl NodeError {
    /// The object itself is at fault (corrupt, of another kind, a malformed key): retrying
    /// cannot help, unlike a storage or network failure.
    pub fn is_bad_object(&self) -> bool {
        matches!(
            self,
            NodeError::Core(
                CoreError::CorruptObject(_)
                    | CoreError::KindMismatch { .. }
                    | CoreError::MalformedStorageKey(_)
            ) | NodeError::InvalidArgument(_)
        )
    }

    pub fn grpc_code(&self) -> Code {
        match self {
            NodeError::Core(e) => match e {
                CoreError::EmptyKey { .. }
                | CoreError::KeyTooLong { .. }
                | CoreError::ValueTooLarge { .. }
                | CoreError::MalformedContext(_)
                | CoreError::ForeignContext
                | CoreError::MalformedRequestId { .. }
                | CoreError::MalformedStorageKey(_)
                | CoreError::InvalidKeyspace(_)
                | CoreError::InvalidUpdate(_)
                | CoreError::WrongCrdtOp { .. } => Code::InvalidArgument,
                CoreError::CounterOverflow { .. } => Code::OutOfRange,
                CoreError::TooManySiblings { .. }
                | CoreError::SiblingsTooLarge { .. }
                | CoreError::CrdtTooLarge { .. }
                | CoreError::ClockOverflow { .. } => Code::FailedPrecondition,
                CoreError::Unsatisfiable { .. }
                | CoreError::Unavailable { .. }
                | CoreError::NoReplicaReachable { .. } => Code::Unavailable,
                CoreError::CorruptObject(_) | CoreError::KindMismatch { .. } => Code::DataLoss,
                _ => Code::Internal,
            },
            NodeError::KeyspaceNotFound(_) => Code::NotFound,
            NodeError::KeyspaceExists { .. } => Code::AlreadyExists,
            NodeError::InvalidArgument(_) => Code::InvalidArgument,
            NodeError::Storage(_) | NodeError::Internal(_) => Code::Internal,
            NodeError::StorageFull(_) => Code::ResourceExhausted,
            NodeError::Unavailable(_) => Code::Unavailable,
            NodeError::NotFound(_) => Code::NotFound,
            NodeError::FailedPrecondition(_) => Code::FailedPrecondition,
            NodeError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            NodeError::Remote { code, .. } => *code,
        }
    }

    pub fn http_status(&self) -> StatusCode {
        match self {
            NodeError::Core(CoreError::KeyTooLong { .. } | CoreError::ValueTooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => http_status_for(self.grpc_code()),
        }
    }
}

/// gRPC code → HTTP status, shared by errors and by statuses carried inside messages.
pub fn http_status_for(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::ResourceExhausted => StatusCode::INSUFFICIENT_STORAGE,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The SCREAMING_SNAKE name of a gRPC code, as used in JSON error bodies.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl From<NodeError> for tonic::Status {
    fn from(e: NodeError) -> Self {
        tonic::Status::new(e.grpc_code(), e.to_string())
    }
}

impl From<&NodeError> for meridian_proto::v1::Status {
    fn from(e: &NodeError) -> Self {
        meridian_proto::v1::Status {
            code: e.grpc_code() as i32,
            message: e.to_string(),
        }
    }
}

impl From<meridian_core::merkle::exchange::ExchangeError<NodeError>> for NodeError {
    fn from(e: meridian_core::merkle::exchange::ExchangeError<NodeError>) -> Self {
        use meridian_core::merkle::exchange::ExchangeError;
        match e {
            ExchangeError::Store(e) => e,
            e @ ExchangeError::BadRequest(_) => NodeError::InvalidArgument(e.to_string()),
            e @ ExchangeError::Protocol(_) => NodeError::Unavailable(e.to_string()),
        }
    }
}

impl From<rocksdb::Error> for NodeError {
    fn from(e: rocksdb::Error) -> Self {
        let msg = e.to_string();
        if msg.contains("No space left") || msg.contains("NoSpace") {
            NodeError::StorageFull(msg)
        } else {
            NodeError::Storage(msg)
        }
    }
}

impl axum::response::IntoResponse for NodeError {
    fn into_response(self) -> axum::response::Response {
        let body = serde_json::json!({
            "error": { "code": code_name(self.grpc_code()), "message": self.to_string() }
        });
        (self.http_status(), axum::Json(body)).into_response()
    }
}

pub type NodeResult<T> = Result<T, NodeError>;
