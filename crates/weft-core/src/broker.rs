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

use crate::cloudevent::{CloudEvent, is_json_content_type};
use crate::error::{Error, Kind, codes};
use crate::group::GroupCoordinator;
use crate::meta::MetaStore;
use crate::partitioner::partition_for_key;
use crate::stream::{Stream, StreamConfig};

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
                let data = batch.decompress_records().map_err(|error| {
                    Error::internal(format!("cannot decode stored batch at offset {}: {error}", batch.base_offset()))
                })?;
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
        Ok(Arc::new(Self {
            data_dir: data_dir.to_path_buf(),
            meta,
            streams: RwLock::new(streams),
            clock,
            groups,
            event_bytes_max: EVENT_BYTES_MAX_DEFAULT,
        }))
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

    /// Checks, partitions, encodes and appends events; returns after they are durable
    /// under the stream's fsync policy. `events` holds parse failures too, so that every
    /// input event gets exactly one result.
    pub async fn produce(&self, stream: &Arc<Stream>, events: Vec<Result<CloudEvent, Error>>) -> ProduceOutcome {
        let n_partitions = stream.n_partitions();
        let now_ms = self.clock.now_ms();
        let mut results: Vec<Result<Position, Error>> = Vec::with_capacity(events.len());
        // Per partition: the batches to append and, per batch, the request indexes of its events.
        let mut builders: Vec<Vec<(BatchBuilder, Vec<usize>)>> = (0..n_partitions).map(|_| Vec::new()).collect();
        for (event_idx, event) in events.into_iter().enumerate() {
            let placed = event.and_then(|event| self.place_event(stream, &event).map(|(partition, key)| (event, partition, key)));
            let (event, partition, key) = match placed {
                Ok(placed) => placed,
                Err(error) => {
                    results.push(Err(error));
                    continue;
                }
            };
            results.push(Ok(Position { partition, offset: 0 }));
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
        let mut appends = tokio::task::JoinSet::new();
        for (partition, partition_batches) in builders.into_iter().enumerate() {
            if partition_batches.is_empty() {
                continue;
            }
            let log = Arc::clone(stream.partition(partition as u32).expect("partition index in range"));
            appends.spawn_blocking(move || {
                let mut placed = Vec::with_capacity(partition_batches.len());
                for (builder, event_idxs) in partition_batches {
                    match log.append(builder.finish()) {
                        Ok(appended) => placed.push((event_idxs, Ok(appended.base_offset))),
                        Err(error) => placed.push((event_idxs, Err(Error::from(error)))),
                    }
                }
                (partition as u32, placed)
            });
        }
        let mut storage_error = None;
        while let Some(joined) = appends.join_next().await {
            let (partition, placed) = joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
            for (event_idxs, appended) in placed {
                match appended {
                    Ok(base_offset) => {
                        for (record_idx, event_idx) in event_idxs.into_iter().enumerate() {
                            results[event_idx] = Ok(Position { partition, offset: base_offset + record_idx as u64 });
                        }
                    }
                    Err(error) => {
                        for event_idx in event_idxs {
                            results[event_idx] = Err(error.clone());
                        }
                        storage_error.get_or_insert(error);
                    }
                }
            }
        }
        stream.notify_appended();
        ProduceOutcome { results, storage_error }
    }

    /// Appends a batch that a producer encoded itself (the Kafka listener's path): the log
    /// checks its framing and checksum, assigns offsets and stores it byte for byte.
    pub async fn append_batch(&self, stream: &Arc<Stream>, partition: u32, batch: Vec<u8>) -> Result<weft_log::Appended, Error> {
        let log = Arc::clone(stream.partition(partition)?);
        let appended = tokio::task::spawn_blocking(move || log.append(batch))
            .await
            .map_err(|error| Error::internal(format!("append task failed: {error}")))?
            .map_err(|error| match error {
                weft_log::LogError::InvalidBatch(reason) => {
                    Error::invalid(codes::EVENT_INVALID_BATCH, format!("record batch refused: {reason}"))
                }
                other => Error::from(other),
            })?;
        stream.notify_appended();
        Ok(appended)
    }

    /// Checks one event and picks its partition and record key.
    fn place_event(&self, stream: &Stream, event: &CloudEvent) -> Result<(u32, Option<Vec<u8>>), Error> {
        event.check()?;
        if event.size_bytes() > self.event_bytes_max {
            return Err(Error::new(
                Kind::TooLarge,
                codes::EVENT_TOO_LARGE,
                format!("event is {} bytes; the limit is {} bytes", event.size_bytes(), self.event_bytes_max),
            ));
        }
        let json_data = event.data.as_deref().filter(|_| is_json_content_type(event.datacontenttype.as_deref()));
        let pointer = stream.config().key.as_deref().filter(|pointer| !pointer.is_empty());
        let key_from_data = match (json_data, pointer) {
            (Some(data), Some(pointer)) => crate::json_key::key_at_pointer(data, pointer).map_err(|error| malformed_data(&error))?,
            (Some(data), None) => {
                serde_json::from_slice::<serde::de::IgnoredAny>(data).map_err(|error| malformed_data(&error))?;
                None
            }
            (None, _) => None,
        };
        let key = event.partition_key().map(|key| key.as_bytes().to_vec()).or(key_from_data);
        let partition = match &key {
            Some(key) => partition_for_key(key, stream.n_partitions()),
            None => stream.next_round_robin(),
        };
        Ok((partition, key))
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

fn sync_streams(streams: &[Arc<Stream>]) {
    for stream in streams {
        for (partition, log) in stream.partitions().iter().enumerate() {
            if let Err(error) = log.sync() {
                tracing::error!(stream = stream.name(), partition, %error, "fsync failed");
            }
        }
    }
}

fn malformed_data(error: &serde_json::Error) -> Error {
    Error::invalid(codes::EVENT_MALFORMED_JSON, format!("event data is not valid json: {error}")).with_path("/data")
}
