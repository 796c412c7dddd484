//! Recovery on open: list a partition's segments, trust or rebuild the sealed ones' indexes,
//! cut the active segment at its first torn or corrupt batch, and make everything it kept
//! durable (the active log and the directory) before anyone can read it.
//!
//! It owns no state: it returns the segments for `PartitionLog` to own.
//! The steps are written down in `FORMAT.md`, "Recovery (on open)".

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::backend::{OpenMode, StorageBackend, StorageFile, create_dir_all, sync_ancestors};
use crate::partition::RecoveryReport;
use crate::segment::{Segment, parse_log_file_name};
use crate::{LogConfig, LogError};

/// How much of the active log is copied at once when its fdatasync failed at open.
const COPY_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// The segments of the partition in `dir`, keyed by base offset (the last is the active one).
pub(crate) fn recover(
    backend: &dyn StorageBackend,
    dir: &Path,
    config: &LogConfig,
) -> Result<(BTreeMap<u64, Segment>, RecoveryReport), LogError> {
    create_dir_all(backend, dir)?;
    let mut bases = Vec::new();
    for name in backend.list_dir(dir)? {
        if name.ends_with(".tmp") {
            backend.remove_file(&dir.join(&name))?;
        } else if let Some(base) = parse_log_file_name(&name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    let mut report = RecoveryReport::default();
    let mut segments = BTreeMap::new();
    if bases.is_empty() {
        // A new partition (or one whose first open failed part way): the names of its
        // directory and of every directory above it must survive power loss with its data.
        sync_ancestors(backend, dir)?;
        segments.insert(0, Segment::create(backend, dir, 0)?);
    }
    for (segment_idx, &base) in bases.iter().enumerate() {
        let segment = match bases.get(segment_idx + 1) {
            Some(&next_base) => open_sealed(backend, dir, base, next_base, config, &mut report)?,
            None => open_active(backend, dir, base, config, &mut report)?,
        };
        if let Some((_, previous)) = segments.last_key_value() {
            let previous: &Segment = previous;
            if previous.next_offset != segment.base_offset {
                return Err(corrupt(
                    &segment.log_path,
                    format!("segment starts at {} but the previous one ends at {}", segment.base_offset, previous.next_offset),
                ));
            }
        }
        segments.insert(base, segment);
    }
    // An empty active segment may have no durable directory entry yet: it is new, or a roll
    // created it and then failed at (or was killed before) its directory fsync. Sync the
    // directory before anything is appended to it. A non-empty active segment received its
    // appends only after such a sync, so its entry is durable already. (The removals of `.tmp`
    // and stale index files above need not be durable: open removes them again.)
    if segments.values().next_back().is_some_and(|active: &Segment| active.size_bytes == 0) {
        backend.sync_dir(dir)?;
    }
    report.n_segments = segments.len();
    Ok((segments, report))
}

fn open_sealed(
    backend: &dyn StorageBackend,
    dir: &Path,
    base: u64,
    next_base: u64,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<Segment, LogError> {
    if let Some(segment) = Segment::load_sealed(backend, dir, base, next_base)? {
        return Ok(segment);
    }
    let (log_path, file) = Segment::open_file(backend, dir, base)?;
    let scan = Segment::scan(file.as_ref(), base, config.index_interval_bytes)?;
    let file_len = file.len_bytes()?;
    if scan.valid_bytes != file_len || scan.next_offset != next_base {
        let why = scan.stopped_by.map(|e| e.to_string()).unwrap_or_else(|| "offsets do not reach the next segment".into());
        return Err(corrupt(&log_path, format!("sealed segment is damaged at byte {}: {why}", scan.valid_bytes)));
    }
    let segment = Segment::recovered(base, file, log_path, scan);
    // The index files are an optimisation: a full disk must not stop the partition from opening.
    // A half-written pair fails the checks of the next open and is rebuilt then.
    let _ = segment.write_index_files(backend);
    report.rebuilt_indexes += 1;
    Ok(segment)
}

fn open_active(
    backend: &dyn StorageBackend,
    dir: &Path,
    base: u64,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<Segment, LogError> {
    let (log_path, file) = Segment::open_file(backend, dir, base)?;
    let scan = Segment::scan(file.as_ref(), base, config.index_interval_bytes)?;
    let file_len = file.len_bytes()?;
    if scan.valid_bytes < file_len {
        // Everything after the first bad batch was never acknowledged under `always`
        // (acknowledgement waits for the fsync that covers it), so it is cut off.
        file.set_len(scan.valid_bytes)?;
        report.truncated_bytes = file_len - scan.valid_bytes;
        report.truncated_because = scan.stopped_by.as_ref().map(|e| e.to_string());
    }
    // Whatever survived is made durable before anyone can read it.
    let file = sync_recovered_log(backend, &log_path, file, scan.valid_bytes)?;
    for stale in [log_path.with_extension("index"), log_path.with_extension("timeindex")] {
        match backend.remove_file(&stale) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Segment::recovered(base, file, log_path, scan))
}

/// fdatasyncs the recovered active log and returns the file to use from now on.
///
/// If that fdatasync fails, the kernel may have marked the unsynced pages clean without writing
/// them, so a retry would report success for bytes that are not on disk, and so would every
/// later open in this boot, which reads the same page cache. So:
/// - a `{base}.resync` marker is created first: it tells a later open in the same boot that the
///   page cache of this log cannot be trusted (it need not be durable: power loss empties the
///   page cache too);
/// - the kept bytes are copied to a fresh `{base}.tmp`, which is fdatasynced and renamed over the
///   log, and the directory is synced (writing them again in place could tear the durable bytes
///   next to them if the power failed during the rewrite);
/// - then the marker is removed. If any step fails, the open fails, and the next open, finding
///   the marker, copies the log even if its own fdatasync succeeds.
fn sync_recovered_log(
    backend: &dyn StorageBackend,
    log_path: &Path,
    file: Arc<dyn StorageFile>,
    valid_bytes: u64,
) -> io::Result<Arc<dyn StorageFile>> {
    let marker_path = log_path.with_extension("resync");
    let distrusted = match backend.open_file(&marker_path, OpenMode::ReadOnly) {
        Ok(_) => true,
        Err(error) if error.kind() == io::ErrorKind::NotFound => false,
        Err(error) => return Err(error),
    };
    if !distrusted {
        if file.sync_data().is_ok() {
            return Ok(file);
        }
        backend.open_file(&marker_path, OpenMode::CreateTruncate)?;
    }
    let tmp_path = log_path.with_extension("tmp");
    let copy = backend.open_file(&tmp_path, OpenMode::CreateTruncate)?;
    let mut chunk = Vec::new();
    let mut position = 0u64;
    while position < valid_bytes {
        chunk.resize(((valid_bytes - position) as usize).min(COPY_CHUNK_BYTES), 0);
        file.read_exact_at(&mut chunk, position)?;
        copy.write_all_at(&chunk, position)?;
        position += chunk.len() as u64;
    }
    copy.sync_data()?;
    drop(copy);
    backend.rename(&tmp_path, log_path)?;
    // Until the rename is durable, power loss could bring back the old file without whatever
    // is appended to the copy.
    backend.sync_dir(log_path.parent().expect("a log file is in a directory"))?;
    let file = backend.open_file(log_path, OpenMode::ReadWrite)?;
    // A marker left behind (if this fails) costs the next open one more copy, nothing else.
    let _ = backend.remove_file(&marker_path);
    Ok(file)
}

pub(crate) fn corrupt(path: &Path, detail: String) -> LogError {
    LogError::Corrupt { path: path.display().to_string(), detail }
}
