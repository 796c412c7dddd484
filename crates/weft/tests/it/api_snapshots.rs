//! Snapshot tests of the public HTTP API through the real binary: error bodies, apply plans and the main
//! JSON responses, each pinned with its status code so a change to what clients see shows up as a diff.
//!
//! Only what varies between runs is redacted (times, generated event ids, tokens, hashes of the audit chain,
//! latency histograms and counters that depend on the wall clock); offsets, partitions, codes, messages,
//! pointers and plan actions stay in the snapshots, because they are the contract with clients.
//! The data is made deterministic: fixed names, single-partition streams or explicit keys, explicit
//! CloudEvent ids where the body mode carries them.
//! It does not judge whether a response is right: the other modules prove behaviour, this one pins shape.

use std::path::{Path, PathBuf};

use insta::internals::Content;
use serde_json::{Value, json};

use crate::server::{Reply, Server};

/// The example mesh at the root of the repository.
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
/// The example product and stream used by most mesh snapshots.
const SALES: &str = "urn:weft:product:sales";
const SALES_ORDERS: &str = "sales.orders.v1";
const INSIGHTS: &str = "urn:weft:product:customer-sales-insights";
/// The event size limit is 1 MiB; one byte of data over it is enough.
const EVENT_BYTES_OVER_LIMIT: usize = 1024 * 1024 + 1;
/// The request body limit is 16 MiB.
const BODY_BYTES_OVER_LIMIT: usize = 16 * 1024 * 1024 + 1;

/// Keys whose values are wall-clock times, wherever they appear.
const TIME_KEYS: &[&str] = &[
    "time",
    "timestamp",
    "created_at",
    "expires_at",
    "revoked_at",
    "rejected_at",
    "replayed_at",
    "first_seen",
    "last_seen",
    "last_event_at",
    "late_since",
    "minute",
    "at",
    "since",
    "until",
];

/// Keys whose values depend on how fast this machine ran the test, not on what the test did.
const TIMING_KEYS: &[&str] = &["produce_latency_ms", "fsync_latency_ms", "age_ms", "throughput", "events_last_minute"];

/// Keys whose values are secrets or derived from times (the audit chain hashes the entry times).
const SECRET_KEYS: &[&str] = &["token", "hash", "prev_hash"];

/// The redactions every snapshot of this module uses.
fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_sort_maps(false);
    for key in TIME_KEYS {
        settings.add_redaction(&format!(".**.{key}"), "[time]");
    }
    for key in TIMING_KEYS {
        settings.add_redaction(&format!(".**.{key}"), "[timing]");
    }
    for key in SECRET_KEYS {
        settings.add_redaction(&format!(".**.{key}"), "[redacted]");
    }
    // Ids the server generates are UUIDv7 (time-ordered, so never the same twice); ids a client or a
    // resource file chose are deterministic and stay.
    settings.add_dynamic_redaction(".**.id", |value, _path| if is_generated_id(&value) { "[uuid]".into() } else { value });
    // The audit log names the client's address, whose port the OS picks, and the random id of a created token.
    settings.add_dynamic_redaction(".**.source", |value, _path| match value.as_str() {
        Some(source) if source.starts_with("http 127.0.0.1:") => "http 127.0.0.1:[port]".into(),
        _ => value,
    });
    settings.add_dynamic_redaction(".**.detail", |value, _path| match value.as_str() {
        Some(detail) if detail.starts_with("token ") => "token [token id]".into(),
        _ => value,
    });
    // Freshness against a one-second SLA depends on how long the test took between producing and reading.
    settings.add_dynamic_redaction(".**.freshness.status", |value, _path| match value.as_str() {
        Some("on_time" | "late") => "[on_time or late]".into(),
        _ => value,
    });
    settings
}

fn is_generated_id(value: &Content) -> bool {
    let Some(text) = value.as_str() else { return false };
    let bytes = text.as_bytes();
    let dashes_at_uuid_positions = [8, 13, 18, 23].iter().all(|&idx| bytes.get(idx) == Some(&b'-'));
    text.len() == 36 && dashes_at_uuid_positions && bytes[14] == b'7'
}

/// Snapshots a reply's status and JSON body under `name`.
#[track_caller]
fn check(name: &str, reply: &Reply) {
    assert!(reply.content_type.starts_with("application/json"), "{name}: not JSON ({}): {}", reply.content_type, reply.text);
    let pinned = json!({ "status": reply.status, "body": reply.body });
    settings().bind(|| insta::assert_json_snapshot!(name, pinned));
}

/// Like `check`, for a value that is not one reply.
#[track_caller]
fn check_value(name: &str, value: &Value) {
    settings().bind(|| insta::assert_json_snapshot!(name, value));
}

/// A request as `token` instead of the admin.
fn as_token(server: &Server, token: &str, method: &str, path: &str, content_type: &str, body: Option<&[u8]>) -> Reply {
    let request = server
        .agent()
        .request(method, &server.url(path))
        .set("authorization", &format!("Bearer {token}"))
        .set("content-type", content_type);
    server.send(request, body)
}

/// Every resource file of the example mesh, named by its path from the repository root so the plan's
/// `source` fields do not depend on where the repository is checked out; ordered as `weft apply -f` orders them.
fn example_sources() -> Vec<(String, String)> {
    fn collect(directory: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(directory).expect("reading the examples").map(|entry| entry.expect("an entry").path()).collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() {
                collect(&entry, out);
            } else if entry.extension().is_some_and(|ext| ext == "yaml") {
                out.push(entry);
            }
        }
    }
    let root = Path::new(EXAMPLES);
    let mut paths = Vec::new();
    collect(root, &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let name = format!("examples/{}", path.strip_prefix(root).expect("below the examples").display());
            (name, std::fs::read_to_string(&path).expect("reading an example"))
        })
        .collect()
}

fn apply(server: &Server, sources: &[(String, String)], dry_run: bool) -> Reply {
    let sources: Vec<Value> = sources.iter().map(|(name, text)| json!({ "name": name, "text": text })).collect();
    server.post_json("/api/v1/apply", &json!({ "sources": sources, "dry_run": dry_run }))
}

fn server_with_examples() -> Server {
    let server = Server::start();
    apply(&server, &example_sources(), false).assert_status(200);
    server
}

/// A valid order for `sales.orders.v1`; the customer id is the stream's key, so its partition is fixed.
fn order(n: u32) -> Value {
    json!({
        "order_id": format!("0191b3f2-7c1e-7a4b-9e0f-{n:012}"),
        "amount": 10.5,
        "currency": "EUR",
        "quantity": 1,
        "placed_at": "2026-11-21T10:00:00+01:00",
        "customer": { "customer_id": "0191b3f2-7c1e-7a4b-9e0f-1234567890ab" },
        "lines": [{ "sku": "SKU-1", "quantity": 1 }],
    })
}

fn ndjson(events: &[Value]) -> Vec<u8> {
    events.iter().map(|event| format!("{event}\n")).collect::<String>().into_bytes()
}

/// Produces three valid orders and one with a currency outside the contract, and returns the reply.
fn produce_orders_with_one_violation(server: &Server) -> Reply {
    let mut bad = order(9);
    bad["currency"] = json!("XYZ");
    bad["quantity"] = json!(0);
    let body = ndjson(&[order(1), order(2), order(3), bad]);
    server.post(&format!("/api/v1/streams/{SALES_ORDERS}/events"), "application/x-ndjson", &body)
}

/// Pins the 401 bodies: no credentials at all, and a well-formed token the server never issued.
#[test]
fn authentication_error_bodies_are_pinned() {
    let server = Server::start();
    let bare = server.send(ureq::AgentBuilder::new().build().get(&server.url("/api/v1/streams")), None);
    check("error_missing_token", &bare);
    let unknown_token = format!("weft_{}", "0".repeat(80));
    check("error_unknown_token", &as_token(&server, &unknown_token, "GET", "/api/v1/streams", "application/json", None));
}

/// Pins the error bodies of stream administration and of requests the router or query parser refuses.
#[test]
fn stream_and_request_error_bodies_are_pinned() {
    let server = Server::start();
    server.create_stream("snap.errors", 1, "always");
    check("error_unknown_stream", &server.get("/api/v1/streams/snap.missing"));
    check("error_unknown_stream_produce", &server.post("/api/v1/streams/snap.missing/events", "application/json", b"{}"));
    check("error_bad_partitions", &server.post_json("/api/v1/streams", &json!({ "name": "snap.bad", "partitions": 0 })));
    check("error_bad_fsync", &server.post_json("/api/v1/streams", &json!({ "name": "snap.bad", "partitions": 1, "fsync": "sometimes" })));
    check("error_duplicate_stream", &server.post_json("/api/v1/streams", &json!({ "name": "snap.errors", "partitions": 1 })));
    check("error_unknown_route", &server.get("/api/v1/nothing-here"));
    check("error_unknown_query_parameter", &server.get("/api/v1/streams/snap.errors/events?partition=0&offset=0&frobnicate=1"));
}

/// Pins the error bodies of produce: malformed JSON, a content type produce does not speak, an event over
/// the event limit and a body over the request limit.
#[test]
fn produce_error_bodies_are_pinned() {
    let server = Server::start();
    server.create_stream("snap.produce", 1, "always");
    let events = "/api/v1/streams/snap.produce/events";
    check("error_malformed_json", &server.post(events, "application/json", br#"{"x":"#));
    check("error_malformed_ndjson_line", &server.post(events, "application/x-ndjson", b"{\"n\":1}\n{\"n\":\n"));
    check("error_unsupported_content_type", &server.post(events, "text/csv", b"a,b\n"));
    let big = format!("\"{}\"", "a".repeat(EVENT_BYTES_OVER_LIMIT));
    check("error_event_too_large", &server.post(events, "application/json", big.as_bytes()));
    let line = format!("{{\"pad\":\"{}\"}}\n", "b".repeat(1000));
    let huge = line.repeat(BODY_BYTES_OVER_LIMIT / line.len() + 1);
    check("error_body_too_large", &server.post(events, "application/x-ndjson", huge.as_bytes()));
}

/// Pins a contract violation on a governed stream: the per-event results, the violations with their
/// pointers, and where the refused event went in the dead-letter stream.
#[test]
fn contract_violation_results_are_pinned() {
    let server = server_with_examples();
    check("produce_contract_violation", &produce_orders_with_one_violation(&server));
}

/// Pins the 403 body a principal gets when it consumes a product nobody granted it.
#[test]
fn authorization_denial_body_is_pinned() {
    let server = server_with_examples();
    server.post_json("/api/v1/principals", &json!({ "name": "bob" })).assert_status(201);
    let token = server.post_json("/api/v1/tokens", &json!({ "principal": "bob" }));
    token.assert_status(201);
    let bob = token.body["token"].as_str().expect("a token");
    let path = format!("/api/v1/streams/{SALES_ORDERS}/events?partition=0&offset=0");
    check("error_authz_denied_consume", &as_token(&server, bob, "GET", &path, "application/json", None));
}

/// A changed version of the example sales contract: `replace` edits its text, `version` is the new version.
fn sales_contract_changed(version: &str, replace: (&str, &str)) -> Vec<(String, String)> {
    let (name, text) =
        example_sources().into_iter().find(|(name, _)| name.ends_with("sale-recorded.odcs.yaml")).expect("the sales contract");
    assert!(text.contains(replace.0), "the sales contract still has {:?}", replace.0);
    let text = text.replacen("version: 1.0.0", &format!("version: {version}"), 1).replacen(replace.0, replace.1, 1);
    vec![(name, text)]
}

/// Pins the apply plans of the example mesh: a dry run, the first apply, a second apply (all unchanged), a
/// compatible update with its field diff, a refused incompatible change, and a refused document whose
/// type options no longer fit its changed type.
#[test]
fn apply_plans_are_pinned() {
    let server = Server::start();
    let sources = example_sources();
    check("apply_examples_dry_run", &apply(&server, &sources, true));
    check("apply_examples", &apply(&server, &sources, false));
    check("apply_examples_again", &apply(&server, &sources, false));
    let amount = "      - name: amount\n        logicalType: number\n";
    let optional_note = format!("      - name: note\n        logicalType: string\n        description: A free-text note.\n{amount}");
    check("apply_contract_update", &apply(&server, &sales_contract_changed("1.1.0", (amount, &optional_note)), false));
    // Under the contract's BACKWARD compatibility, events already stored lack a newly required field.
    let required_channel = format!("      - name: channel\n        logicalType: string\n        required: true\n{amount}");
    check("apply_contract_incompatible", &apply(&server, &sales_contract_changed("2.0.0", (amount, &required_channel)), false));
    let amount_as_string = "      - name: amount\n        logicalType: string\n";
    check("apply_contract_invalid_type_options", &apply(&server, &sales_contract_changed("2.0.0", (amount, amount_as_string)), false));
    check("contract_after_update", &server.get("/api/v1/contracts/urn:weft:sales:sale-recorded"));
}

/// Pins stream administration and the plain event path on a single-partition stream: create, list,
/// show, produce in every body mode, and a fetch by offset.
#[test]
fn stream_and_event_responses_are_pinned() {
    let server = Server::start();
    let created = server.post_json("/api/v1/streams", &json!({ "name": "snap.events", "partitions": 1, "retention": "1d" }));
    check("stream_create", &created);
    server.post_json("/api/v1/streams", &json!({ "name": "snap.keyed", "partitions": 3, "key": "/customer_id" })).assert_status(201);
    let events = "/api/v1/streams/snap.events/events";
    check("produce_json", &server.post(events, "application/json", br#"{"n":1}"#));
    check("produce_ndjson", &server.post(events, "application/x-ndjson", b"{\"n\":2}\n{\"n\":3}\n"));
    let structured = json!({
        "specversion": "1.0", "id": "evt-4", "source": "/snapshots", "type": "snap.v1",
        "time": "2026-01-01T00:00:00Z", "data": { "n": 4 },
    });
    check("produce_cloudevent", &server.post(events, "application/cloudevents+json", structured.to_string().as_bytes()));
    let batch = json!([
        { "specversion": "1.0", "id": "evt-5", "source": "/snapshots", "type": "snap.v1", "partitionkey": "k-5", "data": { "n": 5 } },
        { "specversion": "1.0", "id": "evt-6", "source": "/snapshots", "type": "snap.v1", "data": { "n": 6 } },
    ]);
    check("produce_cloudevents_batch", &server.post(events, "application/cloudevents-batch+json", batch.to_string().as_bytes()));
    let keyed = ndjson(&[json!({ "customer_id": "c-1" }), json!({ "customer_id": "c-2" }), json!({ "customer_id": "c-3" })]);
    check("produce_ndjson_keyed", &server.post("/api/v1/streams/snap.keyed/events", "application/x-ndjson", &keyed));
    check("stream_list", &server.get("/api/v1/streams"));
    check("stream_show", &server.get("/api/v1/streams/snap.events"));
    check("fetch_partition_0", &server.get("/api/v1/streams/snap.events/events?partition=0&offset=0"));
    check("fetch_partition_0_from_offset_4", &server.get("/api/v1/streams/snap.events/events?partition=0&offset=4&limit=1"));
}

/// Pins a consumer group's poll, commit and describe on a single-partition stream with one member.
#[test]
fn group_responses_are_pinned() {
    let server = Server::start();
    server.create_stream("snap.groups", 1, "always");
    server.produce_ndjson("snap.groups", &[json!({ "n": 1 }), json!({ "n": 2 }), json!({ "n": 3 })]);
    let group = "/api/v1/streams/snap.groups/groups/billing";
    check("group_poll", &server.post_json(&format!("{group}/poll"), &json!({ "member": "m1", "max_events": 2 })));
    check("group_commit", &server.post_json(&format!("{group}/commit"), &json!({ "member": "m1", "offsets": { "0": 2 } })));
    check("group_describe", &server.get(group));
}

/// Pins the catalog of the example mesh after some traffic: products, one product page, domains, a
/// contract, dead letters, search and lineage.
#[test]
fn mesh_and_catalog_responses_are_pinned() {
    let server = server_with_examples();
    produce_orders_with_one_violation(&server).assert_status(200);
    let poll = format!("/api/v1/streams/{SALES_ORDERS}/groups/customer-sales-insights/poll");
    let polled = server.post_json(&poll, &json!({ "member": "m1", "max_events": 1 }));
    polled.assert_status(200);
    let event = &polled.body["events"][0];
    let offsets = json!({ event["partition"].to_string(): event["offset"].as_u64().expect("an offset") + 1 });
    let commit = format!("/api/v1/streams/{SALES_ORDERS}/groups/customer-sales-insights/commit");
    server.post_json(&commit, &json!({ "member": "m1", "offsets": offsets })).assert_status(200);

    check("products_list", &server.get("/api/v1/products"));
    check("product_page", &server.get(&format!("/api/v1/products/{SALES}")));
    check("domains_list", &server.get("/api/v1/domains"));
    check("contract_show", &server.get("/api/v1/contracts/urn:weft:sales:sale-recorded"));
    check("dead_letters_summary", &server.get(&format!("/api/v1/streams/{SALES_ORDERS}/dead-letters")));
    check("dead_letters_list", &server.get(&format!("/api/v1/products/{SALES}/dead-letters?list=true")));
    check("search", &server.get("/api/v1/search?q=iso%20country%20code"));
    check("lineage_product", &server.get(&format!("/api/v1/lineage/{INSIGHTS}")));
}

/// Pins the first page of the audit log after a fixed sequence of administrative actions and one denial.
#[test]
fn audit_first_page_is_pinned() {
    let server = Server::start();
    server.create_stream("snap.audit", 1, "always");
    server.post_json("/api/v1/principals", &json!({ "name": "carol" })).assert_status(201);
    let token = server.post_json("/api/v1/tokens", &json!({ "principal": "carol" }));
    token.assert_status(201);
    let carol = token.body["token"].as_str().expect("a token");
    as_token(&server, carol, "GET", "/api/v1/streams/snap.audit/events?partition=0&offset=0", "application/json", None)
        .assert_error(403, "authz.denied");
    let page = server.get("/api/v1/audit?limit=20");
    check("audit_first_page", &page);
    check_value("audit_verify", &server.get("/api/v1/audit/verify").body);
}

/// Pins what a reader is shown instead of data it has no grant for: the product page's samples for a
/// principal who may read the catalog but not consume (`samples_withheld`), and a dead letter whose body
/// is not JSON for the domain's owner, who may read dead letters but not unmask (`data_masked`).
#[test]
fn withheld_data_shapes_are_pinned() {
    let server = server_with_examples();
    let token_of = |name: &str| {
        server.post_json("/api/v1/principals", &json!({ "name": name })).assert_status(201);
        let token = server.post_json("/api/v1/tokens", &json!({ "principal": name }));
        token.assert_status(201);
        token.body["token"].as_str().expect("a token").to_string()
    };
    let (bob, owner) = (token_of("bob"), token_of("ben@example.com"));
    produce_orders_with_one_violation(&server).assert_status(200);
    server.post(&format!("/api/v1/streams/{SALES_ORDERS}/events"), "application/json", b"not json").assert_status(400);

    let page = as_token(&server, &bob, "GET", &format!("/api/v1/products/{SALES}"), "application/json", None);
    page.assert_status(200);
    let entry = page.body["streams"].as_array().expect("streams").iter().find(|s| s["name"] == SALES_ORDERS).expect("the orders stream");
    check_value("product_page_samples_withheld", &json!({ "samples": entry["samples"], "samples_withheld": entry["samples_withheld"] }));
    let path = format!("/api/v1/streams/{SALES_ORDERS}/dead-letters?reason=event.malformed_json");
    check("dead_letters_list_masked", &as_token(&server, &owner, "GET", &path, "application/json", None));
}
