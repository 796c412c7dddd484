//! Kafka error codes for Weft's errors: the one place where `weft_core::Kind` becomes a
//! Kafka `ResponseError`.

use kafka_protocol::ResponseError;
use weft_core::{Error, Kind};

/// The error code for a Weft error in a Produce, Fetch or ListOffsets partition response.
pub fn partition_error_code(error: &Error) -> i16 {
    let kafka = match error.kind {
        Kind::NotFound => ResponseError::UnknownTopicOrPartition,
        Kind::OutOfRange => ResponseError::OffsetOutOfRange,
        Kind::Invalid => ResponseError::CorruptMessage,
        Kind::TooLarge => ResponseError::MessageTooLarge,
        Kind::StorageFull | Kind::Unavailable => ResponseError::KafkaStorageError,
        Kind::Conflict | Kind::Internal => ResponseError::UnknownServerError,
        Kind::Unauthenticated => ResponseError::SaslAuthenticationFailed,
        Kind::Forbidden => ResponseError::TopicAuthorizationFailed,
    };
    kafka.code()
}

pub const NONE: i16 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_kafka_protocol_table() {
        let not_found = Error::new(Kind::NotFound, weft_core::codes::STREAM_NOT_FOUND, "x");
        assert_eq!(partition_error_code(&not_found), 3);
        let out_of_range = Error::new(Kind::OutOfRange, weft_core::codes::OFFSET_OUT_OF_RANGE, "x");
        assert_eq!(partition_error_code(&out_of_range), 1);
        assert_eq!(partition_error_code(&Error::internal("x")), -1);
    }
}
