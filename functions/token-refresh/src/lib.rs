//! Token refresh, run every five minutes by an EventBridge schedule.
//!
//! Picks active connections whose access token expires within the refresh window, then those
//! whose refresh token has not been used for the keep-alive period (providers let idle
//! refresh tokens die), and refreshes each at its provider, `concurrency` at a time, starting
//! no new batch once the time budget is spent: the rest is picked up by the next run.
//!
//! Each connection is refreshed once, however many invocations overlap:
//! 1. **Claim.** A conditional UPDATE sets `refresh_not_before` (a lease longer than any
//!    invocation lives) only if the row still holds the access-token ciphertext that was read
//!    and no lease or backoff is in force. Every token write re-encrypts under a fresh nonce,
//!    so a row someone refreshed since the scan fails the claim and is skipped. The claim
//!    returns the row as it now is; that copy is what gets refreshed.
//! 2. **Refresh, then write first.** New access and refresh tokens are encrypted and stored in
//!    one UPDATE before anything else that can fail (Box kills the old refresh token the moment
//!    it issues a new one); a response without a refresh token keeps the stored one. The write
//!    is retried on a database error, since losing it loses a single-use token.
//! 3. **Failures.** `invalid_grant` ends the connection: `revoked` when the provider module
//!    reports the grant revoked, else `expired`, with one `auth` error row carrying the
//!    provider's code; it is never attempted again (the scans read active rows only) until the
//!    user reconnects. Anything else (429, 5xx, timeout, malformed response, a refused client)
//!    leaves it active and backs off exponentially, honouring `Retry-After`; the failure
//!    episode has one error row whose `retry_count` counts the further failures, resolved by
//!    the next success.
//!
//! A connection without a refresh token is left alone until its access token expires, then
//! marked `expired`.
//!
//! Tokens are decrypted and encrypted only through the vault of [`App::current`], with the
//! row's [`TokenContext`]; none is ever logged or returned.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use lambda_runtime::LambdaEvent;
use secrecy::SecretString;
use serde_json::json;
use shared::app::App;
use shared::db::{ConnectionStatus, DbError, ErrorType, NewSyncError, RefreshCandidate, RefreshedTokens};
use shared::providers::{HttpSettings, ProviderError, Registry, TokenSet};
use shared::schedule::{Env, Outcome, Report, SettingsError, chrono_duration};
use shared::vault::{TokenContext, Vault};

pub const FUNCTION: &str = "token-refresh";

/// Access-token lifetime assumed when a provider does not state one: short enough that the
/// token is refreshed again well before any provider's real lifetime ends.
const ASSUMED_LIFETIME: Duration = Duration::from_secs(3600);
/// A Retry-After beyond this is taken as this; the backoff is for a throttled provider, not a
/// way for a bad header to park a connection for a year.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Pauses between attempts to store refreshed tokens.
const STORE_RETRIES: [Duration; 3] = [Duration::from_millis(200), Duration::from_secs(1), Duration::from_secs(3)];

/// Settings read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Refresh tokens expiring within this window (`TOKEN_REFRESH_WINDOW_MINUTES`, 15).
    pub window: Duration,
    /// Refresh connections whose refresh token was not used for this long
    /// (`TOKEN_REFRESH_KEEP_ALIVE_DAYS`, 7).
    pub keep_alive: Duration,
    /// Refreshes in flight at once (`TOKEN_REFRESH_CONCURRENCY`, 16).
    pub concurrency: usize,
    /// No new batch after this much time (`TOKEN_REFRESH_TIME_BUDGET_SECONDS`, 240); keep it
    /// below the function's timeout.
    pub time_budget: Duration,
    /// How long a claim holds a row (`TOKEN_REFRESH_LEASE_SECONDS`, 600). It must outlive the
    /// invocation holding it, or a second one could spend a single-use refresh token again.
    pub lease: Duration,
    /// Rows fetched per scan (`TOKEN_REFRESH_BATCH_SIZE`, 200).
    pub batch_size: u16,
    /// First backoff after a failure, doubled per further failure
    /// (`TOKEN_REFRESH_BACKOFF_BASE_SECONDS`, 60) up to `TOKEN_REFRESH_BACKOFF_MAX_SECONDS` (3600).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Total time for one provider call (`TOKEN_REFRESH_PROVIDER_TIMEOUT_MS`, 10000).
    pub provider_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            window: Duration::from_secs(15 * 60),
            keep_alive: Duration::from_secs(7 * 24 * 3600),
            concurrency: 16,
            time_budget: Duration::from_secs(240),
            lease: Duration::from_secs(600),
            batch_size: 200,
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(3600),
            provider_timeout: Duration::from_secs(10),
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(Env::process())
    }

    pub fn from_lookup<F: Fn(&str) -> Option<String>>(env: Env<F>) -> Result<Settings, SettingsError> {
        let s = Settings {
            window: env.minutes("TOKEN_REFRESH_WINDOW_MINUTES", 15, 1, 1440)?,
            keep_alive: env
                .number("TOKEN_REFRESH_KEEP_ALIVE_DAYS", 7, 1, 365)
                .map(|d| Duration::from_secs(d * 86_400))?,
            concurrency: env.number("TOKEN_REFRESH_CONCURRENCY", 16, 1, 256)? as usize,
            time_budget: env.seconds("TOKEN_REFRESH_TIME_BUDGET_SECONDS", 240, 1, 900)?,
            lease: env.seconds("TOKEN_REFRESH_LEASE_SECONDS", 600, 30, 7200)?,
            batch_size: env.number("TOKEN_REFRESH_BATCH_SIZE", 200, 1, 5000)? as u16,
            backoff_base: env.seconds("TOKEN_REFRESH_BACKOFF_BASE_SECONDS", 60, 1, 86_400)?,
            backoff_max: env.seconds("TOKEN_REFRESH_BACKOFF_MAX_SECONDS", 3600, 1, 7 * 86_400)?,
            provider_timeout: env.millis("TOKEN_REFRESH_PROVIDER_TIMEOUT_MS", 10_000, 100, 120_000)?,
        };
        if s.backoff_max < s.backoff_base {
            return Err(SettingsError {
                name: "TOKEN_REFRESH_BACKOFF_MAX_SECONDS",
                message: "must not be below TOKEN_REFRESH_BACKOFF_BASE_SECONDS".into(),
            });
        }
        // The last batch starts before the budget ends and each call in it can take the full
        // provider timeout plus the token write's retries.
        let longest_hold = s.time_budget + s.provider_timeout + STORE_RETRIES.iter().sum::<Duration>();
        if s.lease <= longest_hold {
            return Err(SettingsError {
                name: "TOKEN_REFRESH_LEASE_SECONDS",
                message: format!(
                    "must exceed the time budget plus the provider timeout and write retries ({}s)",
                    longest_hold.as_secs()
                ),
            });
        }
        Ok(s)
    }

    fn http(&self) -> HttpSettings {
        HttpSettings {
            connect_timeout: self.provider_timeout.min(shared::providers::DEFAULT_CONNECT_TIMEOUT),
            total_timeout: self.provider_timeout,
        }
    }

    /// The wait before the next attempt after `failures` consecutive failures.
    pub fn backoff(&self, failures: i32, retry_after: Option<Duration>) -> Duration {
        let doublings = u32::try_from(failures.saturating_sub(1)).unwrap_or(0).min(20);
        let exponential = self.backoff_base.saturating_mul(1 << doublings).min(self.backoff_max);
        exponential.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
    }
}

/// The Lambda handler: any event (EventBridge sends a Scheduled Event) runs the job once.
pub async fn handler(
    app: &App,
    settings: &Settings,
    event: LambdaEvent<serde_json::Value>,
) -> Result<Report, lambda_runtime::Error> {
    shared::schedule::log_event(FUNCTION, &event.payload);
    let report = run(app, settings).await;
    report.log(FUNCTION);
    Ok(report)
}

/// What every refresh of a run shares.
struct Ctx<'a> {
    app: &'a App,
    settings: &'a Settings,
    vault: &'a Vault,
    registry: &'a Registry,
}

/// Which connections a pass picks.
#[derive(Debug, Clone, Copy)]
enum Pass {
    Expiring,
    KeepAlive,
}

/// One run: expiring tokens first (they stop working soonest), then keep-alive.
pub async fn run(app: &App, settings: &Settings) -> Report {
    let started = Instant::now();
    let deadline = started + settings.time_budget;
    let mut report = Report::default();
    let current = match app.current().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %shared::error_chain(&e), "configuration unavailable");
            report.failed = 1;
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
    };
    // Built per run from the configuration in force, so a rotated client secret is used
    // from the next run on.
    let registry = match Registry::with_settings(&current.config.providers, None, settings.http()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the provider clients");
            report.failed = 1;
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
    };
    let ctx = Ctx { app, settings, vault: &current.vault, registry: &registry };
    for pass in [Pass::Expiring, Pass::KeepAlive] {
        report.add(&run_pass(&ctx, pass, deadline).await);
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

async fn run_pass(ctx: &Ctx<'_>, pass: Pass, deadline: Instant) -> Report {
    let store = &ctx.app.store;
    let mut report = Report::default();
    while Instant::now() < deadline {
        let now = store.now();
        let scanned = match pass {
            Pass::Expiring => {
                store.scan_refresh_due(now + chrono_duration(ctx.settings.window), now, ctx.settings.batch_size).await
            }
            Pass::KeepAlive => {
                store
                    .scan_keep_alive(now - chrono_duration(ctx.settings.keep_alive), now, ctx.settings.batch_size)
                    .await
            }
        };
        let rows = match scanned {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(?pass, error = %shared::error_chain(&e), "scan failed");
                report.failed += 1;
                break;
            }
        };
        let full = rows.len() >= usize::from(ctx.settings.batch_size);
        let outcomes: Vec<Outcome> = futures_util::stream::iter(rows)
            .map(|row| async move {
                if Instant::now() < deadline { refresh_one(ctx, pass, row).await } else { Outcome::Skipped }
            })
            .buffer_unordered(ctx.settings.concurrency)
            .collect()
            .await;
        // Every handled row leaves the scan (refreshed, claimed by someone, backing off,
        // ended), so a full batch means more may wait. A batch that only failed stops the
        // run: the database or the providers are in trouble, and the next run is soon.
        let stuck = outcomes.iter().all(|o| *o == Outcome::Failed);
        for o in outcomes {
            report.count(o);
        }
        if !full || stuck {
            break;
        }
    }
    report
}

fn error_row(c: &RefreshCandidate, error_type: ErrorType, code: Option<String>, message: String) -> NewSyncError {
    let conn = &c.connection;
    NewSyncError {
        tenant_id: conn.base.tenant_id,
        sync_job_id: None,
        connection_id: conn.base.id,
        file_id: None,
        error_type,
        error_code: code,
        error_message: message,
        stack_trace: None,
        error_metadata: Some(json!({ "source": FUNCTION, "provider": conn.provider_type })),
    }
}

async fn refresh_one(ctx: &Ctx<'_>, pass: Pass, read: RefreshCandidate) -> Outcome {
    let store = &ctx.app.store;
    let (tenant, id) = (read.connection.base.tenant_id, read.connection.base.id);
    let lease_until = store.now() + chrono_duration(ctx.settings.lease);
    let claimed = match store.claim_refresh(&read, lease_until).await {
        Ok(Some(row)) => row,
        // Another invocation holds it, or refreshed it since the scan.
        Ok(None) => return Outcome::Skipped,
        Err(e) => {
            tracing::warn!(connection_id = %id, error = %shared::error_chain(&e), "claim failed");
            return Outcome::Failed;
        }
    };
    let conn = &claimed.connection;
    let now = store.now();

    let Some(encrypted_refresh) = conn.encrypted_refresh_token.as_deref() else {
        return without_refresh_token(ctx, &claimed, now).await;
    };
    let refresh_token = match ctx.vault.decrypt(TokenContext::refresh(tenant, id), encrypted_refresh) {
        Ok(t) => t,
        Err(e) => {
            let row = error_row(&claimed, ErrorType::Validation, Some("token_undecryptable".into()), e.to_string());
            return record_failure(ctx, &claimed, row, None).await;
        }
    };
    let provider = match ctx.registry.get(conn.provider_type) {
        Ok(p) => p,
        Err(e) => return provider_failure(ctx, &claimed, e).await,
    };
    let issued_at = store.now();
    match provider.refresh(&refresh_token).await {
        Ok(tokens) => store_tokens(ctx, &claimed, tokens, issued_at, pass).await,
        Err(e) => provider_failure(ctx, &claimed, e).await,
    }
}

async fn without_refresh_token(ctx: &Ctx<'_>, claimed: &RefreshCandidate, now: DateTime<Utc>) -> Outcome {
    let store = &ctx.app.store;
    let conn = &claimed.connection;
    let (tenant, id) = (conn.base.tenant_id, conn.base.id);
    if conn.token_expiry <= now {
        let row = error_row(
            claimed,
            ErrorType::Auth,
            Some("no_refresh_token".into()),
            "the access token expired and the provider gave no refresh token; reconnect the account".into(),
        );
        return match store.end_refresh(tenant, id, ConnectionStatus::Expired, &row).await {
            Ok(true) => {
                tracing::info!(connection_id = %id, "expired: no refresh token");
                Outcome::Acted
            }
            Ok(false) => Outcome::Skipped,
            Err(e) => {
                tracing::warn!(connection_id = %id, error = %shared::error_chain(&e), "cannot mark expired");
                Outcome::Failed
            }
        };
    }
    // Nothing to refresh with: look again when the access token runs out.
    match store.release_refresh(tenant, id, conn.token_expiry).await {
        Ok(()) => Outcome::Skipped,
        Err(e) => {
            tracing::warn!(connection_id = %id, error = %shared::error_chain(&e), "cannot release the claim");
            Outcome::Failed
        }
    }
}

async fn store_tokens(
    ctx: &Ctx<'_>,
    claimed: &RefreshCandidate,
    tokens: TokenSet,
    issued_at: DateTime<Utc>,
    pass: Pass,
) -> Outcome {
    let store = &ctx.app.store;
    let conn = &claimed.connection;
    let (tenant, id) = (conn.base.tenant_id, conn.base.id);
    let encrypt = |ctx_: TokenContext, t: &SecretString| ctx.vault.encrypt(ctx_, t);
    let refreshed = RefreshedTokens {
        encrypted_access_token: encrypt(TokenContext::access(tenant, id), &tokens.access_token),
        encrypted_refresh_token: tokens.refresh_token.as_ref().map(|r| encrypt(TokenContext::refresh(tenant, id), r)),
        token_expiry: tokens.expires_at(issued_at).unwrap_or_else(|| issued_at + chrono_duration(ASSUMED_LIFETIME)),
        scope: tokens.scope.clone().filter(|s| !s.trim().is_empty()),
    };
    let mut attempt = 0;
    let written = loop {
        match store.store_refreshed_tokens(tenant, id, &refreshed).await {
            Ok(written) => break written,
            Err(e) if attempt < STORE_RETRIES.len() => {
                tracing::warn!(connection_id = %id, attempt, error = %shared::error_chain(&e), "storing tokens failed; retrying");
                tokio::time::sleep(STORE_RETRIES[attempt]).await;
                attempt += 1;
            }
            Err(e) => {
                tracing::error!(
                    connection_id = %id,
                    rotated_refresh_token = refreshed.encrypted_refresh_token.is_some(),
                    error = %shared::error_chain(&e),
                    "refreshed tokens could not be stored"
                );
                return Outcome::Failed;
            }
        }
    };
    if !written {
        // Deleted while refreshing: nothing to keep the tokens for.
        return Outcome::Skipped;
    }
    tracing::debug!(connection_id = %id, ?pass, "refreshed");
    // Ends the failure episode. After the token write, so a failure here costs nothing.
    if let Some(open) = claimed.refresh_error_id {
        match store.resolve_error(tenant, open, Some("token refreshed")).await {
            Ok(_) | Err(DbError::NotFound) | Err(DbError::State(_)) => {}
            Err(e) => tracing::warn!(connection_id = %id, error = %shared::error_chain(&e), "cannot resolve the error"),
        }
    }
    Outcome::Acted
}

async fn provider_failure(ctx: &Ctx<'_>, claimed: &RefreshCandidate, e: ProviderError) -> Outcome {
    let store = &ctx.app.store;
    let conn = &claimed.connection;
    let (tenant, id) = (conn.base.tenant_id, conn.base.id);
    if let ProviderError::InvalidGrant { revoked, .. } = &e {
        let status = if *revoked { ConnectionStatus::Revoked } else { ConnectionStatus::Expired };
        let row = error_row(claimed, ErrorType::Auth, e.error_code(), e.to_string());
        return match store.end_refresh(tenant, id, status, &row).await {
            Ok(true) => {
                tracing::info!(connection_id = %id, status = status.as_str(), code = ?e.error_code(), "grant refused");
                Outcome::Acted
            }
            Ok(false) => Outcome::Skipped,
            Err(db) => {
                tracing::warn!(connection_id = %id, error = %shared::error_chain(&db), "cannot end the connection");
                Outcome::Failed
            }
        };
    }
    let row = error_row(claimed, e.error_type(), e.error_code(), e.to_string());
    record_failure(ctx, claimed, row, e.retry_after()).await
}

async fn record_failure(
    ctx: &Ctx<'_>,
    claimed: &RefreshCandidate,
    row: NewSyncError,
    retry_after: Option<Duration>,
) -> Outcome {
    let store = &ctx.app.store;
    let id = claimed.connection.base.id;
    let wait = ctx.settings.backoff(claimed.refresh_failures.saturating_add(1), retry_after);
    let retry_at = store.now() + chrono_duration(wait);
    match store.record_refresh_failure(claimed, &row, retry_at).await {
        Ok(record) => {
            tracing::warn!(
                connection_id = %id,
                error_type = row.error_type.as_str(),
                code = ?row.error_code,
                retry_in_s = wait.as_secs(),
                ?record,
                "refresh failed"
            );
        }
        Err(e) => tracing::warn!(connection_id = %id, error = %shared::error_chain(&e), "cannot record the failure"),
    }
    Outcome::Failed
}
