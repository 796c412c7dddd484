//! Fetch and ListOffsets.
//!
//! Fetch returns the stored batch bytes exactly as they were read from the log: no
//! decoding, no re-encoding, compressed batches stay compressed. The first batch may start
//! before the requested offset (clients skip those records, as with Kafka). The high
//! watermark is the partition's visible end (under `fsync: always`, the durable end), the
//! last stable offset equals it (no transactions), and the log start offset is reported.
//! A Fetch with less than `min_bytes` available waits, up to `max_wait_ms`, for an append to
//! one of its streams (`Stream::subscribe`), then reads again; it stops waiting as soon as the
//! connection's token is revoked (the connection then closes).
//! Fetch sessions (KIP-227) are not offered: every response has session id 0, which tells
//! clients to send full fetch requests.
//!
//! Reading needs `consume` on the stream (TOPIC_AUTHORIZATION_FAILED otherwise); on a
//! dead-letter stream (`<stream>.dlq`) the guard decides it as `read_dead_letters`. A reader
//! without `unmask` on a stream whose contract classifies fields gets them masked, as over
//! HTTP: the batches read are decoded and re-encoded (uncompressed) with each value masked,
//! keeping every record's offset, timestamp, key and headers. Only then is a fetch not
//! zero-copy.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::select_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName};
use weft_core::guard::{Caller, Masker, TokenWatch};
use weft_core::{Broker, Stream};
use weft_log::batch::{BatchBuilder, BatchError, BatchView, Compression, set_producer};

use crate::errors::partition_error_code;
use crate::{Context, authz};

/// Longest a Fetch waits for `min_bytes`.
pub const FETCH_WAIT_MS_MAX: i32 = 30_000;
/// Byte budget of one Fetch response (the records of all partitions).
pub const FETCH_RESPONSE_BYTES_MAX: usize = weft_core::broker::FETCH_BYTES_MAX;

const LIST_OFFSETS_LATEST: i64 = -1;
const LIST_OFFSETS_EARLIEST: i64 = -2;

/// One partition a Fetch asks for, resolved against the broker.
struct FetchTarget {
    topic: TopicName,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    /// The stream and partition to read, or the error code that answers for it.
    log: Result<(Arc<Stream>, u32), i16>,
    /// Set when the caller may not see the stream's classified fields in clear.
    masker: Option<Arc<Masker>>,
}

pub async fn fetch(
    context: &Context,
    caller: &Caller,
    mut token: Option<TokenWatch>,
    version: i16,
    request: FetchRequest,
) -> FetchResponse {
    if version >= 7 && request.session_id != 0 {
        return FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let max_wait = Duration::from_millis(request.max_wait_ms.clamp(0, FETCH_WAIT_MS_MAX) as u64);
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let response_bytes_max = (request.max_bytes.max(1) as usize).min(FETCH_RESPONSE_BYTES_MAX);
    let mut targets = Vec::new();
    for topic in request.topics {
        let name = topic.topic.0.as_str();
        let stream = context.broker.stream(name);
        let denied = match &stream {
            Ok(_) => authz::consume_stream(context, caller, name).await.err().map(|(error_code, _)| error_code),
            Err(_) => None,
        };
        let masker = match (&stream, denied) {
            (Ok(_), None) => context.broker.guard().masker(caller, &context.broker, name).map(Arc::new),
            _ => None,
        };
        for partition in topic.partitions {
            let log = match &stream {
                _ if denied.is_some() => Err(denied.unwrap_or_default()),
                Err(error) => Err(partition_error_code(error)),
                Ok(stream) => {
                    let index = u32::try_from(partition.partition).unwrap_or(u32::MAX);
                    match stream.partition_stats(index) {
                        Ok(_) => Ok((Arc::clone(stream), index)),
                        Err(error) => Err(partition_error_code(&error)),
                    }
                }
            };
            targets.push(FetchTarget {
                topic: topic.topic.clone(),
                partition: partition.partition,
                offset: partition.fetch_offset,
                max_bytes: partition.partition_max_bytes.max(1) as usize,
                log,
                masker: masker.clone(),
            });
        }
    }
    // Subscribe before the first read so that an append between the read and the wait is not missed.
    let mut watchers: Vec<_> = Vec::new();
    for target in &targets {
        if let Ok((stream, _)) = &target.log
            && !watchers.iter().any(|(name, _): &(String, _)| name == stream.name())
        {
            watchers.push((stream.name().to_string(), stream.subscribe()));
        }
    }
    let targets = Arc::new(targets);
    loop {
        let pass = {
            let (targets, broker) = (Arc::clone(&targets), Arc::clone(&context.broker));
            tokio::task::spawn_blocking(move || read_pass(&broker, &targets, response_bytes_max)).await
        };
        let Ok((partitions, total_bytes, any_error)) = pass else {
            return FetchResponse::default().with_error_code(ResponseError::UnknownServerError.code());
        };
        let now = tokio::time::Instant::now();
        if total_bytes >= min_bytes || any_error || now >= deadline || watchers.is_empty() {
            return fetch_response(version, &targets, partitions);
        }
        let changes = watchers.iter_mut().map(|(_, receiver)| Box::pin(receiver.changed()));
        // Woken by an append or by the deadline: either way read again; past the deadline
        // the next pass answers with whatever is there.
        let stream_gone = tokio::select! {
            waited = tokio::time::timeout_at(deadline, select_all(changes)) => matches!(waited, Ok((Err(_), _, _))),
            // The connection's token ended: answer with what was read; the connection closes next.
            _ = token_ended(token.as_mut()) => return fetch_response(version, &targets, partitions),
        };
        if stream_gone {
            // A stream went away: stop waiting and answer with the next read.
            watchers.clear();
        }
    }
}

/// Resolves once the token ends; never without one.
async fn token_ended(token: Option<&mut TokenWatch>) {
    match token {
        Some(token) => {
            token.ended().await;
        }
        None => std::future::pending().await,
    }
}

/// What one partition returned in one read pass.
struct PartitionRead {
    error_code: i16,
    records: Option<Bytes>,
    high_watermark: i64,
    log_start_offset: i64,
}

/// Reads every target once, within the response budget; blocking (file reads).
fn read_pass(broker: &Broker, targets: &[FetchTarget], response_bytes_max: usize) -> (Vec<PartitionRead>, usize, bool) {
    let mut remaining = response_bytes_max;
    let mut total_bytes = 0usize;
    let mut any_error = false;
    let mut reads = Vec::with_capacity(targets.len());
    for target in targets {
        let (stream, partition) = match &target.log {
            Ok((stream, partition)) => (stream, *partition),
            Err(error_code) => {
                any_error = true;
                reads.push(PartitionRead { error_code: *error_code, records: None, high_watermark: -1, log_start_offset: -1 });
                continue;
            }
        };
        let Ok(stats) = broker.partition_stats(stream, partition) else {
            any_error = true;
            reads.push(PartitionRead {
                error_code: ResponseError::UnknownTopicOrPartition.code(),
                records: None,
                high_watermark: -1,
                log_start_offset: -1,
            });
            continue;
        };
        let mut read = PartitionRead {
            error_code: 0,
            records: Some(Bytes::new()),
            high_watermark: stats.visible_next_offset as i64,
            log_start_offset: stats.log_start_offset as i64,
        };
        if target.offset < 0 {
            read.error_code = ResponseError::OffsetOutOfRange.code();
            any_error = true;
        } else if remaining > 0 || total_bytes == 0 {
            match broker.read_batches_blocking(stream, partition, target.offset as u64, target.max_bytes.min(remaining.max(1))) {
                Ok(fetched) => {
                    read.high_watermark = fetched.visible_next_offset as i64;
                    read.log_start_offset = fetched.log_start_offset as i64;
                    let mut bytes = fetched.into_bytes();
                    if let Some(masker) = &target.masker {
                        match mask_batches(&bytes, masker) {
                            Ok(masked) => bytes = masked,
                            Err(error) => {
                                tracing::error!(topic = %target.topic.0.as_str(), partition = target.partition, %error, "cannot mask stored batches");
                                read.error_code = ResponseError::KafkaStorageError.code();
                                any_error = true;
                                reads.push(read);
                                continue;
                            }
                        }
                    }
                    // The first batch may exceed the budget (so a large batch is never stuck);
                    // after that, a partition whose data does not fit waits for the next fetch.
                    if total_bytes == 0 || bytes.len() <= remaining {
                        total_bytes += bytes.len();
                        remaining = remaining.saturating_sub(bytes.len());
                        read.records = Some(Bytes::from(bytes));
                    }
                }
                Err(error) => {
                    // Out of range answers with the partition's current bounds (read above).
                    read.error_code = partition_error_code(&error);
                    any_error = true;
                }
            }
        }
        reads.push(read);
    }
    (reads, total_bytes, any_error)
}

fn fetch_response(version: i16, targets: &[FetchTarget], reads: Vec<PartitionRead>) -> FetchResponse {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for (target, read) in targets.iter().zip(reads) {
        let mut partition = PartitionData::default()
            .with_partition_index(target.partition)
            .with_error_code(read.error_code)
            .with_high_watermark(read.high_watermark)
            .with_last_stable_offset(read.high_watermark)
            // Never null, as Kafka's brokers send it: librdkafka refuses a null record set
            // (MessageSetSize -1) as a parse failure and would never see the partition's error.
            .with_records(Some(read.records.unwrap_or_default()));
        if version >= 5 {
            partition.log_start_offset = read.log_start_offset;
        }
        match topics.last_mut() {
            Some(topic) if topic.topic == target.topic => topic.partitions.push(partition),
            _ => topics.push(FetchableTopicResponse::default().with_topic(target.topic.clone()).with_partitions(vec![partition])),
        }
    }
    FetchResponse::default().with_responses(topics)
}

pub async fn list_offsets(context: &Context, caller: &Caller, version: i16, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::new();
    for topic in request.topics {
        let stream = context.broker.stream(topic.name.0.as_str());
        let denied = match &stream {
            Ok(_) => authz::consume_stream(context, caller, topic.name.0.as_str()).await.err().map(|(error_code, _)| error_code),
            Err(_) => None,
        };
        let mut partitions = Vec::new();
        for requested in topic.partitions {
            let mut response = ListOffsetsPartitionResponse::default().with_partition_index(requested.partition_index).with_timestamp(-1);
            let log = match &stream {
                _ if denied.is_some() => Err(denied.unwrap_or_default()),
                Err(error) => Err(partition_error_code(error)),
                Ok(stream) => {
                    let index = u32::try_from(requested.partition_index).unwrap_or(u32::MAX);
                    match stream.partition_stats(index) {
                        Ok(_) => Ok((Arc::clone(stream), index)),
                        Err(error) => Err(partition_error_code(&error)),
                    }
                }
            };
            match log {
                Err(error_code) => {
                    response.error_code = error_code;
                    response.offset = -1;
                }
                Ok((stream, partition)) => match offset_for(&context.broker, &stream, partition, requested.timestamp).await {
                    Ok((offset, timestamp)) => {
                        response.offset = offset;
                        response.timestamp = timestamp;
                        if version >= 4 {
                            response.leader_epoch = 0;
                        }
                    }
                    Err(error_code) => {
                        response.error_code = error_code;
                        response.offset = -1;
                    }
                },
            }
            partitions.push(response);
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for a ListOffsets query.
async fn offset_for(broker: &Broker, stream: &Arc<Stream>, partition: u32, timestamp: i64) -> Result<(i64, i64), i16> {
    let stats = broker.partition_stats(stream, partition).map_err(|error| partition_error_code(&error))?;
    match timestamp {
        LIST_OFFSETS_LATEST => Ok((stats.visible_next_offset as i64, -1)),
        LIST_OFFSETS_EARLIEST => Ok((stats.log_start_offset as i64, -1)),
        timestamp if timestamp >= 0 => {
            let found = broker.offset_for_time(stream, partition, timestamp).await.map_err(|error| partition_error_code(&error))?;
            match found {
                // Kafka answers -1 when every record is older than the timestamp.
                None => Ok((-1, -1)),
                Some(offset) => Ok((offset as i64, broker.record_timestamp(stream, partition, offset).await.unwrap_or(timestamp))),
            }
        }
        _ => Err(ResponseError::InvalidRequest.code()),
    }
}

/// Re-encodes stored batches with every record value masked. Offsets, timestamps, keys and
/// headers are kept (a null header value becomes empty: the builder writes non-null values);
/// compressed batches come back uncompressed; control batches are passed through. Blocking.
fn mask_batches(bytes: &[u8], masker: &Masker) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 4);
    let mut cursor = 0;
    while cursor < bytes.len() {
        let batch = BatchView::parse(&bytes[cursor..])?;
        cursor += batch.len();
        if batch.is_control() || batch.record_count() == 0 {
            out.extend_from_slice(batch.as_bytes());
            continue;
        }
        let data = if batch.compression() == Compression::None {
            std::borrow::Cow::Borrowed(batch.records_bytes())
        } else {
            batch.decompress_records()?
        };
        let mut builder = BatchBuilder::with_capacity(batch.base_timestamp(), batch.len()).with_base_offset(batch.base_offset());
        for (record_idx, record) in batch.records_in(&data).enumerate() {
            let record = record?;
            // Stored batches number their records densely (the log checks it on append), so
            // the builder's push order reproduces each record's offset.
            if record.offset != batch.base_offset() + record_idx as u64 {
                return Err(BatchError::BadRecord { record_idx, reason: "offset delta out of sequence" });
            }
            let masked = record.value.map(|value| masker.mask(value));
            let headers: Vec<(String, &[u8])> = record
                .headers
                .iter()
                .map(|header| (String::from_utf8_lossy(header.key).into_owned(), header.value.unwrap_or_default()))
                .collect();
            builder.push(record.timestamp_ms, record.key, masked.as_deref(), &headers);
        }
        if builder.n_records() != batch.record_count() {
            return Err(BatchError::BadRecord { record_idx: builder.n_records() as usize, reason: "fewer records than the count says" });
        }
        let mut masked = builder.finish();
        set_producer(&mut masked, batch.producer());
        out.extend_from_slice(&masked);
    }
    Ok(out)
}
