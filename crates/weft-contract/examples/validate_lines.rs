//! Validates JSON lines (one event's data per line) against the first topic of a contract and
//! prints `ok` or the violation codes and paths, one line per event. Used to cross-check Weft's
//! validator with a JSON Schema validator run on `datacontract export jsonschema` output:
//! `cargo run -p weft-contract --example validate_lines -- CONTRACT.odcs.yaml EVENTS.jsonl`

use weft_contract::{CompiledContract, Document, parse_documents};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(contract_path), Some(events_path)) = (args.next(), args.next()) else {
        panic!("usage: validate_lines CONTRACT EVENTS.jsonl");
    };
    let text = std::fs::read_to_string(&contract_path).expect("readable contract");
    let contract = parse_documents(&text, &contract_path)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find_map(|document| match document {
            Document::Contract(contract) => Some(contract),
            _ => None,
        })
        .expect("a contract in the file");
    let compiled = CompiledContract::compile_topics(&contract).unwrap_or_else(|e| panic!("{e}")).remove(0);
    let events = std::fs::read_to_string(&events_path).expect("readable events");
    for line in events.lines().filter(|line| !line.trim().is_empty()) {
        match compiled.validate_bytes(line.as_bytes()) {
            Ok(_) => println!("ok"),
            Err(violations) => {
                let codes: Vec<String> = violations.iter().map(|v| format!("{}@{}", v.code, v.path)).collect();
                println!("{}", codes.join(" "));
            }
        }
    }
}
