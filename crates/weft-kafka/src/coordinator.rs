//! The Kafka group coordinator: the classic consumer-group protocol with client-side
//! assignment (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), in memory.
//!
//! States as in Kafka: `Empty` → `PreparingRebalance` (a member joined, left or timed out;
//! every member must rejoin) → `CompletingRebalance` (generation bumped, the leader got the
//! member list with each member's protocol metadata and computes the assignment) → `Stable`
//! (the leader's SyncGroup delivered each member's assignment).
//! A JoinGroup waits until every known member has rejoined or the rebalance timeout passes
//! (members that did not rejoin are removed). A follower's SyncGroup waits for the leader's.
//! Heartbeats during a rebalance get REBALANCE_IN_PROGRESS, from unknown members
//! UNKNOWN_MEMBER_ID, with a wrong generation ILLEGAL_GENERATION. A member silent for its
//! session timeout is removed and the group rebalances.
//!
//! Not here: committed offsets (stored through `weft_core::meta::MetaStore`, shared with HTTP
//! groups, see `groups`); static membership (`group.instance.id` is accepted and echoed, but
//! such members are treated as dynamic); the initial rebalance delay Kafka applies to new groups.
//! Kafka members and HTTP members of a group with the same name do not share partition
//! assignment (each coordinator assigns its own members), only committed offsets.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

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
    state: GroupState,
    generation: i32,
    protocol_type: String,
    protocol_name: String,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    rebalance_deadline: Instant,
}

impl Group {
    fn new(now: Instant) -> Self {
        Self {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol_name: String::new(),
            leader: None,
            members: BTreeMap::new(),
            rebalance_deadline: now,
        }
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
    fn maybe_complete_join(&mut self, now: Instant, force: bool) {
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

    fn remove_member(&mut self, member_id: &str, now: Instant) {
        if self.members.remove(member_id).is_none() {
            return;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            GroupState::PreparingRebalance | GroupState::Empty => {}
        }
        if self.members.is_empty() && self.state != GroupState::PreparingRebalance {
            self.state = GroupState::Empty;
        }
        self.maybe_complete_join(now, false);
    }
}

/// All Kafka consumer groups of this node.
pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    next_member_seq: Mutex<u64>,
}

impl Default for GroupCoordinator {
    fn default() -> Self {
        Self::new()
    }
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

impl GroupCoordinator {
    pub fn new() -> Self {
        Self { groups: Mutex::new(HashMap::new()), next_member_seq: Mutex::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn new_member_id(&self, client_id: &str) -> String {
        let mut seq = self.next_member_seq.lock().unwrap_or_else(|poison| poison.into_inner());
        *seq += 1;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let prefix: String = client_id.chars().take(64).collect();
        format!("{prefix}-{nanos:x}-{:x}", *seq)
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
        let mut groups = self.lock();
        if !groups.contains_key(&request.group_id) && groups.len() >= GROUPS_MAX {
            return Err(fail(ResponseError::GroupMaxSizeReached, &request.member_id));
        }
        let group = groups.entry(request.group_id.clone()).or_insert_with(|| Group::new(now));
        if !group.members.is_empty() {
            let supports_common = group.common_protocols().iter().any(|name| request.protocols.iter().any(|(p, _)| p == name));
            if request.protocol_type != group.protocol_type || !supports_common {
                return Err(fail(ResponseError::InconsistentGroupProtocol, &request.member_id));
            }
        }
        let member_id = if request.member_id.is_empty() {
            if group.members.len() >= GROUP_MEMBERS_MAX {
                return Err(fail(ResponseError::GroupMaxSizeReached, ""));
            }
            self.new_member_id(&request.client_id)
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
        group.maybe_complete_join(now, false);
        Ok(receiver)
    }

    /// A member's SyncGroup; the leader's carries everyone's assignment.
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
                    let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
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
                    group.remove_member(member_id, now);
                    0
                } else {
                    code(ResponseError::UnknownMemberId)
                }
            })
            .collect()
    }

    /// Whether an OffsetCommit from (`generation`, `member_id`) may commit, as Kafka decides:
    /// commits from outside the group (generation -1) only while the group has no members.
    pub fn check_commit(&self, group_id: &str, generation: i32, member_id: &str) -> i16 {
        let groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            return if generation < 0 { 0 } else { code(ResponseError::IllegalGeneration) };
        };
        if generation < 0 && group.state == GroupState::Empty {
            return 0;
        }
        if group.state == GroupState::CompletingRebalance {
            return code(ResponseError::RebalanceInProgress);
        }
        if !group.members.contains_key(member_id) {
            return code(ResponseError::UnknownMemberId);
        }
        if generation != group.generation {
            return code(ResponseError::IllegalGeneration);
        }
        0
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
                group.remove_member(&member_id, now);
            }
            if group.state == GroupState::PreparingRebalance && now >= group.rebalance_deadline {
                group.maybe_complete_join(now, true);
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
    use super::*;

    fn join_request(member_id: &str) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
        }
    }

    /// Two members: the first forms generation 1 alone, the second's join starts a
    /// rebalance that the first learns of through its heartbeat, and both end in generation
    /// 2 with the leader's assignment delivered to each.
    #[tokio::test]
    async fn a_second_member_triggers_a_rebalance_both_complete() {
        let coordinator = GroupCoordinator::new();
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
    }

    /// A member that stops heartbeating is removed after its session timeout, and a member
    /// that does not rejoin is dropped when the rebalance timeout passes.
    #[tokio::test]
    async fn silent_members_are_expired() {
        let coordinator = GroupCoordinator::new();
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
        assert_eq!(coordinator.check_commit("g", -1, ""), 0);
    }
}
