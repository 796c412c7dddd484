//! Authorization with Cedar: the public schema, the entity data Weft builds from applied resources,
//! the default policies, federated Policy resources, and cached decisions.
//!
//! Owns decisions only. It does not know who a request comes from (that is [`crate::identity`]), and
//! it does not read resources from disk: the caller hands it a [`Mesh`] built from applied `Domain`,
//! `DataProduct` and stream resources, and the stored Policy resources as [`PolicySource`]s.
//!
//! This file holds the [`Authorizer`] (policy sets per domain, evaluation, the cache, explanations);
//! `schema.rs` holds the Cedar schema, built-in policies, [`Action`] and [`Resource`]; `entities.rs`
//! turns a [`Mesh`] into Cedar entities; `policies.rs` checks Policy resources and guards domain policies.
//!
//! ## Entity model
//!
//! | entity | id | parents | attributes |
//! |---|---|---|---|
//! | `Weft::Principal` | principal name | every `Weft::Domain` whose `owners` or `team` lists it, and the domains on its identity record | none |
//! | `Weft::Domain` | domain name | none | `owners: Set<Principal>`, `team: Set<Principal>` |
//! | `Weft::DataProduct` | product id | its `Weft::Domain` | `domain: Domain` |
//! | `Weft::Stream` | stream name | its `Weft::DataProduct`, if it belongs to one | `classifications: Set<String>` (lowercase), `domain?: Domain`, `product?: DataProduct` |
//! | `Weft::ConsumerGroup` | group name | none | `creator?: Principal` (who first used it), `streams: Set<Stream>` (used on), `stream_owners: Set<Principal>` (owners of their domains) |
//!
//! So team membership is hierarchy (`principal in Weft::Domain::"sales"`), ownership is an attribute
//! (`resource.domain.owners.contains(principal)`), and a grant `resource in Weft::DataProduct::"p"`
//! covers p's streams, and `resource in Weft::Domain::"d"` covers d's products and their streams.
//! Every domain that anything refers to exists as an entity (with empty `owners` and `team` if no
//! `Domain` resource defines it), so policies never read attributes of a missing entity.
//!
//! Mesh-wide administration (principals, tokens of other principals, global policies, the audit log)
//! is checked as action `admin` on `Weft::Principal::"admin"` ([`Resource::mesh`]), since the public
//! schema has no entity for the mesh itself; token operations on a principal's tokens may instead
//! be checked as `admin` on that principal.
//!
//! ## Policies
//!
//! Policy ids are `<Policy resource name>/<index>` (index = position in its `policies` text, from 0);
//! the built-in policies are `default/<what>` ([`DEFAULT_POLICIES`]), so `default` is a reserved name.
//! Cedar's rule decides: a request is allowed iff some permit applies and no forbid applies.
//! Hence a global `forbid` beats every permit, domain or global.
//!
//! **Domain scope rule.** A domain policy of domain D may only speak about D's resources. At apply
//! time ([`check_policy_resource`]) every policy in it must have a resource scope `resource in E`,
//! `resource == E` or `resource is T in E`, where E is `Weft::Domain::"D"`, a `Weft::DataProduct` of D,
//! or a `Weft::Stream` of a product of D; unconstrained `resource` and `resource is T` alone are refused
//! (`policy.outside_domain`). Conditions (`when`/`unless`) can only narrow a policy, so with the scope
//! confined the policy cannot reach outside D. A domain `permit` may not grant `admin` (an
//! unconstrained `action` includes it): `policy.forbidden_action`. Templates are refused.
//!
//! Because product and stream membership can change after apply, the scope is also enforced at
//! evaluation: Weft adds `when { resource in Weft::Domain::"D" }` to every domain policy, so a policy
//! whose product later moved to another domain becomes inert rather than reaching into it.
//! A request is evaluated against the built-in and global policies plus only the policies of the
//! resource's own domain (no other domain's could match it), so a decision's cost does not grow with
//! the number of domains, and requests on principals and consumer groups see no domain policy. Domain
//! forbids also get `unless { principal == Weft::Principal::"admin" }`: a domain cannot lock the mesh
//! operator out of fixing its policies. Global forbids do bind `admin`.
//! Soundness rests on the hierarchy: the caller must only place a product under domain D (or a
//! stream under a product of D) for a principal allowed to `apply` on D. Weft's apply does so by
//! judging every update against the resource as stored and every move against both domains
//! (`weft-core`'s `mesh/ownership.rs`), and by keeping each Policy name in the scope that first
//! applied it, so a domain policy never replaces a global one.
//!
//! **Consumer groups** are resources of their own: the built-in `default/consumer_groups` lets the
//! group's `creator` and its `stream_owners` consume it (admins may anyway), and a global policy
//! can grant others. Their entities come from a [`GroupDirectory`] the caller keeps current, not
//! from the [`Mesh`], and decisions on them are not cached (see `groups.rs`).
//!
//! Denials returned to clients ([`Denied`]) name the action and resource only; policy ids and texts
//! are for `weft authz explain` ([`Authorizer::explain`]), which the caller reserves to admins.
//!
//! ## Caching
//!
//! An [`Authorizer`] is immutable: built from one set of policies and one mesh. It caches decisions
//! per (principal, action, resource); a change to policies or resources builds a new `Authorizer`
//! and swaps it in ([`SharedAuthorizer::replace`]), which drops the old cache with the old authorizer.

mod entities;
mod groups;
mod policies;
mod schema;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use cedar_policy::{Context, Effect, Entities, Entity, Policy, PolicyId, PolicySet, Request};

pub use entities::{DomainEntity, Mesh, PrincipalEntity, ProductEntity, StreamEntity};
pub use groups::{GroupDirectory, GroupRecord};
pub use policies::{PolicyError, PolicyScope, PolicySource, check_policy_resource};
pub use schema::{Action, DEFAULT_POLICIES, Resource, SCHEMA, default_policies_text};

use crate::codes;
use entities::build_entities;
use policies::{MembershipCheck, check_source, guard_domain_policy, policy_error};
use schema::{TYPE_PRINCIPAL, entity_uid, schema};

/// Owners of no domain: what a stream outside every domain has.
const NO_OWNERS: &[String] = &[];

/// Longest `policies` text in one Policy resource.
pub const POLICY_TEXT_BYTES_MAX: usize = 64 * 1024;
/// Most policies in one Policy resource.
pub const POLICIES_PER_RESOURCE_MAX: usize = 256;
/// Most cached decisions; the cache is emptied when it is full (simple, and a rebuild is cheap).
pub const DECISION_CACHE_ENTRIES_MAX: usize = 100_000;
/// Longest Policy resource name.
pub const POLICY_NAME_BYTES_MAX: usize = 128;
/// The Policy resource name reserved for the built-in policies.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// Why an [`Authorizer`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The mesh's entity data does not conform to the schema (a bug in the caller or here).
    #[error("authorization entities: {0}")]
    Entities(String),
}

/// The outcome of one authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Ids of the policies that decided: the permits that allowed it, or the forbids that denied it
    /// (empty for a default deny). Internal: never shown to the client that was denied.
    pub reasons: Vec<String>,
    /// Evaluation errors (a policy that errors is skipped, per Cedar). Internal, for logs and explain.
    pub errors: Vec<String>,
}

impl Decision {
    /// `Ok` when allowed, else the client-facing denial.
    pub fn check(&self, action: Action, resource: &Resource) -> Result<(), Denied> {
        if self.allowed { Ok(()) } else { Err(Denied { action, resource: resource.clone() }) }
    }
}

/// The denial a client sees (HTTP 403): the action and resource, never a policy's internals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not allowed to {action} on {resource}")]
pub struct Denied {
    pub action: Action,
    pub resource: Resource,
}

impl Denied {
    pub fn code(&self) -> &'static str {
        codes::AUTHZ_DENIED
    }
}

/// A decision with the policies that made it, for `weft authz explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub principal: String,
    pub action: Action,
    pub resource: Resource,
    pub decision: Decision,
    pub policies: Vec<ExplainedPolicy>,
}

/// One deciding policy: its id, effect and text as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainedPolicy {
    pub id: String,
    pub effect: &'static str,
    pub text: String,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.decision.allowed { "allow" } else { "deny" };
        writeln!(f, "decision: {verdict}")?;
        writeln!(f, "principal: {}", entity_uid(TYPE_PRINCIPAL, &self.principal))?;
        writeln!(f, "action: {}", self.action.uid())?;
        writeln!(f, "resource: {}", self.resource)?;
        if self.policies.is_empty() {
            writeln!(f, "determining policies: none (no policy permits it: default deny)")?;
        } else {
            writeln!(f, "determining policies:")?;
            for policy in &self.policies {
                writeln!(f, "  {} ({}):", policy.id, policy.effect)?;
                for line in policy.text.lines() {
                    writeln!(f, "    {line}")?;
                }
            }
        }
        for error in &self.decision.errors {
            writeln!(f, "error: {error}")?;
        }
        Ok(())
    }
}

type CacheKey = (String, Action, Resource);

/// Decides requests against one set of policies and one mesh; immutable apart from its cache.
pub struct Authorizer {
    /// Built-in and global policies: what requests on resources outside every domain are decided by.
    base_policies: PolicySet,
    /// Per domain: the base policies plus that domain's policies.
    domain_policies: HashMap<String, PolicySet>,
    product_domains: HashMap<String, String>,
    stream_products: HashMap<String, String>,
    /// Domain name → its owners, for the `stream_owners` of consumer groups.
    domain_owners: HashMap<String, Vec<String>>,
    /// The consumer groups, shared with the authorizers before and after this one.
    groups: Arc<GroupDirectory>,
    /// The schema's action entities, for the entities of a request on a consumer group.
    actions: Vec<Entity>,
    /// Policy id → (effect, text as written), for explanations.
    texts: HashMap<String, (Effect, String)>,
    entities: Entities,
    cedar: cedar_policy::Authorizer,
    cache: RwLock<HashMap<CacheKey, Decision>>,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer").field("n_policies", &self.texts.len()).finish_non_exhaustive()
    }
}

impl Authorizer {
    /// Builds an authorizer from the built-in policies, the stored Policy resources and the mesh.
    ///
    /// Every Policy resource is checked as at apply time except for the membership of the products
    /// and streams its domain policies name: that may have changed since, and the evaluation-time
    /// guard (see the module doc) keeps such a policy inside its domain anyway.
    pub fn new(sources: &[PolicySource], mesh: &Mesh) -> Result<Self, BuildError> {
        let mut policies = PolicySet::new();
        let mut domain_sources: BTreeMap<&str, Vec<Policy>> = BTreeMap::new();
        let mut texts = HashMap::new();
        for (id, text) in DEFAULT_POLICIES {
            let policy = Policy::parse(Some(PolicyId::new(*id)), *text).expect("built-in policies parse");
            texts.insert(id.to_string(), (policy.effect(), text.to_string()));
            policies.add(policy).expect("built-in policy ids are distinct");
        }
        let mut names = HashSet::new();
        for source in sources {
            if !names.insert(source.name.as_str()) {
                return Err(PolicyError {
                    code: codes::POLICY_INVALID_RESOURCE,
                    policy: source.name.clone(),
                    index: None,
                    line: 1,
                    column: 1,
                    message: "two Policy resources have this name".to_string(),
                }
                .into());
            }
            for checked in check_source(source, mesh, MembershipCheck::Skip)? {
                texts.insert(checked.policy.id().to_string(), (checked.policy.effect(), checked.text));
                match &source.scope {
                    PolicyScope::Global => policies
                        .add(checked.policy)
                        .map_err(|error| policy_error(codes::POLICY_INVALID_RESOURCE, &source.name, None, "", 0, error.to_string()))?,
                    PolicyScope::Domain(domain) => {
                        domain_sources.entry(domain.as_str()).or_default().push(guard_domain_policy(&checked.policy, domain));
                    }
                }
            }
        }
        let mut domain_policies = HashMap::new();
        for (domain, guarded) in domain_sources {
            let mut with_domain = policies.clone();
            for policy in guarded {
                let id = policy.id().to_string();
                with_domain
                    .add(policy)
                    .map_err(|error| policy_error(codes::POLICY_INVALID_RESOURCE, &id, None, "", 0, error.to_string()))?;
            }
            domain_policies.insert(domain.to_string(), with_domain);
        }
        let product_domains = mesh.products.iter().map(|product| (product.id.clone(), product.domain.clone())).collect();
        let stream_products = mesh.streams.iter().filter_map(|stream| Some((stream.name.clone(), stream.product.clone()?))).collect();
        let entities = build_entities(mesh)?;
        let mut domain_owners: HashMap<String, Vec<String>> = HashMap::new();
        for domain in &mesh.domains {
            domain_owners.entry(domain.name.clone()).or_default().extend(domain.owners.iter().cloned());
        }
        let actions = schema().action_entities().map_err(|error| BuildError::Entities(error.to_string()))?.iter().cloned().collect();
        Ok(Self {
            base_policies: policies,
            domain_policies,
            product_domains,
            stream_products,
            domain_owners,
            groups: Arc::new(GroupDirectory::default()),
            actions,
            texts,
            entities,
            cedar: cedar_policy::Authorizer::new(),
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// Decides requests on consumer groups from `groups` (kept current by the caller) rather than
    /// from an empty directory.
    pub fn with_groups(mut self, groups: Arc<GroupDirectory>) -> Self {
        self.groups = groups;
        self
    }

    /// The owners of the domain `stream` belongs to (through its product), if any.
    fn stream_owners(&self, stream: &str) -> &[String] {
        let domain = self.stream_products.get(stream).and_then(|product| self.product_domains.get(product));
        domain.and_then(|domain| self.domain_owners.get(domain)).map_or(NO_OWNERS, Vec::as_slice)
    }

    /// The entities a request of `principal` on consumer group `group` is decided over: the
    /// principal (with its domains), the group as the directory has it now, and the actions.
    fn group_request_entities(&self, principal: &str, group: &str) -> Result<Entities, String> {
        let principal_uid = entity_uid(TYPE_PRINCIPAL, principal);
        let principal = self.entities.get(&principal_uid).cloned().unwrap_or_else(|| Entity::new_no_attrs(principal_uid, HashSet::new()));
        let record = self.groups.get(group);
        let group = groups::group_entity(group, record.as_ref(), |stream| self.stream_owners(stream))?;
        let entities = [principal, group].into_iter().chain(self.actions.iter().cloned());
        Entities::from_entities(entities, Some(schema())).map_err(|error| error.to_string())
    }

    /// The policies that can decide a request on `resource`: the base policies, plus the policies of
    /// the domain the resource belongs to. Every other domain's policies are guarded by
    /// `resource in Weft::Domain::"<their domain>"`, which is false for it, so leaving them out changes
    /// no decision and makes a decision's cost independent of the number of domains. Principals and
    /// consumer groups belong to no domain here, so domain policies never decide on them.
    fn policies_for(&self, resource: &Resource) -> &PolicySet {
        let domain = match resource {
            Resource::Domain(domain) => Some(domain),
            Resource::DataProduct(product) => self.product_domains.get(product),
            Resource::Stream(stream) => self.stream_products.get(stream).and_then(|product| self.product_domains.get(product)),
            Resource::Principal(_) | Resource::ConsumerGroup(_) => None,
        };
        domain.and_then(|domain| self.domain_policies.get(domain)).unwrap_or(&self.base_policies)
    }

    /// Decides whether `principal` may perform `action` on `resource`, from the cache when it can.
    pub fn is_authorized(&self, principal: &str, action: Action, resource: &Resource) -> Decision {
        // A group's entity changes as it is used, without a new authorizer: never cached.
        if matches!(resource, Resource::ConsumerGroup(_)) {
            return self.evaluate(principal, action, resource);
        }
        let key = (principal.to_string(), action, resource.clone());
        if let Some(decision) = self.cache.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key) {
            return decision.clone();
        }
        let decision = self.evaluate(principal, action, resource);
        let mut cache = self.cache.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= DECISION_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(key, decision.clone());
        decision
    }

    /// Decides without the cache (for measurement and for explanations).
    pub fn evaluate(&self, principal: &str, action: Action, resource: &Resource) -> Decision {
        let request = Request::new(entity_uid(TYPE_PRINCIPAL, principal), action.uid(), resource.uid(), Context::empty(), Some(schema()));
        let request = match request {
            Ok(request) => request,
            Err(error) => {
                return Decision {
                    allowed: false,
                    reasons: Vec::new(),
                    errors: vec![format!("{}: {error}", codes::AUTHZ_INVALID_REQUEST)],
                };
            }
        };
        let group_entities;
        let entities = match resource {
            Resource::ConsumerGroup(group) => match self.group_request_entities(principal, group) {
                Ok(entities) => {
                    group_entities = entities;
                    &group_entities
                }
                Err(error) => {
                    return Decision { allowed: false, reasons: Vec::new(), errors: vec![format!("consumer group entities: {error}")] };
                }
            },
            _ => &self.entities,
        };
        let response = self.cedar.is_authorized(&request, self.policies_for(resource), entities);
        let mut reasons: Vec<String> = response.diagnostics().reason().map(|id| id.to_string()).collect();
        reasons.sort();
        let errors = response.diagnostics().errors().map(|error| error.to_string()).collect();
        Decision { allowed: response.decision() == cedar_policy::Decision::Allow, reasons, errors }
    }

    /// The decision with the text of every policy that made it.
    pub fn explain(&self, principal: &str, action: Action, resource: &Resource) -> Explanation {
        let decision = self.evaluate(principal, action, resource);
        let policies = decision
            .reasons
            .iter()
            .filter_map(|id| {
                let (effect, text) = self.texts.get(id)?;
                let effect = if *effect == Effect::Permit { "permit" } else { "forbid" };
                Some(ExplainedPolicy { id: id.clone(), effect, text: text.clone() })
            })
            .collect();
        Explanation { principal: principal.to_string(), action, resource: resource.clone(), decision, policies }
    }

    /// Number of decisions in the cache.
    pub fn n_cached(&self) -> usize {
        self.cache.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }
}

/// The current [`Authorizer`], replaced whole when policies or resources change.
#[derive(Debug)]
pub struct SharedAuthorizer {
    current: RwLock<Arc<Authorizer>>,
}

impl SharedAuthorizer {
    pub fn new(authorizer: Authorizer) -> Self {
        Self { current: RwLock::new(Arc::new(authorizer)) }
    }
    pub fn current(&self) -> Arc<Authorizer> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
    /// Swaps in a freshly built authorizer; decisions cached by the old one are gone with it.
    pub fn replace(&self, authorizer: Authorizer) {
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(authorizer);
    }
}

#[cfg(test)]
mod tests {
    use cedar_policy::{ValidationMode, Validator};

    use super::*;

    #[test]
    fn schema_and_default_policies_validate() {
        let authorizer = Authorizer::new(&[], &Mesh::default()).unwrap();
        assert_eq!(authorizer.texts.len(), DEFAULT_POLICIES.len());
        let mut defaults = PolicySet::new();
        for (id, text) in DEFAULT_POLICIES {
            defaults.add(Policy::parse(Some(PolicyId::new(*id)), *text).unwrap()).unwrap();
        }
        let validation = Validator::new(schema().clone()).validate(&defaults, ValidationMode::Strict);
        assert!(validation.validation_passed(), "{:?}", validation.validation_errors().collect::<Vec<_>>());
    }
}
