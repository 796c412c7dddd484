//! Consumer groups: members share a stream's partitions and commit their progress.
//!
//! Members join by polling. Partitions of each stream are spread round robin over the
//! members subscribed to it, sorted by member id, and re-spread whenever a member joins,
//! leaves or misses its session timeout. A partition that changes owner restarts from the
//! group's committed offset, so delivery is at least once. Commits are accepted only from
//! the member that owns the partition now (Kafka's rule), so a member that lost a
//! partition in a rebalance cannot move the group backwards or forwards behind the new
//! owner's back. Committed offsets live in the metadata store; everything else (members,
//! assignment, fetch positions) is in memory and rebuilt as members poll again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use weft_log::Clock;

use crate::error::{Error, Kind, codes};
use crate::meta::MetaStore;
use crate::stream::Stream;

pub const SESSION_TIMEOUT_MS_DEFAULT: i64 = 10_000;
pub const SESSION_TIMEOUT_MS_MIN: i64 = 1_000;
pub const SESSION_TIMEOUT_MS_MAX: i64 = 300_000;
pub const GROUP_MEMBERS_MAX: usize = 1_000;
pub const GROUPS_MAX: usize = 10_000;
/// Longest group or member name.
pub const GROUP_NAME_BYTES_MAX: usize = 249;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member: String,
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
    fn expire(&mut self, now_ms: i64) -> bool {
        let before = self.members.len();
        self.members.retain(|_, member| now_ms - member.last_seen_ms <= member.session_timeout_ms);
        before != self.members.len()
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
                group.members.insert(member_id.to_string(), Member { streams, last_seen_ms: now_ms, session_timeout_ms });
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
            if group.expire(now_ms) {
                group.rebalance();
            }
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

    /// Removes a member at once, so its partitions move without waiting for the timeout.
    pub fn leave(&self, group_name: &str, member_id: &str) -> bool {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_name) else { return false };
        let removed = group.members.remove(member_id).is_some();
        if removed {
            group.rebalance();
        }
        removed
    }

    /// Every (group, stream) with a live member subscribed to it now. Groups that only commit
    /// (the Kafka listener's) are in the metadata store's committed offsets instead.
    pub fn subscriptions(&self) -> Vec<(String, String)> {
        let now_ms = self.clock.now_ms();
        let groups = self.lock();
        let mut subscriptions: BTreeSet<(String, String)> = BTreeSet::new();
        for (group_name, group) in groups.iter() {
            for member in group.members.values().filter(|m| now_ms - m.last_seen_ms <= m.session_timeout_ms) {
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
        if group.expire(now_ms) {
            group.rebalance();
        }
        let members = group
            .members
            .iter()
            .filter(|(_, m)| m.streams.contains(stream.name()))
            .map(|(id, m)| MemberDescription {
                member: id.clone(),
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

fn not_owned(group: &str, member: &str, partition: u32) -> Error {
    Error::new(
        Kind::Conflict,
        codes::GROUP_PARTITION_NOT_OWNED,
        format!("member {member} of group {group} does not own partition {partition}; poll again to get the current assignment"),
    )
    .with_path(format!("/offsets/{partition}"))
}
