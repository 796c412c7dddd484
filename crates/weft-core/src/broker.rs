//! The broker: opens the data directory, owns the streams, the metadata store, the consumer
//! groups, the applied mesh and the guard, and is the one door every edge (HTTP, Kafka, the
//! binary's tools) goes through to storage.
//!
//! Its work lives in components, each in its own module. Components with state of their own
//! own it in a private struct the broker holds and reaches only through that struct's methods:
//! `mesh::AppliedMesh` (the applied mesh, its search index, the apply lock),
//! `group::GroupCoordinator` (consumer groups), `guard::Guard` (identity, policies, masking
//! keys, audit), `dead_letter::DeadLetterReplay` (one replay at a time). The stateless ones
//! are `impl Broker` blocks over the stream registry and the metadata store: `produce` (the
//! write path), `read` (batches, offsets, times), `background` (retention and interval fsync),
//! `dead_letter` (the dead-letter writer, listing and replay), `catalog` and `lineage`. This file
//! holds the stream registry and wires the components together; no field is visible outside it.
//! Opening also bounds the search of a dead-letter replay that a crash interrupted
//! (`dead_letter/replay.rs`), before anything can be appended.
//!
//! What an implementation of this door on another engine (a replicated log cluster) must
//! guarantee is written in ARCHITECTURE.md ("The broker's storage contract").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use weft_log::Clock;

use crate::error::{Error, Kind, codes};
use crate::group::GroupCoordinator;
use crate::mesh::{AppliedMesh, MeshState};
use crate::meta::{MetaStore, MetaWrite};
use crate::schema_registry::SchemaRegistryPort;
use crate::stream::{Stream, StreamConfig};

pub use crate::background::RETENTION_CHECK_INTERVAL_MS;
pub use crate::dead_letter::dead_letter_headers;
pub use crate::produce::{
    BATCH_BYTES_TARGET, DEAD_LETTER_PRODUCER, EVENT_BYTES_MAX_DEFAULT, EVENT_FUTURE_TIME_MS_MAX_DEFAULT, Incoming, KAFKA_PRODUCER,
    Position, ProduceContext, ProduceOutcome,
};
pub use crate::read::{FetchedBatches, StoredRecord};

/// Most streams one broker holds.
pub const STREAMS_MAX: usize = 10_000;
/// Most events returned by one fetch.
pub const FETCH_EVENTS_MAX: usize = 10_000;
/// Byte budget of one fetch.
pub const FETCH_BYTES_MAX: usize = 16 * 1024 * 1024;

pub struct Broker {
    data_dir: PathBuf,
    meta: Arc<MetaStore>,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    stream_creation: std::sync::Mutex<()>,
    clock: Arc<dyn Clock>,
    groups: GroupCoordinator,
    event_bytes_max: usize,
    /// How far ahead of the clock an event time may be, in ms; negative means unlimited.
    max_future_time_ms: AtomicI64,
    mesh: AppliedMesh,
    schema_registry: RwLock<Option<Arc<dyn SchemaRegistryPort>>>,
    dead_letter_replay: crate::dead_letter::DeadLetterReplay,
    closing: tokio::sync::watch::Sender<bool>,
    guard: crate::guard::Guard,
}

/// Creates the data directory and its `streams` directory readable by their owner only (0700),
/// and tightens an existing data directory to 0700: it holds the admin token, the masking secret
/// and every event. Files in it are created 0600 by the modules that write them.
fn create_private_dirs(data_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(data_dir.join("streams"))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
}

impl Broker {
    /// Opens the data directory, recovering every stream's partitions.
    pub fn open(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<Arc<Self>, Error> {
        create_private_dirs(data_dir)
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
        let (guard, admin_token) = crate::guard::Guard::open(data_dir, Arc::clone(&clock), &meta)?;
        if let Some(path) = admin_token {
            tracing::info!(token_file = %path.display(), "created the admin principal; its token is in the token file (mode 0600)");
        }
        let broker = Arc::new(Self {
            data_dir: data_dir.to_path_buf(),
            meta,
            streams: RwLock::new(streams),
            stream_creation: std::sync::Mutex::new(()),
            clock,
            groups,
            event_bytes_max: EVENT_BYTES_MAX_DEFAULT,
            max_future_time_ms: AtomicI64::new(EVENT_FUTURE_TIME_MS_MAX_DEFAULT),
            mesh: AppliedMesh::default(),
            schema_registry: RwLock::new(None),
            dead_letter_replay: crate::dead_letter::DeadLetterReplay::default(),
            closing: tokio::sync::watch::Sender::new(false),
            guard,
        });
        broker.load_mesh()?;
        broker.guard.rebuild(&broker.mesh())?;
        broker.bound_replay_intents_on_open()?;
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

    /// A snapshot of the applied mesh (domains, products, contracts, policies): shared, so
    /// taking one costs a reference count, not a copy.
    pub fn mesh(&self) -> Arc<MeshState> {
        self.mesh.current()
    }

    /// The mesh component (applied state, search index, apply lock).
    pub(crate) fn applied_mesh(&self) -> &AppliedMesh {
        &self.mesh
    }

    /// The dead-letter replay component.
    pub(crate) fn dead_letter_replay(&self) -> &crate::dead_letter::DeadLetterReplay {
        &self.dead_letter_replay
    }

    /// Connects the schema registry: applied contracts register their schemas there, and
    /// Confluent-framed events are checked against it.
    /// The applied contracts' schemas are registered again (idempotently), so the registry knows
    /// their subjects as contract-fed even if they were registered before it kept that mark.
    pub fn set_schema_registry(&self, sink: Arc<dyn SchemaRegistryPort>) {
        *self.schema_registry.write().unwrap_or_else(|poison| poison.into_inner()) = Some(sink);
        self.register_applied_schemas();
    }

    pub(crate) fn schema_registry(&self) -> Option<Arc<dyn SchemaRegistryPort>> {
        self.schema_registry.read().unwrap_or_else(|poison| poison.into_inner()).clone()
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

    /// How far ahead of the broker's clock an event's time may be; `None` is unlimited.
    pub fn max_future_time_ms(&self) -> Option<i64> {
        Some(self.max_future_time_ms.load(Ordering::Relaxed)).filter(|ms| *ms >= 0)
    }

    /// Sets the bound of `max_future_time_ms` (`weft serve --max-future-time`); `None` lifts it.
    pub fn set_max_future_time_ms(&self, max_future_ms: Option<i64>) {
        self.max_future_time_ms.store(max_future_ms.map_or(-1, |ms| ms.max(0)), Ordering::Relaxed);
    }

    /// Creates a stream; refuses a name that exists.
    pub fn create_stream(&self, config: StreamConfig) -> Result<Arc<Stream>, Error> {
        let _creating = self.lock_stream_creation();
        let prepared = self.prepare_stream(config)?;
        let stream = Arc::clone(&prepared.stream);
        self.register_streams(vec![prepared], Vec::new())?;
        Ok(stream)
    }

    /// Held from `prepare_stream` to `register_streams`, so two creations of one name never open
    /// the same files (the second one's recovery could cut the first one's writes).
    pub(crate) fn lock_stream_creation(&self) -> std::sync::MutexGuard<'_, ()> {
        self.stream_creation.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Opens a new stream's files without making it visible: nobody can write to it until
    /// `register_streams` records it (possibly with governance attached first). The caller
    /// holds `lock_stream_creation`.
    pub(crate) fn prepare_stream(&self, mut config: StreamConfig) -> Result<PreparedStream, Error> {
        config.created_at_ms = self.clock.now_ms();
        config.check()?;
        self.check_stream_name_free(&config.name)?;
        let stream = Arc::new(Stream::open(&self.data_dir.join("streams"), config.clone(), Arc::clone(&self.clock))?);
        let json = serde_json::to_vec(&config).map_err(|error| Error::internal(error.to_string()))?;
        Ok(PreparedStream { stream, json })
    }

    /// Records prepared streams together with `writes` in one metadata transaction, then makes
    /// the streams visible: after a crash either all of them and the writes are there, or none.
    pub(crate) fn register_streams(&self, prepared: Vec<PreparedStream>, mut writes: Vec<MetaWrite>) -> Result<(), Error> {
        let mut streams = self.streams.write().unwrap_or_else(|poison| poison.into_inner());
        for (idx, candidate) in prepared.iter().enumerate() {
            if streams.contains_key(candidate.stream.name()) || prepared[..idx].iter().any(|p| p.stream.name() == candidate.stream.name()) {
                return Err(stream_exists(candidate.stream.name()));
            }
        }
        if streams.len() + prepared.len() > STREAMS_MAX {
            return Err(stream_limit_reached());
        }
        writes.extend(prepared.iter().map(|p| MetaWrite::Stream { name: p.stream.name().to_string(), json: p.json.clone() }));
        self.meta.write_all(&writes)?;
        for PreparedStream { stream, .. } in prepared {
            let config = stream.config();
            tracing::info!(stream = %config.name, partitions = config.partitions, fsync = %config.fsync, "stream created");
            streams.insert(config.name.clone(), stream);
        }
        Ok(())
    }

    /// A quick refusal before any file is opened; `register_streams` checks again under the lock.
    fn check_stream_name_free(&self, name: &str) -> Result<(), Error> {
        let streams = self.streams.read().unwrap_or_else(|poison| poison.into_inner());
        if streams.contains_key(name) {
            return Err(stream_exists(name));
        }
        if streams.len() >= STREAMS_MAX {
            return Err(stream_limit_reached());
        }
        Ok(())
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
}

/// A stream whose files are open but which nobody can see yet (`Broker::prepare_stream`).
pub(crate) struct PreparedStream {
    pub(crate) stream: Arc<Stream>,
    json: Vec<u8>,
}

fn stream_limit_reached() -> Error {
    Error::new(Kind::Conflict, codes::STREAM_LIMIT_REACHED, format!("a broker holds at most {STREAMS_MAX} streams"))
}

fn stream_exists(name: &str) -> Error {
    Error::new(
        Kind::Conflict,
        codes::STREAM_ALREADY_EXISTS,
        format!("stream {:?} already exists", crate::stream::truncate_for_message(name)),
    )
    .with_path("/name")
}
