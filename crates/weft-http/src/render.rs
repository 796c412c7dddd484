//! JSON rendering of stored events and streams, written straight into byte buffers on the
//! fetch paths so that a page of events costs one allocation.
//!
//! A stored record becomes a CloudEvent in the JSON format. Its value is copied as it is when
//! Weft checked it on the way in (`StoredRecord::json_checked`, a JSON content type); a value
//! that Weft did not check (a Kafka producer's) is checked here once; and anything that is not
//! valid UTF-8 JSON is rendered as `data_base64` (or as a JSON string for text content types),
//! so every response is valid JSON whatever bytes were stored.

use base64::Engine as _;
use weft_core::Record;
use weft_core::cloudevent::{SPEC_VERSION, check_attribute_name, format_rfc3339_ms, is_json_content_type, is_text_content_type};
use weft_core::duration::format_duration_ms;
use weft_core::guard::Masker;
use weft_core::{StoredRecord, Stream};

/// `{"partition":..,"offset":..,"key":..,"timestamp":..,"event":{CloudEvent}}`
/// With a `masker`, classified fields of the data are replaced by their keyed hashes.
pub fn write_envelope(out: &mut Vec<u8>, stream: &str, partition: u32, stored: &StoredRecord<'_>, masker: Option<&Masker>) {
    let record = &stored.record;
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
    render_record_json(out, stream, partition, record, stored.json_checked);
    out.push(b'}');
}

/// Appends `text` to `out` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}

/// Is `value` JSON text (RFC 8259: UTF-8, and the grammar)?
fn is_json_text(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok() && serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok()
}

/// Renders a stored record as a CloudEvent in the JSON format.
///
/// Records written by Weft carry `ce_` headers. A record from a plain Kafka producer has
/// none; it is shown as an event with a synthesized `id` (`<stream>-<partition>-<offset>`),
/// `source` (`/weft/streams/<stream>`), `type` (`weft.record`) and `time` (the record time).
/// `json_checked` says the value was checked to be JSON text when it was produced.
pub fn render_record_json(out: &mut Vec<u8>, stream: &str, partition: u32, record: &Record<'_>, json_checked: bool) {
    let mut specversion = None;
    let mut id = None;
    let mut source = None;
    let mut ty = None;
    let mut time = None;
    let mut content_type = None;
    let mut others: Vec<(&str, &str)> = Vec::new();
    for header in &record.headers {
        let (Ok(key), Some(Ok(value))) = (std::str::from_utf8(header.key), header.value.map(std::str::from_utf8)) else { continue };
        if key == "content-type" {
            content_type = Some(value);
            continue;
        }
        let Some(name) = key.strip_prefix("ce_") else { continue };
        match name {
            "specversion" => specversion = Some(value),
            "id" => id = Some(value),
            "source" => source = Some(value),
            "type" => ty = Some(value),
            "time" => time = Some(value),
            "datacontenttype" | "data" | "data_base64" => {}
            _ if check_attribute_name(name).is_ok() => others.push((name, value)),
            _ => {}
        }
    }
    out.extend_from_slice(b"{\"specversion\":");
    write_json_string(out, specversion.unwrap_or(SPEC_VERSION));
    out.extend_from_slice(b",\"id\":");
    match id {
        Some(id) => write_json_string(out, id),
        None => write_json_string(out, &format!("{stream}-{partition}-{}", record.offset)),
    }
    out.extend_from_slice(b",\"source\":");
    match source {
        Some(source) => write_json_string(out, source),
        None => write_json_string(out, &format!("/weft/streams/{stream}")),
    }
    out.extend_from_slice(b",\"type\":");
    write_json_string(out, ty.unwrap_or("weft.record"));
    out.extend_from_slice(b",\"time\":");
    match time {
        Some(time) => write_json_string(out, time),
        None => write_json_string(out, &format_rfc3339_ms(record.timestamp_ms)),
    }
    if let Some(content_type) = content_type {
        out.extend_from_slice(b",\"datacontenttype\":");
        write_json_string(out, content_type);
    }
    for (name, value) in others {
        out.push(b',');
        write_json_string(out, name);
        out.push(b':');
        write_json_string(out, value);
    }
    if let Some(value) = record.value {
        if is_json_content_type(content_type) && (json_checked || is_json_text(value)) {
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(value);
        } else if let (true, Ok(text)) = (is_text_content_type(content_type), std::str::from_utf8(value)) {
            out.extend_from_slice(b",\"data\":");
            write_json_string(out, text);
        } else {
            out.extend_from_slice(b",\"data_base64\":");
            write_json_string(out, &base64::engine::general_purpose::STANDARD.encode(value));
        }
    }
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
        "fsync": config.fsync.to_string(),
        "segment_bytes": config.segment_bytes,
        "created_at": format_rfc3339_ms(config.created_at_ms),
        "offsets": offsets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::CloudEvent;
    use weft_log::batch::{BatchBuilder, BatchView};

    fn render(value: Option<&[u8]>, headers: &[(&str, &[u8])], json_checked: bool) -> serde_json::Value {
        let mut builder = BatchBuilder::new(1_700_000_000_000);
        builder.push(1_700_000_000_000, Some(b"k"), value, headers);
        let bytes = builder.finish();
        let batch = BatchView::parse(&bytes).unwrap();
        let record = batch.records().unwrap().next().unwrap().unwrap();
        let mut out = Vec::new();
        render_record_json(&mut out, "orders", 3, &record, json_checked);
        serde_json::from_slice(&out).expect("every rendering is valid JSON")
    }

    #[test]
    fn structured_event_survives_storage_as_binary_mode_record() {
        let json = br#"{"specversion":"1.0","id":"e-1","source":"/shop","type":"order.created","time":"2026-11-21T10:00:00Z","partitionkey":"c-1","traceparent":"00-ab","data":{"amount": 12.5}}"#;
        let event = CloudEvent::from_json(json).unwrap();
        let headers = event.record_headers();
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(name, value)| (name.as_ref(), *value)).collect();
        let rendered = render(event.data.as_deref(), &headers, true);
        assert_eq!(rendered["id"], "e-1");
        assert_eq!(rendered["partitionkey"], "c-1");
        assert_eq!(rendered["traceparent"], "00-ab");
        assert_eq!(rendered["data"]["amount"], 12.5);
    }

    #[test]
    fn binary_data_travels_as_data_base64() {
        let rendered = render(Some(&[0, 1, 2]), &[("content-type", b"application/octet-stream")], false);
        assert_eq!(rendered["data_base64"], "AAEC");
    }

    #[test]
    fn plain_kafka_records_render_as_synthesized_events() {
        let rendered = render(Some(b"not json"), &[], false);
        assert_eq!(rendered["id"], "orders-3-0");
        assert_eq!(rendered["data_base64"], base64::engine::general_purpose::STANDARD.encode(b"not json"));
    }

    #[test]
    fn unchecked_values_that_are_not_utf8_json_render_as_data_base64() {
        for value in [&b"{\"k\":\"a\xff\"}"[..], b"{\"k\":\"\xed\xa0\x80\"}", b"{\"k\":", b"\xff\xfe"] {
            let rendered = render(Some(value), &[("content-type", b"application/json")], false);
            let decoded = base64::engine::general_purpose::STANDARD.decode(rendered["data_base64"].as_str().unwrap()).unwrap();
            assert_eq!(decoded, value, "the stored bytes come back exactly");
        }
        let rendered = render(Some(b"caf\xc3\xa9 \xff"), &[("content-type", b"text/plain")], false);
        assert!(rendered.get("data_base64").is_some(), "text that is not UTF-8 is base64 too");
    }

    #[test]
    fn checked_json_is_copied_without_parsing() {
        let rendered = render(Some(br#"{"n":1}"#), &[("content-type", b"application/json")], true);
        assert_eq!(rendered["data"]["n"], 1);
    }
}
