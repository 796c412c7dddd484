//! Clean shutdown on SIGTERM: prompt exit 0, nothing acknowledged lost, whatever the fsync policy.

use std::time::Duration;

use serde_json::{Value, json};

use crate::live::LiveTail;
use crate::server::Server;

/// How quickly a server with nothing in flight must exit after SIGTERM.
const PROMPT_EXIT: Duration = Duration::from_secs(5);

/// Proves SIGTERM makes the server exit with status 0 within a few seconds, and that every acknowledged event
/// is there after a restart, under `fsync: never` and `interval:60000` (which rely on the shutdown sync) as well
/// as `always`.
#[test]
fn sigterm_exits_zero_promptly_and_keeps_every_acknowledged_event() {
    let mut server = Server::start();
    let policies = [("never", "never"), ("interval", "interval:60000"), ("always", "always")];
    let mut produced = Vec::new();
    for (stream, fsync) in policies {
        server.create_stream(stream, 3, fsync);
        let events: Vec<Value> = (0..300).map(|n| json!({ "stream": stream, "n": n })).collect();
        let positions = server.produce_ndjson(stream, &events);
        produced.push((stream, positions, events));
    }
    let (exit, took) = server.terminate().expect("the server exits after SIGTERM");
    assert!(exit.success(), "exit status {exit:?}");
    assert!(took < PROMPT_EXIT, "exited after {took:?}");
    assert!(server.log().contains("weft stopped cleanly"), "the shutdown path ran");

    server.start_again();
    for (stream, positions, events) in produced {
        let stored: Vec<Vec<Value>> = (0..3).map(|partition| server.read_partition(stream, partition)).collect();
        for ((partition, offset), event) in positions.into_iter().zip(events) {
            assert_eq!(stored[partition as usize][offset as usize]["event"]["data"], event, "{stream} ({partition}, {offset})");
        }
        assert_eq!(stored.iter().map(Vec::len).sum::<usize>(), 300, "{stream} holds exactly what was produced");
    }
}

/// Sends SIGTERM and asserts a prompt exit 0.
fn assert_prompt_clean_exit(server: &mut Server, what: &str) {
    let (exit, took) = server.terminate().unwrap_or_else(|| panic!("the server did not exit after SIGTERM with {what}"));
    assert!(exit.success(), "exit status {exit:?}");
    assert!(took < PROMPT_EXIT, "with {what}, exited only after {took:?}");
}

/// Proves a connected live tail does not hold shutdown hostage: SIGTERM still makes the server exit 0 promptly.
#[test]
fn sigterm_exits_promptly_with_a_live_tail_open() {
    let mut server = Server::start();
    server.create_stream("feed", 1, "never");
    let _tail = LiveTail::connect(&server, "/api/v1/streams/feed/live", None);
    assert_prompt_clean_exit(&mut server, "a live tail open");
}

/// Proves a consumer's long-poll does not delay shutdown by its `wait_ms` (up to 30 s): SIGTERM ends it early.
#[test]
fn sigterm_exits_promptly_with_a_long_poll_open() {
    let mut server = Server::start();
    server.create_stream("feed", 1, "never");
    let url = server.url("/api/v1/streams/feed/groups/g/poll");
    let agent = server.agent().clone();
    let poller = std::thread::spawn(move || {
        let _ = agent.post(&url).send_json(json!({ "member": "m", "wait_ms": 30_000, "from": "latest" }));
    });
    // The long-poll has joined the group once describe knows the group.
    crate::server::wait_for(Duration::from_secs(10), "the long-poll to join the group", || {
        (server.get("/api/v1/streams/feed/groups/g").status == 200).then_some(())
    });
    assert_prompt_clean_exit(&mut server, "a 30 s long-poll open");
    poller.join().expect("the long-poll thread");
}
