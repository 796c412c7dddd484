//! The one error type that reaches users: a stable code, a message and, where it applies,
//! a JSON pointer to the offending field.
//!
//! Codes are part of Weft's public interface: scripts and clients key on them, so a code
//! is never renamed or reused. Each code belongs to a `Kind`, which the edges map to an
//! HTTP status (and, for the Kafka listener, a Kafka error code).

use std::fmt;

/// What sort of failure a code is; the edge crates map this to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Invalid,
    /// Missing or bad credentials (HTTP 401).
    Unauthenticated,
    /// Authenticated but not allowed (HTTP 403).
    Forbidden,
    NotFound,
    Conflict,
    TooLarge,
    OutOfRange,
    StorageFull,
    Unavailable,
    Internal,
}

/// A failure with a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: &'static str,
    pub kind: Kind,
    pub message: String,
    pub path: Option<String>,
    /// Every individual problem, when there are several (e.g. contract violations).
    pub details: Vec<Detail>,
    /// Where a rejected event was kept (its dead-letter position), if it was.
    pub dead_letter: Option<Box<DeadLetterPosition>>,
}

/// Where a dead letter was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterPosition {
    pub stream: String,
    pub partition: u32,
    pub offset: u64,
}

/// One problem among several, with its own code and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    pub code: &'static str,
    pub path: String,
    pub message: String,
}

impl Error {
    pub fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> Self {
        Self { code, kind, message: message.into(), path: None, details: Vec::new(), dead_letter: None }
    }
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Invalid, code, message)
    }
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, codes::INTERNAL, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(path) = &self.path {
            write!(f, " (at {path})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Every stable error code Weft's core emits, each with the `Kind` of the errors that carry it.
///
/// The `codes!` table below is the one place a core code is defined: it generates the public
/// constants and `ALL`, so a code cannot be added without saying what kind of failure it is.
pub mod codes {
    use super::Kind;

    /// Generates one `pub const` per row and the table `ALL` of `(code, kind)` in row order.
    macro_rules! codes {
        ($($name:ident = $code:expr => $kind:ident,)*) => {
            $(pub const $name: &str = $code;)*
            /// Every core code with its kind, in the order they are declared.
            pub const ALL: &[(&str, Kind)] = &[$(($name, Kind::$kind)),*];
        };
    }

    // Codes that only appear in refused apply plans (`mesh.rs` refusals, answered as a whole
    // with `apply.refused`) are never the code of an `Error`; their kind is the one they
    // would have as an error: `Conflict` against applied state, `NotFound` for a missing
    // reference, `Invalid` for the resource itself, `Forbidden` for who may apply it (the HTTP
    // edge audits those as denials).
    codes! {
        STREAM_NOT_FOUND = "stream.not_found" => NotFound,
        STREAM_ALREADY_EXISTS = "stream.already_exists" => Conflict,
        STREAM_INVALID_NAME = "stream.invalid_name" => Invalid,
        STREAM_INVALID_CONFIG = "stream.invalid_config" => Invalid,
        STREAM_LIMIT_REACHED = "stream.limit_reached" => Conflict,
        // A client tried to write one of Weft's own streams (`_weft.*`); `guard::codes` re-exports it.
        STREAM_SYSTEM = "stream.system" => Forbidden,
        PARTITION_NOT_FOUND = "partition.not_found" => NotFound,
        OFFSET_OUT_OF_RANGE = "offset.out_of_range" => OutOfRange,
        // The contract library defines it (it is also a violation code): defined once, used here.
        EVENT_MALFORMED_JSON = weft_contract::violation::MALFORMED_JSON => Invalid,
        EVENT_INVALID_CLOUDEVENT = "event.invalid_cloudevent" => Invalid,
        EVENT_TOO_LARGE = "event.too_large" => TooLarge,
        EVENT_INVALID_BATCH = "event.invalid_batch" => Invalid,
        EVENT_UNSUPPORTED_CONTENT_TYPE = "event.unsupported_content_type" => Invalid,
        // An object in the event (its envelope or its JSON data) repeats a key; the contract
        // library defines it (it is also a violation code). The path is the repeated member's.
        EVENT_DUPLICATE_KEY = weft_contract::violation::DUPLICATE_KEY => Invalid,
        // The event's `time` (or a Kafka record's timestamp) is further ahead of the broker's
        // clock than `weft serve --max-future-time` allows.
        EVENT_TIME_IN_FUTURE = "event.time_in_future" => Invalid,
        // A CloudEvents extension attribute whose name starts with `weft`: Weft keeps those names.
        EVENT_RESERVED_ATTRIBUTE = "event.reserved_attribute" => Invalid,
        // A Kafka record header named `weft_*` or `ce_weft*`: Weft writes those itself (dead
        // letters' `weft_dlq_*`), so a producer cannot forge them.
        EVENT_RESERVED_HEADER = "event.reserved_header" => Invalid,
        GROUP_INVALID_NAME = "group.invalid_name" => Invalid,
        GROUP_INVALID_MEMBER = "group.invalid_member" => Invalid,
        GROUP_PARTITION_NOT_OWNED = "group.partition_not_owned" => Conflict,
        GROUP_NOT_FOUND = "group.not_found" => NotFound,
        GROUP_LIMIT_REACHED = "group.limit_reached" => Conflict,
        GROUP_MEMBER_IN_USE = "group.member_in_use" => Conflict,
        // As an `Error` only for too many files in one apply; a plan with refused resources is
        // answered 422 by the HTTP edge without going through an `Error`.
        APPLY_REFUSED = "apply.refused" => TooLarge,
        CONTRACT_INCOMPATIBLE = "contract.incompatible" => Conflict,
        CONTRACT_VERSION_IMMUTABLE = "contract.version_immutable" => Conflict,
        CONTRACT_STREAM_OWNED_ELSEWHERE = "contract.stream_owned_elsewhere" => Conflict,
        CONTRACT_PARTITIONS_CHANGED = "contract.partitions_changed" => Conflict,
        CONTRACT_NO_TOPIC = "contract.no_topic" => Invalid,
        // A contract names one of Weft's own streams (`_weft.*`) or a dead-letter stream (`*.dlq`).
        CONTRACT_RESERVED_STREAM = "contract.reserved_stream" => Invalid,
        RESOURCE_DUPLICATE_ID = "resource.duplicate_id" => Invalid,
        // An update of a resource the caller may not apply to as stored (its current domain, the
        // owners of a Domain, or the platform for a resource of no domain); names the stored owner.
        APPLY_OWNER_MISMATCH = "apply.owner_mismatch" => Forbidden,
        // A move of a product or contract to another domain by a caller without `apply` on both.
        APPLY_DOMAIN_MOVE_DENIED = "apply.domain_move_denied" => Forbidden,
        // A Policy name already taken by another scope (global, or another domain).
        POLICY_NAME_TAKEN = "policy.name_taken" => Conflict,
        PRODUCT_MISSING_CONTRACT = "product.missing_contract" => NotFound,
        PRODUCT_MISSING_DOMAIN = "product.missing_domain" => NotFound,
        PRODUCT_CONTRACT_OWNED_ELSEWHERE = "product.contract_owned_elsewhere" => Conflict,
        // An output port names a contract that declares another domain than the product's.
        PRODUCT_CONTRACT_OUTSIDE_DOMAIN = "product.contract_outside_domain" => Conflict,
        PRODUCT_NOT_FOUND = "product.not_found" => NotFound,
        SCHEMA_NOT_FOUND = "schema.not_found" => Invalid,
        SCHEMA_SUBJECT_MISMATCH = "schema.subject_mismatch" => Invalid,
        // On a governed stream, the framing's schema id is registered under the stream's subject
        // but is not a version of its contract (someone registered it through `/registry`).
        SCHEMA_NOT_CONTRACT_VERSION = "schema.not_contract_version" => Invalid,
        STORAGE_FULL = "storage.full" => StorageFull,
        STORAGE_UNAVAILABLE = "storage.unavailable" => Unavailable,
        STORAGE_CORRUPT = "storage.corrupt" => Internal,
        INTERNAL = "internal" => Internal,
    }

    /// The kind of the errors that carry `code`, or `None` if it is not a core code.
    pub fn kind_of(code: &str) -> Option<Kind> {
        ALL.iter().find(|(known, _)| *known == code).map(|(_, kind)| *kind)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A code listed twice could carry two kinds, and `kind_of` would silently take the first.
        #[test]
        fn every_core_code_is_in_the_table_once() {
            for (idx, (code, kind)) in ALL.iter().enumerate() {
                let n_rows = ALL.iter().filter(|(other, _)| other == code).count();
                assert_eq!(n_rows, 1, "core code {code:?} is in `codes::ALL` {n_rows} times");
                assert_eq!(kind_of(code), Some(*kind), "row {idx}");
            }
            assert_eq!(kind_of("no.such_code"), None);
        }

        #[test]
        fn the_shared_malformed_json_code_keeps_its_string() {
            assert_eq!(kind_of(STREAM_NOT_FOUND), Some(Kind::NotFound));
            assert_eq!(kind_of(EVENT_MALFORMED_JSON), Some(Kind::Invalid));
            assert_eq!(EVENT_MALFORMED_JSON, "event.malformed_json");
        }
    }
}

impl From<weft_log::LogError> for Error {
    fn from(error: weft_log::LogError) -> Self {
        use weft_log::LogError;
        match &error {
            LogError::OffsetOutOfRange { .. } => Self::new(Kind::OutOfRange, codes::OFFSET_OUT_OF_RANGE, error.to_string()),
            LogError::DiskFull => {
                Self::new(Kind::StorageFull, codes::STORAGE_FULL, "no space left on the device; the event was not stored")
            }
            LogError::Poisoned(_) => Self::new(Kind::Unavailable, codes::STORAGE_UNAVAILABLE, error.to_string()),
            LogError::Corrupt { .. } => Self::new(Kind::Internal, codes::STORAGE_CORRUPT, error.to_string()),
            LogError::InvalidBatch(_) | LogError::InvalidConfig(_) | LogError::Io(_) => Self::internal(error.to_string()),
        }
    }
}

impl From<redb::Error> for Error {
    fn from(error: redb::Error) -> Self {
        Self::new(Kind::Unavailable, codes::STORAGE_UNAVAILABLE, format!("metadata store: {error}"))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(error: $t) -> Self {
                Self::from(redb::Error::from(error))
            }
        }
    )*};
}
from_redb!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);
