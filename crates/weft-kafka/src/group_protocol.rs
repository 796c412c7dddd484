//! The Kafka side of consumer groups: the classic consumer-group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), in memory.
//!
//! States as in Kafka: `Empty` → `PreparingRebalance` (a member joined, left or timed out;
//! every member must rejoin) → `CompletingRebalance` (generation bumped, the leader got the
//! member list with each member's protocol metadata) → `Stable` (the leader's SyncGroup
//! delivered each member's assignment).
//! A JoinGroup waits until every known member has rejoined or the rebalance timeout passes
//! (members that did not rejoin are removed). A follower's SyncGroup waits for the leader's.
//! Heartbeats during a rebalance get REBALANCE_IN_PROGRESS, from unknown members
//! UNKNOWN_MEMBER_ID, with a wrong generation ILLEGAL_GENERATION. A member silent for its
//! session timeout is removed and the group rebalances.
//!
//! Groups of protocol type `consumer` share their membership and partitions with the HTTP
//! consumer group of the same name, in `weft_core::group` (the "core"):
//! - when a join round completes, the members and the topics of their
//!   ConsumerProtocolSubscription (for the chosen protocol) are registered in the core, and a
//!   member that leaves or expires is removed from it at once;
//! - the assignment is computed on the server, like KIP-848's server-side assignors: the
//!   leader's SyncGroup still completes the round, but every member receives the share the core
//!   computed (round robin over the HTTP and Kafka members subscribed to each stream, sorted by
//!   member id) as a ConsumerProtocolAssignment of its subscription's version; the leader's
//!   proposal is ignored;
//! - the group remembers the core generation its members synced; when the core moves on (an HTTP
//!   member joined, left or expired), the next Heartbeat starts a rebalance and answers
//!   REBALANCE_IN_PROGRESS, so the members rejoin and get their new share;
//! - OffsetCommit from a member is accepted only for partitions the member owns in the core
//!   (the HTTP rule); other partitions get REBALANCE_IN_PROGRESS.
//!
//! Groups of other protocol types (Kafka Connect, ...) keep client-side assignment: the
//! leader's proposal is delivered and the core does not know their members.
//!
//! Not here: committed offsets (stored through `weft_core::meta::MetaStore`, shared with HTTP
//! groups, see `groups`); static membership (`group.instance.id` is accepted and echoed, but
//! such members are treated as dynamic); the initial rebalance delay Kafka applies to new groups.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;
use weft_core::Broker;
// The group limits are core's, shared with HTTP groups.
use weft_core::group::{GROUP_MEMBERS_MAX, GROUP_NAME_BYTES_MAX, GROUPS_MAX, SESSION_TIMEOUT_MS_MAX, SESSION_TIMEOUT_MS_MIN};

use consumer_protocol::{decode_subscription, encode_assignment};
use group::{Group, Member};

/// Rebalance timeouts are capped at this (a client may send up to `i32::MAX`).
pub const REBALANCE_TIMEOUT_MS_MAX: i32 = 300_000;
/// The protocol type of Kafka consumers: such groups share membership and assignment with
/// HTTP groups and are assigned on the server.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topics a consumer's JoinGroup subscribes to, over all the protocols it offers (none for
/// other protocol types, or metadata that does not decode).
pub fn subscribed_topics(protocol_type: &str, protocols: &[(String, Bytes)]) -> std::collections::BTreeSet<String> {
    if protocol_type != CONSUMER_PROTOCOL_TYPE {
        return Default::default();
    }
    protocols.iter().filter_map(|(_, metadata)| decode_subscription(metadata)).flat_map(|subscription| subscription.topics).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
        }
    }
}

/// What a JoinGroup is answered with.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error_code: i16,
    pub generation: i32,
    pub protocol_name: String,
    pub leader: String,
    pub member_id: String,
    /// For the leader only: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

/// What a SyncGroup is answered with.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub error_code: i16,
    pub assignment: Bytes,
}

/// A join as the client sent it.
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

/// Which checks an OffsetCommit's partitions still need once the group accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitScope {
    /// From outside the group (generation -1) while it has no members: any partition.
    Outsider,
    /// From a member of a group of another protocol type: any partition, as Kafka.
    Member,
    /// From a member of a consumer group: only partitions it owns in the core.
    Owner,
}

/// All Kafka consumer groups of this node.
pub struct KafkaGroupProtocol {
    broker: Arc<Broker>,
    groups: Mutex<HashMap<String, Group>>,
    next_member_seq: Mutex<u64>,
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

impl KafkaGroupProtocol {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker, groups: Mutex::new(HashMap::new()), next_member_seq: Mutex::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// A new member id, never one an HTTP member of the same group holds (the sequence number
    /// makes each attempt different; an HTTP client would have to guess the time to collide).
    fn new_member_id(&self, group_id: &str, client_id: &str) -> String {
        let mut seq = self.next_member_seq.lock().unwrap_or_else(|poison| poison.into_inner());
        let prefix: String = client_id.chars().take(64).collect();
        loop {
            *seq += 1;
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
            let member_id = format!("{prefix}-{nanos:x}-{:x}", *seq);
            if !self.broker.groups().is_member(group_id, &member_id) {
                return member_id;
            }
        }
    }

    /// Joins (or rejoins) a member; the receiver yields the answer once the rebalance completes.
    pub fn join(&self, request: JoinRequest, now: Instant) -> Result<oneshot::Receiver<JoinOutcome>, JoinOutcome> {
        let fail = |error: ResponseError, member_id: &str| JoinOutcome {
            error_code: code(error),
            member_id: member_id.to_string(),
            ..Default::default()
        };
        if request.group_id.is_empty() || request.group_id.len() > GROUP_NAME_BYTES_MAX {
            return Err(fail(ResponseError::InvalidGroupId, &request.member_id));
        }
        if !(SESSION_TIMEOUT_MS_MIN..=SESSION_TIMEOUT_MS_MAX).contains(&i64::from(request.session_timeout_ms)) {
            return Err(fail(ResponseError::InvalidSessionTimeout, &request.member_id));
        }
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return Err(fail(ResponseError::InconsistentGroupProtocol, &request.member_id));
        }
        // The server assigns consumer groups from their subscriptions, so it must read them.
        if request.protocol_type == CONSUMER_PROTOCOL_TYPE && request.protocols.iter().any(|(_, m)| decode_subscription(m).is_none()) {
            return Err(fail(ResponseError::InconsistentGroupProtocol, &request.member_id));
        }
        let broker = Arc::clone(&self.broker);
        let mut groups = self.lock();
        if !groups.contains_key(&request.group_id) && groups.len() >= GROUPS_MAX {
            return Err(fail(ResponseError::GroupMaxSizeReached, &request.member_id));
        }
        let group = groups.entry(request.group_id.clone()).or_insert_with(|| Group::new(request.group_id.clone(), now));
        if !group.members.is_empty() {
            let supports_common = group.common_protocols().iter().any(|name| request.protocols.iter().any(|(p, _)| p == name));
            if request.protocol_type != group.protocol_type || !supports_common {
                return Err(fail(ResponseError::InconsistentGroupProtocol, &request.member_id));
            }
        }
        let member_id = if request.member_id.is_empty() {
            // The limit counts the HTTP members of the group too: they share one membership.
            if group.members.len() + broker.groups().http_member_count(&request.group_id) >= GROUP_MEMBERS_MAX {
                return Err(fail(ResponseError::GroupMaxSizeReached, ""));
            }
            self.new_member_id(&request.group_id, &request.client_id)
        } else if group.members.contains_key(&request.member_id) {
            request.member_id.clone()
        } else {
            return Err(fail(ResponseError::UnknownMemberId, &request.member_id));
        };
        let (sender, receiver) = oneshot::channel();
        let rebalance_timeout_ms = request.rebalance_timeout_ms.clamp(request.session_timeout_ms, REBALANCE_TIMEOUT_MS_MAX);
        let member = group.members.entry(member_id).or_insert_with(|| Member {
            group_instance_id: None,
            client_id: String::new(),
            client_host: String::new(),
            session_timeout: Duration::ZERO,
            rebalance_timeout: Duration::ZERO,
            protocols: Vec::new(),
            last_seen: now,
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
        });
        member.group_instance_id = request.group_instance_id;
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        member.session_timeout = Duration::from_millis(request.session_timeout_ms as u64);
        member.rebalance_timeout = Duration::from_millis(rebalance_timeout_ms as u64);
        member.protocols = request.protocols;
        member.last_seen = now;
        member.join_waiter = Some(sender);
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(SyncOutcome { error_code: code(ResponseError::RebalanceInProgress), ..Default::default() });
        }
        group.protocol_type = request.protocol_type;
        if group.state != GroupState::PreparingRebalance {
            group.prepare_rebalance(now);
        }
        group.maybe_complete_join(now, false, &broker);
        Ok(receiver)
    }

    /// A member's SyncGroup; the leader's carries everyone's assignment (used only by groups
    /// that are not consumer groups; consumer groups get the core's).
    pub fn sync(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Result<oneshot::Receiver<SyncOutcome>, SyncOutcome> {
        let fail = |error: ResponseError| SyncOutcome { error_code: code(error), ..Default::default() };
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else { return Err(fail(ResponseError::UnknownMemberId)) };
        let Some(member) = group.members.get_mut(member_id) else { return Err(fail(ResponseError::UnknownMemberId)) };
        if generation != group.generation {
            return Err(fail(ResponseError::IllegalGeneration));
        }
        member.last_seen = now;
        match group.state {
            GroupState::Empty => Err(fail(ResponseError::UnknownMemberId)),
            GroupState::PreparingRebalance => Err(fail(ResponseError::RebalanceInProgress)),
            GroupState::Stable => Err(SyncOutcome { error_code: 0, assignment: member.assignment.clone() }),
            GroupState::CompletingRebalance => {
                let (sender, receiver) = oneshot::channel();
                member.sync_waiter = Some(sender);
                if group.leader.as_deref() == Some(member_id) {
                    let mut assignments: HashMap<String, Bytes> = if group.is_consumer_group() {
                        let shared = self.broker.groups().assignment(group_id);
                        let encoded = group
                            .members
                            .iter()
                            .map(|(id, member)| {
                                let version = group.subscription(member).map_or(0, |s| s.version);
                                let shares = shared.members.get(id).map_or(&[][..], Vec::as_slice);
                                (id.clone(), encode_assignment(version, shares))
                            })
                            .collect();
                        group.core_generation = Some(shared.generation);
                        encoded
                    } else {
                        assignments.into_iter().collect()
                    };
                    for (id, member) in group.members.iter_mut() {
                        member.assignment = assignments.remove(id).unwrap_or_default();
                        if let Some(waiter) = member.sync_waiter.take() {
                            let _ = waiter.send(SyncOutcome { error_code: 0, assignment: member.assignment.clone() });
                        }
                    }
                    group.state = GroupState::Stable;
                }
                Ok(receiver)
            }
        }
    }

    pub fn heartbeat(&self, group_id: &str, generation: i32, member_id: &str, now: Instant) -> i16 {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else { return code(ResponseError::UnknownMemberId) };
        let Some(member) = group.members.get_mut(member_id) else { return code(ResponseError::UnknownMemberId) };
        member.last_seen = now;
        if group.state == GroupState::PreparingRebalance {
            return code(ResponseError::RebalanceInProgress);
        }
        if generation != group.generation {
            return code(ResponseError::IllegalGeneration);
        }
        // A consumer group rejoins when the shared membership moved on without it (an HTTP
        // member joined, left or expired). The call also expires silent HTTP members.
        if group.is_consumer_group() {
            let core_generation = self.broker.groups().kafka_heartbeat(group_id, member_id);
            if group.state == GroupState::Stable && group.core_generation.is_some() && core_generation != group.core_generation {
                tracing::info!(group = group_id, "shared membership changed; kafka members rejoin");
                group.prepare_rebalance(now);
                return code(ResponseError::RebalanceInProgress);
            }
        }
        0
    }

    /// Removes members; one error code per member id, in order.
    pub fn leave(&self, group_id: &str, member_ids: &[String], now: Instant) -> Vec<i16> {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return member_ids.iter().map(|_| code(ResponseError::UnknownMemberId)).collect();
        };
        member_ids
            .iter()
            .map(|member_id| {
                if group.members.contains_key(member_id) {
                    group.remove_member(member_id, now, &self.broker);
                    0
                } else {
                    code(ResponseError::UnknownMemberId)
                }
            })
            .collect()
    }

    /// Whether an OffsetCommit from (`generation`, `member_id`) may commit, as Kafka decides,
    /// and which partitions: commits from outside the group (generation -1, e.g. `assign()`
    /// consumers) only while the group has no members, Kafka or HTTP.
    pub fn check_commit(&self, group_id: &str, generation: i32, member_id: &str) -> Result<CommitScope, i16> {
        let groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            if generation >= 0 {
                return Err(code(ResponseError::IllegalGeneration));
            }
            if self.broker.groups().http_member_count(group_id) > 0 {
                return Err(code(ResponseError::UnknownMemberId));
            }
            return Ok(CommitScope::Outsider);
        };
        if generation < 0 && group.state == GroupState::Empty {
            if self.broker.groups().http_member_count(group_id) > 0 {
                return Err(code(ResponseError::UnknownMemberId));
            }
            return Ok(CommitScope::Outsider);
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(code(ResponseError::RebalanceInProgress));
        }
        if !group.members.contains_key(member_id) {
            return Err(code(ResponseError::UnknownMemberId));
        }
        if generation != group.generation {
            return Err(code(ResponseError::IllegalGeneration));
        }
        Ok(if group.is_consumer_group() { CommitScope::Owner } else { CommitScope::Member })
    }

    /// Expires members whose session timed out and completes rebalances whose timeout passed.
    pub fn sweep(&self, now: Instant) {
        let mut groups = self.lock();
        for group in groups.values_mut() {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, member)| {
                    member.join_waiter.is_none() && now.saturating_duration_since(member.last_seen) > member.session_timeout
                })
                .map(|(member_id, _)| member_id.clone())
                .collect();
            for member_id in expired {
                tracing::info!(member = %member_id, "kafka group member session expired");
                group.remove_member(&member_id, now, &self.broker);
            }
            if group.state == GroupState::PreparingRebalance && now >= group.rebalance_deadline {
                group.maybe_complete_join(now, true, &self.broker);
            }
        }
        groups.retain(|_, group| !(group.state == GroupState::Empty && group.members.is_empty()));
    }

    pub fn group_ids(&self) -> Vec<(String, String)> {
        self.lock().iter().map(|(id, group)| (id.clone(), group.protocol_type.clone())).collect()
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.lock();
        let group = groups.get(group_id)?;
        let members = group
            .members
            .iter()
            .map(|(member_id, member)| MemberDescription {
                member_id: member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                metadata: member
                    .protocols
                    .iter()
                    .find(|(name, _)| *name == group.protocol_name)
                    .map(|(_, m)| m.clone())
                    .unwrap_or_default(),
                assignment: member.assignment.clone(),
            })
            .collect();
        Some(GroupDescription {
            state: group.state,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            members,
        })
    }
}

mod consumer_protocol;
mod group;
#[cfg(test)]
mod tests;
