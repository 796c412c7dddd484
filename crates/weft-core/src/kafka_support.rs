//! What the Kafka listener needs from the core to govern records it did not encode itself:
//! checking one produced record value against its stream's contract (with Confluent's wire
//! framing checked by the same rule as `Broker::produce`), and keeping refused records in the
//! dead-letter stream with exactly the `weft_dlq_*` headers the HTTP path writes.
//!
//! It knows nothing of the Kafka wire protocol: it takes decoded records (`weft_log`'s
//! `Record`) and returns `Error`s; the listener turns those into Kafka error codes.
//!
//! The framing rule (`Broker::unframe`), the violation error (`contract_violation`) and the
//! dead-letter layout (`push_dead_letter`) are the produce path's own, shared with HTTP.

use std::borrow::Cow;

use weft_log::batch::{BatchBuilder, Record};

use crate::broker::{Broker, ProduceContext, Unframed, contract_violation, push_dead_letter};
use crate::error::Error;
use crate::stream::{Governance, Stream};

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
        match self.unframe(stream, value.unwrap_or(b"null"))? {
            Unframed::Json(json) => {
                governance.compiled.validate_bytes(json).map(|_| ValueCheck::Valid).map_err(|violations| contract_violation(&violations))
            }
            Unframed::ForeignSchema { schema_id, schema_type } => Ok(ValueCheck::AcceptedBySchemaId { schema_id, schema_type }),
        }
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
    let mut builder = BatchBuilder::new(now_ms);
    for RefusedRecord { record, error } in refused {
        let headers: Vec<(Cow<'_, str>, &[u8])> =
            record.headers.iter().map(|header| (String::from_utf8_lossy(header.key), header.value.unwrap_or_default())).collect();
        push_dead_letter(&mut builder, record.key, record.value, &headers, error, governance, producer, now_ms);
    }
    builder.finish()
}

/// `code at /pointer: message`, the one-line reason a Kafka client is told.
pub fn reason_line(error: &Error) -> String {
    match error.path.as_deref() {
        Some(path) if !path.is_empty() => format!("{} at {path}: {}", error.code, error.message),
        _ => format!("{}: {}", error.code, error.message),
    }
}
