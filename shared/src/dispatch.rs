//! Getting a sync job to the worker. A job's row is committed first, then its id goes to the
//! queue; a send that fails after the commit (the queue down, the function stopped between
//! the two) leaves the job pending with no message, and a message can die in the dead-letter
//! queue. [`sweep`], run by auto-sync-trigger every minute, sends those jobs again: pending
//! ones whose message was never sent or was sent long ago, and running ones whose worker's
//! lease ran out. Nothing stays pending for ever, and a duplicate message is harmless: the
//! worker claims a job with a conditional write, so a second delivery runs nothing twice.

use std::time::Duration;

use serde_json::json;

use crate::app::App;
use crate::db::{DbError, Folder, NewSyncJob, SyncJob};
use crate::job_queue::{JobMessage, JobQueue, SendOutcome};
use crate::schedule::{Report, RowOutcome, chrono_duration};

/// What became of sending a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatched {
    /// The message is on the queue (with this delay).
    Sent(Duration),
    /// No queue is configured (the local run, whose worker finds pending jobs itself).
    NoQueue,
    /// The send failed; it is logged, and the sweep sends the job again.
    Failed,
}

/// Sends `job`'s message, `delay` from now, and notes when; a failure is logged, not returned.
pub async fn dispatch(app: &App, job: &SyncJob, delay: Duration) -> Dispatched {
    let (tenant, id) = (job.base.tenant_id, job.base.id);
    let message = JobMessage { tenant_id: tenant, job_id: id };
    match app.queue().await.send(&message, delay).await {
        Ok(SendOutcome::Queued { delay, .. }) => {
            if let Err(e) = app.store.mark_dispatched(tenant, id).await {
                // The message went; only the note failed, and the sweep may send it once more.
                tracing::warn!(job_id = %id, error = %crate::error_chain(&e), "cannot note the job as dispatched");
            }
            Dispatched::Sent(delay)
        }
        Ok(SendOutcome::Disabled) => Dispatched::NoQueue,
        Err(e) => {
            tracing::warn!(job_id = %id, error = %crate::error_chain(&e), "the job's message was not sent; the sweep will");
            Dispatched::Failed
        }
    }
}

/// What asking for a folder's sync came to.
#[derive(Debug)]
pub enum Queued {
    /// A job was made and sent (or left for the sweep, when the send failed).
    Queued(Box<SyncJob>),
    /// The folder already has a pending or running job: it will see the change.
    AlreadyLive,
    /// The folder was deleted, or its connection is no longer active.
    Gone,
    /// The database failed; logged.
    Failed,
}

/// Queues a sync of `folder` as its permissions allow (download for a read-only folder), the
/// way auto-sync does, with `trigger` in the job's metadata (`auto_sync`, `webhook:graph`, …).
/// A folder with a live job gets none: `ix_cloud_sync_jobs_folder_live` admits one, so two
/// callers racing for the same folder queue it once.
pub async fn queue_sync(app: &App, folder: &Folder, trigger: &str) -> Queued {
    let job = NewSyncJob {
        tenant_id: folder.base.tenant_id,
        folder_id: folder.base.id,
        initiated_by_user_id: None,
        job_type: folder.folder_permissions.auto_sync_job(),
        job_metadata: Some(json!({ "trigger": trigger })),
    };
    match app.store.create_job(&job).await {
        Ok(created) => {
            tracing::debug!(job_id = %created.base.id, folder_id = %folder.base.id, trigger, "sync job queued");
            dispatch(app, &created, Duration::ZERO).await;
            Queued::Queued(Box::new(created))
        }
        Err(DbError::Conflict { .. }) => Queued::AlreadyLive,
        // The INSERT refuses a deleted folder and a connection revoked, expired or deleted.
        Err(DbError::NotFound) => Queued::Gone,
        Err(e) => {
            tracing::warn!(folder_id = %folder.base.id, error = %crate::error_chain(&e), "cannot queue the job");
            Queued::Failed
        }
    }
}

/// How old a message must be before the sweep takes it for lost.
pub const RESEND_AFTER: Duration = Duration::from_secs(5 * 60);

/// Sends again the jobs whose message may be lost (see the module documentation), at most
/// `max`. A run without a queue does nothing.
pub async fn sweep(app: &App, max: u16) -> Report {
    let mut report = Report::default();
    if matches!(app.queue().await, JobQueue::Disabled) {
        return report;
    }
    let before = app.store.now() - chrono_duration(RESEND_AFTER);
    let jobs = match app.store.scan_jobs_to_dispatch(before, max).await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::error!(error = %crate::error_chain(&e), "scanning jobs to dispatch failed");
            report.failed += 1;
            return report;
        }
    };
    for job in jobs {
        report.count(match dispatch(app, &job, Duration::ZERO).await {
            Dispatched::Sent(_) => RowOutcome::Acted,
            Dispatched::NoQueue => RowOutcome::Skipped,
            Dispatched::Failed => RowOutcome::Failed,
        });
    }
    report
}
