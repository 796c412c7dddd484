//! Data products and contracts through the real binary: apply, validation at the edge, dead
//! letters and their replay, compatibility between versions, and the schema registry link.

use serde_json::{Value, json};

use crate::server::Server;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");

/// A small contract for stream `shop.orders.v1`; `currencies` and `amount_type` vary per test.
fn contract(version: &str, amount_type: &str, currencies: &[&str], extra_property: &str) -> String {
    let currencies = currencies.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
    format!(
        r#"apiVersion: v3.1.0
kind: DataContract
id: urn:test:orders
version: {version}
status: active
schema:
  - name: Order
    physicalType: topic
    physicalName: shop.orders.v1
    customProperties:
      - property: weft.partitions
        value: 2
      - property: weft.key
        value: /customer_id
    properties:
      - name: order_id
        logicalType: string
        required: true
      - name: customer_id
        logicalType: string
        required: true
      - name: amount
        logicalType: {amount_type}
        required: true
      - name: currency
        logicalType: string
        required: true
        quality:
          - metric: invalidValues
            arguments:
              validValues: [{currencies}]
            mustBe: 0
{extra_property}"#
    )
}

fn apply_yaml(server: &Server, yaml: &str) -> crate::server::Reply {
    server.post("/api/v1/apply", "application/yaml", yaml.as_bytes())
}

fn order(order_id: &str, amount: Value, currency: &str) -> Value {
    json!({ "order_id": order_id, "customer_id": "c-1", "amount": amount, "currency": currency })
}

fn produce(server: &Server, events: &[Value]) -> Value {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let reply = server.post("/api/v1/streams/shop.orders.v1/events", "application/x-ndjson", body.as_bytes());
    reply.assert_status(200);
    reply.body.clone()
}

/// Proves the example mesh applies as a whole (contracts become governed streams with dead-letter
/// streams beside them) and that applying the same files again changes nothing.
#[test]
fn applying_the_example_mesh_creates_governed_streams_and_is_idempotent() {
    let server = Server::start();
    let first = server.run_cli(&["apply", "-f", EXAMPLES], b"");
    assert!(first.status.success(), "apply failed: {}", String::from_utf8_lossy(&first.stdout));
    let streams = server.get("/api/v1/streams").body;
    let names: Vec<&str> = streams["streams"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"sales.orders.v1") && names.contains(&"sales.orders.v1.dlq"), "{names:?}");
    let second = server.run_cli(&["apply", "-f", EXAMPLES, "--json"], b"");
    assert!(second.status.success());
    let plan: Value = serde_json::from_slice(&second.stdout).unwrap();
    let actions: Vec<&str> = plan["resources"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert!(actions.iter().all(|a| *a == "unchanged"), "second apply changed something: {actions:?}");
    let products = server.get("/api/v1/products").body;
    assert_eq!(products["products"].as_array().unwrap().len(), 4);
    let domains = server.get("/api/v1/domains").body;
    assert_eq!(domains["domains"].as_array().unwrap().len(), 4);
}

/// Proves `--dry-run` reports the plan but creates nothing.
#[test]
fn a_dry_run_plans_but_changes_nothing() {
    let server = Server::start();
    let output = server.run_cli(&["apply", "-f", EXAMPLES, "--dry-run"], b"");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("create"));
    assert_eq!(server.get("/api/v1/streams").body["streams"], json!([]));
    assert_eq!(server.get("/api/v1/products").body["products"], json!([]));
}

/// Proves every produced event is validated: valid events are stored, invalid ones are refused
/// with a stable reason code and the pointer of every offending field, and kept in the dead-letter
/// stream with their original bytes unchanged.
#[test]
fn invalid_events_are_refused_with_reasons_and_kept_as_dead_letters() {
    let server = Server::start();
    apply_yaml(&server, &contract("1.0.0", "number", &["EUR"], "")).assert_status(200);
    let bad = order("o-2", json!("12"), "USD");
    let reply = produce(&server, &[order("o-1", json!(10.5), "EUR"), bad.clone(), json!({"order_id": "o-3"})]);
    assert_eq!((reply["accepted"].as_u64(), reply["rejected"].as_u64()), (Some(1), Some(2)));
    let error = &reply["results"][1]["error"];
    let violations: Vec<(&str, &str)> =
        error["violations"].as_array().unwrap().iter().map(|v| (v["code"].as_str().unwrap(), v["path"].as_str().unwrap())).collect();
    assert_eq!(violations, vec![("contract.type_mismatch", "/amount"), ("contract.not_valid_value", "/currency")]);
    assert_eq!(error["dead_letter"]["stream"], "shop.orders.v1.dlq");
    let missing = &reply["results"][2]["error"];
    assert_eq!(missing["code"], "contract.required_missing");

    let summary = server.get("/api/v1/streams/shop.orders.v1/dead-letters").body;
    let reasons: Vec<(&str, u64)> = summary["streams"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["reason"].as_str().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(summary["streams"][0]["total"], 2);
    assert!(reasons.contains(&("contract.type_mismatch", 1)) && reasons.contains(&("contract.required_missing", 1)), "{reasons:?}");

    let stored = server.read_partition("shop.orders.v1.dlq", 0);
    assert_eq!(stored[0]["event"]["data"], bad, "the dead letter keeps the original data");
    let letters = server.get("/api/v1/streams/shop.orders.v1/dead-letters?list=true").body;
    let first = &letters["streams"][0]["dead_letters"][0];
    assert_eq!(first["contract"], json!({ "id": "urn:test:orders", "version": "1.0.0" }));
    assert_eq!(first["producer"], "admin", "the dead letter names the authenticated producer");
    assert!(first["rejected_at"].as_str().unwrap().ends_with('Z'));
}

/// Proves a breaking change to a contract is refused at apply, with an explanation naming the field
/// and what changed, and that nothing is changed by the refused apply.
#[test]
fn an_incompatible_version_is_refused_with_an_explanation_and_nothing_changes() {
    let server = Server::start();
    apply_yaml(&server, &contract("1.0.0", "number", &["EUR"], "")).assert_status(200);
    let reply = apply_yaml(&server, &contract("2.0.0", "string", &["EUR"], ""));
    reply.assert_error(422, "apply.refused");
    let refusal = &reply.body["resources"][0]["error"];
    assert_eq!(refusal["code"], "contract.incompatible");
    let message = refusal["message"].as_str().unwrap();
    assert!(message.contains("amount") && message.contains("number -> string"), "{message}");
    assert_eq!(server.get("/api/v1/contracts/urn:test:orders").body["version"], "1.0.0");
}

/// Proves a compatible new version (an optional field added, a valid value added) is applied with a
/// field-level changelog, and that events are then validated against it.
#[test]
fn a_compatible_version_is_applied_with_a_changelog() {
    let server = Server::start();
    apply_yaml(&server, &contract("1.0.0", "number", &["EUR"], "")).assert_status(200);
    let note = "      - name: note\n        logicalType: string\n";
    let reply = apply_yaml(&server, &contract("1.1.0", "number", &["EUR", "USD"], note));
    reply.assert_status(200);
    let resource = &reply.body["resources"][0];
    assert_eq!(resource["action"], "update");
    let fields: Vec<&str> = resource["schema_changes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"note") && fields.contains(&"currency"), "{fields:?}");
    let reply = produce(&server, &[order("o-1", json!(1), "USD")]);
    assert_eq!(reply["accepted"], 1);
    let contract = server.get("/api/v1/contracts/urn:test:orders").body;
    assert_eq!(contract["versions"], json!(["1.0.0", "1.1.0"]));
    assert!(!contract["changelog"][0]["changes"].as_array().unwrap().is_empty());
}

/// Proves apply is atomic: one refused document means no resource of the apply is created.
#[test]
fn apply_is_atomic_when_any_document_is_refused() {
    let server = Server::start();
    let yaml = format!(
        "apiVersion: weft/v1\nkind: Domain\nname: shop\n---\n{}",
        contract("1.0.0", "number", &["EUR"], "").replace("status: active\n", "")
    );
    let reply = apply_yaml(&server, &yaml);
    reply.assert_error(422, "apply.refused");
    assert_eq!(server.get("/api/v1/domains").body["domains"], json!([]));
    assert_eq!(server.get("/api/v1/streams").body["streams"], json!([]));
}

/// Proves bad resource files get an error naming the source, the line and the path.
#[test]
fn malformed_yaml_and_unknown_fields_name_the_line_and_path() {
    let server = Server::start();
    let reply = apply_yaml(&server, "apiVersion: weft/v1\nkind: Domain\nname: [unclosed\n");
    reply.assert_error(422, "apply.refused");
    assert_eq!(reply.body["resources"][0]["error"]["code"], "yaml.malformed");
    assert!(reply.body["resources"][0]["error"]["line"].as_u64().is_some());
    let typo = contract("1.0.0", "number", &["EUR"], "")
        .replace("      - name: amount\n        logicalType:", "      - name: amount\n        logicalTyp:");
    let reply = apply_yaml(&server, &typo);
    let error = &reply.body["resources"][0]["error"];
    assert_eq!(error["code"], "resource.unknown_field");
    assert_eq!(error["path"], "/schema/0/properties/2/logicalTyp");
    assert!(error["line"].as_u64().is_some());
    let reply = apply_yaml(&server, "apiVersion: weft/v1\nkind: Gadget\nname: x\n");
    assert_eq!(reply.body["resources"][0]["error"]["code"], "resource.unknown_kind");
    server.post("/api/v1/apply", "text/plain", b"x").assert_error(415, "request.unsupported_media_type");
}

/// Proves replay moves dead letters that pass the current contract into the stream, exactly once.
#[test]
fn replay_moves_dead_letters_that_now_pass_exactly_once() {
    let server = Server::start();
    apply_yaml(&server, &contract("1.0.0", "number", &["EUR"], "")).assert_status(200);
    produce(&server, &[order("o-1", json!(5), "USD"), order("o-2", json!("x"), "EUR")]);
    apply_yaml(&server, &contract("1.1.0", "number", &["EUR", "USD"], "")).assert_status(200);
    let first = server.post_json("/api/v1/streams/shop.orders.v1/dead-letters/replay", &json!({})).body;
    assert_eq!((first["streams"][0]["moved"].as_u64(), first["streams"][0]["still_failing"].as_u64()), (Some(1), Some(1)));
    let second = server.post_json("/api/v1/streams/shop.orders.v1/dead-letters/replay", &json!({})).body;
    assert_eq!((second["streams"][0]["moved"].as_u64(), second["streams"][0]["already_moved"].as_u64()), (Some(0), Some(1)));
    let stored: Vec<Value> = (0..2).flat_map(|p| server.read_partition("shop.orders.v1", p)).collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["event"]["data"]["order_id"], "o-1");
}

/// Follows a listing's `next_cursor` from the first page to the last; returns the offsets of
/// every listed letter in order, and the number of pages.
fn offsets_of_every_page(server: &Server, query: &str) -> (Vec<u64>, usize) {
    let (mut offsets, mut n_pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let cursor_param = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page = server.get(&format!("/api/v1/streams/shop.orders.v1/dead-letters?{query}{cursor_param}"));
        page.assert_status(200);
        n_pages += 1;
        let letters = page.body["streams"][0]["dead_letters"].as_array().expect("dead_letters").clone();
        offsets.extend(letters.iter().map(|letter| letter["offset"].as_u64().expect("an offset")));
        match &page.body["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            Value::Null => return (offsets, n_pages),
            other => panic!("next_cursor is a string or null, not {other}"),
        }
    }
}

/// Proves the dead-letter listing walks every letter exactly once with an opaque cursor: five
/// letters at two per page come in three pages, in order, without repeats; filtered by reason
/// the pages hold only that reason's letters; `weft dlq show --all` follows the cursors too; a
/// cursor that is not one of the listing's and a page of no letters are refused.
#[test]
fn dead_letter_listing_pages_visit_every_letter_once() {
    let server = Server::start();
    apply_yaml(&server, &contract("1.0.0", "number", &["EUR"], "")).assert_status(200);
    let events: Vec<Value> = (0..5)
        .map(|idx| if idx % 2 == 0 { order(&format!("o-{idx}"), json!(1), "USD") } else { order(&format!("o-{idx}"), json!("x"), "EUR") })
        .collect();
    assert_eq!(produce(&server, &events)["rejected"], 5);

    let (offsets, n_pages) = offsets_of_every_page(&server, "list=true&limit=2");
    assert_eq!((offsets, n_pages), (vec![0, 1, 2, 3, 4], 3));
    let (offsets, _) = offsets_of_every_page(&server, "reason=contract.not_valid_value&limit=1");
    assert_eq!(offsets, vec![0, 2, 4], "a filtered listing pages through that reason's letters");

    let shown = server.run_cli(&["dlq", "show", "shop.orders.v1", "--all", "--limit", "2"], b"");
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let offsets: Vec<u64> = String::from_utf8_lossy(&shown.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("one letter per line")["offset"].as_u64().expect("an offset"))
        .collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);

    server
        .get("/api/v1/streams/shop.orders.v1/dead-letters?list=true&cursor=bm90LWEtY3Vyc29y")
        .assert_error(400, "request.invalid_parameter");
    server.get("/api/v1/streams/shop.orders.v1/dead-letters?list=true&limit=0").assert_error(400, "request.invalid_parameter");
}

/// Proves replay walks the whole dead-letter stream in bounded steps: with more letters than
/// two steps hold, every letter is moved, once, and the summary counts them all as moved.
#[test]
fn replay_moves_every_letter_of_a_stream_longer_than_one_step() {
    let n_letters = 2 * weft_core::dead_letter::REPLAY_LETTERS_PER_STEP_MAX + 500;
    let server = Server::start();
    apply_yaml(&server, &contract("1.0.0", "number", &["EUR"], "")).assert_status(200);
    let events: Vec<Value> = (0..n_letters).map(|idx| order(&format!("o-{idx}"), json!(1), "USD")).collect();
    assert_eq!(produce(&server, &events)["rejected"], n_letters);
    apply_yaml(&server, &contract("1.1.0", "number", &["EUR", "USD"], "")).assert_status(200);
    let replayed = server.post_json("/api/v1/streams/shop.orders.v1/dead-letters/replay", &json!({})).body;
    assert_eq!(replayed["streams"][0]["moved"], n_letters, "{replayed}");
    let mut stored: Vec<String> = (0..2)
        .flat_map(|partition| server.read_partition("shop.orders.v1", partition))
        .map(|envelope| envelope["event"]["data"]["order_id"].as_str().expect("an order id").to_string())
        .collect();
    stored.sort();
    let mut oracle: Vec<String> = (0..n_letters).map(|idx| format!("o-{idx}")).collect();
    oracle.sort();
    assert_eq!(stored, oracle, "every dead letter is in the stream once");
    let summary = server.get("/api/v1/streams/shop.orders.v1/dead-letters").body;
    assert_eq!(
        (summary["streams"][0]["total"].as_u64(), summary["streams"][0]["moved"].as_u64()),
        (Some(n_letters as u64), Some(n_letters as u64))
    );
}

/// Proves `weft contract diff` explains a breaking change without a server and exits non-zero.
#[test]
fn contract_diff_explains_breaking_changes_offline() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.odcs.yaml"), dir.path().join("new.odcs.yaml"));
    std::fs::write(&old, contract("1.0.0", "number", &["EUR"], "")).unwrap();
    std::fs::write(&new, contract("2.0.0", "string", &["EUR"], "")).unwrap();
    let output = server.run_cli(&["contract", "diff", old.to_str().unwrap(), new.to_str().unwrap()], b"");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("INCOMPATIBLE") && stdout.contains("amount: number -> string"), "{stdout}");
    let same = server.run_cli(&["contract", "diff", old.to_str().unwrap(), old.to_str().unwrap()], b"");
    assert!(same.status.success());
}

/// Proves applied contracts register their schema in the registry, and that a Confluent-framed
/// event must carry an id registered for the stream's subject.
#[test]
fn contracts_register_schemas_and_framed_events_are_checked_against_the_registry() {
    let server = Server::start();
    apply_yaml(&server, &contract("1.0.0", "number", &["EUR"], "")).assert_status(200);
    let subjects = server.get("/registry/subjects").body;
    assert_eq!(subjects, json!(["shop.orders.v1-value"]));
    let schema = server.get("/registry/subjects/shop.orders.v1-value/versions/latest").body;
    let id = schema["id"].as_u64().unwrap() as u32;
    let data = order("o-1", json!(1), "EUR").to_string();
    for (schema_id, accepted) in [(id, true), (id + 1000, false)] {
        let mut framed = vec![0u8];
        framed.extend_from_slice(&schema_id.to_be_bytes());
        framed.extend_from_slice(data.as_bytes());
        let reply = server.send(
            server
                .agent()
                .post(&server.url("/api/v1/streams/shop.orders.v1/events"))
                .set("content-type", "application/json")
                .set("ce-specversion", "1.0")
                .set("ce-id", "e-1")
                .set("ce-source", "/test")
                .set("ce-type", "order"),
            Some(&framed),
        );
        if accepted {
            reply.assert_status(200);
        } else {
            reply.assert_error(400, "schema.not_found");
        }
    }
}
