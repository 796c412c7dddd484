//! `POST /api/v1/streams/{name}/events`: every CloudEvents HTTP mode plus plain JSON and NDJSON.
//!
//! Content types:
//! - `application/cloudevents+json`: one event in the JSON format (structured mode);
//! - `application/cloudevents-batch+json`: a JSON array of events (batched mode);
//! - any content type with a `ce-specversion` header: binary mode, the body is the data;
//! - `application/json`: one event's data; `application/x-ndjson`: one event's data per line.
//!   Weft wraps these into CloudEvents with a UUIDv7 `id`, `source` `/weft/streams/<name>`
//!   (or `?source=`), `type` the stream name (or `?type=`), `time` now, optional `?subject=`.
//!
//! Batch modes answer 200 with one result per event; single-event modes answer 4xx when
//! their event is rejected, with the same body shape plus an `error` member.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use weft_core::cloudevent::{SPEC_VERSION, format_rfc3339_ms};
use weft_core::guard::{AuthzAction, AuthzResource, Caller};
use weft_core::{CloudEvent, Error, Incoming, Kind, ProduceContext, ProduceOutcome};

use crate::api_error::{ApiError, error_json, status_of};
use crate::query::{QueryParams, read_body};
use crate::{AppState, EVENTS_PER_REQUEST_MAX, REQUEST_BODY_BYTES_MAX, codes};

enum Mode {
    Structured,
    Batched,
    Binary,
    Json,
    Ndjson,
}

impl Mode {
    fn is_batch(&self) -> bool {
        matches!(self, Self::Batched | Self::Ndjson)
    }
}

fn mode_of(headers: &HeaderMap) -> Result<(Mode, Option<String>), Error> {
    let content_type = match headers.get(header::CONTENT_TYPE) {
        None => None,
        Some(value) => {
            Some(value.to_str().map_err(|_| Error::invalid(codes::INVALID_HEADER, "content-type is not valid ascii"))?.to_string())
        }
    };
    let essence = content_type.as_deref().map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let mode = match essence.as_deref() {
        Some("application/cloudevents+json") => Mode::Structured,
        Some("application/cloudevents-batch+json") => Mode::Batched,
        Some(essence) if essence.starts_with("application/cloudevents") => {
            return Err(Error::new(
                Kind::Invalid,
                codes::UNSUPPORTED_MEDIA_TYPE,
                format!("event format {essence} is not supported; use application/cloudevents+json"),
            ));
        }
        _ if headers.contains_key("ce-specversion") => Mode::Binary,
        Some("application/json") => Mode::Json,
        Some("application/x-ndjson" | "application/jsonl" | "application/json-seq") => Mode::Ndjson,
        _ => {
            return Err(Error::new(
                Kind::Invalid,
                codes::UNSUPPORTED_MEDIA_TYPE,
                "content type must be application/cloudevents+json, application/cloudevents-batch+json, application/json, application/x-ndjson, or a binary-mode event with ce- headers",
            ));
        }
    };
    Ok((mode, content_type))
}

pub async fn produce(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // The body is read before anything can refuse the request, so a refusal never leaves
    // unread bytes on a kept-alive connection.
    let body = read_body(body, REQUEST_BODY_BYTES_MAX).await?;
    let params = QueryParams::parse(raw.as_deref(), &["type", "source", "subject"])?;
    let stream = state.broker.stream(&name)?;
    state.broker.authorize(&caller, AuthzAction::Produce, &AuthzResource::Stream(name.clone())).await?;
    let (mode, content_type) = mode_of(&headers)?;
    // Events are counted before any is built, so `EVENTS_PER_REQUEST_MAX` holds before
    // anything per event is allocated.
    let events: Vec<Incoming> = match mode {
        Mode::Structured => {
            check_body_utf8(&body)?;
            vec![incoming(CloudEvent::from_json(&body), &body)]
        }
        Mode::Batched => {
            check_body_utf8(&body)?;
            let elements = batch_elements(&body)?;
            elements
                .into_iter()
                .enumerate()
                .map(|(event_idx, raw)| {
                    let parsed = CloudEvent::from_json(raw.get().as_bytes()).map_err(|error| in_batch_element(error, event_idx));
                    incoming(parsed, raw.get().as_bytes())
                })
                .collect()
        }
        Mode::Binary => vec![incoming(binary_event(&headers, content_type, body.to_vec()), &body)],
        Mode::Json => {
            let wrapper = Wrapper::new(&name, &params, state.broker.now_ms());
            vec![Incoming::Event(wrapper.wrap(body.to_vec()))]
        }
        Mode::Ndjson => {
            let lines = || body.split(|&b| b == b'\n').map(trim_line).filter(|line| !line.is_empty());
            check_event_count(lines().count())?;
            let wrapper = Wrapper::new(&name, &params, state.broker.now_ms());
            lines().map(|line| Incoming::Event(wrapper.wrap(line.to_vec()))).collect()
        }
    };
    let context = ProduceContext { producer: caller.principal.clone() };
    let outcome = state.broker.produce(&stream, events, &context).await;
    Ok(respond(&outcome, mode.is_batch()))
}

fn check_event_count(n_events: usize) -> Result<(), Error> {
    if n_events > EVENTS_PER_REQUEST_MAX {
        return Err(Error::new(
            Kind::TooLarge,
            codes::TOO_MANY_EVENTS,
            format!("a request may carry at most {EVENTS_PER_REQUEST_MAX} events, not {n_events}"),
        ));
    }
    Ok(())
}

/// A JSON body is UTF-8 (RFC 8259 section 8.1); anything else is refused before it is parsed.
fn check_body_utf8(body: &[u8]) -> Result<(), Error> {
    std::str::from_utf8(body).map(|_| ()).map_err(|error| {
        Error::invalid(
            weft_core::codes::EVENT_MALFORMED_JSON,
            format!("the body is not valid json: invalid utf-8 at byte {}", error.valid_up_to()),
        )
    })
}

/// The elements of a batched-mode body, refused as soon as there are more than
/// `EVENTS_PER_REQUEST_MAX` of them (so a huge array never becomes a huge vector).
fn batch_elements(body: &[u8]) -> Result<Vec<&serde_json::value::RawValue>, Error> {
    struct BoundedElements;
    impl<'de> serde::de::Visitor<'de> for BoundedElements {
        type Value = Vec<&'de serde_json::value::RawValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a sequence")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut elements = Vec::new();
            while let Some(element) = seq.next_element()? {
                if elements.len() == EVENTS_PER_REQUEST_MAX {
                    return Err(serde::de::Error::custom(TOO_MANY_EVENTS_MARK));
                }
                elements.push(element);
            }
            Ok(elements)
        }
    }
    const TOO_MANY_EVENTS_MARK: &str = "too many events";
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = serde::Deserializer::deserialize_seq(&mut deserializer, BoundedElements).and_then(|elements| {
        deserializer.end()?;
        Ok(elements)
    });
    parsed.map_err(|error| {
        if error.to_string().starts_with(TOO_MANY_EVENTS_MARK) {
            Error::new(Kind::TooLarge, codes::TOO_MANY_EVENTS, format!("a request may carry at most {EVENTS_PER_REQUEST_MAX} events"))
        } else {
            Error::invalid(codes::MALFORMED_JSON, format!("a batch must be a JSON array of events: {error}"))
        }
    })
}

/// Places an element's error inside the batch: its path is prefixed with the element index.
fn in_batch_element(mut error: Error, event_idx: usize) -> Error {
    if error.code == weft_core::codes::EVENT_MALFORMED_JSON {
        return Error::invalid(weft_core::codes::EVENT_INVALID_CLOUDEVENT, format!("batch element {event_idx} is not a JSON object"))
            .with_path(format!("/{event_idx}"));
    }
    error.path = Some(format!("/{event_idx}{}", error.path.as_deref().unwrap_or("")));
    error
}

fn incoming(parsed: Result<CloudEvent, Error>, raw: &[u8]) -> Incoming {
    match parsed {
        Ok(event) => Incoming::Event(event),
        Err(error) => Incoming::Unparsed { error, raw: raw.to_vec() },
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.trim_ascii()
}

/// Fills CloudEvents attributes for plain JSON data.
struct Wrapper {
    source: String,
    ty: String,
    subject: Option<String>,
    time: String,
    now_ms: i64,
}

impl Wrapper {
    fn new(stream: &str, params: &QueryParams, now_ms: i64) -> Self {
        Self {
            source: params.get("source").map_or_else(|| format!("/weft/streams/{stream}"), str::to_string),
            ty: params.get("type").unwrap_or(stream).to_string(),
            subject: params.get("subject").map(str::to_string),
            time: format_rfc3339_ms(now_ms),
            now_ms,
        }
    }

    fn wrap(&self, data: Vec<u8>) -> CloudEvent {
        CloudEvent {
            id: weft_core::cloudevent::new_event_id(self.now_ms),
            source: self.source.clone(),
            specversion: SPEC_VERSION.to_string(),
            ty: self.ty.clone(),
            datacontenttype: Some("application/json".to_string()),
            dataschema: None,
            subject: self.subject.clone(),
            time: Some(self.time.clone()),
            extensions: Vec::new(),
            data: Some(data),
        }
    }
}

/// Binary mode: `ce-` headers are the attributes (percent-decoded), the body is the data.
fn binary_event(headers: &HeaderMap, content_type: Option<String>, body: Vec<u8>) -> Result<CloudEvent, Error> {
    let mut attributes = Vec::new();
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else { continue };
        let decoded = percent_encoding::percent_decode(value.as_bytes()).decode_utf8().map_err(|_| {
            Error::invalid(weft_core::codes::EVENT_INVALID_CLOUDEVENT, format!("header ce-{attribute} is not valid percent-encoded UTF-8"))
                .with_path(format!("/{attribute}"))
        })?;
        let decoded = decoded.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(&decoded).to_string();
        attributes.push((attribute, decoded));
    }
    CloudEvent::from_attributes(attributes, content_type, Some(body))
}

fn respond(outcome: &ProduceOutcome, is_batch: bool) -> Response {
    let n_accepted = outcome.n_accepted();
    let mut body = Vec::with_capacity(64 + outcome.results.len() * 32);
    body.extend_from_slice(
        format!("{{\"accepted\":{n_accepted},\"rejected\":{},\"results\":[", outcome.results.len() - n_accepted).as_bytes(),
    );
    for (event_idx, result) in outcome.results.iter().enumerate() {
        if event_idx > 0 {
            body.push(b',');
        }
        match result {
            Ok(position) => {
                body.extend_from_slice(format!("{{\"partition\":{},\"offset\":{}}}", position.partition, position.offset).as_bytes())
            }
            Err(error) => {
                body.extend_from_slice(b"{\"error\":");
                serde_json::to_writer(&mut body, &error_json(error)).expect("writing to a Vec cannot fail");
                body.push(b'}');
            }
        }
    }
    body.push(b']');
    let failure =
        outcome.storage_error.as_ref().or_else(|| if is_batch { None } else { outcome.results.iter().find_map(|r| r.as_ref().err()) });
    let status = match failure {
        Some(error) => {
            body.extend_from_slice(b",\"error\":");
            serde_json::to_writer(&mut body, &error_json(error)).expect("writing to a Vec cannot fail");
            status_of(error)
        }
        None => StatusCode::OK,
    };
    body.push(b'}');
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
