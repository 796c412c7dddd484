//! Measures the cost of parse + validate for a ~250-byte order event against the example
//! `sales.orders.v1` contract. Run with:
//! `cargo run --release -p weft-contract --example validate_cost`
//! That build has serde_json without `preserve_order`; the server has it (cedar-policy-core asks
//! for it). To measure with it, add `--features serde_json/preserve_order`.
//! The second line printed says which one ran.

use std::hint::black_box;
use std::time::Instant;

use weft_contract::{CompiledContract, Doc, Document, parse_documents};

const CONTRACT: &str = "apiVersion: v3.1.0
kind: DataContract
id: urn:weft:bench
version: 1.0.0
status: active
schema:
  - name: orders
    physicalType: topic
    physicalName: sales.orders.v1
    properties:
      - name: order_id
        logicalType: string
        required: true
        logicalTypeOptions: {format: uuid}
      - name: customer_id
        logicalType: string
        required: true
        logicalTypeOptions: {format: uuid}
      - name: amount
        logicalType: number
        required: true
        logicalTypeOptions: {minimum: 0, maximum: 1000000}
      - name: currency
        logicalType: string
        required: true
        quality:
          - metric: invalidValues
            arguments: {validValues: [EUR, USD, CHF, GBP]}
            mustBe: 0
      - name: quantity
        logicalType: integer
        logicalTypeOptions: {format: u16, minimum: 1}
      - name: placed_at
        logicalType: timestamp
        required: true
      - name: email
        logicalType: string
        classification: pii
        logicalTypeOptions:
          pattern: '^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$'
";

const EVENT: &[u8] = br#"{"order_id":"0191b3f2-7c1e-7a4b-9e0f-1234567890ab","customer_id":"0191b3f2-0000-7a4b-9e0f-1234567890ab","amount":129.9,"currency":"EUR","quantity":2,"placed_at":"2026-11-21T10:15:00.123Z","email":"ana.mueller@example.com"}"#;

const N_EVENTS: u32 = 200_000;
/// The machine is shared; the fastest of several rounds is the least disturbed one.
const N_ROUNDS: u32 = 7;

fn main() {
    let Document::Contract(contract) = parse_documents(CONTRACT, "bench").expect("parses").remove(0) else {
        unreachable!("the bench contract is a contract")
    };
    let compiled = CompiledContract::compile(&contract, "orders").expect("compiles");
    println!("event size: {} bytes", EVENT.len());
    let parse_only = time_per_event(|| {
        let value: serde_json::Value = serde_json::from_slice(black_box(EVENT)).expect("json");
        black_box(value);
    });
    let parse_doc_only = time_per_event(|| {
        let doc: Doc<'_> = serde_json::from_slice(black_box(EVENT)).expect("json");
        black_box(doc);
    });
    let parsed: Doc<'_> = serde_json::from_slice(EVENT).unwrap();
    let validate_only = time_per_event(|| {
        black_box(compiled.validate_doc(black_box(&parsed))).expect("valid");
    });
    let parse_and_validate = time_per_event(|| {
        black_box(compiled.validate_bytes(black_box(EVENT))).expect("valid");
    });
    let parse_then_validate = time_per_event(|| {
        let value: serde_json::Value = serde_json::from_slice(black_box(EVENT)).expect("json");
        black_box(compiled.validate(black_box(&value))).expect("valid");
    });
    println!(
        "serde_json preserve_order: {}",
        serde_json::Map::from_iter([("b".to_owned(), 1.into()), ("a".to_owned(), 2.into())]).keys().next().is_some_and(|k| k == "b")
    );
    println!("parse only:         {parse_only:.3} us/event (serde_json::Value)");
    println!("parse only:         {parse_doc_only:.3} us/event (Doc)");
    println!("validate only:      {validate_only:.3} us/event (validate_doc)");
    println!("parse + validate:   {parse_and_validate:.3} us/event (validate_bytes)");
    println!("parse, validate:    {parse_then_validate:.3} us/event (Value from_slice + validate, which views the Value as a Doc)");
}

/// Microseconds per call of `f`: the fastest of [`N_ROUNDS`] rounds of [`N_EVENTS`] calls.
fn time_per_event(mut f: impl FnMut()) -> f64 {
    (0..N_ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..N_EVENTS {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(N_EVENTS)
        })
        .fold(f64::INFINITY, f64::min)
}
