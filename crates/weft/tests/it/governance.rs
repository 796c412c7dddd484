//! Federated governance through the real binary: authentication, Cedar authorization with
//! domain ownership, federated policies, masking, and the tamper-evident audit log.

use serde_json::{Value, json};

use crate::server::{Reply, Server};

/// A domain owned by `alice`, with a contract whose `email` is classified `pii`.
fn mesh_yaml() -> &'static str {
    r#"apiVersion: weft/v1
kind: Domain
name: shop
owners: [alice]
---
apiVersion: v3.1.0
kind: DataContract
id: urn:test:customers
version: 1.0.0
status: active
domain: shop
schema:
  - name: Customer
    physicalType: topic
    physicalName: shop.customers.v1
    properties:
      - name: customer_id
        logicalType: string
        required: true
      - name: email
        logicalType: string
        classification: pii
---
apiVersion: v1.0.0
kind: DataProduct
id: shop.customers
status: active
domain: shop
outputPorts:
  - name: customers
    version: 1.0.0
    contractId: urn:test:customers
"#
}

/// Starts a server with the mesh applied and returns tokens for `alice` (owner) and `bob`.
fn governed_server() -> (Server, String, String) {
    let server = Server::start();
    server.post("/api/v1/principals", "application/json", br#"{"name":"alice"}"#).assert_status(201);
    server.post("/api/v1/principals", "application/json", br#"{"name":"bob"}"#).assert_status(201);
    server.post("/api/v1/apply", "application/yaml", mesh_yaml().as_bytes()).assert_status(200);
    let alice = create_token(&server, "alice");
    let bob = create_token(&server, "bob");
    (server, alice, bob)
}

pub(crate) fn create_token(server: &Server, principal: &str) -> String {
    let reply = server.post_json("/api/v1/tokens", &json!({ "principal": principal }));
    reply.assert_status(201);
    reply.body["token"].as_str().expect("a token").to_string()
}

pub(crate) fn as_token(server: &Server, token: &str, method: &str, path: &str, body: Option<&str>) -> Reply {
    let content_type = if path.starts_with("/api/v1/apply") { "application/yaml" } else { "application/x-ndjson" };
    let request = server
        .agent()
        .request(method, &server.url(path))
        .set("authorization", &format!("Bearer {token}"))
        .set("content-type", content_type);
    server.send(request, body.map(str::as_bytes))
}

/// Proves every API request needs credentials, and that missing, malformed, unknown and revoked
/// credentials get 401 with a stable code while `/healthz` stays public.
#[test]
fn requests_without_valid_credentials_get_401() {
    let (server, alice, _) = governed_server();
    let bare = server.send(ureq::AgentBuilder::new().build().get(&server.url("/api/v1/streams")), None);
    bare.assert_error(401, "auth.missing_credentials");
    let garbage = as_token(&server, "not-a-token", "GET", "/api/v1/streams", None);
    garbage.assert_error(401, "auth.invalid_token");
    // The last character changed to another one (a token ending in `0` gets `1`), so the
    // forgery never equals the real token.
    let last = if alice.ends_with('0') { '1' } else { '0' };
    let forged = as_token(&server, &format!("{}{last}", &alice[..alice.len() - 1]), "GET", "/api/v1/streams", None);
    forged.assert_error(401, "auth.invalid_token");
    let malformed = server.send(server.agent().get(&server.url("/api/v1/streams")).set("authorization", "Bearer"), None);
    malformed.assert_error(401, "auth.malformed_credentials");
    let token_id = server.get("/api/v1/tokens?principal=alice").body["tokens"][0]["id"].as_str().unwrap().to_string();
    server.delete(&format!("/api/v1/tokens/{token_id}")).assert_status(200);
    as_token(&server, &alice, "GET", "/api/v1/streams", None).assert_error(401, "auth.revoked_token");
    let health = ureq::get(&server.url("/healthz")).call().expect("healthz is public");
    assert_eq!(health.status(), 200);
    assert!(!server.log().contains(&alice), "a token appeared in the server log");
}

/// Proves HTTP Basic auth (principal as user, token as password) is accepted, as registry
/// clients and Kafka tools send it.
#[test]
fn basic_auth_with_principal_and_token_is_accepted() {
    let (server, alice, _) = governed_server();
    let basic = ureq::AgentBuilder::new()
        .build()
        .get(&server.url("/api/v1/products"))
        .set("authorization", &format!("Basic {}", base64(&format!("alice:{alice}"))));
    server.send(basic, None).assert_status(200);
    let wrong_user = ureq::AgentBuilder::new()
        .build()
        .get(&server.url("/api/v1/products"))
        .set("authorization", &format!("Basic {}", base64(&format!("bob:{alice}"))));
    assert_eq!(server.send(wrong_user, None).status, 401);
}

/// Proves the default policies: a domain's owner may produce to and read its product; anyone
/// else may read the catalog but not consume the product until a policy grants it.
#[test]
fn owners_produce_and_others_need_a_grant_to_consume() {
    let (server, alice, bob) = governed_server();
    let event = r#"{"customer_id":"c-1","email":"a@example.com"}"#;
    as_token(&server, &alice, "POST", "/api/v1/streams/shop.customers.v1/events", Some(event)).assert_status(200);
    let denied = as_token(&server, &bob, "POST", "/api/v1/streams/shop.customers.v1/events", Some(event));
    denied.assert_error(403, "authz.denied");
    let message = denied.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("produce") && message.contains("shop.customers.v1") && !message.contains("permit"), "{message}");
    as_token(&server, &bob, "GET", "/api/v1/streams/shop.customers.v1/events", None).assert_error(403, "authz.denied");
    as_token(&server, &bob, "GET", "/api/v1/products/shop.customers", None).assert_status(200);
    as_token(&server, &bob, "GET", "/api/v1/streams/shop.customers.v1/dead-letters", None).assert_error(403, "authz.denied");
    let grant = r#"apiVersion: weft/v1
kind: Policy
name: bob-reads-customers
scope: domain
domain: shop
policies: |
  permit(principal == Weft::Principal::"bob", action == Weft::Action::"consume", resource in Weft::DataProduct::"shop.customers");
"#;
    as_token(&server, &bob, "POST", "/api/v1/apply", Some(grant)).assert_error(422, "apply.refused");
    let applied = server.post("/api/v1/apply", "application/yaml", grant.as_bytes());
    applied.assert_status(200);
    as_token(&server, &bob, "GET", "/api/v1/streams/shop.customers.v1/events", None).assert_status(200);
}

/// Proves classified fields are masked for readers without `unmask`, deterministically (the
/// same value masks the same way, so masked values still join), and clear for those with it.
#[test]
fn pii_is_masked_for_readers_without_unmask() {
    let (server, alice, _) = governed_server();
    let events = "{\"customer_id\":\"c-1\",\"email\":\"a@example.com\"}\n{\"customer_id\":\"c-2\",\"email\":\"a@example.com\"}\n";
    as_token(&server, &alice, "POST", "/api/v1/streams/shop.customers.v1/events", Some(events)).assert_status(200);
    let read = as_token(&server, &alice, "GET", "/api/v1/streams/shop.customers.v1/events?partition=0&offset=0", None);
    let emails: Vec<&Value> = read.body["events"].as_array().unwrap().iter().map(|e| &e["event"]["data"]["email"]).collect();
    let masked = emails[0].as_str().unwrap();
    assert!(masked.starts_with("masked:") && masked != "a@example.com", "{masked}");
    assert_eq!(emails[0], emails[1], "masking is deterministic within a product");
    assert_eq!(read.body["events"][0]["event"]["data"]["customer_id"], "c-1", "unclassified fields stay clear");
    let admin = server.get("/api/v1/streams/shop.customers.v1/events?partition=0&offset=0");
    assert_eq!(admin.body["events"][0]["event"]["data"]["email"], "a@example.com", "admin may unmask");
}

/// Proves a domain policy cannot reach outside its domain, and a Cedar syntax error is reported
/// with its position; nothing is applied in either case.
#[test]
fn a_domain_policy_outside_its_domain_and_syntax_errors_are_refused() {
    let (server, _, _) = governed_server();
    let outside = r#"apiVersion: weft/v1
kind: Policy
name: grab
scope: domain
domain: shop
policies: |
  permit(principal, action == Weft::Action::"consume", resource);
"#;
    let reply = server.post("/api/v1/apply", "application/yaml", outside.as_bytes());
    reply.assert_error(422, "apply.refused");
    assert_eq!(reply.body["resources"][0]["error"]["code"], "policy.outside_domain");
    let broken = outside.replace("permit(principal, action == Weft::Action::\"consume\", resource);", "permit(principal action);");
    let reply = server.post("/api/v1/apply", "application/yaml", broken.as_bytes());
    let error = &reply.body["resources"][0]["error"];
    assert_eq!(error["code"], "policy.syntax_error");
    assert!(error["line"].as_u64().is_some() && error["column"].as_u64().is_some(), "{error}");
}

/// Proves a global forbid beats a domain permit.
#[test]
fn a_global_forbid_beats_a_domain_permit() {
    let (server, _, bob) = governed_server();
    let policies = r#"apiVersion: weft/v1
kind: Policy
name: bob-reads
scope: domain
domain: shop
policies: |
  permit(principal == Weft::Principal::"bob", action == Weft::Action::"consume", resource in Weft::DataProduct::"shop.customers");
---
apiVersion: weft/v1
kind: Policy
name: no-bob
scope: global
policies: |
  forbid(principal == Weft::Principal::"bob", action, resource);
"#;
    server.post("/api/v1/apply", "application/yaml", policies.as_bytes()).assert_status(200);
    as_token(&server, &bob, "GET", "/api/v1/streams/shop.customers.v1/events", None).assert_error(403, "authz.denied");
    let explain = server
        .post_json("/api/v1/authz/explain", &json!({ "principal": "bob", "action": "consume", "resource": "stream:shop.customers.v1" }));
    assert_eq!(explain.body["allowed"], false);
    assert!(explain.body["policies"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().starts_with("no-bob/")), "{}", explain.text);
}

/// Proves the audit log records denials and admin actions in a hash chain, `weft audit verify`
/// passes on the untouched log, and detects a flipped byte in the audit segments offline.
#[test]
fn the_audit_chain_verifies_and_detects_a_flipped_byte() {
    let (mut server, _, bob) = governed_server();
    as_token(&server, &bob, "GET", "/api/v1/streams/shop.customers.v1/events", None).assert_error(403, "authz.denied");
    let denials = server.get("/api/v1/audit?decision=deny&principal=bob").body;
    assert_eq!(denials["entries"].as_array().unwrap().len(), 1, "{denials}");
    let admin_actions = server.get("/api/v1/audit?action=token.create").body;
    assert_eq!(admin_actions["entries"].as_array().unwrap().len(), 2);
    // Every entry names its resource in Cedar's form, and the short form finds the same ones.
    let by_cedar_form = server.get("/api/v1/audit?resource=Weft::Principal::%22bob%22").body;
    let by_short_form = server.get("/api/v1/audit?resource=principal:bob").body;
    assert!(!by_cedar_form["entries"].as_array().unwrap().is_empty(), "{by_cedar_form}");
    assert_eq!(by_cedar_form["entries"], by_short_form["entries"]);
    assert_eq!(server.get("/api/v1/audit/verify").body["ok"], true);
    let verified = server.run_cli(&["audit", "verify"], b"");
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));

    server.terminate();
    let data_dir = server.data_dir();
    let offline = server.run_cli(&["audit", "verify", "--data-dir", data_dir.to_str().unwrap()], b"");
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stdout));
    let segment = data_dir.join("streams/_weft.audit/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    let position = bytes.windows(9).position(|w| w == b"\"bob\",\"ac").expect("bob's entry is in the segment") + 2;
    bytes[position] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let tampered = server.run_cli(&["audit", "verify", "--data-dir", data_dir.to_str().unwrap()], b"");
    assert!(!tampered.status.success(), "a flipped byte went unnoticed: {}", String::from_utf8_lossy(&tampered.stdout));
}

/// Proves `weft token create` prints the token alone, and it works at once.
#[test]
fn token_create_prints_only_the_token() {
    let (server, _, _) = governed_server();
    let output = server.run_cli(&["token", "create", "--principal", "alice", "--expires", "30d"], b"");
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap();
    assert_eq!(token.lines().count(), 1);
    as_token(&server, token.trim(), "GET", "/api/v1/products", None).assert_status(200);
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for (idx, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if idx <= chunk.len() {
                out.push(ALPHABET[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Proves a client retrying a bad token cannot flood the audit log: failures from one source
/// are recorded one by one up to the per-minute bound, and the chain still verifies.
#[test]
fn repeated_authentication_failures_are_bounded_in_the_audit_log() {
    let server = Server::start();
    for _ in 0..60 {
        as_token(&server, "weft_not_a_real_token", "GET", "/api/v1/streams", None).assert_error(401, "auth.invalid_token");
    }
    let failures = server.get("/api/v1/audit?decision=auth_failure").body;
    let n_recorded = failures["entries"].as_array().unwrap().len();
    // The bound is per minute: 20 entries, or at most 20 + 1 summary + 20 if a minute boundary
    // falls inside the loop; never all 60.
    assert!((20..=41).contains(&n_recorded), "{n_recorded} failures recorded");
    assert_eq!(server.get("/api/v1/audit/verify").body["ok"], true);
}

/// Token lifetimes are parsed by the one duration parser and bounded by the identity store:
/// a unit it does not know, a fraction, zero and more than ten years are each refused with
/// `identity.invalid_expiry`, and a valid lifetime sets the expiry.
#[test]
fn token_lifetimes_outside_the_rules_are_refused_with_a_stable_code() {
    let server = Server::start();
    server.post("/api/v1/principals", "application/json", br#"{"name":"alice"}"#).assert_status(201);
    for bad in ["1y", "1.5h", "0d", "3651d", "30", ""] {
        let reply = server.post_json("/api/v1/tokens", &json!({ "principal": "alice", "expires": bad }));
        reply.assert_error(400, "identity.invalid_expiry");
    }
    let reply = server.post_json("/api/v1/tokens", &json!({ "principal": "alice", "expires": "30d" }));
    reply.assert_status(201);
    assert!(reply.body["expires_at"].is_string() || reply.body["expires_at"].is_number(), "{}", reply.body);
}

/// Tamper evidence survives a restart: with the audit log cut short (its segment emptied, as if
/// entries were deleted) or a byte of its last entry's payload flipped (which recovery cuts off
/// as a corrupt tail), the server refuses to start, naming `audit.head` and the offsets; with
/// `--accept-audit-loss` it starts, and its first audit entry records the accepted loss.
#[test]
fn a_cut_or_rewritten_audit_log_stops_the_server_from_starting() {
    for tamper in ["empty the segment", "flip a payload byte of the last entry"] {
        let (mut server, _, bob) = governed_server();
        as_token(&server, &bob, "GET", "/api/v1/streams/shop.customers.v1/events", None).assert_error(403, "authz.denied");
        server.terminate();
        let segment = server.data_dir().join("streams/_weft.audit/0/00000000000000000000.log");
        let mut bytes = std::fs::read(&segment).unwrap();
        if tamper == "empty the segment" {
            bytes.clear();
        } else {
            let position = bytes.windows(10).rposition(|w| w == b"\"decision\"").expect("an entry in the segment") + 3;
            bytes[position] ^= 0x01;
        }
        std::fs::write(&segment, &bytes).unwrap();

        let (exit, printed) = server.serve_expecting_refusal();
        assert!(!exit.success(), "{tamper}: the server started");
        assert!(printed.contains("audit.head") && printed.contains("--accept-audit-loss"), "{tamper}: {printed}");

        server.add_serve_args(&["--accept-audit-loss"]);
        server.start_again();
        let accepted = server.get("/api/v1/audit?action=audit.loss_accepted").body;
        let entries = accepted["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{tamper}: {accepted}");
        assert!(entries[0]["detail"].as_str().unwrap().contains("audit entry"), "{tamper}: {accepted}");
    }
}

/// A head recorded outside the server (`weft audit head`) is checked later with
/// `weft audit verify --expect-head`: online and offline the chain passes through it while the
/// log grows; a hash that was never a head fails; and after the log and `audit.head` are both
/// replaced (which the start-up check cannot see), the offline check against the recorded
/// head fails.
#[test]
fn a_recorded_audit_head_detects_a_replaced_log() {
    let (mut server, _, bob) = governed_server();
    let printed = server.run_cli(&["audit", "head"], b"");
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    let head: serde_json::Value = serde_json::from_slice(&printed.stdout).expect("the head is JSON");
    let hash = head["hash"].as_str().expect("a hash").to_string();
    as_token(&server, &bob, "GET", "/api/v1/streams/shop.customers.v1/events", None).assert_error(403, "authz.denied");

    let online = server.run_cli(&["audit", "verify", "--expect-head", &hash], b"");
    assert!(online.status.success(), "{}", String::from_utf8_lossy(&online.stdout));
    let never = server.run_cli(&["audit", "verify", "--expect-head", &"0".repeat(64)], b"");
    assert!(!never.status.success(), "a hash that was never a head passed: {}", String::from_utf8_lossy(&never.stdout));

    server.terminate();
    let data_dir = server.data_dir();
    let dir = data_dir.to_str().unwrap();
    let offline = server.run_cli(&["audit", "verify", "--data-dir", dir, "--expect-head", &hash], b"");
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stdout));
    std::fs::write(data_dir.join("streams/_weft.audit/0/00000000000000000000.log"), b"").unwrap();
    std::fs::remove_file(data_dir.join("audit.head")).unwrap();
    let replaced = server.run_cli(&["audit", "verify", "--data-dir", dir, "--expect-head", &hash], b"");
    assert!(!replaced.status.success(), "a replaced log passed: {}", String::from_utf8_lossy(&replaced.stdout));
    let report: serde_json::Value = serde_json::from_slice(&replaced.stdout).unwrap();
    assert_eq!(report["expected_head"]["found"], false, "{report}");
}
