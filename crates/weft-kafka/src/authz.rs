//! Authorization of Kafka requests through the broker's guard, with Kafka's error codes.
//!
//! Produce needs `produce` on the stream, and no client may produce to Weft's own `_weft.*`
//! streams; Fetch, ListOffsets, OffsetCommit and OffsetFetch need `consume` on the stream
//! (TOPIC_AUTHORIZATION_FAILED per partition otherwise); the group APIs need `consume` on the
//! consumer group (GROUP_AUTHORIZATION_FAILED); Metadata and DescribeConfigs show only what
//! the caller may `read_catalog`. Denials of requests are audited by `Broker::authorize`;
//! the filters of listings (Metadata, ListGroups) are not, as over HTTP, because clients
//! refresh them every few seconds.

use kafka_protocol::ResponseError;
use weft_core::guard::{AuthzAction, AuthzResource, Caller};

use crate::Context;

/// A refusal: the Kafka error code and the message (the action and resource only).
pub type Denial = (i16, String);

/// May `caller` produce to `stream`? (The guard refuses Weft's own streams to everyone.)
pub async fn produce_to_stream(context: &Context, caller: &Caller, stream: &str) -> Result<(), Denial> {
    on_stream(context, caller, AuthzAction::Produce, stream).await
}

/// May `caller` read `stream`?
pub async fn consume_stream(context: &Context, caller: &Caller, stream: &str) -> Result<(), Denial> {
    on_stream(context, caller, AuthzAction::Consume, stream).await
}

async fn on_stream(context: &Context, caller: &Caller, action: AuthzAction, stream: &str) -> Result<(), Denial> {
    let resource = AuthzResource::Stream(stream.to_string());
    context
        .broker
        .authorize(caller, action, &resource)
        .await
        .map_err(|error| (ResponseError::TopicAuthorizationFailed.code(), error.message))
}

/// May `caller` take part in (or read the offsets of) consumer group `group`?
pub async fn consume_group(context: &Context, caller: &Caller, group: &str) -> Result<(), Denial> {
    let resource = AuthzResource::ConsumerGroup(group.to_string());
    context
        .broker
        .authorize(caller, AuthzAction::Consume, &resource)
        .await
        .map_err(|error| (ResponseError::GroupAuthorizationFailed.code(), error.message))
}

/// May `caller` see `stream` in listings (not audited: a filter, not a request)?
pub fn sees_stream(context: &Context, caller: &Caller, stream: &str) -> bool {
    context.broker.guard().check(caller, AuthzAction::ReadCatalog, &AuthzResource::Stream(stream.to_string())).is_ok()
}

/// May `caller` see group `group` in ListGroups (not audited)?
pub fn sees_group(context: &Context, caller: &Caller, group: &str) -> bool {
    context.broker.guard().check(caller, AuthzAction::Consume, &AuthzResource::ConsumerGroup(group.to_string())).is_ok()
}

/// The message for a stream hidden from the caller's catalog (the guard's wording).
pub fn catalog_denial(stream: &str) -> String {
    format!("not allowed to {} on {}", AuthzAction::ReadCatalog, AuthzResource::Stream(stream.to_string()))
}
