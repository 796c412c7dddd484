//! Reading one property's `logicalTypeOptions` into the leaf shapes of the compiled tree: which
//! keys apply to which logical type, numeric and temporal bounds, integer formats, and patterns.
//!
//! Owns the per-type rules for the options object. It does not walk properties, objects or
//! arrays (that is the parent module's compiler) and does not validate events.

use regex::Regex;
use serde_json::Value;

use crate::compiled::{NumericShape, TemporalShape};
use crate::error::{ContractError, code, pointer_join};
use crate::limits::REGEX_SIZE_BYTES_MAX;
use crate::model::LogicalTypeOptions;
use crate::temporal::{TemporalFormat, TemporalKind, TemporalParts};

/// Refuses `logicalTypeOptions` keys that do not apply to the logical type (ODCS closes the
/// options object per type).
pub(crate) fn check_allowed_options(
    logical_type: Option<&str>,
    options: &LogicalTypeOptions,
    options_pointer: &str,
) -> Result<(), ContractError> {
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

pub(crate) fn numeric_shape(options: &LogicalTypeOptions, integer: bool, options_pointer: &str) -> Result<NumericShape, ContractError> {
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

pub(crate) fn temporal_shape(
    kind: TemporalKind,
    options: &LogicalTypeOptions,
    options_pointer: &str,
) -> Result<TemporalShape, ContractError> {
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
