//! Checking one event's data against a [`CompiledContract`].
//!
//! Owns [`Violation`], the stable violation codes in [`violation`], and the walk over a
//! [`Doc`] (a borrowed document: see [`crate::doc`] for why not `serde_json::Value`). The walk visits only declared properties (plus, for closed objects, the
//! keys of the event), so its cost is bounded by the contract, not by the event.
//! Every violation of an event is reported, up to [`VIOLATIONS_PER_EVENT_MAX`].
//!
//! Semantics follow `datacontract export jsonschema`: a `required` property must be present and
//! non-null; any other property may be absent or null; other checks apply to non-null values.
//!
//! Messages quote the offending value (cut to `MESSAGE_VALUE_CHARS_MAX` characters) to help the
//! producer, except the value of a property with a `classification`, anything inside one, and a
//! value that holds one: those read [`CLASSIFIED_VALUE`] instead. Violations are stored with dead
//! letters and shown to whoever may read them, who may not be allowed to see classified data.

use std::borrow::Cow;

use serde_json::Value;

use crate::compiled::{
    ArrayShape, CompiledContract, EventRule, MapShape, NumericShape, ObjectShape, Shape, StringShape, TemporalShape, ValueNode,
};
use crate::doc::{Doc, DocError, object_get};
pub use crate::limits::VIOLATIONS_PER_EVENT_MAX;

/// Stable violation codes. Never renamed, never reused.
pub mod violation {
    /// A required property is absent or null.
    pub const REQUIRED_MISSING: &str = "contract.required_missing";
    /// The JSON type does not match the logical type.
    pub const TYPE_MISMATCH: &str = "contract.type_mismatch";
    /// A string does not match `pattern` (logicalTypeOptions or an `invalidValues` rule).
    pub const PATTERN_MISMATCH: &str = "contract.pattern_mismatch";
    /// A value is not in the v3.2 `enum` or in an `invalidValues` rule's `validValues`.
    pub const NOT_VALID_VALUE: &str = "contract.not_valid_value";
    /// A number, date, time or timestamp is outside `minimum`/`maximum`/`exclusive*`, or an
    /// integer outside its `format` (`i8` ... `u64`), or a number outside `f32`.
    pub const OUT_OF_RANGE: &str = "contract.out_of_range";
    /// A number is not a multiple of `multipleOf`.
    pub const NOT_MULTIPLE_OF: &str = "contract.not_multiple_of";
    /// A string is shorter than `minLength` or longer than `maxLength` (in characters).
    pub const LENGTH_OUT_OF_RANGE: &str = "contract.length_out_of_range";
    /// A string is not a valid email, uuid, uri, hostname, ipv4, ipv6, date, time or timestamp.
    pub const FORMAT_INVALID: &str = "contract.format_invalid";
    /// A `nullValues` rule with zero tolerance saw a null or absent value.
    pub const NULL_VALUE: &str = "contract.null_value";
    /// A `missingValues` rule with zero tolerance saw one of its missing values.
    pub const MISSING_VALUE: &str = "contract.missing_value";
    /// An array has fewer than `minItems` or more than `maxItems` items, or repeats an item
    /// under `uniqueItems`.
    pub const ITEMS_OUT_OF_RANGE: &str = "contract.items_out_of_range";
    /// An object has fewer than `minProperties` or more than `maxProperties` properties.
    pub const PROPERTIES_OUT_OF_RANGE: &str = "contract.properties_out_of_range";
    /// A property the contract does not declare, in a stream with `weft.closed: true`.
    pub const UNKNOWN_PROPERTY: &str = "contract.unknown_property";
    /// The event bytes are not JSON.
    pub const MALFORMED_JSON: &str = "event.malformed_json";
    /// An object in the event repeats a key (RFC 8259 names SHOULD be unique, I-JSON's MUST);
    /// the path is the repeated member's.
    pub const DUPLICATE_KEY: &str = "event.duplicate_key";
    /// More violations were found than [`super::VIOLATIONS_PER_EVENT_MAX`]; the rest are dropped.
    pub const TOO_MANY_VIOLATIONS: &str = "event.too_many_violations";
}

/// What a message says in place of a classified value.
pub const CLASSIFIED_VALUE: &str = "a classified value";

/// One reason an event does not satisfy its contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Stable code, one of [`violation`].
    pub code: &'static str,
    /// JSON pointer (RFC 6901) into the event data; empty for the whole event.
    pub path: String,
    /// Lowercase message without a trailing period.
    pub message: String,
}

impl CompiledContract {
    /// Checks `data` (the event's data, not its envelope). Returns every violation found, in
    /// document order of the contract, at most [`VIOLATIONS_PER_EVENT_MAX`] of them (the last one
    /// is then `event.too_many_violations`).
    pub fn validate(&self, data: &Value) -> Result<(), Vec<Violation>> {
        self.validate_doc(&Doc::from_value(data))
    }

    /// As [`validate`](Self::validate), for a parsed [`Doc`].
    pub fn validate_doc(&self, data: &Doc<'_>) -> Result<(), Vec<Violation>> {
        let mut walk = Walk { path: String::new(), violations: Vec::new(), n_classified_open: 0 };
        match data {
            Doc::Object(pairs) => walk.object(&self.root, pairs),
            other => walk.push(violation::TYPE_MISMATCH, format!("expected object, found {}", json_type_name(other))),
        }
        if walk.violations.is_empty() { Ok(()) } else { Err(walk.violations) }
    }

    /// Parses `bytes` as JSON into a [`Doc`] that borrows from them, then validates it. Returns
    /// the document so the caller does not parse twice (to take the partition key, say).
    /// An object that repeats a key is `event.duplicate_key` at the repeated member.
    pub fn validate_bytes<'a>(&self, bytes: &'a [u8]) -> Result<Doc<'a>, Vec<Violation>> {
        let data: Doc<'a> = Doc::parse(bytes).map_err(|error| match error {
            DocError::RepeatedKey { pointer } => vec![Violation {
                code: violation::DUPLICATE_KEY,
                message: format!("the key at {pointer} appears more than once in its object"),
                path: pointer,
            }],
            DocError::Malformed(error) => vec![Violation {
                code: violation::MALFORMED_JSON,
                path: String::new(),
                message: format!(
                    "event is not valid json: {} at line {} column {}",
                    error.to_string().split(" at line ").next().unwrap_or_default(),
                    error.line(),
                    error.column()
                ),
            }],
        })?;
        self.validate_doc(&data)?;
        Ok(data)
    }
}

struct Walk {
    /// Pointer to the value being checked; tokens are pushed and truncated as the walk goes.
    path: String,
    violations: Vec<Violation>,
    /// Classified values the walk is inside of; while it is not zero, no value is quoted.
    n_classified_open: usize,
}

impl Walk {
    /// `value` as a message may quote it: cut short, or [`CLASSIFIED_VALUE`] inside a classified
    /// value or when it holds one.
    fn quote(&self, node: &ValueNode, value: &Doc<'_>) -> String {
        if self.n_classified_open > 0 || node.holds_classified { CLASSIFIED_VALUE.to_owned() } else { short(value) }
    }

    /// A string value, as [`Walk::quote`]; only called inside a node's own checks.
    fn quote_str(&self, text: &str) -> String {
        if self.n_classified_open > 0 { CLASSIFIED_VALUE.to_owned() } else { short_str(text) }
    }

    /// A number, as [`Walk::quote`].
    fn quote_number(&self, n: &serde_json::Number) -> String {
        if self.n_classified_open > 0 { CLASSIFIED_VALUE.to_owned() } else { n.to_string() }
    }

    fn full(&self) -> bool {
        self.violations.len() >= VIOLATIONS_PER_EVENT_MAX
    }

    fn push(&mut self, code: &'static str, message: String) {
        if self.violations.len() + 1 < VIOLATIONS_PER_EVENT_MAX {
            self.violations.push(Violation { code, path: self.path.clone(), message });
        } else if self.violations.len() + 1 == VIOLATIONS_PER_EVENT_MAX {
            self.violations.push(Violation {
                code: violation::TOO_MANY_VIOLATIONS,
                path: String::new(),
                message: format!("more than {} violations, the rest are not reported", VIOLATIONS_PER_EVENT_MAX - 1),
            });
        }
    }

    fn object(&mut self, shape: &ObjectShape, map: &[(Cow<'_, str>, Doc<'_>)]) {
        for property in &shape.properties {
            if self.full() {
                return;
            }
            let path_len = self.path.len();
            self.path.push_str(&property.pointer_token);
            let found = object_get(map, &property.key);
            match found {
                None | Some(Doc::Null) => {
                    let absent = found.is_none();
                    if property.required {
                        let state = if absent { "missing" } else { "null" };
                        self.push(violation::REQUIRED_MISSING, format!("required property is {state}"));
                    }
                    self.absent_rules(&property.node, absent);
                }
                Some(value) => self.value(&property.node, value),
            }
            self.path.truncate(path_len);
        }
        for key in &shape.required_keys {
            if !shape.properties.iter().any(|p| &p.key == key) && object_get(map, key).is_none_or(Doc::is_null) {
                let path_len = self.path.len();
                crate::error::push_pointer_token(&mut self.path, key);
                self.push(violation::REQUIRED_MISSING, "required property is missing".to_owned());
                self.path.truncate(path_len);
            }
        }
        let n_properties = map.len() as u64;
        if let Some(min) = shape.min_properties
            && n_properties < min
        {
            self.push(violation::PROPERTIES_OUT_OF_RANGE, format!("object has {n_properties} properties, fewer than minProperties {min}"));
        }
        if let Some(max) = shape.max_properties
            && n_properties > max
        {
            self.push(violation::PROPERTIES_OUT_OF_RANGE, format!("object has {n_properties} properties, more than maxProperties {max}"));
        }
        if shape.closed {
            for (key, _) in map {
                if self.full() {
                    return;
                }
                if !shape.properties.iter().any(|p| p.key == *key) {
                    let path_len = self.path.len();
                    crate::error::push_pointer_token(&mut self.path, key);
                    self.push(violation::UNKNOWN_PROPERTY, "property is not declared in the contract".to_owned());
                    self.path.truncate(path_len);
                }
            }
        }
    }

    /// Quality rules that fire on an absent or null value.
    fn absent_rules(&mut self, node: &ValueNode, absent: bool) {
        for rule in &node.rules {
            match rule {
                EventRule::NotNull => {
                    let state = if absent { "missing" } else { "null" };
                    self.push(violation::NULL_VALUE, format!("value is {state}, the nullValues rule allows none"));
                }
                EventRule::NotMissing { missing_values } if missing_values.contains(&Value::Null) => {
                    self.push(violation::MISSING_VALUE, "value is missing, the missingValues rule allows none".to_owned());
                }
                _ => {}
            }
        }
    }

    fn value(&mut self, node: &ValueNode, value: &Doc<'_>) {
        if node.classified {
            self.n_classified_open += 1;
        }
        self.value_checks(node, value);
        if node.classified {
            self.n_classified_open -= 1;
        }
    }

    fn value_checks(&mut self, node: &ValueNode, value: &Doc<'_>) {
        if !self.shape(&node.shape, value) {
            return;
        }
        if let Some(allowed_values) = &node.allowed_values
            && !allowed_values.iter().any(|allowed| json_equal(allowed, value))
        {
            self.push(violation::NOT_VALID_VALUE, format!("{} is not one of the enum values", self.quote(node, value)));
        }
        for rule in &node.rules {
            match rule {
                EventRule::NotNull => {}
                EventRule::NotMissing { missing_values } => {
                    if missing_values.iter().any(|missing| json_equal(missing, value)) {
                        self.push(
                            violation::MISSING_VALUE,
                            format!("{} counts as missing under the missingValues rule", self.quote(node, value)),
                        );
                    }
                }
                EventRule::ValidValues { valid_values } => {
                    if !valid_values.iter().any(|valid| json_equal(valid, value)) {
                        self.push(violation::NOT_VALID_VALUE, format!("{} is not one of the valid values", self.quote(node, value)));
                    }
                }
                EventRule::Pattern { regex } => {
                    if let Doc::String(text) = value
                        && !regex.is_match(text)
                    {
                        self.push(
                            violation::PATTERN_MISMATCH,
                            format!("{} does not match pattern `{}`", self.quote(node, value), regex.as_str()),
                        );
                    }
                }
            }
        }
    }

    /// Checks type and type-specific constraints. Returns false on a type mismatch, so the caller
    /// skips value rules that would only repeat it.
    fn shape(&mut self, shape: &Shape, value: &Doc<'_>) -> bool {
        match (shape, value) {
            (Shape::Any, _) | (Shape::Boolean, Doc::Bool(_)) => true,
            (Shape::String(string), Doc::String(text)) => {
                self.string(string, text);
                true
            }
            (Shape::Integer(numeric), Doc::Number(n)) => {
                let is_integer = n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0);
                if !is_integer {
                    self.type_mismatch("integer", value);
                    return false;
                }
                self.numeric(numeric, n);
                true
            }
            (Shape::Number(numeric), Doc::Number(n)) => {
                self.numeric(numeric, n);
                true
            }
            (Shape::Temporal(temporal), Doc::String(text)) => {
                self.temporal(temporal, text);
                true
            }
            (Shape::Object(object), Doc::Object(map)) => {
                self.object(object, map);
                true
            }
            (Shape::Array(array), Doc::Array(items)) => {
                self.array(array, items);
                true
            }
            (Shape::Map(map_shape), Doc::Object(map)) => {
                self.map(map_shape, map);
                true
            }
            (shape, value) => {
                let expected = match shape {
                    Shape::Temporal(_) => "string",
                    other => other.type_name(),
                };
                self.type_mismatch(expected, value);
                false
            }
        }
    }

    fn type_mismatch(&mut self, expected: &str, value: &Doc<'_>) {
        self.push(violation::TYPE_MISMATCH, format!("expected {expected}, found {}", json_type_name(value)));
    }

    fn string(&mut self, shape: &StringShape, text: &str) {
        if shape.min_length.is_some() || shape.max_length.is_some() {
            // JSON Schema counts Unicode code points, not bytes.
            let n_chars = text.chars().count() as u64;
            if let Some(min) = shape.min_length
                && n_chars < min
            {
                self.push(violation::LENGTH_OUT_OF_RANGE, format!("length {n_chars} is below minLength {min}"));
            }
            if let Some(max) = shape.max_length
                && n_chars > max
            {
                self.push(violation::LENGTH_OUT_OF_RANGE, format!("length {n_chars} is above maxLength {max}"));
            }
        }
        if let Some(pattern) = &shape.pattern
            && !pattern.is_match(text)
        {
            self.push(violation::PATTERN_MISMATCH, format!("{} does not match pattern `{}`", self.quote_str(text), pattern.as_str()));
        }
        if let Some(format) = shape.format
            && !format.matches(text)
        {
            self.push(violation::FORMAT_INVALID, format!("{} is not a valid {}", self.quote_str(text), format.name()));
        }
    }

    fn numeric(&mut self, shape: &NumericShape, n: &serde_json::Number) {
        if let Some((min, max)) = shape.integer_range {
            let exact: Option<i128> = n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
            let in_range = match exact {
                Some(v) => (min..=max).contains(&v),
                // Integral floats such as 1e30: compare approximately.
                None => n.as_f64().is_some_and(|f| f >= min as f64 && f <= max as f64),
            };
            if !in_range {
                self.push(violation::OUT_OF_RANGE, format!("{} is outside the integer format range {min} to {max}", self.quote_number(n)));
            }
        }
        let Some(v) = n.as_f64() else {
            return;
        };
        if shape.float32 && v.is_finite() && v.abs() > f64::from(f32::MAX) {
            self.push(violation::OUT_OF_RANGE, format!("{} does not fit in an f32", self.quote_number(n)));
        }
        if let Some(min) = shape.minimum
            && v < min
        {
            self.push(violation::OUT_OF_RANGE, format!("{} is below minimum {min}", self.quote_number(n)));
        }
        if let Some(max) = shape.maximum
            && v > max
        {
            self.push(violation::OUT_OF_RANGE, format!("{} is above maximum {max}", self.quote_number(n)));
        }
        if let Some(min) = shape.exclusive_minimum
            && v <= min
        {
            self.push(violation::OUT_OF_RANGE, format!("{} is not above exclusiveMinimum {min}", self.quote_number(n)));
        }
        if let Some(max) = shape.exclusive_maximum
            && v >= max
        {
            self.push(violation::OUT_OF_RANGE, format!("{} is not below exclusiveMaximum {max}", self.quote_number(n)));
        }
        if let Some(multiple_of) = shape.multiple_of {
            let quotient = v / multiple_of;
            // Tolerates binary rounding: 0.3 is a multiple of 0.1.
            if (quotient - quotient.round()).abs() > 1e-9 * quotient.abs().max(1.0) {
                self.push(violation::NOT_MULTIPLE_OF, format!("{} is not a multiple of {multiple_of}", self.quote_number(n)));
            }
        }
    }

    fn temporal(&mut self, shape: &TemporalShape, text: &str) {
        let Some(parts) = shape.format.parse(shape.kind, text) else {
            let kind = match shape.kind {
                crate::temporal::TemporalKind::Date => "date",
                crate::temporal::TemporalKind::Timestamp => "timestamp",
                crate::temporal::TemporalKind::Time => "time",
            };
            self.push(violation::FORMAT_INVALID, format!("{} is not a valid {kind}", self.quote_str(text)));
            return;
        };
        let key = parts.order_key();
        let checks = [
            (&shape.minimum, "below minimum", key < shape.minimum.as_ref().map_or(key, |b| b.0.order_key())),
            (&shape.maximum, "above maximum", key > shape.maximum.as_ref().map_or(key, |b| b.0.order_key())),
            (
                &shape.exclusive_minimum,
                "not after exclusiveMinimum",
                shape.exclusive_minimum.as_ref().is_some_and(|b| key <= b.0.order_key()),
            ),
            (
                &shape.exclusive_maximum,
                "not before exclusiveMaximum",
                shape.exclusive_maximum.as_ref().is_some_and(|b| key >= b.0.order_key()),
            ),
        ];
        for (bound, label, broken) in checks {
            if let (Some((_, bound_text)), true) = (bound, broken) {
                self.push(violation::OUT_OF_RANGE, format!("{} is {label} {bound_text}", self.quote_str(text)));
            }
        }
    }

    fn array(&mut self, shape: &ArrayShape, items: &[Doc<'_>]) {
        let n_items = items.len() as u64;
        if let Some(min) = shape.min_items
            && n_items < min
        {
            self.push(violation::ITEMS_OUT_OF_RANGE, format!("{n_items} items, fewer than minItems {min}"));
        }
        if let Some(max) = shape.max_items
            && n_items > max
        {
            self.push(violation::ITEMS_OUT_OF_RANGE, format!("{n_items} items, more than maxItems {max}"));
        }
        if shape.unique_items
            && let Some(duplicate_idx) = (1..items.len()).find(|&i| items[..i].iter().any(|earlier| doc_equal(earlier, &items[i])))
        {
            self.push(violation::ITEMS_OUT_OF_RANGE, format!("item {duplicate_idx} repeats an earlier item"));
        }
        if let Some(item_node) = &shape.items {
            for (item_idx, item) in items.iter().enumerate() {
                if self.full() {
                    return;
                }
                let path_len = self.path.len();
                self.path.push('/');
                self.path.push_str(&item_idx.to_string());
                if item.is_null() {
                    self.absent_rules(item_node, false);
                } else {
                    self.value(item_node, item);
                }
                self.path.truncate(path_len);
            }
        }
    }

    fn map(&mut self, shape: &MapShape, map: &[(Cow<'_, str>, Doc<'_>)]) {
        for (key, value) in map {
            if self.full() {
                return;
            }
            let path_len = self.path.len();
            crate::error::push_pointer_token(&mut self.path, key);
            if let Some(key_node) = &shape.key {
                self.value(key_node, &Doc::String(Cow::Borrowed(key)));
            }
            if let Some(value_node) = &shape.value
                && !value.is_null()
            {
                self.value(value_node, value);
            }
            self.path.truncate(path_len);
        }
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`), as in JSON Schema `enum`.
fn json_equal(a: &Value, b: &Doc<'_>) -> bool {
    match (a, b) {
        (Value::Number(x), Doc::Number(y)) => number_equal(x, y),
        _ => b == a,
    }
}

/// [`json_equal`] between two event values.
fn doc_equal(a: &Doc<'_>, b: &Doc<'_>) -> bool {
    match (a, b) {
        (Doc::Number(x), Doc::Number(y)) => number_equal(x, y),
        _ => a == b,
    }
}

fn number_equal(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    match (x.as_i64(), y.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => x.as_f64() == y.as_f64(),
    }
}

fn json_type_name(value: &Doc<'_>) -> &'static str {
    match value {
        Doc::Null => "null",
        Doc::Bool(_) => "boolean",
        Doc::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Doc::Number(_) => "number",
        Doc::String(_) => "string",
        Doc::Array(_) => "array",
        Doc::Object(_) => "object",
    }
}

/// Values quoted in messages are cut to this many characters so a huge string cannot blow up
/// the violation report.
const MESSAGE_VALUE_CHARS_MAX: usize = 64;

fn short(value: &Doc<'_>) -> String {
    match value {
        Doc::String(text) => short_str(text),
        other => {
            let text = other.to_string();
            if text.chars().count() > MESSAGE_VALUE_CHARS_MAX {
                format!("{}...", text.chars().take(MESSAGE_VALUE_CHARS_MAX).collect::<String>())
            } else {
                text
            }
        }
    }
}

fn short_str(text: &str) -> String {
    if text.chars().count() > MESSAGE_VALUE_CHARS_MAX {
        format!("\"{}...\"", text.chars().take(MESSAGE_VALUE_CHARS_MAX).collect::<String>())
    } else {
        format!("{text:?}")
    }
}
