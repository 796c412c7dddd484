//! What the Kafka listener needs from the core to govern records it did not encode itself:
//! checking one produced record value against its stream's contract (with Confluent's wire
//! framing checked by the same rule as `Broker::produce`), and keeping refused records in the
//! dead-letter stream with exactly the `weft_dlq_*` headers the HTTP path writes.
//!
//! It knows nothing of the Kafka wire protocol: it takes decoded records (`weft_log`'s
//! `Record`) and returns `Error`s; the listener turns those into Kafka error codes.
//!
//! Kept apart from `broker.rs` so the Kafka edge can grow without touching the produce path
//! that HTTP uses. The dead-letter header layout mirrors `DeadLetterBatch::push` in
//! `broker.rs`; the header names are shared (`broker::dead_letter_headers`), and the interop
//! suite reads Kafka dead letters back over HTTP to keep the two in step.

use weft_log::batch::{BatchBuilder, Record};

use crate::broker::{Broker, ProduceContext, dead_letter_headers as h};
use crate::cloudevent::format_rfc3339_ms;
use crate::error::{Detail, Error, codes};
use crate::stream::{DEAD_LETTER_SUFFIX, Governance, Stream};

/// How a record value on a governed stream passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueCheck {
    /// JSON (plain or Confluent-framed) that satisfies the contract.
    Valid,
    /// Confluent-framed with a registered id of a non-JSON schema (Avro, Protobuf) under
    /// `<stream>-value`: the JSON contract cannot check it, so the registry id is the check.
    AcceptedBySchemaId { schema_id: u32, schema_type: String },
}

/// A record a governed stream refused, with why.
pub struct RefusedRecord<'a> {
    pub record: &'a Record<'a>,
    pub error: Error,
}

impl Broker {
    /// Checks one record value produced over Kafka to a governed stream: strips Confluent's
    /// framing (magic byte 0, 4-byte schema id) after checking the id is registered under
    /// `<stream>-value`, then validates the rest against the contract. A null value is
    /// validated as JSON `null`, as HTTP does with an event without data.
    pub fn check_kafka_value(&self, stream: &Stream, governance: &Governance, value: Option<&[u8]>) -> Result<ValueCheck, Error> {
        let data = value.unwrap_or(b"null");
        let json = match data {
            [0, a, b, c, d, rest @ ..] => {
                let schema_id = u32::from_be_bytes([*a, *b, *c, *d]);
                let sink = self.schema_sink();
                let subject = format!("{}-value", stream.name());
                let known = sink.as_ref().map(|sink| sink.subjects_of_schema(schema_id)).unwrap_or_default();
                if known.is_empty() {
                    return Err(Error::invalid(
                        codes::SCHEMA_NOT_FOUND,
                        format!("the record is framed with schema id {schema_id}, which the registry does not know"),
                    ));
                }
                if !known.contains(&subject) {
                    return Err(Error::invalid(
                        codes::SCHEMA_SUBJECT_MISMATCH,
                        format!("schema id {schema_id} is registered under {}, not {subject}", known.join(", ")),
                    ));
                }
                match sink.and_then(|sink| sink.schema_type(schema_id)) {
                    Some(schema_type) if schema_type != "JSON" => return Ok(ValueCheck::AcceptedBySchemaId { schema_id, schema_type }),
                    _ => rest,
                }
            }
            plain => plain,
        };
        governance.compiled.validate_bytes(json).map(|_| ValueCheck::Valid).map_err(|violations| contract_violation(&violations))
    }

    /// Appends refused records to the stream's dead-letter stream, in order, as one batch:
    /// value and key unchanged, the record's own headers, then the `weft_dlq_*` headers.
    /// Returns the offset of the first one.
    pub async fn append_kafka_dead_letters(
        &self,
        governance: &Governance,
        refused: &[RefusedRecord<'_>],
        producer: &str,
    ) -> Result<u64, Error> {
        let dead_letter_stream = self.stream(&governance.dead_letter_stream)?;
        let batch = dead_letter_batch(governance, refused, producer, self.now_ms());
        let context = ProduceContext { producer: crate::broker::DEAD_LETTER_PRODUCER.to_string() };
        let appended = self.append_batch_as(&dead_letter_stream, 0, batch, &context).await?;
        Ok(appended.base_offset)
    }
}

/// The dead-letter batch for `refused` (which must not be empty).
fn dead_letter_batch(governance: &Governance, refused: &[RefusedRecord<'_>], producer: &str, now_ms: i64) -> Vec<u8> {
    let rejected_at = format_rfc3339_ms(now_ms);
    let stream_name = governance.dead_letter_stream.trim_end_matches(DEAD_LETTER_SUFFIX);
    let mut builder = BatchBuilder::new(now_ms);
    for RefusedRecord { record, error } in refused {
        let details: Vec<serde_json::Value> = if error.details.is_empty() {
            vec![serde_json::json!({ "code": error.code, "path": error.path.clone().unwrap_or_default(), "message": error.message })]
        } else {
            error.details.iter().map(|d| serde_json::json!({ "code": d.code, "path": d.path, "message": d.message })).collect()
        };
        let violations = serde_json::to_string(&details).unwrap_or_default();
        let own_headers: Vec<(String, &[u8])> = record
            .headers
            .iter()
            .map(|header| (String::from_utf8_lossy(header.key).into_owned(), header.value.unwrap_or_default()))
            .collect();
        let mut headers: Vec<(&str, &[u8])> = own_headers.iter().map(|(key, value)| (key.as_str(), *value)).collect();
        headers.push((h::REASON, error.code.as_bytes()));
        headers.push((h::MESSAGE, error.message.as_bytes()));
        headers.push((h::VIOLATIONS, violations.as_bytes()));
        headers.push((h::STREAM, stream_name.as_bytes()));
        headers.push((h::CONTRACT_ID, governance.contract_id.as_bytes()));
        headers.push((h::CONTRACT_VERSION, governance.contract_version.as_bytes()));
        headers.push((h::PRODUCER, producer.as_bytes()));
        headers.push((h::REJECTED_AT, rejected_at.as_bytes()));
        builder.push(now_ms, record.key, record.value, &headers);
    }
    builder.finish()
}

/// One refused record's error from its contract violations: the first names the code and
/// path, all of them are in the details (the same shape as `Broker::produce` gives).
fn contract_violation(violations: &[weft_contract::Violation]) -> Error {
    let first = violations.first();
    let code = first.map_or(codes::EVENT_MALFORMED_JSON, |v| v.code);
    let message = match violations.len() {
        0 => "record violates the contract".to_string(),
        1 => violations[0].message.clone(),
        n => format!("{} (and {} more violations)", violations[0].message, n - 1),
    };
    let mut error = Error::invalid(code, message);
    if let Some(first) = first {
        error.path = Some(first.path.clone());
    }
    error.details = violations.iter().map(|v| Detail { code: v.code, path: v.path.clone(), message: v.message.clone() }).collect();
    error
}

/// `code at /pointer: message`, the one-line reason a Kafka client is told.
pub fn reason_line(error: &Error) -> String {
    match error.path.as_deref() {
        Some(path) if !path.is_empty() => format!("{} at {path}: {}", error.code, error.message),
        _ => format!("{}: {}", error.code, error.message),
    }
}
