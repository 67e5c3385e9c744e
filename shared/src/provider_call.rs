//! The one path for calling a provider about a connection. Every provider call a function
//! makes for a stored connection goes through [`ProviderCall`]:
//!
//! ```text
//! let call = ProviderCall::open(&app, connection).await?;
//! let link = call.run(&deadline, |a| a.provider.create_shared_link(a.token, &target, &request)).await?;
//! ```
//!
//! Opening reads the configuration in force, finds the connection's provider definition and
//! decrypts its access token. [`ProviderCall::run`] makes one call under a [`Deadline`] with a
//! fresh token: a token about to expire is refreshed first, and a provider's 401 is answered
//! by one refresh and one retry. Refreshes go through the same row claim as the
//! `token-refresh` schedule ([`crate::tokens`]), so a token is never refreshed twice at once
//! (Box refresh tokens are single-use): when another refresher holds the row, the call waits
//! for its new token instead. A failure comes back as a [`CallError`], classified into the
//! sync-error vocabulary (`error_type`, the provider's `error_code`); [`ProviderCall::error_row`]
//! makes the `cloud_sync_errors` row for it, already scrubbed of every token, refresh token and
//! client secret the call handled. `From<CallError> for ApiError` is the one default mapping of
//! a provider failure to an HTTP answer.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use tokio::sync::RwLock;
use tokio::time::Instant;

use crate::api::ApiError;
use crate::app::{App, Current};
use crate::config::ConfigError;
use crate::db::{Connection, ConnectionStatus, DbError, ErrorType, NewSyncError, ProviderType, Store};
use crate::deadline::{Deadline, TimedOut};
use crate::error_rows::ErrorRow;
use crate::providers::{Provider, ProviderError};
use crate::tokens::{RefreshLimits, RefreshPolicy, Refreshed, Refresher};
use crate::vault::{TokenContext, VaultError};

/// A token expiring within this is refreshed before a call rather than sent to fail.
const EXPIRY_SKEW: Duration = Duration::from_secs(60);
/// The most a call waits for another refresher's new token.
const ADOPT_WAIT: Duration = Duration::from_secs(5);
const ADOPT_POLL: Duration = Duration::from_millis(200);
/// Kept from the Lambda's deadline (or, without one, added to the request's) for the token
/// write after an on-demand refresh: the write must outlive the answer's deadline, since a
/// lost write can lose a single-use refresh token.
const WRITE_MARGIN: Duration = Duration::from_secs(1);
const WRITE_WITHOUT_LAMBDA: Duration = Duration::from_secs(30);
/// The least a refresh needs before its write deadline to be started: the provider's answer
/// and a token write in ordinary conditions.
const REFRESH_MIN: Duration = Duration::from_secs(5);

/// What a provider call is handed: the definition, the connection's access token and the
/// connection (its metadata names drives and sites). `'env` is the caller's environment the
/// call may borrow from; it outlives the attempt.
pub struct Attempt<'a, 'env> {
    pub provider: &'a dyn Provider,
    pub token: &'a SecretString,
    pub connection: &'a Connection,
    _env: PhantomData<&'a &'env ()>,
}

/// Why a provider call for a connection did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The provider refused or failed (not configured, throttled, down, timed out, ...).
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A refresh was refused by the provider (`invalid_grant`): the connection is now expired
    /// or revoked and needs the user to sign in again.
    #[error("the provider refused the connection's grant; it is now {status}: {error}")]
    GrantEnded { status: ConnectionStatus, error: ProviderError },
    /// The connection cannot be used: revoked, expired, in error, or without a refresh token
    /// once its access token expired.
    #[error("the connection is {0}; reconnect the account")]
    NotActive(ConnectionStatus),
    #[error("the configuration cannot be read")]
    Configuration(#[source] ConfigError),
    #[error("the connection's stored token does not decrypt")]
    Token(#[source] VaultError),
    /// Reading or writing the connection failed (a refresh's bookkeeping, say).
    #[error("database")]
    Store(#[source] DbError),
}

impl From<TimedOut> for CallError {
    fn from(_: TimedOut) -> CallError {
        CallError::Provider(ProviderError::Timeout)
    }
}

impl CallError {
    /// The `cloud_sync_errors.error_type` this failure is recorded as.
    pub fn error_type(&self) -> ErrorType {
        match self {
            CallError::Provider(e) => e.error_type(),
            CallError::GrantEnded { .. } | CallError::NotActive(_) | CallError::Token(_) => ErrorType::Auth,
            CallError::Configuration(_) => ErrorType::Validation,
            CallError::Store(_) => ErrorType::Api,
        }
    }

    /// The provider's code for the failure, or ours for a failure before the provider.
    pub fn error_code(&self) -> Option<String> {
        match self {
            CallError::Provider(e) | CallError::GrantEnded { error: e, .. } => e.error_code(),
            CallError::NotActive(_) => Some("connection_not_active".into()),
            CallError::Configuration(_) => Some("configuration_unavailable".into()),
            CallError::Token(_) => Some("token_undecryptable".into()),
            CallError::Store(_) => Some("database_error".into()),
        }
    }

    /// Whether the same call may succeed later without anything changing.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Provider(e) => e.is_transient(),
            CallError::Configuration(_) | CallError::Store(_) => true,
            CallError::GrantEnded { .. } | CallError::NotActive(_) | CallError::Token(_) => false,
        }
    }

    /// The wait the provider asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Provider(e) => e.retry_after(),
            _ => None,
        }
    }

    /// The `cloud_sync_errors` row for this failure of `operation` on `connection` (for a
    /// failure before any token was handled; [`ProviderCall::error_row`] otherwise). `message`
    /// says what failed; the error and its causes are appended.
    pub fn error_row(&self, connection: &Connection, operation: &str, message: &str) -> ErrorRow {
        ErrorRow::new(
            NewSyncError {
                tenant_id: connection.base.tenant_id,
                sync_job_id: None,
                connection_id: connection.base.id,
                file_id: None,
                error_type: self.error_type(),
                error_code: self.error_code(),
                error_message: format!("{message}: {}", crate::error_chain(self)),
                stack_trace: None,
                error_metadata: Some(json!({ "operation": operation, "provider_type": connection.provider_type })),
            },
            Vec::new(),
        )
    }

    /// The provider error, if the provider is what failed.
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            CallError::Provider(e) | CallError::GrantEnded { error: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// The default HTTP answer to a failed provider call: a provider that is not configured is
/// ours to fix (503); something the provider cannot do is the caller's request (400); a
/// connection that cannot be used is a conflict the user resolves by reconnecting (409); a
/// stored token that does not decrypt or a failing database is a fault of ours; a provider
/// that throttles is a 429 with its `Retry-After`, one that does not answer in time a 504;
/// anything else the provider does wrong is a 502 saying whether to try again. Functions override only what
/// differs for them.
impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        match e {
            CallError::Provider(ProviderError::NotConfigured { provider, hint }) => {
                tracing::error!(%provider, hint, "provider unavailable");
                ApiError::Unavailable {
                    code: "provider_unavailable",
                    message: "this provider is not available right now; try again later".into(),
                }
            }
            CallError::Provider(ProviderError::Unsupported(message)) => {
                ApiError::bad_request("unsupported_by_provider", message)
            }
            CallError::Configuration(e) => {
                tracing::error!(error = %crate::error_chain(&e), "configuration unavailable");
                ApiError::Unavailable {
                    code: "configuration_unavailable",
                    message: "the service configuration cannot be read; try again shortly".into(),
                }
            }
            CallError::NotActive(status) | CallError::GrantEnded { status, .. } => ApiError::conflict(
                "connection_not_active",
                format!("the connection is {status}; reconnect the account"),
            ),
            CallError::Token(e) => ApiError::internal(e),
            CallError::Store(e) => e.into(),
            CallError::Provider(ProviderError::RateLimited { retry_after }) => ApiError::TooManyRequests {
                code: "provider_rate_limited",
                message: "the provider is throttling this connection; try again after the time Retry-After gives"
                    .into(),
                retry_after,
            },
            CallError::Provider(ProviderError::Timeout) => ApiError::GatewayTimeout {
                code: "provider_timeout",
                message: "the provider did not answer in time; try again shortly".into(),
            },
            CallError::Provider(e) => {
                let hint = if e.is_transient() { "; try again shortly" } else { "" };
                ApiError::BadGateway { code: "provider_error", message: format!("the provider failed{hint}") }
            }
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> ApiError {
        CallError::Provider(e).into()
    }
}

/// How a call is bounded by its deadline.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// Cut off where it would eat into the last `Duration` of the deadline.
    Leaving(Duration),
    /// An undo: see [`Deadline::undo_call`].
    Undo(Duration),
}

/// The connection's access token as this call last knew it.
struct AccessToken {
    secret: SecretString,
    /// As stored: a refresh elsewhere changes it (every write re-encrypts).
    ciphertext: Vec<u8>,
    expiry: DateTime<Utc>,
    /// Bumped by each refresh, so callers that saw the same 401 refresh once between them.
    generation: u64,
}

/// A connection made ready for provider calls. Cheap to share by reference between
/// concurrent calls: the token is behind a lock that only a refresh writes.
pub struct ProviderCall {
    store: Store,
    current: Arc<Current>,
    connection: Connection,
    token: RwLock<AccessToken>,
    policy: RefreshPolicy,
    /// Every token value this call handled (old and new access tokens, a refresh token) and
    /// the client secret: cut out of whatever a provider says before it reaches a row or a log.
    secrets: Mutex<Vec<SecretString>>,
    /// Whether a 401 already led to a refresh: once is enough. A token refused again after a
    /// refresh is not expired but unwelcome (the app's access was removed), and refreshing on
    /// every call of a long job would spend the provider's patience for nothing.
    refreshed_on_refusal: AtomicBool,
}

impl std::fmt::Debug for ProviderCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderCall")
            .field("connection_id", &self.connection.base.id)
            .field("provider", &self.connection.provider_type)
            .finish_non_exhaustive()
    }
}

impl ProviderCall {
    /// Ready for calls: the configuration in force, the provider's definition, the decrypted
    /// access token. A connection that is not active is refused here, before any call.
    pub async fn open(app: &App, connection: Connection) -> Result<ProviderCall, CallError> {
        if connection.status != ConnectionStatus::Active {
            return Err(CallError::NotActive(connection.status));
        }
        let current = app.current().await.map_err(CallError::Configuration)?;
        ProviderCall::with_current(app.store.clone(), current, connection)
    }

    /// [`ProviderCall::open`] with the configuration already in hand (a scheduled run holds
    /// one for all its rows), whatever the connection's status.
    pub fn with_current(
        store: Store,
        current: Arc<Current>,
        connection: Connection,
    ) -> Result<ProviderCall, CallError> {
        current.providers()?.get(connection.provider_type)?;
        let (tenant, id) = (connection.base.tenant_id, connection.base.id);
        let secret = current
            .vault
            .decrypt(TokenContext::access(tenant, id), &connection.encrypted_access_token)
            .map_err(CallError::Token)?;
        let mut secrets = vec![secret.clone()];
        if let Some(client) = current.config.providers.get(connection.provider_type) {
            secrets.push(client.client_secret.clone());
        }
        let token = AccessToken {
            secret,
            ciphertext: connection.encrypted_access_token.clone(),
            expiry: connection.token_expiry,
            generation: 0,
        };
        Ok(ProviderCall {
            store,
            current,
            connection,
            token: RwLock::new(token),
            policy: RefreshPolicy::default(),
            secrets: Mutex::new(secrets),
            refreshed_on_refusal: AtomicBool::new(false),
        })
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    pub fn provider_type(&self) -> ProviderType {
        self.connection.provider_type
    }

    /// The configuration the call was opened under.
    pub fn current(&self) -> &Current {
        &self.current
    }

    /// The provider's definition (its capabilities: link passwords, native link expiry, ...).
    pub fn provider(&self) -> &dyn Provider {
        // `with_current` refused a provider the registry lacks, and the registry never
        // changes under an `Arc<Current>`.
        self.current
            .providers()
            .and_then(|r| r.get(self.connection.provider_type))
            .expect("checked when the call was opened")
    }

    /// The folder `id` names at the provider, for a request that named it in `field`: a 404
    /// naming the field when the provider has no such item, a 400 when it is a file, and the
    /// usual mapping of a provider failure otherwise.
    pub async fn existing_folder(
        &self,
        deadline: &Deadline,
        field: &'static str,
        id: &str,
    ) -> Result<crate::providers::Entry, ApiError> {
        let metadata = self.connection.connection_metadata.as_ref();
        let entry = self
            .run(deadline, |a| a.provider.item(a.token, metadata, id))
            .await?
            .ok_or_else(|| ApiError::not_found_field(field))?;
        if entry.item.kind != crate::providers::ItemKind::Folder {
            return Err(ApiError::invalid_field(field, "names a file, not a folder"));
        }
        Ok(entry)
    }

    /// Runs one provider call under `deadline`, keeping its reserve.
    pub async fn run<'env, T>(
        &self,
        deadline: &Deadline,
        call: impl for<'a> Fn(Attempt<'a, 'env>) -> BoxFuture<'a, Result<T, ProviderError>>,
    ) -> Result<T, CallError> {
        self.run_leaving(deadline, deadline.reserve(), call).await
    }

    /// [`ProviderCall::run`] leaving `leave` of the deadline instead of its reserve.
    pub async fn run_leaving<'env, T>(
        &self,
        deadline: &Deadline,
        leave: Duration,
        call: impl for<'a> Fn(Attempt<'a, 'env>) -> BoxFuture<'a, Result<T, ProviderError>>,
    ) -> Result<T, CallError> {
        self.run_with(deadline, Bound::Leaving(leave), call).await
    }

    /// An undo (putting back what could not be recorded): given at least the deadline's
    /// minimum for undos even when the deadline is spent; see [`Deadline::undo_call`].
    pub async fn undo<'env, T>(
        &self,
        deadline: &Deadline,
        leave: Duration,
        call: impl for<'a> Fn(Attempt<'a, 'env>) -> BoxFuture<'a, Result<T, ProviderError>>,
    ) -> Result<T, CallError> {
        self.run_with(deadline, Bound::Undo(leave), call).await
    }

    async fn run_with<'env, T>(
        &self,
        deadline: &Deadline,
        bound: Bound,
        call: impl for<'a> Fn(Attempt<'a, 'env>) -> BoxFuture<'a, Result<T, ProviderError>>,
    ) -> Result<T, CallError> {
        let provider = self.provider();
        let mut refreshed = false;
        loop {
            let seen = {
                let token = self.token.read().await;
                token.generation
            };
            if !refreshed && self.expiring(seen).await {
                self.refresh(deadline, seen).await?;
                refreshed = true;
                continue;
            }
            let outcome = {
                let token = self.token.read().await;
                let attempt =
                    Attempt { provider, token: &token.secret, connection: &self.connection, _env: PhantomData };
                let attempt = call(attempt);
                match bound {
                    Bound::Leaving(leave) => deadline.call_leaving(leave, attempt).await,
                    Bound::Undo(leave) => deadline.undo_call(leave, attempt).await,
                }
            };
            match outcome {
                Err(ProviderError::Rejected { status: 401, .. })
                    if !refreshed && !self.refreshed_on_refusal.swap(true, Ordering::SeqCst) =>
                {
                    // The token was refused: refresh once (or take another caller's refresh)
                    // and try again.
                    self.refresh(deadline, seen).await?;
                    refreshed = true;
                }
                Err(ProviderError::Rejected { status: 401, .. }) if !refreshed => {
                    // Another call of this connection already refreshed on a refusal: take its
                    // token if it is newer than the one refused, without refreshing again.
                    if self.token.read().await.generation != seen {
                        refreshed = true;
                        continue;
                    }
                    return outcome.map_err(CallError::Provider);
                }
                other => return other.map_err(CallError::Provider),
            }
        }
    }

    async fn expiring(&self, generation: u64) -> bool {
        let token = self.token.read().await;
        token.generation == generation
            && token.expiry <= self.store.now() + crate::schedule::chrono_duration(EXPIRY_SKEW)
    }

    /// Refreshes the access token unless another call of this `ProviderCall` already did since
    /// generation `seen`, through the row claim `token-refresh` uses. When another refresher
    /// holds the row, waits a little for its new token and takes that.
    async fn refresh(&self, deadline: &Deadline, seen: u64) -> Result<(), CallError> {
        let mut token = self.token.write().await;
        if token.generation != seen {
            return Ok(());
        }
        let (tenant, id) = (self.connection.base.tenant_id, self.connection.base.id);
        let read = self.store.get_refresh_candidate(tenant, id).await.map_err(CallError::Store)?;
        if read.connection.encrypted_access_token != token.ciphertext {
            // Refreshed elsewhere since this call read the row.
            return self.adopt(&mut token, &read.connection);
        }
        if read.connection.status != ConnectionStatus::Active {
            return Err(CallError::NotActive(read.connection.status));
        }
        let write_by = match deadline.lambda_instant() {
            Some(lambda) => lambda.checked_sub(WRITE_MARGIN).unwrap_or_else(Instant::now),
            None => deadline.instant() + WRITE_WITHOUT_LAMBDA,
        };
        let start_by = write_by.checked_sub(REFRESH_MIN).unwrap_or_else(Instant::now).min(deadline.instant());
        let client_secret = self.current.config.providers.get(self.connection.provider_type);
        let refresher = Refresher {
            store: &self.store,
            vault: &self.current.vault,
            provider: self.provider(),
            client_secret: client_secret.map(|c| c.client_secret.expose_secret()),
            policy: &self.policy,
            source: "provider_call",
        };
        match refresher.claim_and_refresh(&read, RefreshLimits { start_by, write_by }).await {
            Refreshed::Stored { access, encrypted_access, token_expiry } => {
                self.remember(&access);
                token.secret = access;
                token.ciphertext = encrypted_access;
                token.expiry = token_expiry;
                token.generation += 1;
                Ok(())
            }
            Refreshed::NotClaimed => self.wait_for_refresh(&mut token, deadline).await,
            Refreshed::Ended { status, error, .. } => Err(CallError::GrantEnded { status, error }),
            Refreshed::NoRefreshToken { .. } => Err(CallError::NotActive(ConnectionStatus::Expired)),
            Refreshed::Gone => Err(CallError::Store(DbError::NotFound)),
            Refreshed::Released => Err(CallError::Provider(ProviderError::Timeout)),
            Refreshed::Failed { error: crate::tokens::RefreshError::Provider(e), .. } => Err(CallError::Provider(e)),
            Refreshed::Failed { error: crate::tokens::RefreshError::Undecryptable(e), .. } => Err(CallError::Token(e)),
            Refreshed::Lost { .. } => {
                Err(CallError::Store(DbError::State("refreshed tokens could not be stored".into())))
            }
            Refreshed::Store(e) => Err(CallError::Store(e)),
        }
    }

    /// Another refresher holds the row: wait (briefly, within the deadline) for its write.
    async fn wait_for_refresh(
        &self,
        token: &mut tokio::sync::RwLockWriteGuard<'_, AccessToken>,
        deadline: &Deadline,
    ) -> Result<(), CallError> {
        let (tenant, id) = (self.connection.base.tenant_id, self.connection.base.id);
        let until = (Instant::now() + ADOPT_WAIT).min(deadline.instant());
        while Instant::now() < until {
            tokio::time::sleep(ADOPT_POLL).await;
            let row = self.store.get_connection(tenant, id).await.map_err(CallError::Store)?;
            if row.encrypted_access_token != token.ciphertext {
                return self.adopt(token, &row);
            }
            if row.status != ConnectionStatus::Active {
                return Err(CallError::NotActive(row.status));
            }
        }
        // Still held (a refresh elsewhere is slow, or the row backs off after failures).
        Err(CallError::Provider(ProviderError::Rejected {
            status: 401,
            code: Some("token_refresh_pending".into()),
            description: Some("the access token was refused and its refresh is held by another run".into()),
        }))
    }

    /// Takes the token another refresher stored.
    fn adopt(&self, token: &mut AccessToken, row: &Connection) -> Result<(), CallError> {
        let (tenant, id) = (row.base.tenant_id, row.base.id);
        let secret = self
            .current
            .vault
            .decrypt(TokenContext::access(tenant, id), &row.encrypted_access_token)
            .map_err(CallError::Token)?;
        self.remember(&secret);
        token.secret = secret;
        token.ciphertext = row.encrypted_access_token.clone();
        token.expiry = row.token_expiry;
        token.generation += 1;
        Ok(())
    }

    fn remember(&self, secret: &SecretString) {
        self.secrets.lock().unwrap_or_else(|p| p.into_inner()).push(secret.clone());
    }

    /// The connection's refresh token, decrypted (revocation needs it); `None` when the
    /// provider gave none.
    pub async fn refresh_token(&self) -> Result<Option<SecretString>, CallError> {
        let (tenant, id) = (self.connection.base.tenant_id, self.connection.base.id);
        // Read again: a refresh may have rotated it since the connection was read.
        let row = self.store.get_connection(tenant, id).await.map_err(CallError::Store)?;
        let Some(stored) = row.encrypted_refresh_token else { return Ok(None) };
        let secret =
            self.current.vault.decrypt(TokenContext::refresh(tenant, id), &stored).map_err(CallError::Token)?;
        self.remember(&secret);
        Ok(Some(secret))
    }

    /// Adds a value the provider must never see quoted back into a row or a log (a link
    /// password the call sent, say).
    pub fn add_secret(&self, secret: &SecretString) {
        self.remember(secret);
    }

    /// Text fit for an error row or a log line: every secret the call handled cut out.
    pub fn scrub(&self, text: &str, max_bytes: usize) -> String {
        let secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        let values: Vec<&str> = secrets.iter().map(|s| s.expose_secret()).collect();
        crate::error_rows::scrub_error_text(text, &values, max_bytes)
    }

    /// The `cloud_sync_errors` row for a failure of `operation` on this connection, scrubbed of
    /// every secret the call handled. `message` says what failed; the error is appended.
    pub fn error_row(&self, operation: &str, error: &CallError, message: &str) -> ErrorRow {
        let secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner()).clone();
        error.error_row(&self.connection, operation, message).with_secrets(secrets)
    }
}
