//! Ownership through `weft apply`, through the real binary, from the point of view of an attacker
//! who owns one domain (`evil`) and holds a valid token: an update is authorized against the
//! resource as stored, a move between domains needs both domains (or an admin) and the plan says
//! so, policy names belong to their scope, contracts cannot name Weft's own or dead-letter
//! streams, and dropping a classification is flagged as a governance change.
//!
//! Every refusal here carries a stable code and names the stored owner.

use serde_json::{Value, json};

use crate::governance::{as_token, create_token};
use crate::server::{Reply, Server};

const PRODUCT: &str = "urn:weft:product:customers";
const CONTRACT: &str = "urn:test:customer-profiles";
const STREAM: &str = "customers.profiles.v1";

/// Version `version` of the customers' contract in `domain`, with `email` classified as given.
fn profiles_contract(version: &str, domain: &str, email_classification: Option<&str>) -> String {
    let classification = email_classification.map(|c| format!("\n        classification: {c}")).unwrap_or_default();
    format!(
        r#"apiVersion: v3.1.0
kind: DataContract
id: {CONTRACT}
version: {version}
status: active
domain: {domain}
schema:
  - name: Profile
    physicalType: topic
    physicalName: {STREAM}
    properties:
      - name: customer_id
        logicalType: string
        required: true
      - name: email
        logicalType: string{classification}
"#
    )
}

/// The customers' product in `domain`, publishing the profiles contract.
fn customers_product(domain: &str) -> String {
    format!(
        r#"apiVersion: v1.0.0
kind: DataProduct
id: {PRODUCT}
status: active
domain: {domain}
outputPorts:
  - name: profiles
    version: 1.0.0
    contractId: {CONTRACT}
"#
    )
}

/// A contract with one topic named `stream`, optionally in a domain.
fn contract_for_stream(id: &str, stream: &str, domain: Option<&str>) -> String {
    let domain = domain.map(|d| format!("domain: {d}\n")).unwrap_or_default();
    format!(
        r#"apiVersion: v3.1.0
kind: DataContract
id: {id}
version: 1.0.0
status: active
{domain}schema:
  - name: Thing
    physicalType: topic
    physicalName: {stream}
    properties:
      - name: id
        logicalType: string
"#
    )
}

/// Two domains, `customers` owned by `cara` and `evil` owned by `eve`, and the customers' product
/// with its contract (email is `pii`); `bob` owns nothing.
struct Mesh {
    server: Server,
    cara: String,
    eve: String,
}

impl Mesh {
    fn start() -> Self {
        let server = Server::start();
        for name in ["cara", "eve", "bob"] {
            server.post_json("/api/v1/principals", &json!({ "name": name })).assert_status(201);
        }
        let mesh = format!(
            "apiVersion: weft/v1\nkind: Domain\nname: customers\nowners: [cara]\n---\napiVersion: weft/v1\nkind: Domain\nname: evil\nowners: [eve]\n---\n{}---\n{}",
            profiles_contract("1.0.0", "customers", Some("pii")),
            customers_product("customers"),
        );
        server.post("/api/v1/apply", "application/yaml", mesh.as_bytes()).assert_status(200);
        let cara = create_token(&server, "cara");
        let eve = create_token(&server, "eve");
        Self { server, cara, eve }
    }

    fn apply_as(&self, token: &str, yaml: &str) -> Reply {
        as_token(&self.server, token, "POST", "/api/v1/apply", Some(yaml))
    }

    fn apply_as_admin(&self, yaml: &str) -> Reply {
        self.server.post("/api/v1/apply", "application/yaml", yaml.as_bytes())
    }

    fn stored_contract(&self) -> Value {
        self.server.get(&format!("/api/v1/contracts/{CONTRACT}")).body
    }
}

/// The refusal of the plan's only refused resource, asserting the whole apply was refused.
#[track_caller]
fn refusal(reply: &Reply) -> &Value {
    reply.assert_error(422, "apply.refused");
    let refused: Vec<&Value> = reply.body["resources"].as_array().unwrap().iter().filter(|r| r["action"] == "refused").collect();
    assert_eq!(refused.len(), 1, "one refused resource: {}", reply.text);
    &refused[0]["error"]
}

#[track_caller]
fn assert_refused(reply: &Reply, code: &str, names: &[&str]) {
    let error = refusal(reply);
    assert_eq!(error["code"], code, "{}", reply.text);
    let message = error["message"].as_str().unwrap();
    for name in names {
        assert!(message.contains(name), "the refusal names {name}: {message}");
    }
}

/// Proves a principal who owns domain `evil` cannot re-apply the customers' product with
/// `domain: evil`: the update is judged against the stored product's domain, the refusal names
/// that owner, and afterwards the product is still the customers' and its stream still refuses
/// the attacker.
#[test]
fn a_domain_owner_cannot_move_another_domains_product() {
    let mesh = Mesh::start();
    let reply = mesh.apply_as(&mesh.eve, &customers_product("evil"));
    assert_refused(&reply, "apply.owner_mismatch", &[PRODUCT, "customers"]);

    assert_eq!(mesh.server.get(&format!("/api/v1/products/{PRODUCT}")).body["domain"], "customers");
    as_token(&mesh.server, &mesh.eve, "GET", &format!("/api/v1/streams/{STREAM}/events"), None).assert_error(403, "authz.denied");
    let denials = mesh.server.get("/api/v1/audit?decision=deny&principal=eve").body;
    let codes: Vec<&Value> = denials["entries"].as_array().unwrap().iter().map(|e| &e["code"]).collect();
    assert!(codes.contains(&&json!("apply.owner_mismatch")), "the refused takeover is audited: {denials}");
}

/// Proves a new version of another domain's contract is refused whether it keeps the stored
/// domain or claims the attacker's, so the attacker cannot drop its classifications (which would
/// turn masking off for everyone); the stored contract and the masking stay as they were.
#[test]
fn a_domain_owner_cannot_publish_a_new_version_of_another_domains_contract() {
    let mesh = Mesh::start();
    for domain in ["evil", "customers"] {
        let reply = mesh.apply_as(&mesh.eve, &profiles_contract("1.1.0", domain, None));
        assert_refused(&reply, "apply.owner_mismatch", &[CONTRACT, "customers"]);
    }
    let stored = mesh.stored_contract();
    assert_eq!((&stored["version"], &stored["domain"]), (&json!("1.0.0"), &json!("customers")), "{stored}");

    let event = r#"{"customer_id":"c-1","email":"a@example.com"}"#;
    as_token(&mesh.server, &mesh.cara, "POST", &format!("/api/v1/streams/{STREAM}/events"), Some(event)).assert_status(200);
    let read = as_token(&mesh.server, &mesh.cara, "GET", &format!("/api/v1/streams/{STREAM}/events?partition=0&offset=0"), None);
    let email = read.body["events"][0]["event"]["data"]["email"].as_str().unwrap().to_string();
    assert!(email.starts_with("masked:"), "email is still masked: {email}");
}

/// Proves re-applying another domain's Domain resource to make oneself its owner is refused with
/// a code that names the stored owners, and the owners stay as they were.
#[test]
fn a_domain_owner_cannot_change_another_domains_owners() {
    let mesh = Mesh::start();
    let reply = mesh.apply_as(&mesh.eve, "apiVersion: weft/v1\nkind: Domain\nname: customers\nowners: [eve]\n");
    assert_refused(&reply, "apply.owner_mismatch", &["customers", "cara"]);
    let domains = mesh.server.get("/api/v1/domains").body;
    let customers = domains["domains"].as_array().unwrap().iter().find(|d| d["name"] == "customers").unwrap();
    assert_eq!(customers["owners"], json!(["cara"]));
}

/// Proves a product's output ports cannot take a contract its domain does not own: neither a
/// contract that declares another domain and has no product yet, nor a contract of no domain (the
/// platform's), nor one another domain's product publishes; each refusal names the owner, and
/// the streams stay out of the attacker's reach.
#[test]
fn a_product_cannot_take_another_domains_contract_through_its_output_ports() {
    let mesh = Mesh::start();
    let orphans = format!(
        "{}---\n{}",
        contract_for_stream("urn:test:customer-orders", "customers.orders.v1", Some("customers")),
        contract_for_stream("urn:test:platform-events", "platform.events.v1", None)
    );
    mesh.apply_as_admin(&orphans).assert_status(200);
    let evil_product = |contract: &str| {
        format!(
            "apiVersion: v1.0.0\nkind: DataProduct\nid: urn:weft:product:evil\nstatus: active\ndomain: evil\noutputPorts:\n  - name: stolen\n    version: 1.0.0\n    contractId: {contract}\n"
        )
    };
    let reply = mesh.apply_as(&mesh.eve, &evil_product("urn:test:customer-orders"));
    assert_refused(&reply, "apply.owner_mismatch", &["urn:test:customer-orders", "domain customers"]);
    let reply = mesh.apply_as(&mesh.eve, &evil_product("urn:test:platform-events"));
    assert_refused(&reply, "apply.owner_mismatch", &["urn:test:platform-events", "no domain"]);
    let reply = mesh.apply_as(&mesh.eve, &evil_product(CONTRACT));
    assert_refused(&reply, "apply.owner_mismatch", &[CONTRACT, "domain customers"]);

    for stream in ["customers.orders.v1", "platform.events.v1", STREAM] {
        as_token(&mesh.server, &mesh.eve, "GET", &format!("/api/v1/streams/{stream}/events"), None).assert_error(403, "authz.denied");
    }
}

/// Proves a domain policy cannot take the name of a global policy (which would replace the
/// global forbid): it is refused with a code that says the name is the global scope's, and the
/// global forbid stays in force.
#[test]
fn a_domain_policy_cannot_replace_a_global_policy() {
    let mesh = Mesh::start();
    let global = "apiVersion: weft/v1\nkind: Policy\nname: guard\nscope: global\npolicies: |\n  forbid(principal == Weft::Principal::\"eve\", action == Weft::Action::\"consume\", resource);\n";
    mesh.apply_as_admin(global).assert_status(200);
    let takeover = "apiVersion: weft/v1\nkind: Policy\nname: guard\nscope: domain\ndomain: evil\npolicies: |\n  permit(principal == Weft::Principal::\"eve\", action == Weft::Action::\"read_catalog\", resource in Weft::Domain::\"evil\");\n";
    let reply = mesh.apply_as(&mesh.eve, takeover);
    assert_refused(&reply, "policy.name_taken", &["guard", "global"]);

    let explain = mesh
        .server
        .post_json("/api/v1/authz/explain", &json!({ "principal": "eve", "action": "consume", "resource": format!("stream:{STREAM}") }));
    assert_eq!(explain.body["allowed"], false);
    let policies = explain.body["policies"].as_array().unwrap();
    assert!(policies.iter().any(|p| p.as_str().unwrap().starts_with("guard/")), "the global forbid still decides: {}", explain.text);
}

/// Proves a domain policy cannot take the name of another domain's policy: the name belongs to
/// the domain that applied it first, and that domain's grant stays in force.
#[test]
fn a_domain_policy_cannot_replace_another_domains_policy() {
    let mesh = Mesh::start();
    let grant = format!(
        "apiVersion: weft/v1\nkind: Policy\nname: readers\nscope: domain\ndomain: customers\npolicies: |\n  permit(principal == Weft::Principal::\"bob\", action == Weft::Action::\"consume\", resource in Weft::DataProduct::\"{PRODUCT}\");\n"
    );
    mesh.apply_as(&mesh.cara, &grant).assert_status(200);
    let takeover = "apiVersion: weft/v1\nkind: Policy\nname: readers\nscope: domain\ndomain: evil\npolicies: |\n  permit(principal == Weft::Principal::\"eve\", action == Weft::Action::\"read_catalog\", resource in Weft::Domain::\"evil\");\n";
    let reply = mesh.apply_as(&mesh.eve, takeover);
    assert_refused(&reply, "policy.name_taken", &["readers", "customers"]);

    let explain = mesh
        .server
        .post_json("/api/v1/authz/explain", &json!({ "principal": "bob", "action": "consume", "resource": format!("stream:{STREAM}") }));
    assert_eq!(explain.body["allowed"], true, "the customers' grant is still in force: {}", explain.text);
}

/// Proves a contract cannot govern one of Weft's own streams (`_weft.*`, such as the audit log)
/// or a dead-letter stream (`*.dlq`), whoever applies it: either would put that stream under a
/// product, and so under a domain's control.
#[test]
fn a_contract_cannot_name_a_system_or_dead_letter_stream() {
    let mesh = Mesh::start();
    for stream in ["_weft.audit", "_weft.future", &format!("{STREAM}.dlq")] {
        let reply = mesh.apply_as(&mesh.eve, &contract_for_stream("urn:test:grab", stream, Some("evil")));
        assert_refused(&reply, "contract.reserved_stream", &[stream]);
        let reply = mesh.apply_as_admin(&contract_for_stream("urn:test:grab", stream, None));
        assert_refused(&reply, "contract.reserved_stream", &[stream]);
    }
    assert_eq!(mesh.server.get("/api/v1/contracts/urn:test:grab").status, 404);
    as_token(&mesh.server, &mesh.eve, "GET", "/api/v1/streams/_weft.audit/events", None).assert_error(403, "authz.denied");
}

/// Proves a contract version that drops a classification is flagged as a governance change in
/// the plan (dry run and apply alike) and in the audit log, while the owning domain may still
/// make it.
#[test]
fn dropping_a_classification_is_flagged_as_a_governance_change() {
    let mesh = Mesh::start();
    let dropped = profiles_contract("1.1.0", "customers", None);
    let dry_run = as_token(&mesh.server, &mesh.cara, "POST", "/api/v1/apply?dry_run=true", Some(&dropped));
    let applied = mesh.apply_as(&mesh.cara, &dropped);
    applied.assert_status(200);
    for reply in [&dry_run, &applied] {
        reply.assert_status(200);
        let flagged = &reply.body["resources"][0]["governance_changes"];
        assert_eq!(
            flagged,
            &json!([{ "stream": STREAM, "field": "email", "pointer": "/email", "dropped_classification": "pii" }]),
            "{}",
            reply.text
        );
    }
    let audit = mesh.server.get("/api/v1/audit?action=apply.governance_change").body;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!((&entries[0]["principal"], &entries[0]["resource"]), (&json!("cara"), &json!(format!("DataContract:{CONTRACT}"))));
    assert!(entries[0]["detail"].as_str().unwrap().contains("pii"), "{audit}");

    let reply = mesh.apply_as(&mesh.cara, &profiles_contract("1.2.0", "customers", Some("pii")));
    reply.assert_status(200);
    assert!(reply.body["resources"][0].get("governance_changes").is_none(), "adding a classification is not flagged: {}", reply.text);
    let reply = mesh.apply_as(&mesh.cara, &profiles_contract("1.3.0", "customers", Some("internal")));
    reply.assert_status(200);
    let flagged = &reply.body["resources"][0]["governance_changes"][0];
    assert_eq!((&flagged["dropped_classification"], &flagged["new_classification"]), (&json!("pii"), &json!("internal")), "{}", reply.text);
}

/// Proves an admin can move a product and its contract to another domain, the plan says so for
/// each, and the new domain's owner then holds the stream; moving the product without the
/// contract it publishes is refused, since the contract still says `customers`.
#[test]
fn an_admin_can_move_a_product_and_the_plan_says_so() {
    let mesh = Mesh::start();
    let reply = mesh.apply_as_admin(&customers_product("evil"));
    assert_refused(&reply, "product.contract_outside_domain", &[CONTRACT, "customers"]);

    let both = format!("{}---\n{}", profiles_contract("1.1.0", "evil", Some("pii")), customers_product("evil"));
    let reply = mesh.apply_as_admin(&both);
    reply.assert_status(200);
    for resource in reply.body["resources"].as_array().unwrap() {
        assert_eq!(resource["action"], "update", "{}", reply.text);
        assert_eq!(resource["domain_move"], json!({ "from": "customers", "to": "evil" }), "{}", reply.text);
    }
    as_token(&mesh.server, &mesh.eve, "GET", &format!("/api/v1/streams/{STREAM}/events"), None).assert_status(200);
    as_token(&mesh.server, &mesh.cara, "GET", &format!("/api/v1/streams/{STREAM}/events"), None).assert_error(403, "authz.denied");
}

/// Proves that outside admins, moving a product needs `apply` on both domains: the owner of the
/// stored domain alone is refused with a code naming the target domain, and succeeds once they
/// also own it.
#[test]
fn moving_a_product_needs_apply_on_both_domains() {
    let mesh = Mesh::start();
    let both = format!("{}---\n{}", profiles_contract("1.1.0", "evil", Some("pii")), customers_product("evil"));
    let reply = mesh.apply_as(&mesh.cara, &both);
    reply.assert_error(422, "apply.refused");
    for resource in reply.body["resources"].as_array().unwrap() {
        assert_eq!(resource["error"]["code"], "apply.domain_move_denied", "{}", reply.text);
        let message = resource["error"]["message"].as_str().unwrap();
        assert!(message.contains("customers") && message.contains("evil"), "{message}");
    }
    mesh.apply_as_admin("apiVersion: weft/v1\nkind: Domain\nname: evil\nowners: [eve, cara]\n").assert_status(200);
    let reply = mesh.apply_as(&mesh.cara, &both);
    reply.assert_status(200);
    assert_eq!(reply.body["resources"][1]["domain_move"], json!({ "from": "customers", "to": "evil" }), "{}", reply.text);
}
