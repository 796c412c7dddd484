//! What a client presents: a token ([`TokenSecret`], redacted in `Debug`), the [`Credentials`]
//! read from an `Authorization` header or a SASL exchange, and why they fail ([`AuthError`]).
//!
//! Owns the token's textual shape (`weft_<id><secret>`) and the header grammar (Bearer, Basic).
//! It does not look tokens up: checking a presented token against the store is the parent module's
//! `IdentityStore`.

use std::fmt;

use super::{AUTHORIZATION_HEADER_BYTES_MAX, TOKEN_CHARS, TOKEN_ID_BYTES, TOKEN_PREFIX};
use crate::codes;

/// A whole token (`weft_<id><secret>`). Its `Debug` shows only the id; it has no `Display`, so it
/// cannot reach a log line by accident. Call [`TokenSecret::expose`] where the secret is meant to go
/// (the `token create` output, the admin token file, a client's header).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// Wraps a presented token (from a header or a SASL exchange) so it is redacted from then on.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The token id, if the text has a token's shape.
    pub fn token_id(&self) -> Option<&str> {
        parse_token(&self.0).map(|(id, _)| id)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.token_id() {
            Some(id) => write!(f, "TokenSecret(id={id}, secret=<redacted>)"),
            None => f.write_str("TokenSecret(<redacted>)"),
        }
    }
}

/// Credentials presented by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Bearer(TokenSecret),
    /// HTTP Basic or SASL/PLAIN: the principal name and a token as the password.
    Basic {
        user: String,
        password: TokenSecret,
    },
}

/// Why a request could not be authenticated (HTTP 401), or why authentication could not be tried.
///
/// Messages never contain a presented secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials")]
    MissingCredentials,
    #[error("malformed credentials: {0}")]
    MalformedCredentials(&'static str),
    #[error("invalid token")]
    InvalidToken { token_id: Option<String> },
    #[error("expired token")]
    ExpiredToken { token_id: String },
    #[error("revoked token")]
    RevokedToken { token_id: String },
    /// The store failed; this is not the client's fault (HTTP 503, not 401).
    #[error("identity store unavailable: {0}")]
    Storage(String),
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingCredentials => codes::AUTH_MISSING_CREDENTIALS,
            Self::MalformedCredentials(_) => codes::AUTH_MALFORMED_CREDENTIALS,
            Self::InvalidToken { .. } => codes::AUTH_INVALID_TOKEN,
            Self::ExpiredToken { .. } => codes::AUTH_EXPIRED_TOKEN,
            Self::RevokedToken { .. } => codes::AUTH_REVOKED_TOKEN,
            Self::Storage(_) => codes::IDENTITY_STORAGE,
        }
    }
    /// The id of the presented token, where it had a token's shape, for the audit log.
    pub fn token_id(&self) -> Option<&str> {
        match self {
            Self::InvalidToken { token_id } => token_id.as_deref(),
            Self::ExpiredToken { token_id } | Self::RevokedToken { token_id } => Some(token_id),
            _ => None,
        }
    }
    /// True when the client should get 401; false when the server failed (503).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Storage(_))
    }
}

/// Reads an HTTP `Authorization` header value (`None` when the header is absent).
pub fn parse_authorization_header(value: Option<&[u8]>) -> Result<Credentials, AuthError> {
    let Some(value) = value else {
        return Err(AuthError::MissingCredentials);
    };
    if value.len() > AUTHORIZATION_HEADER_BYTES_MAX {
        return Err(AuthError::MalformedCredentials("authorization header too long"));
    }
    let value = std::str::from_utf8(value).map_err(|_| AuthError::MalformedCredentials("authorization header is not utf-8"))?.trim();
    if value.is_empty() {
        return Err(AuthError::MissingCredentials);
    }
    let (scheme, rest) = value.split_once(' ').ok_or(AuthError::MalformedCredentials("expected `Bearer <token>` or `Basic <base64>`"))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err(AuthError::MissingCredentials);
        }
        Ok(Credentials::Bearer(TokenSecret::new(rest)))
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(rest).ok_or(AuthError::MalformedCredentials("basic credentials are not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::MalformedCredentials("basic credentials are not utf-8"))?;
        let (user, password) = decoded.split_once(':').ok_or(AuthError::MalformedCredentials("basic credentials lack `:`"))?;
        if password.is_empty() {
            return Err(AuthError::MissingCredentials);
        }
        Ok(Credentials::Basic { user: user.to_string(), password: TokenSecret::new(password) })
    } else {
        Err(AuthError::MalformedCredentials("unsupported authorization scheme"))
    }
}

/// Splits a token into (id, secret) hex parts if it has a token's exact shape.
pub(crate) fn parse_token(token: &str) -> Option<(&str, &str)> {
    let hex = token.strip_prefix(TOKEN_PREFIX)?;
    if token.len() != TOKEN_CHARS || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some(hex.split_at(2 * TOKEN_ID_BYTES))
}

/// Standard base64 with padding (RFC 4648 §4), as HTTP Basic uses. Small enough to keep here rather
/// than add a dependency; the header is bounded by [`AUTHORIZATION_HEADER_BYTES_MAX`].
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut decoded = Vec::with_capacity(bytes.len() / 4 * 3);
    let n_chunks = bytes.len() / 4;
    for (chunk_idx, chunk) in bytes.chunks(4).enumerate() {
        let n_padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if n_padding > 2 || (n_padding > 0 && chunk_idx + 1 != n_chunks) {
            return None;
        }
        let mut group = 0u32;
        for &c in &chunk[..4 - n_padding] {
            group = (group << 6) | value(c)?;
        }
        group <<= 6 * n_padding as u32;
        let group_bytes = [(group >> 16) as u8, (group >> 8) as u8, group as u8];
        decoded.extend_from_slice(&group_bytes[..3 - n_padding]);
    }
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_rfc4648_vectors() {
        for (encoded, plain) in
            [("", ""), ("Zg==", "f"), ("Zm8=", "fo"), ("Zm9v", "foo"), ("Zm9vYg==", "foob"), ("Zm9vYmE=", "fooba"), ("Zm9vYmFy", "foobar")]
        {
            assert_eq!(base64_decode(encoded).as_deref(), Some(plain.as_bytes()), "{encoded}");
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9v!A==", "===="] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }
}
