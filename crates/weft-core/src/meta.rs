//! The metadata store: stream configurations, consumer groups' committed offsets and who
//! created each group, applied resources and contract versions, and dead-letter moves with the
//! replay batch in flight, and the high-water mark of reserved idempotent producer ids, in one
//! `redb` database (`<data-dir>/meta.redb`, ACID, fsync on every commit).
//!
//! Events never go here; only small, slowly changing state does.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::error::Error;

const STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("streams");
/// (group, stream, partition) -> next offset to read.
const OFFSETS: TableDefinition<(&str, &str, u32), u64> = TableDefinition::new("group_offsets");
/// (kind, id) -> the applied resource as JSON (domains, products, policies).
const RESOURCES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("resources");
/// (contract id, sequence) -> one applied contract version as JSON, in apply order.
const CONTRACT_VERSIONS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("contract_versions");
/// (dead-letter stream, partition, offset) -> offset in the governed stream it was moved to.
const DEAD_LETTERS_REPLAYED: TableDefinition<(&str, u32, u64), u64> = TableDefinition::new("dead_letters_replayed");
/// Dead-letter stream -> the replay batch it was appending when last seen (`ReplayIntent` as
/// JSON), written before the append and removed with the moves it records.
const DEAD_LETTER_REPLAY_INTENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("dead_letter_replay_intents");

/// group -> the principal that first used it (the group's creator, see `guard/groups.rs`).
const GROUP_CREATORS: TableDefinition<&str, &str> = TableDefinition::new("group_creators");
/// (group, stream) -> nothing: the streams a group was used on, so their owners may manage it.
const GROUP_STREAMS: TableDefinition<(&str, &str), ()> = TableDefinition::new("group_streams");

/// What a claim of a consumer group found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupClaim {
    /// The group was unknown; it is now the caller's.
    Created,
    /// The group was already created, by this principal.
    Existing(String),
}

/// `PRODUCER_IDS_NEXT` -> the first idempotent producer id not yet reserved: every id below it
/// may have been handed out, so none is handed out again.
const PRODUCER_IDS: TableDefinition<&str, i64> = TableDefinition::new("producer_ids");
const PRODUCER_IDS_NEXT: &str = "next_unreserved";

/// One write in an atomic batch of metadata changes.
pub enum MetaWrite {
    /// A stream's config (`StreamConfig` as JSON), so a stream can be recorded in the same
    /// transaction as the contract that governs it.
    Stream {
        name: String,
        json: Vec<u8>,
    },
    Resource {
        kind: &'static str,
        id: String,
        json: Vec<u8>,
    },
    ContractVersion {
        contract_id: String,
        sequence: u32,
        json: Vec<u8>,
    },
}

pub struct MetaStore {
    db: Database,
}

impl MetaStore {
    pub fn open(path: &Path) -> Result<Self, Error> {
        create_private_file(path).map_err(|error| Error::internal(format!("cannot create {}: {error}", path.display())))?;
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(STREAMS)?;
        txn.open_table(OFFSETS)?;
        txn.open_table(RESOURCES)?;
        txn.open_table(CONTRACT_VERSIONS)?;
        txn.open_table(DEAD_LETTERS_REPLAYED)?;
        txn.open_table(GROUP_CREATORS)?;
        txn.open_table(GROUP_STREAMS)?;
        txn.open_table(DEAD_LETTER_REPLAY_INTENTS)?;
        txn.open_table(PRODUCER_IDS)?;
        txn.commit()?;
        Ok(Self { db })
    }

    pub fn put_stream(&self, name: &str, config_json: &[u8]) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        txn.open_table(STREAMS)?.insert(name, config_json)?;
        txn.commit()?;
        Ok(())
    }

    pub fn streams(&self) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STREAMS)?;
        let mut streams = Vec::new();
        for entry in table.iter()? {
            let (name, config) = entry?;
            streams.push((name.value().to_string(), config.value().to_vec()));
        }
        Ok(streams)
    }

    pub fn commit_offsets(&self, group: &str, stream: &str, offsets: &[(u32, u64)]) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(OFFSETS)?;
            for &(partition, offset) in offsets {
                table.insert((group, stream, partition), offset)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    pub fn committed_offsets(&self, group: &str, stream: &str) -> Result<BTreeMap<u32, u64>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OFFSETS)?;
        let mut offsets = BTreeMap::new();
        for entry in table.range((group, stream, 0u32)..=(group, stream, u32::MAX))? {
            let (key, offset) = entry?;
            offsets.insert(key.value().2, offset.value());
        }
        Ok(offsets)
    }

    /// Every (group, stream) pair that has committed offsets.
    pub fn groups(&self) -> Result<Vec<(String, String)>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OFFSETS)?;
        let mut groups: Vec<(String, String)> = Vec::new();
        for entry in table.iter()? {
            let (key, _) = entry?;
            let (group, stream, _) = key.value();
            if groups.last().is_none_or(|(g, s)| g != group || s != stream) {
                groups.push((group.to_string(), stream.to_string()));
            }
        }
        Ok(groups)
    }

    /// Applies every write in one transaction: all or nothing.
    pub fn write_all(&self, writes: &[MetaWrite]) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        {
            let mut streams = txn.open_table(STREAMS)?;
            let mut resources = txn.open_table(RESOURCES)?;
            let mut versions = txn.open_table(CONTRACT_VERSIONS)?;
            for write in writes {
                match write {
                    MetaWrite::Stream { name, json } => {
                        streams.insert(name.as_str(), json.as_slice())?;
                    }
                    MetaWrite::Resource { kind, id, json } => {
                        resources.insert((*kind, id.as_str()), json.as_slice())?;
                    }
                    MetaWrite::ContractVersion { contract_id, sequence, json } => {
                        versions.insert((contract_id.as_str(), *sequence), json.as_slice())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Every stored resource as (kind, id, json).
    pub fn resources(&self) -> Result<Vec<(String, String, Vec<u8>)>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RESOURCES)?;
        let mut resources = Vec::new();
        for entry in table.iter()? {
            let (key, json) = entry?;
            let (kind, id) = key.value();
            resources.push((kind.to_string(), id.to_string(), json.value().to_vec()));
        }
        Ok(resources)
    }

    /// Every stored contract version as (contract id, sequence, json), in apply order per id.
    pub fn contract_versions(&self) -> Result<Vec<(String, u32, Vec<u8>)>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CONTRACT_VERSIONS)?;
        let mut versions = Vec::new();
        for entry in table.iter()? {
            let (key, json) = entry?;
            let (id, sequence) = key.value();
            versions.push((id.to_string(), sequence, json.value().to_vec()));
        }
        Ok(versions)
    }

    /// Where each dead letter was moved, if it was, in the order asked (one read transaction).
    pub fn dead_letters_replayed(&self, dead_letter_stream: &str, letters: &[(u32, u64)]) -> Result<Vec<Option<u64>>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DEAD_LETTERS_REPLAYED)?;
        let mut replayed = Vec::with_capacity(letters.len());
        for &(partition, offset) in letters {
            replayed.push(table.get((dead_letter_stream, partition, offset))?.map(|v| v.value()));
        }
        Ok(replayed)
    }

    /// Records a replay batch before it is appended (`intent_json`, see `dead_letter`), so a
    /// crash between the append and `complete_dead_letter_replay` can be resolved later.
    pub fn put_dead_letter_replay_intent(&self, dead_letter_stream: &str, intent_json: &[u8]) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        txn.open_table(DEAD_LETTER_REPLAY_INTENTS)?.insert(dead_letter_stream, intent_json)?;
        txn.commit()?;
        Ok(())
    }

    /// The unfinished replay batch of a dead-letter stream, if there is one.
    pub fn dead_letter_replay_intent(&self, dead_letter_stream: &str) -> Result<Option<Vec<u8>>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DEAD_LETTER_REPLAY_INTENTS)?;
        Ok(table.get(dead_letter_stream)?.map(|v| v.value().to_vec()))
    }

    /// Every unfinished replay batch as (dead-letter stream, intent JSON).
    pub fn dead_letter_replay_intents(&self) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DEAD_LETTER_REPLAY_INTENTS)?;
        let mut intents = Vec::new();
        for entry in table.iter()? {
            let (name, json) = entry?;
            intents.push((name.value().to_string(), json.value().to_vec()));
        }
        Ok(intents)
    }

    /// Records the moves of a replay batch, `(partition, offset, target offset)` each, and
    /// removes the stream's replay intent, in one transaction: after a crash either both are
    /// there or neither.
    pub fn complete_dead_letter_replay(&self, dead_letter_stream: &str, moved: &[(u32, u64, u64)]) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(DEAD_LETTERS_REPLAYED)?;
            for &(partition, offset, target_offset) in moved {
                table.insert((dead_letter_stream, partition, offset), target_offset)?;
            }
            txn.open_table(DEAD_LETTER_REPLAY_INTENTS)?.remove(dead_letter_stream)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Records `principal` as the creator of `group` unless the group already has one, in one
    /// transaction, so two first users racing get one creator. At most `groups_max` groups are
    /// recorded (`group.limit_reached` past that).
    pub fn claim_group(&self, group: &str, principal: &str, groups_max: usize) -> Result<GroupClaim, Error> {
        let txn = self.db.begin_write()?;
        {
            let mut creators = txn.open_table(GROUP_CREATORS)?;
            if let Some(creator) = creators.get(group)? {
                return Ok(GroupClaim::Existing(creator.value().to_string()));
            }
            if creators.len()? >= groups_max as u64 {
                return Err(Error::new(
                    crate::error::Kind::Conflict,
                    crate::error::codes::GROUP_LIMIT_REACHED,
                    format!("a broker records at most {groups_max} consumer groups"),
                ));
            }
            creators.insert(group, principal)?;
        }
        txn.commit()?;
        Ok(GroupClaim::Created)
    }

    /// Records that `group` was used on `stream`.
    pub fn add_group_stream(&self, group: &str, stream: &str) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        txn.open_table(GROUP_STREAMS)?.insert((group, stream), ())?;
        txn.commit()?;
        Ok(())
    }

    /// Every recorded group as (group, creator, streams it was used on).
    pub fn group_records(&self) -> Result<Vec<(String, String, Vec<String>)>, Error> {
        let txn = self.db.begin_read()?;
        let mut records: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        for entry in txn.open_table(GROUP_CREATORS)?.iter()? {
            let (group, creator) = entry?;
            records.insert(group.value().to_string(), (creator.value().to_string(), Vec::new()));
        }
        for entry in txn.open_table(GROUP_STREAMS)?.iter()? {
            let (key, _) = entry?;
            let (group, stream) = key.value();
            if let Some((_, streams)) = records.get_mut(group) {
                streams.push(stream.to_string());
            }
        }
        Ok(records.into_iter().map(|(group, (creator, streams))| (group, creator, streams)).collect())
    }

    /// Reserves `count` producer ids no earlier reservation returned, durably (the commit is
    /// fsynced before the range is returned), starting no lower than `floor`.
    pub fn reserve_producer_ids(&self, count: u64, floor: i64) -> Result<std::ops::Range<i64>, Error> {
        let txn = self.db.begin_write()?;
        let reserved = {
            let mut table = txn.open_table(PRODUCER_IDS)?;
            let stored = table.get(PRODUCER_IDS_NEXT)?.map(|next| next.value());
            let start = stored.unwrap_or(0).max(floor).max(0);
            let count = i64::try_from(count).map_err(|_| Error::internal("producer id reservation too large"))?;
            let end = start.checked_add(count).ok_or_else(|| Error::internal("producer ids are exhausted"))?;
            table.insert(PRODUCER_IDS_NEXT, end)?;
            start..end
        };
        txn.commit()?;
        Ok(reserved)
    }
}

/// Creates `path` empty and readable by its owner only (mode 0600) if it does not exist, and
/// tightens it to 0600 if it does, so the database redb then opens in it is never world-readable.
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}
