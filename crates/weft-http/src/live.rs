//! `GET /api/v1/streams/{name}/live`: a live tail as Server-Sent Events.
//!
//! `from=latest` (default), `earliest`, or an RFC 3339 time; `partition=N` tails one partition.
//! Each event's SSE id is `<partition>:<offset>`. A reconnecting client sends
//! `Last-Event-ID`; that partition resumes after the named offset and the others resume
//! from the time of that event, so nothing is skipped (some events may repeat).
//!
//! The tail ends when the client goes away, the server stops, or the token it was opened with is
//! revoked or expires: then an `error` event with the reason (`auth.revoked_token: ...`) is sent
//! and the stream closes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use weft_core::cloudevent::parse_rfc3339_ms;
use weft_core::guard::{AuthzAction, AuthzResource, Caller, Masker, TokenWatch};
use weft_core::{Error, Stream};

use crate::api_error::ApiError;
use crate::query::QueryParams;
use crate::render::write_envelope;
use crate::{AppState, LIVE_BUFFER_EVENTS_MAX, codes};

/// Events read per partition per round.
const LIVE_ROUND_EVENTS_MAX: usize = 500;
/// Bytes read from one partition per round.
const LIVE_READ_BYTES: usize = 256 * 1024;

pub async fn live(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let params = QueryParams::parse(raw.as_deref(), &["from", "partition"])?;
    let stream = state.broker.stream(&name)?;
    state.broker.authorize(&caller, AuthzAction::Consume, &AuthzResource::Stream(name.clone())).await?;
    let masker = state.broker.guard().masker(&caller, &state.broker, &name);
    let partitions: Vec<u32> = match params.u64("partition", u32::MAX as u64)? {
        Some(partition) => {
            stream.partition_stats(partition as u32)?;
            vec![partition as u32]
        }
        None => (0..stream.n_partitions()).collect(),
    };
    let mut positions = Vec::with_capacity(partitions.len());
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(parse_event_id);
    let resume_time = match last_event_id {
        Some((partition, offset)) => event_time(&state, &stream, partition, offset).await?,
        None => None,
    };
    for &partition in &partitions {
        let stats = stream.partition_stats(partition)?;
        let position = match (last_event_id, resume_time, params.get("from")) {
            (Some((p, offset)), _, _) if p == partition => offset + 1,
            (Some(_), Some(ms), _) => state.broker.offset_for_time(&stream, partition, ms).await?.unwrap_or(stats.visible_next_offset),
            (_, _, None | Some("latest")) => stats.visible_next_offset,
            (_, _, Some("earliest")) => stats.log_start_offset,
            (_, _, Some(time)) => {
                let ms = parse_rfc3339_ms(time).map_err(|reason| {
                    Error::invalid(codes::INVALID_PARAMETER, format!("from must be latest, earliest or an RFC 3339 time: {reason}"))
                        .with_path("/from")
                })?;
                state.broker.offset_for_time(&stream, partition, ms).await?.unwrap_or(stats.visible_next_offset)
            }
        };
        positions.push((partition, position.clamp(stats.log_start_offset, stats.visible_next_offset)));
    }
    let (sender, receiver) = tokio::sync::mpsc::channel::<Event>(LIVE_BUFFER_EVENTS_MAX);
    let token = state.broker.watch_token(&caller);
    tokio::spawn(tail(state, stream, positions, masker, token.clone(), sender));
    // The client side ends with the token too, dropping what the tail had buffered: nothing is
    // sent after the revocation but the `error` event that says why.
    let events = futures_util::stream::unfold(Some((receiver, token)), |open| async move {
        let (mut receiver, mut token) = open?;
        tokio::select! {
            biased;
            error = token.ended() => Some((Ok(Event::default().event("error").data(error.to_string())), None)),
            event = receiver.recv() => event.map(|event| (Ok(event), Some((receiver, token)))),
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn parse_event_id(text: &str) -> Option<(u32, u64)> {
    let (partition, offset) = text.split_once(':')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

async fn event_time(state: &AppState, stream: &Arc<Stream>, partition: u32, offset: u64) -> Result<Option<i64>, Error> {
    Ok(state.broker.record_timestamp(stream, partition, offset).await)
}

/// Follows the partitions until the client goes away (the channel closes), the server stops, or
/// the caller's token ends.
async fn tail(
    state: AppState,
    stream: Arc<Stream>,
    mut positions: Vec<(u32, u64)>,
    masker: Option<Masker>,
    mut token: TokenWatch,
    sender: tokio::sync::mpsc::Sender<Event>,
) {
    let mut changes = stream.subscribe();
    loop {
        // Checked every round, not only while waiting, so a busy tail ends too.
        if token.check().is_some() {
            return;
        }
        changes.borrow_and_update();
        let mut n_sent = 0;
        for (partition, position) in positions.iter_mut() {
            let fetched = match state.broker.read_batches(&stream, *partition, *position, LIVE_READ_BYTES).await {
                Ok(fetched) => fetched,
                Err(error) => {
                    let _ = sender.send(Event::default().event("error").data(error.to_string())).await;
                    return;
                }
            };
            let Ok(records) = fetched.records(LIVE_ROUND_EVENTS_MAX) else { return };
            for record in &records {
                let mut data = Vec::with_capacity(512);
                write_envelope(&mut data, stream.name(), *partition, record, masker.as_ref());
                let event = Event::default().id(format!("{partition}:{}", record.record.offset)).data(String::from_utf8_lossy(&data));
                if sender.send(event).await.is_err() {
                    return;
                }
                *position = record.record.offset + 1;
                n_sent += 1;
            }
        }
        if n_sent == 0 {
            tokio::select! {
                _ = changes.changed() => {}
                _ = sender.closed() => return,
                _ = state.broker.closed() => return,
                _ = token.ended() => return,
            }
        }
    }
}
