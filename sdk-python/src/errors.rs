//! The one mapping from the SDK's error codes to Python exception classes.

use meridian_sdk::{Error, ErrorCode};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    meridian,
    MeridianError,
    PyException,
    "Every error Meridian raises; `.code` is the stable code string (e.g. \"UNAVAILABLE\")."
);
create_exception!(
    meridian,
    InvalidArgument,
    MeridianError,
    "Bad input: an empty or oversized key or value, a malformed context, a bad option."
);
create_exception!(
    meridian,
    NotFound,
    MeridianError,
    "The keyspace does not exist. (A missing key is not an error: it reads as no siblings.)"
);
create_exception!(
    meridian,
    AlreadyExists,
    MeridianError,
    "A keyspace of that name exists with a different definition."
);
create_exception!(
    meridian,
    SiblingLimit,
    MeridianError,
    "The write would grow the key past its keyspace's sibling limit (code \
     FAILED_PRECONDITION): resolve the key first."
);
create_exception!(
    meridian,
    Unavailable,
    MeridianError,
    "Not enough replicas could be reached; safe to retry."
);
create_exception!(
    meridian,
    Timeout,
    MeridianError,
    "The request's deadline passed before enough replicas answered."
);
create_exception!(
    meridian,
    ResolverTimeout,
    Timeout,
    "The resolver ran past the client's resolver_timeout; nothing was written and the \
     siblings remain."
);
create_exception!(
    meridian,
    ResourceExhausted,
    MeridianError,
    "The server is out of a resource (disk, in-flight slots)."
);
create_exception!(
    meridian,
    UnresolvedSiblings,
    MeridianError,
    "The key has siblings and the call had no resolver to merge them."
);
create_exception!(
    meridian,
    Cancelled,
    MeridianError,
    "The request was cancelled, or the client is closed."
);
create_exception!(
    meridian,
    InternalError,
    MeridianError,
    "The server or the client failed in a way that is not the caller's fault."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("MeridianError", py.get_type::<MeridianError>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("AlreadyExists", py.get_type::<AlreadyExists>())?;
    m.add("SiblingLimit", py.get_type::<SiblingLimit>())?;
    m.add("Unavailable", py.get_type::<Unavailable>())?;
    m.add("Timeout", py.get_type::<Timeout>())?;
    m.add("ResolverTimeout", py.get_type::<ResolverTimeout>())?;
    m.add("ResourceExhausted", py.get_type::<ResourceExhausted>())?;
    m.add("UnresolvedSiblings", py.get_type::<UnresolvedSiblings>())?;
    m.add("Cancelled", py.get_type::<Cancelled>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}

/// The exception for an SDK error. A resolver's own exception comes back as it was raised.
pub(crate) fn to_py(e: Error) -> PyErr {
    if let Some(raised) = e
        .cause
        .as_deref()
        .and_then(|c| c.downcast_ref::<crate::resolver::Raised>())
    {
        return crate::interpreter::enter(|py| raised.0.clone_ref(py)).unwrap_or_else(|| {
            InternalError::new_err("the interpreter is exiting: the resolver's error is lost")
        });
    }
    let message = e.message.clone();
    let err = match e.code {
        ErrorCode::InvalidArgument => InvalidArgument::new_err(message),
        ErrorCode::NotFound => NotFound::new_err(message),
        ErrorCode::AlreadyExists => AlreadyExists::new_err(message),
        ErrorCode::FailedPrecondition => SiblingLimit::new_err(message),
        ErrorCode::Unavailable => Unavailable::new_err(message),
        ErrorCode::DeadlineExceeded => Timeout::new_err(message),
        ErrorCode::ResolverTimeout => ResolverTimeout::new_err(message),
        ErrorCode::ResourceExhausted => ResourceExhausted::new_err(message),
        ErrorCode::UnresolvedSiblings => UnresolvedSiblings::new_err(message),
        ErrorCode::Cancelled => Cancelled::new_err(message),
        _ => InternalError::new_err(message),
    };
    crate::interpreter::enter(|py| {
        // Every instance carries its code, so `except MeridianError as e: e.code` works
        // for each subclass alike.
        let _ = err.value(py).setattr("code", e.code.as_str());
    });
    err
}

/// An error of the caller's making, found before anything was sent.
pub(crate) fn invalid(message: impl Into<String>) -> PyErr {
    to_py(Error::new(ErrorCode::InvalidArgument, message))
}
