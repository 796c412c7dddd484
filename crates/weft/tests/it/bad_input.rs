//! Bad input: every refusal has the documented status and stable code, and leaves the server working and the
//! stored data exactly as it was.

use serde_json::{Value, json};

use crate::server::Server;

/// A server with stream `s` (2 partitions) holding a few events, and a snapshot of it.
fn server_with_events() -> (Server, Value) {
    let server = Server::start();
    server.create_stream("s", 2, "always");
    server.produce_ndjson("s", &[json!({ "n": 1 }), json!({ "n": 2 }), json!({ "n": 3 })]);
    let before = server.snapshot("s");
    (server, before)
}

/// Proves every body format refuses malformed JSON with its documented status and code: the single-event
/// modes (structured, plain JSON, binary) answer 400 `event.malformed_json` (with `/data` where the data is
/// at fault), an unparseable batch is 400 `request.malformed_json`, and batch modes (batched, NDJSON) answer
/// 200 with a per-event `event.` error for each bad element. The JSON endpoints (create, poll, commit) refuse bad
/// syntax with `request.malformed_json` and wrong shapes with `request.invalid_body`.
#[test]
fn malformed_bodies_are_refused_for_every_content_type() {
    let (server, before) = server_with_events();
    let events = "/api/v1/streams/s/events";
    server.post(events, "application/cloudevents+json", br#"{"id":"#).assert_error(400, "event.malformed_json");
    server.post(events, "application/cloudevents+json", b"").assert_error(400, "event.malformed_json");
    server.post(events, "application/cloudevents+json", b"[1]").assert_error(400, "event.malformed_json");
    server.post(events, "application/cloudevents-batch+json", br#"[{"id":"#).assert_error(400, "request.malformed_json");
    server.post(events, "application/cloudevents-batch+json", br#"{"id":"x"}"#).assert_error(400, "request.malformed_json");
    let plain = server.post(events, "application/json", br#"{"a":"#);
    plain.assert_error(400, "event.malformed_json");
    assert_eq!(plain.body["error"]["path"], "/data");
    assert_eq!((plain.body["accepted"].clone(), plain.body["rejected"].clone()), (json!(0), json!(1)));
    let binary = server.send(
        server
            .agent()
            .post(&server.url(events))
            .set("content-type", "application/json")
            .set("ce-specversion", "1.0")
            .set("ce-id", "1")
            .set("ce-source", "/t")
            .set("ce-type", "t"),
        Some(b"{bad"),
    );
    binary.assert_error(400, "event.malformed_json");
    assert_eq!(binary.body["error"]["path"], "/data");

    let batched = server.post(events, "application/cloudevents-batch+json", br#"[1, "x"]"#);
    batched.assert_status(200);
    assert_eq!((batched.body["accepted"].clone(), batched.body["rejected"].clone()), (json!(0), json!(2)));
    // Elements that are JSON but not objects: the code is per event (which of the two `event.` codes is not
    // settled: the produce path under change reports `event.malformed_json`, before it `event.invalid_cloudevent`).
    for result in batched.body["results"].as_array().expect("results") {
        let code = result["error"]["code"].as_str().expect("a per-event error code");
        assert!(["event.malformed_json", "event.invalid_cloudevent"].contains(&code), "{result}");
    }
    let ndjson = server.post(events, "application/x-ndjson", b"{\"a\":\n[1,\n");
    ndjson.assert_status(200);
    assert_eq!((ndjson.body["accepted"].clone(), ndjson.body["rejected"].clone()), (json!(0), json!(2)), "{}", ndjson.text);
    assert_eq!(ndjson.body["results"][1]["error"]["code"], "event.malformed_json");

    server.post("/api/v1/streams", "application/json", br#"{"name":"#).assert_error(400, "request.malformed_json");
    server.post_json("/api/v1/streams", &json!({ "name": "t", "bogus": 1 })).assert_error(400, "request.invalid_body");
    server.post("/api/v1/streams/s/groups/g/poll", "application/json", b"{").assert_error(400, "request.malformed_json");
    server.post_json("/api/v1/streams/s/groups/g/poll", &json!({ "max_events": 1 })).assert_error(400, "request.invalid_body");
    let zero = server.post_json("/api/v1/streams/s/groups/g/poll", &json!({ "member": "m", "max_events": 0 }));
    zero.assert_error(400, "request.invalid_parameter");
    assert_eq!(zero.body["error"]["path"], "/max_events");
    let negative = json!({ "member": "m", "offsets": { "0": -1 } });
    server.post_json("/api/v1/streams/s/groups/g/commit", &negative).assert_error(400, "request.invalid_body");
    server
        .post_json("/api/v1/streams/s/groups/g/commit", &json!({ "member": "m", "offsets": {} }))
        .assert_error(400, "request.invalid_parameter");
    assert!(server.get("/api/v1/streams").body["streams"].as_array().expect("streams").len() == 1, "no stream was created");
    server.assert_unchanged_and_alive("s", &before);
}

/// Proves unknown names are 404 with a stable code on every endpoint: `stream.not_found` for streams,
/// `partition.not_found` for partitions past the stream's count, `request.route_not_found` for unknown paths,
/// and 405 `request.method_not_allowed` for a known path with the wrong method.
#[test]
fn unknown_streams_partitions_and_routes_are_not_found() {
    let (server, before) = server_with_events();
    server.get("/api/v1/streams/nope").assert_error(404, "stream.not_found");
    server.get("/api/v1/streams/nope/events").assert_error(404, "stream.not_found");
    server.post_json("/api/v1/streams/nope/events", &json!({ "a": 1 })).assert_error(404, "stream.not_found");
    server.get("/api/v1/streams/nope/live").assert_error(404, "stream.not_found");
    server.post_json("/api/v1/streams/nope/groups/g/poll", &json!({ "member": "m" })).assert_error(404, "stream.not_found");
    server.get("/api/v1/streams/nope/groups/g").assert_error(404, "stream.not_found");
    server.delete("/api/v1/streams/nope/groups/g/members/m").assert_error(404, "stream.not_found");

    let partition = server.get("/api/v1/streams/s/events?partition=2");
    partition.assert_error(404, "partition.not_found");
    assert_eq!(partition.body["error"]["path"], "/partition");
    server.get("/api/v1/streams/s/live?partition=5").assert_error(404, "partition.not_found");
    server.post_json("/api/v1/streams/s/groups/g/poll", &json!({ "member": "m" })).assert_status(200);
    server
        .post_json("/api/v1/streams/s/groups/g/commit", &json!({ "member": "m", "offsets": { "7": 0 } }))
        .assert_error(404, "partition.not_found");
    server.delete("/api/v1/streams/s/groups/g/members/ghost").assert_error(404, "group.not_found");

    server.get("/api/v2/streams").assert_error(404, "request.route_not_found");
    server.delete("/api/v1/streams").assert_error(405, "request.method_not_allowed");
    server.assert_unchanged_and_alive("s", &before);
}

/// Proves stream names follow Kafka's topic rules and cannot escape the data directory: `a/b`, `..`, `.`, an
/// empty name, 250 characters, spaces, non-ASCII and control characters are 400 `stream.invalid_name` with
/// path `/name`; 249 characters is accepted; a second create of the same name is 409 `stream.already_exists`;
/// bad configuration is 400 `stream.invalid_config` with its path. Only the valid streams exist afterwards,
/// on disk as well as in the listing.
#[test]
fn invalid_stream_names_and_duplicates_are_refused() {
    let (server, before) = server_with_events();
    let longest = "n".repeat(249);
    for name in ["a/b", "..", ".", "", &"x".repeat(250), "a b", "流れ", "a\u{0}b", "../escape", "../../escape", "a\\b"] {
        let reply = server.post_json("/api/v1/streams", &json!({ "name": name }));
        reply.assert_error(400, "stream.invalid_name");
        assert_eq!(reply.body["error"]["path"], "/name", "{name:?}");
    }
    server.post_json("/api/v1/streams", &json!({ "name": longest, "partitions": 1 })).assert_status(201);
    let duplicate = server.post_json("/api/v1/streams", &json!({ "name": "s", "partitions": 5 }));
    duplicate.assert_error(409, "stream.already_exists");
    for (config, path) in [
        (json!({ "name": "c", "partitions": 0 }), "/partitions"),
        (json!({ "name": "c", "partitions": 1025 }), "/partitions"),
        (json!({ "name": "c", "fsync": "sometimes" }), "/fsync"),
        (json!({ "name": "c", "retention": "soon" }), "/retention"),
        (json!({ "name": "c", "key": "customer" }), "/key"),
    ] {
        let reply = server.post_json("/api/v1/streams", &config);
        reply.assert_error(400, "stream.invalid_config");
        assert_eq!(reply.body["error"]["path"], path, "{config}");
    }
    let listed: Vec<String> = server.get("/api/v1/streams").body["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|stream| stream["name"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(listed, [longest.clone(), "s".to_string()]);
    let mut on_disk: Vec<String> = std::fs::read_dir(server.data_dir().join("streams"))
        .expect("streams directory")
        .map(|entry| entry.expect("entry").file_name().into_string().expect("UTF-8 name"))
        .filter(|name| !name.starts_with("_weft."))
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, [longest, "s".to_string()], "no directory was made for a refused name");
    // `../escape` from the streams directory would land in the data directory, `../../escape` next to it.
    for directory in [server.data_dir(), server.data_dir().parent().expect("temporary root").to_path_buf()] {
        assert!(!directory.join("escape").exists(), "a refused name escaped into {}", directory.display());
    }
    server.assert_unchanged_and_alive("s", &before);
}

/// Proves the size limits: an event over 1 MiB is 413 `event.too_large` (alone, and as one line of an NDJSON
/// batch whose other lines are stored), an event just under the limit is stored, and a body over 16 MiB is
/// 413 `request.body_too_large` without storing anything.
#[test]
fn oversized_events_and_bodies_are_refused() {
    let server = Server::start();
    server.create_stream("s", 1, "always");
    let events = "/api/v1/streams/s/events";
    let big = format!("\"{}\"", "a".repeat(1024 * 1024 + 10));
    server.post(events, "application/json", big.as_bytes()).assert_error(413, "event.too_large");
    let just_under = format!("\"{}\"", "a".repeat(1024 * 1024 - 4096));
    server.post(events, "application/json", just_under.as_bytes()).assert_status(200);
    let mixed = format!("{{\"n\":1}}\n{big}\n{{\"n\":2}}\n");
    let reply = server.post(events, "application/x-ndjson", mixed.as_bytes());
    reply.assert_status(200);
    assert_eq!((reply.body["accepted"].clone(), reply.body["rejected"].clone()), (json!(2), json!(1)));
    assert_eq!(reply.body["results"][1]["error"]["code"], "event.too_large");
    assert_eq!(server.next_offsets("s"), [3]);
    let before = server.snapshot("s");

    let line = format!("{{\"pad\":\"{}\"}}\n", "b".repeat(1000));
    let huge = line.repeat(17 * 1024 * 1024 / line.len() + 1);
    assert!(huge.len() > 16 * 1024 * 1024);
    server.post(events, "application/x-ndjson", huge.as_bytes()).assert_error(413, "request.body_too_large");
    server.assert_unchanged_and_alive("s", &before);
}

/// Proves produce refuses content types it does not speak with 415 `request.unsupported_media_type`:
/// plain text, XML, a CloudEvents format other than JSON, and no content type at all.
#[test]
fn wrong_content_type_is_refused_with_415() {
    let (server, before) = server_with_events();
    let events = "/api/v1/streams/s/events";
    for content_type in ["text/plain", "application/xml", "application/cloudevents+xml", "application/octet-stream"] {
        server.post(events, content_type, br#"{"a":1}"#).assert_error(415, "request.unsupported_media_type");
    }
    let untyped = server.send(server.agent().post(&server.url(events)), Some(br#"{"a":1}"#));
    untyped.assert_error(415, "request.unsupported_media_type");
    server.assert_unchanged_and_alive("s", &before);
}

/// Proves fetch parameters are checked: negative, non-numeric and too-large numbers and unknown parameters are
/// 400 (`request.invalid_parameter` with the parameter's path, or `request.unknown_parameter`), an offset past
/// the end is 416 `offset.out_of_range`, while the end itself is an empty page. The same holds for live tail and
/// group names.
#[test]
fn bad_fetch_parameters_are_refused() {
    let (server, before) = server_with_events();
    let end = server.next_offsets("s")[0];
    for (query, path) in [
        ("offset=-1", "/offset"),
        ("offset=abc", "/offset"),
        ("offset=1e3", "/offset"),
        ("offset=", "/offset"),
        ("offset=99999999999999999999999", "/offset"),
        ("partition=-1", "/partition"),
        ("partition=one", "/partition"),
        ("limit=-5", "/limit"),
        ("limit=10001", "/limit"),
        ("from_time=yesterday", "/from_time"),
    ] {
        let reply = server.get(&format!("/api/v1/streams/s/events?{query}"));
        reply.assert_error(400, "request.invalid_parameter");
        assert_eq!(reply.body["error"]["path"], path, "{query}");
    }
    server.get("/api/v1/streams/s/events?offset=0&from_time=2020-01-01T00:00:00Z").assert_error(400, "request.invalid_parameter");
    server.get("/api/v1/streams/s/events?offest=0").assert_error(400, "request.unknown_parameter");
    server.get("/api/v1/streams/s/live?since=0").assert_error(400, "request.unknown_parameter");
    server.get("/api/v1/streams/s/live?from=soon").assert_error(400, "request.invalid_parameter");
    server.post_json("/api/v1/streams/s/events?kind=x", &json!({})).assert_error(400, "request.unknown_parameter");
    let past = server.get(&format!("/api/v1/streams/s/events?offset={}", end + 1));
    past.assert_error(416, "offset.out_of_range");
    let at_end = server.get(&format!("/api/v1/streams/s/events?offset={end}"));
    at_end.assert_status(200);
    assert_eq!((at_end.body["events"].clone(), at_end.body["next_offset"].clone()), (json!([]), json!(end)));

    let bad_group = server.post_json("/api/v1/streams/s/groups/bad%20group/poll", &json!({ "member": "m" }));
    bad_group.assert_error(400, "group.invalid_name");
    let bad_member = server.post_json("/api/v1/streams/s/groups/g/poll", &json!({ "member": "" }));
    bad_member.assert_error(400, "group.invalid_member");
    assert_eq!(bad_member.body["error"]["path"], "/member");
    server.assert_unchanged_and_alive("s", &before);
}

/// Proves attributes cannot smuggle control characters (CR/LF header injection, NUL) into storage, in any of
/// the three CloudEvents modes: 400 (or a per-event error in a batch) `event.invalid_cloudevent` whose path
/// names the attribute. Binary mode checks the value after percent-decoding.
#[test]
fn control_characters_in_attributes_are_refused_with_a_path() {
    let (server, _) = server_with_events();
    let events = "/api/v1/streams/s/events";
    let event = |attribute: &str, value: &str| {
        let mut event = json!({ "specversion": "1.0", "id": "e-1", "source": "/t", "type": "t" });
        event[attribute] = json!(value);
        event
    };
    for (attribute, value) in
        [("id", "x\r\nX-Evil: 1"), ("source", "/a\u{0}b"), ("type", "t\n"), ("subject", "\u{7f}"), ("traceparent", "00\r\n")]
    {
        let reply = server.post(events, "application/cloudevents+json", event(attribute, value).to_string().as_bytes());
        reply.assert_error(400, "event.invalid_cloudevent");
        assert_eq!(reply.body["error"]["path"], format!("/{attribute}"), "{attribute}={value:?}");
    }
    let batch = json!([event("subject", "fine"), event("subject", "bad\r\nSet-Cookie: x=1")]);
    let reply = server.post(events, "application/cloudevents-batch+json", batch.to_string().as_bytes());
    assert_eq!(reply.body["results"][1]["error"]["code"], "event.invalid_cloudevent", "{}", reply.text);
    assert_eq!(reply.body["results"][1]["error"]["path"], "/subject");
    assert_eq!(reply.body["accepted"], 1, "the good event of the batch is stored");
    let before = server.snapshot("s");
    for (header, value, path) in
        [("ce-id", "x%0D%0AX-Evil:%201", "/id"), ("ce-subject", "a%00b", "/subject"), ("ce-source", "%FF", "/source")]
    {
        let mut request = server.agent().post(&server.url(events)).set("content-type", "text/plain");
        for (name, default) in [("ce-specversion", "1.0"), ("ce-id", "b-1"), ("ce-source", "/t"), ("ce-type", "t")] {
            if name != header {
                request = request.set(name, default);
            }
        }
        let reply = server.send(request.set(header, value), Some(b"hello"));
        reply.assert_error(400, "event.invalid_cloudevent");
        assert_eq!(reply.body["error"]["path"], path, "{header}: {value}");
    }
    server.assert_unchanged_and_alive("s", &before);
}

/// Proves hostile user strings are echoed safely: error bodies stay valid JSON with the offending text escaped
/// and truncated (a 10,000-character name yields a short message), nothing raw (CR, LF, quotes) leaks into the
/// body, and accepted non-ASCII attributes and data (emoji, right-to-left override) come back byte for byte.
#[test]
fn hostile_strings_are_echoed_safely() {
    let (server, before) = server_with_events();
    let long = server.get(&format!("/api/v1/streams/{}", "x".repeat(10_000)));
    long.assert_error(404, "stream.not_found");
    assert!(long.text.len() < 1_000, "the message is truncated: {} bytes", long.text.len());
    let injected = server.get("/api/v1/streams/%22%3Cscript%3E%0D%0Aevil");
    injected.assert_error(404, "stream.not_found");
    assert!(!injected.text.contains('\r') && !injected.text.contains('\n'), "no raw CR or LF: {:?}", injected.text);
    assert!(injected.body["error"]["message"].as_str().expect("message").contains("<script>"));
    let unicode = server.get("/api/v1/streams/%E6%B5%81%E3%82%8C%F0%9F%92%A5");
    unicode.assert_error(404, "stream.not_found");
    assert!(unicode.body["error"]["message"].as_str().expect("message").contains("流れ💥"), "{}", unicode.text);
    let long_parameter = server.get(&format!("/api/v1/streams/s/events?{}=1", "p".repeat(5_000)));
    long_parameter.assert_error(400, "request.unknown_parameter");
    assert!(long_parameter.text.len() < 1_000, "the message is truncated: {} bytes", long_parameter.text.len());
    let long_route = server.get(&format!("/{}", "r".repeat(5_000)));
    long_route.assert_error(404, "request.route_not_found");
    assert!(long_route.text.len() < 1_000, "the message is truncated: {} bytes", long_route.text.len());
    let long_member = server.post_json("/api/v1/streams/s/groups/g/poll", &json!({ "member": "m".repeat(5_000) }));
    long_member.assert_error(400, "group.invalid_member");
    assert!(long_member.text.len() < 1_000, "the message is truncated: {} bytes", long_member.text.len());

    server.assert_unchanged_and_alive("s", &before);

    let hostile = "ünï\u{202e}cødé 💥 \"quoted\" <tag> \\ \u{2028}";
    let event = json!({
        "specversion": "1.0", "id": hostile, "source": hostile, "type": hostile, "subject": hostile, "ext": hostile,
        "time": "2026-01-02T03:04:05.678Z", "data": { "text": hostile, "🔑": [hostile] },
    });
    let reply = server.post("/api/v1/streams/s/events", "application/cloudevents+json", event.to_string().as_bytes());
    reply.assert_status(200);
    let partition = reply.body["results"][0]["partition"].as_u64().expect("partition") as u32;
    let stored = server.read_partition("s", partition).pop().expect("the hostile event");
    assert_eq!(stored["event"], event, "every attribute and the data come back unchanged");
}

/// Proves the JSON endpoints take objects only: a JSON array is 400 `request.invalid_body`, not read field by
/// field in declaration order (serde's default for structs), which today creates stream `t` from `["t"]`.
#[test]
fn json_arrays_are_not_accepted_as_request_objects() {
    let (server, before) = server_with_events();
    server.post_json("/api/v1/streams", &json!(["t", 3])).assert_error(400, "request.invalid_body");
    server.post_json("/api/v1/streams/s/groups/g/poll", &json!(["m"])).assert_error(400, "request.invalid_body");
    server.post_json("/api/v1/streams/s/groups/g/commit", &json!(["m", { "0": 1 }])).assert_error(400, "request.invalid_body");
    assert_eq!(server.get("/api/v1/streams").body["streams"].as_array().expect("streams").len(), 1, "no stream was created");
    server.assert_unchanged_and_alive("s", &before);
}

/// Routes that take no query parameters refuse any (a misspelt `?limit=` is not silently
/// ignored), with the same code as the routes that take some, and still answer without one.
#[test]
fn routes_without_parameters_refuse_query_parameters() {
    let server = Server::start();
    for path in ["/api/v1/streams?bogus=1", "/api/v1/products?limit=5", "/api/v1/domains?x", "/api/v1/audit/verify?deep=true"] {
        server.get(path).assert_error(400, "request.unknown_parameter");
    }
    for path in ["/api/v1/streams", "/api/v1/products", "/api/v1/domains", "/api/v1/audit/verify"] {
        server.get(path).assert_status(200);
    }
}
