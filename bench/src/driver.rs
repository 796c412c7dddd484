//! Drives producer lanes: the produce-throughput phase and the open-loop latency phase, written once for all systems.
//!
//! The driver behaves like a batching producer client (as a Kafka producer with `linger.ms=0` does):
//! whenever a lane is idle it takes every event that is due, up to `batch_events_max`, and sends them as one batch.
//! In the throughput phase every event is due at once, so lanes send full batches back to back.
//! In the open-loop phase event `i` is due at `start + i / rate`; its latency is measured from that intended time,
//! not from when a lane was free to send it, so time spent queued behind a slow server counts (no coordinated omission).
//! Everything runs in one task, so the client uses at most one core and leaves the other to the server.

use std::ops::Range;
use std::time::Duration;

use anyhow::{Result, bail};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::systems::Lane;
use crate::workload::Event;

/// Latencies are recorded in microseconds up to this bound; larger values are clamped to it.
const LATENCY_US_MAX: u64 = 600_000_000;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Pacing {
    /// Every event is due at the start: measures throughput.
    AsFastAsPossible,
    /// Event `i` is due at `start + i / events_per_second`: measures latency at a fixed offered load.
    OpenLoop { events_per_second: u64 },
}

pub(crate) struct DriveOutcome {
    pub elapsed: Duration,
    pub n_batches: u64,
    /// Per event, from intended send time to acknowledgement (open loop only; empty otherwise).
    pub event_latency_us: Histogram<u64>,
    /// Per batch, from the moment it was handed to a lane to its acknowledgement.
    pub batch_latency_us: Histogram<u64>,
}

pub(crate) fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("static histogram bounds are valid")
}

fn record_us(histogram: &mut Histogram<u64>, duration: Duration) {
    let us = (duration.as_micros() as u64).clamp(1, LATENCY_US_MAX);
    histogram.record(us).expect("value is clamped into the histogram's range");
}

pub(crate) async fn drive<L: Lane>(lanes: Vec<L>, events: &[Event], batch_events_max: usize, pacing: Pacing) -> Result<DriveOutcome> {
    if lanes.is_empty() || batch_events_max == 0 {
        bail!("the driver needs at least one lane and a batch size of at least one event");
    }
    let start = Instant::now();
    let intended_send_time = |event_idx: usize| match pacing {
        Pacing::AsFastAsPossible => start,
        Pacing::OpenLoop { events_per_second } => {
            start + Duration::from_nanos((event_idx as u128 * 1_000_000_000 / u128::from(events_per_second)) as u64)
        }
    };
    let mut event_latency_us = new_latency_histogram();
    let mut batch_latency_us = new_latency_histogram();
    let mut n_batches = 0u64;
    let mut idle_lanes = lanes;
    let mut in_flight = FuturesUnordered::new();
    let mut next_event_idx = 0usize;

    loop {
        let now = Instant::now();
        while !idle_lanes.is_empty() && next_event_idx < events.len() && intended_send_time(next_event_idx) <= now {
            let mut end = next_event_idx + 1;
            while end < events.len() && end - next_event_idx < batch_events_max && intended_send_time(end) <= now {
                end += 1;
            }
            let mut lane = idle_lanes.pop().expect("checked non-empty above");
            let range: Range<usize> = next_event_idx..end;
            next_event_idx = end;
            in_flight.push(async move {
                let handed_over = Instant::now();
                let result = lane.send_batch(&events[range.clone()]).await;
                (lane, range, handed_over, result)
            });
        }
        if next_event_idx >= events.len() && in_flight.is_empty() {
            break;
        }
        let wake_at = (!idle_lanes.is_empty() && next_event_idx < events.len()).then(|| intended_send_time(next_event_idx));
        tokio::select! {
            Some((lane, range, handed_over, result)) = in_flight.next(), if !in_flight.is_empty() => {
                result?;
                let acknowledged = Instant::now();
                n_batches += 1;
                record_us(&mut batch_latency_us, acknowledged - handed_over);
                if matches!(pacing, Pacing::OpenLoop { .. }) {
                    for event_idx in range {
                        record_us(&mut event_latency_us, acknowledged - intended_send_time(event_idx));
                    }
                }
                idle_lanes.push(lane);
            }
            () = tokio::time::sleep_until(wake_at.unwrap_or(now)), if wake_at.is_some() => {}
        }
    }
    Ok(DriveOutcome { elapsed: start.elapsed(), n_batches, event_latency_us, batch_latency_us })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Workload;

    /// A lane that stalls on its first batch and is fast afterwards.
    struct StallingLane {
        n_batches: u64,
    }

    impl Lane for StallingLane {
        async fn send_batch(&mut self, _events: &[Event]) -> Result<()> {
            let delay = if self.n_batches == 0 { 200 } else { 1 };
            self.n_batches += 1;
            tokio::time::sleep(Duration::from_millis(delay)).await;
            Ok(())
        }
    }

    /// Proves that open-loop latency is measured from each event's intended send time:
    /// events that fall due while the only lane is stalled for 200 ms carry that wait in their latency,
    /// although each of their own batches is acknowledged within about 1 ms.
    #[tokio::test(start_paused = true)]
    async fn open_loop_latency_counts_time_queued_behind_a_stall() {
        let workload = Workload::generate(400, 1, 8);
        let outcome = drive(vec![StallingLane { n_batches: 0 }], &workload.events, 1_000, Pacing::OpenLoop { events_per_second: 1_000 })
            .await
            .expect("the lane never fails");
        assert!(outcome.event_latency_us.value_at_quantile(0.99) >= 150_000);
        assert!(outcome.event_latency_us.max() >= 199_000);
        assert!(outcome.event_latency_us.value_at_quantile(0.25) <= 5_000);
        // Batches after the stall are fast: only the first one took 200 ms.
        assert!(outcome.batch_latency_us.value_at_quantile(0.5) <= 5_000);
        assert!(outcome.n_batches >= 100, "batches follow the offered load, got {}", outcome.n_batches);
    }

    /// Proves that the throughput pacing sends full batches and every event exactly once.
    #[tokio::test(start_paused = true)]
    async fn throughput_pacing_sends_full_batches() {
        let workload = Workload::generate(2_500, 1, 8);
        let lanes = (0..4).map(|_| StallingLane { n_batches: 1 }).collect();
        let outcome = drive(lanes, &workload.events, 1_000, Pacing::AsFastAsPossible).await.expect("the lane never fails");
        assert_eq!(outcome.n_batches, 3);
        assert!(outcome.event_latency_us.is_empty());
    }
}
