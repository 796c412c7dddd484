//! Parsing and semantic checks: text -> expected error (code, path, line).

use super::*;

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

/// A stream key that names a masked classification (`pii`, ...), or a property inside one, is
/// refused at compile time with `contract.classified_key` at the key setting, since record keys
/// are stored and served in clear; a key with another classification (`internal`) compiles.
#[test]
fn a_classified_property_cannot_be_the_stream_key() {
    let key = |pointer: &str| format!("    customProperties:\n      - property: weft.key\n        value: {pointer}\n");
    check_refused(ORDER_PROPERTIES, &key("/customer/email"), "contract.classified_key", "/schema/0/customProperties");
    let classified_parent =
        "      - name: customer\n        classification: PII\n        properties:\n          - name: id\n            logicalType: string\n";
    check_refused(classified_parent, &key("/customer/id"), "contract.classified_key", "/schema/0/customProperties");
    let internal = "      - name: id\n        logicalType: string\n        classification: internal\n";
    assert_eq!(compile(internal, &key("id")).settings().key_pointer.as_deref(), Some("/id"));
    assert_eq!(compile(ORDER_PROPERTIES, &key("/customer/tier")).settings().key_pointer.as_deref(), Some("/customer/tier"));
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
