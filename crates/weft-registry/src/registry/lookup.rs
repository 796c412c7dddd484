//! Reading the registry: schemas by global id, subjects, their versions, the ids a schema is
//! used under, what references a version, and looking a schema up by content.
//!
//! Owns the read-only public operations. It takes no lock (each read is one redb read
//! transaction, a consistent snapshot) and changes nothing.

use redb::ReadableDatabase;

use super::{ID_VERSIONS, REFERENCED_BY, Registry, SUBJECT_VERSIONS, SUBJECTS, SchemaRecord};
use crate::error::RegistryError;
use crate::model::{DeletedFilter, SchemaReference, SchemaType, StoredSchema, SubjectVersion, VersionSelector};

impl Registry {
    /// The schema stored under a global id, if any (soft- or hard-deleted versions do not
    /// remove it: ids are immutable and may be cached forever).
    pub fn schema_by_id(&self, id: u32) -> Result<Option<StoredSchema>, RegistryError> {
        let txn = self.db.begin_read()?;
        Ok(self.record(&txn, id)?.map(SchemaRecord::stored))
    }

    /// The latest live version of `subject`, if it has one.
    pub fn latest(&self, subject: &str) -> Result<Option<SubjectVersion>, RegistryError> {
        let txn = self.db.begin_read()?;
        let rows = self.version_rows(&txn, subject)?;
        match rows.into_iter().rev().find(|&(_, _, deleted)| !deleted) {
            Some((version, id, _)) => Ok(Some(self.stored_version(&txn, subject, version, id, false)?)),
            None => Ok(None),
        }
    }

    /// One version of `subject`; soft-deleted versions only when `include_deleted`.
    pub fn version(&self, subject: &str, selector: VersionSelector, include_deleted: bool) -> Result<SubjectVersion, RegistryError> {
        let txn = self.db.begin_read()?;
        let rows = self.version_rows(&txn, subject)?;
        if rows.is_empty() || (!include_deleted && rows.iter().all(|&(_, _, deleted)| deleted)) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        let visible = |&&(_, _, deleted): &&(u32, u32, bool)| include_deleted || !deleted;
        let row = match selector {
            VersionSelector::Latest => rows.iter().rev().find(visible),
            VersionSelector::Number(number) => rows.iter().filter(visible).find(|(version, _, _)| *version == number),
        };
        let Some(&(version, id, deleted)) = row else {
            let shown = match selector {
                VersionSelector::Latest => "latest".to_string(),
                VersionSelector::Number(number) => number.to_string(),
            };
            return Err(RegistryError::VersionNotFound(shown));
        };
        self.stored_version(&txn, subject, version, id, deleted)
    }

    /// Subject names, sorted, filtered by prefix and soft-delete state.
    pub fn subjects(&self, prefix: &str, filter: DeletedFilter) -> Result<Vec<String>, RegistryError> {
        let txn = self.db.begin_read()?;
        let names: Vec<String> = {
            let table = txn.open_table(SUBJECTS)?;
            let mut names = Vec::new();
            for entry in table.range(prefix..)? {
                let name = entry?.0.value().to_string();
                if !name.starts_with(prefix) {
                    break;
                }
                names.push(name);
            }
            names
        };
        let mut subjects = Vec::new();
        for name in names {
            let live = self.version_rows(&txn, &name)?.iter().any(|&(_, _, deleted)| !deleted);
            let keep = match filter {
                DeletedFilter::Live => live,
                DeletedFilter::Include => true,
                DeletedFilter::Only => !live,
            };
            if keep {
                subjects.push(name);
            }
        }
        Ok(subjects)
    }

    /// Version numbers of `subject`; 40401 when it has none matching.
    pub fn versions(&self, subject: &str, filter: DeletedFilter) -> Result<Vec<u32>, RegistryError> {
        let txn = self.db.begin_read()?;
        let rows = self.version_rows(&txn, subject)?;
        let versions: Vec<u32> = rows
            .iter()
            .filter(|&&(_, _, deleted)| match filter {
                DeletedFilter::Live => !deleted,
                DeletedFilter::Include => true,
                DeletedFilter::Only => deleted,
            })
            .map(|&(version, _, _)| version)
            .collect();
        if rows.is_empty() || (filter == DeletedFilter::Live && versions.is_empty()) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(versions)
    }

    /// (subject, version) pairs that use schema `id`; 40403 when the id is unknown.
    pub fn versions_for_id(&self, id: u32, include_deleted: bool) -> Result<Vec<(String, u32)>, RegistryError> {
        let txn = self.db.begin_read()?;
        if self.record(&txn, id)?.is_none() {
            return Err(RegistryError::SchemaNotFound(id.to_string()));
        }
        let pairs: Vec<(String, u32)> = {
            let table = txn.open_table(ID_VERSIONS)?;
            let mut pairs = Vec::new();
            for entry in table.range((id, "", 0u32)..)? {
                let (key, _) = entry?;
                let (entry_id, subject, version) = key.value();
                if entry_id != id {
                    break;
                }
                pairs.push((subject.to_string(), version));
            }
            pairs
        };
        let versions = txn.open_table(SUBJECT_VERSIONS)?;
        let mut found = Vec::new();
        for (subject, version) in pairs {
            let deleted = versions.get((subject.as_str(), version))?.is_some_and(|value| value.value().1);
            if include_deleted || !deleted {
                found.push((subject, version));
            }
        }
        Ok(found)
    }

    /// Ids of schemas that reference `subject` at `version`.
    pub fn referenced_by(&self, subject: &str, selector: VersionSelector) -> Result<Vec<u32>, RegistryError> {
        let version = self.version(subject, selector, false)?.version;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REFERENCED_BY)?;
        let mut ids = Vec::new();
        for entry in table.range((subject, version, 0u32)..=(subject, version, u32::MAX))? {
            ids.push(entry?.0.value().2);
        }
        Ok(ids)
    }

    /// Looks `schema` up among `subject`'s versions (Confluent `POST /subjects/{subject}`).
    pub fn lookup(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[SchemaReference],
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let txn = self.db.begin_read()?;
        let rows = self.version_rows(&txn, subject)?;
        if rows.is_empty() || (!include_deleted && rows.iter().all(|&(_, _, deleted)| deleted)) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        let prepared = self.prepare(&txn, schema_type, schema, references)?;
        let Some(id) = self.id_for_dedup(&txn, &prepared.dedup)? else { return Err(RegistryError::SchemaNotFound(String::new())) };
        let row = rows.iter().rev().find(|&&(_, row_id, deleted)| row_id == id && (include_deleted || !deleted));
        match row {
            Some(&(version, id, deleted)) => self.stored_version(&txn, subject, version, id, deleted),
            None => Err(RegistryError::SchemaNotFound(String::new())),
        }
    }
}
