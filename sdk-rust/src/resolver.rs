//! Application-side conflict resolution.

use async_trait::async_trait;
use bytes::Bytes;

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
