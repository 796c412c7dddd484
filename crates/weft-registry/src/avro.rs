//! Avro: a small schema parser (names, namespaces, references, default checks), the dedup
//! form, and the compatibility check by Avro's reader/writer schema-resolution rules.
//!
//! Hand-written instead of `apache-avro` because the registry needs only the schema model,
//! not datum encoding, and its compatibility messages name the offending field, which the
//! library's resolution errors do not. Logical types are carried by their underlying type;
//! resolution ignores them, as the Avro specification does.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::compatibility::Direction;
use crate::json_schema::{COMPATIBILITY_STEPS_MAX, SCHEMA_DEPTH_MAX};

/// A parsed Avro schema: named types live in an arena so recursive types are plain indexes.
#[derive(Clone, Debug)]
pub struct AvroSchema {
    named: Vec<NamedType>,
    root: AvroType,
}

#[derive(Clone, Debug, PartialEq)]
enum AvroType {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(Box<AvroType>),
    Map(Box<AvroType>),
    Union(Vec<AvroType>),
    Named(usize),
}

#[derive(Clone, Debug)]
struct NamedType {
    full_name: String,
    aliases: Vec<String>,
    kind: NamedKind,
}

#[derive(Clone, Debug)]
enum NamedKind {
    Record { fields: Vec<Field> },
    Enum { symbols: Vec<String>, default: Option<String> },
    Fixed { size: u64 },
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    aliases: Vec<String>,
    schema: AvroType,
    default: Option<Value>,
}

/// Parses `text`, with the schemas it references (already registered texts) parsed first so
/// that their named types can be used by name.
pub fn parse(text: &str, references: &[String]) -> Result<(AvroSchema, Value), String> {
    let mut parser = Parser::default();
    for reference in references {
        let value: Value = serde_json::from_str(reference).map_err(|error| format!("referenced schema is not valid JSON: {error}"))?;
        parser.parse_type(&value, "", 0)?;
    }
    let value: Value = serde_json::from_str(text).map_err(|error| format!("not valid JSON: {error}"))?;
    let root = parser.parse_type(&value, "", 0)?;
    Ok((AvroSchema { named: parser.named, root }, value))
}

/// The dedup form: compact JSON with object keys sorted (field order is kept: it is an array).
pub fn canonical(value: &Value) -> String {
    crate::json_schema::canonical(value)
}

#[derive(Default)]
struct Parser {
    named: Vec<NamedType>,
    by_name: HashMap<String, usize>,
}

fn primitive(name: &str) -> Option<AvroType> {
    Some(match name {
        "null" => AvroType::Null,
        "boolean" => AvroType::Boolean,
        "int" => AvroType::Int,
        "long" => AvroType::Long,
        "float" => AvroType::Float,
        "double" => AvroType::Double,
        "bytes" => AvroType::Bytes,
        "string" => AvroType::String,
        _ => return None,
    })
}

fn valid_simple_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_full_name(name: &str) -> bool {
    name.split('.').all(valid_simple_name)
}

/// Splits a declared name into (namespace, full name) given the enclosing namespace.
fn qualify(name: &str, explicit_namespace: Option<&str>, enclosing: &str) -> (String, String) {
    if let Some((namespace, _)) = name.rsplit_once('.') {
        return (namespace.to_string(), name.to_string());
    }
    let namespace = explicit_namespace.unwrap_or(enclosing);
    let full = if namespace.is_empty() { name.to_string() } else { format!("{namespace}.{name}") };
    (namespace.to_string(), full)
}

impl Parser {
    fn lookup(&self, name: &str, namespace: &str) -> Option<usize> {
        if !name.contains('.')
            && !namespace.is_empty()
            && let Some(&idx) = self.by_name.get(&format!("{namespace}.{name}"))
        {
            return Some(idx);
        }
        self.by_name.get(name).copied()
    }

    fn parse_type(&mut self, value: &Value, namespace: &str, depth: usize) -> Result<AvroType, String> {
        if depth > SCHEMA_DEPTH_MAX {
            return Err(format!("schema nests deeper than {SCHEMA_DEPTH_MAX} levels"));
        }
        match value {
            Value::String(name) => primitive(name)
                .or_else(|| self.lookup(name, namespace).map(AvroType::Named))
                .ok_or_else(|| format!("unknown type {name:?}")),
            Value::Array(branches) => self.parse_union(branches, namespace, depth),
            Value::Object(object) => {
                let type_value = object.get("type").ok_or("a schema object needs a \"type\"")?;
                let Value::String(type_name) = type_value else { return self.parse_type(type_value, namespace, depth + 1) };
                match type_name.as_str() {
                    "record" | "error" => self.parse_record(object, namespace, depth),
                    "enum" => self.parse_enum(object, namespace),
                    "fixed" => self.parse_fixed(object, namespace),
                    "array" => {
                        let items = object.get("items").ok_or("an array needs \"items\"")?;
                        Ok(AvroType::Array(Box::new(self.parse_type(items, namespace, depth + 1)?)))
                    }
                    "map" => {
                        let values = object.get("values").ok_or("a map needs \"values\"")?;
                        Ok(AvroType::Map(Box::new(self.parse_type(values, namespace, depth + 1)?)))
                    }
                    other => self.parse_type(&Value::String(other.to_string()), namespace, depth + 1),
                }
            }
            other => Err(format!("{other} is not an Avro schema")),
        }
    }

    fn parse_union(&mut self, branches: &[Value], namespace: &str, depth: usize) -> Result<AvroType, String> {
        let mut parsed = Vec::with_capacity(branches.len());
        let mut seen = HashSet::new();
        for branch in branches {
            let branch = self.parse_type(branch, namespace, depth + 1)?;
            let key = match &branch {
                AvroType::Union(_) => return Err("a union may not directly contain another union".to_string()),
                AvroType::Named(idx) => self.named[*idx].full_name.clone(),
                other => describe_kind(other).to_string(),
            };
            if !seen.insert(key.clone()) {
                return Err(format!("a union may not contain {key} twice"));
            }
            parsed.push(branch);
        }
        Ok(AvroType::Union(parsed))
    }

    /// Registers a named type's name and returns (its index, its namespace).
    fn declare(&mut self, object: &serde_json::Map<String, Value>, enclosing: &str, kind: NamedKind) -> Result<(usize, String), String> {
        let name = object.get("name").and_then(Value::as_str).ok_or("a named type needs a string \"name\"")?;
        let explicit_namespace = match object.get("namespace") {
            None | Some(Value::Null) => None,
            Some(Value::String(namespace)) => Some(namespace.as_str()),
            Some(_) => return Err("\"namespace\" must be a string".to_string()),
        };
        let (namespace, full_name) = qualify(name, explicit_namespace, enclosing);
        if !valid_full_name(&full_name) {
            return Err(format!("invalid name {full_name:?}"));
        }
        if primitive(&full_name).is_some() {
            return Err(format!("{full_name:?} is a primitive type and cannot be redefined"));
        }
        if self.by_name.contains_key(&full_name) {
            return Err(format!("type {full_name:?} is defined twice"));
        }
        let mut aliases = Vec::new();
        if let Some(alias_values) = object.get("aliases") {
            for alias in alias_values.as_array().ok_or("\"aliases\" must be an array of strings")? {
                let alias = alias.as_str().ok_or("\"aliases\" must be an array of strings")?;
                aliases.push(qualify(alias, None, &namespace).1);
            }
        }
        let idx = self.named.len();
        self.named.push(NamedType { full_name: full_name.clone(), aliases, kind });
        self.by_name.insert(full_name, idx);
        Ok((idx, namespace))
    }

    fn parse_record(&mut self, object: &serde_json::Map<String, Value>, enclosing: &str, depth: usize) -> Result<AvroType, String> {
        let field_values = object.get("fields").and_then(Value::as_array).ok_or("a record needs a \"fields\" array")?;
        let (idx, namespace) = self.declare(object, enclosing, NamedKind::Record { fields: Vec::new() })?;
        let mut fields: Vec<Field> = Vec::with_capacity(field_values.len());
        for field_value in field_values {
            let field_object = field_value.as_object().ok_or("each field must be an object")?;
            let name = field_object.get("name").and_then(Value::as_str).ok_or("each field needs a string \"name\"")?;
            if !valid_simple_name(name) {
                return Err(format!("invalid field name {name:?}"));
            }
            if fields.iter().any(|field| field.name == name) {
                return Err(format!("field {name:?} is declared twice in {}", self.named[idx].full_name));
            }
            let type_value = field_object.get("type").ok_or_else(|| format!("field {name:?} needs a \"type\""))?;
            let schema = self.parse_type(type_value, &namespace, depth + 1)?;
            let default = field_object.get("default").cloned();
            if let Some(default) = &default
                && !self.default_fits(&schema, default, 0)
            {
                return Err(format!("invalid default for field {name:?}: {default} does not match its type {}", self.describe(&schema)));
            }
            let aliases = match field_object.get("aliases") {
                None => Vec::new(),
                Some(values) => values
                    .as_array()
                    .and_then(|values| values.iter().map(|value| value.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                    .ok_or("field \"aliases\" must be an array of strings")?,
            };
            fields.push(Field { name: name.to_string(), aliases, schema, default });
        }
        self.named[idx].kind = NamedKind::Record { fields };
        Ok(AvroType::Named(idx))
    }

    fn parse_enum(&mut self, object: &serde_json::Map<String, Value>, enclosing: &str) -> Result<AvroType, String> {
        let symbol_values = object.get("symbols").and_then(Value::as_array).ok_or("an enum needs a \"symbols\" array")?;
        let mut symbols: Vec<String> = Vec::with_capacity(symbol_values.len());
        for symbol in symbol_values {
            let symbol =
                symbol.as_str().filter(|symbol| valid_simple_name(symbol)).ok_or_else(|| format!("invalid enum symbol {symbol}"))?;
            if symbols.iter().any(|known| known == symbol) {
                return Err(format!("enum symbol {symbol:?} appears twice"));
            }
            symbols.push(symbol.to_string());
        }
        let default = match object.get("default") {
            None => None,
            Some(Value::String(symbol)) if symbols.contains(symbol) => Some(symbol.clone()),
            Some(other) => return Err(format!("enum default {other} is not one of its symbols")),
        };
        let (idx, _) = self.declare(object, enclosing, NamedKind::Enum { symbols, default })?;
        Ok(AvroType::Named(idx))
    }

    fn parse_fixed(&mut self, object: &serde_json::Map<String, Value>, enclosing: &str) -> Result<AvroType, String> {
        let size = object.get("size").and_then(Value::as_u64).ok_or("a fixed needs a non-negative integer \"size\"")?;
        let (idx, _) = self.declare(object, enclosing, NamedKind::Fixed { size })?;
        Ok(AvroType::Named(idx))
    }

    /// Whether `value` is a valid default for `schema`. Unions accept a default matching any
    /// branch, as the Java library does (the specification says the first).
    fn default_fits(&self, schema: &AvroType, value: &Value, depth: usize) -> bool {
        if depth > SCHEMA_DEPTH_MAX {
            return false;
        }
        match schema {
            AvroType::Null => value.is_null(),
            AvroType::Boolean => value.is_boolean(),
            AvroType::Int => value.as_i64().is_some_and(|number| i32::try_from(number).is_ok()),
            AvroType::Long => value.is_i64(),
            AvroType::Float | AvroType::Double => value.is_number(),
            AvroType::Bytes | AvroType::String => value.is_string(),
            AvroType::Array(items) => {
                value.as_array().is_some_and(|values| values.iter().all(|item| self.default_fits(items, item, depth + 1)))
            }
            AvroType::Map(values) => {
                value.as_object().is_some_and(|members| members.values().all(|member| self.default_fits(values, member, depth + 1)))
            }
            AvroType::Union(branches) => branches.iter().any(|branch| self.default_fits(branch, value, depth + 1)),
            AvroType::Named(idx) => match &self.named[*idx].kind {
                NamedKind::Fixed { .. } => value.is_string(),
                NamedKind::Enum { symbols, .. } => value.as_str().is_some_and(|symbol| symbols.iter().any(|known| known == symbol)),
                NamedKind::Record { fields } => value.as_object().is_some_and(|members| {
                    fields.iter().all(|field| match members.get(&field.name) {
                        Some(member) => self.default_fits(&field.schema, member, depth + 1),
                        None => field.default.is_some(),
                    })
                }),
            },
        }
    }

    fn describe(&self, schema: &AvroType) -> String {
        describe(&self.named, schema)
    }
}

fn describe_kind(schema: &AvroType) -> &'static str {
    match schema {
        AvroType::Null => "null",
        AvroType::Boolean => "boolean",
        AvroType::Int => "int",
        AvroType::Long => "long",
        AvroType::Float => "float",
        AvroType::Double => "double",
        AvroType::Bytes => "bytes",
        AvroType::String => "string",
        AvroType::Array(_) => "array",
        AvroType::Map(_) => "map",
        AvroType::Union(_) => "union",
        AvroType::Named(_) => "named",
    }
}

fn describe(named: &[NamedType], schema: &AvroType) -> String {
    match schema {
        AvroType::Array(items) => format!("array<{}>", describe(named, items)),
        AvroType::Map(values) => format!("map<{}>", describe(named, values)),
        AvroType::Union(branches) => branches.iter().map(|branch| describe(named, branch)).collect::<Vec<_>>().join("|"),
        AvroType::Named(idx) => named[*idx].full_name.clone(),
        other => describe_kind(other).to_string(),
    }
}

fn unqualified(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(_, simple)| simple)
}

/// Writer type → reader types it may be read as (Avro's promotions).
fn promotes(writer: &AvroType, reader: &AvroType) -> bool {
    matches!(
        (writer, reader),
        (AvroType::Int, AvroType::Long | AvroType::Float | AvroType::Double)
            | (AvroType::Long, AvroType::Float | AvroType::Double)
            | (AvroType::Float, AvroType::Double)
            | (AvroType::String, AvroType::Bytes)
            | (AvroType::Bytes, AvroType::String)
    )
}

/// Every way in which a reader using `reader` fails to read data written with `writer`.
/// Named types referred to from several fields nest into a tree of comparisons that grows
/// exponentially with the depth, so the walk compares at most `COMPATIBILITY_STEPS_MAX` type pairs
/// (the JSON Schema checker's bound) and answers "incompatible" past it.
pub fn check_read(reader: &AvroSchema, writer: &AvroSchema, direction: Direction) -> Vec<String> {
    let mut checker =
        Checker { reader, writer, direction, visiting: HashSet::new(), messages: Vec::new(), steps_left: COMPATIBILITY_STEPS_MAX };
    checker.check(&reader.root, &writer.root, "");
    if checker.steps_left == 0 {
        checker.report("", format!("the schemas are too complex to compare within {COMPATIBILITY_STEPS_MAX} steps"));
    }
    checker.messages
}

struct Checker<'s> {
    reader: &'s AvroSchema,
    writer: &'s AvroSchema,
    direction: Direction,
    visiting: HashSet<(usize, usize)>,
    messages: Vec<String>,
    /// Type pairs this check may still compare.
    steps_left: usize,
}

impl Checker<'_> {
    fn report(&mut self, path: &str, what: String) {
        let path = if path.is_empty() { "(root)" } else { path };
        self.messages.push(format!("{path}: {what}; {}", self.direction.consequence()));
    }

    fn report_change(&mut self, path: &str, keyword: &str, reader: String, writer: String) {
        let (old, new) = if self.direction.reader_is_new() { (writer, reader) } else { (reader, writer) };
        self.report(path, format!("{keyword} changed {old} -> {new}"));
    }

    fn describe_reader(&self, schema: &AvroType) -> String {
        describe(&self.reader.named, schema)
    }

    fn describe_writer(&self, schema: &AvroType) -> String {
        describe(&self.writer.named, schema)
    }

    /// Whether a reader branch is the one Avro picks for a writer type: same kind and name.
    fn same_kind(&self, reader: &AvroType, writer: &AvroType) -> bool {
        match (reader, writer) {
            (AvroType::Array(_), AvroType::Array(_)) | (AvroType::Map(_), AvroType::Map(_)) => true,
            (AvroType::Named(r), AvroType::Named(w)) => self.names_match(*r, *w),
            (AvroType::Union(_), _) | (_, AvroType::Union(_)) => false,
            (reader, writer) => reader == writer,
        }
    }

    fn names_match(&self, reader_idx: usize, writer_idx: usize) -> bool {
        let reader = &self.reader.named[reader_idx];
        let writer = &self.writer.named[writer_idx];
        let same_kind = matches!(
            (&reader.kind, &writer.kind),
            (NamedKind::Record { .. }, NamedKind::Record { .. })
                | (NamedKind::Enum { .. }, NamedKind::Enum { .. })
                | (NamedKind::Fixed { .. }, NamedKind::Fixed { .. })
        );
        same_kind
            && (reader.full_name == writer.full_name
                || unqualified(&reader.full_name) == unqualified(&writer.full_name)
                || reader.aliases.contains(&writer.full_name))
    }

    fn check(&mut self, reader: &AvroType, writer: &AvroType, path: &str) {
        let Some(steps_left) = self.steps_left.checked_sub(1) else { return };
        self.steps_left = steps_left;
        if let AvroType::Union(writer_branches) = writer {
            match reader {
                AvroType::Union(_) => {
                    for branch in writer_branches {
                        self.check(reader, branch, path);
                    }
                }
                _ => {
                    let unreadable: Vec<&AvroType> =
                        writer_branches.iter().filter(|branch| !self.same_kind(reader, branch) && !promotes(branch, reader)).collect();
                    if unreadable.is_empty() {
                        for branch in writer_branches {
                            self.check(reader, branch, path);
                        }
                    } else {
                        self.report_change(path, "type", self.describe_reader(reader), self.describe_writer(writer));
                    }
                }
            }
            return;
        }
        if let AvroType::Union(reader_branches) = reader {
            let chosen = reader_branches
                .iter()
                .find(|branch| self.same_kind(branch, writer))
                .or_else(|| reader_branches.iter().find(|branch| promotes(writer, branch)));
            match chosen {
                Some(branch) => self.check(branch, writer, path),
                None => self.report_change(path, "type", self.describe_reader(reader), self.describe_writer(writer)),
            }
            return;
        }
        match (reader, writer) {
            (AvroType::Array(reader_items), AvroType::Array(writer_items)) => self.check(reader_items, writer_items, &format!("{path}[]")),
            (AvroType::Map(reader_values), AvroType::Map(writer_values)) => {
                self.check(reader_values, writer_values, &format!("{path}{{}}"))
            }
            (AvroType::Named(reader_idx), AvroType::Named(writer_idx)) if self.names_match(*reader_idx, *writer_idx) => {
                if self.visiting.insert((*reader_idx, *writer_idx)) {
                    self.check_named(*reader_idx, *writer_idx, path);
                    self.visiting.remove(&(*reader_idx, *writer_idx));
                }
            }
            // Named types reaching here did not match by name; `same_kind` compares them by name, never by arena index.
            (reader, writer) if self.same_kind(reader, writer) || promotes(writer, reader) => {}
            (reader, writer) => self.report_change(path, "type", self.describe_reader(reader), self.describe_writer(writer)),
        }
    }

    fn check_named(&mut self, reader_idx: usize, writer_idx: usize, path: &str) {
        let (reader_schema, writer_schema) = (self.reader, self.writer);
        let reader = &reader_schema.named[reader_idx];
        let writer = &writer_schema.named[writer_idx];
        match (&reader.kind, &writer.kind) {
            (NamedKind::Record { fields: reader_fields }, NamedKind::Record { fields: writer_fields }) => {
                for reader_field in reader_fields {
                    let field_path = if path.is_empty() { reader_field.name.clone() } else { format!("{path}.{}", reader_field.name) };
                    let writer_field = writer_fields
                        .iter()
                        .find(|field| field.name == reader_field.name)
                        .or_else(|| writer_fields.iter().find(|field| reader_field.aliases.contains(&field.name)));
                    match writer_field {
                        Some(writer_field) => self.check(&reader_field.schema, &writer_field.schema, &field_path),
                        None if reader_field.default.is_some() => {}
                        None => {
                            let what = if self.direction.reader_is_new() {
                                "field added without a default"
                            } else {
                                "field removed, and the old schema gives it no default"
                            };
                            self.report(&field_path, what.to_string());
                        }
                    }
                }
            }
            (NamedKind::Enum { symbols: reader_symbols, default }, NamedKind::Enum { symbols: writer_symbols, .. }) => {
                let missing: Vec<&String> = writer_symbols.iter().filter(|symbol| !reader_symbols.contains(symbol)).collect();
                if !missing.is_empty() && default.is_none() {
                    let list = |symbols: &[String]| format!("[{}]", symbols.join(","));
                    self.report_change(path, "enum symbols", list(reader_symbols), list(writer_symbols));
                }
            }
            (NamedKind::Fixed { size: reader_size }, NamedKind::Fixed { size: writer_size }) if reader_size != writer_size => {
                self.report_change(path, "fixed size", reader_size.to_string(), writer_size.to_string());
            }
            _ => {}
        }
    }
}
