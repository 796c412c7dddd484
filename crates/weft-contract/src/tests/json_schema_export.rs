//! JSON Schema export.

use super::*;

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
