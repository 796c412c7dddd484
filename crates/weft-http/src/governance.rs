//! Governance endpoints (all need `admin`): principals, tokens, the Cedar schema, `explain`,
//! and the audit log (search and chain verification).
//!
//! `GET /api/v1/audit` pages: at most `limit` entries (default and maximum
//! `AUDIT_PAGE_ENTRIES_MAX`), oldest first, and `next_cursor`, an opaque string to pass back as
//! `?cursor=` for the next page (`null` once the end of the log was reached). One request reads
//! at most `AUDIT_SCAN_BYTES_MAX` of the log, so a page may hold fewer entries than `limit` and
//! still have a cursor; nothing loads the whole log but chain verification.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use weft_core::duration::parse_duration_ms;
use weft_core::guard::{AuthzAction, AuthzResource, Caller};
use weft_core::{Error, Kind};
use weft_governance::audit::{AUDIT_STREAM, AuditDecision, AuditFilter, parse_entry, read_head, verify};

use crate::AppState;
use crate::api_error::ApiError;
use crate::query::{QueryParams, parse_json, read_body};

const GOVERNANCE_BODY_BYTES_MAX: usize = 64 * 1024;
/// Audit entries on one page of `GET /api/v1/audit` at most (and by default): an entry is at most
/// `weft_governance::audit::AUDIT_ENTRY_BYTES_MAX`, so a page stays within a few MiB.
pub const AUDIT_PAGE_ENTRIES_MAX: u64 = 1_000;
/// Bytes of the audit log one search reads at most before it answers with the page so far and a
/// cursor, so a filter that matches rarely still costs bounded work per request.
pub const AUDIT_SCAN_BYTES_MAX: usize = 16 * 1024 * 1024;

fn identity_error(error: weft_governance::identity::IdentityError) -> Error {
    let kind = match error.code() {
        code if code.ends_with("not_found") || code.ends_with("unknown_principal") || code.ends_with("unknown_token") => Kind::NotFound,
        code if code.ends_with("exists") => Kind::Conflict,
        code if code.ends_with("storage") => Kind::Unavailable,
        _ => Kind::Invalid,
    };
    Error::new(kind, error.code(), error.to_string())
}

async fn require_admin(state: &AppState, caller: &Caller) -> Result<(), Error> {
    state.broker.authorize(caller, AuthzAction::Admin, &AuthzResource::mesh()).await
}

fn unix_ms_text(ms: Option<u64>) -> Value {
    ms.map_or(Value::Null, |ms| json!(weft_core::cloudevent::format_rfc3339_ms(ms as i64)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePrincipal {
    name: String,
    #[serde(default)]
    domains: Vec<String>,
}

pub async fn create_principal(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let request: CreatePrincipal = parse_json(&read_body(body, GOVERNANCE_BODY_BYTES_MAX).await?)?;
    require_admin(&state, &caller).await?;
    let principal =
        state.broker.guard().identity().create_principal(&request.name, &request.domains, SystemTime::now()).map_err(identity_error)?;
    state.broker.refresh_authorization()?;
    state
        .broker
        .audit(
            Some(&caller),
            "principal.create",
            &AuthzResource::Principal(principal.name.clone()).to_string(),
            AuditDecision::Allow,
            None,
            None,
        )
        .await;
    Ok((
        StatusCode::CREATED,
        axum::Json(
            json!({ "name": principal.name, "domains": principal.domains, "created_at": unix_ms_text(Some(principal.created_at_unix_ms)) }),
        ),
    )
        .into_response())
}

pub async fn list_principals(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Response, ApiError> {
    require_admin(&state, &caller).await?;
    let principals = state.broker.guard().identity().list_principals().map_err(identity_error)?;
    let principals: Vec<Value> = principals
        .iter()
        .map(|p| json!({ "name": p.name, "domains": p.domains, "created_at": unix_ms_text(Some(p.created_at_unix_ms)) }))
        .collect();
    Ok(axum::Json(json!({ "principals": principals })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    principal: String,
    /// Lifetime such as `30d`, `12h`; none means the token does not expire.
    #[serde(default)]
    expires: Option<String>,
}

pub async fn create_token(State(state): State<AppState>, Extension(caller): Extension<Caller>, body: Body) -> Result<Response, ApiError> {
    let request: CreateToken = parse_json(&read_body(body, GOVERNANCE_BODY_BYTES_MAX).await?)?;
    require_admin(&state, &caller).await?;
    // The one duration parser (`weft_core::duration`); the identity store checks the bounds.
    let lifetime: Option<Duration> = match request.expires.as_deref() {
        None => None,
        Some(text) => parse_duration_ms(text)
            .map_err(|message| Error::invalid(weft_governance::codes::IDENTITY_INVALID_EXPIRY, message).with_path("/expires"))?
            .map(|ms| Duration::from_millis(ms.unsigned_abs())),
    };
    let (id, secret) =
        state.broker.guard().identity().create_token(&request.principal, lifetime, SystemTime::now()).map_err(identity_error)?;
    let expires_at = lifetime.map(|l| (SystemTime::now() + l).duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64);
    state
        .broker
        .audit(
            Some(&caller),
            "token.create",
            &AuthzResource::Principal(request.principal.clone()).to_string(),
            AuditDecision::Allow,
            None,
            Some(format!("token {id}")),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "id": id, "principal": request.principal, "token": secret.expose(), "expires_at": unix_ms_text(expires_at) })),
    )
        .into_response())
}

pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw.as_deref(), &["principal"])?;
    require_admin(&state, &caller).await?;
    let tokens = state.broker.guard().identity().list_tokens(params.get("principal")).map_err(identity_error)?;
    let now = SystemTime::now();
    let tokens: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "principal": t.principal,
                "created_at": unix_ms_text(Some(t.created_at_unix_ms)),
                "expires_at": unix_ms_text(t.expires_at_unix_ms),
                "revoked_at": unix_ms_text(t.revoked_at_unix_ms),
                "active": !t.revoked() && !t.expired(now),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "tokens": tokens })).into_response())
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&state, &caller).await?;
    // Through the guard, so the live tails, long polls and Kafka connections this token opened end.
    let token = state.broker.guard().revoke_token(&id).map_err(identity_error)?;
    state
        .broker
        .audit(
            Some(&caller),
            "token.revoke",
            &AuthzResource::Principal(token.principal.clone()).to_string(),
            AuditDecision::Allow,
            None,
            Some(format!("token {id}")),
        )
        .await;
    Ok(axum::Json(json!({ "id": token.id, "principal": token.principal, "revoked_at": unix_ms_text(token.revoked_at_unix_ms) }))
        .into_response())
}

pub async fn schema(Extension(_caller): Extension<Caller>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], weft_governance::authz::SCHEMA).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    principal: String,
    action: String,
    resource: String,
}

pub async fn explain(State(state): State<AppState>, Extension(caller): Extension<Caller>, body: Body) -> Result<Response, ApiError> {
    let request: ExplainRequest = parse_json(&read_body(body, GOVERNANCE_BODY_BYTES_MAX).await?)?;
    require_admin(&state, &caller).await?;
    let action: AuthzAction =
        request.action.parse().map_err(|message: String| Error::invalid(crate::codes::INVALID_PARAMETER, message).with_path("/action"))?;
    let resource: AuthzResource = request
        .resource
        .parse()
        .map_err(|message: String| Error::invalid(crate::codes::INVALID_PARAMETER, message).with_path("/resource"))?;
    // Explained as the guard decides it (consuming a dead-letter stream is `read_dead_letters`).
    let (action, resource) = state.broker.guard().effective(action, &resource);
    let explanation = state.broker.guard().authorizer().explain(&request.principal, action, &resource);
    let decision = state.broker.guard().authorizer().evaluate(&request.principal, action, &resource);
    Ok(axum::Json(json!({
        "principal": request.principal,
        "action": action.name(),
        "resource": resource.to_string(),
        "allowed": decision.allowed,
        "policies": decision.reasons,
        "errors": decision.errors,
        "explanation": explanation.to_string(),
    }))
    .into_response())
}

/// Bytes of the audit log read at a time.
const AUDIT_READ_BYTES: usize = 1024 * 1024;

/// Every audit entry as `(offset, bytes)`, oldest first: only for verifying the chain, which
/// needs all of it (searches page through `audit_page`).
async fn audit_entries(state: &AppState) -> Result<Vec<(u64, Vec<u8>)>, Error> {
    let Ok(stream) = state.broker.stream(AUDIT_STREAM) else { return Ok(Vec::new()) };
    let stats = stream.partition_stats(0)?;
    let mut entries = Vec::new();
    let mut offset = stats.log_start_offset;
    while offset < stats.visible_next_offset {
        let fetched = state.broker.read_batches(&stream, 0, offset, AUDIT_READ_BYTES).await?;
        let records = fetched.records(usize::MAX)?;
        let Some(last) = records.last() else { break };
        offset = last.record.offset + 1;
        entries.extend(records.iter().map(|r| (r.record.offset, r.record.value.unwrap_or_default().to_vec())));
    }
    Ok(entries)
}

/// One page of matching audit entries, oldest first, and where the next page starts.
struct AuditPage {
    entries: Vec<Value>,
    /// The offset to read on from, `None` when the log's end was reached.
    next_offset: Option<u64>,
}

/// Reads the audit log from `from_offset` until `limit` entries match, the end of the log, or
/// `AUDIT_SCAN_BYTES_MAX` bytes were read, whichever comes first; never the whole log.
async fn audit_page(state: &AppState, filter: &AuditFilter, from_offset: u64, limit: usize) -> Result<AuditPage, Error> {
    let Ok(stream) = state.broker.stream(AUDIT_STREAM) else { return Ok(AuditPage { entries: Vec::new(), next_offset: None }) };
    let stats = stream.partition_stats(0)?;
    let mut offset = from_offset.max(stats.log_start_offset);
    let mut entries = Vec::new();
    let mut n_bytes_read = 0usize;
    while offset < stats.visible_next_offset {
        if entries.len() >= limit || n_bytes_read >= AUDIT_SCAN_BYTES_MAX {
            return Ok(AuditPage { entries, next_offset: Some(offset) });
        }
        let fetched = state.broker.read_batches(&stream, 0, offset, AUDIT_READ_BYTES).await?;
        let records = fetched.records(usize::MAX)?;
        if records.is_empty() {
            break;
        }
        for stored in &records {
            let record = &stored.record;
            if record.offset < offset {
                continue;
            }
            if entries.len() >= limit {
                return Ok(AuditPage { entries, next_offset: Some(record.offset) });
            }
            offset = record.offset + 1;
            let bytes = record.value.unwrap_or_default();
            n_bytes_read += bytes.len();
            let Ok(entry) = parse_entry(bytes) else { continue };
            if filter.matches(&entry) {
                entries.push(serde_json::to_value(&entry).unwrap_or(Value::Null));
            }
        }
    }
    Ok(AuditPage { entries, next_offset: None })
}

/// The opaque cursor of `GET /api/v1/audit`: today the audit offset to read on from.
fn parse_audit_cursor(text: &str) -> Result<u64, Error> {
    text.parse::<u64>().map_err(|_| {
        Error::invalid(crate::codes::INVALID_PARAMETER, "cursor must be a next_cursor this server returned").with_path("/cursor")
    })
}

pub async fn search_audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw.as_deref(), &["principal", "action", "resource", "decision", "since", "until", "limit", "cursor"])?;
    require_admin(&state, &caller).await?;
    let time = |name: &str| -> Result<Option<SystemTime>, Error> {
        params
            .get(name)
            .map(|text| {
                weft_core::cloudevent::parse_rfc3339_ms(text).map(|ms| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).map_err(
                    |reason| {
                        Error::invalid(crate::codes::INVALID_PARAMETER, format!("{name} must be an RFC 3339 time: {reason}"))
                            .with_path(format!("/{name}"))
                    },
                )
            })
            .transpose()
    };
    let decision = match params.get("decision") {
        None => None,
        Some("allow") => Some(AuditDecision::Allow),
        Some("deny") => Some(AuditDecision::Deny),
        Some("auth_failure") => Some(AuditDecision::AuthFailure),
        Some(_) => {
            return Err(Error::invalid(crate::codes::INVALID_PARAMETER, "decision must be allow, deny or auth_failure")
                .with_path("/decision")
                .into());
        }
    };
    let filter = AuditFilter {
        principal: params.get("principal").map(str::to_string),
        action: params.get("action").map(str::to_string),
        // Entries name resources in Cedar's form; the short form (`stream:orders`) finds them too.
        resource: params.get("resource").map(|text| match text.parse::<AuthzResource>() {
            Ok(resource) if !text.ends_with('*') => resource.to_string(),
            _ => text.to_string(),
        }),
        decision,
        since: time("since")?,
        until: time("until")?,
    };
    let limit = params.u64("limit", AUDIT_PAGE_ENTRIES_MAX)?.unwrap_or(AUDIT_PAGE_ENTRIES_MAX) as usize;
    let from_offset = params.get("cursor").map(parse_audit_cursor).transpose()?.unwrap_or(0);
    let page = audit_page(&state, &filter, from_offset, limit).await?;
    let next_cursor = page.next_offset.map(|offset| offset.to_string());
    Ok(axum::Json(json!({ "entries": page.entries, "next_cursor": next_cursor })).into_response())
}

pub async fn verify_audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw.as_deref(), &["expect_head"])?;
    require_admin(&state, &caller).await?;
    let entries = audit_entries(&state).await?;
    let head = read_head(state.broker.data_dir()).map_err(|error| Error::internal(error.to_string()))?;
    let report = verify(entries.iter().map(|(offset, bytes)| (*offset, bytes.as_slice())), head.as_ref());
    let mut body = verify_report_json(&report);
    if let Some(expected) = params.get("expect_head") {
        let found =
            weft_governance::audit::chain_passes_through(entries.iter().map(|(offset, bytes)| (*offset, bytes.as_slice())), expected);
        body["expected_head"] = json!({ "hash": expected, "found": found });
        body["ok"] = json!(report.ok && found);
    }
    Ok(axum::Json(body).into_response())
}

pub fn verify_report_json(report: &weft_governance::audit::VerifyReport) -> Value {
    json!({
        "ok": report.ok,
        "entries": report.n_entries,
        "first_broken": report.first_broken.as_ref().map(|(offset, reason)| json!({ "offset": offset, "reason": reason })),
        "entries_after_head": report.n_after_head,
        "head": report.last.as_ref().map(|head| json!({ "seq": head.seq, "hash": head.hash })),
    })
}
