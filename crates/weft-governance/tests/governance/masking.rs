//! Masking: deterministic per product, different across products, fail-closed, secret kept private.

use serde_json::{Value, json};
use weft_governance::masking::{ServerSecret, is_masked_classification, mask_bytes, mask_json, mask_value};

fn secret() -> ServerSecret {
    ServerSecret::from_bytes([7; 32])
}

fn pointers(list: &[&str]) -> Vec<String> {
    list.iter().map(|pointer| pointer.to_string()).collect()
}

#[test]
fn masking_is_deterministic_per_product_and_different_across_products() {
    let orders = secret().product_key("sales.orders");
    let campaigns = secret().product_key("marketing.campaigns");
    let email = json!("ana@example.com");
    let masked = mask_value(&email, orders.as_bytes());
    assert!(masked.starts_with("masked:") && masked.len() == "masked:".len() + 16, "{masked}");
    assert_eq!(masked, mask_value(&email, secret().product_key("sales.orders").as_bytes()), "same product, same mask");
    assert_ne!(masked, mask_value(&email, campaigns.as_bytes()), "another product, another mask");
    assert_ne!(masked, mask_value(&email, ServerSecret::from_bytes([8; 32]).product_key("sales.orders").as_bytes()), "another server");
    assert_ne!(mask_value(&json!(1), orders.as_bytes()), mask_value(&json!("1"), orders.as_bytes()), "types are distinct");
    assert_eq!(
        mask_value(&json!({"a": 1, "b": [2]}), orders.as_bytes()),
        mask_value(&serde_json::from_str::<Value>(r#"{"b":[2],"a":1}"#).unwrap(), orders.as_bytes()),
        "member order does not matter"
    );
}

#[test]
fn masked_values_still_join_within_a_product() {
    let key = secret().product_key("sales.orders");
    let mut first = json!({"customer": {"email": "ana@example.com"}, "total": 10});
    let mut second = json!({"buyers": [{"email": "bo@example.com"}, {"email": "ana@example.com"}]});
    assert_eq!(mask_json(&mut first, &pointers(&["/customer/email"]), key.as_bytes()), 1);
    assert_eq!(mask_json(&mut second, &pointers(&["/buyers/*/email"]), key.as_bytes()), 2);
    assert_eq!(first["customer"]["email"], second["buyers"][1]["email"]);
    assert_ne!(second["buyers"][0]["email"], second["buyers"][1]["email"]);
    assert_eq!(first["total"], json!(10), "unclassified properties are untouched");
}

#[test]
fn pointers_reach_nested_and_array_elements_and_skip_missing_paths() {
    let key = secret().product_key("p");
    // (data, pointers, expected number masked, pointers that must now hold a mask)
    let cases: &[(Value, &[&str], usize, &[&str])] = &[
        (json!({"a": {"b": 1}}), &["/a/b"], 1, &["/a/b"]),
        (json!({"a": [1, 2, 3]}), &["/a/1"], 1, &["/a/1"]),
        (json!({"a": [{"b": 1}, {"c": 2}, {"b": 3}]}), &["/a/*/b"], 2, &["/a/0/b", "/a/2/b"]),
        (json!({"m": [[1, 2], [3]]}), &["/m/*/*"], 3, &["/m/0/0", "/m/0/1", "/m/1/0"]),
        (json!({"a~b": 1, "c/d": 2}), &["/a~0b", "/c~1d"], 2, &["/a~0b", "/c~1d"]),
        (json!({"a": 1}), &["/missing"], 0, &[]),
        // A scalar where a pointer goes deeper: the data lacks the contract's shape, so it is masked whole (once).
        (json!({"a": 1}), &["/missing", "/a/deeper", "/a/0"], 1, &["/a"]),
        (json!({"a": {"b": 1, "c": 2}}), &["/a/b", "/a"], 1, &["/a"]),
        (json!({"a": {"b": null}}), &["/a/b"], 1, &["/a/b"]),
        (json!("whole"), &[""], 1, &[""]),
    ];
    for (data, list, n_masked, masked_at) in cases {
        let mut value = data.clone();
        assert_eq!(mask_json(&mut value, &pointers(list), key.as_bytes()), *n_masked, "{data} {list:?}");
        for pointer in *masked_at {
            let at = value.pointer(pointer).unwrap_or_else(|| panic!("{pointer} in {value}"));
            assert!(at.as_str().is_some_and(|text| text.starts_with("masked:")), "{pointer} in {value}");
            assert_eq!(at, &json!(mask_value(data.pointer(pointer).unwrap(), key.as_bytes())), "{pointer}: the mask of the original value");
        }
    }
}

#[test]
fn overlapping_pointers_mask_the_same_whatever_their_order() {
    let key = secret().product_key("p");
    let data = json!({"a": {"b": "x", "c": "y"}});
    let (mut one, mut other) = (data.clone(), data);
    mask_json(&mut one, &pointers(&["/a/b", "/a"]), key.as_bytes());
    mask_json(&mut other, &pointers(&["/a", "/a/b"]), key.as_bytes());
    assert_eq!(one, other);
}

#[test]
fn mask_bytes_masks_json_fields_and_non_json_data_whole_and_fails_closed() {
    let key = secret().product_key("p");
    let data = br#"{"email": "ana@example.com", "n": 1}"#;
    let masked: Value = serde_json::from_slice(&mask_bytes(data, &pointers(&["/email"]), key.as_bytes())).unwrap();
    assert_eq!(masked["email"], json!(mask_value(&json!("ana@example.com"), key.as_bytes())));
    assert_eq!(masked["n"], json!(1));
    assert_eq!(mask_bytes(data, &pointers(&["/absent"]), key.as_bytes()), data.to_vec(), "unchanged bytes when nothing applies");
    assert_eq!(mask_bytes(data, &[], key.as_bytes()), data.to_vec());

    let raw = mask_bytes(b"ana@example.com,42", &pointers(&["/email"]), key.as_bytes());
    assert!(raw.starts_with(b"masked:") && raw.len() == 23, "{}", String::from_utf8_lossy(&raw));
    assert_eq!(raw, mask_bytes(b"ana@example.com,42", &pointers(&["/other"]), key.as_bytes()), "deterministic");

    let bad_pointer: Value = serde_json::from_slice(&mask_bytes(data, &pointers(&["email"]), key.as_bytes())).unwrap();
    assert!(bad_pointer.as_str().is_some_and(|text| text.starts_with("masked:")), "a bad pointer masks everything: {bad_pointer}");
    let too_many = vec!["/x".to_string(); weft_governance::masking::MASK_POINTERS_MAX + 1];
    assert!(serde_json::from_slice::<Value>(&mask_bytes(data, &too_many, key.as_bytes())).unwrap().is_string());
}

#[test]
fn masked_classifications_are_the_four_named() {
    for (classification, masked) in [
        ("pii", true),
        ("PII", true),
        ("confidential", true),
        ("restricted", true),
        ("Sensitive", true),
        ("public", false),
        ("internal", false),
        ("", false),
    ] {
        assert_eq!(is_masked_classification(classification), masked, "{classification}");
    }
}

#[test]
fn server_secret_is_created_private_reloaded_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let first = ServerSecret::load_or_create(dir.path()).unwrap();
    let again = ServerSecret::load_or_create(dir.path()).unwrap();
    assert_eq!(first.product_key("p"), again.product_key("p"));
    let path = dir.path().join(weft_governance::masking::SERVER_SECRET_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let stored = std::fs::read_to_string(&path).unwrap();
    for shown in [format!("{first:?}"), format!("{:?}", first.product_key("p"))] {
        assert!(!shown.contains(stored.trim()) && shown.contains("redacted"), "{shown}");
    }
    std::fs::write(&path, "not hex\n").unwrap();
    let error = ServerSecret::load_or_create(dir.path()).unwrap_err();
    assert_eq!(error.code(), weft_governance::codes::MASKING_SECRET);
}
