//! A contract applied without an ODPS product is a data product of its own, through the real
//! binary: it has a product page (with its stream, contract, owners and activity), shows in the
//! product list, its domain, search and lineage, and Cedar sees it as the stream's parent in the
//! contract's domain, so a domain policy can grant on it. When an ODPS product later publishes
//! the contract, that product takes over and the stream keeps its history.

use serde_json::json;

use crate::governance::{as_token, create_token};
use crate::server::Server;

const CONTRACT: &str = "urn:weft:payments:refunds";
const STREAM: &str = "payments.refunds.v1";

fn payments_domain_and_contract() -> String {
    format!(
        r#"apiVersion: weft/v1
kind: Domain
name: payments
owners: [alice]
---
apiVersion: v3.1.0
kind: DataContract
id: {CONTRACT}
name: Refunds
version: 1.0.0
status: active
domain: payments
schema:
  - name: Refund
    physicalType: topic
    physicalName: {STREAM}
    properties:
      - name: refund_id
        logicalType: string
        required: true
      - name: amount
        logicalType: number
"#
    )
}

/// Every example contract, applied with its domain but without its product, has a product page
/// that says it is implicit, lists its stream, and is in its domain's product list and the
/// product list; the contract's own example set (with products) has none, since each is
/// published by an ODPS product.
#[test]
fn every_contract_applied_without_a_product_has_a_product_page() {
    let server = Server::start();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut contract_ids = Vec::new();
    for domain in ["customers", "sales", "inventory", "insights"] {
        for entry in std::fs::read_dir(examples.join(domain)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".odps.yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            server.post("/api/v1/apply", "application/yaml", text.as_bytes()).assert_status(200);
            if name.ends_with(".odcs.yaml") {
                let id = text.lines().find_map(|line| line.strip_prefix("id: ")).unwrap().trim().to_string();
                contract_ids.push((id, domain));
            }
        }
    }
    assert_eq!(contract_ids.len(), 4, "the examples hold four contracts: {contract_ids:?}");
    let listed = server.get("/api/v1/products").body;
    let domains = server.get("/api/v1/domains").body;
    for (id, domain) in &contract_ids {
        let page = server.get(&format!("/api/v1/products/{id}"));
        page.assert_status(200);
        assert_eq!(page.body["implicit"], true, "{}", page.text);
        assert_eq!(page.body["domain"], json!(domain));
        assert_eq!(page.body["contracts"][0]["id"], json!(id), "{}", page.text);
        assert!(!page.body["streams"].as_array().unwrap().is_empty(), "{}", page.text);
        assert!(listed["products"].as_array().unwrap().iter().any(|p| p["id"] == json!(id)), "{listed}");
        let in_domain = domains["domains"].as_array().unwrap().iter().find(|d| d["name"] == json!(domain)).unwrap();
        assert!(in_domain["products"].as_array().unwrap().contains(&json!(id)), "{in_domain}");
        server.get(&format!("/api/v1/lineage/{id}")).assert_status(200);
    }
}

/// A domain policy of the contract's domain may grant on the implicit product (`resource in
/// Weft::DataProduct::"<contract id>"`) and on its stream, and the grant works; before, both
/// were refused as `policy.outside_domain`. Another domain still cannot grant on it.
#[test]
fn a_domain_policy_can_grant_on_a_contract_alone() {
    let server = Server::start();
    for name in ["alice", "bob", "mallory"] {
        server.post_json("/api/v1/principals", &json!({ "name": name })).assert_status(201);
    }
    server.post("/api/v1/apply", "application/yaml", payments_domain_and_contract().as_bytes()).assert_status(200);
    server
        .post("/api/v1/apply", "application/yaml", b"apiVersion: weft/v1\nkind: Domain\nname: other\nowners: [mallory]\n")
        .assert_status(200);
    let alice = create_token(&server, "alice");
    let bob = create_token(&server, "bob");
    let mallory = create_token(&server, "mallory");
    let events = format!("/api/v1/streams/{STREAM}/events?partition=0&offset=0");
    as_token(&server, &bob, "GET", &events, None).assert_error(403, "authz.denied");

    let by_product = format!(
        "apiVersion: weft/v1\nkind: Policy\nname: bob-reads-refunds\nscope: domain\ndomain: payments\npolicies: |\n  permit(principal == Weft::Principal::\"bob\", action == Weft::Action::\"consume\", resource in Weft::DataProduct::\"{CONTRACT}\");\n"
    );
    as_token(&server, &alice, "POST", "/api/v1/apply", Some(&by_product)).assert_status(200);
    as_token(&server, &bob, "GET", &events, None).assert_status(200);

    let by_stream = format!(
        "apiVersion: weft/v1\nkind: Policy\nname: bob-reads-refunds-stream\nscope: domain\ndomain: payments\npolicies: |\n  permit(principal == Weft::Principal::\"bob\", action == Weft::Action::\"read_dead_letters\", resource == Weft::Stream::\"{STREAM}\");\n"
    );
    as_token(&server, &alice, "POST", "/api/v1/apply", Some(&by_stream)).assert_status(200);

    let stolen = by_product
        .replace("bob-reads-refunds", "mallory-reads-refunds")
        .replace("domain: payments", "domain: other")
        .replace("\"bob\"", "\"mallory\"");
    let reply = as_token(&server, &mallory, "POST", "/api/v1/apply", Some(&stolen));
    reply.assert_error(422, "apply.refused");
    assert_eq!(reply.body["resources"][0]["error"]["code"], "policy.outside_domain", "{}", reply.text);
}

/// An ODPS product that later lists the contract as an output port takes over: the implicit
/// product is gone, the ODPS product publishes the stream, and every event produced before is
/// still there.
#[test]
fn an_odps_product_takes_over_a_contract_alone_and_keeps_its_history() {
    let server = Server::start();
    server.post("/api/v1/apply", "application/yaml", payments_domain_and_contract().as_bytes()).assert_status(200);
    let events: Vec<_> = (0..5).map(|i| json!({ "refund_id": format!("r-{i}"), "amount": i })).collect();
    let produced = server.produce_ndjson(STREAM, &events);
    assert_eq!(produced.len(), 5);
    assert_eq!(server.get(&format!("/api/v1/products/{CONTRACT}")).body["implicit"], true);
    let hits = server.get("/api/v1/search?q=refunds");
    assert!(hits.body["hits"].as_array().unwrap().iter().any(|hit| hit["product"] == CONTRACT || hit["id"] == CONTRACT), "{}", hits.text);

    let product = format!(
        "apiVersion: v1.0.0\nkind: DataProduct\nid: urn:weft:product:refunds\nstatus: active\ndomain: payments\noutputPorts:\n  - name: refunds\n    version: 1.0.0\n    contractId: {CONTRACT}\n"
    );
    server.post("/api/v1/apply", "application/yaml", product.as_bytes()).assert_status(200);
    server.get(&format!("/api/v1/products/{CONTRACT}")).assert_error(404, "product.not_found");
    let page = server.get("/api/v1/products/urn:weft:product:refunds").body;
    assert!(page.get("implicit").is_none(), "{page}");
    assert_eq!(page["streams"][0]["name"], STREAM, "{page}");
    let stream = server.get(&format!("/api/v1/streams/{STREAM}")).body;
    let n_partitions = stream["partitions"].as_u64().expect("a partition count");
    let fetched: usize = (0..n_partitions)
        .map(|partition| {
            let page = server.get(&format!("/api/v1/streams/{STREAM}/events?partition={partition}&offset=0"));
            page.assert_status(200);
            page.body["events"].as_array().map_or(0, Vec::len)
        })
        .sum();
    assert_eq!(fetched, 5, "every event produced before the takeover is still there: {stream}");
}
