//! Kafka RecordBatch v2 (magic 2): the unit Weft stores, replicates to disk and serves.
//!
//! This module owns the byte layout of one batch and of the records inside it.
//! It knows nothing of files, partitions or CloudEvents.
//! The layout is documented byte by byte in `FORMAT.md` next to this crate.
//!
//! Weft writes batches with `BatchBuilder` and reads them with `BatchView`.
//! Batches arriving from Kafka producers may be compressed (gzip, snappy, lz4, zstd); they
//! are stored and served to Kafka consumers as they came. `BatchView::records` only
//! iterates uncompressed record data; readers that need the records of a compressed batch
//! call `BatchView::decompress_records` and iterate with `BatchView::records_in`.
//! Decompression is decode only, in pure Rust, and bounded by `DECOMPRESSED_BYTES_MAX`
//! so that a small hostile batch cannot expand without limit (a decompression bomb).

use std::borrow::Cow;
use std::fmt;

/// Bytes before the first record: everything up to and including the record count.
pub const BATCH_HEADER_BYTES: usize = 61;
/// The `baseOffset` and `batchLength` fields, which `batchLength` does not count.
pub const BATCH_LENGTH_PREFIX_BYTES: usize = 12;
/// Largest batch the log accepts; producers split larger payloads.
pub const BATCH_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Magic byte of RecordBatch v2.
pub const MAGIC_V2: i8 = 2;
/// Largest decompressed record data of one batch; beyond it decompression is refused.
pub const DECOMPRESSED_BYTES_MAX: usize = 64 * 1024 * 1024;

const OFFSET_BATCH_LENGTH: usize = 8;
const OFFSET_LEADER_EPOCH: usize = 12;
const OFFSET_MAGIC: usize = 16;
const OFFSET_CRC: usize = 17;
const OFFSET_ATTRIBUTES: usize = 21;
const OFFSET_LAST_OFFSET_DELTA: usize = 23;
const OFFSET_BASE_TIMESTAMP: usize = 27;
const OFFSET_MAX_TIMESTAMP: usize = 35;
const OFFSET_PRODUCER_ID: usize = 43;
const OFFSET_PRODUCER_EPOCH: usize = 51;
const OFFSET_BASE_SEQUENCE: usize = 53;
const OFFSET_RECORD_COUNT: usize = 57;

const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
const ATTRIBUTE_TIMESTAMP_LOG_APPEND: i16 = 0x08;
const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
const ATTRIBUTE_CONTROL: i16 = 0x20;
/// Attribute bit that Weft sets on batches it encoded itself after checking that every record
/// whose content type is JSON holds valid UTF-8 JSON, so readers render those values as they
/// are instead of parsing them again. Kafka leaves bits 7 to 15 unused; a batch from outside
/// with this bit set is refused (`VerifiedBatch::verify`), so it cannot be forged.
pub const ATTRIBUTE_WEFT_JSON_CHECKED: i16 = 0x4000;

/// Why a byte range is not a well-formed batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("batch length {0} is out of range")]
    BadLength(i64),
    #[error("unsupported batch magic {0}, only RecordBatch v2 is supported")]
    BadMagic(i8),
    #[error("batch checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadChecksum { stored: u32, computed: u32 },
    #[error("batch record count {count} disagrees with last offset delta {last_offset_delta}")]
    BadRecordCount { count: i32, last_offset_delta: i32 },
    #[error("malformed record {record_idx}: {reason}")]
    BadRecord { record_idx: usize, reason: &'static str },
    #[error("batch uses compression codec {0}, which this reader cannot decode")]
    UnsupportedCompression(u8),
    #[error("cannot decompress {codec} batch: {reason}")]
    BadCompressedData { codec: &'static str, reason: String },
    #[error("batch decompresses to more than {limit_bytes} bytes")]
    DecompressedTooLarge { limit_bytes: usize },
    #[error("{total_bytes} bytes hold a batch of {batch_bytes} bytes and something after it")]
    TrailingBytes { batch_bytes: usize, total_bytes: usize },
    #[error("batch sets attribute bits {0:#06x}, which are reserved")]
    ReservedAttributes(i16),
}

/// Compression codec named by a batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
    Unknown(u8),
}

impl Compression {
    fn from_attributes(attributes: i16) -> Self {
        match (attributes & ATTRIBUTE_COMPRESSION_MASK) as u8 {
            0 => Self::None,
            1 => Self::Gzip,
            2 => Self::Snappy,
            3 => Self::Lz4,
            4 => Self::Zstd,
            other => Self::Unknown(other),
        }
    }
}

/// Producer identity carried by a batch (Kafka idempotence); `NO_PRODUCER` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerStamp {
    pub const NO_PRODUCER: Self = Self { producer_id: -1, producer_epoch: -1, base_sequence: -1 };
}

/// The fixed fields of one batch, read from its first `BATCH_HEADER_BYTES` bytes alone: for
/// scans that need offsets and producer stamps but not the records (rebuilding idempotent
/// producer state from a partition's tail). The checksum covers the records, so it is not
/// checked here; the framing, magic and record count are. Use it only on batches the log
/// checked before (on their way in, and in recovery for the active segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: u64,
    /// The whole batch's length, `baseOffset` and `batchLength` included.
    pub total_bytes: usize,
    pub record_count: u32,
    pub attributes: i16,
    pub max_timestamp: i64,
    pub producer: ProducerStamp,
}

impl BatchHeader {
    /// Reads the header at the start of `bytes`, which need not hold the records.
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        let total_bytes = batch_total_len(bytes)?;
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated { needed: BATCH_HEADER_BYTES, available: bytes.len() });
        }
        let magic = bytes[OFFSET_MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(magic));
        }
        let count = read_i32(bytes, OFFSET_RECORD_COUNT);
        let last_offset_delta = read_i32(bytes, OFFSET_LAST_OFFSET_DELTA);
        if count < 1 || last_offset_delta != count - 1 {
            return Err(BatchError::BadRecordCount { count, last_offset_delta });
        }
        Ok(Self {
            base_offset: read_i64(bytes, 0) as u64,
            total_bytes,
            record_count: count as u32,
            attributes: read_i16(bytes, OFFSET_ATTRIBUTES),
            max_timestamp: read_i64(bytes, OFFSET_MAX_TIMESTAMP),
            producer: ProducerStamp {
                producer_id: read_i64(bytes, OFFSET_PRODUCER_ID),
                producer_epoch: read_i16(bytes, OFFSET_PRODUCER_EPOCH),
                base_sequence: read_i32(bytes, OFFSET_BASE_SEQUENCE),
            },
        })
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + self.record_count as u64 - 1
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTRIBUTE_CONTROL != 0
    }
}

/// A read-only view of exactly one complete batch.
#[derive(Clone, Copy)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

impl fmt::Debug for BatchView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchView")
            .field("base_offset", &self.base_offset())
            .field("record_count", &self.record_count())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Total length of the batch that starts at `bytes`, read from its header.
/// Needs only the first 12 bytes; does not check anything else.
pub fn batch_total_len(bytes: &[u8]) -> Result<usize, BatchError> {
    if bytes.len() < BATCH_LENGTH_PREFIX_BYTES {
        return Err(BatchError::Truncated { needed: BATCH_LENGTH_PREFIX_BYTES, available: bytes.len() });
    }
    let batch_length = read_i32(bytes, OFFSET_BATCH_LENGTH) as i64;
    let total = batch_length + BATCH_LENGTH_PREFIX_BYTES as i64;
    if total < BATCH_HEADER_BYTES as i64 || total > BATCH_BYTES_MAX as i64 {
        return Err(BatchError::BadLength(batch_length));
    }
    Ok(total as usize)
}

impl<'a> BatchView<'a> {
    /// Views the batch at the start of `bytes` after checking its framing, magic,
    /// record count and checksum. Trailing bytes after the batch are ignored.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BatchError> {
        let total = batch_total_len(bytes)?;
        if bytes.len() < total {
            return Err(BatchError::Truncated { needed: total, available: bytes.len() });
        }
        let view = Self { bytes: &bytes[..total] };
        let magic = view.bytes[OFFSET_MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(magic));
        }
        let stored = view.stored_crc();
        let computed = crc32c::crc32c(&view.bytes[OFFSET_ATTRIBUTES..]);
        if stored != computed {
            return Err(BatchError::BadChecksum { stored, computed });
        }
        let count = view.record_count_raw();
        let last_offset_delta = read_i32(view.bytes, OFFSET_LAST_OFFSET_DELTA);
        if count < 1 || last_offset_delta != count - 1 {
            return Err(BatchError::BadRecordCount { count, last_offset_delta });
        }
        Ok(view)
    }

    /// Views a batch that was checked before (by `parse` when the log read it, or when it was
    /// verified on the way in), without checking it again.
    pub(crate) fn unchecked(bytes: &'a [u8]) -> Self {
        debug_assert!(batch_total_len(bytes).is_ok_and(|total| total == bytes.len()), "one whole batch");
        Self { bytes }
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    pub fn base_offset(&self) -> u64 {
        read_i64(self.bytes, 0) as u64
    }
    /// Offset of the last record: base offset plus last offset delta.
    pub fn last_offset(&self) -> u64 {
        self.base_offset() + read_i32(self.bytes, OFFSET_LAST_OFFSET_DELTA) as u64
    }
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }
    pub fn record_count(&self) -> u32 {
        self.record_count_raw() as u32
    }
    fn record_count_raw(&self) -> i32 {
        read_i32(self.bytes, OFFSET_RECORD_COUNT)
    }
    pub fn attributes(&self) -> i16 {
        read_i16(self.bytes, OFFSET_ATTRIBUTES)
    }
    pub fn compression(&self) -> Compression {
        Compression::from_attributes(self.attributes())
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTRIBUTE_CONTROL != 0
    }
    /// Did Weft encode this batch after checking that its JSON values are valid UTF-8 JSON?
    pub fn is_json_checked(&self) -> bool {
        self.attributes() & ATTRIBUTE_WEFT_JSON_CHECKED != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTRIBUTE_TRANSACTIONAL != 0
    }
    pub fn base_timestamp(&self) -> i64 {
        read_i64(self.bytes, OFFSET_BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        read_i64(self.bytes, OFFSET_MAX_TIMESTAMP)
    }
    pub fn producer(&self) -> ProducerStamp {
        ProducerStamp {
            producer_id: read_i64(self.bytes, OFFSET_PRODUCER_ID),
            producer_epoch: read_i16(self.bytes, OFFSET_PRODUCER_EPOCH),
            base_sequence: read_i32(self.bytes, OFFSET_BASE_SEQUENCE),
        }
    }
    fn stored_crc(&self) -> u32 {
        u32::from_be_bytes(self.bytes[OFFSET_CRC..OFFSET_CRC + 4].try_into().expect("4 bytes"))
    }

    /// The encoded records that follow the header (compressed if the batch is).
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.bytes[BATCH_HEADER_BYTES..]
    }

    /// Iterates the records of an uncompressed batch.
    pub fn records(&self) -> Result<RecordIter<'a>, BatchError> {
        match self.compression() {
            Compression::None => Ok(self.records_in(self.records_bytes())),
            Compression::Gzip => Err(BatchError::UnsupportedCompression(1)),
            Compression::Snappy => Err(BatchError::UnsupportedCompression(2)),
            Compression::Lz4 => Err(BatchError::UnsupportedCompression(3)),
            Compression::Zstd => Err(BatchError::UnsupportedCompression(4)),
            Compression::Unknown(codec) => Err(BatchError::UnsupportedCompression(codec)),
        }
    }

    /// The record data of this batch, decompressed if the batch is compressed: borrowed
    /// from the batch when it is not, owned when it is. Refuses output beyond
    /// `DECOMPRESSED_BYTES_MAX`. Iterate the result with `records_in`.
    pub fn decompress_records(&self) -> Result<Cow<'a, [u8]>, BatchError> {
        let compressed = self.records_bytes();
        let decompressed = match self.compression() {
            Compression::None => return Ok(Cow::Borrowed(compressed)),
            Compression::Gzip => read_bounded("gzip", flate2::read::MultiGzDecoder::new(compressed))?,
            Compression::Snappy => decompress_snappy(compressed)?,
            Compression::Lz4 => read_bounded("lz4", lz4_flex::frame::FrameDecoder::new(compressed))?,
            Compression::Zstd => decompress_zstd(compressed)?,
            Compression::Unknown(codec) => return Err(BatchError::UnsupportedCompression(codec)),
        };
        Ok(Cow::Owned(decompressed))
    }

    /// Iterates records from `records_bytes`, which the caller has decompressed
    /// from this batch; offsets and timestamps are resolved against this batch's header.
    pub fn records_in<'b>(&self, records_bytes: &'b [u8]) -> RecordIter<'b> {
        RecordIter {
            bytes: records_bytes,
            position: 0,
            record_idx: 0,
            n_records: self.record_count() as usize,
            base_offset: self.base_offset(),
            base_timestamp: self.base_timestamp(),
            log_append_time: (self.attributes() & ATTRIBUTE_TIMESTAMP_LOG_APPEND != 0).then(|| self.max_timestamp()),
        }
    }

    /// Checks that every record of an uncompressed batch decodes and that
    /// offset deltas run 0, 1, 2, ... as Weft requires of the batches it stores.
    pub fn check_records(&self) -> Result<(), BatchError> {
        if self.compression() != Compression::None {
            return Ok(());
        }
        let mut n_records = 0usize;
        for (record_idx, record) in self.records()?.enumerate() {
            let record = record?;
            if record.offset != self.base_offset() + record_idx as u64 {
                return Err(BatchError::BadRecord { record_idx, reason: "offset delta out of sequence" });
            }
            n_records += 1;
        }
        if n_records != self.record_count() as usize {
            return Err(BatchError::BadRecord { record_idx: n_records, reason: "fewer records than the count says" });
        }
        Ok(())
    }
}

/// Overwrites the base offset of an encoded batch. The CRC does not cover it.
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) {
    batch[0..8].copy_from_slice(&(base_offset as i64).to_be_bytes());
}

/// Overwrites the producer fields and recomputes the checksum.
pub fn set_producer(batch: &mut [u8], producer: ProducerStamp) {
    batch[OFFSET_PRODUCER_ID..OFFSET_PRODUCER_ID + 8].copy_from_slice(&producer.producer_id.to_be_bytes());
    batch[OFFSET_PRODUCER_EPOCH..OFFSET_PRODUCER_EPOCH + 2].copy_from_slice(&producer.producer_epoch.to_be_bytes());
    batch[OFFSET_BASE_SEQUENCE..OFFSET_BASE_SEQUENCE + 4].copy_from_slice(&producer.base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}
fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}
fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

mod builder;
mod compression;
mod records;
#[cfg(test)]
mod tests;

pub use builder::BatchBuilder;
use compression::{decompress_snappy, decompress_zstd, read_bounded};
pub use records::{RECORD_HEADERS_MAX, Record, RecordHeader, RecordIter};
