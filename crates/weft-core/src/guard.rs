//! The guard: authentication, authorization, masking and the audit log, applied by every edge
//! through the broker so HTTP and Kafka enforce exactly the same rules.
//!
//! It owns the identity store (`<data-dir>/governance.redb`), the Cedar authorizer rebuilt from
//! the applied mesh whenever it changes, the server secret behind masking, and the audit chain
//! appended to the system stream `_weft.audit` (head kept in `<data-dir>/audit.head`).
//!
//! Audited: every authentication failure, every authorization denial, and every allowed write
//! or admin action (apply, stream creation, principal and token management, dead-letter
//! replay). Failures (per source) and denials (per principal and source) are recorded one by
//! one up to a bound per minute, and the rest of that minute as one summary entry. Individual produce and consume requests that are allowed are not audited; they are
//! counted in the catalog's metrics instead.
//!
//! Rules that hold for every edge because they live here:
//! - reading a dead-letter stream (`<stream>.dlq`) directly is checked as `read_dead_letters`
//!   on its governed stream, not as `consume` on the dead-letter stream ([`Guard::check`]);
//! - consumer groups belong to whoever first used them (`groups.rs`);
//! - a revoked token ends what it opened: live tails, long polls and Kafka connections watch
//!   it (`tokens.rs`).

mod groups;
mod tokens;

pub use groups::{GROUP_RECORDS_MAX, GroupUse};
pub use tokens::TokenWatch;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weft_contract::CompiledContract;
use weft_governance::audit::{AUDIT_STREAM, AuditChain, AuditDecision, AuditRecord, write_head};
use weft_governance::authz::{
    Action, Authorizer, DomainEntity, GroupDirectory, GroupRecord, Mesh, PolicySource, PrincipalEntity, ProductEntity, Resource,
    SharedAuthorizer, StreamEntity,
};
use weft_governance::identity::{Credentials, IdentityStore, Principal};
use weft_governance::masking::{ServerSecret, is_masked_classification, mask_bytes};
use weft_log::Clock;

use crate::broker::Broker;
use crate::error::{Error, Kind};
use crate::mesh::{MeshState, policy_scope, topic_streams};
use crate::meta::MetaStore;
use crate::stream::{DEAD_LETTER_SUFFIX, StreamConfig};

pub use weft_governance::authz::{Action as AuthzAction, Resource as AuthzResource};

/// Codes for the guard's failures (the governance crate defines the rest).
pub mod codes {
    pub use crate::error::codes::STREAM_SYSTEM;
    pub use weft_governance::codes::*;
}

/// Who is calling and from where: what every edge hands the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: String,
    /// `http 127.0.0.1:5000` or `kafka 127.0.0.1:5000`.
    pub source: String,
    /// The id of the token the caller authenticated with, so what the request opens can end when
    /// that token is revoked; `None` with authentication off and for Weft's own work.
    pub token_id: Option<String>,
}

impl Caller {
    /// A caller that did not authenticate with a token (Weft's own work, `--auth off`).
    pub fn without_token(principal: impl Into<String>, source: impl Into<String>) -> Self {
        Self { principal: principal.into(), source: source.into(), token_id: None }
    }
}

/// The masking a viewer gets on one stream: the JSON pointers to hide and the product's key.
pub struct Masker {
    pointers: Vec<String>,
    key: Vec<u8>,
}

impl Masker {
    /// The data with every classified field replaced by its keyed hash.
    pub fn mask(&self, data: &[u8]) -> Vec<u8> {
        mask_bytes(data, &self.pointers, &self.key)
    }
}

/// Authentication failures from one source recorded one by one per minute; past this the
/// rest of that minute is counted and recorded as one summary entry, so a client retrying a
/// bad token in a loop cannot flood the audit log.
pub const AUTH_FAILURES_AUDITED_PER_MINUTE: u32 = 20;
/// Sources whose failure counts are remembered at once.
pub const AUTH_FAILURE_SOURCES_MAX: usize = 4096;
/// Denials of one principal from one source recorded one by one per minute, with the same
/// summary entry past it as authentication failures: every denial is audited, but a client
/// retrying a forbidden request in a loop cannot flood the audit log.
pub const DENIALS_AUDITED_PER_MINUTE: u32 = 20;
/// (principal, source) pairs whose denial counts are remembered at once.
pub const DENIAL_KEYS_MAX: usize = 4096;
/// Bytes read from the end of the audit stream to find the last entry when the chain resumes;
/// one audit entry is far smaller than this.
pub const AUDIT_TAIL_FETCH_BYTES_MAX: usize = 64 * 1024;

/// Per-key counts of one kind of audit entry (authentication failures per source, denials per
/// principal and source) in the current minute.
struct AuditWindow {
    per_minute_max: u32,
    keys_max: usize,
    minute: u64,
    by_key: std::collections::HashMap<String, u32>,
}

/// What an `AuditWindow` says about one more entry.
enum Admission {
    /// Over the bound this minute: counted, not recorded.
    Counted,
    /// Record it; first record a summary of this many entries of the key's previous minute.
    Record { suppressed_before: Option<u32> },
}

impl AuditWindow {
    fn new(per_minute_max: u32, keys_max: usize) -> Self {
        Self { per_minute_max, keys_max, minute: 0, by_key: std::collections::HashMap::new() }
    }

    fn admit(&mut self, key: String, minute: u64) -> Admission {
        let mut suppressed_before = None;
        if self.minute != minute {
            let over = self.by_key.get(&key).map_or(0, |n| n.saturating_sub(self.per_minute_max));
            if over > 0 {
                suppressed_before = Some(over);
            }
            self.minute = minute;
            self.by_key.clear();
        }
        if self.by_key.len() >= self.keys_max && !self.by_key.contains_key(&key) {
            self.by_key.clear();
        }
        let count = self.by_key.entry(key).or_insert(0);
        *count += 1;
        if *count > self.per_minute_max { Admission::Counted } else { Admission::Record { suppressed_before } }
    }
}

pub struct Guard {
    failures: std::sync::Mutex<AuditWindow>,
    denials: std::sync::Mutex<AuditWindow>,
    enabled: AtomicBool,
    identity: IdentityStore,
    authorizer: SharedAuthorizer,
    secret: ServerSecret,
    audit: tokio::sync::Mutex<Option<AuditChain>>,
    /// Consumer groups' creators and streams, shared with every authorizer built.
    groups: Arc<GroupDirectory>,
    /// Moves on every token revocation, so whatever a token opened can check it (`tokens.rs`).
    revocations: tokio::sync::watch::Sender<u64>,
    /// Dead-letter stream → the governed stream it belongs to, from the applied mesh.
    dead_letter_streams: RwLock<HashMap<String, String>>,
    /// The broker's clock: token expiry, audit times and failure windows follow it, so tests
    /// that move the clock see tokens expire without sleeping.
    clock: Arc<dyn Clock>,
}

fn internal(error: impl std::fmt::Display) -> Error {
    Error::internal(error.to_string())
}

/// Is this one of Weft's own streams (audit log), which no client may write?
pub fn is_system_stream(name: &str) -> bool {
    name.starts_with("_weft.")
}

impl Guard {
    /// Opens the identity store and secret and loads the recorded consumer groups; creates the
    /// admin principal and its token file on first start (returned so the caller can say where
    /// it is).
    pub(crate) fn open(data_dir: &Path, clock: Arc<dyn Clock>, meta: &MetaStore) -> Result<(Self, Option<std::path::PathBuf>), Error> {
        let identity = IdentityStore::open_in(data_dir).map_err(internal)?;
        let admin_token = identity.bootstrap_admin(data_dir, system_time(clock.as_ref())).map_err(internal)?;
        let secret = ServerSecret::load_or_create(data_dir).map_err(internal)?;
        let groups = Arc::new(GroupDirectory::default());
        for (group, creator, streams) in meta.group_records()? {
            groups.insert(&group, GroupRecord { creator, streams: streams.into_iter().collect() });
        }
        let authorizer = Authorizer::new(&[], &Mesh::default()).map_err(internal)?.with_groups(Arc::clone(&groups));
        let guard = Self {
            failures: std::sync::Mutex::new(AuditWindow::new(AUTH_FAILURES_AUDITED_PER_MINUTE, AUTH_FAILURE_SOURCES_MAX)),
            denials: std::sync::Mutex::new(AuditWindow::new(DENIALS_AUDITED_PER_MINUTE, DENIAL_KEYS_MAX)),
            enabled: AtomicBool::new(true),
            identity,
            authorizer: SharedAuthorizer::new(authorizer),
            secret,
            audit: tokio::sync::Mutex::new(None),
            groups,
            revocations: tokio::sync::watch::Sender::new(0),
            dead_letter_streams: RwLock::new(HashMap::new()),
            clock,
        };
        Ok((guard, admin_token))
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns authentication and authorization off (`weft serve --auth off`, for local
    /// benchmarks only): every caller is then treated as `admin`.
    pub fn disable(&self) {
        self.enabled.store(false, Ordering::Relaxed);
    }

    pub fn identity(&self) -> &IdentityStore {
        &self.identity
    }

    pub fn authorizer(&self) -> Arc<Authorizer> {
        self.authorizer.current()
    }

    /// Rebuilds the authorizer from the applied mesh, its streams and the known principals.
    pub(crate) fn rebuild(&self, state: &MeshState) -> Result<(), Error> {
        let principals = self.identity.list_principals().map_err(internal)?;
        let authorizer = Authorizer::new(&policy_sources(state), &authz_mesh(state, &principals))
            .map_err(internal)?
            .with_groups(Arc::clone(&self.groups));
        self.authorizer.replace(authorizer);
        let mut dead_letter_streams = HashMap::new();
        for contract in state.contracts.values().flatten() {
            for stream in topic_streams(contract) {
                dead_letter_streams.insert(format!("{stream}{DEAD_LETTER_SUFFIX}"), stream);
            }
        }
        *self.dead_letter_streams.write().unwrap_or_else(|p| p.into_inner()) = dead_letter_streams;
        Ok(())
    }

    /// Checks credentials; `None` credentials means none were presented.
    pub fn authenticate(&self, credentials: Result<Credentials, weft_governance::identity::AuthError>) -> Result<String, Error> {
        if !self.is_enabled() {
            return Ok(weft_governance::identity::ADMIN_PRINCIPAL.to_string());
        }
        let principal: Result<Principal, _> =
            credentials.and_then(|credentials| self.identity.authenticate(&credentials, system_time(self.clock.as_ref())));
        principal.map(|p| p.name).map_err(|error| {
            let kind = if error.is_client_error() { Kind::Unauthenticated } else { Kind::Unavailable };
            Error::new(kind, error.code(), error.to_string())
        })
    }

    /// Authenticates and says who the caller is: its principal, `source`, and the id of the token
    /// it presented (so what it opens can end with that token). With authentication off every
    /// caller is `admin`, without a token.
    pub fn authenticate_caller(
        &self,
        credentials: Result<Credentials, weft_governance::identity::AuthError>,
        source: String,
    ) -> Result<Caller, Error> {
        let token_id = match &credentials {
            Ok(Credentials::Bearer(token)) | Ok(Credentials::Basic { password: token, .. }) if self.is_enabled() => {
                token.token_id().map(str::to_string)
            }
            _ => None,
        };
        let principal = self.authenticate(credentials)?;
        Ok(Caller { principal, source, token_id })
    }

    /// What reading needs when `action` is `consume`: on a dead-letter stream it is
    /// `read_dead_letters` on the governed stream (a consumer of a product does not read what
    /// its producers got refused), on anything else it is the request as asked.
    pub fn effective(&self, action: Action, resource: &Resource) -> (Action, Resource) {
        if action == Action::Consume
            && let Resource::Stream(name) = resource
            && let Some(base) = self.dead_letter_streams.read().unwrap_or_else(|p| p.into_inner()).get(name)
        {
            return (Action::ReadDeadLetters, Resource::Stream(base.clone()));
        }
        (action, resource.clone())
    }

    /// Is `caller` allowed `action` on `resource`? The error names the action and resource only.
    /// Weft's own streams are never produced to by a client and never listed, whatever the
    /// policies say (and with authorization off): that rule lives here, once, for every edge.
    /// Consuming a dead-letter stream is decided as [`Guard::effective`] says.
    pub fn check(&self, caller: &Caller, action: Action, resource: &Resource) -> Result<(), Error> {
        let (action, resource) = self.effective(action, resource);
        let resource = &resource;
        if let Resource::Stream(name) = resource
            && is_system_stream(name)
        {
            match action {
                Action::Produce => {
                    return Err(Error::new(
                        Kind::Forbidden,
                        codes::STREAM_SYSTEM,
                        format!("{name} is written by Weft itself; clients cannot produce to it"),
                    ));
                }
                Action::ReadCatalog => {
                    return Err(Error::new(Kind::Forbidden, codes::STREAM_SYSTEM, format!("{name} is one of Weft's own streams")));
                }
                _ => {}
            }
        }
        if !self.is_enabled() {
            return Ok(());
        }
        let decision = self.authorizer.current().is_authorized(&caller.principal, action, resource);
        decision.check(action, resource).map_err(|denied| Error::new(Kind::Forbidden, denied.code(), denied.to_string()))
    }

    /// The masking `caller` gets when reading `stream`, or `None` if it may see everything.
    pub fn masker(&self, caller: &Caller, broker: &Broker, stream: &str) -> Option<Masker> {
        let base = stream.strip_suffix(DEAD_LETTER_SUFFIX).unwrap_or(stream);
        let governance = broker.stream(base).ok()?.governance()?;
        let pointers: Vec<String> = governance
            .compiled
            .classified_properties()
            .iter()
            .filter(|c| is_masked_classification(&c.classification))
            .map(|c| c.pointer.clone())
            .collect();
        if pointers.is_empty() || self.check(caller, Action::Unmask, &Resource::Stream(base.to_string())).is_ok() {
            return None;
        }
        let product = broker.mesh().product_of_contract(&governance.contract_id).map(|p| p.id.clone());
        let key = self.secret.product_key(product.as_deref().unwrap_or(base)).as_bytes().to_vec();
        Some(Masker { pointers, key })
    }
}

/// Policy resources as the authorizer takes them.
fn policy_sources(state: &MeshState) -> Vec<PolicySource> {
    state
        .policies
        .values()
        .map(|policy| PolicySource { name: policy.name.clone(), scope: policy_scope(policy), text: policy.policies.clone() })
        .collect()
}

/// The entity data Cedar decides on: domains with owners and team, products under domains,
/// streams (and their dead-letter streams) under products with their classifications.
pub fn authz_mesh(state: &MeshState, principals: &[Principal]) -> Mesh {
    let domains = state
        .domains
        .values()
        .map(|domain| DomainEntity {
            name: domain.name.clone(),
            owners: domain.owners.clone(),
            team: domain.team.as_ref().map(|t| t.members().iter().map(|m| m.username.clone()).collect()).unwrap_or_default(),
        })
        .collect();
    let mut products = Vec::new();
    let mut streams = Vec::new();
    for product in state.catalog_products() {
        if let Some(domain) = &product.domain {
            products.push(ProductEntity { id: product.id.clone(), domain: domain.clone() });
        }
        for contract_id in product.output_ports.iter().filter_map(|port| port.contract_id.as_deref()) {
            let Some(contract) = state.contract(contract_id) else { continue };
            let classifications: Vec<String> = CompiledContract::compile_topics(contract)
                .map(|topics| {
                    topics.iter().flat_map(|t| t.classified_properties().iter().map(|c| c.classification.to_ascii_lowercase())).collect()
                })
                .unwrap_or_default();
            for stream in topic_streams(contract) {
                for name in [format!("{stream}{DEAD_LETTER_SUFFIX}"), stream] {
                    streams.push(StreamEntity { name, product: Some(product.id.clone()), classifications: classifications.clone() });
                }
            }
        }
    }
    let principals = principals.iter().map(|p| PrincipalEntity { name: p.name.clone(), domains: p.domains.clone() }).collect();
    Mesh { domains, products, streams, principals }
}

/// The caller's source without its port (`http 127.0.0.1`): a client's connections share it.
fn source_host(caller: &Caller) -> String {
    caller.source.rsplit_once(':').map_or(caller.source.as_str(), |(host, _)| host).to_string()
}

fn now_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64
}

/// The clock's reading as the `SystemTime` the governance library takes; a reading before the
/// epoch becomes the epoch, as `now_ms` does the other way.
fn system_time(clock: &dyn Clock) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(clock.now_ms()).unwrap_or(0))
}

impl Broker {
    /// Appends one entry to the audit log (`_weft.audit`) and moves the stored chain head.
    /// Failures are logged, never returned: auditing must not turn a refusal into a crash.
    /// Denials are rate-limited per principal and source (`DENIALS_AUDITED_PER_MINUTE`), like
    /// authentication failures: the ones past the bound are summed into one summary entry.
    pub async fn audit(
        &self,
        caller: Option<&Caller>,
        action: &str,
        resource: &str,
        decision: AuditDecision,
        code: Option<&str>,
        detail: Option<String>,
    ) {
        if decision == AuditDecision::Deny
            && let Some(caller) = caller
        {
            let key = format!("{} {}", caller.principal, source_host(caller));
            let admission = self.guard().denials.lock().unwrap_or_else(|p| p.into_inner()).admit(key, self.audit_minute());
            match admission {
                Admission::Counted => return,
                Admission::Record { suppressed_before: Some(over) } => {
                    let summary = format!(
                        "{over} further denials of this principal from this source in the previous minute were not recorded one by one"
                    );
                    self.append_audit(Some(caller), action, resource, decision, code, Some(summary)).await;
                }
                Admission::Record { suppressed_before: None } => {}
            }
        }
        self.append_audit(caller, action, resource, decision, code, detail).await;
    }

    /// The minute the audit rate limits count in, by the broker's clock.
    fn audit_minute(&self) -> u64 {
        now_ms(system_time(self.clock().as_ref())) / 60_000
    }

    async fn append_audit(
        &self,
        caller: Option<&Caller>,
        action: &str,
        resource: &str,
        decision: AuditDecision,
        code: Option<&str>,
        detail: Option<String>,
    ) {
        if let Err(error) = self.audit_inner(caller, action, resource, decision, code, detail).await {
            tracing::error!(%error, action, resource, "audit append failed");
        }
    }

    async fn audit_inner(
        &self,
        caller: Option<&Caller>,
        action: &str,
        resource: &str,
        decision: AuditDecision,
        code: Option<&str>,
        detail: Option<String>,
    ) -> Result<(), Error> {
        let stream = match self.stream(AUDIT_STREAM) {
            Ok(stream) => stream,
            Err(_) => self.create_stream(StreamConfig {
                name: AUDIT_STREAM.to_string(),
                partitions: 1,
                key: None,
                retention_ms: None,
                retention_bytes: None,
                fsync: weft_log::FsyncPolicy::Always,
                segment_bytes: weft_log::SEGMENT_BYTES_DEFAULT,
                created_at_ms: 0,
            })?,
        };
        let mut chain = self.guard().audit.lock().await;
        if chain.is_none() {
            let stats = stream.partition_stats(0)?;
            let last = if stats.visible_next_offset > stats.log_start_offset {
                let fetched = self.read_batches(&stream, 0, stats.visible_next_offset - 1, AUDIT_TAIL_FETCH_BYTES_MAX).await?;
                fetched.records(usize::MAX)?.last().and_then(|stored| stored.record.value.map(<[u8]>::to_vec))
            } else {
                None
            };
            *chain = Some(AuditChain::resume(last.as_deref()).map_err(internal)?);
        }
        let chain = chain.as_mut().expect("just resumed");
        let record = AuditRecord {
            time: system_time(self.clock().as_ref()),
            principal: caller.map(|c| c.principal.clone()),
            action: action.to_string(),
            resource: resource.to_string(),
            decision,
            code: code.map(str::to_string),
            source: caller.map(|c| c.source.clone()),
            detail,
        };
        let entry = chain.prepare(&record);
        // The entry is JSON that the audit chain serialized itself, so the batch is json_checked.
        let mut builder = weft_log::batch::BatchBuilder::new(now_ms(record.time) as i64).json_checked();
        builder.push::<&str>(now_ms(record.time) as i64, None, Some(&entry.bytes), &[("content-type", &b"application/json"[..])]);
        self.append_batch(&stream, 0, builder.finish_verified()).await?;
        chain.commit(&entry);
        write_head(self.data_dir(), &entry.head()).map_err(internal)?;
        Ok(())
    }

    /// Does the audit log still hold the entry `audit.head` names? The head is written after
    /// each append, so the log may be one entry ahead of it (a crash between the two), never
    /// behind: an entry at the head's `seq` with another hash, or a log that ends before it,
    /// means audit entries were lost or rewritten (a cut tail, deleted segments, a replaced
    /// chain). `Ok(None)` when they agree (or there is no head yet); otherwise what is missing,
    /// in words that name the file and the offsets. Blocking: reads the audit stream.
    pub fn check_audit_continuity(&self) -> Result<Option<String>, Error> {
        let Some(head) = weft_governance::audit::read_head(self.data_dir()).map_err(internal)? else { return Ok(None) };
        let head_file = self.data_dir().join("audit.head");
        let Ok(stream) = self.stream(AUDIT_STREAM) else {
            return Ok(Some(format!(
                "{} names audit entry {} but the audit stream {AUDIT_STREAM} does not exist",
                head_file.display(),
                head.seq
            )));
        };
        let stats = stream.partition_stats(0)?;
        if stats.visible_next_offset <= head.seq || stats.log_start_offset > head.seq {
            return Ok(Some(format!(
                "{} names audit entry {} but the audit stream {AUDIT_STREAM} holds offsets {} to {}",
                head_file.display(),
                head.seq,
                stats.log_start_offset,
                stats.visible_next_offset.saturating_sub(1)
            )));
        }
        let fetched = self.read_batches_blocking(&stream, 0, head.seq, AUDIT_TAIL_FETCH_BYTES_MAX)?;
        let records = fetched.records(usize::MAX)?;
        let found = records
            .iter()
            .find(|stored| stored.record.offset == head.seq)
            .and_then(|stored| stored.record.value)
            .and_then(|value| weft_governance::audit::parse_entry(value).ok());
        match found {
            Some(entry) if entry.seq == head.seq && entry.hash.as_deref() == Some(head.hash.as_str()) => Ok(None),
            Some(entry) => Ok(Some(format!(
                "{} names audit entry {} with hash {}, but the entry at offset {} of {AUDIT_STREAM} is entry {} with hash {}",
                head_file.display(),
                head.seq,
                head.hash,
                head.seq,
                entry.seq,
                entry.hash.unwrap_or_default()
            ))),
            None => Ok(Some(format!(
                "{} names audit entry {}, but offset {} of {AUDIT_STREAM} is not a readable audit entry",
                head_file.display(),
                head.seq,
                head.seq
            ))),
        }
    }

    /// Rebuilds the authorizer after principals change.
    pub fn refresh_authorization(&self) -> Result<(), Error> {
        self.guard().rebuild(&self.mesh())
    }

    /// Records an authentication failure, at most `AUTH_FAILURES_AUDITED_PER_MINUTE` entries per
    /// source (address without port) and minute; the failures past that are summed into one
    /// entry written with the first failure of a later minute.
    pub async fn audit_auth_failure(&self, caller: &Caller, resource: &str, code: &str, detail: Option<String>) {
        let admission = self.guard().failures.lock().unwrap_or_else(|p| p.into_inner()).admit(source_host(caller), self.audit_minute());
        let Admission::Record { suppressed_before } = admission else { return };
        if let Some(over) = suppressed_before {
            let summary =
                format!("{over} further authentication failures from this source in the previous minute were not recorded one by one");
            self.audit(Some(caller), "authenticate", resource, AuditDecision::AuthFailure, Some(code), Some(summary)).await;
        }
        self.audit(Some(caller), "authenticate", resource, AuditDecision::AuthFailure, Some(code), detail).await;
    }

    /// Authorizes and audits a denial; returns the error to send back.
    pub async fn authorize(&self, caller: &Caller, action: Action, resource: &Resource) -> Result<(), Error> {
        let (action, resource) = self.guard().effective(action, resource);
        let resource = &resource;
        match self.guard().check(caller, action, resource) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.audit(Some(caller), action.name(), &resource.to_string(), AuditDecision::Deny, Some(error.code), None).await;
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;

    use weft_governance::identity::TokenSecret;

    use super::*;

    struct ManualClock(AtomicI64);

    impl Clock for ManualClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// The contract library refuses stream keys of exactly the classifications the masker hides,
    /// so the two lists (in crates that do not know each other) must stay one list.
    #[test]
    fn contracts_and_masking_agree_on_the_masked_classifications() {
        assert_eq!(weft_contract::MASKED_CLASSIFICATIONS, weft_governance::masking::MASKED_CLASSIFICATIONS);
    }

    /// Token expiry is judged by the broker's injected clock, not the machine's, so a test can
    /// move time past a token's lifetime without waiting for it.
    #[test]
    fn tokens_expire_by_the_brokers_clock() {
        let dir = tempfile::tempdir().unwrap();
        let start_ms = 1_700_000_000_000;
        let clock = Arc::new(ManualClock(AtomicI64::new(start_ms)));
        let broker = Broker::open(dir.path(), clock.clone()).unwrap();
        let guard = broker.guard();
        let lifetime = Duration::from_secs(60);
        let (_, secret) = guard.identity().create_token("admin", Some(lifetime), system_time(clock.as_ref())).unwrap();
        let present = || Ok(Credentials::Bearer(TokenSecret::new(secret.expose())));

        assert_eq!(guard.authenticate(present()).unwrap(), "admin");
        clock.0.store(start_ms + lifetime.as_millis() as i64 + 1, Ordering::SeqCst);
        let expired = guard.authenticate(present()).unwrap_err();
        assert_eq!((expired.kind, expired.code), (Kind::Unauthenticated, codes::AUTH_EXPIRED_TOKEN));
    }

    /// A token watch ends when its token is revoked, and when the broker's clock passes the
    /// token's expiry; a caller without a token (authentication off) is never ended.
    #[tokio::test]
    async fn a_token_watch_ends_on_revocation_and_at_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let start_ms = 1_700_000_000_000;
        let clock = Arc::new(ManualClock(AtomicI64::new(start_ms)));
        let broker = Broker::open(dir.path(), clock.clone()).unwrap();
        let guard = broker.guard();
        let caller_of = |secret: &TokenSecret| {
            let credentials = Ok(Credentials::Bearer(TokenSecret::new(secret.expose())));
            guard.authenticate_caller(credentials, "test".to_string()).unwrap()
        };
        let (revoked_id, revoked) = guard.identity().create_token("admin", None, system_time(clock.as_ref())).unwrap();
        let (_, expiring) = guard.identity().create_token("admin", Some(Duration::from_secs(60)), system_time(clock.as_ref())).unwrap();

        let mut revoked_watch = broker.watch_token(&caller_of(&revoked));
        let mut expiring_watch = broker.watch_token(&caller_of(&expiring));
        let mut tokenless = broker.watch_token(&Caller::without_token("admin", "test"));
        assert!(revoked_watch.check().is_none() && expiring_watch.check().is_none());

        let waiting = {
            let mut watch = revoked_watch.clone();
            tokio::spawn(async move { watch.ended().await })
        };
        guard.revoke_token(&revoked_id).unwrap();
        assert_eq!(waiting.await.unwrap().code, codes::AUTH_REVOKED_TOKEN);
        assert_eq!(revoked_watch.check().map(|e| e.code), Some(codes::AUTH_REVOKED_TOKEN));
        assert!(expiring_watch.check().is_none(), "another token's revocation ends nothing else");

        clock.0.store(start_ms + 60_001, Ordering::SeqCst);
        assert_eq!(expiring_watch.check().map(|e| e.code), Some(codes::AUTH_EXPIRED_TOKEN));
        assert!(tokenless.check().is_none());
    }
}
