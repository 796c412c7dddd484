//! Sealed segments on open: their `.index` and `.timeindex` files are trusted when
//! plausible and rebuilt from the log when missing or implausible, while a damaged sealed
//! `.log` makes open (or the read that meets the damage) fail loudly with `LogError::Corrupt`,
//! never silently lose or invent records.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use weft_log::{FsyncPolicy, LogConfig, LogError, PartitionLog};

use crate::fixture::{ManualClock, PlainRecord, SeededBytes, copy_partition_dir, encode_batch, log_files, open, read_batches_from};

const CLOCK_START_MS: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig { fsync: FsyncPolicy::Never, segment_bytes_max: 2048, index_interval_bytes: 300, ..LogConfig::default() }
}

/// A closed partition with several sealed segments, and the bytes of every batch in it.
struct SealedPartition {
    _root: TempDir,
    original_dir: PathBuf,
    scratch_dir: PathBuf,
    batches: Vec<Vec<u8>>,
    /// Timestamp of every record, by offset.
    timestamps_ms: Vec<i64>,
}

impl SealedPartition {
    fn write() -> Self {
        let root = tempfile::tempdir().unwrap();
        let original_dir = root.path().join("original");
        let clock = ManualClock::starting_at(CLOCK_START_MS);
        let (log, _) = open(&original_dir, config(), &clock);
        let mut timestamps_ms = Vec::new();
        for batch_idx in 0..40u64 {
            let next_offset = timestamps_ms.len() as u64;
            let records: Vec<PlainRecord> = (0..1 + batch_idx % 3)
                .map(|record_idx| {
                    PlainRecord::sized(
                        next_offset + record_idx,
                        CLOCK_START_MS + (next_offset + record_idx) as i64 * 5,
                        60 + (batch_idx as usize * 41) % 180,
                    )
                })
                .collect();
            timestamps_ms.extend(records.iter().map(|record| record.timestamp_ms));
            log.append(encode_batch(&records)).unwrap();
        }
        let batches = read_batches_from(&log, 0, 1 << 20).unwrap();
        drop(log);
        assert!(log_files(&original_dir).len() >= 4, "the fixture needs several sealed segments");
        let scratch_dir = root.path().join("scratch");
        Self { _root: root, original_dir, scratch_dir, batches, timestamps_ms }
    }

    /// A fresh copy of the partition and the `.log` path of its second segment (sealed).
    fn scratch_copy(&self) -> PathBuf {
        copy_partition_dir(&self.original_dir, &self.scratch_dir);
        log_files(&self.scratch_dir)[1].1.clone()
    }

    fn open_scratch(&self) -> Result<(PartitionLog, weft_log::RecoveryReport), LogError> {
        PartitionLog::open(&self.scratch_dir, config(), ManualClock::starting_at(CLOCK_START_MS))
    }

    fn assert_reads_everything(&self, log: &PartitionLog, situation: &str) {
        assert_eq!(read_batches_from(log, 0, 1).unwrap(), self.batches, "{situation}: every batch reads back");
        for (offset, &timestamp_ms) in self.timestamps_ms.iter().enumerate() {
            assert_eq!(log.offset_for_timestamp(timestamp_ms).unwrap(), Some(offset as u64), "{situation}: time lookup of offset {offset}");
        }
    }
}

fn index_paths(log_path: &Path) -> [PathBuf; 2] {
    [log_path.with_extension("index"), log_path.with_extension("timeindex")]
}

/// Proves: when a sealed segment's `.index` or `.timeindex` is missing, truncated, zeroed,
/// overwritten with random bytes or extended with garbage, open rebuilds both from the log
/// (reporting it), reads and time lookups still return everything, the rebuilt files are
/// byte-equal to the ones written when the segment was sealed, and the next open trusts them.
#[test]
fn damaged_or_missing_index_files_of_a_sealed_segment_are_rebuilt() {
    let sealed = SealedPartition::write();
    type Damage = fn(&Path, &Path);
    let damages: [(&str, Damage); 8] = [
        ("missing .index", |index, _| fs::remove_file(index).unwrap()),
        ("missing .timeindex", |_, time_index| fs::remove_file(time_index).unwrap()),
        ("both missing", |index, time_index| {
            fs::remove_file(index).unwrap();
            fs::remove_file(time_index).unwrap();
        }),
        (".index cut mid-entry", |index, _| truncate_by(index, 3)),
        (".timeindex without its final entry", |_, time_index| truncate_by(time_index, 12)),
        (".index zeroed", |index, _| zero(index)),
        (".index overwritten with random bytes", |index, _| {
            let len = fs::metadata(index).unwrap().len() as usize;
            fs::write(index, SeededBytes::new(7).bytes(len)).unwrap();
        }),
        (".timeindex with an extra entry", |_, time_index| {
            OpenOptions::new().append(true).open(time_index).unwrap().write_all(&[0x7f; 12]).unwrap();
        }),
    ];
    for (situation, damage) in damages {
        let log_path = sealed.scratch_copy();
        let [index, time_index] = index_paths(&log_path);
        let (index_before, time_index_before) = (fs::read(&index).unwrap(), fs::read(&time_index).unwrap());
        damage(&index, &time_index);
        let (log, report) = sealed.open_scratch().unwrap_or_else(|error| panic!("{situation}: open failed: {error}"));
        assert_eq!(report.rebuilt_indexes, 1, "{situation}: the damaged segment's indexes are rebuilt");
        assert_eq!(report.truncated_bytes, 0, "{situation}");
        sealed.assert_reads_everything(&log, situation);
        assert_eq!(fs::read(&index).unwrap(), index_before, "{situation}: rebuilt .index equals the one written at seal");
        assert_eq!(fs::read(&time_index).unwrap(), time_index_before, "{situation}: rebuilt .timeindex equals the one written at seal");
        drop(log);
        let (_, report) = sealed.open_scratch().unwrap();
        assert_eq!(report.rebuilt_indexes, 0, "{situation}: rebuilt indexes are trusted on the next open");
    }
}

/// Proves: a sealed segment's log that is damaged in a way open can see — any damage once
/// its index files are gone (so open must rescan it), or a cut or extension of its length
/// even with intact index files — makes open fail with `LogError::Corrupt` naming the file,
/// instead of truncating acknowledged data the way recovery of the active segment does.
#[test]
fn a_damaged_sealed_segment_log_makes_open_fail_loudly() {
    let sealed = SealedPartition::write();
    type Damage = fn(&Path);
    let damages: [(&str, Damage, bool); 6] = [
        ("flipped byte in the middle", |log| flip_byte(log, 200), false),
        ("cut by one byte", |log| truncate_by(log, 1), false),
        ("emptied", |log| truncate_by(log, fs::metadata(log).unwrap().len()), false),
        ("extended with zeros", |log| append_bytes(log, &[0; 100]), false),
        ("cut by one byte, indexes intact", |log| truncate_by(log, 1), true),
        ("extended with zeros, indexes intact", |log| append_bytes(log, &[0; 100]), true),
    ];
    for (situation, damage, keep_index_files) in damages {
        let log_path = sealed.scratch_copy();
        if !keep_index_files {
            for path in index_paths(&log_path) {
                fs::remove_file(path).unwrap();
            }
        }
        damage(&log_path);
        match sealed.open_scratch() {
            Err(LogError::Corrupt { path, detail }) => {
                assert!(
                    path.ends_with(log_path.file_name().unwrap().to_str().unwrap()),
                    "{situation}: error names the damaged file, not {path}"
                );
                assert!(!detail.is_empty());
            }
            Err(other) => panic!("{situation}: expected a corrupt-log error, got {other}"),
            Ok(_) => panic!("{situation}: open accepted a damaged sealed segment"),
        }
    }
}

/// Proves: a flipped byte inside a sealed segment with intact index files is not looked
/// for at open (sealed segments are not rescanned, see `FORMAT.md`), but the read that
/// meets it fails with `LogError::Corrupt` instead of returning the bad batch, and the
/// batches before it in the segment stay readable.
#[test]
fn a_flipped_byte_in_a_sealed_segment_fails_the_read_that_meets_it() {
    let sealed = SealedPartition::write();
    let log_path = sealed.scratch_copy();
    let segment_base = log_files(&sealed.scratch_dir)[1].0;
    let first_batch_len = weft_log::batch::batch_total_len(&fs::read(&log_path).unwrap()).unwrap();
    flip_byte(&log_path, first_batch_len as u64 + 30);
    let (log, report) = sealed.open_scratch().expect("open trusts sealed segments with index files");
    assert_eq!(report.rebuilt_indexes, 0);
    let first = log.read(segment_base, 1).expect("the batch before the damage reads");
    assert_eq!(first.bytes.len(), first_batch_len);
    match log.read(first.next_offset, 1) {
        Err(LogError::Corrupt { .. }) => {}
        other => panic!("reading the damaged batch must fail loudly, got {other:?}"),
    }
}

/// Proves: a leftover temporary file from an index write interrupted by a crash is
/// removed on open and does not disturb anything.
#[test]
fn leftover_temporary_index_files_are_removed_on_open() {
    let sealed = SealedPartition::write();
    sealed.scratch_copy();
    let leftover = sealed.scratch_dir.join(format!("{:020}.tmp", 0));
    fs::write(&leftover, b"half an index").unwrap();
    let (log, report) = sealed.open_scratch().unwrap();
    assert_eq!(report.rebuilt_indexes, 0);
    assert!(!leftover.exists());
    sealed.assert_reads_everything(&log, "after a leftover .tmp");
}

fn truncate_by(path: &Path, n_bytes: u64) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len - n_bytes).unwrap();
}

fn zero(path: &Path) {
    let len = fs::metadata(path).unwrap().len() as usize;
    fs::write(path, vec![0; len]).unwrap();
}

fn flip_byte(path: &Path, position: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position as usize] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new().append(true).open(path).unwrap().write_all(bytes).unwrap();
}
