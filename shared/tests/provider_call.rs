//! The one provider-call path against a Box fake (Box refresh tokens are single-use, so a
//! second refresh of one token would lose the connection): a token about to expire is
//! refreshed first; a 401 is answered by one refresh and one retry; concurrent callers, in one
//! process or two, refresh a token once between them; a refused refresh ends the connection;
//! failures become scrubbed error rows and the default HTTP answers.

use std::sync::Arc;

use chrono::Duration;
use secrecy::ExposeSecret as _;
use serde_json::json;
use shared::api::ApiError;
use shared::db::*;
use shared::deadline::Deadline;
use shared::provider_call::{CallError, ProviderCall};
use shared::providers::ProviderError;
use shared::vault::TokenContext;
use testkit::http::TestApp;
use testkit::providers::{
    ACCESS_TOKEN, CLIENT_SECRET, NEW_ACCESS_TOKEN, REFRESH_TOKEN, ROTATED_REFRESH_TOKEN, box_tokens, box_user,
};
use wiremock::matchers::{bearer_token, body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Fixture {
    t: TestApp,
    server: MockServer,
    tenant: testkit::Tenant,
    connection: Connection,
}

async fn fixture(expires_in: Duration) -> Fixture {
    let server = MockServer::start().await;
    let uri = server.uri();
    let t = TestApp::with_config(json!({ "providers": { "box": {
        "client_id": "box-client", "client_secret": CLIENT_SECRET,
        "token_url": format!("{uri}/oauth2/token"), "api_base_url": uri,
    }}}))
    .await;
    let tenant = t.tenant().await;
    let connection =
        testkit::connect_with_tokens(&t.app, &tenant, ProviderType::Box, ACCESS_TOKEN, Some(REFRESH_TOKEN), None).await;
    let expiry = t.store().now() + expires_in;
    let patch = |e| {
        let mut c = connection.clone();
        c.token_expiry = e;
        c
    };
    // The expiry is the token-refresh bookkeeping's to set; a fresh row is written here.
    t.execute_sql(&format!(
        "UPDATE cloud_connections SET token_expiry = '{}' WHERE id = '{}'",
        expiry.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f"),
        connection.base.id
    ));
    let connection = patch(expiry);
    Fixture { t, server, tenant, connection }
}

impl Fixture {
    async fn open(&self) -> ProviderCall {
        let stored = self.t.store().get_connection(self.tenant.id, self.connection.base.id).await.unwrap();
        ProviderCall::open(&self.t.app, stored).await.unwrap()
    }

    /// Box's user endpoint answering `token` with the user, and any other token with a 401.
    async fn mount_user(&self, token: &str) {
        Mock::given(method("GET"))
            .and(path("/2.0/users/me"))
            .and(bearer_token(token))
            .respond_with(ResponseTemplate::new(200).set_body_json(box_user()))
            .with_priority(1)
            .mount(&self.server)
            .await;
        Mock::given(method("GET"))
            .and(path("/2.0/users/me"))
            .respond_with(
                ResponseTemplate::new(401).insert_header("www-authenticate", "Bearer error=\"invalid_token\""),
            )
            .with_priority(2)
            .mount(&self.server)
            .await;
    }

    /// The token endpoint turning REFRESH_TOKEN into a new access token and a rotated refresh
    /// token, exactly `times` times.
    async fn mount_refresh(&self, times: u64) {
        Mock::given(method("POST"))
            .and(path("/oauth2/token"))
            .and(body_string_contains(format!("refresh_token={REFRESH_TOKEN}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(box_tokens(NEW_ACCESS_TOKEN, ROTATED_REFRESH_TOKEN))
                    .set_delay(std::time::Duration::from_millis(200)),
            )
            .expect(times)
            .mount(&self.server)
            .await;
    }

    async fn stored_tokens(&self) -> (String, String) {
        let c = self.t.store().get_connection(self.tenant.id, self.connection.base.id).await.unwrap();
        let vault = &self.t.app.current().await.unwrap().vault;
        let (tenant, id) = (self.tenant.id, self.connection.base.id);
        let access = vault.decrypt(TokenContext::access(tenant, id), &c.encrypted_access_token).unwrap();
        let refresh = vault.decrypt(TokenContext::refresh(tenant, id), &c.encrypted_refresh_token.unwrap()).unwrap();
        (access.expose_secret().to_owned(), refresh.expose_secret().to_owned())
    }
}

fn deadline() -> Deadline {
    Deadline::after(std::time::Duration::from_secs(20))
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_the_call() {
    // Arrange: the access token expires in 30 s, inside the call path's skew.
    let f = fixture(Duration::seconds(30)).await;
    f.mount_user(NEW_ACCESS_TOKEN).await;
    f.mount_refresh(1).await;
    let call = f.open().await;

    // Act
    let identity = call.run(&deadline(), |a| a.provider.identity(a.token)).await;

    // Assert
    assert!(identity.is_ok(), "{identity:?}");
    assert_eq!(f.stored_tokens().await, (NEW_ACCESS_TOKEN.to_owned(), ROTATED_REFRESH_TOKEN.to_owned()));
    f.server.verify().await;
}

#[tokio::test]
async fn a_401_is_answered_by_one_refresh_and_one_retry_with_the_new_token() {
    // Arrange: a token the provider refuses although its expiry is an hour away.
    let f = fixture(Duration::hours(1)).await;
    f.mount_user(NEW_ACCESS_TOKEN).await;
    f.mount_refresh(1).await;
    let call = f.open().await;

    // Act
    let identity = call.run(&deadline(), |a| a.provider.identity(a.token)).await;

    // Assert
    assert_eq!(identity.unwrap().provider_user_id, box_user()["id"].as_str().unwrap());
    let requests = f.server.received_requests().await.unwrap();
    let users: Vec<_> = requests.iter().filter(|r| r.url.path() == "/2.0/users/me").collect();
    assert_eq!(users.len(), 2, "the refused call and its one retry");
    assert_eq!(f.stored_tokens().await, (NEW_ACCESS_TOKEN.to_owned(), ROTATED_REFRESH_TOKEN.to_owned()));
    f.server.verify().await;
}

#[tokio::test]
async fn concurrent_calls_refused_together_refresh_the_single_use_token_once() {
    // Arrange: eight calls on one path and four on another (another invocation), all refused.
    let f = fixture(Duration::hours(1)).await;
    f.mount_user(NEW_ACCESS_TOKEN).await;
    f.mount_refresh(1).await;
    let (here, there) = (Arc::new(f.open().await), Arc::new(f.open().await));

    // Act
    let mut calls = Vec::new();
    for i in 0..12 {
        let call = if i % 3 == 0 { Arc::clone(&there) } else { Arc::clone(&here) };
        calls.push(tokio::spawn(async move { call.run(&deadline(), |a| a.provider.identity(a.token)).await }));
    }
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }

    // Assert
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    f.server.verify().await;
    assert_eq!(f.stored_tokens().await.1, ROTATED_REFRESH_TOKEN, "the rotated refresh token is kept");
}

#[tokio::test]
async fn a_refused_refresh_ends_the_connection_with_one_auth_error() {
    // Arrange
    let f = fixture(Duration::hours(1)).await;
    f.mount_user(NEW_ACCESS_TOKEN).await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": "invalid_grant", "error_description": "Refresh token has expired"})),
        )
        .expect(1)
        .mount(&f.server)
        .await;
    let call = f.open().await;

    // Act
    let refused = call.run(&deadline(), |a| a.provider.identity(a.token)).await;

    // Assert
    let error = refused.unwrap_err();
    assert!(matches!(error, CallError::GrantEnded { .. }), "{error:?}");
    assert_eq!(error.error_type(), ErrorType::Auth);
    let stored = f.t.store().get_connection(f.tenant.id, f.connection.base.id).await.unwrap();
    assert_ne!(stored.status, ConnectionStatus::Active, "the connection needs the user again");
    let errors =
        f.t.store()
            .list_errors(
                f.tenant.id,
                &SyncErrorFilter { connection_id: Some(f.connection.base.id), ..Default::default() },
                PageRequest::first(10),
            )
            .await
            .unwrap()
            .items;
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].error_type, errors[0].error_code.as_deref()), (ErrorType::Auth, Some("invalid_grant")));
    let answer: ApiError = error.into();
    assert_eq!(answer.status().as_u16(), 409, "reconnecting is the user's to do");
}

#[tokio::test]
async fn a_token_refused_again_after_a_refresh_is_a_failure_not_another_refresh() {
    // Arrange: the provider refuses every token (the app's access was removed).
    let f = fixture(Duration::hours(1)).await;
    f.mount_user("a-token-nobody-has").await;
    f.mount_refresh(1).await;
    let call = f.open().await;

    // Act
    let first = call.run(&deadline(), |a| a.provider.identity(a.token)).await;
    let second = call.run(&deadline(), |a| a.provider.identity(a.token)).await;

    // Assert
    for refused in [first, second] {
        let e = refused.unwrap_err();
        assert!(matches!(e, CallError::Provider(ProviderError::Rejected { status: 401, .. })), "{e:?}");
    }
    f.server.verify().await;
}

#[tokio::test]
async fn error_rows_are_scrubbed_of_every_token_the_call_handled_and_failures_map_to_http() {
    // Arrange: a provider whose error text quotes the token it was sent.
    let f = fixture(Duration::hours(1)).await;
    Mock::given(method("GET"))
        .and(path("/2.0/users/me"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "type": "error", "status": 400, "code": "bad_request",
            "message": format!("token {ACCESS_TOKEN} and secret {CLIENT_SECRET} are not welcome here")
        })))
        .mount(&f.server)
        .await;
    let call = f.open().await;

    // Act
    let error = call.run(&deadline(), |a| a.provider.identity(a.token)).await.unwrap_err();
    let row = call.error_row("identity", &error, "reading the account failed").job(JobId::generate()).build();
    let throttled: ApiError = CallError::Provider(ProviderError::RateLimited { retry_after: None }).into();
    let missing: ApiError =
        CallError::Provider(ProviderError::NotConfigured { provider: ProviderType::Box, hint: "x".into() }).into();
    let unsupported: ApiError = CallError::Provider(ProviderError::Unsupported("no comments".into())).into();

    // Assert
    assert_eq!(row.error_type, ErrorType::Api);
    assert_eq!(row.error_code.as_deref(), Some("bad_request"));
    assert!(
        !row.error_message.contains(ACCESS_TOKEN) && !row.error_message.contains(CLIENT_SECRET),
        "{}",
        row.error_message
    );
    assert!(row.error_message.starts_with("reading the account failed: "), "{}", row.error_message);
    assert_eq!(row.error_metadata.as_ref().unwrap()["operation"], "identity");
    assert!(row.sync_job_id.is_some());
    assert_eq!(throttled.status().as_u16(), 429, "a throttled provider is a 429 for the caller to wait out");
    assert_eq!(missing.status().as_u16(), 503);
    assert_eq!(unsupported.status().as_u16(), 400);
}
