//! Durability under `kill -9` and at armed crash points: what the server acknowledged is what it
//! recovers, exactly once; apply is atomic and dead-letter replay moves each letter once across a crash.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::server::{Server, positions_of, reply_of, wait_for};

const N_PRODUCERS: usize = 4;
const N_PARTITIONS: u32 = 8;
const EVENTS_PER_REQUEST: usize = 50;
/// Acknowledged requests (over all producers) before the kill.
const ACKED_REQUESTS_BEFORE_KILL: usize = 80;
/// Requests one producer sends at most, so a server that never dies cannot loop the test forever.
const REQUESTS_PER_PRODUCER_MAX: usize = 2_000;

/// One produce request: the ids of its events, and where the server said it stored them (if it answered).
struct SentRequest {
    uids: Vec<String>,
    acked_positions: Option<Vec<(u32, u64)>>,
}

fn uid(producer_idx: usize, request_idx: usize, event_idx: usize) -> String {
    format!("p{producer_idx}-r{request_idx}-e{event_idx}")
}

/// Sends NDJSON requests until the server stops answering (it is killed) or `stop` is set.
fn produce_until_killed(
    agent: ureq::Agent,
    base_url: String,
    producer_idx: usize,
    acked: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Vec<SentRequest> {
    let mut sent = Vec::new();
    for request_idx in 0..REQUESTS_PER_PRODUCER_MAX {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let uids: Vec<String> = (0..EVENTS_PER_REQUEST).map(|event_idx| uid(producer_idx, request_idx, event_idx)).collect();
        let body: String =
            uids.iter().map(|uid| format!("{}\n", json!({ "uid": uid, "producer": producer_idx, "pad": "x".repeat(200) }))).collect();
        let result =
            agent.post(&format!("{base_url}/api/v1/streams/crash/events")).set("content-type", "application/x-ndjson").send_string(&body);
        match reply_of(result) {
            Ok(reply) if reply.status == 200 => {
                assert_eq!(reply.body["accepted"], EVENTS_PER_REQUEST, "all events accepted: {}", reply.text);
                sent.push(SentRequest { uids, acked_positions: Some(positions_of(&reply.body)) });
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Ok(reply) => panic!("produce answered {}: {}", reply.status, reply.text),
            Err(_) => {
                // The server died with this request in flight: it may or may not be stored.
                sent.push(SentRequest { uids, acked_positions: None });
                break;
            }
        }
    }
    sent
}

/// Proves the write path's durability promise under `fsync: always`: with four producers writing to eight
/// partitions, a `kill -9` mid-flight loses no acknowledged event, stores none twice, keeps every event at the
/// acknowledged (partition, offset), leaves offsets dense from 0 in every partition, and leaves no garbage:
/// every stored event parses whole and was sent by a producer. Events in flight at the kill may or may not be
/// there; those that are form one contiguous run per partition (one record batch), never a torn one.
#[test]
fn acked_events_survive_kill_9_exactly_once() {
    let mut server = Server::start();
    server.create_stream("crash", N_PARTITIONS, "always");
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..N_PRODUCERS)
        .map(|producer_idx| {
            let (base_url, acked, stop) = (server.base_url().to_string(), Arc::clone(&acked), Arc::clone(&stop));
            let agent = server.agent().clone();
            thread::spawn(move || produce_until_killed(agent, base_url, producer_idx, acked, stop))
        })
        .collect();
    wait_for(Duration::from_secs(60), "acknowledged produce requests", || {
        (acked.load(Ordering::SeqCst) >= ACKED_REQUESTS_BEFORE_KILL).then_some(())
    });
    server.kill_9();
    stop.store(true, Ordering::SeqCst);
    let sent: Vec<SentRequest> = producers.into_iter().flat_map(|producer| producer.join().expect("producer thread")).collect();
    let n_acked_requests = sent.iter().filter(|request| request.acked_positions.is_some()).count();
    assert!(n_acked_requests >= ACKED_REQUESTS_BEFORE_KILL);

    server.start_again();
    let next_offsets = server.next_offsets("crash");
    // uid -> (partition, offset) of every stored event.
    let mut stored: HashMap<String, (u32, u64)> = HashMap::new();
    for partition in 0..N_PARTITIONS {
        let events = server.read_partition("crash", partition);
        assert_eq!(
            events.len() as u64,
            next_offsets[partition as usize],
            "partition {partition}: every offset below next_offset is readable"
        );
        for (offset, envelope) in events.iter().enumerate() {
            assert_eq!(envelope["partition"], partition);
            assert_eq!(envelope["offset"], offset, "partition {partition}: offsets are dense from 0");
            let data = &envelope["event"]["data"];
            let uid = data["uid"].as_str().unwrap_or_else(|| panic!("partition {partition} offset {offset}: garbage event {envelope}"));
            assert_eq!(data["pad"].as_str().map(str::len), Some(200), "event {uid} is whole");
            let previous = stored.insert(uid.to_string(), (partition, offset as u64));
            assert!(previous.is_none(), "event {uid} is stored twice: at {previous:?} and at ({partition}, {offset})");
        }
    }

    let mut n_in_flight_stored = 0;
    for request in &sent {
        match &request.acked_positions {
            Some(positions) => {
                for (uid, position) in request.uids.iter().zip(positions) {
                    assert_eq!(stored.remove(uid).as_ref(), Some(position), "acknowledged event {uid} is at its acknowledged position");
                }
            }
            None => {
                // Per partition, the request's events were one record batch, so what survived is one contiguous run.
                let mut by_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
                for uid in &request.uids {
                    if let Some((partition, offset)) = stored.remove(uid) {
                        by_partition.entry(partition).or_default().push(offset);
                        n_in_flight_stored += 1;
                    }
                }
                for (partition, offsets) in by_partition {
                    let contiguous = offsets.windows(2).all(|pair| pair[1] == pair[0] + 1);
                    assert!(contiguous, "in-flight request's events in partition {partition} form one batch: {offsets:?}");
                }
            }
        }
    }
    assert!(stored.is_empty(), "stored events no producer sent: {:?}", stored.keys().take(5).collect::<Vec<_>>());
    eprintln!("kill -9 after {n_acked_requests} acknowledged requests; {n_in_flight_stored} in-flight events were stored");
}

const ATOMIC_CONTRACT: &str = "apiVersion: weft/v1
kind: Domain
name: crash
owners: [admin]
---
apiVersion: v3.1.0
kind: DataContract
id: urn:test:crash-orders
version: 1.0.0
status: active
domain: crash
schema:
  - name: Order
    physicalType: topic
    physicalName: crash.orders.v1
    properties:
      - name: order_id
        logicalType: string
        required: true
";

/// `weft apply` is atomic across a crash: killed (an armed crash point aborts the process) just
/// before its metadata commit, the server comes back with the old mesh: the contract's stream
/// does not exist, and the same apply succeeds; killed just after, it comes back with the new
/// mesh, and the stream is governed from the first event (an invalid one is dead-lettered, not
/// stored). At no point is there a writable stream without its contract.
#[test]
fn apply_is_atomic_across_a_crash() {
    for (point, committed) in [("apply.before_commit", false), ("apply.after_commit", true)] {
        let mut server = Server::start_with_env(&[("WEFT_CRASH_AT", point)]);
        let request = server.agent().post(&server.url("/api/v1/apply")).set("content-type", "application/yaml");
        let answered = reply_of(request.send_bytes(ATOMIC_CONTRACT.as_bytes()));
        assert!(answered.is_err(), "the server answered instead of crashing at {point}: {:?}", answered.map(|r| r.text));
        assert!(!server.expect_exit().success(), "the server aborted at {point}");
        server.clear_serve_env();
        server.start_again();
        let shown = server.get("/api/v1/streams/crash.orders.v1");
        if committed {
            shown.assert_status(200);
        } else {
            shown.assert_error(404, "stream.not_found");
            server.get("/api/v1/streams/crash.orders.v1.dlq").assert_error(404, "stream.not_found");
            server.post("/api/v1/apply", "application/yaml", ATOMIC_CONTRACT.as_bytes()).assert_status(200);
        }
        let invalid = server.post("/api/v1/streams/crash.orders.v1/events", "application/x-ndjson", b"{\"order_id\": 7}\n");
        assert_eq!(invalid.body["results"][0]["error"]["code"], "contract.type_mismatch", "{}", invalid.text);
        assert_eq!(server.next_offsets("crash.orders.v1"), vec![0], "nothing ungoverned was stored after a crash at {point}");
        assert_eq!(server.next_offsets("crash.orders.v1.dlq"), vec![1], "the invalid event was dead-lettered after a crash at {point}");
    }
}

/// A contract for `crash.payments.v1` (two partitions, round robin) accepting `currencies`.
fn payments_contract(version: &str, currencies: &str) -> String {
    format!(
        "apiVersion: v3.1.0
kind: DataContract
id: urn:test:crash-payments
version: {version}
status: active
schema:
  - name: Payment
    physicalType: topic
    physicalName: crash.payments.v1
    customProperties:
      - property: weft.partitions
        value: 2
    properties:
      - name: payment_id
        logicalType: string
        required: true
      - name: currency
        logicalType: string
        required: true
        quality:
          - metric: invalidValues
            arguments:
              validValues: [{currencies}]
            mustBe: 0
"
    )
}

/// Dead letters produced for the replay crash test: more than one per target partition, so
/// the replay appends several batches and a crash can fall between them.
const N_REPLAYED_LETTERS: usize = 7;

/// Dead-letter replay moves each letter exactly once across a crash: killed (an armed crash
/// point aborts the process) after recording a replay batch's intent but before appending it,
/// or after appending it but before recording the moves, the server comes back, and the next
/// replay leaves every letter in the stream exactly once (the oracle is the set of letter
/// payloads), the listing shows every letter as moved, and a further replay moves nothing.
#[test]
fn dead_letter_replay_is_exactly_once_across_a_crash() {
    for point in ["dead_letters.replay.before_append", "dead_letters.replay.after_append"] {
        let mut server = Server::start_with_env(&[("WEFT_CRASH_AT", point)]);
        server.post("/api/v1/apply", "application/yaml", payments_contract("1.0.0", "EUR").as_bytes()).assert_status(200);
        let oracle: Vec<String> = (0..N_REPLAYED_LETTERS).map(|idx| format!("pay-{idx}")).collect();
        let body: String = oracle.iter().map(|id| format!("{}\n", json!({ "payment_id": id, "currency": "USD" }))).collect();
        let produced = server.post("/api/v1/streams/crash.payments.v1/events", "application/x-ndjson", body.as_bytes());
        assert_eq!(produced.body["rejected"], N_REPLAYED_LETTERS, "every event is dead-lettered: {}", produced.text);
        server.post("/api/v1/apply", "application/yaml", payments_contract("1.1.0", "EUR, USD").as_bytes()).assert_status(200);

        let replay_path = "/api/v1/streams/crash.payments.v1/dead-letters/replay";
        let request = server.agent().post(&server.url(replay_path)).set("content-type", "application/json");
        let answered = reply_of(request.send_string("{}"));
        assert!(answered.is_err(), "the server answered instead of crashing at {point}: {:?}", answered.map(|r| r.text));
        assert!(!server.expect_exit().success(), "the server aborted at {point}");
        server.clear_serve_env();
        server.start_again();

        let second = server.post_json(replay_path, &json!({}));
        second.assert_status(200);
        assert_eq!(second.body["streams"][0]["still_failing"], 0, "{}", second.text);
        let mut stored: Vec<String> = (0..2)
            .flat_map(|partition| server.read_partition("crash.payments.v1", partition))
            .map(|envelope| envelope["event"]["data"]["payment_id"].as_str().expect("a payment id").to_string())
            .collect();
        stored.sort();
        assert_eq!(stored, oracle, "after a crash at {point}, every dead letter is in the stream exactly once");

        let third = server.post_json(replay_path, &json!({}));
        assert_eq!(third.body["streams"][0]["moved"], 0, "{}", third.text);
        assert_eq!(third.body["streams"][0]["already_moved"], N_REPLAYED_LETTERS, "{}", third.text);

        let shown = server.run_cli(&["dlq", "show", "crash.payments.v1", "--all", "--limit", "2"], b"");
        assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
        let letters: Vec<serde_json::Value> =
            String::from_utf8_lossy(&shown.stdout).lines().map(|line| serde_json::from_str(line).expect("one letter per line")).collect();
        assert_eq!(letters.len(), N_REPLAYED_LETTERS);
        assert!(letters.iter().all(|letter| letter["replayed_to"].is_u64()), "every letter is shown as moved: {letters:?}");
        let listed = server.run_cli(&["dlq", "list", "crash.payments.v1"], b"");
        let summary: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("the summary is JSON");
        assert_eq!(summary["streams"][0]["total"], N_REPLAYED_LETTERS);
        assert_eq!(summary["streams"][0]["moved"], N_REPLAYED_LETTERS, "{summary}");
    }
}
