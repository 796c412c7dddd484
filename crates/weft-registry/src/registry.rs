//! The registry store: schemas under global ids, subjects with versions, soft-delete flags,
//! compatibility and mode settings, in one `redb` file (ACID, fsync on every commit).
//!
//! Layout (one table each):
//! - `schemas`: id → JSON record `{schemaType, schema, references, dedup}`; never rewritten.
//! - `schema_digests`: (FNV-1a 64 of the dedup key, id) → (); the dedup index.
//! - `subject_versions`: (subject, version) → (id, soft-deleted).
//! - `id_versions`: (id, subject, version) → (); the reverse index.
//! - `referenced_by`: (subject, version, referring id) → ().
//! - `subjects`: subject → (); every subject with at least one version row.
//! - `subject_compatibility`, `subject_mode`: subject → level / mode name.
//! - `settings`: `compatibility` / `mode` → global level / mode; `counters`: `next_schema_id`.
//!
//! Every mutation holds `write_lock` from its first read to its commit, so the checks it
//! makes (compatibility, existence, limits) hold when it writes.

use std::path::Path;
use std::sync::Mutex;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::avro;
use crate::compatibility::{ParsedSchema, check_pair};
use crate::error::RegistryError;
use crate::json_schema;
use crate::model::{
    CompatibilityLevel, CompatibilityTarget, CompatibilityVerdict, DeletedFilter, Mode, RegisteredSchema, SchemaReference, SchemaType,
    StoredSchema, SubjectVersion, VersionSelector,
};

/// Largest schema text accepted (42209 beyond).
pub const SCHEMA_BYTES_MAX: usize = 1024 * 1024;
/// Most distinct schemas (global ids) the registry holds.
pub const SCHEMAS_MAX: u64 = 10_000;
/// Most subjects, live or soft-deleted.
pub const SUBJECTS_MAX: u64 = 10_000;
/// Most versions one subject holds, live or soft-deleted.
pub const SUBJECT_VERSIONS_MAX: usize = 1_000;
/// Longest subject name.
pub const SUBJECT_BYTES_MAX: usize = 255;
/// Most references one schema may name, counting references of references.
pub const SCHEMA_REFERENCES_MAX: usize = 100;

const SCHEMAS: TableDefinition<u32, &[u8]> = TableDefinition::new("schemas");
const SCHEMA_DIGESTS: TableDefinition<(u64, u32), ()> = TableDefinition::new("schema_digests");
const SUBJECT_VERSIONS: TableDefinition<(&str, u32), (u32, bool)> = TableDefinition::new("subject_versions");
const ID_VERSIONS: TableDefinition<(u32, &str, u32), ()> = TableDefinition::new("id_versions");
const REFERENCED_BY: TableDefinition<(&str, u32, u32), ()> = TableDefinition::new("referenced_by");
const SUBJECTS: TableDefinition<&str, ()> = TableDefinition::new("subjects");
const SUBJECT_COMPATIBILITY: TableDefinition<&str, &str> = TableDefinition::new("subject_compatibility");
const SUBJECT_MODE: TableDefinition<&str, &str> = TableDefinition::new("subject_mode");
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

const SETTING_COMPATIBILITY: &str = "compatibility";
const SETTING_MODE: &str = "mode";
const COUNTER_NEXT_SCHEMA_ID: &str = "next_schema_id";

/// The compatibility level a fresh registry starts with.
pub const DEFAULT_COMPATIBILITY: CompatibilityLevel = CompatibilityLevel::Backward;

#[derive(Serialize, Deserialize)]
struct SchemaRecord {
    #[serde(rename = "schemaType")]
    schema_type: SchemaType,
    schema: String,
    #[serde(default)]
    references: Vec<SchemaReference>,
    /// Type, canonical text and references: equal keys mean the same schema id.
    dedup: String,
}

impl SchemaRecord {
    fn stored(self) -> StoredSchema {
        StoredSchema { schema_type: self.schema_type, schema: self.schema, references: self.references }
    }
}

/// A schema parsed and keyed, ready to compare or register.
struct PreparedSchema {
    parsed: ParsedSchema,
    dedup: String,
}

/// A Confluent-compatible schema registry over one `redb` file. Every method takes `&self`
/// and may block on disk I/O: call it from a blocking context.
pub struct Registry {
    db: Database,
    write_lock: Mutex<()>,
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn validate_subject(subject: &str) -> Result<(), RegistryError> {
    let valid =
        !subject.is_empty() && subject.len() <= SUBJECT_BYTES_MAX && !subject.chars().any(char::is_control) && subject != "__GLOBAL";
    if valid { Ok(()) } else { Err(RegistryError::InvalidSubject(subject.chars().take(SUBJECT_BYTES_MAX).collect())) }
}

fn not_permitted(message: impl Into<String>) -> RegistryError {
    RegistryError::OperationNotPermitted(message.into())
}

impl Registry {
    /// Opens (or creates) the registry file at `path`.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(SCHEMAS)?;
        txn.open_table(SCHEMA_DIGESTS)?;
        txn.open_table(SUBJECT_VERSIONS)?;
        txn.open_table(ID_VERSIONS)?;
        txn.open_table(REFERENCED_BY)?;
        txn.open_table(SUBJECTS)?;
        txn.open_table(SUBJECT_COMPATIBILITY)?;
        txn.open_table(SUBJECT_MODE)?;
        txn.open_table(SETTINGS)?;
        txn.open_table(COUNTERS)?;
        txn.commit()?;
        Ok(Registry { db, write_lock: Mutex::new(()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while holding the lock cannot leave redb half-written (transactions are
        // atomic), so a poisoned lock is safe to take over.
        self.write_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // ---- reads -------------------------------------------------------------------------

    fn record(&self, txn: &ReadTransaction, id: u32) -> Result<Option<SchemaRecord>, RegistryError> {
        let table = txn.open_table(SCHEMAS)?;
        match table.get(id)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(bytes.value())?)),
            None => Ok(None),
        }
    }

    /// Every version row of `subject`, in version order: (version, id, deleted).
    fn version_rows(&self, txn: &ReadTransaction, subject: &str) -> Result<Vec<(u32, u32, bool)>, RegistryError> {
        let table = txn.open_table(SUBJECT_VERSIONS)?;
        let mut rows = Vec::new();
        for entry in table.range((subject, 0u32)..=(subject, u32::MAX))? {
            let (key, value) = entry?;
            let (id, deleted) = value.value();
            rows.push((key.value().1, id, deleted));
        }
        Ok(rows)
    }

    fn id_for_dedup(&self, txn: &ReadTransaction, dedup: &str) -> Result<Option<u32>, RegistryError> {
        let digest = fnv1a64(dedup.as_bytes());
        let candidates: Vec<u32> = {
            let table = txn.open_table(SCHEMA_DIGESTS)?;
            let mut ids = Vec::new();
            for entry in table.range((digest, 0u32)..=(digest, u32::MAX))? {
                ids.push(entry?.0.value().1);
            }
            ids
        };
        for id in candidates {
            if self.record(txn, id)?.is_some_and(|record| record.dedup == dedup) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The texts of every schema `references` names, referenced-first, deduplicated.
    fn reference_texts(
        &self,
        txn: &ReadTransaction,
        references: &[SchemaReference],
        texts: &mut Vec<(u32, String)>,
    ) -> Result<(), RegistryError> {
        for reference in references {
            if texts.len() >= SCHEMA_REFERENCES_MAX {
                return Err(RegistryError::InvalidSchema(format!("more than {SCHEMA_REFERENCES_MAX} references")));
            }
            let row = self.version_rows(txn, &reference.subject)?.into_iter().find(|&(version, _, _)| version == reference.version);
            let Some((_, id, _)) = row else {
                return Err(RegistryError::InvalidSchema(format!(
                    "reference {:?} points at subject '{}' version {}, which does not exist",
                    reference.name, reference.subject, reference.version
                )));
            };
            if texts.iter().any(|(known, _)| *known == id) {
                continue;
            }
            let record = self.record(txn, id)?.ok_or_else(|| RegistryError::Store(format!("schema {id} is missing")))?;
            self.reference_texts(txn, &record.references, texts)?;
            texts.push((id, record.schema));
        }
        Ok(())
    }

    fn prepare(
        &self,
        txn: &ReadTransaction,
        schema_type: SchemaType,
        text: &str,
        references: &[SchemaReference],
    ) -> Result<PreparedSchema, RegistryError> {
        if text.len() > SCHEMA_BYTES_MAX {
            return Err(RegistryError::SchemaTooLarge(format!(
                "Schema is {} bytes, larger than the maximum of {SCHEMA_BYTES_MAX} bytes",
                text.len()
            )));
        }
        let (parsed, canonical) = match schema_type {
            SchemaType::Protobuf => {
                return Err(RegistryError::InvalidSchema("PROTOBUF schemas are not supported by Weft; register AVRO or JSON".to_string()));
            }
            SchemaType::Json => {
                // JSON Schema references are compared by name, so their texts are only checked to exist.
                self.reference_texts(txn, references, &mut Vec::new())?;
                let value = json_schema::parse(text).map_err(RegistryError::InvalidSchema)?;
                let canonical = json_schema::canonical(&value);
                (ParsedSchema::Json(value), canonical)
            }
            SchemaType::Avro => {
                let mut texts = Vec::new();
                self.reference_texts(txn, references, &mut texts)?;
                let texts: Vec<String> = texts.into_iter().map(|(_, text)| text).collect();
                let (schema, value) = avro::parse(text, &texts).map_err(RegistryError::InvalidSchema)?;
                (ParsedSchema::Avro(schema), avro::canonical(&value))
            }
        };
        let dedup = format!("{}\n{}\n{}", schema_type.as_str(), canonical, serde_json::to_string(references)?);
        Ok(PreparedSchema { parsed, dedup })
    }

    fn parse_stored(&self, txn: &ReadTransaction, id: u32) -> Result<ParsedSchema, RegistryError> {
        let record = self.record(txn, id)?.ok_or_else(|| RegistryError::Store(format!("schema {id} is missing")))?;
        // Stored schemas passed `prepare` when registered; failing now means a broken store.
        self.prepare(txn, record.schema_type, &record.schema, &record.references)
            .map(|prepared| prepared.parsed)
            .map_err(|error| RegistryError::Store(format!("stored schema {id} no longer parses: {error}")))
    }

    fn setting(&self, txn: &ReadTransaction, key: &str) -> Result<Option<String>, RegistryError> {
        let table = txn.open_table(SETTINGS)?;
        Ok(table.get(key)?.map(|value| value.value().to_string()))
    }

    fn subject_setting(
        &self,
        txn: &ReadTransaction,
        definition: TableDefinition<&str, &str>,
        subject: &str,
    ) -> Result<Option<String>, RegistryError> {
        let table = txn.open_table(definition)?;
        Ok(table.get(subject)?.map(|value| value.value().to_string()))
    }

    fn global_compatibility_in(&self, txn: &ReadTransaction) -> Result<CompatibilityLevel, RegistryError> {
        Ok(self.setting(txn, SETTING_COMPATIBILITY)?.and_then(|level| CompatibilityLevel::parse(&level)).unwrap_or(DEFAULT_COMPATIBILITY))
    }

    fn effective_compatibility_in(&self, txn: &ReadTransaction, subject: &str) -> Result<CompatibilityLevel, RegistryError> {
        match self.subject_setting(txn, SUBJECT_COMPATIBILITY, subject)?.and_then(|level| CompatibilityLevel::parse(&level)) {
            Some(level) => Ok(level),
            None => self.global_compatibility_in(txn),
        }
    }

    fn global_mode_in(&self, txn: &ReadTransaction) -> Result<Mode, RegistryError> {
        Ok(self.setting(txn, SETTING_MODE)?.and_then(|mode| Mode::parse(&mode)).unwrap_or(Mode::ReadWrite))
    }

    fn effective_mode_in(&self, txn: &ReadTransaction, subject: &str) -> Result<Mode, RegistryError> {
        let global = self.global_mode_in(txn)?;
        if global == Mode::ReadOnlyOverride {
            return Ok(global);
        }
        Ok(self.subject_setting(txn, SUBJECT_MODE, subject)?.and_then(|mode| Mode::parse(&mode)).unwrap_or(global))
    }

    fn stored_version(
        &self,
        txn: &ReadTransaction,
        subject: &str,
        version: u32,
        id: u32,
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let record = self.record(txn, id)?.ok_or_else(|| RegistryError::Store(format!("schema {id} is missing")))?;
        Ok(SubjectVersion { subject: subject.to_string(), version, id, deleted, schema: record.stored() })
    }

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

    // ---- compatibility -----------------------------------------------------------------

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
        level: CompatibilityLevel,
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
        if level == CompatibilityLevel::None {
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

    // ---- registration ------------------------------------------------------------------

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

    // ---- deletes -----------------------------------------------------------------------

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

    // ---- configuration -----------------------------------------------------------------

    /// The global level (`None`) or a subject's own level, if it has one.
    pub fn compatibility(&self, subject: Option<&str>) -> Result<Option<CompatibilityLevel>, RegistryError> {
        let txn = self.db.begin_read()?;
        match subject {
            None => Ok(Some(self.global_compatibility_in(&txn)?)),
            Some(subject) => {
                Ok(self.subject_setting(&txn, SUBJECT_COMPATIBILITY, subject)?.and_then(|level| CompatibilityLevel::parse(&level)))
            }
        }
    }

    /// The level that applies to `subject`: its own, else the global one.
    pub fn effective_compatibility(&self, subject: &str) -> Result<CompatibilityLevel, RegistryError> {
        let txn = self.db.begin_read()?;
        self.effective_compatibility_in(&txn, subject)
    }

    /// Sets the global level (`None`) or a subject's level.
    pub fn set_compatibility(&self, subject: Option<&str>, level: CompatibilityLevel) -> Result<(), RegistryError> {
        if let Some(subject) = subject {
            validate_subject(subject)?;
        }
        let _guard = self.lock();
        let write = self.db.begin_write()?;
        match subject {
            None => write.open_table(SETTINGS)?.insert(SETTING_COMPATIBILITY, level.as_str())?.is_some(),
            Some(subject) => write.open_table(SUBJECT_COMPATIBILITY)?.insert(subject, level.as_str())?.is_some(),
        };
        write.commit()?;
        Ok(())
    }

    /// Removes a subject's level (40408 if it had none) or resets the global one to the
    /// default; returns the level that was in force.
    pub fn delete_compatibility(&self, subject: Option<&str>) -> Result<CompatibilityLevel, RegistryError> {
        let _guard = self.lock();
        let previous = self.compatibility(subject)?;
        let write = self.db.begin_write()?;
        let previous = match subject {
            None => {
                write.open_table(SETTINGS)?.remove(SETTING_COMPATIBILITY)?;
                previous.unwrap_or(DEFAULT_COMPATIBILITY)
            }
            Some(subject) => {
                let previous = previous.ok_or_else(|| RegistryError::SubjectCompatibilityNotConfigured(subject.to_string()))?;
                write.open_table(SUBJECT_COMPATIBILITY)?.remove(subject)?;
                previous
            }
        };
        write.commit()?;
        Ok(previous)
    }

    /// The global mode (`None`) or a subject's own mode, if it has one.
    pub fn mode(&self, subject: Option<&str>) -> Result<Option<Mode>, RegistryError> {
        let txn = self.db.begin_read()?;
        match subject {
            None => Ok(Some(self.global_mode_in(&txn)?)),
            Some(subject) => Ok(self.subject_setting(&txn, SUBJECT_MODE, subject)?.and_then(|mode| Mode::parse(&mode))),
        }
    }

    /// Sets the global mode (`None`) or a subject's mode. IMPORT needs an empty registry
    /// (or subject) unless `force`.
    pub fn set_mode(&self, subject: Option<&str>, mode: Mode, force: bool) -> Result<(), RegistryError> {
        if let Some(subject) = subject {
            validate_subject(subject)?;
        }
        let _guard = self.lock();
        if mode == Mode::Import && !force {
            let txn = self.db.begin_read()?;
            let occupied = match subject {
                None => txn.open_table(SUBJECTS)?.len()? > 0,
                Some(subject) => !self.version_rows(&txn, subject)?.is_empty(),
            };
            if occupied {
                return Err(not_permitted("Cannot import since found existing subjects"));
            }
        }
        let write = self.db.begin_write()?;
        match subject {
            None => write.open_table(SETTINGS)?.insert(SETTING_MODE, mode.as_str())?.is_some(),
            Some(subject) => write.open_table(SUBJECT_MODE)?.insert(subject, mode.as_str())?.is_some(),
        };
        write.commit()?;
        Ok(())
    }

    /// Removes a subject's mode (40409 if it had none); returns the mode that was in force.
    pub fn delete_mode(&self, subject: &str) -> Result<Mode, RegistryError> {
        let _guard = self.lock();
        let previous = self.mode(Some(subject))?.ok_or_else(|| RegistryError::SubjectModeNotConfigured(subject.to_string()))?;
        let write = self.db.begin_write()?;
        write.open_table(SUBJECT_MODE)?.remove(subject)?;
        write.commit()?;
        Ok(previous)
    }
}
