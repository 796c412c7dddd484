//! Consumer groups as resources: a group belongs to the principal that first used it.
//!
//! The first principal to use a group name (poll or commit over HTTP; FindCoordinator, JoinGroup
//! or OffsetCommit over Kafka) becomes its creator, recorded durably in the metadata store
//! (`group_creators`) and in the authorizer's [`weft_governance::authz::GroupDirectory`]; the
//! streams the group is used on are recorded beside it (`group_streams`). Every group request then
//! needs `consume` on `Weft::ConsumerGroup::"<group>"`, which the built-in policy grants to the
//! creator and to the owners of those streams' domains (admins may anyway, and a global policy
//! can grant others). HTTP and Kafka call the same [`Broker::authorize_group`], so one rule holds
//! for both, and a group created over one edge is guarded on the other.
//!
//! Groups that have committed offsets but no creator (made before creators were recorded) are
//! claimed by their next user, which is no weaker than before, when any principal could use any
//! group. With authentication off nothing is recorded: every caller is `admin`.
//!
//! Limit: [`GROUP_RECORDS_MAX`] recorded groups; a new group past it is refused.

use std::sync::Arc;

use weft_governance::audit::AuditDecision;
use weft_governance::authz::{Action, GroupRecord, Resource};

use crate::broker::Broker;
use crate::error::Error;
use crate::group::GROUP_NAME_BYTES_MAX;
use crate::guard::Caller;
use crate::meta::GroupClaim;

/// Most consumer groups whose creators are recorded; a new group past this is refused with
/// `group.limit_reached` (each record is a name, a principal and the streams it was used on).
pub const GROUP_RECORDS_MAX: usize = 100_000;

/// How a request uses a group, which decides whether it may create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupUse {
    /// Polling, committing, joining, finding the coordinator: the first principal to use a
    /// group this way becomes its creator.
    Use,
    /// Describing, heartbeats, syncs, leaving, reading offsets: never creates; a group nobody
    /// created is then only for admins and global grants.
    Inspect,
}

impl Broker {
    /// May `caller` take part in consumer group `group`? A [`GroupUse::Use`] of a group nobody
    /// created makes `caller` its creator first. `stream` is the stream the request reads, which
    /// the edge has already authorized; once `caller` passes it is recorded as one of the group's
    /// streams (for `Use` only). A denial is audited, as every denial.
    pub async fn authorize_group(&self, caller: &Caller, group: &str, group_use: GroupUse, stream: Option<&str>) -> Result<(), Error> {
        let guard = self.guard();
        let claimable = !group.is_empty() && group.len() <= GROUP_NAME_BYTES_MAX;
        if group_use == GroupUse::Use && guard.is_enabled() && claimable && guard.groups.get(group).is_none() {
            let meta = Arc::clone(self.meta());
            let (name, principal) = (group.to_string(), caller.principal.clone());
            let claim = tokio::task::spawn_blocking(move || meta.claim_group(&name, &principal, GROUP_RECORDS_MAX))
                .await
                .map_err(|error| Error::internal(error.to_string()))??;
            let creator = match claim {
                GroupClaim::Created => {
                    tracing::info!(group, creator = %caller.principal, "consumer group created");
                    let resource = Resource::ConsumerGroup(group.to_string()).to_string();
                    self.audit(Some(caller), "group.create", &resource, AuditDecision::Allow, None, None).await;
                    caller.principal.clone()
                }
                GroupClaim::Existing(creator) => creator,
            };
            guard.groups.insert(group, GroupRecord { creator, streams: Default::default() });
        }
        self.authorize(caller, Action::Consume, &Resource::ConsumerGroup(group.to_string())).await?;
        if let (GroupUse::Use, Some(stream)) = (group_use, stream) {
            self.note_group_stream(group, stream).await?;
        }
        Ok(())
    }

    /// Records that a created group was used on `stream` (its owners may then manage the group).
    /// The caller must have authorized the group and the stream.
    pub async fn note_group_stream(&self, group: &str, stream: &str) -> Result<(), Error> {
        let groups = &self.guard().groups;
        if !self.guard().is_enabled() || groups.get(group).is_none() || groups.has_stream(group, stream) {
            return Ok(());
        }
        let meta = Arc::clone(self.meta());
        let (name, stream_name) = (group.to_string(), stream.to_string());
        tokio::task::spawn_blocking(move || meta.add_group_stream(&name, &stream_name))
            .await
            .map_err(|error| Error::internal(error.to_string()))??;
        groups.add_stream(group, stream);
        Ok(())
    }
}
