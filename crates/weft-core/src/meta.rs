//! The metadata store: stream configurations and consumer groups' committed offsets,
//! in one `redb` database (`<data-dir>/meta.redb`, ACID, fsync on every commit).
//!
//! Events never go here; only small, slowly changing state does.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::Error;

const STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("streams");
/// (group, stream, partition) -> next offset to read.
const OFFSETS: TableDefinition<(&str, &str, u32), u64> = TableDefinition::new("group_offsets");

pub struct MetaStore {
    db: Database,
}

impl MetaStore {
    pub fn open(path: &Path) -> Result<Self, Error> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(STREAMS)?;
        txn.open_table(OFFSETS)?;
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
}
