//! Weft's core: streams, CloudEvents, partitioning, consumer groups and the broker that
//! ties them to the storage engine.
//!
//! This crate owns the produce and fetch paths that every edge goes through; it knows
//! nothing of HTTP or the Kafka wire protocol (those are `weft-http` and the Kafka crate).
//! It depends on `weft-log` for storage and never touches segment files itself.

pub mod background;
pub mod broker;
pub mod catalog;
pub mod cloudevent;
pub mod dead_letter;
pub mod duration;
pub mod error;
pub mod failpoint;
pub mod group;
pub mod guard;
pub mod idempotence;
pub mod kafka_support;
pub mod lineage;
pub mod mesh;
pub mod meta;
pub mod offline;
pub mod partitioner;
pub mod produce;
pub mod read;
pub mod schema_registry;
pub mod stream;
pub mod stream_activity;

pub use broker::Broker;
pub use cloudevent::CloudEvent;
pub use error::{Error, Kind, codes};
pub use produce::{EventTimeLimit, Incoming, Position, ProduceContext, ProduceOutcome};
pub use read::{FetchedBatches, StoredRecord};
pub use stream::{Stream, StreamConfig};
pub use weft_log::batch::Record;
pub use weft_log::{Clock, FsyncPolicy, PartitionStats, SystemClock, VerifiedBatch};

/// Escapes a token for use in a JSON pointer (RFC 6901).
pub fn json_pointer_escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
