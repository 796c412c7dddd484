//! What the server measures about each stream while it runs: events and bytes in, rejections
//! by reason code, the last event's time, per-minute throughput for the last hour, produce and
//! fsync latency histograms, and the producers seen (observed lineage).
//!
//! Every stream owns one `StreamActivity`. `Broker::produce` and `Broker::append_batch` record
//! into it once per request: counters and histograms are atomics, and everything else sits
//! behind one short lock taken once per request. Readers (the product page, `/metrics`, the
//! lineage graph) take snapshots; nothing is computed by scanning the log.
//!
//! The counts start at zero when the server starts (like Prometheus counters); the stored
//! event counts are in the partitions' offsets. Freshness is evaluated lazily from the last
//! event's time, the contract's `latency` SLA and the broker's clock, so it is always current
//! without a background task and testable with an injected clock.
//!
//! Limits: `THROUGHPUT_MINUTES` buckets, `PRODUCERS_PER_STREAM_MAX` producers remembered per
//! stream (later ones are counted in `producers_not_recorded`), and rejection reasons are
//! static error codes, so their map is bounded by the number of codes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Minutes of per-minute throughput kept (a fixed ring).
pub const THROUGHPUT_MINUTES: usize = 60;
/// Distinct producers remembered per stream.
pub const PRODUCERS_PER_STREAM_MAX: usize = 64;
/// Longest producer name remembered (longer names are cut).
pub const PRODUCER_NAME_BYTES_MAX: usize = 256;
const MINUTE_MS: i64 = 60_000;

/// Upper bounds (seconds) of the latency histogram buckets; the last bucket is `+Inf`.
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A latency histogram with fixed buckets, updated with atomics.
pub struct LatencyHistogram {
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { buckets: std::array::from_fn(|_| AtomicU64::new(0)), count: AtomicU64::new(0), sum_micros: AtomicU64::new(0) }
    }
}

impl LatencyHistogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket_idx = LATENCY_BUCKETS_SECONDS.iter().position(|&bound| seconds <= bound).unwrap_or(LATENCY_BUCKETS_SECONDS.len());
        self.buckets[bucket_idx].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(elapsed.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// A histogram at one moment: non-cumulative counts per bucket of `LATENCY_BUCKETS_SECONDS`
/// plus the `+Inf` bucket.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSnapshot {
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    /// Cumulative counts per upper bound, `+Inf` last (Prometheus' `le` buckets).
    pub fn cumulative(&self) -> Vec<(Option<f64>, u64)> {
        let mut total = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(bucket_idx, &n)| {
                total += n;
                (LATENCY_BUCKETS_SECONDS.get(bucket_idx).copied(), total)
            })
            .collect()
    }

    /// The upper bound of the bucket holding the `q` quantile (0..=1), in seconds; `None` when
    /// empty or when it falls in the `+Inf` bucket.
    pub fn quantile_upper_bound(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        self.cumulative().into_iter().find(|&(_, total)| total >= rank).and_then(|(bound, _)| bound)
    }

    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_seconds += other.sum_seconds;
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct MinuteBucket {
    /// Minutes since the Unix epoch this bucket counts.
    minute: i64,
    events: u64,
}

/// One producer seen writing to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSeen {
    pub producer: String,
    pub n_events: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

struct Activity {
    throughput: [MinuteBucket; THROUGHPUT_MINUTES],
    rejected_by_reason: BTreeMap<&'static str, u64>,
    producers: BTreeMap<String, ProducerSeen>,
    producers_not_recorded: u64,
    last_event_ms: Option<i64>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            throughput: [MinuteBucket::default(); THROUGHPUT_MINUTES],
            rejected_by_reason: BTreeMap::new(),
            producers: BTreeMap::new(),
            producers_not_recorded: 0,
            last_event_ms: None,
        }
    }
}

/// The outcome of one produce request (or one appended batch), as `StreamActivity` records it.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    pub now_ms: i64,
    pub producer: &'a str,
    pub n_accepted: u64,
    pub n_bytes: u64,
    /// The error code of every rejected event, in any order.
    pub rejected: &'a [&'static str],
    /// Time from receiving the events to their acknowledgement.
    pub produce_latency: Option<Duration>,
}

/// Counters of one stream; see the module docs.
#[derive(Default)]
pub struct StreamActivity {
    events_total: AtomicU64,
    bytes_total: AtomicU64,
    rejected_total: AtomicU64,
    produce_latency: LatencyHistogram,
    fsync_latency: LatencyHistogram,
    activity: Mutex<Activity>,
}

/// A stream's activity at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivitySnapshot {
    pub events_total: u64,
    pub bytes_total: u64,
    pub rejected_total: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub last_event_ms: Option<i64>,
    /// `THROUGHPUT_MINUTES` entries, oldest first, ending with the current minute:
    /// (minute start in ms since the epoch, events).
    pub throughput: Vec<(i64, u64)>,
    /// Events in the trailing 60 seconds, estimated from the current and previous minute.
    pub events_last_minute: u64,
    pub events_last_hour: u64,
    pub producers: Vec<ProducerSeen>,
    pub producers_not_recorded: u64,
    pub produce_latency: HistogramSnapshot,
    pub fsync_latency: HistogramSnapshot,
}

impl StreamActivity {
    /// Records one request: counters first (atomics), then one lock for the rest.
    pub fn record(&self, request: &RequestRecord<'_>) {
        self.events_total.fetch_add(request.n_accepted, Ordering::Relaxed);
        self.bytes_total.fetch_add(request.n_bytes, Ordering::Relaxed);
        self.rejected_total.fetch_add(request.rejected.len() as u64, Ordering::Relaxed);
        if let Some(latency) = request.produce_latency {
            self.produce_latency.observe(latency);
        }
        let mut activity = self.activity.lock().unwrap_or_else(|poison| poison.into_inner());
        for &code in request.rejected {
            *activity.rejected_by_reason.entry(code).or_default() += 1;
        }
        if request.n_accepted == 0 {
            return;
        }
        activity.last_event_ms = Some(activity.last_event_ms.map_or(request.now_ms, |last| last.max(request.now_ms)));
        let minute = request.now_ms.div_euclid(MINUTE_MS);
        let bucket = &mut activity.throughput[minute.rem_euclid(THROUGHPUT_MINUTES as i64) as usize];
        if bucket.minute != minute {
            *bucket = MinuteBucket { minute, events: 0 };
        }
        bucket.events += request.n_accepted;
        let producer = cut_to_bytes(request.producer, PRODUCER_NAME_BYTES_MAX);
        let n_producers = activity.producers.len();
        match activity.producers.get_mut(producer) {
            Some(seen) => {
                seen.n_events += request.n_accepted;
                seen.last_seen_ms = seen.last_seen_ms.max(request.now_ms);
            }
            None if n_producers < PRODUCERS_PER_STREAM_MAX => {
                activity.producers.insert(
                    producer.to_string(),
                    ProducerSeen {
                        producer: producer.to_string(),
                        n_events: request.n_accepted,
                        first_seen_ms: request.now_ms,
                        last_seen_ms: request.now_ms,
                    },
                );
            }
            None => activity.producers_not_recorded += 1,
        }
    }

    /// Records how long one wait for durability (the fsync under `always`) took.
    pub fn record_fsync(&self, elapsed: Duration) {
        self.fsync_latency.observe(elapsed);
    }

    pub fn snapshot(&self, now_ms: i64) -> ActivitySnapshot {
        let activity = self.activity.lock().unwrap_or_else(|poison| poison.into_inner());
        let now_minute = now_ms.div_euclid(MINUTE_MS);
        let events_in_minute = |minute: i64| {
            let bucket = activity.throughput[minute.rem_euclid(THROUGHPUT_MINUTES as i64) as usize];
            if bucket.minute == minute { bucket.events } else { 0 }
        };
        let throughput: Vec<(i64, u64)> = (0..THROUGHPUT_MINUTES as i64)
            .rev()
            .map(|minutes_ago| now_minute - minutes_ago)
            .map(|minute| (minute * MINUTE_MS, events_in_minute(minute)))
            .collect();
        // The previous minute counts for the part of it that is still within the last 60 s.
        let elapsed_in_minute_ms = now_ms.rem_euclid(MINUTE_MS) as u64;
        let previous_share = events_in_minute(now_minute - 1) * (MINUTE_MS as u64 - elapsed_in_minute_ms) / MINUTE_MS as u64;
        let events_last_minute = events_in_minute(now_minute) + previous_share;
        let events_last_hour = throughput.iter().map(|(_, n)| n).sum();
        ActivitySnapshot {
            events_total: self.events_total.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            rejected_total: self.rejected_total.load(Ordering::Relaxed),
            rejected_by_reason: activity.rejected_by_reason.iter().map(|(code, n)| (code.to_string(), *n)).collect(),
            last_event_ms: activity.last_event_ms,
            throughput,
            events_last_minute,
            events_last_hour,
            producers: activity.producers.values().cloned().collect(),
            producers_not_recorded: activity.producers_not_recorded,
            produce_latency: self.produce_latency.snapshot(),
            fsync_latency: self.fsync_latency.snapshot(),
        }
    }

    /// The producers seen so far (cheaper than a full snapshot).
    pub fn producers(&self) -> Vec<String> {
        self.activity.lock().unwrap_or_else(|poison| poison.into_inner()).producers.keys().cloned().collect()
    }

    pub fn last_event_ms(&self) -> Option<i64> {
        self.activity.lock().unwrap_or_else(|poison| poison.into_inner()).last_event_ms
    }
}

fn cut_to_bytes(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Whether a stream meets its contract's `latency` SLA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshnessStatus {
    /// The last event is younger than the SLA.
    OnTime,
    /// No event for longer than the SLA.
    Late,
    /// The contract sets no `latency` (or the stream has no contract).
    NoSla,
    /// No event since the server started.
    NoEvents,
}

impl FreshnessStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::OnTime => "on_time",
            Self::Late => "late",
            Self::NoSla => "no_sla",
            Self::NoEvents => "no_events",
        }
    }
}

/// A stream's freshness at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub latency_sla_ms: Option<u64>,
    /// Time since the last event, if there was one.
    pub age_ms: Option<u64>,
    pub status: FreshnessStatus,
    /// When the stream became late (last event time plus the SLA); only when late.
    pub late_since_ms: Option<i64>,
}

/// Freshness from the last event's time, the SLA and now. A stream is late once no event has
/// arrived for longer than the SLA; it is on time again with the next event.
pub fn freshness(latency_sla_ms: Option<u64>, last_event_ms: Option<i64>, now_ms: i64) -> Freshness {
    let age_ms = last_event_ms.map(|last| now_ms.saturating_sub(last).max(0) as u64);
    let (status, late_since_ms) = match (latency_sla_ms, last_event_ms, age_ms) {
        (None, _, _) => (FreshnessStatus::NoSla, None),
        (Some(_), None, _) | (Some(_), _, None) => (FreshnessStatus::NoEvents, None),
        (Some(sla), Some(last), Some(age)) if age > sla => (FreshnessStatus::Late, Some(last.saturating_add(sla as i64))),
        (Some(_), Some(_), Some(_)) => (FreshnessStatus::OnTime, None),
    };
    Freshness { latency_sla_ms, age_ms, status, late_since_ms }
}

impl crate::broker::Broker {
    /// A stream's freshness now, against its contract's `latency` SLA.
    pub fn freshness(&self, stream: &crate::stream::Stream) -> Freshness {
        let latency_sla_ms =
            stream.governance().and_then(|g| g.compiled.settings().latency).map(|latency| latency.as_millis().min(u64::MAX as u128) as u64);
        freshness(latency_sla_ms, stream.activity().last_event_ms(), self.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(activity: &StreamActivity, now_ms: i64, n_accepted: u64, rejected: &[&'static str], producer: &str) {
        activity.record(&RequestRecord {
            now_ms,
            producer,
            n_accepted,
            n_bytes: n_accepted * 10,
            rejected,
            produce_latency: Some(Duration::from_millis(3)),
        });
    }

    /// Proves the counters, the rejection reasons and the producers add up per request.
    #[test]
    fn counts_accepted_rejected_and_producers() {
        let activity = StreamActivity::default();
        record(&activity, 1_000, 3, &["contract.required_field_missing"], "a");
        record(&activity, 2_000, 2, &["contract.required_field_missing", "event.too_large"], "b");
        record(&activity, 3_000, 0, &["event.too_large"], "c");
        let snapshot = activity.snapshot(3_000);
        assert_eq!((snapshot.events_total, snapshot.bytes_total, snapshot.rejected_total), (5, 50, 4));
        assert_eq!(snapshot.rejected_by_reason["contract.required_field_missing"], 2);
        assert_eq!(snapshot.rejected_by_reason["event.too_large"], 2);
        // A request whose every event was refused did not produce anything.
        assert_eq!(snapshot.producers.iter().map(|p| p.producer.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(snapshot.last_event_ms, Some(2_000));
        assert_eq!(snapshot.produce_latency.count, 3);
    }

    /// Proves the throughput ring keeps 60 minutes, forgets older ones and reuses slots.
    #[test]
    fn throughput_ring_covers_the_last_hour() {
        let activity = StreamActivity::default();
        let minute = 60_000;
        let start = 1_000 * minute;
        record(&activity, start, 4, &[], "p");
        record(&activity, start + 30 * minute, 2, &[], "p");
        record(&activity, start + 60 * minute, 1, &[], "p"); // the same slot as `start`
        let snapshot = activity.snapshot(start + 60 * minute + 30_000);
        assert_eq!(snapshot.throughput.len(), THROUGHPUT_MINUTES);
        assert_eq!(snapshot.throughput.last().copied(), Some((start + 60 * minute, 1)));
        assert_eq!(snapshot.events_last_hour, 3, "the first minute fell out of the window");
        assert_eq!(snapshot.events_last_minute, 1);
        let later = activity.snapshot(start + 61 * minute + 15_000);
        // A quarter of the previous minute is still inside the trailing 60 s: 1 * 45/60 rounds to 0.
        assert_eq!(later.events_last_minute, 0);
        assert_eq!(later.throughput.last().copied(), Some((start + 61 * minute, 0)));
        let much_later = activity.snapshot(start + 200 * minute);
        assert_eq!(much_later.events_last_hour, 0);
    }

    /// Proves each freshness state and the transitions between them as time passes.
    #[test]
    fn freshness_states() {
        assert_eq!(freshness(None, Some(5), 10).status, FreshnessStatus::NoSla);
        assert_eq!(freshness(None, Some(5), 10).age_ms, Some(5));
        assert_eq!(freshness(Some(1_000), None, 10).status, FreshnessStatus::NoEvents);
        let on_time = freshness(Some(1_000), Some(10_000), 11_000);
        assert_eq!((on_time.status, on_time.age_ms, on_time.late_since_ms), (FreshnessStatus::OnTime, Some(1_000), None));
        let late = freshness(Some(1_000), Some(10_000), 11_001);
        assert_eq!((late.status, late.late_since_ms), (FreshnessStatus::Late, Some(11_000)));
    }

    #[test]
    fn histogram_quantiles_and_cumulative_buckets() {
        let histogram = LatencyHistogram::default();
        for _ in 0..9 {
            histogram.observe(Duration::from_micros(800));
        }
        histogram.observe(Duration::from_secs(20));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.quantile_upper_bound(0.5), Some(0.001));
        assert_eq!(snapshot.quantile_upper_bound(0.99), None, "in the +Inf bucket");
        let cumulative = snapshot.cumulative();
        assert_eq!(cumulative.last().copied(), Some((None, 10)));
        assert_eq!(cumulative[1], (Some(0.001), 9));
    }

    #[test]
    fn producer_names_are_bounded() {
        let activity = StreamActivity::default();
        for producer_idx in 0..PRODUCERS_PER_STREAM_MAX + 5 {
            record(&activity, 1, 1, &[], &format!("p{producer_idx}"));
        }
        record(&activity, 1, 1, &[], &"é".repeat(PRODUCER_NAME_BYTES_MAX));
        let snapshot = activity.snapshot(1);
        assert_eq!(snapshot.producers.len(), PRODUCERS_PER_STREAM_MAX);
        assert_eq!(snapshot.producers_not_recorded, 6);
        assert_eq!(cut_to_bytes(&"é".repeat(200), 5).len(), 4);
    }

    struct ManualClock(std::sync::atomic::AtomicI64);

    impl weft_log::Clock for ManualClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    const CONTRACT: &str = r#"apiVersion: v3.1.0
kind: DataContract
id: urn:test:fresh
version: 1.0.0
status: active
schema:
  - name: Tick
    physicalType: topic
    physicalName: ticks
    properties:
      - name: n
        logicalType: integer
        required: true
slaProperties:
  - property: latency
    value: 5
    unit: s
"#;

    /// Proves the freshness of a governed stream moves no_events -> on_time -> late -> on_time
    /// as the injected clock advances and events arrive, and that rejected events do not count.
    #[tokio::test]
    async fn freshness_follows_the_clock_through_the_broker() {
        use crate::broker::{Incoming, ProduceContext};
        let dir = tempfile::tempdir().unwrap();
        let clock = std::sync::Arc::new(ManualClock(std::sync::atomic::AtomicI64::new(1_000_000)));
        let broker = crate::broker::Broker::open(dir.path(), clock.clone()).unwrap();
        let stream = broker
            .create_stream(crate::stream::StreamConfig {
                name: "ticks".into(),
                partitions: 1,
                key: None,
                retention_ms: None,
                retention_bytes: None,
                fsync: weft_log::FsyncPolicy::Never,
                segment_bytes: weft_log::SEGMENT_BYTES_DEFAULT,
                created_at_ms: 0,
            })
            .unwrap();
        assert_eq!(broker.freshness(&stream).status, FreshnessStatus::NoSla);
        let weft_contract::Document::Contract(contract) = weft_contract::parse_documents(CONTRACT, "fresh.yaml").unwrap().remove(0) else {
            panic!("a contract")
        };
        let compiled = weft_contract::CompiledContract::compile_topics(&contract).unwrap().remove(0);
        stream.set_governance(Some(std::sync::Arc::new(crate::stream::Governance {
            contract_id: contract.id.clone(),
            contract_version: contract.version.clone(),
            compiled,
            dead_letter_stream: "ticks.dlq".into(),
        })));
        assert_eq!(broker.freshness(&stream).status, FreshnessStatus::NoEvents);
        let event = |data: &str| {
            let mut event = crate::cloudevent::CloudEvent::from_json(
                format!(r#"{{"specversion":"1.0","id":"1","source":"/t","type":"t","datacontenttype":"application/json","data":{data}}}"#)
                    .as_bytes(),
            )
            .unwrap();
            event.id = uuid::Uuid::now_v7().to_string();
            Incoming::Event(event)
        };
        let context = ProduceContext { producer: "ticker".into() };
        // Rejected only (and no dead-letter stream exists, so the dead letter fails too): still no events.
        broker.produce(&stream, vec![event(r#"{"n":"x"}"#)], &context).await;
        assert_eq!(broker.freshness(&stream).status, FreshnessStatus::NoEvents);
        assert_eq!(stream.activity().snapshot(broker.now_ms()).rejected_total, 1);
        broker.produce(&stream, vec![event(r#"{"n":1}"#)], &context).await;
        let on_time = broker.freshness(&stream);
        assert_eq!((on_time.status, on_time.age_ms, on_time.latency_sla_ms), (FreshnessStatus::OnTime, Some(0), Some(5_000)));
        clock.0.fetch_add(5_000, Ordering::SeqCst);
        assert_eq!(broker.freshness(&stream).status, FreshnessStatus::OnTime, "exactly at the SLA is still on time");
        clock.0.fetch_add(1, Ordering::SeqCst);
        let late = broker.freshness(&stream);
        assert_eq!((late.status, late.late_since_ms, late.age_ms), (FreshnessStatus::Late, Some(1_005_000), Some(5_001)));
        broker.produce(&stream, vec![event(r#"{"n":2}"#)], &context).await;
        assert_eq!(broker.freshness(&stream).status, FreshnessStatus::OnTime);
        let snapshot = stream.activity().snapshot(broker.now_ms());
        assert_eq!((snapshot.events_total, snapshot.producers[0].producer.as_str()), (2, "ticker"));
    }
}
