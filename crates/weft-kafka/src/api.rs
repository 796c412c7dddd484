//! The Kafka APIs this listener answers and the version range of each.
//!
//! Only non-flexible versions (before KIP-482 tagged fields) are offered, except for
//! ApiVersions v3, whose body has no arrays: this keeps every array length an `INT32` that
//! the request decoder can bound (see `frame`). librdkafka and the Java client negotiate
//! down to these versions; none of the later versions adds anything Weft uses.

use kafka_protocol::messages::ApiKey;

/// Supported APIs with their lowest and highest version, in api-key order.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 8),
    (ApiKey::Fetch, 4, 11),
    (ApiKey::ListOffsets, 1, 5),
    (ApiKey::Metadata, 0, 8),
    (ApiKey::OffsetCommit, 2, 7),
    (ApiKey::OffsetFetch, 1, 5),
    (ApiKey::FindCoordinator, 0, 2),
    (ApiKey::JoinGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 3),
    (ApiKey::LeaveGroup, 0, 3),
    (ApiKey::SyncGroup, 0, 3),
    (ApiKey::DescribeGroups, 0, 4),
    (ApiKey::ListGroups, 0, 2),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 4),
    (ApiKey::InitProducerId, 0, 1),
    (ApiKey::DescribeConfigs, 1, 3),
    (ApiKey::SaslAuthenticate, 0, 1),
];

/// The (lowest, highest) supported version of `api`, or `None` if it is not answered.
pub fn supported_versions(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS.iter().find(|(key, _, _)| *key == api).map(|&(_, min, max)| (min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every advertised range is one the codec can decode and encode.
    #[test]
    fn advertised_versions_are_within_the_codec() {
        for &(api, min, max) in SUPPORTED_APIS {
            let codec = api.valid_versions();
            assert!(min <= max && codec.min <= min && max <= codec.max, "{api:?} {min}..{max} outside codec {codec}");
        }
    }

    /// Non-flexible only (ApiVersions excepted): the request header version stays 1.
    #[test]
    fn advertised_versions_are_not_flexible() {
        for &(api, _, max) in SUPPORTED_APIS {
            if api != ApiKey::ApiVersions {
                assert_eq!(api.request_header_version(max), 1, "{api:?} v{max} is flexible");
            }
        }
    }
}
