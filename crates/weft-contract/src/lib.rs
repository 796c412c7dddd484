//! Weft's data contracts: ODCS v3 contracts turned into fast event validators, and judgments of
//! compatibility between contract versions.
//!
//! A pure library: no I/O beyond the strings it is handed, no HTTP, no async, no clock.
//!
//! # Pieces
//! * [`parse_documents`] reads a file (multi-document YAML, or one JSON object) into
//!   [`Document`]s: ODCS v3.0.x/v3.1.0/v3.2.0 contracts, ODPS v1.0.0 products, and Weft's
//!   `weft/v1` `Domain` and `Policy`. Every object is closed: an unknown field is an error naming
//!   the JSON pointer and the line (`/schema/0/properties/2/logicalTyp`, code
//!   `resource.unknown_field`).
//! * [`CompiledContract::compile`] turns one schema object into a tree of typed checks;
//!   [`CompiledContract::validate_bytes`] parses an event into a borrowed [`Doc`], walks it and
//!   reports every [`Violation`] (stable codes in [`violation`]). [`Doc::parse`] refuses an object
//!   that repeats a key (`event.duplicate_key`, with the pointer); [`scan_json`] applies the same
//!   rule to data without a contract, without building a tree, and reads the partition key.
//! * [`diff`] and [`check_compatibility`] compare versions.
//! * [`CompiledContract::to_json_schema`] exports draft-07 JSON Schema for the schema registry.
//!
//! # Validation semantics
//! They agree with `datacontract export jsonschema`: a `required: true` property must be present
//! and non-null; other properties may be absent or null; every other check applies to non-null
//! values. `date`, `timestamp` and `time` are strings (ISO 8601 / RFC 3339 unless
//! `logicalTypeOptions.format` gives a JDK pattern); a `timestamp` needs an offset unless
//! `timezone: false`. Integer `format`s (`i8` ... `u128`) bound the value; `f32` bounds numbers.
//! Quality rules run per event only when one bad event already breaks them (a library
//! `nullValues`/`missingValues`/`invalidValues` metric with a zero threshold); every other rule
//! (`duplicateValues`, `rowCount`, `sql`, `custom`, `text`, non-zero thresholds) and
//! `unique: true` are listed by [`CompiledContract::deferred_rules`].
//!
//! Objects in events are **open** by default, like the CLI's JSON Schema export: undeclared
//! properties pass. A stream opts into closed objects with the custom property
//! `weft.closed: true`, after which undeclared properties are `contract.unknown_property`.
//!
//! Patterns: ODCS patterns are ECMA-262 regular expressions; Weft compiles them with the `regex`
//! crate. Both search anywhere in the string unless anchored with `^...$`. `regex` has no
//! look-around and no backreferences (such patterns are refused with
//! `contract.invalid_pattern`), and its `\d`, `\w`, `\s` and `\b` are Unicode-aware where
//! ECMA-262's are ASCII-only (without the `u` flag), so they may accept more.
//!
//! # Compatibility rules
//! JSON's content model is open, which makes almost every change unsafe (an old event could hold
//! any property). Weft instead treats contracts as **closed for compatibility purposes**: a
//! producer can only send declared properties, because the contract is enforced at the edge;
//! readers ignore properties they do not know. Hence:
//! * adding an optional property is compatible both ways; adding a required property breaks
//!   BACKWARD (old events lack it);
//! * removing a property is BACKWARD compatible (new readers ignore it in old events) but breaks
//!   FORWARD (old readers expect it);
//! * widening (a type to a supertype: `integer -> number`, `date -> string`; a bound relaxed or
//!   removed; a pattern, format or enum removed; an enum value added; required -> optional) is
//!   BACKWARD compatible and breaks FORWARD;
//! * narrowing (the reverse) is FORWARD compatible and breaks BACKWARD;
//! * changes that are neither (`number -> string`, a changed pattern or format, a changed
//!   date bound) break both.
//!
//! BACKWARD (the default) checks new against the latest version, FORWARD the reverse, FULL both;
//! the `_TRANSITIVE` modes check against every earlier version; NONE never fails.
//!
//! # Stream settings
//! `customProperties` with a `weft.` prefix on the contract (defaults) or on a schema object
//! (that stream): `weft.partitions` (1 to [`limits::STREAM_PARTITIONS_MAX`]), `weft.key`
//! (property name or JSON pointer of the partition key), `weft.fsync`
//! (`always|interval:<ms>|never`), `weft.compatibility` (a mode name), `weft.closed`.
//! Unknown `weft.` keys are refused. `slaProperties` `latency` and `retention` become durations.

mod check;
mod compat;
mod compile;
mod compiled;
mod doc;
mod error;
mod format;
mod json_schema;
mod model;
mod parse;
mod product;
mod quality;
mod scan;
mod settings;
mod temporal;
mod validate;

#[cfg(test)]
mod tests;

pub use check::{check_contract, check_domain, check_policy, check_product};
pub use compat::{Change, CheckedChange, CompatibilityMode, CompatibilityReport, check_compatibility, diff};
pub use compile::{LOGICAL_TYPES, MASKED_CLASSIFICATIONS};
pub use compiled::{ClassifiedProperty, CompiledContract, DeferredRule};
pub use doc::{Doc, DocError};
pub use error::{ContractError, ResourceLabel, code};
pub use json_schema::to_json_schema;
pub use model::*;
pub use parse::{Document, ODCS_API_VERSIONS, ODPS_API_VERSIONS, WEFT_API_VERSION, parse_documents};
pub use product::*;
pub use scan::scan_json;
pub use settings::{FsyncPolicy, StreamSettings, WEFT_KEYS};
pub use validate::{CLASSIFIED_VALUE, Violation, violation};

/// Limits this crate enforces. Over a limit is a clear error, never unbounded work.
pub mod limits {
    /// Largest resource file [`crate::parse_documents`] reads.
    pub const DOCUMENT_TEXT_BYTES_MAX: usize = 4 * 1024 * 1024;
    /// Most documents in one file.
    pub const DOCUMENTS_PER_FILE_MAX: usize = 1_000;
    /// Deepest nesting of properties (objects and arrays) in a contract.
    pub const PROPERTY_DEPTH_MAX: usize = 32;
    /// Most properties declared in one object.
    pub const PROPERTIES_PER_OBJECT_MAX: usize = 1_000;
    /// Compiled size limit of one pattern, so a contract cannot make the validator huge.
    pub const REGEX_SIZE_BYTES_MAX: usize = 1024 * 1024;
    /// Deepest nesting of arrays and objects in one event's data (equal to serde_json's own
    /// recursion limit, which usually fires first).
    pub const EVENT_DEPTH_MAX: usize = 128;
    /// Most violations reported for one event (the last one then says more were dropped).
    pub const VIOLATIONS_PER_EVENT_MAX: usize = 100;
    /// Most partitions `weft.partitions` may ask for.
    pub const STREAM_PARTITIONS_MAX: u32 = 1_024;
}
