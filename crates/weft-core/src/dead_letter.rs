//! Dead letters: events a governed stream refused, kept in `<stream>.dlq` with their reasons.
//!
//! A dead-letter record's value is the original data, unchanged; its headers are the
//! original CloudEvents attributes (`ce_*`) plus `weft_dlq_*` headers with the reason code,
//! every violation (code, JSON pointer, message), the contract id and version, the producer
//! and the time. Replay re-validates each dead letter against the stream's current contract
//! and moves those that pass into the stream; the metadata store remembers every move, so a
//! dead letter is never moved twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::borrow::Cow;

use weft_log::VerifiedBatch;
use weft_log::batch::{BatchBuilder, Record};

use crate::broker::Broker;
use crate::cloudevent::{CloudEvent, format_rfc3339_ms};
use crate::error::{Error, Kind, codes};
use crate::stream::{DEAD_LETTER_SUFFIX, Governance, Stream};

use dead_letter_headers as h;

/// Header names of dead-letter records (the value is the original data, unchanged).
pub mod dead_letter_headers {
    pub const REASON: &str = "weft_dlq_reason";
    pub const MESSAGE: &str = "weft_dlq_message";
    pub const VIOLATIONS: &str = "weft_dlq_violations";
    pub const STREAM: &str = "weft_dlq_stream";
    pub const CONTRACT_ID: &str = "weft_dlq_contract_id";
    pub const CONTRACT_VERSION: &str = "weft_dlq_contract_version";
    pub const PRODUCER: &str = "weft_dlq_producer";
    pub const REJECTED_AT: &str = "weft_dlq_rejected_at";
}

/// What every dead letter of one request shares: the contract that refused it, the
/// producer, and the time.
pub(crate) struct DeadLetterRequest<'a> {
    pub governance: &'a Governance,
    pub producer: &'a str,
    pub now_ms: i64,
}

/// The dead letters of one request, encoded as one batch for the dead-letter stream: the one
/// writer of the dead-letter layout, for HTTP events and Kafka records alike.
pub(crate) struct DeadLetterBatch {
    builder: BatchBuilder,
    event_idxs: Vec<usize>,
}

impl DeadLetterBatch {
    pub(crate) fn new(now_ms: i64) -> Self {
        Self { builder: BatchBuilder::new(now_ms), event_idxs: Vec::new() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.event_idxs.is_empty()
    }

    /// Keeps a refused event (`event` is `None` when it could not be parsed at all).
    pub(crate) fn push_event(
        &mut self,
        event_idx: usize,
        event: Option<&CloudEvent>,
        data: &[u8],
        error: &Error,
        request: &DeadLetterRequest<'_>,
    ) {
        let headers: Vec<(Cow<'static, str>, &[u8])> = event.map(CloudEvent::record_headers).unwrap_or_default();
        let key = event.and_then(CloudEvent::partition_key).map(str::as_bytes);
        self.push(event_idx, key, Some(data), &headers, error, request);
    }

    /// Keeps a refused record that a producer encoded itself (Kafka).
    pub(crate) fn push_record(&mut self, record_idx: usize, record: &Record<'_>, error: &Error, request: &DeadLetterRequest<'_>) {
        let headers: Vec<(Cow<'_, str>, &[u8])> =
            record.headers.iter().map(|header| (String::from_utf8_lossy(header.key), header.value.unwrap_or_default())).collect();
        self.push(record_idx, record.key, record.value, &headers, error, request);
    }

    /// Key and value unchanged, the original headers, then the `weft_dlq_*` headers with the
    /// reason, every violation, the contract and the producer.
    fn push(
        &mut self,
        idx: usize,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        original_headers: &[(Cow<'_, str>, &[u8])],
        error: &Error,
        request: &DeadLetterRequest<'_>,
    ) {
        let details: Vec<serde_json::Value> = if error.details.is_empty() {
            vec![serde_json::json!({ "code": error.code, "path": error.path.clone().unwrap_or_default(), "message": error.message })]
        } else {
            error.details.iter().map(|d| serde_json::json!({ "code": d.code, "path": d.path, "message": d.message })).collect()
        };
        let violations = serde_json::to_string(&details).unwrap_or_default();
        let rejected_at = format_rfc3339_ms(request.now_ms);
        let governance = request.governance;
        let stream_name = governance.dead_letter_stream.trim_end_matches(DEAD_LETTER_SUFFIX);
        let mut headers: Vec<(&str, &[u8])> = original_headers.iter().map(|(name, value)| (name.as_ref(), *value)).collect();
        headers.push((h::REASON, error.code.as_bytes()));
        headers.push((h::MESSAGE, error.message.as_bytes()));
        headers.push((h::VIOLATIONS, violations.as_bytes()));
        headers.push((h::STREAM, stream_name.as_bytes()));
        headers.push((h::CONTRACT_ID, governance.contract_id.as_bytes()));
        headers.push((h::CONTRACT_VERSION, governance.contract_version.as_bytes()));
        headers.push((h::PRODUCER, request.producer.as_bytes()));
        headers.push((h::REJECTED_AT, rejected_at.as_bytes()));
        self.builder.push(request.now_ms, key, value, &headers);
        self.event_idxs.push(idx);
    }

    /// The batch (never marked `json_checked`: dead letters keep what was refused, which may
    /// not be JSON at all) and the request indexes of its letters, in order.
    pub(crate) fn finish(self) -> (VerifiedBatch, Vec<usize>) {
        (self.builder.finish_verified(), self.event_idxs)
    }
}

/// Most dead letters one listing or replay reads.
pub const DEAD_LETTERS_SCAN_MAX: usize = 100_000;
/// Bytes read from the dead-letter stream at a time while scanning it.
const DEAD_LETTERS_READ_BYTES: usize = 1024 * 1024;
/// Producer recorded for dead letters that a replay moved back into their stream.
pub const REPLAY_PRODUCER: &str = "weft:dead-letter-replay";
/// Examples kept per reason in a summary.
pub const EXAMPLES_PER_REASON_MAX: usize = 3;

/// A partition's batch of replayed events: the builder, the (partition, offset) of each dead
/// letter it carries, and whether every value is JSON text as stored (`json_checked`).
type ReplayBatch = (BatchBuilder, Vec<(u32, u64)>, bool);

/// One dead letter, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: i64,
    pub reason: String,
    pub message: String,
    pub violations: serde_json::Value,
    pub stream: String,
    pub contract_id: String,
    pub contract_version: String,
    pub producer: String,
    pub rejected_at: String,
    pub data: Vec<u8>,
    /// The CloudEvents attributes it arrived with, as `(name, value)`.
    pub attributes: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub key: Option<Vec<u8>>,
    /// Offset in the governed stream it was moved to by a replay.
    pub replayed_to: Option<u64>,
}

impl DeadLetter {
    fn from_record(partition: u32, record: &Record<'_>) -> Self {
        let text = |name: &str| record.header(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
        let attributes = record
            .headers
            .iter()
            .filter_map(|header| {
                let name = std::str::from_utf8(header.key).ok()?.strip_prefix("ce_")?;
                Some((name.to_string(), String::from_utf8_lossy(header.value?).into_owned()))
            })
            .collect();
        Self {
            partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            reason: text(h::REASON),
            message: text(h::MESSAGE),
            violations: serde_json::from_str(&text(h::VIOLATIONS)).unwrap_or(serde_json::Value::Null),
            stream: text(h::STREAM),
            contract_id: text(h::CONTRACT_ID),
            contract_version: text(h::CONTRACT_VERSION),
            producer: text(h::PRODUCER),
            rejected_at: text(h::REJECTED_AT),
            data: record.value.map(<[u8]>::to_vec).unwrap_or_default(),
            attributes,
            content_type: record.header("content-type").map(|v| String::from_utf8_lossy(v).into_owned()),
            key: record.key.map(<[u8]>::to_vec),
            replayed_to: None,
        }
    }
}

/// Dead letters of one reason, counted, with a few examples.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonSummary {
    pub reason: String,
    pub count: u64,
    pub examples: Vec<DeadLetter>,
}

/// The outcome of a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayOutcome {
    pub moved: u64,
    pub still_failing: u64,
    pub already_moved: u64,
    /// Still-failing counts per reason code under the current contract.
    pub failing_reasons: BTreeMap<String, u64>,
}

/// The replay component's state: one replay at a time per broker, so two replays never move
/// the same letter (the metadata store records each move).
#[derive(Default)]
pub(crate) struct DeadLetterReplay {
    lock: tokio::sync::Mutex<()>,
}

impl DeadLetterReplay {
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }
}

impl Broker {
    /// The governed stream a name refers to: a stream name or its dead-letter stream's name.
    fn governed_stream(&self, name: &str) -> Result<(Arc<Stream>, Arc<Stream>), Error> {
        let name = name.strip_suffix(DEAD_LETTER_SUFFIX).unwrap_or(name);
        let stream = self.stream(name)?;
        let Some(governance) = stream.governance() else {
            return Err(Error::new(
                Kind::NotFound,
                codes::STREAM_NOT_FOUND,
                format!("stream {name} is not governed by a contract, so it has no dead letters"),
            ));
        };
        Ok((Arc::clone(&stream), self.stream(&governance.dead_letter_stream)?))
    }

    /// Reads dead letters of a governed stream, oldest first, at most `limit`, optionally of one reason.
    pub async fn dead_letters(&self, stream_name: &str, reason: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>, Error> {
        let (_, dead_letter_stream) = self.governed_stream(stream_name)?;
        let mut letters = Vec::new();
        self.scan_dead_letters(&dead_letter_stream, |letter| {
            if reason.is_none_or(|r| r == letter.reason) && letters.len() < limit {
                letters.push(letter);
            }
        })
        .await?;
        for letter in &mut letters {
            letter.replayed_to = self.meta().dead_letter_replayed(dead_letter_stream.name(), letter.partition, letter.offset)?;
        }
        Ok(letters)
    }

    /// Dead letters grouped by reason, most frequent first.
    pub async fn dead_letter_summary(&self, stream_name: &str) -> Result<(u64, Vec<ReasonSummary>), Error> {
        let (_, dead_letter_stream) = self.governed_stream(stream_name)?;
        let mut by_reason: BTreeMap<String, ReasonSummary> = BTreeMap::new();
        let mut total = 0u64;
        self.scan_dead_letters(&dead_letter_stream, |letter| {
            total += 1;
            let summary = by_reason.entry(letter.reason.clone()).or_insert_with(|| ReasonSummary {
                reason: letter.reason.clone(),
                count: 0,
                examples: Vec::new(),
            });
            summary.count += 1;
            if summary.examples.len() < EXAMPLES_PER_REASON_MAX {
                summary.examples.push(letter);
            }
        })
        .await?;
        let mut summaries: Vec<ReasonSummary> = by_reason.into_values().collect();
        summaries.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        Ok((total, summaries))
    }

    async fn scan_dead_letters(&self, dead_letter_stream: &Arc<Stream>, mut visit: impl FnMut(DeadLetter)) -> Result<(), Error> {
        let mut n_seen = 0usize;
        for partition in 0..dead_letter_stream.n_partitions() {
            let stats = dead_letter_stream.partition_stats(partition)?;
            let mut offset = stats.log_start_offset;
            while offset < stats.visible_next_offset && n_seen < DEAD_LETTERS_SCAN_MAX {
                let fetched = self.read_batches(dead_letter_stream, partition, offset, DEAD_LETTERS_READ_BYTES).await?;
                let records = fetched.records(DEAD_LETTERS_SCAN_MAX - n_seen)?;
                let Some(last) = records.last() else { break };
                offset = last.record.offset + 1;
                for stored in &records {
                    n_seen += 1;
                    visit(DeadLetter::from_record(partition, &stored.record));
                }
            }
        }
        Ok(())
    }

    /// Re-validates dead letters against the current contract and moves those that pass into
    /// the stream. A dead letter moved once is never moved again.
    pub async fn replay_dead_letters(&self, stream_name: &str) -> Result<ReplayOutcome, Error> {
        let (stream, dead_letter_stream) = self.governed_stream(stream_name)?;
        let _replay_guard = self.dead_letter_replay().lock().await;
        let mut letters = Vec::new();
        self.scan_dead_letters(&dead_letter_stream, |letter| letters.push(letter)).await?;
        let mut outcome = ReplayOutcome::default();
        let governance = stream.governance();
        let now_ms = self.now_ms();
        let mut batches: BTreeMap<u32, ReplayBatch> = BTreeMap::new();
        for letter in letters {
            if self.meta().dead_letter_replayed(dead_letter_stream.name(), letter.partition, letter.offset)?.is_some() {
                outcome.already_moved += 1;
                continue;
            }
            let attributes = letter.attributes.iter().map(|(name, value)| (name.as_str(), value.clone()));
            let event = CloudEvent::from_attributes(attributes, letter.content_type.clone(), Some(letter.data.clone()));
            let placed =
                event.and_then(|event| self.place_for_replay(&stream, governance.as_deref(), &event).map(|placed| (event, placed)));
            match placed {
                Ok((event, placed)) => {
                    // Placing the event checked its data like produce does: the batch is
                    // json_checked unless a value is framed (Confluent's schema id prefix).
                    let (builder, sources, json_checked) =
                        batches.entry(placed.partition).or_insert_with(|| (BatchBuilder::new(now_ms), Vec::new(), true));
                    builder.push(now_ms, placed.key.as_deref(), event.data.as_deref(), &event.record_headers());
                    sources.push((letter.partition, letter.offset));
                    *json_checked &= placed.data_is_json_text;
                }
                Err(error) => {
                    outcome.still_failing += 1;
                    *outcome.failing_reasons.entry(error.code.to_string()).or_default() += 1;
                }
            }
        }
        for (partition, (builder, sources, json_checked)) in batches {
            let builder = if json_checked { builder.json_checked() } else { builder };
            let context = crate::produce::ProduceContext { producer: REPLAY_PRODUCER.to_string() };
            let appended = self.append_batch_as(&stream, partition, builder.finish_verified(), &context).await?;
            let moved: Vec<(u32, u64, u64)> =
                sources.iter().enumerate().map(|(idx, &(p, o))| (p, o, appended.base_offset + idx as u64)).collect();
            outcome.moved += moved.len() as u64;
            self.meta().mark_dead_letters_replayed(dead_letter_stream.name(), &moved)?;
        }
        Ok(outcome)
    }
}
