//! The edges' hardening rules (issue 11) through the real binary: JSON objects with a repeated key
//! are refused, producers cannot set Weft's own headers, events from the future are refused, the
//! data directory is private, the registry cannot bypass a contract, the audit log pages with a
//! cursor, denials are audited and rate-limited, and classified values are masked wherever they sit.
//!
//! The Kafka listener's side of the same rules is proven in `weft-kafka` (`produce/edge_tests.rs`),
//! which drives the listener's produce handler with hand-built record batches.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::governance::create_token;
use crate::server::{Reply, Server};

const STREAM: &str = "edge.orders.v1";

/// A domain `shop` owned by `alice`, a contract for `edge.orders.v1` (key `/order_id`) whose
/// `email`, `tags` (a map) and the values of `notes` (a map of classified values) are `pii`, and
/// a product publishing it.
const MESH: &str = r#"apiVersion: weft/v1
kind: Domain
name: shop
owners: [alice]
---
apiVersion: v3.1.0
kind: DataContract
id: urn:test:edge-orders
version: 1.0.0
status: active
domain: shop
schema:
  - name: Order
    physicalType: topic
    physicalName: edge.orders.v1
    customProperties:
      - property: weft.key
        value: /order_id
    properties:
      - name: order_id
        logicalType: string
        required: true
      - name: email
        logicalType: string
        classification: pii
      - name: tags
        logicalType: map
        classification: pii
        map:
          key:
            logicalType: string
          value:
            logicalType: string
      - name: notes
        logicalType: map
        map:
          key:
            logicalType: string
          value:
            logicalType: string
            classification: pii
---
apiVersion: v1.0.0
kind: DataProduct
id: shop.edge-orders
status: active
domain: shop
outputPorts:
  - name: orders
    version: 1.0.0
    contractId: urn:test:edge-orders
"#;

/// A server with the mesh applied, and tokens for `alice` (owner of `shop`) and `bob` (nothing).
fn governed_server(serve_args: &[&str]) -> (Server, String, String) {
    let server = Server::start_with_args(serve_args);
    server.post("/api/v1/principals", "application/json", br#"{"name":"alice"}"#).assert_status(201);
    server.post("/api/v1/principals", "application/json", br#"{"name":"bob"}"#).assert_status(201);
    server.post("/api/v1/apply", "application/yaml", MESH.as_bytes()).assert_status(200);
    let alice = create_token(&server, "alice");
    let bob = create_token(&server, "bob");
    (server, alice, bob)
}

/// Sends a request with `token` and `content_type` (the harness's own helpers pick the admin token).
fn call(server: &Server, token: &str, method: &str, path: &str, content_type: &str, body: Option<&[u8]>) -> Reply {
    let request = server
        .agent()
        .request(method, &server.url(path))
        .set("authorization", &format!("Bearer {token}"))
        .set("content-type", content_type);
    server.send(request, body)
}

/// A structured-mode CloudEvent with `data` and optional `time`.
fn structured(data: &str, time: Option<&str>) -> String {
    let time = time.map_or(String::new(), |time| format!(r#","time":"{time}""#));
    format!(r#"{{"specversion":"1.0","id":"e-1","source":"/test","type":"t"{time},"data":{data}}}"#)
}

fn produce(server: &Server, stream: &str, content_type: &str, body: &str) -> Reply {
    server.post(&format!("/api/v1/streams/{stream}/events"), content_type, body.as_bytes())
}

/// A binary-mode event: `headers` are `ce-` attributes and the like, the body is the data.
fn produce_binary(server: &Server, stream: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut request = server
        .agent()
        .post(&server.url(&format!("/api/v1/streams/{stream}/events")))
        .set("content-type", "application/json")
        .set("ce-specversion", "1.0")
        .set("ce-id", "e-1")
        .set("ce-source", "/test")
        .set("ce-type", "t");
    for (name, value) in headers {
        request = request.set(name, value);
    }
    server.send(request, Some(body))
}

/// Proves a JSON object that repeats a key is refused with `event.duplicate_key` (and the pointer of
/// the repeated member) on every HTTP produce path, for governed and ungoverned streams alike, so
/// the validator and the masker (and every consumer) can never read different values; on a governed
/// stream the refused event is dead-lettered like any other refusal.
#[test]
fn a_json_object_with_a_repeated_key_is_refused() {
    let (server, _, _) = governed_server(&[]);
    server.create_stream("plain", 1, "always");

    let reply = produce(&server, "plain", "application/json", r#"{"a":1,"a":2}"#);
    reply.assert_error(400, "event.duplicate_key");
    assert_eq!(reply.body["error"]["path"], "/data/a", "{}", reply.text);
    let reply = produce(&server, "plain", "application/x-ndjson", "{\"ok\":1}\n{\"x\":{\"b\":1,\"b\":1}}\n");
    assert_eq!(reply.body["results"][0]["offset"], 0, "{}", reply.text);
    assert_eq!(reply.body["results"][1]["error"]["code"], "event.duplicate_key", "{}", reply.text);
    assert_eq!(reply.body["results"][1]["error"]["path"], "/data/x/b", "{}", reply.text);
    produce(&server, "plain", "application/cloudevents+json", &structured(r#"{"k":[{"z":1,"z":2}]}"#, None))
        .assert_error(400, "event.duplicate_key");
    let envelope = r#"{"specversion":"1.0","id":"e-1","id":"e-2","source":"/test","type":"t","data":{}}"#;
    let reply = produce(&server, "plain", "application/cloudevents+json", envelope);
    reply.assert_error(400, "event.duplicate_key");
    assert_eq!(reply.body["error"]["path"], "/id", "{}", reply.text);
    let batch = format!("[{},{}]", structured("{}", None), structured(r#"{"q":1,"q":1}"#, None));
    let reply = produce(&server, "plain", "application/cloudevents-batch+json", &batch);
    assert_eq!(reply.body["accepted"], 1, "{}", reply.text);
    assert_eq!(reply.body["results"][1]["error"]["code"], "event.duplicate_key", "{}", reply.text);
    assert_eq!(reply.body["results"][1]["error"]["path"], "/data/q", "{}", reply.text);
    let batch =
        format!("[{},{}]", structured("{}", None), r#"{"specversion":"1.0","specversion":"1.0","id":"e","source":"/s","type":"t"}"#);
    let reply = produce(&server, "plain", "application/cloudevents-batch+json", &batch);
    assert_eq!(reply.body["results"][1]["error"]["code"], "event.duplicate_key", "{}", reply.text);
    assert_eq!(reply.body["results"][1]["error"]["path"], "/1/specversion", "{}", reply.text);
    produce_binary(&server, "plain", &[], br#"{"a":{"b":true},"a":null}"#).assert_error(400, "event.duplicate_key");
    // The key pointer path of an ungoverned stream with a key checks the members it skips too.
    server.post_json("/api/v1/streams", &json!({ "name": "keyed", "partitions": 2, "key": "/id" })).assert_status(201);
    produce(&server, "keyed", "application/json", r#"{"id":"x","n":{"m":1,"m":2}}"#).assert_error(400, "event.duplicate_key");
    produce(&server, "keyed", "application/json", r#"{"id":"x","id":"y"}"#).assert_error(400, "event.duplicate_key");
    assert_eq!(server.next_offsets("plain"), vec![3], "only the events without repeated keys were stored");

    let reply = produce(&server, STREAM, "application/json", r#"{"order_id":"o-1","email":"a@example.com","email":"b@example.com"}"#);
    reply.assert_error(400, "event.duplicate_key");
    assert_eq!(reply.body["error"]["path"], "/email", "{}", reply.text);
    assert_eq!(reply.body["error"]["dead_letter"]["stream"], format!("{STREAM}.dlq"), "{}", reply.text);
    assert_eq!(server.next_offsets(STREAM), vec![0], "nothing was stored on the governed stream");
}

/// Proves an HTTP producer cannot set a header Weft keeps for itself: binary-mode attributes become
/// `ce_<name>` headers, attribute names cannot hold `_` (so no `ce_weft_*`), and extension attributes
/// whose name starts with `weft` are refused in every mode (`event.reserved_attribute`).
#[test]
fn http_producers_cannot_set_weft_headers() {
    let server = Server::start();
    server.create_stream("plain", 1, "always");
    produce_binary(&server, "plain", &[("ce-weft_dlq_reason", "forged")], b"{}").assert_error(400, "event.invalid_cloudevent");
    let reply = produce_binary(&server, "plain", &[("ce-weftdlqreason", "forged")], b"{}");
    reply.assert_error(400, "event.reserved_attribute");
    assert_eq!(reply.body["error"]["path"], "/weftdlqreason", "{}", reply.text);
    let forged = r#"{"specversion":"1.0","id":"e-1","source":"/test","type":"t","weftproducer":"admin","data":{}}"#;
    produce(&server, "plain", "application/cloudevents+json", forged).assert_error(400, "event.reserved_attribute");
    produce_binary(&server, "plain", &[("ce-traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")], b"{}")
        .assert_status(200);
}

/// Milliseconds since the epoch as RFC 3339 (UTC), for event times relative to now.
fn rfc3339(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after the epoch").as_millis() as i64
}

/// Proves an event whose `time` is further in the future than the server allows (an hour by
/// default, `--max-future-time` to change it) is refused with `event.time_in_future` at `/time`, in
/// structured and binary mode, so a producer cannot defeat retention or time lookups; a time within
/// the bound, or in the past, is accepted.
#[test]
fn events_from_the_future_are_refused() {
    let server = Server::start();
    server.create_stream("plain", 1, "always");
    let in_two_hours = rfc3339(now_ms() + 2 * 3_600_000);
    let reply = produce(&server, "plain", "application/cloudevents+json", &structured("{}", Some(&in_two_hours)));
    reply.assert_error(400, "event.time_in_future");
    assert_eq!(reply.body["error"]["path"], "/time", "{}", reply.text);
    produce(&server, "plain", "application/cloudevents+json", &structured("{}", Some(&rfc3339(now_ms() + 10 * 60_000)))).assert_status(200);
    produce(&server, "plain", "application/cloudevents+json", &structured("{}", Some("2001-01-01T00:00:00Z"))).assert_status(200);

    let strict = Server::start_with_args(&["--max-future-time", "1m"]);
    strict.create_stream("plain", 1, "always");
    let in_ten_minutes = rfc3339(now_ms() + 10 * 60_000);
    produce(&strict, "plain", "application/cloudevents+json", &structured("{}", Some(&in_ten_minutes)))
        .assert_error(400, "event.time_in_future");
    produce_binary(&strict, "plain", &[("ce-time", &in_ten_minutes)], b"{}").assert_error(400, "event.time_in_future");
    produce_binary(&strict, "plain", &[("ce-time", &rfc3339(now_ms()))], b"{}").assert_status(200);
    assert_eq!(strict.next_offsets("plain"), vec![1]);

    let lax = Server::start_with_env(&[("WEFT_MAX_FUTURE_TIME", "forever")]);
    lax.create_stream("plain", 1, "always");
    produce(&lax, "plain", "application/cloudevents+json", &structured("{}", Some("2999-01-01T00:00:00Z"))).assert_status(200);
}

/// Every path under `dir` (not `dir` itself) with its permission bits.
fn modes_under(dir: &Path, out: &mut Vec<(String, bool, u32)>) {
    for entry in std::fs::read_dir(dir).expect("reading a directory") {
        let entry = entry.expect("a directory entry");
        let metadata = entry.metadata().expect("metadata");
        out.push((entry.path().display().to_string(), metadata.is_dir(), metadata.permissions().mode() & 0o777));
        if metadata.is_dir() {
            modes_under(&entry.path(), out);
        }
    }
}

/// Proves that after a server run that touched every kind of file (streams with segments and
/// indexes, a governed stream and its dead letters, consumer offsets, principals and tokens, the
/// audit log and its head, the registry, the admin token and the masking secret), the data
/// directory is `0700` with every directory in it `0700` and every file `0600`, including a data
/// directory that existed with looser permissions before the server started.
#[test]
fn every_file_in_the_data_directory_is_private() {
    let (mut server, _, bob) = governed_server(&[]);
    server.create_stream("plain", 2, "always");
    server.produce_ndjson("plain", &[json!({ "n": 1 }), json!({ "n": 2 })]);
    // Two events of 600 KiB roll a 1 MiB segment, which writes its indexes.
    let rolled = json!({ "name": "rolled", "partitions": 1, "segment_bytes": 1024 * 1024 });
    server.post_json("/api/v1/streams", &rolled).assert_status(201);
    let big = json!({ "blob": "x".repeat(600 * 1024) });
    for _ in 0..3 {
        server.produce_ndjson("rolled", std::slice::from_ref(&big));
    }
    produce(&server, STREAM, "application/json", r#"{"email":"no-order-id@example.com"}"#).assert_error(400, "contract.required_missing");
    call(&server, &bob, "GET", "/api/v1/streams/plain/events?partition=0&offset=0", "application/json", None)
        .assert_error(403, "authz.denied");
    let poll = server.post_json("/api/v1/streams/plain/groups/g/poll", &json!({ "member": "m-1", "max_events": 10 }));
    poll.assert_status(200);
    server.terminate().expect("the server stops on SIGTERM");
    let data_dir = server.data_dir();
    server.start_again();
    server.terminate().expect("the server stops on SIGTERM");

    let mut modes = Vec::new();
    modes_under(&data_dir, &mut modes);
    let names: BTreeSet<String> =
        modes.iter().filter_map(|(path, _, _)| Path::new(path).file_name()?.to_str().map(str::to_string)).collect();
    for expected in ["meta.redb", "governance.redb", "registry.redb", "admin.token", "audit.head", "governance.secret", "streams"] {
        assert!(names.contains(expected), "{expected} is in the data directory: {names:?}");
    }
    assert!(modes.iter().any(|(path, _, _)| path.ends_with(".log")), "segments were written: {modes:?}");
    assert!(modes.iter().any(|(path, _, _)| path.ends_with(".index")), "indexes were written: {modes:?}");
    let loose: Vec<&(String, bool, u32)> = modes.iter().filter(|(_, is_dir, mode)| *mode != if *is_dir { 0o700 } else { 0o600 }).collect();
    assert!(loose.is_empty(), "paths readable by others: {loose:#?}");
    let data_dir_mode = std::fs::metadata(&data_dir).expect("the data directory").permissions().mode() & 0o777;
    assert_eq!(data_dir_mode, 0o700, "the data directory itself is private");
}

/// `{"error_code": N, "message": "..."}` of a registry reply.
fn registry_error_code(reply: &Reply) -> u64 {
    reply.body["error_code"].as_u64().unwrap_or_else(|| panic!("a Confluent error body: {}", reply.text))
}

const REGISTRY_JSON: &str = "application/vnd.schemaregistry.v1+json";

/// A schema-registration body for a JSON Schema.
fn json_schema_body(schema: &Value) -> Vec<u8> {
    json!({ "schema": schema.to_string(), "schemaType": "JSON" }).to_string().into_bytes()
}

/// An event framed with Confluent's wire format (magic 0, 4-byte schema id).
fn framed(schema_id: u32, data: &Value) -> Vec<u8> {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&schema_id.to_be_bytes());
    framed.extend_from_slice(data.to_string().as_bytes());
    framed
}

/// Proves a subject fed by a contract is managed through `weft apply` only: the stream's owner may
/// re-register the contract's schema (serializers do) but not register another one, delete the
/// subject or a version, or change its compatibility (403, Confluent error code 40301), and the
/// mark survives a restart; an admin may, but an event framed with an id that is not a version of
/// the stream's contract is still refused (`schema.not_contract_version`); the refusals are audited.
#[test]
fn contract_fed_subjects_cannot_be_changed_through_the_registry() {
    let (mut server, alice, _) = governed_server(&[]);
    let subject = format!("{STREAM}-value");
    let latest = server.get(&format!("/registry/subjects/{subject}/versions/latest"));
    latest.assert_status(200);
    let contract_id = latest.body["id"].as_u64().expect("an id") as u32;
    let contract_schema = latest.body["schema"].as_str().expect("the schema text").to_string();
    let other = json!({ "type": "object", "properties": { "order_id": { "type": "string" } } });
    let versions = format!("/registry/subjects/{subject}/versions");

    for attempt in 0..2 {
        let same = json!({ "schema": contract_schema, "schemaType": "JSON" }).to_string();
        let reply = call(&server, &alice, "POST", &versions, REGISTRY_JSON, Some(same.as_bytes()));
        assert_eq!((reply.status, reply.body["id"].as_u64()), (200, Some(u64::from(contract_id))), "{}", reply.text);
        for (method, path, body) in [
            ("POST", versions.clone(), Some(json_schema_body(&other))),
            ("DELETE", format!("/registry/subjects/{subject}"), None),
            ("DELETE", format!("/registry/subjects/{subject}/versions/1"), None),
        ] {
            let reply = call(&server, &alice, method, &path, REGISTRY_JSON, body.as_deref());
            assert_eq!((reply.status, registry_error_code(&reply)), (403, 40301), "{method} {path} (attempt {attempt}): {}", reply.text);
        }
        let config =
            call(&server, &alice, "PUT", &format!("/registry/config/{subject}"), REGISTRY_JSON, Some(br#"{"compatibility":"NONE"}"#));
        assert_eq!(config.status, 403, "{}", config.text);
        if attempt == 0 {
            server.terminate().expect("the server stops on SIGTERM");
            server.start_again();
        }
    }
    let denials = server.get(&format!("/api/v1/audit?decision=deny&principal=alice&resource=stream:{STREAM}"));
    let entries = denials.body["entries"].as_array().expect("entries");
    assert!(entries.len() >= 6 && entries.iter().all(|e| e["code"] == "registry.subject_contract_fed"), "{}", denials.text);

    let reply = server.post(&versions, REGISTRY_JSON, &json_schema_body(&other));
    reply.assert_status(200);
    let other_id = reply.body["id"].as_u64().expect("an id") as u32;
    assert_ne!(other_id, contract_id);
    let order = json!({ "order_id": "o-1" });
    for (schema_id, expected) in [(contract_id, None), (other_id, Some("schema.not_contract_version"))] {
        let reply = produce_binary(&server, STREAM, &[], &framed(schema_id, &order));
        match expected {
            None => reply.assert_status(200),
            Some(code) => reply.assert_error(400, code),
        };
    }
}

/// Proves a JSON Schema that refers to itself through several branches
/// (`{"anyOf":[{"$ref":"#"},{"$ref":"#"}]}`, or the same through `allOf`), whose naive expansion
/// is exponential (or endless), is answered
/// within a bounded amount of work when it is registered, checked and registered again, and that
/// the registry still answers other requests at once afterwards.
#[test]
fn a_recursive_json_schema_is_refused_within_bounded_work() {
    let server = Server::start();
    let bomb = json!({ "anyOf": [{ "$ref": "#" }, { "$ref": "#" }] });
    let wider = json!({ "anyOf": [{ "$ref": "#" }, { "$ref": "#" }, { "$ref": "#" }, { "type": "string" }] });
    let deep = json!({ "anyOf": [
        { "anyOf": [{ "$ref": "#" }, { "$ref": "#/anyOf/0" }, { "$ref": "#/anyOf/1" }] },
        { "anyOf": [{ "$ref": "#/anyOf/0" }, { "$ref": "#" }, { "$ref": "#/anyOf/1" }] },
    ] });
    let all_of = json!({ "allOf": [{ "$ref": "#" }, { "$ref": "#" }], "type": "object" });
    let started = Instant::now();
    for (subject, first, second) in
        [("bomb-value", &bomb, &wider), ("deep-value", &deep, &bomb), ("wide-value", &wider, &deep), ("all-of-value", &all_of, &bomb)]
    {
        let first = server.post(&format!("/registry/subjects/{subject}/versions"), REGISTRY_JSON, &json_schema_body(first));
        assert!(matches!(first.status, 200 | 422), "{}", first.text);
        let check =
            server.post(&format!("/registry/compatibility/subjects/{subject}/versions/latest"), REGISTRY_JSON, &json_schema_body(second));
        assert!(matches!(check.status, 200 | 404 | 422), "{}", check.text);
        let second = server.post(&format!("/registry/subjects/{subject}/versions"), REGISTRY_JSON, &json_schema_body(second));
        assert!(matches!(second.status, 200 | 409 | 422), "{}", second.text);
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "the checks took {elapsed:?}");
    let probe = Instant::now();
    server.get("/registry/subjects").assert_status(200);
    assert!(probe.elapsed() < Duration::from_secs(2), "the registry answers at once afterwards");
}

/// Proves `GET /api/v1/audit` pages: `limit` is bounded (`request.invalid_parameter` beyond the
/// maximum), each page says where the next one starts (`next_cursor`, passed back as `?cursor=`),
/// following the cursors visits every matching entry once in log order, and the last page has no
/// cursor; a cursor that is not one the server handed out is refused.
#[test]
fn the_audit_log_pages_with_a_cursor() {
    let server = Server::start();
    for principal_idx in 0..25 {
        server.post_json("/api/v1/principals", &json!({ "name": format!("p{principal_idx}") })).assert_status(201);
    }
    let everything = server.get("/api/v1/audit?action=principal.create");
    everything.assert_status(200);
    let all: Vec<Value> = everything.body["entries"].as_array().expect("entries").clone();
    assert_eq!(all.len(), 25, "{}", everything.text);

    let mut seen = Vec::new();
    let mut path = "/api/v1/audit?action=principal.create&limit=10".to_string();
    let mut n_pages = 0;
    loop {
        let page = server.get(&path);
        page.assert_status(200);
        let entries = page.body["entries"].as_array().expect("entries");
        assert!(entries.len() <= 10, "{}", page.text);
        seen.extend(entries.iter().cloned());
        n_pages += 1;
        assert!(n_pages <= 10, "the cursors end");
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/audit?action=principal.create&limit=10&cursor={cursor}"),
            None => {
                assert!(page.body.get("next_cursor").is_some(), "next_cursor is always present (null at the end): {}", page.text);
                break;
            }
        }
    }
    assert_eq!(seen, all, "the pages hold every entry once, in order");
    assert_eq!(n_pages, 3);
    server.get("/api/v1/audit?limit=100000").assert_error(400, "request.invalid_parameter");
    server.get("/api/v1/audit?cursor=not-a-cursor").assert_error(400, "request.invalid_parameter");
}

/// Proves every denial is audited but a principal retrying a forbidden request in a loop cannot
/// flood the audit log: denials are recorded one by one up to the per-minute bound for each
/// principal and source (like authentication failures), another principal's denials are recorded
/// on their own, and the chain still verifies.
#[test]
fn denials_are_audited_and_rate_limited() {
    let (server, alice, bob) = governed_server(&[]);
    server.create_stream("plain", 1, "always");
    for _ in 0..60 {
        call(&server, &bob, "GET", "/api/v1/streams/plain/events?partition=0&offset=0", "application/json", None)
            .assert_error(403, "authz.denied");
    }
    call(&server, &alice, "GET", "/api/v1/streams/plain/events?partition=0&offset=0", "application/json", None)
        .assert_error(403, "authz.denied");
    let bob_denials = server.get("/api/v1/audit?decision=deny&principal=bob&limit=1000").body;
    let n_recorded = bob_denials["entries"].as_array().expect("entries").len();
    // 20 entries, or at most 20 + 1 summary + 20 if a minute boundary falls inside the loop.
    assert!((20..=41).contains(&n_recorded), "{n_recorded} denials recorded: {bob_denials}");
    let alice_denials = server.get("/api/v1/audit?decision=deny&principal=alice").body;
    assert_eq!(alice_denials["entries"].as_array().expect("entries").len(), 1, "{alice_denials}");
    assert_eq!(server.get("/api/v1/audit/verify").body["ok"], true);
}

/// Proves classified values are masked for a reader without `unmask` wherever the contract puts
/// them: a classified map is masked whole, and so is a map whose value schema is classified (its
/// values were served in clear before), while an admin reads them clear.
#[test]
fn classified_map_values_are_masked() {
    let (server, alice, _) = governed_server(&[]);
    let event = json!({ "order_id": "o-1", "email": "a@example.com", "tags": { "vip": "yes" }, "notes": { "n1": "secret", "n2": "also" } });
    produce(&server, STREAM, "application/json", &event.to_string()).assert_status(200);
    let read = call(&server, &alice, "GET", &format!("/api/v1/streams/{STREAM}/events?partition=0&offset=0"), "application/json", None);
    read.assert_status(200);
    let data = &read.body["events"][0]["event"]["data"];
    assert_eq!(data["order_id"], "o-1", "{}", read.text);
    for masked in [&data["email"], &data["tags"], &data["notes"]] {
        assert!(masked.as_str().is_some_and(|text| text.starts_with("masked:")), "{masked} is masked: {}", read.text);
    }
    let clear = server.get(&format!("/api/v1/streams/{STREAM}/events?partition=0&offset=0"));
    assert_eq!(clear.body["events"][0]["event"]["data"], event);
}

/// Proves a contract whose stream key is a classified property (or lies inside one) is refused at
/// apply with `contract.classified_key` and the pointer of the key setting, since the key is stored
/// and served in clear.
#[test]
fn a_classified_property_cannot_be_a_streams_key() {
    let server = Server::start();
    let contract = MESH
        .split("---\n")
        .nth(1)
        .expect("the contract document")
        .replace("value: /order_id", "value: /email")
        .replace("domain: shop\n", "");
    let reply = server.post("/api/v1/apply", "application/yaml", contract.as_bytes());
    reply.assert_error(422, "apply.refused");
    let refused: Vec<&Value> = reply.body["resources"].as_array().expect("resources").iter().filter(|r| r["action"] == "refused").collect();
    assert_eq!(refused.len(), 1, "{}", reply.text);
    assert_eq!(refused[0]["error"]["code"], "contract.classified_key", "{}", reply.text);
    assert_eq!(refused[0]["error"]["path"], "/schema/0/customProperties", "{}", reply.text);
}
