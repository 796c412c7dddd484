//! Principals and API tokens, and authentication of the credentials every request carries.
//!
//! Owns `<data-dir>/governance.redb` (tables `principals` and `tokens`) and the first-start file
//! `<data-dir>/admin.token`. Does not own authorization (see [`crate::authz`]) or audit entries: the
//! edges audit authentication failures with [`AuthError::code`] and [`AuthError::token_id`].
//!
//! ## Tokens
//!
//! A token is `weft_` followed by 80 lowercase hex characters: 16 for the token id (8 random bytes),
//! then 64 for the secret (32 random bytes from the operating system's CSPRNG).
//! The id is not secret: it names the token in `token list`, `token revoke` and the audit log.
//! The store keeps only `SHA-256(token)`; a presented token is hashed and compared with the stored
//! hash in constant time. A fast unsalted hash is sound here because the secret is 256 random bits,
//! not a password: there is nothing to guess.
//! Authentication reads the store on every call, so a revocation takes effect at once.
//!
//! Failure order is deliberate: the hash is checked before revocation or expiry is reported, so
//! only the holder of the secret learns that its token was revoked or has expired.
//!
//! ## Credentials
//!
//! - HTTP `Authorization: Bearer <token>`.
//! - HTTP `Authorization: Basic base64(<principal>:<token>)`.
//! - Kafka SASL/PLAIN: authentication id = principal, password = token ([`IdentityStore::authenticate_basic`]).
//!
//! With a principal name (Basic, SASL), the token must belong to that principal; a mismatch is
//! `auth.invalid_token`, the same answer as an unknown token, so names cannot be probed.
//!
//! This file holds the store (principals, token records, authentication against them);
//! `credentials.rs` holds what a client presents: [`TokenSecret`], [`Credentials`], [`AuthError`]
//! and the `Authorization` header parser.

mod credentials;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

pub use credentials::{AuthError, Credentials, TokenSecret, parse_authorization_header};

use crate::codes;
use crate::encoding::{sha256_hex, to_hex, unix_ms};
use crate::private_file::write_private_file;
use credentials::parse_token;

/// The principal created on first start; the default policy `default/admin` lets it do everything.
pub const ADMIN_PRINCIPAL: &str = "admin";
/// The file, under the data directory, that receives the admin token on first start (mode 0600).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The identity store's file under the data directory.
pub const IDENTITY_STORE_FILE: &str = "governance.redb";
/// Every token starts with this, so a leaked token is recognisable (e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "weft_";
/// Random bytes in a token id (rendered as 16 hex characters).
pub const TOKEN_ID_BYTES: usize = 8;
/// Random bytes in a token secret (rendered as 64 hex characters).
pub const TOKEN_SECRET_BYTES: usize = 32;
/// Characters in a token: prefix, id and secret in hex.
pub const TOKEN_CHARS: usize = TOKEN_PREFIX.len() + 2 * (TOKEN_ID_BYTES + TOKEN_SECRET_BYTES);
/// Longest principal name.
pub const PRINCIPAL_NAME_BYTES_MAX: usize = 128;
/// Most principals in one store.
pub const PRINCIPALS_MAX: usize = 100_000;
/// Most domains a principal record can list.
pub const PRINCIPAL_DOMAINS_MAX: usize = 256;
/// Most live (neither revoked nor expired) tokens per principal.
pub const TOKENS_PER_PRINCIPAL_MAX: usize = 100;
/// Longest token lifetime that `--expires` accepts (ten years).
pub const TOKEN_LIFETIME_MAX: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Longest `Authorization` header value read.
pub const AUTHORIZATION_HEADER_BYTES_MAX: usize = 8 * 1024;

const PRINCIPALS: TableDefinition<&str, &[u8]> = TableDefinition::new("principals");
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");

/// A person or service that authenticates with tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub name: String,
    pub created_at_unix_ms: u64,
    /// Domains this principal is declared a team member of when it is created. Membership also
    /// comes from `Domain` resources (`owners`, `team`); [`crate::authz`] merges both.
    pub domains: Vec<String>,
}

/// What `token list` shows: everything about a token except its secret and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub principal: String,
    pub created_at_unix_ms: u64,
    pub expires_at_unix_ms: Option<u64>,
    pub revoked_at_unix_ms: Option<u64>,
}

impl TokenInfo {
    pub fn revoked(&self) -> bool {
        self.revoked_at_unix_ms.is_some()
    }
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires_at_unix_ms.is_some_and(|expires| unix_ms(now) >= expires)
    }
}

/// The stored form of a token: [`TokenInfo`] plus the hex SHA-256 of the whole token.
#[derive(Clone, Serialize, Deserialize)]
struct TokenRecord {
    #[serde(flatten)]
    info: TokenInfo,
    sha256: String,
}

/// Failures of principal and token management.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid principal name {0:?}: 1 to 128 characters of [A-Za-z0-9._@-]")]
    InvalidName(String),
    #[error("principal {0:?} already exists")]
    PrincipalExists(String),
    #[error("principal {0:?} not found")]
    PrincipalNotFound(String),
    #[error("token {0:?} not found")]
    TokenNotFound(String),
    #[error("invalid expiry {0:?}: a positive number with a unit (s, m, h, d, w), at most 3650d")]
    InvalidExpiry(String),
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    #[error("identity store: {0}")]
    Storage(String),
    #[error("operating system random number generator failed")]
    RandomUnavailable,
}

impl IdentityError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => codes::IDENTITY_INVALID_NAME,
            Self::PrincipalExists(_) => codes::IDENTITY_PRINCIPAL_EXISTS,
            Self::PrincipalNotFound(_) => codes::IDENTITY_PRINCIPAL_NOT_FOUND,
            Self::TokenNotFound(_) => codes::IDENTITY_TOKEN_NOT_FOUND,
            Self::InvalidExpiry(_) => codes::IDENTITY_INVALID_EXPIRY,
            Self::LimitReached(_) => codes::IDENTITY_LIMIT_REACHED,
            Self::Storage(_) => codes::IDENTITY_STORAGE,
            Self::RandomUnavailable => codes::IDENTITY_RANDOM_UNAVAILABLE,
        }
    }
}

macro_rules! storage_error {
    ($($error:ty),*) => {$(
        impl From<$error> for IdentityError {
            fn from(error: $error) -> Self {
                Self::Storage(error.to_string())
            }
        }
        impl From<$error> for AuthError {
            fn from(error: $error) -> Self {
                Self::Storage(error.to_string())
            }
        }
    )*};
}
storage_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    std::io::Error,
    serde_json::Error
);

/// The principals and tokens of one Weft data directory.
pub struct IdentityStore {
    db: Database,
}

impl fmt::Debug for IdentityStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityStore")
    }
}

impl IdentityStore {
    /// Opens (creating if needed) `<data_dir>/governance.redb`.
    pub fn open_in(data_dir: &Path) -> Result<Self, IdentityError> {
        Self::open(&data_dir.join(IDENTITY_STORE_FILE))
    }

    pub fn open(path: &Path) -> Result<Self, IdentityError> {
        crate::private_file::create_private_file(path)
            .map_err(|error| IdentityError::Storage(format!("cannot create {}: {error}", path.display())))?;
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(PRINCIPALS)?;
        txn.open_table(TOKENS)?;
        txn.commit()?;
        Ok(Self { db })
    }

    /// On first start, creates the principal `admin` with a token that never expires, and writes the
    /// token to `<data_dir>/admin.token` (mode 0600). Returns the file's path then, `None` when
    /// `admin` already exists. The caller logs the path, never the token.
    ///
    /// The file is written (atomically) before the store commits: a crash in between leaves no admin,
    /// so the next start tries again and overwrites the file; the reverse order could leave an admin
    /// whose token nobody has.
    pub fn bootstrap_admin(&self, data_dir: &Path, now: SystemTime) -> Result<Option<PathBuf>, IdentityError> {
        if self.principal(ADMIN_PRINCIPAL)?.is_some() {
            return Ok(None);
        }
        let (record, secret) = new_token(ADMIN_PRINCIPAL, None, now)?;
        let path = data_dir.join(ADMIN_TOKEN_FILE);
        write_private_file(&path, format!("{}\n", secret.expose()).as_bytes())?;
        let principal = Principal { name: ADMIN_PRINCIPAL.to_string(), created_at_unix_ms: unix_ms(now), domains: Vec::new() };
        let txn = self.db.begin_write()?;
        {
            let mut principals = txn.open_table(PRINCIPALS)?;
            if principals.get(ADMIN_PRINCIPAL)?.is_some() {
                // Another process bootstrapped between our check and this transaction: keep theirs.
                return Ok(None);
            }
            principals.insert(ADMIN_PRINCIPAL, serde_json::to_vec(&principal)?.as_slice())?;
            txn.open_table(TOKENS)?.insert(record.info.id.as_str(), serde_json::to_vec(&record)?.as_slice())?;
        }
        txn.commit()?;
        Ok(Some(path))
    }

    pub fn create_principal(&self, name: &str, domains: &[String], now: SystemTime) -> Result<Principal, IdentityError> {
        check_principal_name(name)?;
        if domains.len() > PRINCIPAL_DOMAINS_MAX {
            return Err(IdentityError::LimitReached("a principal lists at most 256 domains"));
        }
        let mut domains = domains.to_vec();
        domains.sort();
        domains.dedup();
        let principal = Principal { name: name.to_string(), created_at_unix_ms: unix_ms(now), domains };
        let txn = self.db.begin_write()?;
        {
            let mut principals = txn.open_table(PRINCIPALS)?;
            if principals.get(name)?.is_some() {
                return Err(IdentityError::PrincipalExists(name.to_string()));
            }
            if principals.len()? >= PRINCIPALS_MAX as u64 {
                return Err(IdentityError::LimitReached("at most 100000 principals"));
            }
            principals.insert(name, serde_json::to_vec(&principal)?.as_slice())?;
        }
        txn.commit()?;
        Ok(principal)
    }

    pub fn principal(&self, name: &str) -> Result<Option<Principal>, IdentityError> {
        let txn = self.db.begin_read()?;
        let principals = txn.open_table(PRINCIPALS)?;
        let principal = match principals.get(name)? {
            Some(bytes) => Some(serde_json::from_slice(bytes.value())?),
            None => None,
        };
        Ok(principal)
    }

    /// Every principal, by name.
    pub fn list_principals(&self) -> Result<Vec<Principal>, IdentityError> {
        let txn = self.db.begin_read()?;
        let principals = txn.open_table(PRINCIPALS)?;
        let mut listed = Vec::new();
        for entry in principals.iter()? {
            let (_, bytes) = entry?;
            listed.push(serde_json::from_slice(bytes.value())?);
        }
        Ok(listed)
    }

    /// Creates a token for `principal`, valid for `lifetime` from `now` (forever when `None`).
    /// The secret is returned once and never stored.
    pub fn create_token(
        &self,
        principal: &str,
        lifetime: Option<Duration>,
        now: SystemTime,
    ) -> Result<(String, TokenSecret), IdentityError> {
        if let Some(lifetime) = lifetime
            && (lifetime.is_zero() || lifetime > TOKEN_LIFETIME_MAX)
        {
            return Err(IdentityError::InvalidExpiry(format!("{}s", lifetime.as_secs())));
        }
        let (record, secret) = new_token(principal, lifetime, now)?;
        let txn = self.db.begin_write()?;
        {
            if txn.open_table(PRINCIPALS)?.get(principal)?.is_none() {
                return Err(IdentityError::PrincipalNotFound(principal.to_string()));
            }
            let mut tokens = txn.open_table(TOKENS)?;
            let mut n_live = 0;
            for entry in tokens.iter()? {
                let (_, bytes) = entry?;
                let existing: TokenRecord = serde_json::from_slice(bytes.value())?;
                if existing.info.principal == principal && !existing.info.revoked() && !existing.info.expired(now) {
                    n_live += 1;
                }
            }
            if n_live >= TOKENS_PER_PRINCIPAL_MAX {
                return Err(IdentityError::LimitReached("at most 100 live tokens per principal"));
            }
            if tokens.get(record.info.id.as_str())?.is_some() {
                // 64 random bits colliding means the random source is broken: refuse rather than overwrite.
                return Err(IdentityError::RandomUnavailable);
            }
            tokens.insert(record.info.id.as_str(), serde_json::to_vec(&record)?.as_slice())?;
        }
        txn.commit()?;
        Ok((record.info.id, secret))
    }

    /// Tokens, all or one principal's, without secrets or hashes.
    pub fn list_tokens(&self, principal: Option<&str>) -> Result<Vec<TokenInfo>, IdentityError> {
        let txn = self.db.begin_read()?;
        let tokens = txn.open_table(TOKENS)?;
        let mut listed = Vec::new();
        for entry in tokens.iter()? {
            let (_, bytes) = entry?;
            let record: TokenRecord = serde_json::from_slice(bytes.value())?;
            if principal.is_none_or(|principal| principal == record.info.principal) {
                listed.push(record.info);
            }
        }
        listed.sort_by(|a, b| {
            (a.principal.as_str(), a.created_at_unix_ms, a.id.as_str()).cmp(&(b.principal.as_str(), b.created_at_unix_ms, b.id.as_str()))
        });
        Ok(listed)
    }

    /// One token, without its secret or hash; `None` if the id is unknown.
    pub fn token(&self, token_id: &str) -> Result<Option<TokenInfo>, IdentityError> {
        let txn = self.db.begin_read()?;
        let record: Option<TokenRecord> = match txn.open_table(TOKENS)?.get(token_id)? {
            Some(bytes) => Some(serde_json::from_slice(bytes.value())?),
            None => None,
        };
        Ok(record.map(|record| record.info))
    }

    /// Revokes a token; it is refused from the next authentication on. Revoking twice keeps the first time.
    pub fn revoke_token(&self, token_id: &str, now: SystemTime) -> Result<TokenInfo, IdentityError> {
        let txn = self.db.begin_write()?;
        let info = {
            let mut tokens = txn.open_table(TOKENS)?;
            let mut record: TokenRecord = match tokens.get(token_id)? {
                Some(bytes) => serde_json::from_slice(bytes.value())?,
                None => return Err(IdentityError::TokenNotFound(token_id.to_string())),
            };
            if record.info.revoked_at_unix_ms.is_none() {
                record.info.revoked_at_unix_ms = Some(unix_ms(now));
                tokens.insert(token_id, serde_json::to_vec(&record)?.as_slice())?;
            }
            record.info
        };
        txn.commit()?;
        Ok(info)
    }

    /// Authenticates whatever credentials the request carried.
    pub fn authenticate(&self, credentials: &Credentials, now: SystemTime) -> Result<Principal, AuthError> {
        match credentials {
            Credentials::Bearer(token) => self.authenticate_bearer(token.expose(), now),
            Credentials::Basic { user, password } => self.authenticate_basic(user, password.expose(), now),
        }
    }

    /// `Authorization: Bearer <token>`.
    pub fn authenticate_bearer(&self, token: &str, now: SystemTime) -> Result<Principal, AuthError> {
        self.authenticate_token(None, token, now)
    }

    /// HTTP Basic and SASL/PLAIN: the token must belong to `user`.
    pub fn authenticate_basic(&self, user: &str, password: &str, now: SystemTime) -> Result<Principal, AuthError> {
        self.authenticate_token(Some(user), password, now)
    }

    fn authenticate_token(&self, user: Option<&str>, token: &str, now: SystemTime) -> Result<Principal, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingCredentials);
        }
        let Some((token_id, _)) = parse_token(token) else {
            return Err(AuthError::InvalidToken { token_id: None });
        };
        let invalid = || AuthError::InvalidToken { token_id: Some(token_id.to_string()) };
        let presented_hash = sha256_hex(token.as_bytes());
        let txn = self.db.begin_read()?;
        let record: TokenRecord = match txn.open_table(TOKENS)?.get(token_id)? {
            Some(bytes) => serde_json::from_slice(bytes.value())?,
            None => return Err(invalid()),
        };
        if !bool::from(presented_hash.as_bytes().ct_eq(record.sha256.as_bytes())) {
            return Err(invalid());
        }
        if user.is_some_and(|user| user != record.info.principal) {
            return Err(invalid());
        }
        if record.info.revoked() {
            return Err(AuthError::RevokedToken { token_id: token_id.to_string() });
        }
        if record.info.expired(now) {
            return Err(AuthError::ExpiredToken { token_id: token_id.to_string() });
        }
        match txn.open_table(PRINCIPALS)?.get(record.info.principal.as_str())? {
            Some(bytes) => Ok(serde_json::from_slice(bytes.value())?),
            // The token outlived its principal (there is no principal deletion yet; this keeps it safe).
            None => Err(invalid()),
        }
    }
}

/// Principal names: 1 to 128 bytes of `[A-Za-z0-9._@-]`, so they are safe in Cedar ids, file names
/// and log lines alike.
pub fn check_principal_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= PRINCIPAL_NAME_BYTES_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if ok { Ok(()) } else { Err(IdentityError::InvalidName(name.chars().take(PRINCIPAL_NAME_BYTES_MAX).collect())) }
}

fn new_token(principal: &str, lifetime: Option<Duration>, now: SystemTime) -> Result<(TokenRecord, TokenSecret), IdentityError> {
    let mut random = [0u8; TOKEN_ID_BYTES + TOKEN_SECRET_BYTES];
    getrandom::fill(&mut random).map_err(|_| IdentityError::RandomUnavailable)?;
    let token = format!("{TOKEN_PREFIX}{}", to_hex(&random));
    random.fill(0);
    let id = token[TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + 2 * TOKEN_ID_BYTES].to_string();
    let created_at_unix_ms = unix_ms(now);
    let expires_at_unix_ms = lifetime.map(|lifetime| created_at_unix_ms.saturating_add(lifetime.as_millis() as u64));
    let record = TokenRecord {
        info: TokenInfo { id, principal: principal.to_string(), created_at_unix_ms, expires_at_unix_ms, revoked_at_unix_ms: None },
        sha256: sha256_hex(token.as_bytes()),
    };
    Ok((record, TokenSecret::new(token)))
}
