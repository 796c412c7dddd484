//! Cluster-level APIs: ApiVersions, Metadata, FindCoordinator, DescribeConfigs, CreateTopics.
//!
//! Weft presents itself as a one-node cluster: node 0 at the advertised address leads every
//! partition of every stream, with itself as the only replica. Streams are topics. Topics are
//! never created through Kafka (no auto-creation on Metadata, CreateTopics refused with
//! POLICY_VIOLATION): a stream is created by applying a data contract or over HTTP.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weft_core::Stream;
use weft_core::guard::{Caller, GroupUse};

use crate::api::SUPPORTED_APIS;
use crate::{Context, authz};

/// The id of the one node.
pub const NODE_ID: i32 = 0;
/// The cluster id reported in Metadata.
pub const CLUSTER_ID: &str = "weft";
/// How topics are created instead of CreateTopics.
pub const CREATE_TOPICS_REFUSAL: &str = "topics are created by applying a data contract (weft apply -f orders.odcs.yaml) \
     or with POST /api/v1/streams, not through the Kafka protocol";

const DESCRIBE_CONFIGS_RESOURCE_TOPIC: i8 = 2;
const DESCRIBE_CONFIGS_RESOURCE_BROKER: i8 = 4;
const CONFIG_SOURCE_DYNAMIC_TOPIC: i8 = 1;
const CONFIG_SOURCE_DEFAULT: i8 = 5;

pub fn str_bytes(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

/// The version table, with `error_code` (UNSUPPORTED_VERSION when the client asked for an
/// ApiVersions version this listener does not speak).
pub fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|&(api, min, max)| ApiVersion::default().with_api_key(api as i16).with_min_version(min).with_max_version(max))
        .collect();
    ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(api_keys)
}

fn broker_list(context: &Context) -> Vec<MetadataResponseBroker> {
    vec![
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(str_bytes(context.advertised_host.clone()))
            .with_port(context.advertised_port),
    ]
}

fn topic_metadata(version: i16, stream: &Stream) -> MetadataResponseTopic {
    let partitions = (0..stream.n_partitions())
        .map(|partition| {
            let mut metadata = MetadataResponsePartition::default()
                .with_partition_index(partition as i32)
                .with_leader_id(BrokerId(NODE_ID))
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)]);
            if version >= 7 {
                metadata.leader_epoch = 0;
            }
            metadata
        })
        .collect();
    MetadataResponseTopic::default().with_name(Some(TopicName(str_bytes(stream.name())))).with_partitions(partitions)
}

/// Every stream the caller may `read_catalog`, Weft's own `_weft.*` streams never; a requested
/// stream the caller may not see gets TOPIC_AUTHORIZATION_FAILED.
pub fn metadata(context: &Context, caller: &Caller, version: i16, request: MetadataRequest) -> MetadataResponse {
    // v0: an empty list means every topic; v1+: null means every topic.
    let requested: Option<Vec<String>> = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(topics.into_iter().map(|topic| topic.name.map(|name| name.0.to_string()).unwrap_or_default()).collect()),
    };
    let topics = match requested {
        None => context
            .broker
            .streams()
            .iter()
            .filter(|stream| authz::sees_stream(context, caller, stream.name()))
            .map(|stream| topic_metadata(version, stream))
            .collect(),
        Some(names) => names
            .into_iter()
            .map(|name| match context.broker.stream(&name) {
                Ok(_) if !authz::sees_stream(context, caller, &name) => MetadataResponseTopic::default()
                    .with_name(Some(TopicName(str_bytes(name))))
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
                Ok(stream) => topic_metadata(version, &stream),
                Err(_) => {
                    let error = if weft_core::stream::check_stream_name(&name).is_ok() {
                        ResponseError::UnknownTopicOrPartition
                    } else {
                        ResponseError::InvalidTopicException
                    };
                    MetadataResponseTopic::default().with_name(Some(TopicName(str_bytes(name)))).with_error_code(error.code())
                }
            })
            .collect(),
    };
    let mut response = MetadataResponse::default().with_brokers(broker_list(context)).with_topics(topics);
    if version >= 1 {
        response.controller_id = BrokerId(NODE_ID);
    }
    if version >= 2 {
        response.cluster_id = Some(str_bytes(CLUSTER_ID));
    }
    response
}

pub async fn find_coordinator(
    context: &Context,
    caller: &Caller,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    // key_type 1 asks for a transaction coordinator; Weft has no transactions.
    if request.key_type != 0 {
        response.error_code = ResponseError::CoordinatorNotAvailable.code();
        if version >= 1 {
            response.error_message = Some(str_bytes("transactions are not supported"));
        }
        response.node_id = BrokerId(-1);
        return response;
    }
    if let Err((error_code, message)) = authz::consume_group(context, caller, request.key.as_str(), GroupUse::Use).await {
        response.error_code = error_code;
        if version >= 1 {
            response.error_message = Some(str_bytes(message));
        }
        response.node_id = BrokerId(-1);
        return response;
    }
    response.node_id = BrokerId(NODE_ID);
    response.host = str_bytes(context.advertised_host.clone());
    response.port = context.advertised_port;
    response
}

/// The topic configuration a Kafka client can read; every entry is read-only.
fn topic_configs(stream: &Stream) -> Vec<(&'static str, String, bool)> {
    let config = stream.config();
    let retention_ms = config.retention_ms.map_or("-1".to_string(), |ms| ms.to_string());
    let retention_bytes = config.retention_bytes.map_or("-1".to_string(), |bytes| bytes.to_string());
    let from_stream = true;
    let default = false;
    vec![
        ("cleanup.policy", "delete".to_string(), default),
        ("compression.type", "producer".to_string(), default),
        ("max.message.bytes", weft_log::batch::BATCH_BYTES_MAX.to_string(), default),
        ("message.timestamp.type", "CreateTime".to_string(), default),
        ("min.insync.replicas", "1".to_string(), default),
        ("retention.bytes", retention_bytes, from_stream),
        ("retention.ms", retention_ms, from_stream),
        ("segment.bytes", config.segment_bytes.to_string(), from_stream),
        ("weft.fsync", config.fsync.to_string(), from_stream),
    ]
}

pub fn describe_configs(context: &Context, caller: &Caller, version: i16, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let wanted = |name: &str| resource.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|key| key.as_str() == name));
            let entries = match resource.resource_type {
                DESCRIBE_CONFIGS_RESOURCE_TOPIC => match context.broker.stream(resource.resource_name.as_str()) {
                    Ok(stream) if !authz::sees_stream(context, caller, stream.name()) => {
                        result.error_code = ResponseError::TopicAuthorizationFailed.code();
                        result.error_message = Some(str_bytes(authz::catalog_denial(stream.name())));
                        Vec::new()
                    }
                    Ok(stream) => topic_configs(&stream),
                    Err(error) => {
                        result.error_code = ResponseError::UnknownTopicOrPartition.code();
                        result.error_message = Some(str_bytes(error.message));
                        Vec::new()
                    }
                },
                DESCRIBE_CONFIGS_RESOURCE_BROKER => vec![("auto.create.topics.enable", "false".to_string(), false)],
                other => {
                    result.error_code = ResponseError::InvalidRequest.code();
                    result.error_message = Some(str_bytes(format!("resource type {other} is not supported")));
                    Vec::new()
                }
            };
            result.configs = entries
                .into_iter()
                .filter(|(name, _, _)| wanted(name))
                .map(|(name, value, from_stream)| {
                    let mut entry = DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(name))
                        .with_value(Some(str_bytes(value)))
                        .with_read_only(true);
                    if version >= 1 {
                        entry.config_source = if from_stream { CONFIG_SOURCE_DYNAMIC_TOPIC } else { CONFIG_SOURCE_DEFAULT };
                    }
                    entry
                })
                .collect();
            result
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

pub fn create_topics(context: &Context, version: i16, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let exists = context.broker.stream(topic.name.0.as_str()).is_ok();
            let (error, message) = if exists {
                (ResponseError::TopicAlreadyExists, format!("topic {} already exists", topic.name.0.as_str()))
            } else {
                (ResponseError::PolicyViolation, CREATE_TOPICS_REFUSAL.to_string())
            };
            let mut result = CreatableTopicResult::default().with_name(topic.name).with_error_code(error.code());
            if version >= 1 {
                result.error_message = Some(str_bytes(message));
            }
            result
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
