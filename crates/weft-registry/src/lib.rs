//! Weft's schema registry: a Confluent Schema Registry–compatible store of JSON Schema and
//! Avro schemas (its REST API lives in `weft-http`, mounted at `/registry`, so
//! `confluent-kafka`'s `SchemaRegistryClient` works against `http://HOST:PORT/registry`
//! unchanged; this crate knows nothing of HTTP beyond Confluent's numeric error codes).
//!
//! It owns: global schema ids (deduplicated across subjects), subjects and their versions,
//! soft and hard deletes, compatibility levels and modes (global and per subject), the
//! compatibility rules, and Confluent's error codes. It does not know
//! streams, contracts or Kafka; `weft-kafka` resolves framed values (magic 0 + 4-byte
//! big-endian id) through [`Registry::schema_by_id`].
//!
//! # Compatibility rules
//!
//! A check reads in one or two directions. **Backward**: a reader using the new schema must
//! read data written with an old one. **Forward**: a reader using an old schema must read data
//! written with the new one. `FULL` checks both. Non-transitive levels compare with the
//! latest live version, `_TRANSITIVE` levels with every live version; `NONE` checks nothing.
//! Every incompatibility is one message naming the field, what changed (old -> new) and who
//! breaks, e.g. `amount: type changed number -> string; readers using the new schema cannot
//! read old data`.
//!
//! ## JSON Schema: writers are closed, readers ignore what they do not declare
//!
//! JSON Schema's content model is open: `{"properties": {"a": ...}}` also accepts any other
//! property with any value. Taken literally, adding any optional property is then never
//! backward compatible (old data may already hold that name with another type), which is
//! Confluent's default (STRICT) rule and a well-known surprise. Weft validates producers at
//! the edge, so it takes registered object schemas as **closed** for compatibility: data
//! written with a schema carries only the properties that schema declares. Readers ignore
//! properties they do not declare, unless they say `additionalProperties: false`.
//! The check asks: does the reader schema accept every value the writer schema accepts?
//! Consequences:
//!
//! | change (old -> new) | backward | forward |
//! |---|---|---|
//! | add an optional property | yes | yes |
//! | add a required property | no | yes |
//! | make an optional property required | no | yes |
//! | remove an optional property | yes | yes |
//! | remove a required property | yes | no |
//! | widen a type (`integer` -> `number`, add `null`, add a branch to `anyOf`/`oneOf`) | yes | no |
//! | narrow a type | no | yes |
//! | add enum values / remove them | yes / no | no / yes |
//! | relax bounds (`maximum`, `maxLength`, `maxItems` up or removed; minimums down or removed) | yes | no |
//! | tighten bounds, add `pattern`, `format`, `uniqueItems`, `multipleOf` | no | yes |
//!
//! Compared keywords: `type`, `enum`, `const`, `properties`, `required`,
//! `additionalProperties` (only when the writer states it, since writers are closed),
//! `items`, numeric and length bounds (draft 4 boolean exclusives too), `multipleOf`,
//! `pattern`, `format`, `uniqueItems`, `minProperties`/`maxProperties`, `anyOf`/`oneOf`
//! (as unions; `oneOf` exclusivity is not checked), `allOf` (reader branches each checked;
//! writer branches merged shallowly), and local `$ref`s (`#/...`, recursion-safe).
//! External `$ref`s are compared by name. Keywords Weft does not reason about (`not`,
//! `if`/`then`/`else`, `patternProperties`, `dependentSchemas`, `contains`,
//! `unevaluated*`, ...) must be unchanged when the reader has them. Annotations (`title`,
//! `description`, `default`, `examples`, `$id`, `$comment`, ...) never matter.
//!
//! ## Avro: the specification's schema resolution
//!
//! Reader fields missing from the writer need a default; writer fields missing from the
//! reader are skipped; fields match by name or reader alias. Promotions: int -> long, float,
//! double; long -> float, double; float -> double; string <-> bytes. Records, enums and
//! fixeds match by unqualified name or reader alias; enum symbols the writer may send must
//! exist in the reader unless the reader's enum has a default; fixed sizes must be equal.
//! A writer union is readable when every branch is; a reader union reads a writer type
//! through its first branch of the same kind (then the first it can promote to).
//! Logical types are ignored, as in the specification.
//!
//! # Identity and deduplication
//!
//! Two registrations get the same id when their type, references, and schema JSON are
//! equal after parsing (whitespace and object-key order do not matter; Avro field order
//! does). The stored text is the one first registered under that id.
//!
//! # Limits
//!
//! - [`SCHEMA_BYTES_MAX`]: 1 MiB of schema text (42209 beyond).
//! - [`SCHEMAS_MAX`] 10,000 ids, [`SUBJECTS_MAX`] 10,000 subjects,
//!   [`SUBJECT_VERSIONS_MAX`] 1,000 versions per subject (42205 beyond); every list the API
//!   returns is bounded by these.
//! - [`SUBJECT_BYTES_MAX`]: 255 bytes of subject name (42208 beyond).
//! - [`SCHEMA_REFERENCES_MAX`]: 100 references per schema, transitively.
//! - [`json_schema::SCHEMA_DEPTH_MAX`]: 64 levels of schema nesting.
//! - [`json_schema::COMPATIBILITY_STEPS_MAX`]: 100,000 node pairs compared per direction of one
//!   JSON Schema check; past it the verdict is "incompatible", so a recursive or exponential
//!   schema cannot hold the write lock for long.
//!
//! # Subjects fed by data contracts
//!
//! [`Registry::register_for_contract`] registers a contract's schema and marks the subject
//! contract-fed ([`Registry::is_contract_fed`], [`Registry::is_contract_version`]); the REST API
//! in `weft-http` then refuses changes to it by anyone but an admin with
//! [`RegistryError::SubjectContractFed`] (40301, Confluent's "user is denied operation").

mod avro;
mod compatibility;
mod error;
pub mod json_schema;
mod model;
mod registry;

pub use error::{RegistryError, http_status_for_code};
pub use model::{
    CompatibilityMode, CompatibilityTarget, CompatibilityVerdict, DeletedFilter, Mode, RegisteredSchema, SchemaReference, SchemaType,
    StoredSchema, SubjectVersion, VersionSelector,
};
pub use registry::{
    DEFAULT_COMPATIBILITY, Registry, SCHEMA_BYTES_MAX, SCHEMA_REFERENCES_MAX, SCHEMAS_MAX, SUBJECT_BYTES_MAX, SUBJECT_VERSIONS_MAX,
    SUBJECTS_MAX,
};

#[cfg(test)]
mod tests;
