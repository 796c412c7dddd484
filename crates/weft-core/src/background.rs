//! The broker's background work: time and size retention, and the flusher of streams whose
//! fsync policy is `interval:<ms>`. Both loops hold only a weak reference to the broker and
//! stop when it is dropped; their file work runs on blocking threads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use weft_log::FsyncPolicy;

use crate::broker::Broker;
use crate::stream::Stream;

/// How often retention runs.
pub const RETENTION_CHECK_INTERVAL_MS: u64 = 60_000;
/// Longest tick of the interval flusher when no stream asks for a shorter one.
const FLUSH_TICK_MS_MAX: u64 = 100;

impl Broker {
    /// Starts retention and interval-fsync loops; they stop when the broker is dropped.
    pub fn spawn_background_tasks(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(RETENTION_CHECK_INTERVAL_MS));
            loop {
                ticker.tick().await;
                let Some(broker) = weak.upgrade() else { return };
                let streams = broker.streams();
                drop(broker);
                let _ = tokio::task::spawn_blocking(move || enforce_retention(&streams)).await;
            }
        });
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            // One flusher serves every `interval:<ms>` stream: it ticks at the smallest
            // interval in use and syncs each stream whose own interval has elapsed.
            let mut last_sync_ms: BTreeMap<String, i64> = BTreeMap::new();
            let mut ticker = tokio::time::interval(Duration::from_millis(1));
            loop {
                ticker.tick().await;
                let Some(broker) = weak.upgrade() else { return };
                let now_ms = broker.now_ms();
                let mut due = Vec::new();
                let mut tick_ms = FLUSH_TICK_MS_MAX;
                for stream in broker.streams() {
                    if let FsyncPolicy::IntervalMs(interval_ms) = stream.config().fsync {
                        tick_ms = tick_ms.min(interval_ms);
                        let last = last_sync_ms.entry(stream.name().to_string()).or_insert(now_ms);
                        if now_ms - *last >= interval_ms as i64 {
                            *last = now_ms;
                            due.push(stream);
                        }
                    }
                }
                drop(broker);
                if ticker.period() != Duration::from_millis(tick_ms) {
                    ticker = tokio::time::interval(Duration::from_millis(tick_ms));
                    ticker.tick().await;
                }
                if !due.is_empty() {
                    let _ = tokio::task::spawn_blocking(move || sync_streams(&due)).await;
                }
            }
        });
    }

    /// Makes every appended event durable (clean shutdown). Blocking.
    pub fn sync_all(&self) {
        sync_streams(&self.streams());
    }
}

fn enforce_retention(streams: &[Arc<Stream>]) {
    for stream in streams {
        for (partition, log) in stream.partitions().iter().enumerate() {
            match log.enforce_retention() {
                Ok(0) => {}
                Ok(n_segments) => tracing::info!(stream = stream.name(), partition, n_segments, "retention deleted segments"),
                Err(error) => tracing::error!(stream = stream.name(), partition, %error, "retention failed"),
            }
        }
    }
}

fn sync_streams(streams: &[Arc<Stream>]) {
    for stream in streams {
        for (partition, log) in stream.partitions().iter().enumerate() {
            if let Err(error) = log.sync() {
                tracing::error!(stream = stream.name(), partition, %error, "fsync failed");
            }
        }
    }
}
