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
//! `WAIT_MS_MAX`, live-tail buffer `LIVE_BUFFER_EVENTS_MAX`; with TLS, `tls::TLS_HANDSHAKES_MAX`
//! handshakes at once, each within `tls::TLS_HANDSHAKE_DEADLINE_MS`.

mod api_error;
mod auth;
mod catalog;
mod governance;
mod groups;
mod live;
mod mesh;
mod metrics;
mod openlineage;
mod produce;
mod query;
mod registry;
mod render;
mod streams;
pub mod tls;
mod ui;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
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

/// Stable codes for failures that only the HTTP edge can have, each with its `Kind` and the
/// HTTP status it is answered with.
pub mod codes {
    use axum::http::StatusCode;
    use weft_core::Kind;

    /// Generates one `pub const` per row and the table `ALL` of `(code, kind, status)`.
    macro_rules! codes {
        ($($name:ident = $code:literal => $kind:ident, $status:ident;)*) => {
            $(pub const $name: &str = $code;)*
            /// Every HTTP edge code with its kind and status, in the order they are declared.
            pub const ALL: &[(&str, Kind, StatusCode)] = &[$(($name, Kind::$kind, StatusCode::$status)),*];
        };
    }

    codes! {
        ROUTE_NOT_FOUND = "request.route_not_found" => NotFound, NOT_FOUND;
        // The codes whose status is not their kind's: 405 and 415 name the problem exactly, and
        // `Kind` has no variant for them since only the HTTP edge can detect them.
        METHOD_NOT_ALLOWED = "request.method_not_allowed" => Invalid, METHOD_NOT_ALLOWED;
        BODY_TOO_LARGE = "request.body_too_large" => TooLarge, PAYLOAD_TOO_LARGE;
        TOO_MANY_EVENTS = "request.too_many_events" => TooLarge, PAYLOAD_TOO_LARGE;
        UNSUPPORTED_MEDIA_TYPE = "request.unsupported_media_type" => Invalid, UNSUPPORTED_MEDIA_TYPE;
        MALFORMED_JSON = "request.malformed_json" => Invalid, BAD_REQUEST;
        INVALID_BODY = "request.invalid_body" => Invalid, BAD_REQUEST;
        INVALID_PARAMETER = "request.invalid_parameter" => Invalid, BAD_REQUEST;
        UNKNOWN_PARAMETER = "request.unknown_parameter" => Invalid, BAD_REQUEST;
        INVALID_HEADER = "request.invalid_header" => Invalid, BAD_REQUEST;
        // A change through `/registry` to a subject a data contract feeds, by someone other than an
        // admin (answered in Confluent's shape, 40301); the code of the audit entry.
        REGISTRY_SUBJECT_CONTRACT_FED = "registry.subject_contract_fed" => Forbidden, FORBIDDEN;
    }

    /// The kind and status of `code`, or `None` if it is not an HTTP edge code.
    pub fn kind_and_status_of(code: &str) -> Option<(Kind, StatusCode)> {
        ALL.iter().find(|(known, _, _)| *known == code).map(|(_, kind, status)| (*kind, *status))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_http_code_is_in_the_table_once() {
            for (code, kind, status) in ALL {
                let n_rows = ALL.iter().filter(|(other, _, _)| other == code).count();
                assert_eq!(n_rows, 1, "http code {code:?} is in `codes::ALL` {n_rows} times");
                assert_eq!(kind_and_status_of(code), Some((*kind, *status)));
                assert_eq!(weft_core::codes::kind_of(code), None, "{code:?} is also a core code");
            }
        }

        /// The status in the table is the one `status_for` gives its kind, so the table cannot
        /// drift from what clients receive; 405 and 415 are the documented exceptions.
        #[test]
        fn every_http_codes_status_is_its_kinds_status() {
            for (code, kind, status) in ALL {
                if *code == METHOD_NOT_ALLOWED || *code == UNSUPPORTED_MEDIA_TYPE {
                    assert_eq!(crate::api_error::status_of(&weft_core::Error::new(*kind, code, "x")), *status);
                    continue;
                }
                assert_eq!(crate::api_error::status_for(*kind), *status, "http code {code:?}");
            }
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub broker: Arc<Broker>,
    /// The Kafka bootstrap address clients use (`host:port`), if the binary runs the Kafka
    /// listener: OpenLineage names datasets by it, as Kafka integrations do.
    pub kafka_bootstrap: Option<Arc<str>>,
}

/// What the HTTP API serves besides the broker's own routes; the binary fills it in.
#[derive(Clone, Default)]
pub struct HttpOptions {
    /// The Confluent-compatible schema registry, mounted at `/registry`.
    pub registry: Option<Arc<weft_registry::Registry>>,
    /// The Kafka listener's advertised `host:port`, for OpenLineage dataset namespaces.
    pub kafka_bootstrap: Option<String>,
}

/// The whole HTTP API, with nothing mounted beside the broker's routes.
pub fn router(broker: Arc<Broker>) -> Router {
    build_router(broker, HttpOptions::default())
}

/// The whole HTTP API with what `options` adds.
pub fn build_router(broker: Arc<Broker>, options: HttpOptions) -> Router {
    let state = AppState { broker, kafka_bootstrap: options.kafka_bootstrap.map(Arc::from) };
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/streams/{name}/events", post(produce::produce).get(streams::fetch))
        .route("/api/v1/streams/{name}/live", get(live::live))
        .route("/api/v1/streams/{name}/dead-letters", get(mesh::dead_letters))
        .route("/api/v1/streams/{name}/dead-letters/replay", post(mesh::replay_dead_letters))
        .route("/api/v1/apply", post(mesh::apply))
        .route("/api/v1/products/{id}/dead-letters", get(mesh::dead_letters))
        .route("/api/v1/products/{id}/dead-letters/replay", post(mesh::replay_dead_letters))
        .route("/api/v1/search", get(catalog::search))
        .route("/api/v1/lineage/{product}", get(catalog::lineage))
        .route("/api/v1/lineage/{product}/openlineage", get(catalog::product_openlineage))
        .route("/metrics", get(metrics::metrics))
        .route("/", get(ui::index))
        .route("/ui/{*path}", get(ui::asset_or_index))
        .route("/api/v1/tokens", post(governance::create_token).get(governance::list_tokens))
        .route("/api/v1/audit", get(governance::search_audit))
        .route("/api/v1/audit/verify", get(governance::verify_audit));
    // Routes that take no query parameters refuse any, as the others refuse unknown ones, so a
    // misspelt `?limit=` is an error rather than silently ignored.
    let without_parameters = Router::new()
        .route("/api/v1/streams", post(streams::create).get(streams::list))
        .route("/api/v1/streams/{name}", get(streams::show))
        .route("/api/v1/streams/{name}/groups/{group}", get(groups::describe))
        .route("/api/v1/streams/{name}/groups/{group}/poll", post(groups::poll))
        .route("/api/v1/streams/{name}/groups/{group}/commit", post(groups::commit))
        .route("/api/v1/streams/{name}/groups/{group}/members/{member}", delete(groups::leave))
        .route("/api/v1/products", get(mesh::list_products))
        .route("/api/v1/products/{id}", get(mesh::show_product))
        .route("/api/v1/contracts/{id}", get(mesh::show_contract))
        .route("/api/v1/domains", get(mesh::list_domains))
        .route("/api/v1/openlineage", get(catalog::all_openlineage))
        .route("/api/v1/principals", post(governance::create_principal).get(governance::list_principals))
        .route("/api/v1/tokens/{id}", delete(governance::revoke_token))
        .route("/api/v1/authz/schema", get(governance::schema))
        .route("/api/v1/authz/explain", post(governance::explain))
        .route_layer(axum::middleware::from_fn(query::refuse_query_parameters));
    app = app.merge(without_parameters);
    if let Some(registry) = options.registry {
        app = app.nest_service("/registry", registry::router(registry));
    }
    app.fallback(api_error::route_not_found)
        .method_not_allowed_fallback(api_error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves: over HTTPS with `tls` (see `tls`),
/// else plaintext. Shutdown is graceful either way: stop accepting, finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    broker: Arc<Broker>,
    options: HttpOptions,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = build_router(broker, options);
    match tls {
        None => {
            axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).with_graceful_shutdown(shutdown).await
        }
        Some(config) => {
            // `tap_io` is also what gives a listener other than `TcpListener` axum's
            // `ConnectInfo<SocketAddr>`, which the audit log's `source` reads.
            let listener = tls::TlsListener::new(listener, config)?.tap_io(|stream| {
                let _ = stream.get_ref().0.set_nodelay(true);
            });
            axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).with_graceful_shutdown(shutdown).await
        }
    }
}
