//! Registering schemas: the compatibility check against a subject's earlier versions, and
//! the registration that must pass it (idempotent, deduplicated by content, IMPORT mode's
//! explicit ids and versions, and the limits on schemas, subjects and versions).
//!
//! Owns when a registration is refused and what one commit writes. The compatibility rules
//! themselves are in [`crate::compatibility`]; deletes and settings are elsewhere.

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::{
    COUNTER_NEXT_SCHEMA_ID, COUNTERS, ID_VERSIONS, PreparedSchema, REFERENCED_BY, Registry, SCHEMA_DIGESTS, SCHEMAS, SCHEMAS_MAX,
    SUBJECT_VERSIONS, SUBJECT_VERSIONS_MAX, SUBJECTS, SUBJECTS_MAX, SchemaRecord, fnv1a64, not_permitted, validate_subject,
};
use crate::compatibility::check_pair;
use crate::error::RegistryError;
use crate::model::{CompatibilityMode, CompatibilityTarget, CompatibilityVerdict, Mode, RegisteredSchema, SchemaReference, SchemaType};

impl Registry {
    /// Checks `schema` against `subject`'s versions named by `target`, under the subject's
    /// effective level. A subject without versions accepts anything (except for
    /// `CompatibilityTarget::Version`, which names a version that must exist).
    pub fn check_compatibility(
        &self,
        subject: &str,
        target: CompatibilityTarget,
        schema_type: SchemaType,
        schema: &str,
        references: &[SchemaReference],
    ) -> Result<CompatibilityVerdict, RegistryError> {
        let txn = self.db.begin_read()?;
        let prepared = self.prepare(&txn, schema_type, schema, references)?;
        let level = self.effective_compatibility_in(&txn, subject)?;
        let messages = self.incompatibilities(&txn, subject, target, level, &prepared)?;
        Ok(CompatibilityVerdict { is_compatible: messages.is_empty(), messages })
    }

    fn incompatibilities(
        &self,
        txn: &ReadTransaction,
        subject: &str,
        target: CompatibilityTarget,
        level: CompatibilityMode,
        prepared: &PreparedSchema,
    ) -> Result<Vec<String>, RegistryError> {
        let live: Vec<(u32, u32)> = self
            .version_rows(txn, subject)?
            .into_iter()
            .filter(|&(_, _, deleted)| !deleted)
            .map(|(version, id, _)| (version, id))
            .collect();
        let against: Vec<(u32, u32)> = match target {
            CompatibilityTarget::Version(number) => {
                if live.is_empty() {
                    return Err(RegistryError::SubjectNotFound(subject.to_string()));
                }
                let row = live.iter().find(|(version, _)| *version == number).ok_or(RegistryError::VersionNotFound(number.to_string()))?;
                vec![*row]
            }
            CompatibilityTarget::Latest => live.last().copied().into_iter().collect(),
            CompatibilityTarget::All if level.is_transitive() => live,
            CompatibilityTarget::All => live.last().copied().into_iter().collect(),
        };
        if level == CompatibilityMode::None {
            return Ok(Vec::new());
        }
        let mut messages = Vec::new();
        let prefix_versions = against.len() > 1;
        for (version, id) in against.iter().rev() {
            let old = self.parse_stored(txn, *id)?;
            for message in check_pair(&prepared.parsed, &old, level) {
                messages.push(if prefix_versions { format!("version {version}: {message}") } else { message });
            }
        }
        Ok(messages)
    }

    /// Registers `schema` under `subject` (idempotent: an identical live version is returned
    /// as is), checked against the subject's compatibility level.
    pub fn register(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[SchemaReference],
    ) -> Result<RegisteredSchema, RegistryError> {
        self.register_with(subject, schema_type, schema, references, None, None)
    }

    /// Like `register`, with an explicit id and version as IMPORT mode allows
    /// (both must be `None` in other modes).
    pub fn register_with(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[SchemaReference],
        explicit_id: Option<u32>,
        explicit_version: Option<u32>,
    ) -> Result<RegisteredSchema, RegistryError> {
        validate_subject(subject)?;
        let _guard = self.lock();
        let txn = self.db.begin_read()?;
        let mode = self.effective_mode_in(&txn, subject)?;
        if mode.is_read_only() {
            return Err(not_permitted(format!("Subject {subject} is in read-only mode")));
        }
        let importing = mode == Mode::Import;
        if !importing && (explicit_id.is_some() || explicit_version.is_some()) {
            return Err(not_permitted(format!("Subject {subject} is not in import mode")));
        }
        let prepared = self.prepare(&txn, schema_type, schema, references)?;
        let existing_id = self.id_for_dedup(&txn, &prepared.dedup)?;
        let rows = self.version_rows(&txn, subject)?;
        if let Some(id) = existing_id
            && let Some(&(version, _, _)) = rows
                .iter()
                .rev()
                .find(|&&(version, row_id, deleted)| row_id == id && !deleted && explicit_version.is_none_or(|wanted| wanted == version))
            && explicit_id.is_none_or(|wanted| wanted == id)
        {
            return Ok(RegisteredSchema { id, version });
        }
        if !importing {
            let level = self.effective_compatibility_in(&txn, subject)?;
            let messages = self.incompatibilities(&txn, subject, CompatibilityTarget::All, level, &prepared)?;
            if !messages.is_empty() {
                return Err(RegistryError::Incompatible { subject: subject.to_string(), messages });
            }
        }
        if rows.len() >= SUBJECT_VERSIONS_MAX {
            return Err(not_permitted(format!("Subject {subject} already has {SUBJECT_VERSIONS_MAX} versions, the most Weft keeps")));
        }
        let version = match explicit_version {
            Some(version) if rows.iter().any(|&(known, _, _)| known == version) => {
                return Err(not_permitted(format!("Subject {subject} already has a version {version}")));
            }
            Some(version) => version,
            None => rows.last().map_or(1, |&(last, _, _)| last + 1),
        };
        let id = match (explicit_id, existing_id) {
            (Some(wanted), Some(existing)) if wanted != existing => {
                return Err(RegistryError::IdDoesNotMatch(format!(
                    "Schema already registered with id {existing} instead of input id {wanted}"
                )));
            }
            (Some(wanted), None) if self.record(&txn, wanted)?.is_some() => {
                return Err(RegistryError::IdDoesNotMatch(format!("Overwrite new schema with id {wanted} is not permitted.")));
            }
            (Some(wanted), _) => wanted,
            (None, Some(existing)) => existing,
            (None, None) => {
                let counters = txn.open_table(COUNTERS)?;
                counters.get(COUNTER_NEXT_SCHEMA_ID)?.map_or(1, |value| value.value()) as u32
            }
        };
        let new_schema = self.record(&txn, id)?.is_none();
        if new_schema && txn.open_table(SCHEMAS)?.len()? >= SCHEMAS_MAX {
            return Err(not_permitted(format!("the registry already holds {SCHEMAS_MAX} schemas, the most Weft keeps")));
        }
        let new_subject = rows.is_empty();
        if new_subject && txn.open_table(SUBJECTS)?.len()? >= SUBJECTS_MAX {
            return Err(not_permitted(format!("the registry already holds {SUBJECTS_MAX} subjects, the most Weft keeps")));
        }
        drop(txn);

        let write = self.db.begin_write()?;
        {
            if new_schema {
                let record = SchemaRecord {
                    schema_type,
                    schema: schema.to_string(),
                    references: references.to_vec(),
                    dedup: prepared.dedup.clone(),
                };
                write.open_table(SCHEMAS)?.insert(id, serde_json::to_vec(&record)?.as_slice())?;
                write.open_table(SCHEMA_DIGESTS)?.insert((fnv1a64(prepared.dedup.as_bytes()), id), ())?;
                let mut counters = write.open_table(COUNTERS)?;
                let next = counters.get(COUNTER_NEXT_SCHEMA_ID)?.map_or(1, |value| value.value());
                counters.insert(COUNTER_NEXT_SCHEMA_ID, next.max(u64::from(id) + 1))?;
                let mut referenced_by = write.open_table(REFERENCED_BY)?;
                for reference in references {
                    referenced_by.insert((reference.subject.as_str(), reference.version, id), ())?;
                }
            }
            write.open_table(SUBJECT_VERSIONS)?.insert((subject, version), (id, false))?;
            write.open_table(ID_VERSIONS)?.insert((id, subject, version), ())?;
            write.open_table(SUBJECTS)?.insert(subject, ())?;
        }
        write.commit()?;
        Ok(RegisteredSchema { id, version })
    }
}
