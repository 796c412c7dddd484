//! Prints the JSON Schema of every topic in a contract file, to compare with
//! `datacontract export jsonschema FILE`:
//! `cargo run -p weft-contract --example json_schema -- examples/sales/sale-recorded.odcs.yaml`

use weft_contract::{CompiledContract, Document, parse_documents};

fn main() {
    let path = std::env::args().nth(1).expect("usage: json_schema FILE");
    let text = std::fs::read_to_string(&path).expect("readable file");
    for document in parse_documents(&text, &path).unwrap_or_else(|e| panic!("{e}")) {
        if let Document::Contract(contract) = document {
            for compiled in CompiledContract::compile_topics(&contract).unwrap_or_else(|e| panic!("{e}")) {
                println!("{}", serde_json::to_string_pretty(&compiled.to_json_schema()).expect("serializable"));
            }
        }
    }
}
