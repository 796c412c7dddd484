//! Compiling one schema object of a contract into a [`CompiledContract`]: a tree of typed checks
//! that [`crate::validate`] walks for every event.
//!
//! Owns the meaning of `logicalType`, `logicalTypeOptions`, `required`, the v3.2 `enum`, and which
//! quality rules run per event (see [`EventRule`]) versus later ([`DeferredRule`]).
//! Everything that can be decided once (regexes, bounds, integer ranges, date formats) is decided
//! here, so validation does no parsing of the contract and no allocation on the happy path.
//! Does not own the event walk itself ([`crate::validate`]) nor compatibility ([`crate::compat`]).

use regex::Regex;
use serde_json::Value;

use crate::error::{ContractError, code, pointer_join, push_pointer_token};
use crate::format::StringFormat;
use crate::limits::{PROPERTIES_PER_OBJECT_MAX, PROPERTY_DEPTH_MAX, REGEX_SIZE_BYTES_MAX};
use crate::model::{DataContract, DataQuality, LogicalTypeOptions, SchemaObject, SchemaProperty};
use crate::settings::{StreamSettings, apply_sla, apply_weft_properties, refuse_weft_properties};
use crate::temporal::{TemporalFormat, TemporalKind, TemporalParts};

/// The logical types Weft understands (ODCS v3.1 plus v3.2 `map`).
pub const LOGICAL_TYPES: &[&str] = &["string", "date", "timestamp", "time", "number", "integer", "object", "array", "boolean", "map"];

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
    /// Compiles the schema object named `schema_object_name` (its `name`, or its `physicalName`).
    pub fn compile(contract: &DataContract, schema_object_name: &str) -> Result<Self, ContractError> {
        let (object_idx, object) = contract
            .schema
            .iter()
            .enumerate()
            .find(|(_, object)| object.name == schema_object_name || object.physical_name.as_deref() == Some(schema_object_name))
            .ok_or_else(|| {
                ContractError::at(
                    code::CONTRACT_SCHEMA_OBJECT_NOT_FOUND,
                    "/schema",
                    format!("contract `{}` has no schema object `{schema_object_name}`", contract.id),
                )
            })?;
        compile_object(contract, object_idx, object)
    }

    /// Compiles every schema object with `physicalType: topic` (one stream each).
    pub fn compile_topics(contract: &DataContract) -> Result<Vec<Self>, ContractError> {
        contract
            .schema
            .iter()
            .enumerate()
            .filter(|(_, object)| object.physical_type.as_deref() == Some("topic"))
            .map(|(object_idx, object)| compile_object(contract, object_idx, object))
            .collect()
    }

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

pub(crate) fn compile_object(contract: &DataContract, object_idx: usize, object: &SchemaObject) -> Result<CompiledContract, ContractError> {
    let object_pointer = format!("/schema/{object_idx}");
    let mut settings = StreamSettings::default();
    let mut raw_key = None;
    apply_weft_properties(&mut settings, &mut raw_key, &contract.custom_properties, "/customProperties")?;
    apply_weft_properties(&mut settings, &mut raw_key, &object.custom_properties, &format!("{object_pointer}/customProperties"))?;
    apply_sla(&mut settings, &contract.sla_properties, &object.name)?;

    let mut compiler = Compiler { closed: settings.closed, deferred_rules: Vec::new(), classified_properties: Vec::new() };
    for (rule_idx, rule) in object.quality.iter().enumerate() {
        let rule_pointer = format!("{object_pointer}/quality/{rule_idx}");
        check_quality_rule(rule, &rule_pointer)?;
        compiler.defer(String::new(), rule, "rules on a whole schema object need more than one event");
    }
    let root = compiler.object_shape(&object.properties, None, &object_pointer, "", "", 0)?;

    if let Some(raw_key) = raw_key {
        let pointer = if raw_key.starts_with('/') { raw_key } else { pointer_join("", &raw_key) };
        if !pointer_declared(&root, &pointer) {
            return Err(ContractError::at(
                code::CONTRACT_INVALID_WEFT_PROPERTY,
                format!("{object_pointer}/customProperties"),
                format!("`weft.key` `{pointer}` does not name a declared property"),
            ));
        }
        settings.key_pointer = Some(pointer);
    }

    let stream_name =
        (object.physical_type.as_deref() == Some("topic")).then(|| object.physical_name.clone().unwrap_or_else(|| object.name.clone()));
    Ok(CompiledContract {
        contract_id: contract.id.clone(),
        contract_version: contract.version.clone(),
        object_name: object.name.clone(),
        stream_name,
        root,
        settings,
        deferred_rules: compiler.deferred_rules,
        classified_properties: compiler.classified_properties,
        schema_object: object.clone(),
    })
}

/// Whether `pointer` walks through declared object properties (the key may be nested).
fn pointer_declared(root: &ObjectShape, pointer: &str) -> bool {
    let mut shape = root;
    let mut tokens = pointer.split('/').skip(1).peekable();
    while let Some(token) = tokens.next() {
        let key = token.replace("~1", "/").replace("~0", "~");
        let Some(property) = shape.properties.iter().find(|p| p.key == key) else {
            return false;
        };
        if tokens.peek().is_none() {
            return true;
        }
        match &property.node.shape {
            Shape::Object(inner) => shape = inner,
            _ => return false,
        }
    }
    false
}

struct Compiler {
    closed: bool,
    deferred_rules: Vec<DeferredRule>,
    classified_properties: Vec<ClassifiedProperty>,
}

impl Compiler {
    fn defer(&mut self, property_path: String, rule: &DataQuality, reason: &'static str) {
        let rule_name = match rule.type_name() {
            "library" => rule.metric_name().unwrap_or("library").to_owned(),
            other => other.to_owned(),
        };
        self.deferred_rules.push(DeferredRule {
            property_path,
            rule: rule_name,
            label: rule.id.clone().or_else(|| rule.name.clone()),
            reason,
        });
    }

    /// `doc_pointer` locates `properties` in the contract document; `data_pointer` and
    /// `dotted_path` locate the object in event data.
    fn object_shape(
        &mut self,
        properties: &[SchemaProperty],
        options: Option<&LogicalTypeOptions>,
        doc_pointer: &str,
        data_pointer: &str,
        dotted_path: &str,
        depth: usize,
    ) -> Result<ObjectShape, ContractError> {
        if depth > PROPERTY_DEPTH_MAX {
            return Err(ContractError::at(
                code::CONTRACT_INVALID,
                doc_pointer,
                format!("properties nest deeper than {PROPERTY_DEPTH_MAX} levels"),
            ));
        }
        if properties.len() > PROPERTIES_PER_OBJECT_MAX {
            return Err(ContractError::at(
                code::CONTRACT_INVALID,
                format!("{doc_pointer}/properties"),
                format!("more than {PROPERTIES_PER_OBJECT_MAX} properties in one object"),
            ));
        }
        let mut shape = ObjectShape { closed: self.closed, ..ObjectShape::default() };
        for (property_idx, property) in properties.iter().enumerate() {
            let property_pointer = format!("{doc_pointer}/properties/{property_idx}");
            let Some(key) = property.data_key() else {
                return Err(ContractError::at(code::RESOURCE_INVALID_FIELD, property_pointer, "property needs a `name`"));
            };
            if shape.properties.iter().any(|p: &PropertyNode| p.key == key) {
                return Err(ContractError::at(
                    code::CONTRACT_DUPLICATE_PROPERTY,
                    format!("{property_pointer}/name"),
                    format!("property `{key}` is declared twice in the same object"),
                ));
            }
            let name = property.name.as_deref().unwrap_or(key);
            let property_path = if dotted_path.is_empty() { name.to_owned() } else { format!("{dotted_path}.{name}") };
            let property_data_pointer = pointer_join(data_pointer, key);
            let node = self.value_node(property, &property_pointer, &property_data_pointer, &property_path, depth + 1)?;
            let mut pointer_token = String::new();
            push_pointer_token(&mut pointer_token, key);
            shape.properties.push(PropertyNode { key: key.to_owned(), pointer_token, required: property.is_required(), node });
        }
        if let Some(options) = options {
            shape.min_properties = options.min_properties;
            shape.max_properties = options.max_properties;
            // `logicalTypeOptions.required` on an object makes the named properties required;
            // names it lists without declaring them are checked for presence only.
            for key in options.required.iter().flatten() {
                match shape.properties.iter_mut().find(|p| &p.key == key) {
                    Some(property) => property.required = true,
                    None => shape.required_keys.push(key.clone()),
                }
            }
        }
        Ok(shape)
    }

    fn value_node(
        &mut self,
        property: &SchemaProperty,
        doc_pointer: &str,
        data_pointer: &str,
        dotted_path: &str,
        depth: usize,
    ) -> Result<ValueNode, ContractError> {
        refuse_weft_properties(&property.custom_properties, &format!("{doc_pointer}/customProperties"))?;
        if let Some(classification) = &property.classification {
            self.classified_properties.push(ClassifiedProperty {
                pointer: data_pointer.to_owned(),
                property_path: dotted_path.to_owned(),
                classification: classification.clone(),
            });
        }
        if property.unique == Some(true) {
            self.deferred_rules.push(DeferredRule {
                property_path: dotted_path.to_owned(),
                rule: "unique".to_owned(),
                label: None,
                reason: "uniqueness needs the history of the stream",
            });
        }

        let logical_type = property.logical_type.as_deref();
        let options = property.logical_type_options.as_ref();
        let default_options = LogicalTypeOptions::default();
        let opts = options.unwrap_or(&default_options);
        let options_pointer = format!("{doc_pointer}/logicalTypeOptions");
        if let Some(logical_type) = logical_type
            && !LOGICAL_TYPES.contains(&logical_type)
        {
            return Err(ContractError::at(
                code::CONTRACT_INVALID,
                format!("{doc_pointer}/logicalType"),
                format!("unknown logicalType `{logical_type}` (known: {})", LOGICAL_TYPES.join(", ")),
            ));
        }
        check_allowed_options(logical_type, opts, &options_pointer)?;
        if !property.properties.is_empty() && !matches!(logical_type, None | Some("object")) {
            return Err(invalid_structure(doc_pointer, "properties", "object"));
        }
        if property.items.is_some() && logical_type != Some("array") {
            return Err(invalid_structure(doc_pointer, "items", "array"));
        }
        if property.map.is_some() != (logical_type == Some("map")) {
            return Err(ContractError::at(
                code::CONTRACT_INVALID,
                doc_pointer,
                "`map` is required with `logicalType: map` and refused otherwise",
            ));
        }

        let shape = match logical_type {
            None if !property.properties.is_empty() => {
                Shape::Object(self.object_shape(&property.properties, None, doc_pointer, data_pointer, dotted_path, depth)?)
            }
            None => Shape::Any,
            Some("boolean") => Shape::Boolean,
            Some("string") => Shape::String(StringShape {
                min_length: opts.min_length,
                max_length: opts.max_length,
                pattern: opts.pattern.as_deref().map(|p| compile_pattern(p, &format!("{options_pointer}/pattern"))).transpose()?,
                format: opts.format.as_deref().and_then(StringFormat::from_name),
            }),
            Some("integer") => Shape::Integer(numeric_shape(opts, true, &options_pointer)?),
            Some("number") => Shape::Number(numeric_shape(opts, false, &options_pointer)?),
            Some("date") => Shape::Temporal(Box::new(temporal_shape(TemporalKind::Date, opts, &options_pointer)?)),
            Some("timestamp") => Shape::Temporal(Box::new(temporal_shape(TemporalKind::Timestamp, opts, &options_pointer)?)),
            Some("time") => Shape::Temporal(Box::new(temporal_shape(TemporalKind::Time, opts, &options_pointer)?)),
            Some("object") => {
                Shape::Object(self.object_shape(&property.properties, options, doc_pointer, data_pointer, dotted_path, depth)?)
            }
            Some("array") => {
                let items = match &property.items {
                    Some(items) => Some(Box::new(self.value_node(
                        items,
                        &format!("{doc_pointer}/items"),
                        &format!("{data_pointer}/*"),
                        dotted_path,
                        depth + 1,
                    )?)),
                    None => None,
                };
                Shape::Array(ArrayShape {
                    items,
                    min_items: opts.min_items,
                    max_items: opts.max_items,
                    unique_items: opts.unique_items == Some(true),
                })
            }
            Some("map") => {
                let map = property.map.as_ref().expect("checked above: map present for logicalType map");
                let key = self.value_node(&map.key, &format!("{doc_pointer}/map/key"), data_pointer, dotted_path, depth + 1)?;
                let value =
                    self.value_node(&map.value, &format!("{doc_pointer}/map/value"), &format!("{data_pointer}/*"), dotted_path, depth + 1)?;
                Shape::Map(MapShape { key: Some(Box::new(key)), value: Some(Box::new(value)) })
            }
            Some(other) => unreachable!("logicalType `{other}` was checked against LOGICAL_TYPES"),
        };

        let allowed_values =
            if property.enum_values.is_empty() { None } else { Some(property.enum_values.iter().map(|e| e.value.clone()).collect()) };

        let mut rules = Vec::new();
        for (rule_idx, rule) in property.quality.iter().enumerate() {
            let rule_pointer = format!("{doc_pointer}/quality/{rule_idx}");
            check_quality_rule(rule, &rule_pointer)?;
            let per_event = event_rules(rule, &rule_pointer)?;
            if per_event.is_empty() {
                let reason = match rule.type_name() {
                    "text" => "text rules are for people, not machines",
                    "sql" => "sql rules run over the stored data",
                    "custom" => "custom rules run in their own engine",
                    _ => match rule.metric_name() {
                        Some("nullValues" | "missingValues" | "invalidValues") => "a non-zero threshold needs a count over many events",
                        _ => "this metric needs the history of the stream",
                    },
                };
                self.defer(dotted_path.to_owned(), rule, reason);
            } else {
                rules.extend(per_event);
            }
        }
        Ok(ValueNode { shape, allowed_values, rules })
    }
}

fn invalid_structure(doc_pointer: &str, field: &str, logical_type: &str) -> ContractError {
    ContractError::at(
        code::CONTRACT_INVALID,
        format!("{doc_pointer}/{field}"),
        format!("`{field}` is only allowed with `logicalType: {logical_type}`"),
    )
}

/// Refuses `logicalTypeOptions` keys that do not apply to the logical type (ODCS closes the
/// options object per type).
fn check_allowed_options(logical_type: Option<&str>, options: &LogicalTypeOptions, options_pointer: &str) -> Result<(), ContractError> {
    let present: Vec<(&str, bool)> = vec![
        ("minLength", options.min_length.is_some()),
        ("maxLength", options.max_length.is_some()),
        ("pattern", options.pattern.is_some()),
        ("format", options.format.is_some()),
        ("minimum", options.minimum.is_some()),
        ("maximum", options.maximum.is_some()),
        ("exclusiveMinimum", options.exclusive_minimum.is_some()),
        ("exclusiveMaximum", options.exclusive_maximum.is_some()),
        ("multipleOf", options.multiple_of.is_some()),
        ("timezone", options.timezone.is_some()),
        ("defaultTimezone", options.default_timezone.is_some()),
        ("minProperties", options.min_properties.is_some()),
        ("maxProperties", options.max_properties.is_some()),
        ("required", options.required.is_some()),
        ("minItems", options.min_items.is_some()),
        ("maxItems", options.max_items.is_some()),
        ("uniqueItems", options.unique_items.is_some()),
    ];
    let allowed: &[&str] = match logical_type {
        Some("string") => &["minLength", "maxLength", "pattern", "format"],
        Some("date") => &["format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"],
        Some("timestamp" | "time") => {
            &["format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "timezone", "defaultTimezone"]
        }
        Some("integer" | "number") => &["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "format"],
        Some("object") => &["minProperties", "maxProperties", "required"],
        Some("array") => &["minItems", "maxItems", "uniqueItems"],
        _ => &[],
    };
    for (key, is_present) in present {
        if is_present && !allowed.contains(&key) {
            let type_label = logical_type.unwrap_or("(none)");
            return Err(ContractError::at(
                code::CONTRACT_INVALID_TYPE_OPTIONS,
                pointer_join(options_pointer, key),
                format!("`{key}` does not apply to logicalType `{type_label}`"),
            ));
        }
    }
    if let (Some(min), Some(max)) = (options.min_length, options.max_length)
        && min > max
    {
        return Err(ContractError::at(
            code::CONTRACT_INVALID_TYPE_OPTIONS,
            format!("{options_pointer}/minLength"),
            format!("minLength {min} is greater than maxLength {max}"),
        ));
    }
    if let (Some(min), Some(max)) = (options.min_items, options.max_items)
        && min > max
    {
        return Err(ContractError::at(
            code::CONTRACT_INVALID_TYPE_OPTIONS,
            format!("{options_pointer}/minItems"),
            format!("minItems {min} is greater than maxItems {max}"),
        ));
    }
    Ok(())
}

/// Compiles an ODCS (ECMA-262) pattern with the `regex` crate. Both search anywhere in the string
/// unless anchored; `regex` lacks look-around and backreferences, and its `\d`/`\w` are Unicode
/// aware, so such patterns are refused or may match more than in ECMA-262.
pub(crate) fn compile_pattern(pattern: &str, pointer: &str) -> Result<Regex, ContractError> {
    regex::RegexBuilder::new(pattern).size_limit(REGEX_SIZE_BYTES_MAX).build().map_err(|error| {
        let detail = error.to_string().lines().last().unwrap_or_default().to_lowercase();
        ContractError::at(code::CONTRACT_INVALID_PATTERN, pointer, format!("pattern `{pattern}` does not compile: {detail}"))
    })
}

fn numeric_shape(options: &LogicalTypeOptions, integer: bool, options_pointer: &str) -> Result<NumericShape, ContractError> {
    let bound = |value: &Option<Value>, key: &str| -> Result<Option<f64>, ContractError> {
        match value {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(ContractError::at(
                code::CONTRACT_INVALID_TYPE_OPTIONS,
                pointer_join(options_pointer, key),
                format!("`{key}` must be a number"),
            )),
        }
    };
    let mut shape = NumericShape {
        minimum: bound(&options.minimum, "minimum")?,
        maximum: bound(&options.maximum, "maximum")?,
        exclusive_minimum: None,
        exclusive_maximum: None,
        multiple_of: options.multiple_of,
        integer_range: None,
        float32: false,
    };
    // ODCS v3.0 wrote `exclusiveMinimum: true` to make `minimum` exclusive; v3.1 uses numbers.
    match &options.exclusive_minimum {
        Some(Value::Bool(true)) => shape.exclusive_minimum = shape.minimum.take(),
        Some(Value::Bool(false)) => {}
        other => shape.exclusive_minimum = bound(other, "exclusiveMinimum")?,
    }
    match &options.exclusive_maximum {
        Some(Value::Bool(true)) => shape.exclusive_maximum = shape.maximum.take(),
        Some(Value::Bool(false)) => {}
        other => shape.exclusive_maximum = bound(other, "exclusiveMaximum")?,
    }
    if let Some(multiple_of) = shape.multiple_of
        && !(multiple_of > 0.0 && multiple_of.is_finite())
    {
        return Err(ContractError::at(
            code::CONTRACT_INVALID_TYPE_OPTIONS,
            format!("{options_pointer}/multipleOf"),
            "`multipleOf` must be greater than 0",
        ));
    }
    if let (Some(min), Some(max)) = (shape.minimum, shape.maximum)
        && min > max
    {
        return Err(ContractError::at(
            code::CONTRACT_INVALID_TYPE_OPTIONS,
            format!("{options_pointer}/minimum"),
            format!("minimum {min} is greater than maximum {max}"),
        ));
    }
    if let Some(format) = options.format.as_deref() {
        let format_pointer = format!("{options_pointer}/format");
        if integer {
            shape.integer_range = Some(integer_format_range(format).ok_or_else(|| {
                ContractError::at(
                    code::CONTRACT_INVALID_TYPE_OPTIONS,
                    format_pointer,
                    format!("integer format `{format}` is not one of i8 i16 i32 i64 i128 u8 u16 u32 u64 u128"),
                )
            })?);
        } else {
            shape.float32 = match format {
                "f32" => true,
                "f64" => false,
                _ => {
                    return Err(ContractError::at(
                        code::CONTRACT_INVALID_TYPE_OPTIONS,
                        format_pointer,
                        format!("number format `{format}` is not one of f32 f64"),
                    ));
                }
            };
        }
    }
    Ok(shape)
}

/// Inclusive range of an ODCS integer format (Rust integer names).
pub(crate) fn integer_format_range(format: &str) -> Option<(i128, i128)> {
    Some(match format {
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" => (i64::MIN.into(), i64::MAX.into()),
        "i128" => (i128::MIN, i128::MAX),
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" => (0, u64::MAX.into()),
        "u128" => (0, i128::MAX),
        _ => return None,
    })
}

fn temporal_shape(kind: TemporalKind, options: &LogicalTypeOptions, options_pointer: &str) -> Result<TemporalShape, ContractError> {
    let format = TemporalFormat::new(kind, options.format.as_deref(), options.timezone)
        .map_err(|message| ContractError::at(code::CONTRACT_INVALID_TYPE_OPTIONS, format!("{options_pointer}/format"), message))?;
    let bound = |value: &Option<Value>, key: &str| -> Result<Option<(TemporalParts, String)>, ContractError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let parsed = value.as_str().and_then(|text| {
            // Bounds may be written in the property's format or in ISO form.
            format
                .parse(kind, text)
                .or_else(|| TemporalFormat::Iso { offset_required: false }.parse(kind, text))
                .map(|parts| (parts, text.to_owned()))
        });
        parsed.map(Some).ok_or_else(|| {
            ContractError::at(
                code::CONTRACT_INVALID_TYPE_OPTIONS,
                pointer_join(options_pointer, key),
                format!("`{key}` must be a string in the property's format"),
            )
        })
    };
    Ok(TemporalShape {
        kind,
        minimum: bound(&options.minimum, "minimum")?,
        maximum: bound(&options.maximum, "maximum")?,
        exclusive_minimum: bound(&options.exclusive_minimum, "exclusiveMinimum")?,
        exclusive_maximum: bound(&options.exclusive_maximum, "exclusiveMaximum")?,
        format,
    })
}

/// Structural rules for any quality rule: exactly one operator for library/sql rules, the
/// fields each type needs, and compilable patterns.
fn check_quality_rule(rule: &DataQuality, pointer: &str) -> Result<(), ContractError> {
    let invalid = |message: String| ContractError::at(code::CONTRACT_INVALID, pointer, message);
    let quality_type = rule.type_name();
    match quality_type {
        "text" => {}
        "library" => {
            let metric = rule.metric_name().ok_or_else(|| invalid("library quality rule needs a `metric`".to_owned()))?;
            const METRICS: &[&str] = &["nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount"];
            if !METRICS.contains(&metric) {
                return Err(invalid(format!("unknown metric `{metric}` (known: {})", METRICS.join(", "))));
            }
            if operator_count(rule) != 1 {
                return Err(invalid("quality rule needs exactly one `mustBe...` operator".to_owned()));
            }
        }
        "sql" => {
            if rule.query.is_none() {
                return Err(invalid("sql quality rule needs a `query`".to_owned()));
            }
            if operator_count(rule) != 1 {
                return Err(invalid("quality rule needs exactly one `mustBe...` operator".to_owned()));
            }
        }
        "custom" => {
            if rule.engine.is_none() || rule.implementation.is_none() {
                return Err(invalid("custom quality rule needs `engine` and `implementation`".to_owned()));
            }
        }
        other => {
            return Err(invalid(format!("unknown quality type `{other}` (known: text, library, sql, custom)")));
        }
    }
    if let Some(Value::String(pattern)) = rule.arguments.as_ref().and_then(|a| a.get("pattern")) {
        compile_pattern(pattern, &format!("{pointer}/arguments/pattern"))?;
    }
    Ok(())
}

fn operator_count(rule: &DataQuality) -> usize {
    [
        rule.must_be.is_some(),
        rule.must_not_be.is_some(),
        rule.must_be_greater_than.is_some(),
        rule.must_be_greater_or_equal_to.is_some(),
        rule.must_be_less_than.is_some(),
        rule.must_be_less_or_equal_to.is_some(),
        rule.must_be_between.is_some(),
        rule.must_not_be_between.is_some(),
    ]
    .into_iter()
    .filter(|present| *present)
    .count()
}

/// Whether the rule's threshold allows no bad event at all (see [`EventRule`]).
fn zero_tolerance(rule: &DataQuality) -> bool {
    let percent = rule.unit.as_deref() == Some("percent");
    let is_zero = |value: &Value| value.as_f64() == Some(0.0);
    rule.must_be.as_ref().is_some_and(is_zero)
        || rule.must_be_less_or_equal_to == Some(0.0)
        || (!percent && rule.must_be_less_than.is_some_and(|limit| limit > 0.0 && limit <= 1.0))
        || rule.must_be_between == Some([0.0, 0.0])
}

/// The per-event rules a quality rule turns into; empty when it must be deferred.
fn event_rules(rule: &DataQuality, pointer: &str) -> Result<Vec<EventRule>, ContractError> {
    if rule.type_name() != "library" || !zero_tolerance(rule) {
        return Ok(Vec::new());
    }
    let argument = |name: &str| rule.arguments.as_ref().and_then(|a| a.get(name));
    Ok(match rule.metric_name() {
        Some("nullValues") => vec![EventRule::NotNull],
        Some("missingValues") => {
            let missing_values = match argument("missingValues") {
                Some(Value::Array(values)) => values.clone(),
                None => vec![Value::Null],
                Some(_) => {
                    return Err(ContractError::at(
                        code::CONTRACT_INVALID,
                        format!("{pointer}/arguments/missingValues"),
                        "`missingValues` must be a list",
                    ));
                }
            };
            vec![EventRule::NotMissing { missing_values }]
        }
        Some("invalidValues") => {
            let valid_values = match argument("validValues") {
                None => None,
                Some(Value::Array(values)) => Some(EventRule::ValidValues { valid_values: values.clone() }),
                Some(_) => {
                    return Err(ContractError::at(
                        code::CONTRACT_INVALID,
                        format!("{pointer}/arguments/validValues"),
                        "`validValues` must be a list",
                    ));
                }
            };
            let pattern = match argument("pattern") {
                None => None,
                Some(Value::String(pattern)) => {
                    Some(EventRule::Pattern { regex: compile_pattern(pattern, &format!("{pointer}/arguments/pattern"))? })
                }
                Some(_) => {
                    return Err(ContractError::at(
                        code::CONTRACT_INVALID,
                        format!("{pointer}/arguments/pattern"),
                        "`pattern` must be a string",
                    ));
                }
            };
            if valid_values.is_none() && pattern.is_none() {
                return Err(ContractError::at(
                    code::CONTRACT_INVALID,
                    format!("{pointer}/arguments"),
                    "`invalidValues` needs `arguments.validValues` (a list) or `arguments.pattern`",
                ));
            }
            return Ok(valid_values.into_iter().chain(pattern).collect());
        }
        _ => Vec::new(),
    })
}
