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
//! - `contract_versions`: (subject, id) → (); the schemas a data contract registered under a
//!   subject (`contract.rs`): such a subject is *contract-fed*, changed through `weft apply` only.
//!
//! Every mutation holds `write_lock` from its first read to its commit, so the checks it
//! makes (compatibility, existence, limits) hold when it writes.
//!
//! This file holds the layout, the limits and the row-level reads every operation shares;
//! the public operations are grouped by what they do: `lookup.rs` (reads), `register.rs`
//! (compatibility checks and registration), `delete.rs` (soft and hard deletes), `config.rs`
//! (compatibility levels and modes), `contract.rs` (subjects fed by data contracts).

mod config;
mod contract;
mod delete;
mod lookup;
mod register;

use std::path::Path;
use std::sync::Mutex;

use redb::{Database, ReadTransaction, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::avro;
use crate::compatibility::ParsedSchema;
use crate::error::RegistryError;
use crate::json_schema;
use crate::model::{CompatibilityMode, Mode, SchemaReference, SchemaType, StoredSchema, SubjectVersion};

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
const CONTRACT_VERSIONS: TableDefinition<(&str, u32), ()> = TableDefinition::new("contract_versions");

const SETTING_COMPATIBILITY: &str = "compatibility";
const SETTING_MODE: &str = "mode";
const COUNTER_NEXT_SCHEMA_ID: &str = "next_schema_id";

/// The compatibility level a fresh registry starts with.
pub const DEFAULT_COMPATIBILITY: CompatibilityMode = CompatibilityMode::Backward;

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

/// Creates `path` empty with mode 0600 unless it exists, then makes sure it is 0600.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

fn not_permitted(message: impl Into<String>) -> RegistryError {
    RegistryError::OperationNotPermitted(message.into())
}

impl Registry {
    /// Opens (or creates) the registry file at `path`.
    /// The file is created readable by its owner only (mode 0600), and tightened to 0600 if it exists.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        create_private_file(path).map_err(|error| RegistryError::Store(format!("cannot create {}: {error}", path.display())))?;
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
        txn.open_table(CONTRACT_VERSIONS)?;
        txn.commit()?;
        Ok(Registry { db, write_lock: Mutex::new(()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while holding the lock cannot leave redb half-written (transactions are
        // atomic), so a poisoned lock is safe to take over.
        self.write_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

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

    fn global_compatibility_in(&self, txn: &ReadTransaction) -> Result<CompatibilityMode, RegistryError> {
        Ok(self.setting(txn, SETTING_COMPATIBILITY)?.and_then(|level| CompatibilityMode::parse(&level)).unwrap_or(DEFAULT_COMPATIBILITY))
    }

    fn effective_compatibility_in(&self, txn: &ReadTransaction, subject: &str) -> Result<CompatibilityMode, RegistryError> {
        match self.subject_setting(txn, SUBJECT_COMPATIBILITY, subject)?.and_then(|level| CompatibilityMode::parse(&level)) {
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
}
