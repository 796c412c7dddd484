//! What the partition must hold, kept beside it by the simulation: every batch written, in which
//! segment, which of them must survive a crash, and what retention may have deleted.
//!
//! The model mirrors the engine's documented rules (FORMAT.md: rolling, retention by size and
//! time) from its own bookkeeping, so a deletion or a roll the rules do not call for is a
//! failure. It learns nothing from the engine except where the engine's answer is allowed to
//! vary: which unsynced batches survived power loss, and whether an interrupted roll or
//! retention reached the disk.

use weft_log::LogConfig;

/// One batch as stored: bytes with the assigned base offset.
#[derive(Debug, Clone)]
pub struct ModelBatch {
    pub id: u64,
    pub base_offset: u64,
    pub next_offset: u64,
    pub bytes: Vec<u8>,
    pub max_timestamp: i64,
}

#[derive(Debug, Clone)]
pub struct ModelSegment {
    pub base_offset: u64,
    pub batches: Vec<ModelBatch>,
    pub first_append_ms: Option<i64>,
}

impl ModelSegment {
    fn new(base_offset: u64) -> Self {
        Self { base_offset, batches: Vec::new(), first_append_ms: None }
    }

    pub fn size_bytes(&self) -> u64 {
        self.batches.iter().map(|batch| batch.bytes.len() as u64).sum()
    }

    pub fn next_offset(&self) -> u64 {
        self.batches.last().map_or(self.base_offset, |batch| batch.next_offset)
    }

    fn max_timestamp(&self) -> i64 {
        self.batches.iter().map(|batch| batch.max_timestamp).max().unwrap_or(-1)
    }
}

#[derive(Debug)]
pub struct Model {
    /// Oldest first; the last is the active segment.
    pub segments: Vec<ModelSegment>,
    /// Every offset below this (and at or above the log start) must survive a crash:
    /// acknowledged under `always`, covered by a successful `sync`, seen by a reader under
    /// `always`, or found by the last recovery.
    pub must_survive_next_offset: u64,
    /// An append failed after its roll created the next segment's file, which may survive.
    pub roll_in_doubt: Option<u64>,
    /// Segments an interrupted retention removed from the engine's view; after power loss they
    /// may come back (oldest first).
    pub deleted_in_doubt: Vec<ModelSegment>,
    /// A durability wait or fsync failed: the engine may have poisoned itself and cut back its
    /// active segment, so the model's active size is no longer the engine's.
    pub maybe_poisoned: bool,
}

impl Model {
    pub fn new() -> Self {
        Self {
            segments: vec![ModelSegment::new(0)],
            must_survive_next_offset: 0,
            roll_in_doubt: None,
            deleted_in_doubt: Vec::new(),
            maybe_poisoned: false,
        }
    }

    pub fn active(&self) -> &ModelSegment {
        self.segments.last().expect("the model always has an active segment")
    }

    pub fn next_offset(&self) -> u64 {
        self.active().next_offset()
    }

    pub fn log_start_offset(&self) -> u64 {
        self.segments[0].base_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(ModelSegment::size_bytes).sum()
    }

    /// Whether the engine's rule rolls the active segment before a batch of `incoming_bytes`.
    pub fn roll_due(&self, config: &LogConfig, incoming_bytes: u64, now_ms: i64) -> bool {
        let active = self.active();
        let size_bytes = active.size_bytes();
        if size_bytes == 0 {
            return false;
        }
        let too_big = size_bytes + incoming_bytes > config.segment_bytes_max;
        let too_old = config
            .segment_age_max_ms
            .is_some_and(|age_max_ms| now_ms.saturating_sub(active.first_append_ms.unwrap_or(now_ms)) >= age_max_ms);
        too_big || too_old
    }

    /// Starts a new active segment at the next offset (the engine rolled).
    pub fn roll(&mut self) {
        let base_offset = self.next_offset();
        self.segments.push(ModelSegment::new(base_offset));
    }

    pub fn push(&mut self, batch: ModelBatch, now_ms: i64) {
        let active = self.segments.last_mut().expect("an active segment");
        assert_eq!(batch.base_offset, active.next_offset(), "model batches are dense");
        active.first_append_ms.get_or_insert(now_ms);
        active.batches.push(batch);
    }

    /// How many of the oldest sealed segments retention deletes now, given the engine's total
    /// size (which differs from the model's only after a poisoned partition cut back its tail).
    pub fn retention_due(&self, config: &LogConfig, engine_total_bytes: u64, now_ms: i64) -> usize {
        let mut total_bytes = engine_total_bytes;
        let mut n_deleted = 0;
        while self.segments.len() - n_deleted > 1 {
            let oldest = &self.segments[n_deleted];
            let expired = config.retention_ms.is_some_and(|retention_ms| oldest.max_timestamp() < now_ms.saturating_sub(retention_ms));
            let oversized = config.retention_bytes.is_some_and(|retention_bytes| total_bytes > retention_bytes);
            if !(expired || oversized) {
                break;
            }
            total_bytes -= oldest.size_bytes();
            n_deleted += 1;
        }
        n_deleted
    }

    /// Removes the `n` oldest segments (retention deleted them durably).
    pub fn delete_oldest(&mut self, n: usize) -> Vec<ModelSegment> {
        self.segments.drain(..n).collect()
    }

    /// Every batch, oldest first.
    pub fn batches(&self) -> impl Iterator<Item = &ModelBatch> {
        self.segments.iter().flat_map(|segment| segment.batches.iter())
    }
}
