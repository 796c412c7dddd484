//! The command-line client against a real server: streams, produce and consume.

use std::collections::BTreeSet;
use std::process::Output;

use serde_json::{Value, json};

use crate::server::Server;

fn stdout_json(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("stdout is JSON ({error}): {text}\nstderr: {}", String::from_utf8_lossy(&output.stderr)))
}

fn stdout_lines(output: &Output) -> Vec<Value> {
    assert!(output.status.success(), "exit {:?}, stderr: {}", output.status, String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("an NDJSON line ({error}): {line}")))
        .collect()
}

/// Proves `weft streams create|list|show` work end to end and print JSON, and that a server error reaches the
/// user as a non-zero exit with the stable code on stderr.
#[test]
fn cli_streams_create_list_and_show() {
    let server = Server::start();
    let created = server.run_cli(&["streams", "create", "orders", "--partitions", "3", "--fsync", "never", "--retention", "12h"], b"");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let created = stdout_json(&created);
    assert_eq!(
        (created["name"].clone(), created["partitions"].clone(), created["fsync"].clone()),
        (json!("orders"), json!(3), json!("never"))
    );
    assert_eq!(created["retention"], "12h");
    let listed = stdout_json(&server.run_cli(&["streams", "list"], b""));
    assert_eq!(listed["streams"].as_array().expect("streams").iter().map(|s| s["name"].clone()).collect::<Vec<_>>(), [json!("orders")]);
    let shown = stdout_json(&server.run_cli(&["streams", "show", "orders"], b""));
    assert_eq!(shown["offsets"].as_array().expect("offsets").len(), 3);

    let missing = server.run_cli(&["streams", "show", "nope"], b"");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("stream.not_found"), "{}", String::from_utf8_lossy(&missing.stderr));
    let duplicate = server.run_cli(&["streams", "create", "orders"], b"");
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("stream.already_exists"));
}

/// Proves `weft produce` reads NDJSON from a file and from standard input, skips blank lines, prints a JSON
/// summary with the accepted and rejected counts, exits 0 when all lines are accepted and non-zero when some
/// are rejected, and stores exactly the accepted lines.
#[test]
fn cli_produce_reads_a_file_and_stdin_and_prints_a_summary() {
    let server = Server::start();
    server.create_stream("orders", 2, "always");
    let file = server.data_dir().parent().expect("the temporary root").join("orders.ndjson");
    std::fs::write(&file, (0..5).map(|n| format!("{{\"n\":{n}}}\n")).collect::<String>() + "\n").expect("writing the input file");
    let from_file = server.run_cli(&["produce", "orders", file.to_str().expect("UTF-8 path")], b"");
    assert!(from_file.status.success(), "{}", String::from_utf8_lossy(&from_file.stderr));
    let summary = stdout_json(&from_file);
    assert_eq!((summary["accepted"].clone(), summary["rejected"].clone()), (json!(5), json!(0)), "{summary}");

    let from_stdin = server.run_cli(&["produce", "orders", "-"], b"{\"n\":5}\n{\"n\":6}\n{not json\n{\"n\":7}\n");
    assert!(!from_stdin.status.success(), "a rejected line makes the exit status non-zero");
    let summary = stdout_json(&from_stdin);
    assert_eq!((summary["accepted"].clone(), summary["rejected"].clone()), (json!(3), json!(1)), "{summary}");
    assert_eq!(summary["errors"][0]["error"]["code"], "event.malformed_json");
    assert_eq!(summary["errors"][0]["event"], 3, "the rejected line is named");

    let piped = server.run_cli(&["produce", "orders"], b"{\"n\":8}\n");
    assert!(piped.status.success());
    let stored: BTreeSet<u64> = (0..2)
        .flat_map(|partition| server.read_partition("orders", partition))
        .map(|envelope| envelope["event"]["data"]["n"].as_u64().expect("n"))
        .collect();
    assert_eq!(stored, (0..9).collect::<BTreeSet<_>>());
}

/// Proves `weft consume --max N` prints exactly N NDJSON envelopes, each a stored event.
#[test]
fn cli_consume_max_prints_n_ndjson_lines() {
    let server = Server::start();
    server.create_stream("orders", 2, "never");
    server.produce_ndjson("orders", &(0..10).map(|n| json!({ "n": n })).collect::<Vec<_>>());
    let lines = stdout_lines(&server.run_cli(&["consume", "orders", "--max", "3"], b""));
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|line| line["event"]["data"]["n"].is_u64() && line["offset"].is_u64()));
    let all = stdout_lines(&server.run_cli(&["consume", "orders"], b""));
    assert_eq!(all.len(), 10, "without --max, a replay prints everything and stops");
}

/// Proves `weft consume --group` commits what it printed: a second run of the same group continues where the
/// first stopped, so together they print every event exactly once.
#[test]
fn cli_consume_with_a_group_continues_where_the_previous_run_stopped() {
    let server = Server::start();
    server.create_stream("orders", 2, "never");
    server.produce_ndjson("orders", &(0..10).map(|n| json!({ "n": n })).collect::<Vec<_>>());
    let first = stdout_lines(&server.run_cli(&["consume", "orders", "--group", "billing", "--max", "4"], b""));
    assert_eq!(first.len(), 4);
    let second = stdout_lines(&server.run_cli(&["consume", "orders", "--group", "billing"], b""));
    let key = |line: &Value| (line["partition"].as_u64().expect("partition"), line["offset"].as_u64().expect("offset"));
    let mut seen: Vec<(u64, u64)> = first.iter().chain(&second).map(key).collect();
    assert_eq!(seen.len(), 10, "first {} + second {} lines", first.len(), second.len());
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 10, "no event printed twice");
    let described = server.get("/api/v1/streams/orders/groups/billing");
    assert_eq!(described.body["lag"], 0, "everything is committed: {}", described.text);
}

/// Proves a rejection in `weft produce`'s summary names the input line it came from (as its doc comment says),
/// also when blank lines were skipped before it.
#[test]
fn cli_produce_names_the_input_line_of_a_rejection() {
    let server = Server::start();
    server.create_stream("orders", 1, "always");
    let output = server.run_cli(&["produce", "orders"], b"{\"n\":1}\n\n{not json\n");
    let summary = stdout_json(&output);
    assert_eq!(summary["errors"][0]["event"], 3, "the bad line is line 3 of the input: {summary}");
}
