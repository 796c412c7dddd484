//! Validation: contract properties + event -> expected violations, through `check()`.

use super::*;

#[test]
fn valid_event_passes() {
    check(ORDER_PROPERTIES, good_order(), &[]);
}

#[test]
fn required_property_must_be_present_and_non_null() {
    let mut event = good_order();
    event.as_object_mut().unwrap().remove("amount");
    event["currency"] = Value::Null;
    check(ORDER_PROPERTIES, event, &[("contract.required_missing", "/amount"), ("contract.required_missing", "/currency")]);
}

#[test]
fn optional_property_may_be_absent_or_null() {
    let mut event = good_order();
    event.as_object_mut().unwrap().remove("quantity");
    event["customer"] = Value::Null;
    check(ORDER_PROPERTIES, event, &[]);
}

#[test]
fn every_violation_of_an_event_is_reported() {
    let event = json!({
        "order_id": "not-a-uuid",
        "amount": "42",
        "quantity": 70000,
        "currency": "GBP",
        "placed_at": "2026-11-21 10:00",
        "customer": {"email": "nope", "tier": 3}
    });
    check(
        ORDER_PROPERTIES,
        event,
        &[
            ("contract.format_invalid", "/order_id"),
            ("contract.type_mismatch", "/amount"),
            ("contract.out_of_range", "/quantity"),
            ("contract.not_valid_value", "/currency"),
            ("contract.format_invalid", "/placed_at"),
            ("contract.pattern_mismatch", "/customer/email"),
            ("contract.type_mismatch", "/customer/tier"),
        ],
    );
}

#[test]
fn event_data_must_be_an_object() {
    check(ORDER_PROPERTIES, json!([1, 2]), &[("contract.type_mismatch", "")]);
}

#[test]
fn integer_accepts_integral_floats_and_enforces_format_bounds() {
    let properties = "      - name: small
        logicalType: integer
        logicalTypeOptions: {format: i8}
      - name: big
        logicalType: integer
        logicalTypeOptions: {format: u64}
";
    check(properties, json!({"small": 1.0, "big": 18446744073709551615u64}), &[]);
    check(properties, json!({"small": 1.5}), &[("contract.type_mismatch", "/small")]);
    check(properties, json!({"small": 128, "big": -1}), &[("contract.out_of_range", "/small"), ("contract.out_of_range", "/big")]);
}

#[test]
fn numeric_bounds_are_inclusive_unless_exclusive() {
    let properties = "      - name: a
        logicalType: number
        logicalTypeOptions: {minimum: 0, maximum: 10}
      - name: b
        logicalType: number
        logicalTypeOptions: {exclusiveMinimum: 0, exclusiveMaximum: 10, multipleOf: 0.5}
";
    check(properties, json!({"a": 0, "b": 9.5}), &[]);
    check(properties, json!({"a": 10.01, "b": 0}), &[("contract.out_of_range", "/a"), ("contract.out_of_range", "/b")]);
    check(properties, json!({"b": 1.25}), &[("contract.not_multiple_of", "/b")]);
}

#[test]
fn odcs_v30_boolean_exclusive_bounds_make_minimum_exclusive() {
    let text = contract_yaml(
        "      - name: a\n        logicalType: integer\n        logicalTypeOptions: {minimum: 0, exclusiveMinimum: true}\n",
        "",
    )
    .replace("v3.1.0", "v3.0.2");
    let compiled = CompiledContract::compile(&parse_contract(&text), "orders").unwrap();
    assert_eq!(violations(&compiled, &json!({"a": 0})), vec![("contract.out_of_range", "/a".to_owned())]);
    assert!(compiled.validate(&json!({"a": 1})).is_ok());
}

#[test]
fn string_length_counts_characters_not_bytes() {
    let properties = "      - name: s\n        logicalType: string\n        logicalTypeOptions: {minLength: 2, maxLength: 3}\n";
    check(properties, json!({"s": "äöü"}), &[]);
    check(properties, json!({"s": "a"}), &[("contract.length_out_of_range", "/s")]);
    check(properties, json!({"s": "abcd"}), &[("contract.length_out_of_range", "/s")]);
}

#[test]
fn string_formats_are_checked() {
    let properties = "      - name: e
        logicalType: string
        logicalTypeOptions: {format: email}
      - name: h
        logicalType: string
        logicalTypeOptions: {format: hostname}
      - name: ip
        logicalType: string
        logicalTypeOptions: {format: ipv6}
      - name: p
        logicalType: string
        logicalTypeOptions: {format: password}
";
    check(properties, json!({"e": "a@b.org", "h": "kafka-1", "ip": "::1", "p": "anything"}), &[]);
    check(
        properties,
        json!({"e": "a@", "h": "-x", "ip": "1.2.3.4"}),
        &[("contract.format_invalid", "/e"), ("contract.format_invalid", "/h"), ("contract.format_invalid", "/ip")],
    );
}

#[test]
fn dates_times_and_timestamps_are_iso_strings_with_bounds() {
    let properties = "      - name: d
        logicalType: date
        logicalTypeOptions: {minimum: '2020-01-01', exclusiveMaximum: '2030-01-01'}
      - name: t
        logicalType: time
      - name: ts
        logicalType: timestamp
        logicalTypeOptions: {minimum: '2026-01-01T00:00:00Z'}
      - name: local
        logicalType: timestamp
        logicalTypeOptions: {format: 'yyyy-MM-dd HH:mm:ss'}
";
    check(
        properties,
        json!({"d": "2024-02-29", "t": "23:59:59.5", "ts": "2026-01-01T01:00:00+01:00", "local": "2026-11-21 10:00:00"}),
        &[],
    );
    check(
        properties,
        json!({"d": "2019-12-31", "t": "24:00:00", "ts": "2025-12-31T23:59:59Z", "local": "2026-11-21T10:00:00"}),
        &[
            ("contract.out_of_range", "/d"),
            ("contract.format_invalid", "/t"),
            ("contract.out_of_range", "/ts"),
            ("contract.format_invalid", "/local"),
        ],
    );
    check(properties, json!({"d": "2030-01-01", "ts": 5}), &[("contract.out_of_range", "/d"), ("contract.type_mismatch", "/ts")]);
}

#[test]
fn v32_enum_restricts_values() {
    let text = contract_yaml("      - name: c\n        logicalType: string\n        enum: [{value: EUR}, {value: USD}]\n", "")
        .replace("v3.1.0", "v3.2.0");
    let compiled = CompiledContract::compile(&parse_contract(&text), "orders").unwrap();
    assert!(compiled.validate(&json!({"c": "USD"})).is_ok());
    assert!(compiled.validate(&json!({"c": null})).is_ok());
    assert_eq!(violations(&compiled, &json!({"c": "GBP"})), vec![("contract.not_valid_value", "/c".to_owned())]);
}

#[test]
fn zero_tolerance_quality_rules_run_per_event() {
    let properties = "      - name: a
        logicalType: string
        quality:
          - metric: nullValues
            mustBe: 0
      - name: b
        logicalType: string
        quality:
          - metric: missingValues
            arguments: {missingValues: [null, '', N/A]}
            mustBeLessThan: 1
      - name: c
        logicalType: string
        quality:
          - metric: invalidValues
            arguments: {pattern: '^[A-Z]{3}$'}
            mustBeLessOrEqualTo: 0
";
    check(properties, json!({"a": "x", "b": "y", "c": "EUR"}), &[]);
    check(
        properties,
        json!({"b": "N/A", "c": "eur"}),
        &[("contract.null_value", "/a"), ("contract.missing_value", "/b"), ("contract.pattern_mismatch", "/c")],
    );
    check(properties, json!({"a": null, "b": null, "c": null}), &[("contract.null_value", "/a"), ("contract.missing_value", "/b")]);
}

#[test]
fn rules_that_need_history_are_deferred_not_evaluated() {
    let properties = "      - name: id
        logicalType: string
        unique: true
        quality:
          - metric: nullValues
            mustBeLessThan: 5
            unit: percent
          - type: sql
            query: SELECT COUNT(*) FROM {object}
            mustBeGreaterThan: 0
          - type: text
            description: ids come from the order service
";
    let compiled = compile(properties, "    quality:\n      - metric: rowCount\n        mustBeGreaterThan: 0\n        name: has_rows\n");
    assert!(compiled.validate(&json!({"id": null})).is_ok());
    let rules: Vec<(&str, &str)> = compiled.deferred_rules().iter().map(|r| (r.property_path.as_str(), r.rule.as_str())).collect();
    assert_eq!(rules, vec![("", "rowCount"), ("id", "unique"), ("id", "nullValues"), ("id", "sql"), ("id", "text")]);
    assert_eq!(compiled.deferred_rules()[0].label.as_deref(), Some("has_rows"));
}

#[test]
fn nested_paths_use_rfc6901_escaping() {
    let properties = "      - name: a/b
        logicalType: object
        properties:
          - name: c~d
            logicalType: integer
      - name: lines
        logicalType: array
        logicalTypeOptions: {minItems: 1, maxItems: 3, uniqueItems: true}
        items:
          logicalType: object
          properties:
            - name: sku
              logicalType: string
              required: true
";
    check(properties, json!({"a/b": {"c~d": 1}, "lines": [{"sku": "x"}]}), &[]);
    check(
        properties,
        json!({"a/b": {"c~d": "1"}, "lines": [{"sku": "x"}, {"qty": 1}]}),
        &[("contract.type_mismatch", "/a~1b/c~0d"), ("contract.required_missing", "/lines/1/sku")],
    );
    check(properties, json!({"lines": []}), &[("contract.items_out_of_range", "/lines")]);
    check(properties, json!({"lines": [{"sku": "x"}, {"sku": "x"}]}), &[("contract.items_out_of_range", "/lines")]);
}

#[test]
fn violations_per_event_are_bounded() {
    let properties: String =
        (0..150).map(|i| format!("      - name: p{i}\n        logicalType: string\n        required: true\n")).collect();
    let compiled = compile(&properties, "");
    let violations = compiled.validate(&json!({})).unwrap_err();
    assert_eq!(violations.len(), limits::VIOLATIONS_PER_EVENT_MAX);
    assert_eq!(violations.last().unwrap().code, violation::TOO_MANY_VIOLATIONS);
}

#[test]
fn object_required_option_makes_listed_properties_required() {
    let properties = "      - name: address
        logicalType: object
        logicalTypeOptions: {required: [city, zip]}
        properties:
          - name: city
            logicalType: string
";
    check(properties, json!({"address": {"city": "Bern", "zip": "3000"}}), &[]);
    check(
        properties,
        json!({"address": {"city": null}}),
        &[("contract.required_missing", "/address/city"), ("contract.required_missing", "/address/zip")],
    );
}

#[test]
fn objects_are_open_unless_the_stream_is_closed() {
    let properties = "      - name: a\n        logicalType: string\n";
    check(properties, json!({"a": "x", "extra": 1}), &[]);
    let closed = compile(properties, "    customProperties:\n      - property: weft.closed\n        value: true\n");
    assert_eq!(violations(&closed, &json!({"a": "x", "extra": 1})), vec![("contract.unknown_property", "/extra".to_owned())]);
    assert_eq!(closed.to_json_schema()["additionalProperties"], json!(false));
}

#[test]
fn malformed_json_bytes_are_reported_with_their_own_code() {
    let compiled = compile(ORDER_PROPERTIES, "");
    let violations = compiled.validate_bytes(b"{\"amount\": ").unwrap_err();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].code, "event.malformed_json");
    let text = good_order().to_string();
    let data = compiled.validate_bytes(text.as_bytes()).unwrap();
    assert_eq!(data, good_order());
}

/// Violations are stored with dead letters and read by people who may not see classified data, so
/// a message never quotes a classified value, anything inside one, or a value that holds one;
/// other values are still quoted, to help the producer.
#[test]
fn violation_messages_never_quote_classified_values() {
    let properties = "      - name: email
        logicalType: string
        classification: pii
        logicalTypeOptions:
          pattern: \"^[a-z]+@example\\\\.com$\"
          format: email
      - name: salary
        logicalType: integer
        classification: confidential
        logicalTypeOptions:
          maximum: 10
      - name: card
        logicalType: object
        classification: restricted
        properties:
          - name: number
            logicalType: string
            logicalTypeOptions:
              pattern: \"^[0-9]{16}$\"
      - name: holder
        logicalType: object
        enum: [{value: {name: x}}]
        properties:
          - name: name
            logicalType: string
            classification: pii
      - name: status
        logicalType: string
        enum: [{value: open}, {value: closed}]
";
    let text = contract_yaml(properties, "").replace("v3.1.0", "v3.2.0");
    let compiled = CompiledContract::compile(&parse_contract(&text), "orders").expect("compiles");
    let event = json!({
        "email": "secret name@evil.org",
        "salary": 123456,
        "card": { "number": "4111-secret" },
        "holder": { "name": "secret-holder" },
        "status": "unknown-status",
    });
    let violations = compiled.validate(&event).unwrap_err();
    let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, ["/email", "/email", "/salary", "/card/number", "/holder", "/status"], "{violations:?}");
    for violation in &violations[..5] {
        assert!(violation.message.starts_with(CLASSIFIED_VALUE), "{violation:?}");
        assert!(!violation.message.contains("secret") && !violation.message.contains("123456"), "{violation:?}");
    }
    assert_eq!(violations[5].message, "\"unknown-status\" is not one of the enum values");
    assert!(violations[0].message.contains("does not match pattern"), "the rule is still named: {:?}", violations[0]);
}
