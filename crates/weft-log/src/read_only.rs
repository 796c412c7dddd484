//! Reading a partition without opening it: for offline tools (`weft audit verify --data-dir`)
//! that must not change a byte of what they inspect.
//!
//! `PartitionLog::open` runs recovery, which truncates a torn tail and rewrites indexes; that is
//! right for a server and wrong for an inspector, which must report damage instead of repairing
//! it away. This module opens every segment file read-only, walks its batches in order with
//! their checksums checked, and stops at the first torn or damaged batch, saying where.
//! It creates, truncates, renames and removes nothing, and it ignores the index files.

use std::io;
use std::path::{Path, PathBuf};

use crate::LogError;
use crate::backend::{FileBackend, OpenMode, StorageBackend};
use crate::batch::{BATCH_BYTES_MAX, BATCH_LENGTH_PREFIX_BYTES, BatchView, batch_total_len};
use crate::segment::parse_log_file_name;

/// Bytes read from a segment file at a time (a whole batch is read even when larger).
const SCAN_READ_BYTES: usize = 1024 * 1024;

/// Where a read-only scan stopped before the end of the files, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanStop {
    pub file: PathBuf,
    pub position: u64,
    pub reason: String,
}

/// What a read-only scan saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    pub n_batches: u64,
    /// Offset after the last whole batch seen.
    pub next_offset: u64,
    /// Set when a torn or damaged batch ended the scan before the end of the last file.
    pub stopped: Option<ScanStop>,
}

/// Calls `visit` with every whole, checksum-verified batch of the partition in `dir`, in offset
/// order, opening files read-only. A missing directory is an empty partition.
pub fn scan_partition_read_only(dir: &Path, visit: impl FnMut(BatchView<'_>)) -> Result<ScanReport, LogError> {
    scan_partition_read_only_with(&FileBackend, dir, visit)
}

/// `scan_partition_read_only` through `backend`: it only lists the directory, opens files
/// with `OpenMode::ReadOnly` and reads them.
pub fn scan_partition_read_only_with(
    backend: &dyn StorageBackend,
    dir: &Path,
    mut visit: impl FnMut(BatchView<'_>),
) -> Result<ScanReport, LogError> {
    let mut report = ScanReport::default();
    let names = match backend.list_dir(dir) {
        Ok(names) => names,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(error) => return Err(error.into()),
    };
    let mut bases: Vec<u64> = names.iter().filter_map(|name| parse_log_file_name(name)).collect();
    bases.sort_unstable();
    for base in bases {
        let path = dir.join(crate::segment::log_file_name(base));
        let file = backend.open_file(&path, OpenMode::ReadOnly)?;
        let file_len = file.len_bytes()?;
        let mut position = 0u64;
        let stop = |position: u64, reason: String| ScanStop { file: path.clone(), position, reason };
        while position < file_len {
            let remaining = (file_len - position) as usize;
            if remaining < BATCH_LENGTH_PREFIX_BYTES {
                report.stopped = Some(stop(position, format!("{remaining} bytes at the end are not a whole batch")));
                return Ok(report);
            }
            let mut prefix = [0u8; BATCH_LENGTH_PREFIX_BYTES];
            file.read_exact_at(&mut prefix, position)?;
            let total = match batch_total_len(&prefix) {
                Ok(total) if total <= remaining => total,
                Ok(total) => {
                    report.stopped = Some(stop(position, format!("torn batch: {total} bytes announced, {remaining} present")));
                    return Ok(report);
                }
                Err(error) => {
                    report.stopped = Some(stop(position, error.to_string()));
                    return Ok(report);
                }
            };
            debug_assert!(total <= BATCH_BYTES_MAX);
            let mut bytes = vec![0u8; total.max(SCAN_READ_BYTES.min(remaining)).min(remaining)];
            file.read_exact_at(&mut bytes, position)?;
            let mut cursor = 0usize;
            while cursor < bytes.len() {
                let Ok(total) = batch_total_len(&bytes[cursor..]) else { break };
                if cursor + total > bytes.len() {
                    break;
                }
                match BatchView::parse(&bytes[cursor..cursor + total]) {
                    Ok(batch) => {
                        report.n_batches += 1;
                        report.next_offset = batch.next_offset();
                        visit(batch);
                    }
                    Err(error) => {
                        report.stopped = Some(stop(position + cursor as u64, error.to_string()));
                        return Ok(report);
                    }
                }
                cursor += total;
            }
            position += cursor as u64;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::batch::BatchBuilder;
    use crate::{LogConfig, PartitionLog, SystemClock};

    fn bytes_of_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn a_torn_tail_is_reported_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = PartitionLog::open(dir.path(), LogConfig::default(), Arc::new(SystemClock)).unwrap();
            for value in [b"one".as_slice(), b"two", b"three"] {
                let mut builder = BatchBuilder::new(1);
                builder.push::<&str>(1, None, Some(value), &[]);
                log.append_verified(builder.finish_verified()).unwrap();
            }
        }
        let segment = dir.path().join(crate::segment::log_file_name(0));
        let len = std::fs::metadata(&segment).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(len - 3).unwrap();
        let before = bytes_of_dir(dir.path());
        let mut seen = Vec::new();
        let report = scan_partition_read_only(dir.path(), |batch| seen.push(batch.base_offset())).unwrap();
        assert_eq!(seen, vec![0, 1], "the two whole batches are visited");
        assert_eq!(report.next_offset, 2);
        let stopped = report.stopped.expect("the torn batch is reported");
        assert!(stopped.reason.contains("torn"), "{stopped:?}");
        assert_eq!(bytes_of_dir(dir.path()), before, "not a byte of the partition changed");
    }
}
