//! Produce and InitProducerId: each partition's record batch is checked and appended to the
//! stream's partition exactly as the producer encoded it (compressed or not), through
//! `Broker::append_batch`, which returns once the batch is durable under the stream's fsync
//! policy. acks 0 gets no response, acks 1 and -1 are the same here (one node).
//!
//! Idempotent producers (`idempotence`): InitProducerId hands out producer ids that never
//! repeat, across restarts too, and each idempotent batch is checked against what its producer
//! appended (rebuilt from the log after a restart): a duplicate of one of its last batches is
//! answered with the offset it got the first time instead of being appended again, a sequence
//! that does not follow the last one gets OUT_OF_ORDER_SEQUENCE_NUMBER, and an older epoch gets
//! INVALID_PRODUCER_EPOCH.
//!
//! Governance: producing needs `produce` on the stream (TOPIC_AUTHORIZATION_FAILED), never
//! granted on Weft's own `_weft.*` streams; the appended records are attributed to the
//! authenticated principal. On a stream governed by a data contract every record is
//! validated before the batch is stored (`verify_batch`). On every stream, a batch with a
//! record that carries a header Weft reserves (`weft_*`, `ce_weft*`) is refused with
//! INVALID_RECORD (`event.reserved_header`), and one with a timestamp further in the future
//! than the server allows with INVALID_TIMESTAMP (`event.time_in_future`); neither is
//! dead-lettered.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId};
use weft_core::guard::Caller;
use weft_core::kafka_support::{RefusedRecord, check_record_headers};
use weft_core::stream::Governance;
use weft_core::{ProduceContext, Stream, VerifiedBatch};
use weft_log::batch::{BATCH_BYTES_MAX, BatchError, Record};

use crate::cluster::str_bytes;
use crate::errors::partition_error_code;
use crate::idempotence::SequenceCheck;
use crate::{Context, authz};

pub async fn init_producer_id(context: &Context, request: InitProducerIdRequest) -> InitProducerIdResponse {
    if request.transactional_id.is_some() {
        // Transactions are not supported; INVALID_REQUEST makes clients fail fast.
        return InitProducerIdResponse::default().with_error_code(ResponseError::InvalidRequest.code()).with_producer_id(ProducerId(-1));
    }
    match context.producers.next_producer_id(&context.broker).await {
        Ok(producer_id) => InitProducerIdResponse::default().with_producer_id(ProducerId(producer_id)).with_producer_epoch(0),
        Err(error) => {
            // The metadata store could not record the reservation: no id is safe to hand out.
            // COORDINATOR_NOT_AVAILABLE is retriable, so clients ask again.
            tracing::error!(%error, "producer ids could not be reserved");
            InitProducerIdResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}

/// Handles a Produce request; `None` when the producer asked for no acknowledgement.
pub async fn produce(context: &Context, caller: &Caller, version: i16, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = request.acks;
    let transactional = request.transactional_id.is_some();
    let mut pending = Vec::new();
    for topic in request.topic_data {
        let stream = match context.broker.stream(topic.name.0.as_str()) {
            Err(error) => Err(Refusal::new(partition_error_code(&error), error.message)),
            Ok(stream) => match authz::produce_to_stream(context, caller, stream.name()).await {
                Err((error_code, message)) => Err(Refusal::new(error_code, message)),
                Ok(()) => Ok(stream),
            },
        };
        for partition in topic.partition_data {
            pending.push((topic.name.clone(), partition.index, stream.clone(), partition.records));
        }
    }
    let results = join_all(pending.into_iter().map(|(name, partition, stream, records)| async move {
        let outcome = match stream {
            Err(refusal) => Err(refusal),
            Ok(_) if transactional => Err(Refusal::new(ResponseError::InvalidRequest.code(), "transactions are not supported".to_string())),
            Ok(stream) => produce_partition(context, caller, &stream, partition, records).await,
        };
        (name, partition, outcome)
    }))
    .await;
    if acks == 0 {
        return None;
    }
    let mut topics: Vec<TopicProduceResponse> = Vec::new();
    for (name, partition, outcome) in results {
        let mut response = PartitionProduceResponse::default().with_index(partition);
        match outcome {
            Ok((base_offset, log_start_offset)) => {
                response.base_offset = base_offset as i64;
                if version >= 5 {
                    response.log_start_offset = log_start_offset as i64;
                }
            }
            Err(refusal) => {
                response.error_code = refusal.error_code;
                response.base_offset = -1;
                if version >= 8 {
                    response.error_message = Some(str_bytes(refusal.message));
                    response.record_errors = refusal
                        .record_errors
                        .into_iter()
                        .map(|(batch_index, message)| {
                            BatchIndexAndErrorMessage::default()
                                .with_batch_index(batch_index)
                                .with_batch_index_error_message(Some(str_bytes(message)))
                        })
                        .collect();
                }
            }
        }
        match topics.iter_mut().find(|topic| topic.name == name) {
            Some(topic) => topic.partition_responses.push(response),
            None => topics.push(TopicProduceResponse::default().with_name(name).with_partition_responses(vec![response])),
        }
    }
    Some(ProduceResponse::default().with_responses(topics))
}

/// Why a partition's batch was not stored: the Kafka error code, the message (Produce v8+)
/// and, for records a contract refused, (index in the batch, reason) of each (v8+).
#[derive(Debug, Clone)]
struct Refusal {
    error_code: i16,
    message: String,
    record_errors: Vec<(i32, String)>,
}

impl Refusal {
    fn new(error_code: i16, message: String) -> Self {
        Self { error_code, message, record_errors: Vec::new() }
    }
}

impl From<(i16, String)> for Refusal {
    fn from((error_code, message): (i16, String)) -> Self {
        Self::new(error_code, message)
    }
}

type PartitionOutcome = Result<(u64, u64), Refusal>;

/// Checks and appends one partition's batch; returns (base offset, log start offset).
/// The batch is verified once (framing, checksum, decompression within bounds, every record),
/// on a blocking thread and, on a governed stream, validated against the contract in the same
/// pass; the verified batch then goes to the log without being parsed again.
async fn produce_partition(
    context: &Context,
    caller: &Caller,
    stream: &Arc<Stream>,
    partition: i32,
    records: Option<Bytes>,
) -> PartitionOutcome {
    let corrupt = |message: String| (ResponseError::CorruptMessage.code(), message);
    let partition = u32::try_from(partition)
        .ok()
        .filter(|&partition| stream.partition_stats(partition).is_ok())
        .ok_or((ResponseError::UnknownTopicOrPartition.code(), format!("partition {partition} does not exist")))?;
    let records = records.ok_or_else(|| corrupt("produce request without records".into()))?;
    if records.len() > BATCH_BYTES_MAX {
        return Err(Refusal::new(
            ResponseError::MessageTooLarge.code(),
            format!("batch of {} bytes is over {BATCH_BYTES_MAX}", records.len()),
        ));
    }
    let governance = stream.governance();
    let (batch, refused) = verify_batch(context, stream, governance.clone(), records).await?;
    let refused = match refused {
        Refusals::Batch(refusal) => return Err(refusal),
        Refusals::Records(refused) => refused,
    };
    if let Some(governance) = governance
        && !refused.is_empty()
    {
        return Err(refuse_invalid_records(context, caller, stream, &governance, &batch, refused).await);
    }
    let (stamp, n_records) = (batch.producer(), batch.n_records());
    let producer = ProduceContext { producer: caller.principal.clone() };
    let log_start_offset = || stream.partition_stats(partition).map_or(0, |stats| stats.log_start_offset);
    if stamp.producer_id < 0 {
        let appended = context.broker.append_batch_as(stream, partition, batch, &producer).await;
        return appended
            .map(|appended| (appended.base_offset, log_start_offset()))
            .map_err(|error| Refusal::new(partition_error_code(&error), error.message));
    }
    let state = context
        .producers
        .state(&context.broker, stream, partition, stamp.producer_id)
        .await
        .map_err(|error| Refusal::new(partition_error_code(&error), format!("producer state unavailable: {}", error.message)))?;
    let mut state = state.lock().await;
    state.forget_if_expired(context.broker.now_ms());
    match state.check(stamp, n_records) {
        SequenceCheck::Duplicate { base_offset } => Ok((base_offset, log_start_offset())),
        SequenceCheck::OutOfOrder => Err(Refusal::new(
            ResponseError::OutOfOrderSequenceNumber.code(),
            format!("sequence {} does not follow the last one appended", stamp.base_sequence),
        )),
        SequenceCheck::StaleEpoch => {
            Err(Refusal::new(ResponseError::InvalidProducerEpoch.code(), format!("producer epoch {} is stale", stamp.producer_epoch)))
        }
        SequenceCheck::Append => {
            let appended = context
                .broker
                .append_batch_as(stream, partition, batch, &producer)
                .await
                .map_err(|error| Refusal::new(partition_error_code(&error), error.message))?;
            state.remember(stamp, n_records, appended.base_offset);
            state.last_write_ms = context.broker.now_ms();
            // A test crash point: the batch is stored, its producer was never told.
            weft_core::failpoint::crash("kafka.produce.appended");
            Ok((appended.base_offset, log_start_offset()))
        }
    }
}

/// A record a contract refused: its index in the batch and why.
type RecordRefusal = (usize, weft_core::Error);

/// What verification refused in a well-formed batch.
enum Refusals {
    /// Refused whatever the stream (a reserved header, a time in the future): the batch is
    /// refused as a whole and nothing is dead-lettered, since the producer, not the data,
    /// broke the rule (and a dead letter would keep a forged header).
    Batch(Refusal),
    /// Records the stream's contract refused (empty when all passed): they are dead-lettered.
    Records(Vec<RecordRefusal>),
}

/// Verifies a produced batch once, on a blocking thread: exactly one well-formed RecordBatch
/// v2, not transactional, whose records (decompressed within bounds) all decode with offset
/// deltas 0, 1, 2, ...; in the same pass every record's headers (`check_record_headers`) and
/// timestamp (`Broker::event_time_limit`, read once per batch, and the batch's max timestamp, which the time index
/// keeps) are checked and, on a governed stream, its value is validated against the contract.
async fn verify_batch(
    context: &Context,
    stream: &Arc<Stream>,
    governance: Option<Arc<Governance>>,
    records: Bytes,
) -> Result<(VerifiedBatch, Refusals), Refusal> {
    let broker = Arc::clone(&context.broker);
    let task_stream = Arc::clone(stream);
    let time_limit = broker.event_time_limit();
    tokio::task::spawn_blocking(move || {
        let mut refused: Vec<RecordRefusal> = Vec::new();
        let mut reserved: Vec<RecordRefusal> = Vec::new();
        let mut future: Vec<RecordRefusal> = Vec::new();
        let batch = VerifiedBatch::verify_visiting(records.to_vec(), |record_idx, record| {
            if let Err(error) = check_record_headers(record) {
                reserved.push((record_idx, error));
            }
            if let Err(error) = time_limit.check(record.timestamp_ms) {
                future.push((record_idx, error));
            }
            if let Some(governance) = &governance
                && let Err(error) = broker.check_kafka_value(&task_stream, governance, record.value)
            {
                refused.push((record_idx, error));
            }
        })
        .map_err(|error| match error {
            BatchError::DecompressedTooLarge { .. } => Refusal::new(ResponseError::MessageTooLarge.code(), error.to_string()),
            BatchError::TrailingBytes { .. } => {
                Refusal::new(ResponseError::InvalidRecord.code(), "a produce request carries exactly one record batch per partition".into())
            }
            BatchError::ReservedAttributes(_) => {
                Refusal::new(ResponseError::InvalidRecord.code(), format!("record batch refused: {error}"))
            }
            other => Refusal::new(ResponseError::CorruptMessage.code(), format!("record batch refused: {other}")),
        })?;
        let view = batch.view();
        if view.is_transactional() || view.is_control() {
            return Err(Refusal::new(ResponseError::InvalidRecord.code(), "transactional and control batches are not supported".into()));
        }
        if future.is_empty()
            && let Err(error) = time_limit.check(view.max_timestamp())
        {
            future.push((view.record_count().saturating_sub(1) as usize, error));
        }
        if !reserved.is_empty() {
            return Ok((batch, Refusals::Batch(record_refusal(ResponseError::InvalidRecord.code(), reserved))));
        }
        if !future.is_empty() {
            // INVALID_TIMESTAMP is Kafka's own answer to a timestamp outside the broker's
            // `message.timestamp.*` bounds.
            return Ok((batch, Refusals::Batch(record_refusal(ResponseError::InvalidTimestamp.code(), future))));
        }
        Ok((batch, Refusals::Records(refused)))
    })
    .await
    .map_err(|error| Refusal::new(ResponseError::UnknownServerError.code(), format!("verification task failed: {error}")))?
}

/// A batch refused for some of its records: the first reason as the message, each record's
/// reason in `record_errors` (Produce v8+).
fn record_refusal(error_code: i16, refused: Vec<RecordRefusal>) -> Refusal {
    let record_errors: Vec<(i32, String)> = refused.iter().map(|(record_idx, error)| (*record_idx as i32, reason_line(error))).collect();
    let mut message = record_errors[0].1.clone();
    if record_errors.len() > 1 {
        message.push_str(&format!(" (and {} more invalid records)", record_errors.len() - 1));
    }
    Refusal { error_code, message, record_errors }
}

/// A batch with records its contract refused is refused as a whole with INVALID_RECORD, as
/// Kafka refuses batches that fail broker-side validation, and the failing records go to the
/// dead-letter stream with their reasons, exactly as over HTTP. The records that passed are
/// not stored: the producer resends them.
async fn refuse_invalid_records(
    context: &Context,
    caller: &Caller,
    stream: &Arc<Stream>,
    governance: &Governance,
    batch: &VerifiedBatch,
    refused: Vec<RecordRefusal>,
) -> Refusal {
    let refusal = record_refusal(ResponseError::InvalidRecord.code(), refused.clone());
    // Borrow the refused records from the verified batch (decoding only, on this refusal path).
    let decoded: Vec<Record<'_>> = batch.records().filter_map(Result::ok).collect();
    let letters: Vec<RefusedRecord<'_>> = refused
        .into_iter()
        .filter_map(|(record_idx, error)| decoded.get(record_idx).map(|record| RefusedRecord { record, error }))
        .collect();
    if let Err(error) = context.broker.append_kafka_dead_letters(governance, &letters, &caller.principal).await {
        // Nothing may be dropped silently: without its dead letters the batch is refused as a
        // storage failure, and the producer retries.
        tracing::error!(stream = stream.name(), %error, "dead letters could not be stored");
        return Refusal::new(partition_error_code(&error), format!("dead letters could not be stored: {}", error.message));
    }
    refusal
}

/// `code at /pointer: message`, the one-line reason a Kafka client is told.
pub fn reason_line(error: &weft_core::Error) -> String {
    match error.path.as_deref() {
        Some(path) if !path.is_empty() => format!("{} at {path}: {}", error.code, error.message),
        _ => format!("{}: {}", error.code, error.message),
    }
}

#[cfg(test)]
mod edge_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use weft_log::batch::BatchBuilder;

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
"#;

    /// A batch with an invalid record is refused as a whole with INVALID_RECORD, naming the
    /// record's index and reason code (Produce v8), and only the invalid record is dead-lettered.
    #[tokio::test]
    async fn an_invalid_record_refuses_its_batch_with_record_errors() {
        let dir = tempfile::tempdir().unwrap();
        let broker = weft_core::Broker::open(dir.path(), Arc::new(weft_log::SystemClock)).unwrap();
        let admin = Caller::without_token("admin", "test");
        let source = weft_core::mesh::ApplySource { name: "payments.odcs.yaml".into(), text: CONTRACT.into() };
        broker.apply(vec![source], false, &admin).unwrap();
        let context = Context {
            broker: Arc::clone(&broker),
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            group_protocol: crate::group_protocol::KafkaGroupProtocol::new(Arc::clone(&broker)),
            producers: crate::idempotence::ProducerRegistry::new(),
        };
        let mut builder = BatchBuilder::new(1_000);
        builder.push::<&str>(1_000, None, Some(br#"{"amount":1}"#), &[]);
        builder.push::<&str>(1_000, None, Some(br#"{"amount":"one"}"#), &[]);
        let request = ProduceRequest::default().with_acks(-1).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(str_bytes("payments")))
                .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(builder.finish())))]),
        ]);
        let response = produce(&context, &admin, 8, request).await.unwrap();
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, ResponseError::InvalidRecord.code());
        let message = partition.error_message.as_ref().unwrap().to_string();
        assert!(message.starts_with("contract.type_mismatch at /amount: "), "{message}");
        assert_eq!(partition.record_errors.len(), 1);
        assert_eq!(partition.record_errors[0].batch_index, 1);
        assert_eq!(broker.stream("payments").unwrap().partition_stats(0).unwrap().visible_next_offset, 0, "nothing stored");
        let letters = broker.dead_letters("payments", None, Default::default(), 10).await.unwrap().letters;
        assert_eq!(letters.len(), 1);
        assert_eq!((letters[0].reason.as_str(), letters[0].producer.as_str()), ("contract.type_mismatch", "admin"));
        assert_eq!(letters[0].data, br#"{"amount":"one"}"#);
    }
}
