//! The auto-sync trigger against SQLite: which folders get a job, stale jobs, overlapping
//! invocations, settings, and the Lambda handler fed the EventBridge event.

use auto_sync_trigger::{FUNCTION, Settings, handler, run};
use chrono::{Duration, Utc};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use shared::db::*;
use shared::schedule::Env;
use testkit::scheduled::{ClockedApp, scheduled_event};
use testkit::{Tenant, new_connection, new_folder};

async fn connection(store: &Store, t: &Tenant, status: ConnectionStatus) -> Connection {
    let mut c = new_connection(t);
    c.status = status;
    store.create_connection(&c).await.unwrap()
}

/// An auto-sync folder last synced `synced_ago` ago (None: never).
async fn auto_folder(
    store: &Store,
    t: &Tenant,
    conn: ConnectionId,
    every_minutes: i32,
    synced_ago: Option<Duration>,
    permissions: FolderPermissions,
) -> Folder {
    let mut f = new_folder(t, conn);
    f.auto_sync_enabled = true;
    f.sync_frequency_minutes = Some(every_minutes);
    f.folder_permissions = permissions;
    let folder = store.create_folder(&f).await.unwrap();
    match synced_ago {
        None => folder,
        Some(ago) => {
            let patch = FolderPatch { last_sync_at: Some(Some(Utc::now() - ago)), ..Default::default() };
            store.update_folder(t.id, folder.base.id, &patch).await.unwrap()
        }
    }
}

async fn jobs_of(store: &Store, t: &Tenant, folder: FolderId) -> Vec<SyncJob> {
    let filter = SyncJobFilter { folder_id: Some(folder), status: None };
    store.list_jobs(t.id, &filter, PageRequest::first(200)).await.unwrap().items
}

#[tokio::test]
async fn queues_one_job_for_each_due_folder_only() {
    // Arrange
    let t = ClockedApp::new(json!({})).await;
    let s = t.store();
    let a = t.tenant().await;
    let active = connection(s, &a, ConnectionStatus::Active).await;
    let expired = connection(s, &a, ConnectionStatus::Active).await;
    let never = auto_folder(s, &a, active.base.id, 15, None, FolderPermissions::ReadWrite).await;
    let overdue =
        auto_folder(s, &a, active.base.id, 60, Some(Duration::minutes(61)), FolderPermissions::ReadOnly).await;
    let write_only =
        auto_folder(s, &a, active.base.id, 5, Some(Duration::minutes(6)), FolderPermissions::WriteOnly).await;
    let recent =
        auto_folder(s, &a, active.base.id, 60, Some(Duration::minutes(30)), FolderPermissions::ReadWrite).await;
    let dead_connection = auto_folder(s, &a, expired.base.id, 15, None, FolderPermissions::ReadWrite).await;
    // A folder is only configured on an active connection; this one expired afterwards.
    let expire = ConnectionPatch { status: Some(ConnectionStatus::Expired), ..Default::default() };
    s.update_connection(a.id, expired.base.id, &expire).await.unwrap();
    let busy = auto_folder(s, &a, active.base.id, 15, None, FolderPermissions::ReadWrite).await;
    let user_job = s.create_job(&testkit::new_job(&a, busy.base.id)).await.unwrap();
    let deleted = auto_folder(s, &a, active.base.id, 15, None, FolderPermissions::ReadWrite).await;
    s.delete_folder(a.id, deleted.base.id).await.unwrap();
    let manual = s.create_folder(&new_folder(&a, active.base.id)).await.unwrap();

    // Act
    let report = run(&t.app, &Settings::default()).await;

    // Assert
    assert_eq!((report.scanned, report.acted, report.failed), (3, 3, 0), "{report:?}");
    for (folder, job_type) in
        [(&never, JobType::Bidirectional), (&overdue, JobType::Download), (&write_only, JobType::Upload)]
    {
        let jobs = jobs_of(s, &a, folder.base.id).await;
        assert_eq!(jobs.len(), 1, "one job for {}", folder.folder_name);
        assert_eq!(jobs[0].status, JobStatus::Pending);
        assert_eq!(jobs[0].job_type, job_type);
        assert_eq!(jobs[0].initiated_by_user_id, None);
        assert_eq!(jobs[0].job_metadata, Some(json!({"trigger": "auto_sync"})));
    }
    for folder in [&recent, &dead_connection, &deleted, &manual] {
        assert!(jobs_of(s, &a, folder.base.id).await.is_empty(), "no job for {}", folder.base.id);
    }
    let busy_jobs = jobs_of(s, &a, busy.base.id).await;
    assert_eq!(busy_jobs.iter().map(|j| j.base.id).collect::<Vec<_>>(), vec![user_job.base.id]);
}

#[tokio::test]
async fn a_second_run_adds_nothing_until_the_job_completes_and_the_frequency_passes() {
    // Arrange
    let t = ClockedApp::new(json!({})).await;
    let s = t.store();
    let a = t.tenant().await;
    let conn = connection(s, &a, ConnectionStatus::Active).await;
    let folder = auto_folder(s, &a, conn.base.id, 30, None, FolderPermissions::ReadWrite).await;
    let first = run(&t.app, &Settings::default()).await;

    // Act
    let again = run(&t.app, &Settings::default()).await;
    let job = jobs_of(s, &a, folder.base.id).await.remove(0);
    for status in [JobStatus::Running, JobStatus::Completed] {
        s.update_job(a.id, job.base.id, &JobUpdate { status: Some(status), ..Default::default() }).await.unwrap();
    }
    let right_after = run(&t.app, &Settings::default()).await;
    let later = run(&*t.at(Duration::minutes(31)).await, &Settings::default()).await;

    // Assert
    assert_eq!(first.acted, 1);
    assert_eq!((again.scanned, again.acted), (0, 0), "the pending job keeps the folder out of the scan");
    assert_eq!((right_after.scanned, right_after.acted), (0, 0), "synced just now: not due");
    assert_eq!(later.acted, 1, "due again once the frequency has passed");
    assert_eq!(jobs_of(s, &a, folder.base.id).await.len(), 2);
}

#[tokio::test]
async fn a_failed_or_cancelled_sync_is_not_queued_again_until_the_frequency_passes() {
    // Arrange: two folders due every 30 minutes (one synced two hours ago, one never); the
    // first run queues a job for each, then one job fails and the other is cancelled, which
    // leaves last_sync_at as it was.
    let t = ClockedApp::new(json!({})).await;
    let s = t.store();
    let a = t.tenant().await;
    let conn = connection(s, &a, ConnectionStatus::Active).await;
    let synced = auto_folder(s, &a, conn.base.id, 30, Some(Duration::hours(2)), FolderPermissions::ReadWrite).await;
    let never = auto_folder(s, &a, conn.base.id, 30, None, FolderPermissions::ReadWrite).await;
    let first = run(&t.app, &Settings::default()).await;
    let failing = jobs_of(s, &a, synced.base.id).await.remove(0);
    for status in [JobStatus::Running, JobStatus::Failed] {
        s.update_job(a.id, failing.base.id, &JobUpdate { status: Some(status), ..Default::default() }).await.unwrap();
    }
    let cancelled = jobs_of(s, &a, never.base.id).await.remove(0);
    let cancel = JobUpdate { status: Some(JobStatus::Cancelled), ..Default::default() };
    s.update_job(a.id, cancelled.base.id, &cancel).await.unwrap();

    // Act
    let right_after = run(&t.app, &Settings::default()).await;
    let within = run(&*t.at(Duration::minutes(20)).await, &Settings::default()).await;
    let after = run(&*t.at(Duration::minutes(31)).await, &Settings::default()).await;

    // Assert
    assert_eq!(first.acted, 2, "{first:?}");
    assert_eq!((right_after.scanned, right_after.acted), (0, 0), "a job was created just now: not due");
    assert_eq!((within.scanned, within.acted), (0, 0), "within the frequency of the last job: not due");
    assert_eq!((after.acted, after.failed), (2, 0), "due again once the frequency has passed: {after:?}");
    assert_eq!(jobs_of(s, &a, synced.base.id).await.len(), 2);
    assert_eq!(jobs_of(s, &a, never.base.id).await.len(), 2);
    assert_eq!(s.get_folder(a.id, synced.base.id).await.unwrap().last_sync_at, synced.last_sync_at);
}

#[tokio::test]
async fn a_sync_that_ran_long_then_failed_is_spaced_from_its_failure_not_its_creation() {
    // Arrange: a folder due every 30 minutes gets a job now; the job runs for 40 minutes and
    // fails then. A soft-deleted failed job of another folder counts for nothing.
    let t = ClockedApp::new(json!({})).await;
    let s = t.store();
    let a = t.tenant().await;
    let conn = connection(s, &a, ConnectionStatus::Active).await;
    let folder = auto_folder(s, &a, conn.base.id, 30, Some(Duration::hours(2)), FolderPermissions::ReadWrite).await;
    let other = auto_folder(s, &a, conn.base.id, 30, Some(Duration::hours(2)), FolderPermissions::ReadWrite).await;
    let first = run(&t.app, &Settings::default()).await;
    let long = jobs_of(s, &a, folder.base.id).await.remove(0);
    let later = t.at(Duration::minutes(40)).await;
    for status in [JobStatus::Running, JobStatus::Failed] {
        let update = JobUpdate { status: Some(status), ..Default::default() };
        later.store.update_job(a.id, long.base.id, &update).await.unwrap();
    }
    let removed = jobs_of(s, &a, other.base.id).await.remove(0);
    for status in [JobStatus::Running, JobStatus::Failed] {
        let update = JobUpdate { status: Some(status), ..Default::default() };
        later.store.update_job(a.id, removed.base.id, &update).await.unwrap();
    }
    later.store.delete_job(a.id, removed.base.id).await.unwrap();

    // Act
    let just_after = run(&*t.at(Duration::minutes(41)).await, &Settings::default()).await;
    let jobs_just_after = jobs_of(s, &a, folder.base.id).await;
    let other_jobs = jobs_of(s, &a, other.base.id).await;
    let after = run(&*t.at(Duration::minutes(71)).await, &Settings::default()).await;

    // Assert
    assert_eq!(first.acted, 2, "{first:?}");
    assert_eq!(
        (just_after.scanned, just_after.acted),
        (1, 1),
        "the job that failed a minute ago keeps its folder out, the deleted one does not: {just_after:?}"
    );
    assert_eq!(jobs_just_after.iter().map(|j| j.base.id).collect::<Vec<_>>(), vec![long.base.id], "no new job");
    assert_eq!(other_jobs.iter().map(|j| j.status).collect::<Vec<_>>(), vec![JobStatus::Pending]);
    assert_eq!(after.acted, 1, "due again a frequency after the failure: {after:?}");
    assert_eq!(jobs_of(s, &a, folder.base.id).await.len(), 2);
}

#[tokio::test]
async fn a_stale_running_job_fails_with_an_error_row_and_frees_its_folder() {
    // Arrange
    let t = ClockedApp::new(json!({})).await;
    let s = t.store();
    let a = t.tenant().await;
    let conn = connection(s, &a, ConnectionStatus::Active).await;
    let stale_folder = auto_folder(s, &a, conn.base.id, 15, None, FolderPermissions::ReadWrite).await;
    let live_folder = auto_folder(s, &a, conn.base.id, 15, None, FolderPermissions::ReadWrite).await;
    let two_hours_ago = t.at(-Duration::minutes(120)).await;
    let start = JobUpdate { status: Some(JobStatus::Running), ..Default::default() };
    // Created and started two hours ago, as a job that has run that long was.
    let stale = two_hours_ago.store.create_job(&testkit::new_job(&a, stale_folder.base.id)).await.unwrap();
    two_hours_ago.store.update_job(a.id, stale.base.id, &start).await.unwrap();
    let live = s.create_job(&testkit::new_job(&a, live_folder.base.id)).await.unwrap();
    s.update_job(a.id, live.base.id, &start).await.unwrap();

    // Act
    let report = run(&t.app, &Settings::default()).await;

    // Assert
    let failed = s.get_job(a.id, stale.base.id).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.completed_at.is_some());
    assert!(failed.error_message.as_deref().unwrap().contains("60 minutes"));
    assert_eq!(s.get_job(a.id, live.base.id).await.unwrap().status, JobStatus::Running);
    let errors = s
        .list_errors(
            a.id,
            &SyncErrorFilter { connection_id: Some(conn.base.id), ..Default::default() },
            PageRequest::first(50),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].sync_job_id, Some(stale.base.id));
    assert_eq!(errors[0].error_type, ErrorType::Timeout);
    assert_eq!(errors[0].error_code.as_deref(), Some("job_stale"));
    // The failure just now spaces the next attempt by the folder's frequency (15 minutes),
    // like any failed sync: none in the same run, one once the frequency has passed.
    assert_eq!(jobs_of(s, &a, stale_folder.base.id).await.len(), 1, "no new job in the run that failed it");
    assert_eq!(jobs_of(s, &a, live_folder.base.id).await.len(), 1);
    assert_eq!(report.acted, 1, "one stale job failed, nothing queued: {report:?}");
    let later = run(&*t.at(Duration::minutes(16)).await, &Settings::default()).await;
    let new_jobs = jobs_of(s, &a, stale_folder.base.id).await;
    assert_eq!(new_jobs.len(), 2, "the freed folder got its next auto-sync job a frequency later: {later:?}");
    assert!(new_jobs.iter().any(|j| j.status == JobStatus::Pending && j.initiated_by_user_id.is_none()));
    assert_eq!(later.acted, 1, "{later:?}");
}

#[tokio::test]
async fn overlapping_invocations_queue_exactly_one_job_per_folder() {
    // Arrange: 1,000 due folders over 10 connections, 8 invocations at once.
    let t = ClockedApp::new(json!({})).await;
    let s = t.store();
    let a = t.tenant().await;
    let mut folders = Vec::new();
    for _ in 0..10 {
        let conn = connection(s, &a, ConnectionStatus::Active).await;
        for _ in 0..100 {
            folders.push(auto_folder(s, &a, conn.base.id, 15, None, FolderPermissions::ReadWrite).await.base.id);
        }
    }
    let settings = Settings { batch_size: 200, ..Settings::default() };

    // Act
    let runs = (0..8).map(|_| {
        let (app, settings) = (t.app.clone(), settings.clone());
        tokio::spawn(async move { run(&app, &settings).await })
    });
    let reports: Vec<_> = futures_util::future::join_all(runs).await.into_iter().map(|r| r.unwrap()).collect();

    // Assert
    let acted: u64 = reports.iter().map(|r| r.acted).sum();
    let failed: u64 = reports.iter().map(|r| r.failed).sum();
    assert_eq!(acted, 1000, "{reports:?}");
    assert_eq!(failed, 0, "{reports:?}");
    let lost: u64 = reports.iter().map(|r| r.skipped).sum();
    assert!(lost > 0, "the runs overlapped and lost races on the unique index: {reports:?}");
    let mut total = 0;
    let mut page = PageRequest::first(200);
    loop {
        let p = s.list_jobs(a.id, &SyncJobFilter::default(), page).await.unwrap();
        total += p.items.len();
        match p.next_after {
            Some(after) => page.after = Some(after),
            None => break,
        }
    }
    assert_eq!(total, 1000, "exactly one job per folder");
    for folder in folders.iter().step_by(97) {
        assert_eq!(jobs_of(s, &a, *folder).await.len(), 1);
    }
}

#[tokio::test]
async fn settings_come_from_the_environment_with_defaults_and_named_errors() {
    // Arrange
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        Env::new(move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    };

    // Act
    let defaults = Settings::from_lookup(vars(&[])).unwrap();
    let custom =
        Settings::from_lookup(vars(&[("AUTO_SYNC_STALE_JOB_MINUTES", "90"), ("AUTO_SYNC_CONCURRENCY", "4")])).unwrap();
    let bad = Settings::from_lookup(vars(&[("AUTO_SYNC_BATCH_SIZE", "lots")])).unwrap_err();
    let out_of_range = Settings::from_lookup(vars(&[("AUTO_SYNC_STALE_JOB_MINUTES", "1")])).unwrap_err();

    // Assert
    assert_eq!(defaults, Settings::default());
    assert_eq!(defaults.stale_after, std::time::Duration::from_secs(3600));
    assert_eq!(custom.stale_after, std::time::Duration::from_secs(5400));
    assert_eq!(custom.concurrency, 4);
    assert_eq!(bad.name, "AUTO_SYNC_BATCH_SIZE");
    assert!(bad.to_string().contains("AUTO_SYNC_BATCH_SIZE"));
    assert_eq!(out_of_range.name, "AUTO_SYNC_STALE_JOB_MINUTES");
}

#[tokio::test]
async fn the_handler_runs_on_the_eventbridge_scheduled_event() {
    // Arrange
    let t = ClockedApp::new(json!({})).await;
    let s = t.store();
    let a = t.tenant().await;
    let conn = connection(s, &a, ConnectionStatus::Active).await;
    let folder = auto_folder(s, &a, conn.base.id, 15, None, FolderPermissions::ReadWrite).await;
    let payload = scheduled_event(FUNCTION);
    assert_eq!(payload["detail-type"], "Scheduled Event");
    assert_eq!(payload["source"], "aws.events");

    // Act
    let report = handler(&t.app, &Settings::default(), LambdaEvent::new(payload, Context::default())).await.unwrap();

    // Assert
    assert_eq!((report.scanned, report.acted), (1, 1));
    assert_eq!(jobs_of(s, &a, folder.base.id).await.len(), 1);
    let output = serde_json::to_value(report).unwrap();
    let keys: Vec<_> = output.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 5);
    for key in ["scanned", "acted", "skipped", "failed", "duration_ms"] {
        assert!(output.get(key).is_some(), "{key} in {output}");
    }
}
