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

/// Every stable error code Weft's core emits.
pub mod codes {
    pub const STREAM_NOT_FOUND: &str = "stream.not_found";
    pub const STREAM_ALREADY_EXISTS: &str = "stream.already_exists";
    pub const STREAM_INVALID_NAME: &str = "stream.invalid_name";
    pub const STREAM_INVALID_CONFIG: &str = "stream.invalid_config";
    pub const STREAM_LIMIT_REACHED: &str = "stream.limit_reached";
    pub const PARTITION_NOT_FOUND: &str = "partition.not_found";
    pub const OFFSET_OUT_OF_RANGE: &str = "offset.out_of_range";
    pub const EVENT_MALFORMED_JSON: &str = "event.malformed_json";
    pub const EVENT_INVALID_CLOUDEVENT: &str = "event.invalid_cloudevent";
    pub const EVENT_TOO_LARGE: &str = "event.too_large";
    pub const EVENT_INVALID_BATCH: &str = "event.invalid_batch";
    pub const EVENT_UNSUPPORTED_CONTENT_TYPE: &str = "event.unsupported_content_type";
    pub const GROUP_INVALID_NAME: &str = "group.invalid_name";
    pub const GROUP_INVALID_MEMBER: &str = "group.invalid_member";
    pub const GROUP_PARTITION_NOT_OWNED: &str = "group.partition_not_owned";
    pub const GROUP_NOT_FOUND: &str = "group.not_found";
    pub const GROUP_LIMIT_REACHED: &str = "group.limit_reached";
    pub const GROUP_MEMBER_IN_USE: &str = "group.member_in_use";
    pub const APPLY_REFUSED: &str = "apply.refused";
    pub const CONTRACT_INCOMPATIBLE: &str = "contract.incompatible";
    pub const CONTRACT_VERSION_IMMUTABLE: &str = "contract.version_immutable";
    pub const CONTRACT_STREAM_OWNED_ELSEWHERE: &str = "contract.stream_owned_elsewhere";
    pub const CONTRACT_PARTITIONS_CHANGED: &str = "contract.partitions_changed";
    pub const CONTRACT_NO_TOPIC: &str = "contract.no_topic";
    pub const RESOURCE_DUPLICATE_ID: &str = "resource.duplicate_id";
    pub const PRODUCT_MISSING_CONTRACT: &str = "product.missing_contract";
    pub const PRODUCT_MISSING_DOMAIN: &str = "product.missing_domain";
    pub const PRODUCT_CONTRACT_OWNED_ELSEWHERE: &str = "product.contract_owned_elsewhere";
    pub const PRODUCT_NOT_FOUND: &str = "product.not_found";
    pub const SCHEMA_NOT_FOUND: &str = "schema.not_found";
    pub const SCHEMA_SUBJECT_MISMATCH: &str = "schema.subject_mismatch";
    pub const STORAGE_FULL: &str = "storage.full";
    pub const STORAGE_UNAVAILABLE: &str = "storage.unavailable";
    pub const STORAGE_CORRUPT: &str = "storage.corrupt";
    pub const INTERNAL: &str = "internal";
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
