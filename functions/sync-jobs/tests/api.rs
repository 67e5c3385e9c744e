//! The sync-jobs API through its real router, fed API Gateway events from `events/sync-jobs/`.

use std::collections::HashSet;

use serde_json::{Value, json};
use shared::db::{ConnectionPatch, ConnectionStatus, FolderId, FolderPermissions, JobId, JobStatus, JobUpdate};
use testkit::http::{ApiEvent, Reply, TestApp, call};
use testkit::{Graph, Tenant, new_connection, new_folder, new_job};
use uuid::Uuid;

/// A folder of a fresh active connection, with no job yet.
async fn folder(t: &TestApp, tenant: &Tenant, permissions: FolderPermissions) -> FolderId {
    let conn = t.store().create_connection(&new_connection(tenant)).await.unwrap().base.id;
    let mut f = new_folder(tenant, conn);
    f.folder_permissions = permissions;
    t.store().create_folder(&f).await.unwrap().base.id
}

fn create(t: &Tenant, folder_id: impl std::fmt::Display, job_type: &str) -> ApiEvent {
    ApiEvent::load("sync-jobs/create")
        .caller(t)
        .json(&json!({"folder_id": folder_id.to_string(), "job_type": job_type}))
}

fn at(name: &str, t: &Tenant, id: impl std::fmt::Display) -> ApiEvent {
    ApiEvent::load(&format!("sync-jobs/{name}")).caller(t).path(&format!("/sync-jobs/{id}"))
}

fn patch(t: &Tenant, id: impl std::fmt::Display, body: Value) -> ApiEvent {
    at("patch", t, id).json(&body)
}

fn cancel(t: &Tenant, id: impl std::fmt::Display) -> ApiEvent {
    ApiEvent::load("sync-jobs/cancel").caller(t).path(&format!("/sync-jobs/{id}/cancel"))
}

/// Puts an object of the tenant's into the local object store (what an export names).
fn put_object(t: &TestApp, tenant: &Tenant, key: &str, content: &[u8]) {
    let path = t.objects_dir().join(format!("{}/{key}", tenant.id));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn id_of(reply: &Reply) -> JobId {
    reply.body["id"].as_str().unwrap_or_else(|| panic!("no id in {}", reply.text)).parse().unwrap()
}

#[tokio::test]
async fn the_event_file_starts_a_pending_job_initiated_by_the_caller() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let folder_id = folder(&t, &a, FolderPermissions::ReadWrite).await;
    let event = ApiEvent::load("sync-jobs/create").caller(&a);
    let mut body: Value = serde_json::from_str(event.0["body"].as_str().unwrap()).unwrap();
    body["folder_id"] = json!(folder_id.to_string());
    put_object(&t, &a, "exports/run-42/results.csv", b"run,throughput\n42,118.5\n");

    // Act
    let reply = call(&router, &event.json(&body)).await;

    // Assert
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["status"], "pending");
    assert_eq!(reply.body["job_type"], "export");
    assert_eq!(reply.body["initiated_by_user_id"], json!(a.user.to_string()));
    assert_eq!(reply.body["tenant_id"], json!(a.id.to_string()));
    assert_eq!(reply.body["job_metadata"]["objects"][0]["key"], "exports/run-42/results.csv");
    assert_eq!(reply.body["job_metadata"]["model_id"], "b3c1d2e4-5f60-4718-9a2b-3c4d5e6f7081", "other keys kept");
    assert_eq!(reply.body["progress_percentage"], 0.0);
    assert!(reply.body["started_at"].is_null() && reply.body["completed_at"].is_null());
    let stored = t.store().get_job(a.id, id_of(&reply)).await.unwrap();
    assert_eq!(stored.status, JobStatus::Pending);
}

#[tokio::test]
async fn a_folder_has_at_most_one_live_job() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let folder_id = folder(&t, &a, FolderPermissions::ReadWrite).await;

    // Act
    let first = call(&router, &create(&a, folder_id, "upload")).await;
    let second = call(&router, &create(&a, folder_id, "download")).await;
    call(&router, &patch(&a, id_of(&first), json!({"status": "running"}))).await;
    let while_running = call(&router, &create(&a, folder_id, "download")).await;
    call(&router, &patch(&a, id_of(&first), json!({"status": "completed"}))).await;
    let after = call(&router, &create(&a, folder_id, "download")).await;

    // Assert
    assert_eq!(first.status, 201, "{}", first.text);
    for r in [&second, &while_running] {
        assert_eq!((r.status, r.error_code()), (409, "conflict"), "{}", r.text);
        assert_eq!(r.error_field(), Some("folder_id"));
    }
    assert_eq!(after.status, 201, "a finished job frees the folder: {}", after.text);
}

// Two worker threads and spawned requests, so the two inserts really overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_starts_on_one_folder_create_one_job() {
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let folder_id = folder(&t, &a, FolderPermissions::ReadWrite).await;
    let spawn = |event: ApiEvent| {
        let router = router.clone();
        tokio::spawn(async move { call(&router, &event).await })
    };

    let (x, y) = (spawn(create(&a, folder_id, "upload")), spawn(create(&a, folder_id, "upload")));
    let (rx, ry) = tokio::join!(x, y);
    let (rx, ry) = (rx.unwrap(), ry.unwrap());

    let mut statuses = [rx.status, ry.status];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{} / {}", rx.text, ry.text);
    let listed =
        call(&router, &ApiEvent::load("sync-jobs/list").caller(&a).query(&format!("folder_id={folder_id}"))).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_job_type_must_fit_the_folders_permissions() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let read_only = folder(&t, &a, FolderPermissions::ReadOnly).await;
    let write_only = folder(&t, &a, FolderPermissions::WriteOnly).await;
    let refused = [
        (read_only, "upload"),
        (read_only, "export"),
        (read_only, "bidirectional"),
        (write_only, "download"),
        (write_only, "import"),
        (write_only, "bidirectional"),
    ];

    for (folder_id, job_type) in refused {
        // Act: each a well-formed request (an import names its files), refused only for the folder.
        let mut body = json!({"folder_id": folder_id.to_string(), "job_type": job_type});
        if job_type == "import" {
            body["job_metadata"] = json!({"file_ids": ["id:a-file"]});
        }
        let reply = call(&router, &ApiEvent::load("sync-jobs/create").caller(&a).json(&body)).await;

        // Assert
        assert_eq!((reply.status, reply.error_code()), (409, "folder_permissions"), "{job_type}: {}", reply.text);
        assert_eq!(reply.error_field(), Some("job_type"));
        assert!(reply.body["error"]["message"].as_str().unwrap().contains(job_type));
    }
    let listed = call(&router, &ApiEvent::load("sync-jobs/list").caller(&a).query("")).await;
    assert_eq!(listed.body["items"], json!([]), "nothing written");
    let download = call(&router, &create(&a, read_only, "download")).await;
    put_object(&t, &a, "exports/results.csv", b"run,throughput\n");
    let export_body = json!({
        "folder_id": write_only.to_string(), "job_type": "export",
        "job_metadata": {"objects": [{"key": "exports/results.csv"}]},
    });
    let export = call(&router, &ApiEvent::load("sync-jobs/create").caller(&a).json(&export_body)).await;
    assert_eq!((download.status, export.status), (201, 201), "{} / {}", download.text, export.text);
}

#[tokio::test]
async fn the_folder_must_be_the_callers_live_folder_on_an_active_connection() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    let theirs = folder(&t, &b, FolderPermissions::ReadWrite).await;
    let deleted = folder(&t, &a, FolderPermissions::ReadWrite).await;
    t.store().delete_folder(a.id, deleted).await.unwrap();
    let on_expired = folder(&t, &a, FolderPermissions::ReadWrite).await;
    let conn = t.store().get_folder(a.id, on_expired).await.unwrap().connection_id;
    let expire = ConnectionPatch { status: Some(ConnectionStatus::Expired), ..Default::default() };
    t.store().update_connection(a.id, conn, &expire).await.unwrap();

    // Act
    let other_tenant = call(&router, &create(&a, theirs, "upload")).await;
    let unknown = call(&router, &create(&a, Uuid::new_v4(), "upload")).await;
    let gone = call(&router, &create(&a, deleted, "upload")).await;
    let inactive = call(&router, &create(&a, on_expired, "upload")).await;

    // Assert
    for r in [&other_tenant, &unknown, &gone] {
        assert_eq!((r.status, r.error_code(), r.error_field()), (404, "not_found", Some("folder_id")), "{}", r.text);
    }
    assert_eq!((inactive.status, inactive.error_code()), (409, "connection_not_active"), "{}", inactive.text);
    let mine = call(&router, &ApiEvent::load("sync-jobs/list").caller(&a).query("")).await;
    let others = call(&router, &ApiEvent::load("sync-jobs/list").caller(&b).query("")).await;
    assert_eq!((mine.body["items"].clone(), others.body["items"].clone()), (json!([]), json!([])), "nothing written");
}

#[tokio::test]
async fn invalid_create_bodies_are_a_400_naming_the_field() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let folder_id = folder(&t, &a, FolderPermissions::ReadWrite).await;
    let with = |key: &str, value: Value| {
        let mut b = json!({"folder_id": folder_id.to_string(), "job_type": "upload"});
        b[key] = value;
        ApiEvent::load("sync-jobs/create").caller(&a).json(&b)
    };
    let cases = [
        (with("job_type", json!("sync")), "job_type"),
        (with("job_type", json!("Upload")), "job_type"),
        (with("job_type", Value::Null), "job_type"),
        (with("folder_id", json!("folder-1")), "folder_id"),
        (with("job_metadata", json!([1, 2])), "job_metadata"),
        (with("job_metadata", json!("text")), "job_metadata"),
        (with("job_metadata", json!({"checkpoint": {"stage": "push"}})), "job_metadata.checkpoint"),
        (with("job_metadata", json!({"model_id": "m-1", "checkpoint": null})), "job_metadata.checkpoint"),
        (ApiEvent::load("sync-jobs/create").caller(&a).json(&json!({"job_type": "upload"})), "folder_id"),
    ];

    for (event, field) in cases {
        // Act
        let reply = call(&router, &event).await;

        // Assert
        assert_eq!((reply.status, reply.error_field()), (400, Some(field)), "{}", reply.text);
    }
    for key in ["tenant_id", "initiated_by_user_id", "status", "id", "started_at"] {
        let reply = call(&router, &with(key, json!(Uuid::new_v4().to_string()))).await;
        assert_eq!(reply.status, 400, "{key} is not accepted in a body: {}", reply.text);
    }
    let malformed = call(
        &router,
        &ApiEvent::load("sync-jobs/create").caller(&a).raw_body("{\"job_type\"", Some("application/json")),
    )
    .await;
    assert_eq!((malformed.status, malformed.error_code()), (400, "malformed_json"));
    let listed = call(&router, &ApiEvent::load("sync-jobs/list").caller(&a).query("")).await;
    assert_eq!(listed.body["items"], json!([]), "nothing written");
}

#[tokio::test]
async fn a_job_runs_reports_progress_and_completes_stamping_the_folder_and_connection() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let id = g.job.base.id;

    // Act
    let early_progress = call(&router, &patch(&a, id, json!({"progress_percentage": 10}))).await;
    let running = call(&router, &ApiEvent::load("sync-jobs/patch").caller(&a).path(&format!("/sync-jobs/{id}"))).await;
    let progress = call(&router, &patch(&a, id, json!({"progress_percentage": 99.99, "files_processed": 40}))).await;
    let completed = call(
        &router,
        &patch(&a, id, json!({"status": "completed", "progress_percentage": 100, "bytes_transferred": 4096})),
    )
    .await;
    let read = call(&router, &at("get", &a, id)).await;

    // Assert
    assert_eq!((early_progress.status, early_progress.error_code()), (409, "invalid_state"), "{}", early_progress.text);
    assert_eq!(running.status, 200, "{}", running.text);
    assert_eq!(running.body["status"], "running");
    assert_eq!(running.body["progress_percentage"], 42.5);
    assert_eq!((running.body["files_processed"].clone(), running.body["files_total"].clone()), (json!(17), json!(40)));
    assert!(running.body["started_at"].is_string(), "the transition to running stamps started_at");
    assert!(running.body["completed_at"].is_null());
    assert_eq!(progress.status, 200, "{}", progress.text);
    assert_eq!(progress.body["progress_percentage"], 99.99);
    assert_eq!(progress.body["started_at"], running.body["started_at"], "started_at is stamped once");
    assert_eq!(completed.status, 200, "{}", completed.text);
    assert_eq!(completed.body["status"], "completed");
    assert_eq!(completed.body["bytes_transferred"], 4096);
    let completed_at = completed.body["completed_at"].as_str().expect("completion stamps completed_at").to_owned();
    assert_eq!(read.body, completed.body);
    let folder = t.store().get_folder(a.id, g.folder.base.id).await.unwrap();
    let connection = t.store().get_connection(a.id, g.connection.base.id).await.unwrap();
    let stamp = |d: Option<chrono::DateTime<chrono::Utc>>| serde_json::to_value(d).unwrap();
    assert_eq!(stamp(folder.last_sync_at), json!(completed_at), "the folder records the sync");
    assert_eq!(stamp(connection.last_sync_at), json!(completed_at), "and so does its connection");
}

/// A job of a fresh folder, taken through the legal transitions to `status`.
async fn job_in(t: &TestApp, a: &Tenant, status: JobStatus) -> JobId {
    let folder_id = folder(t, a, FolderPermissions::ReadWrite).await;
    let id = t.store().create_job(&new_job(a, folder_id)).await.unwrap().base.id;
    let path: &[JobStatus] = match status {
        JobStatus::Pending => &[],
        JobStatus::Running => &[JobStatus::Running],
        JobStatus::Cancelled => &[JobStatus::Cancelled],
        s => &[JobStatus::Running, s],
    };
    for s in path {
        t.store().update_job(a.id, id, &JobUpdate { status: Some(*s), ..Default::default() }).await.unwrap();
    }
    id
}

#[tokio::test]
async fn the_workers_checkpoint_is_kept_but_never_shown() {
    // Arrange: two running jobs whose metadata the worker has checkpointed, one with the
    // client's keys beside the checkpoint, one with the checkpoint alone.
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let checkpoint = json!({"stage": "download", "cursor_to_keep": "https://graph.microsoft.com/v1.0/me/drive/root/delta?token=abc"});
    let (with_keys, alone) = (job_in(&t, &a, JobStatus::Running).await, job_in(&t, &a, JobStatus::Running).await);
    for (id, metadata) in [
        (with_keys, json!({"model_id": "m-1", "file_ids": ["id:1"], "checkpoint": checkpoint})),
        (alone, json!({"checkpoint": checkpoint})),
    ] {
        let update = JobUpdate { job_metadata: Some(Some(metadata)), ..Default::default() };
        t.store().update_job(a.id, id, &update).await.unwrap();
    }

    // Act
    let read = call(&router, &at("get", &a, with_keys)).await;
    let read_alone = call(&router, &at("get", &a, alone)).await;
    let listed = call(&router, &ApiEvent::load("sync-jobs/list").caller(&a).query("")).await;
    let patched = call(&router, &patch(&a, with_keys, json!({"files_processed": 1}))).await;

    // Assert
    let client_keys = json!({"model_id": "m-1", "file_ids": ["id:1"]});
    assert_eq!((read.status, &read.body["job_metadata"]), (200, &client_keys), "{}", read.text);
    assert_eq!(read_alone.status, 200, "{}", read_alone.text);
    let alone_metadata = read_alone.body.get("job_metadata");
    assert_eq!(alone_metadata, Some(&Value::Null), "a checkpoint alone reads as no metadata: {}", read_alone.text);
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(2), "{}", listed.text);
    assert!(!listed.text.contains("cursor_to_keep") && !listed.text.contains("checkpoint"), "{}", listed.text);
    assert_eq!((patched.status, &patched.body["job_metadata"]), (200, &client_keys), "{}", patched.text);
    let stored = t.store().get_job(a.id, with_keys).await.unwrap();
    assert_eq!(stored.job_metadata.unwrap()["checkpoint"], checkpoint, "the worker still reads it");
}

#[tokio::test]
async fn illegal_transitions_are_a_409_and_change_nothing() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let store = t.store();
    let mut cases = Vec::new();
    for (from, to) in [
        (JobStatus::Pending, "pending"),
        (JobStatus::Pending, "completed"),
        (JobStatus::Pending, "failed"),
        (JobStatus::Running, "pending"),
        (JobStatus::Completed, "running"),
        (JobStatus::Completed, "failed"),
        (JobStatus::Completed, "cancelled"),
        (JobStatus::Failed, "running"),
        (JobStatus::Failed, "completed"),
        (JobStatus::Cancelled, "running"),
        (JobStatus::Cancelled, "cancelled"),
    ] {
        cases.push((job_in(&t, &a, from).await, from, to));
    }

    for (id, from, to) in cases {
        // Act
        let reply = call(&router, &patch(&a, id, json!({"status": to}))).await;

        // Assert
        assert_eq!((reply.status, reply.error_code()), (409, "invalid_state"), "{from} → {to}: {}", reply.text);
        assert_eq!(store.get_job(a.id, id).await.unwrap().status, from, "nothing written");
    }
}

#[tokio::test]
async fn cancelling_works_on_live_jobs_only() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let pending = Graph::create(t.store(), &a).await.job.base.id;
    let running = Graph::create(t.store(), &a).await.job.base.id;
    call(&router, &patch(&a, running, json!({"status": "running"}))).await;
    let failed = Graph::create(t.store(), &a).await.job.base.id;
    call(&router, &patch(&a, failed, json!({"status": "running"}))).await;
    let failure =
        call(&router, &patch(&a, failed, json!({"status": "failed", "error_message": "quota exceeded"}))).await;

    // Act
    let cancelled_pending = call(&router, &cancel(&a, pending)).await;
    let cancelled_running = call(&router, &cancel(&a, running)).await;
    let again = call(&router, &cancel(&a, pending)).await;
    let after_failure = call(&router, &cancel(&a, failed)).await;

    // Assert
    assert_eq!(failure.body["error_message"], "quota exceeded");
    assert!(failure.body["completed_at"].is_string(), "failing stamps completed_at");
    for r in [&cancelled_pending, &cancelled_running] {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["status"], "cancelled");
        assert!(r.body["completed_at"].is_string());
    }
    assert!(cancelled_pending.body["started_at"].is_null(), "a job cancelled before it ran never started");
    for r in [&again, &after_failure] {
        assert_eq!((r.status, r.error_code()), (409, "invalid_state"), "{}", r.text);
    }
    assert_eq!(t.store().get_job(a.id, failed).await.unwrap().status, JobStatus::Failed);
}

#[tokio::test]
async fn invalid_progress_reports_are_a_400_naming_the_field_and_write_nothing() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let id = Graph::create(t.store(), &a).await.job.base.id;
    call(&router, &patch(&a, id, json!({"status": "running", "files_total": 10, "files_processed": 2}))).await;
    let before = t.store().get_job(a.id, id).await.unwrap();
    let cases = [
        (json!({"status": "done"}), "status"),
        (json!({"status": null}), "status"),
        (json!({"progress_percentage": 100.5}), "progress_percentage"),
        (json!({"progress_percentage": -1}), "progress_percentage"),
        (json!({"progress_percentage": "50"}), "progress_percentage"),
        (json!({"files_processed": -1}), "files_processed"),
        (json!({"files_processed": 11}), "files_processed"),
        (json!({"files_total": 1}), "files_total"),
        (json!({"files_total": -3}), "files_total"),
        (json!({"bytes_transferred": -1}), "bytes_transferred"),
        (json!({"bytes_transferred": null}), "bytes_transferred"),
        (json!({"error_message": "e".repeat(4001)}), "error_message"),
    ];

    for (body, field) in cases {
        // Act
        let reply = call(&router, &patch(&a, id, body.clone())).await;

        // Assert
        assert_eq!((reply.status, reply.error_field()), (400, Some(field)), "{body}: {}", reply.text);
    }
    for key in ["tenant_id", "folder_id", "job_type", "started_at", "completed_at", "job_metadata"] {
        let reply = call(&router, &patch(&a, id, json!({ key: "x" }))).await;
        assert_eq!(reply.status, 400, "{key}: {}", reply.text);
    }
    let bad_id = call(&router, &patch(&a, "nope", json!({"status": "running"}))).await;
    assert_eq!((bad_id.status, bad_id.error_field()), (400, Some("id")));
    assert_eq!(t.store().get_job(a.id, id).await.unwrap(), before, "nothing written");
    let cleared = call(&router, &patch(&a, id, json!({"files_total": null, "files_processed": 12}))).await;
    assert_eq!(cleared.status, 200, "null clears files_total, lifting the bound: {}", cleared.text);
    assert!(cleared.body["files_total"].is_null());
}

#[tokio::test]
async fn another_tenants_job_is_not_found_on_every_route() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;
    let id = g.job.base.id;

    // Act
    let read = call(&router, &at("get", &b, id)).await;
    let patched = call(&router, &patch(&b, id, json!({"status": "running"}))).await;
    let cancelled = call(&router, &cancel(&b, id)).await;
    let listed =
        call(&router, &ApiEvent::load("sync-jobs/list").caller(&b).query(&format!("folder_id={}", g.folder.base.id)))
            .await;
    let unknown =
        call(&router, &ApiEvent::load("sync-jobs/list").caller(&b).query(&format!("folder_id={}", Uuid::new_v4())))
            .await;

    // Assert
    for r in [&read, &patched, &cancelled] {
        assert_eq!((r.status, r.error_code()), (404, "not_found"), "{}", r.text);
    }
    // A list filter naming another tenant's or an unknown folder is a 404 too (it was an
    // empty 200 page).
    for r in [&listed, &unknown] {
        assert_eq!((r.status, r.error_code(), r.error_field()), (404, "not_found", Some("folder_id")), "{}", r.text);
    }
    assert_eq!(t.store().get_job(a.id, id).await.unwrap(), g.job, "nothing written");
}

#[tokio::test]
async fn pages_return_every_job_exactly_once_and_filters_apply() {
    // Arrange
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    Graph::create(t.store(), &b).await;
    let mut expected = HashSet::new();
    let mut running = HashSet::new();
    for i in 0..7 {
        let folder_id = folder(&t, &a, FolderPermissions::ReadWrite).await;
        let job = t.store().create_job(&new_job(&a, folder_id)).await.unwrap().base.id;
        if i % 2 == 0 {
            let to_running = JobUpdate { status: Some(JobStatus::Running), ..Default::default() };
            t.store().update_job(a.id, job, &to_running).await.unwrap();
            running.insert(job.to_string());
        }
        expected.insert(job.to_string());
    }

    // Act
    let mut seen = Vec::new();
    let mut query = "limit=3".to_owned();
    let mut pages = 0;
    loop {
        let page = call(&router, &ApiEvent::load("sync-jobs/list").caller(&a).query(&query)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        pages += 1;
        seen.extend(page.body["items"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(c) => query = format!("limit=3&cursor={c}"),
            None => break,
        }
    }
    let only_running = call(&router, &ApiEvent::load("sync-jobs/list").caller(&a).query("status=running")).await;

    // Assert
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), expected);
    let ids: HashSet<String> =
        only_running.body["items"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, running);
    for (query, field) in [("status=done", "status"), ("folder_id=1", "folder_id"), ("limit=500", "limit")] {
        let reply = call(&router, &ApiEvent::load("sync-jobs/list").caller(&a).query(query)).await;
        assert_eq!((reply.status, reply.error_field()), (400, Some(field)), "{}", reply.text);
    }
}

#[tokio::test]
async fn missing_claims_are_401() {
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;

    let no_token = call(&router, &ApiEvent::load("sync-jobs/create").without_authorizer()).await;
    let bad_sub = call(&router, &ApiEvent::load("sync-jobs/list").caller(&a).claim("sub", Some("bob"))).await;

    assert_eq!((no_token.status, no_token.error_code()), (401, "unauthorized"));
    assert_eq!((bad_sub.status, bad_sub.error_code()), (401, "unauthorized"));
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_json_400_naming_it() {
    // Arrange: %FF percent-decodes to a byte that is not UTF-8.
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;

    // Act
    let reply = call(&router, &ApiEvent::load("sync-jobs/cancel").caller(&a).path("/sync-jobs/%C3%28/cancel")).await;

    // Assert: the JSON envelope naming the parameter, not axum's plain-text rejection.
    assert_eq!(
        (reply.status, reply.error_code(), reply.error_field()),
        (400, "invalid_field", Some("id")),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn an_export_without_a_folder_goes_to_the_connections_default_export_folder() {
    // Arrange: a connection with a default export folder, one without, another tenant's.
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let (a, b) = (t.tenant().await, t.tenant().await);
    let with = t.store().create_connection(&new_connection(&a)).await.unwrap().base.id;
    let mut exports = new_folder(&a, with);
    exports.is_default_export_folder = true;
    let exports = t.store().create_folder(&exports).await.unwrap().base.id;
    t.store().create_folder(&new_folder(&a, with)).await.unwrap();
    let without = t.store().create_connection(&new_connection(&a)).await.unwrap().base.id;
    t.store().create_folder(&new_folder(&a, without)).await.unwrap();
    let others = t.store().create_connection(&new_connection(&b)).await.unwrap().base.id;
    put_object(&t, &a, "exports/run-7/summary.csv", b"run,throughput\n7,99.1\n");
    let export = |connection: Uuid| {
        ApiEvent::load("sync-jobs/create").caller(&a).json(&json!({
            "connection_id": connection.to_string(), "job_type": "export",
            "job_metadata": {"objects": [{"key": "exports/run-7/summary.csv", "name": "Run 7 summary.csv"}]},
        }))
    };

    // Act
    let made = call(&router, &export(with.0)).await;
    let none = call(&router, &export(without.0)).await;
    let foreign = call(&router, &export(others.0)).await;
    let no_target = call(
        &router,
        &ApiEvent::load("sync-jobs/create")
            .caller(&a)
            .json(&json!({"job_type": "export", "job_metadata": {"objects": []}})),
    )
    .await;
    let download_by_connection = call(
        &router,
        &ApiEvent::load("sync-jobs/create")
            .caller(&a)
            .json(&json!({"connection_id": with.0.to_string(), "job_type": "download"})),
    )
    .await;

    // Assert
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(made.body["folder_id"], json!(exports.to_string()));
    assert_eq!(
        (none.status, none.error_code(), none.error_field()),
        (409, "no_default_export_folder", Some("folder_id"))
    );
    assert_eq!((foreign.status, foreign.error_field()), (404, Some("connection_id")), "{}", foreign.text);
    assert_eq!((no_target.status, no_target.error_field()), (400, Some("folder_id")), "{}", no_target.text);
    assert_eq!((download_by_connection.status, download_by_connection.error_field()), (400, Some("connection_id")));
    let listed = call(&router, &ApiEvent::load("sync-jobs/list").caller(&a).query("")).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1, "only the first was written");
}

#[tokio::test]
async fn an_exports_objects_are_checked_before_anything_is_written() {
    // Arrange: a OneDrive folder (new_connection's provider) and one object of the tenant's.
    let t = TestApp::new().await;
    let router = sync_jobs::router(t.app.clone());
    let a = t.tenant().await;
    let folder_id = folder(&t, &a, FolderPermissions::ReadWrite).await;
    put_object(&t, &a, "exports/ok.csv", b"ok\n");
    let cases = [
        (json!(null), "job_metadata.objects"),
        (json!({"objects": []}), "job_metadata.objects"),
        (json!({"objects": "exports/ok.csv"}), "job_metadata.objects"),
        (json!({"objects": [{"key": "../other-tenant/secret.csv"}]}), "job_metadata.objects[0].key"),
        (json!({"objects": [{"key": "exports//ok.csv"}]}), "job_metadata.objects[0].key"),
        (json!({"objects": [{"key": "exports/missing.csv"}]}), "job_metadata.objects[0].key"),
        (json!({"objects": [{"key": "exports/ok.csv", "name": "what?.csv"}]}), "job_metadata.objects[0].name"),
        (json!({"objects": [{"key": "exports/ok.csv", "path": "/x"}]}), "job_metadata.objects[0].path"),
        (
            json!({"objects": [{"key": "exports/ok.csv"}, {"key": "exports/ok.csv", "name": "ok.csv"}]}),
            "job_metadata.objects[1].name",
        ),
    ];

    for (metadata, field) in cases {
        // Act
        let body = json!({"folder_id": folder_id.to_string(), "job_type": "export", "job_metadata": metadata});
        let reply = call(&router, &ApiEvent::load("sync-jobs/create").caller(&a).json(&body)).await;

        // Assert
        assert_eq!((reply.status, reply.error_field()), (400, Some(field)), "{metadata}: {}", reply.text);
    }
    let listed = call(&router, &ApiEvent::load("sync-jobs/list").caller(&a).query("")).await;
    assert_eq!(listed.body["items"], json!([]), "nothing written");
}
