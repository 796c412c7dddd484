//! Serde model of the other resources a mesh is made of: ODPS v1.0.0 data products and Weft's own
//! `weft/v1` `Domain` and `Policy` documents.
//!
//! Owns plain data only; like [`crate::model`], every struct refuses unknown fields.
//! Policy text is kept as an opaque string: evaluating it is the job of another crate.

use serde::{Deserialize, Serialize};

use crate::model::{AuthoritativeDefinition, CustomProperty, DataContract, Description, SupportItem, Team};

/// ODPS v1.0.0 `kind: DataProduct`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataProduct {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_ports: Vec<InputPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_ports: Vec<OutputPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub management_ports: Vec<ManagementPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub support: Vec<SupportItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<Team>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_created_ts: Option<String>,
}

impl DataProduct {
    /// The data product a contract stands for when no ODPS product publishes it: the
    /// contract's id, name, version, domain, description, tags, support and team, and one
    /// output port, the contract itself. "A contract alone is enough to get a governed stream";
    /// this makes that stream a product in the catalog and for policies too.
    pub fn implicit_for(contract: &DataContract) -> Self {
        Self {
            api_version: "v1.0.0".to_string(),
            kind: "DataProduct".to_string(),
            id: contract.id.clone(),
            status: contract.status.clone().unwrap_or_else(|| "active".to_string()),
            name: contract.name.clone(),
            version: Some(contract.version.clone()),
            domain: contract.domain.clone(),
            tenant: contract.tenant.clone(),
            description: contract.description.clone(),
            tags: contract.tags.clone(),
            authoritative_definitions: Vec::new(),
            custom_properties: Vec::new(),
            input_ports: Vec::new(),
            output_ports: vec![OutputPort {
                name: contract.name.clone().unwrap_or_else(|| contract.id.clone()),
                version: contract.version.clone(),
                contract_id: Some(contract.id.clone()),
                port_type: None,
                description: None,
                sbom: Vec::new(),
                input_contracts: Vec::new(),
                tags: Vec::new(),
                custom_properties: Vec::new(),
                authoritative_definitions: Vec::new(),
            }],
            management_ports: Vec::new(),
            support: contract.support.clone(),
            team: contract.team.clone(),
            product_created_ts: None,
        }
    }
}

/// An input port: a contract (by ODCS `id` and `version`) this product consumes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputPort {
    pub name: String,
    pub version: String,
    pub contract_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
}

/// An output port: a contract this product promises; `name` + `version` is the key.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputPort {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub port_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sbom: Vec<Sbom>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_contracts: Vec<InputContract>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sbom {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub sbom_type: Option<String>,
    pub url: String,
}

/// Declared lineage: a contract (id + version) an output port is derived from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputContract {
    pub id: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagementPort {
    pub name: String,
    /// `discoverability`, `observability`, `control` (or `dictionary`).
    pub content: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub port_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_properties: Vec<CustomProperty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authoritative_definitions: Vec<AuthoritativeDefinition>,
}

/// Weft `apiVersion: weft/v1`, `kind: Domain`: a named area of ownership.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Domain {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Principal names that own the domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<Team>,
}

/// Where a [`Policy`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyScope {
    Global,
    Domain,
}

/// Weft `apiVersion: weft/v1`, `kind: Policy`: access policies as text.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub scope: PolicyScope,
    /// Required when `scope: domain`, refused when `scope: global`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Policy source text, evaluated elsewhere.
    pub policies: String,
}
