//! Weft's Kafka wire-protocol listener: Kafka clients (librdkafka, kcat, confluent-kafka)
//! produce to and consume from Weft streams as if Weft were a one-node Kafka cluster.
//!
//! This crate owns everything Kafka-protocol: framing, request decoding and response
//! encoding (through the `kafka-protocol` crate), the mapping of Kafka APIs onto the broker,
//! idempotent-producer sequence checks, and the Kafka consumer-group coordinator.
//! It does not own storage, streams or committed offsets: those are `weft-core`'s, so an
//! event produced over Kafka is read over HTTP and the other way round, and Kafka consumer
//! groups commit to the same offsets that HTTP consumer groups use.
//! Which APIs and versions are supported, and what is not, is written down in `PROTOCOL.md`.
//!
//! Modules: `frame` (length-prefixed frames, request decoding, response encoding),
//! `api` (supported APIs and versions), `connection` (one client connection),
//! `sasl` (SASL/PLAIN authentication), `authz` (authorization with Kafka's error codes),
//! `produce` (Produce, InitProducerId), `fetch` (Fetch, ListOffsets),
//! `cluster` (ApiVersions, Metadata, FindCoordinator, DescribeConfigs, CreateTopics),
//! `group_protocol` (the classic group protocol state machine; consumer groups share membership and
//! server-side assignment with HTTP groups through `weft_core::group`), `groups` (group and offset APIs),
//! `errors` (Kafka error codes for Weft errors).
//!
//! Limits (named with the unit last):
//! - `frame::REQUEST_BYTES_MAX`: largest request frame (100 MiB, Kafka's `socket.request.max.bytes`); a larger
//!   length prefix closes the connection.
//! - `connection::REQUESTS_QUEUED_MAX`: requests read ahead per connection while one is processed (8).
//! - `CONNECTIONS_MAX`: concurrent client connections (1,024); more are closed on accept.
//! - `fetch::FETCH_WAIT_MS_MAX`: longest Fetch long-poll (30 s); `fetch::FETCH_RESPONSE_BYTES_MAX` (16 MiB).
//! - `weft_core::group::GROUPS_MAX`, `GROUP_MEMBERS_MAX`, the session timeout range and name length: the same group limits as HTTP.
//! - `produce::PRODUCER_STATES_MAX`: idempotent producer states remembered (per stream partition and producer).
//! - `weft_log::batch::DECOMPRESSED_BYTES_MAX`: decompressed size of one produced batch (64 MiB).
//! - `sasl::PLAIN_TOKEN_BYTES_MAX`: size of a SASL/PLAIN token (4 KiB).

mod api;
mod authz;
mod cluster;
mod connection;
mod errors;
mod fetch;
pub mod frame;
mod group_protocol;
mod groups;
mod produce;
mod sasl;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use weft_core::Broker;

pub use api::SUPPORTED_APIS;

/// Most client connections served at once.
pub const CONNECTIONS_MAX: usize = 1024;
/// How long shutdown waits for in-flight requests (a Fetch long-poll at most) before closing connections.
pub const SHUTDOWN_GRACE_MS: u64 = 2_000;
/// How often the group coordinator checks session and rebalance timeouts.
const GROUP_SWEEP_INTERVAL_MS: u64 = 200;

/// What every connection shares: the broker, how clients reach this node, the group
/// coordinator and the idempotent-producer registry.
pub(crate) struct Context {
    pub broker: Arc<Broker>,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub group_protocol: group_protocol::KafkaGroupProtocol,
    pub producers: produce::ProducerRegistry,
}

/// Serves the Kafka protocol on `listener` until `shutdown` resolves. `advertised` is the
/// host and port that Metadata and FindCoordinator tell clients to connect to.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    advertised: (String, i32),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let producers = produce::ProducerRegistry::new(broker.now_ms());
    let context = Arc::new(Context {
        group_protocol: group_protocol::KafkaGroupProtocol::new(Arc::clone(&broker)),
        broker,
        advertised_host: advertised.0,
        advertised_port: advertised.1,
        producers,
    });
    let sweeper = {
        let context = Arc::downgrade(&context);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(GROUP_SWEEP_INTERVAL_MS));
            loop {
                ticker.tick().await;
                let Some(context) = context.upgrade() else { return };
                context.group_protocol.sweep(tokio::time::Instant::now());
            }
        })
    };
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let (stop_sender, stop_receiver) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        tracing::warn!(%peer, limit = CONNECTIONS_MAX, "kafka connection refused: too many connections");
                        continue;
                    };
                    let _ = socket.set_nodelay(true);
                    let context = Arc::clone(&context);
                    let stop = stop_receiver.clone();
                    connections.spawn(async move {
                        connection::run(socket, peer, context, stop).await;
                        drop(permit);
                    });
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "kafka accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop_sender.send(true);
    let drained =
        tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        connections.abort_all();
    }
    sweeper.abort();
    Ok(())
}
