//! The registry's one error type and its Confluent error codes.
//!
//! Codes and message texts follow Confluent's `Errors.java` so that clients keyed on them
//! (`confluent-kafka`, the Java serializers) behave as they do against Confluent.
//! The HTTP status is the first three digits of the code.

/// Everything a registry operation can refuse or fail with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    /// An id, or empty for a lookup by content ("Schema not found").
    #[error("{}", if .0.is_empty() { "Schema not found".to_string() } else { format!("Schema {} not found", .0) })]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{0}' Version {1} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, u32),
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, u32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotConfigured(String),
    /// HTTP 409 with `error_code` 409 (Confluent's code before December 2025; it is 40901 since).
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", messages.join("; "))]
    Incompatible { subject: String, messages: Vec<String> },
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error(
        "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
    )]
    InvalidCompatibilityLevel,
    #[error("Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE, IMPORT")]
    InvalidMode,
    #[error("{0}")]
    OperationNotPermitted(String),
    #[error("{0}")]
    ReferenceExists(String),
    #[error("{0}")]
    IdDoesNotMatch(String),
    #[error("The specified subject '{0}' is not valid.")]
    InvalidSubject(String),
    #[error("{0}")]
    SchemaTooLarge(String),
    /// A change to a subject fed by a data contract, by someone other than an admin: Confluent's
    /// authorization failure (HTTP 403, `error_code` 40301, "User is denied operation ...").
    #[error("User is denied operation on subject '{0}': it is fed by a data contract and changes only through weft apply")]
    SubjectContractFed(String),
    #[error("Error in the backend data store - {0}")]
    Store(String),
}

impl RegistryError {
    /// The Confluent `error_code`.
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound(_) => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted(..) => 40406,
            RegistryError::VersionNotSoftDeleted(..) => 40407,
            RegistryError::SubjectCompatibilityNotConfigured(_) => 40408,
            RegistryError::SubjectModeNotConfigured(_) => 40409,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibilityLevel => 42203,
            RegistryError::InvalidMode => 42204,
            RegistryError::OperationNotPermitted(_) => 42205,
            RegistryError::ReferenceExists(_) => 42206,
            RegistryError::IdDoesNotMatch(_) => 42207,
            RegistryError::InvalidSubject(_) => 42208,
            RegistryError::SchemaTooLarge(_) => 42209,
            RegistryError::SubjectContractFed(_) => 40301,
            RegistryError::Store(_) => 50001,
        }
    }

    /// The HTTP status: the first three digits of the code.
    pub fn http_status(&self) -> u16 {
        http_status_for_code(self.error_code())
    }
}

/// `40401` → 404, `409` → 409.
pub fn http_status_for_code(code: u32) -> u16 {
    let mut status = code;
    while status >= 1000 {
        status /= 10;
    }
    status as u16
}

macro_rules! store_error_from {
    ($($source:ty),*) => {$(
        impl From<$source> for RegistryError {
            fn from(error: $source) -> Self {
                RegistryError::Store(error.to_string())
            }
        }
    )*};
}

store_error_from!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError, serde_json::Error);
