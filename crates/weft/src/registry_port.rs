//! Connects the schema registry to the broker's `SchemaRegistryPort`: applied contracts register their JSON Schema
//! under `<stream>-value` (marking the subject contract-fed), and Confluent-framed events are checked against
//! registered ids and, on governed streams, against the contract's own versions.
//! This adapter lives in the binary so that `weft-core` and `weft-registry` do not know each other.

use std::sync::Arc;

use weft_registry::{Registry, SchemaType};

pub struct RegistryAdapter(pub Arc<Registry>);

impl weft_core::schema_registry::SchemaRegistryPort for RegistryAdapter {
    fn register_json_schema(&self, subject: &str, schema: &serde_json::Value) -> Result<(), String> {
        self.0.register_for_contract(subject, SchemaType::Json, &schema.to_string(), &[]).map(|_| ()).map_err(|error| error.to_string())
    }

    fn is_contract_version(&self, subject: &str, schema_id: u32) -> bool {
        self.0.is_contract_version(subject, schema_id).unwrap_or(false)
    }

    fn subjects_of_schema(&self, schema_id: u32) -> Vec<String> {
        self.0.versions_for_id(schema_id, false).map(|pairs| pairs.into_iter().map(|(subject, _)| subject).collect()).unwrap_or_default()
    }
}
