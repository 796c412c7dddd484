//! Stream endpoints: create, list, show, and fetch by offset or time.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use weft_core::broker::FETCH_EVENTS_MAX;
use weft_core::cloudevent::parse_rfc3339_ms;
use weft_core::duration::parse_duration_ms;
use weft_core::guard::{AuthzAction, AuthzResource, Caller, Masker};
use weft_core::{Error, StreamConfig};
use weft_governance::audit::AuditDecision;

use crate::api_error::ApiError;
use crate::query::{QueryParams, parse_json, read_body};
use crate::render::{stream_json, write_envelope};
use crate::{AppState, codes};

/// Body of `POST /api/v1/streams`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateStreamRequest {
    /// Kafka topic rules: `[A-Za-z0-9._-]`, at most 249 characters.
    pub name: String,
    /// Number of partitions (default 1).
    #[serde(default = "one")]
    pub partitions: u32,
    /// JSON pointer into the event data that picks the partition, e.g. `/customer_id`.
    #[serde(default)]
    pub key: Option<String>,
    /// How long events are kept: `7d` (default), `12h`, `forever`.
    #[serde(default)]
    pub retention: Option<String>,
    /// Keep at most this many bytes per partition (default unlimited).
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// `always` (default), `interval:<ms>` or `never`.
    #[serde(default)]
    pub fsync: Option<String>,
    /// Segment size in bytes (default 256 MiB).
    #[serde(default)]
    pub segment_bytes: Option<u64>,
}

fn one() -> u32 {
    1
}

impl CreateStreamRequest {
    pub fn into_config(self) -> Result<StreamConfig, Error> {
        let retention_ms = match self.retention.as_deref() {
            None => Some(weft_core::stream::RETENTION_MS_DEFAULT),
            Some(text) => parse_duration_ms(text)
                .map_err(|message| Error::invalid(weft_core::codes::STREAM_INVALID_CONFIG, message).with_path("/retention"))?,
        };
        Ok(StreamConfig {
            name: self.name,
            partitions: self.partitions,
            key: self.key,
            retention_ms,
            retention_bytes: self.retention_bytes,
            fsync: match self.fsync.as_deref() {
                None => weft_core::FsyncPolicy::Always,
                Some(text) => StreamConfig::parse_fsync(text)?,
            },
            segment_bytes: self.segment_bytes.unwrap_or(weft_core::stream::SEGMENT_BYTES_DEFAULT),
            created_at_ms: 0,
        })
    }
}

const STREAM_CONFIG_BYTES_MAX: usize = 64 * 1024;

pub async fn create(State(state): State<AppState>, Extension(caller): Extension<Caller>, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body, STREAM_CONFIG_BYTES_MAX).await?;
    let request: CreateStreamRequest = parse_json(&bytes)?;
    let config = request.into_config()?;
    // Streams outside data products are the platform's: creating one takes `admin`.
    state.broker.authorize(&caller, AuthzAction::Admin, &AuthzResource::mesh()).await?;
    let audited = AuthzResource::Stream(config.name.clone()).to_string();
    let broker = state.broker.clone();
    let stream =
        tokio::task::spawn_blocking(move || broker.create_stream(config)).await.map_err(|error| Error::internal(error.to_string()))??;
    state.broker.audit(Some(&caller), "stream.create", &audited, AuditDecision::Allow, None, None).await;
    Ok((StatusCode::CREATED, axum::Json(stream_json(&stream))).into_response())
}

pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> axum::Json<serde_json::Value> {
    let guard = state.broker.guard();
    // Weft's own streams (the audit log) are read through their own endpoints: the guard
    // refuses `read_catalog` on them.
    let streams: Vec<_> = state
        .broker
        .streams()
        .iter()
        .filter(|stream| guard.check(&caller, AuthzAction::ReadCatalog, &AuthzResource::Stream(stream.name().to_string())).is_ok())
        .map(|stream| stream_json(stream))
        .collect();
    axum::Json(serde_json::json!({ "streams": streams }))
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let stream = state.broker.stream(&name)?;
    state.broker.authorize(&caller, AuthzAction::ReadCatalog, &AuthzResource::Stream(name.clone())).await?;
    Ok(axum::Json(stream_json(&stream)))
}

/// `GET /api/v1/streams/{name}/events?partition=0&offset=0&limit=500` or `&from_time=<RFC 3339>`.
pub async fn fetch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw.as_deref(), &["partition", "offset", "from_time", "limit"])?;
    let stream = state.broker.stream(&name)?;
    state.broker.authorize(&caller, AuthzAction::Consume, &AuthzResource::Stream(name.clone())).await?;
    let masker = state.broker.guard().masker(&caller, &state.broker, &name);
    let partition = params.u64("partition", u32::MAX as u64)?.unwrap_or(0) as u32;
    let limit = params.u64("limit", FETCH_EVENTS_MAX as u64)?.unwrap_or(500).max(1) as usize;
    let log_stats = stream.partition_stats(partition)?;
    let offset = match (params.u64("offset", i64::MAX as u64)?, params.get("from_time")) {
        (Some(_), Some(_)) => return Err(Error::invalid(codes::INVALID_PARAMETER, "give either offset or from_time, not both").into()),
        (Some(offset), None) => offset,
        (None, Some(time)) => {
            let ms = parse_rfc3339_ms(time).map_err(|reason| {
                Error::invalid(codes::INVALID_PARAMETER, format!("from_time must be an RFC 3339 timestamp: {reason}"))
                    .with_path("/from_time")
            })?;
            state.broker.offset_for_time(&stream, partition, ms).await?.unwrap_or(log_stats.visible_next_offset)
        }
        (None, None) => log_stats.log_start_offset,
    };
    let mut out = Vec::with_capacity(limit.min(1_000) * 512);
    out.extend_from_slice(b"{\"events\":[");
    let (n_events, next_offset) = write_events(&state, &stream, partition, offset, limit, masker.as_ref(), &mut out).await?;
    let _ = n_events;
    out.extend_from_slice(
        format!(
            "],\"next_offset\":{next_offset},\"high_watermark\":{},\"first_offset\":{}}}",
            stream.partition_stats(partition)?.visible_next_offset,
            log_stats.log_start_offset
        )
        .as_bytes(),
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// Smallest read of one fetch step, so small pages still read whole batches.
const FETCH_STEP_BYTES_MIN: usize = 64 * 1024;
/// Bytes read per event still wanted (a guess at an event's stored size, with headers).
const FETCH_BYTES_PER_EVENT_GUESS: usize = 1024;

/// Appends up to `limit` event envelopes (comma separated) from one partition to `out`.
/// Returns how many were written and the offset to continue from.
pub async fn write_events(
    state: &AppState,
    stream: &std::sync::Arc<weft_core::Stream>,
    partition: u32,
    offset: u64,
    limit: usize,
    masker: Option<&Masker>,
    out: &mut Vec<u8>,
) -> Result<(usize, u64), Error> {
    let mut next_offset = offset;
    let mut n_events = 0usize;
    while n_events < limit {
        let budget =
            (limit - n_events).saturating_mul(FETCH_BYTES_PER_EVENT_GUESS).clamp(FETCH_STEP_BYTES_MIN, weft_core::broker::FETCH_BYTES_MAX);
        let fetched = state.broker.read_batches(stream, partition, next_offset, budget).await?;
        let records = fetched.records(limit - n_events)?;
        let Some(last) = records.last() else { break };
        let last_offset = last.record.offset;
        for record in &records {
            if out.last() == Some(&b'}') {
                out.push(b',');
            }
            write_envelope(out, stream.name(), partition, record, masker);
            n_events += 1;
        }
        next_offset = last_offset + 1;
    }
    Ok((n_events, next_offset))
}
