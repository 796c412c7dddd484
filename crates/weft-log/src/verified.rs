//! `VerifiedBatch`: one RecordBatch that has been checked exactly once, on its way from an
//! edge to the log.
//!
//! A batch that arrives from outside (a Kafka producer) is parsed, CRC-checked, decompressed
//! within `DECOMPRESSED_BYTES_MAX` and has every record decoded once, in `VerifiedBatch::verify`;
//! what that pass learned (record count, timestamps, the decompressed record data) travels with
//! the bytes, so validation at the edge and the append in the log never parse the batch again.
//! A batch that Weft encoded itself with `BatchBuilder` is trusted (`BatchBuilder::finish_verified`):
//! building it is the check, and debug builds verify it anyway.
//!
//! This module does not know what the records mean; contracts and CloudEvents live above it.
//! Verification is CPU work proportional to the batch (and decompression can be 64 MiB), so
//! async callers run it on a blocking thread.

use crate::batch::{BatchError, BatchView, Compression, ProducerStamp, Record, RecordIter};

/// A batch whose framing, checksum, compression and records are known to be well formed.
pub struct VerifiedBatch {
    bytes: Vec<u8>,
    /// The record data of a compressed batch, decompressed once by `verify`.
    decompressed: Option<Vec<u8>>,
}

impl std::fmt::Debug for VerifiedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedBatch").field("bytes", &self.bytes.len()).field("records", &self.n_records()).finish()
    }
}

impl VerifiedBatch {
    /// Checks `bytes` as exactly one batch: framing, magic, checksum, record count, and every
    /// record decoded (after decompression, within the decompression bound) with offset
    /// deltas 0, 1, 2, ... as the log requires. Trailing bytes after the batch are refused.
    pub fn verify(bytes: Vec<u8>) -> Result<Self, BatchError> {
        Self::verify_visiting(bytes, |_, _| {})
    }

    /// `verify`, calling `visit` with each record as it is decoded, so a caller that must look
    /// at every record (contract validation) does it in the same pass instead of another one.
    pub fn verify_visiting(bytes: Vec<u8>, mut visit: impl FnMut(usize, &Record<'_>)) -> Result<Self, BatchError> {
        let view = BatchView::parse(&bytes)?;
        let reserved = view.attributes() & crate::batch::ATTRIBUTE_WEFT_JSON_CHECKED;
        if reserved != 0 {
            return Err(BatchError::ReservedAttributes(reserved));
        }
        if view.len() != bytes.len() {
            return Err(BatchError::TrailingBytes { batch_bytes: view.len(), total_bytes: bytes.len() });
        }
        let decompressed = match view.compression() {
            Compression::None => None,
            _ => Some(view.decompress_records()?.into_owned()),
        };
        let records_bytes = decompressed.as_deref().unwrap_or(view.records_bytes());
        check_record_sequence(&view, records_bytes, &mut visit)?;
        Ok(Self { bytes, decompressed })
    }

    /// A batch Weft encoded itself. Release builds trust it; debug builds verify it, so a
    /// bug in the encoder fails the tests instead of reaching the disk.
    pub(crate) fn trusted(bytes: Vec<u8>) -> Self {
        if cfg!(debug_assertions) {
            let view = BatchView::parse(&bytes).unwrap_or_else(|error| panic!("BatchBuilder produced an invalid batch: {error}"));
            assert_eq!(view.len(), bytes.len(), "BatchBuilder produced trailing bytes");
            assert_eq!(view.compression(), Compression::None, "BatchBuilder writes uncompressed batches");
            check_record_sequence(&view, view.records_bytes(), &mut |_, _| {})
                .unwrap_or_else(|error| panic!("BatchBuilder produced bad records: {error}"));
        }
        Self { bytes, decompressed: None }
    }

    pub fn view(&self) -> BatchView<'_> {
        BatchView::unchecked(&self.bytes)
    }

    pub fn n_records(&self) -> u32 {
        self.view().record_count()
    }

    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn max_timestamp(&self) -> i64 {
        self.view().max_timestamp()
    }

    pub fn producer(&self) -> ProducerStamp {
        self.view().producer()
    }

    /// The records, decoded from the decompressed data when the batch is compressed. Every
    /// record was decoded once by `verify`, so the iterator yields no errors for a verified
    /// batch; it still returns `Result`s because it is the same decoder.
    pub fn records(&self) -> RecordIter<'_> {
        let view = self.view();
        view.records_in(self.decompressed.as_deref().unwrap_or(view.records_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The stored form: the batch bytes exactly as they came (compressed if they were).
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Mutable access for the log, which writes the base offset (outside the checksum).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

/// Every record decodes and offset deltas run 0, 1, 2, ..., one per counted record.
fn check_record_sequence(view: &BatchView<'_>, records_bytes: &[u8], visit: &mut impl FnMut(usize, &Record<'_>)) -> Result<(), BatchError> {
    let mut n_records = 0usize;
    for (record_idx, record) in view.records_in(records_bytes).enumerate() {
        let record = record?;
        if record.offset != view.base_offset() + record_idx as u64 {
            return Err(BatchError::BadRecord { record_idx, reason: "offset delta out of sequence" });
        }
        visit(record_idx, &record);
        n_records += 1;
    }
    if n_records != view.record_count() as usize {
        return Err(BatchError::BadRecord { record_idx: n_records, reason: "fewer records than the count says" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;

    fn two_records() -> Vec<u8> {
        let mut builder = BatchBuilder::new(1_000);
        builder.push(1_000, Some(b"k"), Some(br#"{"a":1}"#), &[("ce_id", &b"1"[..])]);
        builder.push::<&str>(1_001, None, Some(b"x"), &[]);
        builder.finish()
    }

    #[test]
    fn a_verified_batch_yields_its_records_without_another_check() {
        let batch = VerifiedBatch::verify(two_records()).expect("well formed");
        assert_eq!(batch.n_records(), 2);
        let values: Vec<_> = batch.records().map(|record| record.expect("decoded").value.map(<[u8]>::to_vec)).collect();
        assert_eq!(values, vec![Some(br#"{"a":1}"#.to_vec()), Some(b"x".to_vec())]);
    }

    #[test]
    fn trailing_bytes_after_the_batch_are_refused() {
        let mut bytes = two_records();
        bytes.extend_from_slice(b"junk");
        assert!(matches!(VerifiedBatch::verify(bytes), Err(BatchError::TrailingBytes { .. })));
    }

    #[test]
    fn a_flipped_byte_is_refused() {
        let mut bytes = two_records();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert!(VerifiedBatch::verify(bytes).is_err());
    }
}
