//! The listener's side of the edge hardening rules (issue 11), proven through the Produce handler
//! with record batches built as a Kafka producer would: Weft's own headers cannot be forged, record
//! timestamps from the future are refused, and a JSON value with a repeated key is refused on a
//! governed stream. The HTTP side is proven through the binary in `crates/weft/tests/it/edge_hardening.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{ProduceRequest, TopicName};
use weft_core::guard::Caller;
use weft_log::Clock;
use weft_log::batch::BatchBuilder;

use super::produce;
use crate::Context;
use crate::cluster::str_bytes;
use crate::idempotence::ProducerRegistry;

const CONTRACT: &str = r#"apiVersion: v3.1.0
kind: DataContract
id: urn:test:payments
version: 1.0.0
status: active
schema:
  - name: Payment
    physicalType: topic
    physicalName: payments
    properties:
      - name: amount
        logicalType: number
        required: true
      - name: email
        logicalType: string
        classification: pii
"#;

/// The broker's time in these tests.
const NOW_MS: i64 = 1_700_000_000_000;
const HOUR_MS: i64 = 3_600_000;

struct FixedClock(AtomicI64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A broker at `NOW_MS` with the governed stream `payments` and the ungoverned stream `plain`.
fn context(dir: &std::path::Path) -> Context {
    let broker = weft_core::Broker::open(dir, Arc::new(FixedClock(AtomicI64::new(NOW_MS)))).unwrap();
    let admin = admin();
    let source = weft_core::mesh::ApplySource { name: "payments.odcs.yaml".into(), text: CONTRACT.into() };
    broker.apply(vec![source], false, &admin).unwrap();
    let plain = weft_core::StreamConfig {
        name: "plain".into(),
        partitions: 1,
        key: None,
        retention_ms: None,
        retention_bytes: None,
        fsync: weft_log::FsyncPolicy::Always,
        segment_bytes: weft_log::SEGMENT_BYTES_DEFAULT,
        created_at_ms: 0,
    };
    broker.create_stream(plain).unwrap();
    Context {
        broker: Arc::clone(&broker),
        advertised_host: "127.0.0.1".into(),
        advertised_port: 9092,
        group_protocol: crate::group_protocol::KafkaGroupProtocol::new(Arc::clone(&broker)),
        producers: ProducerRegistry::new(),
    }
}

fn admin() -> Caller {
    Caller::without_token("admin", "test")
}

/// One record: (timestamp, value, headers).
type TestRecord<'a> = (i64, &'a [u8], &'a [(&'a str, &'a [u8])]);

/// Produces one batch of `records` to partition 0 of `stream` (Produce v8) and returns the answer.
async fn produce_batch(context: &Context, stream: &str, records: &[TestRecord<'_>]) -> PartitionProduceResponse {
    let mut builder = BatchBuilder::new(records.first().map_or(NOW_MS, |record| record.0));
    for (timestamp_ms, value, headers) in records {
        builder.push(*timestamp_ms, None, Some(value), headers);
    }
    let request = ProduceRequest::default().with_acks(-1).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(str_bytes(stream.to_string())))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(builder.finish())))]),
    ]);
    let response = produce(context, &admin(), 8, request).await.expect("acks -1 is answered");
    response.responses[0].partition_responses[0].clone()
}

fn message(response: &PartitionProduceResponse) -> String {
    response.error_message.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn stored(context: &Context, stream: &str) -> u64 {
    context.broker.stream(stream).unwrap().partition_stats(0).unwrap().visible_next_offset
}

/// Proves a Kafka producer cannot forge Weft's own record headers: a batch with a `weft_*` header
/// (dead-letter metadata, say) or a `ce_weft*` header (a reserved CloudEvents attribute) is refused
/// as a whole with INVALID_RECORD and `event.reserved_header` naming the record, on governed and
/// ungoverned streams alike, and nothing is stored; CloudEvents headers of other names pass.
#[tokio::test]
async fn kafka_producers_cannot_forge_weft_headers() {
    let dir = tempfile::tempdir().unwrap();
    let context = context(dir.path());
    let value: &[u8] = br#"{"amount":1}"#;
    for stream in ["plain", "payments"] {
        for forged in ["weft_dlq_reason", "WEFT_DLQ_PRODUCER", "weft_anything", "ce_weftproducer"] {
            let headers: [(&str, &[u8]); 2] = [("ce_id", b"e-1"), (forged, b"admin")];
            let response = produce_batch(&context, stream, &[(NOW_MS, value, &[]), (NOW_MS, value, &headers)]).await;
            assert_eq!(response.error_code, ResponseError::InvalidRecord.code(), "{stream} {forged}: {}", message(&response));
            assert!(message(&response).starts_with("event.reserved_header"), "{}", message(&response));
            assert_eq!(response.record_errors.len(), 1, "{stream} {forged}");
            assert_eq!(response.record_errors[0].batch_index, 1);
            assert_eq!(stored(&context, stream), 0, "{stream}: nothing stored");
        }
    }
    let headers: [(&str, &[u8]); 2] = [("ce_id", b"e-1"), ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")];
    let response = produce_batch(&context, "plain", &[(NOW_MS, value, &headers)]).await;
    assert_eq!(response.error_code, 0, "{}", message(&response));
    assert!(
        context.broker.dead_letters("payments", None, Default::default(), 10).await.unwrap().letters.is_empty(),
        "forged headers are not dead letters"
    );
}

/// Proves a record whose timestamp is more than the allowed skew (an hour by default,
/// `Broker::set_max_future_time_ms` to change it) ahead of the broker's clock is refused with
/// INVALID_TIMESTAMP, Kafka's code for a timestamp out of the acceptable range, and nothing of its
/// batch is stored; timestamps within the skew, or in the past, are accepted.
#[tokio::test]
async fn kafka_records_from_the_future_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let context = context(dir.path());
    let value: &[u8] = br#"{"amount":1}"#;
    let response = produce_batch(&context, "plain", &[(NOW_MS, value, &[]), (NOW_MS + 2 * HOUR_MS, value, &[])]).await;
    assert_eq!(response.error_code, ResponseError::InvalidTimestamp.code(), "{}", message(&response));
    assert!(message(&response).starts_with("event.time_in_future"), "{}", message(&response));
    assert_eq!(stored(&context, "plain"), 0);
    let response = produce_batch(&context, "payments", &[(NOW_MS + 2 * HOUR_MS, value, &[])]).await;
    assert_eq!(response.error_code, ResponseError::InvalidTimestamp.code(), "{}", message(&response));
    let response = produce_batch(&context, "plain", &[(NOW_MS - 24 * HOUR_MS, value, &[]), (NOW_MS + HOUR_MS / 2, value, &[])]).await;
    assert_eq!(response.error_code, 0, "{}", message(&response));
    context.broker.set_max_future_time_ms(Some(60_000));
    let response = produce_batch(&context, "plain", &[(NOW_MS + HOUR_MS / 2, value, &[])]).await;
    assert_eq!(response.error_code, ResponseError::InvalidTimestamp.code(), "{}", message(&response));
    context.broker.set_max_future_time_ms(None);
    let response = produce_batch(&context, "plain", &[(NOW_MS + 1000 * HOUR_MS, value, &[])]).await;
    assert_eq!(response.error_code, 0, "no bound when the skew is unlimited: {}", message(&response));
}

/// Proves a record value with a repeated key is refused on a governed stream with INVALID_RECORD
/// and `event.duplicate_key` at the repeated member, and is dead-lettered like any other refusal,
/// so what the contract checked is what every reader (and the masker) sees.
#[tokio::test]
async fn a_kafka_record_with_a_repeated_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let context = context(dir.path());
    let repeated: &[u8] = br#"{"amount":1,"email":"a@example.com","email":"b@example.com"}"#;
    let response = produce_batch(&context, "payments", &[(NOW_MS, repeated, &[])]).await;
    assert_eq!(response.error_code, ResponseError::InvalidRecord.code(), "{}", message(&response));
    assert!(message(&response).starts_with("event.duplicate_key at /email"), "{}", message(&response));
    assert_eq!(stored(&context, "payments"), 0);
    let letters = context.broker.dead_letters("payments", None, Default::default(), 10).await.unwrap().letters;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, "event.duplicate_key");
}
