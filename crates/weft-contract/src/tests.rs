//! Data-driven tests of the public API. Validation cases go through one `check()` helper:
//! contract properties (YAML) + event -> expected violations as `(code, path)` pairs.

use serde_json::{Value, json};

use crate::*;

const HEADER: &str = "apiVersion: v3.1.0
kind: DataContract
id: urn:weft:test
version: 1.0.0
status: active
";

/// A contract with one topic object `orders` whose properties are `properties_yaml`
/// (a YAML list, indented by 4 spaces) and whose object custom properties are `custom_yaml`.
fn contract_yaml(properties_yaml: &str, custom_yaml: &str) -> String {
    format!(
        "{HEADER}schema:\n  - name: orders\n    physicalType: topic\n    physicalName: sales.orders.v1\n{custom_yaml}    properties:\n{properties_yaml}"
    )
}

fn parse_contract(text: &str) -> DataContract {
    match parse_documents(text, "test.odcs.yaml") {
        Ok(mut documents) => match documents.remove(0) {
            Document::Contract(contract) => *contract,
            other => panic!("expected a contract, got {}", other.kind()),
        },
        Err(error) => panic!("contract does not parse: {error}\n{text}"),
    }
}

fn compile(properties_yaml: &str, custom_yaml: &str) -> CompiledContract {
    let contract = parse_contract(&contract_yaml(properties_yaml, custom_yaml));
    CompiledContract::compile(&contract, "orders").expect("compiles")
}

fn violations(compiled: &CompiledContract, event: &Value) -> Vec<(&'static str, String)> {
    match compiled.validate(event) {
        Ok(()) => Vec::new(),
        Err(violations) => {
            for v in &violations {
                assert!(!v.message.ends_with('.'), "message ends with a period: {}", v.message);
                assert!(!v.message.starts_with(char::is_uppercase), "message is not lowercase: {}", v.message);
            }
            violations.into_iter().map(|v| (v.code, v.path)).collect()
        }
    }
}

/// The one validation helper: properties YAML + event -> expected `(code, path)` violations.
fn check(properties_yaml: &str, event: Value, expected: &[(&str, &str)]) {
    let compiled = compile(properties_yaml, "");
    let actual = violations(&compiled, &event);
    let expected: Vec<(&str, String)> = expected.iter().map(|(c, p)| (*c, p.to_string())).collect();
    assert_eq!(actual, expected, "event {event}");
}

const ORDER_PROPERTIES: &str = "      - name: order_id
        logicalType: string
        required: true
        primaryKey: true
        logicalTypeOptions: {format: uuid}
      - name: amount
        logicalType: number
        required: true
        logicalTypeOptions: {minimum: 0, maximum: 100000}
      - name: quantity
        logicalType: integer
        logicalTypeOptions: {format: u16}
      - name: currency
        logicalType: string
        required: true
        quality:
          - metric: invalidValues
            arguments: {validValues: [EUR, USD, CHF]}
            mustBe: 0
      - name: placed_at
        logicalType: timestamp
        required: true
      - name: customer
        logicalType: object
        properties:
          - name: email
            logicalType: string
            classification: pii
            logicalTypeOptions:
              pattern: '^[^@\\s]+@[^@\\s]+\\.[a-z]+$'
          - name: tier
            logicalType: string
";

fn good_order() -> Value {
    json!({
        "order_id": "0191b3f2-7c1e-7a4b-9e0f-1234567890ab",
        "amount": 42.5,
        "quantity": 3,
        "currency": "EUR",
        "placed_at": "2026-11-21T10:00:00Z",
        "customer": {"email": "ana@example.com", "tier": "gold"}
    })
}

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

// ---------------------------------------------------------------------------------------------
// Parsing and semantic checks: text -> expected error (code, path, line).

fn parse_error(text: &str) -> ContractError {
    parse_documents(text, "bad.odcs.yaml").expect_err("should be refused")
}

#[test]
fn unknown_field_is_named_by_path_and_line() {
    let text = contract_yaml("      - name: a\n        logicalType: string\n      - name: b\n        logicalTyp: string\n", "");
    let error = parse_error(&text);
    assert_eq!(error.code, "resource.unknown_field");
    assert_eq!(error.path, "/schema/0/properties/1/logicalTyp");
    assert_eq!(error.line, Some(14));
    assert_eq!(error.source_name, "bad.odcs.yaml");
    assert_eq!(error.document_idx, Some(0));
    assert!(error.message.contains("did you mean `logicalType`"), "{}", error.message);
    assert!(error.to_string().starts_with("bad.odcs.yaml:14:"), "{error}");
}

/// A document refused while it is parsed as its kind still says which resource it is, so a
/// plan can name it; one that does not even say its kind names none.
#[test]
fn refused_documents_name_their_resource() {
    let text = contract_yaml("      - name: a\n        logicalTyp: string\n", "");
    let resource = parse_error(&text).resource.expect("the kind is known");
    assert_eq!(resource.kind, "DataContract");
    assert!(resource.id.is_some(), "{resource:?}");
    let text = format!("{HEADER}---\napiVersion: weft/v1\nkind: Domain\nname: sales\nowner: ana\n");
    let resource = parse_error(&text).resource.expect("the kind is known");
    assert_eq!((resource.kind, resource.id.as_deref()), ("Domain", Some("sales")));
    assert_eq!(parse_error("just: a mapping\n").resource, None);
}

#[test]
fn unknown_top_level_key_is_refused() {
    let error = parse_error(&format!("{HEADER}topic: orders\n"));
    assert_eq!((error.code, error.path.as_str(), error.line), ("resource.unknown_field", "/topic", Some(6)));
}

#[test]
fn errors_in_later_documents_carry_their_index_and_line() {
    let text = format!("{HEADER}---\napiVersion: weft/v1\nkind: Domain\nname: sales\nowner: ana\n");
    let error = parse_error(&text);
    assert_eq!(error.document_idx, Some(1));
    assert_eq!(error.path, "/owner");
    assert_eq!(error.line, Some(10));
}

#[test]
fn malformed_yaml_and_unknown_kinds_have_stable_codes() {
    assert_eq!(parse_error("a: [1, 2\n").code, "yaml.malformed");
    let error = parse_error("apiVersion: v1\nkind: Pod\n");
    assert_eq!((error.code, error.path.as_str(), error.line), ("resource.unknown_kind", "/kind", Some(2)));
    assert_eq!(parse_error("name: x\n").code, "resource.missing_kind");
    assert_eq!(parse_error("apiVersion: v2.2.2\nkind: DataContract\nid: x\nversion: 1\n").code, "resource.unsupported_version");
    assert_eq!(parse_error("{\"apiVersion\": \"v3.1.0\",").code, "json.malformed");
}

#[test]
fn wrong_field_types_and_missing_required_fields_are_invalid_fields() {
    let error = parse_error(&contract_yaml("      - name: a\n        required: maybe\n", ""));
    assert_eq!((error.code, error.path.as_str()), ("resource.invalid_field", "/schema/0/properties/0/required"));
    let error = parse_error("apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: 1.0.0\n");
    assert_eq!((error.code, error.path.as_str()), ("resource.invalid_field", "/status"));
}

#[test]
fn v32_contracts_may_omit_status() {
    let text = "apiVersion: v3.2.0\nkind: DataContract\nid: x\nversion: 1.0.0\n";
    assert!(parse_documents(text, "x").is_ok());
}

#[test]
fn json_documents_are_accepted() {
    let text = r#"{"apiVersion": "v3.1.0", "kind": "DataContract", "id": "x", "version": "1", "status": "active",
  "schema": [{"name": "o", "properties": [{"name": "a", "logicalTyp": "string"}]}]}"#;
    let error = parse_error(text);
    assert_eq!((error.code, error.path.as_str(), error.line), ("resource.unknown_field", "/schema/0/properties/0/logicalTyp", Some(2)));
}

/// Semantic rules: contract properties -> expected (code, path).
fn check_refused(properties_yaml: &str, custom_yaml: &str, expected_code: &str, expected_path: &str) {
    let error = parse_error(&contract_yaml(properties_yaml, custom_yaml));
    assert_eq!((error.code, error.path.as_str()), (expected_code, expected_path), "{error}");
    assert!(error.line.is_some(), "semantic errors are located too: {error}");
}

#[test]
fn semantic_errors_point_at_the_line_of_the_offending_node() {
    let error = parse_error(&contract_yaml("      - name: a\n        logicalType: string\n      - name: a\n", ""));
    assert_eq!((error.code, error.line), ("contract.duplicate_property", Some(13)));
}

#[test]
fn semantic_rules_refuse_bad_contracts() {
    check_refused("      - name: a\n      - name: a\n", "", "contract.duplicate_property", "/schema/0/properties/1/name");
    check_refused(
        "      - name: a\n        logicalType: integer\n        logicalTypeOptions: {maxLength: 3}\n",
        "",
        "contract.invalid_type_options",
        "/schema/0/properties/0/logicalTypeOptions/maxLength",
    );
    check_refused(
        "      - name: a\n        logicalType: integer\n        logicalTypeOptions: {format: i7}\n",
        "",
        "contract.invalid_type_options",
        "/schema/0/properties/0/logicalTypeOptions/format",
    );
    check_refused(
        "      - name: a\n        logicalType: string\n        logicalTypeOptions: {pattern: '(?=x)'}\n",
        "",
        "contract.invalid_pattern",
        "/schema/0/properties/0/logicalTypeOptions/pattern",
    );
    check_refused("      - name: a\n        logicalType: strng\n", "", "contract.invalid", "/schema/0/properties/0/logicalType");
    check_refused(
        "      - name: a\n        logicalType: string\n        items: {logicalType: string}\n",
        "",
        "contract.invalid",
        "/schema/0/properties/0/items",
    );
    check_refused(
        "      - name: a\n        quality:\n          - metric: nullValues\n",
        "",
        "contract.invalid",
        "/schema/0/properties/0/quality/0",
    );
}

#[test]
fn weft_custom_properties_are_checked() {
    let a = "      - name: a\n        logicalType: string\n";
    check_refused(
        a,
        "    customProperties:\n      - property: weft.partition\n        value: 3\n",
        "contract.invalid_weft_property",
        "/schema/0/customProperties/0/property",
    );
    check_refused(
        a,
        "    customProperties:\n      - property: weft.fsync\n        value: sometimes\n",
        "contract.invalid_weft_property",
        "/schema/0/customProperties/0/value",
    );
    check_refused(
        a,
        "    customProperties:\n      - property: weft.key\n        value: a\n      - property: weft.key\n        value: a\n",
        "contract.invalid_weft_property",
        "/schema/0/customProperties/1/value",
    );
    check_refused(
        a,
        "    customProperties:\n      - property: weft.key\n        value: b\n",
        "contract.invalid_weft_property",
        "/schema/0/customProperties",
    );
    check_refused(
        "      - name: a\n        customProperties:\n          - property: weft.key\n            value: a\n",
        "",
        "contract.invalid_weft_property",
        "/schema/0/properties/0/customProperties/0/property",
    );
}

#[test]
fn stream_settings_come_from_weft_properties_and_sla() {
    let text = format!(
        "{HEADER}customProperties:
  - property: weft.partitions
    value: 4
  - property: weft.fsync
    value: interval:50
slaProperties:
  - property: latency
    value: 5
    unit: s
  - property: retention
    value: 7
    unit: d
    element: orders
  - property: retention
    value: 1
    unit: y
    element: other
schema:
  - name: orders
    physicalType: topic
    physicalName: sales.orders.v1
    customProperties:
      - property: weft.partitions
        value: 8
      - property: weft.key
        value: /customer/id
      - property: weft.compatibility
        value: full_transitive
    properties:
      - name: customer
        logicalType: object
        properties:
          - name: id
            logicalType: string
"
    );
    let compiled = CompiledContract::compile(&parse_contract(&text), "sales.orders.v1").unwrap();
    let settings = compiled.settings();
    assert_eq!(compiled.stream_name(), Some("sales.orders.v1"));
    assert_eq!(settings.partitions, Some(8));
    assert_eq!(settings.fsync, Some(FsyncPolicy::Interval { interval_ms: 50 }));
    assert_eq!(settings.key_pointer.as_deref(), Some("/customer/id"));
    assert_eq!(settings.compatibility_mode(), CompatibilityMode::FullTransitive);
    assert_eq!(settings.latency, Some(std::time::Duration::from_secs(5)));
    assert_eq!(settings.retention, Some(std::time::Duration::from_secs(7 * 86_400)));
    assert_eq!(settings.sla_properties.len(), 2);
}

#[test]
fn classified_properties_are_listed_with_pointers() {
    let compiled = compile(ORDER_PROPERTIES, "");
    let classified: Vec<(&str, &str, &str)> = compiled
        .classified_properties()
        .iter()
        .map(|c| (c.pointer.as_str(), c.property_path.as_str(), c.classification.as_str()))
        .collect();
    assert_eq!(classified, vec![("/customer/email", "customer.email", "pii")]);
}

#[test]
fn team_accepts_object_and_deprecated_array_forms() {
    for team in [
        "team:\n  name: sales\n  members:\n    - username: ana@example.com\n      role: owner\n",
        "team:\n  - username: ana@example.com\n    role: owner\n",
    ] {
        let contract = parse_contract(&format!("{HEADER}{team}"));
        assert_eq!(contract.team.unwrap().members()[0].username, "ana@example.com");
    }
    let error = parse_error(&format!("{HEADER}team:\n  - username: ana\n    rol: owner\n"));
    assert_eq!((error.code, error.path.as_str()), ("resource.unknown_field", "/team/0/rol"));
}

#[test]
fn products_domains_and_policies_parse_in_one_stream() {
    let text = "apiVersion: v1.0.0
kind: DataProduct
id: sales-insights
name: Sales insights
version: 1.0.0
status: active
domain: sales
inputPorts:
  - name: orders
    version: 1.0.0
    contractId: urn:weft:sales:orders
outputPorts:
  - name: revenue
    version: 1.0.0
    type: topic
    contractId: urn:weft:sales:revenue
    inputContracts:
      - id: urn:weft:sales:orders
        version: 1.0.0
---
apiVersion: weft/v1
kind: Domain
name: sales
owners: [ana]
---
apiVersion: weft/v1
kind: Policy
name: pii
scope: domain
domain: sales
policies: |
  permit(principal, action, resource);
---
";
    let documents = parse_documents(text, "mesh.yaml").unwrap();
    let kinds: Vec<&str> = documents.iter().map(Document::kind).collect();
    assert_eq!(kinds, vec!["DataProduct", "Domain", "Policy"]);
    let error = parse_error("apiVersion: weft/v1\nkind: Policy\nname: p\nscope: domain\npolicies: x\n");
    assert_eq!((error.code, error.path.as_str()), ("resource.invalid", "/domain"));
}

#[test]
fn compile_refuses_unknown_schema_object() {
    let contract = parse_contract(&contract_yaml("      - name: a\n", ""));
    let error = CompiledContract::compile(&contract, "nope").unwrap_err();
    assert_eq!(error.code, "contract.schema_object_not_found");
}

// ---------------------------------------------------------------------------------------------
// JSON Schema export.

#[test]
fn json_schema_export_matches_the_cli_shape() {
    let compiled = compile(ORDER_PROPERTIES, "");
    let schema = compiled.to_json_schema();
    assert_eq!(schema["$schema"], json!("http://json-schema.org/draft-07/schema#"));
    assert_eq!(schema["required"], json!(["order_id", "amount", "currency", "placed_at"]));
    assert_eq!(schema["properties"]["order_id"]["type"], json!("string"));
    assert_eq!(schema["properties"]["order_id"]["format"], json!("uuid"));
    assert_eq!(schema["properties"]["order_id"]["primaryKey"], json!(true));
    assert_eq!(schema["properties"]["quantity"]["type"], json!(["integer", "null"]));
    assert_eq!(schema["properties"]["quantity"]["maximum"], json!(65535));
    assert_eq!(schema["properties"]["placed_at"]["format"], json!("date-time"));
    assert_eq!(schema["properties"]["customer"]["properties"]["email"]["classification"], json!("pii"));
}

// ---------------------------------------------------------------------------------------------
// Compatibility: old properties + new properties + mode -> compatible?, change descriptions.

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

// ---------------------------------------------------------------------------------------------
// The example mesh in /examples must parse, compile, and accept a realistic event.

fn example_files() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files = Vec::new();
    for domain in std::fs::read_dir(&root).expect("examples directory exists") {
        let domain = domain.unwrap().path();
        if !domain.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&domain).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "yaml") {
                files.push(file);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn example_mesh_files_parse_and_every_topic_compiles() {
    let mut n_streams = 0;
    let mut n_documents = 0;
    for file in example_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let documents = parse_documents(&text, &file.display().to_string()).unwrap_or_else(|e| panic!("{e}"));
        for document in documents {
            n_documents += 1;
            if let Document::Contract(contract) = document {
                n_streams += CompiledContract::compile_topics(&contract).unwrap().len();
            }
        }
    }
    assert_eq!(n_streams, 4);
    assert_eq!(n_documents, 12);
}

#[test]
fn example_sale_recorded_contract_accepts_a_real_order() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sales/sale-recorded.odcs.yaml");
    let contract = parse_contract(&std::fs::read_to_string(path).unwrap());
    let compiled = CompiledContract::compile(&contract, "sales.orders.v1").unwrap();
    let order = json!({
        "order_id": "0191b3f2-7c1e-7a4b-9e0f-1234567890ab",
        "amount": 129.9,
        "currency": "EUR",
        "quantity": 2,
        "placed_at": "2026-11-21T10:15:00.123Z",
        "customer": {"customer_id": "0191b3f2-0000-7a4b-9e0f-1234567890ab", "email": "ana@example.com"},
        "lines": [{"sku": "MUG-RED", "quantity": 2}]
    });
    assert_eq!(compiled.validate(&order), Ok(()));
    assert_eq!(compiled.settings().key_pointer.as_deref(), Some("/customer/customer_id"));
    assert_eq!(compiled.settings().retention, Some(std::time::Duration::from_secs(30 * 86_400)));
    let deferred: Vec<&str> = compiled.deferred_rules().iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(deferred, vec!["sql", "unique"]);
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
