//! The read side of the one door to storage: whole batches by offset, offsets by time, and
//! partition offsets, for every edge (HTTP fetch, live tails, group polls, Kafka Fetch and
//! ListOffsets, the catalog's samples).
//!
//! Edges never hold a `PartitionLog`; they name a stream and a partition and get bytes and
//! decoded records back. Batches returned here were checksum-checked once when the log read
//! them; `FetchedBatches::records` decodes them without checking again, decompresses a
//! compressed batch once, and says per record whether Weft checked its JSON value on the way
//! in (`StoredRecord::json_checked`), so renderers need not parse it again.

use std::sync::{Arc, OnceLock};

use weft_log::batch::{Compression, Record};
use weft_log::{PartitionStats, ReadChunk};

use crate::broker::{Broker, FETCH_BYTES_MAX};
use crate::error::{Error, Kind, codes};
use crate::stream::Stream;

/// One stored record and what Weft knows about its value.
pub struct StoredRecord<'a> {
    pub record: Record<'a>,
    /// Weft encoded the record's batch after checking that a JSON value (by its content type)
    /// is valid UTF-8 JSON: render it as it is.
    pub json_checked: bool,
}

/// Whole batches read from one partition, with the window the caller asked for.
pub struct FetchedBatches {
    pub partition: u32,
    pub from_offset: u64,
    pub visible_next_offset: u64,
    pub log_start_offset: u64,
    chunk: ReadChunk,
    /// Record data of the compressed batches in `chunk`, in order, decompressed on first use.
    decompressed: OnceLock<Vec<Vec<u8>>>,
}

impl FetchedBatches {
    fn new(partition: u32, from_offset: u64, chunk: ReadChunk) -> Self {
        Self {
            partition,
            from_offset,
            visible_next_offset: chunk.visible_next_offset,
            log_start_offset: chunk.log_start_offset,
            chunk,
            decompressed: OnceLock::new(),
        }
    }

    /// The stored batches, byte for byte (what a Kafka consumer receives).
    pub fn bytes(&self) -> &[u8] {
        &self.chunk.bytes
    }

    /// Takes the stored batches, byte for byte.
    pub fn into_bytes(self) -> Vec<u8> {
        self.chunk.bytes
    }

    /// Offset after the last returned batch.
    pub fn next_offset(&self) -> u64 {
        self.chunk.next_offset
    }

    /// Decompresses every compressed batch once; `records` borrows from the result.
    fn decompressed_batches(&self) -> Result<&[Vec<u8>], Error> {
        if let Some(decompressed) = self.decompressed.get() {
            return Ok(decompressed);
        }
        let mut decompressed = Vec::new();
        for batch in self.chunk.batches() {
            if batch.compression() != Compression::None {
                let data = batch
                    .decompress_records()
                    .map_err(|error| Error::internal(format!("cannot decode stored batch at offset {}: {error}", batch.base_offset())))?;
                decompressed.push(data.into_owned());
            }
        }
        Ok(self.decompressed.get_or_init(|| decompressed))
    }

    /// The records at or after the requested offset, at most `max_events` of them.
    pub fn records(&self, max_events: usize) -> Result<Vec<StoredRecord<'_>>, Error> {
        let mut records = Vec::new();
        let mut compressed_idx = 0;
        for batch in self.chunk.batches() {
            if records.len() >= max_events {
                break;
            }
            let data: &[u8] = if batch.compression() == Compression::None {
                batch.records_bytes()
            } else {
                compressed_idx += 1;
                &self.decompressed_batches()?[compressed_idx - 1]
            };
            if batch.is_control() {
                continue;
            }
            let json_checked = batch.is_json_checked();
            for record in batch.records_in(data) {
                let record = record.map_err(|error| Error::new(Kind::Internal, codes::STORAGE_CORRUPT, error.to_string()))?;
                if record.offset < self.from_offset {
                    continue;
                }
                records.push(StoredRecord { record, json_checked });
                if records.len() == max_events {
                    break;
                }
            }
        }
        Ok(records)
    }
}

impl Broker {
    /// Reads whole batches from one partition starting at `offset` (the read runs on a
    /// blocking thread).
    pub async fn read_batches(&self, stream: &Arc<Stream>, partition: u32, offset: u64, max_bytes: usize) -> Result<FetchedBatches, Error> {
        let stream = Arc::clone(stream);
        tokio::task::spawn_blocking(move || read_batches_blocking(&stream, partition, offset, max_bytes))
            .await
            .map_err(|error| Error::internal(format!("read task failed: {error}")))?
    }

    /// `read_batches` for a caller already on a blocking thread (the Kafka listener reads
    /// every partition of a Fetch in one blocking pass).
    pub fn read_batches_blocking(&self, stream: &Stream, partition: u32, offset: u64, max_bytes: usize) -> Result<FetchedBatches, Error> {
        read_batches_blocking(stream, partition, offset, max_bytes)
    }

    /// Sizes and offsets of one partition.
    pub fn partition_stats(&self, stream: &Stream, partition: u32) -> Result<PartitionStats, Error> {
        stream.partition_stats(partition)
    }

    /// The first offset at or after `timestamp_ms` in a partition, or `None` if every
    /// readable record is older.
    pub async fn offset_for_time(&self, stream: &Arc<Stream>, partition: u32, timestamp_ms: i64) -> Result<Option<u64>, Error> {
        let log = Arc::clone(stream.partition(partition)?);
        tokio::task::spawn_blocking(move || Ok(log.offset_for_timestamp(timestamp_ms)?))
            .await
            .map_err(|error| Error::internal(format!("lookup task failed: {error}")))?
    }

    /// The timestamp of the record at `offset`, if it is readable.
    pub async fn record_timestamp(&self, stream: &Arc<Stream>, partition: u32, offset: u64) -> Option<i64> {
        let fetched = self.read_batches(stream, partition, offset, 1).await.ok()?;
        let records = fetched.records(1).ok()?;
        records.first().map(|stored| stored.record.timestamp_ms)
    }
}

fn read_batches_blocking(stream: &Stream, partition: u32, offset: u64, max_bytes: usize) -> Result<FetchedBatches, Error> {
    let log = stream.partition(partition)?;
    let chunk = log.read(offset, max_bytes.clamp(1, FETCH_BYTES_MAX))?;
    Ok(FetchedBatches::new(partition, offset, chunk))
}
