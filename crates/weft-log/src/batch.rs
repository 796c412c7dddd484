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
use std::io::Read;

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

/// Reads a decoder to its end, refusing more than `DECOMPRESSED_BYTES_MAX` bytes of output.
fn read_bounded(codec: &'static str, decoder: impl Read) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    decoder
        .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|error| BatchError::BadCompressedData { codec, reason: error.to_string() })?;
    if out.len() > DECOMPRESSED_BYTES_MAX {
        return Err(BatchError::DecompressedTooLarge { limit_bytes: DECOMPRESSED_BYTES_MAX });
    }
    Ok(out)
}

/// Magic that starts snappy data framed by the Java `snappy-java` library ("xerial"
/// framing), which Java producers send; librdkafka sends raw snappy blocks.
const XERIAL_SNAPPY_MAGIC: &[u8] = b"\x82SNAPPY\x00";
/// Bytes of the xerial header: magic, then version and minimum compatible version (i32 each).
const XERIAL_SNAPPY_HEADER_BYTES: usize = 16;

fn decompress_snappy(compressed: &[u8]) -> Result<Vec<u8>, BatchError> {
    let bad = |reason: String| BatchError::BadCompressedData { codec: "snappy", reason };
    let mut out = Vec::new();
    let append_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), BatchError> {
        let block_len = snap::raw::decompress_len(block).map_err(|error| bad(error.to_string()))?;
        if out.len() + block_len > DECOMPRESSED_BYTES_MAX {
            return Err(BatchError::DecompressedTooLarge { limit_bytes: DECOMPRESSED_BYTES_MAX });
        }
        let start = out.len();
        out.resize(start + block_len, 0);
        let written = snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(|error| bad(error.to_string()))?;
        out.truncate(start + written);
        Ok(())
    };
    if !compressed.starts_with(XERIAL_SNAPPY_MAGIC) {
        append_block(compressed, &mut out)?;
        return Ok(out);
    }
    let mut position = XERIAL_SNAPPY_HEADER_BYTES.min(compressed.len());
    while position < compressed.len() {
        let length_bytes = compressed.get(position..position + 4).ok_or_else(|| bad("truncated xerial block length".into()))?;
        let block_len = u32::from_be_bytes(length_bytes.try_into().expect("4 bytes")) as usize;
        position += 4;
        let block =
            compressed.get(position..position.saturating_add(block_len)).ok_or_else(|| bad("xerial block runs past the batch".into()))?;
        append_block(block, &mut out)?;
        position += block_len;
    }
    Ok(out)
}

fn decompress_zstd(compressed: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut source = compressed;
    let mut out = Vec::new();
    // A batch normally holds one zstd frame; decode every frame present.
    while !source.is_empty() {
        let decoder = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(&mut source, DECOMPRESSED_BYTES_MAX as u64)
            .map_err(|error| BatchError::BadCompressedData { codec: "zstd", reason: error.to_string() })?;
        let room = (DECOMPRESSED_BYTES_MAX - out.len()) as u64;
        let mut frame = Vec::new();
        decoder
            .take(room + 1)
            .read_to_end(&mut frame)
            .map_err(|error| BatchError::BadCompressedData { codec: "zstd", reason: error.to_string() })?;
        if frame.len() as u64 > room {
            return Err(BatchError::DecompressedTooLarge { limit_bytes: DECOMPRESSED_BYTES_MAX });
        }
        out.extend_from_slice(&frame);
    }
    Ok(out)
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

/// One record header: a UTF-8 key (by Kafka convention) and an optional value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// One decoded record, borrowing from the batch bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<RecordHeader<'a>>,
}

impl<'a> Record<'a> {
    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&'a [u8]> {
        self.headers.iter().find(|h| h.key == key.as_bytes()).and_then(|h| h.value)
    }
}

/// Iterator over the records of one batch; stops at the first malformed record.
pub struct RecordIter<'a> {
    bytes: &'a [u8],
    position: usize,
    record_idx: usize,
    n_records: usize,
    base_offset: u64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
}

/// Bound on headers per record, so a hostile batch cannot make us allocate without limit.
pub const RECORD_HEADERS_MAX: usize = 1024;

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.record_idx >= self.n_records {
            return None;
        }
        let record_idx = self.record_idx;
        self.record_idx += 1;
        let result = self.decode_one();
        if result.is_err() {
            self.record_idx = self.n_records;
        }
        Some(result.map_err(|reason| BatchError::BadRecord { record_idx, reason }))
    }
}

impl<'a> RecordIter<'a> {
    fn decode_one(&mut self) -> Result<Record<'a>, &'static str> {
        let mut cursor = Cursor { bytes: self.bytes, position: self.position };
        let length = cursor.varint()?;
        if length < 0 {
            return Err("negative record length");
        }
        let end = cursor.position.checked_add(length as usize).ok_or("record length overflows")?;
        if end > self.bytes.len() {
            return Err("record runs past the batch");
        }
        let mut record = Cursor { bytes: &self.bytes[..end], position: cursor.position };
        let _attributes = record.take(1)?;
        let timestamp_delta = record.varlong()?;
        let offset_delta = record.varint()?;
        if offset_delta < 0 {
            return Err("negative offset delta");
        }
        let key = record.nullable_bytes()?;
        let value = record.nullable_bytes()?;
        let n_headers = record.varint()?;
        if n_headers < 0 || n_headers as usize > RECORD_HEADERS_MAX {
            return Err("header count out of range");
        }
        let mut headers = Vec::with_capacity(n_headers as usize);
        for _ in 0..n_headers {
            let key = record.nullable_bytes()?.ok_or("null header key")?;
            let value = record.nullable_bytes()?;
            headers.push(RecordHeader { key, value });
        }
        if record.position != end {
            return Err("record length disagrees with its fields");
        }
        self.position = end;
        let timestamp_ms = self.log_append_time.unwrap_or(self.base_timestamp.wrapping_add(timestamp_delta));
        Ok(Record { offset: self.base_offset + offset_delta as u64, timestamp_ms, key, value, headers })
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.position.checked_add(n).ok_or("length overflows")?;
        let slice = self.bytes.get(self.position..end).ok_or("field runs past the record")?;
        self.position = end;
        Ok(slice)
    }
    fn varlong(&mut self) -> Result<i64, &'static str> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self.bytes.get(self.position).ok_or("varint runs past the record")?;
            self.position += 1;
            if shift == 63 && byte > 1 {
                return Err("varint too long");
            }
            value |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err("varint too long")
    }
    fn varint(&mut self) -> Result<i32, &'static str> {
        let value = self.varlong()?;
        i32::try_from(value).map_err(|_| "varint out of 32-bit range")
    }
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, &'static str> {
        let length = self.varint()?;
        if length < 0 {
            return Ok(None);
        }
        self.take(length as usize).map(Some)
    }
}

/// Builds one uncompressed batch, record by record.
pub struct BatchBuilder {
    buf: Vec<u8>,
    base_offset: u64,
    base_timestamp: i64,
    max_timestamp: i64,
    n_records: u32,
    attributes: i16,
}

impl BatchBuilder {
    pub fn new(base_timestamp_ms: i64) -> Self {
        Self::with_capacity(base_timestamp_ms, 4096)
    }

    pub fn with_capacity(base_timestamp_ms: i64, capacity_bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity_bytes.max(BATCH_HEADER_BYTES));
        buf.resize(BATCH_HEADER_BYTES, 0);
        Self { buf, base_offset: 0, base_timestamp: base_timestamp_ms, max_timestamp: base_timestamp_ms, n_records: 0, attributes: 0 }
    }

    /// Writes `base_offset` into the finished batch instead of 0: for re-encoding a stored
    /// batch (the Kafka listener masks classified fields this way) so that its records keep
    /// their offsets. Records are still numbered by push order (offset deltas 0, 1, 2, ...),
    /// which is what every stored batch has. The log ignores this field on append.
    pub fn with_base_offset(mut self, base_offset: u64) -> Self {
        self.base_offset = base_offset;
        self
    }

    /// Marks the batch as holding only JSON values that were checked (valid UTF-8 JSON) for
    /// records whose content type is JSON: readers then render those values as they are.
    /// Only for values the caller has checked; see `ATTRIBUTE_WEFT_JSON_CHECKED`.
    pub fn json_checked(mut self) -> Self {
        self.attributes |= ATTRIBUTE_WEFT_JSON_CHECKED;
        self
    }

    pub fn n_records(&self) -> u32 {
        self.n_records
    }

    /// Encoded size so far, header included.
    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.n_records == 0
    }

    pub fn push<K: AsRef<str>>(&mut self, timestamp_ms: i64, key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(K, &[u8])]) {
        let timestamp_delta = timestamp_ms.wrapping_sub(self.base_timestamp);
        let offset_delta = self.n_records as i64;
        let mut body_len = 1 + varint_len(timestamp_delta) + varint_len(offset_delta);
        body_len += nullable_len(key) + nullable_len(value);
        body_len += varint_len(headers.len() as i64);
        for (header_key, header_value) in headers {
            let header_key = header_key.as_ref().as_bytes();
            body_len += varint_len(header_key.len() as i64) + header_key.len();
            body_len += varint_len(header_value.len() as i64) + header_value.len();
        }
        put_varint(&mut self.buf, body_len as i64);
        self.buf.push(0);
        put_varint(&mut self.buf, timestamp_delta);
        put_varint(&mut self.buf, offset_delta);
        put_nullable(&mut self.buf, key);
        put_nullable(&mut self.buf, value);
        put_varint(&mut self.buf, headers.len() as i64);
        for (header_key, header_value) in headers {
            put_nullable(&mut self.buf, Some(header_key.as_ref().as_bytes()));
            put_nullable(&mut self.buf, Some(header_value));
        }
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        self.n_records += 1;
    }

    /// Fills the header (base offset 0 unless `with_base_offset` set one: the log assigns the
    /// real one on append) and the checksum.
    /// Panics if no record was pushed: an empty batch is a caller bug.
    pub fn finish(mut self) -> Vec<u8> {
        assert!(self.n_records > 0, "a batch needs at least one record");
        let batch_length = (self.buf.len() - BATCH_LENGTH_PREFIX_BYTES) as i32;
        let buf = &mut self.buf;
        buf[0..8].copy_from_slice(&(self.base_offset as i64).to_be_bytes());
        buf[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
        buf[OFFSET_LEADER_EPOCH..OFFSET_LEADER_EPOCH + 4].copy_from_slice(&0i32.to_be_bytes());
        buf[OFFSET_MAGIC] = MAGIC_V2 as u8;
        buf[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&self.attributes.to_be_bytes());
        let last_offset_delta = (self.n_records - 1) as i32;
        buf[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4].copy_from_slice(&last_offset_delta.to_be_bytes());
        buf[OFFSET_BASE_TIMESTAMP..OFFSET_BASE_TIMESTAMP + 8].copy_from_slice(&self.base_timestamp.to_be_bytes());
        buf[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8].copy_from_slice(&self.max_timestamp.to_be_bytes());
        let no_producer = ProducerStamp::NO_PRODUCER;
        buf[OFFSET_PRODUCER_ID..OFFSET_PRODUCER_ID + 8].copy_from_slice(&no_producer.producer_id.to_be_bytes());
        buf[OFFSET_PRODUCER_EPOCH..OFFSET_PRODUCER_EPOCH + 2].copy_from_slice(&no_producer.producer_epoch.to_be_bytes());
        buf[OFFSET_BASE_SEQUENCE..OFFSET_BASE_SEQUENCE + 4].copy_from_slice(&no_producer.base_sequence.to_be_bytes());
        buf[OFFSET_RECORD_COUNT..OFFSET_RECORD_COUNT + 4].copy_from_slice(&(self.n_records as i32).to_be_bytes());
        let crc = crc32c::crc32c(&buf[OFFSET_ATTRIBUTES..]);
        buf[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        self.buf
    }

    /// `finish`, as a batch the log accepts without checking it again (Weft encoded it).
    pub fn finish_verified(self) -> crate::VerifiedBatch {
        crate::VerifiedBatch::trusted(self.finish())
    }
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn varint_len(value: i64) -> usize {
    let mut encoded = zigzag(value);
    let mut n = 1;
    while encoded >= 0x80 {
        encoded >>= 7;
        n += 1;
    }
    n
}

fn put_varint(buf: &mut Vec<u8>, value: i64) {
    let mut encoded = zigzag(value);
    while encoded >= 0x80 {
        buf.push((encoded as u8) | 0x80);
        encoded >>= 7;
    }
    buf.push(encoded as u8);
}

fn nullable_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => varint_len(-1),
        Some(bytes) => varint_len(bytes.len() as i64) + bytes.len(),
    }
}

fn put_nullable(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(buf, -1),
        Some(bytes) => {
            put_varint(buf, bytes.len() as i64);
            buf.extend_from_slice(bytes);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_batch() -> Vec<u8> {
        let mut builder = BatchBuilder::new(1_000);
        builder.push(1_000, Some(b"c-1"), Some(br#"{"a":1}"#), &[("ce_id", &b"1"[..]), ("ce_type", &b"t"[..])]);
        builder.push::<&str>(1_005, None, None, &[]);
        builder.push(999, Some(b""), Some(b"x"), &[("k", &b""[..])]);
        builder.finish()
    }

    /// A re-encoded batch keeps the offsets of the stored batch it replaces.
    #[test]
    fn with_base_offset_numbers_records_from_it() {
        let mut builder = BatchBuilder::new(1_000).with_base_offset(77);
        builder.push::<&str>(1_000, None, Some(b"a"), &[]);
        builder.push::<&str>(1_001, None, Some(b"b"), &[]);
        let bytes = builder.finish();
        let view = BatchView::parse(&bytes).unwrap();
        view.check_records().unwrap();
        let offsets: Vec<u64> = view.records().unwrap().map(|r| r.unwrap().offset).collect();
        assert_eq!(offsets, [77, 78]);
    }

    #[test]
    fn records_round_trip_through_the_v2_layout() {
        let mut bytes = sample_batch();
        set_base_offset(&mut bytes, 40);
        let view = BatchView::parse(&bytes).unwrap();
        assert_eq!((view.base_offset(), view.last_offset(), view.record_count()), (40, 42, 3));
        assert_eq!(view.max_timestamp(), 1_005);
        view.check_records().unwrap();
        let records: Vec<_> = view.records().unwrap().map(Result::unwrap).collect();
        assert_eq!(records[0].offset, 40);
        assert_eq!(records[0].key, Some(&b"c-1"[..]));
        assert_eq!(records[0].header("ce_type"), Some(&b"t"[..]));
        assert_eq!(records[1].value, None);
        assert_eq!(records[1].timestamp_ms, 1_005);
        assert_eq!(records[2].timestamp_ms, 999);
        assert_eq!(records[2].key, Some(&b""[..]));
    }

    #[test]
    fn any_flipped_byte_after_the_length_is_caught() {
        let bytes = sample_batch();
        for idx in OFFSET_MAGIC..bytes.len() {
            let mut corrupted = bytes.clone();
            corrupted[idx] ^= 0x40;
            assert!(BatchView::parse(&corrupted).is_err(), "flip at byte {idx} went unnoticed");
        }
    }

    #[test]
    fn every_truncation_is_reported_not_panicked() {
        let bytes = sample_batch();
        for len in 0..bytes.len() {
            assert!(BatchView::parse(&bytes[..len]).is_err());
        }
    }

    /// Re-encodes an uncompressed batch as a producer would send it compressed with `codec`.
    fn compressed_batch(uncompressed: &[u8], codec: i16, compress: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let mut batch = uncompressed[..BATCH_HEADER_BYTES].to_vec();
        batch.extend_from_slice(&compress(&uncompressed[BATCH_HEADER_BYTES..]));
        let batch_length = (batch.len() - BATCH_LENGTH_PREFIX_BYTES) as i32;
        batch[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
        batch[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&codec.to_be_bytes());
        let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]);
        batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    type Compressor = fn(&[u8]) -> Vec<u8>;

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }
    fn snappy_raw(data: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(data).unwrap()
    }
    fn snappy_xerial(data: &[u8]) -> Vec<u8> {
        let mut out = XERIAL_SNAPPY_MAGIC.to_vec();
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        for chunk in data.chunks(7) {
            let block = snappy_raw(chunk);
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        out
    }
    fn lz4_frame(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }
    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    /// Every codec Kafka producers use decodes back to the records the batch was built from.
    #[test]
    fn compressed_batches_decompress_to_their_records() {
        let plain = sample_batch();
        let expected: Vec<_> = BatchView::parse(&plain).unwrap().records().unwrap().map(Result::unwrap).collect();
        let codecs: [(&str, i16, Compressor); 5] =
            [("gzip", 1, gzip), ("snappy", 2, snappy_raw), ("snappy-xerial", 2, snappy_xerial), ("lz4", 3, lz4_frame), ("zstd", 4, zstd)];
        for (name, codec, compress) in codecs {
            let batch = compressed_batch(&plain, codec, compress);
            let view = BatchView::parse(&batch).unwrap();
            assert!(view.records().is_err(), "{name}: records() must refuse a compressed batch");
            let data = view.decompress_records().unwrap_or_else(|error| panic!("{name}: {error}"));
            assert!(matches!(data, Cow::Owned(_)));
            let records: Vec<_> = view.records_in(&data).map(Result::unwrap).collect();
            assert_eq!(records, expected, "{name}");
        }
        let view = BatchView::parse(&plain).unwrap();
        assert!(matches!(view.decompress_records().unwrap(), Cow::Borrowed(_)));
    }

    /// A tiny batch that would expand past the limit is refused, not decoded into memory.
    #[test]
    fn decompression_bombs_are_refused() {
        let plain = sample_batch();
        let huge = vec![0u8; DECOMPRESSED_BYTES_MAX + 1];
        let codecs: [(&str, i16, Compressor); 4] = [("gzip", 1, gzip), ("snappy", 2, snappy_raw), ("lz4", 3, lz4_frame), ("zstd", 4, zstd)];
        for (name, codec, compress) in codecs {
            let batch = compressed_batch(&plain, codec, |_| compress(&huge));
            assert!(batch.len() < BATCH_BYTES_MAX, "{name}");
            let error = BatchView::parse(&batch).unwrap().decompress_records().unwrap_err();
            assert_eq!(error, BatchError::DecompressedTooLarge { limit_bytes: DECOMPRESSED_BYTES_MAX }, "{name}");
        }
    }

    /// Garbage behind a compression flag is an error for every codec, never a panic.
    #[test]
    fn corrupt_compressed_data_is_an_error() {
        let plain = sample_batch();
        for codec in 1..=4i16 {
            for garbage in [&b""[..], b"\x00", b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff\xff\xff", b"not compressed at all"]
            {
                let batch = compressed_batch(&plain, codec, |_| garbage.to_vec());
                let view = BatchView::parse(&batch).unwrap();
                if let Ok(data) = view.decompress_records() {
                    assert!(view.records_in(&data).any(|record| record.is_err()), "codec {codec} accepted garbage");
                }
            }
        }
        let batch = compressed_batch(&plain, 5, |data| data.to_vec());
        assert_eq!(BatchView::parse(&batch).unwrap().decompress_records().unwrap_err(), BatchError::UnsupportedCompression(5));
    }

    #[test]
    fn varints_match_kafka_zigzag_encoding() {
        let mut buf = Vec::new();
        put_varint(&mut buf, -1);
        put_varint(&mut buf, 150);
        assert_eq!(buf, vec![0x01, 0xac, 0x02]);
        let mut cursor = Cursor { bytes: &buf, position: 0 };
        assert_eq!(cursor.varint(), Ok(-1));
        assert_eq!(cursor.varint(), Ok(150));
        for value in [0i64, 1, -64, 63, 64, i32::MAX as i64, i64::MIN, i64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value));
            assert_eq!(Cursor { bytes: &buf, position: 0 }.varlong(), Ok(value));
        }
    }
}
