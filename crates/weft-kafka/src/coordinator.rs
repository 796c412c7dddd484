//! The Kafka group coordinator: the classic consumer-group protocol (JoinGroup, SyncGroup,
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
//! consumer group of the same name, in `weft_core::group::GroupCoordinator` (the "core"):
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::consumer_protocol_assignment::{ConsumerProtocolAssignment, TopicPartition};
use kafka_protocol::protocol::Encodable;
use tokio::sync::oneshot;
use tokio::time::Instant;
use weft_core::Broker;
use weft_core::group::KafkaMember;

use crate::cluster::str_bytes;

/// Most Kafka groups held in memory.
pub const GROUPS_MAX: usize = 10_000;
/// Most members in one group (Kafka's `group.max.size` default is unbounded; this bounds memory).
pub const GROUP_MEMBERS_MAX: usize = 1_000;
/// Session timeouts accepted (Kafka's `group.min.session.timeout.ms` is 6 s; tests use less).
pub const SESSION_TIMEOUT_MS_MIN: i32 = 1_000;
pub const SESSION_TIMEOUT_MS_MAX: i32 = 1_800_000;
/// Rebalance timeouts are capped at this (a client may send up to `i32::MAX`).
pub const REBALANCE_TIMEOUT_MS_MAX: i32 = 300_000;
/// Longest group id, member id prefix and protocol name accepted.
pub const GROUP_ID_BYTES_MAX: usize = 255;
/// The protocol type of Kafka consumers: such groups share membership and assignment with
/// HTTP groups and are assigned on the server.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
/// Highest ConsumerProtocolAssignment version written (all of 0 to 3 have the same layout).
const ASSIGNMENT_VERSION_MAX: i16 = 3;

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

/// What a `consumer` member subscribed to with one protocol (ConsumerProtocolSubscription).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subscription {
    version: i16,
    topics: BTreeSet<String>,
}

/// Reads the version and the topic list, which start every ConsumerProtocolSubscription
/// version; the later fields (user data, owned partitions, generation, rack) are not needed
/// by the server's assignment. Every length is checked against the bytes left, so a hostile
/// count allocates nothing.
fn decode_subscription(metadata: &[u8]) -> Option<Subscription> {
    fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if buf.len() < n {
            return None;
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Some(head)
    }
    let mut buf = metadata;
    let version = i16::from_be_bytes(take(&mut buf, 2)?.try_into().ok()?);
    let n_topics = i32::from_be_bytes(take(&mut buf, 4)?.try_into().ok()?);
    if version < 0 || n_topics < 0 {
        return None;
    }
    let mut topics = BTreeSet::new();
    for _ in 0..n_topics {
        let length = i16::from_be_bytes(take(&mut buf, 2)?.try_into().ok()?);
        let name = take(&mut buf, usize::try_from(length).ok()?)?;
        topics.insert(std::str::from_utf8(name).ok()?.to_string());
    }
    Some(Subscription { version, topics })
}

/// A member's share as a ConsumerProtocolAssignment (i16 version, then the body).
fn encode_assignment(version: i16, shares: &[(String, Vec<u32>)]) -> Bytes {
    let version = version.clamp(0, ASSIGNMENT_VERSION_MAX);
    let assigned = shares
        .iter()
        .filter(|(_, partitions)| !partitions.is_empty())
        .map(|(topic, partitions)| {
            TopicPartition::default()
                .with_topic(TopicName(str_bytes(topic.as_str())))
                .with_partitions(partitions.iter().map(|&p| p as i32).collect())
        })
        .collect();
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(assigned);
    let mut out = BytesMut::new();
    out.put_i16(version);
    assignment.encode(&mut out, version).expect("a consumer assignment encodes at versions 0 to 3");
    out.freeze()
}

struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    last_seen: Instant,
    assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

struct Group {
    id: String,
    state: GroupState,
    generation: i32,
    protocol_type: String,
    protocol_name: String,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    rebalance_deadline: Instant,
    /// The core generation the members' assignments were computed at (consumer groups, once
    /// synced); when the core moves past it, the members must rejoin.
    core_generation: Option<u64>,
}

impl Group {
    fn new(id: String, now: Instant) -> Self {
        Self {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol_name: String::new(),
            leader: None,
            members: BTreeMap::new(),
            rebalance_deadline: now,
            core_generation: None,
        }
    }

    fn is_consumer_group(&self) -> bool {
        self.protocol_type == CONSUMER_PROTOCOL_TYPE
    }

    /// The member's subscription for the group's chosen protocol (checked at join).
    fn subscription(&self, member: &Member) -> Option<Subscription> {
        member.protocols.iter().find(|(name, _)| *name == self.protocol_name).and_then(|(_, metadata)| decode_subscription(metadata))
    }

    /// Registers the members and their subscribed streams in the core (or none, for groups
    /// that are not consumer groups), so the core's assignment covers them.
    fn publish_members(&mut self, broker: &Broker) {
        let members: Vec<KafkaMember> = if self.is_consumer_group() {
            self.members
                .iter()
                .map(|(member_id, member)| {
                    let topics = self.subscription(member).map(|s| s.topics).unwrap_or_default();
                    // Topics that are not streams get no partitions, as a Kafka assignor skips
                    // topics without metadata.
                    let streams = topics
                        .into_iter()
                        .filter_map(|topic| broker.stream(&topic).ok().map(|stream| (topic, stream.n_partitions())))
                        .collect();
                    KafkaMember { member: member_id.clone(), streams, session_timeout_ms: member.session_timeout.as_millis() as i64 }
                })
                .collect()
        } else {
            Vec::new()
        };
        broker.groups().set_kafka_members(&self.id, &members);
        self.core_generation = None;
    }

    /// Protocols every member supports, in the first member's order of preference.
    fn common_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else { return Vec::new() };
        let mut common: Vec<String> = first.protocols.iter().map(|(name, _)| name.clone()).collect();
        for member in members {
            common.retain(|name| member.protocols.iter().any(|(other, _)| other == name));
        }
        common
    }

    /// Starts a rebalance: every member must rejoin. Followers waiting in SyncGroup are told.
    fn prepare_rebalance(&mut self, now: Instant) {
        let rebalance_timeout = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = now + rebalance_timeout;
        for member in self.members.values_mut() {
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(SyncOutcome { error_code: ResponseError::RebalanceInProgress.code(), ..Default::default() });
            }
        }
    }

    /// Completes the join phase once every member has rejoined, or when `force` (the
    /// rebalance timeout passed) after removing the members that did not.
    fn maybe_complete_join(&mut self, now: Instant, force: bool, broker: &Broker) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|member| member.join_waiter.is_some());
        if !all_joined && !force {
            return;
        }
        self.members.retain(|_, member| member.join_waiter.is_some());
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.leader = None;
            self.protocol_name.clear();
            self.publish_members(broker);
            return;
        }
        let candidates = self.common_protocols();
        // Each member votes for its most preferred candidate; most votes wins, ties go to
        // the candidate listed first.
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|name| (name.clone(), 0)).collect();
        for member in self.members.values() {
            if let Some((name, _)) = member.protocols.iter().find(|(name, _)| candidates.contains(name)) {
                votes.iter_mut().find(|(candidate, _)| candidate == name).expect("a candidate").1 += 1;
            }
        }
        let chosen = votes.iter().fold(None::<&(String, usize)>, |best, vote| match best {
            Some(best) if best.1 >= vote.1 => Some(best),
            _ => Some(vote),
        });
        self.protocol_name = chosen.map(|(name, _)| name.clone()).unwrap_or_default();
        if self.leader.as_ref().is_none_or(|leader| !self.members.contains_key(leader)) {
            self.leader = self.members.keys().next().cloned();
        }
        let leader = self.leader.clone().expect("a group with members has a leader");
        self.state = GroupState::CompletingRebalance;
        self.publish_members(broker);
        let member_list: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|(member_id, member)| {
                let metadata =
                    member.protocols.iter().find(|(name, _)| *name == self.protocol_name).map(|(_, m)| m.clone()).unwrap_or_default();
                (member_id.clone(), member.group_instance_id.clone(), metadata)
            })
            .collect();
        for (member_id, member) in self.members.iter_mut() {
            member.assignment = Bytes::new();
            member.last_seen = now;
            let outcome = JoinOutcome {
                error_code: 0,
                generation: self.generation,
                protocol_name: self.protocol_name.clone(),
                leader: leader.clone(),
                member_id: member_id.clone(),
                members: if *member_id == leader { member_list.clone() } else { Vec::new() },
            };
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(outcome);
            }
        }
    }

    fn remove_member(&mut self, member_id: &str, now: Instant, broker: &Broker) {
        if self.members.remove(member_id).is_none() {
            return;
        }
        // Its partitions move to the other members (HTTP ones at once) without waiting for
        // the rest of the Kafka group to rejoin.
        broker.groups().remove_kafka_member(&self.id, member_id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            GroupState::PreparingRebalance | GroupState::Empty => {}
        }
        if self.members.is_empty() && self.state != GroupState::PreparingRebalance {
            self.state = GroupState::Empty;
        }
        self.maybe_complete_join(now, false, broker);
    }
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
pub struct GroupCoordinator {
    broker: Arc<Broker>,
    groups: Mutex<HashMap<String, Group>>,
    next_member_seq: Mutex<u64>,
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

impl GroupCoordinator {
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
        if request.group_id.is_empty() || request.group_id.len() > GROUP_ID_BYTES_MAX {
            return Err(fail(ResponseError::InvalidGroupId, &request.member_id));
        }
        if !(SESSION_TIMEOUT_MS_MIN..=SESSION_TIMEOUT_MS_MAX).contains(&request.session_timeout_ms) {
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

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    use weft_core::group::OffsetReset;
    use weft_core::stream::StreamConfig;

    use super::*;

    fn broker() -> (tempfile::TempDir, Arc<Broker>) {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path(), Arc::new(weft_log::SystemClock)).unwrap();
        (dir, broker)
    }

    fn create_stream(broker: &Broker, name: &str, partitions: u32) -> Arc<weft_core::stream::Stream> {
        broker
            .create_stream(StreamConfig {
                name: name.into(),
                partitions,
                key: None,
                retention_ms: None,
                retention_bytes: None,
                fsync: weft_log::FsyncPolicy::Never,
                segment_bytes: weft_log::SEGMENT_BYTES_DEFAULT,
                created_at_ms: 0,
            })
            .unwrap()
    }

    /// A join of a group that assigns on the client (protocol type `connect`).
    fn join_request(member_id: &str) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "connect".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
        }
    }

    fn subscription(version: i16, topics: &[&str]) -> Bytes {
        let subscription = ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|&t| str_bytes(t)).collect());
        let mut out = BytesMut::new();
        out.put_i16(version);
        subscription.encode(&mut out, version).unwrap();
        out.freeze()
    }

    fn consumer_join(member_id: &str, topics: &[&str]) -> JoinRequest {
        JoinRequest {
            protocol_type: CONSUMER_PROTOCOL_TYPE.into(),
            protocols: vec![("range".into(), subscription(1, topics)), ("roundrobin".into(), subscription(1, topics))],
            ..join_request(member_id)
        }
    }

    /// (version, [(topic, partitions)]) of an encoded ConsumerProtocolAssignment.
    fn decode_assignment(bytes: &Bytes) -> (i16, Vec<(String, Vec<i32>)>) {
        let mut buf = bytes.clone();
        let version = i16::from_be_bytes([buf[0], buf[1]]);
        bytes::Buf::advance(&mut buf, 2);
        let assignment = ConsumerProtocolAssignment::decode(&mut buf, version).unwrap();
        let topics = assignment.assigned_partitions.into_iter().map(|tp| (tp.topic.0.to_string(), tp.partitions)).collect();
        (version, topics)
    }

    /// Two members: the first forms generation 1 alone, the second's join starts a
    /// rebalance that the first learns of through its heartbeat, and both end in generation
    /// 2 with the leader's assignment delivered to each (client-side assignment).
    #[tokio::test]
    async fn a_second_member_triggers_a_rebalance_both_complete() {
        let (_dir, broker) = broker();
        let coordinator = GroupCoordinator::new(broker);
        let now = Instant::now();
        let first = coordinator.join(join_request(""), now).unwrap().await.unwrap();
        assert_eq!((first.generation, first.leader == first.member_id, first.members.len()), (1, true, 1));
        let sync = coordinator.sync("g", 1, &first.member_id, vec![(first.member_id.clone(), Bytes::from_static(b"all"))], now);
        assert_eq!(sync.unwrap().await.unwrap().assignment, Bytes::from_static(b"all"));

        let mut second = coordinator.join(join_request(""), now).unwrap();
        assert!(second.try_recv().is_err(), "the join waits for the first member to rejoin");
        assert_eq!(coordinator.heartbeat("g", 1, &first.member_id, now), ResponseError::RebalanceInProgress.code());
        let first_again = coordinator.join(join_request(&first.member_id), now).unwrap().await.unwrap();
        let second = second.await.unwrap();
        assert_eq!((first_again.generation, second.generation), (2, 2));
        assert_eq!(first_again.members.len(), 2);
        assert!(second.members.is_empty());
        let mut follower_sync = coordinator.sync("g", 2, &second.member_id, vec![], now).unwrap();
        assert!(follower_sync.try_recv().is_err(), "the follower waits for the leader");
        let assignments = vec![(first.member_id.clone(), Bytes::from_static(b"a")), (second.member_id.clone(), Bytes::from_static(b"b"))];
        let leader_sync = coordinator.sync("g", 2, &first.member_id, assignments, now).unwrap().await.unwrap();
        assert_eq!(leader_sync.assignment, Bytes::from_static(b"a"));
        assert_eq!(follower_sync.await.unwrap().assignment, Bytes::from_static(b"b"));
        assert_eq!(coordinator.heartbeat("g", 1, &second.member_id, now), ResponseError::IllegalGeneration.code());
        assert_eq!(coordinator.heartbeat("g", 2, "nobody", now), ResponseError::UnknownMemberId.code());
        assert_eq!(coordinator.heartbeat("g", 2, &second.member_id, now), 0);
        assert_eq!(coordinator.check_commit("g", 2, &second.member_id), Ok(CommitScope::Member));
    }

    /// A member that stops heartbeating is removed after its session timeout, and a member
    /// that does not rejoin is dropped when the rebalance timeout passes.
    #[tokio::test]
    async fn silent_members_are_expired() {
        let (_dir, broker) = broker();
        let coordinator = GroupCoordinator::new(broker);
        let start = Instant::now();
        let first = coordinator.join(join_request(""), start).unwrap().await.unwrap();
        coordinator.sync("g", 1, &first.member_id, vec![], start).unwrap().await.unwrap();
        let mut second = coordinator.join(join_request(""), start).unwrap();
        coordinator.sweep(start + Duration::from_secs(5));
        assert!(second.try_recv().is_err());
        coordinator.sweep(start + Duration::from_secs(11));
        let second = second.await.unwrap();
        assert_eq!((second.generation, second.leader == second.member_id), (2, true));
        assert_eq!(coordinator.heartbeat("g", 2, &first.member_id, start), ResponseError::UnknownMemberId.code());
        assert_eq!(coordinator.leave("g", std::slice::from_ref(&second.member_id), start), vec![0]);
        assert_eq!(coordinator.describe("g").unwrap().state, GroupState::Empty);
        assert_eq!(coordinator.check_commit("g", -1, ""), Ok(CommitScope::Outsider));
    }

    /// Proves server-side assignment shared with HTTP members: a Kafka consumer joining a
    /// group whose HTTP member owns a four-partition stream gets two partitions (the leader's
    /// proposal is ignored) encoded at its subscription's version, the HTTP member keeps the
    /// other two; when the HTTP member leaves, the next heartbeat answers
    /// REBALANCE_IN_PROGRESS and the rejoined member gets all four. Commits from the member
    /// are checked against the shared ownership, and outsiders may not commit while the group
    /// has HTTP members.
    #[tokio::test]
    async fn a_kafka_consumer_shares_partitions_with_an_http_member() {
        let (_dir, broker) = broker();
        let stream = create_stream(&broker, "orders", 4);
        let coordinator = GroupCoordinator::new(Arc::clone(&broker));
        let now = Instant::now();
        broker.groups().poll("g", &stream, "http-a", 10_000, OffsetReset::Earliest).unwrap();
        assert_eq!(coordinator.check_commit("g", -1, ""), Err(ResponseError::UnknownMemberId.code()));

        let joined = coordinator.join(consumer_join("", &["orders", "not-a-stream"]), now).unwrap().await.unwrap();
        assert_eq!((joined.generation, joined.protocol_name.as_str()), (1, "range"));
        let proposal = vec![(joined.member_id.clone(), Bytes::from_static(b"ignored"))];
        let synced = coordinator.sync("g", 1, &joined.member_id, proposal, now).unwrap().await.unwrap();
        // Round robin by sorted member id: "c-..." (the Kafka member) before "http-a".
        assert_eq!(decode_assignment(&synced.assignment), (1, vec![("orders".to_string(), vec![0, 2])]));
        let http = broker.groups().poll("g", &stream, "http-a", 10_000, OffsetReset::Earliest).unwrap();
        assert_eq!(http.positions.iter().map(|&(p, _)| p).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(coordinator.heartbeat("g", 1, &joined.member_id, now), 0, "an http poll that changes nothing does not rebalance");

        assert_eq!(coordinator.check_commit("g", 1, &joined.member_id), Ok(CommitScope::Owner));
        assert!(broker.groups().owns("g", "orders", 2, &joined.member_id));
        assert!(!broker.groups().owns("g", "orders", 3, &joined.member_id));

        assert!(broker.groups().leave("g", "http-a"));
        assert_eq!(coordinator.heartbeat("g", 1, &joined.member_id, now), ResponseError::RebalanceInProgress.code());
        let rejoined = coordinator.join(consumer_join(&joined.member_id, &["orders"]), now).unwrap().await.unwrap();
        assert_eq!(rejoined.generation, 2);
        let synced = coordinator.sync("g", 2, &joined.member_id, vec![], now).unwrap().await.unwrap();
        assert_eq!(decode_assignment(&synced.assignment).1, [("orders".to_string(), vec![0, 1, 2, 3])]);
        assert_eq!(coordinator.heartbeat("g", 2, &joined.member_id, now), 0);

        // Leaving removes it from the shared membership at once.
        assert_eq!(coordinator.leave("g", std::slice::from_ref(&joined.member_id), now), vec![0]);
        assert!(!broker.groups().is_member("g", &joined.member_id));
        assert_eq!(coordinator.check_commit("g", -1, ""), Ok(CommitScope::Outsider));
    }

    /// A consumer-group join whose subscription metadata cannot be read is refused (the server
    /// assigns from it), and the subscription decoder bounds hostile counts by the bytes left.
    #[tokio::test]
    async fn unreadable_subscriptions_are_refused() {
        let (_dir, broker) = broker();
        let coordinator = GroupCoordinator::new(broker);
        let mut request = consumer_join("", &["orders"]);
        request.protocols = vec![("range".into(), Bytes::from_static(b"m"))];
        let refused = coordinator.join(request, Instant::now()).unwrap_err();
        assert_eq!(refused.error_code, ResponseError::InconsistentGroupProtocol.code());
        assert_eq!(decode_subscription(&[0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 1, b'a']), None);
        assert_eq!(decode_subscription(&[0, 3, 0, 0, 0, 1, 0, 1, b'a', 0xde, 0xad]).map(|s| (s.version, s.topics.len())), Some((3, 1)));
    }
}
