//! Consumer groups driven directly: HTTP and Kafka members sharing partitions, ids that
//! cannot be taken over, and generations that move on every membership change.

use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::broker::Broker;
use crate::stream::StreamConfig;

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn broker_with_stream(n_partitions: u32) -> (tempfile::TempDir, Arc<ManualClock>, Arc<Broker>, Arc<Stream>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(1_000_000)));
    let broker = Broker::open(dir.path(), clock.clone()).unwrap();
    let stream = broker
        .create_stream(StreamConfig {
            name: "orders".into(),
            partitions: n_partitions,
            key: None,
            retention_ms: None,
            retention_bytes: None,
            fsync: weft_log::FsyncPolicy::Never,
            segment_bytes: weft_log::SEGMENT_BYTES_DEFAULT,
            created_at_ms: 0,
        })
        .unwrap();
    (dir, clock, broker, stream)
}

fn kafka_member(id: &str, streams: &[(&str, u32)]) -> KafkaMember {
    KafkaMember { member: id.into(), streams: streams.iter().map(|&(s, n)| (s.to_string(), n)).collect(), session_timeout_ms: 10_000 }
}

fn owned(assignment: &Assignment) -> Vec<u32> {
    assignment.positions.iter().map(|&(p, _)| p).collect()
}

/// Proves one membership: an HTTP member and a Kafka member of one group split a stream's
/// partitions round robin by sorted member id, both see the same generation, describe lists
/// both with their kind, and only the owner may commit (a Kafka-owned partition refuses an
/// HTTP commit). Registering the same Kafka members again does not rebalance.
#[test]
fn http_and_kafka_members_share_partitions() {
    let (_dir, _clock, broker, stream) = broker_with_stream(4);
    let groups = broker.groups();
    let alone = groups.poll("g", &stream, "a", 10_000, OffsetReset::Earliest).unwrap();
    assert_eq!(owned(&alone), [0, 1, 2, 3]);

    let generation = groups.set_kafka_members("g", &[kafka_member("k1", &[("orders", 4)])]);
    assert_eq!(generation, alone.generation + 1, "a kafka member joining is a new generation");
    let shared = groups.assignment("g");
    assert_eq!(shared.generation, generation);
    assert_eq!(shared.members["k1"], [("orders".to_string(), vec![1, 3])]);
    let polled = groups.poll("g", &stream, "a", 10_000, OffsetReset::Earliest).unwrap();
    assert_eq!((owned(&polled), polled.generation), (vec![0, 2], generation));

    assert_eq!(groups.set_kafka_members("g", &[kafka_member("k1", &[("orders", 4)])]), generation, "no change, no rebalance");
    let described = groups.describe("g", &stream).unwrap();
    let members: Vec<(&str, MemberKind, &[u32])> =
        described.members.iter().map(|m| (m.member.as_str(), m.kind, m.partitions.as_slice())).collect();
    assert_eq!(members, [("a", MemberKind::Http, &[0, 2][..]), ("k1", MemberKind::Kafka, &[1, 3][..])]);

    assert!(groups.owns("g", "orders", 1, "k1") && !groups.owns("g", "orders", 0, "k1"));
    let refused = groups.commit("g", &stream, "a", &[(1, 0)]).unwrap_err();
    assert_eq!(refused.code, codes::GROUP_PARTITION_NOT_OWNED);
    groups.commit("g", &stream, "a", &[(0, 0)]).unwrap();
}

/// Proves the two kinds cannot take each other's place: an HTTP poll with a Kafka member's
/// id is refused with `group.member_in_use`, and HTTP leave does not remove a Kafka member.
#[test]
fn an_http_member_cannot_take_a_kafka_members_id() {
    let (_dir, _clock, broker, stream) = broker_with_stream(2);
    let groups = broker.groups();
    groups.set_kafka_members("g", &[kafka_member("k1", &[("orders", 2)])]);
    let refused = groups.poll("g", &stream, "k1", 10_000, OffsetReset::Earliest).unwrap_err();
    assert_eq!((refused.code, refused.path.as_deref()), (codes::GROUP_MEMBER_IN_USE, Some("/member")));
    assert!(!groups.leave("g", "k1"));
    assert!(groups.is_member("g", "k1"));
    assert_eq!(groups.http_member_count("g"), 0);
}

/// Proves the generation moves on every change the Kafka coordinator must see: an HTTP member
/// expiring (noticed by a Kafka heartbeat, which also keeps the Kafka member alive past its
/// own session timeout, since the Kafka coordinator owns Kafka liveness), an HTTP member
/// joining and leaving, a Kafka member leaving, a subscription changing; and that a group
/// left without members is forgotten.
#[test]
fn membership_changes_of_either_kind_bump_the_generation() {
    let (_dir, clock, broker, stream) = broker_with_stream(4);
    let groups = broker.groups();
    let g1 = groups.set_kafka_members("g", &[kafka_member("k1", &[("orders", 4)])]);
    assert_eq!(groups.kafka_heartbeat("g", "k1"), Some(g1));
    let joined = groups.poll("g", &stream, "a", 1_000, OffsetReset::Earliest).unwrap();
    assert!(joined.generation > g1, "an http member joining");
    assert_eq!(groups.kafka_heartbeat("g", "k1"), Some(joined.generation), "heartbeats do not rebalance");

    clock.0.fetch_add(1_500, Ordering::SeqCst);
    let after_expiry = groups.kafka_heartbeat("g", "k1").unwrap();
    assert!(after_expiry > joined.generation, "the silent http member expired");
    assert_eq!(groups.assignment("g").members.keys().collect::<Vec<_>>(), ["k1"]);
    assert_eq!(groups.assignment("g").members["k1"], [("orders".to_string(), vec![0, 1, 2, 3])]);

    let rejoined = groups.poll("g", &stream, "a", 10_000, OffsetReset::Earliest).unwrap();
    assert!(rejoined.generation > after_expiry);
    assert!(groups.leave("g", "a"));
    let after_leave = groups.kafka_heartbeat("g", "k1").unwrap();
    assert!(after_leave > rejoined.generation, "an http member leaving");

    let resubscribed = groups.set_kafka_members("g", &[kafka_member("k1", &[])]);
    assert!(resubscribed > after_leave, "a subscription changing");
    assert_eq!(groups.assignment("g").members["k1"], []);
    groups.set_kafka_members("g", &[kafka_member("k1", &[("orders", 4)]), kafka_member("k2", &[("orders", 4)])]);
    let before = groups.kafka_heartbeat("g", "k1").unwrap();
    groups.remove_kafka_member("g", "k2");
    assert!(groups.kafka_heartbeat("g", "k1").unwrap() > before, "a kafka member leaving");

    groups.set_kafka_members("g", &[]);
    assert_eq!(groups.kafka_heartbeat("g", "k1"), None, "a group without members is forgotten");
}
