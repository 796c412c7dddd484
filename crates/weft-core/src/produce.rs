//! The write side of the one door to storage: the produce path every edge goes through.
//!
//! `Broker::produce` (HTTP's events): check each CloudEvent, validate its data against the
//! stream's contract if one governs it (refusals become dead letters), pick its partition
//! (the `partitionkey` extension, else the stream's key pointer into the data, else round
//! robin), encode one RecordBatch per partition (cut at `BATCH_BYTES_TARGET`) and write them;
//! all of that runs on one blocking thread, so a large request or a slow disk never stalls the
//! async workers. Then the fsyncs of the touched partitions are awaited in parallel and the
//! answer lists one result per event in request order, only after every event is durable.
//!
//! `Broker::append_batch_as` (the Kafka listener's batches): a `VerifiedBatch` the edge
//! checked once is written and made durable on a blocking thread, byte for byte.
//!
//! Batches Weft encodes here are marked `json_checked` (every JSON value was checked to be
//! valid UTF-8 JSON), so readers render those values without parsing them again.

use std::sync::Arc;
use std::time::Instant;

use weft_log::batch::BatchBuilder;
use weft_log::{FsyncPolicy, PartitionLog, VerifiedBatch};

use crate::broker::Broker;
use crate::cloudevent::{CloudEvent, is_json_content_type};
use crate::dead_letter::{DeadLetterBatch, DeadLetterRequest};
use crate::error::{DeadLetterPosition, Detail, Error, Kind, codes};
use crate::partitioner::partition_for_key;
use crate::stream::{Governance, Stream};
use crate::stream_activity::RequestRecord;

/// Largest event (data plus attributes) accepted by default.
pub const EVENT_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
/// How far ahead of the broker's clock an event's `time` (or a Kafka record's timestamp) may be
/// by default (`weft serve --max-future-time`): an hour covers clock skew between honest hosts.
pub const EVENT_FUTURE_TIME_MS_MAX_DEFAULT: i64 = 60 * 60 * 1000;
/// Batches are cut at about this size so Kafka clients with default fetch sizes can read them.
pub const BATCH_BYTES_TARGET: usize = 1024 * 1024;
/// Initial capacity of a batch being encoded (it grows up to `BATCH_BYTES_TARGET`).
const BATCH_CAPACITY_BYTES_INITIAL: usize = 64 * 1024;
/// Producer recorded for batches appended through `append_batch` (the Kafka listener), until
/// it names its clients.
pub const KAFKA_PRODUCER: &str = "kafka";
/// Producer recorded for dead letters written to a `.dlq` stream.
pub const DEAD_LETTER_PRODUCER: &str = "weft:dead-letters";

/// One event handed to `Broker::produce`: parsed, or refused by the edge's parser with the
/// raw bytes it could not read (kept as a dead letter on governed streams).
#[derive(Debug)]
pub enum Incoming {
    Event(CloudEvent),
    Unparsed { error: Error, raw: Vec<u8> },
}

/// Who is producing, for dead letters and (later) lineage and audit.
#[derive(Debug, Clone)]
pub struct ProduceContext {
    pub producer: String,
}

/// Where an accepted event was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub partition: u32,
    pub offset: u64,
}

/// The outcome of one produce request: one entry per event, in request order.
#[derive(Debug)]
pub struct ProduceOutcome {
    pub results: Vec<Result<Position, Error>>,
    /// Set when the storage refused a write (disk full, failed fsync): the request failed
    /// as a whole for the events in the affected partitions.
    pub storage_error: Option<Error>,
}

impl ProduceOutcome {
    pub fn n_accepted(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }
}

/// Where an event goes, and whether its data is JSON text as stored (so the batch holding it
/// may be marked `json_checked`): false for Confluent-framed values, whose first bytes are the
/// framing.
pub(crate) struct Placed {
    pub partition: u32,
    pub key: Option<Vec<u8>>,
    pub data_is_json_text: bool,
}

/// One partition's batch being encoded: the request indexes of its events, and whether every
/// JSON value in it is JSON text as stored.
struct PendingBatch {
    builder: BatchBuilder,
    event_idxs: Vec<usize>,
    json_checked: bool,
}

/// A partition's batch written into the page cache, waiting for its fsync.
struct Unsynced {
    log: Arc<PartitionLog>,
    next_offset: u64,
    event_idxs: Vec<usize>,
}

/// What the blocking stage of a produce request did.
struct Staged {
    results: Vec<Result<Position, Error>>,
    event_sizes: Vec<u64>,
    unsynced: Vec<Unsynced>,
    storage_error: Option<Error>,
    dead_letters: DeadLetterBatch,
    /// The contract the events were checked against (and their dead letters name).
    governance: Option<Arc<Governance>>,
    now_ms: i64,
}

impl Broker {
    /// Checks, validates, partitions, encodes and appends events; returns after they are
    /// durable under the stream's fsync policy. Every input gets exactly one result, in order.
    /// On a stream governed by a contract, every rejected event is kept in the stream's
    /// dead-letter stream with its reasons, and its result says where.
    pub async fn produce(self: &Arc<Self>, stream: &Arc<Stream>, events: Vec<Incoming>, context: &ProduceContext) -> ProduceOutcome {
        let started = Instant::now();
        let (broker, task_stream, task_context) = (Arc::clone(self), Arc::clone(stream), context.clone());
        let staged = tokio::task::spawn_blocking(move || broker.stage(&task_stream, events, &task_context))
            .await
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
        let Staged { mut results, event_sizes, unsynced, mut storage_error, dead_letters, governance, now_ms } = staged;
        // The fsyncs of different partitions run in parallel (one blocking task each), so a
        // request's latency is its slowest partition's fsync, not their sum; group commit
        // shares each fsync with concurrent requests.
        let mut syncs = tokio::task::JoinSet::new();
        for Unsynced { log, next_offset, event_idxs } in unsynced {
            if stream.config().fsync != FsyncPolicy::Always {
                continue;
            }
            let timed_stream = Arc::clone(stream);
            syncs.spawn_blocking(move || (timed_wait_durable(&timed_stream, &log, next_offset), event_idxs));
        }
        while let Some(joined) = syncs.join_next().await {
            let (outcome, event_idxs) = joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
            if let Err(error) = outcome {
                let error = Error::from(error);
                for event_idx in event_idxs {
                    results[event_idx] = Err(error.clone());
                }
                storage_error.get_or_insert(error);
            }
        }
        stream.notify_appended();
        if let (Some(governance), false) = (governance, dead_letters.is_empty()) {
            match self.append_dead_letters(&governance.dead_letter_stream, dead_letters).await {
                Ok(placed) => {
                    for (event_idx, offset) in placed {
                        if let Err(error) = &mut results[event_idx] {
                            error.dead_letter =
                                Some(Box::new(DeadLetterPosition { stream: governance.dead_letter_stream.clone(), partition: 0, offset }));
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(stream = stream.name(), %error, "dead letters could not be stored");
                    storage_error.get_or_insert(error);
                }
            }
        }
        record_produce(stream, &results, &event_sizes, &context.producer, now_ms, started);
        ProduceOutcome { results, storage_error }
    }

    /// The blocking part of `produce`: check and place every event, encode the batches and
    /// write them into the page cache (which may roll a segment and fsync it).
    fn stage(&self, stream: &Stream, events: Vec<Incoming>, context: &ProduceContext) -> Staged {
        crate::failpoint::pause("produce.stage");
        let now_ms = self.now_ms();
        let governance = stream.governance();
        let mut event_sizes = vec![0u64; events.len()];
        let mut results: Vec<Result<Position, Error>> = Vec::with_capacity(events.len());
        // Per partition: the batches to append and, per batch, the request indexes of its events.
        let mut builders: Vec<Vec<PendingBatch>> = (0..stream.n_partitions()).map(|_| Vec::new()).collect();
        let mut dead_letters = DeadLetterBatch::new(now_ms);
        let time_limit = self.event_time_limit();
        for (event_idx, incoming) in events.into_iter().enumerate() {
            let event = match incoming {
                Incoming::Event(event) => event,
                Incoming::Unparsed { error, raw } => {
                    if let Some(governance) = &governance {
                        let request = DeadLetterRequest { governance, producer: &context.producer, now_ms };
                        dead_letters.push_event(event_idx, None, &raw, &error, &request);
                    }
                    results.push(Err(error));
                    continue;
                }
            };
            let placed = match self.place_event(stream, governance.as_deref(), &event, time_limit) {
                Ok(placed) => placed,
                Err(error) => {
                    if let Some(governance) = &governance {
                        let request = DeadLetterRequest { governance, producer: &context.producer, now_ms };
                        dead_letters.push_event(event_idx, Some(&event), event.data.as_deref().unwrap_or_default(), &error, &request);
                    }
                    results.push(Err(error));
                    continue;
                }
            };
            results.push(Ok(Position { partition: placed.partition, offset: 0 }));
            event_sizes[event_idx] = event.size_bytes() as u64;
            let partition_batches = &mut builders[placed.partition as usize];
            let needs_new = partition_batches.last().is_none_or(|pending| pending.builder.len_bytes() >= BATCH_BYTES_TARGET);
            if needs_new {
                partition_batches.push(PendingBatch {
                    builder: BatchBuilder::with_capacity(now_ms, BATCH_CAPACITY_BYTES_INITIAL),
                    event_idxs: Vec::new(),
                    json_checked: true,
                });
            }
            let pending = partition_batches.last_mut().expect("just ensured");
            let headers = event.record_headers();
            pending.builder.push(now_ms, placed.key.as_deref(), event.data.as_deref(), &headers);
            pending.event_idxs.push(event_idx);
            pending.json_checked &= placed.data_is_json_text;
        }
        let mut storage_error = None;
        let mut unsynced = Vec::new();
        for (partition, partition_batches) in builders.into_iter().enumerate() {
            let log = stream.partition(partition as u32).expect("partition index in range");
            for PendingBatch { builder, event_idxs, json_checked } in partition_batches {
                let builder = if json_checked { builder.json_checked() } else { builder };
                match log.append_unsynced(builder.finish_verified()) {
                    Ok(appended) => {
                        for (record_idx, &event_idx) in event_idxs.iter().enumerate() {
                            results[event_idx] =
                                Ok(Position { partition: partition as u32, offset: appended.base_offset + record_idx as u64 });
                        }
                        unsynced.push(Unsynced { log: Arc::clone(log), next_offset: appended.last_offset + 1, event_idxs });
                    }
                    Err(error) => {
                        let error = Error::from(error);
                        for event_idx in event_idxs {
                            results[event_idx] = Err(error.clone());
                        }
                        storage_error.get_or_insert(error);
                    }
                }
            }
        }
        Staged { results, event_sizes, unsynced, storage_error, dead_letters, governance, now_ms }
    }

    /// Appends one request's dead letters; returns (request index, offset) of each.
    async fn append_dead_letters(&self, dead_letter_stream: &str, dead_letters: DeadLetterBatch) -> Result<Vec<(usize, u64)>, Error> {
        let stream = self.stream(dead_letter_stream)?;
        let (batch, event_idxs) = dead_letters.finish();
        let context = ProduceContext { producer: DEAD_LETTER_PRODUCER.to_string() };
        let appended = self.append_batch_as(&stream, 0, batch, &context).await?;
        Ok(event_idxs
            .into_iter()
            .enumerate()
            .map(|(record_idx, event_idx)| (event_idx, appended.base_offset + record_idx as u64))
            .collect())
    }

    /// Appends a batch that a producer encoded itself (the Kafka listener's path), checked
    /// once by the edge: the log assigns offsets and stores it byte for byte.
    pub async fn append_batch(&self, stream: &Arc<Stream>, partition: u32, batch: VerifiedBatch) -> Result<weft_log::Appended, Error> {
        let context = ProduceContext { producer: KAFKA_PRODUCER.to_string() };
        self.append_batch_as(stream, partition, batch, &context).await
    }

    /// `append_batch` with the producer named, for the stream's activity and observed lineage.
    /// The write and the fsync wait run on a blocking thread.
    pub async fn append_batch_as(
        &self,
        stream: &Arc<Stream>,
        partition: u32,
        batch: VerifiedBatch,
        context: &ProduceContext,
    ) -> Result<weft_log::Appended, Error> {
        let started = Instant::now();
        let now_ms = self.clock().now_ms();
        let n_bytes = batch.len_bytes() as u64;
        let log = Arc::clone(stream.partition(partition)?);
        let timed_stream = Arc::clone(stream);
        let appended = tokio::task::spawn_blocking(move || {
            let appended = log.append_unsynced(batch)?;
            timed_wait_durable(&timed_stream, &log, appended.last_offset + 1)?;
            Ok(appended)
        })
        .await
        .map_err(|error| Error::internal(format!("append task failed: {error}")))?
        .map_err(|error| match error {
            weft_log::LogError::InvalidBatch(reason) => {
                Error::invalid(codes::EVENT_INVALID_BATCH, format!("record batch refused: {reason}"))
            }
            other => Error::from(other),
        });
        let (n_accepted, rejected) = match &appended {
            Ok(appended) => (appended.last_offset + 1 - appended.base_offset, Vec::new()),
            Err(error) => (0, vec![error.code]),
        };
        stream.activity().record(&RequestRecord {
            now_ms,
            producer: &context.producer,
            n_accepted,
            n_bytes: if n_accepted > 0 { n_bytes } else { 0 },
            rejected: &rejected,
            produce_latency: Some(started.elapsed()),
        });
        let appended = appended?;
        stream.notify_appended();
        Ok(appended)
    }

    /// Checks one event (CloudEvents rules, size, valid UTF-8 JSON data, and the contract if
    /// the stream has one) and picks its partition and record key.
    fn place_event(
        &self,
        stream: &Stream,
        governance: Option<&Governance>,
        event: &CloudEvent,
        time_limit: EventTimeLimit,
    ) -> Result<Placed, Error> {
        if let Some(time_ms) = event.checked_time_ms()? {
            time_limit.check(time_ms).map_err(|error| error.with_path("/time"))?;
        }
        if event.size_bytes() > self.event_bytes_max() {
            return Err(Error::new(
                Kind::TooLarge,
                codes::EVENT_TOO_LARGE,
                format!("event is {} bytes; the limit is {} bytes", event.size_bytes(), self.event_bytes_max()),
            ));
        }
        let is_json = is_json_content_type(event.datacontenttype.as_deref());
        let mut data_is_json_text = true;
        let pointer = stream.config().key.as_deref().filter(|pointer| !pointer.is_empty());
        let key_from_data = match (governance, event.data.as_deref()) {
            (Some(governance), data) => {
                if !is_json {
                    return Err(Error::invalid(
                        codes::EVENT_UNSUPPORTED_CONTENT_TYPE,
                        format!(
                            "stream {} is governed by a JSON data contract; datacontenttype {:?} cannot be validated",
                            stream.name(),
                            event.datacontenttype.as_deref().unwrap_or("")
                        ),
                    )
                    .with_path("/datacontenttype"));
                }
                let stored = data.unwrap_or(b"null");
                let json = self.unframe(stream, stored)?;
                check_utf8(json)?;
                data_is_json_text = json.len() == stored.len();
                let value = governance.compiled.validate_bytes(json).map_err(|violations| contract_violation(&violations))?;
                pointer.and_then(|pointer| value.pointer(pointer)).and_then(key_bytes)
            }
            // Without a contract the data is still JSON with unique keys (the same rule as the
            // validator's), checked in the one pass that reads the partition key.
            (None, Some(data)) if is_json => {
                check_utf8(data)?;
                weft_contract::scan_json(data, pointer).map_err(|error| refused_data(&error))?
            }
            (None, _) => None,
        };
        let key = event.partition_key().map(|key| key.as_bytes().to_vec()).or(key_from_data);
        let partition = match &key {
            Some(key) => partition_for_key(key, stream.n_partitions()),
            None => stream.next_round_robin(),
        };
        Ok(Placed { partition, key, data_is_json_text })
    }

    /// The placement check used by dead-letter replay (same rules as produce).
    pub(crate) fn place_for_replay(&self, stream: &Stream, governance: Option<&Governance>, event: &CloudEvent) -> Result<Placed, Error> {
        self.place_event(stream, governance, event, self.event_time_limit())
    }

    /// Strips Confluent's wire framing (magic byte 0, 4-byte schema id) after checking that
    /// the schema id is registered for this stream's value subject by its data contract, and
    /// returns the JSON that follows it (the data itself when it is not framed).
    pub(crate) fn unframe<'a>(&self, stream: &Stream, data: &'a [u8]) -> Result<&'a [u8], Error> {
        let [0, a, b, c, d, rest @ ..] = data else { return Ok(data) };
        let schema_id = u32::from_be_bytes([*a, *b, *c, *d]);
        let subject = format!("{}-value", stream.name());
        let sink = self.schema_registry();
        let known = sink.as_ref().map(|sink| sink.subjects_of_schema(schema_id)).unwrap_or_default();
        if known.is_empty() {
            return Err(Error::invalid(
                codes::SCHEMA_NOT_FOUND,
                format!("the event is framed with schema id {schema_id}, which the registry does not know"),
            )
            .with_path("/data"));
        }
        if !known.contains(&subject) {
            return Err(Error::invalid(
                codes::SCHEMA_SUBJECT_MISMATCH,
                format!("schema id {schema_id} is registered under {}, not {subject}", known.join(", ")),
            )
            .with_path("/data"));
        }
        // Only a governed stream unframes: the id must be one its contract registered, not one
        // someone (an admin, even) registered beside it through `/registry`.
        if !sink.as_ref().is_some_and(|sink| sink.is_contract_version(&subject, schema_id)) {
            return Err(Error::invalid(
                codes::SCHEMA_NOT_CONTRACT_VERSION,
                format!("schema id {schema_id} is registered under {subject} but is not a version of the stream's data contract"),
            )
            .with_path("/data"));
        }
        // A contract registers JSON Schema only, so what follows the framing is JSON to validate.
        Ok(rest)
    }
}

/// `wait_durable`, timed into the stream's fsync histogram when the stream fsyncs every append
/// (under other policies the wait returns at once and would only dilute the histogram).
fn timed_wait_durable(stream: &Stream, log: &PartitionLog, next_offset: u64) -> Result<(), weft_log::LogError> {
    if stream.config().fsync != FsyncPolicy::Always {
        return log.wait_durable(next_offset);
    }
    let started = Instant::now();
    let outcome = log.wait_durable(next_offset);
    stream.activity().record_fsync(started.elapsed());
    outcome
}

/// Records one produce request in the stream's activity: one entry per event in `results`.
fn record_produce(
    stream: &Stream,
    results: &[Result<Position, Error>],
    event_sizes: &[u64],
    producer: &str,
    now_ms: i64,
    started: Instant,
) {
    let mut n_accepted = 0;
    let mut n_bytes = 0;
    let mut rejected = Vec::new();
    for (result, size) in results.iter().zip(event_sizes) {
        match result {
            Ok(_) => {
                n_accepted += 1;
                n_bytes += size;
            }
            Err(error) => rejected.push(error.code),
        }
    }
    stream.activity().record(&RequestRecord {
        now_ms,
        producer,
        n_accepted,
        n_bytes,
        rejected: &rejected,
        produce_latency: Some(started.elapsed()),
    });
}

/// One rejected event's error built from its contract violations: the first names the code
/// and path, all of them are in the details.
pub(crate) fn contract_violation(violations: &[weft_contract::Violation]) -> Error {
    let first = violations.first();
    let code = first.map_or(codes::EVENT_MALFORMED_JSON, |v| v.code);
    let message = match violations.len() {
        0 => "event violates the contract".to_string(),
        1 => violations[0].message.clone(),
        2 => format!("{} (and 1 more violation)", violations[0].message),
        n => format!("{} (and {} more violations)", violations[0].message, n - 1),
    };
    let mut error = Error::invalid(code, message);
    if let Some(first) = first {
        error.path = Some(first.path.clone());
    }
    error.details = violations.iter().map(|v| Detail { code: v.code, path: v.path.clone(), message: v.message.clone() }).collect();
    error
}

/// The partition key taken from a JSON value: strings as they are, numbers and booleans
/// as their JSON text; null, objects and arrays give no key.
fn key_bytes(value: &weft_contract::Doc<'_>) -> Option<Vec<u8>> {
    match value {
        weft_contract::Doc::String(text) => Some(text.as_bytes().to_vec()),
        weft_contract::Doc::Number(number) => Some(number.to_string().into_bytes()),
        weft_contract::Doc::Bool(flag) => Some(flag.to_string().into_bytes()),
        _ => None,
    }
}

/// JSON text is UTF-8 (RFC 8259 section 8.1): data that is not would break every reader
/// that receives it inside a JSON response, so it is refused when produced.
pub fn check_utf8(data: &[u8]) -> Result<(), Error> {
    std::str::from_utf8(data).map(|_| ()).map_err(|error| {
        Error::invalid(codes::EVENT_MALFORMED_JSON, format!("event data is not valid json: invalid utf-8 at byte {}", error.valid_up_to()))
            .with_path("/data")
    })
}

/// The error for data without a contract that is not JSON with unique keys; the path is inside
/// the event (`/data`, or the repeated member's `/data/...`).
fn refused_data(error: &weft_contract::DocError) -> Error {
    match error {
        weft_contract::DocError::Malformed(error) => {
            Error::invalid(codes::EVENT_MALFORMED_JSON, format!("event data is not valid json: {error}")).with_path("/data")
        }
        weft_contract::DocError::RepeatedKey { pointer } => Error::invalid(
            codes::EVENT_DUPLICATE_KEY,
            format!("event data is not valid json for weft: the key at {pointer} appears more than once in its object"),
        )
        .with_path(format!("/data{pointer}")),
    }
}

/// The latest event time a request or batch may carry, read once for all its events: the
/// broker's clock plus `max_future_time_ms`, so a producer cannot date events past retention or
/// confuse time lookups (`offset_for_time`).
#[derive(Debug, Clone, Copy)]
pub struct EventTimeLimit {
    now_ms: i64,
    /// `None`: the bound is lifted (`--max-future-time forever`).
    max_future_ms: Option<i64>,
}

impl EventTimeLimit {
    /// Refuses an event or record time further ahead of the clock than the bound allows.
    pub fn check(self, time_ms: i64) -> Result<(), Error> {
        let Some(max_future_ms) = self.max_future_ms else { return Ok(()) };
        let ahead_ms = time_ms.saturating_sub(self.now_ms);
        if ahead_ms > max_future_ms {
            return Err(Error::invalid(
                codes::EVENT_TIME_IN_FUTURE,
                format!(
                    "the event time is {} s ahead of the server's clock; at most {} is allowed",
                    ahead_ms / 1000,
                    crate::duration::format_duration_ms(max_future_ms)
                ),
            ));
        }
        Ok(())
    }
}

impl Broker {
    /// The bound on event times for a request or batch starting now.
    pub fn event_time_limit(&self) -> EventTimeLimit {
        EventTimeLimit { now_ms: self.now_ms(), max_future_ms: self.max_future_time_ms() }
    }
}
