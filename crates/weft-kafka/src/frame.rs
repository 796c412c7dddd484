//! Kafka framing and the request decoder: a frame is a 4-byte big-endian length followed
//! by that many bytes; a request frame starts with a header (api key, api version,
//! correlation id, client id) followed by the body of that API at that version.
//!
//! This module owns turning untrusted bytes into typed requests without panicking or
//! allocating without bound, and encoding typed responses into frames. It does not know
//! what any request means.
//!
//! Bodies are decoded by the `kafka-protocol` crate, read through `GuardedBuf`:
//! `kafka-protocol` 0.18 passes array lengths read off the wire straight to
//! `Vec::with_capacity`, so a 10-byte request declaring two billion elements would make the
//! process abort on a failed allocation (upstream pull requests #152, #161, #200).
//! Only non-flexible API versions are supported (see `api`), where every array length is an
//! `INT32`, and `GuardedBuf` reads any `INT32` that exceeds both `INT32_FIELD_CLAMP` and the
//! bytes left in the frame as `INT32_FIELD_CLAMP`. An array that long cannot fit in the
//! frame, so decoding still fails, after a bounded allocation; the only scalar fields that
//! legitimately exceed 16 Mi are byte budgets and timeouts (`max_bytes`, `rebalance_timeout_ms`),
//! which Weft caps below that anyway.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, DescribeConfigsRequest, DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest,
    HeartbeatRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, MetadataRequest,
    OffsetCommitRequest, OffsetFetchRequest, ProduceRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::buf::ByteBuf;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::api;

/// Largest request frame accepted (Kafka's `socket.request.max.bytes` default).
pub const REQUEST_BYTES_MAX: usize = 100 * 1024 * 1024;
/// Largest request frame accepted before the connection authenticated (Kafka's
/// `sasl.server.max.receive.size` default): the SASL exchange needs a few KiB, so an unauthenticated
/// client cannot make the listener hold `REQUEST_BYTES_MAX`.
pub const PRE_AUTH_REQUEST_BYTES_MAX: usize = 512 * 1024;
/// Bytes of the fixed part of a request header: api key, api version, correlation id.
pub const REQUEST_HEADER_FIXED_BYTES: usize = 8;
/// `INT32` values above this that cannot be an array length fitting the frame are read as this.
pub const INT32_FIELD_CLAMP: i32 = 16 * 1024 * 1024;

/// Why a frame is not a request this listener answers; each closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("request frame of {bytes} bytes is over the limit of {limit} bytes")]
    TooLarge { bytes: i64, limit: usize },
    #[error("request frame of {0} bytes is shorter than a request header")]
    TooShort(usize),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("{api:?} version {version} is not supported")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed { api: ApiKey, version: i16, reason: String },
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode { api: ApiKey, version: i16, reason: String },
    #[error("{0:?} request before SASL authentication")]
    NotAuthenticated(ApiKey),
    #[error("sasl authentication failed")]
    AuthenticationFailed,
    /// The token the connection authenticated with was revoked or has expired.
    #[error("the connection's token can no longer be used: {0}")]
    CredentialsEnded(String),
}

/// A decoded request body of one of the supported APIs.
#[derive(Debug)]
pub enum Request {
    ApiVersions(ApiVersionsRequest),
    Metadata(MetadataRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    ListGroups(ListGroupsRequest),
    DescribeGroups(DescribeGroupsRequest),
    DescribeConfigs(DescribeConfigsRequest),
    CreateTopics(CreateTopicsRequest),
    InitProducerId(InitProducerIdRequest),
    SaslHandshake(SaslHandshakeRequest),
    SaslAuthenticate(SaslAuthenticateRequest),
}

/// What a request frame decodes to.
// Built once per frame and matched at once: boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decoded {
    Request {
        header: RequestHeader,
        api: ApiKey,
        request: Request,
    },
    /// ApiVersions at a version this listener does not speak: Kafka answers these with
    /// UNSUPPORTED_VERSION and its version table, encoded at version 0.
    UnsupportedApiVersions {
        correlation_id: i32,
    },
}

/// Decodes one request frame (without its length prefix). Never panics; every failure is
/// an error after which the connection is closed.
pub fn decode_request(frame: Bytes) -> Result<Decoded, FrameError> {
    if frame.len() < REQUEST_HEADER_FIXED_BYTES {
        return Err(FrameError::TooShort(frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(api_key).map_err(|_| FrameError::UnknownApiKey(api_key))?;
    let Some(range) = api::supported_versions(api) else {
        return Err(FrameError::UnknownApiKey(api_key));
    };
    if version < range.0 || version > range.1 {
        if api == ApiKey::ApiVersions {
            return Ok(Decoded::UnsupportedApiVersions { correlation_id });
        }
        return Err(FrameError::UnsupportedVersion { api, version });
    }
    let malformed = || malformed_error(api, version);
    let mut buf = GuardedBuf { inner: frame };
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version)).map_err(malformed())?;
    let request = match api {
        ApiKey::ApiVersions => Request::ApiVersions(ApiVersionsRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::Metadata => Request::Metadata(MetadataRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::Produce => Request::Produce(ProduceRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::Fetch => Request::Fetch(FetchRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::ListOffsets => Request::ListOffsets(ListOffsetsRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::FindCoordinator => Request::FindCoordinator(FindCoordinatorRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::JoinGroup => Request::JoinGroup(JoinGroupRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::SyncGroup => Request::SyncGroup(SyncGroupRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::Heartbeat => Request::Heartbeat(HeartbeatRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::LeaveGroup => Request::LeaveGroup(LeaveGroupRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::OffsetCommit => Request::OffsetCommit(OffsetCommitRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::OffsetFetch => Request::OffsetFetch(OffsetFetchRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::ListGroups => Request::ListGroups(ListGroupsRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::DescribeGroups => Request::DescribeGroups(DescribeGroupsRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::DescribeConfigs => Request::DescribeConfigs(DescribeConfigsRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::CreateTopics => Request::CreateTopics(CreateTopicsRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::InitProducerId => Request::InitProducerId(InitProducerIdRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::SaslHandshake => Request::SaslHandshake(SaslHandshakeRequest::decode(&mut buf, version).map_err(malformed())?),
        ApiKey::SaslAuthenticate => Request::SaslAuthenticate(SaslAuthenticateRequest::decode(&mut buf, version).map_err(malformed())?),
        _ => return Err(FrameError::UnknownApiKey(api_key)),
    };
    Ok(Decoded::Request { header, api, request })
}

/// Maps a `kafka-protocol` decode failure (an `anyhow::Error`) to `FrameError::Malformed`.
fn malformed_error<E: std::fmt::Display>(api: ApiKey, version: i16) -> impl Fn(E) -> FrameError {
    move |error| FrameError::Malformed { api, version, reason: format!("{error:#}") }
}

/// Encodes a response frame: length prefix, response header, body.
pub fn encode_response<R: Encodable>(api: ApiKey, version: i16, correlation_id: i32, response: &R) -> Result<Bytes, FrameError> {
    let encode_error = |error: &dyn std::fmt::Display| FrameError::Encode { api, version, reason: error.to_string() };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api.response_header_version(version);
    let size = header.compute_size(header_version).map_err(|e| encode_error(&e))?
        + response.compute_size(version).map_err(|e| encode_error(&e))?;
    let mut out = BytesMut::with_capacity(4 + size);
    out.put_i32(size as i32);
    header.encode(&mut out, header_version).map_err(|e| encode_error(&e))?;
    response.encode(&mut out, version).map_err(|e| encode_error(&e))?;
    Ok(out.freeze())
}

/// The request bytes as `kafka-protocol` reads them, with large `INT32`s clamped (see the module doc).
pub(crate) struct GuardedBuf {
    inner: Bytes,
}

impl Buf for GuardedBuf {
    fn remaining(&self) -> usize {
        self.inner.remaining()
    }
    fn chunk(&self) -> &[u8] {
        self.inner.chunk()
    }
    fn advance(&mut self, n: usize) {
        self.inner.advance(n)
    }
    fn try_get_i32(&mut self) -> Result<i32, bytes::TryGetError> {
        let value = self.inner.try_get_i32()?;
        if value > INT32_FIELD_CLAMP && value as usize > self.inner.remaining() {
            return Ok(INT32_FIELD_CLAMP);
        }
        Ok(value)
    }
}

impl ByteBuf for GuardedBuf {
    fn peek_bytes(&mut self, r: std::ops::Range<usize>) -> Bytes {
        self.inner.slice(r)
    }
    fn get_bytes(&mut self, size: usize) -> Bytes {
        self.inner.split_to(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    /// A request frame (without its length prefix) for `body` at `version`.
    fn request_frame<R: Encodable>(api: ApiKey, version: i16, body: &R) -> Vec<u8> {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut out = BytesMut::new();
        header.encode(&mut out, api.request_header_version(version)).unwrap();
        body.encode(&mut out, version).unwrap();
        out.to_vec()
    }

    /// One valid frame per supported API and version, built from default bodies with a
    /// little content so that arrays and strings are exercised.
    fn valid_frames() -> Vec<Vec<u8>> {
        let topic = TopicName(StrBytes::from_static_str("orders"));
        let mut frames = Vec::new();
        for &(api, min, max) in crate::api::SUPPORTED_APIS {
            for version in min..=max {
                let frame = match api {
                    ApiKey::Produce => request_frame(
                        api,
                        version,
                        &ProduceRequest::default().with_acks(-1).with_topic_data(vec![
                            produce_request::TopicProduceData::default().with_name(topic.clone()).with_partition_data(vec![
                                produce_request::PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from_static(b"x"))),
                            ]),
                        ]),
                    ),
                    ApiKey::Fetch => request_frame(
                        api,
                        version,
                        &FetchRequest::default().with_max_bytes(52_428_800).with_topics(vec![
                            fetch_request::FetchTopic::default()
                                .with_topic(topic.clone())
                                .with_partitions(vec![fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)]),
                        ]),
                    ),
                    ApiKey::Metadata => request_frame(
                        api,
                        version,
                        &MetadataRequest::default()
                            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(topic.clone()))])),
                    ),
                    ApiKey::ListOffsets => request_frame(api, version, &ListOffsetsRequest::default()),
                    ApiKey::OffsetCommit => request_frame(api, version, &OffsetCommitRequest::default()),
                    ApiKey::OffsetFetch => request_frame(api, version, &OffsetFetchRequest::default().with_topics(Some(vec![]))),
                    ApiKey::FindCoordinator => request_frame(api, version, &FindCoordinatorRequest::default()),
                    ApiKey::JoinGroup => request_frame(
                        api,
                        version,
                        &JoinGroupRequest::default().with_protocols(vec![
                            join_group_request::JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range")),
                        ]),
                    ),
                    ApiKey::Heartbeat => request_frame(api, version, &HeartbeatRequest::default()),
                    ApiKey::LeaveGroup => request_frame(api, version, &LeaveGroupRequest::default()),
                    ApiKey::SyncGroup => request_frame(api, version, &SyncGroupRequest::default()),
                    ApiKey::DescribeGroups => request_frame(api, version, &DescribeGroupsRequest::default()),
                    ApiKey::ListGroups => request_frame(api, version, &ListGroupsRequest::default()),
                    ApiKey::ApiVersions => request_frame(api, version, &ApiVersionsRequest::default()),
                    ApiKey::CreateTopics => request_frame(api, version, &CreateTopicsRequest::default()),
                    ApiKey::InitProducerId => request_frame(api, version, &InitProducerIdRequest::default()),
                    ApiKey::DescribeConfigs => request_frame(api, version, &DescribeConfigsRequest::default()),
                    ApiKey::SaslHandshake => {
                        request_frame(api, version, &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")))
                    }
                    ApiKey::SaslAuthenticate => request_frame(
                        api,
                        version,
                        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\0admin\0weft_token")),
                    ),
                    other => panic!("no sample for {other:?}"),
                };
                frames.push(frame);
            }
        }
        frames
    }

    #[test]
    fn every_supported_api_and_version_decodes() {
        for frame in valid_frames() {
            let api_key = i16::from_be_bytes([frame[0], frame[1]]);
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            match decode_request(Bytes::from(frame)) {
                Ok(Decoded::Request { header, .. }) => assert_eq!(header.correlation_id, 42),
                other => panic!("api {api_key} v{version}: {other:?}"),
            }
        }
    }

    /// Fetch's `max_bytes` is larger than the rest of the frame and above the clamp: it is
    /// read as the clamp, which Weft's own fetch budget is below anyway.
    #[test]
    fn large_int32_fields_are_clamped_not_refused() {
        let frame = request_frame(ApiKey::Fetch, 11, &FetchRequest::default().with_max_bytes(i32::MAX));
        let Ok(Decoded::Request { request: Request::Fetch(fetch), .. }) = decode_request(Bytes::from(frame)) else { panic!() };
        assert_eq!(fetch.max_bytes, INT32_FIELD_CLAMP);
    }

    #[test]
    fn header_problems_are_named() {
        assert_eq!(decode_request(Bytes::from_static(b"\x00\x03\x00")).unwrap_err(), FrameError::TooShort(3));
        let unknown = Bytes::from_static(b"\x7f\x00\x00\x00\x00\x00\x00\x01\xff\xff");
        assert_eq!(decode_request(unknown).unwrap_err(), FrameError::UnknownApiKey(0x7f00));
        let describe_acls = Bytes::from_static(b"\x00\x1d\x00\x01\x00\x00\x00\x01\xff\xff");
        assert_eq!(decode_request(describe_acls).unwrap_err(), FrameError::UnknownApiKey(29));
        let produce_v2 = Bytes::from_static(b"\x00\x00\x00\x02\x00\x00\x00\x01\xff\xff");
        assert!(matches!(decode_request(produce_v2).unwrap_err(), FrameError::UnsupportedVersion { api: ApiKey::Produce, version: 2 }));
        let api_versions_v9 = Bytes::from_static(b"\x00\x12\x00\x09\x00\x00\x00\x07");
        assert!(matches!(decode_request(api_versions_v9).unwrap(), Decoded::UnsupportedApiVersions { correlation_id: 7 }));
    }

    /// A 14-byte Metadata request declaring two billion topics fails to decode after a
    /// bounded allocation instead of aborting the process.
    #[test]
    fn huge_array_lengths_fail_without_huge_allocations() {
        for api_key in [0i16, 1, 3, 8, 9, 11, 14, 15, 19, 32] {
            for version in 0..12i16 {
                let mut frame = Vec::new();
                frame.extend_from_slice(&api_key.to_be_bytes());
                frame.extend_from_slice(&version.to_be_bytes());
                frame.extend_from_slice(&1i32.to_be_bytes());
                frame.extend_from_slice(&(-1i16).to_be_bytes());
                for _ in 0..6 {
                    frame.extend_from_slice(&i32::MAX.to_be_bytes());
                }
                let _ = decode_request(Bytes::from(frame));
            }
        }
    }

    /// Deterministic xorshift, so a failure reproduces from the seed in the message.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Thousands of truncated, bit-flipped, spliced and random frames, derived from valid
    /// frames of every supported API and version: the decoder returns, it never panics.
    #[test]
    fn mutated_and_random_frames_never_panic() {
        let seed = 0x5eed_1234_abcd_9876;
        let mut rng = Rng(seed);
        let frames = valid_frames();
        let interesting: [&[u8]; 6] =
            [b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"\x00\x00\x00\x00", b"\xff\xff", b"\x00\x01"];
        for case_idx in 0..20_000 {
            let base = &frames[rng.below(frames.len())];
            let mut frame = base.clone();
            match case_idx % 5 {
                0 => frame.truncate(rng.below(frame.len() + 1)),
                1 => {
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(frame.len());
                        frame[at] ^= 1 << rng.below(8);
                    }
                }
                2 => {
                    let at = rng.below(frame.len());
                    let word = interesting[rng.below(interesting.len())];
                    for (i, byte) in word.iter().enumerate() {
                        if let Some(slot) = frame.get_mut(at + i) {
                            *slot = *byte;
                        }
                    }
                }
                3 => {
                    let other = &frames[rng.below(frames.len())];
                    let cut = rng.below(frame.len());
                    frame.truncate(cut);
                    frame.extend_from_slice(&other[rng.below(other.len())..]);
                }
                _ => {
                    frame = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                    if frame.len() >= 4 && rng.below(2) == 0 {
                        frame[..4].copy_from_slice(&base[..4]);
                    }
                }
            }
            let _ = decode_request(Bytes::from(frame));
        }
    }
}
