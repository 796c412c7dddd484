//! What idempotent producers need from storage, through the one door: producer ids that are
//! never handed out twice, across restarts and crashes, and the producer stamps (id, epoch,
//! base sequence) of the batches at a partition's tail, from which the Kafka edge rebuilds
//! its sequence state after a restart.
//!
//! The log is the source of truth for sequences: every stored RecordBatch v2 carries its
//! producer id, epoch and base sequence, so nothing is kept beside it that could disagree with
//! it. Only the id high-water mark lives in the metadata store, because ids handed out but
//! never used leave no trace in any log.
//!
//! It knows nothing of Kafka's wire protocol or its sequence rules: those are the edge's.

use std::ops::Range;

use weft_log::TailScan;
use weft_log::batch::BatchHeader;

use crate::broker::Broker;
use crate::error::Error;
use crate::stream::Stream;

/// Microseconds per millisecond: the id floor is the clock in microseconds.
const MICROS_PER_MS: i64 = 1000;

impl Broker {
    /// Reserves `count` producer ids that no earlier reservation, in this process or any
    /// before it on this data directory, returned. The range is durable before it is
    /// returned, so a crash can only skip ids, never repeat them. Ids also stay above the
    /// clock in microseconds, the scheme of versions that did not store a high-water mark.
    /// Blocking: it commits to the metadata store.
    pub fn reserve_producer_ids(&self, count: u64) -> Result<Range<i64>, Error> {
        let floor = self.now_ms().max(1).saturating_mul(MICROS_PER_MS);
        self.meta().reserve_producer_ids(count, floor)
    }

    /// Calls `visit` with the header of each batch in (at least) the last `bytes_max` bytes of
    /// `stream`'s `partition`, in offset order, up to the visible end (`PartitionLog::
    /// visit_tail_headers`). Blocking: it reads segment files; call it on a blocking thread.
    pub fn visit_tail_batch_headers(
        &self,
        stream: &Stream,
        partition: u32,
        bytes_max: u64,
        visit: impl FnMut(&BatchHeader),
    ) -> Result<TailScan, Error> {
        Ok(stream.partition(partition)?.visit_tail_headers(bytes_max, visit)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use weft_log::Clock;

    use super::*;

    struct StillClock(AtomicI64);

    impl Clock for StillClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// Proves: reservations never overlap, across reopening the data directory, even when the
    /// clock stands still or goes back.
    #[test]
    fn producer_id_reservations_never_overlap_across_reopening_even_when_the_clock_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(StillClock(AtomicI64::new(1_700_000_000_000)));
        let mut reserved: Vec<Range<i64>> = Vec::new();
        for reopen_idx in 0..3 {
            let broker = Broker::open(dir.path(), Arc::clone(&clock) as Arc<dyn Clock>).unwrap();
            reserved.push(broker.reserve_producer_ids(10).unwrap());
            reserved.push(broker.reserve_producer_ids(1).unwrap());
            drop(broker);
            if reopen_idx == 1 {
                clock.0.fetch_sub(60_000, Ordering::SeqCst);
            }
        }
        assert_eq!(reserved[0].start, 1_700_000_000_000_000, "the first ids start at the clock in microseconds");
        for pair in reserved.windows(2) {
            assert!(pair[0].end <= pair[1].start, "reservations are disjoint and increasing: {reserved:?}");
        }
        assert_eq!(reserved.iter().map(|range| range.end - range.start).sum::<i64>(), 33);
    }
}
