//! What every storage test needs: a manual clock, batches built from plain records,
//! whole-log reads that check batch framing, and copies of partition directories.
//!
//! Nothing here knows a test's property; it only builds inputs and reads outputs.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use weft_log::batch::{BatchBuilder, BatchView, Record};
use weft_log::{Clock, FsyncPolicy, LogConfig, LogError, PartitionLog, RecoveryReport};

/// Wall clock that moves only when a test says so, so rolling and retention are deterministic.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn starting_at(now_ms: i64) -> Arc<Self> {
        Arc::new(Self { now_ms: AtomicI64::new(now_ms) })
    }

    pub fn advance(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// One record as a test writes it and expects to read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainRecord {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl PlainRecord {
    /// A record whose value is `value_bytes` long and whose content identifies `seed`.
    pub fn sized(seed: u64, timestamp_ms: i64, value_bytes: usize) -> Self {
        let value: Vec<u8> = (0..value_bytes).map(|byte_idx| (seed as usize * 31 + byte_idx) as u8).collect();
        Self {
            offset: 0,
            timestamp_ms,
            key: (!seed.is_multiple_of(3)).then(|| format!("key-{seed}").into_bytes()),
            value: (seed % 5 != 4).then_some(value),
            headers: if seed.is_multiple_of(2) { vec![(b"ce_id".to_vec(), Some(seed.to_string().into_bytes()))] } else { Vec::new() },
        }
    }

    pub fn from_record(record: &Record<'_>) -> Self {
        Self {
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.map(<[u8]>::to_vec),
            headers: record.headers.iter().map(|header| (header.key.to_vec(), header.value.map(<[u8]>::to_vec))).collect(),
        }
    }
}

/// Encodes `records` as one uncompressed batch with base offset 0; the base timestamp is
/// the first record's, so the header's max timestamp is exactly the records' maximum.
pub fn encode_batch(records: &[PlainRecord]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(records[0].timestamp_ms);
    for record in records {
        let headers: Vec<(&str, &[u8])> = record
            .headers
            .iter()
            .map(|(key, value)| {
                (std::str::from_utf8(key).expect("test header keys are UTF-8"), value.as_deref().expect("test header values are present"))
            })
            .collect();
        builder.push(record.timestamp_ms, record.key.as_deref(), record.value.as_deref(), &headers);
    }
    builder.finish()
}

/// Splits bytes returned by `read` into batches, asserting that they are whole,
/// well-formed batches with nothing left over.
pub fn split_batches(bytes: &[u8]) -> Vec<BatchView<'_>> {
    let mut batches = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let batch = BatchView::parse(&bytes[position..])
            .unwrap_or_else(|error| panic!("read returned a partial or corrupt batch at byte {position}: {error}"));
        batch.check_records().expect("records of a returned batch decode");
        position += batch.len();
        batches.push(batch);
    }
    batches
}

pub fn records_of(batch: &BatchView<'_>) -> Vec<PlainRecord> {
    batch
        .records()
        .expect("test batches are uncompressed")
        .map(|record| PlainRecord::from_record(&record.expect("record decodes")))
        .collect()
}

/// Every readable batch from `from_offset` to the high watermark, as raw bytes, reading
/// with a budget of `max_bytes` per call. Asserts that each read makes progress.
pub fn read_batches_from(log: &PartitionLog, from_offset: u64, max_bytes: usize) -> Result<Vec<Vec<u8>>, LogError> {
    let mut batches = Vec::new();
    let mut offset = from_offset;
    loop {
        let chunk = log.read(offset, max_bytes)?;
        if offset == chunk.visible_next_offset {
            assert!(chunk.bytes.is_empty(), "a read at the high watermark returns nothing");
            return Ok(batches);
        }
        assert!(
            !chunk.bytes.is_empty(),
            "a read at offset {offset} below the high watermark {} returned nothing",
            chunk.visible_next_offset
        );
        assert!(chunk.next_offset > offset, "a read must make progress");
        for batch in split_batches(&chunk.bytes) {
            batches.push(batch.as_bytes().to_vec());
        }
        offset = chunk.next_offset;
    }
}

/// A configuration for tests: small segments so rolls happen, no time-based behaviour.
pub fn small_segments_config(fsync: FsyncPolicy, segment_bytes_max: u64) -> LogConfig {
    LogConfig { fsync, segment_bytes_max, ..LogConfig::default() }
}

pub fn open(dir: &Path, config: LogConfig, clock: &Arc<ManualClock>) -> (PartitionLog, RecoveryReport) {
    let clock: Arc<dyn Clock> = clock.clone();
    PartitionLog::open(dir, config, clock).expect("partition opens")
}

/// The `.log` files of a partition directory, oldest first, with their base offsets.
pub fn log_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut files: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .expect("partition directory is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let base = name.strip_suffix(".log")?.parse().ok()?;
            Some((base, path))
        })
        .collect();
    files.sort();
    files
}

/// Replaces the contents of `to` with a copy of the files in `from`.
pub fn copy_partition_dir(from: &Path, to: &Path) {
    if to.exists() {
        fs::remove_dir_all(to).expect("old copy is removable");
    }
    fs::create_dir_all(to).expect("copy directory is creatable");
    for entry in fs::read_dir(from).expect("partition directory is readable") {
        let entry = entry.expect("directory entry");
        fs::copy(entry.path(), to.join(entry.file_name())).expect("segment file copies");
    }
}

/// A small deterministic pseudo-random byte source (xorshift64*), so "random garbage"
/// is the same on every run.
pub struct SeededBytes {
    state: u64,
}

impl SeededBytes {
    pub fn new(seed: u64) -> Self {
        Self { state: seed.max(1) }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn bytes(&mut self, n_bytes: usize) -> Vec<u8> {
        (0..n_bytes).map(|_| self.next_u64() as u8).collect()
    }
}
