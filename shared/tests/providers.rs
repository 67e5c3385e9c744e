//! The provider definitions against local fakes of each provider's endpoints: authorization
//! URLs, code exchange and identity, refresh and rotation, the token-endpoint fault matrix,
//! revocation and shared links, and that no token or secret reaches an error or Debug output.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use shared::db::{ErrorType, ProviderType, ResourceType, ShareType};
use shared::providers::{
    AuthorizeRequest, CreatedLink, ExistingLink, LinkTarget, Pkce, ProviderError, RefreshTokenRotation,
    SharedLinkRequest, TokenSet,
};
use testkit::providers::*;
use wiremock::matchers::{bearer_token, body_json, body_string, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

const ALL: [ProviderType; 5] =
    [ProviderType::OneDrive, ProviderType::SharePoint, ProviderType::GDrive, ProviderType::Dropbox, ProviderType::Box];

/// RFC 7636 appendix B: this verifier's S256 challenge is known.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn pkce() -> Pkce {
    Pkce::from_verifier(SecretString::from(VERIFIER))
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

fn query_of(url: &str) -> HashMap<String, String> {
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs().into_owned().collect()
}

fn assert_no_secrets(text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "secret {s:?} leaked into: {text}");
    }
}

fn expires(at: &str) -> Option<DateTime<Utc>> {
    Some(DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc))
}

fn link_request(share_type: ShareType, password: Option<&str>, expires_at: Option<DateTime<Utc>>) -> SharedLinkRequest {
    SharedLinkRequest { share_type, password: password.map(secret), expires_at }
}

fn production_registry() -> shared::providers::Registry {
    let client = |name: &str| json!({ "client_id": format!("{name}-client-id"), "client_secret": CLIENT_SECRET });
    let mut sharepoint = client("sharepoint");
    sharepoint["tenant"] = json!("contoso.onmicrosoft.com");
    registry(json!({
        "onedrive": client("onedrive"),
        "sharepoint": sharepoint,
        "gdrive": client("gdrive"),
        "dropbox": client("dropbox"),
        "box": client("box"),
    }))
}

// ---------------------------------------------------------------------------------------------
// Authorization URLs

#[test]
fn authorization_urls_use_each_providers_endpoint_and_parameters() {
    let registry = production_registry();
    let pkce = pkce();
    for kind in ALL {
        let provider = registry.get(kind).unwrap();
        let redirect_uri = registry.redirect_uri(kind).unwrap();
        let request = AuthorizeRequest { state: STATE, redirect_uri: &redirect_uri, pkce: &pkce, extra_params: &[] };

        let url = provider.authorization_url(&request).unwrap();

        let expected_endpoint = match kind {
            ProviderType::OneDrive => "https://login.microsoftonline.com/common/oauth2/v2.0/authorize?",
            ProviderType::SharePoint => {
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize?"
            }
            ProviderType::GDrive => "https://accounts.google.com/o/oauth2/v2/auth?",
            ProviderType::Dropbox => "https://www.dropbox.com/oauth2/authorize?",
            ProviderType::Box => "https://account.box.com/api/oauth2/authorize?",
        };
        assert!(url.starts_with(expected_endpoint), "{kind}: {url}");
        let q = query_of(&url);
        assert_eq!(q["response_type"], "code", "{kind}");
        assert_eq!(q["client_id"], format!("{kind}-client-id"));
        assert_eq!(q["state"], STATE);
        assert_eq!(q["redirect_uri"], format!("{REDIRECT_BASE}/oauth/callback/{kind}"));
        if kind == ProviderType::Box {
            assert!(!q.contains_key("code_challenge"), "Box does not do PKCE: {url}");
            assert!(!q.contains_key("code_challenge_method"));
        } else {
            assert_eq!(q["code_challenge"], CHALLENGE, "{kind}");
            assert_eq!(q["code_challenge_method"], "S256", "{kind}");
        }
        let scopes: Vec<&str> = q["scope"].split(' ').collect();
        match kind {
            ProviderType::OneDrive => {
                assert_eq!(scopes, ["offline_access", "User.Read", "Files.ReadWrite"]);
            }
            ProviderType::SharePoint => {
                assert_eq!(scopes, ["offline_access", "User.Read", "Sites.ReadWrite.All", "Files.ReadWrite.All"]);
            }
            ProviderType::GDrive => {
                assert_eq!(scopes, ["openid", "email", "https://www.googleapis.com/auth/drive"]);
                assert_eq!(q["access_type"], "offline");
                assert_eq!(q["prompt"], "consent");
            }
            ProviderType::Dropbox => {
                assert!(scopes.contains(&"sharing.write") && scopes.contains(&"files.content.write"), "{scopes:?}");
                assert_eq!(q["token_access_type"], "offline");
            }
            ProviderType::Box => assert_eq!(scopes, ["root_readwrite"]),
        }
        assert_no_secrets(&url);
    }
}

#[test]
fn configured_scopes_replace_the_defaults_and_microsoft_keeps_offline_access() {
    let registry = registry(json!({
        "onedrive": { "client_id": "c", "client_secret": CLIENT_SECRET, "scopes": ["User.Read", "Files.Read"] },
        "gdrive": { "client_id": "c", "client_secret": CLIENT_SECRET,
                    "scopes": ["openid", "https://www.googleapis.com/auth/drive.file"] },
    }));
    let pkce = pkce();
    let request = AuthorizeRequest { state: STATE, redirect_uri: "https://cb.test/x", pkce: &pkce, extra_params: &[] };

    let onedrive = query_of(&registry.get(ProviderType::OneDrive).unwrap().authorization_url(&request).unwrap());
    let gdrive = query_of(&registry.get(ProviderType::GDrive).unwrap().authorization_url(&request).unwrap());

    assert_eq!(onedrive["scope"], "offline_access User.Read Files.Read");
    assert_eq!(gdrive["scope"], "openid https://www.googleapis.com/auth/drive.file");
}

#[test]
fn extra_parameters_replace_defaults_but_not_the_oauth_exchange() {
    let registry = production_registry();
    let google = registry.get(ProviderType::GDrive).unwrap();
    let pkce = pkce();
    let extra = [("prompt", "select_account"), ("login_hint", "ada@example.test")];
    let request =
        AuthorizeRequest { state: STATE, redirect_uri: "https://cb.test/x", pkce: &pkce, extra_params: &extra };

    let url = google.authorization_url(&request).unwrap();

    let prompts: Vec<String> = reqwest::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .filter(|(k, _)| k == "prompt")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(prompts, ["select_account"]);
    assert_eq!(query_of(&url)["login_hint"], "ada@example.test");

    let hijack = [("redirect_uri", "https://evil.test/")];
    let refused = google
        .authorization_url(&AuthorizeRequest { extra_params: &hijack, ..request })
        .expect_err("redirect_uri is not an extra parameter");
    assert!(matches!(refused, ProviderError::Unsupported(ref m) if m.contains("redirect_uri")), "{refused}");
}

#[test]
fn each_definition_states_its_facts() {
    let registry = production_registry();
    let facts = |kind| {
        let p = registry.get(kind).unwrap();
        (
            p.provider_type(),
            p.uses_pkce(),
            p.refresh_token_rotation(),
            p.expires_links_natively(),
            p.supports_link_password(),
        )
    };
    use RefreshTokenRotation::*;
    assert_eq!(facts(ProviderType::OneDrive), (ProviderType::OneDrive, true, Rotates, true, true));
    assert_eq!(facts(ProviderType::SharePoint), (ProviderType::SharePoint, true, Rotates, true, false));
    assert_eq!(facts(ProviderType::GDrive), (ProviderType::GDrive, true, Keep, false, false));
    assert_eq!(facts(ProviderType::Dropbox), (ProviderType::Dropbox, true, Keep, true, true));
    assert_eq!(facts(ProviderType::Box), (ProviderType::Box, false, SingleUse, true, true));
}

// ---------------------------------------------------------------------------------------------
// Registry

#[test]
fn an_unconfigured_provider_says_how_to_configure_it() {
    let registry = registry(json!({ "gdrive": { "client_id": "c", "client_secret": CLIENT_SECRET } }));

    let err = registry.get(ProviderType::Box).unwrap_err();

    assert!(matches!(err, ProviderError::NotConfigured { provider: ProviderType::Box, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("providers.box") && msg.contains("client_id") && msg.contains("client_secret"), "{msg}");
    assert_eq!(err.error_type(), ErrorType::Validation);
    assert!(!err.is_transient());
    assert_eq!(registry.available().collect::<Vec<_>>(), [ProviderType::GDrive]);
}

#[test]
fn an_unusable_endpoint_disables_only_its_provider() {
    let registry = registry(json!({
        "gdrive": { "client_id": "c", "client_secret": CLIENT_SECRET, "token_url": "http://fake.test:99999/token" },
        "box": { "client_id": "c", "client_secret": CLIENT_SECRET },
    }));

    let err = registry.get(ProviderType::GDrive).unwrap_err();

    let msg = err.to_string();
    assert!(msg.contains("token_url") && msg.contains("providers.gdrive"), "{msg}");
    assert!(registry.get(ProviderType::Box).is_ok());
}

#[test]
fn the_redirect_uri_needs_the_callback_base() {
    let with_base = production_registry();
    assert_eq!(
        with_base.redirect_uri(ProviderType::Dropbox).unwrap(),
        "https://api.quodsi.test/prod/oauth/callback/dropbox"
    );

    let providers = config(json!({})).providers;
    let without = shared::providers::Registry::with_settings(&providers, None, Default::default()).unwrap();
    let err = without.redirect_uri(ProviderType::Dropbox).unwrap_err();
    assert!(err.to_string().contains("oauth_redirect_base_url"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Code exchange and identity

/// Mounts the token endpoint for an authorization-code exchange, checking the form.
async fn mount_code_exchange(fake: &Fake, with_pkce_and_redirect: bool) {
    let redirect_uri = fake.redirect_uri();
    let client_id = format!("{}-client-id", fake.kind);
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", CODE),
        ("client_id", client_id.as_str()),
        ("client_secret", CLIENT_SECRET),
    ];
    if with_pkce_and_redirect {
        pairs.extend([("code_verifier", VERIFIER), ("redirect_uri", redirect_uri.as_str())]);
    }
    let mut mock = Mock::given(method("POST")).and(path("/token")).and(form(&pairs));
    if !with_pkce_and_redirect {
        mock = mock.and(FormLacks(&["code_verifier", "redirect_uri"]));
    }
    mock.respond_with(ResponseTemplate::new(200).set_body_json(tokens(fake.kind, ACCESS_TOKEN, REFRESH_TOKEN)))
        .expect(1)
        .mount(&fake.server)
        .await;
}

async fn exchange(fake: &Fake) -> TokenSet {
    let tokens = fake.provider().exchange_code(CODE, &pkce(), &fake.redirect_uri()).await.expect("code exchange");
    assert_eq!(tokens.access_token.expose_secret(), ACCESS_TOKEN);
    assert_eq!(tokens.refresh_token.as_ref().map(|t| t.expose_secret()), Some(REFRESH_TOKEN));
    assert_no_secrets(&format!("{tokens:?}"));
    tokens
}

fn graph_get(p: &str, select: &str, body: Value) -> Mock {
    Mock::given(method("GET"))
        .and(path(p))
        .and(bearer_token(ACCESS_TOKEN))
        .and(query_param("$select", select))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
}

#[tokio::test]
async fn onedrive_exchanges_a_code_and_reads_user_and_drive() {
    let fake = Fake::start(ProviderType::OneDrive).await;
    mount_code_exchange(&fake, true).await;
    graph_get("/v1.0/me", "id,displayName,mail,userPrincipalName", graph_me()).mount(&fake.server).await;
    graph_get("/v1.0/me/drive", "id,driveType", graph_drive("personal")).mount(&fake.server).await;

    let tokens = exchange(&fake).await;
    let identity = fake.provider().identity(&tokens.access_token).await.unwrap();

    assert_eq!(tokens.expires_in, Some(Duration::from_secs(3599)));
    assert_eq!(tokens.scope.as_deref(), Some("User.Read Files.ReadWrite"));
    let issued = Utc::now();
    assert_eq!(tokens.expires_at(issued), Some(issued + chrono::Duration::seconds(3599)));
    assert_eq!(identity.provider_user_id, "48d31887-5fad-4d73-a9f5-3c356e68a038");
    assert_eq!(identity.email.as_deref(), Some("MeganB@contoso.test"));
    assert_eq!(identity.display_name.as_deref(), Some("Megan Bowen"));
    assert_eq!(
        identity.metadata,
        json!({
            "account_type": "personal",
            "drive_id": "b!t18F8ybsHUq1z3LTz8xvZqP8zaSWjkFNhsME-Fepo75dTf9vQKfeRblBZjoSQrd7",
            "drive_type": "personal",
        })
    );
    let token_request = &fake.server.received_requests().await.unwrap()[0];
    let form: HashMap<String, String> = form_urlencoded::parse(&token_request.body).into_owned().collect();
    assert_eq!(form["scope"], "offline_access User.Read Files.ReadWrite");
}

#[tokio::test]
async fn onedrive_falls_back_to_user_principal_name_without_mail() {
    let fake = Fake::start(ProviderType::OneDrive).await;
    let mut me = graph_me();
    me["mail"] = Value::Null;
    me["userPrincipalName"] = json!("megan@outlook.test");
    graph_get("/v1.0/me", "id,displayName,mail,userPrincipalName", me).mount(&fake.server).await;
    graph_get("/v1.0/me/drive", "id,driveType", graph_drive("business")).mount(&fake.server).await;

    let identity = fake.provider().identity(&secret(ACCESS_TOKEN)).await.unwrap();

    assert_eq!(identity.email.as_deref(), Some("megan@outlook.test"));
    assert_eq!(identity.metadata["account_type"], "business");
}

#[tokio::test]
async fn sharepoint_records_the_root_site_and_its_library() {
    let fake = Fake::start(ProviderType::SharePoint).await;
    mount_code_exchange(&fake, true).await;
    graph_get("/v1.0/me", "id,displayName,mail,userPrincipalName", graph_me()).mount(&fake.server).await;
    graph_get("/v1.0/sites/root", "id,webUrl,displayName", graph_root_site()).mount(&fake.server).await;
    let mut library = graph_drive("documentLibrary");
    library["id"] = json!("b!library-drive-id");
    graph_get("/v1.0/sites/root/drive", "id,driveType", library).mount(&fake.server).await;

    let tokens = exchange(&fake).await;
    let identity = fake.provider().identity(&tokens.access_token).await.unwrap();

    assert_eq!(identity.provider_user_id, "48d31887-5fad-4d73-a9f5-3c356e68a038");
    assert_eq!(
        identity.metadata,
        json!({
            "account_type": "business",
            "site_id": "contoso.sharepoint.com,2C712604-1370-44E7-A1F5-426573FDA80A,2D2244C3-251A-49EA-93A8-39E1C3A060FE",
            "site_url": "https://contoso.sharepoint.com/teams/1drvteam",
            "site_name": "OneDrive Team Site",
            "drive_id": "b!library-drive-id",
            "drive_type": "documentLibrary",
        })
    );
}

#[tokio::test]
async fn gdrive_exchanges_a_code_and_reads_userinfo_on_the_api_base() {
    let fake = Fake::start(ProviderType::GDrive).await;
    mount_code_exchange(&fake, true).await;
    Mock::given(method("GET"))
        .and(path("/v1/userinfo"))
        .and(bearer_token(ACCESS_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(google_userinfo()))
        .expect(1)
        .mount(&fake.server)
        .await;

    let tokens = exchange(&fake).await;
    let identity = fake.provider().identity(&tokens.access_token).await.unwrap();

    assert_eq!(tokens.expires_in, Some(Duration::from_secs(3920)));
    assert_eq!(identity.provider_user_id, "110169484474386276334");
    assert_eq!(identity.email.as_deref(), Some("ada@example.test"));
    assert_eq!(identity.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(identity.metadata["account_type"], "consumer");
}

#[tokio::test]
async fn gdrive_ignores_an_unverified_email() {
    let fake = Fake::start(ProviderType::GDrive).await;
    let mut info = google_userinfo();
    info["email_verified"] = json!(false);
    info["hd"] = json!("example.test");
    Mock::given(method("GET"))
        .and(path("/v1/userinfo"))
        .respond_with(ResponseTemplate::new(200).set_body_json(info))
        .mount(&fake.server)
        .await;

    let identity = fake.provider().identity(&secret(ACCESS_TOKEN)).await.unwrap();

    assert_eq!(identity.email, None);
    assert_eq!(identity.metadata["account_type"], "workspace");
    assert_eq!(identity.metadata["hosted_domain"], "example.test");
}

#[tokio::test]
async fn dropbox_exchanges_a_code_and_reads_the_current_account() {
    let fake = Fake::start(ProviderType::Dropbox).await;
    mount_code_exchange(&fake, true).await;
    Mock::given(method("POST"))
        .and(path("/2/users/get_current_account"))
        .and(bearer_token(ACCESS_TOKEN))
        .and(header("content-type", "application/json"))
        .and(body_string("null"))
        .respond_with(ResponseTemplate::new(200).set_body_json(dropbox_account()))
        .expect(1)
        .mount(&fake.server)
        .await;

    let tokens = exchange(&fake).await;
    let identity = fake.provider().identity(&tokens.access_token).await.unwrap();

    assert_eq!(tokens.expires_in, Some(Duration::from_secs(14400)));
    assert_eq!(identity.provider_user_id, "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc");
    assert_eq!(identity.email.as_deref(), Some("franz@example.test"));
    assert_eq!(identity.display_name.as_deref(), Some("Franz Ferdinand (Personal)"));
    assert_eq!(identity.metadata["account_type"], "basic");
    assert_eq!(identity.metadata["root_namespace_id"], "3235641");
}

#[tokio::test]
async fn box_exchanges_a_code_without_pkce_and_reads_the_user() {
    let fake = Fake::start(ProviderType::Box).await;
    mount_code_exchange(&fake, false).await;
    Mock::given(method("GET"))
        .and(path("/2.0/users/me"))
        .and(bearer_token(ACCESS_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(box_user()))
        .expect(1)
        .mount(&fake.server)
        .await;

    let tokens = exchange(&fake).await;
    let identity = fake.provider().identity(&tokens.access_token).await.unwrap();

    assert_eq!(tokens.scope, None);
    assert_eq!(identity.provider_user_id, "11446498");
    assert_eq!(identity.email.as_deref(), Some("ceo@example.test"));
    assert_eq!(identity.metadata, json!({ "account_type": "enterprise", "enterprise_id": "1910967" }));
}

// ---------------------------------------------------------------------------------------------
// Refresh

async fn mount_refresh(fake: &Fake, body: Value) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", REFRESH_TOKEN),
            ("client_secret", CLIENT_SECRET),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(&fake.server)
        .await;
}

#[tokio::test]
async fn microsoft_refresh_returns_a_rotated_refresh_token() {
    for kind in [ProviderType::OneDrive, ProviderType::SharePoint] {
        let fake = Fake::start(kind).await;
        mount_refresh(&fake, microsoft_tokens(NEW_ACCESS_TOKEN, ROTATED_REFRESH_TOKEN)).await;

        let tokens = fake.provider().refresh(&secret(REFRESH_TOKEN)).await.unwrap();

        assert_eq!(fake.provider().refresh_token_rotation(), RefreshTokenRotation::Rotates);
        assert_eq!(tokens.access_token.expose_secret(), NEW_ACCESS_TOKEN);
        assert_eq!(tokens.refresh_token.unwrap().expose_secret(), ROTATED_REFRESH_TOKEN);
        let sent = &fake.server.received_requests().await.unwrap()[0];
        let form: HashMap<String, String> = form_urlencoded::parse(&sent.body).into_owned().collect();
        assert!(form["scope"].starts_with("offline_access "), "{kind}: {}", form["scope"]);
    }
}

#[tokio::test]
async fn gdrive_refresh_without_a_refresh_token_keeps_the_stored_one() {
    let fake = Fake::start(ProviderType::GDrive).await;
    mount_refresh(&fake, google_refreshed(NEW_ACCESS_TOKEN)).await;

    let tokens = fake.provider().refresh(&secret(REFRESH_TOKEN)).await.unwrap();

    assert_eq!(tokens.access_token.expose_secret(), NEW_ACCESS_TOKEN);
    assert!(tokens.refresh_token.is_none());
    assert_eq!(fake.provider().refresh_token_rotation(), RefreshTokenRotation::Keep);
}

#[tokio::test]
async fn dropbox_refresh_is_not_rotated() {
    let fake = Fake::start(ProviderType::Dropbox).await;
    mount_refresh(&fake, dropbox_refreshed(NEW_ACCESS_TOKEN)).await;

    let tokens = fake.provider().refresh(&secret(REFRESH_TOKEN)).await.unwrap();

    assert_eq!(tokens.access_token.expose_secret(), NEW_ACCESS_TOKEN);
    assert!(tokens.refresh_token.is_none());
    assert_eq!(tokens.expires_in, Some(Duration::from_secs(14400)));
}

#[tokio::test]
async fn box_refresh_returns_the_next_single_use_refresh_token() {
    let fake = Fake::start(ProviderType::Box).await;
    mount_refresh(&fake, box_tokens(NEW_ACCESS_TOKEN, ROTATED_REFRESH_TOKEN)).await;

    let tokens = fake.provider().refresh(&secret(REFRESH_TOKEN)).await.unwrap();

    assert_eq!(fake.provider().refresh_token_rotation(), RefreshTokenRotation::SingleUse);
    assert_eq!(tokens.refresh_token.unwrap().expose_secret(), ROTATED_REFRESH_TOKEN);
}

#[tokio::test]
async fn box_refresh_without_a_new_refresh_token_is_malformed() {
    let fake = Fake::start(ProviderType::Box).await;
    let mut body = box_tokens(NEW_ACCESS_TOKEN, ROTATED_REFRESH_TOKEN);
    body.as_object_mut().unwrap().remove("refresh_token");
    mount_refresh(&fake, body).await;

    let err = fake.provider().refresh(&secret(REFRESH_TOKEN)).await.unwrap_err();

    assert!(matches!(err, ProviderError::Malformed(ref m) if m.contains("refresh_token")), "{err:?}");
    assert_no_secrets(&format!("{err} {err:?}"));
}

// ---------------------------------------------------------------------------------------------
// Token-endpoint faults

const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

/// Answers the next token request with `response` and returns what the refresh made of it.
async fn refresh_against(fake: &Fake, response: ResponseTemplate) -> ProviderError {
    fake.server.reset().await;
    Mock::given(method("POST")).and(path("/token")).respond_with(response).mount(&fake.server).await;
    fake.provider().refresh(&secret(REFRESH_TOKEN)).await.expect_err("the refresh should fail")
}

#[tokio::test]
async fn token_endpoint_faults_map_to_typed_errors_for_every_provider() {
    let mut outputs = String::new();
    for kind in ALL {
        let fake = Fake::with_timeout(kind, SHORT_TIMEOUT).await;
        let microsoft = matches!(kind, ProviderType::OneDrive | ProviderType::SharePoint);

        let dead = refresh_against(&fake, ResponseTemplate::new(400).set_body_json(invalid_grant(kind))).await;
        let ProviderError::InvalidGrant { ref code, ref sub_code, ref description, revoked } = dead else {
            panic!("{kind}: {dead:?}")
        };
        assert_eq!(code, "invalid_grant");
        assert!(revoked, "{kind}: a refused refresh token is dead");
        assert!(description.is_some(), "{kind}");
        let expected_code = if microsoft { "AADSTS70000" } else { "invalid_grant" };
        assert_eq!(dead.error_code().as_deref(), Some(expected_code), "{kind}");
        assert_eq!(sub_code.is_some(), microsoft, "{kind}");
        assert_eq!(dead.error_type(), ErrorType::Auth);
        assert!(!dead.is_transient());

        let client = refresh_against(&fake, ResponseTemplate::new(401).set_body_json(invalid_client(kind))).await;
        assert!(matches!(client, ProviderError::Rejected { status: 401, .. }), "{kind}: {client:?}");
        let expected_code = if microsoft { "AADSTS7000215" } else { "invalid_client" };
        assert_eq!(client.error_code().as_deref(), Some(expected_code), "{kind}");
        assert_eq!(client.error_type(), ErrorType::Auth);

        let throttled = refresh_against(
            &fake,
            ResponseTemplate::new(429).insert_header("Retry-After", "30").set_body_string("Too Many Requests"),
        )
        .await;
        assert_eq!(throttled, ProviderError::RateLimited { retry_after: Some(Duration::from_secs(30)) }, "{kind}");
        assert_eq!(throttled.error_code().as_deref(), Some("429"));
        assert!(throttled.is_transient());

        let down = refresh_against(&fake, ResponseTemplate::new(500).set_body_string("<html>error</html>")).await;
        assert_eq!(down, ProviderError::Server { status: 500 }, "{kind}");
        assert!(down.is_transient());
        assert_eq!(down.error_type(), ErrorType::Api);

        let slow = refresh_against(
            &fake,
            ResponseTemplate::new(200)
                .set_body_json(tokens(kind, NEW_ACCESS_TOKEN, ROTATED_REFRESH_TOKEN))
                .set_delay(Duration::from_secs(3)),
        )
        .await;
        assert_eq!(slow, ProviderError::Timeout, "{kind}");
        assert_eq!(slow.error_type(), ErrorType::Timeout);
        assert!(slow.is_transient());

        let garbled = refresh_against(
            &fake,
            ResponseTemplate::new(200)
                .set_body_raw(format!("{{\"access_token\": \"{NEW_ACCESS_TOKEN}"), "application/json"),
        )
        .await;
        assert!(matches!(garbled, ProviderError::Malformed(_)), "{kind}: {garbled:?}");
        assert!(!garbled.is_transient());

        let tokenless = refresh_against(
            &fake,
            ResponseTemplate::new(200).set_body_json(json!({ "token_type": "Bearer", "expires_in": 3600 })),
        )
        .await;
        assert!(matches!(tokenless, ProviderError::Malformed(ref m) if m.contains("access_token")), "{kind}");

        for e in [&dead, &client, &throttled, &down, &slow, &garbled, &tokenless] {
            outputs.push_str(&format!("{e}\n{e:?}\n"));
        }
    }
    assert_no_secrets(&outputs);
}

#[tokio::test]
async fn microsoft_interaction_required_means_sign_in_again() {
    let fake = Fake::start(ProviderType::OneDrive).await;

    let err = refresh_against(&fake, ResponseTemplate::new(400).set_body_json(microsoft_interaction_required())).await;

    let ProviderError::InvalidGrant { ref code, revoked, ref description, .. } = err else { panic!("{err:?}") };
    assert_eq!(code, "interaction_required");
    assert!(revoked);
    assert_eq!(err.error_code().as_deref(), Some("AADSTS50076"));
    let description = description.as_deref().unwrap();
    assert!(description.chars().count() <= shared::providers::MAX_DESCRIPTION_CHARS + 1, "{description}");
    assert!(!description.contains('\n') && !description.contains('\r'));
}

#[tokio::test]
async fn google_invalid_grant_is_revoked_only_when_google_says_so() {
    let fake = Fake::start(ProviderType::GDrive).await;

    let malformed = refresh_against(
        &fake,
        ResponseTemplate::new(400)
            .set_body_json(json!({ "error": "invalid_grant", "error_description": "Bad Request" })),
    )
    .await;
    let revoked =
        refresh_against(&fake, ResponseTemplate::new(400).set_body_json(invalid_grant(ProviderType::GDrive))).await;

    assert!(matches!(malformed, ProviderError::InvalidGrant { revoked: false, .. }), "{malformed:?}");
    assert!(matches!(revoked, ProviderError::InvalidGrant { revoked: true, .. }), "{revoked:?}");
}

#[tokio::test]
async fn a_refused_code_is_not_a_revoked_connection() {
    let fake = Fake::start(ProviderType::GDrive).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({ "error": "invalid_grant", "error_description": "Malformed auth code." })),
        )
        .mount(&fake.server)
        .await;

    let err = fake.provider().exchange_code(CODE, &pkce(), &fake.redirect_uri()).await.unwrap_err();

    assert!(matches!(err, ProviderError::InvalidGrant { revoked: false, .. }), "{err:?}");
}

#[tokio::test]
async fn retry_after_may_be_an_http_date() {
    let fake = Fake::start(ProviderType::Dropbox).await;
    let at = (Utc::now() + chrono::Duration::seconds(120)).format("%a, %d %b %Y %H:%M:%S GMT").to_string();

    let err = refresh_against(&fake, ResponseTemplate::new(429).insert_header("Retry-After", at.as_str())).await;

    let wait = err.retry_after().expect("a wait");
    assert!(wait <= Duration::from_secs(120) && wait >= Duration::from_secs(100), "{wait:?}");
}

#[tokio::test]
async fn api_calls_time_out_too() {
    let fake = Fake::with_timeout(ProviderType::Box, SHORT_TIMEOUT).await;
    Mock::given(method("GET"))
        .and(path("/2.0/users/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(box_user()).set_delay(Duration::from_secs(3)))
        .mount(&fake.server)
        .await;

    let err = fake.provider().identity(&secret(ACCESS_TOKEN)).await.unwrap_err();

    assert_eq!(err, ProviderError::Timeout);
}

#[tokio::test]
async fn an_unreachable_provider_is_a_network_error() {
    // A port that was just free: wiremock keeps dropped servers listening in a pool.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let uri = format!("http://127.0.0.1:{port}");
    let providers = config(json!({ "box": {
        "client_id": "c", "client_secret": CLIENT_SECRET, "token_url": format!("{uri}/token")
    }}))
    .providers;
    let registry = shared::providers::Registry::with_settings(&providers, None, Default::default()).unwrap();

    let err = registry.get(ProviderType::Box).unwrap().refresh(&secret(REFRESH_TOKEN)).await.unwrap_err();

    assert!(matches!(err, ProviderError::Network(_)), "{err:?}");
    assert_eq!(err.error_type(), ErrorType::Network);
    assert_no_secrets(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn graph_api_errors_keep_their_code() {
    let fake = Fake::start(ProviderType::OneDrive).await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": { "code": "InvalidAuthenticationToken", "message": "Access token has expired or is not yet valid.",
                       "innerError": { "date": "2026-01-05T10:00:00", "request-id": "r1", "client-request-id": "r1" } }
        })))
        .mount(&fake.server)
        .await;

    let err = fake.provider().identity(&secret(ACCESS_TOKEN)).await.unwrap_err();

    assert_eq!(err.error_code().as_deref(), Some("InvalidAuthenticationToken"));
    assert_eq!(err.error_type(), ErrorType::Auth);
    assert_no_secrets(&format!("{err} {err:?}"));
}

// ---------------------------------------------------------------------------------------------
// Revocation

#[tokio::test]
async fn revocation_uses_each_providers_endpoint_and_token() {
    let google = Fake::start(ProviderType::GDrive).await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .and(form(&[("token", REFRESH_TOKEN)]))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&google.server)
        .await;
    let dropbox = Fake::start(ProviderType::Dropbox).await;
    Mock::given(method("POST"))
        .and(path("/2/auth/token/revoke"))
        .and(bearer_token(ACCESS_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_string("null"))
        .expect(1)
        .mount(&dropbox.server)
        .await;
    let boxcom = Fake::start(ProviderType::Box).await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .and(form(&[("client_id", "box-client-id"), ("client_secret", CLIENT_SECRET), ("token", REFRESH_TOKEN)]))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&boxcom.server)
        .await;
    let onedrive = Fake::start(ProviderType::OneDrive).await;
    let (access, refresh) = (secret(ACCESS_TOKEN), secret(REFRESH_TOKEN));

    for fake in [&google, &dropbox, &boxcom, &onedrive] {
        fake.provider().revoke(&access, Some(&refresh)).await.unwrap_or_else(|e| panic!("{}: {e}", fake.kind));
    }

    assert!(onedrive.server.received_requests().await.unwrap().is_empty(), "Microsoft has no revocation call");
}

#[tokio::test]
async fn revoking_an_already_revoked_google_token_succeeds() {
    let fake = Fake::start(ProviderType::GDrive).await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({ "error": "invalid_token", "error_description": "Token expired or revoked" })),
        )
        .mount(&fake.server)
        .await;

    let result = fake.provider().revoke(&secret(ACCESS_TOKEN), None).await;

    assert_eq!(result, Ok(()));
    let sent = &fake.server.received_requests().await.unwrap()[0];
    assert_eq!(String::from_utf8_lossy(&sent.body), format!("token={ACCESS_TOKEN}"));
}

// ---------------------------------------------------------------------------------------------
// Shared links

const DRIVE_ID: &str = "b!t18F8ybsHUq1z3LTz8xvZqP8zaSWjkFNhsME-Fepo75dTf9vQKfeRblBZjoSQrd7";

#[tokio::test]
async fn onedrive_creates_and_deletes_a_link_on_the_recorded_drive() {
    let fake = Fake::start(ProviderType::OneDrive).await;
    let item_path = format!("/v1.0/drives/{DRIVE_ID}/items/01BYE5RZ6QN3ZWBTUFOFD3GSPGOHDJD36K");
    Mock::given(method("POST"))
        .and(path(format!("{item_path}/createLink")))
        .and(bearer_token(ACCESS_TOKEN))
        .and(body_json(json!({
            "type": "view",
            "scope": "anonymous",
            "expirationDateTime": "2026-03-01T12:00:00Z",
            "password": LINK_PASSWORD,
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(graph_permission("view")))
        .expect(1)
        .mount(&fake.server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{item_path}/permissions/123ABC")))
        .and(bearer_token(ACCESS_TOKEN))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&fake.server)
        .await;
    let metadata = json!({ "drive_id": DRIVE_ID, "drive_type": "personal" });
    let target = LinkTarget {
        resource_type: ResourceType::File,
        item_id: "01BYE5RZ6QN3ZWBTUFOFD3GSPGOHDJD36K",
        connection_metadata: Some(&metadata),
    };
    let request = link_request(ShareType::View, Some(LINK_PASSWORD), expires("2026-03-01T12:00:00Z"));

    let created = fake.provider().create_shared_link(&secret(ACCESS_TOKEN), &target, &request).await.unwrap();
    let existing =
        ExistingLink { provider_share_id: created.provider_share_id.as_deref(), share_url: &created.share_url };
    fake.provider().delete_shared_link(&secret(ACCESS_TOKEN), &target, &existing).await.unwrap();

    assert_eq!(
        created,
        CreatedLink {
            provider_share_id: Some("123ABC".into()),
            share_url: "https://1drv.ms/A6913278E564460AA616C71B28AD6EB6".into(),
            // The permission Graph answered names no expirationDateTime: none is in force.
            expires_at: None,
        }
    );
    assert_no_secrets(&format!("{request:?} {created:?}"));
}

#[tokio::test]
async fn onedrive_without_a_recorded_drive_uses_the_users_drive() {
    let fake = Fake::start(ProviderType::OneDrive).await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/drive/items/ITEM1/createLink"))
        .and(body_json(json!({ "type": "edit", "scope": "anonymous" })))
        .respond_with(ResponseTemplate::new(200).set_body_json(graph_permission("edit")))
        .expect(1)
        .mount(&fake.server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v1.0/me/drive/items/ITEM1/permissions/123ABC"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({ "error": { "code": "itemNotFound", "message": "The resource could not be found." } }),
        ))
        .expect(1)
        .mount(&fake.server)
        .await;
    let target = LinkTarget { resource_type: ResourceType::Folder, item_id: "ITEM1", connection_metadata: None };

    let created = fake
        .provider()
        .create_shared_link(&secret(ACCESS_TOKEN), &target, &link_request(ShareType::Edit, None, None))
        .await
        .unwrap();
    let gone = ExistingLink { provider_share_id: Some("123ABC"), share_url: &created.share_url };
    let deleted = fake.provider().delete_shared_link(&secret(ACCESS_TOKEN), &target, &gone).await;

    assert_eq!(created.provider_share_id.as_deref(), Some("123ABC"));
    assert_eq!(deleted, Ok(()), "a link already gone counts as deleted");
}

#[tokio::test]
async fn microsoft_refuses_what_graph_cannot_do() {
    let sharepoint = Fake::start(ProviderType::SharePoint).await;
    let onedrive = Fake::start(ProviderType::OneDrive).await;
    let business = json!({ "drive_id": DRIVE_ID, "drive_type": "business" });
    let file =
        |metadata| LinkTarget { resource_type: ResourceType::File, item_id: "ITEM1", connection_metadata: metadata };
    let token = secret(ACCESS_TOKEN);

    let password = link_request(ShareType::View, Some(LINK_PASSWORD), None);
    let on_sharepoint = sharepoint.provider().create_shared_link(&token, &file(None), &password).await.unwrap_err();
    let on_business =
        onedrive.provider().create_shared_link(&token, &file(Some(&business)), &password).await.unwrap_err();
    let comment = link_request(ShareType::Comment, None, None);
    let commenting = onedrive.provider().create_shared_link(&token, &file(None), &comment).await.unwrap_err();

    for err in [&on_sharepoint, &on_business, &commenting] {
        assert!(matches!(err, ProviderError::Unsupported(_)), "{err:?}");
        assert_eq!(err.error_type(), ErrorType::Validation);
        assert_no_secrets(&format!("{err} {err:?}"));
    }
    assert!(sharepoint.server.received_requests().await.unwrap().is_empty());
    assert!(onedrive.server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn gdrive_adds_an_anyone_permission_and_reads_the_view_link() {
    let fake = Fake::start(ProviderType::GDrive).await;
    Mock::given(method("POST"))
        .and(path("/drive/v3/files/1aBcD/permissions"))
        .and(query_param("supportsAllDrives", "true"))
        .and(bearer_token(ACCESS_TOKEN))
        .and(body_json(json!({ "role": "commenter", "type": "anyone", "allowFileDiscovery": false })))
        .respond_with(ResponseTemplate::new(200).set_body_json(drive_permission("commenter")))
        .expect(1)
        .mount(&fake.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/drive/v3/files/1aBcD"))
        .and(query_param("fields", "webViewLink"))
        .and(bearer_token(ACCESS_TOKEN))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "webViewLink": "https://drive.google.com/file/d/1aBcD/view?usp=drivesdk" })),
        )
        .expect(1)
        .mount(&fake.server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/drive/v3/files/1aBcD/permissions/anyoneWithLink"))
        .and(bearer_token(ACCESS_TOKEN))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&fake.server)
        .await;
    let target = LinkTarget { resource_type: ResourceType::File, item_id: "1aBcD", connection_metadata: None };
    // The expiry is not sent: Drive refuses it for `anyone`; the link-expiry job deletes the link.
    let request = link_request(ShareType::Comment, None, expires("2026-03-01T12:00:00Z"));

    let created = fake.provider().create_shared_link(&secret(ACCESS_TOKEN), &target, &request).await.unwrap();
    let existing =
        ExistingLink { provider_share_id: created.provider_share_id.as_deref(), share_url: &created.share_url };
    fake.provider().delete_shared_link(&secret(ACCESS_TOKEN), &target, &existing).await.unwrap();

    assert_eq!(created.provider_share_id.as_deref(), Some("anyoneWithLink"));
    assert_eq!(created.share_url, "https://drive.google.com/file/d/1aBcD/view?usp=drivesdk");
    assert!(!fake.provider().expires_links_natively());
}

#[tokio::test]
async fn gdrive_maps_share_types_to_roles_and_refuses_passwords() {
    let fake = Fake::start(ProviderType::GDrive).await;
    // view and download are both `reader`: Drive has no view-only link for anyone.
    for (role, times) in [("reader", 2), ("writer", 1)] {
        Mock::given(method("POST"))
            .and(path("/drive/v3/files/F1/permissions"))
            .and(body_json(json!({ "role": role, "type": "anyone", "allowFileDiscovery": false })))
            .respond_with(ResponseTemplate::new(200).set_body_json(drive_permission(role)))
            .expect(times)
            .mount(&fake.server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/drive/v3/files/F1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "webViewLink": "https://drive.google.com/x" })))
        .mount(&fake.server)
        .await;
    let target = LinkTarget { resource_type: ResourceType::Folder, item_id: "F1", connection_metadata: None };
    let token = secret(ACCESS_TOKEN);

    for share_type in [ShareType::View, ShareType::Download, ShareType::Edit] {
        fake.provider()
            .create_shared_link(&token, &target, &link_request(share_type, None, None))
            .await
            .unwrap_or_else(|e| panic!("{share_type}: {e}"));
    }
    let with_password = link_request(ShareType::View, Some(LINK_PASSWORD), None);
    let refused = fake.provider().create_shared_link(&token, &target, &with_password).await.unwrap_err();

    assert!(matches!(refused, ProviderError::Unsupported(ref m) if m.contains("password")), "{refused:?}");
    assert_no_secrets(&format!("{refused} {refused:?}"));
}

#[tokio::test]
async fn dropbox_creates_a_link_with_settings_and_revokes_it_by_url() {
    let fake = Fake::start(ProviderType::Dropbox).await;
    let url = "https://www.dropbox.com/s/2sn712vy1ovegw8/Prime_Numbers.txt?dl=0";
    Mock::given(method("POST"))
        .and(path("/2/sharing/create_shared_link_with_settings"))
        .and(bearer_token(ACCESS_TOKEN))
        .and(body_json(json!({
            "path": "id:a4ayc_80_OEAAAAAAAAAXw",
            "settings": {
                "audience": "public",
                "access": "viewer",
                "allow_download": true,
                "expires": "2026-03-01T12:00:00Z",
                "require_password": true,
                "link_password": LINK_PASSWORD,
            }
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(dropbox_link()))
        .expect(1)
        .mount(&fake.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/2/sharing/revoke_shared_link"))
        .and(bearer_token(ACCESS_TOKEN))
        .and(body_json(json!({ "url": url })))
        .respond_with(ResponseTemplate::new(200).set_body_string("null"))
        .expect(1)
        .mount(&fake.server)
        .await;
    let target = LinkTarget {
        resource_type: ResourceType::File,
        item_id: "id:a4ayc_80_OEAAAAAAAAAXw",
        connection_metadata: None,
    };
    let request = link_request(ShareType::Download, Some(LINK_PASSWORD), expires("2026-03-01T12:00:00Z"));

    let created = fake.provider().create_shared_link(&secret(ACCESS_TOKEN), &target, &request).await.unwrap();
    let existing = ExistingLink { provider_share_id: None, share_url: &created.share_url };
    fake.provider().delete_shared_link(&secret(ACCESS_TOKEN), &target, &existing).await.unwrap();

    assert_eq!(created, CreatedLink { provider_share_id: None, share_url: url.into(), expires_at: None });
}

#[tokio::test]
async fn dropbox_link_errors_are_typed_and_a_missing_link_counts_as_revoked() {
    let fake = Fake::start(ProviderType::Dropbox).await;
    Mock::given(method("POST"))
        .and(path("/2/sharing/create_shared_link_with_settings"))
        .and(body_json(json!({ "path": "/Homework/math", "settings": { "audience": "public", "access": "editor" } })))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "error_summary": "shared_link_already_exists/metadata/..",
            "error": { ".tag": "shared_link_already_exists" }
        })))
        .mount(&fake.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/2/sharing/revoke_shared_link"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "error_summary": "shared_link_not_found/..",
            "error": { ".tag": "shared_link_not_found" }
        })))
        .mount(&fake.server)
        .await;
    let target =
        LinkTarget { resource_type: ResourceType::Folder, item_id: "/Homework/math", connection_metadata: None };
    let token = secret(ACCESS_TOKEN);

    let exists = fake.provider().create_shared_link(&token, &target, &link_request(ShareType::Edit, None, None)).await;
    let gone = ExistingLink { provider_share_id: None, share_url: "https://www.dropbox.com/s/gone" };
    let deleted = fake.provider().delete_shared_link(&token, &target, &gone).await;

    let err = exists.unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { status: 409, .. }), "{err:?}");
    assert_eq!(err.error_code().as_deref(), Some("shared_link_already_exists"));
    assert_eq!(deleted, Ok(()));
}

#[tokio::test]
async fn box_sets_and_clears_the_items_shared_link() {
    let fake = Fake::start(ProviderType::Box).await;
    Mock::given(method("PUT"))
        .and(path("/2.0/files/12345"))
        .and(query_param("fields", "shared_link"))
        .and(bearer_token(ACCESS_TOKEN))
        .and(body_json(json!({
            "shared_link": {
                "access": "open",
                "password": LINK_PASSWORD,
                "unshared_at": "2026-03-01T12:00:00+00:00",
                "permissions": { "can_preview": true, "can_download": true, "can_edit": true },
            }
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(box_shared_item("file")))
        .expect(1)
        .mount(&fake.server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/2.0/files/12345"))
        .and(query_param("fields", "shared_link"))
        .and(body_json(json!({ "shared_link": null })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "12345", "type": "file", "etag": "2", "shared_link": null
        })))
        .expect(1)
        .mount(&fake.server)
        .await;
    let target = LinkTarget { resource_type: ResourceType::File, item_id: "12345", connection_metadata: None };
    let request = link_request(ShareType::Edit, Some(LINK_PASSWORD), expires("2026-03-01T12:00:00Z"));

    let created = fake.provider().create_shared_link(&secret(ACCESS_TOKEN), &target, &request).await.unwrap();
    let existing = ExistingLink { provider_share_id: None, share_url: &created.share_url };
    fake.provider().delete_shared_link(&secret(ACCESS_TOKEN), &target, &existing).await.unwrap();

    assert_eq!(
        created,
        CreatedLink {
            provider_share_id: None,
            share_url: "https://app.box.com/s/kwio6b4ovt1264rnfbyqo1".into(),
            // Box answers the item with the `unshared_at` in force.
            expires_at: Some(chrono::DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z").unwrap().to_utc()),
        }
    );
}

#[tokio::test]
async fn box_view_links_on_folders_forbid_download_and_edit_or_comment_is_refused() {
    let fake = Fake::start(ProviderType::Box).await;
    Mock::given(method("PUT"))
        .and(path("/2.0/folders/777"))
        .and(body_json(json!({
            "shared_link": { "access": "open", "permissions": { "can_preview": true, "can_download": false } }
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(box_shared_item("folder")))
        .expect(1)
        .mount(&fake.server)
        .await;
    let folder = LinkTarget { resource_type: ResourceType::Folder, item_id: "777", connection_metadata: None };
    let token = secret(ACCESS_TOKEN);

    let view = fake.provider().create_shared_link(&token, &folder, &link_request(ShareType::View, None, None)).await;
    let edit = fake.provider().create_shared_link(&token, &folder, &link_request(ShareType::Edit, None, None)).await;
    let comment =
        fake.provider().create_shared_link(&token, &folder, &link_request(ShareType::Comment, None, None)).await;

    assert!(view.is_ok(), "{view:?}");
    assert!(matches!(edit, Err(ProviderError::Unsupported(_))), "{edit:?}");
    assert!(matches!(comment, Err(ProviderError::Unsupported(_))), "{comment:?}");
}

// ---------------------------------------------------------------------------------------------
// Secrets

#[test]
fn token_sets_and_pkce_never_show_their_secrets() {
    let tokens = TokenSet {
        access_token: secret(ACCESS_TOKEN),
        refresh_token: Some(secret(REFRESH_TOKEN)),
        expires_in: Some(Duration::from_secs(60)),
        scope: Some("files".into()),
    };
    let pkce = pkce();

    let shown = format!("{tokens:?} {pkce:?} {:?}", link_request(ShareType::View, Some(LINK_PASSWORD), None));

    assert_no_secrets(&shown);
    assert!(!shown.contains(VERIFIER), "{shown}");
    assert!(shown.contains("files"), "non-secret fields stay visible: {shown}");
}

#[test]
fn registry_debug_output_hides_the_client_secret() {
    let shown = format!("{:?}", production_registry());

    assert_no_secrets(&shown);
    assert!(shown.contains("gdrive-client-id"), "{shown}");
}

#[tokio::test]
async fn item_ids_that_would_change_the_url_path_are_refused_before_any_call() {
    let token = secret(ACCESS_TOKEN);
    for kind in [ProviderType::OneDrive, ProviderType::GDrive, ProviderType::Box] {
        let fake = Fake::start(kind).await;
        let target = LinkTarget { resource_type: ResourceType::File, item_id: "..", connection_metadata: None };

        let err = fake.provider().create_shared_link(&token, &target, &link_request(ShareType::View, None, None)).await;

        assert!(matches!(err, Err(ProviderError::Unsupported(_))), "{kind}: {err:?}");
        assert!(fake.server.received_requests().await.unwrap().is_empty(), "{kind}");
    }
}
