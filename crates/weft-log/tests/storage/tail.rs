//! Tail scans (`PartitionLog::visit_tail_headers`): the headers of a partition's last batches,
//! in offset order, bounded by bytes, across segments, and never past the visible end.

use weft_log::batch::{ProducerStamp, set_producer};
use weft_log::{FsyncPolicy, LogConfig, PartitionLog, VerifiedBatch};

use crate::fixture::{ManualClock, PlainRecord, encode_batch, log_files, open};

const CLOCK_START_MS: i64 = 1_700_000_000_000;
const INDEX_INTERVAL_BYTES: u64 = 512;

/// One appended batch as the test remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    base_offset: u64,
    n_records: u32,
    len_bytes: u64,
    producer: ProducerStamp,
}

/// Appends `n_batches` batches of 1 to 4 records of varying size, stamped by three producers
/// in turn with consecutive sequences.
fn append_stamped_batches(log: &PartitionLog, n_batches: u64) -> Vec<Written> {
    let mut written: Vec<Written> = Vec::new();
    let mut next_sequence = [0i32; 3];
    for batch_idx in 0..n_batches {
        let n_records = 1 + (batch_idx % 4) as u32;
        let records: Vec<PlainRecord> = (0..n_records as u64)
            .map(|record_idx| PlainRecord::sized(batch_idx * 4 + record_idx, CLOCK_START_MS, ((batch_idx * 211) % 900) as usize))
            .collect();
        let mut bytes = encode_batch(&records);
        let producer_idx = (batch_idx % 3) as usize;
        let producer =
            ProducerStamp { producer_id: 100 + producer_idx as i64, producer_epoch: 0, base_sequence: next_sequence[producer_idx] };
        next_sequence[producer_idx] += n_records as i32;
        set_producer(&mut bytes, producer);
        let len_bytes = bytes.len() as u64;
        let appended = log.append(bytes).expect("append succeeds");
        written.push(Written { base_offset: appended.base_offset, n_records, len_bytes, producer });
    }
    written
}

fn scan(log: &PartitionLog, bytes_max: u64) -> (Vec<Written>, weft_log::TailScan) {
    let mut seen = Vec::new();
    let report = log
        .visit_tail_headers(bytes_max, |header| {
            seen.push(Written {
                base_offset: header.base_offset,
                n_records: header.record_count,
                len_bytes: header.total_bytes as u64,
                producer: header.producer,
            })
        })
        .expect("tail scan succeeds");
    (seen, report)
}

/// Proves: for any budget, the scan visits a suffix of the partition's batches, in offset
/// order, with their exact offsets, sizes and producer stamps; the suffix covers at least the
/// last `bytes_max` bytes (or everything), and starts at most one index interval and one
/// batch earlier than it needs to; it says whether it reached the log start.
#[test]
fn a_tail_scan_visits_the_last_batches_in_offset_order_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(CLOCK_START_MS);
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        segment_bytes_max: 8192,
        index_interval_bytes: INDEX_INTERVAL_BYTES,
        ..LogConfig::default()
    };
    let (log, _) = open(dir.path(), config, &clock);
    let written = append_stamped_batches(&log, 80);
    assert!(log_files(dir.path()).len() >= 4, "the test needs several segments");
    let total_bytes: u64 = written.iter().map(|w| w.len_bytes).sum();
    let batch_bytes_max = written.iter().map(|w| w.len_bytes).max().unwrap();

    for bytes_max in [1, 60, 700, 3000, 8192, 9000, 20_000, total_bytes - 1, total_bytes, total_bytes + 1, u64::MAX] {
        let (seen, report) = scan(&log, bytes_max);
        let first_idx = written.len() - seen.len();
        assert_eq!(seen, written[first_idx..], "scan of {bytes_max} bytes visits a suffix, in order");
        assert_eq!(report.n_batches, seen.len() as u64);
        assert_eq!(report.bytes_scanned, seen.iter().map(|w| w.len_bytes).sum::<u64>());
        assert!(report.bytes_scanned >= bytes_max.min(total_bytes), "scan of {bytes_max} bytes covers them: {report:?}");
        if bytes_max < total_bytes {
            assert!(
                report.bytes_scanned < bytes_max + INDEX_INTERVAL_BYTES + batch_bytes_max,
                "scan of {bytes_max} bytes starts near the budget: {report:?}"
            );
        }
        assert_eq!(report.reached_log_start, first_idx == 0, "scan of {bytes_max} bytes: {report:?}");
    }
    let (seen, report) = scan(&log, 0);
    assert!(seen.is_empty() && !report.reached_log_start);
}

/// Proves: under `fsync: always`, a batch written but not yet durable (invisible to readers)
/// is not visited either; once durable it is.
#[test]
fn a_tail_scan_stops_at_the_visible_end() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(CLOCK_START_MS);
    let (log, _) = open(dir.path(), LogConfig { fsync: FsyncPolicy::Always, ..LogConfig::default() }, &clock);
    let written = append_stamped_batches(&log, 3);
    let mut unsynced = encode_batch(&[PlainRecord::sized(99, CLOCK_START_MS, 10)]);
    set_producer(&mut unsynced, ProducerStamp { producer_id: 7, producer_epoch: 0, base_sequence: 0 });
    let appended = log.append_unsynced(VerifiedBatch::verify(unsynced).unwrap()).unwrap();
    let (seen, _) = scan(&log, u64::MAX);
    assert_eq!(seen, written, "the unsynced batch is not visible yet");
    log.wait_durable(appended.last_offset + 1).unwrap();
    let (seen, _) = scan(&log, u64::MAX);
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].producer.producer_id, 7);
}

/// Proves: a reopened partition (recovery, sealed segments loaded from their index files)
/// scans the same headers as before.
#[test]
fn a_tail_scan_after_reopening_sees_the_same_batches() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(CLOCK_START_MS);
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        segment_bytes_max: 8192,
        index_interval_bytes: INDEX_INTERVAL_BYTES,
        ..LogConfig::default()
    };
    let (log, _) = open(dir.path(), config.clone(), &clock);
    append_stamped_batches(&log, 50);
    let before: Vec<_> = [500, 10_000, u64::MAX].iter().map(|&bytes_max| scan(&log, bytes_max)).collect();
    log.sync().unwrap();
    drop(log);
    let (log, _) = open(dir.path(), config, &clock);
    let after: Vec<_> = [500, 10_000, u64::MAX].iter().map(|&bytes_max| scan(&log, bytes_max)).collect();
    assert_eq!(before, after);
}
