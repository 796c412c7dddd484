//! The checks after a recovery: what an offline tool sees before it, what the recovered log
//! holds against the model, and the model adopting what survived.

use weft_log::batch::{BatchView, batch_total_len};
use weft_log::{LogError, PartitionLog, StorageBackend};

use super::Simulation;

impl Simulation {
    /// Checks that `read` is a prefix of the model's batches, byte for byte (so every offset
    /// is dense and every batch is where it was acknowledged, once); returns its end offset.
    pub(super) fn compare_with_model(&self, read: &[Vec<u8>]) -> Result<u64, String> {
        let mut end = self.model.log_start_offset();
        let mut expected = self.model.batches();
        for (batch_idx, got) in read.iter().enumerate() {
            let Some(want) = expected.next() else {
                return Err(format!("the log holds {} batches, more than were written", read.len()));
            };
            if got != &want.bytes {
                return Err(format!(
                    "batch {batch_idx} of the log (expected batch {} at offset {}) differs from what was written",
                    want.id, want.base_offset
                ));
            }
            end = want.next_offset;
        }
        Ok(end)
    }

    /// What an offline tool sees before recovery: `scan_partition_read_only_with` walks the
    /// surviving files without one mutating disk call, and every whole batch it visits in the
    /// last segment before the first damaged one is one the model wrote, at its offset.
    pub(super) fn scan_read_only(&mut self) -> Result<(), String> {
        let calls_before = self.disk.stats().n_mutating_calls;
        let mut visited = Vec::new();
        let report = weft_log::scan_partition_read_only_with(&self.disk, &self.dir, |batch| visited.push(batch.as_bytes().to_vec()))
            .map_err(|error| format!("the read-only scan failed: {error}"))?;
        if self.disk.stats().n_mutating_calls != calls_before {
            return Err("the read-only scan changed the disk".into());
        }
        let written: std::collections::BTreeMap<u64, &[u8]> = self
            .model
            .batches()
            .chain(self.model.deleted_in_doubt.iter().flat_map(|segment| segment.batches.iter()))
            .map(|batch| (batch.base_offset, batch.bytes.as_slice()))
            .collect();
        for bytes in &visited {
            let base_offset = BatchView::parse(bytes).expect("the scan visits checked batches").base_offset();
            if written.get(&base_offset) != Some(&bytes.as_slice()) {
                return Err(format!("the read-only scan found a batch at offset {base_offset} that was never written there"));
            }
        }
        self.note(format!("read-only scan: {} batches, stopped: {:?}", report.n_batches, report.stopped.map(|stop| stop.reason)));
        Ok(())
    }

    /// After a recovery: the segments on disk are the model's (give or take an interrupted roll
    /// or retention), the log is a prefix of what was written, byte for byte, that holds
    /// everything that had to survive; then the model adopts what survived.
    pub(super) fn check_recovered(&mut self, lost_power: bool) -> Result<(), String> {
        let names = self.disk.list_dir(&self.dir).map_err(|error| format!("listing the partition failed: {error}"))?;
        let mut bases: Vec<u64> = names.iter().filter_map(|name| name.strip_suffix(".log")?.parse().ok()).collect();
        bases.sort_unstable();
        let stats = self.log().stats();
        if bases.first() != Some(&stats.log_start_offset) {
            return Err(format!("the log starts at {} but the segments on disk are {bases:?}", stats.log_start_offset));
        }
        let start = stats.log_start_offset;
        let (restored, still_in_doubt): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.model.deleted_in_doubt).into_iter().partition(|segment| segment.base_offset >= start);
        self.model.segments.splice(0..0, restored);
        if !lost_power {
            self.model.deleted_in_doubt = still_in_doubt;
        }
        if self.model.log_start_offset() != start {
            return Err(format!(
                "the recovered log starts at {start}, the model at {}: retention deleted too much, or a deleted segment came back",
                self.model.log_start_offset()
            ));
        }
        let model_bases: Vec<u64> = self.model.segments.iter().map(|segment| segment.base_offset).collect();
        let roll_in_doubt = self.model.roll_in_doubt.take();
        if bases != model_bases {
            let rolled = roll_in_doubt.is_some_and(|base| {
                bases.len() == model_bases.len() + 1 && bases[..model_bases.len()] == model_bases[..] && bases[model_bases.len()] == base
            });
            if !rolled {
                return Err(format!(
                    "the segments on disk start at {bases:?}, the model expects {model_bases:?} (a roll at {roll_in_doubt:?} may have happened)"
                ));
            }
            self.model.roll();
        }
        let read = read_all(self.log(), usize::MAX).map_err(|error| format!("reading the recovered log failed: {error}"))?;
        let end = self.compare_with_model(&read)?;
        if end != stats.visible_next_offset {
            return Err(format!("the recovered log reads up to {end} but says its visible end is {}", stats.visible_next_offset));
        }
        let must_survive = self.model.must_survive_next_offset.max(self.model.active().base_offset);
        if end < must_survive {
            return Err(format!(
                "recovery kept offsets up to {end}, but everything below {must_survive} was acknowledged, visible, synced or sealed"
            ));
        }
        let active = self.model.segments.last_mut().expect("an active segment");
        active.batches.retain(|batch| batch.next_offset <= end);
        for segment in &mut self.model.segments {
            segment.first_append_ms = None;
        }
        self.model.must_survive_next_offset = end;
        self.model.maybe_poisoned = false;
        for producer in &mut self.producers {
            producer.outstanding.clear();
        }
        self.note(format!("recovered {} batches in {} segments up to {end}", read.len(), bases.len()));
        Ok(())
    }
}

/// Every visible batch from the log start, as stored, read `max_bytes` at a time.
pub(super) fn read_all(log: &PartitionLog, max_bytes: usize) -> Result<Vec<Vec<u8>>, LogError> {
    let mut offset = log.stats().log_start_offset;
    let mut batches = Vec::new();
    loop {
        let chunk = log.read(offset, max_bytes)?;
        if chunk.bytes.is_empty() {
            assert_eq!(offset, chunk.visible_next_offset, "a read below the visible end returns a batch");
            return Ok(batches);
        }
        let mut cursor = 0;
        while cursor < chunk.bytes.len() {
            let total = batch_total_len(&chunk.bytes[cursor..]).expect("reads return whole batches");
            batches.push(chunk.bytes[cursor..cursor + total].to_vec());
            cursor += total;
        }
        offset = chunk.next_offset;
    }
}
