//! Semantic checks run after a resource parsed: the rules a JSON Schema cannot express, or that
//! Weft adds (names unique, options valid for the type, patterns compile, `weft.*` well-formed).
//!
//! Owns the "is this resource acceptable" decision. Contract checks compile every schema object,
//! so a contract that passes here is guaranteed to compile later.

use crate::compile::compile_object;
use crate::error::{ContractError, code};
use crate::model::DataContract;
use crate::product::{DataProduct, Domain, Policy, PolicyScope};
use crate::settings::refuse_weft_properties;

/// Checks a parsed contract; the first problem found is returned.
pub fn check_contract(contract: &DataContract) -> Result<(), ContractError> {
    if contract.kind != "DataContract" {
        return Err(ContractError::at(code::CONTRACT_INVALID, "/kind", "kind must be `DataContract`"));
    }
    if contract.status.is_none() && contract.api_version != "v3.2.0" {
        return Err(ContractError::at(
            code::RESOURCE_INVALID_FIELD,
            "/status",
            format!("missing field `status` (required by odcs {})", contract.api_version),
        ));
    }
    for (field, value) in [("id", &contract.id), ("version", &contract.version)] {
        if value.trim().is_empty() {
            return Err(ContractError::at(code::CONTRACT_INVALID, format!("/{field}"), format!("`{field}` must not be empty")));
        }
    }
    for (object_idx, object) in contract.schema.iter().enumerate() {
        let clash = contract.schema[..object_idx].iter().any(|earlier| {
            earlier.name == object.name || (object.physical_name.is_some() && earlier.physical_name == object.physical_name)
        });
        if clash {
            return Err(ContractError::at(
                code::CONTRACT_DUPLICATE_PROPERTY,
                format!("/schema/{object_idx}/name"),
                format!("schema object `{}` is declared twice", object.name),
            ));
        }
        if object.physical_type.as_deref() == Some("topic") && object.physical_name.is_none() {
            return Err(ContractError::at(
                code::CONTRACT_INVALID,
                format!("/schema/{object_idx}"),
                "a schema object with `physicalType: topic` needs a `physicalName` (the stream name)",
            ));
        }
        compile_object(contract, object_idx, object)?;
    }
    for (server_idx, server) in contract.servers.iter().enumerate() {
        let pointer = format!("/servers/{server_idx}");
        if server.server_type == "kafka" && server.host.is_none() {
            return Err(ContractError::at(code::RESOURCE_INVALID_FIELD, format!("{pointer}/host"), "a kafka server needs `host`"));
        }
        refuse_weft_properties(&server.custom_properties, &format!("{pointer}/customProperties"))?;
    }
    Ok(())
}

/// Checks a parsed ODPS data product.
pub fn check_product(product: &DataProduct) -> Result<(), ContractError> {
    for (port_idx, port) in product.output_ports.iter().enumerate() {
        let duplicate = product.output_ports[..port_idx].iter().any(|earlier| earlier.name == port.name && earlier.version == port.version);
        if duplicate {
            return Err(ContractError::at(
                code::RESOURCE_INVALID,
                format!("/outputPorts/{port_idx}"),
                format!("output port `{}` version `{}` is declared twice", port.name, port.version),
            ));
        }
    }
    for (support_idx, support) in product.support.iter().enumerate() {
        if support.url.is_none() {
            return Err(ContractError::at(
                code::RESOURCE_INVALID_FIELD,
                format!("/support/{support_idx}/url"),
                "odps support channels need a `url`",
            ));
        }
    }
    Ok(())
}

/// Checks a Weft domain.
pub fn check_domain(domain: &Domain) -> Result<(), ContractError> {
    if domain.name.trim().is_empty() {
        return Err(ContractError::at(code::RESOURCE_INVALID, "/name", "domain `name` must not be empty"));
    }
    Ok(())
}

/// Checks a Weft policy: `scope: domain` names its domain, `scope: global` does not.
pub fn check_policy(policy: &Policy) -> Result<(), ContractError> {
    match (policy.scope, &policy.domain) {
        (PolicyScope::Domain, None) => {
            Err(ContractError::at(code::RESOURCE_INVALID, "/domain", "a policy with `scope: domain` needs `domain`"))
        }
        (PolicyScope::Global, Some(_)) => {
            Err(ContractError::at(code::RESOURCE_INVALID, "/domain", "a policy with `scope: global` must not name a `domain`"))
        }
        _ => Ok(()),
    }
}
