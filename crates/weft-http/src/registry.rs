//! The Confluent Schema Registry REST API over a [`Registry`], relative to its mount point
//! (`/registry`): the only place that knows the registry over HTTP; `weft-registry` itself is
//! storage and compatibility rules and knows nothing of HTTP.
//!
//! Handlers parse the path, query and body, run the registry call on a blocking thread
//! (redb commits fsync), and render Confluent's JSON shapes.
//!
//! Responses are `application/vnd.schemaregistry.v1+json`. Request bodies may be that,
//! `application/vnd.schemaregistry+json`, `application/json`, `application/octet-stream` or
//! untyped; other types get 415. Errors are `{"error_code": N, "message": "..."}` with the
//! HTTP status equal to the first three digits of `N` (see `weft_registry::RegistryError`).
//! An incompatible registration is HTTP 409 with `error_code` **409**, the code Confluent
//! used until December 2025 (newer Confluent servers send 40901; clients key on the status).
//! Malformed JSON is 400/`400`; well-formed JSON of the wrong shape is 422/`422`; a body
//! over `REQUEST_BODY_BYTES_MAX` (4 MiB: escaping can double a schema's size) is 413/`413`.
//!
//! Subjects fed by data contracts (`weft_registry::Registry::is_contract_fed`) change through
//! `weft apply` only: registering a schema that is not already one of their versions, and
//! deleting them or a version, is refused for anyone but an admin with 403/`40301`, Confluent's
//! "user is denied operation", and audited as a denial (`registry.subject_contract_fed`).
//! Re-registering an existing version is answered as usual, so serializers that register on
//! first use keep working. Compatibility and mode changes need an admin anyway (`auth.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use weft_registry::{
    CompatibilityMode, CompatibilityTarget, DEFAULT_COMPATIBILITY, DeletedFilter, Mode, Registry, RegistryError, SchemaReference,
    SchemaType, StoredSchema, SubjectVersion, VersionSelector, http_status_for_code,
};

/// Largest request body accepted (a 1 MiB schema can double in size when JSON-escaped).
pub const REQUEST_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

const CONTENT_TYPE_V1: &str = "application/vnd.schemaregistry.v1+json";
const ACCEPTED_CONTENT_TYPES: [&str; 4] =
    ["application/vnd.schemaregistry.v1+json", "application/vnd.schemaregistry+json", "application/json", "application/octet-stream"];

/// The registry's REST API; nest it where clients expect it (Weft uses `/registry`).
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { reply(StatusCode::OK, &json!({})) }))
        .route("/schemas/types", get(|| async { reply(StatusCode::OK, &json!(["JSON", "AVRO"])) }))
        .route("/contexts", get(|| async { reply(StatusCode::OK, &json!(["."])) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(list_versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(get_version).delete(delete_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(get_version_text))
        .route("/subjects/{subject}/versions/{version}/referencedby", get(referenced_by))
        .route("/compatibility/subjects/{subject}/versions", post(compatibility_all))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility_version))
        .route("/config", get(get_global_config).put(put_global_config).delete(delete_global_config))
        .route("/config/{subject}", get(get_subject_config).put(put_subject_config).delete(delete_subject_config))
        .route("/mode", get(get_global_mode).put(put_global_mode))
        .route("/mode/{subject}", get(get_subject_mode).put(put_subject_mode).delete(delete_subject_mode))
        .fallback(|| async { failure(404, "HTTP 404 Not Found") })
        .method_not_allowed_fallback(|| async { failure(405, "HTTP 405 Method Not Allowed") })
        .with_state(registry)
}

type Shared = State<Arc<Registry>>;

mod contract_fed;
pub(crate) use contract_fed::RegistryCaller;
use contract_fed::{MaybeCaller, contract_fed_refusal, is_locked_for, refuse_if_contract_fed};

/// A failed request: Confluent's `{"error_code", "message"}`.
struct Failure {
    code: u32,
    message: String,
}

impl From<RegistryError> for Failure {
    fn from(error: RegistryError) -> Self {
        Failure { code: error.error_code(), message: error.to_string() }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        failure(self.code, &self.message)
    }
}

fn failure(code: u32, message: &str) -> Response {
    let status = StatusCode::from_u16(http_status_for_code(code)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(code, message, "schema registry request failed");
    }
    reply(status, &json!({ "error_code": code, "message": message }))
}

fn reply(status: StatusCode, body: &Value) -> Response {
    (status, [(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V1))], body.to_string()).into_response()
}

fn ok(body: Value) -> Result<Response, Failure> {
    Ok(reply(StatusCode::OK, &body))
}

/// Runs a registry call on a blocking thread.
async fn blocking<T: Send + 'static>(
    registry: Arc<Registry>,
    call: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(move || call(&registry)).await {
        Ok(result) => result.map_err(Failure::from),
        Err(error) => Err(RegistryError::Store(format!("registry task failed: {error}")).into()),
    }
}

/// Query parameters; later duplicates win.
struct Params(HashMap<String, String>);

impl Params {
    fn parse(query: Option<String>) -> Params {
        let query = query.unwrap_or_default();
        Params(form_urlencoded::parse(query.as_bytes()).into_owned().collect())
    }

    /// Booleans as Java reads them: `true` in any case is true, anything else false.
    fn flag(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|value| value.eq_ignore_ascii_case("true"))
    }

    fn text(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    fn number(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(|value| value.parse().ok())
    }

    fn deleted_filter(&self) -> DeletedFilter {
        if self.flag("deletedOnly") {
            DeletedFilter::Only
        } else if self.flag("deleted") {
            DeletedFilter::Include
        } else {
            DeletedFilter::Live
        }
    }

    /// Applies `offset` and `limit` (absent or non-positive limit: everything).
    fn page<T>(&self, items: Vec<T>) -> Vec<T> {
        let offset = self.number("offset").unwrap_or(0).max(0) as usize;
        let limit = self.number("limit").filter(|&limit| limit > 0).map_or(usize::MAX, |limit| limit as usize);
        items.into_iter().skip(offset).take(limit).collect()
    }
}

/// Reads a bounded JSON body of an accepted content type.
async fn read_json<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, Failure> {
    if let Some(content_type) = headers.get(CONTENT_TYPE) {
        let essence = content_type.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !essence.is_empty() && !ACCEPTED_CONTENT_TYPES.contains(&essence.as_str()) {
            return Err(Failure { code: 415, message: "HTTP 415 Unsupported Media Type".to_string() });
        }
    }
    let bytes = axum::body::to_bytes(body, REQUEST_BODY_BYTES_MAX)
        .await
        .map_err(|_| Failure { code: 413, message: format!("request body is larger than {REQUEST_BODY_BYTES_MAX} bytes") })?;
    serde_json::from_slice(&bytes).map_err(|error| {
        let code = if error.is_data() { 422 } else { 400 };
        Failure { code, message: format!("Unrecognized or malformed request body: {error}") }
    })
}

/// The body of register, lookup and compatibility requests.
#[derive(Deserialize)]
struct SchemaBody {
    schema: Option<String>,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<SchemaReference>>,
    id: Option<i64>,
    version: Option<i64>,
}

struct SchemaInput {
    schema_type: SchemaType,
    schema: String,
    references: Vec<SchemaReference>,
}

impl SchemaBody {
    fn input(self) -> Result<SchemaInput, Failure> {
        let schema_type = match self.schema_type.as_deref() {
            None => SchemaType::Avro,
            Some(text) => SchemaType::parse(text).ok_or_else(|| RegistryError::InvalidSchema(format!("unknown schema type {text:?}")))?,
        };
        let schema =
            self.schema.filter(|schema| !schema.is_empty()).ok_or_else(|| RegistryError::InvalidSchema("Empty schema".to_string()))?;
        Ok(SchemaInput { schema_type, schema, references: self.references.unwrap_or_default() })
    }
}

fn parse_id(text: &str) -> Result<u32, Failure> {
    text.parse::<u32>().ok().filter(|&id| id <= i32::MAX as u32).ok_or_else(|| RegistryError::SchemaNotFound(text.to_string()).into())
}

fn parse_version(text: &str) -> Result<VersionSelector, Failure> {
    VersionSelector::parse(text).ok_or_else(|| RegistryError::InvalidVersion(text.to_string()).into())
}

/// Confluent's schema fields: `schemaType` omitted for AVRO, `references` when non-empty.
fn schema_fields(schema: &StoredSchema, into: &mut serde_json::Map<String, Value>) {
    into.insert("schema".into(), Value::String(schema.schema.clone()));
    if schema.schema_type != SchemaType::Avro {
        into.insert("schemaType".into(), Value::String(schema.schema_type.as_str().into()));
    }
    if !schema.references.is_empty() {
        into.insert("references".into(), serde_json::to_value(&schema.references).unwrap_or(Value::Null));
    }
}

fn version_json(version: &SubjectVersion) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("subject".into(), Value::String(version.subject.clone()));
    object.insert("version".into(), json!(version.version));
    object.insert("id".into(), json!(version.id));
    schema_fields(&version.schema, &mut object);
    if version.deleted {
        object.insert("deleted".into(), Value::Bool(true));
    }
    Value::Object(object)
}

// ---- schemas -----------------------------------------------------------------------------

async fn schema_by_id(State(registry): Shared, Path(id): Path<String>) -> Result<Response, Failure> {
    let id = parse_id(&id)?;
    let schema =
        blocking(registry, move |registry| registry.schema_by_id(id)?.ok_or(RegistryError::SchemaNotFound(id.to_string()))).await?;
    let mut object = serde_json::Map::new();
    schema_fields(&schema, &mut object);
    ok(Value::Object(object))
}

async fn schema_text_by_id(State(registry): Shared, Path(id): Path<String>) -> Result<Response, Failure> {
    let id = parse_id(&id)?;
    let schema =
        blocking(registry, move |registry| registry.schema_by_id(id)?.ok_or(RegistryError::SchemaNotFound(id.to_string()))).await?;
    Ok((StatusCode::OK, [(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V1))], schema.schema).into_response())
}

async fn subjects_by_id(State(registry): Shared, Path(id): Path<String>, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let id = parse_id(&id)?;
    let params = Params::parse(query);
    let include_deleted = params.flag("deleted");
    let pairs = blocking(registry, move |registry| registry.versions_for_id(id, include_deleted)).await?;
    let wanted = params.text("subject").to_string();
    let mut subjects: Vec<String> =
        pairs.into_iter().map(|(subject, _)| subject).filter(|subject| wanted.is_empty() || *subject == wanted).collect();
    subjects.dedup();
    ok(json!(params.page(subjects)))
}

async fn versions_by_id(State(registry): Shared, Path(id): Path<String>, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let id = parse_id(&id)?;
    let params = Params::parse(query);
    let include_deleted = params.flag("deleted");
    let pairs = blocking(registry, move |registry| registry.versions_for_id(id, include_deleted)).await?;
    let wanted = params.text("subject");
    let pairs: Vec<Value> = pairs
        .into_iter()
        .filter(|(subject, _)| wanted.is_empty() || subject == wanted)
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect();
    ok(json!(params.page(pairs)))
}

// ---- subjects ----------------------------------------------------------------------------

async fn list_subjects(State(registry): Shared, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let params = Params::parse(query);
    let prefix = params.text("subjectPrefix").to_string();
    let filter = params.deleted_filter();
    let subjects = blocking(registry, move |registry| registry.subjects(&prefix, filter)).await?;
    ok(json!(params.page(subjects)))
}

async fn list_versions(State(registry): Shared, Path(subject): Path<String>, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let params = Params::parse(query);
    let filter = params.deleted_filter();
    let versions = blocking(registry, move |registry| registry.versions(&subject, filter)).await?;
    ok(json!(params.page(versions)))
}

async fn register(
    State(registry): Shared,
    caller: MaybeCaller,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let body: SchemaBody = read_json(&headers, body).await?;
    let explicit_id = body.id.filter(|&id| id > 0).map(|id| u32::try_from(id).unwrap_or(u32::MAX));
    let explicit_version = body.version.filter(|&version| version > 0).map(|version| u32::try_from(version).unwrap_or(u32::MAX));
    let input = body.input()?;
    if is_locked_for(&registry, &caller, &subject).await? {
        // One of the contract's versions is answered as registration would answer it, so
        // serializers that register on first use keep working; anything else is refused.
        let (lookup_subject, schema_type, schema, references) =
            (subject.clone(), input.schema_type, input.schema.clone(), input.references.clone());
        let existing = blocking(Arc::clone(&registry), move |registry| {
            match registry.lookup(&lookup_subject, schema_type, &schema, &references, false) {
                Ok(found) => Ok(Some(found)),
                Err(RegistryError::SubjectNotFound(_) | RegistryError::SchemaNotFound(_)) => Ok(None),
                Err(other) => Err(other),
            }
        })
        .await?;
        return match existing {
            Some(found) if explicit_id.is_none() && explicit_version.is_none() => ok(json!({ "id": found.id, "version": found.version })),
            _ => Err(contract_fed_refusal(&caller, &subject, "registry.register").await),
        };
    }
    let registered = blocking(registry, move |registry| {
        registry.register_with(&subject, input.schema_type, &input.schema, &input.references, explicit_id, explicit_version)
    })
    .await?;
    ok(json!({ "id": registered.id, "version": registered.version }))
}

async fn lookup(
    State(registry): Shared,
    Path(subject): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let params = Params::parse(query);
    let input = read_json::<SchemaBody>(&headers, body).await?.input()?;
    let include_deleted = params.flag("deleted");
    let found =
        blocking(registry, move |registry| registry.lookup(&subject, input.schema_type, &input.schema, &input.references, include_deleted))
            .await?;
    ok(version_json(&found))
}

async fn get_version(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    let found = find_version(registry, subject, &version, query).await?;
    ok(version_json(&found))
}

async fn get_version_text(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    let found = find_version(registry, subject, &version, query).await?;
    Ok((StatusCode::OK, [(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V1))], found.schema.schema).into_response())
}

/// One version of a subject (`latest`, `-1` or a number), deleted ones only with `?deleted=true`.
async fn find_version(registry: Arc<Registry>, subject: String, version: &str, query: Option<String>) -> Result<SubjectVersion, Failure> {
    let selector = parse_version(version)?;
    let include_deleted = Params::parse(query).flag("deleted");
    blocking(registry, move |registry| registry.version(&subject, selector, include_deleted)).await
}

async fn referenced_by(State(registry): Shared, Path((subject, version)): Path<(String, String)>) -> Result<Response, Failure> {
    let selector = parse_version(&version)?;
    let ids = blocking(registry, move |registry| registry.referenced_by(&subject, selector)).await?;
    ok(json!(ids))
}

async fn delete_subject(
    State(registry): Shared,
    caller: MaybeCaller,
    Path(subject): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    refuse_if_contract_fed(&registry, &caller, &subject, "registry.delete").await?;
    let permanent = Params::parse(query).flag("permanent");
    let versions = blocking(registry, move |registry| registry.delete_subject(&subject, permanent)).await?;
    ok(json!(versions))
}

async fn delete_version(
    State(registry): Shared,
    caller: MaybeCaller,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    refuse_if_contract_fed(&registry, &caller, &subject, "registry.delete").await?;
    let selector = parse_version(&version)?;
    let permanent = Params::parse(query).flag("permanent");
    let deleted = blocking(registry, move |registry| registry.delete_version(&subject, selector, permanent)).await?;
    ok(json!(deleted))
}

// ---- compatibility -----------------------------------------------------------------------

async fn compatibility(
    registry: Arc<Registry>,
    subject: String,
    target: CompatibilityTarget,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let verbose = Params::parse(query).flag("verbose");
    let input = read_json::<SchemaBody>(&headers, body).await?.input()?;
    let verdict = blocking(registry, move |registry| {
        registry.check_compatibility(&subject, target, input.schema_type, &input.schema, &input.references)
    })
    .await?;
    if verbose {
        ok(json!({ "is_compatible": verdict.is_compatible, "messages": verdict.messages }))
    } else {
        ok(json!({ "is_compatible": verdict.is_compatible }))
    }
}

async fn compatibility_all(
    State(registry): Shared,
    Path(subject): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    compatibility(registry, subject, CompatibilityTarget::All, query, headers, body).await
}

async fn compatibility_version(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let target = match parse_version(&version)? {
        VersionSelector::Latest => CompatibilityTarget::Latest,
        VersionSelector::Number(number) => CompatibilityTarget::Version(number),
    };
    compatibility(registry, subject, target, query, headers, body).await
}

// ---- config and mode ---------------------------------------------------------------------

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
}

#[derive(Deserialize)]
struct ModeBody {
    mode: Option<String>,
}

async fn get_global_config(State(registry): Shared) -> Result<Response, Failure> {
    let level = blocking(registry, |registry| registry.compatibility(None)).await?.unwrap_or(DEFAULT_COMPATIBILITY);
    ok(json!({ "compatibilityLevel": level.name() }))
}

async fn put_config(registry: Arc<Registry>, subject: Option<String>, headers: HeaderMap, body: Body) -> Result<Response, Failure> {
    let body: ConfigBody = read_json(&headers, body).await?;
    let level = body.compatibility.as_deref().and_then(CompatibilityMode::parse).ok_or(RegistryError::InvalidCompatibilityLevel)?;
    blocking(registry, move |registry| registry.set_compatibility(subject.as_deref(), level)).await?;
    ok(json!({ "compatibility": level.name() }))
}

async fn put_global_config(State(registry): Shared, headers: HeaderMap, body: Body) -> Result<Response, Failure> {
    put_config(registry, None, headers, body).await
}

async fn delete_global_config(State(registry): Shared) -> Result<Response, Failure> {
    let previous = blocking(registry, |registry| registry.delete_compatibility(None)).await?;
    ok(json!({ "compatibilityLevel": previous.name() }))
}

async fn get_subject_config(State(registry): Shared, Path(subject): Path<String>, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let default_to_global = Params::parse(query).flag("defaultToGlobal");
    let level = blocking(registry, move |registry| match registry.compatibility(Some(&subject))? {
        Some(level) => Ok(level),
        None if default_to_global => registry.effective_compatibility(&subject),
        None => Err(RegistryError::SubjectCompatibilityNotConfigured(subject)),
    })
    .await?;
    ok(json!({ "compatibilityLevel": level.name() }))
}

async fn put_subject_config(
    State(registry): Shared,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    put_config(registry, Some(subject), headers, body).await
}

async fn delete_subject_config(State(registry): Shared, Path(subject): Path<String>) -> Result<Response, Failure> {
    let previous = blocking(registry, move |registry| registry.delete_compatibility(Some(&subject))).await?;
    ok(json!({ "compatibilityLevel": previous.name() }))
}

async fn get_global_mode(State(registry): Shared) -> Result<Response, Failure> {
    let mode = blocking(registry, |registry| registry.mode(None)).await?.unwrap_or(Mode::ReadWrite);
    ok(json!({ "mode": mode.as_str() }))
}

async fn put_mode(
    registry: Arc<Registry>,
    subject: Option<String>,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let force = Params::parse(query).flag("force");
    let body: ModeBody = read_json(&headers, body).await?;
    let mode = body.mode.as_deref().and_then(Mode::parse).ok_or(RegistryError::InvalidMode)?;
    blocking(registry, move |registry| registry.set_mode(subject.as_deref(), mode, force)).await?;
    ok(json!({ "mode": mode.as_str() }))
}

async fn put_global_mode(State(registry): Shared, RawQuery(query): RawQuery, headers: HeaderMap, body: Body) -> Result<Response, Failure> {
    put_mode(registry, None, query, headers, body).await
}

async fn get_subject_mode(State(registry): Shared, Path(subject): Path<String>, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let default_to_global = Params::parse(query).flag("defaultToGlobal");
    let mode = blocking(registry, move |registry| match registry.mode(Some(&subject))? {
        Some(mode) => Ok(mode),
        None if default_to_global => Ok(registry.mode(None)?.unwrap_or(Mode::ReadWrite)),
        None => Err(RegistryError::SubjectModeNotConfigured(subject)),
    })
    .await?;
    ok(json!({ "mode": mode.as_str() }))
}

async fn put_subject_mode(
    State(registry): Shared,
    Path(subject): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    put_mode(registry, Some(subject), query, headers, body).await
}

async fn delete_subject_mode(State(registry): Shared, Path(subject): Path<String>) -> Result<Response, Failure> {
    let previous = blocking(registry, move |registry| registry.delete_mode(&subject)).await?;
    ok(json!({ "mode": previous.as_str() }))
}

#[cfg(test)]
mod tests;
