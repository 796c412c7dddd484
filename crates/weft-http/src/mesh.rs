//! Mesh endpoints: `POST /api/v1/apply`, products, domains, contracts, and dead letters.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use weft_contract::{CompiledContract, DataContract, DataProduct};
use weft_core::cloudevent::format_rfc3339_ms;
use weft_core::dead_letter::{DeadLetter, DeadLetterCursor};
use weft_core::guard::{AuthzAction, AuthzResource, Caller, Masker};
use weft_core::mesh::{ApplyPlan, ApplySource, MeshState, PlannedResource, topic_streams};
use weft_core::{Error, Kind};
use weft_governance::audit::AuditDecision;

use crate::api_error::ApiError;
use crate::query::{QueryParams, read_body};
use crate::{AppState, codes};

/// Largest apply body (all files together).
pub const APPLY_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Dead letters listed per page at most (the core's page limit).
pub const DEAD_LETTERS_LIST_MAX: u64 = weft_core::dead_letter::DEAD_LETTERS_PAGE_MAX as u64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyRequest {
    sources: Vec<ApplySourceJson>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplySourceJson {
    name: String,
    text: String,
}

/// `POST /api/v1/apply[?dry_run=true]`: multi-document YAML (`application/yaml`), a JSON resource
/// or array of resources (`application/json`), or `{"sources":[{"name","text"}],"dry_run"}`
/// (what `weft apply` sends, so errors name each file).
pub async fn apply(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(body, APPLY_BODY_BYTES_MAX).await?;
    let params = QueryParams::parse(raw.as_deref(), &["dry_run"])?;
    let mut dry_run = matches!(params.get("dry_run"), Some("true" | "1" | ""));
    let text = std::str::from_utf8(&body).map_err(|_| Error::invalid(codes::INVALID_BODY, "the body is not valid UTF-8"))?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/yaml");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let sources = match essence.as_str() {
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
            vec![ApplySource { name: "request".into(), text: text.into() }]
        }
        "application/json" => {
            let value: Value =
                serde_json::from_str(text).map_err(|error| Error::invalid(codes::MALFORMED_JSON, format!("request body: {error}")))?;
            if value.get("sources").is_some() {
                let request: ApplyRequest =
                    serde_json::from_value(value).map_err(|error| Error::invalid(codes::INVALID_BODY, format!("request body: {error}")))?;
                dry_run |= request.dry_run;
                request.sources.into_iter().map(|s| ApplySource { name: s.name, text: s.text }).collect()
            } else {
                let documents = match value {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                documents
                    .iter()
                    .enumerate()
                    .map(|(idx, document)| ApplySource { name: format!("request[{idx}]"), text: document.to_string() })
                    .collect()
            }
        }
        _ => {
            return Err(Error::new(Kind::Invalid, codes::UNSUPPORTED_MEDIA_TYPE, "apply takes application/yaml or application/json").into());
        }
    };
    let broker = state.broker.clone();
    let applying = caller.clone();
    let plan = tokio::task::spawn_blocking(move || broker.apply(sources, dry_run, &applying))
        .await
        .map_err(|error| Error::internal(error.to_string()))??;
    let n_refused = plan.n_refused();
    for denied in &plan.resources {
        let Some(error) = denied.error.as_ref().filter(|error| error.is_denial()) else { continue };
        let resource = format!("{}:{}", denied.kind, denied.id);
        state.broker.audit(Some(&caller), "apply", &resource, AuditDecision::Deny, Some(error.code), None).await;
    }
    if plan.applied {
        // Ownership and classification changes get an entry of their own, so they can be
        // searched for (`?action=apply.governance_change`, `?action=apply.domain_move`).
        for resource in &plan.resources {
            let name = format!("{}:{}", resource.kind, resource.id);
            if let Some(moved) = &resource.domain_move {
                let domain = |domain: &Option<String>| domain.clone().unwrap_or_else(|| "(none)".to_string());
                let detail = format!("domain {} -> {}", domain(&moved.from), domain(&moved.to));
                state.broker.audit(Some(&caller), "apply.domain_move", &name, AuditDecision::Allow, None, Some(detail)).await;
            }
            if !resource.governance_changes.is_empty() {
                let detail: Vec<String> = resource
                    .governance_changes
                    .iter()
                    .map(|change| {
                        let now = change.new_classification.as_deref().unwrap_or("none");
                        format!("{} {}: classification {} -> {now}", change.stream, change.field, change.dropped_classification)
                    })
                    .collect();
                state
                    .broker
                    .audit(Some(&caller), "apply.governance_change", &name, AuditDecision::Allow, None, Some(detail.join("; ")))
                    .await;
            }
        }
        let changed: Vec<String> = plan
            .resources
            .iter()
            .filter(|r| r.action != weft_core::mesh::PlanAction::Unchanged)
            .map(|r| format!("{} {} {:?}", r.kind, r.id, r.action))
            .collect();
        if !changed.is_empty() {
            state.broker.audit(Some(&caller), "apply", "mesh", AuditDecision::Allow, None, Some(changed.join("; "))).await;
        }
    }
    let mut body = plan_json(&plan);
    let status = if n_refused > 0 {
        body["error"] = json!({
            "code": weft_core::codes::APPLY_REFUSED,
            "message": format!("{n_refused} resource(s) refused; nothing was changed"),
        });
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(body)).into_response())
}

fn product_streams(mesh: &MeshState, product: &DataProduct) -> Vec<String> {
    product
        .output_ports
        .iter()
        .filter_map(|port| port.contract_id.as_deref())
        .filter_map(|id| mesh.contract(id))
        .flat_map(topic_streams)
        .collect()
}

fn product_summary(state: &AppState, mesh: &MeshState, product: &DataProduct) -> Value {
    let streams: Vec<Value> = product_streams(mesh, product).iter().map(|name| stream_summary(state, name)).collect();
    let mut summary = json!({
        "id": product.id,
        "name": product.name,
        "domain": product.domain,
        "version": product.version,
        "status": product.status,
        "description": product.description,
        "tags": product.tags,
        "output_ports": product.output_ports.iter().map(|p| json!({ "name": p.name, "version": p.version, "contract_id": p.contract_id })).collect::<Vec<_>>(),
        "input_ports": product.input_ports.iter().map(|p| json!({
            "name": p.name,
            "version": p.version,
            "contract_id": p.contract_id,
            "product": mesh.catalog_product_of_contract(&p.contract_id).map(|producer| producer.id.clone()),
        })).collect::<Vec<_>>(),
        "streams": streams,
    });
    // A contract applied without an ODPS product stands as its own product; say so.
    if mesh.is_implicit_product(&product.id) {
        summary["implicit"] = json!(true);
    }
    summary
}

fn stream_summary(state: &AppState, name: &str) -> Value {
    let Ok(stream) = state.broker.stream(name) else { return json!({ "name": name, "exists": false }) };
    let events: u64 = stream.stats().iter().map(|s| s.visible_next_offset).sum();
    let dead_letters: u64 = stream
        .governance()
        .and_then(|g| state.broker.stream(&g.dead_letter_stream).ok())
        .map_or(0, |dlq| dlq.stats().iter().map(|s| s.visible_next_offset - s.log_start_offset).sum());
    json!({ "name": name, "partitions": stream.n_partitions(), "events": events, "dead_letters": dead_letters })
}

fn contract_json(contract: &DataContract, versions: &[DataContract]) -> Value {
    let topics: Vec<Value> = CompiledContract::compile_topics(contract)
        .unwrap_or_default()
        .iter()
        .map(|topic| {
            json!({
                "stream": topic.stream_name(),
                "object": topic.object_name(),
                "compatibility": topic.settings().compatibility_mode().name(),
                "latency_ms": topic.settings().latency.map(|d| d.as_millis() as u64),
                "retention_ms": topic.settings().retention.map(|d| d.as_millis() as u64),
                "classified_properties": topic.classified_properties().iter().map(|c| json!({ "path": c.property_path, "pointer": c.pointer, "classification": c.classification })).collect::<Vec<_>>(),
                "not_checked_at_the_edge": topic.deferred_rules().iter().map(|r| json!({ "property": r.property_path, "rule": r.rule, "label": r.label, "reason": r.reason })).collect::<Vec<_>>(),
                "json_schema": topic.to_json_schema(),
            })
        })
        .collect();
    let changelog: Vec<Value> = versions
        .windows(2)
        .map(|pair| {
            let old_topics = CompiledContract::compile_topics(&pair[0]).unwrap_or_default();
            let new_topics = CompiledContract::compile_topics(&pair[1]).unwrap_or_default();
            let changes: Vec<Value> = new_topics
                .iter()
                .filter_map(|new| old_topics.iter().find(|old| old.stream_name() == new.stream_name()).map(|old| (old, new)))
                .flat_map(|(old, new)| weft_contract::diff(old.schema_object(), new.schema_object()))
                .map(|c| json!({ "field": c.path, "change": c.description, "breaks_readers": c.breaks_backward, "breaks_writers": c.breaks_forward, "reason": c.reason }))
                .collect();
            json!({ "from": pair[0].version, "to": pair[1].version, "changes": changes })
        })
        .collect();
    json!({
        "id": contract.id,
        "version": contract.version,
        "name": contract.name,
        "status": contract.status,
        "domain": contract.domain,
        "versions": versions.iter().map(|v| v.version.clone()).collect::<Vec<_>>(),
        "topics": topics,
        "changelog": changelog,
        "contract": contract,
    })
}

pub async fn list_products(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> axum::Json<Value> {
    let mesh = state.broker.mesh();
    let guard = state.broker.guard();
    let products: Vec<Value> = mesh
        .catalog_products()
        .into_iter()
        .filter(|p| guard.check(&caller, AuthzAction::ReadCatalog, &AuthzResource::DataProduct(p.id.clone())).is_ok())
        .map(|p| product_summary(&state, &mesh, p))
        .collect();
    axum::Json(json!({ "products": products }))
}

pub async fn show_product(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let mesh = state.broker.mesh();
    let product = mesh.catalog_product(&id).ok_or_else(|| product_not_found(&id))?;
    state.broker.authorize(&caller, AuthzAction::ReadCatalog, &AuthzResource::DataProduct(id.clone())).await?;
    let mut body = product_summary(&state, &mesh, product);
    let contracts: Vec<Value> = product
        .output_ports
        .iter()
        .filter_map(|port| port.contract_id.as_deref())
        .filter_map(|contract_id| mesh.contracts.get(contract_id))
        .filter_map(|versions| versions.last().map(|latest| contract_json(latest, versions)))
        .collect();
    body["contracts"] = json!(contracts);
    body["support"] = json!(product.support);
    body["team"] = json!(product.team);
    body["owners"] = json!(product.domain.as_ref().and_then(|d| mesh.domains.get(d)).map(|d| d.owners.clone()).unwrap_or_default());
    crate::catalog::add_stream_observations(&state, &caller, &mut body).await?;
    Ok(axum::Json(body))
}

pub async fn show_contract(
    State(state): State<AppState>,
    Extension(_caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let mesh = state.broker.mesh();
    let versions = mesh
        .contracts
        .get(&id)
        .ok_or_else(|| Error::new(Kind::NotFound, weft_core::codes::PRODUCT_MISSING_CONTRACT, format!("contract {id:?} is not applied")))?;
    let latest = versions.last().expect("applied contracts have a version");
    Ok(axum::Json(contract_json(latest, versions)))
}

pub async fn list_domains(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> axum::Json<Value> {
    let mesh = state.broker.mesh();
    let guard = state.broker.guard();
    let domains: Vec<Value> = mesh
        .domains
        .values()
        .filter(|domain| guard.check(&caller, AuthzAction::ReadCatalog, &AuthzResource::Domain(domain.name.clone())).is_ok())
        .map(|domain| {
            let products: Vec<&String> = mesh
                .catalog_products()
                .into_iter()
                .filter(|p| p.domain.as_deref() == Some(domain.name.as_str()))
                .map(|p| &p.id)
                .collect();
            json!({ "name": domain.name, "description": domain.description, "owners": domain.owners, "team": domain.team, "products": products })
        })
        .collect();
    axum::Json(json!({ "domains": domains }))
}

fn product_not_found(id: &str) -> Error {
    Error::new(
        Kind::NotFound,
        weft_core::codes::PRODUCT_NOT_FOUND,
        format!("product {:?} does not exist", weft_core::stream::truncate_for_message(id)),
    )
}

/// The governed streams a dead-letter request names: a product id's output streams, or one stream.
fn target_streams(state: &AppState, target: &str) -> Result<Vec<String>, Error> {
    let mesh = state.broker.mesh();
    if let Some(product) = mesh.catalog_product(target) {
        return Ok(product_streams(&mesh, product));
    }
    state.broker.stream(target).map(|stream| vec![stream.name().to_string()]).map_err(|_| product_not_found(target))
}

/// One dead letter as the listing shows it. For a reader without `unmask` (`masker`), JSON data is
/// masked like any event; data that is not JSON cannot be masked field by field, so none of it is
/// shown, not even as base64: `data_masked: true` and `data_bytes` (its size) instead.
fn dead_letter_json(letter: &DeadLetter, masker: Option<&Masker>) -> Value {
    let data = match masker {
        Some(masker) => match serde_json::from_slice::<Value>(&masker.mask(&letter.data)) {
            Ok(value) => json!({ "data": value }),
            Err(_) => json!({ "data_masked": true, "data_bytes": letter.data.len() }),
        },
        None => match serde_json::from_slice::<Value>(&letter.data) {
            Ok(value) => json!({ "data": value }),
            Err(_) => json!({ "data_base64": base64::engine::general_purpose::STANDARD.encode(&letter.data) }),
        },
    };
    let mut body = json!({
        "partition": letter.partition,
        "offset": letter.offset,
        "stream": letter.stream,
        "reason": letter.reason,
        "message": letter.message,
        "violations": letter.violations,
        "contract": { "id": letter.contract_id, "version": letter.contract_version },
        "producer": letter.producer,
        "rejected_at": letter.rejected_at,
        "timestamp": format_rfc3339_ms(letter.timestamp_ms),
        "attributes": letter.attributes.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<String, Value>>(),
        "replayed_to": letter.replayed_to,
    });
    if let (Value::Object(body), Value::Object(data)) = (&mut body, data) {
        body.extend(data);
    }
    body
}

/// `GET /api/v1/products/{id}/dead-letters` (or `/streams/{name}/dead-letters`): grouped by
/// reason with examples; `?list=true` (or `?reason=CODE`, of one reason) lists the dead letters
/// themselves, one page of at most `limit` at a time: `next_cursor` is where the next page
/// starts (pass it as `cursor`), `null` after the last page. A product's streams are listed one
/// after the other, so a page holds the letters of the streams it reached.
pub async fn dead_letters(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(target): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<Value>, ApiError> {
    let params = QueryParams::parse(raw.as_deref(), &["reason", "limit", "list", "cursor"])?;
    let limit = params.u64("limit", DEAD_LETTERS_LIST_MAX)?.unwrap_or(100) as usize;
    let listing = params.get("reason").is_some() || params.get("cursor").is_some() || matches!(params.get("list"), Some("true" | "1" | ""));
    let target_streams = target_streams(&state, &target)?;
    for stream in &target_streams {
        state.broker.authorize(&caller, AuthzAction::ReadDeadLetters, &AuthzResource::Stream(stream.clone())).await?;
    }
    if !listing {
        let mut streams = Vec::new();
        for stream in target_streams {
            let masker = state.broker.guard().masker(&caller, &state.broker, &stream);
            let masker = masker.as_ref();
            let summary = state.broker.dead_letter_summary(&stream).await?;
            let reasons: Vec<Value> = summary
                .reasons
                .iter()
                .map(|r| json!({ "reason": r.reason, "count": r.count, "examples": r.examples.iter().map(|l| dead_letter_json(l, masker)).collect::<Vec<_>>() }))
                .collect();
            streams.push(json!({ "stream": stream, "total": summary.total, "moved": summary.moved, "reasons": reasons }));
        }
        return Ok(axum::Json(json!({ "target": target, "streams": streams })));
    }
    if limit == 0 {
        return Err(Error::invalid(codes::INVALID_PARAMETER, format!("limit must be a whole number from 1 to {DEAD_LETTERS_LIST_MAX}"))
            .with_path("/limit")
            .into());
    }
    let (first_stream, mut from) = match params.get("cursor") {
        None => (0, DeadLetterCursor::default()),
        Some(cursor) => parse_dead_letter_cursor(cursor, &target_streams)?,
    };
    let mut streams = Vec::new();
    let mut next_cursor = None;
    let mut remaining = limit;
    for (stream_idx, stream) in target_streams.iter().enumerate().skip(first_stream) {
        let masker = state.broker.guard().masker(&caller, &state.broker, stream);
        let page = state.broker.dead_letters(stream, params.get("reason"), from, remaining).await?;
        remaining -= page.letters.len().min(remaining);
        streams.push(json!({ "stream": stream, "dead_letters": page.letters.iter().map(|l| dead_letter_json(l, masker.as_ref())).collect::<Vec<_>>() }));
        if let Some(next) = page.next {
            next_cursor = Some(dead_letter_cursor(stream, next));
            break;
        }
        from = DeadLetterCursor::default();
        if remaining == 0 {
            next_cursor = target_streams.get(stream_idx + 1).map(|next_stream| dead_letter_cursor(next_stream, from));
            break;
        }
    }
    Ok(axum::Json(json!({ "target": target, "streams": streams, "next_cursor": next_cursor })))
}

/// The opaque `next_cursor` of a listing: the stream and the position in its dead-letter
/// stream, base64url-encoded so that clients pass it back rather than build it.
fn dead_letter_cursor(stream: &str, at: DeadLetterCursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{stream}/{}/{}", at.partition, at.offset))
}

/// Reads a `cursor` back: the index of its stream among the target's streams, and the position.
fn parse_dead_letter_cursor(cursor: &str, target_streams: &[String]) -> Result<(usize, DeadLetterCursor), Error> {
    let invalid = || Error::invalid(codes::INVALID_PARAMETER, "cursor is not a next_cursor of this listing").with_path("/cursor");
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (position, offset) = text.rsplit_once('/').ok_or_else(invalid)?;
    let (stream, partition) = position.rsplit_once('/').ok_or_else(invalid)?;
    let stream_idx = target_streams.iter().position(|target| target == stream).ok_or_else(invalid)?;
    let at = DeadLetterCursor { partition: partition.parse().map_err(|_| invalid())?, offset: offset.parse().map_err(|_| invalid())? };
    Ok((stream_idx, at))
}

/// `POST .../dead-letters/replay`: moves dead letters that now pass the contract.
pub async fn replay_dead_letters(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(target): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut streams = Vec::new();
    for stream in target_streams(&state, &target)? {
        state.broker.authorize(&caller, AuthzAction::ReplayDeadLetters, &AuthzResource::Stream(stream.clone())).await?;
        let outcome = state.broker.replay_dead_letters(&stream).await?;
        let detail = format!("moved {}, still failing {}", outcome.moved, outcome.still_failing);
        state
            .broker
            .audit(
                Some(&caller),
                "replay_dead_letters",
                &AuthzResource::Stream(stream.clone()).to_string(),
                AuditDecision::Allow,
                None,
                Some(detail),
            )
            .await;
        streams.push(json!({
            "stream": stream,
            "moved": outcome.moved,
            "still_failing": outcome.still_failing,
            "already_moved": outcome.already_moved,
            "failing_reasons": outcome.failing_reasons,
        }));
    }
    Ok(axum::Json(json!({ "target": target, "streams": streams })))
}

/// An apply plan as the API shows it (and `weft apply` reads it): empty lists and absent
/// options are left out, so a plain create is a few lines.
fn plan_json(plan: &ApplyPlan) -> Value {
    let resources: Vec<Value> = plan.resources.iter().map(planned_resource_json).collect();
    json!({ "dry_run": plan.dry_run, "applied": plan.applied, "resources": resources })
}

fn planned_resource_json(resource: &PlannedResource) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("kind".into(), json!(resource.kind));
    out.insert("id".into(), json!(resource.id));
    if let Some(version) = &resource.version {
        out.insert("version".into(), json!(version));
    }
    out.insert("source".into(), json!(resource.source));
    out.insert("document".into(), json!(resource.document));
    out.insert("action".into(), json!(resource.action.as_str()));
    if !resource.changes.is_empty() {
        let changes: Vec<Value> = resource
            .changes
            .iter()
            .map(|change| {
                let mut out = serde_json::Map::new();
                out.insert("path".into(), json!(change.path));
                if let Some(old) = &change.old {
                    out.insert("old".into(), old.clone());
                }
                if let Some(new) = &change.new {
                    out.insert("new".into(), new.clone());
                }
                Value::Object(out)
            })
            .collect();
        out.insert("changes".into(), Value::Array(changes));
    }
    if !resource.schema_changes.is_empty() {
        let changes: Vec<Value> = resource
            .schema_changes
            .iter()
            .map(|c| {
                json!({
                    "stream": c.stream, "field": c.field, "change": c.change, "breaks_readers": c.breaks_readers,
                    "breaks_writers": c.breaks_writers, "breaking": c.breaking, "reason": c.reason,
                })
            })
            .collect();
        out.insert("schema_changes".into(), Value::Array(changes));
    }
    if !resource.governance_changes.is_empty() {
        let changes: Vec<Value> = resource
            .governance_changes
            .iter()
            .map(|c| {
                let mut change = json!({
                    "stream": c.stream, "field": c.field, "pointer": c.pointer, "dropped_classification": c.dropped_classification,
                });
                if let Some(new) = &c.new_classification {
                    change["new_classification"] = json!(new);
                }
                change
            })
            .collect();
        out.insert("governance_changes".into(), Value::Array(changes));
    }
    if let Some(domain_move) = &resource.domain_move {
        out.insert("domain_move".into(), json!({ "from": domain_move.from, "to": domain_move.to }));
    }
    if !resource.streams.is_empty() {
        out.insert("streams".into(), json!(resource.streams));
    }
    if let Some(error) = &resource.error {
        let mut refusal = serde_json::Map::new();
        refusal.insert("code".into(), json!(error.code));
        refusal.insert("message".into(), json!(error.message));
        if !error.path.is_empty() {
            refusal.insert("path".into(), json!(error.path));
        }
        if let Some(line) = error.line {
            refusal.insert("line".into(), json!(line));
        }
        if let Some(column) = error.column {
            refusal.insert("column".into(), json!(column));
        }
        out.insert("error".into(), Value::Object(refusal));
    }
    Value::Object(out)
}
