//! One Kafka group's state and members, and the transitions between Kafka's group states.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;
use weft_core::Broker;
use weft_core::group::KafkaMember;

use super::consumer_protocol::{Subscription, decode_subscription};
use super::{CONSUMER_PROTOCOL_TYPE, GroupState, JoinOutcome, SyncOutcome};

pub(super) struct Member {
    pub(super) group_instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) last_seen: Instant,
    pub(super) assignment: Bytes,
    pub(super) join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    pub(super) sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

pub(super) struct Group {
    pub(super) id: String,
    pub(super) state: GroupState,
    pub(super) generation: i32,
    pub(super) protocol_type: String,
    pub(super) protocol_name: String,
    pub(super) leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    pub(super) rebalance_deadline: Instant,
    /// The core generation the members' assignments were computed at (consumer groups, once
    /// synced); when the core moves past it, the members must rejoin.
    pub(super) core_generation: Option<u64>,
}

impl Group {
    pub(super) fn new(id: String, now: Instant) -> Self {
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

    pub(super) fn is_consumer_group(&self) -> bool {
        self.protocol_type == CONSUMER_PROTOCOL_TYPE
    }

    /// The member's subscription for the group's chosen protocol (checked at join).
    pub(super) fn subscription(&self, member: &Member) -> Option<Subscription> {
        member.protocols.iter().find(|(name, _)| *name == self.protocol_name).and_then(|(_, metadata)| decode_subscription(metadata))
    }

    /// Registers the members and their subscribed streams in the core (or none, for groups
    /// that are not consumer groups), so the core's assignment covers them.
    pub(super) fn publish_members(&mut self, broker: &Broker) {
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
    pub(super) fn common_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else { return Vec::new() };
        let mut common: Vec<String> = first.protocols.iter().map(|(name, _)| name.clone()).collect();
        for member in members {
            common.retain(|name| member.protocols.iter().any(|(other, _)| other == name));
        }
        common
    }

    /// Starts a rebalance: every member must rejoin. Followers waiting in SyncGroup are told.
    pub(super) fn prepare_rebalance(&mut self, now: Instant) {
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
    pub(super) fn maybe_complete_join(&mut self, now: Instant, force: bool, broker: &Broker) {
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

    pub(super) fn remove_member(&mut self, member_id: &str, now: Instant, broker: &Broker) {
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
