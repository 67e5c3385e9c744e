//! `POST /connections/{provider}/authorize` through the real router, fed API Gateway events
//! from `events/oauth-authorize/`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::db::ProviderType;
use shared::oauth::{OAuthState, STATE_LIFETIME};
use testkit::Tenant;
use testkit::http::{ApiEvent, Reply, TestApp, call};

const REDIRECT_BASE: &str = "https://api.quodsi.test/prod";
const FIRST_ALLOWED: &str = "https://app.quodsi.test";

/// OneDrive and Google configured; Box is left out to be the unconfigured provider.
async fn app() -> TestApp {
    let client = |name: &str| json!({"client_id": format!("{name}-client-id"), "client_secret": "cs-FAKE-0b7e"});
    TestApp::with_config(json!({
        "providers": { "onedrive": client("onedrive"), "gdrive": client("gdrive") },
        "return_to_allowlist": [FIRST_ALLOWED, "https://admin.quodsi.test/connections/"],
        "oauth_redirect_base_url": REDIRECT_BASE,
    }))
    .await
}

fn event(t: &Tenant, provider: &str) -> ApiEvent {
    ApiEvent::load("oauth-authorize/authorize").caller(t).path(&format!("/connections/{provider}/authorize"))
}

async fn post(t: &TestApp, event: &ApiEvent) -> Reply {
    call(&oauth_authorize::router(t.app.clone()), event).await
}

fn query_of(url: &str) -> HashMap<String, String> {
    reqwest::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

async fn opened(t: &TestApp, provider: ProviderType, reply: &Reply) -> OAuthState {
    let url = reply.body["authorization_url"].as_str().expect("authorization_url");
    let current = t.app.current().await.unwrap();
    OAuthState::open(&current.state_sealer, provider, &query_of(url)["state"], Utc::now()).expect("our own state")
}

#[tokio::test]
async fn answers_a_pkce_authorization_url_with_a_sealed_state() {
    // Arrange
    let t = app().await;
    let tenant = t.tenant().await;
    let body = json!({"display_name": "Work OneDrive", "return_to": "https://app.quodsi.test/settings?tab=cloud"});
    let before = Utc::now();

    // Act
    let reply = post(&t, &event(&tenant, "onedrive").json(&body)).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let url = reply.body["authorization_url"].as_str().unwrap();
    assert!(url.starts_with("https://login.microsoftonline.com/common/oauth2/v2.0/authorize?"), "{url}");
    let q = query_of(url);
    assert_eq!(q["client_id"], "onedrive-client-id");
    assert_eq!(q["redirect_uri"], format!("{REDIRECT_BASE}/oauth/callback/onedrive"));
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(!q["state"].contains("quodsi") && !q["state"].contains("Work"), "the state is opaque");
    let state = opened(&t, ProviderType::OneDrive, &reply).await;
    assert_eq!((state.tenant_id, state.user_id), (tenant.id, tenant.user));
    assert_eq!(state.return_to, "https://app.quodsi.test/settings?tab=cloud");
    assert_eq!(state.display_name.as_deref(), Some("Work OneDrive"));
    assert_eq!(q["code_challenge"], state.pkce.challenge(), "the challenge of the sealed verifier");
    let expires_at: DateTime<Utc> = reply.body["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires_at >= before + STATE_LIFETIME - chrono::Duration::seconds(1));
    assert!(expires_at <= Utc::now() + STATE_LIFETIME);
    assert_eq!(state.expires_at.timestamp(), expires_at.timestamp());
}

#[tokio::test]
async fn without_a_body_the_first_allowlist_entry_is_the_return_url() {
    // Arrange
    let t = app().await;
    let tenant = t.tenant().await;

    // Act
    let reply = post(&t, &event(&tenant, "gdrive").without_body()).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    let state = opened(&t, ProviderType::GDrive, &reply).await;
    assert_eq!(state.return_to, FIRST_ALLOWED);
    assert_eq!(state.display_name, None);
}

#[tokio::test]
async fn a_return_url_outside_the_allowlist_is_a_400_naming_return_to() {
    // Arrange
    let t = app().await;
    let tenant = t.tenant().await;
    let refused = [
        "https://evil.test/",
        "https://app.quodsi.test.evil.test/",
        "https://app.quodsi.test@evil.test/",
        "http://app.quodsi.test/",
        "https://admin.quodsi.test/other",
        "javascript:alert(1)",
        "//evil.test",
        "https://app.quodsi.test/\u{e9}",
        "",
    ];

    for return_to in refused {
        // Act
        let reply = post(&t, &event(&tenant, "onedrive").json(&json!({ "return_to": return_to }))).await;

        // Assert
        assert_eq!(reply.status, 400, "{return_to}: {}", reply.text);
        assert_eq!(reply.error_field(), Some("return_to"), "{return_to}");
    }
    let allowed =
        post(&t, &event(&tenant, "onedrive").json(&json!({"return_to": "https://admin.quodsi.test/connections/new"})))
            .await;
    assert_eq!(allowed.status, 200, "a prefix entry allows what is under it: {}", allowed.text);
}

#[tokio::test]
async fn an_unknown_provider_is_a_400_naming_provider() {
    let t = app().await;
    let tenant = t.tenant().await;

    let reply = post(&t, &event(&tenant, "icloud").without_body()).await;

    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error_field(), Some("provider"));
}

#[tokio::test]
async fn a_provider_without_credentials_is_a_503_saying_how_to_configure_it() {
    let t = app().await;
    let tenant = t.tenant().await;

    let reply = post(&t, &event(&tenant, "box").without_body()).await;

    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.error_code(), "provider_not_configured");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("providers.box") && message.contains("client_secret"), "{message}");
}

#[tokio::test]
async fn no_callback_base_is_a_503_too() {
    let t = TestApp::with_config(json!({
        "providers": { "dropbox": {"client_id": "id", "client_secret": "secret"} },
        "return_to_allowlist": [FIRST_ALLOWED],
    }))
    .await;
    let tenant = t.tenant().await;

    let reply = post(&t, &event(&tenant, "dropbox").without_body()).await;

    assert_eq!(reply.status, 503, "{}", reply.text);
    assert!(reply.text.contains("oauth_redirect_base_url"), "{}", reply.text);
}

#[tokio::test]
async fn invalid_bodies_and_callers_are_refused() {
    // Arrange
    let t = app().await;
    let tenant = t.tenant().await;
    let cases: [(&str, Value, &str); 6] = [
        ("too long", json!({"display_name": "x".repeat(256)}), "display_name"),
        ("blank", json!({"display_name": "  "}), "display_name"),
        ("not a string", json!({"return_to": 5}), "return_to"),
        ("unknown field", json!({"provider_user_id": "x"}), ""),
        // serde would read the two optional fields from an array, in order.
        ("an array", json!([null, null]), ""),
        ("a string", json!("onedrive"), ""),
    ];

    for (what, body, field) in cases {
        // Act
        let reply = post(&t, &event(&tenant, "onedrive").json(&body)).await;

        // Assert
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        if !field.is_empty() {
            assert_eq!(reply.error_field(), Some(field), "{what}");
        }
    }
    let anonymous = post(&t, &event(&tenant, "onedrive").without_authorizer()).await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_json_400_naming_it() {
    // Arrange: %FF percent-decodes to a byte that is not UTF-8.
    let t = TestApp::new().await;
    let a = t.tenant().await;
    let router = oauth_authorize::router(t.app.clone());

    // Act
    let reply = call(&router, &event(&a, "%FF")).await;

    // Assert: the JSON envelope naming the parameter, not axum's plain-text rejection.
    assert_eq!(
        (reply.status, reply.error_code(), reply.error_field()),
        (400, "invalid_field", Some("provider")),
        "{}",
        reply.text
    );
}
