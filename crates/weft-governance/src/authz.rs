//! Authorization with Cedar: the public schema, the entity data Weft builds from applied resources,
//! the default policies, federated Policy resources, and cached decisions.
//!
//! Owns decisions only. It does not know who a request comes from (that is [`crate::identity`]), and
//! it does not read resources from disk: the caller hands it a [`Mesh`] built from applied `Domain`,
//! `DataProduct` and stream resources, and the stored Policy resources as [`PolicySource`]s.
//!
//! ## Entity model
//!
//! | entity | id | parents | attributes |
//! |---|---|---|---|
//! | `Weft::Principal` | principal name | every `Weft::Domain` whose `owners` or `team` lists it, and the domains on its identity record | none |
//! | `Weft::Domain` | domain name | none | `owners: Set<Principal>`, `team: Set<Principal>` |
//! | `Weft::DataProduct` | product id | its `Weft::Domain` | `domain: Domain` |
//! | `Weft::Stream` | stream name | its `Weft::DataProduct`, if it belongs to one | `classifications: Set<String>` (lowercase), `domain?: Domain`, `product?: DataProduct` |
//! | `Weft::ConsumerGroup` | group name | none | none |
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
//! stream under a product of D) for a principal allowed to `apply` on D.
//!
//! Denials returned to clients ([`Denied`]) name the action and resource only; policy ids and texts
//! are for `weft authz explain` ([`Authorizer::explain`]), which the caller reserves to admins.
//!
//! ## Caching
//!
//! An [`Authorizer`] is immutable: built from one set of policies and one mesh. It caches decisions
//! per (principal, action, resource); a change to policies or resources builds a new `Authorizer`
//! and swaps it in ([`SharedAuthorizer::replace`]), which drops the old cache with the old authorizer.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock, RwLock};

use cedar_policy::{
    ActionConstraint, Context, Effect, Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, Request,
    ResourceConstraint, RestrictedExpression, Schema, ValidationMode, Validator,
};
use miette::Diagnostic;

use crate::codes;
use crate::identity::ADMIN_PRINCIPAL;

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

/// Weft's Cedar schema. Public interface: Policy resources are written against it, and
/// `weft authz schema` prints it. Change it only compatibly.
pub const SCHEMA: &str = r#"// Weft's authorization schema (Cedar). Policy resources are validated against it.
namespace Weft {
  // A person or service; id = principal name. Parents: the domains whose owners or team include it.
  entity Principal in [Domain];

  // A domain team; id = domain name.
  entity Domain = {
    "owners": Set<Principal>,
    "team": Set<Principal>,
  };

  // A data product; id = product id. Parent: its domain.
  entity DataProduct in [Domain] = {
    "domain": Domain,
  };

  // A stream; id = stream name. Parent: its data product, when it belongs to one.
  // classifications: the lowercase classifications of its properties (e.g. "pii").
  entity Stream in [DataProduct] = {
    "classifications": Set<String>,
    "domain"?: Domain,
    "product"?: DataProduct,
  };

  // A consumer group; id = group name.
  entity ConsumerGroup;

  action "produce" appliesTo { principal: [Principal], resource: [DataProduct, Stream] };
  action "consume" appliesTo { principal: [Principal], resource: [DataProduct, Stream, ConsumerGroup] };
  action "read_dead_letters" appliesTo { principal: [Principal], resource: [DataProduct, Stream] };
  action "replay_dead_letters" appliesTo { principal: [Principal], resource: [DataProduct, Stream] };
  action "apply" appliesTo { principal: [Principal], resource: [Domain, DataProduct, Stream] };
  action "read_catalog" appliesTo { principal: [Principal], resource: [Domain, DataProduct, Stream] };
  action "unmask" appliesTo { principal: [Principal], resource: [DataProduct, Stream] };
  action "admin" appliesTo { principal: [Principal], resource: [Principal, Domain, DataProduct, Stream, ConsumerGroup] };
}
"#;

/// The built-in policies, always in force (a global `forbid` can still override their permits).
pub const DEFAULT_POLICIES: &[(&str, &str)] = &[
    ("default/admin", r#"permit (principal == Weft::Principal::"admin", action, resource);"#),
    ("default/catalog", r#"permit (principal, action == Weft::Action::"read_catalog", resource);"#),
    (
        "default/owners_domain",
        r#"permit (principal, action == Weft::Action::"apply", resource is Weft::Domain)
when { resource has owners && resource.owners.contains(principal) };"#,
    ),
    (
        "default/owners_products",
        r#"permit (
  principal,
  action in [Weft::Action::"produce", Weft::Action::"consume", Weft::Action::"apply", Weft::Action::"read_dead_letters", Weft::Action::"replay_dead_letters"],
  resource is Weft::DataProduct
) when { resource has domain && resource.domain has owners && resource.domain.owners.contains(principal) };"#,
    ),
    (
        "default/owners_streams",
        r#"permit (
  principal,
  action in [Weft::Action::"produce", Weft::Action::"consume", Weft::Action::"apply", Weft::Action::"read_dead_letters", Weft::Action::"replay_dead_letters"],
  resource is Weft::Stream
) when { resource has domain && resource.domain has owners && resource.domain.owners.contains(principal) };"#,
    ),
    ("default/consumer_groups", r#"permit (principal, action == Weft::Action::"consume", resource is Weft::ConsumerGroup);"#),
];

const TYPE_PRINCIPAL: &str = "Weft::Principal";
const TYPE_DOMAIN: &str = "Weft::Domain";
const TYPE_DATA_PRODUCT: &str = "Weft::DataProduct";
const TYPE_STREAM: &str = "Weft::Stream";
const TYPE_CONSUMER_GROUP: &str = "Weft::ConsumerGroup";
const TYPE_ACTION: &str = "Weft::Action";

/// The schema, parsed once. It is a constant, so failing to parse is a bug: crash loudly.
fn schema() -> &'static Schema {
    static SCHEMA_PARSED: OnceLock<Schema> = OnceLock::new();
    SCHEMA_PARSED.get_or_init(|| Schema::from_cedarschema_str(SCHEMA).expect("Weft's Cedar schema parses").0)
}

/// The actions of Weft's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Produce,
    Consume,
    ReadDeadLetters,
    ReplayDeadLetters,
    Apply,
    ReadCatalog,
    Unmask,
    Admin,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Self::Produce,
        Self::Consume,
        Self::ReadDeadLetters,
        Self::ReplayDeadLetters,
        Self::Apply,
        Self::ReadCatalog,
        Self::Unmask,
        Self::Admin,
    ];

    /// The Cedar action id (`Weft::Action::"<name>"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Produce => "produce",
            Self::Consume => "consume",
            Self::ReadDeadLetters => "read_dead_letters",
            Self::ReplayDeadLetters => "replay_dead_letters",
            Self::Apply => "apply",
            Self::ReadCatalog => "read_catalog",
            Self::Unmask => "unmask",
            Self::Admin => "admin",
        }
    }

    fn uid(self) -> EntityUid {
        entity_uid(TYPE_ACTION, self.name())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Action {
    type Err = String;
    /// Accepts `consume` and `Weft::Action::"consume"`.
    fn from_str(text: &str) -> Result<Self, String> {
        let name = text.strip_prefix("Weft::Action::\"").and_then(|rest| rest.strip_suffix('"')).unwrap_or(text);
        Self::ALL.into_iter().find(|action| action.name() == name).ok_or_else(|| format!("unknown action {text:?}"))
    }
}

/// What an action is performed on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Principal(String),
    Domain(String),
    DataProduct(String),
    Stream(String),
    ConsumerGroup(String),
}

impl Resource {
    /// The resource that mesh-wide administration is checked against (see the module doc).
    pub fn mesh() -> Self {
        Self::Principal(ADMIN_PRINCIPAL.to_string())
    }

    pub fn entity_type(&self) -> &'static str {
        match self {
            Self::Principal(_) => TYPE_PRINCIPAL,
            Self::Domain(_) => TYPE_DOMAIN,
            Self::DataProduct(_) => TYPE_DATA_PRODUCT,
            Self::Stream(_) => TYPE_STREAM,
            Self::ConsumerGroup(_) => TYPE_CONSUMER_GROUP,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::Principal(id) | Self::Domain(id) | Self::DataProduct(id) | Self::Stream(id) | Self::ConsumerGroup(id) => id,
        }
    }

    fn uid(&self) -> EntityUid {
        entity_uid(self.entity_type(), self.id())
    }
}

impl fmt::Display for Resource {
    /// Cedar's form, `Weft::Stream::"orders"`, with Cedar's escaping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.uid())
    }
}

impl FromStr for Resource {
    type Err = String;
    /// Accepts Cedar's form (`Weft::Stream::"orders"`) and the short form `<kind>:<id>` with kind
    /// `principal`, `domain`, `product`, `stream` or `group`.
    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!("invalid resource {text:?}: expected Weft::<Type>::\"<id>\" or <kind>:<id> (principal, domain, product, stream, group)")
        };
        if text.starts_with("Weft::") {
            let uid = EntityUid::from_str(text).map_err(|_| invalid())?;
            let id = uid.id().unescaped().to_string();
            return match uid.type_name().to_string().as_str() {
                TYPE_PRINCIPAL => Ok(Self::Principal(id)),
                TYPE_DOMAIN => Ok(Self::Domain(id)),
                TYPE_DATA_PRODUCT => Ok(Self::DataProduct(id)),
                TYPE_STREAM => Ok(Self::Stream(id)),
                TYPE_CONSUMER_GROUP => Ok(Self::ConsumerGroup(id)),
                _ => Err(invalid()),
            };
        }
        let (kind, id) = text.split_once(':').ok_or_else(invalid)?;
        if id.is_empty() {
            return Err(invalid());
        }
        let id = id.to_string();
        match kind {
            "principal" => Ok(Self::Principal(id)),
            "domain" => Ok(Self::Domain(id)),
            "product" => Ok(Self::DataProduct(id)),
            "stream" => Ok(Self::Stream(id)),
            "group" => Ok(Self::ConsumerGroup(id)),
            _ => Err(invalid()),
        }
    }
}

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
    fn product_domain(&self, product: &str) -> Option<&str> {
        self.products.iter().rev().find(|candidate| candidate.id == product).map(|candidate| candidate.domain.as_str())
    }
    fn stream_domain(&self, stream: &str) -> Option<&str> {
        let stream = self.streams.iter().rev().find(|candidate| candidate.name == stream)?;
        self.product_domain(stream.product.as_deref()?)
    }
}

/// Where a Policy resource applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PolicyScope {
    /// `scope: global`: applied by admins, may speak about anything.
    Global,
    /// `scope: domain` with its `domain`: may only speak about that domain's resources.
    Domain(String),
}

/// A stored Policy resource: `apiVersion: weft/v1, kind: Policy, name, scope, domain, policies`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    pub name: String,
    pub scope: PolicyScope,
    pub text: String,
}

/// Why a Policy resource was refused. `line` and `column` (1-based, column in characters) point into
/// its `policies` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: policy {policy}: line {line}, column {column}: {message}")]
pub struct PolicyError {
    pub code: &'static str,
    /// The Policy resource's name.
    pub policy: String,
    /// The index of the offending policy within the resource, when one is at fault.
    pub index: Option<usize>,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

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
        Ok(Self {
            base_policies: policies,
            domain_policies,
            product_domains,
            stream_products,
            texts,
            entities,
            cedar: cedar_policy::Authorizer::new(),
            cache: RwLock::new(HashMap::new()),
        })
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
        let response = self.cedar.is_authorized(&request, self.policies_for(resource), &self.entities);
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

/// Checks a Policy resource at apply time: its name, size, Cedar syntax, schema validity and, for a
/// domain policy, the domain scope rule against the current mesh. Returns the number of policies.
pub fn check_policy_resource(name: &str, scope: &PolicyScope, text: &str, mesh: &Mesh) -> Result<usize, PolicyError> {
    let source = PolicySource { name: name.to_string(), scope: scope.clone(), text: text.to_string() };
    Ok(check_source(&source, mesh, MembershipCheck::Require)?.len())
}

/// The built-in policies as one Cedar text with their ids as comments, for documentation output.
pub fn default_policies_text() -> String {
    DEFAULT_POLICIES.iter().map(|(id, text)| format!("// {id}\n{text}\n")).collect::<Vec<_>>().join("\n")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MembershipCheck {
    Require,
    Skip,
}

struct CheckedPolicy {
    policy: Policy,
    text: String,
}

fn check_source(source: &PolicySource, mesh: &Mesh, membership: MembershipCheck) -> Result<Vec<CheckedPolicy>, PolicyError> {
    let name = source.name.as_str();
    let text = source.text.as_str();
    let resource_error = |message: &str| policy_error(codes::POLICY_INVALID_RESOURCE, name, None, "", 0, message.to_string());
    let name_ok = !name.is_empty()
        && name.len() <= POLICY_NAME_BYTES_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !name_ok {
        return Err(resource_error("a Policy name is 1 to 128 characters of [A-Za-z0-9._-]"));
    }
    if name == DEFAULT_POLICY_NAME {
        return Err(resource_error("the Policy name `default` is reserved for the built-in policies"));
    }
    if let PolicyScope::Domain(domain) = &source.scope
        && domain.is_empty()
    {
        return Err(resource_error("a domain Policy names its domain"));
    }
    if text.len() > POLICY_TEXT_BYTES_MAX {
        return Err(policy_error(codes::POLICY_TOO_LARGE, name, None, "", 0, "policies text is over 64 KiB".to_string()));
    }

    let parsed = match PolicySet::from_str(text) {
        Ok(parsed) => parsed,
        Err(errors) => {
            let offset = first_label_offset(&errors).unwrap_or(0);
            let message = errors.iter().next().map_or_else(|| errors.to_string(), |error| error.to_string());
            return Err(policy_error(codes::POLICY_SYNTAX_ERROR, name, None, text, offset, message));
        }
    };
    if let Some(template) = parsed.templates().next() {
        let offset = text.find(&template.to_string()).unwrap_or(0);
        return Err(policy_error(
            codes::POLICY_TEMPLATE_NOT_ALLOWED,
            name,
            parser_index(template.id()),
            text,
            offset,
            "templates (?principal, ?resource slots) are not allowed in Policy resources".to_string(),
        ));
    }
    let mut ordered: Vec<(usize, &Policy)> = parsed.policies().filter_map(|policy| Some((parser_index(policy.id())?, policy))).collect();
    ordered.sort_by_key(|(index, _)| *index);
    if ordered.len() > POLICIES_PER_RESOURCE_MAX {
        return Err(policy_error(codes::POLICY_TOO_LARGE, name, None, "", 0, "more than 256 policies in one Policy resource".to_string()));
    }

    // Locate each policy's text: the parser hands back exact slices, in order, so searching from the
    // end of the previous one finds each (only whitespace and comments lie between them).
    let mut checked = Vec::with_capacity(ordered.len());
    let mut offsets = Vec::with_capacity(ordered.len());
    let mut cursor = 0;
    for (index, policy) in &ordered {
        let policy_text = policy.to_string();
        let offset = text[cursor..].find(&policy_text).map_or(cursor, |found| cursor + found);
        cursor = (offset + policy_text.len()).min(text.len());
        offsets.push(offset);
        let id = PolicyId::new(format!("{name}/{index}"));
        checked.push(CheckedPolicy { policy: policy.new_id(id), text: policy_text });
    }

    let mut validated = PolicySet::new();
    for policy in &checked {
        validated.add(policy.policy.clone()).map_err(|error| resource_error(&error.to_string()))?;
    }
    let validation = Validator::new(schema().clone()).validate(&validated, ValidationMode::Strict);
    if let Some(error) = validation.validation_errors().next() {
        let index = policy_index_of(error.policy_id(), name);
        let offset = first_label_offset(error).or_else(|| index.and_then(|index| offsets.get(index).copied())).unwrap_or(0);
        return Err(policy_error(codes::POLICY_INVALID, name, index, text, offset, error.to_string()));
    }

    if let PolicyScope::Domain(domain) = &source.scope {
        for (position, policy) in checked.iter().enumerate() {
            let offset = offsets[position];
            let index = Some(ordered[position].0);
            check_domain_scope(&policy.policy, domain, mesh, membership)
                .map_err(|(code, message)| policy_error(code, name, index, text, offset, message))?;
        }
    }
    Ok(checked)
}

/// The domain scope rule (see the module doc). Returns the code and message of the first breach.
fn check_domain_scope(policy: &Policy, domain: &str, mesh: &Mesh, membership: MembershipCheck) -> Result<(), (&'static str, String)> {
    let outside = |what: String| {
        (
            codes::POLICY_OUTSIDE_DOMAIN,
            format!(
                "{what}: a policy of domain {domain:?} must constrain its resource with `in` or `==` to Weft::Domain::{domain:?} or to one of its products or streams"
            ),
        )
    };
    let scope_entity = match policy.resource_constraint() {
        ResourceConstraint::Any => return Err(outside("resource is unconstrained".to_string())),
        ResourceConstraint::Is(type_name) => return Err(outside(format!("`resource is {type_name}` alone reaches every domain"))),
        ResourceConstraint::In(uid) | ResourceConstraint::Eq(uid) | ResourceConstraint::IsIn(_, uid) => uid,
    };
    let entity_id = scope_entity.id().unescaped();
    let entity_domain = match scope_entity.type_name().to_string().as_str() {
        TYPE_DOMAIN => Some(entity_id),
        TYPE_DATA_PRODUCT if membership == MembershipCheck::Skip => Some(domain),
        TYPE_STREAM if membership == MembershipCheck::Skip => Some(domain),
        TYPE_DATA_PRODUCT => mesh.product_domain(entity_id),
        TYPE_STREAM => mesh.stream_domain(entity_id),
        _ => None,
    };
    if entity_domain != Some(domain) {
        return Err(outside(format!("resource scope {scope_entity} is not in domain {domain:?}")));
    }
    if policy.effect() == Effect::Permit {
        let admin = Action::Admin.uid();
        let grants_admin = match policy.action_constraint() {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(action) => action == admin,
            ActionConstraint::In(actions) => actions.contains(&admin),
        };
        if grants_admin {
            return Err((
                codes::POLICY_FORBIDDEN_ACTION,
                "a domain policy may not permit `admin` (an unconstrained `action` includes it): name the actions it permits".to_string(),
            ));
        }
    }
    Ok(())
}

/// Adds the evaluation-time domain guard to a domain policy (see the module doc), through Cedar's
/// JSON form so the policy's own text is never re-parsed or spliced.
fn guard_domain_policy(policy: &Policy, domain: &str) -> Policy {
    let entity = |type_name: &str, id: &str| serde_json::json!({ "Value": { "__entity": { "type": type_name, "id": id } } });
    let mut json = policy.to_json().expect("a parsed static policy converts to JSON");
    let conditions =
        json.get_mut("conditions").and_then(|conditions| conditions.as_array_mut()).expect("Cedar's policy JSON has conditions");
    conditions.push(serde_json::json!({
        "kind": "when",
        "body": { "in": { "left": { "Var": "resource" }, "right": entity(TYPE_DOMAIN, domain) } }
    }));
    if policy.effect() == Effect::Forbid {
        conditions.push(serde_json::json!({
            "kind": "unless",
            "body": { "==": { "left": { "Var": "principal" }, "right": entity(TYPE_PRINCIPAL, ADMIN_PRINCIPAL) } }
        }));
    }
    Policy::from_json(Some(policy.id().clone()), json).expect("a guarded policy converts back from JSON")
}

fn build_entities(mesh: &Mesh) -> Result<Entities, BuildError> {
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

fn entity_uid(type_name: &str, id: &str) -> EntityUid {
    // Only this module's own type-name constants reach here.
    let type_name = EntityTypeName::from_str(type_name).expect("Weft's entity type names parse");
    EntityUid::from_type_name_and_id(type_name, EntityId::new(id))
}

/// `policyN` → N: the parser numbers policies in textual order.
fn parser_index(id: &PolicyId) -> Option<usize> {
    id.to_string().strip_prefix("policy")?.parse().ok()
}

/// `<name>/N` → N.
fn policy_index_of(id: &PolicyId, name: &str) -> Option<usize> {
    id.to_string().strip_prefix(name)?.strip_prefix('/')?.parse().ok()
}

fn first_label_offset(diagnostic: &dyn Diagnostic) -> Option<usize> {
    diagnostic.labels()?.next().map(|label| label.offset())
}

fn policy_error(code: &'static str, policy: &str, index: Option<usize>, text: &str, offset: usize, message: String) -> PolicyError {
    let (line, column) = line_column(text, offset);
    PolicyError { code, policy: policy.to_string(), index, line, column, message }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one_in_characters() {
        let text = "ab\nçd\nef";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        assert_eq!(line_column(text, 5), (2, 2)); // after the two-byte ç
        assert_eq!(line_column(text, 100), (3, 3));
    }

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

    #[test]
    fn resources_and_actions_parse_both_forms() {
        assert_eq!("stream:orders".parse::<Resource>().unwrap(), Resource::Stream("orders".into()));
        assert_eq!(r#"Weft::DataProduct::"sales.orders""#.parse::<Resource>().unwrap(), Resource::DataProduct("sales.orders".into()));
        assert_eq!(Resource::Stream("a\"b".into()).to_string().parse::<Resource>().unwrap(), Resource::Stream("a\"b".into()));
        assert!("table:x".parse::<Resource>().is_err());
        assert!(r#"Weft::Action::"consume""#.parse::<Resource>().is_err());
        assert_eq!(r#"Weft::Action::"read_dead_letters""#.parse::<Action>().unwrap(), Action::ReadDeadLetters);
        for action in Action::ALL {
            assert_eq!(action.name().parse::<Action>().unwrap(), action);
        }
    }
}
