//! Consumer groups as authorization sees them: who created each group and which streams it was
//! used on, and the Cedar entity built from that for one request.
//!
//! Owns [`GroupDirectory`], the in-memory record the caller keeps current (Weft's guard loads it
//! from the metadata store and adds to it as groups are first used), shared by every
//! [`super::Authorizer`]: groups come and go far more often than policies and domains change, so a
//! new group does not rebuild the authorizer. Decisions on a group are therefore not cached: each
//! one builds the group's entity from the directory as it is now.
//! It does not decide who may create a group or store anything: that is the caller's.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::RwLock;

use cedar_policy::{Entity, RestrictedExpression};

use super::schema::{TYPE_CONSUMER_GROUP, TYPE_PRINCIPAL, TYPE_STREAM, entity_uid};

/// What Weft remembers of one consumer group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRecord {
    /// The principal that first used the group.
    pub creator: String,
    /// The streams the group was used on (polled, committed).
    pub streams: BTreeSet<String>,
}

/// Every consumer group Weft knows, by name; shared by the current and future authorizers.
#[derive(Debug, Default)]
pub struct GroupDirectory {
    groups: RwLock<HashMap<String, GroupRecord>>,
}

impl GroupDirectory {
    pub fn get(&self, group: &str) -> Option<GroupRecord> {
        self.groups.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(group).cloned()
    }

    /// Records a group unless it is known already (then the known record stays); false if it was.
    pub fn insert(&self, group: &str, record: GroupRecord) -> bool {
        let mut groups = self.groups.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if groups.contains_key(group) {
            return false;
        }
        groups.insert(group.to_string(), record);
        true
    }

    /// Adds a stream to a known group; false if the group is unknown or already had it.
    pub fn add_stream(&self, group: &str, stream: &str) -> bool {
        let mut groups = self.groups.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        groups.get_mut(group).is_some_and(|record| record.streams.insert(stream.to_string()))
    }

    /// Does the group have a record that lists `stream`?
    pub fn has_stream(&self, group: &str, stream: &str) -> bool {
        self.groups.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(group).is_some_and(|record| record.streams.contains(stream))
    }

    pub fn len(&self) -> usize {
        self.groups.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `Weft::ConsumerGroup` entity of `group`: its `creator` (absent for a group nobody has used),
/// its `streams`, and `stream_owners`, the owners of those streams' domains as `owners_of` gives
/// them.
pub(crate) fn group_entity<'a>(
    group: &str,
    record: Option<&GroupRecord>,
    owners_of: impl Fn(&str) -> &'a [String],
) -> Result<Entity, String> {
    let principal = |name: &str| RestrictedExpression::new_entity_uid(entity_uid(TYPE_PRINCIPAL, name));
    let streams: Vec<&String> = record.map(|r| r.streams.iter().collect()).unwrap_or_default();
    let owners: BTreeSet<&str> = streams.iter().flat_map(|stream| owners_of(stream).iter().map(String::as_str)).collect();
    let mut attrs = HashMap::from([
        (
            "streams".to_string(),
            RestrictedExpression::new_set(streams.iter().map(|s| RestrictedExpression::new_entity_uid(entity_uid(TYPE_STREAM, s)))),
        ),
        ("stream_owners".to_string(), RestrictedExpression::new_set(owners.into_iter().map(principal))),
    ]);
    if let Some(record) = record {
        attrs.insert("creator".to_string(), principal(&record.creator));
    }
    Entity::new(entity_uid(TYPE_CONSUMER_GROUP, group), attrs, HashSet::new()).map_err(|error| error.to_string())
}
