//! The registry's settings: compatibility levels and modes, global and per subject.
//!
//! Owns reading, setting and deleting them. What a level checks is in
//! [`crate::compatibility`]; what a mode refuses is enforced where registrations and deletes run.

use redb::{ReadableDatabase, ReadableTableMetadata};

use super::{
    DEFAULT_COMPATIBILITY, Registry, SETTING_COMPATIBILITY, SETTING_MODE, SETTINGS, SUBJECT_COMPATIBILITY, SUBJECT_MODE, SUBJECTS,
};
use super::{not_permitted, validate_subject};
use crate::error::RegistryError;
use crate::model::{CompatibilityMode, Mode};

impl Registry {
    /// The global level (`None`) or a subject's own level, if it has one.
    pub fn compatibility(&self, subject: Option<&str>) -> Result<Option<CompatibilityMode>, RegistryError> {
        let txn = self.db.begin_read()?;
        match subject {
            None => Ok(Some(self.global_compatibility_in(&txn)?)),
            Some(subject) => {
                Ok(self.subject_setting(&txn, SUBJECT_COMPATIBILITY, subject)?.and_then(|level| CompatibilityMode::parse(&level)))
            }
        }
    }

    /// The level that applies to `subject`: its own, else the global one.
    pub fn effective_compatibility(&self, subject: &str) -> Result<CompatibilityMode, RegistryError> {
        let txn = self.db.begin_read()?;
        self.effective_compatibility_in(&txn, subject)
    }

    /// Sets the global level (`None`) or a subject's level.
    pub fn set_compatibility(&self, subject: Option<&str>, level: CompatibilityMode) -> Result<(), RegistryError> {
        if let Some(subject) = subject {
            validate_subject(subject)?;
        }
        let _guard = self.lock();
        let write = self.db.begin_write()?;
        match subject {
            None => write.open_table(SETTINGS)?.insert(SETTING_COMPATIBILITY, level.name())?.is_some(),
            Some(subject) => write.open_table(SUBJECT_COMPATIBILITY)?.insert(subject, level.name())?.is_some(),
        };
        write.commit()?;
        Ok(())
    }

    /// Removes a subject's level (40408 if it had none) or resets the global one to the
    /// default; returns the level that was in force.
    pub fn delete_compatibility(&self, subject: Option<&str>) -> Result<CompatibilityMode, RegistryError> {
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
