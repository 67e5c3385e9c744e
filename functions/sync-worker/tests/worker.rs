//! The sync worker against SQLite, a local object store and wiremock fakes of the providers
//! that serve a model drive (`testkit::sync_fakes`) with the bodies each provider documents:
//! first syncs and later ones, resync signals, the mass-delete guard, hash checks, claims and
//! duplicate deliveries, throttling and time running out, cancellation, imports, and the SQS
//! handler fed the event in `events/sync-worker/`.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use shared::content_hash::HashAlg;
use shared::db::*;
use sync_worker::{Ran, Settings};
use testkit::providers::invalid_grant;
use testkit::sync_fakes::{Endpoint, Fault, OTHER_LIBRARY, RemoteTree};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

mod common;
use common::*;

#[tokio::test]
async fn a_first_sync_crawls_the_subtree_downloads_every_file_and_keeps_the_cursor() {
    // Arrange
    let w = world(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)).await;
    let job = w.job(JobType::Download, None).await;

    // Act
    let (ran, _) = w.run_to_end(&job).await;

    // Assert
    assert_eq!(ran, Ran::Completed);
    let files = w.files().await;
    let paths: Vec<_> = files.iter().map(|f| f.file_path.clone().unwrap()).collect();
    assert_eq!(
        paths,
        ["Scenarios/baseline.qsim", "factory-line.qsim", "throughput-results.csv", "warehouse-layout.qsim"],
        "the subtree's files, and nothing from outside the folder"
    );
    for file in &files {
        let remote = w.tree.expect(file.file_path.as_deref().unwrap());
        assert_eq!(file.provider_file_id, remote.id);
        assert_eq!(file.sync_status, SyncStatus::Synced, "{}", file.file_name);
        assert_eq!(file.content_hash, remote.hash, "{}: lowercase hex of Dropbox's content hash", file.file_name);
        assert_eq!(file.content_hash.as_ref().unwrap().len(), 64);
        assert_eq!(file.file_size_bytes, remote.size);
        assert!(file.last_synced_at.is_some());
        assert_eq!(file.quodsi_file_type, QuodsiFileType::Model, "a models folder's files are models");
        assert_eq!(w.stored_bytes(file), remote.content, "{}: the bytes in Quodsi's store", file.file_name);
    }
    let done = w.t.store().get_job(w.tenant.id, job.base.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!((done.files_total, done.files_processed), (Some(4), 4));
    assert_eq!(done.bytes_transferred, files.iter().map(|f| f.file_size_bytes).sum::<i64>());
    assert_eq!(done.progress_percentage.hundredths(), 10_000);
    assert!(w.cursor().await.is_some(), "the change cursor is kept for the next sync");
    assert!(w.t.store().get_folder(w.tenant.id, w.folder.base.id).await.unwrap().last_sync_at.is_some());
    assert!(w.errors().await.is_empty(), "{:?}", w.errors().await);
}

#[tokio::test]
async fn a_later_sync_reads_only_the_changes_and_soft_deletes_what_the_provider_deleted() {
    // Arrange: a first sync, then an edit, a new file and a deletion at the provider.
    let w = world(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)).await;
    let first = w.job(JobType::Download, None).await;
    assert_eq!(w.run_to_end(&first).await.0, Ran::Completed);
    let downloads_before = w.downloads().await;
    let deleted = w.file("throughput-results.csv").await.unwrap();
    w.tree.modify("factory-line.qsim", b"a new version of the line\n".repeat(100));
    w.tree.add_file("Scenarios/line-2.qsim", b"line two\n".repeat(50));
    w.tree.delete("throughput-results.csv");
    let second = w.job(JobType::Download, None).await;

    // Act
    let (ran, _) = w.run_to_end(&second).await;

    // Assert
    assert_eq!(ran, Ran::Completed);
    assert_eq!(w.downloads().await - downloads_before, 2, "the edited and the new file, nothing else");
    let changed = w.file("factory-line.qsim").await.unwrap();
    assert_eq!(w.stored_bytes(&changed), b"a new version of the line\n".repeat(100));
    assert_eq!(changed.content_hash, w.tree.expect("factory-line.qsim").hash);
    assert!(w.file("Scenarios/line-2.qsim").await.is_some());
    assert!(w.file("throughput-results.csv").await.is_none(), "deleted at the provider: gone from the list");
    let gone = w.t.store().get_file(w.tenant.id, deleted.base.id).await;
    assert!(matches!(gone, Err(DbError::NotFound)), "soft-deleted, not hard-deleted: {gone:?}");
    assert!(w.t.store().known_file(w.tenant.id, deleted.base.id).await.is_ok(), "the row stays as history");
    let done = w.t.store().get_job(w.tenant.id, second.base.id).await.unwrap();
    assert_eq!((done.files_total, done.files_processed), (Some(2), 2));
}

#[tokio::test]
async fn a_resync_signal_starts_a_fresh_crawl_without_losing_or_duplicating_rows() {
    // Arrange: a first sync, a change, and the provider refusing the stored cursor once.
    let w = world(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)).await;
    assert_eq!(w.run_to_end(&w.job(JobType::Download, None).await).await.0, Ran::Completed);
    let before = w.files().await;
    w.tree.modify("warehouse-layout.qsim", b"rearranged\n".repeat(10));
    w.tree.inject(Endpoint::Changes, Fault::Resync);
    let job = w.job(JobType::Download, None).await;

    // Act
    let (ran, _) = w.run_to_end(&job).await;

    // Assert
    assert_eq!(ran, Ran::Completed);
    assert!(w.tree.faults_served(), "the reset was served");
    let after = w.files().await;
    assert_eq!(after.len(), before.len(), "no lost and no duplicated rows");
    let ids_before: Vec<_> = before.iter().map(|f| f.base.id).collect();
    assert!(after.iter().all(|f| ids_before.contains(&f.base.id)), "the same rows, updated in place");
    let changed = w.file("warehouse-layout.qsim").await.unwrap();
    assert_eq!(w.stored_bytes(&changed), b"rearranged\n".repeat(10));
}

#[tokio::test]
async fn a_run_that_would_delete_most_tracked_files_fails_and_deletes_nothing() {
    // Arrange: a first sync, then three of the four files deleted at the provider.
    let w = world(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)).await;
    assert_eq!(w.run_to_end(&w.job(JobType::Download, None).await).await.0, Ran::Completed);
    let cursor_before = w.cursor().await.unwrap();
    for path in ["factory-line.qsim", "throughput-results.csv", "warehouse-layout.qsim"] {
        w.tree.delete(path);
    }
    let job = w.job(JobType::Download, None).await;

    // Act
    let (ran, _) = w.run_to_end(&job).await;

    // Assert
    assert_eq!(ran, Ran::Failed);
    assert_eq!(w.files().await.len(), 4, "nothing was deleted");
    let failed = w.t.store().get_job(w.tenant.id, job.base.id).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error_message.as_deref().unwrap().contains("3 of the folder's 4"), "{:?}", failed.error_message);
    let errors = w.errors().await;
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].error_code.as_deref(), errors[0].sync_job_id),
        (Some("mass_delete_guard"), Some(job.base.id))
    );
    assert_eq!(w.cursor().await.unwrap().cursor_value, cursor_before.cursor_value, "the cursor did not move");
}

#[tokio::test]
async fn two_deliveries_of_one_job_run_it_once() {
    // Arrange
    let w = world(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)).await;
    let job = w.job(JobType::Download, None).await;

    // Act
    let (a, b) = tokio::join!(w.run(&job), w.run(&job));
    let again = w.run(&job).await;

    // Assert
    let ran = [a, b];
    assert_eq!(ran.iter().filter(|r| **r == Ran::Completed).count(), 1, "{ran:?}");
    assert_eq!(ran.iter().filter(|r| **r == Ran::NotClaimed).count(), 1, "{ran:?}");
    assert_eq!(again, Ran::NotClaimed, "a completed job is not run again");
    assert_eq!(w.downloads().await, 4, "each file downloaded once");
}

#[tokio::test]
async fn a_throttled_provider_is_waited_for_in_place_or_the_job_continues_after_the_wait() {
    // Arrange: a short Retry-After, waited in place; then a long one, which continues the job.
    let w = world(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)).await;
    w.tree.inject(Endpoint::Children, Fault::RateLimited { retry_after_secs: 1 });
    let short = w.job(JobType::Download, None).await;
    let started = Instant::now();
    let short_ran = w.run(&short).await;
    let waited = started.elapsed();
    w.tree.modify("factory-line.qsim", b"v3\n".repeat(9));
    w.tree.inject(Endpoint::Changes, Fault::RateLimited { retry_after_secs: 120 });
    let long = w.job(JobType::Download, None).await;

    // Act
    let long_ran = w.run(&long).await;
    let held = w.t.store().get_job(w.tenant.id, long.base.id).await.unwrap();
    let resumed = w.run(&long).await;

    // Assert
    assert_eq!(short_ran, Ran::Completed);
    assert!(waited >= Duration::from_secs(1), "the provider's Retry-After was honoured: {waited:?}");
    assert_eq!(long_ran, Ran::Continued { delay: Duration::from_secs(120) });
    assert_eq!(held.status, JobStatus::Running, "the job waits, still its folder's live job");
    assert!(held.job_metadata.as_ref().unwrap().get("checkpoint").is_some(), "with its checkpoint");
    assert_eq!(resumed, Ran::Completed, "the next delivery claims it again and finishes");
    assert!(w.errors().await.is_empty());
}

#[tokio::test]
async fn a_folder_too_big_for_one_invocation_finishes_over_several_and_completes_once() {
    // Arrange: every run stops at once after its first step.
    let w = world(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)).await;
    let job = w.job(JobType::Download, None).await;
    let hurried = Settings { stop_margin: Duration::from_secs(1), ..settings() };
    let mut runs = Vec::new();

    // Act: each invocation ends a second before its (simulated) Lambda deadline.
    loop {
        let end = Instant::now() + Duration::from_millis(1_050);
        let ran = sync_worker::engine::run(&w.t.app, &hurried, w.message(&job), Some(end)).await.unwrap();
        runs.push(ran.clone());
        if !matches!(ran, Ran::Continued { .. }) || runs.len() > 40 {
            break;
        }
    }

    // Assert
    assert_eq!(runs.last(), Some(&Ran::Completed));
    assert_eq!(runs.iter().filter(|r| **r == Ran::Completed).count(), 1);
    assert_eq!(w.downloads().await, 4, "no file downloaded twice across the invocations");
    assert!(w.files().await.iter().all(|f| f.sync_status == SyncStatus::Synced));
}

#[tokio::test]
async fn a_cancelled_job_stops_at_its_next_step_and_stays_cancelled() {
    // Arrange: the job is cancelled while the provider keeps it waiting.
    let w = world(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)).await;
    w.tree.inject(Endpoint::Children, Fault::RateLimited { retry_after_secs: 1 });
    let job = w.job(JobType::Download, None).await;
    let store = w.t.store().clone();
    let (tenant, id) = (w.tenant.id, job.base.id);
    let cancel = async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        store.update_job(tenant, id, &JobUpdate { status: Some(JobStatus::Cancelled), ..Default::default() }).await
    };
    let fast_beats = Settings { heartbeat: Duration::from_millis(1), ..settings() };

    // Act
    let (ran, cancelled) = tokio::join!(sync_worker::engine::run(&w.t.app, &fast_beats, w.message(&job), None), cancel);

    // Assert
    assert_eq!(cancelled.unwrap().status, JobStatus::Cancelled);
    assert_eq!(ran.unwrap(), Ran::Stopped);
    assert_eq!(w.t.store().get_job(w.tenant.id, job.base.id).await.unwrap().status, JobStatus::Cancelled);
    assert_eq!(w.downloads().await, 0, "nothing was transferred after the cancel");
}

#[tokio::test]
async fn an_import_pulls_only_the_named_files_and_leaves_the_cursor_alone() {
    // Arrange
    let w = world(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)).await;
    let wanted = w.tree.expect("Scenarios/baseline.qsim").id;
    let job = w.job(JobType::Import, Some(json!({ "file_ids": [wanted] }))).await;

    // Act
    let (ran, _) = w.run_to_end(&job).await;

    // Assert
    assert_eq!(ran, Ran::Completed);
    let files = w.files().await;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].provider_file_id, wanted);
    assert_eq!(w.downloads().await, 1);
    assert!(w.cursor().await.is_none(), "an import reads what it names; the folder's sync state is untouched");
}

#[tokio::test]
async fn an_export_job_that_names_no_objects_fails_with_a_reason() {
    // Arrange: a job made without the API, which would have refused it.
    let w = world(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)).await;
    let job = w.job(JobType::Export, Some(json!({ "format": "qsm" }))).await;

    // Act
    let ran = w.run(&job).await;

    // Assert
    assert_eq!(ran, Ran::Failed);
    let failed = w.t.store().get_job(w.tenant.id, job.base.id).await.unwrap();
    assert!(failed.error_message.unwrap().contains("job_metadata.objects"));
    assert_eq!(w.errors().await[0].error_code.as_deref(), Some("export_without_objects"));
    let requests = w.server.received_requests().await.unwrap_or_default();
    assert!(requests.is_empty(), "not one call to the provider: {requests:?}");
}

#[tokio::test]
async fn the_handler_runs_the_job_of_each_sqs_message_and_drops_unreadable_ones() {
    // Arrange: the event of events/sync-worker, naming a real job, plus a message that is not one.
    let w = world(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)).await;
    let job = w.job(JobType::Download, None).await;
    let path = testkit::http::repo_root().join("events/sync-worker/sqs.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let record = event["Records"][0].clone();
    event["Records"][0]["body"] = json!(w.message(&job).to_json());
    let mut junk = record;
    junk["messageId"] = json!("junk-1");
    junk["body"] = json!("not json");
    event["Records"].as_array_mut().unwrap().push(junk);
    let event: SqsEvent = serde_json::from_value(event).unwrap();

    // Act
    let app = Arc::clone(&w.t.app);
    let response = sync_worker::handler(&app, &settings(), LambdaEvent::new(event, Context::default())).await.unwrap();

    // Assert
    assert!(response.batch_item_failures.is_empty(), "nothing to deliver again");
    assert_eq!(w.t.store().get_job(w.tenant.id, job.base.id).await.unwrap().status, JobStatus::Completed);
}

/// The scenario drive of every provider family, and the name each test reports it by.
fn every_provider() -> Vec<(&'static str, ProviderType, RemoteTree)> {
    vec![
        ("OneDrive for Business", ProviderType::OneDrive, RemoteTree::scenario(ProviderType::OneDrive)),
        ("OneDrive Personal", ProviderType::OneDrive, RemoteTree::new_onedrive_personal().with_scenario()),
        ("SharePoint", ProviderType::SharePoint, RemoteTree::scenario(ProviderType::SharePoint)),
        ("Google Drive", ProviderType::GDrive, RemoteTree::scenario(ProviderType::GDrive)),
        ("Dropbox", ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)),
        ("Box", ProviderType::Box, RemoteTree::scenario(ProviderType::Box)),
    ]
}

const SCENARIO_FILES: [&str; 4] =
    ["Scenarios/baseline.qsim", "factory-line.qsim", "throughput-results.csv", "warehouse-layout.qsim"];

#[tokio::test]
async fn every_provider_first_sync_stores_the_subtree_with_the_providers_hash() {
    for (name, provider, tree) in every_provider() {
        // Arrange
        let w = world(provider, tree).await;
        let job = w.job(JobType::Download, None).await;

        // Act
        let (ran, _) = w.run_to_end(&job).await;

        // Assert
        assert_eq!(ran, Ran::Completed, "{name}: {:?}", w.errors().await);
        let files = w.files().await;
        let paths: Vec<_> = files.iter().map(|f| f.file_path.clone().unwrap()).collect();
        let mut expected: Vec<&str> = SCENARIO_FILES.to_vec();
        if provider == ProviderType::GDrive {
            expected.insert(0, "Model assumptions");
        }
        assert_eq!(paths, expected, "{name}: the subtree's files, nothing from /Elsewhere");
        let alg = HashAlg::for_provider(provider);
        for file in &files {
            let remote = w.tree.expect(file.file_path.as_deref().unwrap());
            let meta = file.file_metadata.as_ref().unwrap();
            assert_eq!(file.provider_file_id, remote.id, "{name}");
            assert_eq!(file.sync_status, SyncStatus::Synced, "{name}: {}", file.file_name);
            if file.file_name == "Model assumptions" {
                assert_eq!(meta["downloadable"], json!(false), "{name}: a Google Doc has no bytes");
                assert!(meta.get("object_key").is_none(), "{name}: and nothing is stored for it");
                continue;
            }
            let hash = file.content_hash.as_deref().unwrap_or_else(|| panic!("{name}: {} has a hash", file.file_name));
            assert_eq!(hash.len(), alg.hex_len(), "{name}: {} is {}", file.file_name, alg.name());
            assert_eq!(Some(hash), remote.hash.as_deref(), "{name}: the provider's value, lowercase hex");
            assert_eq!(hash, hash.to_ascii_lowercase(), "{name}");
            assert_eq!(meta["hash_alg"], json!(alg.name()), "{name}");
            assert_eq!(file.file_size_bytes, remote.size, "{name}");
            assert_eq!(w.stored_bytes(file), remote.content, "{name}: {} in Quodsi's store", file.file_name);
        }
        assert_eq!(w.downloads().await, 4, "{name}: each file's bytes fetched once, the Google Doc's never");
        assert!(w.cursor().await.is_some(), "{name}: the change cursor is kept");
        assert!(w.errors().await.is_empty(), "{name}: {:?}", w.errors().await);
    }
}

#[tokio::test]
async fn every_provider_later_sync_applies_edits_additions_renames_moves_out_and_deletes() {
    for (name, provider, tree) in every_provider() {
        // Arrange: a first sync, then at the provider: an edit, a new file, a rename inside the
        // folder, a file moved out of it and a deletion.
        let w = world(provider, tree).await;
        assert_eq!(w.run_to_end(&w.job(JobType::Download, None).await).await.0, Ran::Completed, "{name}");
        let renamed_before = w.file("warehouse-layout.qsim").await.unwrap();
        let old_copy =
            w.t.objects_dir().join(renamed_before.file_metadata.as_ref().unwrap()["object_key"].as_str().unwrap());
        let downloads_before = w.downloads().await;
        w.tree.modify("factory-line.qsim", b"a new version of the line\n".repeat(100));
        w.tree.add_file("Scenarios/line-2.qsim", b"line two\n".repeat(50));
        w.tree.rename("warehouse-layout.qsim", "warehouse-v2.qsim");
        w.tree.move_to("Scenarios/baseline.qsim", "/Elsewhere");
        w.tree.delete("throughput-results.csv");
        let job = w.job(JobType::Download, None).await;

        // Act
        let (ran, _) = w.run_to_end(&job).await;

        // Assert
        assert_eq!(ran, Ran::Completed, "{name}: {:?}", w.errors().await);
        let files = w.files().await;
        let paths: Vec<_> = files.iter().map(|f| f.file_path.clone().unwrap()).collect();
        let mut expected = vec!["Scenarios/line-2.qsim", "factory-line.qsim", "warehouse-v2.qsim"];
        if provider == ProviderType::GDrive {
            expected.insert(0, "Model assumptions");
        }
        assert_eq!(paths, expected, "{name}: moved out and deleted are gone, the rename followed");
        assert_eq!(w.downloads().await - downloads_before, 2, "{name}: the edited and the new file only");
        let edited = w.file("factory-line.qsim").await.unwrap();
        assert_eq!(w.stored_bytes(&edited), b"a new version of the line\n".repeat(100), "{name}");
        assert_eq!(edited.content_hash, w.tree.expect("factory-line.qsim").hash, "{name}");
        let renamed = w.file("warehouse-v2.qsim").await.unwrap();
        assert_eq!(renamed.base.id, renamed_before.base.id, "{name}: the same row, renamed");
        let key = renamed.file_metadata.as_ref().unwrap()["object_key"].as_str().unwrap().to_owned();
        assert!(key.ends_with("/warehouse-v2.qsim"), "{name}: the copy follows the name: {key}");
        assert_eq!(w.stored_bytes(&renamed), w.tree.expect("warehouse-v2.qsim").content, "{name}");
        assert!(!old_copy.exists(), "{name}: no copy left under the old name");
        let done = w.t.store().get_job(w.tenant.id, job.base.id).await.unwrap();
        assert_eq!((done.files_total, done.files_processed), (Some(2), 2), "{name}");
        assert!(w.errors().await.is_empty(), "{name}: {:?}", w.errors().await);
    }
}

#[tokio::test]
async fn a_download_whose_bytes_do_not_match_the_listed_hash_is_not_kept_and_is_fetched_again_next_time() {
    // Arrange: Box (SHA-1); the first download of one file arrives corrupted.
    let w = world(ProviderType::Box, RemoteTree::scenario(ProviderType::Box)).await;
    w.tree.corrupt_next_download("factory-line.qsim", b"not the file at all".to_vec());
    let first = w.job(JobType::Download, None).await;

    // Act
    let (first_ran, _) = w.run_to_end(&first).await;
    let bad = w.file("factory-line.qsim").await.unwrap();
    let errors = w.errors().await;
    let on_disk = testkit::files_under(&w.t.objects_dir());
    let second = w.job(JobType::Download, None).await;
    let (second_ran, _) = w.run_to_end(&second).await;

    // Assert
    assert_eq!(first_ran, Ran::Completed, "one file's failure does not stop the job");
    assert_eq!(bad.sync_status, SyncStatus::Error);
    assert!(bad.file_metadata.as_ref().unwrap().get("object_key").is_none(), "the corrupted bytes were not kept");
    assert!(!on_disk.iter().any(|p| p.ends_with("factory-line.qsim")), "{on_disk:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].error_code.as_deref(), errors[0].file_id), (Some("hash_mismatch"), Some(bad.base.id)));
    assert!(errors[0].error_message.contains("factory-line.qsim"), "{}", errors[0].error_message);
    assert_eq!(second_ran, Ran::Completed);
    let good = w.file("factory-line.qsim").await.unwrap();
    assert_eq!(good.sync_status, SyncStatus::Synced);
    assert_eq!(w.stored_bytes(&good), w.tree.expect("factory-line.qsim").content);
    assert_eq!(w.downloads().await, 5, "four files, one of them twice");
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_and_the_job_goes_on() {
    // Arrange: the provider refuses the stored access token once.
    let w = world(ProviderType::GDrive, RemoteTree::scenario(ProviderType::GDrive)).await;
    w.tree.inject(Endpoint::Children, Fault::Unauthorized);
    let before = w.t.store().get_connection(w.tenant.id, w.connection.base.id).await.unwrap();
    let job = w.job(JobType::Download, None).await;

    // Act
    let (ran, _) = w.run_to_end(&job).await;

    // Assert
    assert_eq!(ran, Ran::Completed, "{:?}", w.errors().await);
    assert!(w.tree.faults_served());
    assert_eq!(w.refreshes().await, 1, "one refresh for the whole job");
    let after = w.t.store().get_connection(w.tenant.id, w.connection.base.id).await.unwrap();
    assert_eq!(after.status, ConnectionStatus::Active);
    assert_ne!(after.encrypted_access_token, before.encrypted_access_token, "the new token was stored");
    assert_eq!(w.files().await.len(), 5);
}

#[tokio::test]
async fn a_refused_grant_fails_the_job_with_an_auth_error_and_ends_the_connection() {
    // Arrange: the access token is refused and so is the refresh token.
    let w = world(ProviderType::Box, RemoteTree::scenario(ProviderType::Box)).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(invalid_grant(ProviderType::Box)))
        .mount(&w.server)
        .await;
    w.tree.inject(Endpoint::Children, Fault::Unauthorized);
    let job = w.job(JobType::Download, None).await;

    // Act
    let (ran, _) = w.run_to_end(&job).await;

    // Assert
    assert_eq!(ran, Ran::Failed);
    assert_eq!(w.refreshes().await, 1, "refused once, not retried");
    let failed = w.t.store().get_job(w.tenant.id, job.base.id).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    let connection = w.t.store().get_connection(w.tenant.id, w.connection.base.id).await.unwrap();
    assert_eq!(connection.status, ConnectionStatus::Revoked, "as token-refresh treats Box's invalid_grant");
    let errors = w.errors().await;
    assert!(
        errors.iter().any(|e| e.error_type == ErrorType::Auth && e.error_code.as_deref() == Some("invalid_grant")),
        "{errors:?}"
    );
    assert!(w.files().await.is_empty(), "nothing was listed");
}

#[tokio::test]
async fn a_write_only_folder_is_never_read() {
    // Arrange
    let w = world_with(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox), |f| {
        f.folder_permissions = FolderPermissions::WriteOnly;
    })
    .await;
    let job = w.job(JobType::Download, None).await;

    // Act
    let ran = w.run(&job).await;

    // Assert
    assert_eq!(ran, Ran::Failed);
    assert_eq!(w.errors().await[0].error_code.as_deref(), Some("folder_write_only"));
    assert_eq!(w.downloads().await, 0);
    let requests = w.server.received_requests().await.unwrap_or_default();
    assert!(requests.is_empty(), "not one call to the provider: {requests:?}");
    assert!(w.files().await.is_empty());
}

#[tokio::test]
async fn a_crashed_workers_job_waits_for_its_lease_then_continues_from_its_checkpoint() {
    // Arrange: a short lease; the first worker lists the folder, then dies while it waits out
    // a throttled download.
    let w = world(ProviderType::Dropbox, RemoteTree::scenario(ProviderType::Dropbox)).await;
    w.tree.inject(Endpoint::Download, Fault::RateLimited { retry_after_secs: 2 });
    let quick = Settings {
        lease: Duration::from_secs(1),
        heartbeat: Duration::from_millis(1),
        max_inline_wait: Duration::from_secs(5),
        ..settings()
    };
    let job = w.job(JobType::Download, None).await;
    let crashed = tokio::time::timeout(
        Duration::from_millis(700),
        sync_worker::engine::run(&w.t.app, &quick, w.message(&job), None),
    )
    .await;
    assert!(crashed.is_err(), "the first run was cut off mid-job");
    let listings = listing_calls(&w).await;

    // Act
    let too_soon = sync_worker::engine::run(&w.t.app, &quick, w.message(&job), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let resumed = sync_worker::engine::run(&w.t.app, &quick, w.message(&job), None).await.unwrap();

    // Assert
    assert_eq!(too_soon, Ran::NotClaimed, "the lease still held the job");
    assert_eq!(resumed, Ran::Completed);
    assert_eq!(listing_calls(&w).await, listings, "the listing was not repeated: the checkpoint had it");
    assert_eq!(w.downloads().await, 4);
    assert!(w.files().await.iter().all(|f| f.sync_status == SyncStatus::Synced));
}

/// Dropbox listing calls so far (first pages and continuations).
async fn listing_calls(w: &World) -> usize {
    let requests = w.server.received_requests().await.unwrap_or_default();
    requests.iter().filter(|r| r.url.path().starts_with("/2/files/list_folder")).count()
}

#[tokio::test]
async fn a_folder_of_another_sharepoint_library_syncs_there_and_follows_its_changes() {
    // Arrange: the folder configured by the id the picker hands out for a library that is not
    // the connection's own (`{drive-id}:{item-id}`).
    let tree = RemoteTree::scenario(ProviderType::SharePoint);
    let synced = tree.synced_folder_id();
    let w = world_with(ProviderType::SharePoint, tree, |f| {
        f.provider_folder_id = format!("{OTHER_LIBRARY}:{synced}");
    })
    .await;

    // Act: a first sync, a change at the provider, a second sync.
    let first = w.run_to_end(&w.job(JobType::Download, None).await).await.0;
    w.tree.modify("factory-line.qsim", b"a new version of the line\n".repeat(100));
    let second = w.run_to_end(&w.job(JobType::Download, None).await).await.0;

    // Assert
    assert_eq!((first, second), (Ran::Completed, Ran::Completed), "{:?}", w.errors().await);
    let files = w.files().await;
    assert_eq!(files.iter().map(|f| f.file_path.clone().unwrap()).collect::<Vec<_>>(), SCENARIO_FILES);
    for file in &files {
        let remote = w.tree.expect(file.file_path.as_deref().unwrap());
        assert_eq!(file.provider_file_id, format!("{OTHER_LIBRARY}:{}", remote.id), "ids carry the library");
        assert_eq!(w.stored_bytes(file), remote.content, "{}", file.file_name);
    }
    let requests = w.server.received_requests().await.unwrap();
    let graph: Vec<&str> = requests.iter().map(|r| r.url.path()).filter(|p| p.starts_with("/v1.0/")).collect();
    assert!(
        graph.iter().all(|p| p.starts_with(&format!("/v1.0/drives/{OTHER_LIBRARY}/"))),
        "every call addressed the folder's library: {graph:?}"
    );
    assert_eq!(w.downloads().await, 5, "four files, then the one that changed");
}
