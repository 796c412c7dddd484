//! Governance for Weft: who a request comes from, what it may do, what it may see, and the record of it.
//!
//! - [`identity`]: principals and API tokens in `<data-dir>/governance.redb`; bearer, Basic and
//!   SASL/PLAIN authentication; the first-start admin token.
//! - [`authz`]: the public Cedar schema, the entity data built from applied resources, the default
//!   policies, federated (global and domain) Policy resources, and cached decisions.
//! - [`masking`]: deterministic, per-product keyed masking of classified properties.
//! - [`audit`]: the audit entry format, its SHA-256 hash chain, the stored chain head, verification
//!   and search.
//!
//! **Architecture invariant:** this crate knows nothing of HTTP, Kafka, streams' storage or the CLI.
//! It takes strings, bytes and an injected clock (`now: SystemTime` parameters) and returns typed
//! results with stable codes; the edges map them to statuses (401 for [`identity::AuthError`], 403 for
//! [`authz::Denied`]) and append audit entries to `_weft.audit` themselves.
//! Secrets (token secrets, the server secret, product keys) never appear in `Debug` output, errors or
//! audit entries.
//!
//! Randomness is not injected: token secrets and the server secret must come from the operating
//! system's CSPRNG, and a pluggable source would invite a weak one. Nothing else here is random.
//!
//! ## Limits
//!
//! | limit | value | constant |
//! |---|---|---|
//! | principal name | 128 bytes of `[A-Za-z0-9._@-]` | [`identity::PRINCIPAL_NAME_BYTES_MAX`] |
//! | principals | 100,000 | [`identity::PRINCIPALS_MAX`] |
//! | tokens per principal | 100 | [`identity::TOKENS_PER_PRINCIPAL_MAX`] |
//! | token lifetime | 10 years | [`identity::TOKEN_LIFETIME_MAX`] |
//! | `Authorization` header | 8 KiB | [`identity::AUTHORIZATION_HEADER_BYTES_MAX`] |
//! | Policy resource text | 64 KiB | [`authz::POLICY_TEXT_BYTES_MAX`] |
//! | policies in one Policy resource | 256 | [`authz::POLICIES_PER_RESOURCE_MAX`] |
//! | cached decisions | 100,000 (the cache is emptied when full) | [`authz::DECISION_CACHE_ENTRIES_MAX`] |
//! | masking pointers per product | 1,024 | [`masking::MASK_POINTERS_MAX`] |
//! | audit entry | 16 KiB | [`audit::AUDIT_ENTRY_BYTES_MAX`] |
//! | audit entry field | 1 KiB | [`audit::AUDIT_FIELD_BYTES_MAX`] |

pub mod audit;
pub mod authz;
mod encoding;
pub mod identity;
pub mod masking;
mod private_file;

/// Stable error codes. They are public interface: never renamed, never reused.
pub mod codes {
    /// No credentials were presented.
    pub const AUTH_MISSING_CREDENTIALS: &str = "auth.missing_credentials";
    /// Credentials were presented in a form Weft does not read (unknown scheme, bad Basic encoding).
    pub const AUTH_MALFORMED_CREDENTIALS: &str = "auth.malformed_credentials";
    /// The token is not a Weft token, is unknown, or does not belong to the named principal.
    pub const AUTH_INVALID_TOKEN: &str = "auth.invalid_token";
    /// The token's expiry time has passed.
    pub const AUTH_EXPIRED_TOKEN: &str = "auth.expired_token";
    /// The token was revoked.
    pub const AUTH_REVOKED_TOKEN: &str = "auth.revoked_token";
    /// The authenticated principal may not perform the action on the resource.
    pub const AUTHZ_DENIED: &str = "authz.denied";
    /// An action or resource name that Weft's schema does not have.
    pub const AUTHZ_INVALID_REQUEST: &str = "authz.invalid_request";
    /// A Policy resource's Cedar text does not parse.
    pub const POLICY_SYNTAX_ERROR: &str = "policy.syntax_error";
    /// A Policy resource's Cedar text does not validate against Weft's schema.
    pub const POLICY_INVALID: &str = "policy.invalid";
    /// A domain policy constrains resources outside its domain (or does not constrain them).
    pub const POLICY_OUTSIDE_DOMAIN: &str = "policy.outside_domain";
    /// A domain policy permits an action that only global policies may grant (`admin`).
    pub const POLICY_FORBIDDEN_ACTION: &str = "policy.forbidden_action";
    /// A Policy resource holds a template (a policy with `?principal` or `?resource` slots).
    pub const POLICY_TEMPLATE_NOT_ALLOWED: &str = "policy.template_not_allowed";
    /// A Policy resource's name, scope or domain is not acceptable.
    pub const POLICY_INVALID_RESOURCE: &str = "policy.invalid_resource";
    /// A Policy resource is over a limit (text size, number of policies).
    pub const POLICY_TOO_LARGE: &str = "policy.too_large";
    /// A principal name breaks the naming rules.
    pub const IDENTITY_INVALID_NAME: &str = "identity.invalid_name";
    /// The principal already exists.
    pub const IDENTITY_PRINCIPAL_EXISTS: &str = "identity.principal_exists";
    /// The principal does not exist.
    pub const IDENTITY_PRINCIPAL_NOT_FOUND: &str = "identity.principal_not_found";
    /// The token id is unknown.
    pub const IDENTITY_TOKEN_NOT_FOUND: &str = "identity.token_not_found";
    /// An expiry that does not parse, is not positive, or exceeds the maximum lifetime.
    pub const IDENTITY_INVALID_EXPIRY: &str = "identity.invalid_expiry";
    /// A limit on principals or tokens was reached.
    pub const IDENTITY_LIMIT_REACHED: &str = "identity.limit_reached";
    /// The identity store or a governance file could not be read or written.
    pub const IDENTITY_STORAGE: &str = "identity.storage";
    /// The operating system's random number generator failed.
    pub const IDENTITY_RANDOM_UNAVAILABLE: &str = "identity.random_unavailable";
    /// An audit entry does not parse or is over its size limit.
    pub const AUDIT_INVALID_ENTRY: &str = "audit.invalid_entry";
    /// The audit head file could not be read or written, or does not parse.
    pub const AUDIT_HEAD: &str = "audit.head";
    /// The server secret file could not be read or written, or is malformed.
    pub const MASKING_SECRET: &str = "masking.secret";
}
