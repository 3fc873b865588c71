//! The opaque causal context.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;

/// What a read saw, to hand back on the next write to the same key so that the write
/// supersedes exactly those versions. Opaque: do not build or edit one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Context(pub(crate) Bytes);

impl Context {
    /// The empty context: a write with it supersedes nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The form used in the HTTP header `meridian-context`.
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    pub fn from_base64(s: &str) -> Result<Self, crate::Error> {
        URL_SAFE_NO_PAD
            .decode(s.trim())
            .map(|b| Self(b.into()))
            .map_err(|e| {
                crate::Error::new(
                    crate::ErrorCode::InvalidArgument,
                    format!("malformed context: not base64url ({e})"),
                )
            })
    }
}
