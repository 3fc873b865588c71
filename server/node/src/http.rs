//! The HTTP/JSON API, next to gRPC on its own port.
//!
//! - `PUT /v1/data/{keyspace}/{key}` (body = value), `GET`, `DELETE`; `/v1/data/{key}` uses
//!   the `default` keyspace. Keys are percent-encoded path segments and may be any bytes.
//! - The causal context travels in the `meridian-context` header (base64url) both ways; a
//!   write may carry `meridian-request-id` (a uuid) to make retries idempotent.
//! - One value → 200 with the raw bytes; several → 300 Multiple Choices with every sibling
//!   in a JSON body; none → 404. Errors are JSON `{"error": {"code", "message"}}`.
//! - CRDT keyspaces: `GET /v1/crdt/{keyspace}/{key}` fetches, `POST` with
//!   `{"ops": [...], "context": "..."}` updates; both answer `{"value": ..., "context": ...}`
//!   (the JSON forms are in `crdt_json.rs`).
//! - `/metrics` (Prometheus text), `/health`, `/v1/keyspaces`.

use crate::cluster::Cluster;
use crate::cluster::coordinator::{Change, WriteOp};
use crate::error::{NodeError, code_name};
use crate::http_body::BoundedBody;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use meridian_core::Consistency;
use meridian_core::keyspace::DEFAULT_KEYSPACE;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const CONTEXT_HEADER: &str = "meridian-context";
pub const REQUEST_ID_HEADER: &str = "meridian-request-id";

pub fn router(cluster: Arc<Cluster>) -> Router {
    Router::new()
        .route("/v1/data/{*rest}", axum::routing::any(data))
        .route("/v1/crdt/{*rest}", axum::routing::any(crdt))
        .route("/v1/keyspaces", get(keyspaces))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok\n" }))
        .fallback(|uri: Uri| async move {
            error_response(
                StatusCode::NOT_FOUND,
                tonic::Code::NotFound,
                &format!(
                    "no route for {}; data lives under /v1/data/{{keyspace}}/{{key}}",
                    uri.path()
                ),
            )
        })
        .with_state(cluster)
}

/// Unknown parameters are refused: a misspelt `consistency` must not pass for the default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataQuery {
    consistency: Option<String>,
}

impl DataQuery {
    fn consistency(&self) -> Result<Option<Consistency>, NodeError> {
        self.consistency
            .as_deref()
            .map(str::parse::<Consistency>)
            .transpose()
            .map_err(NodeError::InvalidArgument)
    }
}

async fn data(
    State(cluster): State<Arc<Cluster>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    q: Result<Query<DataQuery>, QueryRejection>,
    body: Result<BoundedBody, Response>,
) -> Response {
    let (Query(q), body) = match (q, body) {
        (Ok(q), Ok(BoundedBody(body))) => (q, body),
        (Err(e), _) => return rejected(e.status(), &e.body_text()),
        (_, Err(resp)) => return resp,
    };
    match data_inner(&cluster, &method, &uri, &headers, q, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn data_inner(
    cluster: &Arc<Cluster>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    q: DataQuery,
    body: Bytes,
) -> Result<Response, NodeError> {
    let (keyspace, key) = parse_path("/v1/data/", uri.path())?;
    let consistency = q.consistency()?;
    let context = context_header(headers)?;
    let request_id = request_id_header(headers)?;
    match *method {
        Method::GET | Method::HEAD => {
            let reply = cluster.read(&keyspace, &key, consistency, 0).await?;
            let ctx = URL_SAFE_NO_PAD.encode(&reply.context);
            let mut resp = match reply.values.len() {
                0 => error_response(
                    StatusCode::NOT_FOUND,
                    tonic::Code::NotFound,
                    "key not found",
                ),
                1 => {
                    let mut r = reply.values[0].clone().into_response();
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    );
                    r
                }
                _ => siblings_response(StatusCode::MULTIPLE_CHOICES, &reply.values, &ctx),
            };
            insert_context(&mut resp, &ctx);
            Ok(resp)
        }
        Method::PUT | Method::POST | Method::DELETE => {
            let change = if *method == Method::DELETE {
                Change::Delete
            } else {
                Change::Put(body.to_vec())
            };
            let ack = cluster
                .write(WriteOp {
                    keyspace: keyspace.clone(),
                    key: key.to_vec(),
                    change,
                    context: context.to_vec(),
                    request_id: request_id.to_vec(),
                    consistency,
                    explicit_acks: 0,
                })
                .await?;
            let ctx = URL_SAFE_NO_PAD.encode(&ack.context);
            // Concurrent values survived the write and the new context covers them: they
            // come back with it, so the next write with this context has seen them.
            let mut resp = if ack.siblings.is_empty() {
                StatusCode::NO_CONTENT.into_response()
            } else {
                siblings_response(StatusCode::OK, &ack.siblings, &ctx)
            };
            insert_context(&mut resp, &ctx);
            Ok(resp)
        }
        _ => Ok(error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            tonic::Code::InvalidArgument,
            &format!("method {method} not allowed; use GET, PUT or DELETE"),
        )),
    }
}

fn context_header(headers: &HeaderMap) -> Result<Vec<u8>, NodeError> {
    match headers.get(CONTEXT_HEADER) {
        None => Ok(Vec::new()),
        Some(v) => context_from_text(
            v.to_str()
                .map_err(|_| malformed_context("header is not ASCII"))?,
        ),
    }
}

fn context_from_text(s: &str) -> Result<Vec<u8>, NodeError> {
    URL_SAFE_NO_PAD
        .decode(s.trim())
        .map_err(|e| malformed_context(&format!("not base64url: {e}")))
}

fn request_id_header(headers: &HeaderMap) -> Result<Vec<u8>, NodeError> {
    match headers.get(REQUEST_ID_HEADER) {
        None => Ok(Vec::new()),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| uuid::Uuid::parse_str(s.trim()).ok())
            .map(|u| u.as_bytes().to_vec())
            .ok_or_else(|| {
                NodeError::InvalidArgument(format!("{REQUEST_ID_HEADER} must be a uuid"))
            }),
    }
}

async fn crdt(
    State(cluster): State<Arc<Cluster>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    q: Result<Query<DataQuery>, QueryRejection>,
    body: Result<BoundedBody, Response>,
) -> Response {
    let (Query(q), body) = match (q, body) {
        (Ok(q), Ok(BoundedBody(body))) => (q, body),
        (Err(e), _) => return rejected(e.status(), &e.body_text()),
        (_, Err(resp)) => return resp,
    };
    match crdt_inner(&cluster, &method, &uri, &headers, q, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn crdt_inner(
    cluster: &Arc<Cluster>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    q: DataQuery,
    body: Bytes,
) -> Result<Response, NodeError> {
    let (keyspace, key) = parse_path("/v1/crdt/", uri.path())?;
    let consistency = q.consistency()?;
    let (value, context) = match *method {
        Method::GET | Method::HEAD => cluster.fetch(&keyspace, &key, consistency, 0).await?,
        Method::POST | Method::PUT => {
            let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                NodeError::InvalidArgument(format!(
                    "the body is not JSON ({e}); send {{\"ops\": [...], \"context\": \"...\"}}"
                ))
            })?;
            let body = json.as_object().ok_or_else(|| {
                NodeError::InvalidArgument(format!(
                    "the body is {}, not an object; send {{\"ops\": [...], \"context\": \"...\"}}",
                    meridian_proto::crdt_json::brief(&json)
                ))
            })?;
            // A misspelt "context" must not pass for an update without one: that would
            // remove everything the replica holds rather than what the client saw.
            if let Some(unknown) = body
                .keys()
                .find(|k| !["ops", "context"].contains(&k.as_str()))
            {
                return Err(NodeError::InvalidArgument(format!(
                    "unknown field {unknown:?} in the body; it takes \"ops\" and \"context\" \
                     (a request id goes in the {REQUEST_ID_HEADER} header)"
                )));
            }
            let ops =
                meridian_proto::crdt_json::ops_from_json(body.get("ops").unwrap_or(&json!(null)))
                    .map_err(NodeError::InvalidArgument)?;
            let context = match body.get("context") {
                Some(serde_json::Value::String(c)) => context_from_text(c)?,
                Some(serde_json::Value::Null) | None => context_header(headers)?,
                Some(_) => return Err(malformed_context("\"context\" must be a string")),
            };
            let ack = cluster
                .write(WriteOp {
                    keyspace,
                    key,
                    change: Change::Update(ops),
                    context,
                    request_id: request_id_header(headers)?,
                    consistency,
                    explicit_acks: 0,
                })
                .await?;
            let value = ack.value.ok_or_else(|| {
                NodeError::Internal("an update was acknowledged without its value".into())
            })?;
            (value, ack.context)
        }
        _ => {
            return Ok(error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                tonic::Code::InvalidArgument,
                &format!("method {method} not allowed; use GET to fetch or POST to update"),
            ));
        }
    };
    let ctx = URL_SAFE_NO_PAD.encode(&context);
    let body = json!({ "value": meridian_proto::crdt_json::value_to_json(&value), "context": ctx });
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    insert_context(&mut resp, &ctx);
    Ok(resp)
}

/// `{prefix}{keyspace}/{key}`, each segment percent-decoded to bytes; data paths may leave
/// out the keyspace (`{prefix}{key}` is in `default`). CRDT paths may not: the default
/// keyspace holds siblings, so a one-segment CRDT path is a keyspace named without its key.
fn parse_path(prefix: &str, path: &str) -> Result<(String, Vec<u8>), NodeError> {
    let rest = path.strip_prefix(prefix).unwrap_or("");
    // "data" or "crdt": the API the path is for, in the error.
    let what = prefix.trim_matches('/').trim_start_matches("v1/");
    let default_allowed = what == "data";
    let segments: Vec<&str> = rest.split('/').collect();
    let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
    let bad = || {
        let forms = if default_allowed {
            format!("{prefix}{{key}} or {prefix}{{keyspace}}/{{key}}")
        } else {
            format!("{prefix}{{keyspace}}/{{key}}")
        };
        NodeError::InvalidArgument(format!(
            "bad {what} path {path:?}: expected {forms} with the key percent-encoded \
             (a '/' in a key is %2F)"
        ))
    };
    match segments.as_slice() {
        [key] if default_allowed => Ok((DEFAULT_KEYSPACE.to_string(), decode(key))),
        [ks, key] => {
            let ks = String::from_utf8(decode(ks)).map_err(|_| bad())?;
            if ks.is_empty() {
                return Err(bad());
            }
            Ok((ks, decode(key)))
        }
        _ => Err(bad()),
    }
}

/// `{"siblings": [{"value": base64, "text": utf8-if-valid}], "context": ...}`.
fn siblings_response(status: StatusCode, values: &[Vec<u8>], ctx: &str) -> Response {
    let siblings: Vec<_> = values
        .iter()
        .map(|v| {
            let mut m = serde_json::Map::new();
            m.insert("value".into(), STANDARD.encode(v).into());
            if let Ok(text) = std::str::from_utf8(v) {
                m.insert("text".into(), text.into());
            }
            serde_json::Value::Object(m)
        })
        .collect();
    let body = serde_json::json!({ "siblings": siblings, "context": ctx });
    (status, axum::Json(body)).into_response()
}

fn malformed_context(why: &str) -> NodeError {
    NodeError::Core(meridian_core::CoreError::MalformedContext(why.to_string()))
}

fn insert_context(resp: &mut Response, ctx: &str) {
    if let Ok(v) = HeaderValue::from_str(ctx) {
        resp.headers_mut().insert(CONTEXT_HEADER, v);
    }
}

/// A query axum could not take apart, answered in the API's JSON error form.
fn rejected(status: StatusCode, text: &str) -> Response {
    error_response(status, tonic::Code::InvalidArgument, text)
}

pub(crate) fn error_response(status: StatusCode, code: tonic::Code, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code_name(code), "message": message } });
    (status, axum::Json(body)).into_response()
}

async fn keyspaces(State(cluster): State<Arc<Cluster>>) -> Response {
    let list: Vec<BTreeMap<&str, serde_json::Value>> = cluster
        .engine
        .keyspaces()
        .list()
        .iter()
        .map(|s| {
            BTreeMap::from([
                ("name", s.name.clone().into()),
                ("kind", s.kind.name().into()),
                ("max_value_bytes", s.max_value_bytes.into()),
                ("max_siblings", s.max_siblings.into()),
                (
                    "replication",
                    serde_json::to_value(&s.replication).unwrap_or_default(),
                ),
            ])
        })
        .collect();
    axum::Json(serde_json::json!({ "keyspaces": list })).into_response()
}

async fn metrics(State(cluster): State<Arc<Cluster>>) -> Response {
    let mut r = cluster.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_paths() {
        assert_eq!(
            parse_path("/v1/data/", "/v1/data/k%2Fx").unwrap(),
            ("default".to_string(), b"k/x".to_vec())
        );
        assert_eq!(
            parse_path("/v1/data/", "/v1/data/carts/%FF%00").unwrap(),
            ("carts".to_string(), vec![0xff, 0])
        );
        assert!(parse_path("/v1/data/", "/v1/data/a/b/c").is_err());
        assert!(parse_path("/v1/data/", "/v1/data//k").is_err());
        // An empty key parses; the engine refuses it with the key limit.
        assert_eq!(
            parse_path("/v1/data/", "/v1/data/").unwrap().1,
            Vec::<u8>::new()
        );
    }

    #[test]
    fn crdt_paths_name_their_keyspace() {
        assert_eq!(
            parse_path("/v1/crdt/", "/v1/crdt/hits/page%3Ahome").unwrap(),
            ("hits".to_string(), b"page:home".to_vec())
        );
        let err = parse_path("/v1/crdt/", "/v1/crdt/hits").unwrap_err();
        assert!(
            err.to_string()
                .contains("expected /v1/crdt/{keyspace}/{key}"),
            "{err}"
        );
    }
}
