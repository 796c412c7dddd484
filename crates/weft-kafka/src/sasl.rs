//! SASL/PLAIN authentication: SaslHandshake (v0, v1) and SaslAuthenticate (v0, v1).
//!
//! The PLAIN username is the principal and the password is one of its tokens, checked by the
//! broker's guard exactly as HTTP Basic is. Until a connection has authenticated, it may send
//! only ApiVersions, SaslHandshake and SaslAuthenticate; anything else closes it (as Kafka
//! does with a request out of the SASL sequence). Under `weft serve --auth off` connections
//! start authenticated as `admin`, and a SASL exchange, if a client makes one, also yields
//! `admin`.
//!
//! After SaslHandshake v1 the token travels in SaslAuthenticate requests; after v0 (older
//! clients) the next frame is the bare PLAIN token, answered with an empty frame on success.
//! A failed authentication is audited (`authenticate`, decision `auth_failure`), answered with
//! SASL_AUTHENTICATION_FAILED where the protocol has a response, and the connection is closed.

use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse};
use weft_core::Broker;
use weft_core::guard::Caller;
use weft_governance::identity::{Credentials, TokenSecret};

use crate::cluster::str_bytes;

/// The one mechanism offered.
pub const MECHANISM_PLAIN: &str = "PLAIN";
/// Longest PLAIN token accepted (authzid, user and password with their separators).
pub const PLAIN_TOKEN_BYTES_MAX: usize = 4 * 1024;

/// Where a connection is in the SASL exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslState {
    /// Nothing yet: only ApiVersions and SaslHandshake make sense.
    Start,
    /// SaslHandshake v1 accepted PLAIN: a SaslAuthenticate comes next.
    Handshaken,
    /// SaslHandshake v0 accepted PLAIN: the next frame is a bare PLAIN token.
    RawTokenNext,
    /// Authenticated (or authentication is off).
    Done,
}

/// A connection's identity: who it is once authenticated, and the SASL progress.
pub struct Session {
    pub peer: SocketAddr,
    pub state: SaslState,
    /// The authenticated caller; `None` until SASL succeeds (unless authentication is off).
    pub caller: Option<Caller>,
}

impl Session {
    pub fn new(broker: &Broker, peer: SocketAddr) -> Self {
        let mut session = Self { peer, state: SaslState::Start, caller: None };
        if !broker.guard().is_enabled() {
            session.state = SaslState::Done;
            session.caller = Some(session.caller_named(weft_governance::identity::ADMIN_PRINCIPAL.to_string()));
        }
        session
    }

    fn caller_named(&self, principal: String) -> Caller {
        Caller { principal, source: format!("kafka {}", self.peer) }
    }
}

pub fn handshake(session: &mut Session, version: i16, request: &SaslHandshakeRequest) -> SaslHandshakeResponse {
    let response = SaslHandshakeResponse::default().with_mechanisms(vec![str_bytes(MECHANISM_PLAIN)]);
    if session.state != SaslState::Start {
        return response.with_error_code(ResponseError::IllegalSaslState.code());
    }
    if request.mechanism.as_str() != MECHANISM_PLAIN {
        return response.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
    }
    session.state = if version == 0 { SaslState::RawTokenNext } else { SaslState::Handshaken };
    response
}

/// Answers SaslAuthenticate; `Err(response)` means answer and then close the connection.
pub async fn authenticate(
    broker: &Broker,
    session: &mut Session,
    request: &SaslAuthenticateRequest,
) -> Result<SaslAuthenticateResponse, SaslAuthenticateResponse> {
    if session.state != SaslState::Handshaken {
        return Err(SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(str_bytes("SaslAuthenticate must follow a SaslHandshake v1 that chose PLAIN"))));
    }
    match check_plain_token(broker, session, &request.auth_bytes).await {
        Ok(()) => Ok(SaslAuthenticateResponse::default().with_auth_bytes(Bytes::new())),
        Err(message) => Err(SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
            .with_error_message(Some(str_bytes(message)))),
    }
}

/// Checks the bare PLAIN token that follows SaslHandshake v0.
pub async fn authenticate_raw(broker: &Broker, session: &mut Session, token: &[u8]) -> Result<(), String> {
    check_plain_token(broker, session, token).await
}

/// Checks a PLAIN token (`authzid \0 user \0 password`, RFC 4616) and, on success, marks the
/// session authenticated. The error is the message for the client: it never repeats the secret.
async fn check_plain_token(broker: &Broker, session: &mut Session, token: &[u8]) -> Result<(), String> {
    let credentials = parse_plain(token);
    let principal =
        broker.guard().authenticate(credentials.map(|(user, password)| Credentials::Basic { user, password: TokenSecret::new(password) }));
    match principal {
        Ok(principal) => {
            session.caller = Some(session.caller_named(principal));
            session.state = SaslState::Done;
            Ok(())
        }
        Err(error) => {
            let unknown = session.caller_named("unknown".to_string());
            let detail = Some(format!("sasl {MECHANISM_PLAIN}"));
            broker.audit_auth_failure(&unknown, "kafka", error.code, detail).await;
            Err(format!("authentication failed: {} ({})", error.message, error.code))
        }
    }
}

/// Splits a PLAIN token into (user, password). An authorization id, if present, must equal
/// the user: Weft has no impersonation.
fn parse_plain(token: &[u8]) -> Result<(String, String), weft_governance::identity::AuthError> {
    use weft_governance::identity::AuthError;
    if token.len() > PLAIN_TOKEN_BYTES_MAX {
        return Err(AuthError::MalformedCredentials("sasl plain token is too long"));
    }
    let text = std::str::from_utf8(token).map_err(|_| AuthError::MalformedCredentials("sasl plain token is not utf-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::MalformedCredentials("sasl plain token must be authzid NUL user NUL password"));
    };
    if user.is_empty() {
        return Err(AuthError::MalformedCredentials("sasl plain user is empty"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(AuthError::MalformedCredentials("sasl plain authorization id must be empty or the user"));
    }
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tokens_split_into_user_and_password() {
        assert_eq!(parse_plain(b"\0alice\0weft_x").unwrap(), ("alice".to_string(), "weft_x".to_string()));
        assert_eq!(parse_plain(b"alice\0alice\0weft_x").unwrap(), ("alice".to_string(), "weft_x".to_string()));
        assert!(parse_plain(b"bob\0alice\0weft_x").is_err(), "impersonation is refused");
        assert!(parse_plain(b"\0alice").is_err());
        assert!(parse_plain(b"\0\0weft_x").is_err());
        assert!(parse_plain(b"\0a\0b\0c").is_err());
        assert!(parse_plain(&vec![b'a'; PLAIN_TOKEN_BYTES_MAX + 1]).is_err());
    }
}
