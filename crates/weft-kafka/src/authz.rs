//! Authorization of Kafka requests through the broker's guard, with Kafka's error codes.
//!
//! Produce needs `produce` on the stream, and no client may produce to Weft's own `_weft.*`
//! streams; Fetch, ListOffsets, OffsetCommit and OffsetFetch need `consume` on the stream
//! (TOPIC_AUTHORIZATION_FAILED per partition otherwise), which on a dead-letter stream is
//! `read_dead_letters` on its governed stream; the group APIs need `consume` on the consumer
//! group (GROUP_AUTHORIZATION_FAILED), which belongs to the principal that first used it
//! (FindCoordinator, JoinGroup or OffsetCommit here, a poll or commit over HTTP), the owners of
//! the streams it subscribed to or committed on, and admins; Metadata and DescribeConfigs show only what
//! the caller may `read_catalog`. Denials of requests are audited by `Broker::authorize`;
//! the filters of listings (Metadata, ListGroups) are not, as over HTTP, because clients
//! refresh them every few seconds.

use kafka_protocol::ResponseError;
use weft_core::guard::{AuthzAction, AuthzResource, Caller, GroupUse};

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

/// May `caller` take part in (or read the offsets of) consumer group `group`? A
/// [`GroupUse::Use`] of a group nobody used yet makes `caller` its creator.
pub async fn consume_group(context: &Context, caller: &Caller, group: &str, group_use: GroupUse) -> Result<(), Denial> {
    context.broker.authorize_group(caller, group, group_use, None).await.map_err(|error| {
        let error_code = match error.kind {
            weft_core::Kind::Forbidden => ResponseError::GroupAuthorizationFailed.code(),
            // The group could not be recorded (limit, storage): the coordinator cannot serve it.
            _ => ResponseError::CoordinatorNotAvailable.code(),
        };
        (error_code, error.message)
    })
}

/// May `caller` read `stream` (not audited: a check, not a request)?
pub fn may_consume_stream(context: &Context, caller: &Caller, stream: &str) -> bool {
    context.broker.guard().check(caller, AuthzAction::Consume, &AuthzResource::Stream(stream.to_string())).is_ok()
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
