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
//! `produce` (Produce, InitProducerId), `idempotence` (producer ids and sequence state, rebuilt
//! from the log after a restart), `fetch` (Fetch, ListOffsets),
//! `cluster` (ApiVersions, Metadata, FindCoordinator, DescribeConfigs, CreateTopics),
//! `group_protocol` (the classic group protocol state machine; consumer groups share membership and
//! server-side assignment with HTTP groups through `weft_core::group`), `groups` (group and offset APIs),
//! `errors` (Kafka error codes for Weft errors).
//!
//! Limits (named with the unit last):
//! - `frame::REQUEST_BYTES_MAX`: largest request frame (100 MiB, Kafka's `socket.request.max.bytes`); a larger
//!   length prefix closes the connection.
//! - `frame::PRE_AUTH_REQUEST_BYTES_MAX`: largest request frame before SASL authentication (512 KiB, Kafka's
//!   `sasl.server.max.receive.size`); a larger length prefix closes the connection before its body is read.
//! - `SASL_HANDSHAKE_DEADLINE_MS`: time from accept to a completed authentication, TLS handshake included (10 s).
//! - `CONNECTIONS_IDLE_MS_MAX`: an authenticated connection without a request this long is closed (10 min,
//!   Kafka's `connections.max.idle.ms`).
//! - `connection::REQUESTS_QUEUED_MAX`: requests read ahead per authenticated connection while one is processed (8).
//! - `CONNECTIONS_MAX`: concurrent client connections (1,024); more are closed on accept.
//! - `CONNECTIONS_PER_ADDRESS_MAX`: concurrent connections from one source address (64, Kafka's
//!   `max.connections.per.ip`); more are closed on accept.
//! - `fetch::FETCH_WAIT_MS_MAX`: longest Fetch long-poll (30 s); `fetch::FETCH_RESPONSE_BYTES_MAX` (16 MiB).
//! - `weft_core::group::GROUPS_MAX`, `GROUP_MEMBERS_MAX`, the session timeout range and name length: the same group limits as HTTP.
//! - `idempotence::PRODUCER_STATES_MAX`: idempotent producer states remembered (per stream partition and producer),
//!   each with `PRODUCER_BATCHES_REMEMBERED` (5) batch ranges; `PRODUCER_ID_EXPIRATION_MS` (1 day) without a write
//!   forgets one; `PRODUCER_STATE_SCAN_BYTES_MAX` (256 MiB): the tail of a partition read to rebuild them.
//! - `weft_log::batch::DECOMPRESSED_BYTES_MAX`: decompressed size of one produced batch (64 MiB).
//! - `sasl::PLAIN_TOKEN_BYTES_MAX`: size of a SASL/PLAIN token (4 KiB).
//!
//! TLS (`ListenerOptions::tls`, from `weft serve --tls-cert --tls-key`) wraps each accepted
//! connection before any Kafka framing, so clients use `SSL`, or `SASL_SSL` with credentials; the
//! authentication rules are the same as over plaintext. The listener only receives a ready
//! `rustls` configuration: loading certificates is the binary's job.

mod api;
mod authz;
mod cluster;
mod connection;
mod errors;
mod fetch;
pub mod frame;
mod group_protocol;
mod groups;
mod idempotence;
mod produce;
mod sasl;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use weft_core::Broker;

pub use api::SUPPORTED_APIS;

/// Most client connections served at once.
pub const CONNECTIONS_MAX: usize = 1024;
/// Most connections open at once from one source address (Kafka's `max.connections.per.ip`, which
/// Kafka leaves unlimited by default): one client cannot take every one of the `CONNECTIONS_MAX` slots.
pub const CONNECTIONS_PER_ADDRESS_MAX: usize = 64;
/// Time a new connection has, from accept, to finish its TLS handshake and SASL authentication.
pub const SASL_HANDSHAKE_DEADLINE_MS: u64 = 10_000;
/// Time an authenticated connection may go without a request before it is closed (Kafka's
/// `connections.max.idle.ms` default).
pub const CONNECTIONS_IDLE_MS_MAX: u64 = 600_000;
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
    pub producers: idempotence::ProducerRegistry,
}

/// How the listener treats its connections: TLS, and the limits on connections. `Default` is
/// plaintext with the limits above; tests shorten the durations.
#[derive(Clone)]
pub struct ListenerOptions {
    /// Wraps every connection in TLS with this configuration; `None` serves plaintext.
    pub tls: Option<Arc<ServerConfig>>,
    /// Time from accept to a completed authentication (`SASL_HANDSHAKE_DEADLINE_MS`).
    pub sasl_handshake_deadline: Duration,
    /// Time an authenticated connection may wait between requests (`CONNECTIONS_IDLE_MS_MAX`).
    pub connections_idle: Duration,
    /// Connections open at once from one source address (`CONNECTIONS_PER_ADDRESS_MAX`).
    pub connections_per_address_max: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            tls: None,
            sasl_handshake_deadline: Duration::from_millis(SASL_HANDSHAKE_DEADLINE_MS),
            connections_idle: Duration::from_millis(CONNECTIONS_IDLE_MS_MAX),
            connections_per_address_max: CONNECTIONS_PER_ADDRESS_MAX,
        }
    }
}

/// Serves the Kafka protocol on `listener` until `shutdown` resolves. `advertised` is the
/// host and port that Metadata and FindCoordinator tell clients to connect to.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    advertised: (String, i32),
    options: ListenerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let producers = idempotence::ProducerRegistry::new();
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
    let addresses = Arc::new(ConnectionsByAddress::default());
    let tls = options.tls.clone().map(TlsAcceptor::from);
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
                    let Some(address_slot) = addresses.claim(peer.ip(), options.connections_per_address_max) else {
                        tracing::warn!(%peer, limit = options.connections_per_address_max, "kafka connection refused: too many connections from this address");
                        continue;
                    };
                    let _ = socket.set_nodelay(true);
                    let limits = connection::ConnectionLimits {
                        authenticate_by: tokio::time::Instant::now() + options.sasl_handshake_deadline,
                        idle: options.connections_idle,
                    };
                    let context = Arc::clone(&context);
                    let stop = stop_receiver.clone();
                    let tls = tls.clone();
                    connections.spawn(async move {
                        match tls {
                            None => connection::run(socket, peer, context, limits, stop).await,
                            Some(acceptor) => match tokio::time::timeout_at(limits.authenticate_by, acceptor.accept(socket)).await {
                                Ok(Ok(stream)) => connection::run(stream, peer, context, limits, stop).await,
                                Ok(Err(error)) => tracing::debug!(%peer, %error, "kafka tls handshake failed"),
                                Err(_) => tracing::debug!(%peer, "kafka tls handshake did not finish before the deadline"),
                            },
                        }
                        drop((permit, address_slot));
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

/// Open connections per source address. Every entry has at least one connection, so the map
/// holds at most `CONNECTIONS_MAX` entries.
#[derive(Default)]
struct ConnectionsByAddress(Mutex<HashMap<IpAddr, usize>>);

/// One counted connection; dropping it gives the count back.
struct AddressSlot {
    table: Arc<ConnectionsByAddress>,
    address: IpAddr,
}

impl ConnectionsByAddress {
    /// Counts one more connection from `address`, unless it already has `max`. An IPv4 client
    /// reaching an IPv6 socket counts as its IPv4 address.
    fn claim(self: &Arc<Self>, address: IpAddr, max: usize) -> Option<AddressSlot> {
        let address = address.to_canonical();
        // A poisoned lock still holds correct counts: nothing can panic while it is held.
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.get(&address).copied().unwrap_or(0);
        if count >= max {
            return None;
        }
        open.insert(address, count + 1);
        Some(AddressSlot { table: Arc::clone(self), address })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_slots_back_when_its_connections_close() {
        let table = Arc::new(ConnectionsByAddress::default());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let first = table.claim(v4, 2).expect("first");
        let second = table.claim(mapped, 2).expect("an IPv4-mapped address counts as its IPv4 address");
        assert!(table.claim(v4, 2).is_none(), "the third is over the limit");
        assert!(table.claim("192.0.2.8".parse().unwrap(), 2).is_some(), "other addresses have their own count");
        drop(first);
        let third = table.claim(v4, 2).expect("a closed connection frees its slot");
        drop((second, third));
        assert!(table.0.lock().unwrap().is_empty(), "no entry outlives its connections");
    }
}
