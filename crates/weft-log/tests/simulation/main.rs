//! Deterministic crash simulation of the partition log on a simulated disk.
//!
//! `run.rs` drives a `PartitionLog` on a `weft_log::simulation::SimulatedDisk` through random
//! crash-recovery cycles from a seed and checks every recovery against `model.rs`;
//! `poisoning.rs` and `directories.rs` prove single properties step by step.
//! A failure prints its seed; `WEFT_SIM_SEED=<n>` runs that seed alone and replays the run
//! exactly, `WEFT_SIM_CYCLES=<n>` sets the number of cycles per seed.
//! Nothing sleeps and nothing touches the real file system.

mod directories;
mod model;
mod poisoning;
mod run;

use std::time::Instant;

use weft_log::FsyncPolicy;

use crate::run::{Options, Outcome, cycles, run_seed, seeds};

/// Cycles per seed in a plain `cargo test`.
const CYCLES_PER_SEED: u64 = 1_000;

/// Runs every seed and panics with the first failure's seed and how to replay it.
fn simulate(test_name: &str, default_seeds: std::ops::Range<u64>, options: Options) -> Outcome {
    let n_cycles = cycles(CYCLES_PER_SEED);
    let started = Instant::now();
    let mut total = Outcome::default();
    for seed in seeds(default_seeds) {
        match run_seed(seed, n_cycles, options) {
            Ok(outcome) => {
                total.n_cycles += outcome.n_cycles;
                total.n_power_losses += outcome.n_power_losses;
                total.n_restarts += outcome.n_restarts;
                total.n_acknowledged_batches += outcome.n_acknowledged_batches;
                total.n_failed_waits += outcome.n_failed_waits;
                total.n_disk_full += outcome.n_disk_full;
                total.n_rolls += outcome.n_rolls;
                total.n_segments_deleted += outcome.n_segments_deleted;
                total.n_injected_failures += outcome.n_injected_failures;
            }
            Err(why) => panic!(
                "simulation failed: {why}\nreplay: WEFT_SIM_SEED={seed} WEFT_SIM_CYCLES={n_cycles} cargo test -p weft-log --test simulation {test_name}"
            ),
        }
    }
    eprintln!("{test_name}: {total:?} in {:?}", started.elapsed());
    total
}

/// Proves: under `fsync: always`, through thousands of power losses (every `PowerLossMode`,
/// crashes inside rolls, retention and recovery itself), fdatasync and directory fsync
/// failures, a full disk and restarts, every acknowledged batch is recovered exactly once at
/// its acknowledged offset unless retention deleted its segment by the rules, offsets stay
/// dense, readers never saw an offset that a crash took back, and recovery always succeeds.
#[test]
fn acknowledged_batches_survive_every_simulated_crash_under_fsync_always() {
    let outcome = simulate(
        "acknowledged_batches_survive_every_simulated_crash_under_fsync_always",
        0..8,
        Options { fsync: FsyncPolicy::Always, lying_disk: false },
    );
    assert!(outcome.n_acknowledged_batches > 0 && outcome.n_failed_waits > 0 && outcome.n_disk_full > 0, "{outcome:?}");
}

/// Proves the same as above for a second set of seeds (a separate test, so both run at once).
#[test]
fn acknowledged_batches_survive_every_simulated_crash_under_fsync_always_more_seeds() {
    simulate(
        "acknowledged_batches_survive_every_simulated_crash_under_fsync_always_more_seeds",
        8..16,
        Options { fsync: FsyncPolicy::Always, lying_disk: false },
    );
}

/// Proves: under `fsync: never`, what a successful `sync` covered and every sealed segment
/// survive every simulated crash, and recovery always succeeds on what is left.
#[test]
fn synced_batches_survive_every_simulated_crash_under_fsync_never() {
    simulate(
        "synced_batches_survive_every_simulated_crash_under_fsync_never",
        1000..1004,
        Options { fsync: FsyncPolicy::Never, lying_disk: false },
    );
}

/// Proves the simulation would catch a missing fsync: on a disk that reports every fdatasync as
/// done without syncing, every seed fails, and the failure names its seed.
#[test]
fn a_disk_that_skips_fdatasync_fails_the_simulation_with_its_seed() {
    for seed in 0..4 {
        let why = run_seed(seed, CYCLES_PER_SEED, Options { fsync: FsyncPolicy::Always, lying_disk: true })
            .expect_err("a disk that syncs nothing must lose acknowledged batches");
        assert!(why.starts_with(&format!("seed {seed}, cycle ")), "{why}");
    }
}
