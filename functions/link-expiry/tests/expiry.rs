//! link-expiry against SQLite and a fake Google Drive API (wiremock, via the provider's
//! `api_base_url`): which links expire, provider removal and its failures, batches under
//! overlapping invocations, settings, and the Lambda handler fed the EventBridge event.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use lambda_runtime::{Context, LambdaEvent};
use link_expiry::{FUNCTION, Settings, handler, run};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::db::*;
use shared::schedule::Env;
use shared::vault::TokenContext;
use testkit::faults::FaultyBackend;
use testkit::scheduled::{ClockedApp, scheduled_event};
use testkit::{Tenant, new_connection, new_file, new_file_link, new_folder};
use uuid::Uuid;
use wiremock::matchers::{header, method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn providers(server: &MockServer) -> Value {
    let uri = server.uri();
    json!({ "providers": {
        "gdrive": { "client_id": "g", "client_secret": "gs", "api_base_url": uri },
        "onedrive": { "client_id": "m", "client_secret": "ms", "api_base_url": uri },
    }})
}

/// A connection of `provider` with an access token the vault encrypted for it, one folder and
/// one file in it.
async fn drive(t: &ClockedApp, a: &Tenant, provider: ProviderType) -> (Connection, Folder, CloudFile) {
    let s = t.store();
    let mut n = new_connection(a);
    n.provider_type = provider;
    let c = s.create_connection(&n).await.unwrap();
    let vault = &t.app.current().await.unwrap().vault;
    let access = vault.encrypt(TokenContext::access(a.id, c.base.id), &SecretString::from("at-drive".to_owned()));
    s.swap_connection_tokens(a.id, c.base.id, &c.encrypted_access_token, access, None).await.unwrap();
    let folder = s.create_folder(&new_folder(a, c.base.id)).await.unwrap();
    let file = s.create_file(&new_file(a, folder.base.id)).await.unwrap();
    (c, folder, file)
}

async fn file_link(s: &Store, a: &Tenant, file: &CloudFile, share: &str, expires: Option<Duration>) -> SharedLink {
    let mut l = new_file_link(a, file.base.id);
    l.provider_share_id = Some(share.to_owned());
    l.expires_at = expires.map(|d| Utc::now() + d);
    s.create_link(&l).await.unwrap()
}

async fn folder_link(s: &Store, a: &Tenant, folder: &Folder, share: &str, expires: Duration) -> SharedLink {
    let mut l = new_file_link(a, FileId::from(Uuid::nil()));
    l.resource_type = ResourceType::Folder;
    l.file_id = None;
    l.folder_id = Some(folder.base.id);
    l.provider_share_id = Some(share.to_owned());
    l.expires_at = Some(Utc::now() + expires);
    s.create_link(&l).await.unwrap()
}

async fn active(s: &Store, a: &Tenant, link: &SharedLink) -> bool {
    s.get_link(a.id, link.base.id).await.unwrap().is_active
}

async fn errors(s: &Store, a: &Tenant, connection: ConnectionId) -> Vec<SyncError> {
    let filter = SyncErrorFilter { connection_id: Some(connection), ..Default::default() };
    s.list_errors(a.id, &filter, PageRequest::first(200)).await.unwrap().items
}

async fn deletes(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests.iter().filter(|r| r.method.as_str() == "DELETE").map(|r| r.url.path().to_owned()).collect()
}

#[tokio::test]
async fn expired_links_are_deactivated_and_removed_where_the_provider_cannot_expire_them() {
    // Arrange
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path_regex("^/drive/v3/files/[^/]+/permissions/[^/]+$"))
        .and(header("authorization", "Bearer at-drive"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let t = ClockedApp::new(providers(&server)).await;
    let s = t.store();
    let a = t.tenant().await;
    let (_, g_folder, g_file) = drive(&t, &a, ProviderType::GDrive).await;
    let (_, _, m_file) = drive(&t, &a, ProviderType::OneDrive).await;
    let google_file = file_link(s, &a, &g_file, "perm-file", Some(Duration::minutes(-5))).await;
    let google_folder = folder_link(s, &a, &g_folder, "perm-folder", Duration::seconds(-1)).await;
    let onedrive = file_link(s, &a, &m_file, "ms-perm", Some(Duration::hours(-3))).await;
    let unexpired = file_link(s, &a, &g_file, "perm-later", Some(Duration::hours(1))).await;
    let forever = file_link(s, &a, &g_file, "perm-forever", None).await;
    let turned_off = file_link(s, &a, &g_file, "perm-off", Some(Duration::hours(-1))).await;
    s.deactivate_link(a.id, turned_off.base.id).await.unwrap();

    // Act
    let report = run(&t.app, &Settings::default()).await;
    let again = run(&t.app, &Settings::default()).await;

    // Assert
    assert_eq!((report.scanned, report.acted, report.failed), (3, 3, 0), "{report:?}");
    assert_eq!(again.scanned, 0);
    for link in [&google_file, &google_folder, &onedrive] {
        assert!(!active(s, &a, link).await, "{:?} deactivated", link.provider_share_id);
    }
    for link in [&unexpired, &forever] {
        assert!(active(s, &a, link).await, "{:?} left alone", link.provider_share_id);
    }
    let mut removed = deletes(&server).await;
    removed.sort();
    assert_eq!(
        removed,
        vec![
            format!("/drive/v3/files/{}/permissions/perm-file", g_file.provider_file_id),
            format!("/drive/v3/files/{}/permissions/perm-folder", g_folder.provider_folder_id),
        ],
        "only Google links are removed at the provider, each once"
    );
}

#[tokio::test]
async fn a_failed_provider_removal_is_an_error_row_and_the_link_stays_deactivated() {
    // Arrange
    let server = MockServer::start().await;
    Mock::given(method("DELETE")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    let t = ClockedApp::new(providers(&server)).await;
    let s = t.store();
    let a = t.tenant().await;
    let (conn, _, file) = drive(&t, &a, ProviderType::GDrive).await;
    let link = file_link(s, &a, &file, "perm-broken", Some(Duration::minutes(-1))).await;

    // Act
    let report = run(&t.app, &Settings::default()).await;
    let again = run(&t.app, &Settings::default()).await;

    // Assert
    assert_eq!((report.acted, report.failed), (1, 1), "{report:?}");
    assert!(!active(s, &a, &link).await, "the local deactivation stands");
    let errs = errors(s, &a, conn.base.id).await;
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].error_type, ErrorType::Api);
    assert_eq!(errs[0].error_code.as_deref(), Some("500"));
    assert_eq!(errs[0].file_id, Some(file.base.id));
    assert_eq!(errs[0].error_metadata.as_ref().unwrap()["link_id"], json!(link.base.id));
    assert_eq!(again.scanned, 0, "not retried: the link is no longer active");
    assert_eq!(deletes(&server).await.len(), 1);
}

#[tokio::test]
async fn what_the_time_budget_leaves_stays_active_and_unclaimed_for_the_next_run() {
    // Arrange: 6 expired Google links, one removal at a time, 300 ms each, a 500 ms budget.
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(204).set_delay(StdDuration::from_millis(300)))
        .mount(&server)
        .await;
    let t = ClockedApp::new(providers(&server)).await;
    let s = t.store();
    let a = t.tenant().await;
    let (conn, _, file) = drive(&t, &a, ProviderType::GDrive).await;
    let mut links = Vec::new();
    for i in 0..6 {
        links.push(file_link(s, &a, &file, &format!("perm-budget-{i}"), Some(Duration::minutes(-10 + i))).await);
    }
    let tight = Settings { concurrency: 1, time_budget: StdDuration::from_millis(500), ..Settings::default() };

    // Act
    let first = run(&t.app, &tight).await;
    let mut still_active = 0;
    for link in &links {
        still_active += usize::from(active(s, &a, link).await);
    }
    let second = run(&t.app, &Settings::default()).await;

    // Assert
    assert!(first.acted >= 1 && first.acted < 6, "{first:?}");
    assert_eq!(first.failed, 0, "{first:?}");
    assert_eq!(first.skipped, 6 - first.acted, "links not reached are left alone: {first:?}");
    assert_eq!(still_active as u64, 6 - first.acted, "and stay active until removed at the provider");
    assert_eq!((second.acted, second.failed), (6 - first.acted, 0), "the next run takes them at once: {second:?}");
    let mut removed = deletes(&server).await;
    removed.sort();
    removed.dedup();
    assert_eq!(removed.len(), 6, "each link removed once");
    assert_eq!(deletes(&server).await.len(), 6);
    for link in &links {
        assert!(!active(s, &a, link).await);
    }
    assert!(errors(s, &a, conn.base.id).await.is_empty());
}

#[tokio::test]
async fn a_provider_missing_from_the_configuration_is_an_error_row_not_a_silent_skip() {
    // Arrange: Google Drive links, but only OneDrive is configured.
    let server = MockServer::start().await;
    let t = ClockedApp::new(json!({ "providers": {
        "onedrive": { "client_id": "m", "client_secret": "ms", "api_base_url": server.uri() },
    }}))
    .await;
    let s = t.store();
    let a = t.tenant().await;
    let (conn, _, file) = drive(&t, &a, ProviderType::GDrive).await;
    let link = file_link(s, &a, &file, "perm-unconfigured", Some(Duration::minutes(-1))).await;

    // Act
    let report = run(&t.app, &Settings::default()).await;

    // Assert
    assert_eq!((report.scanned, report.acted, report.failed), (1, 1, 1), "{report:?}");
    assert!(!active(s, &a, &link).await, "deactivated once its failure is recorded");
    let errs = errors(s, &a, conn.base.id).await;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].error_metadata.as_ref().unwrap()["link_id"], json!(link.base.id));
    assert!(errs[0].error_message.contains("could not be removed at the provider"), "{}", errs[0].error_message);
    assert!(deletes(&server).await.is_empty());
}

#[tokio::test]
async fn a_provider_error_quoting_the_access_token_is_recorded_scrubbed() {
    // Arrange: Drive refuses the removal and quotes the request's token in its message.
    let server = MockServer::start().await;
    let body = json!({"error": {"code": 403, "message": "token at-drive (Authorization: Bearer at-drive) may not do this",
        "errors": [{"reason": "insufficientPermissions", "message": "no"}]}});
    Mock::given(method("DELETE")).respond_with(ResponseTemplate::new(403).set_body_json(body)).mount(&server).await;
    let t = ClockedApp::new(providers(&server)).await;
    let s = t.store();
    let a = t.tenant().await;
    let (conn, _, file) = drive(&t, &a, ProviderType::GDrive).await;
    let link = file_link(s, &a, &file, "perm-quoted", Some(Duration::minutes(-1))).await;

    // Act
    let report = run(&t.app, &Settings::default()).await;

    // Assert
    assert_eq!((report.acted, report.failed), (1, 1), "{report:?}");
    assert!(!active(s, &a, &link).await);
    let errs = errors(s, &a, conn.base.id).await;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(!errs[0].error_message.contains("at-drive"), "{}", errs[0].error_message);
    assert!(errs[0].error_message.contains("[redacted]"), "{}", errs[0].error_message);
    assert!(errs[0].error_code.as_deref().is_none_or(|c| c.len() <= 100));
}

#[tokio::test]
async fn a_failure_that_cannot_be_recorded_leaves_the_link_active_for_a_later_run() {
    // Arrange: the provider refuses the removal; the first error row cannot be written.
    let server = MockServer::start().await;
    Mock::given(method("DELETE")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let t = ClockedApp::new(providers(&server)).await;
    let s = t.store();
    let a = t.tenant().await;
    let (conn, _, file) = drive(&t, &a, ProviderType::GDrive).await;
    let link = file_link(s, &a, &file, "perm-unrecorded", Some(Duration::minutes(-1))).await;
    let faulty = t.with_store(FaultyBackend::first(s.clone(), Stmt::ErrorInsert, 1).store()).await;

    // Act
    let first = run(&faulty, &Settings::default()).await;
    let active_after_first = active(s, &a, &link).await;
    let held = run(&t.app, &Settings::default()).await;
    let later = t.at(Duration::minutes(5)).await;
    let after_lease = run(&later, &Settings::default()).await;

    // Assert
    assert_eq!((first.acted, first.failed), (0, 1), "{first:?}");
    assert!(active_after_first, "neither removed nor recorded: kept for a retry");
    assert_eq!(held.scanned, 0, "held by the first run's lease: {held:?}");
    assert_eq!((after_lease.acted, after_lease.failed), (1, 1), "{after_lease:?}");
    assert!(!active(s, &a, &link).await);
    let errs = errors(s, &a, conn.base.id).await;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].error_code.as_deref(), Some("503"));
    assert_eq!(deletes(&server).await.len(), 2, "tried again after the lease");
}

#[tokio::test]
async fn overlapping_invocations_deactivate_and_remove_each_link_once_in_batches() {
    // Arrange: 1,000 expired Google links, batches of 150, 8 invocations at once.
    let server = MockServer::start().await;
    Mock::given(method("DELETE")).respond_with(ResponseTemplate::new(204)).mount(&server).await;
    let t = ClockedApp::new(providers(&server)).await;
    let s = t.store();
    let a = t.tenant().await;
    let (_, _, file) = drive(&t, &a, ProviderType::GDrive).await;
    for i in 0..1000 {
        file_link(s, &a, &file, &format!("perm-{i:04}"), Some(Duration::minutes(-1 - i))).await;
    }
    let settings = Settings { batch_size: 150, ..Settings::default() };

    // Act
    let runs = (0..8).map(|_| {
        let (app, settings) = (t.app.clone(), settings.clone());
        tokio::spawn(async move { run(&app, &settings).await })
    });
    let reports: Vec<_> = futures_util::future::join_all(runs).await.into_iter().map(|r| r.unwrap()).collect();

    // Assert
    assert_eq!(reports.iter().map(|r| r.acted).sum::<u64>(), 1000, "{reports:?}");
    assert_eq!(reports.iter().map(|r| r.failed).sum::<u64>(), 0);
    let mut removed = deletes(&server).await;
    assert_eq!(removed.len(), 1000);
    removed.sort();
    removed.dedup();
    assert_eq!(removed.len(), 1000, "each link removed once");
    let filter = SharedLinkFilter { is_active: Some(true), ..Default::default() };
    assert!(s.list_links(a.id, &filter, PageRequest::first(10)).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn settings_come_from_the_environment_with_defaults_and_named_errors() {
    // Arrange
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        Env::new(move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    };

    // Act
    let defaults = Settings::from_lookup(vars(&[])).unwrap();
    let custom = Settings::from_lookup(vars(&[("LINK_EXPIRY_BATCH_SIZE", "50")])).unwrap();
    let bad = Settings::from_lookup(vars(&[("LINK_EXPIRY_BATCH_SIZE", "0")])).unwrap_err();

    // Assert
    assert_eq!(defaults, Settings::default());
    assert_eq!(custom.batch_size, 50);
    assert_eq!(bad.name, "LINK_EXPIRY_BATCH_SIZE");
    assert!(bad.to_string().contains("between 1 and 5000"));
}

#[tokio::test]
async fn the_handler_runs_on_the_eventbridge_scheduled_event() {
    // Arrange
    let server = MockServer::start().await;
    Mock::given(method("DELETE")).respond_with(ResponseTemplate::new(204)).mount(&server).await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    let (_, _, file) = drive(&t, &a, ProviderType::OneDrive).await;
    let link = file_link(t.store(), &a, &file, "ms-perm", Some(Duration::minutes(-1))).await;
    let payload = scheduled_event(FUNCTION);
    assert_eq!(payload["detail-type"], "Scheduled Event");

    // Act
    let report = handler(&t.app, &Settings::default(), LambdaEvent::new(payload, Context::default())).await.unwrap();

    // Assert
    assert_eq!((report.scanned, report.acted, report.failed), (1, 1, 0));
    assert!(!active(t.store(), &a, &link).await);
    assert!(deletes(&server).await.is_empty(), "OneDrive expires its links itself");
}
