//! The audit log's entry format, its hash chain, the stored chain head, verification and search.
//!
//! Owns the bytes of an entry and the rules that make tampering visible. Does not own storage: the
//! caller appends each entry's bytes as one record to the system stream [`AUDIT_STREAM`] and then
//! stores the new head with [`write_head`].
//!
//! ## Entry format
//!
//! One JSON object per entry, members in this order, no whitespace, as serde_json writes it:
//!
//! ```json
//! {"seq":0,"time":"2026-11-02T10:00:00.123Z","principal":"bob","action":"consume",
//!  "resource":"Weft::Stream::\"orders\"","decision":"deny","code":"authz.denied",
//!  "source":"127.0.0.1:53412","detail":null,"prev_hash":"000…000","hash":"9f2c…"}
//! ```
//!
//! - `seq` counts from 0 with no gaps; `time` is RFC 3339 UTC with milliseconds.
//! - `decision` is `allow`, `deny` or `auth_failure`; `code` is the stable error code of a failure.
//! - `principal` is null when an authentication failure named none; `detail` is free text such as
//!   the id of a created token (ids only: no secret ever reaches an entry).
//! - `prev_hash` is the previous entry's `hash` (64 zeros for entry 0, [`GENESIS_HASH`]).
//! - `hash` is the hex SHA-256 of the entry's bytes without the `,"hash":"…"` member, i.e. of the
//!   same object serialized with every member up to and including `prev_hash`.
//!
//! Text fields are cut to [`AUDIT_FIELD_BYTES_MAX`] bytes and control characters are replaced by
//! U+FFFD, so an entry stays under [`AUDIT_ENTRY_BYTES_MAX`] and cannot forge log lines.
//!
//! ## What verification detects
//!
//! [`verify`] re-serializes every entry and requires the stored bytes to be exactly that canonical
//! form, its `hash` to match, `seq` to follow on, and `prev_hash` to equal the previous `hash`:
//! a flipped byte, a rewritten entry (even with a valid storage CRC), a removed or reordered entry
//! all break it. A truncated tail leaves a valid chain, so the head (`seq` and `hash` of the last
//! entry) is also stored apart from the segments in `<data-dir>/audit.head`, written atomically;
//! a log that ends before the head is broken. Entries after the head are the crash window between an
//! append and its head update: they are counted (`n_after_head`), not an error.
//! The chain is unkeyed SHA-256: someone who can rewrite both the segments and the head file can
//! rewrite history undetectably. Ship entries or heads elsewhere to defend against that.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::codes;
use crate::encoding::{sha256_hex, unix_ms};
use crate::private_file::write_private_file;

/// The system stream the entries are appended to.
pub const AUDIT_STREAM: &str = "_weft.audit";
/// The chain head's file under the data directory.
pub const AUDIT_HEAD_FILE: &str = "audit.head";
/// Largest entry; text fields are cut so an entry always fits.
pub const AUDIT_ENTRY_BYTES_MAX: usize = 16 * 1024;
/// Longest text field (principal, action, resource, code, source, detail) in bytes.
pub const AUDIT_FIELD_BYTES_MAX: usize = 1024;
/// `prev_hash` of entry 0.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    /// An allowed write or admin action.
    Allow,
    /// An authorization denial.
    Deny,
    /// Authentication failed (missing, malformed, invalid, expired or revoked credentials).
    AuthFailure,
}

/// What the edge records; the chain adds `seq`, `time`'s text, `prev_hash` and `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub time: SystemTime,
    pub principal: Option<String>,
    /// A schema action (`apply`, `produce`, ...), `authenticate`, or an admin operation such as
    /// `token.create`, `token.revoke`, `principal.create`, `policy.apply`.
    pub action: String,
    pub resource: String,
    pub decision: AuditDecision,
    pub code: Option<String>,
    /// The client's address (`ip:port`), with the listener if useful (`kafka 10.0.0.1:5000`).
    pub source: Option<String>,
    pub detail: Option<String>,
}

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    pub seq: u64,
    pub time: String,
    pub principal: Option<String>,
    pub action: String,
    pub resource: String,
    pub decision: AuditDecision,
    pub code: Option<String>,
    pub source: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl AuditEntry {
    /// The entry's time, from its RFC 3339 text.
    pub fn system_time(&self) -> Option<SystemTime> {
        let parsed = OffsetDateTime::parse(&self.time, &Rfc3339).ok()?;
        let nanos = u64::try_from(parsed.unix_timestamp_nanos()).ok()?;
        Some(UNIX_EPOCH + Duration::from_nanos(nanos))
    }

    /// Hex SHA-256 of the entry without its `hash` member.
    fn compute_hash(&self) -> String {
        let body = Self { hash: None, ..self.clone() };
        sha256_hex(&serde_json::to_vec(&body).expect("an audit entry serializes"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuditError {
    pub code: &'static str,
    pub message: String,
}

/// The last entry's `seq` and `hash`, stored apart from the segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}

/// An entry ready to append: its bytes, and the head it becomes once appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedEntry {
    pub seq: u64,
    pub hash: String,
    pub bytes: Vec<u8>,
}

impl PreparedEntry {
    pub fn head(&self) -> AuditHead {
        AuditHead { seq: self.seq, hash: self.hash.clone() }
    }
}

/// Builds entries one after another. Appends must be serialized by the caller (one chain, one order).
///
/// Two phases so a failed append does not break the chain: [`AuditChain::prepare`] builds the next
/// entry without changing the chain; after the append succeeds, [`AuditChain::commit`] advances it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditChain {
    next_seq: u64,
    prev_hash: String,
}

impl Default for AuditChain {
    fn default() -> Self {
        Self::new()
    }
}

impl AuditChain {
    /// An empty chain: the next entry is seq 0 with [`GENESIS_HASH`].
    pub fn new() -> Self {
        Self { next_seq: 0, prev_hash: GENESIS_HASH.to_string() }
    }

    /// Continues after the log's last entry (or from scratch when the log is empty). The caller
    /// should [`verify`] first; this only checks that the last entry is itself intact.
    pub fn resume(last_entry: Option<&[u8]>) -> Result<Self, AuditError> {
        let Some(bytes) = last_entry else {
            return Ok(Self::new());
        };
        let entry = parse_checked(bytes).map_err(|reason| AuditError { code: codes::AUDIT_INVALID_ENTRY, message: reason })?;
        Ok(Self { next_seq: entry.seq + 1, prev_hash: entry.hash.expect("a checked entry has a hash") })
    }

    /// The head after the last committed entry, `None` before the first.
    pub fn head(&self) -> Option<AuditHead> {
        let seq = self.next_seq.checked_sub(1)?;
        Some(AuditHead { seq, hash: self.prev_hash.clone() })
    }

    /// The next entry for `record`, without advancing the chain.
    pub fn prepare(&self, record: &AuditRecord) -> PreparedEntry {
        let mut entry = AuditEntry {
            seq: self.next_seq,
            time: rfc3339_millis(record.time),
            principal: record.principal.as_deref().map(sanitize),
            action: sanitize(&record.action),
            resource: sanitize(&record.resource),
            decision: record.decision,
            code: record.code.as_deref().map(sanitize),
            source: record.source.as_deref().map(sanitize),
            detail: record.detail.as_deref().map(sanitize),
            prev_hash: self.prev_hash.clone(),
            hash: None,
        };
        let hash = entry.compute_hash();
        entry.hash = Some(hash.clone());
        let bytes = serde_json::to_vec(&entry).expect("an audit entry serializes");
        debug_assert!(bytes.len() <= AUDIT_ENTRY_BYTES_MAX, "sanitized fields bound an entry");
        PreparedEntry { seq: entry.seq, hash, bytes }
    }

    /// Advances the chain past an entry that was appended.
    ///
    /// Panics if `entry` was not prepared from this chain's current state: committing out of order
    /// would write a broken chain, which is a bug in the caller.
    pub fn commit(&mut self, entry: &PreparedEntry) {
        assert_eq!(entry.seq, self.next_seq, "audit entries must be committed in the order they were prepared");
        self.next_seq += 1;
        self.prev_hash = entry.hash.clone();
    }

    /// [`AuditChain::prepare`] and [`AuditChain::commit`] at once, for callers whose append cannot fail
    /// halfway (tests, offline tools).
    pub fn next_entry(&mut self, record: &AuditRecord) -> PreparedEntry {
        let entry = self.prepare(record);
        self.commit(&entry);
        entry
    }
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub ok: bool,
    /// Entries that verified before the first break (all of them when `ok`).
    pub n_entries: u64,
    /// The offset of the first broken entry and why. For a truncated tail, the offset just past the
    /// last entry (0 when the log is empty).
    pub first_broken: Option<(u64, String)>,
    /// The last verified entry's head.
    pub last: Option<AuditHead>,
    /// Entries after the stored head (the crash window between an append and its head update).
    pub n_after_head: u64,
}

/// Does the chain pass through a head recorded earlier (`weft audit head`, kept outside the
/// server)? True when some intact entry has that hash. Together with a `verify` that passes,
/// it proves the log still holds everything up to the recorded head, unchanged.
pub fn chain_passes_through<I, B>(entries: I, recorded_hash: &str) -> bool
where
    I: IntoIterator<Item = (u64, B)>,
    B: AsRef<[u8]>,
{
    entries.into_iter().any(|(_, bytes)| parse_checked(bytes.as_ref()).is_ok_and(|entry| entry.hash.as_deref() == Some(recorded_hash)))
}

/// Walks entries in offset order and checks the chain, then the stored head (see the module doc).
pub fn verify<I, B>(entries: I, stored_head: Option<&AuditHead>) -> VerifyReport
where
    I: IntoIterator<Item = (u64, B)>,
    B: AsRef<[u8]>,
{
    let mut report = VerifyReport { ok: false, n_entries: 0, first_broken: None, last: None, n_after_head: 0 };
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut next_offset = 0;
    let mut head_hash_seen: Option<String> = None;
    for (offset, bytes) in entries {
        let expected_seq = report.n_entries;
        let broken = |reason: String| Some((offset, reason));
        let entry = match parse_checked(bytes.as_ref()) {
            Ok(entry) => entry,
            Err(reason) => {
                report.first_broken = broken(reason);
                return report;
            }
        };
        if entry.seq != expected_seq {
            report.first_broken = broken(format!("expected seq {expected_seq}, found {}: entries are missing or out of order", entry.seq));
            return report;
        }
        if entry.prev_hash != prev_hash {
            report.first_broken = broken("prev_hash differs from the previous entry's hash: an entry was removed or rewritten".to_string());
            return report;
        }
        let hash = entry.hash.expect("a checked entry has a hash");
        if let Some(head) = stored_head {
            if entry.seq == head.seq {
                head_hash_seen = Some(hash.clone());
            } else if entry.seq > head.seq {
                report.n_after_head += 1;
            }
        }
        report.last = Some(AuditHead { seq: entry.seq, hash: hash.clone() });
        prev_hash = hash;
        report.n_entries += 1;
        next_offset = offset + 1;
    }
    if let Some(head) = stored_head {
        match head_hash_seen {
            None => {
                let ends =
                    report.last.as_ref().map_or_else(|| "the log is empty".to_string(), |last| format!("the log ends at seq {}", last.seq));
                report.first_broken =
                    Some((next_offset, format!("{ends} but the stored head is at seq {}: the tail was truncated", head.seq)));
                return report;
            }
            Some(hash) if hash != head.hash => {
                report.first_broken =
                    Some((next_offset, format!("entry {} differs from the stored head: history was rewritten", head.seq)));
                return report;
            }
            Some(_) => {}
        }
    }
    report.ok = true;
    report
}

/// Parses an entry for search (no chain checks; see [`verify`] for those).
pub fn parse_entry(bytes: &[u8]) -> Result<AuditEntry, AuditError> {
    if bytes.len() > AUDIT_ENTRY_BYTES_MAX {
        return Err(AuditError { code: codes::AUDIT_INVALID_ENTRY, message: "audit entry over 16 KiB".to_string() });
    }
    serde_json::from_slice(bytes).map_err(|error| AuditError { code: codes::AUDIT_INVALID_ENTRY, message: format!("audit entry: {error}") })
}

/// Parses an entry and checks that its bytes are canonical and its hash matches.
fn parse_checked(bytes: &[u8]) -> Result<AuditEntry, String> {
    let entry = parse_entry(bytes).map_err(|error| error.message)?;
    let Some(stored_hash) = entry.hash.as_deref() else {
        return Err("entry has no hash".to_string());
    };
    if entry.compute_hash() != stored_hash {
        return Err(format!("hash mismatch at seq {}: the entry was altered", entry.seq));
    }
    if serde_json::to_vec(&entry).expect("an audit entry serializes") != bytes {
        return Err(format!("entry at seq {} is not in canonical form: its bytes were altered", entry.seq));
    }
    Ok(entry)
}

/// Filters for `weft audit search`. Text filters match exactly, or by prefix when they end in `*`.
/// `since` is inclusive, `until` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub principal: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub decision: Option<AuditDecision>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
}

impl AuditFilter {
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        let text_matches = |filter: &Option<String>, value: Option<&str>| match filter {
            None => true,
            Some(filter) => value.is_some_and(|value| match filter.strip_suffix('*') {
                Some(prefix) => value.starts_with(prefix),
                None => value == filter,
            }),
        };
        if !text_matches(&self.principal, entry.principal.as_deref())
            || !text_matches(&self.action, Some(&entry.action))
            || !text_matches(&self.resource, Some(&entry.resource))
            || self.decision.is_some_and(|decision| decision != entry.decision)
        {
            return false;
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(time) = entry.system_time() else {
            return false;
        };
        self.since.is_none_or(|since| time >= since) && self.until.is_none_or(|until| time < until)
    }
}

/// Reads `<data_dir>/audit.head`; `None` when there is none yet.
pub fn read_head(data_dir: &Path) -> Result<Option<AuditHead>, AuditError> {
    let path = data_dir.join(AUDIT_HEAD_FILE);
    let error = |what: String| AuditError { code: codes::AUDIT_HEAD, message: format!("audit head {}: {what}", path.display()) };
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|parse_error| error(parse_error.to_string())),
        Err(io_error) if io_error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(io_error) => Err(error(io_error.to_string())),
    }
}

/// Writes `<data_dir>/audit.head` atomically (temporary file, fsync, rename, fsync of the directory).
pub fn write_head(data_dir: &Path, head: &AuditHead) -> Result<(), AuditError> {
    let mut bytes = serde_json::to_vec(head).expect("a head serializes");
    bytes.push(b'\n');
    write_private_file(&data_dir.join(AUDIT_HEAD_FILE), &bytes)
        .map_err(|io_error| AuditError { code: codes::AUDIT_HEAD, message: format!("audit head: {io_error}") })
}

fn rfc3339_millis(time: SystemTime) -> String {
    let millis = i128::from(unix_ms(time));
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Cuts to [`AUDIT_FIELD_BYTES_MAX`] bytes at a character boundary and replaces control characters.
fn sanitize(text: &str) -> String {
    let mut end = text.len().min(AUDIT_FIELD_BYTES_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}
