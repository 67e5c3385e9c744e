//! The sync worker: runs sync jobs. An SQS queue feeds it the ids of jobs whose rows are
//! committed (POST /sync-jobs, auto-sync-trigger, and that trigger's sweep of jobs whose
//! message was lost); `scripts/run` runs it in-process on pending jobs instead.
//!
//! `download` syncs the folder's whole subtree from its provider into Quodsi's object store,
//! `import` only the provider files its `job_metadata.file_ids` names, `upload` sends the
//! Quodsi copies that changed since the last sync to the provider, and `bidirectional` does
//! both, pull first. See [`engine`] for
//! how a run goes: claim, list (a crawl from a start cursor, or the changes since the stored
//! cursor), reconcile `cloud_files`, download, apply deletions behind the mass-delete guard,
//! keep the new cursor, complete.
//!
//! One message is one job. A run that needs longer than the invocation has (a large folder, a
//! provider asking to wait) saves its checkpoint in the job's metadata, gives its lease up and
//! sends the job's message again; the next invocation claims it and goes on. A duplicate
//! delivery finds the job claimed (or ended) and does nothing. A message this function cannot
//! read is dropped with a log line; one whose job could not be handled because the database
//! failed is reported as a batch item failure, so SQS delivers it again.

pub mod checkpoint;
pub mod engine;
mod place;

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use shared::app::App;
use shared::job_queue::JobMessage;
use shared::schedule::{Env, Report, RowOutcome, SettingsError};
use tokio::time::Instant;

pub use engine::{Ran, RunError};

pub const FUNCTION: &str = "sync-worker";

/// Settings read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long a claim holds a job without a heartbeat (`SYNC_LEASE_SECONDS`, 120). A worker
    /// that stops (a crash, a timeout) leaves the job to the next delivery after this.
    pub lease: Duration,
    /// How often a running job records progress and renews its lease (`SYNC_HEARTBEAT_SECONDS`,
    /// 10); the cancel of a job is seen at the next one.
    pub heartbeat: Duration,
    /// No new step (a page, a download) starts later than this before the invocation's end
    /// (`SYNC_STOP_MARGIN_SECONDS`, 60): what is left is checkpointed and continued.
    pub stop_margin: Duration,
    /// Without a Lambda deadline (the local run), how long one run goes before it continues in
    /// another (`SYNC_LOCAL_RUN_SECONDS`, 600).
    pub local_run: Duration,
    /// The longest a run waits in place for a throttled provider (`SYNC_MAX_INLINE_WAIT_SECONDS`,
    /// 30); a longer wait continues the job after that delay instead.
    pub max_inline_wait: Duration,
    /// Attempts of one provider call that keeps failing transiently (`SYNC_CALL_ATTEMPTS`, 5).
    pub call_attempts: u32,
    /// Box keeps events for a limited time (two weeks at the least): a Box cursor older than
    /// this is dropped for a fresh crawl (`SYNC_BOX_CURSOR_MAX_AGE_DAYS`, 14).
    pub box_cursor_max_age: Duration,
    /// The part an upload sends per request, rounded down to the provider's multiple
    /// (`SYNC_UPLOAD_PART_KIB`, 10240: 10 MiB, Graph's recommendation and a multiple of Drive's
    /// 256 KiB). Memory holds one part; a file up to one part goes in one request.
    pub upload_part: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            lease: Duration::from_secs(120),
            heartbeat: Duration::from_secs(10),
            stop_margin: Duration::from_secs(60),
            local_run: Duration::from_secs(600),
            max_inline_wait: Duration::from_secs(30),
            call_attempts: 5,
            box_cursor_max_age: Duration::from_secs(14 * 86_400),
            upload_part: 10 << 20,
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(Env::process())
    }

    pub fn from_lookup<F: Fn(&str) -> Option<String>>(env: Env<F>) -> Result<Settings, SettingsError> {
        let s = Settings {
            lease: env.seconds("SYNC_LEASE_SECONDS", 120, 10, 3600)?,
            heartbeat: env.seconds("SYNC_HEARTBEAT_SECONDS", 10, 1, 600)?,
            stop_margin: env.seconds("SYNC_STOP_MARGIN_SECONDS", 60, 1, 600)?,
            local_run: env.seconds("SYNC_LOCAL_RUN_SECONDS", 600, 1, 86_400)?,
            max_inline_wait: env.seconds("SYNC_MAX_INLINE_WAIT_SECONDS", 30, 0, 600)?,
            call_attempts: env.number("SYNC_CALL_ATTEMPTS", 5, 1, 20)? as u32,
            box_cursor_max_age: env
                .number("SYNC_BOX_CURSOR_MAX_AGE_DAYS", 14, 1, 60)
                .map(|d| Duration::from_secs(d * 86_400))?,
            upload_part: env.number("SYNC_UPLOAD_PART_KIB", 10_240, 256, 153_600)? * 1024,
        };
        if s.heartbeat >= s.lease {
            return Err(SettingsError {
                name: "SYNC_HEARTBEAT_SECONDS",
                message: "must be shorter than SYNC_LEASE_SECONDS, or a live run loses its lease".into(),
            });
        }
        Ok(s)
    }
}

/// The Lambda handler: runs each message's job in turn; the messages whose job the database
/// kept from being handled come back as batch item failures, to be delivered again.
pub async fn handler(
    app: &App,
    settings: &Settings,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let end = invocation_end(&event.context);
    let mut failures = Vec::new();
    for record in event.payload.records {
        let id = record.message_id.clone().unwrap_or_default();
        let Some(body) = record.body.as_deref() else {
            tracing::warn!(message_id = %id, "a sync message without a body was dropped");
            continue;
        };
        let message = match JobMessage::parse(body) {
            Ok(message) => message,
            Err(e) => {
                // Delivering it again would fail the same way.
                tracing::error!(message_id = %id, error = %e, "an unreadable sync message was dropped");
                continue;
            }
        };
        match engine::run(app, settings, message, end).await {
            Ok(ran) => tracing::info!(job_id = %message.job_id, ran = ?ran, "sync message handled"),
            Err(e) => {
                tracing::error!(job_id = %message.job_id, error = %shared::error_chain(&e), "sync message not handled; it will be delivered again");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failures.push(failure);
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    Ok(response)
}

/// When the invocation must be done by, from the Lambda context (`None` when it names no
/// deadline, as in a local run).
fn invocation_end(context: &lambda_runtime::Context) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let left = context.deadline().duration_since(SystemTime::now()).unwrap_or_default();
    Some(Instant::now() + left)
}

/// The local run's worker: runs the jobs waiting for one (pending, or running with a lapsed
/// lease), at most `max`, one after another. Without a queue nothing else would run them.
pub async fn run_waiting(app: &App, settings: &Settings, max: u16) -> Report {
    let started = std::time::Instant::now();
    let mut report = Report::default();
    let jobs = match app.store.scan_jobs_to_dispatch(app.store.now(), max).await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::error!(error = %shared::error_chain(&e), "scanning waiting sync jobs failed");
            report.failed += 1;
            return report;
        }
    };
    for job in jobs {
        let message = JobMessage { tenant_id: job.base.tenant_id, job_id: job.base.id };
        report.count(match engine::run(app, settings, message, None).await {
            Ok(Ran::NotClaimed) => RowOutcome::Skipped,
            Ok(_) => RowOutcome::Acted,
            Err(e) => {
                tracing::error!(job_id = %job.base.id, error = %shared::error_chain(&e), "sync job not handled");
                RowOutcome::Failed
            }
        });
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}
