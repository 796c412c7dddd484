//! Dead letters: events a governed stream refused, kept in `<stream>.dlq` with their reasons.
//!
//! A dead-letter record's value is the original data, unchanged; its headers are the
//! original CloudEvents attributes (`ce_*`) plus `weft_dlq_*` headers with the reason code,
//! every violation (code, JSON pointer, message), the contract id and version, the producer
//! and the time. This file is the one writer of that layout (`DeadLetterBatch`), and its
//! readers: the listing walks the dead-letter stream from a `DeadLetterCursor` one page at a
//! time, and the summary walks all of it keeping only counts and a few examples per reason,
//! so neither holds the whole stream in memory and neither stops at a horizon.
//! Replay, which moves the letters that now pass into the stream exactly once even across a
//! crash, is `dead_letter/replay.rs`.
//!
//! Limits: `DEAD_LETTERS_PAGE_MAX` letters and `DEAD_LETTERS_PAGE_BYTES_MAX` bytes of data per
//! page, `DEAD_LETTERS_PAGE_SCAN_MAX` letters examined per page (a page filtered by reason may
//! hold fewer letters than asked, and its cursor says where to go on),
//! `DEAD_LETTERS_READ_BYTES` read from the log at a time, `EXAMPLES_PER_REASON_MAX` examples
//! per reason in a summary, and, for replay, `REPLAY_LETTERS_PER_STEP_MAX`.

mod replay;

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

/// Most dead letters one page of a listing holds.
pub const DEAD_LETTERS_PAGE_MAX: usize = 1_000;
/// Most bytes of dead-letter data one page holds (a page always holds at least one letter, so
/// a listing never stalls on a letter larger than this).
pub const DEAD_LETTERS_PAGE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most dead letters one page examines: a page filtered by reason stops here even if it found
/// fewer letters than asked, so one request never scans the whole stream.
pub const DEAD_LETTERS_PAGE_SCAN_MAX: usize = 10_000;
/// Bytes read from the dead-letter stream at a time while walking it.
const DEAD_LETTERS_READ_BYTES: usize = 1024 * 1024;
/// Examples kept per reason in a summary.
pub const EXAMPLES_PER_REASON_MAX: usize = 3;

pub(crate) use replay::DeadLetterReplay;
pub use replay::{REPLAY_LETTERS_PER_STEP_MAX, REPLAY_PRODUCER, REPLAYED_FROM_HEADER, ReplayOutcome};

/// A position in a dead-letter stream: a walk from it visits the letters at or after `offset`
/// in `partition`, then every later partition from its start. The default is the beginning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeadLetterCursor {
    pub partition: u32,
    pub offset: u64,
}

/// One page of a listing: the letters, and where the next page starts (`None`: there is no
/// letter after this page).
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterPage {
    pub letters: Vec<DeadLetter>,
    pub next: Option<DeadLetterCursor>,
}

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

    /// The position just after this letter, where a walk that consumed it goes on.
    pub fn cursor_after(&self) -> DeadLetterCursor {
        DeadLetterCursor { partition: self.partition, offset: self.offset + 1 }
    }
}

/// Dead letters of one reason, counted, with a few examples.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonSummary {
    pub reason: String,
    pub count: u64,
    pub examples: Vec<DeadLetter>,
}

/// Every dead letter of a stream, counted: how many there are, how many a replay has moved,
/// and the counts per reason, most frequent first.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterSummary {
    pub total: u64,
    pub moved: u64,
    pub reasons: Vec<ReasonSummary>,
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

    /// One page of a governed stream's dead letters from `from`, oldest first, at most `limit`
    /// (and at most `DEAD_LETTERS_PAGE_MAX`), optionally of one reason. Follow `next` until it is
    /// `None` to visit every letter once.
    pub async fn dead_letters(
        &self,
        stream_name: &str,
        reason: Option<&str>,
        from: DeadLetterCursor,
        limit: usize,
    ) -> Result<DeadLetterPage, Error> {
        let (_, dead_letter_stream) = self.governed_stream(stream_name)?;
        let limit = limit.min(DEAD_LETTERS_PAGE_MAX);
        let ends = dead_letter_ends(&dead_letter_stream)?;
        let mut letters = Vec::new();
        let (mut at, mut n_examined, mut n_data_bytes) = (from, 0usize, 0usize);
        'walk: while letters.len() < limit && n_examined < DEAD_LETTERS_PAGE_SCAN_MAX && n_data_bytes < DEAD_LETTERS_PAGE_BYTES_MAX {
            // Without a filter every letter read is kept, so read no more than the page needs.
            let wanted = if reason.is_some() { DEAD_LETTERS_PAGE_SCAN_MAX - n_examined } else { limit - letters.len() };
            let read = self.read_dead_letters(&dead_letter_stream, at, &ends, wanted).await?;
            if read.is_empty() {
                break;
            }
            for letter in read {
                n_examined += 1;
                at = letter.cursor_after();
                if reason.is_none_or(|r| r == letter.reason) {
                    n_data_bytes += letter.data.len();
                    letters.push(letter);
                    if letters.len() >= limit || n_data_bytes >= DEAD_LETTERS_PAGE_BYTES_MAX {
                        break 'walk;
                    }
                }
            }
        }
        self.fill_replayed_to(&dead_letter_stream, &mut letters)?;
        let next = has_dead_letters_from(&dead_letter_stream, at)?.then_some(at);
        Ok(DeadLetterPage { letters, next })
    }

    /// Every dead letter of a governed stream, counted by reason (most frequent first) with a few
    /// examples each. It walks the whole stream, holding only the counts and the examples.
    pub async fn dead_letter_summary(&self, stream_name: &str) -> Result<DeadLetterSummary, Error> {
        let (_, dead_letter_stream) = self.governed_stream(stream_name)?;
        let ends = dead_letter_ends(&dead_letter_stream)?;
        let mut by_reason: BTreeMap<String, ReasonSummary> = BTreeMap::new();
        let (mut total, mut moved) = (0u64, 0u64);
        let mut at = DeadLetterCursor::default();
        loop {
            let read = self.read_dead_letters(&dead_letter_stream, at, &ends, DEAD_LETTERS_PAGE_SCAN_MAX).await?;
            let Some(last) = read.last() else { break };
            at = last.cursor_after();
            let positions: Vec<(u32, u64)> = read.iter().map(|letter| (letter.partition, letter.offset)).collect();
            let replayed = self.meta().dead_letters_replayed(dead_letter_stream.name(), &positions)?;
            for (mut letter, replayed_to) in read.into_iter().zip(replayed) {
                total += 1;
                moved += u64::from(replayed_to.is_some());
                letter.replayed_to = replayed_to;
                let summary = by_reason.entry(letter.reason.clone()).or_insert_with(|| ReasonSummary {
                    reason: letter.reason.clone(),
                    count: 0,
                    examples: Vec::new(),
                });
                summary.count += 1;
                if summary.examples.len() < EXAMPLES_PER_REASON_MAX {
                    summary.examples.push(letter);
                }
            }
        }
        let mut reasons: Vec<ReasonSummary> = by_reason.into_values().collect();
        reasons.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        Ok(DeadLetterSummary { total, moved, reasons })
    }

    /// Sets `replayed_to` of each letter from the metadata store (one read transaction).
    fn fill_replayed_to(&self, dead_letter_stream: &Stream, letters: &mut [DeadLetter]) -> Result<(), Error> {
        let positions: Vec<(u32, u64)> = letters.iter().map(|letter| (letter.partition, letter.offset)).collect();
        let replayed = self.meta().dead_letters_replayed(dead_letter_stream.name(), &positions)?;
        for (letter, replayed_to) in letters.iter_mut().zip(replayed) {
            letter.replayed_to = replayed_to;
        }
        Ok(())
    }

    /// The dead letters at or after `from` and below `ends` (each partition's end when the walk
    /// began, so a walk ends even while letters keep arriving), from one read of the log: at most
    /// `max_letters`, in order, moving on to the next partition when one is exhausted. Empty
    /// means the walk is over.
    async fn read_dead_letters(
        &self,
        dead_letter_stream: &Arc<Stream>,
        from: DeadLetterCursor,
        ends: &[u64],
        max_letters: usize,
    ) -> Result<Vec<DeadLetter>, Error> {
        let mut at = from;
        while let Some(&end) = ends.get(at.partition as usize) {
            let stats = dead_letter_stream.partition_stats(at.partition)?;
            let offset = at.offset.max(stats.log_start_offset);
            if offset < end {
                let fetched = self.read_batches(dead_letter_stream, at.partition, offset, DEAD_LETTERS_READ_BYTES).await?;
                let letters: Vec<DeadLetter> = fetched
                    .records(max_letters)?
                    .iter()
                    .take_while(|stored| stored.record.offset < end)
                    .map(|stored| DeadLetter::from_record(at.partition, &stored.record))
                    .collect();
                if !letters.is_empty() {
                    return Ok(letters);
                }
                // Only batches without letters (none that Weft writes, but a log may hold them):
                // go on after them, or to the next partition if the read made no progress.
                if fetched.next_offset() > offset {
                    at.offset = fetched.next_offset();
                    continue;
                }
            }
            at = DeadLetterCursor { partition: at.partition + 1, offset: 0 };
        }
        Ok(Vec::new())
    }
}

/// Each partition's visible end: where a walk that starts now stops.
fn dead_letter_ends(dead_letter_stream: &Stream) -> Result<Vec<u64>, Error> {
    (0..dead_letter_stream.n_partitions()).map(|partition| Ok(dead_letter_stream.partition_stats(partition)?.visible_next_offset)).collect()
}

/// Whether a walk from `from` would find a letter now.
fn has_dead_letters_from(dead_letter_stream: &Stream, from: DeadLetterCursor) -> Result<bool, Error> {
    for partition in from.partition..dead_letter_stream.n_partitions() {
        let stats = dead_letter_stream.partition_stats(partition)?;
        let offset = if partition == from.partition { from.offset } else { 0 };
        if offset.max(stats.log_start_offset) < stats.visible_next_offset {
            return Ok(true);
        }
    }
    Ok(false)
}
