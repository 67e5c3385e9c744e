//! token-refresh against SQLite and a fake token endpoint (wiremock) that the providers'
//! `token_url` points at: the fault matrix, backoff and failure episodes, keep-alive,
//! overlapping invocations, settings, and the Lambda handler fed the EventBridge event.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use lambda_runtime::{Context, LambdaEvent};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use shared::db::*;
use shared::schedule::Env;
use shared::vault::TokenContext;
use testkit::faults::FaultyBackend;
use testkit::scheduled::{ClockedApp, scheduled_event};
use testkit::{Tenant, new_connection};
use token_refresh::{FUNCTION, Settings, handler, run};
use uuid::Uuid;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn providers(server: &MockServer) -> Value {
    let uri = server.uri();
    json!({ "providers": {
        "gdrive": { "client_id": "g-client", "client_secret": "g-secret", "token_url": format!("{uri}/google/token") },
        "box": { "client_id": "b-client", "client_secret": "b-secret", "token_url": format!("{uri}/box/token") },
        "onedrive": { "client_id": "m-client", "client_secret": "m-secret", "token_url": format!("{uri}/ms/token") },
    }})
}

fn settings() -> Settings {
    Settings { provider_timeout: StdDuration::from_millis(500), ..Settings::default() }
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// A connection whose tokens are encrypted by the app's vault for its own row, expiring
/// `expires_in` from now.
async fn connect(
    t: &ClockedApp,
    store: &Store,
    a: &Tenant,
    p: ProviderType,
    rt: Option<&str>,
    expires_in: Duration,
) -> ConnectionId {
    let mut n = new_connection(a);
    n.provider_type = p;
    n.token_expiry = store.now() + expires_in;
    let c = store.create_connection(&n).await.unwrap();
    let current = t.app.current().await.unwrap();
    let access = current.vault.encrypt(TokenContext::access(a.id, c.base.id), &secret("at-old"));
    let refresh = rt.map(|r| current.vault.encrypt(TokenContext::refresh(a.id, c.base.id), &secret(r)));
    assert!(store.swap_connection_tokens(a.id, c.base.id, &c.encrypted_access_token, access, refresh).await.unwrap());
    c.base.id
}

/// The stored (access, refresh) tokens, decrypted.
async fn tokens(t: &ClockedApp, a: &Tenant, id: ConnectionId) -> (String, Option<String>) {
    let c = t.store().get_connection(a.id, id).await.unwrap();
    let vault = &t.app.current().await.unwrap().vault;
    let access = vault.decrypt(TokenContext::access(a.id, id), &c.encrypted_access_token).unwrap();
    let refresh = c.encrypted_refresh_token.map(|r| vault.decrypt(TokenContext::refresh(a.id, id), &r).unwrap());
    (access.expose_secret().to_owned(), refresh.map(|r| r.expose_secret().to_owned()))
}

async fn errors(t: &ClockedApp, a: &Tenant, id: ConnectionId) -> Vec<SyncError> {
    let filter = SyncErrorFilter { connection_id: Some(id), ..Default::default() };
    t.store().list_errors(a.id, &filter, PageRequest::first(200)).await.unwrap().items
}

/// Requests the fake token endpoint received for this refresh token.
async fn requests_for(server: &MockServer, rt: &str) -> usize {
    let needle = format!("refresh_token={rt}&");
    let requests = server.received_requests().await.unwrap_or_default();
    requests.iter().filter(|r| String::from_utf8_lossy(&r.body).contains(&needle)).count()
}

fn ok(access: &str, refresh: Option<&str>, expires_in: u64) -> ResponseTemplate {
    let mut body = json!({ "access_token": access, "token_type": "Bearer", "expires_in": expires_in });
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

async fn answer(server: &MockServer, endpoint: &str, rt: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(endpoint))
        .and(body_string_contains(format!("refresh_token={rt}&")))
        .respond_with(response)
        .mount(server)
        .await;
}

struct Case {
    name: &'static str,
    provider: ProviderType,
    response: ResponseTemplate,
    status: ConnectionStatus,
    /// The one error row expected: type and code.
    error: Option<(ErrorType, Option<&'static str>)>,
    access: &'static str,
    refresh: &'static str,
}

#[tokio::test]
async fn fault_matrix_at_the_token_endpoint_sets_status_and_errors_and_never_loses_the_refresh_token() {
    // Arrange
    let server = MockServer::start().await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    let invalid =
        |d: &str| ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant", "error_description": d}));
    use ConnectionStatus::*;
    let cases = vec![
        Case { name: "invalid-grant", provider: ProviderType::GDrive, response: invalid("Bad Request"), status: Expired, error: Some((ErrorType::Auth, Some("invalid_grant"))), access: "at-old", refresh: "rt-invalid-grant" },
        Case { name: "revoked", provider: ProviderType::GDrive, response: invalid("Token has been expired or revoked."), status: Revoked, error: Some((ErrorType::Auth, Some("invalid_grant"))), access: "at-old", refresh: "rt-revoked" },
        Case {
            name: "ms-inactive",
            provider: ProviderType::OneDrive,
            response: ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant", "error_description": "AADSTS70008: The refresh token has expired due to inactivity.", "error_codes": [70008]})),
            status: Revoked,
            error: Some((ErrorType::Auth, Some("AADSTS70008"))),
            access: "at-old",
            refresh: "rt-ms-inactive",
        },
        Case { name: "unauthorized", provider: ProviderType::GDrive, response: ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})), status: Active, error: Some((ErrorType::Auth, Some("invalid_client"))), access: "at-old", refresh: "rt-unauthorized" },
        Case { name: "throttled", provider: ProviderType::GDrive, response: ResponseTemplate::new(429).insert_header("retry-after", "120"), status: Active, error: Some((ErrorType::Api, Some("429"))), access: "at-old", refresh: "rt-throttled" },
        Case { name: "server", provider: ProviderType::GDrive, response: ResponseTemplate::new(500), status: Active, error: Some((ErrorType::Api, Some("500"))), access: "at-old", refresh: "rt-server" },
        Case { name: "timeout", provider: ProviderType::GDrive, response: ok("at-late", Some("rt-late"), 3600).set_delay(StdDuration::from_secs(3)), status: Active, error: Some((ErrorType::Timeout, None)), access: "at-old", refresh: "rt-timeout" },
        Case { name: "malformed", provider: ProviderType::GDrive, response: ResponseTemplate::new(200).set_body_raw("{not json", "application/json"), status: Active, error: Some((ErrorType::Api, None)), access: "at-old", refresh: "rt-malformed" },
        Case { name: "keeps-refresh", provider: ProviderType::GDrive, response: ok("at-new-google", None, 3600), status: Active, error: None, access: "at-new-google", refresh: "rt-keeps-refresh" },
        Case { name: "box-rotates", provider: ProviderType::Box, response: ok("at-new-box", Some("rt-box-new"), 3600), status: Active, error: None, access: "at-new-box", refresh: "rt-box-new" },
        Case { name: "box-no-refresh", provider: ProviderType::Box, response: ok("at-box-lost", None, 3600), status: Active, error: Some((ErrorType::Api, None)), access: "at-old", refresh: "rt-box-no-refresh" },
    ];
    let endpoint = |p: ProviderType| match p {
        ProviderType::Box => "/box/token",
        ProviderType::OneDrive => "/ms/token",
        _ => "/google/token",
    };
    let mut ids = Vec::new();
    for case in &cases {
        let rt = format!("rt-{}", case.name);
        answer(&server, endpoint(case.provider), &rt, case.response.clone()).await;
        ids.push(connect(&t, t.store(), &a, case.provider, Some(&rt), Duration::minutes(5)).await);
    }
    let before = Utc::now();

    // Act
    let report = run(&t.app, &settings()).await;

    // Assert
    assert_eq!(report.scanned, cases.len() as u64, "{report:?}");
    assert_eq!(report.acted, 5, "three refused grants ended, two refreshed: {report:?}");
    assert_eq!(report.failed, 6, "{report:?}");
    for (case, id) in cases.iter().zip(&ids) {
        let c = t.store().get_connection(a.id, *id).await.unwrap();
        assert_eq!(c.status, case.status, "{}", case.name);
        let (access, refresh) = tokens(&t, &a, *id).await;
        assert_eq!(access, case.access, "{}", case.name);
        assert_eq!(refresh.as_deref(), Some(case.refresh), "{}: the refresh token is never lost", case.name);
        let errs = errors(&t, &a, *id).await;
        match case.error {
            None => assert!(errs.is_empty(), "{}: {errs:?}", case.name),
            Some((error_type, code)) => {
                assert_eq!(errs.len(), 1, "{}: {errs:?}", case.name);
                assert_eq!(errs[0].error_type, error_type, "{}", case.name);
                assert_eq!(errs[0].error_code.as_deref(), code, "{}", case.name);
                assert_eq!(errs[0].retry_count, 0);
                assert!(errs[0].resolved_at.is_none());
                assert!(!errs[0].error_message.contains(&format!("rt-{}", case.name)), "no token in messages");
            }
        }
        if case.error.is_none() {
            assert!(c.token_expiry > before + Duration::minutes(59), "{}: new expiry from expires_in", case.name);
        }
        assert_eq!(requests_for(&server, &format!("rt-{}", case.name)).await, 1, "{}", case.name);
    }
}

/// The app over a backend that refuses the token write (`ConnRefreshStore`) the first `fail`
/// times, as a database fault would, and counts the refusals.
async fn flaky_app(t: &ClockedApp, fail: usize) -> (Arc<shared::app::App>, Arc<FaultyBackend>) {
    let backend = FaultyBackend::first(t.store().clone(), Stmt::ConnRefreshStore, fail);
    (t.with_store(backend.store()).await, backend)
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_through_a_database_fault_longer_than_a_few_retries() {
    // Arrange: Box rotates the refresh token; the database refuses the first 5 token writes
    // (the old code gave up after 4 attempts).
    let server = MockServer::start().await;
    answer(&server, "/box/token", "rt-box-flaky", ok("at-box-flaky", Some("rt-box-rotated"), 3600)).await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    let id = connect(&t, t.store(), &a, ProviderType::Box, Some("rt-box-flaky"), Duration::minutes(5)).await;
    let (app, backend) = flaky_app(&t, 5).await;

    // Act
    let report = run(&app, &settings()).await;

    // Assert
    assert_eq!((report.scanned, report.acted, report.failed), (1, 1, 0), "{report:?}");
    assert_eq!(backend.refused(), 5, "the write was refused 5 times, then went through");
    assert_eq!(tokens(&t, &a, id).await, ("at-box-flaky".to_owned(), Some("rt-box-rotated".to_owned())));
    let c = t.store().get_connection(a.id, id).await.unwrap();
    assert!(c.token_expiry > Utc::now() + Duration::minutes(59));
    assert!(errors(&t, &a, id).await.is_empty());
    assert_eq!(requests_for(&server, "rt-box-flaky").await, 1, "one refresh, the token spent once");
}

#[tokio::test]
async fn a_token_write_that_never_succeeds_is_given_up_at_the_write_deadline_and_recorded() {
    // Arrange: every token write is refused; the run keeps 1 s for the write after a 0.5 s
    // provider timeout and a 0.5 s budget.
    let server = MockServer::start().await;
    answer(&server, "/box/token", "rt-box-doomed", ok("at-box-doomed", Some("rt-box-doomed-new"), 3600)).await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    let id = connect(&t, t.store(), &a, ProviderType::Box, Some("rt-box-doomed"), Duration::minutes(5)).await;
    let (app, backend) = flaky_app(&t, usize::MAX).await;
    let tight =
        Settings { time_budget: StdDuration::from_millis(500), write_reserve: StdDuration::from_secs(1), ..settings() };

    // Act
    let report = run(&app, &tight).await;

    // Assert
    assert_eq!((report.scanned, report.acted, report.failed), (1, 0, 1), "{report:?}");
    assert!(backend.refused() >= 2, "retried until the deadline");
    assert_eq!(tokens(&t, &a, id).await.1.as_deref(), Some("rt-box-doomed"), "nothing half-written");
    let errs = errors(&t, &a, id).await;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].error_type, ErrorType::Auth);
    assert_eq!(errs[0].error_code.as_deref(), Some("token_store_failed"));
    assert!(errs[0].error_message.contains("reconnected"), "{}", errs[0].error_message);
    assert!(!errs[0].error_message.contains("rt-box-doomed"), "no token in the message");
    let c = t.store().get_connection(a.id, id).await.unwrap();
    assert_eq!(c.status, ConnectionStatus::Active);
}

#[tokio::test]
async fn a_lambda_deadline_too_close_for_a_refresh_and_its_write_starts_none() {
    // Arrange: the invocation ends in 20 s, less than the provider timeout plus the 65 s
    // kept for the token write.
    let server = MockServer::start().await;
    answer(&server, "/box/token", "rt-box-late", ok("at-box-late", Some("rt-box-late-new"), 3600)).await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    let id = connect(&t, t.store(), &a, ProviderType::Box, Some("rt-box-late"), Duration::minutes(5)).await;
    let mut context = Context::default();
    context.deadline = (Utc::now() + Duration::seconds(20)).timestamp_millis() as u64;

    // Act
    let late = handler(&t.app, &settings(), LambdaEvent::new(scheduled_event(FUNCTION), context)).await.unwrap();
    let next = run(&t.app, &settings()).await;

    // Assert
    assert_eq!((late.acted, late.failed), (0, 0), "{late:?}");
    assert_eq!(requests_for(&server, "rt-box-late").await, 1, "only the next run called the provider");
    assert_eq!(next.acted, 1, "{next:?}");
    assert_eq!(tokens(&t, &a, id).await.1.as_deref(), Some("rt-box-late-new"));
}

#[tokio::test]
async fn a_refused_grant_with_an_overlong_code_and_echoed_secrets_still_ends_the_connection_scrubbed() {
    // Arrange: Microsoft refuses the grant with a 156-character AADSTS code and a description
    // that quotes the refresh token and the client secret.
    let server = MockServer::start().await;
    let description = format!(
        "AADSTS{}: refresh_token=rt-ms-echoed&client_secret=m-secret was rejected; token rt-ms-echoed",
        "7".repeat(150)
    );
    let body = json!({"error": "invalid_grant", "error_description": description});
    answer(&server, "/ms/token", "rt-ms-echoed", ResponseTemplate::new(400).set_body_json(body)).await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    let id = connect(&t, t.store(), &a, ProviderType::OneDrive, Some("rt-ms-echoed"), Duration::minutes(5)).await;

    // Act
    let report = run(&t.app, &settings()).await;

    // Assert
    assert_eq!((report.acted, report.failed), (1, 0), "{report:?}");
    let c = t.store().get_connection(a.id, id).await.unwrap();
    assert_ne!(c.status, ConnectionStatus::Active, "the refused grant ended the connection");
    let errs = errors(&t, &a, id).await;
    assert_eq!(errs.len(), 1, "{errs:?}");
    let code = errs[0].error_code.as_deref().unwrap();
    assert_eq!(code.len(), 100, "clipped to the column");
    assert!(code.starts_with("AADSTS777"));
    let message = &errs[0].error_message;
    assert!(!message.contains("rt-ms-echoed"), "{message}");
    assert!(!message.contains("m-secret"), "{message}");
    assert!(message.contains("[redacted]"), "{message}");
}

#[tokio::test]
async fn backoff_honours_retry_after_and_ended_grants_are_never_retried() {
    // Arrange
    let server = MockServer::start().await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    answer(&server, "/google/token", "rt-throttled", ResponseTemplate::new(429).insert_header("retry-after", "300"))
        .await;
    answer(&server, "/google/token", "rt-server", ResponseTemplate::new(503)).await;
    answer(
        &server,
        "/google/token",
        "rt-dead",
        ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})),
    )
    .await;
    let throttled = connect(&t, t.store(), &a, ProviderType::GDrive, Some("rt-throttled"), Duration::minutes(5)).await;
    connect(&t, t.store(), &a, ProviderType::GDrive, Some("rt-server"), Duration::minutes(5)).await;
    let dead = connect(&t, t.store(), &a, ProviderType::GDrive, Some("rt-dead"), Duration::minutes(5)).await;

    // Act
    run(&t.app, &settings()).await;
    let immediately = run(&t.app, &settings()).await;
    run(&*t.at(Duration::seconds(90)).await, &settings()).await;
    let after_retry_after = run(&*t.at(Duration::seconds(310)).await, &settings()).await;
    run(&*t.at(Duration::days(3)).await, &settings()).await;

    // Assert
    assert_eq!(immediately.scanned, 0, "all three are backing off or ended: {immediately:?}");
    assert!(after_retry_after.scanned >= 1);
    // 0 s, then 300 s (Retry-After, above the 60 s backoff), then day 3.
    assert_eq!(requests_for(&server, "rt-throttled").await, 3);
    // 0 s, 90 s (60 s backoff), 310 s (120 s backoff), day 3.
    assert_eq!(requests_for(&server, "rt-server").await, 4);
    assert_eq!(requests_for(&server, "rt-dead").await, 1, "no attempt after invalid_grant");
    assert_eq!(t.store().get_connection(a.id, dead).await.unwrap().status, ConnectionStatus::Expired);
    assert_eq!(errors(&t, &a, dead).await.len(), 1);
    let throttled_errors = errors(&t, &a, throttled).await;
    assert_eq!(throttled_errors.len(), 1, "one row per failure episode");
    assert_eq!(throttled_errors[0].retry_count, 2);
    assert_eq!(t.store().get_connection(a.id, throttled).await.unwrap().status, ConnectionStatus::Active);
}

#[tokio::test]
async fn a_failure_episode_keeps_one_error_row_until_a_success_resolves_it() {
    // Arrange
    let server = MockServer::start().await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    let id = connect(&t, t.store(), &a, ProviderType::GDrive, Some("rt-flaky"), Duration::minutes(5)).await;
    answer(&server, "/google/token", "rt-flaky", ResponseTemplate::new(500)).await;

    // Act: two failures, a success, then a new failure an hour later.
    run(&t.app, &settings()).await;
    run(&*t.at(Duration::seconds(61)).await, &settings()).await;
    let during = errors(&t, &a, id).await;
    server.reset().await;
    answer(&server, "/google/token", "rt-flaky", ok("at-fresh", None, 3600)).await;
    run(&*t.at(Duration::seconds(200)).await, &settings()).await;
    let after_success = errors(&t, &a, id).await;
    server.reset().await;
    answer(&server, "/google/token", "rt-flaky", ResponseTemplate::new(502)).await;
    run(&*t.at(Duration::seconds(200 + 3600 - 600)).await, &settings()).await;
    let next_episode = errors(&t, &a, id).await;

    // Assert
    assert_eq!(during.len(), 1);
    assert_eq!(during[0].retry_count, 1, "the second failure counted on the open row");
    assert_eq!(after_success.len(), 1);
    assert!(after_success[0].resolved_at.is_some(), "the success resolved the episode");
    assert_eq!(tokens(&t, &a, id).await, ("at-fresh".to_owned(), Some("rt-flaky".to_owned())));
    assert_eq!(next_episode.len(), 2, "a later failure opens a new row");
    let open: Vec<_> = next_episode.iter().filter(|e| e.resolved_at.is_none()).collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].error_code.as_deref(), Some("502"));
    assert_eq!(open[0].retry_count, 0);
}

#[tokio::test]
async fn connections_without_a_refresh_token_expire_only_once_their_access_token_has() {
    // Arrange
    let server = MockServer::start().await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    let gone = connect(&t, t.store(), &a, ProviderType::GDrive, None, Duration::minutes(-1)).await;
    let soon = connect(&t, t.store(), &a, ProviderType::GDrive, None, Duration::minutes(5)).await;
    let later = connect(&t, t.store(), &a, ProviderType::GDrive, Some("rt-later"), Duration::hours(2)).await;

    // Act
    let first = run(&t.app, &settings()).await;
    let second = run(&t.app, &settings()).await;
    let after_expiry = run(&*t.at(Duration::minutes(6)).await, &settings()).await;

    // Assert
    assert_eq!((first.acted, first.skipped), (1, 1), "{first:?}");
    assert_eq!(second.scanned, 0, "the unexpired one is not looked at again before it expires");
    assert_eq!(after_expiry.acted, 1);
    for id in [gone, soon] {
        let c = t.store().get_connection(a.id, id).await.unwrap();
        assert_eq!(c.status, ConnectionStatus::Expired);
        let errs = errors(&t, &a, id).await;
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].error_type, errs[0].error_code.as_deref()), (ErrorType::Auth, Some("no_refresh_token")));
    }
    assert_eq!(t.store().get_connection(a.id, later).await.unwrap().status, ConnectionStatus::Active);
    assert!(server.received_requests().await.unwrap().is_empty(), "nothing was due for a refresh");
}

#[tokio::test]
async fn idle_refresh_tokens_are_kept_alive() {
    // Arrange: long-lived access tokens, so only the keep-alive pass can pick them.
    let server = MockServer::start().await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    let sixty_days = 60 * 86_400;
    let ten_days_ago = t.at(-Duration::days(10)).await;
    let eight_days_ago = t.at(-Duration::days(8)).await;
    let old = connect(&t, &eight_days_ago.store, &a, ProviderType::GDrive, Some("rt-old"), Duration::days(30)).await;
    let young = connect(&t, t.store(), &a, ProviderType::GDrive, Some("rt-young"), Duration::days(30)).await;
    let refreshed =
        connect(&t, &ten_days_ago.store, &a, ProviderType::GDrive, Some("rt-refreshed"), Duration::minutes(5)).await;
    for rt in ["rt-old", "rt-young", "rt-refreshed"] {
        answer(&server, "/google/token", rt, ok(&format!("at-{rt}"), None, sixty_days)).await;
    }
    // Ten days ago `refreshed` was due by expiry and got a 60-day token.
    run(&ten_days_ago, &settings()).await;
    let refreshed_then = requests_for(&server, "rt-refreshed").await;
    let old_then = requests_for(&server, "rt-old").await;

    // Act
    let report = run(&t.app, &settings()).await;
    let again = run(&t.app, &settings()).await;

    // Assert
    assert_eq!(refreshed_then, 1);
    assert_eq!(old_then, 0, "not yet created ten days ago");
    assert_eq!(report.acted, 2, "{report:?}");
    assert_eq!(again.scanned, 0, "kept alive just now");
    assert_eq!(requests_for(&server, "rt-old").await, 1);
    assert_eq!(requests_for(&server, "rt-refreshed").await, 2);
    assert_eq!(requests_for(&server, "rt-young").await, 0);
    assert_eq!(tokens(&t, &a, old).await.0, "at-rt-old");
    assert_eq!(tokens(&t, &a, young).await.0, "at-old");
    assert_eq!(tokens(&t, &a, refreshed).await.0, "at-rt-refreshed");
}

#[tokio::test]
async fn overlapping_invocations_refresh_each_connection_exactly_once() {
    // Arrange: 1,000 due connections, 8 invocations at once.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/google/token"))
        .respond_with(ok("at-new", None, 3600).set_delay(StdDuration::from_millis(5)))
        .mount(&server)
        .await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    let mut ids = Vec::new();
    for i in 0..1000 {
        ids.push(
            connect(&t, t.store(), &a, ProviderType::GDrive, Some(&format!("rt-{i:04}")), Duration::minutes(5)).await,
        );
    }
    let settings = Settings { batch_size: 100, ..settings() };

    // Act
    let runs = (0..8).map(|_| {
        let (app, settings) = (t.app.clone(), settings.clone());
        tokio::spawn(async move { run(&app, &settings).await })
    });
    let reports: Vec<_> = futures_util::future::join_all(runs).await.into_iter().map(|r| r.unwrap()).collect();

    // Assert
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1000, "one token request per connection: {reports:?}");
    let mut seen: Vec<String> = requests
        .iter()
        .map(|r| {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            form_value(&body, "refresh_token")
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 1000, "each refresh token sent once");
    assert_eq!(reports.iter().map(|r| r.acted).sum::<u64>(), 1000);
    assert_eq!(reports.iter().map(|r| r.failed).sum::<u64>(), 0);
    assert!(reports.iter().map(|r| r.skipped).sum::<u64>() > 0, "the runs overlapped and lost claims: {reports:?}");
    for id in ids.iter().step_by(111) {
        assert_eq!(tokens(&t, &a, *id).await.0, "at-new");
    }
}

#[tokio::test]
async fn what_the_time_budget_leaves_waits_for_the_next_run() {
    // Arrange: 10 due connections, two refreshes at a time, 300 ms each, a 500 ms budget.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/google/token"))
        .respond_with(ok("at-new", None, 3600).set_delay(StdDuration::from_millis(300)))
        .mount(&server)
        .await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    for i in 0..10 {
        connect(&t, t.store(), &a, ProviderType::GDrive, Some(&format!("rt-budget-{i}")), Duration::minutes(5)).await;
    }
    let tight = Settings { concurrency: 2, time_budget: StdDuration::from_millis(500), ..settings() };

    // Act
    let first = run(&t.app, &tight).await;
    let second = run(&t.app, &settings()).await;

    // Assert
    assert!(first.acted >= 2 && first.acted < 10, "{first:?}");
    assert_eq!(first.skipped, 10 - first.acted, "rows reached after the budget are left alone: {first:?}");
    assert_eq!(second.acted, 10 - first.acted, "{second:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 10, "each connection refreshed once");
}

#[tokio::test]
async fn a_claim_fails_when_the_row_was_refreshed_since_it_was_read_or_is_held() {
    // Arrange
    let server = MockServer::start().await;
    let t = ClockedApp::new(providers(&server)).await;
    let s = t.store();
    let a = t.tenant().await;
    let changed = connect(&t, s, &a, ProviderType::GDrive, Some("rt-changed"), Duration::minutes(5)).await;
    let held = connect(&t, s, &a, ProviderType::GDrive, Some("rt-held"), Duration::minutes(5)).await;
    let read = s.scan_refresh_due(s.now() + Duration::minutes(15), s.now(), 10).await.unwrap();
    let row = |id: Uuid| read.iter().find(|r| r.connection.base.id == ConnectionId::from(id)).unwrap().clone();
    let lease = s.now() + Duration::minutes(10);
    // Someone else refreshed `changed` after our read: its ciphertext is new.
    let vault = &t.app.current().await.unwrap().vault;
    let newer = vault.encrypt(TokenContext::access(a.id, changed), &secret("at-other"));
    assert!(
        s.swap_connection_tokens(a.id, changed, &row(changed.0).connection.encrypted_access_token, newer, None)
            .await
            .unwrap()
    );

    // Act
    let stale_claim = s.claim_refresh(&row(changed.0), lease).await.unwrap();
    let first = s.claim_refresh(&row(held.0), lease).await.unwrap();
    let second = s.claim_refresh(&row(held.0), lease).await.unwrap();
    let later = t.at(Duration::minutes(11)).await.store.claim_refresh(&row(held.0), lease).await.unwrap();

    // Assert
    assert!(stale_claim.is_none(), "refreshed since the read: skip");
    let first = first.expect("the first claim wins");
    assert_eq!(first.refresh_not_before, Some(lease), "the claim re-reads the row it holds");
    assert!(second.is_none(), "held by the first claim");
    assert!(later.is_some(), "a lease that ran out can be claimed again");
    assert!(server.received_requests().await.unwrap().is_empty());
}

fn form_value(body: &str, key: &str) -> String {
    body.split('&').find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap_or_default().to_owned()
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
        Settings::from_lookup(vars(&[("TOKEN_REFRESH_WINDOW_MINUTES", "30"), ("TOKEN_REFRESH_CONCURRENCY", "4")]))
            .unwrap();
    let bad = Settings::from_lookup(vars(&[("TOKEN_REFRESH_CONCURRENCY", "-1")])).unwrap_err();
    let short_lease = Settings::from_lookup(vars(&[("TOKEN_REFRESH_LEASE_SECONDS", "200")])).unwrap_err();

    // Assert
    assert_eq!(defaults, Settings::default());
    assert_eq!(defaults.window, StdDuration::from_secs(900));
    assert_eq!(defaults.keep_alive, StdDuration::from_secs(7 * 86_400));
    assert_eq!(defaults.concurrency, 16);
    assert_eq!(custom.window, StdDuration::from_secs(1800));
    assert_eq!(custom.concurrency, 4);
    assert_eq!(bad.name, "TOKEN_REFRESH_CONCURRENCY");
    assert!(bad.to_string().starts_with("environment variable TOKEN_REFRESH_CONCURRENCY"));
    assert_eq!(short_lease.name, "TOKEN_REFRESH_LEASE_SECONDS");
    assert_eq!(defaults.backoff(1, None), StdDuration::from_secs(60));
    assert_eq!(defaults.backoff(3, None), StdDuration::from_secs(240));
    assert_eq!(defaults.backoff(30, None), StdDuration::from_secs(3600));
    assert_eq!(defaults.backoff(1, Some(StdDuration::from_secs(900))), StdDuration::from_secs(900));
}

#[tokio::test]
async fn the_handler_runs_on_the_eventbridge_scheduled_event_and_reports_counts_only() {
    // Arrange
    let server = MockServer::start().await;
    answer(&server, "/google/token", "rt-handler", ok("at-handler-new", Some("rt-handler-new"), 3600)).await;
    let t = ClockedApp::new(providers(&server)).await;
    let a = t.tenant().await;
    let id = connect(&t, t.store(), &a, ProviderType::GDrive, Some("rt-handler"), Duration::minutes(5)).await;
    let payload = scheduled_event(FUNCTION);
    assert_eq!(payload["detail-type"], "Scheduled Event");
    assert_eq!(payload["source"], "aws.events");

    // Act
    let report = handler(&t.app, &settings(), LambdaEvent::new(payload, Context::default())).await.unwrap();

    // Assert
    assert_eq!((report.scanned, report.acted, report.failed), (1, 1, 0));
    assert_eq!(tokens(&t, &a, id).await, ("at-handler-new".to_owned(), Some("rt-handler-new".to_owned())));
    let output = serde_json::to_string(&report).unwrap();
    assert!(!output.contains("at-handler") && !output.contains("rt-handler"));
    let keys: Vec<String> =
        serde_json::from_str::<Value>(&output).unwrap().as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 5, "{output}");
}
