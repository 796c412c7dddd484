//! Group and offset APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup (through
//! `group_protocol`), OffsetCommit and OffsetFetch (through the broker's metadata store, so
//! Kafka and HTTP consumers of a group name resume from the same committed offsets, and
//! commits survive restarts), ListGroups and DescribeGroups.
//!
//! Commit metadata strings are not stored; OffsetFetch returns an empty one. A member of a
//! consumer group commits only the partitions it owns in the shared membership (see
//! `group_protocol`); others get REBALANCE_IN_PROGRESS.
//!
//! Every group API needs `consume` on the consumer group (GROUP_AUTHORIZATION_FAILED), and
//! OffsetCommit and OffsetFetch also `consume` on each stream (TOPIC_AUTHORIZATION_FAILED).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{OffsetFetchResponsePartition, OffsetFetchResponseTopic};
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use tokio::time::Instant;

use weft_core::guard::{Caller, GroupUse};

use crate::cluster::str_bytes;
use crate::connection::ClientAddress;
use crate::group_protocol::{CommitScope, JoinOutcome, JoinRequest, SyncOutcome};
use crate::{Context, authz};

pub async fn join_group(
    context: &Context,
    caller: &Caller,
    version: i16,
    client_id: &str,
    client: &ClientAddress,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    if let Err((error_code, _)) = authz::consume_group(context, caller, &request.group_id.0, GroupUse::Use).await {
        return JoinGroupResponse::default()
            .with_error_code(error_code)
            .with_generation_id(-1)
            .with_member_id(request.member_id)
            .with_protocol_name(Some(str_bytes("")));
    }
    let join = JoinRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        client_id: client_id.to_string(),
        client_host: format!("/{}", client.0.ip()),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 { request.rebalance_timeout_ms } else { request.session_timeout_ms },
        protocol_type: request.protocol_type.to_string(),
        protocols: request.protocols.into_iter().map(|protocol| (protocol.name.to_string(), protocol.metadata)).collect(),
    };
    // The owners of the streams a group subscribes to (those the caller may read) may manage it.
    for topic in crate::group_protocol::subscribed_topics(&join.protocol_type, &join.protocols) {
        if context.broker.stream(&topic).is_ok()
            && authz::may_consume_stream(context, caller, &topic)
            && let Err(error) = context.broker.note_group_stream(&join.group_id, &topic).await
        {
            tracing::warn!(group = %join.group_id, stream = %topic, %error, "the group's stream could not be recorded");
        }
    }
    let outcome = match context.group_protocol.join(join, Instant::now()) {
        Err(outcome) => outcome,
        Ok(receiver) => {
            receiver.await.unwrap_or(JoinOutcome { error_code: ResponseError::RebalanceInProgress.code(), ..Default::default() })
        }
    };
    let members = outcome
        .members
        .into_iter()
        .map(|(member_id, group_instance_id, metadata)| {
            let mut member = JoinGroupResponseMember::default().with_member_id(str_bytes(member_id)).with_metadata(metadata);
            if version >= 5 {
                member.group_instance_id = group_instance_id.map(str_bytes);
            }
            member
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(outcome.error_code)
        .with_generation_id(if outcome.error_code == 0 { outcome.generation } else { -1 })
        .with_protocol_name(Some(str_bytes(outcome.protocol_name)))
        .with_leader(str_bytes(outcome.leader))
        .with_member_id(str_bytes(outcome.member_id))
        .with_members(members)
}

pub async fn sync_group(context: &Context, caller: &Caller, request: SyncGroupRequest) -> SyncGroupResponse {
    if let Err((error_code, _)) = authz::consume_group(context, caller, &request.group_id.0, GroupUse::Inspect).await {
        return SyncGroupResponse::default().with_error_code(error_code);
    }
    let assignments = request.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect();
    let outcome =
        match context.group_protocol.sync(&request.group_id.0, request.generation_id, &request.member_id, assignments, Instant::now()) {
            Err(outcome) => outcome,
            Ok(receiver) => {
                receiver.await.unwrap_or(SyncOutcome { error_code: ResponseError::RebalanceInProgress.code(), assignment: Bytes::new() })
            }
        };
    SyncGroupResponse::default().with_error_code(outcome.error_code).with_assignment(outcome.assignment)
}

pub async fn heartbeat(context: &Context, caller: &Caller, request: HeartbeatRequest) -> HeartbeatResponse {
    if let Err((error_code, _)) = authz::consume_group(context, caller, &request.group_id.0, GroupUse::Inspect).await {
        return HeartbeatResponse::default().with_error_code(error_code);
    }
    let error_code = context.group_protocol.heartbeat(&request.group_id.0, request.generation_id, &request.member_id, Instant::now());
    HeartbeatResponse::default().with_error_code(error_code)
}

pub async fn leave_group(context: &Context, caller: &Caller, version: i16, request: LeaveGroupRequest) -> LeaveGroupResponse {
    if let Err((error_code, _)) = authz::consume_group(context, caller, &request.group_id.0, GroupUse::Inspect).await {
        return LeaveGroupResponse::default().with_error_code(error_code);
    }
    let now = Instant::now();
    if version < 3 {
        let errors = context.group_protocol.leave(&request.group_id.0, &[request.member_id.to_string()], now);
        return LeaveGroupResponse::default().with_error_code(errors[0]);
    }
    let member_ids: Vec<String> = request.members.iter().map(|member| member.member_id.to_string()).collect();
    let errors = context.group_protocol.leave(&request.group_id.0, &member_ids, now);
    let members = request
        .members
        .into_iter()
        .zip(errors)
        .map(|(member, error_code)| {
            MemberResponse::default()
                .with_member_id(member.member_id)
                .with_group_instance_id(member.group_instance_id)
                .with_error_code(error_code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

pub async fn offset_commit(context: &Context, caller: &Caller, version: i16, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let _ = version;
    let group_id = request.group_id.0.to_string();
    let (group_error, scope) = match authz::consume_group(context, caller, &group_id, GroupUse::Use).await {
        Err((error_code, _)) => (error_code, CommitScope::Outsider),
        Ok(()) => match context.group_protocol.check_commit(&group_id, request.generation_id_or_member_epoch, &request.member_id) {
            Ok(scope) => (0, scope),
            Err(error_code) => (error_code, CommitScope::Outsider),
        },
    };
    let mut topics = Vec::new();
    for topic in request.topics {
        let stream = context.broker.stream(topic.name.0.as_str());
        let topic_error = match (group_error, &stream) {
            (0, Ok(_)) => authz::consume_stream(context, caller, topic.name.0.as_str()).await.err().map(|(error_code, _)| error_code),
            _ => None,
        };
        if let (0, Ok(stream), None) = (group_error, &stream, topic_error) {
            // The owners of the streams a group commits on may manage the group.
            if let Err(error) = context.broker.note_group_stream(&group_id, stream.name()).await {
                tracing::warn!(group = %group_id, stream = stream.name(), %error, "the group's stream could not be recorded");
            }
        }
        let mut partitions = Vec::new();
        let mut offsets = Vec::new();
        for partition in &topic.partitions {
            let error_code = if group_error != 0 {
                group_error
            } else if let Some(topic_error) = topic_error {
                topic_error
            } else {
                match &stream {
                    Err(_) => ResponseError::UnknownTopicOrPartition.code(),
                    Ok(stream) if partition.partition_index < 0 || partition.partition_index as u32 >= stream.n_partitions() => {
                        ResponseError::UnknownTopicOrPartition.code()
                    }
                    Ok(_) if partition.committed_offset < 0 => ResponseError::OffsetOutOfRange.code(),
                    // A consumer group shares its partitions with HTTP members: only the
                    // partition's owner commits it. A member that lost it has a rebalance coming.
                    Ok(stream)
                        if scope == CommitScope::Owner
                            && !context.broker.groups().owns(
                                &group_id,
                                stream.name(),
                                partition.partition_index as u32,
                                &request.member_id,
                            ) =>
                    {
                        ResponseError::RebalanceInProgress.code()
                    }
                    Ok(_) => {
                        offsets.push((partition.partition_index as u32, partition.committed_offset as u64));
                        0
                    }
                }
            };
            partitions.push((partition.partition_index, error_code));
        }
        if !offsets.is_empty() {
            let meta = Arc::clone(context.broker.meta());
            let (group, stream_name) = (group_id.clone(), topic.name.0.to_string());
            let stored = tokio::task::spawn_blocking(move || meta.commit_offsets(&group, &stream_name, &offsets).is_ok()).await;
            if !matches!(stored, Ok(true)) {
                for (_, error_code) in partitions.iter_mut().filter(|(_, error_code)| *error_code == 0) {
                    *error_code = ResponseError::CoordinatorNotAvailable.code();
                }
            }
        }
        let partitions = partitions
            .into_iter()
            .map(|(partition_index, error_code)| {
                OffsetCommitResponsePartition::default().with_partition_index(partition_index).with_error_code(error_code)
            })
            .collect();
        topics.push(OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions));
    }
    OffsetCommitResponse::default().with_topics(topics)
}

pub async fn offset_fetch(context: &Context, caller: &Caller, version: i16, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let group_id = request.group_id.0.to_string();
    if let Err((error_code, _)) = authz::consume_group(context, caller, &group_id, GroupUse::Inspect).await {
        if version >= 2 {
            return OffsetFetchResponse::default().with_error_code(error_code);
        }
        // v1 has no top-level error: every requested partition carries it.
        let topics = request
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partition_indexes
                    .into_iter()
                    .map(|partition_index| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(partition_index)
                            .with_committed_offset(-1)
                            .with_error_code(error_code)
                    })
                    .collect();
                OffsetFetchResponseTopic::default().with_name(topic.name).with_partitions(partitions)
            })
            .collect();
        return OffsetFetchResponse::default().with_topics(topics);
    }
    // Requested (topic, partitions); `None` partitions means every partition of the topic.
    let requested: Vec<(String, Option<Vec<i32>>)> = match request.topics {
        Some(topics) => topics.into_iter().map(|topic| (topic.name.0.to_string(), Some(topic.partition_indexes))).collect(),
        None => {
            let meta = Arc::clone(context.broker.meta());
            let group = group_id.clone();
            let pairs = tokio::task::spawn_blocking(move || meta.groups().ok()).await.ok().flatten().unwrap_or_default();
            pairs.into_iter().filter(|(g, _)| *g == group).map(|(_, stream)| (stream, None)).collect()
        }
    };
    let mut topics = Vec::new();
    let mut any_error = false;
    for (name, partition_indexes) in requested {
        // Every partition of a topic the caller may not consume: with null topics (all of
        // the group's), such topics are left out; asked for by name, they carry the error.
        let denied = authz::consume_stream(context, caller, &name).await.err().map(|(error_code, _)| error_code);
        if let Some(error_code) = denied {
            let Some(indexes) = partition_indexes else { continue };
            let partitions = indexes
                .into_iter()
                .map(|partition_index| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(partition_index)
                        .with_committed_offset(-1)
                        .with_error_code(error_code)
                })
                .collect();
            topics.push(OffsetFetchResponseTopic::default().with_name(TopicName(str_bytes(name))).with_partitions(partitions));
            continue;
        }
        let meta = Arc::clone(context.broker.meta());
        let (group, stream_name) = (group_id.clone(), name.clone());
        let committed = tokio::task::spawn_blocking(move || meta.committed_offsets(&group, &stream_name).ok()).await;
        let committed = match committed {
            Ok(Some(committed)) => committed,
            _ => {
                any_error = true;
                Default::default()
            }
        };
        let indexes: Vec<i32> = partition_indexes.unwrap_or_else(|| committed.keys().map(|&p| p as i32).collect());
        let partitions = indexes
            .into_iter()
            .map(|partition_index| {
                let offset = u32::try_from(partition_index).ok().and_then(|p| committed.get(&p)).map_or(-1, |&offset| offset as i64);
                let mut partition = OffsetFetchResponsePartition::default()
                    .with_partition_index(partition_index)
                    .with_committed_offset(offset)
                    .with_metadata(Some(str_bytes("")));
                if version >= 5 {
                    partition.committed_leader_epoch = -1;
                }
                partition
            })
            .collect();
        topics.push(OffsetFetchResponseTopic::default().with_name(TopicName(str_bytes(name))).with_partitions(partitions));
    }
    let mut response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 && any_error {
        response.error_code = ResponseError::CoordinatorNotAvailable.code();
    }
    response
}

/// Kafka groups known to the coordinator, plus groups that only have committed offsets
/// (HTTP groups, or Kafka groups with no live member), shown as `Empty`.
pub async fn list_groups(context: &Context, caller: &Caller) -> ListGroupsResponse {
    let mut listed: Vec<(String, String)> = context.group_protocol.group_ids();
    let meta = Arc::clone(context.broker.meta());
    let stored = tokio::task::spawn_blocking(move || meta.groups().ok()).await.ok().flatten().unwrap_or_default();
    for (group, _) in stored {
        if !listed.iter().any(|(id, _)| *id == group) {
            listed.push((group, String::new()));
        }
    }
    listed.retain(|(group_id, _)| authz::sees_group(context, caller, group_id));
    listed.sort();
    let groups = listed
        .into_iter()
        .map(|(group_id, protocol_type)| {
            ListedGroup::default().with_group_id(GroupId(str_bytes(group_id))).with_protocol_type(str_bytes(protocol_type))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe_groups(context: &Context, caller: &Caller, version: i16, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut denied = Vec::with_capacity(request.groups.len());
    for group_id in &request.groups {
        denied.push(authz::consume_group(context, caller, &group_id.0, GroupUse::Inspect).await.err().map(|(error_code, _)| error_code));
    }
    let groups = request
        .groups
        .into_iter()
        .zip(denied)
        .map(|(group_id, denied)| {
            let described = DescribedGroup::default().with_group_id(group_id.clone());
            if let Some(error_code) = denied {
                return described.with_error_code(error_code);
            }
            match context.group_protocol.describe(&group_id.0) {
                // Kafka describes an unknown group as Dead with no error.
                None => described.with_group_state(str_bytes("Dead")),
                Some(group) => {
                    let members = group
                        .members
                        .into_iter()
                        .map(|member| {
                            let mut described = DescribedGroupMember::default()
                                .with_member_id(str_bytes(member.member_id))
                                .with_client_id(str_bytes(member.client_id))
                                .with_client_host(str_bytes(member.client_host))
                                .with_member_metadata(member.metadata)
                                .with_member_assignment(member.assignment);
                            if version >= 4 {
                                described.group_instance_id = member.group_instance_id.map(str_bytes);
                            }
                            described
                        })
                        .collect();
                    described
                        .with_group_state(str_bytes(group.state.as_str()))
                        .with_protocol_type(str_bytes(group.protocol_type))
                        .with_protocol_data(str_bytes(group.protocol_name))
                        .with_members(members)
                }
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
