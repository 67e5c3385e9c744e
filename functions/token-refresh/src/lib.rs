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
//!    is retried with backoff on a database error until the invocation's deadline (less a
//!    safety margin), since losing it loses a single-use token; the lease keeps the row ours
//!    meanwhile. A refresh is started only while its provider call and a full database call
//!    still fit before that deadline. A write that never succeeds is logged as an error (never
//!    the token) and recorded as a `token_store_failed` error row when the database allows.
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

use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use lambda_runtime::LambdaEvent;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use shared::app::App;
use shared::db::{ConnectionStatus, DbError, ErrorType, NewSyncError, RefreshCandidate, RefreshedTokens};
use shared::error_rows::scrub_error_row;
use shared::providers::{HttpSettings, ProviderError, Registry, TokenSet};
use shared::schedule::{Env, Report, RowOutcome, SettingsError, chrono_duration};
use shared::vault::{TokenContext, Vault};

pub const FUNCTION: &str = "token-refresh";

/// Access-token lifetime assumed when a provider does not state one: short enough that the
/// token is refreshed again well before any provider's real lifetime ends.
const ASSUMED_LIFETIME: Duration = Duration::from_secs(3600);
/// A Retry-After beyond this is taken as this; the backoff is for a throttled provider, not a
/// way for a bad header to park a connection for a year.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// First pause between attempts to store refreshed tokens, doubled per attempt up to
/// [`STORE_RETRY_MAX`]; attempts go on until the write deadline.
const STORE_RETRY_FIRST: Duration = Duration::from_millis(200);
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);
/// The SQL Server pool's checkout timeout and per-command timeout, in seconds
/// (`CHECKOUT_TIMEOUT` and `REQUEST_COMMAND_TIMEOUT` in shared/src/db/mssql/mod.rs, private
/// there; keep these in step with them).
const SQL_SERVER_CHECKOUT_SECS: u64 = 5;
const SQL_SERVER_COMMAND_SECS: u64 = 20;
/// Statements of one token write on SQL Server: BEGIN TRANSACTION, the UPDATE, COMMIT.
const TOKEN_WRITE_STATEMENTS: u64 = 3;
/// What one token write can take on SQL Server before it fails: a pool checkout (5 s) and a
/// command timeout (20 s) for each of its statements, 65 s in all. A refresh starts only if
/// its provider call and one such write still fit.
pub const WRITE_RESERVE: Duration =
    Duration::from_secs(SQL_SERVER_CHECKOUT_SECS + TOKEN_WRITE_STATEMENTS * SQL_SERVER_COMMAND_SECS);
/// Left free before the invocation's deadline (and the lease's end) for the failure record,
/// the report and the runtime's reply.
const SAFETY_MARGIN: Duration = Duration::from_secs(5);
/// How long recording a token write that never succeeded may take.
const RECORD_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// Time kept for the token write after the provider call ([`WRITE_RESERVE`]; not an
    /// environment setting, tests shorten it).
    pub write_reserve: Duration,
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
            write_reserve: WRITE_RESERVE,
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
            write_reserve: WRITE_RESERVE,
        };
        if s.backoff_max < s.backoff_base {
            return Err(SettingsError {
                name: "TOKEN_REFRESH_BACKOFF_MAX_SECONDS",
                message: "must not be below TOKEN_REFRESH_BACKOFF_BASE_SECONDS".into(),
            });
        }
        // The last refresh starts before the budget ends and can take the full provider timeout
        // plus the time kept for its token write.
        let longest_hold = s.time_budget + s.provider_timeout + s.write_reserve;
        if s.lease <= longest_hold {
            return Err(SettingsError {
                name: "TOKEN_REFRESH_LEASE_SECONDS",
                message: format!(
                    "must exceed the time budget plus the provider timeout and the token write's {}s ({}s)",
                    s.write_reserve.as_secs(),
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
    let report = run_until(app, settings, invocation_end(&event.context)).await;
    report.log(FUNCTION);
    Ok(report)
}

/// When the invocation ends, from the Lambda context (`None` when it names no deadline, as in
/// a local run).
fn invocation_end(context: &lambda_runtime::Context) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let left = context.deadline().duration_since(SystemTime::now()).unwrap_or_default();
    Some(Instant::now() + left)
}

/// The two limits of a run.
#[derive(Debug, Clone, Copy)]
struct RunLimits {
    /// No refresh (provider call) starts after this.
    start: Instant,
    /// Token writes are retried until this.
    write: Instant,
}

impl RunLimits {
    /// With a known invocation end, writes go on until it (less the safety margin) and
    /// refreshes start only while the provider timeout and the write reserve still fit, and
    /// within the budget. Without one, the budget ends the starts and the writes get the
    /// provider timeout and the write reserve after it.
    fn new(settings: &Settings, started: Instant, end: Option<Instant>) -> RunLimits {
        let budget_end = started + settings.time_budget;
        let after_start = settings.provider_timeout + settings.write_reserve;
        match end {
            Some(end) => {
                let write = end.checked_sub(SAFETY_MARGIN).unwrap_or(started).max(started);
                let latest_start = write.checked_sub(after_start).unwrap_or(started).max(started);
                RunLimits { start: budget_end.min(latest_start), write }
            }
            None => RunLimits { start: budget_end, write: budget_end + after_start },
        }
    }
}

/// What every refresh of a run shares.
struct Ctx<'a> {
    app: &'a App,
    settings: &'a Settings,
    vault: &'a Vault,
    registry: &'a Registry,
    /// For the client secrets, cut out of anything a provider says.
    providers: &'a shared::config::Providers,
    deadlines: RunLimits,
}

/// Which connections a pass picks.
#[derive(Debug, Clone, Copy)]
enum Pass {
    Expiring,
    KeepAlive,
}

/// One run on the settings' budget alone: expiring tokens first (they stop working soonest),
/// then keep-alive.
pub async fn run(app: &App, settings: &Settings) -> Report {
    run_until(app, settings, None).await
}

/// One run of an invocation that ends at `end` (the Lambda deadline), if known.
pub async fn run_until(app: &App, settings: &Settings, end: Option<Instant>) -> Report {
    let started = Instant::now();
    let deadlines = RunLimits::new(settings, started, end);
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
            tracing::error!(error = %shared::error_chain(&e), "cannot build the provider clients");
            report.failed = 1;
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
    };
    let ctx = Ctx {
        app,
        settings,
        vault: &current.vault,
        registry: &registry,
        providers: &current.config.providers,
        deadlines,
    };
    for pass in [Pass::Expiring, Pass::KeepAlive] {
        report.add(&run_pass(&ctx, pass).await);
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

async fn run_pass(ctx: &Ctx<'_>, pass: Pass) -> Report {
    let store = &ctx.app.store;
    let mut report = Report::default();
    let deadline = ctx.deadlines.start;
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
        let outcomes: Vec<RowOutcome> = futures_util::stream::iter(rows)
            .map(|row| async move {
                if Instant::now() < deadline { refresh_one(ctx, pass, row).await } else { RowOutcome::Skipped }
            })
            .buffer_unordered(ctx.settings.concurrency)
            .collect()
            .await;
        // Every handled row leaves the scan (refreshed, claimed by someone, backing off,
        // ended), so a full batch means more may wait. A batch that only failed stops the
        // run: the database or the providers are in trouble, and the next run is soon.
        let stuck = outcomes.iter().all(|o| *o == RowOutcome::Failed);
        for o in outcomes {
            report.count(o);
        }
        if !full || stuck {
            break;
        }
    }
    report
}

/// An error row for the connection, scrubbed of `secrets` (and any credential the text quotes)
/// and clipped to what the columns hold.
fn error_row(
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
        error_metadata: Some(json!({ "source": FUNCTION, "provider": conn.provider_type })),
    };
    scrub_error_row(row, secrets)
}

async fn refresh_one(ctx: &Ctx<'_>, pass: Pass, read: RefreshCandidate) -> RowOutcome {
    let store = &ctx.app.store;
    let (tenant, id) = (read.connection.base.tenant_id, read.connection.base.id);
    let lease_until = store.now() + chrono_duration(ctx.settings.lease);
    // The lease is the row's exclusivity: writes stop before it runs out.
    let lease_end = (Instant::now() + ctx.settings.lease).checked_sub(SAFETY_MARGIN).unwrap_or_else(Instant::now);
    let claimed = match store.claim_refresh(&read, lease_until).await {
        Ok(Some(row)) => row,
        // Another invocation holds it, or refreshed it since the scan.
        Ok(None) => return RowOutcome::Skipped,
        Err(e) => {
            tracing::warn!(connection_id = %id, error = %shared::error_chain(&e), "claim failed");
            return RowOutcome::Failed;
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
            let row =
                error_row(&claimed, ErrorType::Validation, Some("token_undecryptable".into()), e.to_string(), &[]);
            return record_failure(ctx, &claimed, row, None).await;
        }
    };
    let provider = match ctx.registry.get(conn.provider_type) {
        Ok(p) => p,
        Err(e) => return provider_failure(ctx, &claimed, e, &refresh_token).await,
    };
    // The claim may have taken a while: start the refresh only if its write still fits.
    if Instant::now() >= ctx.deadlines.start {
        return match store.release_refresh(tenant, id, store.now()).await {
            Ok(()) => RowOutcome::Skipped,
            Err(e) => {
                tracing::warn!(connection_id = %id, error = %shared::error_chain(&e), "cannot release the claim");
                RowOutcome::Failed
            }
        };
    }
    let issued_at = store.now();
    let write_by = ctx.deadlines.write.min(lease_end);
    match provider.refresh(&refresh_token).await {
        Ok(tokens) => store_tokens(ctx, &claimed, tokens, issued_at, pass, write_by).await,
        Err(e) => provider_failure(ctx, &claimed, e, &refresh_token).await,
    }
}

async fn without_refresh_token(ctx: &Ctx<'_>, claimed: &RefreshCandidate, now: DateTime<Utc>) -> RowOutcome {
    let store = &ctx.app.store;
    let conn = &claimed.connection;
    let (tenant, id) = (conn.base.tenant_id, conn.base.id);
    if conn.token_expiry <= now {
        let row = error_row(
            claimed,
            ErrorType::Auth,
            Some("no_refresh_token".into()),
            "the access token expired and the provider gave no refresh token; reconnect the account".into(),
            &[],
        );
        return match store.end_refresh(tenant, id, ConnectionStatus::Expired, &row).await {
            Ok(true) => {
                tracing::info!(connection_id = %id, "expired: no refresh token");
                RowOutcome::Acted
            }
            Ok(false) => RowOutcome::Skipped,
            Err(e) => {
                tracing::warn!(connection_id = %id, error = %shared::error_chain(&e), "cannot mark expired");
                RowOutcome::Failed
            }
        };
    }
    // Nothing to refresh with: look again when the access token runs out.
    match store.release_refresh(tenant, id, conn.token_expiry).await {
        Ok(()) => RowOutcome::Skipped,
        Err(e) => {
            tracing::warn!(connection_id = %id, error = %shared::error_chain(&e), "cannot release the claim");
            RowOutcome::Failed
        }
    }
}

async fn store_tokens(
    ctx: &Ctx<'_>,
    claimed: &RefreshCandidate,
    tokens: TokenSet,
    issued_at: DateTime<Utc>,
    pass: Pass,
    write_by: Instant,
) -> RowOutcome {
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
    // Retried until `write_by`, each attempt cut off there too: the lease keeps the row ours,
    // and the Lambda timeout must not end the invocation in the middle of an attempt. A pause
    // that would leave the next attempt less than half of what is left is shortened to that
    // half, and the attempt after it is the last one.
    let mut attempts = 0u32;
    let mut pause = STORE_RETRY_FIRST;
    let mut last = false;
    let written = loop {
        attempts += 1;
        let left = write_by.saturating_duration_since(Instant::now());
        let error = match tokio::time::timeout(left, store.store_refreshed_tokens(tenant, id, &refreshed)).await {
            Ok(Ok(written)) => break written,
            Ok(Err(e)) => shared::error_chain(&e).to_string(),
            Err(_) => "cut off at the write deadline".to_owned(),
        };
        let left = write_by.saturating_duration_since(Instant::now());
        if last || left.is_zero() {
            return tokens_lost(ctx, claimed, refreshed.encrypted_refresh_token.is_some(), attempts, &error).await;
        }
        let wait = pause.min(left / 2);
        last = wait < pause;
        tracing::warn!(connection_id = %id, attempts, last, error, "storing tokens failed; retrying");
        tokio::time::sleep(wait).await;
        pause = (pause * 2).min(STORE_RETRY_MAX);
    };
    if !written {
        // Deleted while refreshing: nothing to keep the tokens for.
        return RowOutcome::Skipped;
    }
    tracing::debug!(connection_id = %id, ?pass, "refreshed");
    // Ends the failure episode. After the token write, so a failure here costs nothing.
    if let Some(open) = claimed.refresh_error_id {
        match store.resolve_error(tenant, open, Some("token refreshed")).await {
            Ok(_) | Err(DbError::NotFound) | Err(DbError::State(_)) => {}
            Err(e) => tracing::warn!(connection_id = %id, error = %shared::error_chain(&e), "cannot resolve the error"),
        }
    }
    RowOutcome::Acted
}

/// The provider issued tokens that could not be stored by the write deadline. If it rotated
/// the refresh token, the stored one is now dead and the connection will need reconnecting;
/// say so loudly (never the token) and record it if the database takes the record.
async fn tokens_lost(
    ctx: &Ctx<'_>,
    claimed: &RefreshCandidate,
    rotated: bool,
    attempts: u32,
    error: &str,
) -> RowOutcome {
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
    let row = error_row(claimed, ErrorType::Auth, Some("token_store_failed".into()), message.into(), &[]);
    let wait = ctx.settings.backoff(claimed.refresh_failures.saturating_add(1), None);
    let retry_at = ctx.app.store.now() + chrono_duration(wait);
    match tokio::time::timeout(RECORD_TIMEOUT, ctx.app.store.record_refresh_failure(claimed, &row, retry_at)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(connection_id = %conn.base.id, error = %shared::error_chain(&e), "cannot record the lost tokens")
        }
        Err(_) => tracing::error!(connection_id = %conn.base.id, "cannot record the lost tokens: timed out"),
    }
    RowOutcome::Failed
}

async fn provider_failure(
    ctx: &Ctx<'_>,
    claimed: &RefreshCandidate,
    e: ProviderError,
    refresh_token: &SecretString,
) -> RowOutcome {
    let store = &ctx.app.store;
    let conn = &claimed.connection;
    let (tenant, id) = (conn.base.tenant_id, conn.base.id);
    // A provider may quote the request (the refresh token, the client secret) in its error.
    let client_secret = ctx.providers.get(conn.provider_type).map(|p| p.client_secret.expose_secret());
    let mut secrets = vec![refresh_token.expose_secret()];
    secrets.extend(client_secret);
    if let ProviderError::InvalidGrant { revoked, .. } = &e {
        let status = if *revoked { ConnectionStatus::Revoked } else { ConnectionStatus::Expired };
        let row = error_row(claimed, ErrorType::Auth, e.error_code(), e.to_string(), &secrets);
        return match store.end_refresh(tenant, id, status, &row).await {
            Ok(true) => {
                tracing::info!(connection_id = %id, status = status.as_str(), code = ?row.error_code, "grant refused");
                RowOutcome::Acted
            }
            Ok(false) => RowOutcome::Skipped,
            Err(db) => {
                tracing::warn!(connection_id = %id, error = %shared::error_chain(&db), "cannot end the connection");
                RowOutcome::Failed
            }
        };
    }
    let row = error_row(claimed, e.error_type(), e.error_code(), e.to_string(), &secrets);
    record_failure(ctx, claimed, row, e.retry_after()).await
}

async fn record_failure(
    ctx: &Ctx<'_>,
    claimed: &RefreshCandidate,
    row: NewSyncError,
    retry_after: Option<Duration>,
) -> RowOutcome {
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
    RowOutcome::Failed
}
