//! Consumer groups: members share a stream's partitions and commit their progress.
//!
//! A group has two kinds of members, and they are one membership: HTTP members join by
//! polling (`poll`), Kafka members are registered by the Kafka listener's coordinator when a
//! JoinGroup round completes (`set_kafka_members`). Partitions of each stream are spread round
//! robin over the members subscribed to it, whatever their kind, sorted by member id, and
//! re-spread (a new generation) whenever a member joins, leaves, changes its subscription or
//! misses its session timeout. The Kafka listener answers each Kafka member's SyncGroup with
//! the share computed here, not with the group leader's proposal, and asks its members to
//! rejoin when the generation moves past the one they synced; HTTP members simply see their
//! new share on their next poll.
//!
//! A partition that changes owner restarts from the group's committed offset, so delivery is
//! at least once: until a Kafka member has rejoined, it may still read a partition this
//! coordinator already gave an HTTP member. Commits are accepted only from the member that
//! owns the partition now (Kafka's rule), so a member that lost a partition in a rebalance
//! cannot move the group backwards or forwards behind the new owner's back.
//!
//! Liveness: HTTP members expire here after their session timeout (checked whenever the
//! group is touched, including by Kafka heartbeats); Kafka members never expire here, the
//! Kafka coordinator owns their liveness and removes them (`remove_kafka_member`,
//! `set_kafka_members`). An HTTP member cannot take a Kafka member's id, and HTTP `leave`
//! removes only HTTP members.
//!
//! Committed offsets live in the metadata store; everything else (members, assignment, fetch
//! positions) is in memory and rebuilt as members poll or rejoin.
//!
//! Limits: `GROUP_MEMBERS_MAX` members per group, checked against both kinds when a member
//! joins (a race between the two edges can overshoot it by the Kafka members joining at that
//! moment, themselves at most the Kafka listener's own per-group limit); `GROUPS_MAX` groups
//! created by HTTP polls (Kafka-created groups are bounded by the listener's own group limit);
//! groups without members are dropped when the limit is reached; session timeouts
//! `SESSION_TIMEOUT_MS_MIN` to `SESSION_TIMEOUT_MS_MAX`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use weft_log::Clock;

use crate::error::{Error, Kind, codes};
use crate::meta::MetaStore;
use crate::stream::Stream;

// One set of group limits for every edge: the HTTP API and the Kafka listener share groups,
// so they enforce the same bounds (the Kafka listener converts them to its i32 fields).

/// Session timeout of an HTTP member that does not ask for one (Kafka clients always send one).
pub const SESSION_TIMEOUT_MS_DEFAULT: i64 = 10_000;
/// Shortest session timeout accepted (Kafka's `group.min.session.timeout.ms` is 6 s; tests use less).
pub const SESSION_TIMEOUT_MS_MIN: i64 = 1_000;
/// Longest session timeout accepted: Kafka's `group.max.session.timeout.ms` default, 30 minutes.
pub const SESSION_TIMEOUT_MS_MAX: i64 = 1_800_000;
/// Most members in one group, HTTP and Kafka together (Kafka's `group.max.size` is unbounded
/// by default; this bounds memory).
pub const GROUP_MEMBERS_MAX: usize = 1_000;
/// Most groups a broker holds in memory, per edge.
pub const GROUPS_MAX: usize = 10_000;
/// Longest group id, member id or protocol name, in bytes.
pub const GROUP_NAME_BYTES_MAX: usize = 255;

/// Where a member starts in a partition the group has never committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
}

/// A member's share of a stream after joining or polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub generation: u64,
    /// Owned partitions with the offset to read next.
    pub positions: Vec<(u32, u64)>,
}

/// How a member joined: by polling over HTTP or through the Kafka group protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    Http,
    Kafka,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Kafka => "kafka",
        }
    }
}

/// A Kafka member as the Kafka listener registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaMember {
    pub member: String,
    /// The existing streams it subscribed to, with their partition counts.
    pub streams: Vec<(String, u32)>,
    pub session_timeout_ms: i64,
}

/// Every member's share of the group at one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAssignment {
    pub generation: u64,
    /// Member id to (stream, owned partitions), for every stream it subscribed to.
    pub members: BTreeMap<String, Vec<(String, Vec<u32>)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member: String,
    pub kind: MemberKind,
    pub partitions: Vec<u32>,
    pub last_seen_ms: i64,
    pub session_timeout_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionProgress {
    pub partition: u32,
    pub owner: Option<String>,
    pub committed: Option<u64>,
    pub end_offset: u64,
    pub lag: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    pub stream: String,
    pub generation: u64,
    pub members: Vec<MemberDescription>,
    pub partitions: Vec<PartitionProgress>,
}

struct Member {
    kind: MemberKind,
    streams: BTreeSet<String>,
    last_seen_ms: i64,
    session_timeout_ms: i64,
}

#[derive(Default)]
struct Group {
    generation: u64,
    members: BTreeMap<String, Member>,
    /// Partition counts of the streams members subscribed to.
    stream_partitions: BTreeMap<String, u32>,
    owners: HashMap<(String, u32), String>,
    /// Fetch positions of owned partitions: where the owner's next poll continues.
    positions: HashMap<(String, u32), u64>,
}

impl Group {
    /// Removes HTTP members silent for longer than their session timeout. Kafka members are
    /// the Kafka coordinator's to expire.
    fn expire(&mut self, now_ms: i64) -> bool {
        let before = self.members.len();
        self.members.retain(|_, member| member.is_live(now_ms));
        before != self.members.len()
    }

    /// Expires silent HTTP members and, if any left, rebalances.
    fn expire_and_rebalance(&mut self, now_ms: i64) {
        if self.expire(now_ms) {
            self.rebalance();
        }
    }

    fn rebalance(&mut self) {
        self.generation += 1;
        let mut owners = HashMap::new();
        for (stream, &n_partitions) in &self.stream_partitions {
            let subscribed: Vec<&String> = self.members.iter().filter(|(_, m)| m.streams.contains(stream)).map(|(id, _)| id).collect();
            if subscribed.is_empty() {
                continue;
            }
            for partition in 0..n_partitions {
                owners.insert((stream.clone(), partition), subscribed[partition as usize % subscribed.len()].clone());
            }
        }
        // A partition keeps its fetch position only if its owner did not change.
        self.positions.retain(|key, _| owners.get(key) == self.owners.get(key));
        self.owners = owners;
    }

    fn owned(&self, stream: &str, member: &str, n_partitions: u32) -> Vec<u32> {
        (0..n_partitions).filter(|&p| self.owners.get(&(stream.to_string(), p)).is_some_and(|owner| owner == member)).collect()
    }
}

impl Member {
    fn is_live(&self, now_ms: i64) -> bool {
        self.kind == MemberKind::Kafka || now_ms - self.last_seen_ms <= self.session_timeout_ms
    }
}

pub struct GroupCoordinator {
    meta: Arc<MetaStore>,
    clock: Arc<dyn Clock>,
    groups: Mutex<HashMap<String, Group>>,
}

pub fn check_group_name(kind: &str, name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name.len() <= GROUP_NAME_BYTES_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'@'));
    if valid {
        return Ok(());
    }
    let code = if kind == "member" { codes::GROUP_INVALID_MEMBER } else { codes::GROUP_INVALID_NAME };
    Err(Error::invalid(
        code,
        format!("{kind} name must be 1 to {GROUP_NAME_BYTES_MAX} characters of A-Z, a-z, 0-9, '.', '_', '-', ':' and '@'"),
    )
    .with_path(format!("/{kind}")))
}

impl GroupCoordinator {
    pub fn new(meta: Arc<MetaStore>, clock: Arc<dyn Clock>) -> Self {
        Self { meta, clock, groups: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Joins (or keeps alive) `member` in `group` for `stream` and returns the partitions it
    /// owns with the offsets to read next.
    pub fn poll(
        &self,
        group_name: &str,
        stream: &Stream,
        member_id: &str,
        session_timeout_ms: i64,
        reset: OffsetReset,
    ) -> Result<Assignment, Error> {
        check_group_name("group", group_name)?;
        check_group_name("member", member_id)?;
        let session_timeout_ms = session_timeout_ms.clamp(SESSION_TIMEOUT_MS_MIN, SESSION_TIMEOUT_MS_MAX);
        let now_ms = self.clock.now_ms();
        let mut groups = self.lock();
        if !groups.contains_key(group_name) && groups.len() >= GROUPS_MAX {
            drop_groups_without_members(&mut groups, now_ms);
        }
        if !groups.contains_key(group_name) && groups.len() >= GROUPS_MAX {
            return Err(Error::new(
                Kind::Conflict,
                codes::GROUP_LIMIT_REACHED,
                format!("a broker holds at most {GROUPS_MAX} active groups"),
            ));
        }
        let group = groups.entry(group_name.to_string()).or_default();
        let mut changed = group.expire(now_ms);
        group.stream_partitions.insert(stream.name().to_string(), stream.n_partitions());
        match group.members.get_mut(member_id) {
            Some(member) if member.kind == MemberKind::Kafka => {
                return Err(Error::new(
                    Kind::Conflict,
                    codes::GROUP_MEMBER_IN_USE,
                    format!("member {member_id} of group {group_name} is a Kafka consumer; choose another member name"),
                )
                .with_path("/member"));
            }
            Some(member) => {
                member.last_seen_ms = now_ms;
                member.session_timeout_ms = session_timeout_ms;
                changed |= member.streams.insert(stream.name().to_string());
            }
            None => {
                if group.members.len() >= GROUP_MEMBERS_MAX {
                    return Err(Error::new(
                        Kind::Conflict,
                        codes::GROUP_LIMIT_REACHED,
                        format!("a group holds at most {GROUP_MEMBERS_MAX} members"),
                    ));
                }
                let streams = BTreeSet::from([stream.name().to_string()]);
                let member = Member { kind: MemberKind::Http, streams, last_seen_ms: now_ms, session_timeout_ms };
                group.members.insert(member_id.to_string(), member);
                changed = true;
            }
        }
        if changed {
            group.rebalance();
            tracing::info!(group = group_name, generation = group.generation, n_members = group.members.len(), "group rebalanced");
        }
        let owned = group.owned(stream.name(), member_id, stream.n_partitions());
        let missing: Vec<u32> = owned.iter().copied().filter(|&p| !group.positions.contains_key(&(stream.name().to_string(), p))).collect();
        if !missing.is_empty() {
            let committed = self.meta.committed_offsets(group_name, stream.name())?;
            for partition in missing {
                let stats = stream.partition(partition)?.stats();
                let start = match (committed.get(&partition), reset) {
                    (Some(&offset), _) => offset.clamp(stats.log_start_offset, stats.visible_next_offset),
                    (None, OffsetReset::Earliest) => stats.log_start_offset,
                    (None, OffsetReset::Latest) => stats.visible_next_offset,
                };
                group.positions.insert((stream.name().to_string(), partition), start);
            }
        }
        let positions = owned.iter().map(|&p| (p, group.positions[&(stream.name().to_string(), p)])).collect();
        Ok(Assignment { generation: group.generation, positions })
    }

    /// Moves the member's fetch positions past what it was just given, for the partitions it
    /// still owns.
    pub fn advance(&self, group_name: &str, stream: &str, member_id: &str, next_offsets: &[(u32, u64)]) {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_name) else { return };
        for &(partition, next_offset) in next_offsets {
            let key = (stream.to_string(), partition);
            if group.owners.get(&key).is_some_and(|owner| owner == member_id) {
                group.positions.insert(key, next_offset);
            }
        }
    }

    /// Commits offsets (the next offset to read, as in Kafka) for partitions the member owns.
    pub fn commit(&self, group_name: &str, stream: &Stream, member_id: &str, offsets: &[(u32, u64)]) -> Result<(), Error> {
        check_group_name("group", group_name)?;
        check_group_name("member", member_id)?;
        let now_ms = self.clock.now_ms();
        {
            let mut groups = self.lock();
            let group = groups.get_mut(group_name);
            let Some(group) = group else {
                return Err(not_owned(group_name, member_id, offsets.first().map_or(0, |o| o.0)));
            };
            group.expire_and_rebalance(now_ms);
            for &(partition, offset) in offsets {
                let stats = stream.partition(partition)?.stats();
                let key = (stream.name().to_string(), partition);
                if group.owners.get(&key).is_none_or(|owner| owner != member_id) {
                    return Err(not_owned(group_name, member_id, partition));
                }
                if offset > stats.visible_next_offset {
                    return Err(Error::new(
                        Kind::OutOfRange,
                        codes::OFFSET_OUT_OF_RANGE,
                        format!("offset {offset} is past the end of partition {partition} ({})", stats.visible_next_offset),
                    )
                    .with_path(format!("/offsets/{partition}")));
                }
            }
            if let Some(member) = group.members.get_mut(member_id) {
                member.last_seen_ms = now_ms;
            }
        }
        self.meta.commit_offsets(group_name, stream.name(), offsets)
    }

    /// Removes an HTTP member at once, so its partitions move without waiting for the
    /// timeout. Kafka members leave through the Kafka protocol, so they are not removed here.
    pub fn leave(&self, group_name: &str, member_id: &str) -> bool {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_name) else { return false };
        if !group.members.get(member_id).is_some_and(|m| m.kind == MemberKind::Http) {
            return false;
        }
        group.members.remove(member_id);
        group.rebalance();
        true
    }

    /// Makes `members` the group's Kafka members: adds new ones, updates subscriptions and
    /// session timeouts, and removes Kafka members not listed. Rebalances only if membership
    /// or subscriptions changed. Returns the group's generation (0 for a group that does not
    /// exist and gets no members). An id held by an HTTP member is not taken over (the Kafka
    /// coordinator never hands out such ids, see `is_member`); that member gets no share.
    pub fn set_kafka_members(&self, group_name: &str, members: &[KafkaMember]) -> u64 {
        let now_ms = self.clock.now_ms();
        let mut groups = self.lock();
        if members.is_empty() && !groups.contains_key(group_name) {
            return 0;
        }
        let group = groups.entry(group_name.to_string()).or_default();
        let mut changed = group.expire(now_ms);
        let listed: BTreeSet<&str> = members.iter().map(|m| m.member.as_str()).collect();
        group.members.retain(|id, member| {
            let keep = member.kind == MemberKind::Http || listed.contains(id.as_str());
            changed |= !keep;
            keep
        });
        for kafka_member in members {
            for (stream, n_partitions) in &kafka_member.streams {
                changed |= group.stream_partitions.insert(stream.clone(), *n_partitions) != Some(*n_partitions);
            }
            let streams: BTreeSet<String> = kafka_member.streams.iter().map(|(stream, _)| stream.clone()).collect();
            let session_timeout_ms = kafka_member.session_timeout_ms;
            match group.members.get_mut(&kafka_member.member) {
                Some(member) if member.kind == MemberKind::Http => {
                    tracing::warn!(group = group_name, member = %kafka_member.member, "kafka member id held by an http member");
                }
                Some(member) => {
                    changed |= member.streams != streams;
                    member.streams = streams;
                    member.last_seen_ms = now_ms;
                    member.session_timeout_ms = session_timeout_ms;
                }
                None => {
                    let member = Member { kind: MemberKind::Kafka, streams, last_seen_ms: now_ms, session_timeout_ms };
                    group.members.insert(kafka_member.member.clone(), member);
                    changed = true;
                }
            }
        }
        if changed {
            group.rebalance();
            tracing::info!(group = group_name, generation = group.generation, n_members = group.members.len(), "group rebalanced");
        }
        let generation = group.generation;
        if group.members.is_empty() {
            groups.remove(group_name);
        }
        generation
    }

    /// Removes a Kafka member at once (it left or its session expired in the Kafka
    /// coordinator), so its partitions move to the other members.
    pub fn remove_kafka_member(&self, group_name: &str, member_id: &str) {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_name) else { return };
        if group.members.get(member_id).is_some_and(|m| m.kind == MemberKind::Kafka) {
            group.members.remove(member_id);
            group.rebalance();
            tracing::info!(group = group_name, generation = group.generation, n_members = group.members.len(), "group rebalanced");
        }
    }

    /// Every member's share now (after expiring silent HTTP members), with the generation it
    /// belongs to.
    pub fn assignment(&self, group_name: &str) -> GroupAssignment {
        let now_ms = self.clock.now_ms();
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_name) else {
            return GroupAssignment { generation: 0, members: BTreeMap::new() };
        };
        group.expire_and_rebalance(now_ms);
        let members = group
            .members
            .iter()
            .map(|(id, member)| {
                let shares = member
                    .streams
                    .iter()
                    .map(|stream| {
                        let n_partitions = group.stream_partitions.get(stream).copied().unwrap_or(0);
                        (stream.clone(), group.owned(stream, id, n_partitions))
                    })
                    .collect();
                (id.clone(), shares)
            })
            .collect();
        GroupAssignment { generation: group.generation, members }
    }

    /// A Kafka member's heartbeat: keeps its `last_seen` current, expires silent HTTP members,
    /// and returns the group's generation (`None` if the group does not exist), which the Kafka
    /// coordinator compares with the generation its members synced.
    pub fn kafka_heartbeat(&self, group_name: &str, member_id: &str) -> Option<u64> {
        let now_ms = self.clock.now_ms();
        let mut groups = self.lock();
        let group = groups.get_mut(group_name)?;
        group.expire_and_rebalance(now_ms);
        if let Some(member) = group.members.get_mut(member_id).filter(|m| m.kind == MemberKind::Kafka) {
            member.last_seen_ms = now_ms;
        }
        Some(group.generation)
    }

    /// Whether `member_id` is a live member of the group, of either kind.
    pub fn is_member(&self, group_name: &str, member_id: &str) -> bool {
        let now_ms = self.clock.now_ms();
        self.lock().get(group_name).and_then(|g| g.members.get(member_id)).is_some_and(|m| m.is_live(now_ms))
    }

    /// Live HTTP members of the group (Kafka members are counted by the Kafka coordinator).
    pub fn http_member_count(&self, group_name: &str) -> usize {
        let now_ms = self.clock.now_ms();
        self.lock().get(group_name).map_or(0, |g| g.members.values().filter(|m| m.kind == MemberKind::Http && m.is_live(now_ms)).count())
    }

    /// Whether `member_id` owns `partition` of `stream` now: the check behind Kafka commits.
    pub fn owns(&self, group_name: &str, stream: &str, partition: u32, member_id: &str) -> bool {
        let now_ms = self.clock.now_ms();
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_name) else { return false };
        group.expire_and_rebalance(now_ms);
        group.owners.get(&(stream.to_string(), partition)).is_some_and(|owner| owner == member_id)
    }

    /// Every (group, stream) with a live member subscribed to it now. Groups that only commit
    /// (the Kafka listener's) are in the metadata store's committed offsets instead.
    pub fn subscriptions(&self) -> Vec<(String, String)> {
        let now_ms = self.clock.now_ms();
        let groups = self.lock();
        let mut subscriptions: BTreeSet<(String, String)> = BTreeSet::new();
        for (group_name, group) in groups.iter() {
            for member in group.members.values().filter(|m| m.is_live(now_ms)) {
                subscriptions.extend(member.streams.iter().map(|stream| (group_name.clone(), stream.clone())));
            }
        }
        subscriptions.into_iter().collect()
    }

    pub fn describe(&self, group_name: &str, stream: &Stream) -> Result<GroupDescription, Error> {
        check_group_name("group", group_name)?;
        let now_ms = self.clock.now_ms();
        let committed = self.meta.committed_offsets(group_name, stream.name())?;
        let mut groups = self.lock();
        let group = groups.get_mut(group_name);
        let Some(group) = group.filter(|g| !g.members.is_empty()).or(None) else {
            if committed.is_empty() {
                return Err(Error::new(
                    Kind::NotFound,
                    codes::GROUP_NOT_FOUND,
                    format!("group {group_name:?} has no members and no commits on stream {}", stream.name()),
                ));
            }
            return Ok(describe_partitions(group_name, stream, 0, Vec::new(), &HashMap::new(), &committed));
        };
        group.expire_and_rebalance(now_ms);
        let members = group
            .members
            .iter()
            .filter(|(_, m)| m.streams.contains(stream.name()))
            .map(|(id, m)| MemberDescription {
                member: id.clone(),
                kind: m.kind,
                partitions: group.owned(stream.name(), id, stream.n_partitions()),
                last_seen_ms: m.last_seen_ms,
                session_timeout_ms: m.session_timeout_ms,
            })
            .collect();
        Ok(describe_partitions(group_name, stream, group.generation, members, &group.owners, &committed))
    }
}

fn describe_partitions(
    group: &str,
    stream: &Stream,
    generation: u64,
    members: Vec<MemberDescription>,
    owners: &HashMap<(String, u32), String>,
    committed: &BTreeMap<u32, u64>,
) -> GroupDescription {
    let partitions = stream
        .stats()
        .into_iter()
        .enumerate()
        .map(|(partition, stats)| {
            let partition = partition as u32;
            let committed_offset = committed.get(&partition).copied();
            let from = committed_offset.unwrap_or(stats.log_start_offset).max(stats.log_start_offset);
            PartitionProgress {
                partition,
                owner: owners.get(&(stream.name().to_string(), partition)).cloned(),
                committed: committed_offset,
                end_offset: stats.visible_next_offset,
                lag: stats.visible_next_offset.saturating_sub(from),
            }
        })
        .collect();
    GroupDescription { group: group.to_string(), stream: stream.name().to_string(), generation, members, partitions }
}

/// Drops groups left without members once their silent HTTP members expire; called only
/// when the group limit is reached, so it is not a scan per poll.
fn drop_groups_without_members(groups: &mut HashMap<String, Group>, now_ms: i64) {
    for group in groups.values_mut() {
        group.expire_and_rebalance(now_ms);
    }
    groups.retain(|_, group| !group.members.is_empty());
}

fn not_owned(group: &str, member: &str, partition: u32) -> Error {
    Error::new(
        Kind::Conflict,
        codes::GROUP_PARTITION_NOT_OWNED,
        format!("member {member} of group {group} does not own partition {partition}; poll again to get the current assignment"),
    )
    .with_path(format!("/offsets/{partition}"))
}

#[cfg(test)]
mod tests;
