//! OpenLineage (spec 2-0-2) export of declared lineage: one RunEvent per data product, its job
//! a streaming job named after the product, its inputs the streams of its input ports and its
//! outputs the streams of its output ports.
//!
//! Datasets follow OpenLineage's Kafka naming: namespace `kafka://<bootstrap host:port>` (the
//! advertised Kafka address, else `KAFKA_NAMESPACE_DEFAULT`), name the topic (stream). The run
//! id is derived from the product id and version, so the same product version is always the
//! same run (a streaming job runs as long as its version is deployed); the event type is
//! `RUNNING`, or `COMPLETE` for a retired product. Output datasets carry the `schema` facet
//! built from the contract.

use serde_json::{Value, json};
use weft_contract::{DataProduct, SchemaProperty};
use weft_core::cloudevent::format_rfc3339_ms;
use weft_core::mesh::MeshState;

use crate::AppState;

/// The `producer` of every event and facet: Weft's source repository, at this version.
pub const WEFT_PRODUCER_URL: &str = concat!("https://github.com/weft-mesh/weft/tree/v", env!("CARGO_PKG_VERSION"));
pub const RUN_EVENT_SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
pub const JOB_TYPE_FACET_SCHEMA_URL: &str = "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
pub const SCHEMA_FACET_SCHEMA_URL: &str = "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
/// Namespace of jobs: this Weft instance.
pub const JOB_NAMESPACE: &str = "weft";
/// Kafka bootstrap used in dataset namespaces when the server did not announce one.
pub const KAFKA_NAMESPACE_DEFAULT: &str = "kafka://127.0.0.1:9092";
/// Deepest nesting of schema fields exported (contracts are bounded too; this bounds the facet).
const SCHEMA_FIELD_DEPTH_MAX: usize = 8;

/// A UUID (version 8, RFC 9562 "custom") derived from the product id and version.
fn run_id(product: &DataProduct) -> uuid::Uuid {
    // Two FNV-1a 64-bit hashes with different offsets give 128 stable bits.
    let text = format!("{}\u{0}{}", product.id, product.version.as_deref().unwrap_or(""));
    let fnv = |offset: u64| text.bytes().fold(offset, |hash, byte| (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&fnv(0xcbf2_9ce4_8422_2325).to_be_bytes());
    bytes[8..].copy_from_slice(&fnv(0x84222325_cbf29ce4).to_be_bytes());
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

fn schema_fields(properties: &[SchemaProperty], depth: usize) -> Vec<Value> {
    properties
        .iter()
        .filter_map(|property| {
            let name = property.name.as_deref()?;
            let mut field = json!({ "name": name });
            if let Some(logical_type) = &property.logical_type {
                field["type"] = json!(logical_type);
            }
            if let Some(description) = &property.description {
                field["description"] = json!(description);
            }
            let children: Vec<SchemaProperty> =
                property.properties.iter().chain(property.items.iter().flat_map(|items| items.properties.iter())).cloned().collect();
            if !children.is_empty() && depth < SCHEMA_FIELD_DEPTH_MAX {
                field["fields"] = json!(schema_fields(&children, depth + 1));
            }
            Some(field)
        })
        .collect()
}

fn dataset(namespace: &str, mesh: &MeshState, stream: &str, with_schema: bool) -> Value {
    let mut dataset = json!({ "namespace": namespace, "name": stream });
    let object = mesh
        .contract_of_stream(stream)
        .and_then(|contract| contract.schema.iter().find(|o| o.physical_name.as_deref() == Some(stream)).cloned());
    if let (true, Some(object)) = (with_schema, object) {
        dataset["facets"] = json!({
            "schema": {
                "_producer": WEFT_PRODUCER_URL,
                "_schemaURL": SCHEMA_FACET_SCHEMA_URL,
                "fields": schema_fields(&object.properties, 0),
            }
        });
    }
    dataset
}

/// One RunEvent per product, as a JSON array.
pub fn run_events(state: &AppState, mesh: &MeshState, products: &[&DataProduct]) -> Value {
    let namespace =
        state.kafka_bootstrap.as_deref().map_or_else(|| KAFKA_NAMESPACE_DEFAULT.to_string(), |host_port| format!("kafka://{host_port}"));
    let event_time = format_rfc3339_ms(state.broker.now_ms());
    let events: Vec<Value> = products
        .iter()
        .map(|product| {
            let (outputs, inputs) = weft_core::lineage::declared_streams(mesh, product);
            let event_type = if product.status.eq_ignore_ascii_case("retired") { "COMPLETE" } else { "RUNNING" };
            json!({
                "eventType": event_type,
                "eventTime": event_time,
                "run": { "runId": run_id(product).to_string() },
                "job": {
                    "namespace": JOB_NAMESPACE,
                    "name": product.id,
                    "facets": {
                        "jobType": {
                            "_producer": WEFT_PRODUCER_URL,
                            "_schemaURL": JOB_TYPE_FACET_SCHEMA_URL,
                            "processingType": "STREAMING",
                            "integration": "WEFT",
                            "jobType": "JOB",
                        }
                    }
                },
                "inputs": inputs.iter().map(|stream| dataset(&namespace, mesh, stream, false)).collect::<Vec<_>>(),
                "outputs": outputs.iter().map(|stream| dataset(&namespace, mesh, stream, true)).collect::<Vec<_>>(),
                "producer": WEFT_PRODUCER_URL,
                "schemaURL": RUN_EVENT_SCHEMA_URL,
            })
        })
        .collect();
    Value::Array(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_stable_uuids_per_product_version() {
        let product = |version: &str| {
            let yaml = format!("apiVersion: v1.0.0\nkind: DataProduct\nid: urn:p\nstatus: active\nversion: {version}\n");
            match weft_contract::parse_documents(&yaml, "p.yaml").unwrap().remove(0) {
                weft_contract::Document::Product(product) => *product,
                _ => panic!("a product"),
            }
        };
        let first = run_id(&product("1.0.0"));
        assert_eq!(first, run_id(&product("1.0.0")));
        assert_ne!(first, run_id(&product("1.1.0")));
        assert_eq!(first.get_version_num(), 8);
        assert!(uuid::Uuid::parse_str(&first.to_string()).is_ok());
    }
}
