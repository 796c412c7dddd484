//! Authentication at the HTTP edge: every `/api/`, `/registry` and `/metrics` request carries
//! `Authorization: Bearer <token>` or HTTP Basic (principal, token); the authenticated
//! principal travels to handlers as a `Caller` extension. `/healthz` and the web UI's static
//! assets are public (the UI signs in with a token and sends it on every API call).
//!
//! The registry's own routes are authorized here too, since its crate knows nothing of
//! principals: reads need only authentication (the catalog is readable by all), writing a
//! subject `<stream>-value` or `<stream>-key` needs `produce` on that stream (serializers
//! register their schemas), and everything else (config, mode, other subjects) needs `admin`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use weft_core::guard::{AuthzAction, AuthzResource, Caller};
use weft_governance::identity::parse_authorization_header;

use crate::AppState;
use crate::api_error::ApiError;

fn is_protected(path: &str) -> bool {
    path.starts_with("/api/") || path == "/registry" || path.starts_with("/registry/") || path == "/metrics"
}

pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if !is_protected(&path) {
        return next.run(request).await;
    }
    let source = match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(address)) => format!("http {address}"),
        None => "http".to_string(),
    };
    let credentials = parse_authorization_header(request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes));
    let caller = match state.broker.guard().authenticate_caller(credentials, source.clone()) {
        Ok(caller) => caller,
        Err(error) => {
            let unknown = Caller::without_token("unknown", source);
            state.broker.audit_auth_failure(&unknown, &path, error.code, None).await;
            let mut response = ApiError(error).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"weft\", Basic realm=\"weft\""));
            return response;
        }
    };
    if let Some(rest) = path.strip_prefix("/registry") {
        if let Err(error) = authorize_registry(&state, &caller, request.method(), rest).await {
            return ApiError(error).into_response();
        }
        // Contract-fed subjects change only for admins (`registry.rs`), asked once here.
        let admin = state.broker.guard().check(&caller, AuthzAction::Admin, &AuthzResource::mesh()).is_ok();
        request.extensions_mut().insert(crate::registry::RegistryCaller { caller: caller.clone(), admin, broker: state.broker.clone() });
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn authorize_registry(state: &AppState, caller: &Caller, method: &Method, path: &str) -> Result<(), weft_core::Error> {
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    let subject = path.strip_prefix("/subjects/").map(|rest| rest.split('/').next().unwrap_or(""));
    let stream =
        subject.and_then(|s| s.strip_suffix("-value").or_else(|| s.strip_suffix("-key"))).filter(|s| state.broker.stream(s).is_ok());
    let (action, resource) = match stream {
        Some(stream) => (AuthzAction::Produce, AuthzResource::Stream(stream.to_string())),
        None if path.starts_with("/compatibility/") => return Ok(()),
        None => (AuthzAction::Admin, AuthzResource::mesh()),
    };
    state.broker.authorize(caller, action, &resource).await
}
