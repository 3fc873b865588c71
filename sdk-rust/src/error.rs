//! Errors with a stable code, so bindings can map them to exception classes (Python) and
//! `error.code` strings (JavaScript) without parsing messages.

use std::sync::Arc;

/// Stable error codes. New codes may be added; match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Bad input: empty or oversized key or value, malformed context, bad option.
    InvalidArgument,
    /// The keyspace does not exist.
    NotFound,
    /// The keyspace exists with a different definition.
    AlreadyExists,
    /// The write would exceed the sibling limit; resolve the key first.
    FailedPrecondition,
    /// No replica (or not enough) could be reached; safe to retry.
    Unavailable,
    DeadlineExceeded,
    /// The server is out of a resource (disk, in-flight slots).
    ResourceExhausted,
    /// Siblings were found and no resolver was given.
    UnresolvedSiblings,
    /// The application's resolver failed; [`Error::source`](std::error::Error::source) holds
    /// what it raised, which bindings re-raise unchanged. Nothing was written.
    ResolverFailed,
    /// The application's resolver ran past its timeout. Nothing was written: the siblings
    /// remain for the next reader.
    ResolverTimeout,
    Cancelled,
    Internal,
    Unknown,
}

impl ErrorCode {
    /// The SCREAMING_SNAKE name, as used in HTTP error bodies and binding error codes.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorCode::UnresolvedSiblings => "UNRESOLVED_SIBLINGS",
            ErrorCode::ResolverFailed => "RESOLVER_FAILED",
            ErrorCode::ResolverTimeout => "RESOLVER_TIMEOUT",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }

    pub(crate) fn from_grpc(code: tonic::Code) -> Self {
        use tonic::Code as C;
        match code {
            C::InvalidArgument | C::OutOfRange => ErrorCode::InvalidArgument,
            C::NotFound => ErrorCode::NotFound,
            C::AlreadyExists => ErrorCode::AlreadyExists,
            C::FailedPrecondition | C::Aborted => ErrorCode::FailedPrecondition,
            C::Unavailable => ErrorCode::Unavailable,
            C::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            C::ResourceExhausted => ErrorCode::ResourceExhausted,
            C::Cancelled => ErrorCode::Cancelled,
            C::Internal | C::DataLoss => ErrorCode::Internal,
            _ => ErrorCode::Unknown,
        }
    }

    /// Whether retrying the same request (same request id) may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::Unavailable)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the application's own code raised, kept whole so a binding can hand it back.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Clone)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// What the application's code raised (a resolver's error), kept for
    /// [`std::error::Error::source`] and for bindings to re-raise.
    pub cause: Option<Cause>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {
    /// The application's own error itself (not the `Arc` around it), so callers can
    /// downcast it to their type.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// A resolver's own failure, carried unchanged.
    pub fn resolver_failed(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            code: ErrorCode::ResolverFailed,
            message: format!("the resolver failed: {cause}"),
            cause: Some(Arc::new(cause)),
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::new(ErrorCode::from_grpc(s.code()), s.message().to_string())
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        Error::new(ErrorCode::Unavailable, format!("transport: {e}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
