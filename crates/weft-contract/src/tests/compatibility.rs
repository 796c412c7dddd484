//! Compatibility: old properties + new properties + mode -> compatible?, change descriptions.

use super::*;

fn versioned(version: &str, properties_yaml: &str) -> CompiledContract {
    let text = contract_yaml(properties_yaml, "").replace("version: 1.0.0", &format!("version: {version}"));
    CompiledContract::compile(&parse_contract(&text), "orders").unwrap()
}

/// The one compatibility helper: old + new properties -> (compatible under BACKWARD, under
/// FORWARD, change descriptions).
fn check_change(old_yaml: &str, new_yaml: &str, backward_ok: bool, forward_ok: bool, descriptions: &[&str]) {
    let old = versioned("1.0.0", old_yaml);
    let new = versioned("2.0.0", new_yaml);
    let backward = check_compatibility(std::slice::from_ref(&old), &new, CompatibilityMode::Backward);
    let forward = check_compatibility(std::slice::from_ref(&old), &new, CompatibilityMode::Forward);
    let full = check_compatibility(std::slice::from_ref(&old), &new, CompatibilityMode::Full);
    let none = check_compatibility(std::slice::from_ref(&old), &new, CompatibilityMode::None);
    let actual: Vec<String> = diff(old.schema_object(), new.schema_object()).into_iter().map(|c| c.description).collect();
    assert_eq!(actual, descriptions);
    assert_eq!(backward.compatible, backward_ok, "backward {descriptions:?}");
    assert_eq!(forward.compatible, forward_ok, "forward {descriptions:?}");
    assert_eq!(full.compatible, backward_ok && forward_ok);
    assert!(none.compatible);
    for change in backward.changes {
        assert!(!change.change.reason.is_empty());
    }
}

const AMOUNT_NUMBER: &str = "      - name: amount\n        logicalType: number\n        required: true\n";

#[test]
fn adding_an_optional_property_is_compatible() {
    let new = format!("{AMOUNT_NUMBER}      - name: note\n        logicalType: string\n");
    check_change(AMOUNT_NUMBER, &new, true, true, &["note: added (optional)"]);
}

#[test]
fn adding_a_required_property_breaks_backward() {
    let new = format!("{AMOUNT_NUMBER}      - name: currency\n        logicalType: string\n        required: true\n");
    check_change(AMOUNT_NUMBER, &new, false, true, &["currency: added (required)"]);
}

#[test]
fn removing_a_property_breaks_forward_only() {
    let old = format!("{AMOUNT_NUMBER}      - name: note\n        logicalType: string\n");
    check_change(&old, AMOUNT_NUMBER, true, false, &["note: removed"]);
}

#[test]
fn incompatible_type_change_breaks_both() {
    check_change(
        AMOUNT_NUMBER,
        "      - name: amount\n        logicalType: string\n        required: true\n",
        false,
        false,
        &["amount: number -> string"],
    );
}

#[test]
fn widening_a_type_is_backward_compatible() {
    check_change(
        "      - name: amount\n        logicalType: integer\n        required: true\n",
        AMOUNT_NUMBER,
        true,
        false,
        &["amount: integer -> number"],
    );
}

#[test]
fn optional_to_required_narrows() {
    check_change("      - name: amount\n        logicalType: number\n", AMOUNT_NUMBER, false, true, &["amount: optional -> required"]);
}

#[test]
fn bounds_and_patterns_narrow_or_widen() {
    let with = |options: &str| format!("{AMOUNT_NUMBER}        logicalTypeOptions: {options}\n");
    check_change(&with("{maximum: 100}"), &with("{maximum: 50}"), false, true, &["amount: maximum lowered 100 -> 50"]);
    check_change(&with("{maximum: 50}"), &with("{maximum: 100}"), true, false, &["amount: maximum raised 50 -> 100"]);
    check_change(&with("{minimum: 0}"), &with("{minimum: 1}"), false, true, &["amount: minimum raised 0 -> 1"]);
    check_change(AMOUNT_NUMBER, &with("{format: f32}"), false, true, &["amount: format f64 -> f32"]);
    let string = |options: &str| format!("      - name: c\n        logicalType: string\n        logicalTypeOptions: {options}\n");
    check_change(
        &string("{maxLength: 3}"),
        &string("{maxLength: 3, pattern: '^[A-Z]+$'}"),
        false,
        true,
        &["c: pattern added \"^[A-Z]+$\""],
    );
    check_change(&string("{pattern: a}"), &string("{pattern: b}"), false, false, &["c: pattern changed \"a\" -> \"b\""]);
}

#[test]
fn enum_value_removal_narrows_and_addition_widens() {
    let currency = |values: &str| {
        format!(
            "      - name: currency\n        logicalType: string\n        quality:\n          - metric: invalidValues\n            arguments: {{validValues: {values}}}\n            mustBe: 0\n"
        )
    };
    check_change(&currency("[EUR, USD]"), &currency("[USD]"), false, true, &["currency: enum value removed: \"EUR\""]);
    check_change(&currency("[USD]"), &currency("[USD, EUR]"), true, false, &["currency: enum value added: \"EUR\""]);
}

#[test]
fn nested_changes_are_named_by_dotted_path() {
    let customer = |email_type: &str| {
        format!(
            "      - name: customer\n        logicalType: object\n        properties:\n          - name: email\n            logicalType: {email_type}\n"
        )
    };
    check_change(&customer("string"), &customer("integer"), false, false, &["customer.email: string -> integer"]);
}

#[test]
fn changing_the_physical_name_breaks_both_directions() {
    check_change(
        "      - name: amount\n        logicalType: number\n",
        "      - name: amount\n        physicalName: amount_eur\n        logicalType: number\n",
        false,
        false,
        &["amount: key in event data amount -> amount_eur"],
    );
}

#[test]
fn transitive_modes_check_every_earlier_version() {
    let v1 = versioned("1.0.0", "      - name: a\n        logicalType: string\n        logicalTypeOptions: {maxLength: 10}\n");
    let v2 = versioned("2.0.0", "      - name: a\n        logicalType: string\n        logicalTypeOptions: {maxLength: 5}\n");
    let v3 = versioned("3.0.0", "      - name: a\n        logicalType: string\n        logicalTypeOptions: {maxLength: 5}\n");
    let previous = [v1, v2];
    assert!(check_compatibility(&previous, &v3, CompatibilityMode::Backward).compatible);
    let report = check_compatibility(&previous, &v3, CompatibilityMode::BackwardTransitive);
    assert!(!report.compatible);
    let breaking: Vec<&str> = report.breaking_changes().map(|c| c.against_version.as_str()).collect();
    assert_eq!(breaking, vec!["1.0.0"]);
}
