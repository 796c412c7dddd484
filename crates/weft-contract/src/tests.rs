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

mod compatibility;
mod examples;
mod json_schema_export;
mod parsing;
mod validation;
