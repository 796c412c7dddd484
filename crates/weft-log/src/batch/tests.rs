//! The codec checked against itself and against hand-made bytes: round trips, every
//! truncation, hostile lengths, compression codecs and their bounds.

use super::builder::{put_varint, varint_len};
use super::compression::XERIAL_SNAPPY_MAGIC;
use super::records::Cursor;
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
        for garbage in [&b""[..], b"\x00", b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff\xff\xff", b"not compressed at all"] {
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
