//! A failed fdatasync poisons the partition: the failed wait is an error, every later write is
//! refused, and only a reopen (recovery) makes the partition writable again; nothing whose
//! wait failed is ever reported as acknowledged, and what was acknowledged after the reopen
//! survives power loss even though the kernel may have dropped the failed writes.

use std::path::Path;
use std::sync::Arc;

use weft_log::batch::BatchBuilder;
use weft_log::simulation::{PowerLossMode, SimulatedDisk};
use weft_log::{Clock, FsyncPolicy, LogConfig, LogError, PartitionLog, StorageBackend, SystemClock};

const PARTITION_DIR: &str = "/data/0";

pub fn batch(value: &str) -> Vec<u8> {
    let mut builder = BatchBuilder::new(1_700_000_000_000);
    builder.push::<&str>(1_700_000_000_000, None, Some(value.as_bytes()), &[]);
    builder.finish()
}

pub fn open(disk: &SimulatedDisk, dir: &str, config: LogConfig) -> PartitionLog {
    let backend: Arc<dyn StorageBackend> = Arc::new(disk.clone());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    PartitionLog::open_with(backend, Path::new(dir), config, clock).expect("the partition opens").0
}

/// The value of every visible record, in offset order.
pub fn values(log: &PartitionLog) -> Vec<String> {
    let mut values = Vec::new();
    let mut offset = log.stats().log_start_offset;
    loop {
        let chunk = log.read(offset, usize::MAX).expect("reads succeed");
        if chunk.bytes.is_empty() {
            return values;
        }
        for batch in chunk.batches() {
            for record in batch.records().expect("uncompressed") {
                values.push(String::from_utf8(record.expect("record decodes").value.expect("a value").to_vec()).expect("UTF-8"));
            }
        }
        offset = chunk.next_offset;
    }
}

/// Proves: an fdatasync that fails with EIO fails the wait of the batch it covered, every later
/// append, wait and sync is refused with `LogError::Poisoned` naming the failed fsync, reads keep
/// serving what was acknowledged, and after a reopen appends work again; the batch whose wait
/// failed is not in the log, and the batch acknowledged after the reopen survives power loss in
/// every mode (the failed write, kept only in the page cache, would otherwise leave a hole).
#[test]
fn after_a_failed_fdatasync_the_partition_refuses_writes_until_reopened() {
    for (seed, mode) in PowerLossMode::ALL.into_iter().enumerate() {
        let disk = SimulatedDisk::new(seed as u64);
        let log = open(&disk, PARTITION_DIR, LogConfig::default());
        log.append(batch("acknowledged")).expect("a healthy append succeeds");
        disk.fail_sync_data_after(0);
        let failed = log.append(batch("wait failed")).expect_err("the fsync covering it failed");
        assert!(matches!(failed, LogError::Poisoned(_)), "{failed}");
        for refused in [log.append(batch("refused")).unwrap_err(), log.sync().unwrap_err(), log.wait_durable(2).unwrap_err()] {
            let LogError::Poisoned(reason) = &refused else { panic!("not refused as poisoned: {refused}") };
            assert!(reason.contains("fsync failed"), "{refused}");
            assert!(refused.to_string().starts_with("partition refuses writes after an earlier i/o failure"), "{refused}");
        }
        assert_eq!(values(&log), ["acknowledged"], "reads keep serving what was acknowledged");
        drop(log);

        let log = open(&disk, PARTITION_DIR, LogConfig::default());
        assert_eq!(values(&log), ["acknowledged"], "the batch whose wait failed is not in the recovered log");
        let appended = log.append(batch("after reopen")).expect("a reopened partition takes appends");
        assert_eq!(appended.base_offset, 1);
        drop(log);

        disk.power_loss(mode);
        let log = open(&disk, PARTITION_DIR, LogConfig::default());
        assert_eq!(values(&log), ["acknowledged", "after reopen"], "{mode:?}");
    }
}

/// Proves: a failed fdatasync of the active segment while rolling it poisons the partition like
/// a failed group commit: the append that rolled fails, later ones are refused, and a reopen
/// recovers every acknowledged batch and takes appends again.
#[test]
fn a_failed_fdatasync_while_rolling_poisons_the_partition() {
    let disk = SimulatedDisk::new(3);
    let config = LogConfig { segment_bytes_max: 1024, ..LogConfig::default() };
    let log = open(&disk, PARTITION_DIR, config.clone());
    let padding = "x".repeat(400);
    log.append(batch(&format!("one {padding}"))).unwrap();
    log.append(batch(&format!("two {padding}"))).unwrap();
    disk.fail_sync_data_after(0);
    log.append(batch(&format!("three {padding}"))).expect_err("the roll's fsync failed");
    assert_eq!(log.stats().n_segments, 1, "the roll did not happen");
    assert!(matches!(log.append(batch("four")), Err(LogError::Poisoned(_))));
    drop(log);
    disk.power_loss(PowerLossMode::DropUnsynced);
    let log = open(&disk, PARTITION_DIR, config);
    assert_eq!(values(&log).len(), 2);
    log.append(batch(&format!("five {padding}"))).expect("appends work after the reopen");
    assert_eq!(log.stats().n_segments, 2, "and the roll happens now");
}

/// Proves: under `fsync: never`, where readers see writes before they are durable, a failed
/// flush poisons the partition without taking back what readers saw, and the reopen's fsync
/// really makes it durable (the engine wrote it again before trusting another fsync), so a
/// `sync` after the reopen covers it through power loss.
#[test]
fn after_a_failed_flush_under_fsync_never_the_reopen_makes_what_readers_saw_durable() {
    let config = LogConfig { fsync: FsyncPolicy::Never, ..LogConfig::default() };
    for (seed, mode) in PowerLossMode::ALL.into_iter().enumerate() {
        let disk = SimulatedDisk::new(10 + seed as u64);
        let log = open(&disk, PARTITION_DIR, config.clone());
        log.append(batch("one")).unwrap();
        log.sync().unwrap();
        log.append(batch("two")).unwrap();
        disk.fail_sync_data_after(0);
        log.sync().expect_err("the flush's fsync failed");
        assert!(matches!(log.append(batch("three")), Err(LogError::Poisoned(_))));
        assert_eq!(values(&log), ["one", "two"], "what readers saw stays visible");
        drop(log);

        let log = open(&disk, PARTITION_DIR, config.clone());
        assert_eq!(values(&log), ["one", "two"]);
        log.sync().expect("a reopened partition syncs");
        drop(log);
        disk.power_loss(mode);
        let log = open(&disk, PARTITION_DIR, config.clone());
        assert_eq!(values(&log), ["one", "two"], "{mode:?}");
    }
}
