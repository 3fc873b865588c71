//! Application-side conflict resolution.

use async_trait::async_trait;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// Turns a key's siblings into one value.
///
/// Async and object-safe (`Arc<dyn Resolver>`), so a resolver can be a Python or JavaScript
/// callback behind a binding, or can itself look things up. Called only with two or more
/// siblings.
#[async_trait]
pub trait Resolver: Send + Sync + 'static {
    async fn resolve(&self, key: &[u8], siblings: Vec<Bytes>) -> crate::Result<Bytes>;
}

/// A resolver from a plain function, for the common case of a pure merge.
pub struct FnResolver<F>(pub F);

#[async_trait]
impl<F> Resolver for FnResolver<F>
where
    F: Fn(&[u8], Vec<Bytes>) -> crate::Result<Bytes> + Send + Sync + 'static,
{
    async fn resolve(&self, key: &[u8], siblings: Vec<Bytes>) -> crate::Result<Bytes> {
        (self.0)(key, siblings)
    }
}

/// Runs a resolver within `timeout`.
///
/// A resolver that awaits is cut off at the timeout. One that blocks its thread (a plain
/// Python or JavaScript function) cannot be interrupted, so its answer is checked against the
/// clock when it returns and dropped if late: in both cases nothing is written and the
/// siblings stay, which is what a caller retrying later needs.
pub(crate) async fn run(
    resolver: &dyn Resolver,
    key: &[u8],
    siblings: Vec<Bytes>,
    timeout: Duration,
) -> crate::Result<Bytes> {
    let started = Instant::now();
    let late = || {
        crate::Error::new(
            crate::ErrorCode::ResolverTimeout,
            format!(
                "the resolver ran past its timeout of {timeout:?}; nothing was written and the \
                 siblings remain"
            ),
        )
    };
    match tokio::time::timeout(timeout, resolver.resolve(key, siblings)).await {
        Err(_) => Err(late()),
        Ok(_) if started.elapsed() > timeout => Err(late()),
        Ok(resolved) => resolved,
    }
}
