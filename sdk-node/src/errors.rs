//! The one mapping from SDK errors to JavaScript errors.
//!
//! A Meridian error travels as `[meridian:CODE] message`, which `meridian.js` turns into a
//! `MeridianError` with `code`. A resolver's own exception comes back as the very object it
//! threw.

use meridian_sdk::{Error, ErrorCode};

pub(crate) fn to_js(e: Error) -> napi::Error {
    if let Some(raised) = e
        .cause
        .as_deref()
        .and_then(|c| c.downcast_ref::<crate::resolver::Raised>())
        && let Some(original) = raised.take()
    {
        return original;
    }
    napi::Error::new(
        napi::Status::GenericFailure,
        format!("[meridian:{}] {}", e.code.as_str(), e.message),
    )
}

/// An error of the caller's making, found before anything was sent.
pub(crate) fn invalid(message: impl Into<String>) -> napi::Error {
    to_js(Error::new(ErrorCode::InvalidArgument, message))
}
