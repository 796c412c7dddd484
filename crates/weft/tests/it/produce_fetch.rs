//! Produce and fetch semantics: partitioning, time lookup, and CloudEvents round trips in every HTTP mode.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::server::{Server, positions_of, wait_for};

/// Kafka's murmur2 (Java client, seed 0x9747b28c), written here independently of the server's copy.
fn murmur2(data: &[u8]) -> i32 {
    let m: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let n_words = data.len() / 4;
    for word_idx in 0..n_words {
        let i = word_idx * 4;
        let mut k = (data[i] as u32) | (data[i + 1] as u32) << 8 | (data[i + 2] as u32) << 16 | (data[i + 3] as u32) << 24;
        k = k.wrapping_mul(m);
        k ^= k >> 24;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    let tail = &data[n_words * 4..];
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(m);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(m);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(m);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    h as i32
}

fn kafka_partition(key: &str, n_partitions: u32) -> u32 {
    ((murmur2(key.as_bytes()) & 0x7fff_ffff) as u32) % n_partitions
}

/// Proves keyed partitioning matches Kafka's default partitioner and keeps per-key order: with the stream's
/// key pointer `/customer`, every event lands in `murmur2(key) % n` (strings as they are, numbers as their JSON
/// text), the stored envelope carries the key, and each key's events read back in production order. A
/// `partitionkey` extension overrides the data's key.
#[test]
fn keyed_events_land_in_the_murmur2_partition_in_order() {
    for (key, expected) in [("21", -973_932_308), ("foobar", -790_332_482), ("a-little-bit-long-string", -985_981_536)] {
        assert_eq!(murmur2(key.as_bytes()), expected, "the test's murmur2 matches Kafka's vectors");
    }
    let server = Server::start();
    let created = server.post_json("/api/v1/streams", &json!({ "name": "orders", "partitions": 6, "key": "/customer" }));
    created.assert_status(201);
    let customers: Vec<Value> = (0..12).map(|c| json!(format!("c{c}"))).chain([json!(42), json!(true)]).collect();
    let mut events = Vec::new();
    for seq in 0..5 {
        for customer in &customers {
            events.push(json!({ "customer": customer, "seq": seq }));
        }
    }
    for chunk in events.chunks(events.len() / 2) {
        let positions = server.produce_ndjson("orders", chunk);
        for (event, (partition, _)) in chunk.iter().zip(positions) {
            let key = match &event["customer"] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            assert_eq!(partition, kafka_partition(&key, 6), "event {event}");
        }
    }
    let mut seqs_by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for partition in 0..6 {
        for envelope in server.read_partition("orders", partition) {
            let key = envelope["key"].as_str().expect("a keyed event's envelope has its key").to_string();
            assert_eq!(kafka_partition(&key, 6), partition);
            seqs_by_key.entry(key).or_default().push(envelope["event"]["data"]["seq"].as_u64().expect("seq"));
        }
    }
    assert_eq!(seqs_by_key.len(), customers.len());
    assert!(seqs_by_key.values().all(|seqs| seqs == &[0, 1, 2, 3, 4]), "per-key order: {seqs_by_key:?}");

    let overridden = json!({
        "specversion": "1.0", "id": "o-1", "source": "/t", "type": "t", "partitionkey": "c3", "data": { "customer": "c5" },
    });
    let reply = server.post("/api/v1/streams/orders/events", "application/cloudevents+json", overridden.to_string().as_bytes());
    reply.assert_status(200);
    assert_eq!(positions_of(&reply.body)[0].0, kafka_partition("c3", 6), "partitionkey wins over the data's key");
}

/// Proves events without a key are spread over every partition rather than piling into one.
#[test]
fn events_without_a_key_spread_over_all_partitions() {
    let server = Server::start();
    server.create_stream("clicks", 4, "never");
    let events: Vec<Value> = (0..40).map(|n| json!({ "n": n })).collect();
    let positions = server.produce_ndjson("clicks", &events);
    let used: BTreeSet<u32> = positions.iter().map(|(partition, _)| *partition).collect();
    assert_eq!(used, BTreeSet::from([0, 1, 2, 3]));
    let stored: u64 = server.next_offsets("clicks").iter().sum();
    assert_eq!(stored, 40);
}

/// Proves time lookup: `from_time=T` starts at the first event whose timestamp is at or after T (the one before
/// it is older), returns only such events, accepts any RFC 3339 offset, and a time after the last event gives
/// an empty page at the partition's end.
#[test]
fn from_time_returns_events_at_or_after_the_time() {
    let server = Server::start();
    server.create_stream("ticks", 1, "never");
    // Produce one event at a time until three distinct record timestamps exist (the clock is the server's).
    let timestamps = wait_for(Duration::from_secs(10), "three distinct record timestamps", || {
        server.produce_ndjson("ticks", &[json!({ "tick": true })]);
        let events = server.read_partition("ticks", 0);
        let distinct: BTreeSet<String> = events.iter().map(|e| e["timestamp"].as_str().expect("timestamp").to_string()).collect();
        (distinct.len() >= 3).then_some(events.iter().map(|e| e["timestamp"].as_str().expect("timestamp").to_string()).collect::<Vec<_>>())
    });
    // The second distinct timestamp: the first offset carrying it, and everything before it is older.
    let middle = timestamps.iter().collect::<BTreeSet<_>>().into_iter().nth(1).expect("three distinct").clone();
    let first_at_middle = timestamps.iter().position(|t| *t == middle).expect("present");
    let page = server.get(&format!("/api/v1/streams/ticks/events?from_time={middle}"));
    page.assert_status(200);
    let fetched = page.body["events"].as_array().expect("events");
    assert_eq!(fetched[0]["offset"], first_at_middle, "starts at the first event at the time");
    assert!(fetched.iter().all(|e| e["timestamp"].as_str().expect("timestamp") >= middle.as_str()));
    assert_eq!(fetched.len(), timestamps.len() - first_at_middle);

    // The same instant written with a +02:00 offset (the `+` percent-encoded) finds the same event.
    let hour: u32 = middle[11..13].parse().expect("hour");
    let shifted = format!("{}T{:02}{}+02:00", &middle[..10], (hour + 2) % 24, &middle[13..23]);
    if hour < 22 {
        let page = server.get(&format!("/api/v1/streams/ticks/events?from_time={}", shifted.replace('+', "%2B")));
        assert_eq!(page.body["events"][0]["offset"], first_at_middle, "{shifted}");
    }
    let future = server.get("/api/v1/streams/ticks/events?from_time=2999-01-01T00:00:00Z");
    future.assert_status(200);
    assert_eq!((future.body["events"].clone(), future.body["next_offset"].clone()), (json!([]), json!(timestamps.len())));
}

/// Reads back the single event stored at `(partition, offset)`.
fn stored_event(server: &Server, stream: &str, (partition, offset): (u32, u64)) -> Value {
    let page = server.get(&format!("/api/v1/streams/{stream}/events?partition={partition}&offset={offset}&limit=1"));
    page.assert_status(200);
    page.body["events"][0]["event"].clone()
}

/// Events with every kind of attribute and data the JSON format can carry.
fn sample_events() -> Vec<Value> {
    vec![
        json!({
            "specversion": "1.0", "id": "s-1", "source": "/shop/orders", "type": "order.created", "subject": "order/17",
            "time": "2026-11-21T10:00:00.123Z", "dataschema": "https://schemas.example/order.json", "datacontenttype": "application/json",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tenant": "acme",
            "data": { "amount": 12.5, "items": [1, { "sku": null }], "note": "ü" },
        }),
        json!({ "specversion": "1.0", "id": "s-2", "source": "/s", "type": "t", "time": "2026-11-21T10:00:00Z", "data": [1, 2, 3] }),
        json!({
            "specversion": "1.0", "id": "s-3", "source": "/s", "type": "t", "time": "2026-11-21T10:00:00Z",
            "datacontenttype": "text/plain", "data": "hello\nworld",
        }),
        json!({
            "specversion": "1.0", "id": "s-4", "source": "/s", "type": "t", "time": "2026-11-21T10:00:00Z",
            "datacontenttype": "application/octet-stream", "data_base64": "AAEC/w==",
        }),
        json!({ "specversion": "1.0", "id": "s-5", "source": "/s", "type": "t", "time": "2026-11-21T10:00:00Z" }),
    ]
}

/// Proves CloudEvents round-trip in structured, batched and binary mode: fetched events have the same
/// attributes (required, optional and extensions) and the same data (JSON, text, binary as `data_base64`,
/// absent) as produced. Binary mode maps `ce-` headers and the content type to attributes and the body to data.
#[test]
fn cloudevents_round_trip_in_structured_batched_and_binary_modes() {
    let server = Server::start();
    server.create_stream("ce", 3, "always");
    let events_path = "/api/v1/streams/ce/events";
    for event in sample_events() {
        let reply = server.post(events_path, "application/cloudevents+json", event.to_string().as_bytes());
        reply.assert_status(200);
        assert_eq!(stored_event(&server, "ce", positions_of(&reply.body)[0]), event, "structured mode");
    }
    let batch = Value::Array(sample_events());
    let reply = server.post(events_path, "application/cloudevents-batch+json", batch.to_string().as_bytes());
    reply.assert_status(200);
    assert_eq!(reply.body["accepted"], 5);
    for (event, position) in sample_events().into_iter().zip(positions_of(&reply.body)) {
        assert_eq!(stored_event(&server, "ce", position), event, "batched mode");
    }

    let binary_cases: [(&str, &[u8], Value); 3] = [
        (
            "application/json",
            br#"{"amount": 12.5, "items": [1]}"#,
            json!({ "datacontenttype": "application/json", "data": { "amount": 12.5, "items": [1] } }),
        ),
        ("text/plain; charset=utf-8", "grüße".as_bytes(), json!({ "datacontenttype": "text/plain; charset=utf-8", "data": "grüße" })),
        ("application/octet-stream", &[0, 1, 2, 255], json!({ "datacontenttype": "application/octet-stream", "data_base64": "AAEC/w==" })),
    ];
    for (idx, (content_type, body, data_attributes)) in binary_cases.into_iter().enumerate() {
        let id = format!("b-{idx}");
        let request = server
            .agent()
            .post(&server.url(events_path))
            .set("content-type", content_type)
            .set("ce-specversion", "1.0")
            .set("ce-id", &id)
            .set("ce-source", "/shop")
            .set("ce-type", "order.created")
            .set("ce-subject", "order/17")
            .set("ce-time", "2026-11-21T10:00:00.5Z")
            .set("ce-traceparent", "00-ab-cd-01");
        let reply = server.send(request, Some(body));
        reply.assert_status(200);
        let mut expected = json!({
            "specversion": "1.0", "id": id, "source": "/shop", "type": "order.created", "subject": "order/17",
            "time": "2026-11-21T10:00:00.5Z", "traceparent": "00-ab-cd-01",
        });
        expected.as_object_mut().expect("object").extend(data_attributes.as_object().expect("object").clone());
        assert_eq!(stored_event(&server, "ce", positions_of(&reply.body)[0]), expected, "binary mode, {content_type}");
    }
}

/// Proves binary mode percent-decodes `ce-` header values (UTF-8 and reserved characters) before storing them,
/// so attributes that cannot travel raw in a header round-trip exactly.
#[test]
fn binary_mode_percent_encoded_header_values_decode() {
    let server = Server::start();
    server.create_stream("ce", 1, "always");
    let request = server
        .agent()
        .post(&server.url("/api/v1/streams/ce/events"))
        .set("content-type", "application/json")
        .set("ce-specversion", "1.0")
        .set("ce-id", "id%20with%20spaces")
        .set("ce-source", "%2Fshop%2Forders%3Fregion%3Deu")
        .set("ce-type", "order.created")
        .set("ce-subject", "caf%C3%A9%20%E2%82%AC%25%20%F0%9F%92%A5");
    let reply = server.send(request, Some(b"{}"));
    reply.assert_status(200);
    let event = stored_event(&server, "ce", positions_of(&reply.body)[0]);
    assert_eq!(event["id"], "id with spaces");
    assert_eq!(event["source"], "/shop/orders?region=eu");
    assert_eq!(event["subject"], "café €% 💥");
}
