//! `weft-bench`: runs one workload against Weft and its peers on loopback and writes a report of ratios.
//!
//! Each run of each system starts the server with data under a fresh temp dir, creates a stream, produces every event
//! with the system's best batching (`driver.rs`), consumes them all back, measures publish-to-ack latency at a fixed
//! open-loop rate, reads the server's CPU time and peak memory from `/proc`, and stops the server.
//! Every phase has a time limit, so a hung server fails its run instead of stalling the benchmark.
//! The tool installs nothing: `scripts/bench.sh` installs the peers from Debian and runs it.
//!
//! Codemap: `configs.rs` (configurations and their durability), `workload.rs` (events), `driver.rs` (produce and
//! open-loop load, shared by all systems), `systems/` (one module per system behind `System` and `Lane`),
//! `server_process.rs` (processes and `/proc`), `limits.rs` (disk and CPU floors), `profiler.rs` (perf around the
//! produce phase), `report.rs` (Markdown and JSON).

mod configs;
mod driver;
mod http1;
mod kcat;
mod limits;
mod profiler;
mod report;
mod server_process;
mod systems;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Parser;

use crate::configs::{SystemConfig, parse_systems};
use crate::driver::{DriveOutcome, Pacing};
use crate::profiler::ProduceProfiler;
use crate::report::{LatencyMetrics, RunMetrics, SystemResult};
use crate::server_process::{RssSampler, own_cpu_seconds, peak_rss_bytes, reaped_children_cpu_seconds, tree_cpu_seconds};
use crate::systems::nats::NatsSystem;
use crate::systems::postgres::{PostgresInstall, PostgresSystem};
use crate::systems::redis::RedisSystem;
use crate::systems::weft::{WeftSystem, WeftTransport};
use crate::systems::{START_TIMEOUT, StreamSpec, System};
use crate::workload::Workload;

/// How long stopping a server may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(90);
/// Extra time the open-loop phase gets beyond its nominal duration before it counts as hung.
const LATENCY_PHASE_SLACK: Duration = Duration::from_secs(120);

/// Benchmark Weft against NATS JetStream, Redis Streams and a PostgreSQL outbox on this machine.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub(crate) struct Cli {
    /// Systems to run, comma separated: weft (HTTP), weft-kafka (Kafka listener, kcat), nats, redis-aof, redis-none, postgres.
    /// `weft` runs once per combination of `--weft-fsync`, `--weft-contracts` and `--weft-auth`; `weft-kafka` once per
    /// combination of `--weft-fsync`, `--weft-contracts` and `--weft-kafka-auth`.
    /// Systems whose server (or kcat) is not installed are skipped and reported as such.
    #[arg(long, value_delimiter = ',', default_value = "weft,weft-kafka,nats,redis-aof,redis-none,postgres")]
    systems: Vec<String>,

    /// Events produced and consumed per run.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,

    /// Runs per system; each figure is the median of the runs, with min and max.
    #[arg(long, default_value_t = 3)]
    runs: usize,

    /// Quick check that every system still works: 5,000 events, 1 run, 2 s of open-loop latency, small limit probes.
    /// Writes `smoke.md`/`smoke.json` unless `--name` is given.
    #[arg(long)]
    smoke: bool,

    /// Seed of the deterministic workload.
    #[arg(long, default_value_t = 42)]
    seed: u64,

    #[arg(long, default_value_t = 8)]
    partitions: u32,

    /// Events per produce batch (NDJSON lines per request, pipelined commands per burst, rows per INSERT).
    #[arg(long, default_value_t = 1_000)]
    batch_events: usize,

    /// Concurrent producer connections.
    #[arg(long, default_value_t = 4)]
    producers: usize,

    /// Concurrent consumer connections (NATS always uses one pull consumer).
    #[arg(long, default_value_t = 4)]
    consumers: usize,

    /// Offered load of the open-loop latency phase, in events per second.
    #[arg(long, default_value_t = 10_000)]
    latency_rate: u64,

    /// Duration of the open-loop latency phase, in seconds.
    #[arg(long, default_value_t = 10)]
    latency_seconds: u64,

    /// Time limit of each produce or consume phase, in seconds.
    #[arg(long, default_value_t = 600)]
    phase_timeout_seconds: u64,

    /// Weft stream fsync policies to run, comma separated (`always`, `interval:<ms>`, `never`).
    #[arg(long, value_delimiter = ',', default_value = "always,interval:5")]
    weft_fsync: Vec<String>,

    /// Create Weft's streams from a data contract, so every event is validated (`on`), or plainly (`off`);
    /// comma separated to run both.
    #[arg(long, value_delimiter = ',', default_value = "off", value_parser = ["off", "on"])]
    weft_contracts: Vec<String>,

    /// Run `weft serve` with authentication and authorization on (`on`, Weft's default: every request carries the
    /// admin token) or `--auth off`; comma separated to run both (the cost of authorization).
    #[arg(long, value_delimiter = ',', default_value = "on", value_parser = ["on", "off"])]
    weft_auth: Vec<String>,

    /// Authentication for `weft-kafka` runs: `on` signs kcat in with SASL/PLAIN (user `admin`, the admin token);
    /// `off` runs `weft serve --auth off`. Comma separated to run both.
    #[arg(long, value_delimiter = ',', default_value = "on", value_parser = ["on", "off"])]
    weft_kafka_auth: Vec<String>,

    /// Path of the `weft` binary (default: `release/weft` in the target dir this tool was built in, else
    /// `target/release/weft` of this workspace).
    #[arg(long)]
    weft_bin: Option<PathBuf>,

    /// Profile each run's server during its produce phase with `perf record -g`, writing
    /// `DIR/<configuration>-run<N>.perf.data` (`scripts/profile.sh` does this and summarizes the profile).
    /// perf slows the server down, so the throughput of such a run is not a benchmark figure.
    #[arg(long)]
    perf_record_dir: Option<PathBuf>,

    /// OS user that runs the PostgreSQL cluster when the benchmark runs as root.
    #[arg(long, default_value = "postgres")]
    pg_user: String,

    /// Treat a skipped system (server not installed, `weft` not built) as a failure, so CI cannot pass by skipping everything.
    #[arg(long)]
    fail_on_skip: bool,

    /// Skip measuring disk and JSON-parse limits.
    #[arg(long)]
    skip_limits: bool,

    /// Directory for the report (default: `bench/results` of this workspace).
    #[arg(long)]
    out_dir: Option<PathBuf>,

    /// Report file name without extension (default `latest`, or `smoke` with `--smoke`).
    #[arg(long)]
    name: Option<String>,

    /// Where each run's temp data dir is created (default: the system temp dir).
    #[arg(long)]
    temp_dir: Option<PathBuf>,
}

/// Everything a run needs besides the system itself.
struct RunEnvironment {
    workload: Workload,
    latency_workload: Workload,
    temp_root: PathBuf,
    weft_binary: PathBuf,
    nats_binary: Option<PathBuf>,
    redis_binary: Option<PathBuf>,
    kcat_binary: Option<PathBuf>,
    postgres: Option<PostgresInstall>,
    n_partitions: u32,
    batch_events: usize,
    n_producers: usize,
    n_consumers: usize,
    latency_rate: u64,
    latency_seconds: u64,
    phase_timeout: Duration,
    perf_record_dir: Option<PathBuf>,
}

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bench/ has a parent").to_path_buf()
}

/// `release/weft` in the target dir this tool runs from (`<target>/<profile>/weft-bench`), so a `CARGO_TARGET_DIR`
/// outside the workspace is honoured; `target/release/weft` of the workspace when there is none.
fn default_weft_binary() -> PathBuf {
    let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.join("release").join("weft")));
    match beside {
        Some(path) if path.is_file() => path,
        _ => workspace_dir().join("target/release/weft"),
    }
}

fn main() -> Result<()> {
    let mut cli = Cli::parse();
    if cli.smoke {
        cli.events = cli.events.min(5_000);
        cli.runs = 1;
        cli.latency_seconds = cli.latency_seconds.min(2);
        cli.phase_timeout_seconds = cli.phase_timeout_seconds.min(60);
    }
    if cli.runs == 0 || cli.events == 0 || cli.producers == 0 || cli.partitions == 0 || cli.latency_rate == 0 {
        bail!("--runs, --events, --producers, --partitions and --latency-rate must be at least 1");
    }
    let configs = parse_systems(&cli)?;
    let out_dir = cli.out_dir.clone().unwrap_or_else(|| workspace_dir().join("bench/results"));
    let report_name = cli.name.clone().unwrap_or_else(|| if cli.smoke { "smoke" } else { "latest" }.to_string());
    let temp_root = cli.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    if let Some(dir) = &cli.perf_record_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }

    eprintln!("generating {} events (seed {})", cli.events, cli.seed);
    let workload = Workload::generate(cli.events, cli.seed, cli.partitions);
    let n_latency_events = (cli.latency_rate * cli.latency_seconds).max(1) as usize;
    let latency_workload = Workload::generate(n_latency_events, cli.seed.wrapping_add(1), cli.partitions);
    eprintln!(
        "{} events, mean payload {:.0} bytes; {} open-loop events",
        workload.events.len(),
        workload.mean_payload_bytes(),
        latency_workload.events.len()
    );

    let limits = if cli.skip_limits {
        None
    } else {
        let plan = if cli.smoke {
            limits::LimitsPlan { sequential_write_bytes: 16 << 20, n_small_appends: 200, n_parsed_events_max: 5_000 }
        } else {
            limits::LimitsPlan { sequential_write_bytes: 256 << 20, n_small_appends: 2_000, n_parsed_events_max: 200_000 }
        };
        let dir = tempfile::Builder::new().prefix("weft-bench-limits-").tempdir_in(&temp_root)?;
        eprintln!("measuring physical limits in {}", dir.path().display());
        Some(limits::measure(dir.path(), &plan, &workload.events)?)
    };

    let environment = RunEnvironment {
        workload,
        latency_workload,
        temp_root,
        weft_binary: cli.weft_bin.clone().unwrap_or_else(default_weft_binary),
        nats_binary: server_process::find_on_path("nats-server"),
        redis_binary: server_process::find_on_path("redis-server"),
        kcat_binary: kcat::find_kcat(),
        postgres: PostgresInstall::find(&cli.pg_user),
        n_partitions: cli.partitions,
        batch_events: cli.batch_events,
        n_producers: cli.producers,
        n_consumers: cli.consumers,
        latency_rate: cli.latency_rate,
        latency_seconds: cli.latency_seconds,
        phase_timeout: Duration::from_secs(cli.phase_timeout_seconds),
        perf_record_dir: cli.perf_record_dir.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let results = runtime.block_on(run_all(&configs, cli.runs, &environment));

    let report = report::Report::new(&cli_echo(&cli), &environment_echo(&environment), limits, results);
    std::fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    let markdown_path = out_dir.join(format!("{report_name}.md"));
    let json_path = out_dir.join(format!("{report_name}.json"));
    std::fs::write(&markdown_path, report.to_markdown())?;
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)?;
    eprintln!("wrote {} and {}", markdown_path.display(), json_path.display());
    print!("{}", report.to_markdown());
    if report.systems.iter().any(|system| !system.failures.is_empty()) {
        bail!("some runs failed; see the report's Failures section");
    }
    if cli.fail_on_skip && report.systems.iter().any(|system| system.skipped.is_some()) {
        bail!("some systems were skipped and --fail-on-skip is set");
    }
    Ok(())
}

fn cli_echo(cli: &Cli) -> serde_json::Value {
    serde_json::json!({
        "events": cli.events,
        "runs": cli.runs,
        "smoke": cli.smoke,
        "seed": cli.seed,
        "partitions": cli.partitions,
        "batch_events": cli.batch_events,
        "producers": cli.producers,
        "consumers": cli.consumers,
        "latency_rate": cli.latency_rate,
        "latency_seconds": cli.latency_seconds,
        "phase_timeout_seconds": cli.phase_timeout_seconds,
        "weft_fsync": cli.weft_fsync,
        "weft_contracts": cli.weft_contracts,
        "weft_auth": cli.weft_auth,
        "weft_kafka_auth": cli.weft_kafka_auth,
        "perf_record_dir": cli.perf_record_dir,
    })
}

fn environment_echo(environment: &RunEnvironment) -> serde_json::Value {
    serde_json::json!({
        "mean_payload_bytes": environment.workload.mean_payload_bytes(),
        "payload_bytes": environment.workload.n_payload_bytes,
        "latency_events": environment.latency_workload.events.len(),
        "temp_root": environment.temp_root,
        "weft_binary": environment.weft_binary,
        "nats_binary": environment.nats_binary,
        "redis_binary": environment.redis_binary,
        "kcat_binary": environment.kcat_binary,
        "postgres_bin_dir": environment.postgres.as_ref().map(|install| &install.bin_dir),
    })
}

/// Why a configuration cannot run here, if it cannot.
fn skip_reason(config: &SystemConfig, environment: &RunEnvironment) -> Option<String> {
    match config {
        SystemConfig::Weft { options } => {
            if !environment.weft_binary.is_file() {
                Some(format!(
                    "{} does not exist (build it with `cargo build --release -p weft` or pass --weft-bin)",
                    environment.weft_binary.display()
                ))
            } else if options.transport == WeftTransport::Kafka && environment.kcat_binary.is_none() {
                Some("kcat is not on PATH (scripts/bench.sh installs it)".to_string())
            } else {
                None
            }
        }
        SystemConfig::NatsJetStream => {
            environment.nats_binary.is_none().then(|| "nats-server is not on PATH (scripts/bench.sh installs it)".to_string())
        }
        SystemConfig::Redis(_) => {
            environment.redis_binary.is_none().then(|| "redis-server is not on PATH (scripts/bench.sh installs it)".to_string())
        }
        SystemConfig::PostgresOutbox => environment
            .postgres
            .is_none()
            .then(|| "PostgreSQL server binaries (initdb, pg_ctl) not found (scripts/bench.sh installs them)".to_string()),
    }
}

async fn run_all(configs: &[SystemConfig], n_runs: usize, environment: &RunEnvironment) -> Vec<SystemResult> {
    let mut results: Vec<SystemResult> = configs
        .iter()
        .map(|config| SystemResult {
            key: config.key(),
            is_weft: config.is_weft(),
            weft: config.weft_options().cloned(),
            durability: config.durability(),
            skipped: skip_reason(config, environment),
            runs: Vec::new(),
            failures: Vec::new(),
        })
        .collect();
    // Runs are interleaved (all systems once, then again) so slow drift of the machine spreads over all systems.
    for run_idx in 0..n_runs {
        for (config, result) in configs.iter().zip(results.iter_mut()) {
            if result.skipped.is_some() {
                continue;
            }
            eprintln!("== {} run {}/{}", result.key, run_idx + 1, n_runs);
            match run_once(config, run_idx, environment).await {
                Ok(metrics) => {
                    eprintln!(
                        "   produce {:.0} ev/s, consume {:.0} ev/s, ack p99 {:.2} ms, server cpu {:.2}+{:.2} µs/event, rss {:.0} MiB",
                        metrics.produce_events_per_second,
                        metrics.consume_events_per_second,
                        metrics.latency.as_ref().map_or(f64::NAN, |latency| latency.p99_us / 1000.0),
                        metrics.produce_server_cpu_seconds_per_million_events,
                        metrics.consume_server_cpu_seconds_per_million_events,
                        metrics.peak_rss_bytes as f64 / (1024.0 * 1024.0)
                    );
                    result.runs.push(metrics);
                }
                Err(error) => {
                    eprintln!("   run failed: {error:#}");
                    result.failures.push(format!("run {}: {error:#}", run_idx + 1));
                }
            }
        }
    }
    for result in &mut results {
        if result.skipped.is_some() {
            eprintln!("skipped {}: {}", result.key, result.skipped.as_deref().unwrap_or(""));
        }
    }
    results
}

async fn within<T>(what: &str, limit: Duration, future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| anyhow!("{what} did not finish within {limit:?}"))?
        .with_context(|| what.to_string())
}

async fn run_once(config: &SystemConfig, run_idx: usize, environment: &RunEnvironment) -> Result<RunMetrics> {
    let data_dir =
        tempfile::Builder::new().prefix("weft-bench-").tempdir_in(&environment.temp_root).context("create the run's temp dir")?;
    let dir = data_dir.path();
    let missing = || anyhow!("server binary disappeared");
    let profile = environment.perf_record_dir.as_ref().map(|dir| dir.join(format!("{}-run{}.perf.data", config.key(), run_idx + 1)));
    let run = RunPlan { run_idx, profile };
    match config {
        SystemConfig::Weft { options } => {
            let system = within("start weft", START_TIMEOUT, WeftSystem::start(&environment.weft_binary, dir, options.clone())).await?;
            measure(system, &run, environment).await
        }
        SystemConfig::NatsJetStream => {
            let binary = environment.nats_binary.as_deref().ok_or_else(missing)?;
            let system = within("start nats-server", START_TIMEOUT, NatsSystem::start(binary, dir)).await?;
            measure(system, &run, environment).await
        }
        SystemConfig::Redis(persistence) => {
            let binary = environment.redis_binary.as_deref().ok_or_else(missing)?;
            let system = within("start redis-server", START_TIMEOUT, RedisSystem::start(binary, dir, *persistence)).await?;
            measure(system, &run, environment).await
        }
        SystemConfig::PostgresOutbox => {
            let install = environment.postgres.as_ref().ok_or_else(missing)?;
            let system = within("start postgres", START_TIMEOUT * 2, PostgresSystem::start(install, dir)).await?;
            measure(system, &run, environment).await
        }
    }
}

/// What differs between runs of one configuration.
struct RunPlan {
    run_idx: usize,
    /// Where to write a `perf record` profile of the server's produce phase, if one is asked for.
    profile: Option<PathBuf>,
}

/// Runs all phases and always stops the server, also when a phase failed.
async fn measure<S: System>(mut system: S, run: &RunPlan, environment: &RunEnvironment) -> Result<RunMetrics> {
    let load_average_at_start = load_average();
    let sampler = RssSampler::start(system.server_pid());
    let outcome = run_phases(&mut system, run, environment, &sampler).await;
    let peak_tree_bytes = sampler.finish();
    let peak_main_bytes = peak_rss_bytes(system.server_pid());
    let stopped = within("stop the server", STOP_TIMEOUT, system.stop()).await;
    let mut metrics = outcome?;
    stopped?;
    metrics.peak_rss_bytes = peak_tree_bytes.max(peak_main_bytes);
    metrics.load_average_at_start = load_average_at_start;
    metrics.load_average_at_end = load_average();
    Ok(metrics)
}

/// The 1-minute load average from `/proc/loadavg`.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|text| text.split_whitespace().next()?.parse().ok()).unwrap_or(0.0)
}

async fn open_lanes<S: System>(system: &S, stream: &StreamSpec, n_lanes: usize) -> Result<Vec<S::Lane>> {
    let mut lanes = Vec::with_capacity(n_lanes);
    for lane_idx in 0..n_lanes {
        lanes.push(system.open_lane(stream, lane_idx).await?);
    }
    Ok(lanes)
}

async fn run_phases<S: System>(system: &mut S, run: &RunPlan, environment: &RunEnvironment, sampler: &RssSampler) -> Result<RunMetrics> {
    let pid = system.server_pid();
    let phase_timeout = environment.phase_timeout;
    let workload = &environment.workload;

    let orders = StreamSpec { name: "bench.orders.v1".to_string(), n_partitions: environment.n_partitions };
    within("create the orders stream", START_TIMEOUT, system.create_stream(&orders)).await?;
    // perf attaches now but samples only between enable and finish, so the profile holds the produce phase alone.
    let mut profiler = run.profile.as_deref().map(|path| ProduceProfiler::attach(pid, path)).transpose()?;
    if let Some(profiler) = profiler.as_mut() {
        profiler.enable()?;
    }
    let cpu_before_produce = tree_cpu_seconds(pid);
    let client_cpu_before_produce = client_cpu_seconds();
    let produce = match system.produce_with_own_client(&orders, &workload.events, environment.n_producers).await {
        Some(produced) => {
            let produced = produced.context("produce")?;
            ProducePhase { elapsed: produced.elapsed, n_batches: 0, batch_p50_us: None, batch_p99_us: None }
        }
        None => {
            let lanes = within("open producer lanes", START_TIMEOUT, open_lanes(system, &orders, environment.n_producers)).await?;
            let driven: DriveOutcome = within(
                "produce",
                phase_timeout,
                driver::drive(lanes, &workload.events, environment.batch_events, Pacing::AsFastAsPossible),
            )
            .await?;
            ProducePhase {
                elapsed: driven.elapsed,
                n_batches: driven.n_batches,
                batch_p50_us: Some(driven.batch_latency_us.value_at_quantile(0.50) as f64),
                batch_p99_us: Some(driven.batch_latency_us.value_at_quantile(0.99) as f64),
            }
        }
    };
    let cpu_after_produce = tree_cpu_seconds(pid);
    let client_cpu_after_produce = client_cpu_seconds();
    if let Some(profiler) = profiler {
        eprintln!("   perf profile of the produce phase: {}", profiler.finish()?.display());
    }
    let peak_rss_after_produce_bytes = sampler.peak_so_far(pid);

    let n_events = workload.events.len() as u64;
    let consume_started = std::time::Instant::now();
    let consumed = within("consume", phase_timeout, system.consume_all(&orders, n_events, environment.n_consumers)).await?;
    let consume_elapsed = consume_started.elapsed();
    let cpu_after_consume = tree_cpu_seconds(pid);
    let client_cpu_after_consume = client_cpu_seconds();
    let peak_rss_after_consume_bytes = sampler.peak_so_far(pid);

    let latency = if system.measures_latency() { Some(measure_latency(system, environment).await?) } else { None };

    let per_million = |cpu_seconds: f64, n: u64| cpu_seconds * 1e6 / n.max(1) as f64;
    let produce_seconds = produce.elapsed.as_secs_f64();
    let consume_seconds = consume_elapsed.as_secs_f64();
    let n_latency_events = environment.latency_workload.events.len() as u64;
    Ok(RunMetrics {
        run_idx: run.run_idx,
        n_events,
        produce_seconds,
        produce_events_per_second: n_events as f64 / produce_seconds,
        produce_mb_per_second: workload.n_payload_bytes as f64 / 1e6 / produce_seconds,
        produce_batches: produce.n_batches,
        produce_batch_p50_us: produce.batch_p50_us,
        produce_batch_p99_us: produce.batch_p99_us,
        consume_seconds,
        consume_events_per_second: consumed.n_events as f64 / consume_seconds,
        consume_bytes_received: consumed.n_payload_bytes,
        latency: latency.map(|phase| LatencyMetrics {
            rate: environment.latency_rate,
            n_events: n_latency_events,
            achieved_events_per_second: n_latency_events as f64 / phase.outcome.elapsed.as_secs_f64(),
            n_batches: phase.outcome.n_batches,
            p50_us: phase.outcome.event_latency_us.value_at_quantile(0.50) as f64,
            p99_us: phase.outcome.event_latency_us.value_at_quantile(0.99) as f64,
            p999_us: phase.outcome.event_latency_us.value_at_quantile(0.999) as f64,
            max_us: phase.outcome.event_latency_us.max() as f64,
            server_cpu_seconds: phase.server_cpu_seconds,
        }),
        produce_server_cpu_seconds: cpu_after_produce - cpu_before_produce,
        consume_server_cpu_seconds: cpu_after_consume - cpu_after_produce,
        produce_server_cpu_seconds_per_million_events: per_million(cpu_after_produce - cpu_before_produce, n_events),
        consume_server_cpu_seconds_per_million_events: per_million(cpu_after_consume - cpu_after_produce, n_events),
        produce_server_cores_busy: (cpu_after_produce - cpu_before_produce) / produce_seconds,
        produce_client_cores_busy: (client_cpu_after_produce - client_cpu_before_produce) / produce_seconds,
        consume_server_cores_busy: (cpu_after_consume - cpu_after_produce) / consume_seconds,
        consume_client_cores_busy: (client_cpu_after_consume - client_cpu_after_produce) / consume_seconds,
        peak_rss_after_produce_bytes,
        peak_rss_after_consume_bytes,
        peak_rss_bytes: 0,
        load_average_at_start: 0.0,
        load_average_at_end: 0.0,
    })
}

/// What the open-loop latency phase measured.
struct LatencyPhase {
    outcome: DriveOutcome,
    server_cpu_seconds: f64,
}

/// What the produce phase measured, through lanes or the system's own client.
struct ProducePhase {
    elapsed: Duration,
    n_batches: u64,
    batch_p50_us: Option<f64>,
    batch_p99_us: Option<f64>,
}

/// CPU seconds of the client: this process plus client processes it ran and reaped (kcat).
fn client_cpu_seconds() -> f64 {
    own_cpu_seconds() + reaped_children_cpu_seconds()
}

async fn measure_latency<S: System>(system: &mut S, environment: &RunEnvironment) -> Result<LatencyPhase> {
    let pid = system.server_pid();
    let latency_stream = StreamSpec { name: "bench.latency.v1".to_string(), n_partitions: environment.n_partitions };
    within("create the latency stream", START_TIMEOUT, system.create_stream(&latency_stream)).await?;
    let lanes = within("open latency lanes", START_TIMEOUT, open_lanes(system, &latency_stream, environment.n_producers)).await?;
    let latency_limit = Duration::from_secs(environment.latency_seconds) + LATENCY_PHASE_SLACK;
    let cpu_before_latency = tree_cpu_seconds(pid);
    let latency = within(
        "open-loop latency",
        latency_limit,
        driver::drive(
            lanes,
            &environment.latency_workload.events,
            environment.batch_events,
            Pacing::OpenLoop { events_per_second: environment.latency_rate },
        ),
    )
    .await?;
    let cpu_after_latency = tree_cpu_seconds(pid);
    Ok(LatencyPhase { outcome: latency, server_cpu_seconds: cpu_after_latency - cpu_before_latency })
}
