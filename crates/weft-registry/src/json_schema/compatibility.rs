//! Weft's compatibility rule for JSON Schema: does a reader schema accept every value a writer
//! schema accepts?
//!
//! In one sentence: a reader schema is compatible with a writer schema when every
//! value the writer schema accepts, **with object schemas taken as closed** (data carries only
//! the properties the writer declares), is accepted by the reader schema, where readers
//! ignore properties they do not declare unless they say `additionalProperties: false`.
//! See the crate documentation for the consequences and the list of keywords compared.
//!
//! Owns the comparison and its messages. It does not parse or shape-check schemas (the parent
//! module does that at registration) and does not choose which versions to compare.
//!
//! Bounded work: a schema can refer to itself through several branches
//! (`{"anyOf":[{"$ref":"#"},{"$ref":"#"}]}`), and comparing two such schemas node pair by node
//! pair grows exponentially with the depth even though each path terminates. The walk therefore
//! has a budget of [`COMPATIBILITY_STEPS_MAX`] node pairs per direction; a comparison that needs
//! more is answered "incompatible" with a message saying so (never "compatible": a check that did
//! not finish proves nothing), so a registration holds the registry's write lock for a bounded
//! time. `allOf` merging follows at most [`SCHEMA_DEPTH_MAX`] nested `allOf`s.

use std::cell::Cell;
use std::collections::{BTreeSet, HashSet};
use std::rc::Rc;

use serde_json::{Map, Value};

use super::SCHEMA_DEPTH_MAX;
use crate::compatibility::Direction;

/// Most `$ref` hops followed to resolve one reference chain.
const REF_HOPS_MAX: usize = 32;
/// Most (reader node, writer node) pairs compared in one direction of one check.
pub const COMPATIBILITY_STEPS_MAX: usize = 100_000;

/// Keywords that restrict values but that Weft does not reason about: a reader that has one
/// must have it exactly as the writer has it.
const OPAQUE_KEYWORDS: [&str; 15] = [
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
    "dependentRequired",
    "dependencies",
    "patternProperties",
    "propertyNames",
    "contains",
    "minContains",
    "maxContains",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
];

/// Every way in which `reader` rejects a value that `writer` accepts, as messages.
pub fn check_read(reader: &Value, writer: &Value, direction: Direction) -> Vec<String> {
    let steps_left = Rc::new(Cell::new(COMPATIBILITY_STEPS_MAX));
    let mut checker = Checker {
        reader_root: reader,
        writer_root: writer,
        direction,
        visiting: HashSet::new(),
        messages: Vec::new(),
        steps_left: Rc::clone(&steps_left),
    };
    checker.check(reader, writer, "", 0);
    if steps_left.get() == 0 {
        // Branches skipped for lack of budget looked compatible; the verdict must not be.
        checker.report("", format!("the schemas are too complex to compare within {COMPATIBILITY_STEPS_MAX} steps"));
    }
    checker.messages
}

struct Checker<'a> {
    reader_root: &'a Value,
    writer_root: &'a Value,
    direction: Direction,
    /// (reader node, writer node) pairs on the current path, so recursive `$ref`s terminate.
    visiting: HashSet<(usize, usize)>,
    messages: Vec<String>,
    /// Node pairs this check may still compare, shared with every sub-checker.
    steps_left: Rc<Cell<usize>>,
}

static ACCEPT_ALL: Value = Value::Bool(true);

fn resolve<'a>(mut schema: &'a Value, root: &'a Value) -> &'a Value {
    for _ in 0..REF_HOPS_MAX {
        let Some(fragment) = schema.get("$ref").and_then(Value::as_str).and_then(|reference| reference.strip_prefix('#')) else {
            return schema;
        };
        match root.pointer(fragment) {
            Some(target) => schema = target,
            None => return schema,
        }
    }
    schema
}

fn child_path(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_string() } else { format!("{path}.{name}") }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "(root)" } else { path }
}

/// The set of JSON types a schema admits; `None` when it does not say.
fn declared_types(schema: &Map<String, Value>) -> Option<BTreeSet<String>> {
    match schema.get("type")? {
        Value::String(name) => Some(BTreeSet::from([name.clone()])),
        Value::Array(names) => Some(names.iter().filter_map(Value::as_str).map(str::to_string).collect()),
        _ => None,
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn covers(types: &BTreeSet<String>, type_name: &str) -> bool {
    types.contains(type_name) || (type_name == "integer" && types.contains("number"))
}

fn describe_types(types: Option<&BTreeSet<String>>) -> String {
    match types {
        None => "any".to_string(),
        Some(types) => types.iter().cloned().collect::<Vec<_>>().join("|"),
    }
}

fn describe(value: Option<&Value>) -> String {
    match value {
        None => "none".to_string(),
        Some(value) => value.to_string(),
    }
}

/// Enumerated values (`enum`, or `const` as a one-value enum).
fn enumerated(schema: &Map<String, Value>) -> Option<Vec<Value>> {
    if let Some(Value::Array(values)) = schema.get("enum") {
        return Some(values.clone());
    }
    schema.get("const").map(|value| vec![value.clone()])
}

/// A numeric bound: value and whether it is exclusive. Handles draft 4's boolean exclusives.
fn bound(schema: &Map<String, Value>, inclusive: &str, exclusive: &str) -> Option<(f64, bool)> {
    let inclusive_value = schema.get(inclusive).and_then(Value::as_f64);
    match schema.get(exclusive) {
        Some(Value::Bool(true)) => inclusive_value.map(|value| (value, true)),
        Some(value) if value.is_number() => {
            let exclusive_value = value.as_f64()?;
            match inclusive_value {
                // Both given: the tighter one decides; ties go to the exclusive bound.
                Some(inclusive_value) if (inclusive == "minimum") == (inclusive_value > exclusive_value) => Some((inclusive_value, false)),
                _ => Some((exclusive_value, true)),
            }
        }
        _ => inclusive_value.map(|value| (value, false)),
    }
}

fn describe_bound(value: Option<(f64, bool)>) -> String {
    match value {
        None => "none".to_string(),
        Some((value, true)) => format!("{value} (exclusive)"),
        Some((value, false)) => format!("{value}"),
    }
}

/// Shallow merge of `allOf` branches, close enough for compatibility: properties and
/// required lists are unioned, other keywords keep the first value seen.
/// Each merged schema costs one of `steps_left`, and nesting stops at `SCHEMA_DEPTH_MAX`: a
/// self-referring `allOf` (`{"allOf":[{"$ref":"#"},{"$ref":"#"}]}`) would otherwise merge forever.
fn merge_all_of(schema: &Map<String, Value>, root: &Value, depth: usize, steps_left: &Cell<usize>) -> Map<String, Value> {
    let mut merged = schema.clone();
    merged.remove("allOf");
    let Some(Value::Array(branches)) = schema.get("allOf") else { return merged };
    for branch in branches {
        let Some(left) = steps_left.get().checked_sub(1).filter(|_| depth < SCHEMA_DEPTH_MAX) else { return merged };
        steps_left.set(left);
        let Value::Object(branch) = resolve(branch, root) else { continue };
        let branch = merge_all_of(branch, root, depth + 1, steps_left);
        for (key, value) in branch {
            match (key.as_str(), merged.get_mut(&key), value) {
                ("properties", Some(Value::Object(into)), Value::Object(from)) => {
                    for (name, property) in from {
                        into.entry(name).or_insert(property);
                    }
                }
                ("required", Some(Value::Array(into)), Value::Array(from)) => {
                    for name in from {
                        if !into.contains(&name) {
                            into.push(name);
                        }
                    }
                }
                (_, Some(_), _) => {}
                (_, None, value) => {
                    merged.insert(key, value);
                }
            }
        }
    }
    merged
}

impl Checker<'_> {
    fn report(&mut self, path: &str, what: String) {
        self.messages.push(format!("{}: {what}; {}", display_path(path), self.direction.consequence()));
    }

    /// Reports `keyword changed OLD -> NEW` given the reader's and the writer's descriptions.
    fn report_change(&mut self, path: &str, keyword: &str, reader: String, writer: String) {
        let (old, new) = if self.direction.reader_is_new() { (writer, reader) } else { (reader, writer) };
        self.report(path, format!("{keyword} changed {old} -> {new}"));
    }

    fn check(&mut self, reader: &Value, writer: &Value, path: &str, depth: usize) {
        let Some(steps_left) = self.steps_left.get().checked_sub(1) else { return };
        self.steps_left.set(steps_left);
        if depth > SCHEMA_DEPTH_MAX {
            self.report(path, format!("schema nests deeper than {SCHEMA_DEPTH_MAX} levels"));
            return;
        }
        let reader = resolve(reader, self.reader_root);
        let writer = resolve(writer, self.writer_root);
        let key = (reader as *const Value as usize, writer as *const Value as usize);
        if !self.visiting.insert(key) {
            return;
        }
        self.check_resolved(reader, writer, path, depth);
        self.visiting.remove(&key);
    }

    fn check_resolved(&mut self, reader_node: &Value, writer: &Value, path: &str, depth: usize) {
        let reader = match reader_node {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                if writer != &Value::Bool(false) {
                    self.report_change(path, "schema", "false".into(), "a schema accepting values".into());
                }
                return;
            }
            Value::Object(reader) => reader,
            _ => return,
        };
        let writer_owned;
        let writer = match writer {
            Value::Bool(false) => return,
            Value::Bool(true) => &Map::new(),
            Value::Object(writer) if writer.contains_key("allOf") => {
                writer_owned = merge_all_of(writer, self.writer_root, 0, &self.steps_left);
                &writer_owned
            }
            Value::Object(writer) => writer,
            _ => return,
        };
        // References that did not resolve locally are compared by name.
        let reader_ref = reader.get("$ref").and_then(Value::as_str);
        let writer_ref = writer.get("$ref").and_then(Value::as_str);
        if reader_ref.is_some() || writer_ref.is_some() {
            if reader_ref != writer_ref {
                self.report_change(path, "$ref", describe(reader.get("$ref")), describe(writer.get("$ref")));
            }
            return;
        }
        // A writer union: every branch must be readable.
        for union in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = writer.get(union) {
                for branch in branches {
                    self.check(reader_node, branch, path, depth + 1);
                }
                return;
            }
        }
        for union in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = reader.get(union) {
                self.check_reader_union(branches, writer, path, depth);
            }
        }
        if let Some(Value::Array(branches)) = reader.get("allOf") {
            let writer_value = Value::Object(writer.clone());
            for branch in branches {
                let mut sub = self.sub_checker();
                sub.check(branch, &writer_value, path, depth + 1);
                self.messages.extend(sub.messages);
            }
        }
        for keyword in OPAQUE_KEYWORDS {
            if let Some(reader_value) = reader.get(keyword)
                && writer.get(keyword) != Some(reader_value)
            {
                self.report_change(path, keyword, reader_value.to_string(), describe(writer.get(keyword)));
            }
        }
        self.check_keywords(reader, writer, path, depth);
    }

    /// A checker for one branch of a union or `allOf`, with its own messages.
    fn sub_checker(&self) -> Self {
        Checker {
            reader_root: self.reader_root,
            writer_root: self.writer_root,
            direction: self.direction,
            visiting: self.visiting.clone(),
            messages: Vec::new(),
            steps_left: Rc::clone(&self.steps_left),
        }
    }

    fn check_reader_union(&mut self, branches: &[Value], writer: &Map<String, Value>, path: &str, depth: usize) {
        let writer_value = Value::Object(writer.clone());
        let mut best: Option<Vec<String>> = None;
        for branch in branches {
            let mut sub = self.sub_checker();
            sub.check(branch, &writer_value, path, depth + 1);
            if sub.messages.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|best| sub.messages.len() < best.len()) {
                best = Some(sub.messages);
            }
        }
        let side = if self.direction.reader_is_new() { "new" } else { "old" };
        self.report(path, format!("no branch of the {side} schema's anyOf/oneOf accepts the value"));
        self.messages.extend(best.unwrap_or_default());
    }

    fn check_keywords(&mut self, reader: &Map<String, Value>, writer: &Map<String, Value>, path: &str, depth: usize) {
        let reader_types = declared_types(reader);
        let writer_enum = enumerated(writer);
        let writer_types = declared_types(writer)
            .or_else(|| writer_enum.as_ref().map(|values| values.iter().map(|value| type_of(value).to_string()).collect()));
        if let Some(reader_types) = &reader_types {
            let lost = match &writer_types {
                None => true,
                Some(writer_types) => writer_types.iter().any(|type_name| !covers(reader_types, type_name)),
            };
            if lost {
                self.report_change(path, "type", describe_types(Some(reader_types)), describe_types(writer_types.as_ref()));
                return;
            }
        }
        let admits = |type_name: &str| {
            writer_types.as_ref().is_none_or(|types| types.iter().any(|t| t == type_name || (type_name == "number" && t == "integer")))
        };

        if let Some(reader_enum) = enumerated(reader) {
            let fits = writer_enum.as_ref().is_some_and(|writer_enum| writer_enum.iter().all(|value| reader_enum.contains(value)));
            if !fits {
                let keyword = if reader.contains_key("enum") { "enum" } else { "const" };
                let describe_enum = |values: Option<Vec<Value>>| match values {
                    None => "none".to_string(),
                    Some(values) => Value::Array(values).to_string(),
                };
                self.report_change(path, keyword, describe_enum(Some(reader_enum)), describe_enum(writer_enum.clone()));
            }
        }
        if admits("number") {
            self.check_numbers(reader, writer, path);
        }
        if admits("string") {
            self.check_lower(reader, writer, path, "minLength");
            self.check_upper(reader, writer, path, "maxLength");
            for keyword in ["pattern", "format"] {
                if let Some(reader_value) = reader.get(keyword)
                    && writer.get(keyword) != Some(reader_value)
                {
                    self.report_change(path, keyword, reader_value.to_string(), describe(writer.get(keyword)));
                }
            }
        }
        if admits("array") {
            self.check_arrays(reader, writer, path, depth);
        }
        if admits("object") {
            self.check_objects(reader, writer, path, depth);
        }
    }

    fn check_numbers(&mut self, reader: &Map<String, Value>, writer: &Map<String, Value>, path: &str) {
        let reader_min = bound(reader, "minimum", "exclusiveMinimum");
        let writer_min = bound(writer, "minimum", "exclusiveMinimum");
        let min_ok = match (reader_min, writer_min) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((r, r_excl)), Some((w, w_excl))) => r < w || (r == w && (!r_excl || w_excl)),
        };
        if !min_ok {
            self.report_change(path, "minimum", describe_bound(reader_min), describe_bound(writer_min));
        }
        let reader_max = bound(reader, "maximum", "exclusiveMaximum");
        let writer_max = bound(writer, "maximum", "exclusiveMaximum");
        let max_ok = match (reader_max, writer_max) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((r, r_excl)), Some((w, w_excl))) => r > w || (r == w && (!r_excl || w_excl)),
        };
        if !max_ok {
            self.report_change(path, "maximum", describe_bound(reader_max), describe_bound(writer_max));
        }
        if let Some(reader_step) = reader.get("multipleOf").and_then(Value::as_f64) {
            let ok = writer.get("multipleOf").and_then(Value::as_f64).is_some_and(|writer_step| {
                let ratio = writer_step / reader_step;
                (ratio - ratio.round()).abs() < 1e-9 && ratio.round() >= 1.0
            });
            if !ok {
                self.report_change(path, "multipleOf", reader_step.to_string(), describe(writer.get("multipleOf")));
            }
        }
    }

    /// A lower bound (`minLength`, `minItems`, ...): the reader's must not exceed the writer's.
    fn check_lower(&mut self, reader: &Map<String, Value>, writer: &Map<String, Value>, path: &str, keyword: &str) {
        if let Some(reader_value) = reader.get(keyword).and_then(Value::as_f64) {
            let ok = writer.get(keyword).and_then(Value::as_f64).is_some_and(|writer_value| reader_value <= writer_value);
            if !ok {
                self.report_change(path, keyword, describe(reader.get(keyword)), describe(writer.get(keyword)));
            }
        }
    }

    /// An upper bound (`maxLength`, `maxItems`, ...): the reader's must not be below the writer's.
    fn check_upper(&mut self, reader: &Map<String, Value>, writer: &Map<String, Value>, path: &str, keyword: &str) {
        if let Some(reader_value) = reader.get(keyword).and_then(Value::as_f64) {
            let ok = writer.get(keyword).and_then(Value::as_f64).is_some_and(|writer_value| reader_value >= writer_value);
            if !ok {
                self.report_change(path, keyword, describe(reader.get(keyword)), describe(writer.get(keyword)));
            }
        }
    }

    fn check_arrays(&mut self, reader: &Map<String, Value>, writer: &Map<String, Value>, path: &str, depth: usize) {
        self.check_lower(reader, writer, path, "minItems");
        self.check_upper(reader, writer, path, "maxItems");
        if reader.get("uniqueItems") == Some(&Value::Bool(true)) && writer.get("uniqueItems") != Some(&Value::Bool(true)) {
            self.report_change(path, "uniqueItems", "true".into(), describe(writer.get("uniqueItems")));
        }
        let items_path = format!("{path}[]");
        let tuple = |schema: &Map<String, Value>| schema.contains_key("prefixItems") || schema.get("items").is_some_and(Value::is_array);
        if tuple(reader) || tuple(writer) {
            for keyword in ["prefixItems", "items"] {
                if let Some(reader_value) = reader.get(keyword)
                    && writer.get(keyword) != Some(reader_value)
                {
                    self.report_change(&items_path, keyword, reader_value.to_string(), describe(writer.get(keyword)));
                }
            }
            return;
        }
        if let Some(reader_items) = reader.get("items") {
            let writer_items = writer.get("items").unwrap_or(&ACCEPT_ALL);
            self.check(reader_items, writer_items, &items_path, depth + 1);
        }
    }

    fn check_objects(&mut self, reader: &Map<String, Value>, writer: &Map<String, Value>, path: &str, depth: usize) {
        self.check_lower(reader, writer, path, "minProperties");
        self.check_upper(reader, writer, path, "maxProperties");
        let empty = Map::new();
        let reader_properties = reader.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let writer_properties = writer.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let required = |schema: &Map<String, Value>| -> BTreeSet<String> {
            schema
                .get("required")
                .and_then(Value::as_array)
                .map(|names| names.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        let reader_required = required(reader);
        let writer_required = required(writer);

        for name in &reader_required {
            if writer_required.contains(name) {
                continue;
            }
            let declared = writer_properties.contains_key(name);
            let what = match (self.direction.reader_is_new(), declared) {
                (true, true) => "property became required",
                (true, false) => "property added as required",
                (false, true) => "required property became optional",
                (false, false) => "required property removed",
            };
            self.report(&child_path(path, name), what.to_string());
        }
        for (name, reader_property) in reader_properties {
            if let Some(writer_property) = writer_properties.get(name) {
                self.check(reader_property, writer_property, &child_path(path, name), depth + 1);
            }
        }
        let reader_additional = reader.get("additionalProperties");
        for (name, writer_property) in writer_properties {
            if reader_properties.contains_key(name) {
                continue;
            }
            match reader_additional {
                Some(Value::Bool(false)) => {
                    let what = if self.direction.reader_is_new() {
                        "property removed while additionalProperties is false"
                    } else {
                        "property added while additionalProperties is false in the old schema"
                    };
                    self.report(&child_path(path, name), what.to_string());
                }
                Some(additional @ Value::Object(_)) => {
                    self.check(additional, writer_property, &child_path(path, name), depth + 1);
                }
                _ => {}
            }
        }
        // Weft takes writers as closed, so only an explicit writer `additionalProperties`
        // (true or a schema) says that data may carry undeclared properties.
        if let (Some(reader_additional), Some(writer_additional)) = (reader_additional, writer.get("additionalProperties"))
            && writer_additional != &Value::Bool(false)
        {
            self.check(reader_additional, writer_additional, &child_path(path, "*"), depth + 1);
        }
    }
}
