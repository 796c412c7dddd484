//! One segment: a `.log` file of consecutive batches plus its sparse offset and time indexes.
//!
//! A segment is named by the offset of its first record (`{base_offset:020}.log`).
//! While a segment is active its indexes live in memory only; when it is sealed they are
//! written to `.index` and `.timeindex` (via a temporary file and a rename), so an index
//! file that exists is complete. Indexes are an optimisation: a missing or implausible
//! index file is rebuilt from the log by a scan.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::{OpenMode, StorageBackend, StorageFile, read_whole_file, write_file_atomically};
use crate::batch::{BATCH_HEADER_BYTES, BATCH_LENGTH_PREFIX_BYTES, BatchError, BatchView, batch_total_len};

const INDEX_ENTRY_BYTES: usize = 8;
const TIME_INDEX_ENTRY_BYTES: usize = 12;
/// How much log is read at once while scanning a segment during recovery.
const SCAN_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// A sampled position in the segment: the batch with base offset `base + relative_offset`
/// starts at byte `position`, and no record at or before that batch has a timestamp above
/// `max_timestamp_so_far`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub relative_offset: u32,
    pub position: u32,
    pub max_timestamp_so_far: i64,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub file: Arc<dyn StorageFile>,
    pub log_path: PathBuf,
    /// Bytes of complete batches; the file is never longer than this after recovery.
    pub size_bytes: u64,
    /// Bytes that a successful fdatasync covered (all of them for a sealed segment): what a
    /// failed fdatasync cuts the file back to.
    pub durable_bytes: u64,
    /// Offset after the last record of the last batch.
    pub next_offset: u64,
    /// Offset after the last record that a successful fdatasync covered.
    pub durable_next_offset: u64,
    pub max_timestamp: i64,
    pub index: Vec<IndexEntry>,
    pub bytes_since_index_entry: u64,
    /// Server time of the first append to this segment, for age-based rolling.
    pub first_append_ms: Option<i64>,
}

pub(crate) fn log_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.log")
}

pub(crate) fn parse_log_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Result of scanning a segment's log file from the start.
pub(crate) struct ScanOutcome {
    pub valid_bytes: u64,
    pub next_offset: u64,
    pub max_timestamp: i64,
    pub index: Vec<IndexEntry>,
    pub bytes_since_index_entry: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped_by: Option<BatchError>,
}

impl Segment {
    pub fn create(backend: &dyn StorageBackend, dir: &Path, base_offset: u64) -> io::Result<Self> {
        let log_path = dir.join(log_file_name(base_offset));
        let file = backend.open_file(&log_path, OpenMode::CreateNew)?;
        Ok(Self {
            base_offset,
            file,
            log_path,
            size_bytes: 0,
            durable_bytes: 0,
            next_offset: base_offset,
            durable_next_offset: base_offset,
            max_timestamp: -1,
            index: Vec::new(),
            bytes_since_index_entry: 0,
            first_append_ms: None,
        })
    }

    pub fn open_file(backend: &dyn StorageBackend, dir: &Path, base_offset: u64) -> io::Result<(PathBuf, Arc<dyn StorageFile>)> {
        let log_path = dir.join(log_file_name(base_offset));
        let file = backend.open_file(&log_path, OpenMode::ReadWrite)?;
        Ok((log_path, file))
    }

    /// A segment recovered from disk: everything the scan accepted is durable.
    pub fn recovered(base_offset: u64, file: Arc<dyn StorageFile>, log_path: PathBuf, scan: ScanOutcome) -> Self {
        Self {
            base_offset,
            file,
            log_path,
            size_bytes: scan.valid_bytes,
            durable_bytes: scan.valid_bytes,
            next_offset: scan.next_offset,
            durable_next_offset: scan.next_offset,
            max_timestamp: scan.max_timestamp,
            index: scan.index,
            bytes_since_index_entry: scan.bytes_since_index_entry,
            first_append_ms: None,
        }
    }

    /// Reads every batch from the start, checking framing, checksums and dense offsets,
    /// and stops at the first batch that is torn, corrupt or out of sequence.
    pub fn scan(file: &dyn StorageFile, base_offset: u64, index_interval_bytes: u64) -> io::Result<ScanOutcome> {
        let file_len = file.len_bytes()?;
        let mut outcome = ScanOutcome {
            valid_bytes: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            index: Vec::new(),
            bytes_since_index_entry: 0,
            stopped_by: None,
        };
        let mut chunk = Vec::new();
        let mut chunk_start = 0u64;
        let mut position = 0u64;
        while position < file_len {
            let in_chunk = (position - chunk_start) as usize;
            let available = chunk.len().saturating_sub(in_chunk);
            let needed = if available >= BATCH_LENGTH_PREFIX_BYTES {
                match batch_total_len(&chunk[in_chunk..]) {
                    Ok(total) => total,
                    Err(error) => {
                        outcome.stopped_by = Some(error);
                        break;
                    }
                }
            } else {
                BATCH_HEADER_BYTES
            };
            if available < needed {
                let want = needed.max(SCAN_CHUNK_BYTES).min((file_len - position) as usize);
                chunk.resize(want, 0);
                file.read_exact_at(&mut chunk, position)?;
                chunk_start = position;
                if want < needed {
                    outcome.stopped_by = Some(BatchError::Truncated { needed, available: want });
                    break;
                }
                continue;
            }
            let batch = match BatchView::parse(&chunk[in_chunk..]).and_then(|batch| {
                batch.check_records()?;
                Ok(batch)
            }) {
                Ok(batch) => batch,
                Err(error) => {
                    outcome.stopped_by = Some(error);
                    break;
                }
            };
            if batch.base_offset() != outcome.next_offset {
                outcome.stopped_by = Some(BatchError::BadRecord { record_idx: 0, reason: "batch base offset out of sequence" });
                break;
            }
            outcome.max_timestamp = outcome.max_timestamp.max(batch.max_timestamp());
            if outcome.index.is_empty() || outcome.bytes_since_index_entry >= index_interval_bytes {
                outcome.index.push(IndexEntry {
                    relative_offset: (batch.base_offset() - base_offset) as u32,
                    position: position as u32,
                    max_timestamp_so_far: outcome.max_timestamp,
                });
                outcome.bytes_since_index_entry = 0;
            }
            outcome.bytes_since_index_entry += batch.len() as u64;
            outcome.next_offset = batch.next_offset();
            position += batch.len() as u64;
            outcome.valid_bytes = position;
        }
        Ok(outcome)
    }

    pub fn index_path(&self) -> PathBuf {
        self.log_path.with_extension("index")
    }

    pub fn time_index_path(&self) -> PathBuf {
        self.log_path.with_extension("timeindex")
    }

    /// Writes the offset and time indexes of a segment that will receive no more appends.
    /// The time index ends with an entry for the segment's largest timestamp, so a sealed
    /// segment's maximum timestamp is known without scanning it.
    pub fn write_index_files(&self, backend: &dyn StorageBackend) -> io::Result<()> {
        let mut offsets = Vec::with_capacity(self.index.len() * INDEX_ENTRY_BYTES);
        let mut times = Vec::with_capacity((self.index.len() + 1) * TIME_INDEX_ENTRY_BYTES);
        for entry in &self.index {
            offsets.extend_from_slice(&entry.relative_offset.to_be_bytes());
            offsets.extend_from_slice(&entry.position.to_be_bytes());
            times.extend_from_slice(&entry.max_timestamp_so_far.to_be_bytes());
            times.extend_from_slice(&entry.relative_offset.to_be_bytes());
        }
        let last_relative = (self.next_offset - 1 - self.base_offset) as u32;
        times.extend_from_slice(&self.max_timestamp.to_be_bytes());
        times.extend_from_slice(&last_relative.to_be_bytes());
        write_file_atomically(backend, &self.index_path(), &offsets)?;
        write_file_atomically(backend, &self.time_index_path(), &times)
    }

    /// Loads a sealed segment from its index files; `None` if they are missing or implausible,
    /// in which case the caller rebuilds them with a scan.
    pub fn load_sealed(backend: &dyn StorageBackend, dir: &Path, base_offset: u64, next_offset: u64) -> io::Result<Option<Self>> {
        let (log_path, file) = Self::open_file(backend, dir, base_offset)?;
        let size_bytes = file.len_bytes()?;
        let (Ok(offsets), Ok(times)) =
            (read_whole_file(backend, &log_path.with_extension("index")), read_whole_file(backend, &log_path.with_extension("timeindex")))
        else {
            return Ok(None);
        };
        if offsets.len() % INDEX_ENTRY_BYTES != 0 || times.len() % TIME_INDEX_ENTRY_BYTES != 0 {
            return Ok(None);
        }
        let n_entries = offsets.len() / INDEX_ENTRY_BYTES;
        if n_entries == 0 || times.len() / TIME_INDEX_ENTRY_BYTES != n_entries + 1 {
            return Ok(None);
        }
        let mut index = Vec::with_capacity(n_entries);
        for entry_idx in 0..n_entries {
            let o = &offsets[entry_idx * INDEX_ENTRY_BYTES..];
            let t = &times[entry_idx * TIME_INDEX_ENTRY_BYTES..];
            let entry = IndexEntry {
                relative_offset: u32::from_be_bytes(o[0..4].try_into().expect("4 bytes")),
                position: u32::from_be_bytes(o[4..8].try_into().expect("4 bytes")),
                max_timestamp_so_far: i64::from_be_bytes(t[0..8].try_into().expect("8 bytes")),
            };
            let time_relative = u32::from_be_bytes(t[8..12].try_into().expect("4 bytes"));
            let plausible = time_relative == entry.relative_offset
                && (entry.position as u64) < size_bytes
                && base_offset + (entry.relative_offset as u64) < next_offset
                && index
                    .last()
                    .is_none_or(|prev: &IndexEntry| prev.relative_offset < entry.relative_offset && prev.position < entry.position);
            if !plausible {
                return Ok(None);
            }
            index.push(entry);
        }
        if index[0].position != 0 || index[0].relative_offset != 0 {
            return Ok(None);
        }
        let tail = &times[n_entries * TIME_INDEX_ENTRY_BYTES..];
        let max_timestamp = i64::from_be_bytes(tail[0..8].try_into().expect("8 bytes"));
        let last_relative = u32::from_be_bytes(tail[8..12].try_into().expect("4 bytes"));
        if base_offset + last_relative as u64 + 1 != next_offset {
            return Ok(None);
        }
        // The index files do not record the log's length: check the batches from the last
        // entry to the end, so a sealed log that was cut or extended is rescanned (and refused).
        let last_entry = index[n_entries - 1];
        if !tail_is_intact(
            file.as_ref(),
            last_entry.position as u64,
            base_offset + last_entry.relative_offset as u64,
            size_bytes,
            next_offset,
        )? {
            return Ok(None);
        }
        Ok(Some(Self {
            base_offset,
            file,
            log_path,
            size_bytes,
            durable_bytes: size_bytes,
            next_offset,
            durable_next_offset: next_offset,
            max_timestamp,
            index,
            bytes_since_index_entry: 0,
            first_append_ms: None,
        }))
    }

    /// Byte position from which to scan for `offset`: the last indexed batch at or before it.
    pub fn position_for_offset(&self, offset: u64) -> u64 {
        let relative = offset.saturating_sub(self.base_offset);
        let entry_idx = self.index.partition_point(|entry| entry.relative_offset as u64 <= relative);
        if entry_idx == 0 { 0 } else { self.index[entry_idx - 1].position as u64 }
    }

    /// Byte position from which to scan for the first record with a timestamp at or after
    /// `timestamp_ms`: just past the last indexed batch whose running maximum is below it.
    pub fn position_for_timestamp(&self, timestamp_ms: i64) -> u64 {
        let entry_idx = self.index.partition_point(|entry| entry.max_timestamp_so_far < timestamp_ms);
        if entry_idx == 0 { 0 } else { self.index[entry_idx - 1].position as u64 }
    }

    /// Unlinks the segment's files, indexes first: a crash part way (before the caller syncs
    /// the directory) can leave a log without indexes, which open rebuilds, but never index
    /// files that no log owns.
    pub fn remove_files(&self, backend: &dyn StorageBackend) -> io::Result<()> {
        for path in [self.index_path(), self.time_index_path(), self.log_path.clone()] {
            match backend.remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

/// Whether the bytes from `position` to `size_bytes` are intact batches with consecutive
/// offsets from `first_offset`, the last of which ends just before `next_offset`.
fn tail_is_intact(file: &dyn StorageFile, mut position: u64, first_offset: u64, size_bytes: u64, next_offset: u64) -> io::Result<bool> {
    let mut expected_base_offset = first_offset;
    while position < size_bytes {
        let mut prefix = [0u8; BATCH_LENGTH_PREFIX_BYTES];
        if size_bytes - position < prefix.len() as u64 {
            return Ok(false);
        }
        file.read_exact_at(&mut prefix, position)?;
        let Ok(total) = batch_total_len(&prefix) else { return Ok(false) };
        if size_bytes - position < total as u64 {
            return Ok(false);
        }
        let mut bytes = vec![0u8; total];
        file.read_exact_at(&mut bytes, position)?;
        match BatchView::parse(&bytes) {
            Ok(batch) if batch.base_offset() == expected_base_offset => expected_base_offset = batch.next_offset(),
            _ => return Ok(false),
        }
        position += total as u64;
    }
    Ok(expected_base_offset == next_offset)
}
