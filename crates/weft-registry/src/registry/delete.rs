//! Deleting versions and subjects: soft deletes (the version stays readable with
//! `deleted=true` and keeps its id), permanent deletes of soft-deleted ones, and the refusal
//! to delete what another schema still references.
//!
//! Owns the delete rules only. Schema ids are never removed: a permanently deleted version
//! leaves its schema readable by id, since clients may cache ids forever.

use redb::{ReadTransaction, ReadableDatabase};

use super::{ID_VERSIONS, REFERENCED_BY, Registry, SUBJECT_COMPATIBILITY, SUBJECT_MODE, SUBJECT_VERSIONS, SUBJECTS, not_permitted};
use crate::error::RegistryError;
use crate::model::VersionSelector;

impl Registry {
    /// Whether a live (or, for a permanent delete, any) version refers to (subject, version).
    fn check_not_referenced(&self, txn: &ReadTransaction, subject: &str, version: u32, permanent: bool) -> Result<(), RegistryError> {
        let referring: Vec<u32> = {
            let table = txn.open_table(REFERENCED_BY)?;
            let mut ids = Vec::new();
            for entry in table.range((subject, version, 0u32)..=(subject, version, u32::MAX))? {
                ids.push(entry?.0.value().2);
            }
            ids
        };
        let versions = txn.open_table(SUBJECT_VERSIONS)?;
        let id_versions = txn.open_table(ID_VERSIONS)?;
        for id in referring {
            for entry in id_versions.range((id, "", 0u32)..)? {
                let (key, _) = entry?;
                let (entry_id, referring_subject, referring_version) = key.value();
                if entry_id != id {
                    break;
                }
                let deleted = versions.get((referring_subject, referring_version))?.is_some_and(|value| value.value().1);
                if permanent || !deleted {
                    return Err(RegistryError::ReferenceExists(format!(
                        "One or more references exist to the schema {{subject={subject},version={version}}}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn check_writable(&self, txn: &ReadTransaction, subject: &str) -> Result<(), RegistryError> {
        if self.effective_mode_in(txn, subject)?.is_read_only() {
            return Err(not_permitted(format!("Subject {subject} is in read-only mode")));
        }
        Ok(())
    }

    /// Soft-deletes every live version of `subject`, or with `permanent` removes every
    /// soft-deleted one (a live subject must be soft-deleted first). Returns the versions.
    pub fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>, RegistryError> {
        let _guard = self.lock();
        let txn = self.db.begin_read()?;
        let rows = self.version_rows(&txn, subject)?;
        if rows.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        self.check_writable(&txn, subject)?;
        let live: Vec<u32> = rows.iter().filter(|&&(_, _, deleted)| !deleted).map(|&(version, _, _)| version).collect();
        if permanent && !live.is_empty() {
            return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
        }
        if !permanent && live.is_empty() {
            return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
        }
        for &(version, _, _) in &rows {
            self.check_not_referenced(&txn, subject, version, permanent)?;
        }
        drop(txn);
        let write = self.db.begin_write()?;
        let affected: Vec<u32>;
        {
            let mut versions = write.open_table(SUBJECT_VERSIONS)?;
            if permanent {
                let mut id_versions = write.open_table(ID_VERSIONS)?;
                for &(version, id, _) in &rows {
                    versions.remove((subject, version))?;
                    id_versions.remove((id, subject, version))?;
                }
                write.open_table(SUBJECTS)?.remove(subject)?;
                write.open_table(SUBJECT_COMPATIBILITY)?.remove(subject)?;
                write.open_table(SUBJECT_MODE)?.remove(subject)?;
                affected = rows.iter().map(|&(version, _, _)| version).collect();
            } else {
                for &(version, id, deleted) in &rows {
                    if !deleted {
                        versions.insert((subject, version), (id, true))?;
                    }
                }
                affected = live;
            }
        }
        write.commit()?;
        Ok(affected)
    }

    /// Soft-deletes one version, or with `permanent` removes a soft-deleted one.
    pub fn delete_version(&self, subject: &str, selector: VersionSelector, permanent: bool) -> Result<u32, RegistryError> {
        let _guard = self.lock();
        let txn = self.db.begin_read()?;
        let rows = self.version_rows(&txn, subject)?;
        if rows.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        self.check_writable(&txn, subject)?;
        let row = match selector {
            VersionSelector::Latest => rows.iter().rev().find(|&&(_, _, deleted)| permanent || !deleted),
            VersionSelector::Number(number) => rows.iter().find(|&&(version, _, _)| version == number),
        };
        let Some(&(version, id, deleted)) = row else {
            let shown = match selector {
                VersionSelector::Latest => "latest".to_string(),
                VersionSelector::Number(number) => number.to_string(),
            };
            return Err(RegistryError::VersionNotFound(shown));
        };
        if permanent && !deleted {
            return Err(RegistryError::VersionNotSoftDeleted(subject.to_string(), version));
        }
        if !permanent && deleted {
            return Err(RegistryError::VersionSoftDeleted(subject.to_string(), version));
        }
        self.check_not_referenced(&txn, subject, version, permanent)?;
        drop(txn);
        let write = self.db.begin_write()?;
        {
            let mut versions = write.open_table(SUBJECT_VERSIONS)?;
            if permanent {
                versions.remove((subject, version))?;
                write.open_table(ID_VERSIONS)?.remove((id, subject, version))?;
                if rows.len() == 1 {
                    write.open_table(SUBJECTS)?.remove(subject)?;
                }
            } else {
                versions.insert((subject, version), (id, true))?;
            }
        }
        write.commit()?;
        Ok(version)
    }
}
