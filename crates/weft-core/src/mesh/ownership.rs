//! Ownership through `weft apply`: who may create, change or move each resource, judged against
//! the resource as stored, and the governance changes a new contract version makes.
//!
//! The rules (the user-facing summary is "Ownership" in ARCHITECTURE.md):
//! - Every resource has one owner. A Domain is its `owners`'; a product belongs to its `domain`;
//!   a contract to the `domain` it declares, else to the domain of the product that publishes it;
//!   a Policy to its scope (global, or its domain). A product or contract of no domain is the
//!   platform's, which only admins may apply to.
//! - Creating a resource needs `apply` on its owner (`authz.denied` otherwise). Changing one needs
//!   `apply` on its owner **as stored**, whatever the new document says (`apply.owner_mismatch`,
//!   naming the stored owner): claiming another domain in the document does not make it yours.
//! - A change of a product's or contract's domain is a move: the plan shows it as `domain_move`,
//!   and it needs `apply` on both domains, which admins have (`apply.domain_move_denied`).
//! - An output port publishes only a contract of the product's own domain: one that declares
//!   another domain is refused (`product.contract_outside_domain`), and taking over a stored
//!   contract whose owner is someone else (the platform, or the domain of a product moving away
//!   from it) needs `apply` on that owner too (`apply.owner_mismatch`).
//! - A Policy name belongs to the scope that applied it first; no other scope can take it
//!   (`policy.name_taken`), so a domain policy never replaces a global one or another domain's.
//! - A contract may not name one of Weft's own streams (`_weft.*`) or a dead-letter stream
//!   (`*.dlq`): either would put a stream Weft writes itself under a domain
//!   (`contract.reserved_stream`).
//! - A contract version that drops or changes a field's classification is a governance change,
//!   not a mere compatible one: it still needs the owning domain like every update, and it is
//!   listed in the plan as `governance_changes` and audited by the edge that applied it.
//!
//! It does not decide requests (the guard does, from the stored mesh) and does not diff fields or
//! judge schema compatibility (the parent module does).

use std::fmt;

use weft_contract::{CompiledContract, DataContract, DataProduct, Document, Domain, Policy};
use weft_governance::authz::{Action as AuthzAction, PolicyScope, Resource as AuthzResource};

use super::{DomainMove, GovernanceChange, MeshState, Parsed, Refusal, refusal};
use crate::broker::Broker;
use crate::error::{Error, codes};
use crate::guard::{Caller, is_system_stream};
use crate::stream::DEAD_LETTER_SUFFIX;

/// Who owns a resource: a domain, or the platform when it names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner<'a> {
    Domain(&'a str),
    Platform,
}

impl<'a> Owner<'a> {
    fn of(domain: Option<&'a str>) -> Self {
        domain.map_or(Self::Platform, Self::Domain)
    }
}

impl fmt::Display for Owner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(domain) => write!(f, "domain {domain}"),
            Self::Platform => f.write_str("no domain (the platform's, which only admins apply to)"),
        }
    }
}

impl MeshState {
    /// The domain a contract belongs to: the one it declares, else its publishing product's.
    pub fn contract_domain(&self, contract: &DataContract) -> Option<String> {
        contract.domain.clone().or_else(|| self.product_of_contract(&contract.id).and_then(|product| product.domain.clone()))
    }
}

/// A Policy resource's scope as the authorizer reads it.
pub fn policy_scope(policy: &Policy) -> PolicyScope {
    match (&policy.scope, &policy.domain) {
        (weft_contract::PolicyScope::Domain, Some(domain)) => PolicyScope::Domain(domain.clone()),
        _ => PolicyScope::Global,
    }
}

fn describe_scope(scope: &PolicyScope) -> String {
    match scope {
        PolicyScope::Global => "a global policy".to_string(),
        PolicyScope::Domain(domain) => format!("a policy of domain {domain}"),
    }
}

/// The move a changed domain makes, if it changed.
pub(super) fn domain_move(from: Option<&str>, to: Option<&str>) -> Option<DomainMove> {
    (from != to).then(|| DomainMove { from: from.map(str::to_string), to: to.map(str::to_string) })
}

/// `policy.name_taken` if the stored Policy of this name belongs to another scope.
pub(super) fn check_policy_name(state: &MeshState, policy: &Policy) -> Result<(), Refusal> {
    let Some(stored) = state.policies.get(&policy.name) else { return Ok(()) };
    let (stored_scope, new_scope) = (policy_scope(stored), policy_scope(policy));
    if stored_scope == new_scope {
        return Ok(());
    }
    Err(Refusal {
        path: "/name".into(),
        ..refusal(
            codes::POLICY_NAME_TAKEN,
            format!(
                "the name {} belongs to {}; {} cannot take it: choose another name",
                policy.name,
                describe_scope(&stored_scope),
                describe_scope(&new_scope)
            ),
        )
    })
}

/// `contract.reserved_stream` for Weft's own streams and dead-letter streams.
pub(super) fn check_contract_stream(stream: &str) -> Result<(), Refusal> {
    let message = if is_system_stream(stream) {
        format!("stream {stream} is one of Weft's own streams; no contract may govern it")
    } else if stream.ends_with(DEAD_LETTER_SUFFIX) {
        format!(
            "stream {stream} is a dead-letter stream (its name ends in {DEAD_LETTER_SUFFIX}); Weft creates those for each contract stream"
        )
    } else {
        return Ok(());
    };
    Err(refusal(codes::CONTRACT_RESERVED_STREAM, message))
}

/// `product.contract_outside_domain` if a contract declares another domain than the product
/// that publishes it (`None` when it declares none).
pub(super) fn check_port_domain(product: &DataProduct, contract: &DataContract) -> Option<String> {
    let declared = contract.domain.as_deref()?;
    (product.domain.as_deref() != Some(declared)).then(|| {
        format!(
            "contract {} belongs to domain {declared}; a product of {} cannot publish it (move the contract in the same apply)",
            contract.id,
            Owner::of(product.domain.as_deref())
        )
    })
}

/// The classifications `previous` gave a field that `topic` no longer gives it: dropped, or
/// changed to another one (which policies and masking read differently).
pub(super) fn dropped_classifications(stream: &str, previous: &CompiledContract, topic: &CompiledContract) -> Vec<GovernanceChange> {
    let new = topic.classified_properties();
    previous
        .classified_properties()
        .iter()
        .filter_map(|old| {
            let now = new.iter().find(|candidate| candidate.pointer == old.pointer);
            if now.is_some_and(|now| now.classification.eq_ignore_ascii_case(&old.classification)) {
                return None;
            }
            Some(GovernanceChange {
                stream: stream.to_string(),
                field: old.property_path.clone(),
                pointer: old.pointer.clone(),
                dropped_classification: old.classification.clone(),
                new_classification: now.map(|now| now.classification.clone()),
            })
        })
        .collect()
}

fn denied(error: Error) -> Refusal {
    refusal(error.code, error.message)
}

impl Broker {
    /// May `caller` apply to what `owner` owns (its domain, or the platform)? Decided by the
    /// authorizer of the stored mesh.
    fn may_apply_to(&self, caller: &Caller, owner: Owner<'_>) -> Result<(), Error> {
        match owner {
            Owner::Domain(domain) => self.guard().check(caller, AuthzAction::Apply, &AuthzResource::Domain(domain.to_string())),
            Owner::Platform => self.guard().check(caller, AuthzAction::Admin, &AuthzResource::mesh()),
        }
    }

    /// May `caller` apply this resource? See the module doc for the rules; `state` is the mesh as
    /// stored, `next` as it will be after this apply. Policies are also checked against the Cedar
    /// schema and, for domain policies, confined to their domain.
    pub(super) fn check_apply_allowed(
        &self,
        caller: &Caller,
        state: &MeshState,
        next: &MeshState,
        authz_mesh: &weft_governance::authz::Mesh,
        item: &Parsed,
    ) -> Result<(), Refusal> {
        match &item.document {
            Document::Domain(domain) => self.check_domain(caller, state, domain),
            Document::Product(product) => self.check_product(caller, state, product),
            Document::Contract(contract) => {
                let new_owner = next.contract_domain(contract);
                match state.contract(&contract.id) {
                    Some(stored) => {
                        let stored_owner = state.contract_domain(stored);
                        self.check_update(caller, "contract", &contract.id, stored_owner.as_deref(), new_owner.as_deref())
                    }
                    None => self.may_apply_to(caller, Owner::of(new_owner.as_deref())).map_err(denied),
                }
            }
            Document::Policy(policy) => self.check_policy(caller, authz_mesh, policy),
        }
    }

    /// A new Domain is the platform's to create; a stored one is changed by its owners only.
    fn check_domain(&self, caller: &Caller, state: &MeshState, domain: &Domain) -> Result<(), Refusal> {
        let Some(stored) = state.domains.get(&domain.name) else {
            return self.guard().check(caller, AuthzAction::Admin, &AuthzResource::mesh()).map_err(denied);
        };
        self.may_apply_to(caller, Owner::Domain(&domain.name)).map_err(|_| {
            refusal(
                codes::APPLY_OWNER_MISMATCH,
                format!("domain {} is owned by [{}]; only its owners or an admin may change it", domain.name, stored.owners.join(", ")),
            )
        })
    }

    fn check_product(&self, caller: &Caller, state: &MeshState, product: &DataProduct) -> Result<(), Refusal> {
        let new_domain = product.domain.as_deref();
        match state.products.get(&product.id) {
            Some(stored) => self.check_update(caller, "data product", &product.id, stored.domain.as_deref(), new_domain)?,
            None => self.may_apply_to(caller, Owner::of(new_domain)).map_err(denied)?,
        }
        // Publishing a stored contract makes its stream this product's, so in this product's
        // domain: whoever owns the contract now must agree. Contracts new in this apply are
        // judged by their own resource.
        for (port_idx, port) in product.output_ports.iter().enumerate() {
            let Some(stored_contract) = port.contract_id.as_deref().and_then(|id| state.contract(id)) else { continue };
            let owner = state.contract_domain(stored_contract);
            if owner.as_deref() == new_domain {
                continue;
            }
            self.may_apply_to(caller, Owner::of(owner.as_deref())).map_err(|_| Refusal {
                path: format!("/outputPorts/{port_idx}/contractId"),
                ..refusal(
                    codes::APPLY_OWNER_MISMATCH,
                    format!(
                        "contract {} belongs to {}; publishing it from a product of {} needs apply on both",
                        stored_contract.id,
                        Owner::of(owner.as_deref()),
                        Owner::of(new_domain)
                    ),
                )
            })?;
        }
        Ok(())
    }

    /// An update is judged against the stored owner; a move also needs the new one.
    fn check_update(&self, caller: &Caller, what: &str, id: &str, stored: Option<&str>, new: Option<&str>) -> Result<(), Refusal> {
        let (stored, new) = (Owner::of(stored), Owner::of(new));
        self.may_apply_to(caller, stored).map_err(|_| {
            refusal(codes::APPLY_OWNER_MISMATCH, format!("{what} {id} belongs to {stored}, and this principal may not apply there"))
        })?;
        if stored != new {
            self.may_apply_to(caller, new).map_err(|_| Refusal {
                path: "/domain".into(),
                ..refusal(
                    codes::APPLY_DOMAIN_MOVE_DENIED,
                    format!("moving {what} {id} from {stored} to {new} needs apply on both (admins have it); this principal may not apply to {new}"),
                )
            })?;
        }
        Ok(())
    }

    /// Global policies are the platform's, domain policies their domain's; the name was checked
    /// against the stored scope when the plan was made (`check_policy_name`).
    fn check_policy(&self, caller: &Caller, authz_mesh: &weft_governance::authz::Mesh, policy: &Policy) -> Result<(), Refusal> {
        let scope = policy_scope(policy);
        if let Err(error) = weft_governance::authz::check_policy_resource(&policy.name, &scope, &policy.policies, authz_mesh) {
            return Err(Refusal {
                code: error.code,
                message: error.message.clone(),
                path: "/policies".into(),
                line: u32::try_from(error.line).ok(),
                column: u32::try_from(error.column).ok(),
            });
        }
        let owner = match &scope {
            PolicyScope::Domain(domain) => Owner::Domain(domain),
            PolicyScope::Global => Owner::Platform,
        };
        self.may_apply_to(caller, owner).map_err(denied)
    }
}
