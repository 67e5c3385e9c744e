//! Auto-sync trigger, run every minute by an EventBridge schedule.
//!
//! 1. Running jobs with no update for `AUTO_SYNC_STALE_JOB_MINUTES` become `failed` with an
//!    error row: a worker that crashed mid-job must not block its folder forever, since a
//!    folder with a live job gets no new one.
//! 2. Every live folder with auto-sync on, whose connection is active and whose last sync is
//!    older than its `sync_frequency_minutes` (or never happened), gets one `pending` job
//!    (no initiating user; the job type follows the folder's permissions), unless it already
//!    has a pending or running job, or a job of it failed or was cancelled less than its
//!    frequency ago (those leave `last_sync_at` as it was, so a sync that keeps failing is
//!    retried once per frequency, not every minute).
//!
//! 3. Jobs whose message to the sync worker may be lost (a pending job never sent, or sent
//!    more than five minutes ago; a running job whose worker's lease ran out) are sent to the
//!    queue again ([`shared::dispatch::sweep`]), so nothing stays pending for ever. A job made
//!    in step 2 is sent as soon as it is committed.
//!
//! Overlapping invocations are safe: the unique index `ix_cloud_sync_jobs_folder_live` admits
//! one live job per folder, so the loser of a race gets a Conflict, counted as skipped; a
//! stale job is failed by a write conditional on it still being stale.
//!
//! Both scans follow the due work, not the tables: the due-folder scan seeks, per distinct
//! frequency, the folders synced before `now - frequency` (`ix_cloud_folders_auto_sync_due`),
//! and the stale-job scan seeks `status = 'running'`, so it reads the running jobs only,
//! never the job history.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lambda_runtime::LambdaEvent;
use serde_json::json;
use shared::app::App;
use shared::db::{DbError, ErrorType, Folder, NewSyncError, SyncJob};
use shared::dispatch::Queued;
use shared::schedule::{Env, Report, RowOutcome, SettingsError, chrono_duration};

pub const FUNCTION: &str = "auto-sync-trigger";

/// Settings read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Rows fetched per scan (`AUTO_SYNC_BATCH_SIZE`, default 500).
    pub batch_size: u16,
    /// Jobs created or failed at once (`AUTO_SYNC_CONCURRENCY`, default 8).
    pub concurrency: usize,
    /// A running job with no update for this long is failed (`AUTO_SYNC_STALE_JOB_MINUTES`,
    /// default 60).
    pub stale_after: Duration,
    /// No new batch is started after this much time (`AUTO_SYNC_TIME_BUDGET_SECONDS`, default
    /// 40); keep it below the function's timeout. What is left is due again next minute.
    pub time_budget: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            batch_size: 500,
            concurrency: 8,
            stale_after: Duration::from_secs(60 * 60),
            time_budget: Duration::from_secs(40),
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(Env::process())
    }

    pub fn from_lookup<F: Fn(&str) -> Option<String>>(env: Env<F>) -> Result<Settings, SettingsError> {
        let d = Settings::default();
        Ok(Settings {
            batch_size: env.number("AUTO_SYNC_BATCH_SIZE", d.batch_size.into(), 1, 5000)? as u16,
            concurrency: env.number("AUTO_SYNC_CONCURRENCY", d.concurrency as u64, 1, 64)? as usize,
            stale_after: env.minutes("AUTO_SYNC_STALE_JOB_MINUTES", 60, 5, 10_080)?,
            time_budget: env.seconds("AUTO_SYNC_TIME_BUDGET_SECONDS", d.time_budget.as_secs(), 1, 900)?,
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

/// One run: stale jobs first (failing them frees their folders for step 2), then due folders.
pub async fn run(app: &App, settings: &Settings) -> Report {
    let started = Instant::now();
    let deadline = started + settings.time_budget;
    let mut report = fail_stale_jobs(app, settings, deadline).await;
    report.add(&queue_due_folders(app, settings, deadline).await);
    if Instant::now() < deadline {
        report.add(&shared::dispatch::sweep(app, settings.batch_size).await);
    }
    if Instant::now() < deadline {
        let calls = shared::deadline::Deadline::at(tokio::time::Instant::from_std(deadline));
        report.add(&shared::subscriptions::renew_due(app, &calls, app.store.now(), settings.batch_size).await);
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// Handles one scanned batch, `concurrency` rows at a time; rows reached after the deadline
/// are left for the next run. True if anything was done, so another round may find more.
async fn handle_batch<T, F, Fut>(
    report: &mut Report,
    rows: Vec<T>,
    settings: &Settings,
    deadline: Instant,
    handle: F,
) -> bool
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = RowOutcome>,
{
    let handle = &handle;
    let outcomes: Vec<RowOutcome> = futures_util::stream::iter(rows)
        .map(|row| async move { if Instant::now() < deadline { handle(row).await } else { RowOutcome::Skipped } })
        .buffer_unordered(settings.concurrency)
        .collect()
        .await;
    let acted = outcomes.contains(&RowOutcome::Acted);
    for o in outcomes {
        report.count(o);
    }
    acted
}

fn scan_failed(report: &mut Report, what: &str, e: &DbError) {
    tracing::error!(error = %shared::error_chain(e), "scanning {what} failed");
    report.failed += 1;
}

// A round repeats only when its scan came back full and it did something: a round that did
// nothing would find the same rows again.
async fn fail_stale_jobs(app: &App, settings: &Settings, deadline: Instant) -> Report {
    let store = &app.store;
    let stale_after = chrono_duration(settings.stale_after);
    let minutes = settings.stale_after.as_secs() / 60;
    let mut report = Report::default();
    while Instant::now() < deadline {
        let jobs = match store.scan_jobs_stale(store.now() - stale_after, settings.batch_size).await {
            Ok(jobs) => jobs,
            Err(e) => {
                scan_failed(&mut report, "stale jobs", &e);
                break;
            }
        };
        let full = jobs.len() >= usize::from(settings.batch_size);
        let acted = handle_batch(&mut report, jobs, settings, deadline, |job: SyncJob| async move {
            fail_one(app, &job, stale_after, minutes).await
        })
        .await;
        if !full || !acted {
            break;
        }
    }
    report
}

async fn fail_one(app: &App, job: &SyncJob, stale_after: chrono::Duration, minutes: u64) -> RowOutcome {
    let store = &app.store;
    let tenant = job.base.tenant_id;
    // The error row needs the connection; a folder deleted meanwhile had its jobs cancelled.
    let folder = match store.get_folder(tenant, job.folder_id).await {
        Ok(f) => f,
        Err(DbError::NotFound) => return RowOutcome::Skipped,
        Err(e) => {
            tracing::warn!(job_id = %job.base.id, error = %shared::error_chain(&e), "cannot read the job's folder");
            return RowOutcome::Failed;
        }
    };
    let message = format!("no progress reported for {minutes} minutes; the sync worker is presumed lost");
    let error = NewSyncError {
        tenant_id: tenant,
        sync_job_id: Some(job.base.id),
        connection_id: folder.connection_id,
        file_id: None,
        error_type: ErrorType::Timeout,
        error_code: Some("job_stale".into()),
        error_message: message.clone(),
        stack_trace: None,
        error_metadata: Some(json!({ "source": FUNCTION, "last_update": job.base.updated_at })),
    };
    match store.fail_stale_job(job, store.now() - stale_after, &message, &error).await {
        Ok(Some(_)) => {
            tracing::info!(job_id = %job.base.id, folder_id = %job.folder_id, "stale job failed");
            RowOutcome::Acted
        }
        // It reported progress or finished since the scan.
        Ok(None) => RowOutcome::Skipped,
        Err(e) => {
            tracing::warn!(job_id = %job.base.id, error = %shared::error_chain(&e), "cannot fail the stale job");
            RowOutcome::Failed
        }
    }
}

async fn queue_due_folders(app: &App, settings: &Settings, deadline: Instant) -> Report {
    let store = &app.store;
    let mut report = Report::default();
    while Instant::now() < deadline {
        let folders = match store.scan_folders_due(store.now(), settings.batch_size).await {
            Ok(folders) => folders,
            Err(e) => {
                scan_failed(&mut report, "due folders", &e);
                break;
            }
        };
        let full = folders.len() >= usize::from(settings.batch_size);
        let acted =
            handle_batch(&mut report, folders, settings, deadline, |f: Folder| async move { queue_one(app, &f).await })
                .await;
        if !full || !acted {
            break;
        }
    }
    report
}

async fn queue_one(app: &App, folder: &Folder) -> RowOutcome {
    match shared::dispatch::queue_sync(app, folder, "auto_sync").await {
        Queued::Queued(_) => RowOutcome::Acted,
        // Another invocation (or a user) queued one first, or the folder went since the scan.
        Queued::AlreadyLive | Queued::Gone => RowOutcome::Skipped,
        Queued::Failed => RowOutcome::Failed,
    }
}
