//! The catalog through the real binary: live statistics and samples on the product page, search,
//! lineage (declared, observed, disagreements), OpenLineage export, `/metrics`, and `--demo`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::server::{Server, wait_for};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
const SALES: &str = "urn:weft:product:sales";
const INSIGHTS: &str = "urn:weft:product:customer-sales-insights";
/// How long `--demo` may take to show events on every example product.
const DEMO_TIMEOUT: Duration = Duration::from_secs(30);

fn server_with_examples() -> Server {
    let server = Server::start();
    let applied = server.run_cli(&["apply", "-f", EXAMPLES], b"");
    assert!(applied.status.success(), "apply failed: {}", String::from_utf8_lossy(&applied.stdout));
    server
}

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

fn stream_entry<'a>(product: &'a Value, stream: &str) -> &'a Value {
    product["streams"].as_array().expect("streams").iter().find(|s| s["name"] == stream).unwrap_or_else(|| panic!("{stream} in {product}"))
}

/// Proves the product page carries what the server measured while producing: counts, bytes,
/// rejections by reason, throughput, freshness against the contract's SLA, consumer lag, dead
/// letters, and the last events as fetch envelopes.
#[test]
fn product_page_shows_stats_and_samples_after_producing() {
    let server = server_with_examples();
    let mut bad = order(9);
    bad["currency"] = json!("XYZ");
    let body: String = [order(1), order(2), order(3), bad].iter().map(|e| format!("{e}\n")).collect();
    let reply = server.post("/api/v1/streams/sales.orders.v1/events", "application/x-ndjson", body.as_bytes());
    reply.assert_status(200);
    assert_eq!(reply.body["accepted"], 3, "{}", reply.text);
    let polled = server.post_json("/api/v1/streams/sales.orders.v1/groups/reporting/poll", &json!({ "member": "m1", "max_events": 1 }));
    polled.assert_status(200);
    let event = &polled.body["events"][0];
    let offsets = json!({ event["partition"].to_string(): event["offset"].as_u64().unwrap() + 1 });
    server
        .post_json("/api/v1/streams/sales.orders.v1/groups/reporting/commit", &json!({ "member": "m1", "offsets": offsets }))
        .assert_status(200);

    let product = server.get(&format!("/api/v1/products/{SALES}"));
    product.assert_status(200);
    let entry = stream_entry(&product.body, "sales.orders.v1");
    let stats = &entry["stats"];
    assert_eq!((stats["events_total"].as_u64(), stats["rejected_total"].as_u64()), (Some(3), Some(1)), "{stats}");
    assert!(stats["bytes_total"].as_u64().unwrap() > 3 * 100, "{stats}");
    assert_eq!(stats["rejected_by_reason"], json!({ "contract.not_valid_value": 1 }), "{stats}");
    assert_eq!(stats["events_last_minute"], 3);
    assert_eq!(stats["events_last_hour"], 3);
    let throughput = stats["throughput"].as_array().unwrap();
    assert_eq!(throughput.len(), 60);
    assert_eq!(throughput.last().unwrap()["events"], 3);
    assert!(throughput[0]["minute"].as_str().unwrap().ends_with(":00.000Z"), "{}", throughput[0]);
    assert!(stats["last_event_at"].is_string());
    let freshness = &stats["freshness"];
    assert_eq!(freshness["latency_sla_ms"], 1000);
    // The SLA is one second, so a slow machine may already see the stream late.
    match freshness["status"].as_str().unwrap() {
        "on_time" => assert!(freshness["late_since"].is_null()),
        "late" => assert!(freshness["late_since"].is_string()),
        other => panic!("unexpected freshness {other}: {freshness}"),
    }
    assert_eq!(stats["consumer_groups"], json!([{ "group": "reporting", "lag": 2 }]));
    assert_eq!(stats["dead_letters"], 1);
    assert_eq!(stats["producers"].as_array().unwrap().len(), 1, "{stats}");
    assert_eq!(stats["produce_latency_ms"]["count"], 1);
    let samples = entry["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3, "fewer events than the sample size: all of them");
    for sample in samples {
        assert!(sample["partition"].is_u64() && sample["offset"].is_u64() && sample["timestamp"].is_string(), "{sample}");
        assert_eq!(sample["event"]["data"]["currency"], "EUR");
    }
    // Streams without events yet.
    let customers = server.get("/api/v1/products/urn:weft:product:customers");
    let stats = &stream_entry(&customers.body, "customers.customer-created.v1")["stats"];
    assert_eq!((stats["events_total"].as_u64(), stats["freshness"]["status"].as_str()), (Some(0), Some("no_events")));
}

/// Proves search finds a contract property by words of its description, says so, and that the
/// CLI prints the hit.
#[test]
fn search_finds_a_property_by_its_description() {
    let server = server_with_examples();
    let reply = server.get("/api/v1/search?q=iso%20country%20code");
    reply.assert_status(200);
    assert_eq!(reply.body["query"], "iso country code");
    let first = &reply.body["hits"][0];
    assert_eq!(first["kind"], "property", "{}", reply.text);
    assert_eq!(first["id"], "urn:weft:customers:customer-created#/country");
    assert_eq!(first["product"], "urn:weft:product:customers");
    assert_eq!(first["domain"], "customers");
    assert!(first["score"].as_f64().unwrap() > 0.0);
    assert!(
        first["matched"].as_array().unwrap().iter().any(|m| m["field"] == "description" && m["text"] == "ISO 3166-1 alpha-2 country code.")
    );
    let pii = server.get("/api/v1/search?q=email&classification=pii");
    let ids: Vec<&str> = pii.body["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&"urn:weft:sales:sale-recorded#/customer/email") && ids.contains(&"urn:weft:customers:customer-created#/email"),
        "{ids:?}"
    );
    let output = server.run_cli(&["search", "customer email", "--domain", "customers"], b"");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.lines().next().unwrap_or("").contains("urn:weft:customers:customer-created#/email"), "{stdout}");
}

fn has_edge(graph: &Value, from: &str, to: &str, kind: &str, relation: &str) -> bool {
    graph["edges"].as_array().unwrap().iter().any(|e| e["from"] == from && e["to"] == to && e["kind"] == kind && e["relation"] == relation)
}

/// Proves the derived example product's lineage includes its declared inputs, reports declared
/// flows nobody has observed, and clears the disagreement once a group named after it reads.
#[test]
fn lineage_of_the_derived_product_includes_declared_inputs_and_disagreements() {
    let server = server_with_examples();
    let graph = server.get(&format!("/api/v1/lineage/{INSIGHTS}"));
    graph.assert_status(200);
    assert_eq!(graph.body["root"], INSIGHTS);
    for (product, stream) in [
        (SALES, "sales.orders.v1"),
        ("urn:weft:product:customers", "customers.customer-created.v1"),
        ("urn:weft:product:inventory", "inventory.stock-levels.v1"),
    ] {
        assert!(has_edge(&graph.body, &format!("product:{product}"), &format!("stream:{stream}"), "declared", "output"), "{}", graph.text);
        assert!(has_edge(&graph.body, &format!("stream:{stream}"), &format!("product:{INSIGHTS}"), "declared", "input"));
    }
    let nodes = graph.body["nodes"].as_array().unwrap();
    assert!(nodes.iter().any(|n| n["id"] == format!("product:{SALES}") && n["kind"] == "product" && n["domain"] == "sales"));
    let not_read = |graph: &Value| {
        graph["disagreements"].as_array().unwrap().iter().any(|d| {
            d["kind"] == "declared_not_observed" && d["from"] == "stream:sales.orders.v1" && d["to"] == format!("product:{INSIGHTS}")
        })
    };
    assert!(not_read(&graph.body), "{}", graph.text);

    server.produce_ndjson("sales.orders.v1", &[order(1)]);
    server.post_json("/api/v1/streams/sales.orders.v1/groups/customer-sales-insights/poll", &json!({ "member": "m1" })).assert_status(200);
    let graph = server.get(&format!("/api/v1/lineage/{INSIGHTS}?depth=1"));
    assert!(!not_read(&graph.body), "the group's reads are observed: {}", graph.text);
    assert!(has_edge(&graph.body, "stream:sales.orders.v1", "group:customer-sales-insights", "observed", "consumes"));
    let producer = graph.body["edges"].as_array().unwrap().iter().find(|e| e["relation"] == "produces").expect("a produces edge");
    assert!(producer["from"].as_str().unwrap().starts_with("principal:"), "{producer}");
    let group = nodes_by_id(&graph.body, "group:customer-sales-insights");
    assert_eq!(group["product"], INSIGHTS);
}

fn nodes_by_id<'a>(graph: &'a Value, id: &str) -> &'a Value {
    graph["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id).unwrap_or_else(|| panic!("node {id} in {graph}"))
}

/// Proves the OpenLineage export carries every field a RunEvent needs, with Kafka dataset naming.
#[test]
fn openlineage_run_events_have_the_required_fields() {
    let server = server_with_examples();
    let reply = server.get(&format!("/api/v1/lineage/{INSIGHTS}/openlineage"));
    reply.assert_status(200);
    let events = reply.body.as_array().expect("an array of run events");
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event["eventType"], "RUNNING");
    assert!(event["eventTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(event["schemaURL"], "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent");
    assert!(event["producer"].as_str().unwrap().starts_with("https://"));
    let run_id = event["run"]["runId"].as_str().unwrap();
    assert_eq!((run_id.len(), run_id.matches('-').count()), (36, 4), "{run_id}");
    assert_eq!(event["job"]["namespace"], "weft");
    assert_eq!(event["job"]["name"], INSIGHTS);
    let job_type = &event["job"]["facets"]["jobType"];
    assert_eq!(
        (job_type["processingType"].as_str(), job_type["integration"].as_str(), job_type["jobType"].as_str()),
        (Some("STREAMING"), Some("WEFT"), Some("JOB"))
    );
    assert!(job_type["_producer"].is_string() && job_type["_schemaURL"].is_string());
    let mut inputs: Vec<&str> = event["inputs"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    inputs.sort_unstable();
    assert_eq!(inputs, ["customers.customer-created.v1", "inventory.stock-levels.v1", "sales.orders.v1"]);
    for dataset in event["inputs"].as_array().unwrap().iter().chain(event["outputs"].as_array().unwrap()) {
        let namespace = dataset["namespace"].as_str().unwrap();
        assert!(namespace.starts_with("kafka://127.0.0.1:") && !namespace.ends_with(":0"), "the advertised Kafka address: {namespace}");
    }
    assert_eq!(event["outputs"][0]["name"], "insights.customer-revenue.v1");
    assert_eq!(event["outputs"][0]["facets"]["schema"]["fields"][0]["name"], "customer_id");
    let all = server.get("/api/v1/openlineage");
    assert_eq!(all.body.as_array().map(Vec::len), Some(4));
    let again = server.get(&format!("/api/v1/lineage/{INSIGHTS}/openlineage"));
    assert_eq!(again.body[0]["run"]["runId"], run_id, "the same product version is the same run");
}

/// One parsed sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// A Prometheus sample line: `name{labels} value`, labels quoted with escapes.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    let valid_name =
        name.chars().enumerate().all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()));
    if name.is_empty() || !valid_name {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut label_name = String::new();
        loop {
            let (idx, c) = chars.next().ok_or("unterminated labels")?;
            match c {
                '}' => {
                    rest = &inner[idx + 1..];
                    break;
                }
                ',' => {}
                '=' => {
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return Err("label value not quoted".into());
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next().ok_or("unterminated label value")?.1 {
                            '"' => break,
                            '\\' => match chars.next().ok_or("dangling escape")?.1 {
                                'n' => value.push('\n'),
                                c @ ('\\' | '"') => value.push(c),
                                c => return Err(format!("bad escape \\{c}")),
                            },
                            c => value.push(c),
                        }
                    }
                    labels.push((std::mem::take(&mut label_name), value));
                }
                c => label_name.push(c),
            }
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse::<f64>().map_err(|_| format!("bad value {other:?}"))?,
    };
    Ok((name.to_string(), labels, value))
}

/// Proves `/metrics` is valid Prometheus text (every line a comment or `name{labels} value`)
/// and carries the stream, group and process metrics.
#[test]
fn metrics_parse_as_prometheus_text() {
    let server = server_with_examples();
    server.produce_ndjson("sales.orders.v1", &[order(1), order(2)]);
    server.post_json("/api/v1/streams/sales.orders.v1/groups/reports@sales:1/poll", &json!({ "member": "m1" })).assert_status(200);
    let reply = server.get("/metrics");
    reply.assert_status(200);
    assert!(reply.content_type.starts_with("text/plain; version=0.0.4"), "{}", reply.content_type);
    let mut samples = Vec::new();
    for line in reply.text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        samples.push(parse_sample(line).unwrap_or_else(|error| panic!("line {line:?}: {error}")));
    }
    let value_of = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
            .map(|(_, _, v)| *v)
    };
    assert_eq!(value_of("weft_stream_events_in_total", &[("stream", "sales.orders.v1")]), Some(2.0));
    assert!(value_of("weft_stream_bytes_in_total", &[("stream", "sales.orders.v1")]).unwrap() > 0.0);
    assert_eq!(value_of("weft_produce_latency_seconds_count", &[("stream", "sales.orders.v1")]), Some(1.0));
    assert_eq!(value_of("weft_produce_latency_seconds_bucket", &[("stream", "sales.orders.v1"), ("le", "+Inf")]), Some(1.0));
    assert!(value_of("weft_fsync_latency_seconds_count", &[("stream", "sales.orders.v1")]).is_some());
    assert_eq!(value_of("weft_dead_letters_total", &[("stream", "sales.orders.v1")]), Some(0.0));
    assert!(value_of("weft_stream_freshness_seconds", &[("stream", "sales.orders.v1")]).is_some());
    assert_eq!(value_of("weft_consumer_group_lag", &[("group", "reports@sales:1"), ("stream", "sales.orders.v1")]), Some(2.0));
    for process_metric in ["process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds"] {
        assert!(value_of(process_metric, &[]).is_some_and(|v| v > 0.0), "{process_metric}");
    }
}

/// Proves `weft serve --demo` applies the example mesh and fills its products with events,
/// rejections and a reading consumer group, within a bounded wait.
#[test]
fn demo_populates_the_example_products() {
    let server = Server::start_with_args(&["--demo"]);
    let stats_of = |product: &str, stream: &str| {
        let reply = server.get(&format!("/api/v1/products/{product}"));
        (reply.status == 200).then(|| stream_entry(&reply.body, stream).clone())
    };
    for (product, stream) in [
        ("urn:weft:product:customers", "customers.customer-created.v1"),
        (SALES, "sales.orders.v1"),
        ("urn:weft:product:inventory", "inventory.stock-levels.v1"),
    ] {
        wait_for(DEMO_TIMEOUT, &format!("events on {stream}"), || {
            stats_of(product, stream)
                .filter(|s| s["stats"]["events_total"].as_u64() > Some(0) && !s["samples"].as_array().is_none_or(Vec::is_empty))
        });
    }
    wait_for(DEMO_TIMEOUT, "the demo consumer group on sales orders", || {
        stats_of(SALES, "sales.orders.v1")
            .filter(|s| s["stats"]["consumer_groups"].as_array().is_some_and(|g| g.iter().any(|g| g["group"] == "customer-sales-insights")))
    });
    let graph = server.get(&format!("/api/v1/lineage/{INSIGHTS}"));
    assert!(has_edge(&graph.body, "principal:sales", "stream:sales.orders.v1", "observed", "produces"), "{}", graph.text);
}

/// Proves odd, empty and oversized inputs to the catalog endpoints get clear errors.
#[test]
fn bad_catalog_inputs_give_clear_errors() {
    let server = server_with_examples();
    let huge = "a".repeat(1025);
    server.get(&format!("/api/v1/search?q={huge}")).assert_error(400, "request.invalid_parameter");
    let empty = server.get("/api/v1/search?q=");
    empty.assert_error(400, "request.invalid_parameter");
    assert!(empty.body["error"]["message"].as_str().unwrap().contains("must not be empty"));
    server.get("/api/v1/search").assert_error(400, "request.invalid_parameter");
    server.get("/api/v1/search?q=%25%27%22%3B--").assert_error(400, "request.invalid_parameter");
    server.get("/api/v1/search?q=email&sort=asc").assert_error(400, "request.unknown_parameter");
    server.get("/api/v1/search?q=email&limit=1000").assert_error(400, "request.invalid_parameter");
    let odd = server.get("/api/v1/search?q=%3Cemail%3E%27%3B%20DROP%20TABLE%20%E2%9C%93%00");
    odd.assert_status(200);
    assert!(!odd.body["hits"].as_array().unwrap().is_empty());
    let nothing = server.get("/api/v1/search?q=zzzzqqq");
    assert_eq!(nothing.body["hits"], json!([]));
    server.get(&format!("/api/v1/lineage/{INSIGHTS}?depth=11")).assert_error(400, "request.invalid_parameter");
    server.get(&format!("/api/v1/lineage/{INSIGHTS}?depth=-1")).assert_error(400, "request.invalid_parameter");
    server.get("/api/v1/lineage/urn:nope").assert_error(404, "product.not_found");
    server.get("/api/v1/lineage/urn:nope/openlineage").assert_error(404, "product.not_found");
    server.get(&format!("/api/v1/lineage/{INSIGHTS}/openlineage?depth=99")).assert_error(400, "request.invalid_parameter");
}
