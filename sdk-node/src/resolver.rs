//! JavaScript functions as SDK resolvers and update functions.
//!
//! Each is a weak threadsafe function: calling it queues the call on the JS thread and
//! awaits the answer without blocking either side, and it never keeps the process alive.
//! A function may return its value or a Promise of it.

use crate::values::buffers;
use async_trait::async_trait;
use bytes::Bytes;
use meridian_sdk::{Error, Resolver};
use napi::bindgen_prelude::{Buffer, Either, Either3, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use std::sync::Mutex;

/// An exception thrown (or a rejection) by the application's function, carried through the
/// SDK and handed back to JavaScript as the very object it was.
pub(crate) struct Raised(Mutex<Option<napi::Error>>);

impl Raised {
    pub(crate) fn take(&self) -> Option<napi::Error> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl std::fmt::Debug for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the application's exception")
    }
}

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.lock() {
            Ok(e) => match e.as_ref() {
                Some(e) => write!(f, "{}", e.reason),
                None => f.write_str("the application's exception"),
            },
            Err(_) => f.write_str("the application's exception"),
        }
    }
}

impl std::error::Error for Raised {}

fn raised(e: napi::Error) -> Error {
    Error::resolver_failed(Raised(Mutex::new(Some(e))))
}

type Value = Either<Buffer, String>;

/// What a resolver returns: a value, or a Promise of one.
pub(crate) type Resolved = Either3<Buffer, String, Promise<Value>>;

/// `(siblings: Buffer[]) => Buffer | string | Promise<Buffer | string>`.
pub(crate) type ResolverFn =
    ThreadsafeFunction<Vec<Buffer>, Resolved, Vec<Buffer>, napi::Status, false, true>;

/// What an update function returns: a value, null (delete), or a Promise of either.
pub(crate) type Updated = Option<Either3<Buffer, String, Promise<Option<Value>>>>;

/// `(current: Buffer | null) => Buffer | string | null | Promise<...>`.
pub(crate) type UpdateFn =
    ThreadsafeFunction<Option<Buffer>, Updated, Option<Buffer>, napi::Status, false, true>;

fn bytes(v: Value) -> Bytes {
    match v {
        Either::A(b) => Bytes::copy_from_slice(&b),
        Either::B(s) => Bytes::from(s),
    }
}

pub(crate) struct JsResolver(pub(crate) ResolverFn);

#[async_trait]
impl Resolver for JsResolver {
    async fn resolve(&self, _key: &[u8], siblings: Vec<Bytes>) -> meridian_sdk::Result<Bytes> {
        let out = self
            .0
            .call_async_catch(buffers(&siblings))
            .await
            .map_err(raised)?;
        Ok(match out {
            Either3::A(b) => Bytes::copy_from_slice(&b),
            Either3::B(s) => Bytes::from(s),
            Either3::C(promise) => bytes(promise.await.map_err(raised)?),
        })
    }
}

/// Calls an update function with the current value; None deletes the key.
pub(crate) async fn call_update(
    f: &UpdateFn,
    current: Option<Bytes>,
) -> meridian_sdk::Result<Option<Bytes>> {
    let out = f
        .call_async_catch(current.map(|c| Buffer::from(c.to_vec())))
        .await
        .map_err(raised)?;
    Ok(match out {
        None => None,
        Some(Either3::A(b)) => Some(Bytes::copy_from_slice(&b)),
        Some(Either3::B(s)) => Some(Bytes::from(s)),
        Some(Either3::C(promise)) => promise.await.map_err(raised)?.map(bytes),
    })
}
