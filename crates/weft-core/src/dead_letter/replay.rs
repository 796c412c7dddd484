//! Dead-letter replay: re-validates every dead letter against the stream's current contract
//! and moves those that pass into the stream, each exactly once, even if the server dies
//! between appending a replayed event and recording its move.
//!
//! The walk goes through the dead-letter stream in steps of `REPLAY_LETTERS_PER_STEP_MAX`
//! letters (up to each partition's end when the replay began), so memory is bounded and there
//! is no horizon. Each step appends at most one batch per target partition, cut at
//! `BATCH_BYTES_TARGET`, and every batch goes through three steps:
//!
//! 1. **Intent.** The metadata store records, for the dead-letter stream, a `ReplayIntent`: the
//!    letters of the batch, the target partition, and that partition's visible end before the
//!    append (the batch can only land at or after it).
//! 2. **Append.** Each replayed event carries `weft_replayed_from: <dlq stream>/<partition>/<offset>`
//!    naming its dead letter (a Kafka header; HTTP readers see only `ce_` attributes).
//! 3. **Complete.** One metadata transaction records every move and removes the intent.
//!
//! A crash (or a failed append or metadata write) leaves the intent behind. When the server
//! opens again it bounds each intent's search at the target partition's recovered end (the
//! batch, if it survived, is below it); the next replay of that stream then resolves the intent
//! first: it reads the target partition from the intent's start to that bound, records as moved
//! every intended letter it finds by its header, and removes the intent, and only then walks the
//! dead letters, skipping those recorded as moved. A batch that did not survive the crash is
//! simply not found, and its letters are replayed again. The search reads what was appended to
//! the one partition between the intent and the crash (or, after an error without a restart,
//! until the replay that resolves it), never the whole stream; if retention has removed the
//! replayed events before the intent is resolved, their letters are replayed again.
//!
//! One replay runs at a time per broker (`DeadLetterReplay`), so there is at most one intent per
//! dead-letter stream and no two replays move the same letter.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weft_log::batch::{BatchBuilder, Record};

use super::{DeadLetter, DeadLetterCursor, dead_letter_ends};
use crate::broker::{BATCH_BYTES_TARGET, Broker};
use crate::cloudevent::CloudEvent;
use crate::error::Error;
use crate::failpoint::crash;
use crate::produce::ProduceContext;
use crate::stream::{DEAD_LETTER_SUFFIX, Stream};

/// Dead letters read, re-validated and moved per replay step.
pub const REPLAY_LETTERS_PER_STEP_MAX: usize = 1_000;
/// Producer recorded for dead letters that a replay moved back into their stream.
pub const REPLAY_PRODUCER: &str = "weft:dead-letter-replay";
/// Header of a replayed event naming the dead letter it came from: `<dlq stream>/<partition>/<offset>`.
pub const REPLAYED_FROM_HEADER: &str = "weft_replayed_from";
/// Bytes read from the target partition at a time while resolving an intent.
const INTENT_READ_BYTES: usize = 1024 * 1024;

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
/// the same letter and a dead-letter stream has at most one intent.
#[derive(Default)]
pub(crate) struct DeadLetterReplay {
    lock: tokio::sync::Mutex<()>,
}

impl DeadLetterReplay {
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }
}

/// A replay batch about to be appended (kept in the metadata store until its moves are recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ReplayIntent {
    target_partition: u32,
    /// The target partition's visible end before the append: the batch lands at or after it.
    start_offset: u64,
    /// Where the search for the batch stops: the partition's end when the server opened after
    /// the intent was written. `None` while the process that wrote it runs: then the search
    /// goes to the partition's end.
    search_end: Option<u64>,
    /// The dead letters in the batch, as (partition, offset) in the dead-letter stream.
    letters: Vec<(u32, u64)>,
}

impl ReplayIntent {
    fn to_json(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(self).map_err(|error| Error::internal(format!("cannot encode a replay intent: {error}")))
    }

    fn from_json(dead_letter_stream: &str, json: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(json)
            .map_err(|error| Error::internal(format!("the stored replay intent of {dead_letter_stream} is unreadable: {error}")))
    }
}

/// A target partition's batch of replayed events being built, with the dead letters it carries.
struct ReplayBatch {
    builder: BatchBuilder,
    letters: Vec<(u32, u64)>,
    /// Every value is JSON text as stored (the batch may be marked `json_checked`).
    json_checked: bool,
}

/// The value of `REPLAYED_FROM_HEADER` for a dead letter.
fn replayed_from(dead_letter_stream: &str, partition: u32, offset: u64) -> String {
    format!("{dead_letter_stream}/{partition}/{offset}")
}

/// The dead letter a record of the governed stream was replayed from, if it names one of `dead_letter_stream`.
fn replayed_from_of(record: &Record<'_>, dead_letter_stream: &str) -> Option<(u32, u64)> {
    let value = std::str::from_utf8(record.header(REPLAYED_FROM_HEADER)?).ok()?;
    let (position, offset) = value.rsplit_once('/')?;
    let (stream, partition) = position.rsplit_once('/')?;
    (stream == dead_letter_stream).then_some(())?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

impl Broker {
    /// Re-validates every dead letter against the current contract and moves those that pass
    /// into the stream, each exactly once (see the module doc for how that holds across a crash).
    pub async fn replay_dead_letters(&self, stream_name: &str) -> Result<ReplayOutcome, Error> {
        let (stream, dead_letter_stream) = self.governed_stream(stream_name)?;
        let _replay_guard = self.dead_letter_replay().lock().await;
        self.resolve_replay_intent(&stream, &dead_letter_stream).await?;
        let ends = dead_letter_ends(&dead_letter_stream)?;
        let mut outcome = ReplayOutcome::default();
        let mut at = DeadLetterCursor::default();
        loop {
            let letters = self.read_dead_letters(&dead_letter_stream, at, &ends, REPLAY_LETTERS_PER_STEP_MAX).await?;
            let Some(last) = letters.last() else { break };
            at = last.cursor_after();
            self.replay_step(&stream, &dead_letter_stream, letters, &mut outcome).await?;
        }
        Ok(outcome)
    }

    /// Replays one step's letters: skips those already moved, re-validates the others, and
    /// appends those that pass, one batch per target partition.
    async fn replay_step(
        &self,
        stream: &Arc<Stream>,
        dead_letter_stream: &Stream,
        letters: Vec<DeadLetter>,
        outcome: &mut ReplayOutcome,
    ) -> Result<(), Error> {
        let positions: Vec<(u32, u64)> = letters.iter().map(|letter| (letter.partition, letter.offset)).collect();
        let replayed = self.meta().dead_letters_replayed(dead_letter_stream.name(), &positions)?;
        let governance = stream.governance();
        let now_ms = self.now_ms();
        let mut batches: BTreeMap<u32, ReplayBatch> = BTreeMap::new();
        for (letter, replayed_to) in letters.into_iter().zip(replayed) {
            if replayed_to.is_some() {
                outcome.already_moved += 1;
                continue;
            }
            let attributes = letter.attributes.iter().map(|(name, value)| (name.as_str(), value.clone()));
            let event = CloudEvent::from_attributes(attributes, letter.content_type.clone(), Some(letter.data));
            let placed = event.and_then(|event| self.place_for_replay(stream, governance.as_deref(), &event).map(|placed| (event, placed)));
            let (event, placed) = match placed {
                Ok(placed) => placed,
                Err(error) => {
                    outcome.still_failing += 1;
                    *outcome.failing_reasons.entry(error.code.to_string()).or_default() += 1;
                    continue;
                }
            };
            // Placing the event checked its data like produce does: the batch is json_checked
            // unless a value is framed (Confluent's schema id prefix).
            let batch = batches.entry(placed.partition).or_insert_with(|| ReplayBatch {
                builder: BatchBuilder::new(now_ms),
                letters: Vec::new(),
                json_checked: true,
            });
            let origin = replayed_from(dead_letter_stream.name(), letter.partition, letter.offset);
            let mut headers = event.record_headers();
            headers.push((REPLAYED_FROM_HEADER.into(), origin.as_bytes()));
            batch.builder.push(now_ms, placed.key.as_deref(), event.data.as_deref(), &headers);
            batch.letters.push((letter.partition, letter.offset));
            batch.json_checked &= placed.data_is_json_text;
            if batch.builder.len_bytes() >= BATCH_BYTES_TARGET
                && let Some(full) = batches.remove(&placed.partition)
            {
                outcome.moved += self.append_replay_batch(stream, dead_letter_stream, placed.partition, full).await?;
            }
        }
        for (partition, batch) in batches {
            outcome.moved += self.append_replay_batch(stream, dead_letter_stream, partition, batch).await?;
        }
        Ok(())
    }

    /// Intent, append, complete (see the module doc); returns the number of letters moved.
    async fn append_replay_batch(
        &self,
        stream: &Arc<Stream>,
        dead_letter_stream: &Stream,
        partition: u32,
        batch: ReplayBatch,
    ) -> Result<u64, Error> {
        let intent = ReplayIntent {
            target_partition: partition,
            start_offset: stream.partition_stats(partition)?.visible_next_offset,
            search_end: None,
            letters: batch.letters,
        };
        self.meta().put_dead_letter_replay_intent(dead_letter_stream.name(), &intent.to_json()?)?;
        crash("dead_letters.replay.before_append");
        let builder = if batch.json_checked { batch.builder.json_checked() } else { batch.builder };
        let context = ProduceContext { producer: REPLAY_PRODUCER.to_string() };
        // A failed append leaves the intent: the next replay looks for the batch before it
        // walks the letters, so a batch that reached the log after all is not appended twice.
        let appended = self.append_batch_as(stream, partition, builder.finish_verified(), &context).await?;
        crash("dead_letters.replay.after_append");
        let moved: Vec<(u32, u64, u64)> = intent
            .letters
            .iter()
            .enumerate()
            .map(|(record_idx, &(letter_partition, letter_offset))| {
                (letter_partition, letter_offset, appended.base_offset + record_idx as u64)
            })
            .collect();
        self.meta().complete_dead_letter_replay(dead_letter_stream.name(), &moved)?;
        Ok(moved.len() as u64)
    }

    /// Completes or discards the dead-letter stream's unfinished replay batch, if there is one:
    /// every intended letter found in the target partition (by its `weft_replayed_from` header,
    /// between the intent's start and its search end) is recorded as moved there, and the
    /// intent is removed, so the walk that follows replays only letters that never arrived.
    async fn resolve_replay_intent(&self, stream: &Arc<Stream>, dead_letter_stream: &Stream) -> Result<(), Error> {
        let Some(json) = self.meta().dead_letter_replay_intent(dead_letter_stream.name())? else { return Ok(()) };
        let intent = ReplayIntent::from_json(dead_letter_stream.name(), &json)?;
        let stats = stream.partition_stats(intent.target_partition)?;
        let end = intent.search_end.map_or(stats.visible_next_offset, |end| end.min(stats.visible_next_offset));
        let mut found: BTreeMap<(u32, u64), u64> = BTreeMap::new();
        let mut offset = intent.start_offset.max(stats.log_start_offset);
        while offset < end && found.len() < intent.letters.len() {
            let fetched = self.read_batches(stream, intent.target_partition, offset, INTENT_READ_BYTES).await?;
            let records = fetched.records(usize::MAX)?;
            let Some(last) = records.last() else { break };
            offset = last.record.offset + 1;
            for stored in records.iter().take_while(|stored| stored.record.offset < end) {
                if let Some(letter) = replayed_from_of(&stored.record, dead_letter_stream.name())
                    && intent.letters.contains(&letter)
                {
                    found.entry(letter).or_insert(stored.record.offset);
                }
            }
        }
        let moved: Vec<(u32, u64, u64)> =
            found.into_iter().map(|((partition, offset), target_offset)| (partition, offset, target_offset)).collect();
        if !moved.is_empty() {
            tracing::info!(
                dead_letter_stream = dead_letter_stream.name(),
                n_moved = moved.len(),
                "recorded the moves of a replay batch that was appended before the server stopped"
            );
        }
        self.meta().complete_dead_letter_replay(dead_letter_stream.name(), &moved)
    }

    /// Bounds the search of every unfinished replay batch at its target partition's end as
    /// recovered (called when the broker opens, before anything is appended): a batch the
    /// crashed process appended is below it, and later appends need not be searched.
    pub(crate) fn bound_replay_intents_on_open(&self) -> Result<(), Error> {
        for (dead_letter_stream, json) in self.meta().dead_letter_replay_intents()? {
            let mut intent = ReplayIntent::from_json(&dead_letter_stream, &json)?;
            if intent.search_end.is_some() {
                continue;
            }
            let stream_name = dead_letter_stream.strip_suffix(DEAD_LETTER_SUFFIX).unwrap_or(&dead_letter_stream);
            let Ok(stream) = self.stream(stream_name) else { continue };
            intent.search_end = Some(stream.partition_stats(intent.target_partition)?.visible_next_offset);
            self.meta().put_dead_letter_replay_intent(&dead_letter_stream, &intent.to_json()?)?;
        }
        Ok(())
    }
}
