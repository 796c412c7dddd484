//! The records inside a batch: decoding them from the record data, one at a time, without
//! copying (each `Record` borrows from the batch bytes).

use super::BatchError;

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
    pub(super) bytes: &'a [u8],
    pub(super) position: usize,
    pub(super) record_idx: usize,
    pub(super) n_records: usize,
    pub(super) base_offset: u64,
    pub(super) base_timestamp: i64,
    pub(super) log_append_time: Option<i64>,
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

pub(super) struct Cursor<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) position: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.position.checked_add(n).ok_or("length overflows")?;
        let slice = self.bytes.get(self.position..end).ok_or("field runs past the record")?;
        self.position = end;
        Ok(slice)
    }
    pub(super) fn varlong(&mut self) -> Result<i64, &'static str> {
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
    pub(super) fn varint(&mut self) -> Result<i32, &'static str> {
        let value = self.varlong()?;
        i32::try_from(value).map_err(|_| "varint out of 32-bit range")
    }
    pub(super) fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, &'static str> {
        let length = self.varint()?;
        if length < 0 {
            return Ok(None);
        }
        self.take(length as usize).map(Some)
    }
}
