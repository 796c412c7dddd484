//! The Kafka group protocol's state machine driven directly: rebalances, timeouts, the core's
//! shared membership and commit scopes.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
use kafka_protocol::protocol::{Decodable, Encodable};
use weft_core::group::OffsetReset;
use weft_core::stream::StreamConfig;

use super::*;
use crate::cluster::str_bytes;

fn broker() -> (tempfile::TempDir, Arc<Broker>) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), Arc::new(weft_log::SystemClock)).unwrap();
    (dir, broker)
}

fn create_stream(broker: &Broker, name: &str, partitions: u32) -> Arc<weft_core::stream::Stream> {
    broker
        .create_stream(StreamConfig {
            name: name.into(),
            partitions,
            key: None,
            retention_ms: None,
            retention_bytes: None,
            fsync: weft_log::FsyncPolicy::Never,
            segment_bytes: weft_log::SEGMENT_BYTES_DEFAULT,
            created_at_ms: 0,
        })
        .unwrap()
}

/// A join of a group that assigns on the client (protocol type `connect`).
fn join_request(member_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "h".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "connect".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"m"))],
    }
}

fn subscription(version: i16, topics: &[&str]) -> Bytes {
    let subscription = ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|&t| str_bytes(t)).collect());
    let mut out = BytesMut::new();
    out.put_i16(version);
    subscription.encode(&mut out, version).unwrap();
    out.freeze()
}

fn consumer_join(member_id: &str, topics: &[&str]) -> JoinRequest {
    JoinRequest {
        protocol_type: CONSUMER_PROTOCOL_TYPE.into(),
        protocols: vec![("range".into(), subscription(1, topics)), ("roundrobin".into(), subscription(1, topics))],
        ..join_request(member_id)
    }
}

/// (version, [(topic, partitions)]) of an encoded ConsumerProtocolAssignment.
fn decode_assignment(bytes: &Bytes) -> (i16, Vec<(String, Vec<i32>)>) {
    let mut buf = bytes.clone();
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    bytes::Buf::advance(&mut buf, 2);
    let assignment = ConsumerProtocolAssignment::decode(&mut buf, version).unwrap();
    let topics = assignment.assigned_partitions.into_iter().map(|tp| (tp.topic.0.to_string(), tp.partitions)).collect();
    (version, topics)
}

/// Two members: the first forms generation 1 alone, the second's join starts a
/// rebalance that the first learns of through its heartbeat, and both end in generation
/// 2 with the leader's assignment delivered to each (client-side assignment).
#[tokio::test]
async fn a_second_member_triggers_a_rebalance_both_complete() {
    let (_dir, broker) = broker();
    let coordinator = KafkaGroupProtocol::new(broker);
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
    assert_eq!(coordinator.check_commit("g", 2, &second.member_id), Ok(CommitScope::Member));
}

/// A member that stops heartbeating is removed after its session timeout, and a member
/// that does not rejoin is dropped when the rebalance timeout passes.
#[tokio::test]
async fn silent_members_are_expired() {
    let (_dir, broker) = broker();
    let coordinator = KafkaGroupProtocol::new(broker);
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
    assert_eq!(coordinator.check_commit("g", -1, ""), Ok(CommitScope::Outsider));
}

/// Proves server-side assignment shared with HTTP members: a Kafka consumer joining a
/// group whose HTTP member owns a four-partition stream gets two partitions (the leader's
/// proposal is ignored) encoded at its subscription's version, the HTTP member keeps the
/// other two; when the HTTP member leaves, the next heartbeat answers
/// REBALANCE_IN_PROGRESS and the rejoined member gets all four. Commits from the member
/// are checked against the shared ownership, and outsiders may not commit while the group
/// has HTTP members.
#[tokio::test]
async fn a_kafka_consumer_shares_partitions_with_an_http_member() {
    let (_dir, broker) = broker();
    let stream = create_stream(&broker, "orders", 4);
    let coordinator = KafkaGroupProtocol::new(Arc::clone(&broker));
    let now = Instant::now();
    broker.groups().poll("g", &stream, "http-a", 10_000, OffsetReset::Earliest).unwrap();
    assert_eq!(coordinator.check_commit("g", -1, ""), Err(ResponseError::UnknownMemberId.code()));

    let joined = coordinator.join(consumer_join("", &["orders", "not-a-stream"]), now).unwrap().await.unwrap();
    assert_eq!((joined.generation, joined.protocol_name.as_str()), (1, "range"));
    let proposal = vec![(joined.member_id.clone(), Bytes::from_static(b"ignored"))];
    let synced = coordinator.sync("g", 1, &joined.member_id, proposal, now).unwrap().await.unwrap();
    // Round robin by sorted member id: "c-..." (the Kafka member) before "http-a".
    assert_eq!(decode_assignment(&synced.assignment), (1, vec![("orders".to_string(), vec![0, 2])]));
    let http = broker.groups().poll("g", &stream, "http-a", 10_000, OffsetReset::Earliest).unwrap();
    assert_eq!(http.positions.iter().map(|&(p, _)| p).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(coordinator.heartbeat("g", 1, &joined.member_id, now), 0, "an http poll that changes nothing does not rebalance");

    assert_eq!(coordinator.check_commit("g", 1, &joined.member_id), Ok(CommitScope::Owner));
    assert!(broker.groups().owns("g", "orders", 2, &joined.member_id));
    assert!(!broker.groups().owns("g", "orders", 3, &joined.member_id));

    assert!(broker.groups().leave("g", "http-a"));
    assert_eq!(coordinator.heartbeat("g", 1, &joined.member_id, now), ResponseError::RebalanceInProgress.code());
    let rejoined = coordinator.join(consumer_join(&joined.member_id, &["orders"]), now).unwrap().await.unwrap();
    assert_eq!(rejoined.generation, 2);
    let synced = coordinator.sync("g", 2, &joined.member_id, vec![], now).unwrap().await.unwrap();
    assert_eq!(decode_assignment(&synced.assignment).1, [("orders".to_string(), vec![0, 1, 2, 3])]);
    assert_eq!(coordinator.heartbeat("g", 2, &joined.member_id, now), 0);

    // Leaving removes it from the shared membership at once.
    assert_eq!(coordinator.leave("g", std::slice::from_ref(&joined.member_id), now), vec![0]);
    assert!(!broker.groups().is_member("g", &joined.member_id));
    assert_eq!(coordinator.check_commit("g", -1, ""), Ok(CommitScope::Outsider));
}

/// A consumer-group join whose subscription metadata cannot be read is refused (the server
/// assigns from it), and the subscription decoder bounds hostile counts by the bytes left.
#[tokio::test]
async fn unreadable_subscriptions_are_refused() {
    let (_dir, broker) = broker();
    let coordinator = KafkaGroupProtocol::new(broker);
    let mut request = consumer_join("", &["orders"]);
    request.protocols = vec![("range".into(), Bytes::from_static(b"m"))];
    let refused = coordinator.join(request, Instant::now()).unwrap_err();
    assert_eq!(refused.error_code, ResponseError::InconsistentGroupProtocol.code());
    assert_eq!(decode_subscription(&[0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 1, b'a']), None);
    assert_eq!(decode_subscription(&[0, 3, 0, 0, 0, 1, 0, 1, b'a', 0xde, 0xad]).map(|s| (s.version, s.topics.len())), Some((3, 1)));
}
