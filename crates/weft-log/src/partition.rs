//! One partition: an ordered list of segments, the append path with group commit,
//! reads by offset and by time, and retention; `tail` reads the headers of its last batches;
//! `recovery` rebuilds it on open.
//! Every file operation goes through the partition's `StorageBackend` (`FileBackend` unless
//! opened with `PartitionLog::open_with`).
//!
//! Concurrency: appends take the `inner` lock only to write the batch into the page
//! cache; the fsync happens outside it, so concurrent producers share one fsync
//! (group commit). Lock order, where both are held: `sync` before `inner`.
//! Readers see only offsets below `visible_next_offset`: under `fsync: always` that is
//! the durable end, so a consumer never sees an event that a crash could take back.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::backend::{FileBackend, StorageBackend, StorageFile};
use crate::batch::{BATCH_BYTES_MAX, BATCH_LENGTH_PREFIX_BYTES, BatchError, BatchView, batch_total_len, set_base_offset};
use crate::recovery::recover;
use crate::segment::{IndexEntry, Segment};
use crate::{Clock, FsyncPolicy, LogConfig, LogError, VerifiedBatch};

mod tail;

pub use tail::TailScan;

/// Extra bytes read past a fetch's budget so the batch that crosses it can be returned whole.
const READ_SLACK_BYTES: usize = 64 * 1024;
/// How much of a log is written again at once after a failed fdatasync (see `rewrite`).
const REWRITE_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub last_offset: u64,
}

/// Whole batches read from one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadChunk {
    /// Concatenated complete batches; the first may start before the requested offset.
    pub bytes: Vec<u8>,
    /// Offset after the last returned batch (the requested offset when nothing was returned).
    pub next_offset: u64,
    pub log_start_offset: u64,
    /// The high watermark: offsets below it are readable.
    pub visible_next_offset: u64,
}

impl ReadChunk {
    /// The batches of this chunk, in order. `PartitionLog::read` checked each of them (framing
    /// and checksum) when it read them, so they are not checked again.
    pub fn batches(&self) -> impl Iterator<Item = BatchView<'_>> {
        let mut cursor = 0;
        std::iter::from_fn(move || {
            if cursor >= self.bytes.len() {
                return None;
            }
            let total = batch_total_len(&self.bytes[cursor..]).expect("read returns whole batches");
            let view = BatchView::unchecked(&self.bytes[cursor..cursor + total]);
            cursor += total;
            Some(view)
        })
    }
}

/// What recovery found when the partition was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub n_segments: usize,
    pub truncated_bytes: u64,
    pub rebuilt_indexes: usize,
    pub truncated_because: Option<String>,
}

/// Sizes and offsets of a partition at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStats {
    pub log_start_offset: u64,
    pub visible_next_offset: u64,
    pub size_bytes: u64,
    pub n_segments: usize,
}

pub struct PartitionLog {
    dir: PathBuf,
    backend: Arc<dyn StorageBackend>,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    sync: Mutex<SyncState>,
    sync_done: Condvar,
}

struct Inner {
    config: LogConfig,
    /// Keyed by base offset; the last one is the active segment.
    segments: BTreeMap<u64, Segment>,
    next_offset: u64,
    visible_next_offset: u64,
    poisoned: Option<String>,
}

struct SyncState {
    in_progress: bool,
    durable_next_offset: u64,
    failed: Option<String>,
}

impl Inner {
    fn active(&self) -> &Segment {
        self.segments.values().next_back().expect("a partition always has an active segment")
    }
    fn active_mut(&mut self) -> &mut Segment {
        self.segments.values_mut().next_back().expect("a partition always has an active segment")
    }
    fn log_start_offset(&self) -> u64 {
        *self.segments.keys().next().expect("a partition always has a segment")
    }
}

impl PartitionLog {
    /// Opens (or creates) the partition in `dir` on the real file system, recovering from a
    /// crash if needed: the active segment is scanned and cut at the first torn or corrupt batch.
    pub fn open(dir: &Path, config: LogConfig, clock: Arc<dyn Clock>) -> Result<(Self, RecoveryReport), LogError> {
        Self::open_with(Arc::new(FileBackend), dir, config, clock)
    }

    /// Opens the partition like `open`, doing all its file I/O through `backend` (a simulated
    /// disk in crash tests).
    pub fn open_with(
        backend: Arc<dyn StorageBackend>,
        dir: &Path,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, RecoveryReport), LogError> {
        config.check()?;
        let (segments, report) = recover(backend.as_ref(), dir, &config)?;
        let next_offset = segments.values().next_back().map(|s: &Segment| s.next_offset).expect("at least one segment");
        let inner = Inner { config, segments, next_offset, visible_next_offset: next_offset, poisoned: None };
        let log = Self {
            dir: dir.to_path_buf(),
            backend,
            clock,
            inner: Mutex::new(inner),
            sync: Mutex::new(SyncState { in_progress: false, durable_next_offset: next_offset, failed: None }),
            sync_done: Condvar::new(),
        };
        Ok((log, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn lock_sync(&self) -> MutexGuard<'_, SyncState> {
        self.sync.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    pub fn config(&self) -> LogConfig {
        self.lock_inner().config.clone()
    }

    /// Replaces the configuration (retention, fsync policy, segment limits) from now on.
    pub fn set_config(&self, config: LogConfig) -> Result<(), LogError> {
        config.check()?;
        self.lock_inner().config = config;
        Ok(())
    }

    pub fn stats(&self) -> PartitionStats {
        let inner = self.lock_inner();
        PartitionStats {
            log_start_offset: inner.log_start_offset(),
            visible_next_offset: inner.visible_next_offset,
            size_bytes: inner.segments.values().map(|s| s.size_bytes).sum(),
            n_segments: inner.segments.len(),
        }
    }

    /// Checks raw batch bytes once (`VerifiedBatch::verify`) and appends them like
    /// `append_verified`: for callers that hold bytes from outside.
    pub fn append(&self, batch: Vec<u8>) -> Result<Appended, LogError> {
        self.append_verified(VerifiedBatch::verify(batch)?)
    }

    /// Appends one verified batch (its base offset is overwritten) and returns once it is
    /// as durable as the fsync policy promises.
    pub fn append_verified(&self, batch: VerifiedBatch) -> Result<Appended, LogError> {
        let appended = self.append_unsynced(batch)?;
        self.wait_durable(appended.last_offset + 1)?;
        Ok(appended)
    }

    /// Writes one batch like `append_verified` but returns before the fsync: the caller must
    /// call `wait_durable` before acknowledging it. Under `always` the batch stays invisible to
    /// readers until then. Lets a caller write to several partitions and then wait for all
    /// their fsyncs. The batch was checked once on its way in and is not parsed again here.
    /// Blocking: it writes to the segment file and may roll (fsync) a segment.
    pub fn append_unsynced(&self, mut batch: VerifiedBatch) -> Result<Appended, LogError> {
        let n_records = batch.n_records() as u64;
        let batch_max_timestamp = batch.max_timestamp();
        let batch_len = batch.len_bytes() as u64;
        let appended = {
            let mut inner = self.lock_inner();
            if let Some(reason) = &inner.poisoned {
                return Err(LogError::Poisoned(reason.clone()));
            }
            let now_ms = self.clock.now_ms();
            self.roll_if_needed(&mut inner, batch_len, now_ms)?;
            let base_offset = inner.next_offset;
            set_base_offset(batch.bytes_mut(), base_offset);
            let index_interval_bytes = inner.config.index_interval_bytes;
            let segment = inner.active_mut();
            let position = segment.size_bytes;
            if let Err(error) = segment.file.write_all_at(batch.as_bytes(), position) {
                // Cut off whatever part of the batch reached the file, so the log stays a
                // sequence of complete batches; if even that fails, stop writing here.
                let file = Arc::clone(&segment.file);
                if let Err(truncate_error) = file.set_len(position) {
                    inner.poisoned = Some(format!("could not undo a failed write: {truncate_error}"));
                }
                return Err(LogError::from_io(error));
            }
            segment.max_timestamp = segment.max_timestamp.max(batch_max_timestamp);
            if segment.index.is_empty() || segment.bytes_since_index_entry >= index_interval_bytes {
                segment.index.push(IndexEntry {
                    relative_offset: (base_offset - segment.base_offset) as u32,
                    position: position as u32,
                    max_timestamp_so_far: segment.max_timestamp,
                });
                segment.bytes_since_index_entry = 0;
            }
            segment.bytes_since_index_entry += batch_len;
            segment.size_bytes += batch_len;
            segment.next_offset = base_offset + n_records;
            segment.first_append_ms.get_or_insert(now_ms);
            inner.next_offset = base_offset + n_records;
            let fsync = inner.config.fsync;
            if fsync != FsyncPolicy::Always {
                inner.visible_next_offset = inner.next_offset;
            }
            Appended { base_offset, last_offset: base_offset + n_records - 1 }
        };
        Ok(appended)
    }

    /// Returns once offsets below `next_offset` are as durable as the fsync policy promises:
    /// under `always`, after an fsync that covers them (shared with concurrent appenders).
    pub fn wait_durable(&self, next_offset: u64) -> Result<(), LogError> {
        if self.lock_inner().config.fsync == FsyncPolicy::Always { self.sync_until(next_offset) } else { Ok(()) }
    }

    /// Makes everything appended so far durable (used by `interval` and on shutdown).
    pub fn sync(&self) -> Result<(), LogError> {
        let target = self.lock_inner().next_offset;
        self.sync_until(target)
    }

    /// Group commit: returns once offsets below `target_next_offset` are on stable storage.
    /// One caller at a time runs the fsync; the others wait for it and are covered by it.
    fn sync_until(&self, target_next_offset: u64) -> Result<(), LogError> {
        let mut state = self.lock_sync();
        loop {
            if state.durable_next_offset >= target_next_offset {
                return Ok(());
            }
            if let Some(reason) = &state.failed {
                return Err(LogError::Poisoned(reason.clone()));
            }
            if state.in_progress {
                state = self.sync_done.wait(state).unwrap_or_else(|poison| poison.into_inner());
                continue;
            }
            state.in_progress = true;
            drop(state);
            let (file, segment_base_offset, covered_bytes, covered_next_offset) = {
                let inner = self.lock_inner();
                let active = inner.active();
                (Arc::clone(&active.file), active.base_offset, active.size_bytes, inner.next_offset)
            };
            let result = file.sync_data();
            let failure = {
                let mut inner = self.lock_inner();
                match (result, &inner.poisoned) {
                    // An earlier failure (a roll's fsync, a write that could not be undone)
                    // poisoned the partition: Linux reports a failed fsync once, so this fsync
                    // succeeding does not prove that the data reached the disk.
                    (Ok(()), Some(reason)) => Some(reason.clone()),
                    (Ok(()), None) => {
                        if let Some(segment) = inner.segments.get_mut(&segment_base_offset) {
                            segment.durable_bytes = segment.durable_bytes.max(covered_bytes);
                            segment.durable_next_offset = segment.durable_next_offset.max(covered_next_offset);
                        }
                        inner.visible_next_offset = inner.visible_next_offset.max(covered_next_offset);
                        None
                    }
                    // After a failed fsync the page cache may have dropped dirty pages, so
                    // nothing written since the last good fsync can be trusted: refuse writes
                    // until a reopen re-reads the log.
                    (Err(error), _) => Some(poison_after_failed_sync(&mut inner, format!("fsync failed: {error}"))),
                }
            };
            state = self.lock_sync();
            state.in_progress = false;
            match failure {
                None => state.durable_next_offset = state.durable_next_offset.max(covered_next_offset),
                Some(reason) => state.failed = Some(reason),
            }
            self.sync_done.notify_all();
        }
    }

    fn roll_if_needed(&self, inner: &mut Inner, incoming_bytes: u64, now_ms: i64) -> Result<(), LogError> {
        let active = inner.active();
        if active.size_bytes == 0 {
            return Ok(());
        }
        let too_big = active.size_bytes + incoming_bytes > inner.config.segment_bytes_max;
        let too_old = inner
            .config
            .segment_age_max_ms
            .is_some_and(|age_max_ms| now_ms.saturating_sub(active.first_append_ms.unwrap_or(now_ms)) >= age_max_ms);
        if !(too_big || too_old) {
            return Ok(());
        }
        // A sealed segment is always complete on disk: fsync it before the next one exists.
        if let Err(error) = active.file.sync_data() {
            poison_after_failed_sync(inner, format!("fsync failed while rolling a segment: {error}"));
            return Err(LogError::from_io(error));
        }
        let active = inner.active_mut();
        active.durable_bytes = active.size_bytes;
        active.durable_next_offset = active.next_offset;
        active.write_index_files(self.backend.as_ref()).map_err(LogError::from_io)?;
        let next_offset = inner.next_offset;
        let segment = Segment::create(self.backend.as_ref(), &self.dir, next_offset).map_err(LogError::from_io)?;
        // Without a durable entry the new segment (and every batch acknowledged in it) could
        // vanish at power loss; a directory fsync is not retried after a failure either, and the
        // reopen that recovers syncs the directory again.
        if let Err(error) = self.backend.sync_dir(&self.dir) {
            inner.poisoned = Some(format!("directory fsync failed while rolling a segment: {error}"));
            return Err(LogError::from_io(error));
        }
        inner.segments.insert(next_offset, segment);
        Ok(())
    }

    /// Reads whole batches starting with the one that holds `offset`, up to about `max_bytes`
    /// (at least one batch, even if it is larger), from a single segment.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadChunk, LogError> {
        let (file, start_position, end_position, log_start_offset, visible_next_offset) = {
            let inner = self.lock_inner();
            let log_start_offset = inner.log_start_offset();
            let visible_next_offset = inner.visible_next_offset;
            if offset < log_start_offset || offset > visible_next_offset {
                return Err(LogError::OffsetOutOfRange { requested: offset, log_start_offset, next_offset: visible_next_offset });
            }
            if offset == visible_next_offset {
                return Ok(ReadChunk { bytes: Vec::new(), next_offset: offset, log_start_offset, visible_next_offset });
            }
            let (_, segment) = inner.segments.range(..=offset).next_back().expect("offset is at or above the log start");
            (Arc::clone(&segment.file), segment.position_for_offset(offset), segment.size_bytes, log_start_offset, visible_next_offset)
        };
        let mut chunk = ReadChunk { bytes: Vec::new(), next_offset: offset, log_start_offset, visible_next_offset };
        let budget = max_bytes.clamp(1, BATCH_BYTES_MAX);
        let want = ((end_position - start_position) as usize).min(budget + READ_SLACK_BYTES);
        let mut buf = vec![0u8; want];
        file.read_exact_at(&mut buf, start_position)?;
        let segment_tail_len = (end_position - start_position) as usize;
        let mut keep_from = None;
        let mut keep_to = 0usize;
        let mut cursor = 0usize;
        loop {
            if keep_from.is_none() && buf.len() - cursor < BATCH_LENGTH_PREFIX_BYTES && buf.len() < segment_tail_len {
                // Nothing wanted is found yet and the next batch's header was not read: the index
                // entry lies further before `offset` than budget plus slack, so read on.
                let read_to = buf.len();
                buf.resize((read_to + budget + READ_SLACK_BYTES).min(segment_tail_len), 0);
                file.read_exact_at(&mut buf[read_to..], start_position + read_to as u64)?;
            }
            if cursor >= buf.len() {
                break;
            }
            let total = match batch_total_len(&buf[cursor..]) {
                Ok(total) => total,
                Err(BatchError::Truncated { .. }) => break,
                Err(error) => return Err(corrupt_read(&self.dir, start_position + cursor as u64, error)),
            };
            if let Some(from) = keep_from {
                // Stop before a batch that will not be returned, without checking it, so a
                // damaged batch fails only the reads that would return it.
                if cursor + total > buf.len() || cursor + total - from > budget {
                    break;
                }
            } else if cursor + total > buf.len() {
                // The first wanted batch is larger than what was read: fetch it whole.
                buf.resize(cursor + total, 0);
                file.read_exact_at(&mut buf[cursor..], start_position + cursor as u64)?;
            }
            let batch = BatchView::parse(&buf[cursor..]).map_err(|error| corrupt_read(&self.dir, start_position + cursor as u64, error))?;
            if batch.base_offset() >= visible_next_offset {
                break;
            }
            if batch.last_offset() >= offset {
                keep_from.get_or_insert(cursor);
                keep_to = cursor + total;
                chunk.next_offset = batch.next_offset();
            }
            cursor += total;
        }
        if let Some(from) = keep_from {
            buf.truncate(keep_to);
            buf.drain(..from);
            chunk.bytes = buf;
        }
        Ok(chunk)
    }

    /// The offset of the first record whose timestamp is at or after `timestamp_ms`,
    /// or `None` if every readable record is older.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>, LogError> {
        let (candidates, visible_next_offset) = {
            let inner = self.lock_inner();
            let candidates: Vec<_> = inner
                .segments
                .values()
                .filter(|segment| segment.size_bytes > 0 && segment.max_timestamp >= timestamp_ms)
                .map(|segment| (Arc::clone(&segment.file), segment.position_for_timestamp(timestamp_ms), segment.size_bytes))
                .collect();
            (candidates, inner.visible_next_offset)
        };
        for (file, start_position, end_position) in candidates {
            let mut position = start_position;
            while position < end_position {
                let mut prefix = [0u8; 12];
                file.read_exact_at(&mut prefix, position)?;
                let total = batch_total_len(&prefix).map_err(|error| corrupt_read(&self.dir, position, error))?;
                let mut buf = vec![0u8; total];
                file.read_exact_at(&mut buf, position)?;
                let batch = BatchView::parse(&buf).map_err(|error| corrupt_read(&self.dir, position, error))?;
                if batch.base_offset() >= visible_next_offset {
                    return Ok(None);
                }
                if batch.max_timestamp() >= timestamp_ms {
                    let Ok(records) = batch.records() else {
                        // A compressed batch: its first offset is the closest we can say cheaply.
                        return Ok(Some(batch.base_offset()));
                    };
                    for record in records {
                        let record = record.map_err(|error| corrupt_read(&self.dir, position, error))?;
                        if record.timestamp_ms >= timestamp_ms {
                            return Ok(Some(record.offset));
                        }
                    }
                }
                position += total as u64;
            }
        }
        Ok(None)
    }

    /// Deletes whole sealed segments that are past the retention time or beyond the
    /// retention size, oldest first. The active segment is never deleted.
    /// Returns the number of segments removed.
    pub fn enforce_retention(&self) -> Result<usize, LogError> {
        let now_ms = self.clock.now_ms();
        let mut inner = self.lock_inner();
        let mut n_removed = 0;
        loop {
            if inner.segments.len() <= 1 {
                break;
            }
            let total_bytes: u64 = inner.segments.values().map(|s| s.size_bytes).sum();
            let (_, oldest) = inner.segments.first_key_value().expect("more than one segment");
            let expired = inner.config.retention_ms.is_some_and(|retention_ms| oldest.max_timestamp < now_ms.saturating_sub(retention_ms));
            let oversized = inner.config.retention_bytes.is_some_and(|retention_bytes| total_bytes > retention_bytes);
            if !(expired || oversized) {
                break;
            }
            let (_, oldest) = inner.segments.pop_first().expect("more than one segment");
            oldest.remove_files(self.backend.as_ref())?;
            n_removed += 1;
        }
        if n_removed > 0 {
            // Make the unlinks durable, so a crash cannot bring back an old segment in front
            // of a gap.
            self.backend.sync_dir(&self.dir)?;
        }
        Ok(n_removed)
    }
}

fn corrupt_read(dir: &Path, position: u64, error: BatchError) -> LogError {
    LogError::Corrupt { path: dir.display().to_string(), detail: format!("unreadable batch at byte {position}: {error}") }
}

/// Poisons the partition after a failed fdatasync of its active log and returns the reason.
///
/// The writes that fsync covered may be lost although reads still return them (Linux marks the
/// pages clean), and the reopen that recovers, in the same machine, would read them back from
/// the page cache, fdatasync "successfully", and build acknowledged batches on top of bytes that
/// are not on disk. So the unsynced tail of the active log is dealt with now:
/// - when no reader has seen it (always so under `always`), it is cut back to what the last good
///   fdatasync covered, so the batches whose waits fail are gone rather than in limbo;
/// - otherwise (`never`, `interval`) it is written again, unchanged, so its pages are dirty and
///   the reopen's fdatasync really writes them (this is not a retry: this partition never
///   trusts another fdatasync).
fn poison_after_failed_sync(inner: &mut Inner, reason: String) -> String {
    let visible_next_offset = inner.visible_next_offset;
    let active = inner.active_mut();
    let mut reason = reason;
    if active.size_bytes > active.durable_bytes {
        let outcome = if visible_next_offset <= active.durable_next_offset {
            active.file.set_len(active.durable_bytes).map(|()| active.size_bytes = active.durable_bytes)
        } else {
            rewrite(active.file.as_ref(), active.durable_bytes, active.size_bytes)
        };
        if let Err(error) = outcome {
            reason = format!("{reason}; dealing with the unsynced writes failed too: {error}");
        }
    }
    inner.poisoned = Some(reason.clone());
    reason
}

/// Writes bytes `from..to` of `file` again, as they read now, and sets its length to `to` again
/// (a failed fdatasync may have lost a truncate as well as writes).
fn rewrite(file: &dyn StorageFile, from: u64, to: u64) -> io::Result<()> {
    let mut chunk = Vec::new();
    let mut position = from;
    while position < to {
        chunk.resize(((to - position) as usize).min(REWRITE_CHUNK_BYTES), 0);
        file.read_exact_at(&mut chunk, position)?;
        file.write_all_at(&chunk, position)?;
        position += chunk.len() as u64;
    }
    file.set_len(to)
}
