//! A full disk: produce fails with 507 `storage.full`, and the log stays consistent.

use crate::server::Server;

/// Proves that when the data directory's disk fills up, produce answers 507 with a stable code
/// instead of crashing, every event acknowledged before is kept, nothing partial is readable,
/// and after a restart the log holds exactly the acknowledged events with dense offsets.
/// Needs root (it mounts a small tmpfs); it says so and returns otherwise.
#[test]
fn a_full_disk_fails_produce_with_507_and_keeps_the_log_consistent() {
    let Some(mut server) = Server::start_on_small_disk(6 * 1024 * 1024) else {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    };
    server.create_stream("fill", 1, "always");
    let line = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(4000));
    let body = line.repeat(50);
    let mut n_acked = 0u64;
    let mut refused = None;
    for _ in 0..1_000 {
        let reply = server.post("/api/v1/streams/fill/events", "application/x-ndjson", body.as_bytes());
        if reply.status == 200 {
            n_acked += reply.body["accepted"].as_u64().unwrap();
            continue;
        }
        refused = Some(reply);
        break;
    }
    let refused = refused.expect("the disk filled up within 1,000 requests");
    refused.assert_error(507, "storage.full");
    assert!(n_acked > 0, "some events fit before the disk was full");
    assert_eq!(server.get("/healthz").status, 200);
    let next_offsets = server.next_offsets("fill");
    assert_eq!(next_offsets, vec![n_acked], "only acknowledged events are readable");
    server.restart_after_kill_9();
    assert_eq!(server.next_offsets("fill"), vec![n_acked], "recovery keeps exactly the acknowledged events");
    let events = server.read_partition("fill", 0);
    assert_eq!(events.len() as u64, n_acked);
    assert!(events.iter().enumerate().all(|(idx, e)| e["offset"] == idx as u64), "offsets are dense");
}
