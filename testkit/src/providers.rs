//! Fakes of the five providers' endpoints on one wiremock server, and response bodies in the
//! shapes each provider documents (field names, nesting, value types; identifiers made up).

use std::time::Duration;

use serde_json::{Value, json};
use shared::config::Config;
use shared::db::ProviderType;
use shared::providers::{HttpSettings, Provider, Registry};
use wiremock::{Match, MockServer, Request};

pub const CLIENT_SECRET: &str = "cs-FAKE-client-secret-0b7e";
pub const ACCESS_TOKEN: &str = "at-FAKE-access-token-7f3a";
pub const REFRESH_TOKEN: &str = "rt-FAKE-refresh-token-91cd";
pub const ROTATED_REFRESH_TOKEN: &str = "rt-FAKE-rotated-token-55e2";
pub const NEW_ACCESS_TOKEN: &str = "at-FAKE-new-access-token-c41b";
pub const LINK_PASSWORD: &str = "pw-FAKE-Link-Passw0rd-3c9d";
/// Every secret a test hands to or receives from a fake; none may appear in any output.
pub const SECRETS: &[&str] =
    &[CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN, ROTATED_REFRESH_TOKEN, NEW_ACCESS_TOKEN, LINK_PASSWORD];

pub const REDIRECT_BASE: &str = "https://api.quodsi.test/prod";
pub const STATE: &str = "sealed-state-abc123";
pub const CODE: &str = "auth-code-0001";

const KEY: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="; // 32 x 'A'

/// A configuration whose `providers` section is `providers`.
pub fn config(providers: Value) -> Config {
    let doc = json!({
        "database_url": "sqlite::memory:",
        "token_keys": { "k1": KEY },
        "active_token_key": "k1",
        "oauth_state_key": KEY,
        "providers": providers,
        "oauth_redirect_base_url": REDIRECT_BASE,
    });
    Config::from_json(&doc.to_string()).expect("test configuration")
}

pub fn registry(providers: Value) -> Registry {
    Registry::from_config(&config(providers)).expect("registry")
}

/// One provider configured against a local fake: every endpoint overridden (Dropbox's
/// revocation left to follow `api_base_url`, as it does in production).
pub struct Fake {
    pub server: MockServer,
    pub registry: Registry,
    pub kind: ProviderType,
}

impl Fake {
    pub async fn start(kind: ProviderType) -> Fake {
        Fake::with_timeout(kind, Duration::from_secs(5)).await
    }

    pub async fn with_timeout(kind: ProviderType, total_timeout: Duration) -> Fake {
        let server = MockServer::start().await;
        let uri = server.uri();
        let mut entry = json!({
            "client_id": format!("{kind}-client-id"),
            "client_secret": CLIENT_SECRET,
            "authorize_url": format!("{uri}/authorize"),
            "token_url": format!("{uri}/token"),
            "api_base_url": uri,
        });
        if kind != ProviderType::Dropbox {
            entry["revoke_url"] = json!(format!("{uri}/revoke"));
        }
        let config = config(json!({ kind.as_str(): entry }));
        let settings =
            HttpSettings { connect_timeout: Duration::from_secs(2), total_timeout, ..HttpSettings::default() };
        let registry = Registry::with_settings(&config.providers, config.oauth_redirect_base_url.as_deref(), settings)
            .expect("registry");
        Fake { server, registry, kind }
    }

    pub fn provider(&self) -> &dyn Provider {
        self.registry.get(self.kind).expect("configured provider")
    }

    pub fn redirect_uri(&self) -> String {
        self.registry.redirect_uri(self.kind).unwrap()
    }
}

/// Matches a form-encoded body holding every one of `pairs` (and possibly more).
pub struct FormHas(pub Vec<(&'static str, String)>);

impl Match for FormHas {
    fn matches(&self, request: &Request) -> bool {
        let form: Vec<(String, String)> = form_urlencoded::parse(&request.body).into_owned().collect();
        self.0.iter().all(|(k, v)| form.iter().any(|(fk, fv)| fk == k && fv == v))
    }
}

/// Matches a form-encoded body holding none of `keys`.
pub struct FormLacks(pub &'static [&'static str]);

impl Match for FormLacks {
    fn matches(&self, request: &Request) -> bool {
        form_urlencoded::parse(&request.body).all(|(k, _)| !self.0.contains(&k.as_ref()))
    }
}

pub fn form(pairs: &[(&'static str, &str)]) -> FormHas {
    FormHas(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
}

// ---------------------------------------------------------------------------------------------
// Token endpoint bodies.

/// Microsoft identity platform, successful authorization-code or refresh response.
pub fn microsoft_tokens(access: &str, refresh: &str) -> Value {
    json!({
        "token_type": "Bearer",
        "scope": "User.Read Files.ReadWrite",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": access,
        "refresh_token": refresh,
    })
}

/// Google, authorization-code response.
pub fn google_tokens(access: &str, refresh: &str) -> Value {
    json!({
        "access_token": access,
        "expires_in": 3920,
        "token_type": "Bearer",
        "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/drive",
        "refresh_token": refresh,
    })
}

/// Google, refresh response: no refresh token.
pub fn google_refreshed(access: &str) -> Value {
    json!({
        "access_token": access,
        "expires_in": 3920,
        "scope": "https://www.googleapis.com/auth/drive",
        "token_type": "Bearer",
    })
}

/// Dropbox, authorization-code response with `token_access_type=offline`.
pub fn dropbox_tokens(access: &str, refresh: &str) -> Value {
    json!({
        "access_token": access,
        "expires_in": 14400,
        "token_type": "bearer",
        "scope": "account_info.read files.content.read files.content.write files.metadata.read sharing.read sharing.write",
        "refresh_token": refresh,
        "account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
        "uid": "12345",
    })
}

/// Dropbox, refresh response: no refresh token.
pub fn dropbox_refreshed(access: &str) -> Value {
    json!({ "access_token": access, "token_type": "bearer", "expires_in": 14400 })
}

/// Box, authorization-code and refresh response (a new refresh token every time).
pub fn box_tokens(access: &str, refresh: &str) -> Value {
    json!({
        "access_token": access,
        "expires_in": 3600,
        "token_type": "bearer",
        "restricted_to": [],
        "refresh_token": refresh,
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
    })
}

/// A successful token response for `kind`, with a refresh token.
pub fn tokens(kind: ProviderType, access: &str, refresh: &str) -> Value {
    match kind {
        ProviderType::OneDrive | ProviderType::SharePoint => microsoft_tokens(access, refresh),
        ProviderType::GDrive => google_tokens(access, refresh),
        ProviderType::Dropbox => dropbox_tokens(access, refresh),
        ProviderType::Box => box_tokens(access, refresh),
    }
}

/// Each provider's 400 for a dead refresh token.
pub fn invalid_grant(kind: ProviderType) -> Value {
    match kind {
        ProviderType::OneDrive | ProviderType::SharePoint => json!({
            "error": "invalid_grant",
            "error_description": "AADSTS70000: Provided grant is invalid or malformed.\r\nTrace ID: 0a1b2c3d-0000-4000-8000-000000000001\r\nCorrelation ID: 0a1b2c3d-0000-4000-8000-000000000002\r\nTimestamp: 2026-01-05 10:00:00Z",
            "error_codes": [70000],
            "timestamp": "2026-01-05 10:00:00Z",
            "trace_id": "0a1b2c3d-0000-4000-8000-000000000001",
            "correlation_id": "0a1b2c3d-0000-4000-8000-000000000002",
            "error_uri": "https://login.microsoftonline.com/error?code=70000",
        }),
        ProviderType::GDrive => {
            json!({ "error": "invalid_grant", "error_description": "Token has been expired or revoked." })
        }
        ProviderType::Dropbox => json!({ "error_description": "refresh token is malformed", "error": "invalid_grant" }),
        ProviderType::Box => json!({ "error": "invalid_grant", "error_description": "Refresh token has expired" }),
    }
}

/// Microsoft's answer when the user must sign in again (multi-factor required).
pub fn microsoft_interaction_required() -> Value {
    json!({
        "error": "interaction_required",
        "error_description": "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource.\r\nTrace ID: 1b2c3d4e-0000-4000-8000-000000000003\r\nCorrelation ID: 1b2c3d4e-0000-4000-8000-000000000004\r\nTimestamp: 2026-01-05 10:00:00Z",
        "error_codes": [50076],
        "timestamp": "2026-01-05 10:00:00Z",
        "trace_id": "1b2c3d4e-0000-4000-8000-000000000003",
        "correlation_id": "1b2c3d4e-0000-4000-8000-000000000004",
        "error_uri": "https://login.microsoftonline.com/error?code=50076",
        "suberror": "basic_action",
    })
}

/// Each provider's 401 for a wrong client secret.
pub fn invalid_client(kind: ProviderType) -> Value {
    match kind {
        ProviderType::OneDrive | ProviderType::SharePoint => json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 2c3d4e5f-0000-4000-8000-000000000005",
            "error_codes": [7000215],
            "timestamp": "2026-01-05 10:00:00Z",
            "trace_id": "2c3d4e5f-0000-4000-8000-000000000005",
            "correlation_id": "2c3d4e5f-0000-4000-8000-000000000006",
            "error_uri": "https://login.microsoftonline.com/error?code=7000215",
        }),
        ProviderType::GDrive => json!({ "error": "invalid_client", "error_description": "Unauthorized" }),
        ProviderType::Dropbox => {
            json!({ "error": "invalid_client", "error_description": "Invalid client_id or client_secret" })
        }
        ProviderType::Box => {
            json!({ "error": "invalid_client", "error_description": "The client credentials are not valid" })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Identity bodies.

/// Graph `GET /v1.0/me` (work account).
pub fn graph_me() -> Value {
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
        "businessPhones": ["+1 412 555 0109"],
        "displayName": "Megan Bowen",
        "givenName": "Megan",
        "jobTitle": "Auditor",
        "mail": "MeganB@contoso.test",
        "mobilePhone": null,
        "officeLocation": "12/1110",
        "preferredLanguage": "en-US",
        "surname": "Bowen",
        "userPrincipalName": "MeganB@contoso.test",
        "id": "48d31887-5fad-4d73-a9f5-3c356e68a038",
    })
}

/// Graph `GET /v1.0/me/drive`.
pub fn graph_drive(drive_type: &str) -> Value {
    json!({
        "id": "b!t18F8ybsHUq1z3LTz8xvZqP8zaSWjkFNhsME-Fepo75dTf9vQKfeRblBZjoSQrd7",
        "driveType": drive_type,
        "owner": { "user": { "id": "48d31887-5fad-4d73-a9f5-3c356e68a038", "displayName": "Megan Bowen" } },
        "quota": { "deleted": 256938, "remaining": 1099447353539_u64, "state": "normal", "total": 1099511627776_u64 },
    })
}

/// Graph `GET /v1.0/sites/root`.
pub fn graph_root_site() -> Value {
    json!({
        "id": "contoso.sharepoint.com,2C712604-1370-44E7-A1F5-426573FDA80A,2D2244C3-251A-49EA-93A8-39E1C3A060FE",
        "displayName": "OneDrive Team Site",
        "name": "1drvteam",
        "createdDateTime": "2017-05-09T20:56:00Z",
        "lastModifiedDateTime": "2017-05-09T20:56:01Z",
        "webUrl": "https://contoso.sharepoint.com/teams/1drvteam",
    })
}

/// OpenID Connect userinfo.
pub fn google_userinfo() -> Value {
    json!({
        "sub": "110169484474386276334",
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "picture": "https://lh3.googleusercontent.com/a/default-user",
        "email": "ada@example.test",
        "email_verified": true,
        "locale": "en",
    })
}

/// Dropbox `users/get_current_account` (FullAccount).
pub fn dropbox_account() -> Value {
    json!({
        "account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
        "name": {
            "given_name": "Franz",
            "surname": "Ferdinand",
            "familiar_name": "Franz",
            "display_name": "Franz Ferdinand (Personal)",
            "abbreviated_name": "FF",
        },
        "email": "franz@example.test",
        "email_verified": true,
        "disabled": false,
        "locale": "en",
        "referral_link": "https://db.tt/ZITNuhtI",
        "is_paired": false,
        "account_type": { ".tag": "basic" },
        "root_info": { ".tag": "user", "root_namespace_id": "3235641", "home_namespace_id": "3235641" },
        "country": "US",
    })
}

/// Box `GET /2.0/users/me`.
pub fn box_user() -> Value {
    json!({
        "id": "11446498",
        "type": "user",
        "name": "Aaron Levie",
        "login": "ceo@example.test",
        "enterprise": { "id": "1910967", "type": "enterprise", "name": "Acme Inc." },
    })
}

// ---------------------------------------------------------------------------------------------
// Shared-link bodies.

/// Graph `createLink` (201, a permission).
pub fn graph_permission(link_type: &str) -> Value {
    json!({
        "id": "123ABC",
        "roles": [if link_type == "edit" { "write" } else { "read" }],
        "link": {
            "type": link_type,
            "scope": "anonymous",
            "webUrl": "https://1drv.ms/A6913278E564460AA616C71B28AD6EB6",
            "application": { "id": "1234", "displayName": "Sample Application" },
        },
        "hasPassword": false,
    })
}

/// Drive `permissions.create` for type `anyone`.
pub fn drive_permission(role: &str) -> Value {
    json!({
        "kind": "drive#permission",
        "id": "anyoneWithLink",
        "type": "anyone",
        "role": role,
        "allowFileDiscovery": false,
    })
}

/// Dropbox `create_shared_link_with_settings` (a file's SharedLinkMetadata).
pub fn dropbox_link() -> Value {
    json!({
        ".tag": "file",
        "url": "https://www.dropbox.com/s/2sn712vy1ovegw8/Prime_Numbers.txt?dl=0",
        "name": "Prime_Numbers.txt",
        "link_permissions": {
            "can_revoke": true,
            "resolved_visibility": { ".tag": "public" },
            "visibility_policies": [],
            "can_set_expiry": true,
            "can_remove_expiry": true,
            "allow_download": true,
            "can_allow_download": true,
            "can_disallow_download": false,
            "allow_comments": true,
            "team_restricts_comments": false,
        },
        "client_modified": "2015-05-12T15:50:38Z",
        "server_modified": "2015-05-12T15:50:38Z",
        "rev": "a1c10ce0dd78",
        "size": 7212,
        "id": "id:a4ayc_80_OEAAAAAAAAAXw",
        "path_lower": "/homework/math/prime_numbers.txt",
    })
}

/// Box `PUT /2.0/files/{id}?fields=shared_link`.
pub fn box_shared_item(kind: &str) -> Value {
    json!({
        "id": "12345",
        "type": kind,
        "etag": "1",
        "shared_link": {
            "url": "https://app.box.com/s/kwio6b4ovt1264rnfbyqo1",
            "download_url": "https://app.box.com/shared/static/kwio6b4ovt1264rnfbyqo1.pdf",
            "vanity_url": null,
            "vanity_name": null,
            "effective_access": "open",
            "effective_permission": "can_download",
            "is_password_enabled": false,
            "unshared_at": "2026-02-01T00:00:00-00:00",
            "download_count": 0,
            "preview_count": 0,
            "access": "open",
            "permissions": { "can_preview": true, "can_download": true, "can_edit": false },
        },
    })
}

/// A Graph drive in which every item id names a folder (`graph/item_folder.json` with that id,
/// named `Folder {id}` under the root), except ids starting `missing-` (Graph's 404
/// `itemNotFound`) and `file-` (`graph/item_file.json`, a file): for tests that configure
/// folders with made-up provider ids (`POST /folders` asks the provider about each). A
/// folder's children are one subfolder (`{id}-child`) and one file; `POST …/children` makes
/// the folder asked for; `sites?search=` answers `graph/sites_search.json` and any site's
/// drives `graph/site_drives.json`. Any other request gets the 404. It answers with a low
/// priority, so a test's own mocks come first. Requests must carry `Bearer` [`ACCESS_TOKEN`].
pub async fn mount_graph_folders(server: &MockServer) {
    struct Folders(String);
    impl wiremock::Respond for Folders {
        fn respond(&self, request: &Request) -> wiremock::ResponseTemplate {
            let not_found = || {
                wiremock::ResponseTemplate::new(404).set_body_json(json!({
                    "error": { "code": "itemNotFound", "message": "The resource could not be found." }
                }))
            };
            let bearer = format!("Bearer {ACCESS_TOKEN}");
            if request.headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
                return wiremock::ResponseTemplate::new(401)
                    .set_body_json(crate::sync_fakes::fixture("graph/error_401.json", &self.0));
            }
            let segments: Vec<String> = request
                .url
                .path_segments()
                .map(|s| s.filter(|s| !s.is_empty()).map(crate::sync_fakes::decode_segment).collect())
                .unwrap_or_default();
            let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
            let item = |id: &str, name: String| {
                let mut body = crate::sync_fakes::fixture("graph/item_folder.json", &self.0);
                body["id"] = json!(id);
                body["name"] = json!(name);
                body
            };
            let rest = match segments.as_slice() {
                ["v1.0", "sites"] => {
                    return wiremock::ResponseTemplate::new(200)
                        .set_body_json(crate::sync_fakes::fixture("graph/sites_search.json", &self.0));
                }
                ["v1.0", "sites", _, "drives"] => {
                    return wiremock::ResponseTemplate::new(200)
                        .set_body_json(crate::sync_fakes::fixture("graph/site_drives.json", &self.0));
                }
                ["v1.0", "drives", _, rest @ ..] | ["v1.0", "me", "drive", rest @ ..] => rest,
                _ => return not_found(),
            };
            let (id, tail) = match rest {
                ["items", id, tail @ ..] => ((*id).to_owned(), tail),
                ["root", tail @ ..] => ("root".to_owned(), tail),
                _ => return not_found(),
            };
            if id.starts_with("missing-") {
                return not_found();
            }
            match (request.method.as_str(), tail) {
                ("GET", []) => {}
                ("GET", ["children"]) if !id.starts_with("file-") => {
                    let mut file = crate::sync_fakes::fixture("graph/item_file.json", &self.0);
                    file["id"] = json!(format!("file-{id}"));
                    let value = json!([item(&format!("{id}-child"), format!("Child of {id}")), file]);
                    return wiremock::ResponseTemplate::new(200).set_body_json(json!({ "value": value }));
                }
                ("POST", ["children"]) if !id.starts_with("file-") => {
                    let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                    let name = body["name"].as_str().unwrap_or("New folder").to_owned();
                    return wiremock::ResponseTemplate::new(201).set_body_json(item(&format!("{id}-new"), name));
                }
                _ => return not_found(),
            }
            let mut body = if id.starts_with("file-") {
                crate::sync_fakes::fixture("graph/item_file.json", &self.0)
            } else {
                crate::sync_fakes::fixture("graph/item_folder.json", &self.0)
            };
            if id == "root" {
                body["id"] = json!("01ROOTFAKE0000000000000000000000AA");
                body["name"] = json!("root");
                body["root"] = json!({});
                body.as_object_mut().expect("an item").remove("parentReference");
            } else {
                body["id"] = json!(id);
                body["name"] = json!(format!("Folder {id}"));
            }
            wiremock::ResponseTemplate::new(200).set_body_json(body)
        }
    }
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(Folders(server.uri()))
        .with_priority(10)
        .mount(server)
        .await;
}

/// The `providers` configuration of OneDrive pointed at `server` (its API and token endpoint).
pub fn onedrive_at(server: &MockServer) -> Value {
    let uri = server.uri();
    json!({ "providers": { "onedrive": {
        "client_id": "onedrive-client",
        "client_secret": CLIENT_SECRET,
        "token_url": format!("{uri}/token"),
        "api_base_url": uri,
    }}})
}
