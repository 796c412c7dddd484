//! JSON Schema: the shape check on registration, the dedup form, and Weft's compatibility rule.
//!
//! This file holds the registration side (parsing, the shape check, the canonical text);
//! `compatibility.rs` holds the rule ([`check_read`]), whose summary is: a reader schema is
//! compatible with a writer schema when every value the writer schema accepts, with object
//! schemas taken as closed, is accepted by the reader schema.
//! See the crate documentation for the consequences and the list of keywords compared.

mod compatibility;

use serde_json::Value;

pub use compatibility::{COMPATIBILITY_STEPS_MAX, check_read};

/// Deepest nesting the checker follows; deeper schemas are refused at registration.
pub const SCHEMA_DEPTH_MAX: usize = 64;

const TYPE_NAMES: [&str; 7] = ["null", "boolean", "object", "array", "number", "integer", "string"];

/// Parses and shape-checks a JSON Schema document.
pub fn parse(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text).map_err(|error| format!("not valid JSON: {error}"))?;
    check_shape(&value, &value, "#", 0)?;
    Ok(value)
}

/// The dedup form: compact JSON with object keys sorted. The keys are sorted here rather than
/// left to serde_json's map, whose order depends on a cargo feature (`preserve_order`) that any
/// other crate in the build can turn on.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (idx, key) in keys.into_iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn check_shape(schema: &Value, root: &Value, pointer: &str, depth: usize) -> Result<(), String> {
    if depth > SCHEMA_DEPTH_MAX {
        return Err(format!("schema nests deeper than {SCHEMA_DEPTH_MAX} levels at {pointer}"));
    }
    let object = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(object) => object,
        _ => return Err(format!("a schema must be an object or a boolean at {pointer}")),
    };
    if let Some(type_value) = object.get("type") {
        let names: Vec<&Value> = match type_value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for name in names {
            match name.as_str() {
                Some(name) if TYPE_NAMES.contains(&name) => {}
                _ => return Err(format!("unknown type {name} at {pointer}/type")),
            }
        }
    }
    if let Some(reference) = object.get("$ref") {
        let Some(reference) = reference.as_str() else { return Err(format!("$ref must be a string at {pointer}/$ref")) };
        if let Some(fragment) = reference.strip_prefix('#')
            && root.pointer(fragment).is_none()
        {
            return Err(format!("$ref {reference} does not resolve at {pointer}/$ref"));
        }
    }
    if let Some(required) = object.get("required")
        && !required.as_array().is_some_and(|items| items.iter().all(Value::is_string))
        && !required.is_boolean()
    {
        return Err(format!("required must be an array of strings at {pointer}/required"));
    }
    if let Some(values) = object.get("enum")
        && !values.is_array()
    {
        return Err(format!("enum must be an array at {pointer}/enum"));
    }
    for keyword in ["minimum", "maximum", "multipleOf", "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"]
    {
        if let Some(bound) = object.get(keyword)
            && !bound.is_number()
        {
            return Err(format!("{keyword} must be a number at {pointer}/{keyword}"));
        }
    }
    for keyword in ["properties", "definitions", "$defs", "patternProperties", "dependentSchemas"] {
        if let Some(members) = object.get(keyword) {
            let Some(members) = members.as_object() else { return Err(format!("{keyword} must be an object at {pointer}/{keyword}")) };
            for (name, member) in members {
                check_shape(member, root, &format!("{pointer}/{keyword}/{}", escape_pointer(name)), depth + 1)?;
            }
        }
    }
    for keyword in ["allOf", "anyOf", "oneOf", "prefixItems"] {
        if let Some(branches) = object.get(keyword) {
            let Some(branches) = branches.as_array() else { return Err(format!("{keyword} must be an array at {pointer}/{keyword}")) };
            for (branch_idx, branch) in branches.iter().enumerate() {
                check_shape(branch, root, &format!("{pointer}/{keyword}/{branch_idx}"), depth + 1)?;
            }
        }
    }
    for keyword in ["items", "additionalProperties", "additionalItems", "not", "if", "then", "else", "contains", "propertyNames"] {
        match object.get(keyword) {
            Some(Value::Array(branches)) if keyword == "items" => {
                for (branch_idx, branch) in branches.iter().enumerate() {
                    check_shape(branch, root, &format!("{pointer}/items/{branch_idx}"), depth + 1)?;
                }
            }
            Some(member) => check_shape(member, root, &format!("{pointer}/{keyword}"), depth + 1)?,
            None => {}
        }
    }
    Ok(())
}

fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}
