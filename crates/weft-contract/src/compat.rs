//! Comparing contract versions: a field-level [`diff`] and [`check_compatibility`] under the
//! Confluent-style [`CompatibilityMode`]s.
//!
//! Owns the rules that decide whether a change breaks readers or writers; see the crate docs for
//! the content model Weft assumes. Works on schema objects, so contracts need not be compiled.
//!
//! Every change is classified by the set of events it accepts:
//! * narrower (the new version refuses some events the old one accepted) breaks **backward**
//!   compatibility: readers upgraded to the new version may receive old events they refuse;
//! * wider (the new version accepts events the old one refused) breaks **forward** compatibility:
//!   readers still on the old version may receive new events they refuse;
//! * incomparable changes (a type swap, a changed pattern) break both.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::compile::integer_format_range;
use crate::compiled::CompiledContract;
use crate::model::{SchemaObject, SchemaProperty};

/// Schema-registry compatibility modes (the names and meaning of Confluent Schema Registry).
///
/// The one type for this concept across Weft: contracts' `weft.compatibility`, `weft contract
/// diff`, and the schema registry's levels (`weft-registry`, whose wire spellings are [`Self::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompatibilityMode {
    /// New readers can read data written with the previous version. Upgrade consumers first.
    #[default]
    Backward,
    BackwardTransitive,
    /// Old readers can read data written with the new version. Upgrade producers first.
    Forward,
    ForwardTransitive,
    /// Both directions against the previous version.
    Full,
    FullTransitive,
    /// No checks.
    None,
}

impl CompatibilityMode {
    pub const ALL: &'static [CompatibilityMode] = &[
        CompatibilityMode::Backward,
        CompatibilityMode::BackwardTransitive,
        CompatibilityMode::Forward,
        CompatibilityMode::ForwardTransitive,
        CompatibilityMode::Full,
        CompatibilityMode::FullTransitive,
        CompatibilityMode::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CompatibilityMode::Backward => "BACKWARD",
            CompatibilityMode::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityMode::Forward => "FORWARD",
            CompatibilityMode::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityMode::Full => "FULL",
            CompatibilityMode::FullTransitive => "FULL_TRANSITIVE",
            CompatibilityMode::None => "NONE",
        }
    }

    /// Parses a mode name, ignoring case.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|mode| mode.name().eq_ignore_ascii_case(text))
    }

    /// Whether readers on the new version must read data written with old ones.
    pub fn checks_backward(self) -> bool {
        matches!(
            self,
            CompatibilityMode::Backward
                | CompatibilityMode::BackwardTransitive
                | CompatibilityMode::Full
                | CompatibilityMode::FullTransitive
        )
    }

    /// Whether readers on old versions must read data written with the new one.
    pub fn checks_forward(self) -> bool {
        matches!(
            self,
            CompatibilityMode::Forward | CompatibilityMode::ForwardTransitive | CompatibilityMode::Full | CompatibilityMode::FullTransitive
        )
    }

    /// Whether the check runs against every earlier version instead of only the latest.
    pub fn is_transitive(self) -> bool {
        matches!(self, CompatibilityMode::BackwardTransitive | CompatibilityMode::ForwardTransitive | CompatibilityMode::FullTransitive)
    }
}

impl fmt::Display for CompatibilityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One field-level difference between two versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Dotted property path (`customer.email`; array items are `lines[]`).
    pub path: String,
    /// What changed, e.g. `amount: number -> string`, `maximum lowered 100 -> 50`.
    pub description: String,
    /// Events valid under the old version may be refused by the new one (breaks BACKWARD:
    /// upgraded readers cannot read old data).
    pub breaks_backward: bool,
    /// Events valid under the new version may be refused by the old one (breaks FORWARD:
    /// old readers cannot read new data).
    pub breaks_forward: bool,
    /// A sentence saying why.
    pub reason: String,
}

/// The result of [`check_compatibility`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityReport {
    pub mode: CompatibilityMode,
    /// No change breaks the mode against any checked version.
    pub compatible: bool,
    /// Every change against every checked version, with whether it breaks the mode.
    pub changes: Vec<CheckedChange>,
}

impl CompatibilityReport {
    /// The changes that make the new version incompatible.
    pub fn breaking_changes(&self) -> impl Iterator<Item = &CheckedChange> {
        self.changes.iter().filter(|c| c.breaks_mode)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedChange {
    /// The contract version the new one was compared with.
    pub against_version: String,
    pub change: Change,
    pub breaks_mode: bool,
}

/// Checks `new` against `previous` (all earlier versions, oldest first). Non-transitive modes
/// compare with the last one only; `_TRANSITIVE` modes with all; `NONE` reports the diff against
/// the last one and never fails.
pub fn check_compatibility(previous: &[CompiledContract], new: &CompiledContract, mode: CompatibilityMode) -> CompatibilityReport {
    let checked: &[CompiledContract] =
        if mode.is_transitive() { previous } else { previous.last().map(std::slice::from_ref).unwrap_or_default() };
    let mut changes = Vec::new();
    for old in checked {
        for change in diff(old.schema_object(), new.schema_object()) {
            let breaks_mode = (mode.checks_backward() && change.breaks_backward) || (mode.checks_forward() && change.breaks_forward);
            changes.push(CheckedChange { against_version: old.contract_version().to_owned(), change, breaks_mode });
        }
    }
    CompatibilityReport { mode, compatible: changes.iter().all(|c| !c.breaks_mode), changes }
}

/// Field-level changelog from `old` to `new`, whatever the mode.
pub fn diff(old: &SchemaObject, new: &SchemaObject) -> Vec<Change> {
    let old_fields = flatten(&old.properties);
    let new_fields = flatten(&new.properties);
    let mut changes = Vec::new();
    for (path, old_property) in &old_fields {
        match new_fields.get(path) {
            None => changes.push(Change {
                path: path.clone(),
                description: format!("{path}: removed"),
                breaks_backward: false,
                breaks_forward: true,
                reason: "readers on the old version expect this property and will no longer receive it; readers on the new version ignore it in old events".to_owned(),
            }),
            Some(new_property) => compare_property(path, old_property, new_property, &mut changes),
        }
    }
    for (path, new_property) in &new_fields {
        if old_fields.contains_key(path) {
            continue;
        }
        let required = new_property.is_required();
        changes.push(Change {
            path: path.clone(),
            description: format!("{path}: added ({})", if required { "required" } else { "optional" }),
            breaks_backward: required,
            breaks_forward: false,
            reason: if required {
                "events written with the old version lack this required property".to_owned()
            } else {
                "old events simply lack the optional property, and old readers ignore properties they do not know".to_owned()
            },
        });
    }
    changes
}

/// Properties by dotted path (array items as `path[]`), parents before children.
fn flatten(properties: &[SchemaProperty]) -> BTreeMap<String, &SchemaProperty> {
    fn walk<'a>(prefix: &str, property: &'a SchemaProperty, out: &mut BTreeMap<String, &'a SchemaProperty>) {
        out.insert(prefix.to_owned(), property);
        for child in &property.properties {
            let name = child.name.as_deref().or(child.physical_name.as_deref()).unwrap_or_default();
            walk(&format!("{prefix}.{name}"), child, out);
        }
        if let Some(items) = &property.items {
            walk(&format!("{prefix}[]"), items, out);
        }
    }
    let mut out = BTreeMap::new();
    for property in properties {
        let name = property.name.as_deref().or(property.physical_name.as_deref()).unwrap_or_default();
        walk(name, property, &mut out);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Wider,
    Narrower,
    Incomparable,
}

fn push(changes: &mut Vec<Change>, path: &str, description: String, relation: Relation, reason: &str) {
    changes.push(Change {
        path: path.to_owned(),
        description,
        breaks_backward: matches!(relation, Relation::Narrower | Relation::Incomparable),
        breaks_forward: matches!(relation, Relation::Wider | Relation::Incomparable),
        reason: reason.to_owned(),
    });
}

const NARROWER: &str = "the new version refuses some values the old one accepted, so old events may fail for upgraded readers";
const WIDER: &str = "the new version accepts values the old one refused, so readers still on the old version may fail on new events";
const INCOMPARABLE: &str = "neither version accepts all values of the other, so readers break in both directions";

fn type_name(property: &SchemaProperty) -> &str {
    property.logical_type.as_deref().unwrap_or("any")
}

/// Whether every value of logical type `narrow` is also a valid value of `wide`.
fn type_widens(narrow: &str, wide: &str) -> bool {
    narrow == wide
        || wide == "any"
        || (narrow == "integer" && wide == "number")
        || (matches!(narrow, "date" | "timestamp" | "time") && wide == "string")
        || (narrow == "object" && wide == "map")
}

fn compare_property(path: &str, old: &SchemaProperty, new: &SchemaProperty, changes: &mut Vec<Change>) {
    match (old.is_required(), new.is_required()) {
        (false, true) => push(
            changes,
            path,
            format!("{path}: optional -> required"),
            Relation::Narrower,
            "old events may lack the property or carry null, which the new version refuses",
        ),
        (true, false) => push(
            changes,
            path,
            format!("{path}: required -> optional"),
            Relation::Wider,
            "new events may lack the property or carry null, which readers on the old version refuse",
        ),
        _ => {}
    }

    if old.data_key() != new.data_key() {
        let show = |p: &SchemaProperty| p.data_key().unwrap_or_default().to_owned();
        push(
            changes,
            path,
            format!("{path}: key in event data {} -> {}", show(old), show(new)),
            Relation::Incomparable,
            "the property's `physicalName` changed, so old and new events carry it under different keys",
        );
    }
    let (old_type, new_type) = (type_name(old), type_name(new));
    if old_type != new_type {
        let relation = if type_widens(old_type, new_type) {
            Relation::Wider
        } else if type_widens(new_type, old_type) {
            Relation::Narrower
        } else {
            Relation::Incomparable
        };
        let reason = match relation {
            Relation::Wider => WIDER,
            Relation::Narrower => NARROWER,
            Relation::Incomparable => INCOMPARABLE,
        };
        push(changes, path, format!("{path}: {old_type} -> {new_type}"), relation, reason);
        // Constraints of different types are not comparable; the type change says it all.
        return;
    }
    let default_options = Default::default();
    let old_options = old.logical_type_options.as_ref().unwrap_or(&default_options);
    let new_options = new.logical_type_options.as_ref().unwrap_or(&default_options);

    // Lower bounds: raising narrows. Upper bounds: lowering narrows.
    let numeric = |value: &Option<Value>| value.as_ref().and_then(Value::as_f64);
    bound(changes, path, "minimum", numeric(&old_options.minimum), numeric(&new_options.minimum), true);
    bound(changes, path, "maximum", numeric(&old_options.maximum), numeric(&new_options.maximum), false);
    bound(changes, path, "exclusiveMinimum", numeric(&old_options.exclusive_minimum), numeric(&new_options.exclusive_minimum), true);
    bound(changes, path, "exclusiveMaximum", numeric(&old_options.exclusive_maximum), numeric(&new_options.exclusive_maximum), false);
    let as_f64 = |value: Option<u64>| value.map(|v| v as f64);
    bound(changes, path, "minLength", as_f64(old_options.min_length), as_f64(new_options.min_length), true);
    bound(changes, path, "maxLength", as_f64(old_options.max_length), as_f64(new_options.max_length), false);
    bound(changes, path, "minItems", as_f64(old_options.min_items), as_f64(new_options.min_items), true);
    bound(changes, path, "maxItems", as_f64(old_options.max_items), as_f64(new_options.max_items), false);
    bound(changes, path, "minProperties", as_f64(old_options.min_properties), as_f64(new_options.min_properties), true);
    bound(changes, path, "maxProperties", as_f64(old_options.max_properties), as_f64(new_options.max_properties), false);
    // Date and timestamp bounds are strings; compare them as text changes.
    for (key, old_value, new_value) in [
        ("minimum", &old_options.minimum, &new_options.minimum),
        ("maximum", &old_options.maximum, &new_options.maximum),
        ("exclusiveMinimum", &old_options.exclusive_minimum, &new_options.exclusive_minimum),
        ("exclusiveMaximum", &old_options.exclusive_maximum, &new_options.exclusive_maximum),
    ] {
        if let (Some(Value::String(_)), _) | (_, Some(Value::String(_))) = (old_value, new_value) {
            optional_text(changes, path, key, text_of(old_value), text_of(new_value), Relation::Incomparable);
        }
    }
    optional_text(changes, path, "pattern", old_options.pattern.clone(), new_options.pattern.clone(), Relation::Incomparable);
    let old_format = old_options.format.clone();
    let new_format = new_options.format.clone();
    if old_type == "integer"
        && let (Some(old_range), Some(new_range)) =
            (integer_format_range(old_format.as_deref().unwrap_or("i32")), integer_format_range(new_format.as_deref().unwrap_or("i32")))
        && old_range != new_range
    {
        let relation = if new_range.0 <= old_range.0 && new_range.1 >= old_range.1 {
            Relation::Wider
        } else if new_range.0 >= old_range.0 && new_range.1 <= old_range.1 {
            Relation::Narrower
        } else {
            Relation::Incomparable
        };
        let description =
            format!("{path}: format {} -> {}", old_format.as_deref().unwrap_or("i32"), new_format.as_deref().unwrap_or("i32"));
        push(changes, path, description, relation, reason_for(relation));
    } else if old_type == "number" && old_format != new_format {
        let widened = new_format.as_deref() != Some("f32");
        let relation = if widened { Relation::Wider } else { Relation::Narrower };
        let description =
            format!("{path}: format {} -> {}", old_format.as_deref().unwrap_or("f64"), new_format.as_deref().unwrap_or("f64"));
        push(changes, path, description, relation, reason_for(relation));
    } else if old_type != "integer" && old_type != "number" {
        optional_text(changes, path, "format", old_format, new_format, Relation::Incomparable);
    }
    if old_options.multiple_of != new_options.multiple_of {
        let relation = match (old_options.multiple_of, new_options.multiple_of) {
            (Some(_), None) => Relation::Wider,
            (None, Some(_)) => Relation::Narrower,
            (Some(o), Some(n)) if (o / n).fract() == 0.0 => Relation::Wider,
            (Some(o), Some(n)) if (n / o).fract() == 0.0 => Relation::Narrower,
            _ => Relation::Incomparable,
        };
        let show = |v: Option<f64>| v.map_or("none".to_owned(), |v| v.to_string());
        let description = format!("{path}: multipleOf {} -> {}", show(old_options.multiple_of), show(new_options.multiple_of));
        push(changes, path, description, relation, reason_for(relation));
    }
    if old_options.unique_items.unwrap_or(false) != new_options.unique_items.unwrap_or(false) {
        let relation = if new_options.unique_items == Some(true) { Relation::Narrower } else { Relation::Wider };
        let description = format!("{path}: uniqueItems {}", if relation == Relation::Narrower { "added" } else { "removed" });
        push(changes, path, description, relation, reason_for(relation));
    }
    allowed_values(changes, path, &enum_values(old), &enum_values(new));
    allowed_values(changes, path, &valid_values(old), &valid_values(new));

    if old.classification != new.classification {
        let show = |c: &Option<String>| c.clone().unwrap_or_else(|| "none".to_owned());
        changes.push(Change {
            path: path.to_owned(),
            description: format!("{path}: classification {} -> {}", show(&old.classification), show(&new.classification)),
            breaks_backward: false,
            breaks_forward: false,
            reason: "classification changes masking and access, not which events are valid".to_owned(),
        });
    }
}

fn reason_for(relation: Relation) -> &'static str {
    match relation {
        Relation::Wider => WIDER,
        Relation::Narrower => NARROWER,
        Relation::Incomparable => INCOMPARABLE,
    }
}

fn text_of(value: &Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => Some(other.to_string()),
        None => None,
    }
}

/// A numeric bound. `is_lower` bounds narrow when raised; upper bounds narrow when lowered.
fn bound(changes: &mut Vec<Change>, path: &str, key: &str, old: Option<f64>, new: Option<f64>, is_lower: bool) {
    let (description, relation) = match (old, new) {
        (Some(o), Some(n)) if o == n => return,
        (None, None) => return,
        (Some(o), None) => (format!("{path}: {key} removed (was {o})"), Relation::Wider),
        (None, Some(n)) => (format!("{path}: {key} added {n}"), Relation::Narrower),
        (Some(o), Some(n)) => {
            let raised = n > o;
            let verb = if raised { "raised" } else { "lowered" };
            let relation = if raised == is_lower { Relation::Narrower } else { Relation::Wider };
            (format!("{path}: {key} {verb} {o} -> {n}"), relation)
        }
    };
    push(changes, path, description, relation, reason_for(relation));
}

/// A textual constraint (pattern, format, date bound): adding narrows, removing widens, changing
/// is `changed_relation` (usually incomparable: two regexes cannot be compared cheaply).
fn optional_text(changes: &mut Vec<Change>, path: &str, key: &str, old: Option<String>, new: Option<String>, changed_relation: Relation) {
    let (description, relation) = match (&old, &new) {
        (Some(o), Some(n)) if o == n => return,
        (None, None) => return,
        (Some(o), None) => (format!("{path}: {key} removed (was {o:?})"), Relation::Wider),
        (None, Some(n)) => (format!("{path}: {key} added {n:?}"), Relation::Narrower),
        (Some(o), Some(n)) => (format!("{path}: {key} changed {o:?} -> {n:?}"), changed_relation),
    };
    push(changes, path, description, relation, reason_for(relation));
}

fn enum_values(property: &SchemaProperty) -> Option<Vec<Value>> {
    (!property.enum_values.is_empty()).then(|| property.enum_values.iter().map(|e| e.value.clone()).collect())
}

/// `validValues` of `invalidValues` quality rules (checked per event when zero-tolerance).
fn valid_values(property: &SchemaProperty) -> Option<Vec<Value>> {
    property.quality.iter().find_map(|rule| {
        (rule.metric_name() == Some("invalidValues")).then(|| rule.arguments.as_ref()?.get("validValues")?.as_array().cloned()).flatten()
    })
}

fn allowed_values(changes: &mut Vec<Change>, path: &str, old: &Option<Vec<Value>>, new: &Option<Vec<Value>>) {
    match (old, new) {
        (None, None) => {}
        (Some(_), None) => push(changes, path, format!("{path}: allowed values removed"), Relation::Wider, WIDER),
        (None, Some(values)) => {
            push(changes, path, format!("{path}: allowed values added {}", Value::Array(values.clone())), Relation::Narrower, NARROWER)
        }
        (Some(old_values), Some(new_values)) => {
            for value in old_values.iter().filter(|v| !new_values.contains(v)) {
                push(changes, path, format!("{path}: enum value removed: {value}"), Relation::Narrower, NARROWER);
            }
            for value in new_values.iter().filter(|v| !old_values.contains(v)) {
                push(changes, path, format!("{path}: enum value added: {value}"), Relation::Wider, WIDER);
            }
        }
    }
}
