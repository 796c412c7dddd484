//! Subjects fed by data contracts, on the REST side: who may change them (admins only) and the
//! refusal everyone else gets (403, Confluent's 40301), audited as a denial. Which subjects are
//! contract-fed is the registry's own record (`weft_registry::Registry::is_contract_fed`).

use std::sync::Arc;

use axum::Extension;
use weft_core::Broker;
use weft_core::guard::{AuthzResource, Caller};
use weft_governance::audit::AuditDecision;
use weft_registry::{Registry, RegistryError};

use super::{Failure, blocking};

/// Who calls the registry, as the authentication middleware (`auth.rs`) saw them: whether they are
/// an admin, and the broker that audits refusals. Without it (the router used on its own, as in
/// its tests) the caller counts as someone who is not an admin.
#[derive(Clone)]
pub(crate) struct RegistryCaller {
    pub caller: Caller,
    pub admin: bool,
    pub broker: Arc<Broker>,
}

pub(super) type MaybeCaller = Option<Extension<RegistryCaller>>;

/// Is `subject` contract-fed and the caller not an admin, so that changes to it are refused?
pub(super) async fn is_locked_for(registry: &Arc<Registry>, caller: &MaybeCaller, subject: &str) -> Result<bool, Failure> {
    if caller.as_ref().is_some_and(|Extension(caller)| caller.admin) {
        return Ok(false);
    }
    let checked = subject.to_string();
    blocking(Arc::clone(registry), move |registry| registry.is_contract_fed(&checked)).await
}

/// Refuses a change to a contract-fed subject by anyone but an admin (40301), auditing it.
pub(super) async fn refuse_if_contract_fed(
    registry: &Arc<Registry>,
    caller: &MaybeCaller,
    subject: &str,
    operation: &str,
) -> Result<(), Failure> {
    if !is_locked_for(registry, caller, subject).await? {
        return Ok(());
    }
    Err(contract_fed_refusal(caller, subject, operation).await)
}

pub(super) async fn contract_fed_refusal(caller: &MaybeCaller, subject: &str, operation: &str) -> Failure {
    if let Some(Extension(RegistryCaller { caller, broker, .. })) = caller {
        let stream = subject.strip_suffix("-value").or_else(|| subject.strip_suffix("-key")).unwrap_or(subject);
        let resource = AuthzResource::Stream(stream.to_string()).to_string();
        let detail = format!("{operation} on subject {subject}, which its data contract feeds");
        broker
            .audit(Some(caller), operation, &resource, AuditDecision::Deny, Some(crate::codes::REGISTRY_SUBJECT_CONTRACT_FED), Some(detail))
            .await;
    }
    RegistryError::SubjectContractFed(subject.to_string()).into()
}
