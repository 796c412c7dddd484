//! Model-based test: a partition driven by random operations (appends of multi-record
//! batches, reads by offset and by time, reopen, clock moves, retention) with small
//! segments, so dozens of segments are rolled, sealed, reopened and deleted, must always
//! agree with a plain in-memory list of records.
//!
//! Run more cases with `PROPTEST_CASES=1000 cargo test -p weft-log --test storage model`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use weft_log::batch::set_base_offset;
use weft_log::{FsyncPolicy, LogConfig, LogError, PartitionLog};

use crate::fixture::{ManualClock, PlainRecord, encode_batch, log_files, open, records_of, split_batches};

const CLOCK_START_MS: i64 = 1_700_000_000_000;
const N_CASES_DEFAULT: u32 = 64;

#[derive(Debug, Clone)]
enum Operation {
    /// One batch; each record is (value size in bytes, timestamp offset from now in ms),
    /// so timestamps within and across batches go backwards as well as forwards.
    Append {
        records: Vec<(usize, i64)>,
    },
    /// `offset_pick` is reduced to an offset from two below the log start to two past
    /// the end, so out-of-range reads are exercised on both sides.
    Read {
        offset_pick: u64,
        max_bytes: usize,
    },
    ReadByTime {
        ms_before_now: i64,
    },
    Reopen,
    AdvanceClock {
        ms: i64,
    },
    EnforceRetention,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        6 => prop::collection::vec((0usize..400, -100i64..100), 1..5).prop_map(|records| Operation::Append { records }),
        4 => (any::<u64>(), 1usize..3000).prop_map(|(offset_pick, max_bytes)| Operation::Read { offset_pick, max_bytes }),
        2 => (-200i64..8000).prop_map(|ms_before_now| Operation::ReadByTime { ms_before_now }),
        1 => Just(Operation::Reopen),
        2 => (0i64..1500).prop_map(|ms| Operation::AdvanceClock { ms }),
        1 => Just(Operation::EnforceRetention),
    ]
}

fn log_config() -> impl Strategy<Value = LogConfig> {
    let fsync = prop_oneof![Just(FsyncPolicy::Always), Just(FsyncPolicy::IntervalMs(5)), Just(FsyncPolicy::Never)];
    let index_interval_bytes = prop_oneof![Just(1u64), 64u64..1024, Just(4096u64)];
    (
        fsync,
        1024u64..=2048,
        index_interval_bytes,
        proptest::option::of(1000i64..6000),
        proptest::option::of(2000u64..12000),
        proptest::option::of(500i64..4000),
    )
        .prop_map(|(fsync, segment_bytes_max, index_interval_bytes, retention_ms, retention_bytes, segment_age_max_ms)| LogConfig {
            fsync,
            segment_bytes_max,
            segment_age_max_ms,
            index_interval_bytes,
            retention_ms,
            retention_bytes,
        })
}

/// What the log should hold: every record ever appended (offset = index), every batch
/// as stored, and where the log now starts.
struct Model {
    records: Vec<PlainRecord>,
    batches: BTreeMap<u64, Vec<u8>>,
    log_start_offset: u64,
}

impl Model {
    fn next_offset(&self) -> u64 {
        self.records.len() as u64
    }
}

/// One segment as seen from outside: its offsets from the file names, its size from the
/// file system and its newest timestamp from the model.
#[derive(Debug)]
struct SegmentOnDisk {
    base_offset: u64,
    next_offset: u64,
    size_bytes: u64,
    max_timestamp_ms: i64,
}

fn segments_on_disk(dir: &Path, model: &Model) -> Vec<SegmentOnDisk> {
    let files = log_files(dir);
    (0..files.len())
        .map(|segment_idx| {
            let (base_offset, path) = &files[segment_idx];
            let next_offset = files.get(segment_idx + 1).map_or(model.next_offset(), |(next_base, _)| *next_base);
            let max_timestamp_ms =
                model.records[*base_offset as usize..next_offset as usize].iter().map(|record| record.timestamp_ms).max().unwrap_or(-1);
            SegmentOnDisk { base_offset: *base_offset, next_offset, size_bytes: fs::metadata(path).unwrap().len(), max_timestamp_ms }
        })
        .collect()
}

struct Harness {
    dir: tempfile::TempDir,
    config: LogConfig,
    clock: Arc<ManualClock>,
    log: Option<PartitionLog>,
    model: Model,
}

impl Harness {
    fn log(&self) -> &PartitionLog {
        self.log.as_ref().expect("the log is open between operations")
    }

    fn run(&mut self, operation: &Operation) -> Result<(), TestCaseError> {
        match operation {
            Operation::Append { records } => self.append(records),
            Operation::Read { offset_pick, max_bytes } => self.read(*offset_pick, *max_bytes),
            Operation::ReadByTime { ms_before_now } => self.read_by_time(*ms_before_now),
            Operation::Reopen => self.reopen(),
            Operation::AdvanceClock { ms } => {
                self.clock.advance(*ms);
                Ok(())
            }
            Operation::EnforceRetention => self.enforce_retention(),
        }
    }

    fn append(&mut self, records: &[(usize, i64)]) -> Result<(), TestCaseError> {
        let now_ms = weft_log::Clock::now_ms(&*self.clock);
        let next_offset = self.model.next_offset();
        let mut plain: Vec<PlainRecord> = records
            .iter()
            .enumerate()
            .map(|(record_idx, &(value_bytes, ms_from_now))| {
                PlainRecord::sized(next_offset + record_idx as u64, now_ms + ms_from_now, value_bytes)
            })
            .collect();
        let mut bytes = encode_batch(&plain);
        let appended = self.log().append(bytes.clone()).map_err(|error| TestCaseError::fail(format!("append failed: {error}")))?;
        prop_assert_eq!(appended.base_offset, next_offset, "offsets stay dense");
        prop_assert_eq!(appended.last_offset, next_offset + records.len() as u64 - 1);
        set_base_offset(&mut bytes, next_offset);
        self.model.batches.insert(next_offset, bytes);
        for (record_idx, record) in plain.iter_mut().enumerate() {
            record.offset = next_offset + record_idx as u64;
        }
        self.model.records.extend(plain);
        prop_assert_eq!(self.log().stats().visible_next_offset, self.model.next_offset(), "single-threaded appends are visible on return");
        Ok(())
    }

    fn read(&self, offset_pick: u64, max_bytes: usize) -> Result<(), TestCaseError> {
        let lowest = self.model.log_start_offset.saturating_sub(2);
        let offset = lowest + offset_pick % (self.model.next_offset() + 3 - lowest);
        let result = self.log().read(offset, max_bytes);
        let (log_start_offset, next_offset) = (self.model.log_start_offset, self.model.next_offset());
        if offset < log_start_offset || offset > next_offset {
            let refused = matches!(result, Err(LogError::OffsetOutOfRange { requested, log_start_offset: start, next_offset: next })
                if requested == offset && start == log_start_offset && next == next_offset);
            prop_assert!(refused, "read of {} outside {}..={} gave {:?}", offset, log_start_offset, next_offset, result);
            return Ok(());
        }
        let chunk = result.map_err(|error| TestCaseError::fail(format!("read of {offset} failed: {error}")))?;
        prop_assert_eq!((chunk.log_start_offset, chunk.visible_next_offset), (log_start_offset, next_offset));
        if offset == next_offset {
            prop_assert!(chunk.bytes.is_empty());
            prop_assert_eq!(chunk.next_offset, offset);
            return Ok(());
        }
        let batches = split_batches(&chunk.bytes);
        prop_assert!(!batches.is_empty(), "a read below the end returns at least one batch");
        let first = batches[0];
        prop_assert!(first.base_offset() <= offset && offset <= first.last_offset(), "the first batch holds the requested offset");
        prop_assert!(chunk.bytes.len() <= max_bytes.max(first.len()), "only the first batch may exceed the budget");
        let mut expected_base = first.base_offset();
        let mut read_records = Vec::new();
        for batch in &batches {
            prop_assert_eq!(batch.base_offset(), expected_base, "returned batches are consecutive");
            prop_assert_eq!(
                Some(batch.as_bytes()),
                self.model.batches.get(&batch.base_offset()).map(Vec::as_slice),
                "batch bytes are stored verbatim"
            );
            read_records.extend(records_of(batch).into_iter().filter(|record| record.offset >= offset));
            expected_base = batch.next_offset();
        }
        prop_assert_eq!(chunk.next_offset, expected_base);
        prop_assert_eq!(&read_records[..], &self.model.records[offset as usize..chunk.next_offset as usize]);
        Ok(())
    }

    fn read_by_time(&self, ms_before_now: i64) -> Result<(), TestCaseError> {
        let timestamp_ms = weft_log::Clock::now_ms(&*self.clock) - ms_before_now;
        let expected = self.model.records[self.model.log_start_offset as usize..]
            .iter()
            .find(|record| record.timestamp_ms >= timestamp_ms)
            .map(|record| record.offset);
        let found = self
            .log()
            .offset_for_timestamp(timestamp_ms)
            .map_err(|error| TestCaseError::fail(format!("offset_for_timestamp failed: {error}")))?;
        prop_assert_eq!(found, expected, "first offset at or after {}", timestamp_ms);
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), TestCaseError> {
        drop(self.log.take());
        let (log, report) = open(self.dir.path(), self.config.clone(), &self.clock);
        prop_assert_eq!(report.truncated_bytes, 0, "a clean shutdown leaves nothing to cut");
        prop_assert_eq!(report.rebuilt_indexes, 0, "sealed segments keep their index files");
        let stats = log.stats();
        prop_assert_eq!((stats.log_start_offset, stats.visible_next_offset), (self.model.log_start_offset, self.model.next_offset()));
        self.log = Some(log);
        Ok(())
    }

    fn enforce_retention(&mut self) -> Result<(), TestCaseError> {
        let before = segments_on_disk(self.dir.path(), &self.model);
        let active_base = before.last().expect("an active segment").base_offset;
        let now_ms = weft_log::Clock::now_ms(&*self.clock);
        let expired =
            |segment: &SegmentOnDisk| self.config.retention_ms.is_some_and(|retention_ms| segment.max_timestamp_ms < now_ms - retention_ms);
        let oversized = |total_bytes: u64| self.config.retention_bytes.is_some_and(|retention_bytes| total_bytes > retention_bytes);

        let n_removed = self.log().enforce_retention().map_err(|error| TestCaseError::fail(format!("retention failed: {error}")))?;
        let stats = self.log().stats();
        let new_start = stats.log_start_offset;
        prop_assert!(new_start <= active_base, "the active segment is never deleted");
        prop_assert_eq!(stats.visible_next_offset, self.model.next_offset());
        let mut total_bytes: u64 = before.iter().map(|segment| segment.size_bytes).sum();
        let removed: Vec<&SegmentOnDisk> = before.iter().take_while(|segment| segment.base_offset < new_start).collect();
        prop_assert_eq!(removed.len(), n_removed);
        prop_assert!(removed.last().is_none_or(|segment| segment.next_offset == new_start), "only whole segments are deleted");
        for segment in &removed {
            prop_assert!(
                expired(segment) || oversized(total_bytes),
                "segment {:?} was deleted although it is neither expired nor needed to fit the size limit ({} bytes)",
                segment,
                total_bytes
            );
            total_bytes -= segment.size_bytes;
        }
        let oldest_kept = &before[removed.len()];
        if oldest_kept.base_offset != active_base {
            prop_assert!(
                !(expired(oldest_kept) || oversized(total_bytes)),
                "retention stopped early at {:?} with {} bytes",
                oldest_kept,
                total_bytes
            );
        }
        prop_assert_eq!(stats.size_bytes, total_bytes);
        prop_assert!(!removed.iter().any(|segment| segment.base_offset == active_base));
        self.model.batches.retain(|&base_offset, _| base_offset >= new_start);
        self.model.log_start_offset = new_start;
        prop_assert_eq!(
            log_files(self.dir.path()).first().map(|(base_offset, _)| *base_offset),
            Some(new_start),
            "deleted segments leave no log file behind"
        );
        Ok(())
    }
}

fn n_cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(N_CASES_DEFAULT)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: n_cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    /// Proves: across appends, reads by offset and by time, reopens, clock moves and
    /// retention, with many small segments, every read returns exactly the model's records
    /// in whole stored batches, out-of-range reads are refused with the right bounds,
    /// offsets stay dense across reopen, and retention deletes only whole sealed segments
    /// from the front that are expired or needed to meet the size limit, and all of those.
    #[test]
    fn log_matches_an_in_memory_model(config in log_config(), operations in prop::collection::vec(operation(), 1..80)) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let clock = ManualClock::starting_at(CLOCK_START_MS);
        let (log, _) = open(dir.path(), config.clone(), &clock);
        let mut harness = Harness {
            dir,
            config,
            clock,
            log: Some(log),
            model: Model { records: Vec::new(), batches: BTreeMap::new(), log_start_offset: 0 },
        };
        for operation in &operations {
            harness.run(operation)?;
        }
        // A final full check: every readable record, read with a tiny budget, then after a reopen.
        harness.read_everything()?;
        harness.reopen()?;
        harness.read_everything()?;
    }
}

impl Harness {
    fn read_everything(&self) -> Result<(), TestCaseError> {
        let mut offset = self.model.log_start_offset;
        while offset < self.model.next_offset() {
            let chunk = self.log().read(offset, 1).map_err(|error| TestCaseError::fail(format!("read of {offset} failed: {error}")))?;
            prop_assert!(chunk.next_offset > offset);
            let records: Vec<PlainRecord> =
                split_batches(&chunk.bytes).iter().flat_map(records_of).filter(|record| record.offset >= offset).collect();
            prop_assert_eq!(&records[..], &self.model.records[offset as usize..chunk.next_offset as usize]);
            offset = chunk.next_offset;
        }
        Ok(())
    }
}
