//! The compiled form of one schema object: [`CompiledContract`], a tree of typed checks that
//! [`crate::validate`] walks for every event, and what the compiler reports beside it
//! ([`DeferredRule`], [`ClassifiedProperty`]).
//!
//! Owns the shapes only: every bound, regex, integer range and date format is already decided.
//! It does not build them (that is [`crate::compile`]) and does not walk events ([`crate::validate`]).

use regex::Regex;
use serde_json::Value;

use crate::format::StringFormat;
use crate::model::SchemaObject;
use crate::settings::StreamSettings;
use crate::temporal::{TemporalFormat, TemporalKind, TemporalParts};

/// A contract's schema object, ready to validate events and to be compared with other versions.
#[derive(Debug, Clone)]
pub struct CompiledContract {
    pub(crate) contract_id: String,
    pub(crate) contract_version: String,
    pub(crate) object_name: String,
    pub(crate) stream_name: Option<String>,
    pub(crate) root: ObjectShape,
    pub(crate) settings: StreamSettings,
    pub(crate) deferred_rules: Vec<DeferredRule>,
    pub(crate) classified_properties: Vec<ClassifiedProperty>,
    pub(crate) schema_object: SchemaObject,
}

/// A quality rule (or `unique: true`) that needs more than one event to evaluate, so the
/// validator skips it; the product status lists these as "not checked at the edge".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredRule {
    /// Dotted property path (`customer.email`); empty for rules on the schema object.
    pub property_path: String,
    /// `duplicateValues`, `rowCount`, `sql`, `custom`, `text`, `unique`, or a library metric
    /// whose threshold is not zero.
    pub rule: String,
    /// The rule's `id` or `name`, when it has one.
    pub label: Option<String>,
    /// Why it is not evaluated per event.
    pub reason: &'static str,
}

/// A property carrying a `classification` (e.g. `pii`), for masking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifiedProperty {
    /// JSON pointer into event data; array elements are written as the token `*`.
    pub pointer: String,
    /// Dotted property path (`customer.email`).
    pub property_path: String,
    pub classification: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ObjectShape {
    pub properties: Vec<PropertyNode>,
    pub closed: bool,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    /// Keys listed in the object's `logicalTypeOptions.required` (must be present and non-null).
    pub required_keys: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct PropertyNode {
    /// Key in the event data.
    pub key: String,
    /// `key` escaped as an RFC 6901 token, ready to append to a pointer.
    pub pointer_token: String,
    pub required: bool,
    pub node: ValueNode,
}

#[derive(Debug, Clone)]
pub(crate) struct ValueNode {
    pub shape: Shape,
    /// v3.2 `enum` values.
    pub allowed_values: Option<Vec<Value>>,
    pub rules: Vec<EventRule>,
    /// The property carries a `classification`: violation messages never quote its value, nor
    /// anything inside it.
    pub classified: bool,
    /// Some property inside this value carries a `classification`, so quoting the value whole
    /// would quote it too.
    pub holds_classified: bool,
}

impl ValueNode {
    /// Is this value, or anything inside it, classified?
    pub(crate) fn is_or_holds_classified(&self) -> bool {
        self.classified || self.holds_classified
    }
}

impl Shape {
    /// Does a value of this shape hold a classified property (an object's property, an array's
    /// items, a map's keys or values)?
    pub(crate) fn holds_classified(&self) -> bool {
        match self {
            Shape::Object(object) => object.properties.iter().any(|p| p.node.is_or_holds_classified()),
            Shape::Array(array) => array.items.as_ref().is_some_and(|items| items.is_or_holds_classified()),
            Shape::Map(map) => [&map.key, &map.value].into_iter().flatten().any(|node| node.is_or_holds_classified()),
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Shape {
    /// No `logicalType`: any JSON value.
    Any,
    Boolean,
    String(StringShape),
    Integer(NumericShape),
    Number(NumericShape),
    Temporal(Box<TemporalShape>),
    Object(ObjectShape),
    Array(ArrayShape),
    Map(MapShape),
}

impl Shape {
    pub fn type_name(&self) -> &'static str {
        match self {
            Shape::Any => "any",
            Shape::Boolean => "boolean",
            Shape::String(_) => "string",
            Shape::Integer(_) => "integer",
            Shape::Number(_) => "number",
            Shape::Temporal(t) => match t.kind {
                TemporalKind::Date => "date",
                TemporalKind::Timestamp => "timestamp",
                TemporalKind::Time => "time",
            },
            Shape::Object(_) | Shape::Map(_) => "object",
            Shape::Array(_) => "array",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct StringShape {
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<Regex>,
    pub format: Option<StringFormat>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct NumericShape {
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: Option<f64>,
    pub exclusive_maximum: Option<f64>,
    pub multiple_of: Option<f64>,
    /// Integer `format` (`i8` ... `u128`) as an inclusive range, checked exactly.
    pub integer_range: Option<(i128, i128)>,
    /// `format: f32`: finite values must fit in an `f32`.
    pub float32: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct TemporalShape {
    pub kind: TemporalKind,
    pub format: TemporalFormat,
    pub minimum: Option<(TemporalParts, String)>,
    pub maximum: Option<(TemporalParts, String)>,
    pub exclusive_minimum: Option<(TemporalParts, String)>,
    pub exclusive_maximum: Option<(TemporalParts, String)>,
}

#[derive(Debug, Clone)]
pub(crate) struct ArrayShape {
    pub items: Option<Box<ValueNode>>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct MapShape {
    pub key: Option<Box<ValueNode>>,
    pub value: Option<Box<ValueNode>>,
}

/// A quality rule Weft evaluates on each event: a library metric with a zero tolerance
/// (`mustBe: 0`, `mustBeLessOrEqualTo: 0`, `mustBeLessThan: 1` rows, `mustBeBetween: [0, 0]`).
/// One bad event already breaks such a rule, so it is refused at the edge.
#[derive(Debug, Clone)]
pub(crate) enum EventRule {
    /// `nullValues`: the value must be present and non-null.
    NotNull,
    /// `missingValues`: the value must not be one of these (null in the list covers absent).
    NotMissing { missing_values: Vec<Value> },
    /// `invalidValues` with `validValues`: non-null values must be one of these.
    ValidValues { valid_values: Vec<Value> },
    /// `invalidValues` with `pattern`: non-null string values must match.
    Pattern { regex: Regex },
}

impl CompiledContract {
    pub fn contract_id(&self) -> &str {
        &self.contract_id
    }

    pub fn contract_version(&self) -> &str {
        &self.contract_version
    }

    /// The schema object's `name`.
    pub fn object_name(&self) -> &str {
        &self.object_name
    }

    /// The stream (topic) name: `physicalName` of a `physicalType: topic` object.
    pub fn stream_name(&self) -> Option<&str> {
        self.stream_name.as_deref()
    }

    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// Quality rules (and `unique` flags) not evaluated per event.
    pub fn deferred_rules(&self) -> &[DeferredRule] {
        &self.deferred_rules
    }

    /// Properties with a `classification`, in declaration order.
    pub fn classified_properties(&self) -> &[ClassifiedProperty] {
        &self.classified_properties
    }

    /// The schema object this was compiled from.
    pub fn schema_object(&self) -> &SchemaObject {
        &self.schema_object
    }
}
