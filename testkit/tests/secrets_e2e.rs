//! No secret in any log line or response, end to end: every `tracing` event of the process
//! (text and JSON formats, TRACE level, span events included) is captured across connecting
//! two accounts (oauth-authorize, then oauth-callback against provider fakes, one of them
//! failing once), refreshing their tokens (token-refresh) and reading the connections through
//! the API (connections), and searched for the fake tokens, the client secret, the PKCE
//! verifiers and the authorization codes.
//!
//! One test in this binary: the capture is the process-wide subscriber, so it also sees
//! threads other than the test's.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::json;
use shared::db::{PageRequest, ProviderType};
use shared::vault::TokenContext;
use testkit::http::{ApiEvent, Reply, TestApp, call};
use testkit::logs;
use testkit::providers::*;
use tracing_subscriber::layer::SubscriberExt;
use wiremock::matchers::{bearer_token, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RETURN_TO: &str = "https://app.quodsi.test/settings";
const FAILING_CODE: &str = "auth-code-fails-7d2e";

/// Everything of this process at TRACE, except the fake server reporting what it received
/// (the secrets the test itself sent it).
fn capture_all() -> logs::Captured {
    let captured = logs::Captured::default();
    let span_events = || tracing_subscriber::fmt::format::FmtSpan::FULL;
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("trace,wiremock=off"))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(captured.clone())
                .with_ansi(false)
                .with_span_events(span_events()),
        )
        .with(tracing_subscriber::fmt::layer().json().with_writer(captured.clone()).with_span_events(span_events()));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this test binary");
    captured
}

async fn app(server: &MockServer) -> TestApp {
    let uri = server.uri();
    let entry = |kind: &str| {
        json!({
            "client_id": format!("{kind}-client-id"),
            "client_secret": CLIENT_SECRET,
            "authorize_url": format!("{uri}/authorize"),
            "token_url": format!("{uri}/token"),
            "api_base_url": uri,
        })
    };
    TestApp::with_config(json!({
        "providers": { "gdrive": entry("gdrive"), "box": entry("box") },
        "return_to_allowlist": ["https://app.quodsi.test"],
        "oauth_redirect_base_url": REDIRECT_BASE,
    }))
    .await
}

async fn mount(server: &MockServer) {
    let token = |pairs: &[(&'static str, &str)], body: serde_json::Value| {
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(form(pairs))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
    };
    let code = [("grant_type", "authorization_code"), ("code", CODE)];
    token(&code, google_tokens(ACCESS_TOKEN, REFRESH_TOKEN)).mount(server).await;
    // Box's single-use refresh token rotates on refresh; Google's stays.
    let box_refresh =
        [("grant_type", "refresh_token"), ("refresh_token", REFRESH_TOKEN), ("client_id", "box-client-id")];
    token(&box_refresh, box_tokens(NEW_ACCESS_TOKEN, ROTATED_REFRESH_TOKEN)).mount(server).await;
    let google_refresh =
        [("grant_type", "refresh_token"), ("refresh_token", REFRESH_TOKEN), ("client_id", "gdrive-client-id")];
    token(&google_refresh, google_refreshed(NEW_ACCESS_TOKEN)).mount(server).await;
    // A refusal that quotes what it was sent, as some token services do.
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(form(&[("code", FAILING_CODE)]))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": format!("code {FAILING_CODE} is invalid for client secret {CLIENT_SECRET}"),
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/userinfo"))
        .and(bearer_token(ACCESS_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(google_userinfo()))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/users/me"))
        .and(bearer_token(ACCESS_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(box_user()))
        .mount(server)
        .await;
}

fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// Everything a client could see of a reply.
fn seen(reply: &Reply) -> String {
    let headers: Vec<String> =
        reply.headers.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or(""))).collect();
    format!("{}\n{}", headers.join("\n"), reply.text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_secret_verifier_or_code_reaches_a_log_line_or_a_response() {
    // Arrange
    let captured = capture_all();
    let server = MockServer::start().await;
    mount(&server).await;
    let t = app(&server).await;
    let tenant = t.tenant().await;
    let authorize = oauth_authorize::router(t.app.clone());
    let callback = oauth_callback::router(t.app.clone());
    let connections = connections::router(t.app.clone());
    let mut replies = Vec::new();

    // Act: connect Google Drive and Box, one failed attempt, refresh, read back.
    for (kind, code) in [(ProviderType::GDrive, CODE), (ProviderType::Box, CODE), (ProviderType::GDrive, FAILING_CODE)]
    {
        let event = ApiEvent::load("oauth-authorize/authorize")
            .caller(&tenant)
            .path(&format!("/connections/{kind}/authorize"))
            .json(&json!({ "return_to": RETURN_TO }));
        let started = call(&authorize, &event).await;
        assert_eq!(started.status, 200, "{}", started.text);
        let state = query_of(started.body["authorization_url"].as_str().unwrap())["state"].clone();
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("code", code)
            .append_pair("state", &state)
            .finish();
        let event = ApiEvent::load("oauth-callback/callback")
            .path(&format!("/oauth/callback/{kind}"))
            .query(&query)
            .cookie(started.set_cookie_pair().expect("the browser-binding cookie"));
        let finished = call(&callback, &event).await;
        assert_eq!(finished.status, 302, "{}", finished.text);
        replies.extend([started, finished]);
    }
    let settings = token_refresh::Settings {
        // Both new tokens expire within two hours: due now.
        window: Duration::from_secs(2 * 3600),
        provider_timeout: Duration::from_secs(5),
        ..token_refresh::Settings::default()
    };
    let report = token_refresh::run(&t.app, &settings).await;
    let list = call(&connections, &ApiEvent::load("connections/list").caller(&tenant).query("")).await;
    let ids: Vec<String> =
        list.body["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
    for id in &ids {
        let event = ApiEvent::load("connections/get").caller(&tenant).path(&format!("/connections/{id}"));
        replies.push(call(&connections, &event).await);
    }
    replies.push(list);

    // Assert: the flow really ran...
    let locations: Vec<&str> = replies.iter().filter_map(|r| r.header("location")).collect();
    assert_eq!(
        ids.len(),
        2,
        "two accounts connected, the failed attempt stored nothing: {locations:?} {}",
        replies.last().unwrap().text
    );
    assert_eq!(report.acted, 2, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    let current = t.app.current().await.unwrap();
    for id in &ids {
        let c = t.store().get_connection(tenant.id, id.parse().unwrap()).await.unwrap();
        let access = current.vault.decrypt(TokenContext::access(tenant.id, c.base.id), &c.encrypted_access_token);
        assert_eq!(access.unwrap().expose_secret(), NEW_ACCESS_TOKEN, "refreshed");
    }
    // ... the PKCE verifiers it sent are known...
    let mut forbidden: Vec<String> = SECRETS.iter().map(|s| (*s).to_owned()).collect();
    forbidden.extend([CODE.to_owned(), FAILING_CODE.to_owned()]);
    for request in server.received_requests().await.unwrap() {
        if let Some((_, verifier)) = form_urlencoded::parse(&request.body).find(|(k, _)| k == "code_verifier") {
            forbidden.push(verifier.into_owned());
        }
    }
    assert!(forbidden.len() > SECRETS.len() + 2, "PKCE verifiers were sent");
    // ... the capture saw the run...
    let logs = captured.text();
    for expected in ["authorization started", "connection stored", "connecting failed"] {
        assert!(logs.contains(expected), "{expected:?} not logged; the capture is not working");
    }
    // ... the failed attempt was recorded on the Google Drive connection...
    let errors = t.store().list_errors(tenant.id, &Default::default(), PageRequest::first(10)).await.unwrap().items;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let recorded = serde_json::to_string(&errors[0]).unwrap();
    assert!(recorded.contains("[redacted]"), "{recorded}");
    // ... and nothing secret is in it, in the error row or in anything a client got.
    for secret in &forbidden {
        assert!(!recorded.contains(secret.as_str()), "{secret:?} in the error row: {recorded}");
        let line = logs.lines().find(|l| l.contains(secret.as_str())).unwrap_or_default();
        assert!(line.is_empty(), "{secret:?} logged: {line}");
        for reply in &replies {
            assert!(!seen(reply).contains(secret.as_str()), "{secret:?} in a response: {}", seen(reply));
        }
    }
}
