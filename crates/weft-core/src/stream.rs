//! Streams: named, partitioned logs with their configuration.
//!
//! A stream owns one `PartitionLog` per partition under `<data-dir>/streams/<name>/<partition>/`
//! and a change counter that wakes long-polls and live tails when events are appended.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use weft_log::{Clock, FsyncPolicy, LogConfig, PartitionLog, PartitionStats};

use crate::error::{Error, codes};

/// Longest stream name (Kafka's topic name limit).
pub const STREAM_NAME_BYTES_MAX: usize = 249;
/// Most partitions one stream may have.
pub const STREAM_PARTITIONS_MAX: u32 = 1024;
/// Retention when a stream does not say (Kafka's default).
pub const RETENTION_MS_DEFAULT: i64 = 7 * 86_400_000;
/// Segment size when a stream does not set one (the log's default).
pub const SEGMENT_BYTES_DEFAULT: u64 = weft_log::SEGMENT_BYTES_DEFAULT;
/// Active segments are sealed at least this often so time retention can reclaim them.
pub const SEGMENT_AGE_MS_MAX: i64 = 86_400_000;
/// Smallest segment size a stream may ask for.
pub const SEGMENT_BYTES_MIN: u64 = 1024 * 1024;

/// A stream's configuration, as stored in the metadata store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConfig {
    pub name: String,
    pub partitions: u32,
    /// JSON pointer into the event data whose value is the partition key.
    pub key: Option<String>,
    /// `None` keeps events forever.
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<u64>,
    /// When appends are acknowledged relative to fsync; stored as its text (`always`,
    /// `interval:<ms>`, `never`), and a stored text that does not parse is an error, never
    /// a silent `always`.
    #[serde(with = "fsync_text")]
    pub fsync: FsyncPolicy,
    pub segment_bytes: u64,
    pub created_at_ms: i64,
}

/// `FsyncPolicy` as its text in the stored configuration and the API.
mod fsync_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use weft_log::FsyncPolicy;

    pub fn serialize<S: Serializer>(policy: &FsyncPolicy, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(policy)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<FsyncPolicy, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl StreamConfig {
    /// Parses the API's fsync text, with the error a client sees.
    pub fn parse_fsync(text: &str) -> Result<FsyncPolicy, Error> {
        text.parse().map_err(|message| Error::invalid(codes::STREAM_INVALID_CONFIG, message).with_path("/fsync"))
    }

    /// Checks every field; the first problem is reported with its path.
    pub fn check(&self) -> Result<(), Error> {
        check_stream_name(&self.name)?;
        let invalid = |path: &str, message: String| Error::invalid(codes::STREAM_INVALID_CONFIG, message).with_path(path);
        if self.partitions == 0 || self.partitions > STREAM_PARTITIONS_MAX {
            return Err(invalid("/partitions", format!("partitions must be 1 to {STREAM_PARTITIONS_MAX}, not {}", self.partitions)));
        }
        if let Some(key) = &self.key
            && !(key.is_empty() || key.starts_with('/'))
        {
            return Err(invalid("/key", format!("key must be a JSON pointer such as \"/customer_id\", not {key:?}")));
        }
        if self.retention_ms.is_some_and(|ms| ms <= 0) {
            return Err(invalid("/retention", "retention must be positive".into()));
        }
        if self.segment_bytes < SEGMENT_BYTES_MIN || self.segment_bytes > weft_log::SEGMENT_BYTES_MAX_LIMIT {
            return Err(invalid("/segment_bytes", format!("segment_bytes must be 1 MiB to 2 GiB, not {}", self.segment_bytes)));
        }
        Ok(())
    }

    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            fsync: self.fsync,
            segment_bytes_max: self.segment_bytes,
            segment_age_max_ms: Some(self.retention_ms.map_or(SEGMENT_AGE_MS_MAX, |ms| ms.min(SEGMENT_AGE_MS_MAX))),
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            ..LogConfig::default()
        }
    }
}

/// Kafka's topic name rules: 1 to 249 of `[A-Za-z0-9._-]`, and not `.` or `..`.
pub fn check_stream_name(name: &str) -> Result<(), Error> {
    let valid_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty() || name.len() > STREAM_NAME_BYTES_MAX || !valid_chars || name == "." || name == ".." {
        return Err(Error::invalid(
            codes::STREAM_INVALID_NAME,
            format!(
                "stream name {:?} must be 1 to {STREAM_NAME_BYTES_MAX} characters of A-Z, a-z, 0-9, '.', '_' and '-'",
                truncate_for_message(name)
            ),
        )
        .with_path("/name"));
    }
    Ok(())
}

/// Shortens user-supplied text before it is echoed in an error message.
pub fn truncate_for_message(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 80;
    if text.chars().count() <= SHOWN_CHARS_MAX {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(SHOWN_CHARS_MAX).collect::<String>())
    }
}

/// The contract that governs a stream: events are validated against it at produce time and
/// rejected ones go to the dead-letter stream.
pub struct Governance {
    pub contract_id: String,
    pub contract_version: String,
    pub compiled: weft_contract::CompiledContract,
    pub dead_letter_stream: String,
}

/// Suffix of a governed stream's dead-letter stream.
pub const DEAD_LETTER_SUFFIX: &str = ".dlq";

pub struct Stream {
    config: StreamConfig,
    partitions: Vec<Arc<PartitionLog>>,
    round_robin: AtomicU32,
    changes: watch::Sender<u64>,
    governance: std::sync::RwLock<Option<Arc<Governance>>>,
    activity: crate::stream_activity::StreamActivity,
}

impl Stream {
    pub(crate) fn open(streams_dir: &Path, config: StreamConfig, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let stream_dir = streams_dir.join(&config.name);
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for partition in 0..config.partitions {
            let (log, report) = PartitionLog::open(&stream_dir.join(partition.to_string()), config.log_config(), Arc::clone(&clock))?;
            if report.truncated_bytes > 0 {
                tracing::warn!(stream = %config.name, partition, truncated_bytes = report.truncated_bytes, reason = ?report.truncated_because, "recovery cut a torn tail");
            }
            partitions.push(Arc::new(log));
        }
        Ok(Self {
            config,
            partitions,
            round_robin: AtomicU32::new(0),
            changes: watch::Sender::new(0),
            governance: std::sync::RwLock::new(None),
            activity: crate::stream_activity::StreamActivity::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    pub fn n_partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// The log of one partition: private to the core, which is the one door to storage.
    pub(crate) fn partition(&self, partition: u32) -> Result<&Arc<PartitionLog>, Error> {
        self.partitions.get(partition as usize).ok_or_else(|| {
            Error::new(
                crate::error::Kind::NotFound,
                codes::PARTITION_NOT_FOUND,
                format!("stream {} has partitions 0 to {}, not {partition}", self.config.name, self.partitions.len() - 1),
            )
            .with_path("/partition")
        })
    }

    pub(crate) fn partitions(&self) -> &[Arc<PartitionLog>] {
        &self.partitions
    }

    /// Sizes and offsets of every partition, in partition order.
    pub fn stats(&self) -> Vec<PartitionStats> {
        self.partitions.iter().map(|p| p.stats()).collect()
    }

    /// Sizes and offsets of one partition (`partition.not_found` if it does not exist).
    pub fn partition_stats(&self, partition: u32) -> Result<PartitionStats, Error> {
        Ok(self.partition(partition)?.stats())
    }

    /// The next partition for events without a key: spreads them evenly.
    pub(crate) fn next_round_robin(&self) -> u32 {
        self.round_robin.fetch_add(1, Ordering::Relaxed) % self.n_partitions()
    }

    /// Wakes readers waiting for new events.
    pub(crate) fn notify_appended(&self) {
        self.changes.send_modify(|version| *version = version.wrapping_add(1));
    }

    /// The contract governing this stream, if any.
    pub fn governance(&self) -> Option<Arc<Governance>> {
        self.governance.read().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    pub(crate) fn set_governance(&self, governance: Option<Arc<Governance>>) {
        *self.governance.write().unwrap_or_else(|poison| poison.into_inner()) = governance;
    }

    /// What the server has measured about this stream since it started.
    pub fn activity(&self) -> &crate::stream_activity::StreamActivity {
        &self.activity
    }

    /// A receiver that changes whenever events are appended to any partition.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
