//! Reads by offset and by time: whole batches only, at least one batch per read whatever
//! the budget, and the first record at or after a time found across segment boundaries.

use weft_log::batch::BatchView;
use weft_log::{FsyncPolicy, LogConfig, LogError, PartitionLog};

use crate::fixture::{ManualClock, PlainRecord, encode_batch, log_files, open, records_of, split_batches};

const CLOCK_START_MS: i64 = 1_700_000_000_000;

/// Appends `n_batches` batches of 1 to 4 records whose values grow up to `value_bytes_max`;
/// timestamps wander backwards as well as forwards. Returns every record written.
fn append_mixed_batches(log: &PartitionLog, n_batches: u64, value_bytes_max: usize) -> Vec<PlainRecord> {
    let mut written = Vec::new();
    for batch_idx in 0..n_batches {
        let next_offset = written.len() as u64;
        let records: Vec<PlainRecord> = (0..1 + batch_idx % 4)
            .map(|record_idx| {
                let offset = next_offset + record_idx;
                let wobble_ms = ((offset * 7919) % 50) as i64 - 25;
                let mut record =
                    PlainRecord::sized(offset, CLOCK_START_MS + offset as i64 * 10 + wobble_ms, (offset as usize * 97) % value_bytes_max);
                record.offset = offset;
                record
            })
            .collect();
        let appended = log.append(encode_batch(&records)).expect("append succeeds");
        assert_eq!(appended.base_offset, next_offset);
        written.extend(records);
    }
    written
}

/// Proves: for every offset and a range of budgets (including budgets smaller than any
/// batch), `read` returns whole batches only, starting with the batch that holds the offset,
/// never more than the budget unless a single batch is larger, within one segment, and as
/// many following batches of that segment as fit.
#[test]
fn read_returns_at_least_one_whole_batch_and_never_a_partial_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(CLOCK_START_MS);
    let config = LogConfig { fsync: FsyncPolicy::Never, segment_bytes_max: 8192, index_interval_bytes: 512, ..LogConfig::default() };
    let (log, _) = open(dir.path(), config, &clock);
    let written = append_mixed_batches(&log, 60, 1500);
    let segment_bases: Vec<u64> = log_files(dir.path()).into_iter().map(|(base_offset, _)| base_offset).collect();
    assert!(segment_bases.len() >= 3, "the test needs several segments");
    let segment_next_offset =
        |offset: u64| segment_bases.iter().copied().find(|&base_offset| base_offset > offset).unwrap_or(written.len() as u64);

    for offset in 0..written.len() as u64 {
        for max_bytes in [0, 1, 60, 61, 100, 700, 2000, 5000, 1 << 20] {
            let chunk = log.read(offset, max_bytes).expect("read succeeds");
            let batches = split_batches(&chunk.bytes);
            let first = batches.first().unwrap_or_else(|| panic!("read({offset}, {max_bytes}) returned no batch"));
            assert!(
                first.base_offset() <= offset && offset <= first.last_offset(),
                "read({offset}, {max_bytes}) starts with the batch holding the offset"
            );
            assert!(chunk.bytes.len() <= max_bytes.max(first.len()), "read({offset}, {max_bytes}) returned {} bytes", chunk.bytes.len());
            assert_eq!(chunk.next_offset, batches.last().unwrap().next_offset());
            assert!(chunk.next_offset <= segment_next_offset(offset), "a read stays within one segment");
            let records: Vec<PlainRecord> = batches.iter().flat_map(records_of).filter(|record| record.offset >= offset).collect();
            assert_eq!(records[..], written[offset as usize..chunk.next_offset as usize]);
            if chunk.next_offset < segment_next_offset(offset) {
                let following = log.read(chunk.next_offset, 1).unwrap();
                let following_len = BatchView::parse(&following.bytes).unwrap().len();
                assert!(
                    chunk.bytes.len() + following_len > max_bytes.max(1),
                    "read({offset}, {max_bytes}) stopped although the next batch fits"
                );
            }
        }
    }
}

/// Proves: a read finds its batch even when the nearest index entry lies further before it
/// than the read's budget plus slack, as happens with a large `index_interval_bytes`.
/// (Before the fix in `PartitionLog::read` this returned an empty chunk below the high
/// watermark, which a consumer cannot tell from "no new data".)
#[test]
fn read_finds_its_batch_however_far_the_index_entry_is_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(CLOCK_START_MS);
    let config = LogConfig { fsync: FsyncPolicy::Never, index_interval_bytes: 1 << 20, ..LogConfig::default() };
    let (log, _) = open(dir.path(), config, &clock);
    let n_records = 300u64;
    for offset in 0..n_records {
        log.append(encode_batch(&[PlainRecord::sized(offset, CLOCK_START_MS, 1000)])).unwrap();
    }
    for offset in [0, 1, 64, 65, 150, n_records - 1] {
        let chunk = log.read(offset, 1).unwrap();
        let batches = split_batches(&chunk.bytes);
        assert_eq!(batches.len(), 1, "read({offset}, 1) returns exactly one batch");
        assert_eq!(batches[0].base_offset(), offset);
    }
}

/// Proves: reads outside the readable range are refused with the bounds, and a read at the
/// end returns nothing rather than an error.
#[test]
fn reads_outside_the_log_are_refused_with_its_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(CLOCK_START_MS);
    let config = LogConfig { segment_bytes_max: 1024, retention_bytes: Some(1), ..LogConfig::default() };
    let (log, _) = open(dir.path(), config, &clock);
    let written = append_mixed_batches(&log, 20, 300);
    assert!(log.enforce_retention().unwrap() > 0);
    let stats = log.stats();
    assert!(stats.log_start_offset > 0);
    let next_offset = written.len() as u64;
    assert_eq!(stats.visible_next_offset, next_offset);
    for requested in [0, stats.log_start_offset - 1, next_offset + 1, u64::MAX] {
        match log.read(requested, 1000) {
            Err(LogError::OffsetOutOfRange { requested: r, log_start_offset, next_offset: n }) => {
                assert_eq!((r, log_start_offset, n), (requested, stats.log_start_offset, next_offset));
            }
            other => panic!("read({requested}) should be out of range, got {other:?}"),
        }
    }
    let at_end = log.read(next_offset, 1000).unwrap();
    assert!(at_end.bytes.is_empty());
    assert_eq!(at_end.next_offset, next_offset);
}

/// Proves: `offset_for_timestamp` returns the smallest offset whose record timestamp is at
/// or after the time asked for, across many sealed segments (indexes loaded from files
/// after a reopen as well as built while appending), with timestamps that are not monotonic,
/// for times before, inside and after the log; and it ignores segments deleted by retention.
#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after_a_time_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(CLOCK_START_MS);
    let config = LogConfig { fsync: FsyncPolicy::Never, segment_bytes_max: 2048, index_interval_bytes: 200, ..LogConfig::default() };
    let (log, _) = open(dir.path(), config.clone(), &clock);
    let written = append_mixed_batches(&log, 80, 300);
    assert!(log_files(dir.path()).len() >= 5, "the test needs many segments");
    let expected_from = |log_start_offset: u64, timestamp_ms: i64| {
        written[log_start_offset as usize..].iter().find(|record| record.timestamp_ms >= timestamp_ms).map(|record| record.offset)
    };
    let min_ms = written.iter().map(|record| record.timestamp_ms).min().unwrap();
    let max_ms = written.iter().map(|record| record.timestamp_ms).max().unwrap();

    let check_every_time = |log: &PartitionLog, log_start_offset: u64| {
        for timestamp_ms in (min_ms - 3)..=(max_ms + 3) {
            assert_eq!(
                log.offset_for_timestamp(timestamp_ms).unwrap(),
                expected_from(log_start_offset, timestamp_ms),
                "first offset at or after {timestamp_ms}"
            );
        }
    };
    check_every_time(&log, 0);
    drop(log);
    let (log, report) = open(dir.path(), config.clone(), &clock);
    assert_eq!(report.rebuilt_indexes, 0);
    check_every_time(&log, 0);

    log.set_config(LogConfig { retention_bytes: Some(6000), ..config }).unwrap();
    assert!(log.enforce_retention().unwrap() > 0);
    let log_start_offset = log.stats().log_start_offset;
    check_every_time(&log, log_start_offset);
}
