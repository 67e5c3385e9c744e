//! Link expiry, run every 15 minutes by an EventBridge schedule.
//!
//! Deactivates (`is_active = 0`) active shared links whose `expires_at` has passed. An expired
//! link no longer resolves here whatever `is_active` says (the redirect checks `expires_at`),
//! so `is_active = 1` on an expired link means "not finished at the provider yet", and that is
//! what makes a later run retry it.
//!
//! Expired links are read `LINK_EXPIRY_BATCH_SIZE` at a time; each is claimed (a lease on
//! `expiry_claimed_until`) so overlapping invocations never handle it twice, and only while
//! the time budget lasts: a link not reached is left, unclaimed, to the next run.
//!
//! Where the provider cannot expire a link by itself (the provider module says which:
//! [`Provider::expires_links_natively`], false for Google Drive), the link is first removed at
//! the provider with the connection's access token and deactivated after. A provider failure
//! (or a provider missing from the configuration) becomes a `cloud_sync_errors` row for the
//! connection and then the link is deactivated: the error row is its record. If not even the
//! error row can be written, the link stays active and the next run tries again once the
//! lease ends. Without a configuration nothing is claimed: the links wait for a run that has
//! one, and the run counts a failure.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lambda_runtime::LambdaEvent;
use shared::app::App;
use shared::db::SharedLink;
use shared::deadline::Deadline;
use shared::link_removal::{self, LinkRemoval, Need};
use shared::schedule::{Env, Report, SettingsError, chrono_duration};

pub const FUNCTION: &str = "link-expiry";
/// The operation error rows name.
const OPERATION: &str = "expire_shared_link";

/// Settings read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Links deactivated per statement (`LINK_EXPIRY_BATCH_SIZE`, default 500).
    pub batch_size: u16,
    /// Provider removals in flight at once (`LINK_EXPIRY_CONCURRENCY`, default 8).
    pub concurrency: usize,
    /// No new batch after this much time (`LINK_EXPIRY_TIME_BUDGET_SECONDS`, default 240);
    /// keep it below the function's timeout.
    pub time_budget: Duration,
    /// Total time for one provider call (`LINK_EXPIRY_PROVIDER_TIMEOUT_MS`, default 10000).
    pub provider_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            batch_size: 500,
            concurrency: 8,
            time_budget: Duration::from_secs(240),
            provider_timeout: Duration::from_secs(10),
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(Env::process())
    }

    pub fn from_lookup<F: Fn(&str) -> Option<String>>(env: Env<F>) -> Result<Settings, SettingsError> {
        Ok(Settings {
            batch_size: env.number("LINK_EXPIRY_BATCH_SIZE", 500, 1, 5000)? as u16,
            concurrency: env.number("LINK_EXPIRY_CONCURRENCY", 8, 1, 64)? as usize,
            time_budget: env.seconds("LINK_EXPIRY_TIME_BUDGET_SECONDS", 240, 1, 900)?,
            provider_timeout: env.millis("LINK_EXPIRY_PROVIDER_TIMEOUT_MS", 10_000, 100, 120_000)?,
        })
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

/// Held by a run for one link: the provider call and the writes around it, with room to spare.
const LEASE_SLACK: Duration = Duration::from_secs(120);

/// One run. `acted` counts deactivated links, `skipped` links left alone (held by another run,
/// or not reached within the budget), `failed` provider removals that failed (each an error
/// row; the link is deactivated too, so it also counts as acted), links left for a retry,
/// failed scans, and a run without a configuration.
pub async fn run(app: &App, settings: &Settings) -> Report {
    let started = Instant::now();
    let deadline = started + settings.time_budget;
    let mut report = Report::default();
    // Without the configuration (or the provider clients) no link can be removed at its
    // provider, nor even told apart from one that needs no removal: leave them all, still
    // active, to the next run.
    let current = match app.current().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %shared::error_chain(&e), "configuration unavailable; expired links left to the next run");
            report.failed = 1;
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
    };
    let lease = settings.provider_timeout + LEASE_SLACK;
    while Instant::now() < deadline {
        let links = match app.store.scan_links_expired(app.store.now(), settings.batch_size).await {
            Ok(links) => links,
            Err(e) => {
                tracing::error!(error = %shared::error_chain(&e), "reading expired links failed");
                report.failed += 1;
                break;
            }
        };
        // Built only once a link is due: most runs find none, and building the clients loads
        // the platform's root certificates, a cold start's worth of CPU (README, "TLS and
        // entropy").
        if !links.is_empty()
            && let Err(e) = current.providers()
        {
            tracing::error!(error = %shared::error_chain(&e), "cannot build the provider clients; expired links left to the next run");
            report.failed += 1;
            break;
        }
        let full = links.len() >= usize::from(settings.batch_size);
        let outcomes: Vec<Handled> = futures_util::stream::iter(links)
            .map(|link| async move {
                // Checked per link: one not started is left, unclaimed, to the next run.
                if Instant::now() >= deadline {
                    return Handled { deactivated: false, failed: false };
                }
                expire_one(app, &link, lease, settings.provider_timeout).await
            })
            .buffer_unordered(settings.concurrency)
            .collect()
            .await;
        // A batch in which no link was deactivated (each held by another run, or neither
        // removed nor recorded) stops the run: the database is in trouble, or other runs
        // are on it.
        let moved = outcomes.iter().any(|h| h.deactivated);
        for h in outcomes {
            report.scanned += 1;
            report.acted += u64::from(h.deactivated);
            report.failed += u64::from(h.failed);
            report.skipped += u64::from(!h.deactivated && !h.failed);
        }
        if !full || !moved {
            break;
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// How one link was handled (neither: left alone).
#[derive(Debug, Clone, Copy)]
struct Handled {
    deactivated: bool,
    failed: bool,
}

/// Claims one expired link, removes it at its provider where needed, then deactivates it.
async fn expire_one(app: &App, link: &SharedLink, lease: Duration, provider_timeout: Duration) -> Handled {
    let store = &app.store;
    let id = link.base.id;
    match store.claim_link_expiry(id, store.now() + chrono_duration(lease)).await {
        Ok(true) => {}
        // Another run holds it, or it was deactivated meanwhile.
        Ok(false) => return Handled { deactivated: false, failed: false },
        Err(e) => {
            tracing::warn!(link_id = %id, error = %shared::error_chain(&e), "cannot claim the expired link");
            return Handled { deactivated: false, failed: true };
        }
    }
    // Each removal gets the provider timeout; the lease outlives it with room to spare.
    let deadline = Deadline::after(provider_timeout);
    let removed =
        link_removal::remove_link(app, link, Need::UnlessProviderExpiresIt, &deadline, Duration::ZERO, OPERATION).await;
    let failed = match removed {
        Ok(LinkRemoval::Removed | LinkRemoval::StillInUse | LinkRemoval::NotNeeded) => false,
        // Not removed, and the error row is its record: the link is deactivated anyway.
        Ok(LinkRemoval::Recorded(_)) => true,
        // Neither removed nor recorded: the link stays active for a later run.
        Ok(LinkRemoval::Unrecorded(_)) => return Handled { deactivated: false, failed: true },
        Err(e) => {
            tracing::warn!(link_id = %id, error = %shared::error_chain(&e), "cannot read the expired link's item; retried");
            return Handled { deactivated: false, failed: true };
        }
    };
    match store.expire_link(id).await {
        Ok(deactivated) => Handled { deactivated, failed },
        Err(e) => {
            tracing::warn!(link_id = %id, error = %shared::error_chain(&e), "cannot deactivate the expired link");
            Handled { deactivated: false, failed: true }
        }
    }
}
