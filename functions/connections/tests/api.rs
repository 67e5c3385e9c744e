//! The connections API through its real router, fed API Gateway events from
//! `events/connections/`, with the providers' revocation endpoints faked by wiremock.

use secrecy::SecretString;
use serde_json::{Value, json};
use shared::db::{Connection, ConnectionStatus, ErrorType, ProviderType, SharedLink, SyncErrorFilter};
use shared::vault::TokenContext;
use testkit::http::{ApiEvent, Reply, TestApp, call};
use testkit::{Graph, Tenant, new_connection, new_folder};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCESS: &str = "fake-access-token-Q9x7Lm2v";
const REFRESH: &str = "fake-refresh-token-Zr4Kp8Wd";

/// Every provider pointed at the fake; Google and Box revoke at their own URLs.
fn provider_config(server: &MockServer) -> Value {
    let uri = server.uri();
    let entry = |name: &str| json!({"client_id": format!("{name}-client"), "client_secret": format!("{name}-secret")});
    let mut providers = json!({
        "onedrive": entry("onedrive"),
        "gdrive": entry("gdrive"),
        "dropbox": entry("dropbox"),
        "box": entry("box"),
    });
    for name in ["onedrive", "gdrive", "dropbox", "box"] {
        providers[name]["api_base_url"] = json!(uri);
        providers[name]["token_url"] = json!(format!("{uri}/{name}/token"));
    }
    providers["gdrive"]["revoke_url"] = json!(format!("{uri}/google/revoke"));
    providers["box"]["revoke_url"] = json!(format!("{uri}/box/oauth2/revoke"));
    json!({ "providers": providers })
}

async fn app_with_fake() -> (TestApp, MockServer) {
    let server = MockServer::start().await;
    (TestApp::with_config(provider_config(&server)).await, server)
}

/// A connection whose stored tokens are really encrypted by the app's vault (the vault binds
/// them to the row id, so they are written after the insert).
async fn connect(t: &TestApp, tenant: &Tenant, provider: ProviderType) -> Connection {
    let mut new = new_connection(tenant);
    new.provider_type = provider;
    let c = t.store().create_connection(&new).await.unwrap();
    let current = t.app.current().await.unwrap();
    let (tid, id) = (tenant.id, c.base.id);
    let access = current.vault.encrypt(TokenContext::access(tid, id), &SecretString::from(ACCESS));
    let refresh = current.vault.encrypt(TokenContext::refresh(tid, id), &SecretString::from(REFRESH));
    assert!(
        t.store().swap_connection_tokens(tid, id, &new.encrypted_access_token, access, Some(refresh)).await.unwrap()
    );
    t.store().get_connection(tid, id).await.unwrap()
}

fn at(name: &str, id: impl std::fmt::Display) -> ApiEvent {
    ApiEvent::load(&format!("connections/{name}")).path(&format!("/connections/{id}"))
}

fn assert_no_tokens(reply: &Reply) {
    for secret in ["encrypted_access_token", "encrypted_refresh_token", ACCESS, REFRESH] {
        assert!(!reply.text.contains(secret), "{secret} leaked: {}", reply.text);
    }
}

#[tokio::test]
async fn lists_connections_of_the_callers_tenant_page_by_page_with_filters() {
    // Arrange
    let (t, _server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    for _ in 0..4 {
        connect(&t, &a, ProviderType::OneDrive).await;
    }
    let gdrive = connect(&t, &a, ProviderType::GDrive).await;
    connect(&t, &b, ProviderType::OneDrive).await;

    // Act
    let list = || ApiEvent::load("connections/list").caller(&a);
    let mut pages = vec![call(&router, &list().query("limit=2")).await];
    while let Some(cursor) = pages.last().unwrap().body["next_cursor"].as_str().map(str::to_owned) {
        pages.push(call(&router, &list().query(&format!("limit=2&cursor={cursor}"))).await);
    }
    let only_gdrive = call(&router, &list().query("provider_type=gdrive&status=active")).await;
    let none_revoked = call(&router, &list().query("status=revoked")).await;

    // Assert
    assert_eq!(pages.len(), 3, "five rows in pages of two");
    let items: Vec<&Value> = pages.iter().flat_map(|p| p.body["items"].as_array().unwrap()).collect();
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(|c| c["tenant_id"] == json!(a.id.to_string())));
    let ids: std::collections::HashSet<_> = items.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5, "no row on two pages");
    for page in &pages {
        assert_eq!(page.status, 200, "{}", page.text);
        assert_no_tokens(page);
    }
    let gd = only_gdrive.body["items"].as_array().unwrap();
    assert_eq!(gd.len(), 1);
    assert_eq!(gd[0]["id"], json!(gdrive.base.id.to_string()));
    assert!(none_revoked.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn reads_a_connection_with_seed_names_and_no_token_fields() {
    // Arrange
    let (t, _server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let c = connect(&t, &a, ProviderType::Dropbox).await;

    // Act
    let reply = call(&router, &at("get", c.base.id).caller(&a)).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["provider_type"], "dropbox");
    assert_eq!(reply.body["status"], "active");
    assert_eq!(reply.body["display_name"], "Work OneDrive");
    for column in ["id", "tenant_id", "user_id", "provider_user_id", "token_expiry", "scope", "connection_metadata"] {
        assert!(reply.body.get(column).is_some(), "{column} missing: {}", reply.text);
    }
    for internal in ["index_id", "is_deleted"] {
        assert!(reply.body.get(internal).is_none(), "{internal} is storage, not API: {}", reply.text);
    }
    assert!(reply.body.get("encrypted_access_token").is_none());
    assert!(reply.body.get("encrypted_refresh_token").is_none());
    assert_no_tokens(&reply);
}

#[tokio::test]
async fn patch_sets_and_clears_the_display_name_and_metadata() {
    // Arrange
    let (t, _server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let c = connect(&t, &a, ProviderType::OneDrive).await;
    let patch = |body: Value| at("patch", c.base.id).caller(&a).json(&body);

    // Act
    let from_event = call(&router, &at("patch", c.base.id).caller(&a)).await;
    let renamed =
        call(&router, &patch(json!({"display_name": "Team drive", "connection_metadata": {"k": [1, 2]}}))).await;
    let untouched = call(&router, &patch(json!({}))).await;
    let cleared = call(&router, &patch(json!({"display_name": null, "connection_metadata": null}))).await;

    // Assert
    assert_eq!(from_event.status, 200, "{}", from_event.text);
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.body["display_name"], "Team drive");
    assert_eq!(renamed.body["connection_metadata"], json!({"k": [1, 2]}));
    assert_eq!(untouched.body["display_name"], "Team drive", "an absent field is left alone");
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert!(cleared.body["display_name"].is_null());
    assert!(cleared.body["connection_metadata"].is_null());
    assert_no_tokens(&cleared);
    let stored = t.store().get_connection(a.id, c.base.id).await.unwrap();
    assert_eq!((stored.display_name, stored.connection_metadata), (None, None));
    assert_eq!(stored.encrypted_access_token, c.encrypted_access_token, "tokens untouched");
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_writes_nothing() {
    // Arrange
    let (t, _server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let c = connect(&t, &a, ProviderType::OneDrive).await;
    let patch = |body: Value| at("patch", c.base.id).caller(&a).json(&body);
    let list = |q: &str| ApiEvent::load("connections/list").caller(&a).query(q);

    let cases = [
        (patch(json!({"display_name": "x".repeat(256)})), "display_name"),
        (patch(json!({"display_name": "😀".repeat(128)})), "display_name"),
        (patch(json!({"display_name": ""})), "display_name"),
        (patch(json!({"display_name": 7})), "display_name"),
        (patch(json!({"connection_metadata": [1, 2]})), "connection_metadata"),
        (patch(json!({"connection_metadata": "drive"})), "connection_metadata"),
        (list("provider_type=icloud"), "provider_type"),
        (list("status=paused"), "status"),
        (list("limit=0"), "limit"),
        (list("limit=201"), "limit"),
        (list("cursor=bogus"), "cursor"),
        (at("get", "not-a-uuid").caller(&a), "id"),
        (at("patch", "not-a-uuid").caller(&a), "id"),
        (at("delete", "not-a-uuid").caller(&a), "id"),
    ];

    // Act + Assert
    for (event, field) in cases {
        let reply = call(&router, &event).await;
        assert_eq!(reply.status, 400, "{field}: {}", reply.text);
        assert_eq!(reply.error_field(), Some(field), "{}", reply.text);
    }
    for body in
        [json!({"status": "revoked"}), json!({"tenant_id": a.id.to_string()}), json!({"encrypted_access_token": "x"})]
    {
        let reply = call(&router, &patch(body)).await;
        assert_eq!(reply.status, 400, "unknown fields are refused: {}", reply.text);
    }
    let stored = t.store().get_connection(a.id, c.base.id).await.unwrap();
    assert_eq!(stored, c, "nothing written");
}

#[tokio::test]
async fn delete_revokes_at_google_then_deletes_the_connection_its_folders_and_links() {
    // Arrange
    let (t, server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let c = connect(&t, &a, ProviderType::GDrive).await;
    let folder = t.store().create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    let file = t.store().create_file(&testkit::new_file(&a, folder.base.id)).await.unwrap();
    let link = t.store().create_link(&testkit::new_file_link(&a, file.base.id)).await.unwrap();
    // https://developers.google.com/drive/api/reference/rest/v3/permissions/delete: 204.
    Mock::given(method("DELETE"))
        .and(path(format!("/drive/v3/files/{}/permissions/share-1", file.provider_file_id)))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    // https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke: 200, empty body.
    Mock::given(method("POST"))
        .and(path("/google/revoke"))
        .and(body_string_contains(format!("token={REFRESH}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let reply = call(&router, &at("delete", c.base.id).caller(&a)).await;
    let again = call(&router, &at("get", c.base.id).caller(&a)).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "revoked");
    assert!(reply.body.get("is_deleted").is_none(), "deletion shows as the 404 after it: {}", reply.text);
    assert_no_tokens(&reply);
    assert_eq!(again.status, 404);
    assert!(t.store().get_folder(a.id, folder.base.id).await.is_err(), "folder deleted");
    assert!(!t.store().get_link(a.id, link.base.id).await.unwrap().is_active, "link deactivated");
    let errors = t.store().list_errors(a.id, &SyncErrorFilter::default(), shared::db::PageRequest::first(10)).await;
    assert!(errors.unwrap().items.is_empty(), "a successful revocation records nothing");
}

#[tokio::test]
async fn delete_revokes_at_dropbox_with_the_access_token() {
    // Arrange
    let (t, server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let c = connect(&t, &a, ProviderType::Dropbox).await;
    // https://www.dropbox.com/developers/documentation/http/documentation#auth-token-revoke: no
    // return value, JSON null.
    Mock::given(method("POST"))
        .and(path("/2/auth/token/revoke"))
        .and(header("authorization", format!("Bearer {ACCESS}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_raw("null", "application/json"))
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let reply = call(&router, &at("delete", c.base.id).caller(&a)).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "revoked");
}

#[tokio::test]
async fn delete_stands_when_the_provider_refuses_to_revoke_and_the_failure_is_recorded() {
    // Arrange
    let (t, server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let c = connect(&t, &a, ProviderType::Box).await;
    // Box answers a bad revocation with an OAuth error body.
    Mock::given(method("POST"))
        .and(path("/box/oauth2/revoke"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "The client credentials are invalid"
        })))
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let reply = call(&router, &at("delete", c.base.id).caller(&a)).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "revoked");
    assert_eq!(call(&router, &at("get", c.base.id).caller(&a)).await.status, 404, "deleted anyway");
    let filter = SyncErrorFilter { connection_id: Some(c.base.id), ..Default::default() };
    let errors = t.store().list_errors(a.id, &filter, shared::db::PageRequest::first(10)).await.unwrap().items;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].error_type, ErrorType::Api);
    assert_eq!(errors[0].error_code.as_deref(), Some("invalid_client"));
    assert!(errors[0].error_message.contains("box"), "{}", errors[0].error_message);
    assert!(!errors[0].error_message.contains(REFRESH) && !errors[0].error_message.contains(ACCESS));
}

#[tokio::test]
async fn delete_stands_when_the_provider_is_down_or_not_configured() {
    // Arrange
    let (t, server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let down = connect(&t, &a, ProviderType::GDrive).await;
    let unconfigured = connect(&t, &a, ProviderType::SharePoint).await;
    Mock::given(method("POST"))
        .and(path("/google/revoke"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>unavailable</html>"))
        .mount(&server)
        .await;

    // Act
    let first = call(&router, &at("delete", down.base.id).caller(&a)).await;
    let second = call(&router, &at("delete", unconfigured.base.id).caller(&a)).await;

    // Assert
    for (reply, c, error_type) in [(&first, &down, ErrorType::Api), (&second, &unconfigured, ErrorType::Validation)] {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(matches!(t.store().get_connection(a.id, c.base.id).await, Err(shared::db::DbError::NotFound)));
        let filter = SyncErrorFilter { connection_id: Some(c.base.id), ..Default::default() };
        let errors = t.store().list_errors(a.id, &filter, shared::db::PageRequest::first(10)).await.unwrap().items;
        assert_eq!(errors.iter().map(|e| e.error_type).collect::<Vec<_>>(), vec![error_type]);
    }
}

#[tokio::test]
async fn another_tenants_connection_is_not_found_on_every_route_and_nothing_is_revoked() {
    // Arrange
    let (t, server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let b = t.tenant().await;
    let c = connect(&t, &a, ProviderType::GDrive).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;

    // Act
    let read = call(&router, &at("get", c.base.id).caller(&b)).await;
    let patch = call(&router, &at("patch", c.base.id).caller(&b)).await;
    let delete = call(&router, &at("delete", c.base.id).caller(&b)).await;
    let unknown = call(&router, &at("delete", uuid::Uuid::new_v4()).caller(&a)).await;

    // Assert
    for reply in [read, patch, delete, unknown] {
        assert_eq!((reply.status, reply.error_code()), (404, "not_found"), "{}", reply.text);
    }
    assert_eq!(t.store().get_connection(a.id, c.base.id).await.unwrap(), c, "nothing written");
}

#[tokio::test]
async fn missing_claims_are_401() {
    let (t, _server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let g = Graph::create(t.store(), &a).await;

    let list = call(&router, &ApiEvent::load("connections/list").without_authorizer()).await;
    let delete = call(&router, &at("delete", g.connection.base.id).without_authorizer()).await;

    assert_eq!((list.status, list.error_code()), (401, "unauthorized"));
    assert_eq!((delete.status, delete.error_code()), (401, "unauthorized"));
    assert_eq!(t.store().get_connection(a.id, g.connection.base.id).await.unwrap().status, ConnectionStatus::Active);
}

/// An active link of `share_url` (and permission id) on the folder, or on a file in it.
async fn link(t: &TestApp, tenant: &Tenant, folder: &shared::db::Folder, on_file: bool, id: &str) -> SharedLink {
    let file = t.store().create_file(&testkit::new_file(tenant, folder.base.id)).await.unwrap();
    let mut new = testkit::new_file_link(tenant, file.base.id);
    if !on_file {
        new.resource_type = shared::db::ResourceType::Folder;
        new.file_id = None;
        new.folder_id = Some(folder.base.id);
    }
    new.provider_share_id = Some(id.to_owned());
    new.share_url = format!("https://www.dropbox.com/s/{id}");
    t.store().create_link(&new).await.unwrap()
}

#[tokio::test]
async fn delete_removes_the_active_links_at_dropbox_before_revoking_the_grant() {
    // Arrange
    let (t, server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let c = connect(&t, &a, ProviderType::Dropbox).await;
    let folder = t.store().create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    let on_file = link(&t, &a, &folder, true, "on-file").await;
    let on_folder = link(&t, &a, &folder, false, "on-folder").await;
    let inactive = link(&t, &a, &folder, true, "inactive").await;
    t.store().deactivate_link(a.id, inactive.base.id).await.unwrap();
    let other = connect(&t, &a, ProviderType::Dropbox).await;
    let other_folder = t.store().create_folder(&new_folder(&a, other.base.id)).await.unwrap();
    let untouched = link(&t, &a, &other_folder, true, "other-connection").await;
    // https://www.dropbox.com/developers/documentation/http/documentation#sharing-revoke_shared_link
    for url in [&on_file.share_url, &on_folder.share_url] {
        Mock::given(method("POST"))
            .and(path("/2/sharing/revoke_shared_link"))
            .and(header("authorization", format!("Bearer {ACCESS}").as_str()))
            .and(body_string_contains(url.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_raw("null", "application/json"))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/2/auth/token/revoke"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("null", "application/json"))
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let reply = call(&router, &at("delete", c.base.id).caller(&a)).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "revoked");
    let paths: Vec<String> =
        server.received_requests().await.unwrap().iter().map(|r| r.url.path().to_owned()).collect();
    assert_eq!(
        paths,
        ["/2/sharing/revoke_shared_link", "/2/sharing/revoke_shared_link", "/2/auth/token/revoke"],
        "each active link removed once, before the grant is revoked; nothing else called"
    );
    for l in [&on_file, &on_folder] {
        assert!(!t.store().get_link(a.id, l.base.id).await.unwrap().is_active, "deactivated here too");
    }
    assert!(t.store().get_link(a.id, untouched.base.id).await.unwrap().is_active, "another connection's link");
    let errors = t.store().list_errors(a.id, &SyncErrorFilter::default(), shared::db::PageRequest::first(10)).await;
    assert!(errors.unwrap().items.is_empty(), "a clean disconnect records nothing");
}

#[tokio::test]
async fn delete_stands_when_google_does_not_remove_a_link_and_each_failure_is_recorded() {
    // Arrange
    let (t, server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let c = connect(&t, &a, ProviderType::GDrive).await;
    let folder = t.store().create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    let removed = link(&t, &a, &folder, true, "perm-ok").await;
    let refused = link(&t, &a, &folder, true, "perm-refused").await;
    let down = link(&t, &a, &folder, false, "perm-down").await;
    // https://developers.google.com/drive/api/reference/rest/v3/permissions/delete: 204.
    let answers = [
        (&removed, ResponseTemplate::new(204)),
        (
            &refused,
            ResponseTemplate::new(403).set_body_json(json!({"error": {"code": 403, "message": "The user does not have sufficient permissions for this file.", "errors": [{"reason": "insufficientFilePermissions"}]}})),
        ),
        (&down, ResponseTemplate::new(503)),
    ];
    for (l, answer) in answers {
        let item_id = match l.file_id {
            Some(file) => t.store().get_file(a.id, file).await.unwrap().provider_file_id,
            None => folder.provider_folder_id.clone(),
        };
        let permission = l.provider_share_id.clone().unwrap();
        Mock::given(method("DELETE"))
            .and(path(format!("/drive/v3/files/{item_id}/permissions/{permission}")))
            .and(header("authorization", format!("Bearer {ACCESS}").as_str()))
            .respond_with(answer)
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/google/revoke"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let reply = call(&router, &at("delete", c.base.id).caller(&a)).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(matches!(t.store().get_connection(a.id, c.base.id).await, Err(shared::db::DbError::NotFound)));
    for l in [&removed, &refused, &down] {
        assert!(!t.store().get_link(a.id, l.base.id).await.unwrap().is_active, "deactivated here whatever Google did");
    }
    let filter = SyncErrorFilter { connection_id: Some(c.base.id), ..Default::default() };
    let mut errors = t.store().list_errors(a.id, &filter, shared::db::PageRequest::first(10)).await.unwrap().items;
    errors.sort_by_key(|e| e.error_type.as_str());
    assert_eq!(errors.len(), 2, "one row per link not removed: {errors:?}");
    let by_link =
        |e: &shared::db::SyncError| e.error_metadata.as_ref().unwrap()["link_id"].as_str().unwrap().to_owned();
    assert_eq!(errors[0].error_type, ErrorType::Api);
    assert_eq!(errors[0].error_code.as_deref(), Some("503"));
    assert_eq!(by_link(&errors[0]), down.base.id.to_string());
    assert_eq!(errors[0].file_id, None, "a folder link");
    assert_eq!(errors[1].error_type, ErrorType::Permission);
    assert_eq!(errors[1].error_code.as_deref(), Some("insufficientFilePermissions"));
    assert_eq!(by_link(&errors[1]), refused.base.id.to_string());
    assert_eq!(errors[1].file_id, refused.file_id);
    for e in &errors {
        assert_eq!(e.error_metadata.as_ref().unwrap()["operation"], "remove_shared_link");
        assert!(e.error_message.contains("gdrive"), "{}", e.error_message);
        assert!(!e.error_message.contains(ACCESS) && !e.error_message.contains(REFRESH));
    }
}

#[tokio::test]
async fn delete_stops_removing_links_after_a_batch_when_the_provider_refuses_the_token() {
    // Arrange: more links than one batch (100), and a token Dropbox no longer accepts; the
    // one refresh the 401 triggers is refused too (the user removed the app).
    let (t, server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let c = connect(&t, &a, ProviderType::Dropbox).await;
    let folder = t.store().create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    for i in 0..101 {
        link(&t, &a, &folder, false, &format!("link-{i}")).await;
    }
    Mock::given(method("POST"))
        .and(path("/2/sharing/revoke_shared_link"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error_summary": "expired_access_token/..", "error": {".tag": "expired_access_token"}}),
        ))
        .expect(100)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/dropbox/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/2/auth/token/revoke"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("null", "application/json"))
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let reply = call(&router, &at("delete", c.base.id).caller(&a)).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(matches!(t.store().get_connection(a.id, c.base.id).await, Err(shared::db::DbError::NotFound)));
    let filter = SyncErrorFilter { connection_id: Some(c.base.id), ..Default::default() };
    let errors = t.store().list_errors(a.id, &filter, shared::db::PageRequest::first(200)).await.unwrap().items;
    let removals: Vec<_> =
        errors.iter().filter(|e| e.error_metadata.as_ref().unwrap()["operation"] == "remove_shared_link").collect();
    assert_eq!(removals.len(), 101, "one row per link tried in the first batch, one for the rest");
    assert_eq!(errors.len(), 102, "and one for the refresh the provider refused: {errors:#?}");
    assert!(errors.iter().all(|e| e.error_type == ErrorType::Auth));
    let untried: Vec<_> = removals.iter().filter(|e| e.error_metadata.as_ref().unwrap()["link_id"].is_null()).collect();
    assert_eq!(untried.len(), 1);
    assert!(untried[0].error_message.contains("not tried"), "{}", untried[0].error_message);
}

#[tokio::test]
async fn delete_cuts_slow_link_removals_off_at_the_budget_and_still_deletes() {
    // Arrange: nine links, each removal taking 8 s; eight run at once, so the ninth is still
    // in flight when the 12 s budget ends.
    let (t, server) = app_with_fake().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let c = connect(&t, &a, ProviderType::Dropbox).await;
    let folder = t.store().create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    for i in 0..9 {
        link(&t, &a, &folder, true, &format!("slow-{i}")).await;
    }
    Mock::given(method("POST"))
        .and(path("/2/sharing/revoke_shared_link"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("{}", "application/json")
                .set_delay(std::time::Duration::from_secs(8)),
        )
        .expect(9)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/2/auth/token/revoke"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("null", "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let started = std::time::Instant::now();

    // Act
    let reply = call(&router, &at("delete", c.base.id).caller(&a)).await;

    // Assert
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(took < std::time::Duration::from_secs(15), "well inside the 29 s function timeout: {took:?}");
    assert!(matches!(t.store().get_connection(a.id, c.base.id).await, Err(shared::db::DbError::NotFound)));
    let filter = SyncErrorFilter { connection_id: Some(c.base.id), ..Default::default() };
    let errors = t.store().list_errors(a.id, &filter, shared::db::PageRequest::first(20)).await.unwrap().items;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].error_type, ErrorType::Timeout);
    assert!(errors[0].error_message.contains("1 link(s)"), "{}", errors[0].error_message);
}

#[tokio::test]
async fn delete_cuts_a_slow_revocation_off_at_the_request_deadline_and_still_deletes() {
    // Arrange: a 1.5 s request budget and a revocation that takes 20 s, past the HTTP
    // client's own 10 s timeout.
    let server = MockServer::start().await;
    let mut config = provider_config(&server);
    config["request_budget_ms"] = json!(1500);
    let t = TestApp::with_config(config).await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;
    let c = connect(&t, &a, ProviderType::Dropbox).await;
    Mock::given(method("POST"))
        .and(path("/2/auth/token/revoke"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("null", "application/json")
                .set_delay(std::time::Duration::from_secs(20)),
        )
        .expect(1)
        .mount(&server)
        .await;

    // Act
    let reply =
        tokio::time::timeout(std::time::Duration::from_secs(5), call(&router, &at("delete", c.base.id).caller(&a)))
            .await
            .expect("the request answers within its budget, not after the provider");

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "revoked");
    assert!(matches!(t.store().get_connection(a.id, c.base.id).await, Err(shared::db::DbError::NotFound)));
    let filter = SyncErrorFilter { connection_id: Some(c.base.id), ..Default::default() };
    let errors = t.store().list_errors(a.id, &filter, shared::db::PageRequest::first(20)).await.unwrap().items;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].error_type, ErrorType::Timeout);
    assert_eq!(errors[0].error_metadata.as_ref().unwrap()["operation"], "revoke");
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_json_400_naming_it() {
    // Arrange: %FF percent-decodes to a byte that is not UTF-8.
    let t = TestApp::new().await;
    let router = connections::router(t.app.clone());
    let a = t.tenant().await;

    // Act
    let reply = call(&router, &ApiEvent::load("connections/get").caller(&a).path("/connections/%FF")).await;

    // Assert: the JSON envelope naming the parameter, not axum's plain-text rejection.
    assert_eq!(
        (reply.status, reply.error_code(), reply.error_field()),
        (400, "invalid_field", Some("id")),
        "{}",
        reply.text
    );
}
