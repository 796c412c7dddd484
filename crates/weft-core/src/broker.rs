//! The broker: opens the data directory, owns the streams and the metadata store, and
//! runs the produce and fetch paths that every edge (HTTP, Kafka) goes through.
//!
//! Produce path: check each CloudEvent, pick its partition (the `partitionkey` extension,
//! else the stream's key pointer into the data, else round robin), encode one RecordBatch
//! per partition (split at `BATCH_BYTES_TARGET`), append the partitions in parallel on
//! blocking threads, and answer with one result per event in request order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use weft_log::batch::{BatchBuilder, BatchView, Compression, Record};
use weft_log::{Clock, FsyncPolicy};

use crate::cloudevent::{CloudEvent, format_rfc3339_ms, is_json_content_type};
use crate::error::{DeadLetterPosition, Detail, Error, Kind, codes};
use crate::group::GroupCoordinator;
use crate::mesh::{MeshState, SchemaSink};
use crate::meta::MetaStore;
use crate::partitioner::partition_for_key;
use crate::stream::{Governance, Stream, StreamConfig};
use crate::stream_activity::RequestRecord;

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

/// Header names of dead-letter records (the value is the original data, unchanged).
pub mod dead_letter_headers {
    pub const REASON: &str = "weft_dlq_reason";
    pub const MESSAGE: &str = "weft_dlq_message";
    pub const VIOLATIONS: &str = "weft_dlq_violations";
    pub const STREAM: &str = "weft_dlq_stream";
    pub const CONTRACT_ID: &str = "weft_dlq_contract_id";
    pub const CONTRACT_VERSION: &str = "weft_dlq_contract_version";
    pub const PRODUCER: &str = "weft_dlq_producer";
    pub const REJECTED_AT: &str = "weft_dlq_rejected_at";
}

/// Dead letters of one produce request, encoded as one batch for the dead-letter stream.
struct DeadLetterBatch {
    builder: BatchBuilder,
    event_idxs: Vec<usize>,
}

impl DeadLetterBatch {
    fn new(now_ms: i64) -> Self {
        Self { builder: BatchBuilder::new(now_ms), event_idxs: Vec::new() }
    }

    fn is_empty(&self) -> bool {
        self.event_idxs.is_empty()
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        event_idx: usize,
        event: Option<&CloudEvent>,
        data: &[u8],
        error: &Error,
        governance: &Governance,
        context: &ProduceContext,
        now_ms: i64,
    ) {
        let headers: Vec<(std::borrow::Cow<'static, str>, &[u8])> = event.map(CloudEvent::record_headers).unwrap_or_default();
        let key = event.and_then(CloudEvent::partition_key).map(str::as_bytes);
        push_dead_letter(&mut self.builder, key, Some(data), &headers, error, governance, &context.producer, now_ms);
        self.event_idxs.push(event_idx);
    }
}

/// Appends one dead letter to `builder`: key and value unchanged, the original headers, then
/// the `weft_dlq_*` headers with the reason, every violation, the contract and the producer.
/// The one writer of the dead-letter layout, for HTTP and Kafka alike.
#[allow(clippy::too_many_arguments)]
pub(crate) fn push_dead_letter(
    builder: &mut BatchBuilder,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    original_headers: &[(std::borrow::Cow<'_, str>, &[u8])],
    error: &Error,
    governance: &Governance,
    producer: &str,
    now_ms: i64,
) {
    let details: Vec<serde_json::Value> = if error.details.is_empty() {
        vec![serde_json::json!({ "code": error.code, "path": error.path.clone().unwrap_or_default(), "message": error.message })]
    } else {
        error.details.iter().map(|d| serde_json::json!({ "code": d.code, "path": d.path, "message": d.message })).collect()
    };
    let violations = serde_json::to_string(&details).unwrap_or_default();
    let rejected_at = format_rfc3339_ms(now_ms);
    let stream_name = governance.dead_letter_stream.trim_end_matches(crate::stream::DEAD_LETTER_SUFFIX);
    let mut headers: Vec<(&str, &[u8])> = original_headers.iter().map(|(name, value)| (name.as_ref(), *value)).collect();
    headers.push((dead_letter_headers::REASON, error.code.as_bytes()));
    headers.push((dead_letter_headers::MESSAGE, error.message.as_bytes()));
    headers.push((dead_letter_headers::VIOLATIONS, violations.as_bytes()));
    headers.push((dead_letter_headers::STREAM, stream_name.as_bytes()));
    headers.push((dead_letter_headers::CONTRACT_ID, governance.contract_id.as_bytes()));
    headers.push((dead_letter_headers::CONTRACT_VERSION, governance.contract_version.as_bytes()));
    headers.push((dead_letter_headers::PRODUCER, producer.as_bytes()));
    headers.push((dead_letter_headers::REJECTED_AT, rejected_at.as_bytes()));
    builder.push(now_ms, key, value, &headers);
}

/// What Confluent's wire framing said about a value on a governed stream.
pub(crate) enum Unframed<'a> {
    /// JSON to validate against the contract (the framing, if any, stripped).
    Json(&'a [u8]),
    /// A registered id of a non-JSON schema (Avro, Protobuf) under `<stream>-value`: the JSON
    /// contract cannot check the bytes, so the registry id is the check.
    ForeignSchema { schema_id: u32, schema_type: String },
}

/// Largest event (data plus attributes) accepted by default.
pub const EVENT_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
/// Batches are cut at about this size so Kafka clients with default fetch sizes can read them.
pub const BATCH_BYTES_TARGET: usize = 1024 * 1024;
/// Most streams one broker holds.
pub const STREAMS_MAX: usize = 10_000;
/// Most events returned by one fetch.
pub const FETCH_EVENTS_MAX: usize = 10_000;
/// Byte budget of one fetch.
pub const FETCH_BYTES_MAX: usize = 16 * 1024 * 1024;
/// How often retention runs.
pub const RETENTION_CHECK_INTERVAL_MS: u64 = 60_000;

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

/// Whole batches read from one partition, with the window the caller asked for.
pub struct FetchedBatches {
    pub partition: u32,
    pub bytes: Vec<u8>,
    pub from_offset: u64,
    pub visible_next_offset: u64,
    /// Record data of the compressed batches in `bytes`, in order, decompressed on first use
    /// by `records` (Kafka producers may send compressed batches; they are stored as sent).
    decompressed: std::sync::OnceLock<Vec<Vec<u8>>>,
}

impl FetchedBatches {
    /// Decompresses every compressed batch once; `records` borrows from the result.
    fn decompressed_batches(&self) -> Result<&[Vec<u8>], Error> {
        if let Some(decompressed) = self.decompressed.get() {
            return Ok(decompressed);
        }
        let mut decompressed = Vec::new();
        let mut cursor = 0;
        while cursor < self.bytes.len() {
            let batch = BatchView::parse(&self.bytes[cursor..])
                .map_err(|error| Error::new(Kind::Internal, codes::STORAGE_CORRUPT, error.to_string()))?;
            cursor += batch.len();
            if batch.compression() != Compression::None {
                let data = batch
                    .decompress_records()
                    .map_err(|error| Error::internal(format!("cannot decode stored batch at offset {}: {error}", batch.base_offset())))?;
                decompressed.push(data.into_owned());
            }
        }
        Ok(self.decompressed.get_or_init(|| decompressed))
    }

    /// The records at or after the requested offset, at most `max_events` of them.
    pub fn records(&self, max_events: usize) -> Result<Vec<Record<'_>>, Error> {
        let mut records = Vec::new();
        let mut cursor = 0;
        let mut compressed_idx = 0;
        while cursor < self.bytes.len() && records.len() < max_events {
            let batch = BatchView::parse(&self.bytes[cursor..])
                .map_err(|error| Error::new(Kind::Internal, codes::STORAGE_CORRUPT, error.to_string()))?;
            cursor += batch.len();
            let data: &[u8] = if batch.compression() == Compression::None {
                batch.records_bytes()
            } else {
                compressed_idx += 1;
                &self.decompressed_batches()?[compressed_idx - 1]
            };
            if batch.is_control() {
                continue;
            }
            for record in batch.records_in(data) {
                let record = record.map_err(|error| Error::new(Kind::Internal, codes::STORAGE_CORRUPT, error.to_string()))?;
                if record.offset < self.from_offset {
                    continue;
                }
                records.push(record);
                if records.len() == max_events {
                    break;
                }
            }
        }
        Ok(records)
    }
}

pub struct Broker {
    data_dir: PathBuf,
    meta: Arc<MetaStore>,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    clock: Arc<dyn Clock>,
    groups: GroupCoordinator,
    event_bytes_max: usize,
    pub(crate) mesh: RwLock<MeshState>,
    pub(crate) apply_lock: std::sync::Mutex<()>,
    schema_sink: RwLock<Option<Arc<dyn SchemaSink>>>,
    pub(crate) replay_lock: tokio::sync::Mutex<()>,
    closing: tokio::sync::watch::Sender<bool>,
    pub(crate) search_index: RwLock<Arc<crate::catalog::SearchIndex>>,
    pub(crate) kafka_bootstrap: RwLock<Option<String>>,
    guard: crate::guard::Guard,
}

impl Broker {
    /// Opens the data directory, recovering every stream's partitions.
    pub fn open(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<Arc<Self>, Error> {
        std::fs::create_dir_all(data_dir.join("streams"))
            .map_err(|error| Error::internal(format!("cannot create data directory {}: {error}", data_dir.display())))?;
        let meta = Arc::new(MetaStore::open(&data_dir.join("meta.redb"))?);
        let mut streams = BTreeMap::new();
        for (name, config_json) in meta.streams()? {
            let config: StreamConfig = serde_json::from_slice(&config_json)
                .map_err(|error| Error::internal(format!("stored config of stream {name} is unreadable: {error}")))?;
            let stream = Stream::open(&data_dir.join("streams"), config, Arc::clone(&clock))?;
            streams.insert(name, Arc::new(stream));
        }
        let groups = GroupCoordinator::new(Arc::clone(&meta), Arc::clone(&clock));
        let (guard, admin_token) = crate::guard::Guard::open(data_dir, Arc::clone(&clock))?;
        if let Some(path) = admin_token {
            tracing::info!(token_file = %path.display(), "created the admin principal; its token is in the token file (mode 0600)");
        }
        let broker = Arc::new(Self {
            data_dir: data_dir.to_path_buf(),
            meta,
            streams: RwLock::new(streams),
            clock,
            groups,
            event_bytes_max: EVENT_BYTES_MAX_DEFAULT,
            mesh: RwLock::new(MeshState::default()),
            apply_lock: std::sync::Mutex::new(()),
            schema_sink: RwLock::new(None),
            replay_lock: tokio::sync::Mutex::new(()),
            closing: tokio::sync::watch::Sender::new(false),
            search_index: RwLock::new(Arc::default()),
            kafka_bootstrap: RwLock::new(None),
            guard,
        });
        broker.load_mesh()?;
        broker.guard.rebuild(&broker.mesh())?;
        Ok(broker)
    }

    /// Authentication, authorization, masking and audit.
    pub fn guard(&self) -> &crate::guard::Guard {
        &self.guard
    }

    /// Tells long-lived readers (live tails, long polls) to finish: the server is stopping.
    pub fn begin_shutdown(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once `begin_shutdown` has been called.
    pub async fn closed(&self) {
        let mut receiver = self.closing.subscribe();
        let _ = receiver.wait_for(|closing| *closing).await;
    }

    /// A snapshot of the applied mesh (domains, products, contracts, policies).
    pub fn mesh(&self) -> MeshState {
        self.mesh.read().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    /// Connects the schema registry: applied contracts register their schemas there, and
    /// Confluent-framed events are checked against it.
    pub fn set_schema_sink(&self, sink: Arc<dyn SchemaSink>) {
        *self.schema_sink.write().unwrap_or_else(|poison| poison.into_inner()) = Some(sink);
    }

    pub(crate) fn schema_sink(&self) -> Option<Arc<dyn SchemaSink>> {
        self.schema_sink.read().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn groups(&self) -> &GroupCoordinator {
        &self.groups
    }

    pub fn meta(&self) -> &Arc<MetaStore> {
        &self.meta
    }

    pub fn event_bytes_max(&self) -> usize {
        self.event_bytes_max
    }

    /// Creates a stream; refuses a name that exists.
    pub fn create_stream(&self, mut config: StreamConfig) -> Result<Arc<Stream>, Error> {
        config.created_at_ms = self.clock.now_ms();
        config.check()?;
        let mut streams = self.streams.write().unwrap_or_else(|poison| poison.into_inner());
        if streams.contains_key(&config.name) {
            return Err(Error::new(Kind::Conflict, codes::STREAM_ALREADY_EXISTS, format!("stream {} already exists", config.name))
                .with_path("/name"));
        }
        if streams.len() >= STREAMS_MAX {
            return Err(Error::new(Kind::Conflict, codes::STREAM_LIMIT_REACHED, format!("a broker holds at most {STREAMS_MAX} streams")));
        }
        let stream = Arc::new(Stream::open(&self.data_dir.join("streams"), config.clone(), Arc::clone(&self.clock))?);
        let config_json = serde_json::to_vec(&config).map_err(|error| Error::internal(error.to_string()))?;
        self.meta.put_stream(&config.name, &config_json)?;
        streams.insert(config.name.clone(), Arc::clone(&stream));
        tracing::info!(stream = %config.name, partitions = config.partitions, fsync = %config.fsync, "stream created");
        Ok(stream)
    }

    pub fn stream(&self, name: &str) -> Result<Arc<Stream>, Error> {
        let streams = self.streams.read().unwrap_or_else(|poison| poison.into_inner());
        streams.get(name).cloned().ok_or_else(|| {
            Error::new(
                Kind::NotFound,
                codes::STREAM_NOT_FOUND,
                format!("stream {:?} does not exist", crate::stream::truncate_for_message(name)),
            )
        })
    }

    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.streams.read().unwrap_or_else(|poison| poison.into_inner()).values().cloned().collect()
    }

    /// Checks, validates, partitions, encodes and appends events; returns after they are
    /// durable under the stream's fsync policy. Every input gets exactly one result, in order.
    /// On a stream governed by a contract, every rejected event is kept in the stream's
    /// dead-letter stream with its reasons, and its result says where.
    pub async fn produce(&self, stream: &Arc<Stream>, events: Vec<Incoming>, context: &ProduceContext) -> ProduceOutcome {
        let started = std::time::Instant::now();
        let mut event_sizes = vec![0u64; events.len()];
        let n_partitions = stream.n_partitions();
        let now_ms = self.clock.now_ms();
        let governance = stream.governance();
        let mut results: Vec<Result<Position, Error>> = Vec::with_capacity(events.len());
        // Per partition: the batches to append and, per batch, the request indexes of its events.
        let mut builders: Vec<Vec<(BatchBuilder, Vec<usize>)>> = (0..n_partitions).map(|_| Vec::new()).collect();
        let mut dead_letters = DeadLetterBatch::new(now_ms);
        for (event_idx, incoming) in events.into_iter().enumerate() {
            let event = match incoming {
                Incoming::Event(event) => event,
                Incoming::Unparsed { error, raw } => {
                    if let Some(governance) = &governance {
                        dead_letters.push(event_idx, None, &raw, &error, governance, context, now_ms);
                    }
                    results.push(Err(error));
                    continue;
                }
            };
            let (partition, key) = match self.place_event(stream, governance.as_deref(), &event) {
                Ok(placed) => placed,
                Err(error) => {
                    if let Some(governance) = &governance {
                        dead_letters.push(
                            event_idx,
                            Some(&event),
                            event.data.as_deref().unwrap_or_default(),
                            &error,
                            governance,
                            context,
                            now_ms,
                        );
                    }
                    results.push(Err(error));
                    continue;
                }
            };
            results.push(Ok(Position { partition, offset: 0 }));
            event_sizes[event_idx] = event.size_bytes() as u64;
            let partition_batches = &mut builders[partition as usize];
            let needs_new = partition_batches.last().is_none_or(|(builder, _)| builder.len_bytes() >= BATCH_BYTES_TARGET);
            if needs_new {
                partition_batches.push((BatchBuilder::with_capacity(now_ms, 64 * 1024), Vec::new()));
            }
            let (builder, event_idxs) = partition_batches.last_mut().expect("just ensured");
            let headers = event.record_headers();
            builder.push(now_ms, key.as_deref(), event.data.as_deref(), &headers);
            event_idxs.push(event_idx);
        }
        // Write every partition's batches now (a write into the page cache), then wait for
        // their fsyncs on one blocking thread: one hand-off per request instead of one per
        // partition, while group commit still shares each fsync with concurrent requests.
        let mut storage_error = None;
        let mut to_sync = Vec::new();
        for (partition, partition_batches) in builders.into_iter().enumerate() {
            let log = stream.partition(partition as u32).expect("partition index in range");
            for (builder, event_idxs) in partition_batches {
                match log.append_unsynced(builder.finish()) {
                    Ok(appended) => {
                        for (record_idx, &event_idx) in event_idxs.iter().enumerate() {
                            results[event_idx] =
                                Ok(Position { partition: partition as u32, offset: appended.base_offset + record_idx as u64 });
                        }
                        to_sync.push((Arc::clone(log), appended.last_offset + 1, event_idxs));
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
        // The fsyncs of different partitions run in parallel (one blocking task each), so a
        // request's latency is its slowest partition's fsync, not their sum.
        let mut syncs = tokio::task::JoinSet::new();
        for (log, next_offset, event_idxs) in to_sync {
            if log.config().fsync != weft_log::FsyncPolicy::Always {
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
        if let (Some(governance), false) = (&governance, dead_letters.is_empty()) {
            match self.append_dead_letters(&governance.dead_letter_stream, dead_letters).await {
                Ok(placed) => {
                    for (event_idx, partition, offset) in placed {
                        if let Err(error) = &mut results[event_idx] {
                            error.dead_letter =
                                Some(Box::new(DeadLetterPosition { stream: governance.dead_letter_stream.clone(), partition, offset }));
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

    async fn append_dead_letters(&self, dead_letter_stream: &str, dead_letters: DeadLetterBatch) -> Result<Vec<(usize, u32, u64)>, Error> {
        let stream = self.stream(dead_letter_stream)?;
        let event_idxs = dead_letters.event_idxs;
        let context = ProduceContext { producer: DEAD_LETTER_PRODUCER.to_string() };
        let appended = self.append_batch_as(&stream, 0, dead_letters.builder.finish(), &context).await?;
        Ok(event_idxs
            .into_iter()
            .enumerate()
            .map(|(record_idx, event_idx)| (event_idx, 0, appended.base_offset + record_idx as u64))
            .collect())
    }

    /// Appends a batch that a producer encoded itself (the Kafka listener's path): the log
    /// checks its framing and checksum, assigns offsets and stores it byte for byte.
    pub async fn append_batch(&self, stream: &Arc<Stream>, partition: u32, batch: Vec<u8>) -> Result<weft_log::Appended, Error> {
        let context = ProduceContext { producer: KAFKA_PRODUCER.to_string() };
        self.append_batch_as(stream, partition, batch, &context).await
    }

    /// `append_batch` with the producer named, for the stream's activity and observed lineage.
    pub async fn append_batch_as(
        &self,
        stream: &Arc<Stream>,
        partition: u32,
        batch: Vec<u8>,
        context: &ProduceContext,
    ) -> Result<weft_log::Appended, Error> {
        let started = std::time::Instant::now();
        let now_ms = self.clock.now_ms();
        let n_bytes = batch.len() as u64;
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

    /// Checks one event (CloudEvents rules, size, and the contract if the stream has one) and
    /// picks its partition and record key.
    fn place_event(&self, stream: &Stream, governance: Option<&Governance>, event: &CloudEvent) -> Result<(u32, Option<Vec<u8>>), Error> {
        event.check()?;
        if event.size_bytes() > self.event_bytes_max {
            return Err(Error::new(
                Kind::TooLarge,
                codes::EVENT_TOO_LARGE,
                format!("event is {} bytes; the limit is {} bytes", event.size_bytes(), self.event_bytes_max),
            ));
        }
        let is_json = is_json_content_type(event.datacontenttype.as_deref());
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
                match self.unframe(stream, data.unwrap_or(b"null"))? {
                    Unframed::Json(data) => {
                        let value = governance.compiled.validate_bytes(data).map_err(|violations| contract_violation(&violations))?;
                        pointer.and_then(|pointer| value.pointer(pointer)).and_then(key_bytes)
                    }
                    Unframed::ForeignSchema { .. } => None,
                }
            }
            (None, Some(data)) if is_json => match pointer {
                Some(pointer) => crate::json_key::key_at_pointer(data, pointer).map_err(|error| malformed_data(&error))?,
                None => {
                    serde_json::from_slice::<serde::de::IgnoredAny>(data).map_err(|error| malformed_data(&error))?;
                    None
                }
            },
            (None, _) => None,
        };
        let key = event.partition_key().map(|key| key.as_bytes().to_vec()).or(key_from_data);
        let partition = match &key {
            Some(key) => partition_for_key(key, stream.n_partitions()),
            None => stream.next_round_robin(),
        };
        Ok((partition, key))
    }

    /// The placement check used by dead-letter replay (same rules as produce).
    pub(crate) fn place_for_replay(
        &self,
        stream: &Stream,
        governance: Option<&Governance>,
        event: &CloudEvent,
    ) -> Result<(u32, Option<Vec<u8>>), Error> {
        self.place_event(stream, governance, event)
    }

    /// Strips Confluent's wire framing (magic byte 0, 4-byte schema id) after checking that
    /// the schema id is registered for this stream's value subject.
    pub(crate) fn unframe<'a>(&self, stream: &Stream, data: &'a [u8]) -> Result<Unframed<'a>, Error> {
        let [0, a, b, c, d, rest @ ..] = data else { return Ok(Unframed::Json(data)) };
        let schema_id = u32::from_be_bytes([*a, *b, *c, *d]);
        let subject = format!("{}-value", stream.name());
        let sink = self.schema_sink();
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
        match sink.and_then(|sink| sink.schema_type(schema_id)) {
            Some(schema_type) if schema_type != "JSON" => Ok(Unframed::ForeignSchema { schema_id, schema_type }),
            _ => Ok(Unframed::Json(rest)),
        }
    }

    /// Reads whole batches from one partition starting at `offset`.
    pub async fn fetch(&self, stream: &Arc<Stream>, partition: u32, offset: u64, max_bytes: usize) -> Result<FetchedBatches, Error> {
        let log = Arc::clone(stream.partition(partition)?);
        let max_bytes = max_bytes.clamp(1, FETCH_BYTES_MAX);
        let chunk = tokio::task::spawn_blocking(move || log.read(offset, max_bytes))
            .await
            .map_err(|error| Error::internal(format!("read task failed: {error}")))??;
        Ok(FetchedBatches {
            partition,
            bytes: chunk.bytes,
            from_offset: offset,
            visible_next_offset: chunk.visible_next_offset,
            decompressed: std::sync::OnceLock::new(),
        })
    }

    /// The first offset at or after `timestamp_ms` in a partition, or its end if none.
    pub async fn offset_for_time(&self, stream: &Arc<Stream>, partition: u32, timestamp_ms: i64) -> Result<u64, Error> {
        let log = Arc::clone(stream.partition(partition)?);
        tokio::task::spawn_blocking(move || {
            let found = log.offset_for_timestamp(timestamp_ms)?;
            Ok(found.unwrap_or_else(|| log.stats().visible_next_offset))
        })
        .await
        .map_err(|error| Error::internal(format!("lookup task failed: {error}")))?
    }

    /// Starts retention and interval-fsync loops; they stop when the broker is dropped.
    pub fn spawn_background_tasks(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(RETENTION_CHECK_INTERVAL_MS));
            loop {
                ticker.tick().await;
                let Some(broker) = weak.upgrade() else { return };
                let streams = broker.streams();
                drop(broker);
                let _ = tokio::task::spawn_blocking(move || {
                    for stream in streams {
                        for (partition, log) in stream.partitions().iter().enumerate() {
                            match log.enforce_retention() {
                                Ok(0) => {}
                                Ok(n_segments) => {
                                    tracing::info!(stream = stream.name(), partition, n_segments, "retention deleted segments")
                                }
                                Err(error) => tracing::error!(stream = stream.name(), partition, %error, "retention failed"),
                            }
                        }
                    }
                })
                .await;
            }
        });
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            // One flusher serves every `interval:<ms>` stream: it ticks at the smallest
            // interval in use and syncs each stream whose own interval has elapsed.
            let mut last_sync_ms: BTreeMap<String, i64> = BTreeMap::new();
            let mut ticker = tokio::time::interval(Duration::from_millis(1));
            loop {
                ticker.tick().await;
                let Some(broker) = weak.upgrade() else { return };
                let now_ms = broker.now_ms();
                let mut due = Vec::new();
                let mut tick_ms = 100u64;
                for stream in broker.streams() {
                    if let FsyncPolicy::IntervalMs(interval_ms) = stream.config().fsync_policy() {
                        tick_ms = tick_ms.min(interval_ms);
                        let last = last_sync_ms.entry(stream.name().to_string()).or_insert(now_ms);
                        if now_ms - *last >= interval_ms as i64 {
                            *last = now_ms;
                            due.push(stream);
                        }
                    }
                }
                drop(broker);
                if ticker.period() != Duration::from_millis(tick_ms) {
                    ticker = tokio::time::interval(Duration::from_millis(tick_ms));
                    ticker.tick().await;
                }
                if !due.is_empty() {
                    let _ = tokio::task::spawn_blocking(move || sync_streams(&due)).await;
                }
            }
        });
    }

    /// Makes every appended event durable (clean shutdown).
    pub fn sync_all(&self) {
        sync_streams(&self.streams());
    }
}

/// Producer recorded for batches appended through `append_batch` (the Kafka listener), until
/// it names its clients.
pub const KAFKA_PRODUCER: &str = "kafka";
/// Producer recorded for dead letters written to a `.dlq` stream.
pub const DEAD_LETTER_PRODUCER: &str = "weft:dead-letters";

/// `wait_durable`, timed into the stream's fsync histogram when the stream fsyncs every append
/// (under other policies the wait returns at once and would only dilute the histogram).
fn timed_wait_durable(stream: &Stream, log: &weft_log::PartitionLog, next_offset: u64) -> Result<(), weft_log::LogError> {
    if stream.config().fsync_policy() != FsyncPolicy::Always {
        return log.wait_durable(next_offset);
    }
    let started = std::time::Instant::now();
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
    started: std::time::Instant,
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

fn sync_streams(streams: &[Arc<Stream>]) {
    for stream in streams {
        for (partition, log) in stream.partitions().iter().enumerate() {
            if let Err(error) = log.sync() {
                tracing::error!(stream = stream.name(), partition, %error, "fsync failed");
            }
        }
    }
}

/// One rejected event's error built from its contract violations: the first names the code
/// and path, all of them are in the details.
pub(crate) fn contract_violation(violations: &[weft_contract::Violation]) -> Error {
    let first = violations.first();
    let code = first.map_or(codes::EVENT_MALFORMED_JSON, |v| v.code);
    let message = match violations.len() {
        0 => "event violates the contract".to_string(),
        1 => violations[0].message.clone(),
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

fn malformed_data(error: &serde_json::Error) -> Error {
    Error::invalid(codes::EVENT_MALFORMED_JSON, format!("event data is not valid json: {error}")).with_path("/data")
}
