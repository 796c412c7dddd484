//! Weft's stream settings, read from `weft.*` custom properties and from `slaProperties`.
//!
//! Owns the `weft.` namespace: which keys exist, their syntax, and where they may appear
//! (contract level = defaults for every stream, schema object level = this stream).
//! Unknown `weft.` keys are refused so a typo cannot silently fall back to a default.
//! Does not apply the settings: the server does.

use std::time::Duration;

use serde_json::Value;

use crate::compat::CompatibilityMode;
use crate::error::{ContractError, code};
use crate::limits::STREAM_PARTITIONS_MAX;
use crate::model::{CustomProperty, SlaProperty};

/// Number of partitions of a new stream.
pub const WEFT_PARTITIONS: &str = "weft.partitions";
/// Partition key: a top-level property name, or a JSON pointer (`/customer/id`) into the data.
pub const WEFT_KEY: &str = "weft.key";
/// `always`, `interval:<ms>` or `never`.
pub const WEFT_FSYNC: &str = "weft.fsync";
/// Compatibility mode for new contract versions (`BACKWARD` when absent).
pub const WEFT_COMPATIBILITY: &str = "weft.compatibility";
/// `true` refuses event properties the contract does not declare (`contract.unknown_property`).
pub const WEFT_CLOSED: &str = "weft.closed";
/// Every `weft.` key Weft knows.
pub const WEFT_KEYS: &[&str] = &[WEFT_PARTITIONS, WEFT_KEY, WEFT_FSYNC, WEFT_COMPATIBILITY, WEFT_CLOSED];

/// When the log fsyncs appended events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    Always,
    Interval { interval_ms: u64 },
    Never,
}

/// Settings of one stream; `None` means "not set, the server decides".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamSettings {
    pub partitions: Option<u32>,
    /// JSON pointer (RFC 6901) to the partition key inside the event data.
    pub key_pointer: Option<String>,
    pub fsync: Option<FsyncPolicy>,
    pub compatibility: Option<CompatibilityMode>,
    /// Objects refuse undeclared properties.
    pub closed: bool,
    /// `latency` SLA as a duration.
    pub latency: Option<Duration>,
    /// `retention` SLA as a duration.
    pub retention: Option<Duration>,
    /// Every SLA property that applies to the stream, as written.
    pub sla_properties: Vec<SlaProperty>,
}

impl StreamSettings {
    /// The compatibility mode in force: the configured one, or `BACKWARD`.
    pub fn compatibility_mode(&self) -> CompatibilityMode {
        self.compatibility.unwrap_or_default()
    }
}

/// Applies the `weft.*` entries of `custom_properties` (found at `pointer`) onto `settings`.
/// The raw key is returned unresolved; [`crate::compile`] turns it into a pointer.
pub(crate) fn apply_weft_properties(
    settings: &mut StreamSettings,
    raw_key: &mut Option<String>,
    custom_properties: &[CustomProperty],
    pointer: &str,
) -> Result<(), ContractError> {
    let mut seen: Vec<&str> = Vec::new();
    for (property_idx, custom) in custom_properties.iter().enumerate() {
        let Some(_) = custom.property.strip_prefix("weft.") else {
            continue;
        };
        let value_pointer = format!("{pointer}/{property_idx}/value");
        let invalid = |message: String| ContractError::at(code::CONTRACT_INVALID_WEFT_PROPERTY, value_pointer.clone(), message);
        let name = custom.property.as_str();
        if seen.contains(&name) {
            return Err(invalid(format!("`{name}` is set more than once")));
        }
        seen.push(name);
        match name {
            WEFT_PARTITIONS => {
                let n = integer_value(&custom.value)
                    .filter(|n| (1..=u64::from(STREAM_PARTITIONS_MAX)).contains(n))
                    .ok_or_else(|| invalid(format!("`{name}` must be an integer from 1 to {STREAM_PARTITIONS_MAX}")))?;
                settings.partitions = Some(n as u32);
            }
            WEFT_KEY => {
                let key = custom
                    .value
                    .as_str()
                    .filter(|key| !key.is_empty())
                    .ok_or_else(|| invalid(format!("`{name}` must be a property name or a json pointer")))?;
                *raw_key = Some(key.to_owned());
            }
            WEFT_FSYNC => {
                let text = custom.value.as_str().unwrap_or_default();
                settings.fsync =
                    Some(parse_fsync(text).ok_or_else(|| invalid(format!("`{name}` must be `always`, `interval:<ms>` or `never`")))?);
            }
            WEFT_COMPATIBILITY => {
                let text = custom.value.as_str().unwrap_or_default();
                settings.compatibility = Some(CompatibilityMode::parse(text).ok_or_else(|| {
                    invalid(format!(
                        "`{name}` must be one of {}",
                        CompatibilityMode::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
                    ))
                })?);
            }
            WEFT_CLOSED => {
                settings.closed = bool_value(&custom.value).ok_or_else(|| invalid(format!("`{name}` must be true or false")))?;
            }
            _ => {
                return Err(ContractError::at(
                    code::CONTRACT_INVALID_WEFT_PROPERTY,
                    format!("{pointer}/{property_idx}/property"),
                    format!("unknown weft setting `{name}` (known: {})", WEFT_KEYS.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

/// Refuses `weft.*` keys where Weft reads none (properties, servers, ...).
pub(crate) fn refuse_weft_properties(custom_properties: &[CustomProperty], pointer: &str) -> Result<(), ContractError> {
    for (property_idx, custom) in custom_properties.iter().enumerate() {
        if custom.property.starts_with("weft.") {
            return Err(ContractError::at(
                code::CONTRACT_INVALID_WEFT_PROPERTY,
                format!("{pointer}/{property_idx}/property"),
                format!("`{}` is only read on the contract and on schema objects", custom.property),
            ));
        }
    }
    Ok(())
}

/// Reads the SLA properties that apply to schema object `object_name` (no `element`, or an
/// `element` list naming the object or one of its properties) and converts latency/retention.
pub(crate) fn apply_sla(settings: &mut StreamSettings, sla_properties: &[SlaProperty], object_name: &str) -> Result<(), ContractError> {
    for (sla_idx, sla) in sla_properties.iter().enumerate() {
        let applies = sla.element.as_deref().is_none_or(|elements| {
            elements
                .split(',')
                .map(str::trim)
                .any(|element| element == object_name || element.split_once('.').is_some_and(|(object, _)| object == object_name))
        });
        if !applies {
            continue;
        }
        let property = sla.property.to_ascii_lowercase();
        let target = match property.as_str() {
            "latency" | "ly" => Some(&mut settings.latency),
            "retention" | "re" => Some(&mut settings.retention),
            _ => None,
        };
        if let Some(target) = target {
            let duration = sla_duration(&sla.value, sla.unit.as_deref()).ok_or_else(|| {
                ContractError::at(
                    code::CONTRACT_INVALID,
                    format!("/slaProperties/{sla_idx}"),
                    format!("sla `{}` needs a non-negative number `value` and a time `unit` (ms, s, m, h, d, w, y)", sla.property),
                )
            })?;
            *target = Some(duration);
        }
        settings.sla_properties.push(sla.clone());
    }
    Ok(())
}

fn parse_fsync(text: &str) -> Option<FsyncPolicy> {
    match text {
        "always" => Some(FsyncPolicy::Always),
        "never" => Some(FsyncPolicy::Never),
        _ => {
            let interval_ms: u64 = text.strip_prefix("interval:")?.parse().ok()?;
            (interval_ms > 0).then_some(FsyncPolicy::Interval { interval_ms })
        }
    }
}

/// Integers written as numbers, or as strings because YAML authors quote them.
fn integer_value(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn bool_value(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// `value` + ISO-ish `unit` as a duration. Years are 365 days, months 30 days.
fn sla_duration(value: &Value, unit: Option<&str>) -> Option<Duration> {
    let amount = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    if !amount.is_finite() || amount < 0.0 {
        return None;
    }
    let unit_seconds: f64 = match unit?.to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => 0.001,
        "s" | "sec" | "second" | "seconds" => 1.0,
        "m" | "min" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hour" | "hours" => 3_600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 7.0 * 86_400.0,
        "mo" | "month" | "months" => 30.0 * 86_400.0,
        "y" | "yr" | "year" | "years" => 365.0 * 86_400.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(amount * unit_seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sla_units_convert_to_durations() {
        assert_eq!(sla_duration(&json!(4), Some("d")), Some(Duration::from_secs(4 * 86_400)));
        assert_eq!(sla_duration(&json!("250"), Some("ms")), Some(Duration::from_millis(250)));
        assert_eq!(sla_duration(&json!(1), Some("fortnight")), None);
        assert_eq!(sla_duration(&json!(1), None), None);
        assert_eq!(sla_duration(&json!(-1), Some("d")), None);
    }

    #[test]
    fn fsync_accepts_only_the_three_forms() {
        assert_eq!(parse_fsync("always"), Some(FsyncPolicy::Always));
        assert_eq!(parse_fsync("interval:50"), Some(FsyncPolicy::Interval { interval_ms: 50 }));
        assert_eq!(parse_fsync("interval:0"), None);
        assert_eq!(parse_fsync("sometimes"), None);
    }
}
