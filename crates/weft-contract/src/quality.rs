//! ODCS quality rules: their structural checks, and which of them Weft evaluates on every event
//! (a library metric with zero tolerance, see [`EventRule`]) versus which it defers
//! ([`crate::DeferredRule`]) because they need more than one event.
//!
//! Owns the reading of `metric`, `arguments` and the `mustBe*` operators. It does not attach rules
//! to properties (that is [`crate::compile`]) or evaluate them ([`crate::validate`]).

use serde_json::Value;

use crate::compile::compile_pattern;
use crate::compiled::EventRule;
use crate::error::{ContractError, code};
use crate::model::DataQuality;

/// Structural rules for any quality rule: exactly one operator for library/sql rules, the
/// fields each type needs, and compilable patterns.
pub(crate) fn check_quality_rule(rule: &DataQuality, pointer: &str) -> Result<(), ContractError> {
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
pub(crate) fn event_rules(rule: &DataQuality, pointer: &str) -> Result<Vec<EventRule>, ContractError> {
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
