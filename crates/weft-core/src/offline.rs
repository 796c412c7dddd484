//! Reading a stopped server's data directory without changing it, for the binary's offline
//! tools (`weft audit verify --data-dir`). Nothing here opens a partition for writing or runs
//! recovery: a torn or tampered log is reported as it is, never repaired.

use std::path::Path;

use crate::error::Error;

/// Every record value of one partition of `stream`, with its offset, read-only and in order;
/// and, if the files end in a torn or damaged batch, where and why.
pub struct OfflineRecords {
    pub values: Vec<(u64, Vec<u8>)>,
    pub damage: Option<String>,
}

/// Reads the record values of `stream`'s `partition` under `data_dir`, read-only.
/// Bounded by what is on disk: for the small system streams (the audit log) it is used with.
pub fn read_record_values(data_dir: &Path, stream: &str, partition: u32) -> Result<OfflineRecords, Error> {
    let dir = data_dir.join("streams").join(stream).join(partition.to_string());
    let mut values = Vec::new();
    let mut damage = None;
    let report = weft_log::scan_partition_read_only(&dir, |batch| match batch.decompress_records() {
        Ok(data) => {
            for record in batch.records_in(&data) {
                match record {
                    Ok(record) => values.push((record.offset, record.value.unwrap_or_default().to_vec())),
                    Err(error) => {
                        damage.get_or_insert_with(|| format!("batch at offset {} has a bad record: {error}", batch.base_offset()));
                    }
                }
            }
        }
        Err(error) => {
            damage.get_or_insert_with(|| format!("batch at offset {} cannot be decoded: {error}", batch.base_offset()));
        }
    })?;
    if let Some(stop) = report.stopped {
        damage.get_or_insert_with(|| format!("{} at byte {}: {}", stop.file.display(), stop.position, stop.reason));
    }
    Ok(OfflineRecords { values, damage })
}
