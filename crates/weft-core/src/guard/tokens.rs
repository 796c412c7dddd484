//! A revoked token ends what it opened.
//!
//! Every request is authenticated when it arrives, but some stay open: a live tail, a group
//! long poll, a Kafka connection (and the Fetch it is waiting in). Each holds a [`TokenWatch`]
//! on the token its caller presented. [`Guard::revoke_token`] revokes in the identity store and
//! then moves a counter every watch subscribes to; a watch woken by it reads its own token's
//! record once, and if the token is revoked (or has expired) what it guards ends: the live tail
//! closes, the long poll answers 401, the Kafka connection closes. So the end follows the
//! revocation by the time it takes to wake a task, well within a second.
//!
//! A watch checks the store only after some revocation (or once when it is made), so checking it
//! on every Kafka request costs an atomic load. Expiry is also noticed: at each check, and by a
//! timer at the expiry time (the broker's clock decides whether it has come).

use std::sync::Arc;
use std::time::Duration;

use weft_governance::identity::{IdentityError, TokenInfo};

use crate::broker::Broker;
use crate::error::{Error, Kind};
use crate::guard::{Caller, Guard, codes, system_time};

impl Guard {
    /// Revokes a token in the identity store and wakes every [`TokenWatch`], so what the token
    /// opened ends.
    pub fn revoke_token(&self, token_id: &str) -> Result<TokenInfo, IdentityError> {
        let info = self.identity.revoke_token(token_id, system_time(self.clock.as_ref()))?;
        self.revocations.send_modify(|n_revocations| *n_revocations += 1);
        Ok(info)
    }
}

fn ended(code: &'static str, message: &str) -> Error {
    Error::new(Kind::Unauthenticated, code, message)
}

/// Watches the token a caller authenticated with; cheap to clone and to check.
#[derive(Clone)]
pub struct TokenWatch {
    broker: Arc<Broker>,
    /// `None` for a caller without a token (authentication off): it never ends.
    token_id: Option<String>,
    revocations: tokio::sync::watch::Receiver<u64>,
    /// A revocation happened (or the watch is new) since the token's record was last read.
    unread: bool,
    /// The token's expiry (Unix ms), as last read from the store.
    expires_at_ms: Option<u64>,
    /// Set once the token was found revoked or expired; it stays so.
    ended: Option<Error>,
}

impl Broker {
    /// A watch on the token `caller` authenticated with. Its first check reads the token's record,
    /// so a revocation between authentication and now counts.
    pub fn watch_token(self: &Arc<Self>, caller: &Caller) -> TokenWatch {
        let revocations = self.guard().revocations.subscribe();
        TokenWatch {
            broker: Arc::clone(self),
            token_id: caller.token_id.clone(),
            revocations,
            unread: true,
            expires_at_ms: None,
            ended: None,
        }
    }
}

impl TokenWatch {
    /// Why the token can no longer be used (revoked, expired), or `None` while it can. Reads the
    /// identity store only if a token was revoked since the last check (or on the first check).
    pub fn check(&mut self) -> Option<Error> {
        self.token_id.as_ref()?;
        if self.revocations.has_changed().unwrap_or(false) {
            self.revocations.borrow_and_update();
            self.unread = true;
        }
        if self.ended.is_none() && self.unread {
            self.unread = false;
            self.read_token();
        }
        if self.ended.is_none() && self.until_expiry().is_some_and(|left| left.is_zero()) {
            self.ended = Some(ended(codes::AUTH_EXPIRED_TOKEN, "expired token"));
        }
        self.ended.clone()
    }

    /// Resolves once the token can no longer be used, with the error to answer; never for a
    /// caller without a token.
    pub async fn ended(&mut self) -> Error {
        loop {
            if let Some(error) = self.check() {
                return error;
            }
            let until_expiry = self.until_expiry();
            tokio::select! {
                changed = self.revocations.changed() => {
                    if changed.is_err() {
                        // The guard is gone, so is the server: nothing more will end this watch.
                        std::future::pending::<()>().await;
                    }
                    self.unread = true;
                }
                _ = sleep_or_forever(until_expiry) => {}
            }
        }
    }

    /// Reads the token's record: revoked, expired or gone ends the watch. A store that cannot be
    /// read keeps what is open running; the next authentication decides.
    fn read_token(&mut self) {
        let Some(token_id) = self.token_id.as_deref() else { return };
        let guard = self.broker.guard();
        match guard.identity.token(token_id) {
            Ok(Some(info)) if info.revoked() => self.ended = Some(ended(codes::AUTH_REVOKED_TOKEN, "revoked token")),
            Ok(Some(info)) => self.expires_at_ms = info.expires_at_unix_ms,
            Ok(None) => self.ended = Some(ended(codes::AUTH_INVALID_TOKEN, "invalid token")),
            Err(error) => tracing::warn!(%error, "the identity store could not be read to check an open token"),
        }
    }

    /// Time left until the token expires by the broker's clock, `None` if it never does.
    fn until_expiry(&self) -> Option<Duration> {
        let expires_at_ms = self.expires_at_ms?;
        let now_ms = u64::try_from(self.broker.now_ms()).unwrap_or(0);
        Some(Duration::from_millis(expires_at_ms.saturating_sub(now_ms)))
    }
}

async fn sleep_or_forever(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}
