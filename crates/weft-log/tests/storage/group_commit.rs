//! Group commit under `fsync: always`: concurrent producers share fsyncs, and every
//! acknowledged append has its own dense range of offsets.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use weft_log::{FsyncPolicy, LogConfig, PartitionLog};

use crate::fixture::{ManualClock, PlainRecord, encode_batch, open, read_batches_from, records_of, split_batches};

const N_PRODUCERS: u64 = 4;
const N_BATCHES_PER_PRODUCER: u64 = 60;

/// Proves: with several threads appending at once under `FsyncPolicy::Always` (and rolling
/// segments while they do), every append succeeds, the acknowledged offset ranges are
/// disjoint and together cover 0..total with no gap, each producer's batches are in its own
/// order, `stats().visible_next_offset` equals the total, a concurrent reader never sees the
/// high watermark go backwards or a partial batch, and everything survives a reopen.
#[test]
fn concurrent_appends_under_fsync_always_get_unique_dense_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(1_700_000_000_000);
    let config = LogConfig { fsync: FsyncPolicy::Always, segment_bytes_max: 16 * 1024, ..LogConfig::default() };
    let (log, _) = open(dir.path(), config.clone(), &clock);
    let start = Barrier::new(N_PRODUCERS as usize + 1);
    let producers_done = AtomicBool::new(false);

    let (acknowledged, n_reads) = thread::scope(|scope| {
        let producers: Vec<_> = (0..N_PRODUCERS)
            .map(|producer_idx| {
                let (log, start) = (&log, &start);
                scope.spawn(move || {
                    start.wait();
                    (0..N_BATCHES_PER_PRODUCER)
                        .map(|batch_idx| {
                            let n_records = 1 + (batch_idx + producer_idx) % 3;
                            let records: Vec<PlainRecord> =
                                (0..n_records).map(|record_idx| producer_record(producer_idx, batch_idx, record_idx)).collect();
                            let appended = log.append(encode_batch(&records)).expect("append succeeds");
                            assert_eq!(appended.last_offset + 1 - appended.base_offset, n_records);
                            (producer_idx, batch_idx, appended)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let reader = scope.spawn(|| watch_high_watermark(&log, &start, &producers_done));
        let acknowledged: Vec<_> = producers.into_iter().flat_map(|producer| producer.join().expect("producer thread")).collect();
        producers_done.store(true, Ordering::SeqCst);
        (acknowledged, reader.join().expect("reader thread"))
    });
    assert!(n_reads > 0);

    let mut ranges: Vec<(u64, u64)> = acknowledged.iter().map(|(_, _, appended)| (appended.base_offset, appended.last_offset)).collect();
    ranges.sort_unstable();
    let mut expected_base = 0;
    for (base_offset, last_offset) in &ranges {
        assert_eq!(*base_offset, expected_base, "offset ranges are disjoint and dense");
        expected_base = last_offset + 1;
    }
    let total = expected_base;
    for producer_idx in 0..N_PRODUCERS {
        let bases: Vec<u64> =
            acknowledged.iter().filter(|(p, _, _)| *p == producer_idx).map(|(_, _, appended)| appended.base_offset).collect();
        assert!(bases.windows(2).all(|pair| pair[0] < pair[1]), "a producer's batches keep its order");
    }
    assert_eq!(log.stats().visible_next_offset, total);
    assert_each_batch_landed_where_acknowledged(&log, &acknowledged);
    drop(log);

    let (log, report) = open(dir.path(), config, &clock);
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.stats().visible_next_offset, total);
    assert_each_batch_landed_where_acknowledged(&log, &acknowledged);
}

fn producer_record(producer_idx: u64, batch_idx: u64, record_idx: u64) -> PlainRecord {
    let mut record =
        PlainRecord::sized(producer_idx * 10_000 + batch_idx * 10 + record_idx, 1_700_000_000_000, 50 + (batch_idx as usize * 13) % 200);
    record.key = Some(format!("{producer_idx}/{batch_idx}/{record_idx}").into_bytes());
    record
}

fn assert_each_batch_landed_where_acknowledged(log: &PartitionLog, acknowledged: &[(u64, u64, weft_log::Appended)]) {
    let batches = read_batches_from(log, 0, 64 * 1024).unwrap();
    assert_eq!(batches.len(), acknowledged.len());
    for (producer_idx, batch_idx, appended) in acknowledged {
        let batch = batches
            .iter()
            .map(|bytes| split_batches(bytes)[0])
            .find(|batch| batch.base_offset() == appended.base_offset)
            .expect("acknowledged batch is readable");
        let records = records_of(&batch);
        for (record_idx, record) in records.iter().enumerate() {
            let mut expected = producer_record(*producer_idx, *batch_idx, record_idx as u64);
            expected.offset = appended.base_offset + record_idx as u64;
            assert_eq!(record, &expected);
        }
    }
}

/// Polls the log while producers run (no sleeping: it spins with `yield_now`), checking
/// that the high watermark never moves back and reads only ever return whole batches.
fn watch_high_watermark(log: &PartitionLog, start: &Barrier, producers_done: &AtomicBool) -> u64 {
    start.wait();
    let mut n_reads = 0;
    let mut high_watermark = 0;
    let mut offset = 0;
    while !producers_done.load(Ordering::SeqCst) {
        let chunk = log.read(offset, 4096).expect("read succeeds");
        assert!(chunk.visible_next_offset >= high_watermark, "the high watermark never moves back");
        high_watermark = chunk.visible_next_offset;
        let batches = split_batches(&chunk.bytes);
        if let Some(last) = batches.last() {
            assert!(last.next_offset() <= chunk.visible_next_offset, "nothing past the high watermark is returned");
        }
        offset = chunk.next_offset;
        n_reads += 1;
        thread::yield_now();
    }
    n_reads
}
