//! Decompression of produced batches' record data: gzip, snappy (raw and xerial-framed), lz4
//! and zstd, decode only and bounded by `DECOMPRESSED_BYTES_MAX`.

use std::io::Read;

use super::{BatchError, DECOMPRESSED_BYTES_MAX};

/// Reads a decoder to its end, refusing more than `DECOMPRESSED_BYTES_MAX` bytes of output.
pub(super) fn read_bounded(codec: &'static str, decoder: impl Read) -> Result<Vec<u8>, BatchError> {
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
pub(super) const XERIAL_SNAPPY_MAGIC: &[u8] = b"\x82SNAPPY\x00";
/// Bytes of the xerial header: magic, then version and minimum compatible version (i32 each).
pub(super) const XERIAL_SNAPPY_HEADER_BYTES: usize = 16;

pub(super) fn decompress_snappy(compressed: &[u8]) -> Result<Vec<u8>, BatchError> {
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

pub(super) fn decompress_zstd(compressed: &[u8]) -> Result<Vec<u8>, BatchError> {
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
