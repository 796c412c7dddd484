//! Live tail over Server-Sent Events: what a connected client receives, from where, and how it resumes.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::Server;

/// How long a test waits for the events it expects on a live tail.
const LIVE_DEADLINE: Duration = Duration::from_secs(10);

/// One SSE connection, read line by line with a per-read timeout so every wait is bounded.
pub struct LiveTail {
    lines: BufReader<Box<dyn Read + Send + Sync>>,
}

/// One SSE event: its `id:` and its parsed `data:`.
#[derive(Debug)]
pub struct SseEvent {
    pub id: String,
    pub data: Value,
}

impl LiveTail {
    /// Connects and returns once the server has answered with the event-stream headers (so the tail's start
    /// position is fixed).
    pub fn connect(server: &Server, path_and_query: &str, last_event_id: Option<&str>) -> Self {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout_read(Duration::from_secs(2)).build();
        let mut request = agent.get(&server.url(path_and_query)).set("authorization", &format!("Bearer {}", server.admin_token()));
        if let Some(id) = last_event_id {
            request = request.set("last-event-id", id);
        }
        let response = request.call().unwrap_or_else(|error| panic!("live tail {path_and_query}: {error}"));
        assert_eq!(response.status(), 200);
        assert!(response.header("content-type").unwrap_or("").starts_with("text/event-stream"));
        Self { lines: BufReader::new(response.into_reader()) }
    }

    /// The next event, or `None` if none arrives before `deadline`.
    pub fn next_event(&mut self, deadline: Instant) -> Option<SseEvent> {
        let (mut id, mut data) = (None, String::new());
        loop {
            if Instant::now() >= deadline {
                return None;
            }
            let mut line = String::new();
            match self.lines.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                Err(error) => panic!("reading the live tail: {error}"),
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if let Some(id) = id.take() {
                    let data = serde_json::from_str(&data).unwrap_or_else(|error| panic!("SSE data is JSON ({error}): {data}"));
                    return Some(SseEvent { id, data });
                }
                data.clear();
            } else if let Some(value) = line.strip_prefix("id:") {
                id = Some(value.strip_prefix(' ').unwrap_or(value).to_string());
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
    }

    /// The next `n` events, panicking if they do not all arrive within `LIVE_DEADLINE`.
    pub fn take(&mut self, n: usize) -> Vec<SseEvent> {
        let deadline = Instant::now() + LIVE_DEADLINE;
        (0..n).map(|idx| self.next_event(deadline).unwrap_or_else(|| panic!("live event {idx} of {n} did not arrive"))).collect()
    }
}

fn numbered(range: std::ops::Range<u64>) -> Vec<Value> {
    range.map(|n| json!({ "n": n })).collect()
}

fn numbers(events: &[SseEvent]) -> Vec<u64> {
    events.iter().map(|e| e.data["event"]["data"]["n"].as_u64().expect("n")).collect()
}

/// Proves `from=latest` delivers exactly what is produced after connecting: none of the older events, every
/// newer one, with `id` `<partition>:<offset>` matching the envelope.
#[test]
fn live_tail_from_latest_receives_events_produced_after_connecting() {
    let server = Server::start();
    server.create_stream("feed", 2, "never");
    server.produce_ndjson("feed", &numbered(0..5));
    let mut tail = LiveTail::connect(&server, "/api/v1/streams/feed/live?from=latest", None);
    let positions = server.produce_ndjson("feed", &numbered(5..11));
    let mut received = tail.take(6);
    for event in &received {
        assert_eq!(event.id, format!("{}:{}", event.data["partition"], event.data["offset"]));
    }
    received.sort_by_key(|e| e.data["event"]["data"]["n"].as_u64());
    assert_eq!(numbers(&received), (5..11).collect::<Vec<_>>());
    for (event, (partition, offset)) in received.iter().zip(positions) {
        assert_eq!(event.id, format!("{partition}:{offset}"));
    }
}

/// Proves `from=earliest` replays the stored events first (in offset order per partition) and then
/// continues with new ones on the same connection.
#[test]
fn live_tail_from_earliest_replays_then_follows() {
    let server = Server::start();
    server.create_stream("feed", 1, "never");
    server.produce_ndjson("feed", &numbered(0..5));
    let mut tail = LiveTail::connect(&server, "/api/v1/streams/feed/live?from=earliest", None);
    let replayed = tail.take(5);
    assert_eq!(numbers(&replayed), [0, 1, 2, 3, 4]);
    assert_eq!(replayed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["0:0", "0:1", "0:2", "0:3", "0:4"]);
    server.produce_ndjson("feed", &numbered(5..7));
    assert_eq!(numbers(&tail.take(2)), [5, 6]);
}

/// Proves `Last-Event-ID` resumes right after the named event: in a one-partition stream the next event is
/// the following offset, and in a multi-partition stream nothing after the named event in its partition is
/// skipped and nothing at or before it is repeated.
#[test]
fn live_tail_resumes_after_last_event_id() {
    let server = Server::start();
    server.create_stream("feed", 1, "never");
    server.produce_ndjson("feed", &numbered(0..10));
    let mut tail = LiveTail::connect(&server, "/api/v1/streams/feed/live", Some("0:4"));
    let resumed = tail.take(5);
    assert_eq!(resumed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["0:5", "0:6", "0:7", "0:8", "0:9"]);

    server.create_stream("wide", 3, "never");
    let positions = server.produce_ndjson("wide", &numbered(0..30));
    let in_partition_1: Vec<u64> = positions.iter().filter(|(p, _)| *p == 1).map(|(_, o)| *o).collect();
    let resume_after = in_partition_1[3];
    let mut tail = LiveTail::connect(&server, "/api/v1/streams/wide/live", Some(&format!("1:{resume_after}")));
    // One produce request stamps all its events with one time, so the other partitions, which resume from the
    // named event's time, replay all their events (documented: some events may repeat).
    let expected_1: Vec<u64> = in_partition_1.iter().copied().filter(|&o| o > resume_after).collect();
    let received = tail.take(30 - in_partition_1.len() + expected_1.len());
    let offsets_in = |partition: u64| -> Vec<u64> {
        received.iter().filter(|e| e.data["partition"] == partition).map(|e| e.data["offset"].as_u64().expect("offset")).collect()
    };
    assert_eq!(offsets_in(1), expected_1, "partition 1 continues right after {resume_after}");
    for partition in [0, 2] {
        let all: Vec<u64> = positions.iter().filter(|(p, _)| *p as u64 == partition).map(|(_, o)| *o).collect();
        assert_eq!(offsets_in(partition), all, "partition {partition} resumes from the named event's time");
    }
    let marker = json!({ "n": 1_000 });
    server.produce_ndjson("wide", std::slice::from_ref(&marker));
    assert_eq!(tail.take(1)[0].data["event"]["data"], marker, "nothing else was pending before the new event");
}
