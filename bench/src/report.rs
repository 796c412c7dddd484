//! The benchmark report: raw per-run figures as JSON, and a Markdown summary with medians, min/max and Weft / peer ratios.
//!
//! This module only formats; it measures nothing and starts nothing (apart from asking servers for `--version`).

use std::fmt::Write as _;
use std::process::Command;

use serde::Serialize;

use crate::limits::PhysicalLimits;
use crate::systems::weft::{WeftOptions, WeftTransport};

/// Figures of one run of one system.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RunMetrics {
    pub run_idx: usize,
    pub n_events: u64,
    pub produce_seconds: f64,
    pub produce_events_per_second: f64,
    /// Event payload megabytes (10^6 bytes) per second, without protocol framing.
    pub produce_mb_per_second: f64,
    /// Batches sent through lanes (0 when the system's own client produced, as kcat for Weft over Kafka).
    pub produce_batches: u64,
    /// Per-batch acknowledgement time through lanes; `None` when the system's own client produced.
    pub produce_batch_p50_us: Option<f64>,
    pub produce_batch_p99_us: Option<f64>,
    pub consume_seconds: f64,
    pub consume_events_per_second: f64,
    /// Payload bytes received (for Weft over HTTP: bytes of the JSON pages, envelopes included).
    pub consume_bytes_received: u64,
    /// The open-loop latency phase; `None` when it was not run (a system without lanes).
    pub latency: Option<LatencyMetrics>,
    pub produce_server_cpu_seconds: f64,
    pub consume_server_cpu_seconds: f64,
    pub produce_server_cpu_seconds_per_million_events: f64,
    pub consume_server_cpu_seconds_per_million_events: f64,
    /// CPU seconds per wall-clock second during a phase: 1.0 is one core fully busy.
    pub produce_server_cores_busy: f64,
    pub produce_client_cores_busy: f64,
    pub consume_server_cores_busy: f64,
    pub consume_client_cores_busy: f64,
    /// Peak tree memory (as `peak_rss_bytes`, sampled) up to the end of the produce and of the consume phase.
    pub peak_rss_after_produce_bytes: u64,
    pub peak_rss_after_consume_bytes: u64,
    /// Peak resident memory of the server's process tree (shared memory counted once), or its `VmHWM` if larger.
    pub peak_rss_bytes: u64,
    /// The machine's 1-minute load average when the run started and when it ended: other work on a shared machine shows here.
    pub load_average_at_start: f64,
    pub load_average_at_end: f64,
}

/// Figures of the open-loop latency phase of one run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LatencyMetrics {
    /// Offered load, events per second.
    pub rate: u64,
    pub n_events: u64,
    pub achieved_events_per_second: f64,
    pub n_batches: u64,
    /// Per event, from intended send time to acknowledgement.
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub server_cpu_seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct SystemResult {
    pub key: String,
    pub is_weft: bool,
    /// Weft's configuration (transport, fsync, contracts, auth); `None` for peers.
    pub weft: Option<WeftOptions>,
    pub durability: String,
    pub skipped: Option<String>,
    pub runs: Vec<RunMetrics>,
    pub failures: Vec<String>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

const MIB: f64 = 1024.0 * 1024.0;

struct Metric {
    key: &'static str,
    title: &'static str,
    /// `None` when the run did not measure it (no latency phase for Weft over Kafka).
    value: fn(&RunMetrics) -> Option<f64>,
    /// The stored value is divided by this for display.
    display_divisor: f64,
    decimals: usize,
    higher_is_better: bool,
}

const METRICS: &[Metric] = &[
    Metric {
        key: "produce_events_per_second",
        title: "produce ev/s",
        value: |run| Some(run.produce_events_per_second),
        display_divisor: 1.0,
        decimals: 0,
        higher_is_better: true,
    },
    Metric {
        key: "produce_mb_per_second",
        title: "produce MB/s",
        value: |run| Some(run.produce_mb_per_second),
        display_divisor: 1.0,
        decimals: 1,
        higher_is_better: true,
    },
    Metric {
        key: "produce_server_cpu_seconds_per_million_events",
        title: "server CPU-µs/event produce",
        value: |run| Some(run.produce_server_cpu_seconds_per_million_events),
        display_divisor: 1.0,
        decimals: 2,
        higher_is_better: false,
    },
    Metric {
        key: "consume_events_per_second",
        title: "consume ev/s",
        value: |run| Some(run.consume_events_per_second),
        display_divisor: 1.0,
        decimals: 0,
        higher_is_better: true,
    },
    Metric {
        key: "consume_server_cpu_seconds_per_million_events",
        title: "server CPU-µs/event consume",
        value: |run| Some(run.consume_server_cpu_seconds_per_million_events),
        display_divisor: 1.0,
        decimals: 2,
        higher_is_better: false,
    },
    Metric {
        key: "latency_p50_us",
        title: "ack p50 ms",
        value: |run| run.latency.as_ref().map(|latency| latency.p50_us),
        display_divisor: 1000.0,
        decimals: 2,
        higher_is_better: false,
    },
    Metric {
        key: "latency_p99_us",
        title: "ack p99 ms",
        value: |run| run.latency.as_ref().map(|latency| latency.p99_us),
        display_divisor: 1000.0,
        decimals: 2,
        higher_is_better: false,
    },
    Metric {
        key: "latency_p999_us",
        title: "ack p99.9 ms",
        value: |run| run.latency.as_ref().map(|latency| latency.p999_us),
        display_divisor: 1000.0,
        decimals: 2,
        higher_is_better: false,
    },
    Metric {
        key: "peak_rss_bytes",
        title: "peak RSS MiB",
        value: |run| Some(run.peak_rss_bytes as f64),
        display_divisor: 1024.0 * 1024.0,
        decimals: 0,
        higher_is_better: false,
    },
];

fn summarize(values: &mut [f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    let median = if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 };
    Some(Summary { median, min: values[0], max: values[values.len() - 1] })
}

fn metric_summary(system: &SystemResult, metric: &Metric) -> Option<Summary> {
    let mut values: Vec<f64> = system.runs.iter().filter_map(metric.value).collect();
    summarize(&mut values)
}

#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu_model: String,
    pub kernel: String,
    pub server_versions: Vec<String>,
}

impl Machine {
    fn describe(environment: &serde_json::Value) -> Machine {
        let memory_kib: f64 = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|meminfo| {
                let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?.to_string();
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0.0);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|cpuinfo| {
                let line = cpuinfo.lines().find(|line| line.starts_with("model name"))?.to_string();
                Some(line.split_once(':')?.1.trim().to_string())
            })
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
        let mut server_versions = Vec::new();
        for (key, program) in [("nats_binary", None), ("redis_binary", None), ("postgres_bin_dir", Some("postgres"))] {
            let Some(path) = environment[key].as_str() else {
                continue;
            };
            let binary = match program {
                Some(program) => std::path::Path::new(path).join(program),
                None => std::path::PathBuf::from(path),
            };
            if let Ok(output) = Command::new(&binary).arg("--version").output() {
                let text = String::from_utf8_lossy(&output.stdout);
                server_versions.push(text.lines().next().unwrap_or("").trim().to_string());
            }
        }
        Machine {
            cores: std::thread::available_parallelism().map(usize::from).unwrap_or(0),
            memory_gib: memory_kib / (1024.0 * 1024.0),
            cpu_model,
            kernel,
            server_versions,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub generated_unix_seconds: u64,
    pub machine: Machine,
    pub config: serde_json::Value,
    pub environment: serde_json::Value,
    pub limits: Option<PhysicalLimits>,
    pub systems: Vec<SystemResult>,
    /// Median, min and max of every metric, per system key and metric key.
    pub summaries: serde_json::Value,
}

impl Report {
    pub(crate) fn new(
        config: &serde_json::Value,
        environment: &serde_json::Value,
        limits: Option<PhysicalLimits>,
        systems: Vec<SystemResult>,
    ) -> Report {
        let mut summaries = serde_json::Map::new();
        for system in &systems {
            let mut per_metric = serde_json::Map::new();
            for metric in METRICS {
                if let Some(summary) = metric_summary(system, metric) {
                    per_metric.insert(metric.key.to_string(), serde_json::json!(summary));
                }
            }
            summaries.insert(system.key.clone(), serde_json::Value::Object(per_metric));
        }
        Report {
            generated_unix_seconds: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs())
                .unwrap_or(0),
            machine: Machine::describe(environment),
            config: config.clone(),
            environment: environment.clone(),
            limits,
            systems,
            summaries: serde_json::Value::Object(summaries),
        }
    }

    pub(crate) fn to_markdown(&self) -> String {
        let mut out = String::new();
        self.write_markdown(&mut out).expect("writing to a String cannot fail");
        out
    }

    fn write_markdown(&self, out: &mut String) -> std::fmt::Result {
        let config = &self.config;
        writeln!(out, "# Weft benchmark report\n")?;
        writeln!(out, "Generated at unix time {} by `cargo run --release -p weft-bench`.\n", self.generated_unix_seconds)?;
        writeln!(
            out,
            "Machine: {} cores ({}), {:.1} GiB memory, Linux {}; client and servers share it.",
            self.machine.cores, self.machine.cpu_model, self.machine.memory_gib, self.machine.kernel
        )?;
        if !self.machine.server_versions.is_empty() {
            writeln!(out, "Peers: {}.", self.machine.server_versions.join("; "))?;
        }
        writeln!(
            out,
            "\nWorkload: {} order events per run (mean payload {:.0} bytes, seed {}), keyed by customer (10,000 customers) over {} partitions; \
             produced in batches of {} events from {} concurrent connections, then consumed back with {} connections. \
             Open-loop latency: {} events/s for {} s, measured from each event's intended send time. \
             Figures are the median of {} run(s), with [min–max] when there is more than one run.\n",
            config["events"],
            self.environment["mean_payload_bytes"].as_f64().unwrap_or(0.0),
            config["seed"],
            config["partitions"],
            config["batch_events"],
            config["producers"],
            config["consumers"],
            config["latency_rate"],
            config["latency_seconds"],
            config["runs"],
        )?;

        if self.systems.iter().any(|system| system.weft.as_ref().is_some_and(|options| options.contracts)) {
            writeln!(
                out,
                "Governed runs (`-contracts`) validate every event against `bench/contracts/orders.odcs.yaml` before it is \
                 appended: ten required fields, a uuid, three patterns, numeric minimums and maximums, two enumerations, \
                 a timestamp and an optional text with a length limit.\n"
            )?;
        }
        writeln!(out, "## Physical limits of this machine\n")?;
        match &self.limits {
            Some(limits) => {
                writeln!(out, "| probe | result |\n|---|---|")?;
                writeln!(
                    out,
                    "| sequential write, fdatasync every MiB ({} MiB) | {:.0} MiB/s |",
                    limits.sequential_write_bytes >> 20,
                    limits.sequential_write_mib_per_second
                )?;
                writeln!(
                    out,
                    "| 250-byte append + fdatasync ({} appends) | p50 {:.0} µs, p99 {:.0} µs ({:.0} appends/s from one writer) |",
                    limits.n_small_appends,
                    limits.small_append_fdatasync_p50_us,
                    limits.small_append_fdatasync_p99_us,
                    limits.small_appends_per_second
                )?;
                writeln!(
                    out,
                    "| serde_json parse of one event, one core ({} events) | {:.0} ns into `Value`, {:.0} ns into a struct |",
                    limits.n_parsed_events, limits.json_parse_to_value_ns_per_event, limits.json_parse_to_struct_ns_per_event
                )?;
                writeln!(
                    out,
                    "| parse + validate one event against the bench contract (`weft_contract::CompiledContract::validate_bytes`), one core | {:.0} ns |",
                    limits.contract_validate_bytes_ns_per_event
                )?;
                writeln!(out)?;
            }
            None => writeln!(out, "Not measured (`--skip-limits`).\n")?,
        }

        writeln!(out, "## Results\n")?;
        write!(out, "| system |")?;
        for metric in METRICS {
            write!(out, " {} |", metric.title)?;
        }
        write!(out, "\n|---|")?;
        for _ in METRICS {
            write!(out, "---:|")?;
        }
        writeln!(out)?;
        for system in &self.systems {
            write!(out, "| {} |", system.key)?;
            if let Some(reason) = &system.skipped {
                writeln!(out, " skipped: {reason} |")?;
                continue;
            }
            if system.runs.is_empty() {
                writeln!(out, " every run failed (see Failures) |")?;
                continue;
            }
            for metric in METRICS {
                match metric_summary(system, metric) {
                    Some(summary) => write!(out, " {} |", format_summary(summary, metric, system.runs.len() > 1))?,
                    None => write!(out, " n/a |")?,
                }
            }
            writeln!(out)?;
        }
        let loads: Vec<f64> = self
            .systems
            .iter()
            .flat_map(|system| &system.runs)
            .flat_map(|run| [run.load_average_at_start, run.load_average_at_end])
            .collect();
        if let Some(load) = summarize(&mut loads.clone()) {
            writeln!(
                out,
                "\nMachine 1-minute load average during the runs: {:.1} to {:.1} on {} cores (above the core count, other work competed with the benchmark).",
                load.min, load.max, self.machine.cores
            )?;
        }
        writeln!(
            out,
            "\nServer CPU-µs/event is the user+system time of the server's process tree (`utime+stime` from `/proc/<pid>/stat`, \
             read before and after the phase) divided by the events of the phase; peak RSS is the server's process tree with \
             shared memory counted once (for PostgreSQL that includes its 128 MiB shared buffers once).\n"
        )?;

        self.write_time_breakdown(out)?;
        self.write_costs(out)?;
        self.write_goals(out)?;
        self.write_ratios(out)?;

        writeln!(out, "## Durability of each configuration\n")?;
        for system in &self.systems {
            writeln!(out, "- **{}**: {}.", system.key, system.durability)?;
        }
        writeln!(out)?;

        writeln!(out, "## Method\n")?;
        for line in [
            "Each run starts the server on 127.0.0.1 with its data in a fresh temp dir, and stops it afterwards.",
            "Producers behave alike for every system: an idle connection takes every event that is due, up to the batch size, and sends it as one batch (one HTTP request with NDJSON lines, one pipelined burst of NATS `PUB`s or Redis `XADD`s, one multi-row PostgreSQL `INSERT` transaction), then waits until all its events are acknowledged.",
            "Throughput runs every event due at once; the latency phase makes event i due at start + i / rate, and latency runs from that intended time to the acknowledgement, so queueing behind a slow server counts (no coordinated omission).",
            "Consumers: Weft reads partitions with `GET .../events?limit=10000`; Redis reads each partition's stream with `XRANGE ... COUNT 10000`; PostgreSQL reads id ranges of 10,000 rows; NATS uses one pull consumer (ack policy none) with two pull requests of 10,000 in flight.",
            "Weft over Kafka (`weft-kafka-*` rows) uses kcat (librdkafka) processes with librdkafka's defaults (linger.ms=5, acks=all, no compression): one `kcat -P` per producer reading `key<TAB>payload` lines from a file written before timing (the phase ends when the last kcat has flushed and exited, so process start-up counts), and for consume one `kcat -C -e` per partition, all at once (`fetch.wait.max.ms=10` so the end of a partition is seen within 10 ms), whose output lines are counted. These rows have no open-loop latency phase and no per-batch figures (n/a); their client cores include the kcat processes.",
            "The client runs on one thread of the same 2-core machine, so a server can use at most about one core undisturbed.",
        ] {
            writeln!(out, "- {line}")?;
        }
        writeln!(out)?;

        let failures: Vec<(&str, &String)> =
            self.systems.iter().flat_map(|system| system.failures.iter().map(move |failure| (system.key.as_str(), failure))).collect();
        if !failures.is_empty() {
            writeln!(out, "## Failures\n")?;
            for (key, failure) in failures {
                writeln!(out, "- {key}: {failure}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }

    /// Shows whether the server, the client or neither was the bottleneck (medians).
    fn write_time_breakdown(&self, out: &mut String) -> std::fmt::Result {
        let median = |system: &SystemResult, value: fn(&RunMetrics) -> f64| {
            let mut values: Vec<f64> = system.runs.iter().map(value).collect();
            summarize(&mut values).map_or(0.0, |summary| summary.median)
        };
        let median_or_na = |system: &SystemResult, value: fn(&RunMetrics) -> Option<f64>| {
            let mut values: Vec<f64> = system.runs.iter().filter_map(value).collect();
            summarize(&mut values).map_or_else(|| "n/a".to_string(), |summary| format!("{:.1}", summary.median / 1000.0))
        };
        writeln!(
            out,
            "## Where the time goes (medians)
"
        )?;
        writeln!(
            out,
            "Cores busy = CPU seconds per wall-clock second in the phase (1.0 = one core). On 2 shared cores, server + client \
             near 2 means the run was CPU bound; well below means it waited (fsync, network, locks), or other work took the cores.\n"
        )?;
        writeln!(
            out,
            "| system | produce: server cores | client cores | batch p50 ms | batch p99 ms | consume: server cores | client cores | peak RSS MiB after produce / consume / latency |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
        for system in self.systems.iter().filter(|system| !system.runs.is_empty()) {
            writeln!(
                out,
                "| {} | {:.2} | {:.2} | {} | {} | {:.2} | {:.2} | {:.0} / {:.0} / {:.0} |",
                system.key,
                median(system, |run| run.produce_server_cores_busy),
                median(system, |run| run.produce_client_cores_busy),
                median_or_na(system, |run| run.produce_batch_p50_us),
                median_or_na(system, |run| run.produce_batch_p99_us),
                median(system, |run| run.consume_server_cores_busy),
                median(system, |run| run.consume_client_cores_busy),
                median(system, |run| run.peak_rss_after_produce_bytes as f64) / MIB,
                median(system, |run| run.peak_rss_after_consume_bytes as f64) / MIB,
                median(system, |run| run.peak_rss_bytes as f64) / MIB,
            )?;
        }
        writeln!(out)
    }

    fn weft_system(&self, wanted: impl Fn(&WeftOptions) -> bool) -> Option<&SystemResult> {
        self.systems.iter().find(|system| !system.runs.is_empty() && system.weft.as_ref().is_some_and(&wanted))
    }

    /// The cost of validation (contracts on vs off) and of authorization (auth on vs off), from pairs of Weft
    /// configurations that differ in that one setting.
    fn write_costs(&self, out: &mut String) -> std::fmt::Result {
        let produce = |system: &SystemResult, value: fn(&RunMetrics) -> f64| {
            let mut values: Vec<f64> = system.runs.iter().map(value).collect();
            summarize(&mut values).map_or(0.0, |summary| summary.median)
        };
        let mut rows = Vec::new();
        for system in self.systems.iter().filter(|system| !system.runs.is_empty()) {
            let Some(options) = &system.weft else {
                continue;
            };
            if options.contracts {
                let baseline = self.weft_system(|other| {
                    other.transport == options.transport && other.fsync == options.fsync && other.auth == options.auth && !other.contracts
                });
                if let Some(baseline) = baseline {
                    rows.push(("validation (contracts on vs off)", baseline, system));
                }
            }
            if options.auth {
                let baseline = self.weft_system(|other| {
                    other.transport == options.transport
                        && other.fsync == options.fsync
                        && other.contracts == options.contracts
                        && !other.auth
                });
                if let Some(baseline) = baseline {
                    rows.push(("authorization (auth on vs off)", baseline, system));
                }
            }
        }
        writeln!(
            out,
            "## Cost of validation and authorization (medians)
"
        )?;
        if rows.is_empty() {
            writeln!(out, "Not measured: run with `--weft-contracts off,on` and `--weft-auth on,off`.\n")?;
            return Ok(());
        }
        writeln!(
            out,
            "Throughput cost = 1 − (produce ev/s with the feature ÷ without). Server CPU per event is the difference of the \
             server's CPU-µs per event produced. Differences smaller than the runs' min–max \
             spread (Results) are noise.\n"
        )?;
        writeln!(
            out,
            "| cost of | with | without | produce ev/s with / without | throughput cost | server CPU µs/event with / without | added µs/event |"
        )?;
        writeln!(out, "|---|---|---|---:|---:|---:|---:|")?;
        for (what, baseline, system) in rows {
            let with_rate = produce(system, |run| run.produce_events_per_second);
            let without_rate = produce(baseline, |run| run.produce_events_per_second);
            let with_cpu = produce(system, |run| run.produce_server_cpu_seconds_per_million_events);
            let without_cpu = produce(baseline, |run| run.produce_server_cpu_seconds_per_million_events);
            writeln!(
                out,
                "| {what} | {} | {} | {} / {} | {:.0}% | {with_cpu:.2} / {without_cpu:.2} | {:+.2} |",
                system.key,
                baseline.key,
                group_thousands(with_rate.round() as u64),
                group_thousands(without_rate.round() as u64),
                (1.0 - with_rate / without_rate.max(1e-9)) * 100.0,
                with_cpu - without_cpu,
            )?;
        }
        if let Some(limits) = &self.limits {
            writeln!(
                out,
                "\nFloor for comparison: parsing and validating one event in-process costs {:.2} µs on one core (Physical limits).",
                limits.contract_validate_bytes_ns_per_event / 1000.0
            )?;
        }
        writeln!(out)
    }

    /// Where Weft stands against the goals of the issues, from the medians: each goal compares a
    /// Weft configuration with a peer, with the same configuration without a feature (its cost),
    /// or with a fixed rate.
    fn write_goals(&self, out: &mut String) -> std::fmt::Result {
        let median = |system: &SystemResult, metric_key: &str| {
            let metric = METRICS.iter().find(|metric| metric.key == metric_key)?;
            metric_summary(system, metric).map(|summary| summary.median)
        };
        let verdict = |met: bool| if met { "met" } else { "**not met**" };
        let thousands = |rate: f64| group_thousands(rate.round() as u64);
        writeln!(out, "## Goals (medians of this run)\n")?;
        writeln!(out, "| goal | configuration | measured | status |\n|---|---|---|---|")?;
        let governed = |transport: WeftTransport, contracts: bool| {
            self.weft_system(move |options| {
                options.transport == transport && options.fsync == "always" && options.contracts == contracts && options.auth
            })
        };
        let peer = |key: &str| self.systems.iter().find(|system| system.key == key && !system.runs.is_empty());
        // Validated produce against the peers (issue 10).
        for (transport, peer_key, factor) in [
            (WeftTransport::Http, "redis-no-persistence", 1.2),
            (WeftTransport::Http, "nats-jetstream-file", 3.0),
            (WeftTransport::Kafka, "redis-no-persistence", 1.5),
        ] {
            let goal = format!("validated, fsynced produce ≥ {factor}× {peer_key}");
            let transport_name = transport_name(transport);
            let (Some(weft), Some(other)) = (governed(transport, true), peer(peer_key)) else {
                writeln!(out, "| {goal} | {transport_name} with contracts, fsync always, auth on | not measured | n/a |")?;
                continue;
            };
            let (Some(weft_rate), Some(peer_rate)) =
                (median(weft, "produce_events_per_second"), median(other, "produce_events_per_second"))
            else {
                continue;
            };
            writeln!(
                out,
                "| {goal} | {} vs {peer_key} | {} vs {} ev/s = {:.2}× | {} |",
                weft.key,
                thousands(weft_rate),
                thousands(peer_rate),
                weft_rate / peer_rate.max(1e-9),
                verdict(weft_rate >= factor * peer_rate)
            )?;
        }
        // The throughput cost of validation (issue 10: under 15% on both paths).
        for transport in [WeftTransport::Http, WeftTransport::Kafka] {
            let goal = format!("validation costs < 15% of {} produce throughput", transport_name(transport));
            let (Some(with), Some(without)) = (governed(transport, true), governed(transport, false)) else {
                writeln!(out, "| {goal} | contracts on and off | not measured | n/a |")?;
                continue;
            };
            let (Some(with_rate), Some(without_rate)) =
                (median(with, "produce_events_per_second"), median(without, "produce_events_per_second"))
            else {
                continue;
            };
            let cost = 1.0 - with_rate / without_rate.max(1e-9);
            writeln!(
                out,
                "| {goal} | {} vs {} | {} vs {} ev/s = {:.0}% | {} |",
                with.key,
                without.key,
                thousands(with_rate),
                thousands(without_rate),
                cost * 100.0,
                verdict(cost < 0.15)
            )?;
        }
        // Consume rates (issue 10), from each transport's best configuration.
        for (transport, floor) in [(WeftTransport::Http, 800_000.0), (WeftTransport::Kafka, 1_500_000.0)] {
            let best = self
                .systems
                .iter()
                .filter(|system| !system.runs.is_empty() && system.weft.as_ref().is_some_and(|options| options.transport == transport))
                .filter_map(|system| Some((system, median(system, "consume_events_per_second")?)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let transport_name = transport_name(transport);
            let goal = format!("{transport_name} consume ≥ {} events/s of 250 B", thousands(floor));
            match best {
                Some((system, rate)) => writeln!(
                    out,
                    "| {goal} | {} (best {transport_name} configuration) | {} ev/s | {} |",
                    system.key,
                    thousands(rate),
                    verdict(rate >= floor)
                )?,
                None => writeln!(out, "| {goal} | weft over {transport_name} | not measured | n/a |")?,
            }
        }
        let rate = self.config["latency_rate"].as_u64().unwrap_or(0);
        let mut any_latency = false;
        for system in self.systems.iter().filter(|system| {
            !system.runs.is_empty()
                && system
                    .weft
                    .as_ref()
                    .is_some_and(|options| options.transport == WeftTransport::Http && options.fsync.starts_with("interval:"))
        }) {
            if let Some(p99_us) = median(system, "latency_p99_us") {
                any_latency = true;
                writeln!(
                    out,
                    "| p99 publish-to-ack < 1 ms at {} events/s with fsync interval | {} | p99 {:.2} ms | {} |",
                    group_thousands(rate),
                    system.key,
                    p99_us / 1000.0,
                    verdict(p99_us < 1000.0)
                )?;
            }
        }
        if !any_latency {
            writeln!(out, "| p99 publish-to-ack < 1 ms with fsync interval | weft-http-fsync-interval* | not measured | n/a |")?;
        }
        writeln!(out)
    }

    fn write_ratios(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "## Weft / peer ratios\n")?;
        let measured = |system: &&SystemResult| !system.runs.is_empty();
        let wefts: Vec<&SystemResult> = self.systems.iter().filter(|system| system.is_weft).filter(measured).collect();
        let peers: Vec<&SystemResult> = self.systems.iter().filter(|system| !system.is_weft).filter(measured).collect();
        if wefts.is_empty() || peers.is_empty() {
            let reason = self
                .systems
                .iter()
                .filter(|system| system.is_weft)
                .find_map(|system| system.skipped.clone())
                .unwrap_or_else(|| "no Weft or no peer configuration has a successful run".to_string());
            writeln!(out, "No ratios: {reason}.\n")?;
            return Ok(());
        }
        writeln!(
            out,
            "Ratio of medians, Weft divided by peer. For throughput above 1 favours Weft; for latency, CPU and memory below 1 favours Weft.\n"
        )?;
        for weft in wefts {
            writeln!(out, "### {}\n", weft.key)?;
            write!(out, "| peer |")?;
            for metric in METRICS {
                write!(out, " {} |", metric.title)?;
            }
            write!(out, "\n|---|")?;
            for _ in METRICS {
                write!(out, "---:|")?;
            }
            writeln!(out)?;
            for peer in &peers {
                write!(out, "| {} |", peer.key)?;
                for metric in METRICS {
                    let weft_median = metric_summary(weft, metric).map(|summary| summary.median);
                    let peer_median = metric_summary(peer, metric).map(|summary| summary.median);
                    match (weft_median, peer_median) {
                        (Some(weft_median), Some(peer_median)) if peer_median > 0.0 => {
                            let ratio = weft_median / peer_median;
                            let favours_weft = if metric.higher_is_better { ratio >= 1.0 } else { ratio <= 1.0 };
                            let mark = if favours_weft { "" } else { " ▼" };
                            write!(out, " {ratio:.2}{mark} |")?;
                        }
                        _ => write!(out, " n/a |")?,
                    }
                }
                writeln!(out)?;
            }
            writeln!(out, "\n▼ marks a ratio that favours the peer.\n")?;
        }
        Ok(())
    }
}

fn transport_name(transport: WeftTransport) -> &'static str {
    match transport {
        WeftTransport::Http => "HTTP",
        WeftTransport::Kafka => "Kafka",
    }
}

fn format_summary(summary: Summary, metric: &Metric, with_range: bool) -> String {
    let format = |value: f64| {
        let scaled = value / metric.display_divisor;
        if metric.decimals == 0 && scaled >= 10_000.0 {
            group_thousands(scaled.round() as u64)
        } else {
            format!("{scaled:.prec$}", prec = metric.decimals)
        }
    };
    if with_range {
        format!("{} [{}–{}]", format(summary.median), format(summary.min), format(summary.max))
    } else {
        format(summary.median)
    }
}

fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (idx, digit) in digits.chars().enumerate() {
        if idx > 0 && (digits.len() - idx).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the median of an even number of runs is the mean of the middle two, and min/max are the extremes.
    #[test]
    fn summary_is_median_with_min_and_max() {
        let odd = summarize(&mut [3.0, 1.0, 2.0]).expect("non-empty");
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        let even = summarize(&mut [4.0, 1.0, 3.0, 2.0]).expect("non-empty");
        assert_eq!((even.median, even.min, even.max), (2.5, 1.0, 4.0));
        assert!(summarize(&mut []).is_none());
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(1_234_567), "1,234,567");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(100_000), "100,000");
    }
}
