//! The consumer protocol's embedded payloads, as far as the server reads and writes them: the
//! subscription a `consumer` member sends in JoinGroup and the assignment it gets in SyncGroup.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::consumer_protocol_assignment::{ConsumerProtocolAssignment, TopicPartition};
use kafka_protocol::protocol::Encodable;

use crate::cluster::str_bytes;

/// Highest ConsumerProtocolAssignment version written (all of 0 to 3 have the same layout).
const ASSIGNMENT_VERSION_MAX: i16 = 3;

/// What a `consumer` member subscribed to with one protocol (ConsumerProtocolSubscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Subscription {
    pub(super) version: i16,
    pub(super) topics: BTreeSet<String>,
}

/// Reads the version and the topic list, which start every ConsumerProtocolSubscription
/// version; the later fields (user data, owned partitions, generation, rack) are not needed
/// by the server's assignment. Every length is checked against the bytes left, so a hostile
/// count allocates nothing.
pub(super) fn decode_subscription(metadata: &[u8]) -> Option<Subscription> {
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
pub(super) fn encode_assignment(version: i16, shares: &[(String, Vec<u32>)]) -> Bytes {
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
