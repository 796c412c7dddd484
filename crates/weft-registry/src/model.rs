//! The registry's vocabulary: schema types, modes, and the values the library API hands out.
//! Parsing from and printing to the Confluent spellings lives here so that the store and the
//! HTTP edge agree on them.
//!
//! Compatibility levels are [`weft_contract::CompatibilityMode`], the one type Weft has for
//! them: contracts and the registry share the names (`BACKWARD`, ..., `NONE`) and their meaning.
//! Its [`name`](weft_contract::CompatibilityMode::name) is the Confluent spelling the registry
//! stores and sends, and its `parse` ignores case as Confluent does.

use serde::{Deserialize, Serialize};
pub use weft_contract::CompatibilityMode;

/// The kind of schema text a subject version holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SchemaType {
    /// Apache Avro schema (JSON text). Confluent's default when `schemaType` is absent.
    #[serde(rename = "AVRO")]
    Avro,
    /// JSON Schema (draft 4 to 2020-12 keywords that matter for compatibility).
    #[serde(rename = "JSON")]
    Json,
    /// Protocol Buffers: recognised so that the error names it, but refused.
    #[serde(rename = "PROTOBUF")]
    Protobuf,
}

impl SchemaType {
    /// The Confluent spelling (`AVRO`, `JSON`, `PROTOBUF`).
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    /// Parses a Confluent spelling, case-insensitively as Confluent does.
    pub fn parse(text: &str) -> Option<SchemaType> {
        match text.to_ascii_uppercase().as_str() {
            "AVRO" => Some(SchemaType::Avro),
            "JSON" => Some(SchemaType::Json),
            "PROTOBUF" => Some(SchemaType::Protobuf),
            _ => None,
        }
    }
}

/// What the registry (or one subject) accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Normal operation.
    ReadWrite,
    /// Registrations and deletes are refused.
    ReadOnly,
    /// Global only: like `ReadOnly`, and no subject-level mode can lift it.
    ReadOnlyOverride,
    /// Registrations may carry their own id and version (migrations); no compatibility checks.
    Import,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::ReadWrite, Mode::ReadOnly, Mode::ReadOnlyOverride, Mode::Import];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::ReadOnlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }

    /// Parses a Confluent spelling, case-insensitively.
    pub fn parse(text: &str) -> Option<Mode> {
        let upper = text.to_ascii_uppercase();
        Mode::ALL.into_iter().find(|mode| mode.as_str() == upper)
    }

    /// Whether registrations and deletes are refused in this mode.
    pub fn is_read_only(self) -> bool {
        matches!(self, Mode::ReadOnly | Mode::ReadOnlyOverride)
    }
}

/// A named pointer from one schema to another subject version (Confluent `references`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchemaReference {
    /// The name the referring schema uses: an Avro full name, or a JSON Schema `$ref` URL.
    pub name: String,
    pub subject: String,
    pub version: u32,
}

/// The result of a registration: the global schema id and the subject version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisteredSchema {
    pub id: u32,
    pub version: u32,
}

/// A schema as stored under a global id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSchema {
    pub schema_type: SchemaType,
    /// The text as first registered.
    pub schema: String,
    pub references: Vec<SchemaReference>,
}

/// One version of a subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub deleted: bool,
    pub schema: StoredSchema,
}

/// Which earlier versions a compatibility check compares against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompatibilityTarget {
    /// One version, whatever the level's transitivity.
    Version(u32),
    /// The latest live version.
    Latest,
    /// The versions the subject's level names: the latest, or every live version if transitive.
    All,
}

/// The outcome of a compatibility check; `messages` explains every offending field.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CompatibilityVerdict {
    pub is_compatible: bool,
    pub messages: Vec<String>,
}

/// One version of a subject, as addressed by the API (`latest`/`-1`, or a number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSelector {
    Latest,
    Number(u32),
}

impl VersionSelector {
    /// Parses `latest`, `-1` or a number in 1..=2^31-1 (Confluent's rule).
    pub fn parse(text: &str) -> Option<VersionSelector> {
        if text.eq_ignore_ascii_case("latest") || text == "-1" {
            return Some(VersionSelector::Latest);
        }
        let number: u32 = text.parse().ok()?;
        (1..=i32::MAX as u32).contains(&number).then_some(VersionSelector::Number(number))
    }
}

/// Which subjects or versions a listing includes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletedFilter {
    /// Live ones only (the default).
    #[default]
    Live,
    /// Live and soft-deleted.
    Include,
    /// Soft-deleted only.
    Only,
}
