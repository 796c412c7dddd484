//! The broker: opens the data directory, owns the streams, the metadata store, the consumer
//! groups, the applied mesh and the guard, and is the one door every edge (HTTP, Kafka, the
//! binary's tools) goes through to storage.
//!
//! Its work lives in components, each in its own module with its own `impl Broker` block and
//! no fields of its own: `produce` (the write path), `read` (batches, offsets, times),
//! `background` (retention and interval fsync), `dead_letter` (the dead-letter writer, listing
//! and replay), `mesh` (apply), `guard` (authentication, authorization, masking, audit),
//! `catalog` and `lineage`. This file holds the state they share and the stream registry.
//!
//! What an implementation of this door on another engine (a replicated log cluster) must
//! guarantee is written in ARCHITECTURE.md ("The broker's storage contract").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use weft_log::Clock;

use crate::error::{Error, Kind, codes};
use crate::group::GroupCoordinator;
use crate::mesh::MeshState;
use crate::meta::MetaStore;
use crate::schema_registry::SchemaRegistryPort;
use crate::stream::{Stream, StreamConfig};

pub use crate::background::RETENTION_CHECK_INTERVAL_MS;
pub use crate::dead_letter::dead_letter_headers;
pub use crate::produce::{
    BATCH_BYTES_TARGET, DEAD_LETTER_PRODUCER, EVENT_BYTES_MAX_DEFAULT, Incoming, KAFKA_PRODUCER, Position, ProduceContext, ProduceOutcome,
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
    clock: Arc<dyn Clock>,
    groups: GroupCoordinator,
    event_bytes_max: usize,
    pub(crate) mesh: RwLock<MeshState>,
    pub(crate) apply_lock: std::sync::Mutex<()>,
    schema_registry: RwLock<Option<Arc<dyn SchemaRegistryPort>>>,
    pub(crate) replay_lock: tokio::sync::Mutex<()>,
    closing: tokio::sync::watch::Sender<bool>,
    pub(crate) search_index: RwLock<Arc<crate::catalog::SearchIndex>>,
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
        let (guard, admin_token) = crate::guard::Guard::open(data_dir, Arc::clone(&clock), &meta)?;
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
            schema_registry: RwLock::new(None),
            replay_lock: tokio::sync::Mutex::new(()),
            closing: tokio::sync::watch::Sender::new(false),
            search_index: RwLock::new(Arc::default()),
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
    pub fn set_schema_registry(&self, sink: Arc<dyn SchemaRegistryPort>) {
        *self.schema_registry.write().unwrap_or_else(|poison| poison.into_inner()) = Some(sink);
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

    /// Creates a stream; refuses a name that exists.
    pub fn create_stream(&self, mut config: StreamConfig) -> Result<Arc<Stream>, Error> {
        config.created_at_ms = self.clock.now_ms();
        config.check()?;
        let mut streams = self.streams.write().unwrap_or_else(|poison| poison.into_inner());
        if streams.contains_key(&config.name) {
            return Err(Error::new(
                Kind::Conflict,
                codes::STREAM_ALREADY_EXISTS,
                format!("stream {:?} already exists", crate::stream::truncate_for_message(&config.name)),
            )
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
}
