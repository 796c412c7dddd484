//! What the Kafka listener needs from the core to govern records it did not encode itself:
//! checking one produced record value against its stream's contract (with Confluent's wire
//! framing checked by the same rule as `Broker::produce`), and keeping refused records in the
//! dead-letter stream with exactly the `weft_dlq_*` headers the HTTP path writes.
//!
//! It knows nothing of the Kafka wire protocol: it takes decoded records (`weft_log`'s
//! `Record`) and returns `Error`s; the listener turns those into Kafka error codes.
//!
//! The framing rule (`Broker::unframe`), the violation error (`contract_violation`) and the
//! dead-letter layout (`DeadLetterBatch`) are the produce path's own, shared with HTTP; so is the
//! bound on times in the future (`Broker::event_time_limit`). Every record, on any stream, is
//! refused if it carries a header Weft reserves (`check_record_headers`).

use weft_log::batch::Record;

use crate::broker::Broker;
use crate::dead_letter::{DeadLetterBatch, DeadLetterRequest};
use crate::error::{Error, codes};
use crate::produce::{DEAD_LETTER_PRODUCER, ProduceContext, contract_violation};
use crate::stream::{Governance, Stream};

/// A record a governed stream refused, with why.
pub struct RefusedRecord<'a> {
    pub record: &'a Record<'a>,
    pub error: Error,
}

/// Record header names that Weft writes itself and a producer may not set: `weft_*` (the
/// dead-letter metadata `weft_dlq_*`, and whatever Weft adds later) and `ce_weft*` (the headers
/// of the reserved CloudEvents attributes, see `cloudevent::RESERVED_ATTRIBUTE_PREFIX`). Matched
/// without regard to ASCII case, since readers differ in how they compare header names.
pub const RESERVED_HEADER_PREFIXES: [&str; 2] = ["weft_", "ce_weft"];

/// Refuses a record that carries a header Weft reserves (`event.reserved_header`): refusing keeps
/// the producer's batch byte for byte (stripping would mean re-encoding it), and a forged
/// `weft_dlq_*` header could otherwise pass for Weft's own dead-letter metadata.
pub fn check_record_headers(record: &Record<'_>) -> Result<(), Error> {
    for header in &record.headers {
        let reserved = RESERVED_HEADER_PREFIXES
            .iter()
            .find(|prefix| header.key.len() >= prefix.len() && header.key[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()));
        if let Some(prefix) = reserved {
            let name = String::from_utf8_lossy(header.key);
            return Err(Error::invalid(
                codes::EVENT_RESERVED_HEADER,
                format!(
                    "record header {:?} is reserved: headers starting with {prefix:?} are written by weft only",
                    crate::stream::truncate_for_message(&name)
                ),
            ));
        }
    }
    Ok(())
}

impl Broker {
    /// Checks one record value produced over Kafka to a governed stream: strips Confluent's
    /// framing (magic byte 0, 4-byte schema id) after checking the id is a version the stream's
    /// contract registered under `<stream>-value`, then validates the rest against the contract.
    /// A null value is validated as JSON `null`, as HTTP does with an event without data.
    pub fn check_kafka_value(&self, stream: &Stream, governance: &Governance, value: Option<&[u8]>) -> Result<(), Error> {
        let json = self.unframe(stream, value.unwrap_or(b"null"))?;
        governance.compiled.validate_bytes(json).map(|_| ()).map_err(|violations| contract_violation(&violations))
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
        let now_ms = self.now_ms();
        let request = DeadLetterRequest { governance, producer, now_ms };
        let mut letters = DeadLetterBatch::new(now_ms);
        for (record_idx, RefusedRecord { record, error }) in refused.iter().enumerate() {
            letters.push_record(record_idx, record, error, &request);
        }
        let (batch, _) = letters.finish();
        let context = ProduceContext { producer: DEAD_LETTER_PRODUCER.to_string() };
        let appended = self.append_batch_as(&dead_letter_stream, 0, batch, &context).await?;
        Ok(appended.base_offset)
    }
}
