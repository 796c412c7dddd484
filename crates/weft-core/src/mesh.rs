//! The mesh: domains, data products, data contracts and policies applied with `weft apply`,
//! and the link from each contract's topics to the streams they govern.
//!
//! `Broker::apply` plans every resource (create, update with a field-level diff, unchanged, or
//! refused with the reason) and changes nothing unless every resource is acceptable: apply
//! is atomic. Contract versions are immutable once applied; a new version of a contract must
//! be compatible with the earlier ones under the stream's compatibility mode, otherwise it is
//! refused with an explanation that names each offending field and who reads the stream.
//! A breaking change ships as a new major version: a new contract whose topic is a new
//! stream (`sales.orders.v2`) beside the old one.
//!
//! The applied state and the component that holds it are `state.rs`; the plan's types `plan.rs`.
//! Who may apply what (an update is judged against the resource as stored, moves between
//! domains, policy names, reserved streams, governance changes) is `ownership.rs`.

mod ownership;
mod plan;
mod state;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use weft_contract::{CompiledContract, DataContract, DataProduct, Document};

use crate::broker::{Broker, PreparedStream};
use crate::error::{Error, Kind, codes};
use crate::guard::Caller;
use crate::meta::MetaWrite;
use crate::stream::{DEAD_LETTER_SUFFIX, Governance, RETENTION_MS_DEFAULT, StreamConfig};
pub use ownership::policy_scope;
use plan::refusal;
pub use plan::{
    ApplyPlan, ApplySource, DomainMove, FieldChange, GovernanceChange, PLAN_CHANGES_MAX, PlanAction, PlannedResource, Refusal,
    SchemaChange, json_diff,
};
pub(crate) use state::AppliedMesh;
pub use state::{MeshState, topic_streams};

/// Most sources (files) in one apply.
pub const APPLY_SOURCES_MAX: usize = 1_000;
/// Retention of dead-letter streams when the contract does not set one.
pub const DEAD_LETTER_RETENTION_MS: i64 = 30 * 86_400_000;

fn json_of<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

struct Parsed {
    source: String,
    document_idx: usize,
    document: Document,
}

impl Broker {
    /// Plans and (unless `dry_run` or something is refused) applies resources atomically.
    pub fn apply(&self, sources: Vec<ApplySource>, dry_run: bool, caller: &Caller) -> Result<ApplyPlan, Error> {
        if sources.len() > APPLY_SOURCES_MAX {
            return Err(Error::new(Kind::TooLarge, codes::APPLY_REFUSED, format!("apply takes at most {APPLY_SOURCES_MAX} files at once")));
        }
        let _apply_guard = self.applied_mesh().lock_for_apply();
        let state = self.mesh();
        let mut plan = ApplyPlan { dry_run, applied: false, resources: Vec::new() };
        let mut parsed = Vec::new();
        for source in &sources {
            match weft_contract::parse_documents(&source.text, &source.name) {
                Ok(documents) => parsed.extend(documents.into_iter().enumerate().map(|(document_idx, document)| Parsed {
                    source: source.name.clone(),
                    document_idx,
                    document,
                })),
                // The kind and id as far as the document says them ("Unknown" and "" only when
                // it does not even say which resource it is).
                Err(error) => plan.resources.push(PlannedResource {
                    kind: error.resource.as_ref().map_or("Unknown", |resource| resource.kind),
                    id: error.resource.as_ref().and_then(|resource| resource.id.clone()).unwrap_or_default(),
                    version: None,
                    source: source.name.clone(),
                    document: error.document_idx.map_or(0, |idx| idx as usize),
                    action: PlanAction::Refused,
                    changes: Vec::new(),
                    schema_changes: Vec::new(),
                    governance_changes: Vec::new(),
                    domain_move: None,
                    streams: Vec::new(),
                    error: Some(Refusal::from(&error)),
                }),
            }
        }
        // The state as it will be if everything is applied, so references within one apply resolve.
        let mut next = MeshState::clone(&state);
        let mut seen: BTreeSet<(&'static str, String)> = BTreeSet::new();
        let mut duplicates = Vec::with_capacity(parsed.len());
        for item in &parsed {
            let (kind, id) = identity(&item.document);
            duplicates.push(!seen.insert((kind, id)));
            match &item.document {
                Document::Domain(domain) => {
                    next.domains.insert(domain.name.clone(), domain.clone());
                }
                Document::Product(product) => {
                    next.products.insert(product.id.clone(), (**product).clone());
                }
                Document::Policy(policy) => {
                    next.policies.insert(policy.name.clone(), policy.clone());
                }
                Document::Contract(contract) => {
                    let versions = next.contracts.entry(contract.id.clone()).or_default();
                    if !versions.iter().any(|v| v.version == contract.version) {
                        versions.push((**contract).clone());
                    }
                }
            }
        }
        next.refresh_implicit_products();
        let principals = self.guard().identity().list_principals().map_err(|error| Error::internal(error.to_string()))?;
        let authz_mesh = crate::guard::authz_mesh(&next, &principals);
        for (item, duplicate) in parsed.iter().zip(duplicates) {
            let mut planned = self.plan_one(&state, &next, item);
            // Who may apply it is said first: a caller who may not touch the resource learns
            // that (and whose it is), not what else is wrong with their document.
            if let Err(error) = self.check_apply_allowed(caller, &state, &next, &authz_mesh, item)
                && (planned.action != PlanAction::Refused || error.is_denial())
            {
                planned.action = PlanAction::Refused;
                planned.error = Some(error);
            }
            if duplicate {
                let (kind, id) = identity(&item.document);
                planned.action = PlanAction::Refused;
                planned.error = Some(refusal(codes::RESOURCE_DUPLICATE_ID, format!("{kind} {id} appears more than once in this apply")));
            }
            plan.resources.push(planned);
        }
        if plan.n_refused() > 0 || dry_run {
            return Ok(plan);
        }
        self.commit_apply(&parsed, &plan, next)?;
        self.guard().rebuild(&self.mesh())?;
        plan.applied = true;
        Ok(plan)
    }

    fn plan_one(&self, state: &MeshState, next: &MeshState, item: &Parsed) -> PlannedResource {
        let (kind, id) = identity(&item.document);
        let mut planned = PlannedResource {
            kind,
            id: id.clone(),
            version: None,
            source: item.source.clone(),
            document: item.document_idx,
            action: PlanAction::Create,
            changes: Vec::new(),
            schema_changes: Vec::new(),
            governance_changes: Vec::new(),
            domain_move: None,
            streams: Vec::new(),
            error: None,
        };
        let (old, new) = match &item.document {
            Document::Domain(domain) => (state.domains.get(&id).map(json_of), json_of(domain)),
            Document::Policy(policy) => {
                if let Err(error) = ownership::check_policy_name(state, policy) {
                    planned.action = PlanAction::Refused;
                    planned.error = Some(error);
                    return planned;
                }
                (state.policies.get(&id).map(json_of), json_of(policy))
            }
            Document::Product(product) => {
                planned.version = product.version.clone();
                let stored = state.products.get(&id);
                planned.domain_move = stored.and_then(|stored| ownership::domain_move(stored.domain.as_deref(), product.domain.as_deref()));
                if let Err(error) = check_product_references(next, product) {
                    planned.action = PlanAction::Refused;
                    planned.error = Some(error);
                    return planned;
                }
                (stored.map(json_of), json_of(product))
            }
            Document::Contract(contract) => {
                planned.version = Some(contract.version.clone());
                return self.plan_contract(state, next, contract, planned);
            }
        };
        match old {
            None => planned.action = PlanAction::Create,
            Some(old) if old == new => planned.action = PlanAction::Unchanged,
            Some(old) => {
                planned.action = PlanAction::Update;
                planned.changes = json_diff(&old, &new);
            }
        }
        planned
    }

    fn plan_contract(&self, state: &MeshState, next: &MeshState, contract: &DataContract, mut planned: PlannedResource) -> PlannedResource {
        let refuse = |mut planned: PlannedResource, error: Refusal| {
            planned.action = PlanAction::Refused;
            planned.error = Some(error);
            planned
        };
        let compiled = match CompiledContract::compile_topics(contract) {
            Ok(compiled) => compiled,
            Err(error) => return refuse(planned, Refusal::from(&error)),
        };
        if compiled.is_empty() {
            return refuse(
                planned,
                refusal(codes::CONTRACT_NO_TOPIC, "the contract has no schema object with physicalType: topic, so it defines no stream"),
            );
        }
        planned.streams = compiled.iter().filter_map(|c| c.stream_name().map(str::to_string)).collect();
        let previous_versions = state.contracts.get(&contract.id).cloned().unwrap_or_default();
        if let Some(same) = previous_versions.iter().find(|v| v.version == contract.version) {
            if json_of(same) == json_of(contract) {
                planned.action = PlanAction::Unchanged;
                return planned;
            }
            return refuse(
                planned,
                refusal(
                    codes::CONTRACT_VERSION_IMMUTABLE,
                    format!(
                        "version {} of contract {} is already applied with other content; give the change a new version",
                        contract.version, contract.id
                    ),
                ),
            );
        }
        if let Some(stored) = previous_versions.last() {
            planned.domain_move =
                ownership::domain_move(state.contract_domain(stored).as_deref(), next.contract_domain(contract).as_deref());
        }
        for topic in &compiled {
            let stream_name = topic.stream_name().unwrap_or_default().to_string();
            if stream_name.len() + DEAD_LETTER_SUFFIX.len() > crate::stream::STREAM_NAME_BYTES_MAX {
                return refuse(
                    planned,
                    refusal(codes::CONTRACT_NO_TOPIC, format!("stream name {stream_name} is too long to have a dead-letter stream")),
                );
            }
            if let Err(error) = crate::stream::check_stream_name(&stream_name) {
                return refuse(planned, refusal(error.code, error.message));
            }
            if let Err(error) = ownership::check_contract_stream(&stream_name) {
                return refuse(planned, error);
            }
            if let Some(owner) = state.contract_of_stream(&stream_name).filter(|owner| owner.id != contract.id) {
                return refuse(
                    planned,
                    refusal(
                        codes::CONTRACT_STREAM_OWNED_ELSEWHERE,
                        format!("stream {stream_name} is already governed by contract {}; a stream has one contract", owner.id),
                    ),
                );
            }
            if let (Ok(stream), Some(partitions)) = (self.stream(&stream_name), topic.settings().partitions)
                && stream.n_partitions() != partitions
            {
                return refuse(
                    planned,
                    refusal(
                        codes::CONTRACT_PARTITIONS_CHANGED,
                        format!(
                            "stream {stream_name} has {} partitions; the contract asks for {partitions}, and the count cannot change",
                            stream.n_partitions()
                        ),
                    ),
                );
            }
            let previous: Vec<CompiledContract> = previous_versions
                .iter()
                .filter_map(|version| CompiledContract::compile_topics(version).ok())
                .filter_map(|topics| topics.into_iter().find(|t| t.stream_name() == Some(stream_name.as_str())))
                .collect();
            let Some(latest) = previous.last() else { continue };
            planned.governance_changes.extend(ownership::dropped_classifications(&stream_name, latest, topic));
            let report = weft_contract::check_compatibility(&previous, topic, topic.settings().compatibility_mode());
            for checked in &report.changes {
                planned.schema_changes.push(SchemaChange {
                    stream: stream_name.clone(),
                    field: checked.change.path.clone(),
                    change: checked.change.description.clone(),
                    breaks_readers: checked.change.breaks_backward,
                    breaks_writers: checked.change.breaks_forward,
                    breaking: checked.breaks_mode,
                    reason: checked.change.reason.clone(),
                });
            }
            if !report.compatible {
                let offending: Vec<String> =
                    report.breaking_changes().map(|c| format!("{} ({})", c.change.description, c.change.reason)).collect();
                let groups: Vec<String> =
                    self.meta().groups().unwrap_or_default().into_iter().filter(|(_, s)| *s == stream_name).map(|(g, _)| g).collect();
                let derived = next.readers_of_contract(&contract.id);
                let readers = match (groups.is_empty(), derived.is_empty()) {
                    (true, true) => "no consumer group or derived product reads it yet".to_string(),
                    (false, true) => format!("read by consumer groups {}", groups.join(", ")),
                    (true, false) => format!("read by derived products {}", derived.join(", ")),
                    (false, false) => format!("read by consumer groups {} and derived products {}", groups.join(", "), derived.join(", ")),
                };
                let message = format!(
                    "version {} is not {} compatible with the applied versions of stream {stream_name}: {}; {readers}; ship a breaking change as a new major version on a new stream",
                    contract.version,
                    report.mode.name(),
                    offending.join("; "),
                );
                return refuse(planned, refusal(codes::CONTRACT_INCOMPATIBLE, message));
            }
        }
        if let Some(last) = previous_versions.last() {
            planned.action = PlanAction::Update;
            planned.changes = json_diff(&json_of(last), &json_of(contract));
        }
        planned
    }

    fn commit_apply(&self, parsed: &[Parsed], plan: &ApplyPlan, next: MeshState) -> Result<(), Error> {
        let mut writes = Vec::new();
        let mut new_contracts = Vec::new();
        // Nothing is committed when a document failed to parse (it is refused), so every
        // planned resource here is one parsed document, in order.
        debug_assert_eq!(parsed.len(), plan.resources.len());
        for (item, planned) in parsed.iter().zip(&plan.resources) {
            if planned.action == PlanAction::Unchanged {
                continue;
            }
            match &item.document {
                Document::Domain(domain) => writes.push(resource_write("Domain", &domain.name, domain)?),
                Document::Policy(policy) => writes.push(resource_write("Policy", &policy.name, policy)?),
                Document::Product(product) => writes.push(resource_write("DataProduct", &product.id, product)?),
                Document::Contract(contract) => {
                    let sequence =
                        next.contracts.get(&contract.id).map_or(0, |v| v.iter().position(|c| c.version == contract.version).unwrap_or(0))
                            as u32;
                    let json = serde_json::to_vec(contract).map_err(|error| Error::internal(error.to_string()))?;
                    writes.push(MetaWrite::ContractVersion { contract_id: contract.id.clone(), sequence, json });
                    new_contracts.push(contract.clone());
                }
            }
        }
        // A new stream becomes visible only with its contract in force: its files are prepared,
        // governance is attached, and then the streams and every resource are recorded in one
        // metadata transaction. A crash before that commit leaves the old mesh (and at most
        // unreferenced files, reused by the next create); after it, the new one, governed at
        // start-up. Streams that exist already take the new version after the commit.
        let _creating = self.lock_stream_creation();
        let mut prepared = Vec::new();
        for contract in &new_contracts {
            prepared.extend(self.prepare_contract_streams(contract, &prepared)?);
        }
        for contract in &new_contracts {
            for stream in prepared.iter().map(|p| &p.stream) {
                if let Some(governance) = governance_of(contract, stream.name())? {
                    stream.set_governance(Some(governance));
                }
            }
        }
        crate::failpoint::crash("apply.before_commit");
        self.register_streams(prepared, writes)?;
        crate::failpoint::crash("apply.after_commit");
        self.applied_mesh().replace(next);
        for contract in &new_contracts {
            self.attach_governance(contract)?;
            self.register_schemas(contract);
        }
        Ok(())
    }

    /// Prepares the contract's streams and dead-letter streams that neither exist nor are in
    /// `pending` (prepared for another contract of the same apply).
    fn prepare_contract_streams(&self, contract: &DataContract, pending: &[PreparedStream]) -> Result<Vec<PreparedStream>, Error> {
        let compiled = CompiledContract::compile_topics(contract).map_err(|error| Error::invalid(error.code, error.message))?;
        let exists = |name: &str| self.stream(name).is_ok() || pending.iter().any(|p| p.stream.name() == name);
        let mut prepared: Vec<PreparedStream> = Vec::new();
        for topic in &compiled {
            let Some(stream_name) = topic.stream_name() else { continue };
            let settings = topic.settings();
            let retention_ms = settings.retention.map(|d| d.as_millis() as i64).or(Some(RETENTION_MS_DEFAULT));
            if !exists(stream_name) && !prepared.iter().any(|p| p.stream.name() == stream_name) {
                // The contract's declaration of the policy, in the log's one type.
                let fsync = match settings.fsync {
                    None | Some(weft_contract::FsyncPolicy::Always) => weft_log::FsyncPolicy::Always,
                    Some(weft_contract::FsyncPolicy::Interval { interval_ms }) => weft_log::FsyncPolicy::IntervalMs(interval_ms),
                    Some(weft_contract::FsyncPolicy::Never) => weft_log::FsyncPolicy::Never,
                };
                prepared.push(self.prepare_stream(StreamConfig {
                    name: stream_name.to_string(),
                    partitions: settings.partitions.unwrap_or(1),
                    key: settings.key_pointer.clone(),
                    retention_ms,
                    retention_bytes: None,
                    fsync,
                    segment_bytes: weft_log::SEGMENT_BYTES_DEFAULT,
                    created_at_ms: 0,
                })?);
            }
            let dead_letter_name = format!("{stream_name}{DEAD_LETTER_SUFFIX}");
            if !exists(&dead_letter_name) && !prepared.iter().any(|p| p.stream.name() == dead_letter_name) {
                prepared.push(self.prepare_stream(StreamConfig {
                    name: dead_letter_name,
                    partitions: 1,
                    key: None,
                    retention_ms: Some(retention_ms.unwrap_or(DEAD_LETTER_RETENTION_MS).max(DEAD_LETTER_RETENTION_MS)),
                    retention_bytes: None,
                    fsync: weft_log::FsyncPolicy::Always,
                    segment_bytes: weft_log::SEGMENT_BYTES_DEFAULT,
                    created_at_ms: 0,
                })?);
            }
        }
        Ok(prepared)
    }

    /// Makes a contract's latest version govern its streams.
    pub(crate) fn attach_governance(&self, contract: &DataContract) -> Result<(), Error> {
        for stream_name in topic_streams(contract) {
            let stream = self.stream(&stream_name)?;
            stream.set_governance(governance_of(contract, &stream_name)?);
        }
        Ok(())
    }

    /// Registers the schema of every applied contract's current version (idempotent), so the
    /// registry marks their subjects contract-fed; earlier versions registered before the
    /// registry kept that mark stay unmarked (frames with their ids are refused on the stream).
    pub(crate) fn register_applied_schemas(&self) {
        let contracts: Vec<DataContract> = self.mesh().contracts.values().filter_map(|versions| versions.last().cloned()).collect();
        for contract in &contracts {
            self.register_schemas(contract);
        }
    }

    fn register_schemas(&self, contract: &DataContract) {
        let Some(sink) = self.schema_registry() else { return };
        let Ok(compiled) = CompiledContract::compile_topics(contract) else { return };
        for topic in compiled {
            let Some(stream_name) = topic.stream_name() else { continue };
            let subject = format!("{stream_name}-value");
            if let Err(message) = sink.register_json_schema(&subject, &topic.to_json_schema()) {
                tracing::warn!(subject, %message, "schema registry refused the contract's schema");
            }
        }
    }

    /// Rebuilds the mesh from the metadata store at start-up.
    pub(crate) fn load_mesh(&self) -> Result<(), Error> {
        let mut state = MeshState::default();
        for (kind, id, json) in self.meta().resources()? {
            let unreadable = |error: serde_json::Error| Error::internal(format!("stored {kind} {id} is unreadable: {error}"));
            match kind.as_str() {
                "Domain" => {
                    state.domains.insert(id.clone(), serde_json::from_slice(&json).map_err(unreadable)?);
                }
                "DataProduct" => {
                    state.products.insert(id.clone(), serde_json::from_slice(&json).map_err(unreadable)?);
                }
                "Policy" => {
                    state.policies.insert(id.clone(), serde_json::from_slice(&json).map_err(unreadable)?);
                }
                _ => tracing::warn!(kind, id, "unknown resource kind in the metadata store"),
            }
        }
        for (id, _, json) in self.meta().contract_versions()? {
            let contract: DataContract =
                serde_json::from_slice(&json).map_err(|error| Error::internal(format!("stored contract {id} is unreadable: {error}")))?;
            state.contracts.entry(id).or_default().push(contract);
        }
        state.refresh_implicit_products();
        let latest: Vec<DataContract> = state.contracts.values().filter_map(|v| v.last().cloned()).collect();
        self.applied_mesh().replace(state);
        for contract in &latest {
            // A data directory written before streams and contracts were recorded together
            // may hold a contract whose streams are missing: create them, governed.
            let _creating = self.lock_stream_creation();
            let prepared = self.prepare_contract_streams(contract, &[])?;
            for stream in prepared.iter().map(|p| &p.stream) {
                stream.set_governance(governance_of(contract, stream.name())?);
            }
            self.register_streams(prepared, Vec::new())?;
            self.attach_governance(contract)?;
        }
        Ok(())
    }
}

fn identity(document: &Document) -> (&'static str, String) {
    match document {
        Document::Domain(domain) => ("Domain", domain.name.clone()),
        Document::Product(product) => ("DataProduct", product.id.clone()),
        Document::Policy(policy) => ("Policy", policy.name.clone()),
        Document::Contract(contract) => ("DataContract", contract.id.clone()),
    }
}

fn resource_write<T: Serialize>(kind: &'static str, id: &str, resource: &T) -> Result<MetaWrite, Error> {
    let json = serde_json::to_vec(resource).map_err(|error| Error::internal(error.to_string()))?;
    Ok(MetaWrite::Resource { kind, id: id.to_string(), json })
}

fn check_product_references(next: &MeshState, product: &DataProduct) -> Result<(), Refusal> {
    if let Some(domain) = &product.domain
        && !next.domains.contains_key(domain)
    {
        return Err(Refusal {
            path: "/domain".into(),
            ..refusal(
                codes::PRODUCT_MISSING_DOMAIN,
                format!("domain {domain} does not exist; apply a Domain resource named {domain} first or in the same apply"),
            )
        });
    }
    for (port_idx, port) in product.output_ports.iter().enumerate() {
        let Some(contract_id) = &port.contract_id else { continue };
        if next.contract_version(contract_id, &port.version).is_none() {
            return Err(Refusal {
                path: format!("/outputPorts/{port_idx}/contractId"),
                ..refusal(
                    codes::PRODUCT_MISSING_CONTRACT,
                    format!("output port {} references contract {contract_id} version {}, which is not applied", port.name, port.version),
                )
            });
        }
        if let Some(owner) = next
            .products
            .values()
            .find(|other| other.id != product.id && other.output_ports.iter().any(|p| p.contract_id.as_deref() == Some(contract_id)))
        {
            return Err(Refusal {
                path: format!("/outputPorts/{port_idx}/contractId"),
                ..refusal(
                    codes::PRODUCT_CONTRACT_OWNED_ELSEWHERE,
                    format!("contract {contract_id} is already an output of product {}", owner.id),
                )
            });
        }
        if let Some(message) = next.contract(contract_id).and_then(|contract| ownership::check_port_domain(product, contract)) {
            return Err(Refusal {
                path: format!("/outputPorts/{port_idx}/contractId"),
                ..refusal(codes::PRODUCT_CONTRACT_OUTSIDE_DOMAIN, message)
            });
        }
    }
    for (port_idx, port) in product.input_ports.iter().enumerate() {
        if !next.contracts.contains_key(&port.contract_id) {
            return Err(Refusal {
                path: format!("/inputPorts/{port_idx}/contractId"),
                ..refusal(
                    codes::PRODUCT_MISSING_CONTRACT,
                    format!("input port {} references contract {}, which is not applied", port.name, port.contract_id),
                )
            });
        }
    }
    Ok(())
}

/// The governance `contract` puts on `stream_name`, if one of its topics names that stream.
fn governance_of(contract: &DataContract, stream_name: &str) -> Result<Option<Arc<Governance>>, Error> {
    let compiled = CompiledContract::compile_topics(contract).map_err(|error| Error::invalid(error.code, error.message))?;
    Ok(compiled.into_iter().find(|topic| topic.stream_name() == Some(stream_name)).map(|topic| {
        Arc::new(Governance {
            contract_id: contract.id.clone(),
            contract_version: contract.version.clone(),
            compiled: topic,
            dead_letter_stream: format!("{stream_name}{DEAD_LETTER_SUFFIX}"),
        })
    }))
}
