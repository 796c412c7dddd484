//! Physical limits of this machine, measured in the same run as the systems so the report can say how close each comes to them.
//!
//! - Sequential write bandwidth with an `fdatasync` after every MiB (the best a durable log can do for large batches).
//! - Latency of appending 250 bytes and calling `fdatasync` (the floor for a single acknowledged durable write).
//! - Single-core cost of parsing one event with `serde_json`, into a `Value` and into a typed struct (the floor for any server that looks inside events).
//! - Single-core cost of validating one event against the benchmark's contract with Weft's own contract library
//!   (`CompiledContract::validate_bytes`, parse included): what `--weft-contracts on` should add per event at the least.
//!
//! All measurements are on files under the benchmark's temp dir, on the same filesystem as the systems' data.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::workload::Event;

const SEQUENTIAL_CHUNK_BYTES: usize = 1024 * 1024;
const SMALL_APPEND_BYTES: usize = 250;

#[derive(Clone, Debug, Serialize)]
pub(crate) struct PhysicalLimits {
    pub sequential_write_bytes: u64,
    pub sequential_write_mib_per_second: f64,
    pub n_small_appends: u64,
    pub small_append_fdatasync_p50_us: f64,
    pub small_append_fdatasync_p99_us: f64,
    /// The small-append rate one writer can reach with one fdatasync per append.
    pub small_appends_per_second: f64,
    pub n_parsed_events: u64,
    pub json_parse_to_value_ns_per_event: f64,
    pub json_parse_to_struct_ns_per_event: f64,
    /// Parse plus validation against the bench contract, one core, nanoseconds per event.
    pub contract_validate_bytes_ns_per_event: f64,
}

pub(crate) struct LimitsPlan {
    pub sequential_write_bytes: u64,
    pub n_small_appends: u64,
    pub n_parsed_events_max: usize,
}

pub(crate) fn measure(dir: &Path, plan: &LimitsPlan, events: &[Event]) -> Result<PhysicalLimits> {
    let sequential_write_mib_per_second = sequential_write(&dir.join("sequential.bin"), plan.sequential_write_bytes)?;
    let small_append_us = small_appends(&dir.join("appends.bin"), plan.n_small_appends)?;
    let total_small_append_seconds: f64 = small_append_us.iter().sum::<f64>() / 1e6;
    let parsed = &events[..events.len().min(plan.n_parsed_events_max)];
    let (value_ns, struct_ns) = json_parse_cost(parsed)?;
    let validate_ns = contract_validation_cost(parsed)?;
    Ok(PhysicalLimits {
        sequential_write_bytes: plan.sequential_write_bytes,
        sequential_write_mib_per_second,
        n_small_appends: plan.n_small_appends,
        small_append_fdatasync_p50_us: percentile(&small_append_us, 0.50),
        small_append_fdatasync_p99_us: percentile(&small_append_us, 0.99),
        small_appends_per_second: small_append_us.len() as f64 / total_small_append_seconds.max(1e-9),
        n_parsed_events: parsed.len() as u64,
        json_parse_to_value_ns_per_event: value_ns,
        json_parse_to_struct_ns_per_event: struct_ns,
        contract_validate_bytes_ns_per_event: validate_ns,
    })
}

fn sequential_write(path: &Path, n_bytes: u64) -> Result<f64> {
    let mut file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    // Non-zero, varied bytes so no layer can shortcut zero pages.
    let chunk: Vec<u8> = (0..SEQUENTIAL_CHUNK_BYTES).map(|idx| (idx * 31 % 251) as u8).collect();
    let n_chunks = n_bytes.div_ceil(SEQUENTIAL_CHUNK_BYTES as u64).max(1);
    let start = Instant::now();
    for _ in 0..n_chunks {
        file.write_all(&chunk)?;
        file.sync_data()?;
    }
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(path)?;
    Ok((n_chunks as f64 * SEQUENTIAL_CHUNK_BYTES as f64 / (1024.0 * 1024.0)) / elapsed.as_secs_f64())
}

/// Appends 250 bytes and fdatasyncs, `n_appends` times; returns each append's latency in microseconds, sorted.
fn small_appends(path: &Path, n_appends: u64) -> Result<Vec<f64>> {
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("create {}", path.display()))?;
    let record = [b'x'; SMALL_APPEND_BYTES];
    let mut latencies_us = Vec::with_capacity(n_appends as usize);
    for _ in 0..n_appends {
        let start = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        latencies_us.push(start.elapsed().as_secs_f64() * 1e6);
    }
    drop(file);
    std::fs::remove_file(path)?;
    latencies_us.sort_by(f64::total_cmp);
    Ok(latencies_us)
}

/// The order event's fields, for measuring the typed parse.
#[derive(Deserialize)]
#[allow(dead_code, reason = "fields are only parsed, to measure the cost of parsing them")]
struct Order {
    order_id: String,
    customer_id: String,
    amount: f64,
    currency: String,
    items: u32,
    timestamp: String,
    status: String,
    channel: String,
    shipping_country: String,
    sku: String,
    note: String,
}

/// Nanoseconds per event to parse into `serde_json::Value` and into `Order`, on one core, best of three passes.
fn json_parse_cost(events: &[Event]) -> Result<(f64, f64)> {
    if events.is_empty() {
        return Ok((0.0, 0.0));
    }
    let mut best_value = Duration::MAX;
    let mut best_struct = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        for event in events {
            let value: serde_json::Value = serde_json::from_str(&event.payload)?;
            std::hint::black_box(value);
        }
        best_value = best_value.min(start.elapsed());
        let start = Instant::now();
        for event in events {
            let order: Order = serde_json::from_str(&event.payload)?;
            std::hint::black_box(order);
        }
        best_struct = best_struct.min(start.elapsed());
    }
    let per_event = |duration: Duration| duration.as_nanos() as f64 / events.len() as f64;
    Ok((per_event(best_value), per_event(best_struct)))
}

/// Nanoseconds per event to parse and validate against the bench contract, on one core, best of three passes.
fn contract_validation_cost(events: &[Event]) -> Result<f64> {
    if events.is_empty() {
        return Ok(0.0);
    }
    let stream = crate::systems::StreamSpec { name: "bench.orders.v1".to_string(), n_partitions: 8 };
    let contract = crate::systems::weft::compile_order_contract(&stream, "always")?;
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        for event in events {
            let value = contract
                .validate_bytes(event.payload.as_bytes())
                .map_err(|violations| anyhow::anyhow!("the bench contract refused an event: {violations:?}"))?;
            std::hint::black_box(value);
        }
        best = best.min(start.elapsed());
    }
    Ok(best.as_nanos() as f64 / events.len() as f64)
}

/// The value at quantile `q` of a sorted slice (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
