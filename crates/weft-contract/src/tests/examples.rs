//! The example mesh in /examples must parse, compile, and accept a realistic event.

use super::*;

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
