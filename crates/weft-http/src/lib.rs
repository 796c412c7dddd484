//! Weft's HTTP API: streams, produce (CloudEvents structured, batched and binary modes,
//! plain JSON and NDJSON), fetch, live tail over Server-Sent Events, and consumer groups.
//!
//! This crate owns everything HTTP: routing, content types, query strings, body limits,
//! status codes and the JSON shapes of requests and responses. Behaviour lives in
//! `weft-core`; handlers translate and delegate.
//!
//! Every error response is `{"error":{"code":"...","message":"...","path":"..."}}` with a
//! stable code (see `weft_core::codes` and `codes` below).
//!
//! Limits: `REQUEST_BODY_BYTES_MAX` (16 MiB), `EVENTS_PER_REQUEST_MAX` (100,000),
//! fetch `limit` at most `weft_core::broker::FETCH_EVENTS_MAX`, long-poll `wait_ms` at most
//! `WAIT_MS_MAX`, live-tail buffer `LIVE_BUFFER_EVENTS_MAX`.

mod api_error;
mod groups;
mod live;
mod mesh;
mod produce;
mod query;
mod render;
mod streams;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};
use weft_core::Broker;

pub use api_error::ApiError;

/// Largest request body accepted.
pub const REQUEST_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most events in one produce request.
pub const EVENTS_PER_REQUEST_MAX: usize = 100_000;
/// Longest long-poll wait.
pub const WAIT_MS_MAX: u64 = 30_000;
/// Events a live tail buffers for a slow client before it waits.
pub const LIVE_BUFFER_EVENTS_MAX: usize = 256;

/// Stable codes for failures that only the HTTP edge can have.
pub mod codes {
    pub const ROUTE_NOT_FOUND: &str = "request.route_not_found";
    pub const METHOD_NOT_ALLOWED: &str = "request.method_not_allowed";
    pub const BODY_TOO_LARGE: &str = "request.body_too_large";
    pub const TOO_MANY_EVENTS: &str = "request.too_many_events";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "request.unsupported_media_type";
    pub const MALFORMED_JSON: &str = "request.malformed_json";
    pub const INVALID_BODY: &str = "request.invalid_body";
    pub const INVALID_PARAMETER: &str = "request.invalid_parameter";
    pub const UNKNOWN_PARAMETER: &str = "request.unknown_parameter";
    pub const INVALID_HEADER: &str = "request.invalid_header";
}

#[derive(Clone)]
pub struct AppState {
    pub broker: Arc<Broker>,
}

/// The whole HTTP API.
pub fn router(broker: Arc<Broker>) -> Router {
    let state = AppState { broker };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/streams", post(streams::create).get(streams::list))
        .route("/api/v1/streams/{name}", get(streams::show))
        .route("/api/v1/streams/{name}/events", post(produce::produce).get(streams::fetch))
        .route("/api/v1/streams/{name}/live", get(live::live))
        .route("/api/v1/streams/{name}/groups/{group}", get(groups::describe))
        .route("/api/v1/streams/{name}/groups/{group}/poll", post(groups::poll))
        .route("/api/v1/streams/{name}/groups/{group}/commit", post(groups::commit))
        .route("/api/v1/streams/{name}/groups/{group}/members/{member}", delete(groups::leave))
        .route("/api/v1/streams/{name}/dead-letters", get(mesh::dead_letters))
        .route("/api/v1/streams/{name}/dead-letters/replay", post(mesh::replay_dead_letters))
        .route("/api/v1/apply", post(mesh::apply))
        .route("/api/v1/products", get(mesh::list_products))
        .route("/api/v1/products/{id}", get(mesh::show_product))
        .route("/api/v1/products/{id}/dead-letters", get(mesh::dead_letters))
        .route("/api/v1/products/{id}/dead-letters/replay", post(mesh::replay_dead_letters))
        .route("/api/v1/contracts/{id}", get(mesh::show_contract))
        .route("/api/v1/domains", get(mesh::list_domains))
        .fallback(api_error::route_not_found)
        .method_not_allowed_fallback(api_error::method_not_allowed)
        .with_state(state)
}

/// The whole HTTP API with the Confluent-compatible schema registry nested at `/registry`.
pub fn router_with_registry(broker: Arc<Broker>, registry: Arc<weft_registry::Registry>) -> Router {
    router(broker).nest("/registry", weft_registry::router(registry))
}

/// Like `serve`, with the schema registry mounted at `/registry`.
pub async fn serve_with_registry(
    listener: tokio::net::TcpListener,
    broker: Arc<Broker>,
    registry: Arc<weft_registry::Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router_with_registry(broker, registry)).with_graceful_shutdown(shutdown).await
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(broker)).with_graceful_shutdown(shutdown).await
}
