//! Consumer groups: assignment, session timeouts, the commit ownership rule, durable commits and lag.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{Reply, Server};

/// The smallest session timeout the server accepts, so expiry tests stay short.
const SESSION_TIMEOUT_MS: u64 = 1_000;

fn poll(server: &Server, stream: &str, group: &str, member: &str, max_events: u64, wait_ms: u64) -> Reply {
    let body = json!({ "member": member, "max_events": max_events, "wait_ms": wait_ms, "session_timeout_ms": SESSION_TIMEOUT_MS });
    server.post_json(&format!("/api/v1/streams/{stream}/groups/{group}/poll"), &body)
}

fn partitions_of(poll_reply: &Reply) -> BTreeSet<u64> {
    poll_reply.assert_status(200);
    poll_reply.body["partitions"].as_array().expect("partitions").iter().map(|p| p.as_u64().expect("partition number")).collect()
}

fn commit(server: &Server, stream: &str, group: &str, member: &str, offsets: Value) -> Reply {
    server.post_json(&format!("/api/v1/streams/{stream}/groups/{group}/commit"), &json!({ "member": member, "offsets": offsets }))
}

/// Polls as `member` (long-polling, which keeps it alive) until it owns `n_partitions`, or panics at the deadline.
fn poll_until_owning(server: &Server, stream: &str, group: &str, member: &str, n_partitions: usize) -> BTreeSet<u64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let owned = partitions_of(&poll(server, stream, group, member, 1, 200));
        if owned.len() == n_partitions {
            return owned;
        }
        assert!(Instant::now() < deadline, "{member} still owns {owned:?}, not {n_partitions} partitions");
    }
}

fn events(numbers: std::ops::Range<u64>) -> Vec<Value> {
    numbers.map(|n| json!({ "n": n })).collect()
}

/// Proves the assignment rule: two live members of a four-partition stream own two partitions each, their
/// shares are disjoint and together cover the stream, and both see the same generation.
#[test]
fn partitions_are_balanced_across_live_members() {
    let server = Server::start();
    server.create_stream("orders", 4, "always");
    assert_eq!(partitions_of(&poll(&server, "orders", "billing", "a", 10, 0)), BTreeSet::from([0, 1, 2, 3]), "a lone member owns all");
    let b = poll(&server, "orders", "billing", "b", 10, 0);
    let a = poll(&server, "orders", "billing", "a", 10, 0);
    let (owned_a, owned_b) = (partitions_of(&a), partitions_of(&b));
    assert_eq!((owned_a.len(), owned_b.len()), (2, 2), "a owns {owned_a:?}, b owns {owned_b:?}");
    assert!(owned_a.is_disjoint(&owned_b), "a owns {owned_a:?}, b owns {owned_b:?}");
    assert_eq!(owned_a.union(&owned_b).copied().collect::<BTreeSet<_>>(), BTreeSet::from([0, 1, 2, 3]));
    assert_eq!(a.body["generation"], b.body["generation"], "no rebalance between the two polls");
    let described = server.get("/api/v1/streams/orders/groups/billing");
    described.assert_status(200);
    for partition in described.body["partitions"].as_array().expect("partitions") {
        let owner = if owned_a.contains(&partition["partition"].as_u64().expect("number")) { "a" } else { "b" };
        assert_eq!(partition["owner"], owner, "describe agrees with poll: {partition}");
    }
}

/// Proves session expiry: when one of two members stops polling, the other owns every partition within a
/// bounded time after the session timeout (1 s), and describe no longer lists the silent member.
#[test]
fn a_member_that_stops_polling_loses_its_partitions_after_the_session_timeout() {
    let server = Server::start();
    server.create_stream("orders", 4, "always");
    partitions_of(&poll(&server, "orders", "billing", "a", 10, 0));
    assert_eq!(partitions_of(&poll(&server, "orders", "billing", "b", 10, 0)).len(), 2);
    let started = Instant::now();
    poll_until_owning(&server, "orders", "billing", "b", 4);
    assert!(started.elapsed() >= Duration::from_millis(SESSION_TIMEOUT_MS - 100), "a kept its partitions for its session timeout");
    let described = server.get("/api/v1/streams/orders/groups/billing");
    let members: Vec<&Value> = described.body["members"].as_array().expect("members").iter().map(|m| &m["member"]).collect();
    assert_eq!(members, [&json!("b")], "{}", described.text);
}

/// Proves Kafka's commit rule: only the current owner of a partition may commit it. A member that never owned
/// it, and a member that lost it when its session expired, are refused with 409 `group.partition_not_owned`
/// and a path, and the group's committed offsets do not move; the new owner's commit is accepted.
#[test]
fn commit_from_a_member_that_lost_the_partition_is_refused_with_409() {
    let server = Server::start();
    server.create_stream("orders", 4, "always");
    server.produce_ndjson("orders", &events(0..8));
    partitions_of(&poll(&server, "orders", "billing", "a", 100, 0));
    partitions_of(&poll(&server, "orders", "billing", "b", 100, 0));
    let owned_a = partitions_of(&poll(&server, "orders", "billing", "a", 100, 0));
    let partition_of_a = *owned_a.first().expect("a owns a partition");

    let refused = commit(&server, "orders", "billing", "b", json!({ partition_of_a.to_string(): 1 }));
    refused.assert_error(409, "group.partition_not_owned");
    assert_eq!(refused.body["error"]["path"], format!("/offsets/{partition_of_a}"));
    commit(&server, "orders", "billing", "stranger", json!({ "0": 1 })).assert_error(409, "group.partition_not_owned");

    poll_until_owning(&server, "orders", "billing", "b", 4);
    commit(&server, "orders", "billing", "a", json!({ partition_of_a.to_string(): 2 })).assert_error(409, "group.partition_not_owned");
    let described = server.get("/api/v1/streams/orders/groups/billing");
    assert!(described.body["partitions"].as_array().expect("partitions").iter().all(|p| p["committed"].is_null()), "{}", described.text);

    commit(&server, "orders", "billing", "b", json!({ partition_of_a.to_string(): 2 })).assert_status(200);
    let described = server.get("/api/v1/streams/orders/groups/billing");
    assert_eq!(described.body["partitions"][partition_of_a as usize]["committed"], 2);
}

/// Proves commits are durable: after a `kill -9` and restart, a member of the group starts every partition at
/// the offset committed before the crash, not at the beginning and not where the old member's fetch had got to.
#[test]
fn a_restarted_group_resumes_from_its_last_commit() {
    let mut server = Server::start();
    server.create_stream("orders", 2, "always");
    server.produce_ndjson("orders", &events(0..20));
    let first = poll(&server, "orders", "billing", "a", 500, 0);
    assert_eq!(first.body["events"].as_array().expect("events").len(), 20, "a fetched everything");
    commit(&server, "orders", "billing", "a", json!({ "0": 3, "1": 7 })).assert_status(200);

    server.restart_after_kill_9();
    let resumed = poll(&server, "orders", "billing", "a2", 500, 0);
    resumed.assert_status(200);
    let positions: Vec<(u64, u64)> = resumed.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["partition"].as_u64().expect("partition"), e["offset"].as_u64().expect("offset")))
        .collect();
    let expected: Vec<(u64, u64)> = (3..10).map(|o| (0, o)).chain((7..10).map(|o| (1, o))).collect();
    assert_eq!(positions, expected, "resumed at the committed offsets");
}

/// Proves describe reports progress: a group unknown to the stream is 404 `group.not_found`; after commits,
/// each partition shows its owner, committed offset, end offset and lag (end minus committed, or the whole
/// partition when nothing is committed), and the total lag is their sum.
#[test]
fn describe_shows_lag() {
    let server = Server::start();
    server.create_stream("orders", 2, "always");
    server.get("/api/v1/streams/orders/groups/billing").assert_error(404, "group.not_found");
    server.produce_ndjson("orders", &events(0..11));
    let ends = server.next_offsets("orders");
    assert_eq!(ends.iter().sum::<u64>(), 11);
    poll(&server, "orders", "billing", "m", 500, 0).assert_status(200);
    commit(&server, "orders", "billing", "m", json!({ "0": 2 })).assert_status(200);

    let described = server.get("/api/v1/streams/orders/groups/billing");
    described.assert_status(200);
    let body = &described.body;
    assert_eq!(body["members"][0]["member"], "m");
    assert_eq!(body["members"][0]["partitions"], json!([0, 1]));
    assert_eq!(body["partitions"][0], json!({ "partition": 0, "owner": "m", "committed": 2, "end_offset": ends[0], "lag": ends[0] - 2 }));
    assert_eq!(body["partitions"][1], json!({ "partition": 1, "owner": "m", "committed": null, "end_offset": ends[1], "lag": ends[1] }));
    assert_eq!(body["lag"], ends[0] - 2 + ends[1]);

    commit(&server, "orders", "billing", "m", json!({ "1": ends[1] })).assert_status(200);
    let described = server.get("/api/v1/streams/orders/groups/billing");
    assert_eq!(described.body["partitions"][1]["lag"], 0);
    assert_eq!(described.body["lag"], ends[0] - 2);
}
