//! The deterministic simulation: one seed drives a partition log on a `SimulatedDisk` through
//! crash-recovery cycles, and after every recovery the log is checked against the model.
//!
//! A cycle is a few random steps (appends from several logical producers, their durability
//! waits, flushes, clock moves, retention, full reads, and armed faults: fdatasync EIO,
//! directory fsync EIO, a full disk, a power cut after the next few disk calls), then a power
//! loss in a random `PowerLossMode` (or, sometimes, a plain restart that keeps the page cache),
//! then a reopen, itself sometimes crashed or failed, that must succeed.
//! Producers interleave deterministically on one thread: an append is written at once and
//! acknowledged only when its producer's wait returns, so one fsync covers the batches of every
//! producer written before it (group commit).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use weft_log::batch::{BatchBuilder, BatchView, set_base_offset};
use weft_log::simulation::{PowerLossMode, SimulatedDisk, SplitMix64};
use weft_log::{Clock, FsyncPolicy, LogConfig, LogError, PartitionLog, StorageBackend, VerifiedBatch};

use crate::model::{Model, ModelBatch};

mod check;

use check::read_all;

const N_PRODUCERS: usize = 3;
/// Batches a producer may have written and not yet waited for.
const OUTSTANDING_BATCHES_MAX: usize = 4;
const STEPS_PER_CYCLE_MAX: u64 = 20;
const RECORD_VALUE_BYTES_MAX: u64 = 150;
const RECORDS_PER_BATCH_MAX: u64 = 3;
/// Trace lines kept for a failure report.
const TRACE_LINES_MAX: usize = 80;
/// Reopen attempts after a power loss; the last one runs without faults and with free space.
const REOPEN_ATTEMPTS_MAX: usize = 4;
const START_MS: i64 = 1_700_000_000_000;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub fsync: FsyncPolicy,
    /// The disk reports every fdatasync as done and syncs nothing (the run must then fail).
    pub lying_disk: bool,
}

/// What one seed's run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub n_cycles: u64,
    pub n_power_losses: u64,
    pub n_restarts: u64,
    pub n_acknowledged_batches: u64,
    pub n_failed_waits: u64,
    pub n_disk_full: u64,
    pub n_rolls: u64,
    pub n_segments_deleted: u64,
    pub n_injected_failures: u64,
}

/// Wall clock moved only by the simulation.
#[derive(Debug)]
struct SimClock(AtomicI64);

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Default)]
struct Producer {
    /// Batch ids written and not yet waited for, and the offset after the last of them.
    outstanding: Vec<u64>,
    target_next_offset: u64,
}

struct Simulation {
    options: Options,
    rng: SplitMix64,
    disk: SimulatedDisk,
    backend: Arc<dyn StorageBackend>,
    clock: Arc<SimClock>,
    config: LogConfig,
    dir: PathBuf,
    log: Option<PartitionLog>,
    model: Model,
    producers: Vec<Producer>,
    next_batch_id: u64,
    cycle_idx: u64,
    trace: VecDeque<String>,
    outcome: Outcome,
}

/// Runs `n_cycles` crash-recovery cycles from `seed`; `Err` says what broke, with the trace.
pub fn run_seed(seed: u64, n_cycles: u64, options: Options) -> Result<Outcome, String> {
    let mut simulation = Simulation::new(seed, options);
    let result = simulation.open_after_power_loss().and_then(|()| {
        for cycle_idx in 0..n_cycles {
            simulation.cycle_idx = cycle_idx;
            simulation.cycle()?;
        }
        Ok(())
    });
    match result {
        Ok(()) => {
            simulation.outcome.n_cycles = n_cycles;
            simulation.outcome.n_injected_failures = simulation.disk.stats().n_injected_failures;
            Ok(simulation.outcome)
        }
        Err(why) => {
            let trace: Vec<&str> = simulation.trace.iter().map(String::as_str).collect();
            Err(format!(
                "seed {seed}, cycle {} (config {:?}): {why}\nlast steps:\n  {}",
                simulation.cycle_idx,
                simulation.config,
                trace.join("\n  ")
            ))
        }
    }
}

impl Simulation {
    fn new(seed: u64, options: Options) -> Self {
        let mut rng = SplitMix64::new(seed);
        let disk = SimulatedDisk::new(rng.next_u64());
        disk.set_ignore_sync_data(options.lying_disk);
        let config = LogConfig {
            fsync: options.fsync,
            segment_bytes_max: 1024 + rng.below(2048),
            segment_age_max_ms: rng.chance(1, 2).then(|| 3_000 + rng.below(7_000) as i64),
            index_interval_bytes: 64 + rng.below(1024),
            retention_ms: rng.chance(1, 2).then(|| 5_000 + rng.below(15_000) as i64),
            retention_bytes: Some(4096 + rng.below(8192)),
        };
        Self {
            options,
            rng,
            backend: Arc::new(disk.clone()),
            disk,
            clock: Arc::new(SimClock(AtomicI64::new(START_MS))),
            config,
            dir: PathBuf::from("/data/streams/sim/0"),
            log: None,
            model: Model::new(),
            producers: (0..N_PRODUCERS).map(|_| Producer::default()).collect(),
            next_batch_id: 0,
            cycle_idx: 0,
            trace: VecDeque::new(),
            outcome: Outcome::default(),
        }
    }

    fn note(&mut self, line: String) {
        if self.trace.len() == TRACE_LINES_MAX {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("c{}: {line}", self.cycle_idx));
    }

    fn log(&self) -> &PartitionLog {
        self.log.as_ref().expect("the log is open between recoveries")
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn cycle(&mut self) -> Result<(), String> {
        let n_steps = 1 + self.rng.below(STEPS_PER_CYCLE_MAX);
        for _ in 0..n_steps {
            if self.disk.is_powered_off() {
                break;
            }
            self.step()?;
        }
        let stats = self.log().stats();
        if self.options.fsync == FsyncPolicy::Always {
            // Readers under `always` see only durable offsets: all of them must survive.
            self.model.must_survive_next_offset = self.model.must_survive_next_offset.max(stats.visible_next_offset);
        }
        self.log = None;
        let power_losses_before = self.outcome.n_power_losses;
        if self.rng.chance(2, 3) {
            // Space is freed now and then (an operator, another tenant), or the disk stays full.
            self.disk.set_capacity_bytes(None);
        }
        if !self.disk.is_powered_off() && self.rng.chance(1, 7) {
            self.note("restart (the page cache survives)".into());
            self.disk.clear_faults();
            self.outcome.n_restarts += 1;
        } else {
            self.power_loss();
        }
        self.open_after_power_loss()?;
        // After a power loss the disk holds only durable state; after a plain restart, unlinks
        // that were never made durable can still be undone by a later power loss.
        let lost_power = self.outcome.n_power_losses > power_losses_before;
        self.check_recovered(lost_power)
    }

    fn power_loss(&mut self) {
        let mode = PowerLossMode::ALL[self.rng.below(PowerLossMode::ALL.len() as u64) as usize];
        self.note(format!("power loss ({mode:?}, disk was {})", if self.disk.is_powered_off() { "already off" } else { "on" }));
        self.disk.power_loss(mode);
        self.outcome.n_power_losses += 1;
    }

    fn step(&mut self) -> Result<(), String> {
        let choice = self.rng.below(100);
        let producer_idx = self.rng.below(N_PRODUCERS as u64) as usize;
        match choice {
            0..40 if self.producers[producer_idx].outstanding.len() < OUTSTANDING_BATCHES_MAX => self.append(producer_idx),
            0..65 => self.wait(producer_idx),
            65..70 => self.flush(),
            70..78 => {
                let ms = self.rng.below(3_000) as i64;
                self.clock.0.fetch_add(ms, Ordering::SeqCst);
                self.note(format!("clock +{ms} ms"));
                Ok(())
            }
            78..84 => self.retention(),
            84..89 => self.read_all_and_compare(),
            89..92 => {
                let n_calls = self.rng.below(3);
                self.note(format!("arm: fdatasync #{} from now fails (EIO)", n_calls + 1));
                self.disk.fail_sync_data_after(n_calls);
                Ok(())
            }
            92..94 => {
                let n_calls = self.rng.below(2);
                self.note(format!("arm: directory fsync #{} from now fails (EIO)", n_calls + 1));
                self.disk.fail_sync_dir_after(n_calls);
                Ok(())
            }
            94..97 => {
                let capacity = self.rng.chance(1, 2).then(|| self.disk.used_bytes() + self.rng.below(3_000));
                self.note(format!("disk capacity {capacity:?} bytes"));
                self.disk.set_capacity_bytes(capacity);
                Ok(())
            }
            _ => {
                let n_ops = self.rng.below(25);
                self.note(format!("arm: power cut after {n_ops} more disk calls"));
                self.disk.crash_after_ops(n_ops);
                Ok(())
            }
        }
    }

    fn append(&mut self, producer_idx: usize) -> Result<(), String> {
        let now_ms = self.now_ms();
        let batch_id = self.next_batch_id;
        self.next_batch_id += 1;
        let n_records = 1 + self.rng.below(RECORDS_PER_BATCH_MAX);
        let mut builder = BatchBuilder::new(now_ms);
        for record_idx in 0..n_records {
            let mut value = format!("p{producer_idx}-b{batch_id}-r{record_idx}:").into_bytes();
            let n_padding = self.rng.below(RECORD_VALUE_BYTES_MAX) as usize;
            value.extend((0..n_padding).map(|byte_idx| (batch_id as usize + byte_idx) as u8));
            let key = format!("p{producer_idx}");
            builder.push::<&str>(now_ms + self.rng.below(5) as i64, Some(key.as_bytes()), Some(&value), &[]);
        }
        let mut bytes = builder.finish();
        let roll_due = self.model.roll_due(&self.config, bytes.len() as u64, now_ms);
        let n_segments_before = self.log().stats().n_segments;
        let result = self.log().append_unsynced(VerifiedBatch::verify(bytes.clone()).expect("the simulation builds valid batches"));
        let rolled = self.log().stats().n_segments == n_segments_before + 1;
        if rolled {
            self.model.roll();
            self.outcome.n_rolls += 1;
            // A completed roll synced the directory, so earlier unlinks are durable too.
            self.model.deleted_in_doubt.clear();
        }
        match result {
            Ok(appended) => {
                if rolled != roll_due {
                    return Err(format!("append of batch {batch_id}: the engine rolled: {rolled}, the rolling rule says {roll_due}"));
                }
                if appended.base_offset != self.model.next_offset() {
                    return Err(format!(
                        "batch {batch_id} got base offset {}, the next offset is {}",
                        appended.base_offset,
                        self.model.next_offset()
                    ));
                }
                set_base_offset(&mut bytes, appended.base_offset);
                let max_timestamp = BatchView::parse(&bytes).expect("valid").max_timestamp();
                let batch = ModelBatch {
                    id: batch_id,
                    base_offset: appended.base_offset,
                    next_offset: appended.last_offset + 1,
                    bytes,
                    max_timestamp,
                };
                self.model.push(batch, now_ms);
                self.model.roll_in_doubt = None;
                self.model.maybe_poisoned = false;
                let producer = &mut self.producers[producer_idx];
                producer.outstanding.push(batch_id);
                producer.target_next_offset = appended.last_offset + 1;
                self.note(format!(
                    "p{producer_idx} append batch {batch_id} -> {}..={}{}",
                    appended.base_offset,
                    appended.last_offset,
                    if rolled { " (rolled)" } else { "" }
                ));
            }
            Err(error) => {
                if matches!(error, LogError::DiskFull) {
                    self.outcome.n_disk_full += 1;
                }
                if roll_due && !rolled {
                    self.model.roll_in_doubt = Some(self.model.next_offset());
                }
                if !matches!(error, LogError::DiskFull) {
                    self.model.maybe_poisoned = true;
                }
                self.note(format!(
                    "p{producer_idx} append batch {batch_id} failed: {error}{}",
                    if rolled { " (after rolling)" } else { "" }
                ));
            }
        }
        Ok(())
    }

    fn wait(&mut self, producer_idx: usize) -> Result<(), String> {
        if self.producers[producer_idx].outstanding.is_empty() {
            return Ok(());
        }
        let target = self.producers[producer_idx].target_next_offset;
        let outstanding = std::mem::take(&mut self.producers[producer_idx].outstanding);
        match self.log().wait_durable(target) {
            Ok(()) => {
                if self.options.fsync == FsyncPolicy::Always {
                    self.model.must_survive_next_offset = self.model.must_survive_next_offset.max(target);
                    self.outcome.n_acknowledged_batches += outstanding.len() as u64;
                    let visible = self.log().stats().visible_next_offset;
                    if visible < target {
                        return Err(format!("a wait for {target} returned but the visible end is {visible}"));
                    }
                }
                self.note(format!("p{producer_idx} wait for {target}: acknowledged batches {outstanding:?}"));
            }
            Err(error) => {
                self.model.maybe_poisoned = true;
                self.outcome.n_failed_waits += 1;
                self.note(format!("p{producer_idx} wait for {target} failed ({error}): batches {outstanding:?} not acknowledged"));
            }
        }
        Ok(())
    }

    /// The owner's flush (`interval`, shutdown): everything written so far becomes durable.
    fn flush(&mut self) -> Result<(), String> {
        let target = self.model.next_offset();
        match self.log().sync() {
            Ok(()) => {
                self.model.must_survive_next_offset = self.model.must_survive_next_offset.max(target);
                self.note(format!("sync up to {target}"));
            }
            Err(error) => {
                self.model.maybe_poisoned = true;
                self.note(format!("sync up to {target} failed: {error}"));
            }
        }
        Ok(())
    }

    fn retention(&mut self) -> Result<(), String> {
        let stats = self.log().stats();
        if !self.model.maybe_poisoned && stats.size_bytes != self.model.size_bytes() {
            return Err(format!("the engine holds {} bytes, the model {}", stats.size_bytes, self.model.size_bytes()));
        }
        let due = self.model.retention_due(&self.config, stats.size_bytes, self.now_ms());
        match self.log().enforce_retention() {
            Ok(n_removed) => {
                if n_removed != due {
                    return Err(format!("retention deleted {n_removed} segments, the rules say {due}"));
                }
                self.model.delete_oldest(n_removed);
                if n_removed > 0 {
                    self.model.deleted_in_doubt.clear();
                }
                self.outcome.n_segments_deleted += n_removed as u64;
                self.note(format!("retention deleted {n_removed} segments; log starts at {}", self.model.log_start_offset()));
            }
            Err(error) => {
                let deleted = self.model.delete_oldest(due);
                self.model.deleted_in_doubt.extend(deleted);
                self.note(format!("retention failed ({error}); up to {due} segments may be gone"));
            }
        }
        Ok(())
    }

    /// Reads everything visible and checks that it is exactly what the model wrote, in order.
    fn read_all_and_compare(&mut self) -> Result<(), String> {
        let max_bytes = 1 + self.rng.below(2_000) as usize;
        let stats = self.log().stats();
        if stats.log_start_offset != self.model.log_start_offset() {
            return Err(format!("the log starts at {}, the model says {}", stats.log_start_offset, self.model.log_start_offset()));
        }
        let read = match read_all(self.log(), max_bytes) {
            Ok(read) => read,
            Err(error) if self.disk.is_powered_off() => {
                self.note(format!("read failed with the power off: {error}"));
                return Ok(());
            }
            Err(error) => return Err(format!("reading the log failed: {error}")),
        };
        let end = self.compare_with_model(&read)?;
        if self.options.fsync == FsyncPolicy::Always && end > self.model.next_offset() {
            return Err(format!("readers see up to {end}, beyond the written end {}", self.model.next_offset()));
        }
        self.note(format!("read all ({max_bytes}-byte reads): {} batches up to {end}", read.len()));
        Ok(())
    }

    /// Opens the partition on what the disk kept; a crash or a fault during recovery is
    /// followed by another attempt, and the last attempt runs without any fault armed.
    fn open_after_power_loss(&mut self) -> Result<(), String> {
        self.scan_read_only()?;
        let mut last_error = String::new();
        for attempt in 0..REOPEN_ATTEMPTS_MAX {
            if attempt + 1 < REOPEN_ATTEMPTS_MAX {
                if self.rng.chance(1, 10) {
                    let n_ops = self.rng.below(12);
                    self.note(format!("arm: power cut after {n_ops} disk calls of recovery"));
                    self.disk.crash_after_ops(n_ops);
                }
                if self.rng.chance(1, 12) {
                    self.note("arm: an fdatasync of recovery fails (EIO)".into());
                    self.disk.fail_sync_data_after(self.rng.below(3));
                }
                if self.rng.chance(1, 20) {
                    self.note("arm: the directory fsync of recovery fails (EIO)".into());
                    self.disk.fail_sync_dir_after(0);
                }
            } else {
                // The operator's last resort: no faults, and space freed. (Recovery needs space
                // only to copy a log whose fdatasync failed; it refuses to trust it otherwise.)
                self.note("reopen with faults cleared and the disk capacity lifted".into());
                self.disk.clear_faults();
                self.disk.set_capacity_bytes(None);
            }
            let clock: Arc<dyn Clock> = self.clock.clone();
            match PartitionLog::open_with(Arc::clone(&self.backend), &self.dir, self.config.clone(), clock) {
                Ok((log, report)) if self.disk.is_powered_off() => {
                    // The power went at the very end of recovery (a best-effort index write or
                    // marker removal failed without failing the open): the machine is dead.
                    drop(log);
                    self.note(format!("reopened ({report:?}), but the power went at the end"));
                    self.power_loss();
                }
                Ok((log, report)) => {
                    self.note(format!("reopened: {report:?}"));
                    self.log = Some(log);
                    return Ok(());
                }
                Err(error) => {
                    last_error = error.to_string();
                    self.note(format!("reopen failed: {error}"));
                    if self.disk.is_powered_off() {
                        self.power_loss();
                    }
                }
            }
        }
        Err(format!("recovery failed {REOPEN_ATTEMPTS_MAX} times, last: {last_error}"))
    }
}

/// The seeds to run: `WEFT_SIM_SEED=<n>` alone if set, else `WEFT_SIM_SEEDS=<from>..<to>` (a
/// longer soak), else `default_seeds`.
pub fn seeds(default_seeds: std::ops::Range<u64>) -> Vec<u64> {
    if let Ok(seed) = std::env::var("WEFT_SIM_SEED") {
        return vec![seed.parse().expect("WEFT_SIM_SEED is a number")];
    }
    match std::env::var("WEFT_SIM_SEEDS") {
        Ok(range) => {
            let (from, to) = range.split_once("..").expect("WEFT_SIM_SEEDS is <from>..<to>");
            (from.parse().expect("a number")..to.parse().expect("a number")).collect()
        }
        Err(_) => default_seeds.collect(),
    }
}

/// Cycles per seed: `WEFT_SIM_CYCLES` if set, else `default_cycles`.
pub fn cycles(default_cycles: u64) -> u64 {
    std::env::var("WEFT_SIM_CYCLES").map(|cycles| cycles.parse().expect("WEFT_SIM_CYCLES is a number")).unwrap_or(default_cycles)
}
