//! Compatibility between a new schema and earlier versions: which direction each level
//! checks, and the dispatch to the JSON Schema and Avro rules.

use serde_json::Value;

use crate::avro::{self, AvroSchema};
use crate::json_schema;
use crate::model::{CompatibilityMode, SchemaType};

/// Which schema reads: the new one (backward) or the old one (forward).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Readers use the new schema; data was written with the old one.
    Backward,
    /// Readers use the old schema; data is written with the new one.
    Forward,
}

impl Direction {
    pub fn reader_is_new(self) -> bool {
        self == Direction::Backward
    }

    /// The sentence every incompatibility message ends with.
    pub fn consequence(self) -> &'static str {
        match self {
            Direction::Backward => "readers using the new schema cannot read old data",
            Direction::Forward => "readers using the old schema cannot read new data",
        }
    }
}

/// A schema parsed for checking.
#[derive(Clone, Debug)]
pub enum ParsedSchema {
    Json(Value),
    Avro(AvroSchema),
}

impl ParsedSchema {
    pub fn schema_type(&self) -> SchemaType {
        match self {
            ParsedSchema::Json(_) => SchemaType::Json,
            ParsedSchema::Avro(_) => SchemaType::Avro,
        }
    }
}

/// Messages explaining why `new` may not follow `old` under `level` (empty: compatible).
pub fn check_pair(new: &ParsedSchema, old: &ParsedSchema, level: CompatibilityMode) -> Vec<String> {
    let mut messages = Vec::new();
    if level.checks_backward() {
        messages.extend(read(new, old, Direction::Backward));
    }
    if level.checks_forward() {
        messages.extend(read(old, new, Direction::Forward));
    }
    messages
}

fn read(reader: &ParsedSchema, writer: &ParsedSchema, direction: Direction) -> Vec<String> {
    match (reader, writer) {
        (ParsedSchema::Json(reader), ParsedSchema::Json(writer)) => json_schema::check_read(reader, writer, direction),
        (ParsedSchema::Avro(reader), ParsedSchema::Avro(writer)) => avro::check_read(reader, writer, direction),
        _ => {
            let (old, new) = if direction.reader_is_new() { (writer, reader) } else { (reader, writer) };
            vec![format!(
                "(root): schema type changed {} -> {}; {}",
                old.schema_type().as_str(),
                new.schema_type().as_str(),
                direction.consequence()
            )]
        }
    }
}
