//! Exactly-once where Kafka producers retry (issue 12), against the real binary: an idempotent
//! batch sent again after `kill -9` and a restart is stored once and answered with its original
//! offset, including a batch the server stored but never acknowledged because it crashed; a
//! sequence gap after the restart is still refused; producer ids handed out before the crash
//! are never handed out again.
//!
//! The client here speaks the Kafka protocol directly (kafka-protocol's encoders, batches built
//! with the log's codec and stamped with a producer id, epoch and sequence), so each retry is
//! exactly the same bytes a real producer would resend.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use weft_log::batch::{BatchBuilder, ProducerStamp, set_producer};

use crate::server::Server;

/// Longest the client waits for one answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response the client reads.
const RESPONSE_BYTES_MAX: usize = 1024 * 1024;
/// Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER.
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

/// One authenticated Kafka connection, one request at a time.
struct KafkaClient {
    stream: TcpStream,
    correlation_id: i32,
}

impl KafkaClient {
    /// Connects to the server's Kafka listener and authenticates as `admin` (SASL/PLAIN with its token).
    fn connect(server: &Server) -> Self {
        let address: SocketAddr = server.kafka_address();
        let stream = TcpStream::connect_timeout(&address, CLIENT_TIMEOUT).expect("connecting to the Kafka listener");
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        let mut client = Self { stream, correlation_id: 0 };
        let handshake: SaslHandshakeResponse =
            client.call(ApiKey::SaslHandshake, 1, &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")));
        assert_eq!(handshake.error_code, 0, "PLAIN is offered");
        let token = Bytes::from(format!("\0admin\0{}", server.admin_token()));
        let authenticated: SaslAuthenticateResponse =
            client.call(ApiKey::SaslAuthenticate, 1, &SaslAuthenticateRequest::default().with_auth_bytes(token));
        assert_eq!(authenticated.error_code, 0, "the admin token authenticates");
        client
    }

    fn send<Req: Encodable>(&mut self, api: ApiKey, version: i16, body: &Req) {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("kafka-idempotence-test")));
        let mut out = BytesMut::new();
        header.encode(&mut out, api.request_header_version(version)).unwrap();
        body.encode(&mut out, version).unwrap();
        let mut frame = (out.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&out);
        self.stream.write_all(&frame).expect("sending a request");
    }

    /// The next response frame; `None` if the server closed the connection instead.
    fn receive<Resp: Decodable>(&mut self, api: ApiKey, version: i16) -> Option<Resp> {
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).ok()?;
        let length = i32::from_be_bytes(length) as usize;
        assert!(length <= RESPONSE_BYTES_MAX, "response of {length} bytes");
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).expect("a whole response");
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        let response = Resp::decode(&mut body, version).unwrap();
        assert!(!body.has_remaining(), "the response is read whole");
        Some(response)
    }

    fn call<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, version: i16, body: &Req) -> Resp {
        self.send(api, version, body);
        self.receive(api, version).expect("the server answers")
    }

    fn init_producer_id(&mut self) -> i64 {
        let request = InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000);
        let response: InitProducerIdResponse = self.call(ApiKey::InitProducerId, 1, &request);
        assert_eq!((response.error_code, response.producer_epoch), (0, 0));
        response.producer_id.0
    }

    fn send_produce(&mut self, stream: &str, batch: &[u8]) {
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(5_000).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from(stream.to_string())))
                .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(Bytes::copy_from_slice(batch)))]),
        ]);
        self.send(ApiKey::Produce, 8, &request);
    }

    /// Produces `batch` to partition 0 of `stream` with acks=all; returns (error code, base offset).
    fn produce(&mut self, stream: &str, batch: &[u8]) -> (i16, i64) {
        self.send_produce(stream, batch);
        let response: ProduceResponse = self.receive(ApiKey::Produce, 8).expect("the server answers the produce");
        let answer = &response.responses[0].partition_responses[0];
        (answer.error_code, answer.base_offset)
    }
}

/// A batch of `n_records` records stamped with a producer id, epoch 0 and `base_sequence`.
fn idempotent_batch(producer_id: i64, base_sequence: i32, n_records: u32) -> Vec<u8> {
    let mut builder = BatchBuilder::new(1_700_000_000_000);
    for record_idx in 0..n_records {
        let value = format!("{{\"sequence\":{}}}", base_sequence + record_idx as i32);
        builder.push::<&str>(1_700_000_000_000, None, Some(value.as_bytes()), &[]);
    }
    let mut batch = builder.finish();
    set_producer(&mut batch, ProducerStamp { producer_id, producer_epoch: 0, base_sequence });
    batch
}

/// Proves: retries after kill -9 and a restart, of each of the producer's last batches, are
/// answered with their original base offsets and stored once; the next sequence appends after
/// them.
#[test]
fn idempotent_retries_after_kill_9_are_stored_once_with_their_original_offsets() {
    let mut server = Server::start();
    server.create_stream("payments", 1, "always");
    let mut client = KafkaClient::connect(&server);
    let producer_id = client.init_producer_id();
    let batches = [idempotent_batch(producer_id, 0, 3), idempotent_batch(producer_id, 3, 2), idempotent_batch(producer_id, 5, 1)];
    assert_eq!(client.produce("payments", &batches[0]), (0, 0));
    assert_eq!(client.produce("payments", &batches[1]), (0, 3));
    assert_eq!(client.produce("payments", &batches[2]), (0, 5));
    assert_eq!(client.produce("payments", &batches[2]), (0, 5), "a retry before the crash is a duplicate too");

    server.restart_after_kill_9();
    let mut client = KafkaClient::connect(&server);
    assert_eq!(client.produce("payments", &batches[2]), (0, 5), "the last batch, retried after the restart");
    assert_eq!(client.produce("payments", &batches[0]), (0, 0), "an older batch, retried after the restart");
    assert_eq!(client.produce("payments", &batches[1]), (0, 3));
    assert_eq!(server.next_offsets("payments"), vec![6], "every batch is stored once");
    assert_eq!(client.produce("payments", &idempotent_batch(producer_id, 6, 2)), (0, 6), "the next sequence appends");
    let sequences: Vec<u64> =
        server.read_partition("payments", 0).iter().map(|event| event["event"]["data"]["sequence"].as_u64().unwrap()).collect();
    assert_eq!(sequences, (0..8).collect::<Vec<u64>>());
}

/// Proves: a batch the server stored durably but crashed before acknowledging (its producer
/// saw the connection drop) is not stored a second time when the producer retries it after
/// the restart; the retry is answered with the offset it was stored at.
#[test]
fn a_batch_stored_but_unacknowledged_before_a_crash_is_stored_once_when_retried() {
    let mut server = Server::start_with_env(&[("WEFT_CRASH_AT", "kafka.produce.appended")]);
    server.create_stream("payments", 1, "always");
    let mut client = KafkaClient::connect(&server);
    let producer_id = client.init_producer_id();
    let batch = idempotent_batch(producer_id, 0, 4);
    client.send_produce("payments", &batch);
    assert!(client.receive::<ProduceResponse>(ApiKey::Produce, 8).is_none(), "the server crashed before answering");
    assert!(!server.expect_exit().success(), "the server aborted at the crash point");

    server.clear_serve_env();
    server.start_again();
    assert_eq!(server.next_offsets("payments"), vec![4], "the batch was stored before the crash");
    let mut client = KafkaClient::connect(&server);
    assert_eq!(client.produce("payments", &batch), (0, 0), "the retry gets the original offset");
    assert_eq!(server.next_offsets("payments"), vec![4], "and is not stored again");
}

/// Proves: after kill -9 and a restart, a batch whose sequence leaves a gap after the last one
/// stored is still refused with OUT_OF_ORDER_SEQUENCE_NUMBER and stores nothing.
#[test]
fn an_out_of_order_sequence_after_kill_9_is_refused() {
    let mut server = Server::start();
    server.create_stream("payments", 1, "always");
    let mut client = KafkaClient::connect(&server);
    let producer_id = client.init_producer_id();
    assert_eq!(client.produce("payments", &idempotent_batch(producer_id, 0, 2)), (0, 0));

    server.restart_after_kill_9();
    let mut client = KafkaClient::connect(&server);
    let (error_code, base_offset) = client.produce("payments", &idempotent_batch(producer_id, 5, 1));
    assert_eq!((error_code, base_offset), (OUT_OF_ORDER_SEQUENCE_NUMBER, -1));
    assert_eq!(server.next_offsets("payments"), vec![2], "nothing stored");
    assert_eq!(client.produce("payments", &idempotent_batch(producer_id, 2, 1)), (0, 2), "the right sequence appends");
}

/// Proves: InitProducerId after kill -9 and a restart returns ids never handed out before.
#[test]
fn producer_ids_handed_out_before_kill_9_are_never_handed_out_again() {
    let mut server = Server::start();
    let mut handed_out = Vec::new();
    for _run_idx in 0..3 {
        let mut client = KafkaClient::connect(&server);
        let before_max = handed_out.iter().copied().max().unwrap_or(i64::MIN);
        let run: Vec<i64> = (0..5).map(|_| client.init_producer_id()).collect();
        assert!(run.iter().all(|&id| id > before_max), "ids after the restart are above every earlier one: {run:?} vs {handed_out:?}");
        handed_out.extend(run);
        server.restart_after_kill_9();
    }
    let mut distinct = handed_out.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), handed_out.len(), "no id twice: {handed_out:?}");
}
