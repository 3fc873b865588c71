//! Request bodies of the HTTP API, bounded.
//!
//! A body past the limit is refused with 413, but it is still read and thrown away, up to a
//! cap: a server that answers and stops reading leaves the client writing into a closed
//! socket, and most clients then report a broken pipe instead of the 413, or find the
//! kept-alive connection dead on their next request. Past the cap (or when the client is
//! too slow to finish), the answer says `Connection: close` and the connection ends.

use crate::http::error_response;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use std::time::Duration;

/// Bodies beyond this are refused before any keyspace's own `max_value_bytes` applies.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// How much of an oversized body is read past the limit to keep the connection usable.
const DRAIN_BYTES: usize = 64 << 20;

/// How long a client may take to send the rest of an oversized body.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// A whole request body of at most [`MAX_BODY_BYTES`].
pub struct BoundedBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for BoundedBody {
    type Rejection = Response;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Response> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > (MAX_BODY_BYTES + DRAIN_BYTES) as u64) {
            return Err(too_large(false));
        }
        let mut stream = req.into_body().into_data_stream();
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| unreadable(&e))?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                let seen = body.len() + chunk.len();
                drop(body);
                return Err(too_large(drain(stream, seen).await));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(BoundedBody(Bytes::from(body)))
    }
}

/// Reads and discards the rest of the body; true when it ended within the cap and in time.
async fn drain(mut stream: axum::body::BodyDataStream, mut seen: usize) -> bool {
    let rest = async {
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { return false };
            seen += chunk.len();
            if seen > MAX_BODY_BYTES + DRAIN_BYTES {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, rest)
        .await
        .unwrap_or(false)
}

fn too_large(drained: bool) -> Response {
    let mut resp = json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the body is larger than {MAX_BODY_BYTES} bytes, the HTTP API's limit"),
    );
    if !drained {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn unreadable(e: &axum::Error) -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        &format!("the request body could not be read: {e}"),
    )
}

fn json_error(status: StatusCode, message: &str) -> Response {
    error_response(status, tonic::Code::InvalidArgument, message)
}
