//! The Kafka listener's limits on connections, through real sockets against `weft_kafka::serve`
//! on loopback: what an unauthenticated client may send and for how long, how many connections
//! one address may hold, and when an idle connection is closed.
//!
//! The durations are shortened through `ListenerOptions` so that no test waits seconds; every
//! wait for the server to close a connection reads until end of stream under a generous
//! timeout, never a sleep.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ProduceRequest, RequestHeader, SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_kafka::frame::{PRE_AUTH_REQUEST_BYTES_MAX, REQUEST_BYTES_MAX};
use weft_kafka::{CONNECTIONS_IDLE_MS_MAX, CONNECTIONS_PER_ADDRESS_MAX, ListenerOptions, SASL_HANDSHAKE_DEADLINE_MS};

/// Longest any test waits for the server to answer or to close a connection.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortened deadlines the tests run with.
const SHORT_DEADLINE: Duration = Duration::from_millis(400);

/// A listener on a fresh data directory; the server stops when this is dropped.
struct Listener {
    address: std::net::SocketAddr,
    admin_token: String,
    _data_dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(options: ListenerOptions, auth: bool) -> Listener {
    let data_dir = tempfile::tempdir().expect("a temporary data directory");
    let broker = weft_core::Broker::open(data_dir.path(), Arc::new(weft_log::SystemClock)).expect("opening the broker");
    if !auth {
        broker.guard().disable();
    }
    let admin_token = read_admin_token(data_dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding a loopback port");
    let address = listener.local_addr().expect("the listener's address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let advertised = ("127.0.0.1".to_string(), address.port() as i32);
    tokio::spawn(weft_kafka::serve(listener, broker, advertised, options, async move {
        let _ = stopped.await;
    }));
    Listener { address, admin_token, _data_dir: data_dir, _stop: stop }
}

fn read_admin_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.token")).expect("the broker wrote its admin token").trim().to_string()
}

/// A request frame, length prefix included.
fn request<R: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &R) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("listener-limits-test")));
    let mut out = BytesMut::new();
    header.encode(&mut out, api.request_header_version(version)).expect("encoding the header");
    body.encode(&mut out, version).expect("encoding the body");
    let mut frame = (out.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&out);
    frame
}

/// A Produce request whose frame is about `records_bytes` long (the records are not a valid
/// batch: the answer is a per-partition error, which still proves the frame was read).
fn produce_request(records_bytes: usize) -> Vec<u8> {
    let records = Bytes::from(vec![0u8; records_bytes]);
    let body = ProduceRequest::default().with_acks(-1).with_timeout_ms(5_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("no-such-stream")))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))]),
    ]);
    request(ApiKey::Produce, 8, 7, &body)
}

/// Reads one response frame and returns its correlation id; `None` if the server closed the
/// connection first.
async fn read_response(stream: &mut TcpStream) -> Option<i32> {
    let read = async {
        let mut length = [0u8; 4];
        stream.read_exact(&mut length).await.ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
        stream.read_exact(&mut body).await.ok()?;
        Some(i32::from_be_bytes([body[0], body[1], body[2], body[3]]))
    };
    tokio::time::timeout(CLIENT_TIMEOUT, read).await.expect("the server answers or closes within the client timeout")
}

/// Reads until the server closes the connection (end of stream or reset) and returns how many
/// bytes it sent before that. Panics if it is still open after `CLIENT_TIMEOUT`.
async fn read_until_closed(stream: &mut TcpStream) -> usize {
    let mut received = 0;
    let mut buffer = [0u8; 4096];
    let closed = tokio::time::timeout(CLIENT_TIMEOUT, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server did not close the connection within {CLIENT_TIMEOUT:?}");
    received
}

/// Sends an ApiVersions request and expects its answer.
async fn api_versions_round_trip(stream: &mut TcpStream, correlation_id: i32) -> bool {
    let frame = request(ApiKey::ApiVersions, 0, correlation_id, &ApiVersionsRequest::default());
    stream.write_all(&frame).await.is_ok() && read_response(stream).await == Some(correlation_id)
}

/// SaslHandshake v1 and SaslAuthenticate with PLAIN as `admin`.
async fn authenticate(stream: &mut TcpStream, admin_token: &str) {
    let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    stream.write_all(&request(ApiKey::SaslHandshake, 1, 1, &handshake)).await.expect("sending SaslHandshake");
    assert_eq!(read_response(stream).await, Some(1), "SaslHandshake is answered");
    let token = Bytes::from(format!("\0admin\0{admin_token}"));
    stream.write_all(&request(ApiKey::SaslAuthenticate, 1, 2, &SaslAuthenticateRequest::default().with_auth_bytes(token))).await.unwrap();
    assert_eq!(read_response(stream).await, Some(2), "SaslAuthenticate is answered");
}

#[test]
fn the_default_limits_are_kafkas() {
    assert_eq!(PRE_AUTH_REQUEST_BYTES_MAX, 524_288, "sasl.server.max.receive.size");
    assert_eq!(CONNECTIONS_IDLE_MS_MAX, 600_000, "connections.max.idle.ms");
    assert_eq!(SASL_HANDSHAKE_DEADLINE_MS, 10_000);
    assert_eq!(CONNECTIONS_PER_ADDRESS_MAX, 64);
    let options = ListenerOptions::default();
    assert!(options.tls.is_none(), "plaintext unless a certificate is given");
    assert_eq!(options.sasl_handshake_deadline, Duration::from_millis(SASL_HANDSHAKE_DEADLINE_MS));
}

/// Proves an unauthenticated client that announces a 100 MiB frame is disconnected as soon as
/// the length prefix arrives: the test never sends the body, so a server that waited for it
/// (as it did before, 100 MiB being under `REQUEST_BYTES_MAX`) would keep the connection open.
#[tokio::test]
async fn an_unauthenticated_100_mib_frame_is_refused_before_its_body_is_read() {
    let server = start(ListenerOptions::default(), true).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let announced = 100 * 1024 * 1024;
    assert!(announced <= REQUEST_BYTES_MAX, "within the limit for authenticated connections");
    stream.write_all(&(announced as i32).to_be_bytes()).await.unwrap();
    assert_eq!(read_until_closed(&mut stream).await, 0, "closed without a response");
}

/// Proves a real request over 512 KiB from an unauthenticated client is refused on its length
/// alone (only half of it is sent), and that once the connection has authenticated the same
/// request is read and answered.
#[tokio::test]
async fn frames_over_512_kib_are_answered_only_after_authentication() {
    let server = start(ListenerOptions::default(), true).await;
    let large = produce_request(PRE_AUTH_REQUEST_BYTES_MAX + 64 * 1024);

    let mut unauthenticated = TcpStream::connect(server.address).await.unwrap();
    // Half the frame: a server that read bodies before judging their length would wait for the rest.
    // It may close before even that half is written, so a failed write is expected.
    let _ = unauthenticated.write_all(&large[..large.len() / 2]).await;
    assert_eq!(read_until_closed(&mut unauthenticated).await, 0, "refused without a response");

    let mut authenticated = TcpStream::connect(server.address).await.unwrap();
    authenticate(&mut authenticated, &server.admin_token).await;
    authenticated.write_all(&large).await.unwrap();
    assert_eq!(read_response(&mut authenticated).await, Some(7), "the large Produce is answered");
}

/// Proves a client that keeps sending ApiVersions but never authenticates is disconnected at
/// the authentication deadline (talking does not extend it), and that a connection that did
/// authenticate stays open past it.
#[tokio::test]
async fn a_connection_that_does_not_authenticate_by_the_deadline_is_closed() {
    let options = ListenerOptions { sasl_handshake_deadline: SHORT_DEADLINE, ..ListenerOptions::default() };
    let server = start(options, true).await;

    let started = Instant::now();
    let mut chatty = TcpStream::connect(server.address).await.unwrap();
    let mut answered = 0;
    while api_versions_round_trip(&mut chatty, answered).await {
        answered += 1;
    }
    let lasted = started.elapsed();
    assert!(answered > 0, "ApiVersions is answered before authentication");
    assert!(lasted >= SHORT_DEADLINE - Duration::from_millis(50), "closed at the deadline, not before: {lasted:?}");

    let mut silent = TcpStream::connect(server.address).await.unwrap();
    let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    silent.write_all(&request(ApiKey::SaslHandshake, 1, 1, &handshake)).await.unwrap();
    assert_eq!(read_response(&mut silent).await, Some(1));
    read_until_closed(&mut silent).await;

    let started = Instant::now();
    let mut authenticated = TcpStream::connect(server.address).await.unwrap();
    authenticate(&mut authenticated, &server.admin_token).await;
    let mut correlation_id = 10;
    while started.elapsed() < SHORT_DEADLINE * 2 {
        assert!(api_versions_round_trip(&mut authenticated, correlation_id).await, "an authenticated connection outlives the deadline");
        correlation_id += 1;
    }
}

/// Proves connections beyond the per-address limit are closed on accept, that the ones within
/// it are served, and that a closed connection gives its slot back.
#[tokio::test]
async fn connections_beyond_the_per_address_limit_are_refused() {
    let limit = 3;
    let options = ListenerOptions { connections_per_address_max: limit, ..ListenerOptions::default() };
    let server = start(options, true).await;
    let mut open = Vec::new();
    for connection_idx in 0..limit {
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        assert!(api_versions_round_trip(&mut stream, connection_idx as i32).await, "connection {connection_idx} is served");
        open.push(stream);
    }
    let mut over = TcpStream::connect(server.address).await.unwrap();
    assert_eq!(read_until_closed(&mut over).await, 0, "the connection over the limit is closed at once");
    for (connection_idx, stream) in open.iter_mut().enumerate() {
        assert!(api_versions_round_trip(stream, 100 + connection_idx as i32).await, "connection {connection_idx} is still served");
    }

    drop(open.pop());
    // The server notices the close asynchronously: retry until a new connection is served.
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        if api_versions_round_trip(&mut stream, 200).await {
            break;
        }
        assert!(Instant::now() < deadline, "the closed connection's slot was not given back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Proves an authenticated connection that sends no request for the idle limit is closed,
/// here with authentication off, where connections start authenticated (and so are not held to
/// the authentication deadline).
#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_limit() {
    let options = ListenerOptions {
        connections_idle: SHORT_DEADLINE,
        sasl_handshake_deadline: Duration::from_millis(1),
        ..ListenerOptions::default()
    };
    let server = start(options, false).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let started = Instant::now();
    assert!(api_versions_round_trip(&mut stream, 1).await, "served without SASL under --auth off");
    read_until_closed(&mut stream).await;
    assert!(started.elapsed() >= SHORT_DEADLINE - Duration::from_millis(50), "closed after the idle limit: {:?}", started.elapsed());
}
