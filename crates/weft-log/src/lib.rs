//! Weft's storage engine: a durable, partitioned, replayable log.
//!
//! A partition is a directory of segments; a segment is a `.log` file of Kafka
//! RecordBatch v2 batches plus a sparse offset index and time index.
//! The byte layout and the commit protocol are written down in `FORMAT.md` beside this crate.
//!
//! This crate owns: the batch byte format (`batch`), the once-checked batch that travels from an
//! edge to the log (`VerifiedBatch`), segments and their indexes (`segment`), one
//! partition's append, group commit, reads, tail scans of batch headers and retention (`partition`) and its recovery on open
//! (`recovery`), and the storage backend all of them do their file I/O through (`backend`:
//! `FileBackend` in production, `simulation::SimulatedDisk` in crash tests).
//! It does not know about streams, HTTP, JSON, CloudEvents, contracts or Kafka's wire
//! protocol: those live above it, in `weft-core` and the edge crates.
//!
//! Limits (named with the unit last):
//! - `batch::BATCH_BYTES_MAX`: largest batch accepted (32 MiB).
//! - `SEGMENT_BYTES_MAX_LIMIT`: largest configurable segment (2 GiB - 1, positions are 32-bit).
//! - `batch::RECORD_HEADERS_MAX`: headers per record (1024).

pub mod backend;
pub mod batch;
mod partition;
mod read_only;
mod recovery;
mod segment;
pub mod simulation;
mod verified;

use std::io;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

pub use backend::{FileBackend, OpenMode, StorageBackend, StorageFile};
pub use partition::{Appended, PartitionLog, PartitionStats, ReadChunk, RecoveryReport, TailScan};
pub use read_only::{ScanReport, ScanStop, scan_partition_read_only, scan_partition_read_only_with};
pub use verified::VerifiedBatch;

/// Largest segment size a configuration may ask for: index positions are 32-bit.
pub const SEGMENT_BYTES_MAX_LIMIT: u64 = (1 << 31) - 1;
/// Default size at which the active segment is sealed and a new one started.
pub const SEGMENT_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;
/// Default spacing of sparse index entries.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u64 = 4096;

/// Source of wall-clock time, injected so tests control retention and rolling.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// When an append is acknowledged relative to fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Acknowledge only after `fdatasync` covers the batch (group commit shares one fsync
    /// among concurrent appenders). Readers see only synced data.
    Always,
    /// Acknowledge after the write reaches the OS; the owner calls `PartitionLog::sync`
    /// every this many milliseconds.
    IntervalMs(u64),
    /// Acknowledge after the write reaches the OS; the OS decides when to flush.
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            _ => {
                let Some(ms) = text.strip_prefix("interval:") else {
                    return Err(format!("fsync policy must be always, never or interval:<ms>, not {text:?}"));
                };
                match ms.parse::<u64>() {
                    Ok(ms) if (1..=60_000).contains(&ms) => Ok(Self::IntervalMs(ms)),
                    _ => Err(format!("fsync interval must be 1 to 60000 milliseconds, not {ms:?}")),
                }
            }
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Always => f.write_str("always"),
            Self::IntervalMs(ms) => write!(f, "interval:{ms}"),
            Self::Never => f.write_str("never"),
        }
    }
}

/// Per-partition settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub fsync: FsyncPolicy,
    pub segment_bytes_max: u64,
    /// Seal the active segment once its first append is this old, so time retention can
    /// delete it.
    pub segment_age_max_ms: Option<i64>,
    pub index_interval_bytes: u64,
    /// Delete sealed segments whose newest record is older than this.
    pub retention_ms: Option<i64>,
    /// Delete the oldest sealed segments while the partition is larger than this.
    pub retention_bytes: Option<u64>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Always,
            segment_bytes_max: SEGMENT_BYTES_DEFAULT,
            segment_age_max_ms: None,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            retention_ms: None,
            retention_bytes: None,
        }
    }
}

impl LogConfig {
    fn check(&self) -> Result<(), LogError> {
        if self.segment_bytes_max < 1024 || self.segment_bytes_max > SEGMENT_BYTES_MAX_LIMIT {
            return Err(LogError::InvalidConfig(format!("segment size must be 1 KiB to 2 GiB, not {} bytes", self.segment_bytes_max)));
        }
        if self.index_interval_bytes == 0 {
            return Err(LogError::InvalidConfig("index interval must be positive".into()));
        }
        Ok(())
    }
}

/// Errors of log operations.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] batch::BatchError),
    #[error("offset {requested} is out of range: readable offsets are {log_start_offset} to {next_offset}")]
    OffsetOutOfRange { requested: u64, log_start_offset: u64, next_offset: u64 },
    #[error("no space left on the device")]
    DiskFull,
    #[error("partition refuses writes after an earlier i/o failure ({0}); restart to recover")]
    Poisoned(String),
    #[error("corrupt log in {path}: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
    #[error("i/o error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for LogError {
    fn from(error: io::Error) -> Self {
        Self::from_io(error)
    }
}

impl LogError {
    fn from_io(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Self::DiskFull,
            _ => Self::Io(error),
        }
    }
}
