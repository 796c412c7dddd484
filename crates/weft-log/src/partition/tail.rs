//! The headers of a partition's last batches, newest bytes first in the choice and oldest first
//! in the visit: what a caller needs to rebuild state that the batches themselves carry (the
//! Kafka edge's idempotent producer ids, epochs and sequences) without a file of its own that
//! could disagree with the log.
//!
//! The scan is bounded by bytes: it covers at least the last `bytes_max` bytes of the partition
//! (or all of it, if smaller), starting at the indexed batch at or before that point, so at most
//! one index interval more. It reads headers only: a batch larger than the read buffer is
//! skipped over, not read. Checksums are not checked here (they cover the records, which are
//! not read); the framing of every header is, and a header that is not a batch is `Corrupt`.
//! Only batches below the visible end are visited, as readers see them.

use std::sync::Arc;

use super::{PartitionLog, corrupt_read};
use crate::LogError;
use crate::backend::StorageFile;
use crate::batch::{BATCH_HEADER_BYTES, BatchError, BatchHeader};

/// How much of a segment file is read at once while scanning headers.
const TAIL_READ_BYTES: usize = 1024 * 1024;

/// What one tail scan covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailScan {
    pub n_batches: u64,
    /// Bytes of batches visited (their whole length, though only headers were read).
    pub bytes_scanned: u64,
    /// The scan started at the first batch of the partition: nothing older exists.
    pub reached_log_start: bool,
}

impl PartitionLog {
    /// Calls `visit` with the header of every batch in (at least) the last `bytes_max` bytes of
    /// the partition, in offset order, up to the visible end. Blocking: it reads segment files.
    pub fn visit_tail_headers(&self, bytes_max: u64, mut visit: impl FnMut(&BatchHeader)) -> Result<TailScan, LogError> {
        let (plan, reached_log_start, visible_next_offset) = {
            let inner = self.lock_inner();
            // Newest segment first, until the byte budget is spent; the oldest one chosen is
            // entered at the last indexed batch at or before the budget's start.
            let mut plan: Vec<(Arc<dyn StorageFile>, u64, u64)> = Vec::new();
            let mut remaining = bytes_max;
            let mut reached_log_start = true;
            for segment in inner.segments.values().rev() {
                if remaining == 0 {
                    reached_log_start = false;
                    break;
                }
                if segment.size_bytes == 0 {
                    continue;
                }
                let start = if remaining >= segment.size_bytes {
                    remaining -= segment.size_bytes;
                    0
                } else {
                    let target = segment.size_bytes - remaining;
                    remaining = 0;
                    let entry_idx = segment.index.partition_point(|entry| entry.position as u64 <= target);
                    if entry_idx == 0 { 0 } else { segment.index[entry_idx - 1].position as u64 }
                };
                if start > 0 {
                    reached_log_start = false;
                }
                plan.push((Arc::clone(&segment.file), start, segment.size_bytes));
            }
            plan.reverse();
            (plan, reached_log_start, inner.visible_next_offset)
        };
        let mut scan = TailScan { reached_log_start, ..TailScan::default() };
        let mut buf = Vec::new();
        for (file, start, end) in plan {
            // `buf` holds the file's bytes from `buf_start`.
            let mut buf_start = start;
            buf.clear();
            let mut position = start;
            while position < end {
                let buffered_to = buf_start + buf.len() as u64;
                if position < buf_start || position + BATCH_HEADER_BYTES as u64 > buffered_to {
                    let len = ((end - position) as usize).min(TAIL_READ_BYTES);
                    if len < BATCH_HEADER_BYTES {
                        let error = BatchError::Truncated { needed: BATCH_HEADER_BYTES, available: len };
                        return Err(corrupt_read(&self.dir, position, error));
                    }
                    buf.resize(len, 0);
                    file.read_exact_at(&mut buf, position)?;
                    buf_start = position;
                }
                let at = (position - buf_start) as usize;
                let header = BatchHeader::parse(&buf[at..]).map_err(|error| corrupt_read(&self.dir, position, error))?;
                if header.base_offset >= visible_next_offset {
                    return Ok(scan);
                }
                visit(&header);
                scan.n_batches += 1;
                scan.bytes_scanned += header.total_bytes as u64;
                position += header.total_bytes as u64;
            }
        }
        Ok(scan)
    }
}
