//! Export of a schema object as a JSON Schema (draft-07), shaped like the output of
//! `datacontract export jsonschema` so the schema registry serves what tooling expects.
//!
//! Owns only the mapping to JSON Schema keywords. Weft's own validator does not use this output.
//! Additions over the CLI: integer `format` bounds become `minimum`/`maximum`, `multipleOf`,
//! array and object options, `additionalProperties: false` when the stream is closed.

use serde_json::{Map, Value, json};

use crate::compile::integer_format_range;
use crate::compiled::CompiledContract;
use crate::model::{SchemaObject, SchemaProperty};

impl CompiledContract {
    /// The JSON Schema (draft-07) of this stream's event data.
    pub fn to_json_schema(&self) -> Value {
        to_json_schema(&self.schema_object, self.settings.closed)
    }
}

/// The JSON Schema (draft-07) of a schema object; `closed` adds `additionalProperties: false`.
pub fn to_json_schema(object: &SchemaObject, closed: bool) -> Value {
    let mut schema = Map::new();
    schema.insert("$schema".into(), json!("http://json-schema.org/draft-07/schema#"));
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties(&object.properties, closed)));
    schema.insert("required".into(), required(&object.properties));
    if closed {
        schema.insert("additionalProperties".into(), json!(false));
    }
    if let Some(title) = &object.business_name {
        schema.insert("title".into(), json!(title));
    }
    if let Some(description) = &object.description {
        schema.insert("description".into(), json!(description));
    }
    Value::Object(schema)
}

fn properties(properties: &[SchemaProperty], closed: bool) -> Map<String, Value> {
    properties.iter().filter_map(|p| Some((p.data_key()?.to_owned(), property(p, closed)))).collect()
}

fn required(properties: &[SchemaProperty]) -> Value {
    properties.iter().filter(|p| p.is_required()).filter_map(|p| p.data_key()).map(|k| json!(k)).collect()
}

fn property(property: &SchemaProperty, closed: bool) -> Value {
    let mut out = Map::new();
    let options = property.logical_type_options.clone().unwrap_or_default();
    let (json_type, json_format) = match property.logical_type.as_deref() {
        Some("string") => (Some("string"), options.format.clone()),
        Some("timestamp") => (Some("string"), Some("date-time".to_owned())),
        Some("date") => (Some("string"), Some("date".to_owned())),
        Some("time") => (Some("string"), Some("time".to_owned())),
        Some("number") => (Some("number"), None),
        Some("integer") => (Some("integer"), None),
        Some("boolean") => (Some("boolean"), None),
        Some("object" | "map") => (Some("object"), None),
        Some("array") => (Some("array"), None),
        _ => (None, None),
    };
    if let Some(json_type) = json_type {
        // Non-required properties may be null, exactly as the CLI exports them.
        let type_value = if property.is_required() { json!(json_type) } else { json!([json_type, "null"]) };
        out.insert("type".into(), type_value);
    }
    if let Some(format) = json_format {
        out.insert("format".into(), json!(format));
    }
    if property.primary_key == Some(true) {
        out.insert("primaryKey".into(), json!(true));
    }
    if property.unique == Some(true) {
        out.insert("unique".into(), json!(true));
    }
    match property.logical_type.as_deref() {
        Some("object") | None if !property.properties.is_empty() || json_type == Some("object") => {
            out.insert("properties".into(), Value::Object(properties(&property.properties, closed)));
            out.insert("required".into(), required(&property.properties));
            if closed {
                out.insert("additionalProperties".into(), json!(false));
            }
        }
        Some("map") => {
            let value_schema = property.map.as_ref().map_or(json!(true), |m| self::property(&m.value, closed));
            out.insert("additionalProperties".into(), value_schema);
        }
        Some("array") => {
            if let Some(items) = &property.items {
                out.insert("items".into(), self::property(items, closed));
            }
        }
        _ => {}
    }
    if let Some(pattern) = &options.pattern {
        out.insert("pattern".into(), json!(pattern));
    }
    if let Some(mut values) = allowed_values(property) {
        if !property.is_required() {
            values.push(Value::Null);
        }
        out.insert("enum".into(), Value::Array(values));
    }
    let mut copy = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            out.insert(key.into(), value);
        }
    };
    copy("minLength", options.min_length.map(Value::from));
    copy("maxLength", options.max_length.map(Value::from));
    let is_numeric = matches!(property.logical_type.as_deref(), Some("integer" | "number"));
    if is_numeric {
        copy("exclusiveMinimum", options.exclusive_minimum.clone().filter(Value::is_number));
        copy("exclusiveMaximum", options.exclusive_maximum.clone().filter(Value::is_number));
        let (mut minimum, mut maximum) = (options.minimum.clone(), options.maximum.clone());
        if property.logical_type.as_deref() == Some("integer")
            && let Some((low, high)) = options.format.as_deref().and_then(integer_format_range)
        {
            // JSON cannot hold 128-bit integers exactly; only emit bounds that fit in 64 bits.
            if minimum.is_none() && i64::try_from(low).is_ok() {
                minimum = Some(json!(low as i64));
            }
            if maximum.is_none() && u64::try_from(high).is_ok() {
                maximum = Some(json!(high as u64));
            }
        }
        copy("minimum", minimum);
        copy("maximum", maximum);
        copy("multipleOf", options.multiple_of.map(Value::from));
    }
    copy("minItems", options.min_items.map(Value::from));
    copy("maxItems", options.max_items.map(Value::from));
    copy("uniqueItems", options.unique_items.filter(|u| *u).map(Value::from));
    copy("minProperties", options.min_properties.map(Value::from));
    copy("maxProperties", options.max_properties.map(Value::from));
    if let Some(title) = &property.business_name {
        out.insert("title".into(), json!(title));
    }
    if let Some(description) = &property.description {
        out.insert("description".into(), json!(description));
    }
    if !property.tags.is_empty() {
        out.insert("tags".into(), json!(property.tags));
    }
    if let Some(classification) = &property.classification {
        out.insert("classification".into(), json!(classification));
    }
    Value::Object(out)
}

/// The v3.2 `enum`, else the `validValues` of an `invalidValues` rule: the same precedence as
/// the CLI (which also ignores the rule's threshold here). Nulls are dropped; `required` decides.
fn allowed_values(property: &SchemaProperty) -> Option<Vec<Value>> {
    let values: Vec<Value> = if !property.enum_values.is_empty() {
        property.enum_values.iter().map(|e| e.value.clone()).collect()
    } else {
        property.quality.iter().find_map(|rule| {
            (rule.metric_name() == Some("invalidValues"))
                .then(|| rule.arguments.as_ref()?.get("validValues")?.as_array().cloned())
                .flatten()
        })?
    };
    Some(values.into_iter().filter(|v| !v.is_null()).collect())
}
