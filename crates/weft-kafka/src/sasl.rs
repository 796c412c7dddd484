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
//!
//! An authenticated session watches its token ([`Session::token`]): once it is revoked or has
//! expired, the connection answers no further request and is closed (`connection`), and a Fetch
//! waiting for data stops waiting (`fetch`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse};
use weft_core::Broker;
use weft_core::guard::{Caller, TokenWatch};
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
    /// The token the caller authenticated with, watched for revocation; `None` until SASL
    /// succeeds, and with authentication off.
    pub token: Option<TokenWatch>,
}

impl Session {
    pub fn new(broker: &Broker, peer: SocketAddr) -> Self {
        let mut session = Self { peer, state: SaslState::Start, caller: None, token: None };
        if !broker.guard().is_enabled() {
            session.state = SaslState::Done;
            session.caller = Some(Caller::without_token(weft_governance::identity::ADMIN_PRINCIPAL, session.source()));
        }
        session
    }

    fn source(&self) -> String {
        format!("kafka {}", self.peer)
    }

    /// Why the session's token can no longer be used, or `None` while it can (always `None`
    /// before authentication and with authentication off). Cheap: see `TokenWatch::check`.
    pub fn token_ended(&mut self) -> Option<weft_core::Error> {
        self.token.as_mut().and_then(TokenWatch::check)
    }

    /// Resolves once the session's token can no longer be used; never without one.
    pub async fn ended(&mut self) -> weft_core::Error {
        match self.token.as_mut() {
            Some(token) => token.ended().await,
            None => std::future::pending().await,
        }
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
    broker: &Arc<Broker>,
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
pub async fn authenticate_raw(broker: &Arc<Broker>, session: &mut Session, token: &[u8]) -> Result<(), String> {
    check_plain_token(broker, session, token).await
}

/// Checks a PLAIN token (`authzid \0 user \0 password`, RFC 4616) and, on success, marks the
/// session authenticated. The error is the message for the client: it never repeats the secret.
async fn check_plain_token(broker: &Arc<Broker>, session: &mut Session, token: &[u8]) -> Result<(), String> {
    let credentials = parse_plain(token).map(|(user, password)| Credentials::Basic { user, password: TokenSecret::new(password) });
    match broker.guard().authenticate_caller(credentials, session.source()) {
        Ok(caller) => {
            session.token = caller.token_id.is_some().then(|| broker.watch_token(&caller));
            session.caller = Some(caller);
            session.state = SaslState::Done;
            Ok(())
        }
        Err(error) => {
            let unknown = Caller::without_token("unknown", session.source());
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
