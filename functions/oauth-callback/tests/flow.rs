//! Connecting an account end to end through the real routers of `oauth-authorize` and
//! `oauth-callback`, fed API Gateway events from `events/`, against wiremock fakes of each
//! provider answering with the bodies the provider documents.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use shared::db::{
    Connection, ConnectionFilter, ConnectionStatus, ErrorType, PageRequest, ProviderType, SyncErrorFilter,
};
use shared::oauth::OAuthState;
use shared::providers::Pkce;
use shared::vault::TokenContext;
use testkit::Tenant;
use testkit::http::{ApiEvent, Reply, TestApp, call};
use testkit::providers::*;
use wiremock::matchers::{bearer_token, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ALL: [ProviderType; 5] =
    [ProviderType::OneDrive, ProviderType::SharePoint, ProviderType::GDrive, ProviderType::Dropbox, ProviderType::Box];
const APP_ORIGIN: &str = "https://app.quodsi.test";
const RETURN_TO: &str = "https://app.quodsi.test/settings/connections";
/// A second authorization code, and the account it belongs to in the fakes.
const CODE_2: &str = "auth-code-0002";
const OTHER_ACCOUNT: &str = "other-account-0002";

// ---- arrangement ----------------------------------------------------------------------

/// The app with every provider pointed at `server`, and the configuration fields of `extra`.
async fn app_with(server: &MockServer, extra: Value) -> TestApp {
    let uri = server.uri();
    let mut providers = serde_json::Map::new();
    for kind in ALL {
        providers.insert(
            kind.to_string(),
            json!({
                "client_id": format!("{kind}-client-id"),
                "client_secret": CLIENT_SECRET,
                "authorize_url": format!("{uri}/authorize"),
                "token_url": format!("{uri}/token"),
                "api_base_url": uri,
            }),
        );
    }
    let mut config = json!({
        "providers": providers,
        "return_to_allowlist": [APP_ORIGIN, "https://admin.quodsi.test/connections/"],
        "oauth_redirect_base_url": REDIRECT_BASE,
    });
    config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    TestApp::with_config(config).await
}

struct World {
    t: TestApp,
    server: MockServer,
    authorize: axum::Router,
    callback: axum::Router,
    /// The browser's cookies: what authorize sets, the callback sends back, as a browser does.
    jar: std::sync::Mutex<HashMap<String, String>>,
}

async fn world() -> World {
    world_with(json!({})).await
}

/// A world whose configuration has `extra` too.
async fn world_with(extra: Value) -> World {
    let server = MockServer::start().await;
    let t = app_with(&server, extra).await;
    let authorize = oauth_authorize::router(t.app.clone());
    let callback = oauth_callback::router(t.app.clone());
    World { t, server, authorize, callback, jar: Default::default() }
}

/// The token endpoint redeeming `code` (with this redirect URI and the client secret) for
/// `access` and `refresh` in the provider's documented shape.
async fn mount_tokens(w: &World, kind: ProviderType, code: &str, body: Value) {
    let redirect_uri = format!("{REDIRECT_BASE}/oauth/callback/{kind}");
    let mut pairs = vec![("grant_type", "authorization_code"), ("code", code), ("client_secret", CLIENT_SECRET)];
    if kind != ProviderType::Box {
        pairs.push(("redirect_uri", redirect_uri.as_str()));
    }
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(form(&pairs))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&w.server)
        .await;
}

/// The identity endpoints of `kind` for `access`; `account` replaces the documented id.
async fn mount_identity(w: &World, kind: ProviderType, access: &str, account: Option<&str>) {
    let with_id = |mut body: Value, key: &str| {
        if let Some(id) = account {
            body[key] = json!(id);
        }
        body
    };
    let get = |p: &str, body: Value| {
        Mock::given(method("GET"))
            .and(path(p.to_owned()))
            .and(bearer_token(access))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
    };
    match kind {
        ProviderType::OneDrive => {
            get("/v1.0/me", with_id(graph_me(), "id")).mount(&w.server).await;
            get("/v1.0/me/drive", graph_drive("personal")).mount(&w.server).await;
        }
        ProviderType::SharePoint => {
            get("/v1.0/me", with_id(graph_me(), "id")).mount(&w.server).await;
            get("/v1.0/sites/root", graph_root_site()).mount(&w.server).await;
            get("/v1.0/sites/root/drive", graph_drive("documentLibrary")).mount(&w.server).await;
        }
        ProviderType::GDrive => get("/v1/userinfo", with_id(google_userinfo(), "sub")).mount(&w.server).await,
        ProviderType::Dropbox => {
            Mock::given(method("POST"))
                .and(path("/2/users/get_current_account"))
                .and(bearer_token(access))
                .respond_with(ResponseTemplate::new(200).set_body_json(with_id(dropbox_account(), "account_id")))
                .mount(&w.server)
                .await
        }
        ProviderType::Box => get("/2.0/users/me", with_id(box_user(), "id")).mount(&w.server).await,
    }
}

/// Token endpoint and identity for the usual code and account.
async fn mount_provider(w: &World, kind: ProviderType) {
    mount_tokens(w, kind, CODE, tokens(kind, ACCESS_TOKEN, REFRESH_TOKEN)).await;
    mount_identity(w, kind, ACCESS_TOKEN, None).await;
}

/// What each provider's fakes should end up as in the row.
struct Expected {
    provider_user_id: &'static str,
    email: &'static str,
    metadata_key: &'static str,
    metadata_value: &'static str,
    scope: &'static str,
    expires_in: i64,
}

fn expected(kind: ProviderType) -> Expected {
    match kind {
        ProviderType::OneDrive => Expected {
            provider_user_id: "48d31887-5fad-4d73-a9f5-3c356e68a038",
            email: "MeganB@contoso.test",
            metadata_key: "drive_type",
            metadata_value: "personal",
            scope: "User.Read Files.ReadWrite",
            expires_in: 3599,
        },
        ProviderType::SharePoint => Expected {
            provider_user_id: "48d31887-5fad-4d73-a9f5-3c356e68a038",
            email: "MeganB@contoso.test",
            metadata_key: "site_url",
            metadata_value: "https://contoso.sharepoint.com/teams/1drvteam",
            scope: "User.Read Files.ReadWrite",
            expires_in: 3599,
        },
        ProviderType::GDrive => Expected {
            provider_user_id: "110169484474386276334",
            email: "ada@example.test",
            metadata_key: "account_type",
            metadata_value: "consumer",
            scope: "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/drive",
            expires_in: 3920,
        },
        ProviderType::Dropbox => Expected {
            provider_user_id: "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
            email: "franz@example.test",
            metadata_key: "root_namespace_id",
            metadata_value: "3235641",
            scope: "account_info.read files.content.read files.content.write files.metadata.read sharing.read sharing.write",
            expires_in: 14400,
        },
        // Box states no scope: the row records the scopes asked for.
        ProviderType::Box => Expected {
            provider_user_id: "11446498",
            email: "ceo@example.test",
            metadata_key: "enterprise_id",
            metadata_value: "1910967",
            scope: "root_readwrite",
            expires_in: 3600,
        },
    }
}

// ---- acting ---------------------------------------------------------------------------

fn query_of(url: &str) -> HashMap<String, String> {
    reqwest::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// `POST /connections/{kind}/authorize`; returns the authorization URL.
async fn authorize(w: &World, t: &Tenant, kind: ProviderType, body: Value) -> String {
    let event = ApiEvent::load("oauth-authorize/authorize")
        .caller(t)
        .path(&format!("/connections/{kind}/authorize"))
        .json(&body);
    let reply = call(&w.authorize, &event).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    keep_cookie(w, &reply);
    reply.body["authorization_url"].as_str().unwrap().to_owned()
}

/// Stores (or, for an expired one, drops) the cookie a reply sets, as the browser would.
fn keep_cookie(w: &World, reply: &Reply) {
    let Some(set) = reply.header("set-cookie") else { return };
    let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
    let mut jar = w.jar.lock().unwrap();
    if set.contains("Max-Age=0") {
        jar.remove(name);
    } else {
        jar.insert(name.to_owned(), value.to_owned());
    }
}

fn state_of(authorization_url: &str) -> String {
    query_of(authorization_url)["state"].clone()
}

/// The provider's redirect to the callback, from the browser holding the jar's cookies.
async fn callback(w: &World, kind: ProviderType, params: &[(&str, &str)]) -> Reply {
    let cookies: Vec<String> = w.jar.lock().unwrap().iter().map(|(n, v)| format!("{n}={v}")).collect();
    let reply = callback_with_cookies(w, kind, params, &cookies).await;
    keep_cookie(w, &reply);
    reply
}

/// The callback from a browser with exactly `cookies` (`name=value`).
async fn callback_with_cookies(w: &World, kind: ProviderType, params: &[(&str, &str)], cookies: &[String]) -> Reply {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    let mut event =
        ApiEvent::load("oauth-callback/callback").path(&format!("/oauth/callback/{kind}")).query(&query.finish());
    for cookie in cookies {
        event = event.cookie(cookie);
    }
    call(&w.callback, &event).await
}

/// Authorize, then come back with `code`.
async fn connect_with(w: &World, t: &Tenant, kind: ProviderType, code: &str, body: Value) -> Reply {
    let url = authorize(w, t, kind, body).await;
    callback(w, kind, &[("code", code), ("state", &state_of(&url))]).await
}

/// The redirect's target and its query.
fn redirected(reply: &Reply) -> (String, HashMap<String, String>) {
    assert_eq!(reply.status, 302, "{}", reply.text);
    let location = reply.header("location").expect("a Location header").to_owned();
    let query = query_of(&location);
    (location, query)
}

fn connection_id(reply: &Reply) -> shared::db::ConnectionId {
    let (_, q) = redirected(reply);
    q.get("connection_id").unwrap_or_else(|| panic!("no connection_id in {q:?}")).parse().unwrap()
}

// ---- asserting ------------------------------------------------------------------------

async fn connections_of(w: &World, t: &Tenant) -> Vec<Connection> {
    let filter = ConnectionFilter::default();
    w.t.store().list_connections(t.id, &filter, PageRequest::first(50)).await.unwrap().items
}

async fn decrypted(w: &World, c: &Connection) -> (String, Option<String>) {
    let current = w.t.app.current().await.unwrap();
    let (tenant, id) = (c.base.tenant_id, c.base.id);
    let access = current.vault.decrypt(TokenContext::access(tenant, id), &c.encrypted_access_token).unwrap();
    let refresh = c
        .encrypted_refresh_token
        .as_ref()
        .map(|r| current.vault.decrypt(TokenContext::refresh(tenant, id), r).unwrap().expose_secret().to_owned());
    (access.expose_secret().to_owned(), refresh)
}

async fn error_rows(w: &World, t: &Tenant) -> Vec<shared::db::SyncError> {
    let filter = SyncErrorFilter::default();
    w.t.store().list_errors(t.id, &filter, PageRequest::first(50)).await.unwrap().items
}

/// Every value of every row of every table, as bytes, read past the store.
fn raw_cells(t: &TestApp) -> Vec<(String, Vec<u8>)> {
    let db =
        rusqlite::Connection::open_with_flags(t.database_path(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut cells = Vec::new();
    for table in tables {
        let mut st = db.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let names: Vec<String> = st.column_names().map(str::to_owned).collect();
        let mut rows = st.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for (i, name) in names.iter().enumerate() {
                let bytes = match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => Vec::new(),
                    rusqlite::types::ValueRef::Integer(n) => n.to_string().into_bytes(),
                    rusqlite::types::ValueRef::Real(f) => f.to_string().into_bytes(),
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
                };
                cells.push((format!("{table}.{name}"), bytes));
            }
        }
    }
    cells
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

// ---- the whole flow, per provider -----------------------------------------------------

#[tokio::test]
async fn every_provider_connects_end_to_end() {
    for kind in ALL {
        // Arrange
        let w = world().await;
        let tenant = w.t.tenant().await;
        mount_provider(&w, kind).await;
        let body = json!({"display_name": format!("My {kind}"), "return_to": RETURN_TO});

        // Act
        let url = authorize(&w, &tenant, kind, body).await;
        let before = Utc::now();
        let reply = callback(&w, kind, &[("code", CODE), ("state", &state_of(&url))]).await;
        let after = Utc::now();

        // Assert
        let (location, query) = redirected(&reply);
        assert!(location.starts_with(&format!("{RETURN_TO}?connection_id=")), "{kind}: {location}");
        assert_eq!(query["provider"], kind.to_string());
        let rows = connections_of(&w, &tenant).await;
        assert_eq!(rows.len(), 1, "{kind}");
        let c = &rows[0];
        let e = expected(kind);
        assert_eq!(c.base.id, connection_id(&reply), "{kind}");
        assert_eq!(c.user_id, tenant.user, "{kind}");
        assert_eq!(c.provider_type, kind);
        assert_eq!(c.provider_user_id, e.provider_user_id, "{kind}");
        assert_eq!(c.provider_user_email.as_deref(), Some(e.email), "{kind}");
        assert_eq!(c.connection_metadata.as_ref().unwrap()[e.metadata_key], e.metadata_value, "{kind}");
        assert_eq!(c.status, ConnectionStatus::Active, "{kind}");
        assert_eq!(c.scope, e.scope, "{kind}");
        assert_eq!(c.display_name.as_deref(), Some(format!("My {kind}").as_str()));
        let lifetime = chrono::Duration::seconds(e.expires_in);
        let slack = chrono::Duration::seconds(1);
        assert!(c.token_expiry >= before + lifetime - slack && c.token_expiry <= after + lifetime, "{kind}");
        assert_eq!(decrypted(&w, c).await, (ACCESS_TOKEN.to_owned(), Some(REFRESH_TOKEN.to_owned())), "{kind}");
        // The verifier sent to the token endpoint is the one whose challenge the consent page got.
        let token_call = w.server.received_requests().await.unwrap().into_iter().find(|r| r.url.path() == "/token");
        let form: HashMap<String, String> =
            form_urlencoded::parse(&token_call.expect("a token call").body).into_owned().collect();
        if kind == ProviderType::Box {
            assert!(!form.contains_key("code_verifier"), "Box does not do PKCE");
        } else {
            let verifier = Pkce::from_verifier(SecretString::from(form["code_verifier"].clone()));
            assert_eq!(verifier.challenge(), query_of(&url)["code_challenge"], "{kind}");
        }
    }
}

#[tokio::test]
async fn stored_rows_hold_no_token_or_secret_in_any_column() {
    // Arrange
    let w = world().await;
    let tenant = w.t.tenant().await;
    mount_provider(&w, ProviderType::Dropbox).await;

    // Act
    let reply = connect_with(&w, &tenant, ProviderType::Dropbox, CODE, json!({})).await;

    // Assert
    connection_id(&reply);
    let cells = raw_cells(&w.t);
    assert!(cells.iter().any(|(col, _)| col == "cloud_connections.encrypted_access_token"));
    for (column, bytes) in &cells {
        for secret in SECRETS {
            assert!(!contains(bytes, secret), "{secret} stored in {column}");
        }
    }
    assert!(!reply.text.contains(ACCESS_TOKEN) && !reply.header("location").unwrap().contains(ACCESS_TOKEN));
}

// ---- one row per account --------------------------------------------------------------

#[tokio::test]
async fn reconnecting_an_account_puts_new_tokens_on_its_one_row() {
    // Arrange
    let w = world().await;
    let tenant = w.t.tenant().await;
    let kind = ProviderType::OneDrive;
    mount_provider(&w, kind).await;
    mount_tokens(&w, kind, CODE_2, tokens(kind, NEW_ACCESS_TOKEN, ROTATED_REFRESH_TOKEN)).await;
    mount_identity(&w, kind, NEW_ACCESS_TOKEN, None).await;
    let first = connection_id(&connect_with(&w, &tenant, kind, CODE, json!({"display_name": "Work"})).await);

    // Act
    let second = connect_with(&w, &tenant, kind, CODE_2, json!({})).await;

    // Assert
    assert_eq!(connection_id(&second), first, "the same connection id");
    let rows = connections_of(&w, &tenant).await;
    assert_eq!(rows.len(), 1, "never a second row for one account");
    assert_eq!(rows[0].display_name.as_deref(), Some("Work"), "no display_name keeps the stored one");
    assert_eq!(rows[0].status, ConnectionStatus::Active);
    assert_eq!(decrypted(&w, &rows[0]).await, (NEW_ACCESS_TOKEN.to_owned(), Some(ROTATED_REFRESH_TOKEN.to_owned())));
}

#[tokio::test]
async fn a_reconnect_without_a_refresh_token_keeps_the_stored_one_and_revives_the_row() {
    // Arrange: Google sends a refresh token on the first consent only.
    let w = world().await;
    let tenant = w.t.tenant().await;
    let kind = ProviderType::GDrive;
    mount_provider(&w, kind).await;
    mount_tokens(&w, kind, CODE_2, google_refreshed(NEW_ACCESS_TOKEN)).await;
    mount_identity(&w, kind, NEW_ACCESS_TOKEN, None).await;
    let id = connection_id(&connect_with(&w, &tenant, kind, CODE, json!({})).await);
    let patch = shared::db::ConnectionPatch { status: Some(ConnectionStatus::Expired), ..Default::default() };
    w.t.store().update_connection(tenant.id, id, &patch).await.unwrap();

    // Act
    let reply = connect_with(&w, &tenant, kind, CODE_2, json!({"display_name": "Renamed"})).await;

    // Assert
    assert_eq!(connection_id(&reply), id);
    let c = w.t.store().get_connection(tenant.id, id).await.unwrap();
    assert_eq!(c.status, ConnectionStatus::Active, "a fresh grant makes the connection usable again");
    assert_eq!(c.display_name.as_deref(), Some("Renamed"));
    assert_eq!(c.scope, "https://www.googleapis.com/auth/drive");
    assert_eq!(decrypted(&w, &c).await, (NEW_ACCESS_TOKEN.to_owned(), Some(REFRESH_TOKEN.to_owned())));
}

#[tokio::test]
async fn a_second_account_of_the_same_provider_gets_its_own_row() {
    // Arrange
    let w = world().await;
    let tenant = w.t.tenant().await;
    let kind = ProviderType::Dropbox;
    mount_provider(&w, kind).await;
    mount_tokens(&w, kind, CODE_2, tokens(kind, NEW_ACCESS_TOKEN, ROTATED_REFRESH_TOKEN)).await;
    mount_identity(&w, kind, NEW_ACCESS_TOKEN, Some(OTHER_ACCOUNT)).await;
    let first = connection_id(&connect_with(&w, &tenant, kind, CODE, json!({})).await);

    // Act
    let second = connection_id(&connect_with(&w, &tenant, kind, CODE_2, json!({})).await);

    // Assert
    assert_ne!(first, second);
    let rows = connections_of(&w, &tenant).await;
    let accounts: Vec<&str> = rows.iter().map(|c| c.provider_user_id.as_str()).collect();
    assert_eq!(accounts, vec![expected(kind).provider_user_id, OTHER_ACCOUNT]);
    assert_eq!(decrypted(&w, &rows[1]).await.0, NEW_ACCESS_TOKEN);
    assert_eq!(decrypted(&w, &rows[0]).await.0, ACCESS_TOKEN, "the first account is untouched");
}

// ---- states that are not ours ---------------------------------------------------------

/// What is wrong with the state, the callback it reaches, its query and the error code.
type StateCase<'a> = (&'a str, ProviderType, Vec<(&'a str, &'a str)>, &'a str);

#[tokio::test]
async fn tampered_expired_foreign_and_missing_states_are_refused_and_store_nothing() {
    // Arrange
    let w = world().await;
    let tenant = w.t.tenant().await;
    for kind in [ProviderType::OneDrive, ProviderType::GDrive] {
        mount_provider(&w, kind).await;
    }
    let good = state_of(&authorize(&w, &tenant, ProviderType::OneDrive, json!({})).await);
    let mut tampered = good.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let current = w.t.app.current().await.unwrap();
    let expired = OAuthState {
        tenant_id: tenant.id,
        user_id: tenant.user,
        provider: ProviderType::OneDrive,
        pkce: Pkce::generate(),
        return_to: RETURN_TO.into(),
        display_name: None,
        expires_at: Utc::now() - chrono::Duration::seconds(1),
        browser_hash: shared::oauth::BrowserBinding::generate().hash().to_owned(),
    }
    .seal(&current.state_sealer);
    let cases: [StateCase; 5] = [
        ("tampered", ProviderType::OneDrive, vec![("code", CODE), ("state", &tampered)], "invalid_state"),
        ("expired", ProviderType::OneDrive, vec![("code", CODE), ("state", &expired)], "expired_state"),
        ("another provider's", ProviderType::GDrive, vec![("code", CODE), ("state", &good)], "invalid_state"),
        ("missing", ProviderType::OneDrive, vec![("code", CODE)], "invalid_field"),
        ("garbage", ProviderType::OneDrive, vec![("code", CODE), ("state", "%%not-base64%%")], "invalid_state"),
    ];

    for (what, kind, params, code) in cases {
        // Act
        let reply = callback(&w, kind, &params).await;

        // Assert
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        assert_eq!(reply.error_code(), code, "{what}");
        assert_eq!(reply.error_field(), Some("state"), "{what}");
        assert!(reply.header("location").is_none(), "{what}: no redirect without a trusted state");
    }
    assert!(connections_of(&w, &tenant).await.is_empty());
    let token_calls = w.server.received_requests().await.unwrap().iter().filter(|r| r.url.path() == "/token").count();
    assert_eq!(token_calls, 0, "no code was redeemed");
}

#[tokio::test]
async fn an_unknown_provider_is_a_400_naming_it() {
    let w = world().await;

    let reply = callback(&w, ProviderType::OneDrive, &[]).await;
    let event = ApiEvent::load("oauth-callback/callback").path("/oauth/callback/icloud");
    let unknown = call(&w.callback, &event).await;

    assert_eq!(reply.status, 400);
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert_eq!(unknown.error_field(), Some("provider"));
}

// ---- failures go back to the application ----------------------------------------------

#[tokio::test]
async fn denied_consent_redirects_with_the_providers_error() {
    // Arrange
    let w = world().await;
    let tenant = w.t.tenant().await;
    let url =
        authorize(&w, &tenant, ProviderType::Box, json!({"return_to": "https://app.quodsi.test/c?tab=cloud#top"}))
            .await;

    // Act
    let reply = callback(
        &w,
        ProviderType::Box,
        &[("error", "access_denied"), ("error_description", "The user denied access"), ("state", &state_of(&url))],
    )
    .await;

    // Assert
    let (location, query) = redirected(&reply);
    assert_eq!(location, "https://app.quodsi.test/c?tab=cloud&connection_error=access_denied&provider=box#top");
    assert_eq!(query["connection_error"], "access_denied");
    assert!(connections_of(&w, &tenant).await.is_empty());
    assert!(error_rows(&w, &tenant).await.is_empty(), "a refusal is the user's choice, not a fault");
}

/// Each way the provider can fail after consent, and the `connection_error` it becomes.
fn failures() -> Vec<(&'static str, ResponseTemplate, bool, &'static str, ErrorType)> {
    let ok_tokens = ResponseTemplate::new(200).set_body_json(dropbox_tokens(ACCESS_TOKEN, REFRESH_TOKEN));
    vec![
        (
            "token endpoint 400",
            ResponseTemplate::new(400).set_body_json(
                json!({"error": "invalid_grant", "error_description": "code doesn't exist or has expired"}),
            ),
            false,
            "invalid_grant",
            ErrorType::Auth,
        ),
        (
            "token endpoint 500",
            ResponseTemplate::new(500).set_body_string("oops"),
            false,
            "provider_unavailable",
            ErrorType::Api,
        ),
        (
            "malformed token JSON",
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_string("{\"access_tok"),
            false,
            "provider_bad_response",
            ErrorType::Api,
        ),
        ("identity failing", ok_tokens, true, "provider_rejected", ErrorType::Auth),
    ]
}

async fn mount_failure(w: &World, token_response: ResponseTemplate, identity_fails: bool) {
    w.server.reset().await;
    Mock::given(method("POST")).and(path("/token")).respond_with(token_response).mount(&w.server).await;
    if identity_fails {
        Mock::given(method("POST"))
            .and(path("/2/users/get_current_account"))
            .respond_with(ResponseTemplate::new(401).set_body_json(
                json!({"error_summary": "invalid_access_token/..", "error": {".tag": "invalid_access_token"}}),
            ))
            .mount(&w.server)
            .await;
    }
}

#[tokio::test]
async fn provider_failures_redirect_with_an_error_and_store_nothing() {
    let w = world().await;
    for (what, response, identity_fails, user_code, _) in failures() {
        // Arrange
        let tenant = w.t.tenant().await;
        mount_failure(&w, response, identity_fails).await;

        // Act
        let reply = connect_with(&w, &tenant, ProviderType::Dropbox, CODE, json!({"return_to": RETURN_TO})).await;

        // Assert
        let (location, query) = redirected(&reply);
        assert!(location.starts_with(RETURN_TO), "{what}: {location}");
        assert_eq!(query.get("connection_error").map(String::as_str), Some(user_code), "{what}");
        assert!(!query.contains_key("connection_id"), "{what}");
        assert!(connections_of(&w, &tenant).await.is_empty(), "{what}: nothing half-written");
        assert!(error_rows(&w, &tenant).await.is_empty(), "{what}: no connection to record it on");
    }
}

#[tokio::test]
async fn a_failed_reconnect_leaves_the_connection_as_it_was_and_records_the_error_on_it() {
    let w = world().await;
    for (what, response, identity_fails, user_code, error_type) in failures() {
        // Arrange
        let tenant = w.t.tenant().await;
        w.server.reset().await;
        mount_provider(&w, ProviderType::Dropbox).await;
        let id = connection_id(&connect_with(&w, &tenant, ProviderType::Dropbox, CODE, json!({})).await);
        let before = w.t.store().get_connection(tenant.id, id).await.unwrap();
        mount_failure(&w, response, identity_fails).await;

        // Act
        let reply = connect_with(&w, &tenant, ProviderType::Dropbox, CODE_2, json!({})).await;

        // Assert
        let (_, query) = redirected(&reply);
        assert_eq!(query.get("connection_error").map(String::as_str), Some(user_code), "{what}");
        let after = connections_of(&w, &tenant).await;
        assert_eq!(after.len(), 1, "{what}");
        assert_eq!(after[0].encrypted_access_token, before.encrypted_access_token, "{what}: tokens untouched");
        assert_eq!(after[0].base.updated_at, before.base.updated_at, "{what}: row untouched");
        let errors = error_rows(&w, &tenant).await;
        assert_eq!(errors.len(), 1, "{what}");
        assert_eq!(errors[0].connection_id, id, "{what}");
        assert_eq!(errors[0].error_type, error_type, "{what}");
        assert_eq!(errors[0].error_metadata.as_ref().unwrap()["operation"], "oauth_callback", "{what}");
        for secret in SECRETS {
            assert!(!errors[0].error_message.contains(secret), "{what}: {secret} in the error message");
        }
    }
}

#[tokio::test]
async fn a_token_endpoint_that_never_answers_is_a_timeout() {
    // Arrange: one second past the providers' 10-second total timeout.
    let w = world().await;
    let tenant = w.t.tenant().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(box_tokens(ACCESS_TOKEN, REFRESH_TOKEN))
                .set_delay(shared::providers::DEFAULT_TOTAL_TIMEOUT + Duration::from_secs(1)),
        )
        .mount(&w.server)
        .await;

    // Act
    let reply = connect_with(&w, &tenant, ProviderType::Box, CODE, json!({})).await;

    // Assert
    let (_, query) = redirected(&reply);
    assert_eq!(query["connection_error"], "provider_timeout");
    assert!(connections_of(&w, &tenant).await.is_empty());
}

// ---- a grant whose account cannot be identified ----------------------------------------

/// A token endpoint that redeems the code, and an identity call that fails.
async fn mount_identity_failure(w: &World, kind: ProviderType) {
    w.server.reset().await;
    mount_tokens(w, kind, CODE, tokens(kind, ACCESS_TOKEN, REFRESH_TOKEN)).await;
    let (verb, identity_path, body) = match kind {
        ProviderType::Dropbox => (
            "POST",
            "/2/users/get_current_account",
            json!({"error_summary": "invalid_access_token/..", "error": {".tag": "invalid_access_token"}}),
        ),
        _ => (
            "GET",
            "/v1.0/me",
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token validation failure."}}),
        ),
    };
    Mock::given(method(verb))
        .and(path(identity_path))
        .respond_with(ResponseTemplate::new(401).set_body_json(body))
        .expect(1)
        .mount(&w.server)
        .await;
}

#[tokio::test]
async fn a_failed_identity_call_revokes_the_fresh_grant() {
    // Arrange: Dropbox revokes with the access token
    // (https://www.dropbox.com/developers/documentation/http/documentation#auth-token-revoke).
    let w = world().await;
    let tenant = w.t.tenant().await;
    mount_identity_failure(&w, ProviderType::Dropbox).await;
    Mock::given(method("POST"))
        .and(path("/2/auth/token/revoke"))
        .and(bearer_token(ACCESS_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_raw("null", "application/json"))
        .expect(1)
        .mount(&w.server)
        .await;

    // Act
    let reply = connect_with(&w, &tenant, ProviderType::Dropbox, CODE, json!({})).await;

    // Assert
    let (_, query) = redirected(&reply);
    assert_eq!(query.get("connection_error").map(String::as_str), Some("provider_rejected"));
    assert!(connections_of(&w, &tenant).await.is_empty());
    w.server.verify().await;
    let paths: Vec<String> =
        w.server.received_requests().await.unwrap().iter().map(|r| r.url.path().to_owned()).collect();
    assert_eq!(paths, ["/token", "/2/users/get_current_account", "/2/auth/token/revoke"], "revoked after the failure");
}

#[tokio::test]
async fn a_failed_identity_call_on_a_reconnect_leaves_the_grant_alone() {
    // Arrange: the user already has a Dropbox connection; revoking the fresh grant could end
    // the grant that connection lives on.
    let w = world().await;
    let tenant = w.t.tenant().await;
    let existing =
        w.t.store()
            .create_connection(&shared::db::NewConnection {
                provider_type: ProviderType::Dropbox,
                ..testkit::new_connection(&tenant)
            })
            .await
            .unwrap();
    mount_identity_failure(&w, ProviderType::Dropbox).await;
    Mock::given(method("POST"))
        .and(path("/2/auth/token/revoke"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("null", "application/json"))
        .expect(0)
        .mount(&w.server)
        .await;

    // Act
    let reply = connect_with(&w, &tenant, ProviderType::Dropbox, CODE, json!({})).await;

    // Assert
    let (_, query) = redirected(&reply);
    assert_eq!(query.get("connection_error").map(String::as_str), Some("provider_rejected"));
    w.server.verify().await;
    let still = w.t.store().get_connection(tenant.id, existing.base.id).await.unwrap();
    assert_eq!(still.status, shared::db::ConnectionStatus::Active);
    assert_eq!(still.encrypted_access_token, existing.encrypted_access_token, "the connection is untouched");
}

#[tokio::test]
async fn a_failed_revocation_of_the_unused_grant_changes_nothing_but_a_log_line() {
    // Arrange
    let w = world().await;
    let tenant = w.t.tenant().await;
    mount_identity_failure(&w, ProviderType::Dropbox).await;
    Mock::given(method("POST"))
        .and(path("/2/auth/token/revoke"))
        .respond_with(ResponseTemplate::new(503).set_body_string(format!("cannot revoke {ACCESS_TOKEN}")))
        .expect(1)
        .mount(&w.server)
        .await;

    // Act
    let reply = connect_with(&w, &tenant, ProviderType::Dropbox, CODE, json!({})).await;

    // Assert
    let (location, query) = redirected(&reply);
    assert_eq!(query.get("connection_error").map(String::as_str), Some("provider_rejected"), "the identity error");
    for secret in SECRETS {
        assert!(!location.contains(secret), "{secret} in {location}");
    }
    assert!(connections_of(&w, &tenant).await.is_empty());
    assert!(error_rows(&w, &tenant).await.is_empty(), "no connection to record it on, and no row for the revoke");
    w.server.verify().await;
}

#[tokio::test]
async fn microsoft_has_no_revocation_to_call_after_a_failed_identity_call() {
    // Arrange: Microsoft identity platform has no token revocation endpoint.
    let w = world().await;
    let tenant = w.t.tenant().await;
    mount_identity_failure(&w, ProviderType::OneDrive).await;

    // Act
    let reply = connect_with(&w, &tenant, ProviderType::OneDrive, CODE, json!({})).await;

    // Assert
    let (_, query) = redirected(&reply);
    assert_eq!(query.get("connection_error").map(String::as_str), Some("provider_rejected"));
    assert!(connections_of(&w, &tenant).await.is_empty());
    let paths: Vec<String> =
        w.server.received_requests().await.unwrap().iter().map(|r| r.url.path().to_owned()).collect();
    assert_eq!(paths, ["/token", "/v1.0/me"], "only the exchange and the identity call");
}

// ---- the state is bound to the browser that started the flow --------------------------

/// The cookie name of `kind`'s binding.
fn binding_cookie(kind: ProviderType) -> String {
    shared::oauth::BrowserBinding::cookie_name(kind)
}

#[tokio::test]
async fn authorize_sets_the_binding_cookie_and_a_matching_callback_connects_and_clears_it() {
    // Arrange
    let w = world().await;
    let tenant = w.t.tenant().await;
    let kind = ProviderType::Dropbox;
    mount_provider(&w, kind).await;
    let event = ApiEvent::load("oauth-authorize/authorize")
        .caller(&tenant)
        .path(&format!("/connections/{kind}/authorize"))
        .json(&json!({}));
    let started = call(&w.authorize, &event).await;
    let cookie = started.set_cookie_pair().expect("a binding cookie").to_owned();
    let state = state_of(started.body["authorization_url"].as_str().unwrap());

    // Act
    let reply =
        callback_with_cookies(&w, kind, &[("code", CODE), ("state", &state)], std::slice::from_ref(&cookie)).await;

    // Assert
    let set = started.header("set-cookie").unwrap();
    assert!(cookie.starts_with(&format!("{}=", binding_cookie(kind))), "{set}");
    for attribute in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    let nonce = &cookie[binding_cookie(kind).len() + 1..];
    assert!(!state.contains(nonce) && !started.text.contains(nonce), "the nonce travels in the cookie only");
    let id = connection_id(&reply);
    assert_eq!(connections_of(&w, &tenant).await.iter().map(|c| c.base.id).collect::<Vec<_>>(), vec![id]);
    let cleared = reply.header("set-cookie").expect("the cookie is cleared");
    assert!(cleared.starts_with(&format!("{}=;", binding_cookie(kind))) && cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test]
async fn a_callback_without_the_browsers_cookie_or_with_another_is_refused_and_redeems_nothing() {
    // Arrange: the attacker starts a flow in their own browser and hands the URL to a victim,
    // whose browser has no cookie, or the cookie of a flow of its own.
    let w = world().await;
    let attacker = w.t.tenant().await;
    let victim = w.t.tenant().await;
    let kind = ProviderType::OneDrive;
    mount_provider(&w, kind).await;
    let attackers_state = state_of(&authorize(&w, &attacker, kind, json!({})).await);
    w.jar.lock().unwrap().clear();
    authorize(&w, &victim, kind, json!({})).await;
    let victims_cookie = w.jar.lock().unwrap().iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>();
    let cases: [(&str, Vec<String>); 4] = [
        ("no cookie", vec![]),
        ("another flow's cookie", victims_cookie),
        ("an altered cookie", vec![format!("{}=AAAA{}", binding_cookie(kind), "B".repeat(39))]),
        ("another provider's cookie name", vec![format!("{}=x", binding_cookie(ProviderType::Box))]),
    ];

    for (what, cookies) in cases {
        // Act
        let reply = callback_with_cookies(&w, kind, &[("code", CODE), ("state", &attackers_state)], &cookies).await;

        // Assert
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        assert_eq!(reply.error_code(), "state_not_bound", "{what}");
        assert!(reply.header("location").is_none(), "{what}: no redirect");
    }
    assert!(connections_of(&w, &attacker).await.is_empty(), "nothing stored for the attacker");
    assert!(connections_of(&w, &victim).await.is_empty(), "nothing stored for the victim");
    assert!(error_rows(&w, &attacker).await.is_empty());
    let received = w.server.received_requests().await.unwrap();
    assert_eq!(received.iter().filter(|r| r.url.path() == "/token").count(), 0, "no code was redeemed");
}

#[tokio::test]
async fn a_denied_consent_without_the_cookie_is_refused_too() {
    // Arrange
    let w = world().await;
    let tenant = w.t.tenant().await;
    let state = state_of(&authorize(&w, &tenant, ProviderType::Box, json!({})).await);

    // Act
    let reply =
        callback_with_cookies(&w, ProviderType::Box, &[("error", "access_denied"), ("state", &state)], &[]).await;

    // Assert
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error_code(), "state_not_bound");
    assert!(reply.header("location").is_none(), "the state's return_to is not trusted without its browser");
}

// ---- the request's deadline -----------------------------------------------------------

/// Far past any budget below, and past the HTTP client's own timeout.
const STALLED: Duration = Duration::from_secs(20);
/// Half the HTTP client's timeout: an answer before this came from the request's deadline,
/// not from the client giving up.
const WELL_BEFORE_THE_CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_token_endpoint_slower_than_the_request_budget_is_cut_off_and_recorded_in_time() {
    // Arrange: a connection to reconnect, then a token endpoint that stalls far past the
    // 1.5 s budget (and the client's 10 s timeout).
    let w = world_with(json!({"request_budget_ms": 1500})).await;
    let tenant = w.t.tenant().await;
    mount_provider(&w, ProviderType::Dropbox).await;
    let id = connection_id(&connect_with(&w, &tenant, ProviderType::Dropbox, CODE, json!({})).await);
    let before = w.t.store().get_connection(tenant.id, id).await.unwrap();
    w.server.reset().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(dropbox_tokens(ACCESS_TOKEN, REFRESH_TOKEN)).set_delay(STALLED),
        )
        .mount(&w.server)
        .await;

    // Act
    let reply = tokio::time::timeout(
        WELL_BEFORE_THE_CLIENT_TIMEOUT,
        connect_with(&w, &tenant, ProviderType::Dropbox, CODE_2, json!({})),
    )
    .await
    .expect("the callback answers within its budget, not after the provider");

    // Assert
    let (_, query) = redirected(&reply);
    assert_eq!(query["connection_error"], "provider_timeout");
    let after = w.t.store().get_connection(tenant.id, id).await.unwrap();
    assert_eq!(after.encrypted_access_token, before.encrypted_access_token, "nothing half-written");
    assert_eq!(after.base.updated_at, before.base.updated_at);
    let errors = error_rows(&w, &tenant).await;
    assert_eq!(errors.len(), 1, "the timeout is recorded on the connection");
    assert_eq!(errors[0].error_type, ErrorType::Timeout);
    assert_eq!(errors[0].error_metadata.as_ref().unwrap()["stage"], "token_exchange");
}

#[tokio::test]
async fn an_identity_call_slower_than_the_budget_is_cut_off_and_the_grant_revoked_in_time() {
    // Arrange
    let w = world_with(json!({"request_budget_ms": 1500})).await;
    let tenant = w.t.tenant().await;
    mount_tokens(&w, ProviderType::Dropbox, CODE, dropbox_tokens(ACCESS_TOKEN, REFRESH_TOKEN)).await;
    Mock::given(method("POST"))
        .and(path("/2/users/get_current_account"))
        .respond_with(ResponseTemplate::new(200).set_body_json(dropbox_account()).set_delay(STALLED))
        .mount(&w.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/2/auth/token/revoke"))
        .and(bearer_token(ACCESS_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_raw("null", "application/json"))
        .expect(1)
        .mount(&w.server)
        .await;

    // Act
    let reply = tokio::time::timeout(
        WELL_BEFORE_THE_CLIENT_TIMEOUT,
        connect_with(&w, &tenant, ProviderType::Dropbox, CODE, json!({})),
    )
    .await
    .expect("the callback answers within its budget, not after the provider");

    // Assert
    let (_, query) = redirected(&reply);
    assert_eq!(query["connection_error"], "provider_timeout");
    assert!(connections_of(&w, &tenant).await.is_empty(), "nothing stored");
    w.server.verify().await;
}

#[tokio::test]
async fn the_lambda_deadline_cuts_the_budget_shorter() {
    // Arrange: the default 25 s budget, but the Lambda has 2.5 s left.
    let w = world().await;
    let tenant = w.t.tenant().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(box_tokens(ACCESS_TOKEN, REFRESH_TOKEN)).set_delay(STALLED),
        )
        .mount(&w.server)
        .await;
    let state = state_of(&authorize(&w, &tenant, ProviderType::Box, json!({})).await);
    let cookies: Vec<String> = w.jar.lock().unwrap().iter().map(|(n, v)| format!("{n}={v}")).collect();
    let query =
        form_urlencoded::Serializer::new(String::new()).append_pair("code", CODE).append_pair("state", &state).finish();
    let mut event = ApiEvent::load("oauth-callback/callback").path("/oauth/callback/box").query(&query);
    for cookie in &cookies {
        event = event.cookie(cookie);
    }
    let mut request = event.request();
    let mut context = lambda_http::Context::default();
    let lambda_deadline = std::time::SystemTime::now() + Duration::from_millis(2500);
    context.deadline = lambda_deadline.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    request.extensions_mut().insert(context);

    // Act
    let reply = tokio::time::timeout(WELL_BEFORE_THE_CLIENT_TIMEOUT, testkit::http::call_request(&w.callback, request))
        .await
        .expect("the callback answers before the Lambda deadline, not after the provider");

    // Assert
    let (_, query) = redirected(&reply);
    assert_eq!(query["connection_error"], "provider_timeout");
    assert!(connections_of(&w, &tenant).await.is_empty());
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_json_400_naming_it() {
    // Arrange: %FF percent-decodes to a byte that is not UTF-8.
    let w = world().await;

    // Act
    let reply = call(&w.callback, &ApiEvent::load("oauth-callback/callback").path("/oauth/callback/%FF")).await;

    // Assert: the JSON envelope naming the parameter, not axum's plain-text rejection.
    assert_eq!(
        (reply.status, reply.error_code(), reply.error_field()),
        (400, "invalid_field", Some("provider")),
        "{}",
        reply.text
    );
}
