//! Idempotent producers: the producer ids InitProducerId hands out, and per (stream, partition,
//! producer id) what that producer appended, so that a retried batch is stored once.
//!
//! Kafka's rules (`ProducerState::check`): the last `PRODUCER_BATCHES_REMEMBERED` batches of
//! each producer are remembered; a batch that repeats one of them (same epoch, base and last
//! sequence) is a duplicate, answered with the offset it got the first time and not appended
//! again; a batch whose sequence does not follow the last one is out of order; an older epoch
//! is fenced; a newer epoch starts at sequence 0.
//!
//! Across restarts:
//! - Sequences are rebuilt from the log, which is their source of truth: every stored batch
//!   carries its producer id, epoch and base sequence. The first idempotent produce to a
//!   partition after start (before any other is checked there) reads the headers of the
//!   partition's last `PRODUCER_STATE_SCAN_BYTES_MAX` bytes (`Broker::visit_tail_batch_headers`)
//!   and replays them through `ProducerState::remember`, which gives the state the previous
//!   process had for every producer that wrote there, as long as its batches are in that tail.
//!   Nothing is written beside the log, so nothing can disagree with it.
//! - Producer ids come from blocks of `PRODUCER_IDS_RESERVED_PER_WRITE` reserved durably in the
//!   metadata store (`Broker::reserve_producer_ids`) before any id of the block is handed out,
//!   so a crash can skip ids but never repeat one.
//!
//! Bounds: at most `PRODUCER_STATES_MAX` states in memory, each with at most
//! `PRODUCER_BATCHES_REMEMBERED` batch ranges; when full, the tenth written to longest ago is
//! forgotten, and a state not written to for `PRODUCER_ID_EXPIRATION_MS` is
//! forgotten when it is next used (Kafka's `producer.id.expiration.ms`). A forgotten producer
//! is treated as new: its next batch is accepted at any sequence.
//! The time of a state rebuilt from the log is the time of the rebuild, not its last batch's
//! timestamp: batch timestamps are the producer's clock (often an event time far in the past),
//! and a retry after a restart must not find its producer expired because of them.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use weft_core::{Broker, Error, Stream};
use weft_log::batch::{BatchHeader, ProducerStamp};

/// Batches remembered per producer and partition for duplicate detection (Kafka's number).
pub const PRODUCER_BATCHES_REMEMBERED: usize = 5;
/// Producer states (one per stream, partition and producer id) kept in memory before the one
/// written to longest ago is forgotten.
pub const PRODUCER_STATES_MAX: usize = 100_000;
/// A producer state not written to for this long is forgotten (Kafka's
/// `producer.id.expiration.ms` default: one day).
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;
/// Bytes at the end of a partition whose batch headers rebuild its producer states after a
/// restart: the default segment size. The scan reads headers only, skipping over large
/// batches; its cost is in PROTOCOL.md ("Idempotence across restarts").
pub const PRODUCER_STATE_SCAN_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Producer ids reserved in the metadata store with one durable write.
pub const PRODUCER_IDS_RESERVED_PER_WRITE: u64 = 1000;

/// (stream, partition, producer id).
type ProducerKey = (String, u32, i64);
/// One producer's state on one partition, locked for the whole check-and-append.
type SharedProducerState = Arc<tokio::sync::Mutex<ProducerState>>;
/// Set once a partition's states were rebuilt from its log.
type RebuiltOnce = Arc<tokio::sync::OnceCell<()>>;

/// Hands out producer ids and remembers what each producer appended.
pub struct ProducerRegistry {
    /// Ids reserved durably and not handed out yet.
    ids: tokio::sync::Mutex<Range<i64>>,
    states: Mutex<HashMap<ProducerKey, SharedProducerState>>,
    /// Partitions whose states were rebuilt from the log by this process (set once each); one
    /// small entry per partition that had an idempotent produce, so bounded by the partitions.
    rebuilt: Mutex<HashMap<(String, u32), RebuiltOnce>>,
}

/// What one producer appended to one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerState {
    epoch: i16,
    recent: VecDeque<AppendedBatch>,
    /// Broker time of the last append (or of the rebuild that found it).
    pub last_write_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AppendedBatch {
    base_sequence: i32,
    last_sequence: i32,
    base_offset: u64,
}

/// The verdict on an idempotent batch before it is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    Append,
    Duplicate { base_offset: u64 },
    OutOfOrder,
    StaleEpoch,
}

impl ProducerState {
    /// Checks a batch of `n_records` records stamped `stamp` against what was appended.
    /// A producer seen for the first time (or forgotten) may start at any sequence.
    pub fn check(&self, stamp: ProducerStamp, n_records: u32) -> SequenceCheck {
        let Some(last) = self.recent.back() else { return SequenceCheck::Append };
        if stamp.producer_epoch < self.epoch {
            return SequenceCheck::StaleEpoch;
        }
        if stamp.producer_epoch > self.epoch {
            return if stamp.base_sequence == 0 { SequenceCheck::Append } else { SequenceCheck::OutOfOrder };
        }
        let last_sequence = last_sequence(stamp.base_sequence, n_records);
        if let Some(original) = self.recent.iter().find(|b| b.base_sequence == stamp.base_sequence && b.last_sequence == last_sequence) {
            return SequenceCheck::Duplicate { base_offset: original.base_offset };
        }
        if stamp.base_sequence == next_sequence(last.last_sequence) { SequenceCheck::Append } else { SequenceCheck::OutOfOrder }
    }

    /// Records an appended batch.
    pub fn remember(&mut self, stamp: ProducerStamp, n_records: u32, base_offset: u64) {
        if stamp.producer_epoch != self.epoch {
            self.recent.clear();
            self.epoch = stamp.producer_epoch;
        }
        if self.recent.len() == PRODUCER_BATCHES_REMEMBERED {
            self.recent.pop_front();
        }
        let last_sequence = last_sequence(stamp.base_sequence, n_records);
        self.recent.push_back(AppendedBatch { base_sequence: stamp.base_sequence, last_sequence, base_offset });
    }

    /// Forgets everything if the producer has not written for `PRODUCER_ID_EXPIRATION_MS`.
    pub fn forget_if_expired(&mut self, now_ms: i64) {
        if now_ms.saturating_sub(self.last_write_ms) >= PRODUCER_ID_EXPIRATION_MS {
            *self = Self { last_write_ms: now_ms, ..Self::default() };
        }
    }
}

/// Sequences wrap from `i32::MAX` to 0 (Kafka's rule).
fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX { 0 } else { sequence + 1 }
}

fn last_sequence(base_sequence: i32, n_records: u32) -> i32 {
    ((base_sequence as i64 + n_records as i64 - 1) % (i32::MAX as i64 + 1)) as i32
}

impl Default for ProducerRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl ProducerRegistry {
    pub fn new() -> Self {
        Self { ids: tokio::sync::Mutex::new(0..0), states: Mutex::new(HashMap::new()), rebuilt: Mutex::new(HashMap::new()) }
    }

    /// A producer id never handed out before on this data directory.
    pub async fn next_producer_id(&self, broker: &Arc<Broker>) -> Result<i64, Error> {
        let mut ids = self.ids.lock().await;
        if ids.is_empty() {
            let broker = Arc::clone(broker);
            *ids = tokio::task::spawn_blocking(move || broker.reserve_producer_ids(PRODUCER_IDS_RESERVED_PER_WRITE))
                .await
                .map_err(|error| Error::internal(format!("producer id task failed: {error}")))??;
        }
        let id = ids.start;
        ids.start += 1;
        Ok(id)
    }

    /// The state of `producer_id` on `stream`'s `partition`, rebuilt from the log first if
    /// this is the partition's first idempotent produce since start. The caller locks it for
    /// the whole check-and-append, so one producer's batches to one partition are serialized.
    pub async fn state(
        &self,
        broker: &Arc<Broker>,
        stream: &Arc<Stream>,
        partition: u32,
        producer_id: i64,
    ) -> Result<SharedProducerState, Error> {
        self.rebuild_once(broker, stream, partition).await?;
        let now_ms = broker.now_ms();
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (stream.name().to_string(), partition, producer_id);
        if let Some(state) = states.get(&key) {
            return Ok(Arc::clone(state));
        }
        if states.len() >= PRODUCER_STATES_MAX {
            // A tenth at once, so a full registry pays one pass over it per 10,000 new states.
            forget_oldest(&mut states, PRODUCER_STATES_MAX - PRODUCER_STATES_MAX / 10);
        }
        let state = Arc::new(tokio::sync::Mutex::new(ProducerState { last_write_ms: now_ms, ..ProducerState::default() }));
        states.insert(key, Arc::clone(&state));
        Ok(state)
    }

    /// Rebuilds the partition's producer states from its tail, once per process; concurrent
    /// callers wait for the one that scans. A failed scan is retried by the next produce.
    async fn rebuild_once(&self, broker: &Arc<Broker>, stream: &Arc<Stream>, partition: u32) -> Result<(), Error> {
        let cell = {
            let mut rebuilt = self.rebuilt.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(rebuilt.entry((stream.name().to_string(), partition)).or_default())
        };
        cell.get_or_try_init(|| async {
            let (task_broker, task_stream) = (Arc::clone(broker), Arc::clone(stream));
            let started = std::time::Instant::now();
            let (rebuilt, scan) = tokio::task::spawn_blocking(move || {
                rebuild_partition(&task_broker, &task_stream, partition, PRODUCER_STATE_SCAN_BYTES_MAX)
            })
            .await
            .map_err(|error| Error::internal(format!("producer state task failed: {error}")))??;
            tracing::debug!(
                stream = stream.name(),
                partition,
                producers = rebuilt.len(),
                batches = scan.n_batches,
                bytes = scan.bytes_scanned,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "rebuilt idempotent producer state from the log"
            );
            let now_ms = broker.now_ms();
            let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
            for (producer_id, mut state) in rebuilt {
                state.last_write_ms = now_ms;
                states
                    .entry((stream.name().to_string(), partition, producer_id))
                    .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(state)));
            }
            if states.len() > PRODUCER_STATES_MAX {
                forget_oldest(&mut states, PRODUCER_STATES_MAX);
            }
            Ok::<(), Error>(())
        })
        .await?;
        Ok(())
    }
}

/// Replays the headers of the last `bytes_max` bytes of a partition into per-producer states,
/// keeping at most `PRODUCER_STATES_MAX` producers (those whose last batch is latest).
/// Blocking: it reads the log.
pub fn rebuild_partition(
    broker: &Broker,
    stream: &Stream,
    partition: u32,
    bytes_max: u64,
) -> Result<(Vec<(i64, ProducerState)>, weft_log::TailScan), Error> {
    let mut folded = TailFold::default();
    let scan = broker.visit_tail_batch_headers(stream, partition, bytes_max, |header| folded.visit(header))?;
    Ok((folded.finish(PRODUCER_STATES_MAX), scan))
}

/// Producer states folded from batch headers in offset order, with the index of each
/// producer's last batch, so the bound keeps the most recent producers.
#[derive(Default)]
struct TailFold {
    n_batches: u64,
    producers: HashMap<i64, (u64, ProducerState)>,
}

impl TailFold {
    fn visit(&mut self, header: &BatchHeader) {
        self.n_batches += 1;
        if header.producer.producer_id < 0 || header.is_control() {
            return;
        }
        let (last_batch_idx, state) = self.producers.entry(header.producer.producer_id).or_default();
        *last_batch_idx = self.n_batches;
        state.remember(header.producer, header.record_count, header.base_offset);
        if self.producers.len() > 2 * PRODUCER_STATES_MAX {
            // Trimming to half only when twice over keeps the cost per batch constant.
            self.keep_latest(PRODUCER_STATES_MAX);
        }
    }

    fn keep_latest(&mut self, n_producers: usize) {
        if self.producers.len() <= n_producers {
            return;
        }
        let mut last_batch_idxs: Vec<u64> = self.producers.values().map(|(last_batch_idx, _)| *last_batch_idx).collect();
        let cut_idx = last_batch_idxs.len() - n_producers;
        let (_, &mut oldest_kept, _) = last_batch_idxs.select_nth_unstable(cut_idx);
        self.producers.retain(|_, (last_batch_idx, _)| *last_batch_idx >= oldest_kept);
    }

    fn finish(mut self, n_producers: usize) -> Vec<(i64, ProducerState)> {
        self.keep_latest(n_producers);
        self.producers.into_iter().map(|(producer_id, (_, state))| (producer_id, state)).collect()
    }
}

/// Forgets the states written to longest ago until at most `keep` remain, skipping any that
/// an append is holding right now.
fn forget_oldest(states: &mut HashMap<ProducerKey, SharedProducerState>, keep: usize) {
    if states.len() <= keep {
        return;
    }
    let mut idle: Vec<(i64, ProducerKey)> = states
        .iter()
        .filter(|(_, state)| Arc::strong_count(state) == 1)
        .filter_map(|(key, state)| state.try_lock().ok().map(|state| (state.last_write_ms, key.clone())))
        .collect();
    let n_forget = (states.len() - keep).min(idle.len());
    if n_forget == 0 {
        return;
    }
    idle.select_nth_unstable_by_key(n_forget - 1, |(last_write_ms, _)| *last_write_ms);
    for (_, key) in idle.into_iter().take(n_forget) {
        states.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(epoch: i16, base_sequence: i32) -> ProducerStamp {
        ProducerStamp { producer_id: 7, producer_epoch: epoch, base_sequence }
    }

    /// Kafka's idempotence rules: in-order sequences append, a resent batch is a duplicate
    /// answered with its first offset, a gap is out of order, an older epoch is fenced.
    #[test]
    fn sequences_follow_kafka_idempotence_rules() {
        let mut state = ProducerState::default();
        assert_eq!(state.check(stamp(0, 0), 3), SequenceCheck::Append);
        state.remember(stamp(0, 0), 3, 100);
        assert_eq!(state.check(stamp(0, 0), 3), SequenceCheck::Duplicate { base_offset: 100 });
        assert_eq!(state.check(stamp(0, 3), 2), SequenceCheck::Append);
        state.remember(stamp(0, 3), 2, 103);
        assert_eq!(state.check(stamp(0, 3), 2), SequenceCheck::Duplicate { base_offset: 103 });
        assert_eq!(state.check(stamp(0, 0), 3), SequenceCheck::Duplicate { base_offset: 100 });
        assert_eq!(state.check(stamp(0, 6), 1), SequenceCheck::OutOfOrder);
        assert_eq!(state.check(stamp(0, 4), 1), SequenceCheck::OutOfOrder);
        assert_eq!(state.check(stamp(1, 5), 1), SequenceCheck::OutOfOrder);
        assert_eq!(state.check(stamp(1, 0), 1), SequenceCheck::Append);
        state.remember(stamp(1, 0), 1, 105);
        assert_eq!(state.check(stamp(0, 5), 1), SequenceCheck::StaleEpoch);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut state = ProducerState::default();
        for batch_idx in 0..6 {
            state.remember(stamp(0, batch_idx), 1, 10 + batch_idx as u64);
        }
        assert_eq!(state.check(stamp(0, 0), 1), SequenceCheck::OutOfOrder);
        assert_eq!(state.check(stamp(0, 1), 1), SequenceCheck::Duplicate { base_offset: 11 });
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut state = ProducerState::default();
        state.remember(stamp(0, i32::MAX - 1), 2, 0);
        assert_eq!(state.check(stamp(0, 0), 1), SequenceCheck::Append);
    }

    /// A producer silent for `PRODUCER_ID_EXPIRATION_MS` is forgotten; one a moment younger is not.
    #[test]
    fn a_producer_silent_for_a_day_is_forgotten() {
        let mut state = ProducerState { last_write_ms: 1_000, ..ProducerState::default() };
        state.remember(stamp(0, 0), 1, 0);
        state.forget_if_expired(1_000 + PRODUCER_ID_EXPIRATION_MS - 1);
        assert_eq!(state.check(stamp(0, 0), 1), SequenceCheck::Duplicate { base_offset: 0 });
        state.forget_if_expired(1_000 + PRODUCER_ID_EXPIRATION_MS);
        assert_eq!(state.check(stamp(0, 0), 1), SequenceCheck::Append, "forgotten: any sequence is accepted");
    }

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, record_count: u32, base_offset: u64) -> BatchHeader {
        BatchHeader {
            base_offset,
            total_bytes: 100,
            record_count,
            attributes: 0,
            max_timestamp: 0,
            producer: ProducerStamp { producer_id, producer_epoch: epoch, base_sequence },
        }
    }

    /// Replaying a tail gives each producer the state live appends gave it: the last five
    /// batches of its newest epoch; batches without a producer are skipped.
    #[test]
    fn a_replayed_tail_gives_the_state_live_appends_gave() {
        let mut live: HashMap<i64, ProducerState> = HashMap::new();
        let mut fold = TailFold::default();
        let mut offset = 0;
        for batch_idx in 0..40u32 {
            let producer_id = [-1, 1, 2][batch_idx as usize % 3];
            let epoch = if batch_idx > 30 { 1 } else { 0 };
            let base_sequence = if epoch == 1 { (batch_idx as i32 - 31) * 2 } else { batch_idx as i32 * 2 };
            let header = header(producer_id, epoch, base_sequence, 2, offset);
            fold.visit(&header);
            if producer_id >= 0 {
                live.entry(producer_id).or_default().remember(header.producer, 2, offset);
            }
            offset += 2;
        }
        let mut rebuilt: Vec<(i64, ProducerState)> = fold.finish(PRODUCER_STATES_MAX);
        rebuilt.sort_by_key(|(producer_id, _)| *producer_id);
        let mut live: Vec<(i64, ProducerState)> = live.into_iter().collect();
        live.sort_by_key(|(producer_id, _)| *producer_id);
        assert_eq!(rebuilt, live);
    }

    /// The fold keeps at most the bound, and the producers it keeps are those written last.
    #[test]
    fn a_replayed_tail_keeps_the_producers_written_last() {
        let mut fold = TailFold::default();
        for producer_id in 0..25 {
            fold.visit(&header(producer_id, 0, 0, 1, producer_id as u64));
        }
        fold.visit(&header(3, 0, 1, 1, 25));
        let mut kept: Vec<i64> = fold.finish(10).into_iter().map(|(producer_id, _)| producer_id).collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![3, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
    }

    /// Forgetting removes the states written to longest ago and keeps those in use.
    #[test]
    fn the_states_written_to_longest_ago_are_forgotten_first() {
        let mut states = HashMap::new();
        for producer_id in 0..10i64 {
            let state = ProducerState { last_write_ms: 100 - producer_id, ..ProducerState::default() };
            states.insert(("s".to_string(), 0, producer_id), Arc::new(tokio::sync::Mutex::new(state)));
        }
        let held = Arc::clone(&states[&("s".to_string(), 0, 9)]);
        forget_oldest(&mut states, 7);
        let mut kept: Vec<i64> = states.keys().map(|(_, _, producer_id)| *producer_id).collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![0, 1, 2, 3, 4, 5, 9], "9 is the oldest but held by an append");
        drop(held);
    }
}
