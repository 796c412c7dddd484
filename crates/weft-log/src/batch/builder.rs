//! Encoding: `BatchBuilder` writes one uncompressed batch, record by record, with its header
//! and checksum.

use super::*;

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

pub(super) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(super) fn varint_len(value: i64) -> usize {
    let mut encoded = zigzag(value);
    let mut n = 1;
    while encoded >= 0x80 {
        encoded >>= 7;
        n += 1;
    }
    n
}

pub(super) fn put_varint(buf: &mut Vec<u8>, value: i64) {
    let mut encoded = zigzag(value);
    while encoded >= 0x80 {
        buf.push((encoded as u8) | 0x80);
        encoded >>= 7;
    }
    buf.push(encoded as u8);
}

pub(super) fn nullable_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => varint_len(-1),
        Some(bytes) => varint_len(bytes.len() as i64) + bytes.len(),
    }
}

pub(super) fn put_nullable(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(buf, -1),
        Some(bytes) => {
            put_varint(buf, bytes.len() as i64);
            buf.extend_from_slice(bytes);
        }
    }
}
