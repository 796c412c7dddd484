//! Subjects fed by data contracts: the broker registers each applied contract version's JSON
//! Schema under `<stream>-value` through `register_for_contract`, which marks (subject, id) in
//! `contract_versions`. A marked subject is *contract-fed*: the REST API refuses to register
//! another schema under it, delete it or a version of it, or change its compatibility for
//! anyone but an admin (`RegistryError::SubjectContractFed`, 40301), and the broker accepts a
//! framed event on the governed stream only with the id of a contract version.
//!
//! Owns the mark and its reads; who counts as an admin is the HTTP edge's question.

use redb::ReadableDatabase;

use super::{CONTRACT_VERSIONS, Registry};
use crate::error::RegistryError;
use crate::model::{RegisteredSchema, SchemaReference, SchemaType};

impl Registry {
    /// Registers a contract's schema under `subject` (checked like any registration) and marks
    /// the id as a version of the contract. Registering the same schema again (every start,
    /// every apply) only marks it, so a mark lost to a crash between the two commits comes back.
    pub fn register_for_contract(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[SchemaReference],
    ) -> Result<RegisteredSchema, RegistryError> {
        let registered = self.register(subject, schema_type, schema, references)?;
        let _guard = self.lock();
        let write = self.db.begin_write()?;
        write.open_table(CONTRACT_VERSIONS)?.insert((subject, registered.id), ())?;
        write.commit()?;
        Ok(registered)
    }

    /// Is `subject` fed by a data contract (has a contract ever registered under it)?
    pub fn is_contract_fed(&self, subject: &str) -> Result<bool, RegistryError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CONTRACT_VERSIONS)?;
        Ok(table.range((subject, 0u32)..=(subject, u32::MAX))?.next().transpose()?.is_some())
    }

    /// Did a data contract register schema `id` under `subject`?
    pub fn is_contract_version(&self, subject: &str, id: u32) -> Result<bool, RegistryError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CONTRACT_VERSIONS)?;
        Ok(table.get((subject, id))?.is_some())
    }
}
