//! Unit tests: the compatibility rules (one data-driven `check()`), the store's behaviour
//! (dedup, idempotence, deletes, settings, reopen); the REST API is tested in `weft-http`.

use serde_json::{Value, json};

use crate::compatibility::{ParsedSchema, check_pair};
use crate::*;

fn parse(schema_type: SchemaType, text: &str) -> ParsedSchema {
    match schema_type {
        SchemaType::Json => ParsedSchema::Json(json_schema::parse(text).expect("valid JSON Schema")),
        SchemaType::Avro => ParsedSchema::Avro(crate::avro::parse(text, &[]).expect("valid Avro").0),
        SchemaType::Protobuf => unreachable!(),
    }
}

/// Old schema, new schema, level → the exact messages (empty: compatible).
fn check(schema_type: SchemaType, old: &Value, new: &Value, level: CompatibilityMode, expected: &[&str]) {
    let old_parsed = parse(schema_type, &old.to_string());
    let new_parsed = parse(schema_type, &new.to_string());
    let messages = check_pair(&new_parsed, &old_parsed, level);
    assert_eq!(messages, expected, "\nold: {old}\nnew: {new}\nlevel: {level:?}");
}

const BACKWARD: CompatibilityMode = CompatibilityMode::Backward;
const FORWARD: CompatibilityMode = CompatibilityMode::Forward;
const FULL: CompatibilityMode = CompatibilityMode::Full;
const NEW_CANNOT: &str = "readers using the new schema cannot read old data";
const OLD_CANNOT: &str = "readers using the old schema cannot read new data";

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required })
}

/// Proves the JSON Schema rule table in the crate documentation, row by row.
#[test]
fn json_schema_compatibility_rules() {
    use SchemaType::Json;
    let base = object(json!({ "id": { "type": "string" }, "amount": { "type": "number" } }), &["id"]);
    let with_optional =
        object(json!({ "id": { "type": "string" }, "amount": { "type": "number" }, "note": { "type": "string" } }), &["id"]);
    let with_required =
        object(json!({ "id": { "type": "string" }, "amount": { "type": "number" }, "note": { "type": "string" } }), &["id", "note"]);
    // Adding an optional property: compatible both ways (writers are closed).
    check(Json, &base, &with_optional, FULL, &[]);
    // Adding a required property: not backward, but forward.
    check(Json, &base, &with_required, BACKWARD, &[&format!("note: property added as required; {NEW_CANNOT}")]);
    check(Json, &base, &with_required, FORWARD, &[]);
    // Removing an optional property: compatible both ways; removing a required one: not forward.
    check(Json, &with_optional, &base, FULL, &[]);
    check(Json, &with_required, &base, BACKWARD, &[]);
    check(Json, &with_required, &base, FORWARD, &[&format!("note: required property removed; {OLD_CANNOT}")]);
    // Type changes: the brief's example message, widening, narrowing, adding null.
    let amount_string = object(json!({ "id": { "type": "string" }, "amount": { "type": "string" } }), &["id"]);
    check(Json, &base, &amount_string, BACKWARD, &[&format!("amount: type changed number -> string; {NEW_CANNOT}")]);
    let int = json!({ "type": "integer" });
    let number = json!({ "type": "number" });
    check(Json, &int, &number, BACKWARD, &[]);
    check(Json, &int, &number, FORWARD, &[&format!("(root): type changed integer -> number; {OLD_CANNOT}")]);
    check(Json, &number, &int, BACKWARD, &[&format!("(root): type changed number -> integer; {NEW_CANNOT}")]);
    check(Json, &json!({ "type": "string" }), &json!({ "type": ["string", "null"] }), BACKWARD, &[]);
    // Enums: adding values is backward, removing is forward.
    let ab = json!({ "enum": ["a", "b"] });
    let abc = json!({ "enum": ["a", "b", "c"] });
    check(Json, &ab, &abc, BACKWARD, &[]);
    check(Json, &ab, &abc, FORWARD, &[&format!("(root): enum changed [\"a\",\"b\"] -> [\"a\",\"b\",\"c\"]; {OLD_CANNOT}")]);
    check(Json, &abc, &ab, FORWARD, &[]);
    // Bounds: relaxing is backward, tightening is forward.
    let short = json!({ "type": "string", "maxLength": 10 });
    let long = json!({ "type": "string", "maxLength": 20 });
    check(Json, &short, &long, BACKWARD, &[]);
    check(Json, &long, &short, BACKWARD, &[&format!("(root): maxLength changed 20 -> 10; {NEW_CANNOT}")]);
    check(
        Json,
        &json!({ "type": "number" }),
        &json!({ "type": "number", "minimum": 0 }),
        BACKWARD,
        &[&format!("(root): minimum changed none -> 0; {NEW_CANNOT}")],
    );
    check(Json, &json!({ "type": "number", "exclusiveMinimum": 0 }), &json!({ "type": "number", "minimum": 0 }), BACKWARD, &[]);
    check(
        Json,
        &json!({ "type": "string" }),
        &json!({ "type": "string", "pattern": "^a" }),
        BACKWARD,
        &[&format!("(root): pattern changed none -> \"^a\"; {NEW_CANNOT}")],
    );
    // Nested paths, arrays and local references.
    let nested_old = json!({ "type": "object", "properties": { "lines": { "type": "array", "items": { "$ref": "#/$defs/line" } } },
        "$defs": { "line": { "type": "object", "properties": { "qty": { "type": "integer" } }, "required": ["qty"] } } });
    let nested_new = json!({ "type": "object", "properties": { "lines": { "type": "array", "items": { "$ref": "#/$defs/line" } } },
        "$defs": { "line": { "type": "object", "properties": { "qty": { "type": "string" } }, "required": ["qty"] } } });
    check(Json, &nested_old, &nested_new, BACKWARD, &[&format!("lines[].qty: type changed integer -> string; {NEW_CANNOT}")]);
    // A closed reader rejects properties the writer declares.
    let closed = json!({ "type": "object", "properties": { "id": { "type": "string" } }, "additionalProperties": false });
    check(Json, &base, &closed, BACKWARD, &[&format!("amount: property removed while additionalProperties is false; {NEW_CANNOT}")]);
    // Unions: nullable via anyOf, and a branch removed.
    let nullable = json!({ "anyOf": [{ "type": "null" }, { "type": "string" }] });
    check(Json, &json!({ "type": "string" }), &nullable, BACKWARD, &[]);
    check(Json, &nullable, &json!({ "type": "string" }), BACKWARD, &[&format!("(root): type changed null -> string; {NEW_CANNOT}")]);
    // Annotations never matter; NONE checks nothing.
    check(Json, &json!({ "type": "string", "title": "a" }), &json!({ "type": "string", "description": "b" }), FULL, &[]);
    check(Json, &base, &amount_string, CompatibilityMode::None, &[]);
    // Recursive schemas terminate.
    let tree = json!({ "$ref": "#/$defs/node", "$defs": { "node": { "type": "object", "properties": { "children": { "type": "array", "items": { "$ref": "#/$defs/node" } } } } } });
    check(Json, &tree, &tree, FULL, &[]);
}

/// Proves the Avro resolution rules: defaults, removals, promotions, enums, unions, names.
#[test]
fn avro_compatibility_rules() {
    use SchemaType::Avro;
    let record = |fields: Value| json!({ "type": "record", "name": "Order", "namespace": "shop", "fields": fields });
    let base = record(json!([{ "name": "id", "type": "string" }, { "name": "amount", "type": "double" }]));
    let with_default = record(json!([{ "name": "id", "type": "string" }, { "name": "amount", "type": "double" },
        { "name": "note", "type": ["null", "string"], "default": null }]));
    let without_default = record(json!([{ "name": "id", "type": "string" }, { "name": "amount", "type": "double" },
        { "name": "note", "type": "string" }]));
    check(Avro, &base, &with_default, FULL, &[]);
    check(Avro, &base, &without_default, BACKWARD, &[&format!("note: field added without a default; {NEW_CANNOT}")]);
    check(Avro, &base, &without_default, FORWARD, &[]);
    check(Avro, &without_default, &base, BACKWARD, &[]);
    check(Avro, &without_default, &base, FORWARD, &[&format!("note: field removed, and the old schema gives it no default; {OLD_CANNOT}")]);
    let amount_string = record(json!([{ "name": "id", "type": "string" }, { "name": "amount", "type": "string" }]));
    check(Avro, &base, &amount_string, BACKWARD, &[&format!("amount: type changed double -> string; {NEW_CANNOT}")]);
    // Promotions.
    check(Avro, &json!("int"), &json!("long"), BACKWARD, &[]);
    check(Avro, &json!("int"), &json!("double"), BACKWARD, &[]);
    check(Avro, &json!("long"), &json!("int"), BACKWARD, &[&format!("(root): type changed long -> int; {NEW_CANNOT}")]);
    check(Avro, &json!("string"), &json!("bytes"), FULL, &[]);
    // Enums.
    let colours = |symbols: Value| json!({ "type": "enum", "name": "Colour", "symbols": symbols });
    check(Avro, &colours(json!(["RED", "GREEN"])), &colours(json!(["RED", "GREEN", "BLUE"])), BACKWARD, &[]);
    check(
        Avro,
        &colours(json!(["RED", "GREEN"])),
        &colours(json!(["RED", "GREEN", "BLUE"])),
        FORWARD,
        &[&format!("(root): enum symbols changed [RED,GREEN] -> [RED,GREEN,BLUE]; {OLD_CANNOT}")],
    );
    // Unions.
    check(Avro, &json!("string"), &json!(["null", "string"]), BACKWARD, &[]);
    check(
        Avro,
        &json!(["null", "string"]),
        &json!("string"),
        BACKWARD,
        &[&format!("(root): type changed null|string -> string; {NEW_CANNOT}")],
    );
    check(Avro, &json!(["null", "int"]), &json!(["null", "long"]), BACKWARD, &[]);
    // Renamed record without alias, and with one.
    let renamed = json!({ "type": "record", "name": "Purchase", "namespace": "shop", "fields": [{ "name": "id", "type": "string" }, { "name": "amount", "type": "double" }] });
    check(Avro, &base, &renamed, BACKWARD, &[&format!("(root): type changed shop.Order -> shop.Purchase; {NEW_CANNOT}")]);
    let aliased = json!({ "type": "record", "name": "Purchase", "namespace": "shop", "aliases": ["Order"], "fields": [{ "name": "id", "type": "string" }, { "name": "amount", "type": "double" }] });
    check(Avro, &base, &aliased, BACKWARD, &[]);
    // Nested records and arrays get dotted paths; recursive types terminate.
    let nested = |qty: &str| {
        record(
            json!([{ "name": "lines", "type": { "type": "array", "items": { "type": "record", "name": "Line", "fields": [{ "name": "qty", "type": qty }] } } }]),
        )
    };
    check(Avro, &nested("int"), &nested("string"), BACKWARD, &[&format!("lines[].qty: type changed int -> string; {NEW_CANNOT}")]);
    let list = json!({ "type": "record", "name": "Node", "fields": [{ "name": "next", "type": ["null", "Node"], "default": null }] });
    check(Avro, &list, &list, FULL, &[]);
}

/// Proves that malformed schemas are refused with a reason and never panic.
#[test]
fn invalid_schemas_are_refused() {
    for text in [
        "{",
        "[1",
        "42",
        r#"{"type":"nope"}"#,
        r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":"no"}]}"#,
        r#"{"type":"enum","name":"E","symbols":["A","A"]}"#,
        r#"["int","int"]"#,
        r#"{"type":"record","name":"1A","fields":[]}"#,
    ] {
        assert!(crate::avro::parse(text, &[]).is_err(), "avro accepted {text}");
    }
    for text in ["{", "42", r#"{"type":"nope"}"#, r##"{"$ref":"#/$defs/missing"}"##, r#"{"properties":[]}"#, r#"{"required":"id"}"#] {
        assert!(json_schema::parse(text).is_err(), "json schema accepted {text}");
    }
    let deep = "[".repeat(200) + &"]".repeat(200);
    assert!(json_schema::parse(&deep).is_err());
}

fn open() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&dir.path().join("registry.redb")).unwrap();
    (dir, registry)
}

const ORDER_JSON: &str = r#"{"type":"object","properties":{"id":{"type":"string"},"amount":{"type":"number"}},"required":["id"]}"#;

/// Proves dedup across subjects, idempotent registration, versions and lookups.
#[test]
fn register_deduplicates_and_is_idempotent() {
    let (_dir, registry) = open();
    let first = registry.register("orders-value", SchemaType::Json, ORDER_JSON, &[]).unwrap();
    assert_eq!(first, RegisteredSchema { id: 1, version: 1 });
    assert_eq!(registry.register("orders-value", SchemaType::Json, ORDER_JSON, &[]).unwrap(), first);
    // Same schema, different whitespace and key order, other subject: same id, version 1.
    let reordered = r#"{ "required": ["id"], "type": "object", "properties": { "amount": {"type":"number"}, "id": {"type":"string"} } }"#;
    assert_eq!(registry.register("refunds-value", SchemaType::Json, reordered, &[]).unwrap(), RegisteredSchema { id: 1, version: 1 });
    let stored = registry.schema_by_id(1).unwrap().unwrap();
    assert_eq!((stored.schema_type, stored.schema.as_str()), (SchemaType::Json, ORDER_JSON));
    assert_eq!(registry.schema_by_id(99).unwrap(), None);
    let v2 =
        r#"{"type":"object","properties":{"id":{"type":"string"},"amount":{"type":"number"},"note":{"type":"string"}},"required":["id"]}"#;
    assert_eq!(registry.register("orders-value", SchemaType::Json, v2, &[]).unwrap(), RegisteredSchema { id: 2, version: 2 });
    assert_eq!(registry.latest("orders-value").unwrap().unwrap().id, 2);
    assert_eq!(registry.lookup("orders-value", SchemaType::Json, reordered, &[], false).unwrap().version, 1);
    assert_eq!(registry.versions_for_id(1, false).unwrap(), vec![("orders-value".to_string(), 1), ("refunds-value".to_string(), 1)]);
    // Incompatible: a required property added.
    let v3 = r#"{"type":"object","properties":{"id":{"type":"string"},"amount":{"type":"string"}},"required":["id","amount"]}"#;
    let error = registry.register("orders-value", SchemaType::Json, v3, &[]).unwrap_err();
    assert_eq!(error.error_code(), 409);
    assert!(error.to_string().contains("amount: type changed number -> string"), "{error}");
    registry.set_compatibility(Some("orders-value"), CompatibilityMode::None).unwrap();
    assert_eq!(registry.register("orders-value", SchemaType::Json, v3, &[]).unwrap().version, 3);
    // PROTOBUF and oversize schemas are refused with their codes.
    assert_eq!(registry.register("p", SchemaType::Protobuf, "syntax = \"proto3\";", &[]).unwrap_err().error_code(), 42201);
    let huge = format!("{{\"description\":\"{}\"}}", "x".repeat(SCHEMA_BYTES_MAX));
    assert_eq!(registry.register("h", SchemaType::Json, &huge, &[]).unwrap_err().error_code(), 42209);
    assert_eq!(registry.register("", SchemaType::Json, ORDER_JSON, &[]).unwrap_err().error_code(), 42208);
}

/// Proves soft delete, hard delete (only after soft), version numbering, and persistence.
#[test]
fn deletes_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.redb");
    {
        let registry = Registry::open(&path).unwrap();
        registry.register("s", SchemaType::Avro, r#""string""#, &[]).unwrap();
        registry.register("s", SchemaType::Avro, r#"["null","string"]"#, &[]).unwrap();
        assert_eq!(registry.delete_version("s", VersionSelector::Number(1), true).unwrap_err().error_code(), 40407);
        assert_eq!(registry.delete_version("s", VersionSelector::Number(1), false).unwrap(), 1);
        assert_eq!(registry.delete_version("s", VersionSelector::Number(1), false).unwrap_err().error_code(), 40406);
        assert_eq!(registry.versions("s", DeletedFilter::Live).unwrap(), vec![2]);
        assert_eq!(registry.versions("s", DeletedFilter::Include).unwrap(), vec![1, 2]);
        assert_eq!(registry.version("s", VersionSelector::Number(1), false).unwrap_err().error_code(), 40402);
        assert!(registry.version("s", VersionSelector::Number(1), true).unwrap().deleted);
        registry.set_compatibility(None, CompatibilityMode::Full).unwrap();
    }
    let registry = Registry::open(&path).unwrap();
    assert_eq!(registry.compatibility(None).unwrap(), Some(CompatibilityMode::Full));
    assert_eq!(registry.delete_subject("s", true).unwrap_err().error_code(), 40405);
    assert_eq!(registry.delete_subject("s", false).unwrap(), vec![2]);
    assert_eq!(registry.delete_subject("s", false).unwrap_err().error_code(), 40404);
    assert_eq!(registry.versions("s", DeletedFilter::Live).unwrap_err().error_code(), 40401);
    assert_eq!(registry.subjects("", DeletedFilter::Only).unwrap(), vec!["s".to_string()]);
    assert_eq!(registry.delete_subject("s", true).unwrap(), vec![1, 2]);
    assert_eq!(registry.delete_subject("s", true).unwrap_err().error_code(), 40401);
    // Ids survive a hard delete; a re-registration restarts versions and reuses the id.
    assert!(registry.schema_by_id(1).unwrap().is_some());
    assert_eq!(registry.register("s", SchemaType::Avro, r#""string""#, &[]).unwrap(), RegisteredSchema { id: 1, version: 1 });
}

/// Proves that every compatibility level is stored and named with Confluent's spelling, byte
/// for byte, that spellings parse in any case, and that each level survives a reopen: the
/// registry's wire format and file do not change with the level type shared with contracts.
#[test]
fn compatibility_levels_keep_confluent_spellings_through_the_store() {
    let confluent = ["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"];
    assert_eq!(CompatibilityMode::ALL.iter().map(|level| level.name()).collect::<Vec<_>>(), confluent);
    for name in confluent {
        assert_eq!(CompatibilityMode::parse(&name.to_ascii_lowercase()).map(CompatibilityMode::name), Some(name));
    }
    assert_eq!(CompatibilityMode::parse("BACKWARDS"), None);
    assert_eq!(DEFAULT_COMPATIBILITY.name(), "BACKWARD");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.redb");
    for &level in CompatibilityMode::ALL {
        Registry::open(&path).unwrap().set_compatibility(Some("orders-value"), level).unwrap();
        let reopened = Registry::open(&path).unwrap();
        assert_eq!(reopened.compatibility(Some("orders-value")).unwrap(), Some(level));
    }
}

/// Proves modes: read-only refuses writes, IMPORT keeps explicit ids, id conflicts are 42207.
#[test]
fn modes() {
    let (_dir, registry) = open();
    registry.register("a", SchemaType::Avro, r#""int""#, &[]).unwrap();
    assert_eq!(registry.set_mode(None, Mode::Import, false).unwrap_err().error_code(), 42205);
    registry.set_mode(Some("a"), Mode::ReadOnly, false).unwrap();
    assert_eq!(registry.register("a", SchemaType::Avro, r#""long""#, &[]).unwrap_err().error_code(), 42205);
    assert_eq!(registry.delete_mode("a").unwrap(), Mode::ReadOnly);
    assert_eq!(registry.delete_mode("a").unwrap_err().error_code(), 40409);
    registry.set_mode(Some("b"), Mode::Import, false).unwrap();
    assert_eq!(
        registry.register_with("b", SchemaType::Avro, r#""string""#, &[], Some(100), Some(7)).unwrap(),
        RegisteredSchema { id: 100, version: 7 }
    );
    assert_eq!(registry.register_with("b", SchemaType::Avro, r#""bytes""#, &[], Some(100), None).unwrap_err().error_code(), 42207);
    assert_eq!(registry.register_with("a", SchemaType::Avro, r#""bytes""#, &[], Some(5), None).unwrap_err().error_code(), 42205);
    // Fresh ids continue after the imported one.
    assert_eq!(registry.register("c", SchemaType::Avro, r#""boolean""#, &[]).unwrap().id, 101);
}

/// Proves Avro references: named types from a referenced subject resolve, and the
/// referenced version cannot be deleted while it is used.
#[test]
fn avro_references() {
    let (_dir, registry) = open();
    let money = r#"{"type":"record","name":"Money","namespace":"shop","fields":[{"name":"cents","type":"long"}]}"#;
    let money_id = registry.register("shop.Money", SchemaType::Avro, money, &[]).unwrap().id;
    let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"total","type":"Money"}]}"#;
    let reference = SchemaReference { name: "shop.Money".into(), subject: "shop.Money".into(), version: 1 };
    assert_eq!(registry.register("orders-value", SchemaType::Avro, order, &[]).unwrap_err().error_code(), 42201);
    let order_id = registry.register("orders-value", SchemaType::Avro, order, std::slice::from_ref(&reference)).unwrap().id;
    assert_ne!(order_id, money_id);
    assert_eq!(registry.referenced_by("shop.Money", VersionSelector::Latest).unwrap(), vec![order_id]);
    assert_eq!(registry.delete_subject("shop.Money", false).unwrap_err().error_code(), 42206);
}

/// An Avro schema whose named records each refer to the next one from two fields compares
/// 2^depth type pairs when walked naively; the check stops at `COMPATIBILITY_STEPS_MAX` and
/// answers incompatible (never compatible) at once, under the write lock or not.
#[test]
fn an_exponential_avro_comparison_is_cut_off_as_incompatible() {
    let n_levels = 40;
    let mut schema = json!({ "type": "record", "name": "R0", "fields": [{ "name": "leaf", "type": "int" }] });
    for level in 1..n_levels {
        let previous = format!("R{}", level - 1);
        let fields = json!([{ "name": "a", "type": schema.clone() }, { "name": "b", "type": previous }]);
        schema = json!({ "type": "record", "name": format!("R{level}"), "fields": fields });
    }
    let parsed = parse(SchemaType::Avro, &schema.to_string());
    let started = std::time::Instant::now();
    let messages = check_pair(&parsed, &parsed, BACKWARD);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("too complex to compare"), "{messages:?}");
}
