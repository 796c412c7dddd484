//! Directory entries on a disk that makes them durable only at a directory sync: a new
//! partition's directory, a rolled segment whose directory fsync failed, and index files that
//! cannot be rewritten on a full disk.

use std::path::Path;

use weft_log::simulation::{PowerLossMode, SimulatedDisk};
use weft_log::{LogConfig, StorageBackend};

use crate::poisoning::{batch, open, values};

/// Proves: the first acknowledged batch of a partition whose directories did not exist survives
/// power loss, whatever order the unsynced directory entries reach the disk in (open syncs the
/// parent of every directory it creates).
#[test]
fn a_new_partition_directory_survives_power_loss() {
    for seed in 0..32 {
        let disk = SimulatedDisk::new(seed);
        let log = open(&disk, "/data/streams/orders/0", LogConfig::default());
        log.append(batch("first")).unwrap();
        drop(log);
        disk.power_loss(PowerLossMode::DropUnsynced);
        let log = open(&disk, "/data/streams/orders/0", LogConfig::default());
        assert_eq!(values(&log), ["first"], "seed {seed}");
    }
}

/// Proves: when the directory fsync of a roll fails, the partition is poisoned, and after a
/// restart that keeps the page cache the new segment is used only once its entry is durable
/// (recovery syncs the directory), so batches acknowledged in it survive power loss.
#[test]
fn a_segment_whose_roll_lost_its_directory_fsync_is_made_durable_by_recovery() {
    let config = LogConfig { segment_bytes_max: 1024, ..LogConfig::default() };
    let padding = "x".repeat(400);
    for seed in 0..32 {
        let disk = SimulatedDisk::new(seed);
        let log = open(&disk, "/data/0", config.clone());
        log.append(batch(&format!("one {padding}"))).unwrap();
        log.append(batch(&format!("two {padding}"))).unwrap();
        disk.fail_sync_dir_after(0);
        log.append(batch(&format!("three {padding}"))).expect_err("the roll's directory fsync failed");
        assert!(log.append(batch("four")).is_err(), "the partition is poisoned");
        drop(log);
        let log = open(&disk, "/data/0", config.clone());
        assert_eq!(log.stats().n_segments, 2, "the new segment's file is in the directory");
        log.append(batch("five")).unwrap();
        drop(log);
        disk.power_loss(PowerLossMode::DropUnsynced);
        let log = open(&disk, "/data/0", config.clone());
        assert_eq!(values(&log).last().map(String::as_str), Some("five"), "seed {seed}");
    }
}

/// Proves: a partition opens on a full disk even when a sealed segment's index files are gone
/// and cannot be rewritten: indexes are rebuilt in memory, and reads work.
#[test]
fn a_partition_opens_on_a_full_disk_without_its_index_files() {
    let disk = SimulatedDisk::new(5);
    let config = LogConfig { segment_bytes_max: 1024, ..LogConfig::default() };
    let log = open(&disk, "/data/0", config.clone());
    let padding = "x".repeat(400);
    for idx in 0..5 {
        log.append(batch(&format!("{idx} {padding}"))).unwrap();
    }
    assert!(log.stats().n_segments >= 2);
    drop(log);
    for name in disk.list_dir(Path::new("/data/0")).unwrap() {
        if name.ends_with("index") {
            disk.remove_file(&Path::new("/data/0").join(name)).unwrap();
        }
    }
    disk.set_capacity_bytes(Some(disk.used_bytes()));
    let log = open(&disk, "/data/0", config);
    assert_eq!(values(&log).len(), 5);
}
