//! No data without a grant, on every read path, through the real binary: the product page's samples
//! need `consume`, dead letters are masked for readers without `unmask` whatever their payload, a
//! dead-letter stream read directly needs `read_dead_letters`, a consumer group belongs to its creator
//! (and the stream's owners, and admins), and revoking a token ends the live tails and long polls it
//! opened.
//!
//! The mesh: domain `shop` owned by `olive`, whose product `shop.orders` publishes `shop.orders.v1`
//! (`email` is `pii` and must look like `...@example.com`); a domain policy lets `carl` and `dan`
//! consume the product; `rita` has no grant at all. Nobody but `admin` may `unmask`.
//! The Kafka side of the same rules is in `tests/interop/test_kafka_grants.py`.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::governance::create_token;
use crate::server::{Reply, Server, wait_for};

const STREAM: &str = "shop.orders.v1";
const DEAD_LETTERS: &str = "shop.orders.v1.dlq";
const PRODUCT: &str = "shop.orders";
/// How long a test waits for something the server must do "within a second"; generous, so a loaded
/// machine does not fail the test, yet far below the 30 s a forgotten long poll would take.
const ENDS_WITHIN: Duration = Duration::from_secs(5);
/// How long a test waits at most for the outcome it measures, before it gives up.
const OUTCOME_DEADLINE: Duration = Duration::from_secs(20);

const MESH: &str = r#"apiVersion: weft/v1
kind: Domain
name: shop
owners: [olive]
---
apiVersion: v3.1.0
kind: DataContract
id: urn:test:orders
version: 1.0.0
status: active
domain: shop
schema:
  - name: Order
    physicalType: topic
    physicalName: shop.orders.v1
    properties:
      - name: order_id
        logicalType: string
        required: true
      - name: email
        logicalType: string
        classification: pii
        logicalTypeOptions:
          pattern: "^[a-z]+@example\\.com$"
---
apiVersion: v1.0.0
kind: DataProduct
id: shop.orders
status: active
domain: shop
outputPorts:
  - name: orders
    version: 1.0.0
    contractId: urn:test:orders
---
apiVersion: weft/v1
kind: Policy
name: order-readers
scope: domain
domain: shop
policies: |
  permit(principal == Weft::Principal::"carl", action == Weft::Action::"consume", resource in Weft::DataProduct::"shop.orders");
  permit(principal == Weft::Principal::"dan", action == Weft::Action::"consume", resource in Weft::DataProduct::"shop.orders");
"#;

/// The server with the mesh applied, and a token per principal.
struct Shop {
    server: Server,
    olive: String,
    carl: String,
    dan: String,
    rita: String,
}

impl Shop {
    fn start() -> Self {
        let server = Server::start();
        for name in ["olive", "carl", "dan", "rita"] {
            server.post_json("/api/v1/principals", &json!({ "name": name })).assert_status(201);
        }
        server.post("/api/v1/apply", "application/yaml", MESH.as_bytes()).assert_status(200);
        let olive = create_token(&server, "olive");
        let carl = create_token(&server, "carl");
        let dan = create_token(&server, "dan");
        let rita = create_token(&server, "rita");
        Self { server, olive, carl, dan, rita }
    }

    /// A request with `token`'s credentials; `body` is sent as `content_type`.
    fn send(&self, token: &str, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Reply {
        let mut request = self.server.agent().request(method, &self.server.url(path)).set("authorization", &format!("Bearer {token}"));
        if let Some((content_type, _)) = body {
            request = request.set("content-type", content_type);
        }
        self.server.send(request, body.map(|(_, bytes)| bytes))
    }

    fn get(&self, token: &str, path: &str) -> Reply {
        self.send(token, "GET", path, None)
    }

    fn post_json(&self, token: &str, path: &str, body: &Value) -> Reply {
        self.send(token, "POST", path, Some(("application/json", body.to_string().as_bytes())))
    }

    fn poll(&self, token: &str, group: &str, member: &str) -> Reply {
        self.post_json(token, &format!("/api/v1/streams/{STREAM}/groups/{group}/poll"), &json!({ "member": member }))
    }
}

/// The id of a principal's one token.
fn token_id(server: &Server, principal: &str) -> String {
    let tokens = server.get(&format!("/api/v1/tokens?principal={principal}"));
    tokens.body["tokens"][0]["id"].as_str().expect("a token id").to_string()
}

/// Proves that the product page's samples are event data: a reader who may read the catalog but not
/// consume sees the page (stats, contracts) with no samples and a note saying why, while a consumer
/// sees the samples, masked.
#[test]
fn product_samples_need_consume() {
    let shop = Shop::start();
    let event = json!({ "order_id": "sample-order-17", "email": "ann@example.com" });
    shop.send(&shop.olive, "POST", &format!("/api/v1/streams/{STREAM}/events"), Some(("application/json", event.to_string().as_bytes())))
        .assert_status(200);

    let page = shop.get(&shop.rita, &format!("/api/v1/products/{PRODUCT}"));
    page.assert_status(200);
    assert!(!page.text.contains("sample-order-17"), "a reader without consume saw event data: {}", page.text);
    let entry = &page.body["streams"][0];
    assert_eq!(entry["name"], STREAM);
    assert_eq!(entry["samples"], json!([]), "{entry}");
    let withheld = entry["samples_withheld"].as_str().unwrap_or_else(|| panic!("a note says why there are no samples: {entry}"));
    assert!(withheld.contains("consume") && withheld.contains(STREAM), "{withheld}");
    assert!(entry["stats"]["events_total"].as_u64().is_some(), "the rest of the page is still there: {entry}");

    let page = shop.get(&shop.carl, &format!("/api/v1/products/{PRODUCT}"));
    page.assert_status(200);
    let samples = page.body["streams"][0]["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 1, "{}", page.text);
    assert_eq!(samples[0]["event"]["data"]["order_id"], "sample-order-17");
    assert!(samples[0]["event"]["data"]["email"].as_str().is_some_and(|e| e.starts_with("masked:")), "{}", samples[0]);
    assert!(page.body["streams"][0].get("samples_withheld").is_none(), "{}", page.text);
}

/// Proves that a dead letter whose body is not JSON shows nothing of it to a reader without `unmask`
/// (not even base64): a marker with the size instead; admin, who may unmask, gets the bytes.
#[test]
fn dead_letters_of_a_malformed_body_are_masked_for_readers_without_unmask() {
    let shop = Shop::start();
    let body = b"card=4111111111111111 holder=ann@example.com";
    let refused = shop.send(&shop.olive, "POST", &format!("/api/v1/streams/{STREAM}/events"), Some(("application/json", body)));
    assert_eq!(refused.code(), "event.malformed_json", "{}", refused.text);

    // What admin, who may unmask, is shown: the body as base64.
    let clear = shop.server.get(&format!("/api/v1/streams/{STREAM}/dead-letters?list=true"));
    let encoded = clear.body["streams"][0]["dead_letters"][0]["data_base64"].as_str().expect("admin sees the body").to_string();
    assert!(!encoded.is_empty(), "{}", clear.text);
    let listing = shop.get(&shop.olive, &format!("/api/v1/streams/{STREAM}/dead-letters?list=true"));
    listing.assert_status(200);
    let letter = &listing.body["streams"][0]["dead_letters"][0];
    assert_eq!(letter["reason"], "event.malformed_json", "{}", listing.text);
    assert!(!listing.text.contains(&encoded) && !listing.text.contains("4111111111111111"), "the body leaked: {}", listing.text);
    assert!(letter.get("data_base64").is_none() && letter.get("data").is_none(), "{letter}");
    assert_eq!((letter["data_masked"].clone(), letter["data_bytes"].clone()), (json!(true), json!(body.len())), "{letter}");
    let summary = shop.get(&shop.olive, &format!("/api/v1/products/{PRODUCT}/dead-letters"));
    summary.assert_status(200);
    assert!(!summary.text.contains(&encoded), "the summary's examples leaked the body: {}", summary.text);
}

/// Proves that what a dead letter stores about why it was refused (`weft_dlq_message`,
/// `weft_dlq_violations`) never quotes a classified value: the pattern violation on `email` names
/// the field and the rule, not the address. (The validator withholds classified values everywhere,
/// so the producer's own error does not quote it either.)
#[test]
fn dead_letter_messages_do_not_quote_classified_values() {
    let shop = Shop::start();
    let event = json!({ "order_id": "o-2", "email": "leaked.value@evil.org" });
    let refused = shop.send(
        &shop.olive,
        "POST",
        &format!("/api/v1/streams/{STREAM}/events"),
        Some(("application/json", event.to_string().as_bytes())),
    );
    assert_eq!(refused.code(), "contract.pattern_mismatch", "{}", refused.text);
    assert!(!refused.text.contains("leaked.value"), "the produce error quoted the classified value: {}", refused.text);

    let listing = shop.server.get(&format!("/api/v1/streams/{STREAM}/dead-letters?list=true"));
    let letter = &listing.body["streams"][0]["dead_letters"][0];
    assert_eq!(letter["violations"][0]["path"], "/email", "{letter}");
    assert_eq!(letter["data"]["email"], "leaked.value@evil.org", "admin still sees the data itself: {letter}");
    for stored in [&letter["message"], &letter["violations"]] {
        assert!(!stored.to_string().contains("leaked.value"), "a stored message quotes the classified value: {stored}");
    }
    assert!(letter["message"].as_str().is_some_and(|m| m.contains("pattern")), "the message still says what failed: {letter}");
}

/// Proves that `consume` on a product does not reach its dead-letter stream: reading
/// `shop.orders.v1.dlq` directly (fetch, live tail, group poll) needs `read_dead_letters`, which the
/// domain's owner has and a plain consumer does not.
#[test]
fn reading_a_dead_letter_stream_directly_needs_read_dead_letters() {
    let shop = Shop::start();
    shop.send(&shop.olive, "POST", &format!("/api/v1/streams/{STREAM}/events"), Some(("application/json", br#"{"email":"x"}"#)));
    shop.get(&shop.carl, &format!("/api/v1/streams/{STREAM}/events")).assert_status(200);

    let fetched = shop.get(&shop.carl, &format!("/api/v1/streams/{DEAD_LETTERS}/events"));
    fetched.assert_error(403, "authz.denied");
    let message = fetched.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("read_dead_letters"), "{message}");
    shop.get(&shop.carl, &format!("/api/v1/streams/{DEAD_LETTERS}/live")).assert_error(403, "authz.denied");
    let poll = shop.post_json(&shop.carl, &format!("/api/v1/streams/{DEAD_LETTERS}/groups/g/poll"), &json!({ "member": "m" }));
    poll.assert_error(403, "authz.denied");

    let owner = shop.get(&shop.olive, &format!("/api/v1/streams/{DEAD_LETTERS}/events"));
    owner.assert_status(200);
    assert_eq!(owner.body["events"].as_array().map(Vec::len), Some(1), "{}", owner.text);
}

/// Proves that a consumer group is a resource of its own: the principal that first used it may poll,
/// commit and remove its members; another principal who may consume the same stream may not; the
/// stream's owner and admin may; and the creator is remembered across a restart.
#[test]
fn a_consumer_group_belongs_to_its_creator() {
    let mut shop = Shop::start();
    shop.send(&shop.olive, "POST", &format!("/api/v1/streams/{STREAM}/events"), Some(("application/json", br#"{"order_id":"o-1"}"#)))
        .assert_status(200);
    let first = shop.poll(&shop.carl, "carl-app", "c1");
    first.assert_status(200);
    assert_eq!(first.body["events"].as_array().map(Vec::len), Some(1), "{}", first.text);

    let group = format!("/api/v1/streams/{STREAM}/groups/carl-app");
    let check_dan_is_refused = |shop: &Shop| {
        shop.poll(&shop.dan, "carl-app", "d1").assert_error(403, "authz.denied");
        let commit = shop.post_json(&shop.dan, &format!("{group}/commit"), &json!({ "member": "c1", "offsets": { "0": 1 } }));
        commit.assert_error(403, "authz.denied");
        shop.send(&shop.dan, "DELETE", &format!("{group}/members/c1"), None).assert_error(403, "authz.denied");
        shop.get(&shop.dan, &group).assert_error(403, "authz.denied");
    };
    check_dan_is_refused(&shop);
    let message = shop.poll(&shop.dan, "carl-app", "d1").body["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("Weft::ConsumerGroup::\"carl-app\""), "{message}");

    shop.post_json(&shop.carl, &format!("{group}/commit"), &json!({ "member": "c1", "offsets": { "0": 1 } })).assert_status(200);
    shop.get(&shop.carl, &group).assert_status(200);
    shop.poll(&shop.olive, "carl-app", "o1").assert_status(200);
    shop.server.get(&group).assert_status(200);
    shop.poll(&shop.dan, "dan-app", "d1").assert_status(200);

    shop.server.terminate().expect("the server stops");
    shop.server.start_again();
    check_dan_is_refused(&shop);
    shop.poll(&shop.carl, "carl-app", "c1").assert_status(200);
}

/// Proves that revoking a token ends the live tail it opened: the event stream closes soon after the
/// revocation, instead of running until the client goes away.
#[test]
fn revoking_a_token_ends_its_live_tail_within_a_second() {
    let shop = Shop::start();
    let (opened, ended) = (mpsc::channel::<()>(), mpsc::channel::<Instant>());
    let url = shop.server.url(&format!("/api/v1/streams/{STREAM}/live"));
    let carl = shop.carl.clone();
    let reader = std::thread::spawn(move || {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout_read(OUTCOME_DEADLINE).build();
        let response = agent.get(&url).set("authorization", &format!("Bearer {carl}")).call().expect("the live tail opens");
        assert_eq!(response.status(), 200);
        opened.0.send(()).expect("the test is waiting");
        let mut lines = BufReader::new(response.into_reader());
        let mut line = String::new();
        // Until end of stream (or a read error once the server closed the connection).
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
        }
        let _ = ended.0.send(Instant::now());
    });
    opened.1.recv_timeout(OUTCOME_DEADLINE).expect("the live tail opened");

    let revoked_at = Instant::now();
    shop.server.delete(&format!("/api/v1/tokens/{}", token_id(&shop.server, "carl"))).assert_status(200);
    let ended_at = ended.1.recv_timeout(OUTCOME_DEADLINE).expect("the live tail ended after its token was revoked");
    let elapsed = ended_at.saturating_duration_since(revoked_at);
    assert!(elapsed < ENDS_WITHIN, "the live tail ran {elapsed:?} after the revocation");
    reader.join().expect("the reader thread");
}

/// Proves that revoking a token ends the group long poll it is waiting in: the poll is answered 401
/// `auth.revoked_token` soon after the revocation, not when its 30 s wait runs out.
#[test]
fn revoking_a_token_ends_its_long_poll_within_a_second() {
    let shop = Shop::start();
    let url = shop.server.url(&format!("/api/v1/streams/{STREAM}/groups/carl-app/poll"));
    let carl = shop.carl.clone();
    let (answered, answer) = mpsc::channel::<(Instant, Reply)>();
    let poller = std::thread::spawn(move || {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout_read(Duration::from_secs(40)).build();
        let request = agent.post(&url).set("authorization", &format!("Bearer {carl}")).set("content-type", "application/json");
        let result = request.send_string(&json!({ "member": "c1", "wait_ms": 30_000 }).to_string());
        let reply = crate::server::reply_of(result).expect("the poll is answered");
        let _ = answered.send((Instant::now(), reply));
    });
    // The poll has joined the group (so it is authenticated and waiting) once admin sees its member.
    wait_for(OUTCOME_DEADLINE, "the long poll to join the group", || {
        let described = shop.server.get(&format!("/api/v1/streams/{STREAM}/groups/carl-app"));
        described.body["members"].as_array().is_some_and(|m| m.iter().any(|m| m["member"] == "c1")).then_some(())
    });

    let revoked_at = Instant::now();
    shop.server.delete(&format!("/api/v1/tokens/{}", token_id(&shop.server, "carl"))).assert_status(200);
    let (answered_at, reply) = answer.recv_timeout(Duration::from_secs(40)).expect("the long poll was answered");
    reply.assert_error(401, "auth.revoked_token");
    let elapsed = answered_at.saturating_duration_since(revoked_at);
    assert!(elapsed < ENDS_WITHIN, "the long poll ran {elapsed:?} after the revocation");
    poller.join().expect("the poller thread");
}
