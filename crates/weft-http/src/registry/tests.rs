//! The registry's REST surface end to end through `oneshot`: Confluent's shapes, status codes
//! and error codes, over a real registry in a temporary directory.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use weft_registry::Registry;

use super::router;

const ORDER_JSON: &str = r#"{"type":"object","properties":{"id":{"type":"string"},"amount":{"type":"number"}},"required":["id"]}"#;
const NEW_CANNOT: &str = "readers using the new schema cannot read old data";

fn open() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&dir.path().join("registry.redb")).unwrap();
    (dir, registry)
}

async fn call(app: &axum::Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/vnd.schemaregistry.v1+json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let response = app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/vnd.schemaregistry.v1+json");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn raw(app: &axum::Router, method: &str, uri: &str, content_type: &str, body: &'static str) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri).header("content-type", content_type).body(Body::from(body)).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Proves the REST surface end to end: shapes, status codes and Confluent error codes.
#[tokio::test]
async fn the_rest_api_answers_with_confluents_shapes_and_error_codes() {
    let (_dir, registry) = open();
    let app = router(Arc::new(registry));
    assert_eq!(call(&app, "GET", "/", None).await, (StatusCode::OK, json!({})));
    assert_eq!(call(&app, "GET", "/schemas/types", None).await.1, json!(["JSON", "AVRO"]));
    let register = json!({ "schema": ORDER_JSON, "schemaType": "JSON", "references": [] });
    assert_eq!(
        call(&app, "POST", "/subjects/orders-value/versions?normalize=False", Some(register.clone())).await,
        (StatusCode::OK, json!({ "id": 1, "version": 1 }))
    );
    assert_eq!(call(&app, "GET", "/schemas/ids/1", None).await.1, json!({ "schema": ORDER_JSON, "schemaType": "JSON" }));
    assert_eq!(call(&app, "GET", "/schemas/ids/1/schema", None).await.1, serde_json::from_str::<Value>(ORDER_JSON).unwrap());
    assert_eq!(call(&app, "GET", "/schemas/ids/1/subjects", None).await.1, json!(["orders-value"]));
    assert_eq!(call(&app, "GET", "/schemas/ids/1/versions", None).await.1, json!([{ "subject": "orders-value", "version": 1 }]));
    assert_eq!(call(&app, "GET", "/subjects", None).await.1, json!(["orders-value"]));
    assert_eq!(call(&app, "GET", "/subjects/orders-value/versions", None).await.1, json!([1]));
    let latest = json!({ "subject": "orders-value", "version": 1, "id": 1, "schema": ORDER_JSON, "schemaType": "JSON" });
    assert_eq!(call(&app, "GET", "/subjects/orders-value/versions/latest", None).await.1, latest);
    assert_eq!(call(&app, "GET", "/subjects/orders-value/versions/-1", None).await.1, latest);
    assert_eq!(call(&app, "POST", "/subjects/orders-value?deleted=False", Some(register.clone())).await.1, latest);
    // Compatibility, verbose and not.
    let bad = json!({ "schemaType": "JSON", "schema": r#"{"type":"object","properties":{"id":{"type":"string"},"amount":{"type":"string"}},"required":["id"]}"# });
    let message = format!("amount: type changed number -> string; {NEW_CANNOT}");
    assert_eq!(
        call(&app, "POST", "/compatibility/subjects/orders-value/versions/latest?verbose=true", Some(bad.clone())).await.1,
        json!({
            "is_compatible": false,
            "messages": [message]
        })
    );
    assert_eq!(
        call(&app, "POST", "/compatibility/subjects/orders-value/versions", Some(bad.clone())).await.1,
        json!({ "is_compatible": false })
    );
    assert_eq!(
        call(&app, "POST", "/compatibility/subjects/orders-value/versions/1", Some(register.clone())).await.1,
        json!({ "is_compatible": true })
    );
    let (status, body) = call(&app, "POST", "/subjects/orders-value/versions", Some(bad.clone())).await;
    assert_eq!((status, body["error_code"].clone()), (StatusCode::CONFLICT, json!(409)));
    // Errors with Confluent codes.
    let expect = |code: u64| {
        move |(status, body): (StatusCode, Value)| {
            assert_eq!(body["error_code"], json!(code), "{body}");
            assert_eq!(u64::from(status.as_u16()), code.to_string()[..3].parse::<u64>().unwrap());
            assert!(body["message"].is_string());
        }
    };
    expect(40401)(call(&app, "GET", "/subjects/nope/versions", None).await);
    expect(40402)(call(&app, "GET", "/subjects/orders-value/versions/9", None).await);
    expect(40403)(call(&app, "GET", "/schemas/ids/77", None).await);
    expect(40403)(call(&app, "POST", "/subjects/orders-value", Some(json!({ "schema": "\"int\"" }))).await);
    expect(42202)(call(&app, "GET", "/subjects/orders-value/versions/0", None).await);
    expect(42201)(call(&app, "POST", "/subjects/x/versions", Some(json!({ "schema": "{", "schemaType": "JSON" }))).await);
    expect(42201)(call(&app, "POST", "/subjects/x/versions", Some(json!({ "schema": "syntax", "schemaType": "PROTOBUF" }))).await);
    expect(42201)(call(&app, "POST", "/subjects/x/versions", Some(json!({ "schemaType": "JSON" }))).await);
    expect(42203)(call(&app, "PUT", "/config", Some(json!({ "compatibility": "SIDEWAYS" }))).await);
    expect(42204)(call(&app, "PUT", "/mode", Some(json!({ "mode": "SIDEWAYS" }))).await);
    expect(40408)(call(&app, "GET", "/config/orders-value", None).await);
    expect(40409)(call(&app, "GET", "/mode/orders-value", None).await);
    expect(400)(raw(&app, "POST", "/subjects/x/versions", "application/json", "{not json").await);
    expect(422)(raw(&app, "POST", "/subjects/x/versions", "application/json", r#"{"schema": 5}"#).await);
    expect(415)(raw(&app, "POST", "/subjects/x/versions", "text/plain", r#"{"schema":"\"int\""}"#).await);
    expect(404)(call(&app, "GET", "/no/such/route", None).await);
    // Untyped and octet-stream bodies are JSON too.
    assert_eq!(
        raw(&app, "POST", "/subjects/plain/versions", "application/octet-stream", r#"{"schema":"\"int\""}"#).await.0,
        StatusCode::OK
    );
    // Config and mode.
    assert_eq!(call(&app, "GET", "/config", None).await.1, json!({ "compatibilityLevel": "BACKWARD" }));
    assert_eq!(
        call(&app, "PUT", "/config/orders-value", Some(json!({ "compatibility": "full" }))).await.1,
        json!({ "compatibility": "FULL" })
    );
    assert_eq!(call(&app, "GET", "/config/orders-value", None).await.1, json!({ "compatibilityLevel": "FULL" }));
    assert_eq!(call(&app, "GET", "/config/other?defaultToGlobal=true", None).await.1, json!({ "compatibilityLevel": "BACKWARD" }));
    assert_eq!(call(&app, "DELETE", "/config/orders-value", None).await.1, json!({ "compatibilityLevel": "FULL" }));
    assert_eq!(call(&app, "GET", "/mode", None).await.1, json!({ "mode": "READWRITE" }));
    assert_eq!(call(&app, "PUT", "/mode/orders-value", Some(json!({ "mode": "READONLY" }))).await.1, json!({ "mode": "READONLY" }));
    expect(42205)(call(&app, "DELETE", "/subjects/orders-value", None).await);
    assert_eq!(call(&app, "DELETE", "/mode/orders-value", None).await.1, json!({ "mode": "READONLY" }));
    // Deletes.
    expect(40405)(call(&app, "DELETE", "/subjects/orders-value?permanent=true", None).await);
    assert_eq!(call(&app, "DELETE", "/subjects/orders-value", None).await.1, json!([1]));
    expect(40404)(call(&app, "DELETE", "/subjects/orders-value", None).await);
    assert_eq!(call(&app, "GET", "/subjects?deleted=true", None).await.1, json!(["orders-value", "plain"]));
    assert_eq!(call(&app, "DELETE", "/subjects/orders-value?permanent=true", None).await.1, json!([1]));
    assert_eq!(call(&app, "GET", "/subjects?deleted=true", None).await.1, json!(["plain"]));
    // Subjects with reserved URL characters round-trip.
    assert_eq!(call(&app, "POST", "/subjects/a%2Fb%20c/versions", Some(json!({ "schema": "\"long\"" }))).await.0, StatusCode::OK);
    assert_eq!(call(&app, "GET", "/subjects/a%2Fb%20c/versions/1", None).await.1["subject"], json!("a/b c"));
}
