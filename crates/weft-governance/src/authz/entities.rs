//! The entity data Cedar decides over, built from the applied mesh: domains with their owners and
//! team, products under their domain, streams under their product, principals under their domains.
//!
//! Owns the shape of [`Mesh`] (what the caller hands in) and its translation into Cedar entities
//! (see the entity model table in the parent module's doc). It does not read applied resources
//! itself, check policies, or decide requests.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use cedar_policy::{Entities, Entity, RestrictedExpression};

use super::BuildError;
use super::schema::{TYPE_DATA_PRODUCT, TYPE_DOMAIN, TYPE_PRINCIPAL, TYPE_STREAM, entity_uid, schema};

/// A `Domain` resource as authorization sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainEntity {
    pub name: String,
    pub owners: Vec<String>,
    pub team: Vec<String>,
}

/// A data product and the domain that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductEntity {
    pub id: String,
    pub domain: String,
}

/// A stream, the product it belongs to (if any) and the classifications of its properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamEntity {
    pub name: String,
    pub product: Option<String>,
    pub classifications: Vec<String>,
}

/// A principal and the domains its identity record lists (see [`crate::identity::Principal`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalEntity {
    pub name: String,
    pub domains: Vec<String>,
}

/// Everything about the mesh that decisions depend on, built by the caller from applied resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mesh {
    pub domains: Vec<DomainEntity>,
    pub products: Vec<ProductEntity>,
    pub streams: Vec<StreamEntity>,
    pub principals: Vec<PrincipalEntity>,
}

impl Mesh {
    pub(crate) fn product_domain(&self, product: &str) -> Option<&str> {
        self.products.iter().rev().find(|candidate| candidate.id == product).map(|candidate| candidate.domain.as_str())
    }
    pub(crate) fn stream_domain(&self, stream: &str) -> Option<&str> {
        let stream = self.streams.iter().rev().find(|candidate| candidate.name == stream)?;
        self.product_domain(stream.product.as_deref()?)
    }
}

/// The Cedar entities of `mesh`, with every referred-to domain present and the schema's actions.
pub(crate) fn build_entities(mesh: &Mesh) -> Result<Entities, BuildError> {
    let principal_uid = |name: &str| entity_uid(TYPE_PRINCIPAL, name);
    let domain_uid = |name: &str| entity_uid(TYPE_DOMAIN, name);

    // Domains: defined ones, plus every domain referred to, so no policy reads a missing entity.
    let mut domains: BTreeMap<&str, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    for domain in &mesh.domains {
        let (owners, team) = domains.entry(domain.name.as_str()).or_default();
        owners.extend(domain.owners.iter().map(String::as_str));
        team.extend(domain.team.iter().map(String::as_str));
    }
    for product in &mesh.products {
        domains.entry(product.domain.as_str()).or_default();
    }
    for principal in &mesh.principals {
        for domain in &principal.domains {
            domains.entry(domain.as_str()).or_default();
        }
    }

    let mut principal_parents: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for principal in &mesh.principals {
        principal_parents.entry(principal.name.as_str()).or_default().extend(principal.domains.iter().map(String::as_str));
    }
    for (domain, (owners, team)) in &domains {
        for member in owners.iter().chain(team) {
            principal_parents.entry(member).or_default().insert(domain);
        }
    }

    let mut entities = Vec::new();
    let entity_error = |error: cedar_policy::EntityAttrEvaluationError| BuildError::Entities(error.to_string());
    for (name, parents) in &principal_parents {
        entities.push(Entity::new_no_attrs(principal_uid(name), parents.iter().map(|domain| domain_uid(domain)).collect()));
    }
    for (name, (owners, team)) in &domains {
        let set = |members: &BTreeSet<&str>| {
            RestrictedExpression::new_set(members.iter().map(|member| RestrictedExpression::new_entity_uid(principal_uid(member))))
        };
        let attrs = HashMap::from([("owners".to_string(), set(owners)), ("team".to_string(), set(team))]);
        entities.push(Entity::new(domain_uid(name), attrs, HashSet::new()).map_err(entity_error)?);
    }
    let mut products: BTreeMap<&str, &str> = BTreeMap::new();
    for product in &mesh.products {
        products.insert(product.id.as_str(), product.domain.as_str());
    }
    for (id, domain) in &products {
        let attrs = HashMap::from([("domain".to_string(), RestrictedExpression::new_entity_uid(domain_uid(domain)))]);
        entities.push(Entity::new(entity_uid(TYPE_DATA_PRODUCT, id), attrs, HashSet::from([domain_uid(domain)])).map_err(entity_error)?);
    }
    let mut streams: BTreeMap<&str, &StreamEntity> = BTreeMap::new();
    for stream in &mesh.streams {
        streams.insert(stream.name.as_str(), stream);
    }
    for (name, stream) in streams {
        let classifications: BTreeSet<String> = stream.classifications.iter().map(|label| label.to_lowercase()).collect();
        let mut attrs = HashMap::from([(
            "classifications".to_string(),
            RestrictedExpression::new_set(classifications.into_iter().map(RestrictedExpression::new_string)),
        )]);
        let mut parents = HashSet::new();
        if let Some(product) = &stream.product {
            let product_uid = entity_uid(TYPE_DATA_PRODUCT, product);
            attrs.insert("product".to_string(), RestrictedExpression::new_entity_uid(product_uid.clone()));
            parents.insert(product_uid);
            if let Some(domain) = products.get(product.as_str()) {
                attrs.insert("domain".to_string(), RestrictedExpression::new_entity_uid(domain_uid(domain)));
            }
        }
        entities.push(Entity::new(entity_uid(TYPE_STREAM, name), attrs, parents).map_err(entity_error)?);
    }
    let actions = schema().action_entities().map_err(|error| BuildError::Entities(error.to_string()))?;
    entities.extend(actions.iter().cloned());
    Entities::from_entities(entities, Some(schema())).map_err(|error| BuildError::Entities(error.to_string()))
}
