//! Proves that a produce request's blocking work (checking, validating, encoding and writing
//! its events) runs off the async workers, so a large request or a slow disk never stalls
//! other connections.
//!
//! The server runs with one async worker thread (`TOKIO_WORKER_THREADS=1`) and a pause point
//! armed at the produce path's blocking stage (`WEFT_PAUSE_AT`, see `weft_core::failpoint`).
//! While a produce is held there, a fetch on another connection must still be answered: if the
//! stage ran on the async worker, the only worker would be held and the fetch would hang.

use std::time::Duration;

use serde_json::json;

use crate::server::{Server, reply_of, wait_for};

#[test]
fn a_fetch_is_answered_while_another_connections_produce_is_in_its_blocking_stage() {
    let pause_dir = tempfile::tempdir().expect("a directory for the pause files");
    let armed = format!("produce.stage:{}", pause_dir.path().display());
    let server = Server::start_with_env(&[("TOKIO_WORKER_THREADS", "1"), ("WEFT_PAUSE_AT", &armed)]);
    server.create_stream("s", 1, "always");
    let body: String = (0..1_000).map(|n| format!("{}\n", json!({ "n": n }))).collect();
    let (agent, url) = (server.agent().clone(), server.url("/api/v1/streams/s/events"));
    let producer = std::thread::spawn(move || {
        reply_of(agent.post(&url).set("content-type", "application/x-ndjson").send_bytes(body.as_bytes())).expect("produce answers")
    });
    let paused = pause_dir.path().join("produce.stage.paused");
    wait_for(Duration::from_secs(20), "the produce reaches its blocking stage", || paused.exists().then_some(()));

    let fetched = server.get("/api/v1/streams/s/events?partition=0&offset=0");
    fetched.assert_status(200);
    assert_eq!(fetched.body["events"], json!([]), "nothing is visible while the produce is held");
    assert!(!producer.is_finished(), "the fetch was answered while the produce was still held at its blocking stage");

    std::fs::write(pause_dir.path().join("produce.stage.release"), b"").expect("releasing the produce");
    let produced = producer.join().expect("the producer thread");
    produced.assert_status(200);
    assert_eq!(produced.body["accepted"], 1_000);
    assert_eq!(server.next_offsets("s"), [1_000]);
}
