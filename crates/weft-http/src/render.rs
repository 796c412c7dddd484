//! JSON rendering of stored events and streams, written straight into byte buffers on the
//! fetch paths so that a page of events costs one allocation.

use base64::Engine as _;
use weft_core::Stream;
use weft_core::cloudevent::{format_rfc3339_ms, render_record_json, write_json_string};
use weft_core::duration::format_duration_ms;
use weft_core::guard::Masker;
use weft_log::batch::Record;

/// `{"partition":..,"offset":..,"key":..,"timestamp":..,"event":{CloudEvent}}`
/// With a `masker`, classified fields of the data are replaced by their keyed hashes.
pub fn write_envelope(out: &mut Vec<u8>, stream: &str, partition: u32, record: &Record<'_>, masker: Option<&Masker>) {
    let masked_value = masker.and_then(|m| record.value.map(|v| m.mask(v)));
    let masked_record;
    let record = match &masked_value {
        Some(value) => {
            masked_record = Record { value: Some(value.as_slice()), ..record.clone() };
            &masked_record
        }
        None => record,
    };
    out.extend_from_slice(b"{\"partition\":");
    out.extend_from_slice(partition.to_string().as_bytes());
    out.extend_from_slice(b",\"offset\":");
    out.extend_from_slice(record.offset.to_string().as_bytes());
    out.extend_from_slice(b",\"key\":");
    match record.key.map(std::str::from_utf8) {
        None => out.extend_from_slice(b"null"),
        Some(Ok(key)) => write_json_string(out, key),
        Some(Err(_)) => {
            out.extend_from_slice(b"null,\"key_base64\":");
            write_json_string(out, &base64::engine::general_purpose::STANDARD.encode(record.key.unwrap_or_default()));
        }
    }
    out.extend_from_slice(b",\"timestamp\":");
    write_json_string(out, &format_rfc3339_ms(record.timestamp_ms));
    out.extend_from_slice(b",\"event\":");
    render_record_json(out, stream, partition, record);
    out.push(b'}');
}

/// A stream's configuration plus, per partition, its first and next offsets.
pub fn stream_json(stream: &Stream) -> serde_json::Value {
    let config = stream.config();
    let offsets: Vec<_> = stream
        .stats()
        .iter()
        .enumerate()
        .map(|(partition, stats)| {
            serde_json::json!({
                "partition": partition,
                "first_offset": stats.log_start_offset,
                "next_offset": stats.visible_next_offset,
                "size_bytes": stats.size_bytes,
                "segments": stats.n_segments,
            })
        })
        .collect();
    serde_json::json!({
        "name": config.name,
        "partitions": config.partitions,
        "key": config.key,
        "retention": config.retention_ms.map_or_else(|| "forever".to_string(), format_duration_ms),
        "retention_bytes": config.retention_bytes,
        "fsync": config.fsync,
        "segment_bytes": config.segment_bytes,
        "created_at": format_rfc3339_ms(config.created_at_ms),
        "offsets": offsets,
    })
}
