//! Refreshing one connection's tokens: the one protocol both the `token-refresh` schedule and
//! the provider-call path (a token about to expire, a provider's 401) go through, so a token
//! is never refreshed twice at once, however many functions want it fresh.
//!
//! 1. **Claim.** A conditional UPDATE sets `refresh_not_before` (a lease longer than any
//!    invocation lives) only if the row still holds the access-token ciphertext that was read
//!    and no lease or backoff is in force. Every token write re-encrypts under a fresh nonce,
//!    so a row someone refreshed since it was read fails the claim. The claim returns the row
//!    as it now is; that copy is what gets refreshed.
//! 2. **Refresh, then write first.** New access and refresh tokens are encrypted and stored in
//!    one UPDATE before anything else that can fail (Box kills the old refresh token the moment
//!    it issues a new one); a response without a refresh token keeps the stored one. The write
//!    is retried with backoff on a database error until the caller's write deadline, since
//!    losing it loses a single-use token; the lease keeps the row ours meanwhile. A write that
//!    never succeeds is logged as an error (never the token) and recorded as a
//!    `token_store_failed` error row when the database allows.
//! 3. **Failures.** `invalid_grant` ends the connection: `revoked` when the provider module
//!    reports the grant revoked, else `expired`, with one `auth` error row carrying the
//!    provider's code. Anything else (429, 5xx, timeout, malformed response, a refused client)
//!    leaves it active and backs off exponentially, honouring `Retry-After`; the failure
//!    episode has one error row whose `retry_count` counts the further failures, resolved by
//!    the next success.
//!
//! A connection without a refresh token is left alone until its access token expires, then
//! marked `expired`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use tokio::time::Instant;

use crate::db::{ConnectionStatus, DbError, ErrorType, NewSyncError, RefreshCandidate, RefreshedTokens, Store, mssql};
use crate::error_rows::scrub_error_row;
use crate::providers::{Provider, ProviderError, TokenSet};
use crate::schedule::chrono_duration;
use crate::vault::{TokenContext, Vault};

/// Access-token lifetime assumed when a provider does not state one: short enough that the
/// token is refreshed again well before any provider's real lifetime ends.
pub const ASSUMED_LIFETIME: Duration = Duration::from_secs(3600);
/// A Retry-After beyond this is taken as this; the backoff is for a throttled provider, not a
/// way for a bad header to park a connection for a year.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// First pause between attempts to store refreshed tokens, doubled per attempt up to
/// [`STORE_RETRY_MAX`]; attempts go on until the write deadline.
const STORE_RETRY_FIRST: Duration = Duration::from_millis(200);
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);
/// What one token write can take before it fails (SQL Server's worst case: a pool checkout and
/// a command timeout for each of BEGIN, UPDATE and COMMIT). A refresh starts only if its
/// provider call and one such write still fit.
pub const WRITE_RESERVE: Duration = mssql::worst_case_single_write();
/// Left free before a lease runs out for the failure record and the reply.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(5);
/// How long recording a token write that never succeeded may take.
const RECORD_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a claim holds a row and how failures back off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// How long a claim holds a row. It must outlive whatever holds it, or a second refresher
    /// could spend a single-use refresh token again.
    pub lease: Duration,
    /// First backoff after a failure, doubled per further failure up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> RefreshPolicy {
        RefreshPolicy {
            lease: Duration::from_secs(600),
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(3600),
        }
    }
}

impl RefreshPolicy {
    /// The wait before the next attempt after `failures` consecutive failures.
    pub fn backoff(&self, failures: i32, retry_after: Option<Duration>) -> Duration {
        let doublings = u32::try_from(failures.saturating_sub(1)).unwrap_or(0).min(20);
        let exponential = self.backoff_base.saturating_mul(1 << doublings).min(self.backoff_max);
        exponential.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
    }
}

/// When a refresh may start and when its token write must be done.
#[derive(Debug, Clone, Copy)]
pub struct RefreshLimits {
    /// No provider call starts after this (the claim is released instead).
    pub start_by: Instant,
    /// Token writes are retried until this (cut short by the lease's end).
    pub write_by: Instant,
}

/// What became of one refresh.
#[derive(Debug)]
pub enum Refreshed {
    /// Another refresher holds the row (a lease or a backoff), or refreshed it since it was read.
    NotClaimed,
    /// New tokens are stored; the new access token, its ciphertext and expiry as stored.
    Stored { access: SecretString, encrypted_access: Vec<u8>, token_expiry: DateTime<Utc> },
    /// The connection was deleted while refreshing: nothing to keep the tokens for.
    Gone,
    /// The provider refused the grant: the connection is now `status`, with one auth error row
    /// (`recorded` false: something else ended it first).
    Ended { status: ConnectionStatus, error: ProviderError, recorded: bool },
    /// No refresh token: the connection was marked expired (`ended`), or, its access token
    /// still valid, left alone until it expires.
    NoRefreshToken { ended: bool },
    /// Out of time before the provider call: the claim was given back.
    Released,
    /// The refresh failed; the failure is recorded and backs off. `retry_in` is that backoff.
    Failed { error: RefreshError, retry_in: Duration },
    /// The provider issued tokens that could not be stored by the write deadline; recorded
    /// (when the database allowed) as `token_store_failed`.
    Lost { rotated: bool },
    /// A database failure before anything was decided (claim, release, marking expired).
    Store(DbError),
}

/// Why a claimed refresh failed without ending the grant.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Provider(ProviderError),
    #[error("the stored refresh token does not decrypt")]
    Undecryptable(#[source] crate::vault::VaultError),
}

/// Everything a refresh needs besides the row: where to store, the vault, the provider
/// definition, the client secret (cut out of anything the provider says), the policy, and
/// the name error rows give as their source.
pub struct Refresher<'a> {
    pub store: &'a Store,
    pub vault: &'a Vault,
    pub provider: &'a dyn Provider,
    pub client_secret: Option<&'a str>,
    pub policy: &'a RefreshPolicy,
    pub source: &'a str,
}

impl Refresher<'_> {
    /// Claims the refresh of `read` (as it was read) and, if the claim holds, refreshes it.
    pub async fn claim_and_refresh(&self, read: &RefreshCandidate, limits: RefreshLimits) -> Refreshed {
        let store = self.store;
        let lease_until = store.now() + chrono_duration(self.policy.lease);
        // The lease is the row's exclusivity: writes stop before it runs out.
        let lease_end = (Instant::now() + self.policy.lease).checked_sub(SAFETY_MARGIN).unwrap_or_else(Instant::now);
        let claimed = match store.claim_refresh(read, lease_until).await {
            Ok(Some(row)) => row,
            Ok(None) => return Refreshed::NotClaimed,
            Err(e) => return Refreshed::Store(e),
        };
        let limits = RefreshLimits { start_by: limits.start_by, write_by: limits.write_by.min(lease_end) };
        self.refresh_claimed(&claimed, limits).await
    }

    /// Refreshes a row this caller holds the claim of.
    pub async fn refresh_claimed(&self, claimed: &RefreshCandidate, limits: RefreshLimits) -> Refreshed {
        let store = self.store;
        let conn = &claimed.connection;
        let (tenant, id) = (conn.base.tenant_id, conn.base.id);
        let Some(encrypted_refresh) = conn.encrypted_refresh_token.as_deref() else {
            return self.without_refresh_token(claimed, store.now()).await;
        };
        let refresh_token = match self.vault.decrypt(TokenContext::refresh(tenant, id), encrypted_refresh) {
            Ok(t) => t,
            Err(e) => {
                let row = self.error_row(
                    claimed,
                    ErrorType::Validation,
                    Some("token_undecryptable".into()),
                    e.to_string(),
                    &[],
                );
                let retry_in = self.record_failure(claimed, row, None).await;
                return Refreshed::Failed { error: RefreshError::Undecryptable(e), retry_in };
            }
        };
        // The claim may have taken a while: start the refresh only if its write still fits.
        if Instant::now() >= limits.start_by {
            return match store.release_refresh(tenant, id, store.now()).await {
                Ok(()) => Refreshed::Released,
                Err(e) => Refreshed::Store(e),
            };
        }
        let issued_at = store.now();
        match self.provider.refresh(&refresh_token).await {
            Ok(tokens) => self.store_tokens(claimed, tokens, issued_at, limits.write_by).await,
            Err(e) => self.provider_failure(claimed, e, &refresh_token).await,
        }
    }

    async fn without_refresh_token(&self, claimed: &RefreshCandidate, now: DateTime<Utc>) -> Refreshed {
        let store = self.store;
        let conn = &claimed.connection;
        let (tenant, id) = (conn.base.tenant_id, conn.base.id);
        if conn.token_expiry <= now {
            let row = self.error_row(
                claimed,
                ErrorType::Auth,
                Some("no_refresh_token".into()),
                "the access token expired and the provider gave no refresh token; reconnect the account".into(),
                &[],
            );
            return match store.end_refresh(tenant, id, ConnectionStatus::Expired, &row).await {
                Ok(ended) => Refreshed::NoRefreshToken { ended },
                Err(e) => Refreshed::Store(e),
            };
        }
        // Nothing to refresh with: look again when the access token runs out.
        match store.release_refresh(tenant, id, conn.token_expiry).await {
            Ok(()) => Refreshed::NoRefreshToken { ended: false },
            Err(e) => Refreshed::Store(e),
        }
    }

    async fn store_tokens(
        &self,
        claimed: &RefreshCandidate,
        tokens: TokenSet,
        issued_at: DateTime<Utc>,
        write_by: Instant,
    ) -> Refreshed {
        let store = self.store;
        let conn = &claimed.connection;
        let (tenant, id) = (conn.base.tenant_id, conn.base.id);
        let refreshed = RefreshedTokens {
            encrypted_access_token: self.vault.encrypt(TokenContext::access(tenant, id), &tokens.access_token),
            encrypted_refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|r| self.vault.encrypt(TokenContext::refresh(tenant, id), r)),
            token_expiry: tokens.expires_at(issued_at).unwrap_or_else(|| issued_at + chrono_duration(ASSUMED_LIFETIME)),
            scope: tokens.scope.clone().filter(|s| !s.trim().is_empty()),
        };
        // Retried until `write_by`, each attempt cut off there too: the lease keeps the row
        // ours, and the Lambda timeout must not end the invocation in the middle of an attempt.
        // A pause that would leave the next attempt less than half of what is left is shortened
        // to that half, and the attempt after it is the last one.
        let mut attempts = 0u32;
        let mut pause = STORE_RETRY_FIRST;
        let mut last = false;
        let written = loop {
            attempts += 1;
            let left = write_by.saturating_duration_since(Instant::now());
            let error = match tokio::time::timeout(left, store.store_refreshed_tokens(tenant, id, &refreshed)).await {
                Ok(Ok(written)) => break written,
                Ok(Err(e)) => crate::error_chain(&e).to_string(),
                Err(_) => "cut off at the write deadline".to_owned(),
            };
            let left = write_by.saturating_duration_since(Instant::now());
            if last || left.is_zero() {
                let rotated = refreshed.encrypted_refresh_token.is_some();
                return self.tokens_lost(claimed, rotated, attempts, &error).await;
            }
            let wait = pause.min(left / 2);
            last = wait < pause;
            tracing::warn!(connection_id = %id, attempts, last, error, "storing tokens failed; retrying");
            tokio::time::sleep(wait).await;
            pause = (pause * 2).min(STORE_RETRY_MAX);
        };
        if !written {
            return Refreshed::Gone;
        }
        tracing::debug!(connection_id = %id, source = self.source, "refreshed");
        // Ends the failure episode. After the token write, so a failure here costs nothing.
        if let Some(open) = claimed.refresh_error_id {
            match store.resolve_error(tenant, open, Some("token refreshed")).await {
                Ok(_) | Err(DbError::NotFound) | Err(DbError::State(_)) => {}
                Err(e) => {
                    tracing::warn!(connection_id = %id, error = %crate::error_chain(&e), "cannot resolve the error")
                }
            }
        }
        Refreshed::Stored {
            access: tokens.access_token,
            encrypted_access: refreshed.encrypted_access_token,
            token_expiry: refreshed.token_expiry,
        }
    }

    /// The provider issued tokens that could not be stored by the write deadline. If it rotated
    /// the refresh token, the stored one is now dead and the connection will need reconnecting;
    /// say so loudly (never the token) and record it if the database takes the record.
    async fn tokens_lost(&self, claimed: &RefreshCandidate, rotated: bool, attempts: u32, error: &str) -> Refreshed {
        let conn = &claimed.connection;
        tracing::error!(
            connection_id = %conn.base.id,
            tenant_id = %conn.base.tenant_id,
            provider = conn.provider_type.as_str(),
            rotated_refresh_token = rotated,
            attempts,
            error,
            "REFRESHED TOKENS LOST: the provider issued new tokens that could not be stored"
        );
        let message = if rotated {
            "the provider issued a new refresh token that could not be stored; the connection may need to be reconnected"
        } else {
            "refreshed tokens could not be stored; the stored refresh token is kept"
        };
        let row = self.error_row(claimed, ErrorType::Auth, Some("token_store_failed".into()), message.into(), &[]);
        let wait = self.policy.backoff(claimed.refresh_failures.saturating_add(1), None);
        let retry_at = self.store.now() + chrono_duration(wait);
        match tokio::time::timeout(RECORD_TIMEOUT, self.store.record_refresh_failure(claimed, &row, retry_at)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(connection_id = %conn.base.id, error = %crate::error_chain(&e), "cannot record the lost tokens")
            }
            Err(_) => tracing::error!(connection_id = %conn.base.id, "cannot record the lost tokens: timed out"),
        }
        Refreshed::Lost { rotated }
    }

    async fn provider_failure(
        &self,
        claimed: &RefreshCandidate,
        e: ProviderError,
        refresh_token: &SecretString,
    ) -> Refreshed {
        let store = self.store;
        let conn = &claimed.connection;
        let (tenant, id) = (conn.base.tenant_id, conn.base.id);
        // A provider may quote the request (the refresh token, the client secret) in its error.
        let mut secrets = vec![refresh_token.expose_secret()];
        secrets.extend(self.client_secret);
        if let ProviderError::InvalidGrant { revoked, .. } = &e {
            let status = if *revoked { ConnectionStatus::Revoked } else { ConnectionStatus::Expired };
            let row = self.error_row(claimed, ErrorType::Auth, e.error_code(), e.to_string(), &secrets);
            return match store.end_refresh(tenant, id, status, &row).await {
                Ok(recorded) => {
                    tracing::info!(connection_id = %id, status = status.as_str(), code = ?row.error_code, "grant refused");
                    Refreshed::Ended { status, error: e, recorded }
                }
                Err(db) => Refreshed::Store(db),
            };
        }
        let row = self.error_row(claimed, e.error_type(), e.error_code(), e.to_string(), &secrets);
        let retry_in = self.record_failure(claimed, row, e.retry_after()).await;
        Refreshed::Failed { error: RefreshError::Provider(e), retry_in }
    }

    /// Records a failed attempt and its backoff; returns the backoff.
    async fn record_failure(
        &self,
        claimed: &RefreshCandidate,
        row: NewSyncError,
        retry_after: Option<Duration>,
    ) -> Duration {
        let store = self.store;
        let id = claimed.connection.base.id;
        let wait = self.policy.backoff(claimed.refresh_failures.saturating_add(1), retry_after);
        let retry_at = store.now() + chrono_duration(wait);
        match store.record_refresh_failure(claimed, &row, retry_at).await {
            Ok(record) => tracing::warn!(
                connection_id = %id,
                error_type = row.error_type.as_str(),
                code = ?row.error_code,
                retry_in_s = wait.as_secs(),
                ?record,
                "refresh failed"
            ),
            Err(e) => tracing::warn!(connection_id = %id, error = %crate::error_chain(&e), "cannot record the failure"),
        }
        wait
    }

    /// An error row for the connection, scrubbed of `secrets` (and any credential the text
    /// quotes) and clipped to what the columns hold.
    fn error_row(
        &self,
        c: &RefreshCandidate,
        error_type: ErrorType,
        code: Option<String>,
        message: String,
        secrets: &[&str],
    ) -> NewSyncError {
        let conn = &c.connection;
        let row = NewSyncError {
            tenant_id: conn.base.tenant_id,
            sync_job_id: None,
            connection_id: conn.base.id,
            file_id: None,
            error_type,
            error_code: code,
            error_message: message,
            stack_trace: None,
            error_metadata: Some(json!({ "source": self.source, "provider": conn.provider_type })),
        };
        scrub_error_row(row, secrets)
    }
}
