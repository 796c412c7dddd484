//! The JSON error body and the mapping from error kinds to HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use weft_core::{Error, Kind};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

/// The status of an error: the HTTP edge's own codes carry theirs (`codes::ALL`), every
/// other error gets its kind's.
pub fn status_of(error: &Error) -> StatusCode {
    crate::codes::kind_and_status_of(error.code).map_or_else(|| status_for(error.kind), |(_, status)| status)
}

pub fn status_for(kind: Kind) -> StatusCode {
    match kind {
        Kind::Invalid => StatusCode::BAD_REQUEST,
        Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::OutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
        Kind::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `{"code":..,"message":..,"path":..}` for an error.
pub fn error_json(error: &Error) -> serde_json::Value {
    let mut body = serde_json::json!({ "code": error.code, "message": error.message });
    if let Some(path) = &error.path {
        body["path"] = serde_json::Value::String(path.clone());
    }
    if !error.details.is_empty() {
        body["violations"] =
            error.details.iter().map(|d| serde_json::json!({ "code": d.code, "path": d.path, "message": d.message })).collect();
    }
    if let Some(position) = &error.dead_letter {
        body["dead_letter"] = serde_json::json!({ "stream": position.stream, "partition": position.partition, "offset": position.offset });
    }
    body
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        if status.is_server_error() {
            tracing::error!(code = self.0.code, message = %self.0.message, "request failed");
        }
        (status, axum::Json(serde_json::json!({ "error": error_json(&self.0) }))).into_response()
    }
}

/// Bytes of an unrouted request's body read (and dropped) so the connection stays usable.
const UNROUTED_BODY_BYTES_MAX: usize = 1024 * 1024;

pub async fn route_not_found(uri: axum::http::Uri, body: axum::body::Body) -> ApiError {
    let _ = axum::body::to_bytes(body, UNROUTED_BODY_BYTES_MAX).await;
    let path = weft_core::stream::truncate_for_message(uri.path());
    ApiError(Error::new(Kind::NotFound, crate::codes::ROUTE_NOT_FOUND, format!("no route for {path}")))
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri, body: axum::body::Body) -> Response {
    let _ = axum::body::to_bytes(body, UNROUTED_BODY_BYTES_MAX).await;
    let path = weft_core::stream::truncate_for_message(uri.path());
    let error = Error::new(Kind::Invalid, crate::codes::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {path}"));
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(serde_json::json!({ "error": error_json(&error) }))).into_response()
}
