//! The schema registry as the broker sees it: a port the binary connects to `weft-registry`
//! (`weft/src/registry_port.rs`), so that `weft-core` and `weft-registry` do not know each other.

use serde_json::Value;

/// The broker's port to the schema registry, both ways: apply registers each new contract
/// version's JSON Schema, and produce looks up the schema ids that framed values carry.
pub trait SchemaRegistryPort: Send + Sync {
    /// Registers a contract's `schema` under `subject` and marks it as a version of the contract,
    /// which makes `subject` contract-fed (changed through apply only); returns a message if the
    /// registry refuses it. Registering the same schema again only marks it.
    fn register_json_schema(&self, subject: &str, schema: &Value) -> Result<(), String>;
    /// Subjects under which a schema id is registered (empty if the id is unknown).
    fn subjects_of_schema(&self, schema_id: u32) -> Vec<String>;
    /// Did a contract register `schema_id` under `subject` (through `register_json_schema`)?
    /// False when the registry cannot tell, so a governed stream then refuses the frame.
    fn is_contract_version(&self, subject: &str, schema_id: u32) -> bool;
}
