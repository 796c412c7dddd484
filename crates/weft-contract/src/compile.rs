//! Compiling one schema object of a contract into a [`CompiledContract`] (its shapes are in
//! [`crate::compiled`]).
//!
//! Owns the meaning of `logicalType`, `logicalTypeOptions`, `required` and the v3.2 `enum`.
//! Everything that can be decided once (regexes, bounds, integer ranges, date formats) is decided
//! here, so validation does no parsing of the contract and no allocation on the happy path.
//! Which quality rules run per event and which are deferred is decided in [`crate::quality`];
//! the per-type reading of `logicalTypeOptions` is in `compile/options.rs`.
//! Does not own the event walk itself ([`crate::validate`]) nor compatibility ([`crate::compat`]).

mod options;

use crate::compiled::{
    ArrayShape, ClassifiedProperty, CompiledContract, DeferredRule, MapShape, ObjectShape, PropertyNode, Shape, StringShape, ValueNode,
};
use crate::error::{ContractError, code, pointer_join, push_pointer_token};
use crate::format::StringFormat;
use crate::limits::{PROPERTIES_PER_OBJECT_MAX, PROPERTY_DEPTH_MAX};
use crate::model::{DataContract, DataQuality, LogicalTypeOptions, SchemaObject, SchemaProperty};
use crate::quality::{check_quality_rule, event_rules};
use crate::settings::{StreamSettings, apply_sla, apply_weft_properties, refuse_weft_properties};
use crate::temporal::TemporalKind;

use options::{check_allowed_options, numeric_shape, temporal_shape};
pub(crate) use options::{compile_pattern, integer_format_range};

/// Classifications whose values readers without `unmask` see masked, compared without regard to
/// case. The same list as `weft_governance::masking::MASKED_CLASSIFICATIONS` (a test in
/// `weft-core`, which knows both, says so): such a property cannot be a stream's key.
pub const MASKED_CLASSIFICATIONS: [&str; 4] = ["pii", "confidential", "restricted", "sensitive"];

fn is_masked_classification(classification: &str) -> bool {
    MASKED_CLASSIFICATIONS.iter().any(|masked| masked.eq_ignore_ascii_case(classification))
}

/// The logical types Weft understands (ODCS v3.1 plus v3.2 `map`).
pub const LOGICAL_TYPES: &[&str] = &["string", "date", "timestamp", "time", "number", "integer", "object", "array", "boolean", "map"];

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
        if let Some(classified) = compiler.classified_properties.iter().find(|classified| {
            is_masked_classification(&classified.classification)
                && (classified.pointer == pointer || pointer.starts_with(&format!("{}/", classified.pointer)))
        }) {
            return Err(ContractError::at(
                code::CONTRACT_CLASSIFIED_KEY,
                format!("{object_pointer}/customProperties"),
                format!(
                    "`weft.key` `{pointer}` is classified `{}` (through `{}`); record keys are stored and served in clear, so a classified property cannot be the key",
                    classified.classification, classified.property_path
                ),
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
        let holds_classified = shape.holds_classified();
        Ok(ValueNode { shape, allowed_values, rules, classified: property.classification.is_some(), holds_classified })
    }
}

fn invalid_structure(doc_pointer: &str, field: &str, logical_type: &str) -> ContractError {
    ContractError::at(
        code::CONTRACT_INVALID,
        format!("{doc_pointer}/{field}"),
        format!("`{field}` is only allowed with `logicalType: {logical_type}`"),
    )
}
