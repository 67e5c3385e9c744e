//! Token refresh, run every five minutes by an EventBridge schedule.
//!
//! Picks active connections whose access token expires within the refresh window, then those
//! whose refresh token has not been used for the keep-alive period (providers let idle
//! refresh tokens die), and refreshes each at its provider, `concurrency` at a time, starting
//! no new batch once the time budget is spent: the rest is picked up by the next run.
//!
//! Each connection is refreshed once, however many invocations overlap, and however many
//! provider calls elsewhere want its token fresh: the claim, the write-first token storage,
//! `invalid_grant` ending the connection and the backoff of other failures are the protocol
//! of [`shared::tokens`], which the provider-call path follows too. This function adds the
//! scans, the concurrency, and the limits of one invocation: a refresh starts only while its
//! provider call and a full database write ([`WRITE_RESERVE`]) still fit before the Lambda's
//! deadline, and token writes are retried until that deadline less a safety margin.
//!
//! A connection without a refresh token is left alone until its access token expires, then
//! marked `expired`.
//!
//! Tokens are decrypted and encrypted only through the vault of [`App::current`], with the
//! row's [`TokenContext`]; none is ever logged or returned.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use lambda_runtime::LambdaEvent;
use secrecy::ExposeSecret as _;
use serde_json::json;
use shared::app::App;
use shared::db::{NewSyncError, RefreshCandidate};
use shared::error_rows::scrub_error_row;
use shared::providers::{HttpSettings, ProviderError, Registry};
use shared::schedule::{Env, Report, RowOutcome, SettingsError, chrono_duration};
use shared::tokens::{RefreshLimits, RefreshPolicy, Refreshed, Refresher, SAFETY_MARGIN};
use shared::vault::Vault;
use tokio::time::Instant;

pub const FUNCTION: &str = "token-refresh";

pub use shared::tokens::WRITE_RESERVE;

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
            ..HttpSettings::default()
        }
    }

    /// The claim and backoff policy these settings make.
    pub fn policy(&self) -> RefreshPolicy {
        RefreshPolicy { lease: self.lease, backoff_base: self.backoff_base, backoff_max: self.backoff_max }
    }

    /// The wait before the next attempt after `failures` consecutive failures.
    pub fn backoff(&self, failures: i32, retry_after: Option<Duration>) -> Duration {
        self.policy().backoff(failures, retry_after)
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
    /// Built at the first connection due in this run (`Ctx::registry`).
    registry: std::sync::OnceLock<Result<Registry, ProviderError>>,
    /// For the client secrets, cut out of anything a provider says.
    providers: &'a shared::config::Providers,
    policy: RefreshPolicy,
    limits: RunLimits,
}

impl Ctx<'_> {
    /// The provider clients, built per run from the configuration in force (so a rotated
    /// client secret is used from the next run on), and only once a connection is due: most
    /// runs find none, and the first registry of a process loads the platform's root
    /// certificates (1.2-1.4 ms of CPU here, a sixth of a function's start; README, "TLS and
    /// entropy").
    fn registry(&self) -> Result<&Registry, &ProviderError> {
        self.registry.get_or_init(|| Registry::with_settings(self.providers, None, self.settings.http())).as_ref()
    }
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
    let limits = RunLimits::new(settings, started, end);
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
    let ctx = Ctx {
        app,
        settings,
        vault: &current.vault,
        registry: std::sync::OnceLock::new(),
        providers: &current.config.providers,
        policy: settings.policy(),
        limits,
    };
    for pass in [Pass::Expiring, Pass::KeepAlive] {
        report.add(&run_pass(&ctx, pass).await);
        // Without provider clients no pass can refresh anything; the failure is counted once.
        if matches!(ctx.registry.get(), Some(Err(_))) {
            break;
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

async fn run_pass(ctx: &Ctx<'_>, pass: Pass) -> Report {
    let store = &ctx.app.store;
    let mut report = Report::default();
    let deadline = ctx.limits.start;
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
        if rows.is_empty() {
            break;
        }
        let registry = match ctx.registry() {
            Ok(registry) => registry,
            Err(e) => {
                tracing::error!(error = %shared::error_chain(e), "cannot build the provider clients");
                report.failed += 1;
                break;
            }
        };
        let full = rows.len() >= usize::from(ctx.settings.batch_size);
        let outcomes: Vec<RowOutcome> = futures_util::stream::iter(rows)
            .map(|row| async move {
                if Instant::now() < deadline {
                    refresh_one(ctx, registry, pass, row).await
                } else {
                    RowOutcome::Skipped
                }
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

async fn refresh_one(ctx: &Ctx<'_>, registry: &Registry, pass: Pass, read: RefreshCandidate) -> RowOutcome {
    let id = read.connection.base.id;
    let provider = match registry.get(read.connection.provider_type) {
        Ok(p) => p,
        Err(e) => return not_configured(ctx, &read, e).await,
    };
    let client_secret = ctx.providers.get(read.connection.provider_type).map(|p| p.client_secret.expose_secret());
    let refresher = Refresher {
        store: &ctx.app.store,
        vault: ctx.vault,
        provider,
        client_secret,
        policy: &ctx.policy,
        source: FUNCTION,
    };
    let limits = RefreshLimits { start_by: ctx.limits.start, write_by: ctx.limits.write };
    match refresher.claim_and_refresh(&read, limits).await {
        Refreshed::Stored { .. } => {
            tracing::debug!(connection_id = %id, ?pass, "refreshed");
            RowOutcome::Acted
        }
        Refreshed::Ended { recorded: true, .. } | Refreshed::NoRefreshToken { ended: true } => RowOutcome::Acted,
        // Another invocation holds it, refreshed or ended it since the scan, or it was
        // deleted; or it has no refresh token and waits for its access token to expire; or
        // the run is out of time and gave the claim back.
        Refreshed::NotClaimed
        | Refreshed::Gone
        | Refreshed::Ended { recorded: false, .. }
        | Refreshed::NoRefreshToken { ended: false }
        | Refreshed::Released => RowOutcome::Skipped,
        Refreshed::Failed { .. } | Refreshed::Lost { .. } => RowOutcome::Failed,
        Refreshed::Store(e) => {
            tracing::warn!(connection_id = %id, error = %shared::error_chain(&e), "refresh bookkeeping failed");
            RowOutcome::Failed
        }
    }
}

/// A connection of a provider the configuration lacks: claimed like any other (so overlapping
/// runs record it once), then recorded as a failure that backs off.
async fn not_configured(ctx: &Ctx<'_>, read: &RefreshCandidate, e: ProviderError) -> RowOutcome {
    let store = &ctx.app.store;
    let id = read.connection.base.id;
    let lease_until = store.now() + chrono_duration(ctx.policy.lease);
    let claimed = match store.claim_refresh(read, lease_until).await {
        Ok(Some(row)) => row,
        Ok(None) => return RowOutcome::Skipped,
        Err(db) => {
            tracing::warn!(connection_id = %id, error = %shared::error_chain(&db), "claim failed");
            return RowOutcome::Failed;
        }
    };
    let conn = &claimed.connection;
    let row = scrub_error_row(
        NewSyncError {
            tenant_id: conn.base.tenant_id,
            sync_job_id: None,
            connection_id: conn.base.id,
            file_id: None,
            error_type: e.error_type(),
            error_code: e.error_code(),
            error_message: e.to_string(),
            stack_trace: None,
            error_metadata: Some(json!({ "source": FUNCTION, "provider": conn.provider_type })),
        },
        &[],
    );
    let wait = ctx.policy.backoff(claimed.refresh_failures.saturating_add(1), None);
    match store.record_refresh_failure(&claimed, &row, store.now() + chrono_duration(wait)).await {
        Ok(record) => tracing::warn!(connection_id = %id, ?record, "refresh failed: provider not configured"),
        Err(db) => tracing::warn!(connection_id = %id, error = %shared::error_chain(&db), "cannot record the failure"),
    }
    RowOutcome::Failed
}
