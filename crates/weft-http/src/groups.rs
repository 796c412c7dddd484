//! Consumer group endpoints: poll (join, heartbeat and fetch in one call), commit, describe, leave.
//!
//! A group is the same group Kafka consumers join with its name (see `weft_core::group`):
//! describe lists both kinds of member (`kind`: `http` or `kafka`), and leave removes only
//! HTTP members.
//!
//! Every endpoint needs `consume` on the stream and on the group (`Weft::ConsumerGroup`), which
//! belongs to the principal that first polled or committed it, to the stream's owners and to
//! admins (see `weft_core::guard`'s `groups.rs`). A long poll ends with 401 as soon as the token it
//! was sent with is revoked.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use weft_core::broker::FETCH_EVENTS_MAX;
use weft_core::cloudevent::format_rfc3339_ms;
use weft_core::group::{OffsetReset, SESSION_TIMEOUT_MS_DEFAULT};
use weft_core::guard::{AuthzAction, AuthzResource, Caller, GroupUse};
use weft_core::{Error, codes as core_codes};

use crate::api_error::ApiError;
use crate::query::{parse_json, read_body};
use crate::streams::write_events;
use crate::{AppState, WAIT_MS_MAX, codes};

const GROUP_REQUEST_BYTES_MAX: usize = 64 * 1024;

/// Body of `POST .../groups/{group}/poll`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    pub member: String,
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Long-poll: wait up to this long for events when none are ready (default 0).
    #[serde(default)]
    pub wait_ms: u64,
    #[serde(default)]
    pub session_timeout_ms: Option<i64>,
    /// Where to start in partitions the group never committed: `earliest` (default) or `latest`.
    #[serde(default)]
    pub from: Option<String>,
}

fn default_max_events() -> usize {
    500
}

/// Body of `POST .../groups/{group}/commit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    pub member: String,
    /// Partition (as a string key) to the next offset to read.
    pub offsets: BTreeMap<String, u64>,
}

pub async fn poll(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, group)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let request: PollRequest = parse_json(&read_body(body, GROUP_REQUEST_BYTES_MAX).await?)?;
    if request.max_events == 0 || request.max_events > FETCH_EVENTS_MAX {
        return Err(Error::invalid(codes::INVALID_PARAMETER, format!("max_events must be 1 to {FETCH_EVENTS_MAX}"))
            .with_path("/max_events")
            .into());
    }
    if request.wait_ms > WAIT_MS_MAX {
        return Err(Error::invalid(codes::INVALID_PARAMETER, format!("wait_ms must be at most {WAIT_MS_MAX}"))
            .with_path("/wait_ms")
            .into());
    }
    let reset = match request.from.as_deref() {
        None | Some("earliest") => OffsetReset::Earliest,
        Some("latest") => OffsetReset::Latest,
        Some(_) => return Err(Error::invalid(codes::INVALID_PARAMETER, "from must be earliest or latest").with_path("/from").into()),
    };
    let stream = state.broker.stream(&name)?;
    state.broker.authorize(&caller, AuthzAction::Consume, &AuthzResource::Stream(name.clone())).await?;
    weft_core::group::check_group_name("group", &group)?;
    state.broker.authorize_group(&caller, &group, GroupUse::Use, Some(&name)).await?;
    let masker = state.broker.guard().masker(&caller, &state.broker, &name);
    let mut token = state.broker.watch_token(&caller);
    let session_timeout_ms = request.session_timeout_ms.unwrap_or(SESSION_TIMEOUT_MS_DEFAULT);
    let mut deadline = tokio::time::Instant::now() + Duration::from_millis(request.wait_ms);
    let mut changes = stream.subscribe();
    loop {
        changes.borrow_and_update();
        let assignment = state.broker.groups().poll(&group, &stream, &request.member, session_timeout_ms, reset)?;
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(b"{\"member\":");
        crate::render::write_json_string(&mut out, &request.member);
        let partitions: Vec<u32> = assignment.positions.iter().map(|(p, _)| *p).collect();
        out.extend_from_slice(
            format!(
                ",\"generation\":{},\"partitions\":{},\"events\":[",
                assignment.generation,
                serde_json::to_string(&partitions).expect("plain numbers")
            )
            .as_bytes(),
        );
        let mut n_events = 0;
        let mut advanced = Vec::new();
        for &(partition, position) in &assignment.positions {
            if n_events >= request.max_events {
                break;
            }
            let (n_written, next_offset) =
                write_events(&state, &stream, partition, position, request.max_events - n_events, masker.as_ref(), &mut out).await?;
            n_events += n_written;
            if n_written > 0 {
                advanced.push((partition, next_offset));
            }
        }
        let now = tokio::time::Instant::now();
        if n_events > 0 || now >= deadline {
            state.broker.groups().advance(&group, &name, &request.member, &advanced);
            out.extend_from_slice(b"]}");
            return Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response());
        }
        // Nothing yet: wait for an append (or the deadline), then poll again, which also
        // keeps the membership alive and picks up a rebalance.
        let wait = (deadline - now).min(Duration::from_millis((session_timeout_ms / 3).max(100) as u64));
        tokio::select! {
            _ = tokio::time::timeout(wait, changes.changed()) => {}
            // The server is stopping: answer now with what there is (nothing).
            _ = state.broker.closed() => deadline = tokio::time::Instant::now(),
            // The token this poll came with was revoked: it gets nothing more.
            error = token.ended() => return Err(error.into()),
        }
    }
}

pub async fn commit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, group)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let request: CommitRequest = parse_json(&read_body(body, GROUP_REQUEST_BYTES_MAX).await?)?;
    let stream = state.broker.stream(&name)?;
    state.broker.authorize(&caller, AuthzAction::Consume, &AuthzResource::Stream(name.clone())).await?;
    weft_core::group::check_group_name("group", &group)?;
    state.broker.authorize_group(&caller, &group, GroupUse::Use, Some(&name)).await?;
    let mut offsets = Vec::with_capacity(request.offsets.len());
    for (partition, &offset) in &request.offsets {
        let partition: u32 = partition.parse().map_err(|_| {
            Error::invalid(codes::INVALID_PARAMETER, format!("partition {partition:?} is not a number"))
                .with_path(format!("/offsets/{partition}"))
        })?;
        stream.partition_stats(partition)?;
        offsets.push((partition, offset));
    }
    if offsets.is_empty() {
        return Err(Error::invalid(codes::INVALID_PARAMETER, "offsets must name at least one partition").with_path("/offsets").into());
    }
    let broker = state.broker.clone();
    let member = request.member.clone();
    tokio::task::spawn_blocking(move || broker.groups().commit(&group, &stream, &member, &offsets))
        .await
        .map_err(|error| Error::internal(error.to_string()))??;
    Ok(axum::Json(serde_json::json!({ "member": request.member, "committed": request.offsets })).into_response())
}

pub async fn describe(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, group)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let stream = state.broker.stream(&name)?;
    state.broker.authorize(&caller, AuthzAction::Consume, &AuthzResource::Stream(name.clone())).await?;
    state.broker.authorize_group(&caller, &group, GroupUse::Inspect, None).await?;
    let description = state.broker.groups().describe(&group, &stream)?;
    let members: Vec<_> = description
        .members
        .iter()
        .map(|m| serde_json::json!({ "member": m.member, "kind": m.kind.as_str(), "partitions": m.partitions, "last_seen": format_rfc3339_ms(m.last_seen_ms), "session_timeout_ms": m.session_timeout_ms }))
        .collect();
    let partitions: Vec<_> = description
        .partitions
        .iter()
        .map(|p| serde_json::json!({ "partition": p.partition, "owner": p.owner, "committed": p.committed, "end_offset": p.end_offset, "lag": p.lag }))
        .collect();
    let total_lag: u64 = description.partitions.iter().map(|p| p.lag).sum();
    Ok(axum::Json(serde_json::json!({
        "group": description.group,
        "stream": description.stream,
        "generation": description.generation,
        "members": members,
        "partitions": partitions,
        "lag": total_lag,
    }))
    .into_response())
}

pub async fn leave(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, group, member)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    state.broker.stream(&name)?;
    state.broker.authorize(&caller, AuthzAction::Consume, &AuthzResource::Stream(name.clone())).await?;
    state.broker.authorize_group(&caller, &group, GroupUse::Inspect, None).await?;
    if state.broker.groups().leave(&group, &member) {
        Ok(axum::http::StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Error::new(
            weft_core::Kind::NotFound,
            core_codes::GROUP_NOT_FOUND,
            format!("member {member:?} is not an http member of group {group:?}; kafka members leave through the kafka protocol"),
        )
        .into())
    }
}
