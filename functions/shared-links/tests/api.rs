//! The shared-links API through its real router, fed API Gateway events from
//! `events/shared-links/`, with each provider's sharing API faked by wiremock. The fakes answer
//! with the bodies the providers document:
//! - Graph: <https://learn.microsoft.com/graph/api/driveitem-createlink> (a permission with
//!   `link.webUrl`) and `DELETE .../permissions/{id}` (204).
//! - Drive: <https://developers.google.com/drive/api/reference/rest/v3/permissions/create>
//!   (a permission), `files.get?fields=webViewLink`, `permissions.delete` (204).
//! - Dropbox: <https://www.dropbox.com/developers/documentation/http/documentation#sharing-create_shared_link_with_settings>
//!   (SharedLinkMetadata) and `revoke_shared_link` (null).
//! - Box: <https://developer.box.com/reference/put-files-id--add-shared-link/> (the item with
//!   its `shared_link`).

use chrono::{Duration, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::db::{
    CloudFile, Connection, ConnectionPatch, ConnectionStatus, ErrorType, Folder, PageRequest, ProviderType,
    SharedLinkFilter, SyncErrorFilter,
};
use shared::vault::TokenContext;
use testkit::http::{ApiEvent, Reply, TestApp, call};
use testkit::{Tenant, new_connection, new_file, new_file_link, new_folder};
use uuid::Uuid;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCESS: &str = "fake-access-token-Hn3Vb7Qe";
const REFRESH: &str = "fake-refresh-token-Wt5Ys2Jc";
const PASSWORD: &str = "correct horse battery staple";

fn provider_config(server: &MockServer) -> Value {
    let mut providers = json!({});
    for name in ["onedrive", "sharepoint", "gdrive", "dropbox", "box"] {
        providers[name] = json!({
            "client_id": format!("{name}-client"),
            "client_secret": format!("{name}-secret"),
            "api_base_url": server.uri(),
        });
    }
    json!({ "providers": providers })
}

struct Setup {
    t: TestApp,
    server: MockServer,
    router: axum::Router,
}

async fn setup() -> Setup {
    let server = MockServer::start().await;
    let t = TestApp::with_config(provider_config(&server)).await;
    let router = shared_links::router(t.app.clone());
    Setup { t, server, router }
}

/// A connection, a folder in it and a file in that, the connection's tokens really encrypted
/// by the app's vault (bound to the row id, so written after the insert).
struct Item {
    connection: Connection,
    folder: Folder,
    file: CloudFile,
}

async fn item(t: &TestApp, tenant: &Tenant, provider: ProviderType, metadata: Option<Value>) -> Item {
    let mut new = new_connection(tenant);
    new.provider_type = provider;
    new.connection_metadata = metadata;
    let c = t.store().create_connection(&new).await.unwrap();
    let current = t.app.current().await.unwrap();
    let (tid, id) = (tenant.id, c.base.id);
    let access = current.vault.encrypt(TokenContext::access(tid, id), &SecretString::from(ACCESS));
    let refresh = current.vault.encrypt(TokenContext::refresh(tid, id), &SecretString::from(REFRESH));
    assert!(
        t.store().swap_connection_tokens(tid, id, &new.encrypted_access_token, access, Some(refresh)).await.unwrap()
    );
    let connection = t.store().get_connection(tid, id).await.unwrap();
    let folder = t.store().create_folder(&new_folder(tenant, id)).await.unwrap();
    let file = t.store().create_file(&new_file(tenant, folder.base.id)).await.unwrap();
    Item { connection, folder, file }
}

fn create(tenant: &Tenant, body: Value) -> ApiEvent {
    ApiEvent::load("shared-links/create").caller(tenant).json(&body)
}

fn at(name: &str, id: impl std::fmt::Display) -> ApiEvent {
    ApiEvent::load(&format!("shared-links/{name}")).path(&format!("/shared-links/{id}"))
}

fn future() -> String {
    (Utc::now() + Duration::days(7)).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn assert_no_secrets(reply: &Reply) {
    for secret in [ACCESS, REFRESH, PASSWORD, "encrypted_access_token"] {
        assert!(!reply.text.contains(secret), "{secret} leaked: {}", reply.text);
    }
}

async fn links(t: &TestApp, tenant: &Tenant) -> Vec<shared::db::SharedLink> {
    t.store().list_links(tenant.id, &SharedLinkFilter::default(), PageRequest::first(200)).await.unwrap().items
}

async fn errors(t: &TestApp, tenant: &Tenant) -> Vec<shared::db::SyncError> {
    t.store().list_errors(tenant.id, &SyncErrorFilter::default(), PageRequest::first(200)).await.unwrap().items
}

#[tokio::test]
async fn creates_a_password_protected_onedrive_file_link_through_graph() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let it =
        item(&s.t, &a, ProviderType::OneDrive, Some(json!({"drive_id": "8a5b1c2d3e4f", "drive_type": "personal"})))
            .await;
    let expires = future();
    let item_path = format!("/v1.0/drives/8a5b1c2d3e4f/items/{}/createLink", it.file.provider_file_id);
    Mock::given(method("POST"))
        .and(path(item_path.as_str()))
        .and(header("authorization", format!("Bearer {ACCESS}").as_str()))
        .and(body_partial_json(
            json!({"type": "view", "scope": "anonymous", "password": PASSWORD, "expirationDateTime": expires}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "123ABC",
            "roles": ["read"],
            // Graph answers the expiry it set on the permission.
            "expirationDateTime": expires,
            "link": {
                "type": "view",
                "scope": "anonymous",
                "webUrl": "https://1drv.ms/A6913278E564460AA616C71B28AD6EB6",
                "application": {"id": "1234", "displayName": "Quodsi"}
            },
            "hasPassword": true
        })))
        .expect(1)
        .mount(&s.server)
        .await;

    // Act
    let reply = call(
        &s.router,
        &create(
            &a,
            json!({"resource_type": "file", "file_id": it.file.base.id, "share_type": "view", "expires_at": expires, "password": PASSWORD}),
        ),
    )
    .await;

    // Assert
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["provider_share_id"], "123ABC");
    assert_eq!(reply.body["share_url"], "https://1drv.ms/A6913278E564460AA616C71B28AD6EB6");
    assert_eq!(reply.body["password_protected"], true);
    assert_eq!(reply.body["resource_type"], "file");
    assert_eq!(reply.body["file_id"], json!(it.file.base.id));
    assert!(reply.body["folder_id"].is_null());
    assert_eq!(reply.body["created_by_user_id"], json!(a.user));
    assert_eq!(reply.body["is_active"], true);
    assert_eq!(reply.body["access_count"], 0);
    assert_no_secrets(&reply);
    let stored = links(&s.t, &a).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].expires_at.map(|e| e.format("%Y-%m-%dT%H:%M:%SZ").to_string()), Some(expires));
    let connection = s.t.store().get_connection(a.id, it.connection.base.id).await.unwrap();
    assert!(connection.last_used_at.is_some(), "using the connection stamps it");
}

#[tokio::test]
async fn creates_a_google_drive_folder_link_from_the_permission_and_web_view_link() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let it = item(&s.t, &a, ProviderType::GDrive, None).await;
    let folder_id = it.folder.provider_folder_id.clone();
    Mock::given(method("POST"))
        .and(path(format!("/drive/v3/files/{folder_id}/permissions").as_str()))
        .and(body_partial_json(json!({"role": "writer", "type": "anyone"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "drive#permission",
            "id": "anyoneWithLink",
            "type": "anyone",
            "role": "writer",
            "allowFileDiscovery": false
        })))
        .expect(1)
        .mount(&s.server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/drive/v3/files/{folder_id}").as_str()))
        .and(query_param("fields", "webViewLink"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "webViewLink": "https://drive.google.com/drive/folders/1AbCdEfGh?usp=drive_link"
        })))
        .expect(1)
        .mount(&s.server)
        .await;

    // Act
    let reply = call(
        &s.router,
        &create(&a, json!({"resource_type": "folder", "folder_id": it.folder.base.id, "share_type": "edit"})),
    )
    .await;

    // Assert
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["provider_share_id"], "anyoneWithLink");
    assert_eq!(reply.body["share_url"], "https://drive.google.com/drive/folders/1AbCdEfGh?usp=drive_link");
    assert_eq!(reply.body["folder_id"], json!(it.folder.base.id));
    assert!(reply.body["file_id"].is_null());
    assert_eq!(reply.body["share_type"], "edit");
    assert_eq!(reply.body["password_protected"], false);
    assert!(reply.body["expires_at"].is_null());
}

#[tokio::test]
async fn creates_a_dropbox_download_link_and_a_box_folder_link() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let dropbox = item(&s.t, &a, ProviderType::Dropbox, None).await;
    let boxcom = item(&s.t, &a, ProviderType::Box, None).await;
    Mock::given(method("POST"))
        .and(path("/2/sharing/create_shared_link_with_settings"))
        .and(body_partial_json(json!({
            "path": dropbox.file.provider_file_id,
            "settings": {"audience": "public", "access": "viewer", "allow_download": true}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            ".tag": "file",
            "url": "https://www.dropbox.com/s/2sn712vy1ovegw8/factory.qsm?dl=0",
            "name": "factory.qsm",
            "link_permissions": {
                "can_revoke": true,
                "resolved_visibility": {".tag": "public"},
                "revoke_failure_reason": {".tag": "owner_only"}
            },
            "client_modified": "2026-05-12T15:50:38Z",
            "server_modified": "2026-05-12T15:50:38Z",
            "rev": "a1c10ce0dd78",
            "size": 2048,
            "id": "id:a4ayc_80_OEAAAAAAAAAXw",
            "path_lower": "/quodsi/models/factory.qsm"
        })))
        .expect(1)
        .mount(&s.server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/2.0/folders/{}", boxcom.folder.provider_folder_id).as_str()))
        .and(query_param("fields", "shared_link"))
        .and(body_partial_json(json!({"shared_link": {"access": "open", "permissions": {"can_download": false}}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "folder",
            "id": boxcom.folder.provider_folder_id,
            "etag": "1",
            "shared_link": {
                "url": "https://app.box.com/s/rh935iit6ewrmw0unyul",
                "download_url": null,
                "vanity_url": null,
                "vanity_name": null,
                "access": "open",
                "effective_access": "open",
                "effective_permission": "can_preview",
                "unshared_at": null,
                "is_password_enabled": false,
                "permissions": {"can_download": false, "can_preview": true, "can_edit": false},
                "download_count": 0,
                "preview_count": 0
            }
        })))
        .expect(1)
        .mount(&s.server)
        .await;

    // Act
    let dbx = call(
        &s.router,
        &create(&a, json!({"resource_type": "file", "file_id": dropbox.file.base.id, "share_type": "download"})),
    )
    .await;
    let bx = call(
        &s.router,
        &create(&a, json!({"resource_type": "folder", "folder_id": boxcom.folder.base.id, "share_type": "view"})),
    )
    .await;

    // Assert
    assert_eq!(dbx.status, 201, "{}", dbx.text);
    assert_eq!(dbx.body["share_url"], "https://www.dropbox.com/s/2sn712vy1ovegw8/factory.qsm?dl=0");
    assert!(dbx.body["provider_share_id"].is_null(), "Dropbox links are known by their URL");
    assert_eq!(bx.status, 201, "{}", bx.text);
    assert_eq!(bx.body["share_url"], "https://app.box.com/s/rh935iit6ewrmw0unyul");
    assert_eq!(links(&s.t, &a).await.len(), 2);
}

#[tokio::test]
async fn what_a_provider_cannot_do_is_a_400_naming_the_field_before_any_call() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let gdrive = item(&s.t, &a, ProviderType::GDrive, None).await;
    let business =
        item(&s.t, &a, ProviderType::OneDrive, Some(json!({"drive_id": "b!x", "drive_type": "business"}))).await;
    let sharepoint = item(&s.t, &a, ProviderType::SharePoint, Some(json!({"drive_id": "b!y"}))).await;
    let boxcom = item(&s.t, &a, ProviderType::Box, None).await;
    Mock::given(wiremock::matchers::any()).respond_with(ResponseTemplate::new(500)).expect(0).mount(&s.server).await;
    let file =
        |it: &Item, share: &str| json!({"resource_type": "file", "file_id": it.file.base.id, "share_type": share});
    let with_password = |mut body: Value| {
        body["password"] = json!(PASSWORD);
        body
    };

    let cases = [
        (with_password(file(&gdrive, "view")), "password"),
        (with_password(file(&business, "view")), "password"),
        (with_password(file(&sharepoint, "view")), "password"),
        (file(&business, "comment"), "share_type"),
        (json!({"resource_type": "folder", "folder_id": boxcom.folder.base.id, "share_type": "edit"}), "share_type"),
        (file(&boxcom, "comment"), "share_type"),
    ];

    // Act + Assert
    for (body, field) in cases {
        let reply = call(&s.router, &create(&a, body.clone())).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.error_field(), Some(field), "{body}: {}", reply.text);
        assert_no_secrets(&reply);
    }
    assert!(links(&s.t, &a).await.is_empty(), "nothing stored");
    assert!(errors(&s.t, &a).await.is_empty(), "a client mistake is not a provider failure");
}

#[tokio::test]
async fn a_provider_failure_is_a_502_stores_nothing_and_records_an_error() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let it = item(&s.t, &a, ProviderType::OneDrive, Some(json!({"drive_id": "b!abc", "drive_type": "business"}))).await;
    Mock::given(method("POST"))
        .and(path(format!("/v1.0/drives/b!abc/items/{}/createLink", it.file.provider_file_id).as_str()))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "error": {"code": "accessDenied", "message": "The caller does not have permission to perform the action."}
        })))
        .expect(1)
        .mount(&s.server)
        .await;

    // Act
    let reply = call(
        &s.router,
        &create(&a, json!({"resource_type": "file", "file_id": it.file.base.id, "share_type": "edit"})),
    )
    .await;

    // Assert
    assert_eq!((reply.status, reply.error_code()), (502, "provider_error"), "{}", reply.text);
    assert_no_secrets(&reply);
    assert!(links(&s.t, &a).await.is_empty(), "nothing stored");
    let recorded = errors(&s.t, &a).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].connection_id, it.connection.base.id);
    assert_eq!(recorded[0].file_id, Some(it.file.base.id));
    assert_eq!(recorded[0].error_type, ErrorType::Permission);
    assert_eq!(recorded[0].error_code.as_deref(), Some("accessDenied"));
    assert_eq!(recorded[0].error_metadata.as_ref().unwrap()["operation"], "create_shared_link");
}

#[tokio::test]
async fn a_link_dropbox_already_has_is_a_409_and_not_a_provider_failure() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let it = item(&s.t, &a, ProviderType::Dropbox, None).await;
    Mock::given(method("POST"))
        .and(path("/2/sharing/create_shared_link_with_settings"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "error_summary": "shared_link_already_exists/metadata/..",
            "error": {
                ".tag": "shared_link_already_exists",
                "shared_link_already_exists": {
                    ".tag": "metadata",
                    "metadata": {
                        ".tag": "file",
                        "url": "https://www.dropbox.com/s/2sn712vy1ovegw8/factory.qsm?dl=0",
                        "name": "factory.qsm",
                        "link_permissions": {"can_revoke": true}
                    }
                }
            }
        })))
        .expect(1)
        .mount(&s.server)
        .await;

    // Act
    let reply = call(
        &s.router,
        &create(&a, json!({"resource_type": "file", "file_id": it.file.base.id, "share_type": "view"})),
    )
    .await;

    // Assert
    assert_eq!((reply.status, reply.error_code()), (409, "link_exists_at_provider"), "{}", reply.text);
    assert!(links(&s.t, &a).await.is_empty());
    assert!(errors(&s.t, &a).await.is_empty());
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_nothing_is_called_or_written() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let it = item(&s.t, &a, ProviderType::Dropbox, None).await;
    Mock::given(wiremock::matchers::any()).respond_with(ResponseTemplate::new(500)).expect(0).mount(&s.server).await;
    let (file, folder) = (it.file.base.id, it.folder.base.id);
    let past = (Utc::now() - Duration::minutes(1)).to_rfc3339();
    let list = |q: &str| ApiEvent::load("shared-links/list").caller(&a).query(q);

    let cases = [
        (create(&a, json!({"file_id": file, "share_type": "view"})), "resource_type"),
        (create(&a, json!({"resource_type": "document", "file_id": file, "share_type": "view"})), "resource_type"),
        (create(&a, json!({"resource_type": "file", "share_type": "view"})), "file_id"),
        (create(&a, json!({"resource_type": "folder", "share_type": "view"})), "folder_id"),
        (
            create(&a, json!({"resource_type": "file", "file_id": file, "folder_id": folder, "share_type": "view"})),
            "folder_id",
        ),
        (
            create(&a, json!({"resource_type": "folder", "file_id": file, "folder_id": folder, "share_type": "view"})),
            "file_id",
        ),
        (create(&a, json!({"resource_type": "file", "file_id": "nope", "share_type": "view"})), "file_id"),
        (create(&a, json!({"resource_type": "file", "file_id": file})), "share_type"),
        (create(&a, json!({"resource_type": "file", "file_id": file, "share_type": "owner"})), "share_type"),
        (
            create(&a, json!({"resource_type": "file", "file_id": file, "share_type": "view", "expires_at": past})),
            "expires_at",
        ),
        (
            create(
                &a,
                json!({"resource_type": "file", "file_id": file, "share_type": "view", "expires_at": "tomorrow"}),
            ),
            "expires_at",
        ),
        // Years after 9999 (also after an offset) are refused before the provider is called.
        (
            create(
                &a,
                json!({"resource_type": "file", "file_id": file, "share_type": "view", "expires_at": "+10000-01-01T00:00:00Z"}),
            ),
            "expires_at",
        ),
        (
            create(
                &a,
                json!({"resource_type": "file", "file_id": file, "share_type": "view", "expires_at": "9999-12-31T23:30:00-01:00"}),
            ),
            "expires_at",
        ),
        (
            create(&a, json!({"resource_type": "file", "file_id": file, "share_type": "view", "password": ""})),
            "password",
        ),
        (
            create(
                &a,
                json!({"resource_type": "file", "file_id": file, "share_type": "view", "password": "p".repeat(257)}),
            ),
            "password",
        ),
        (
            create(&a, json!({"resource_type": "file", "file_id": file, "share_type": "view", "password": 1234})),
            "password",
        ),
        (list("file_id=42"), "file_id"),
        (list("is_active=maybe"), "is_active"),
        (list("limit=0"), "limit"),
        (list("limit=201"), "limit"),
        (list("cursor=bogus"), "cursor"),
        (at("get", "not-a-uuid").caller(&a), "id"),
        (at("delete", "not-a-uuid").caller(&a), "id"),
    ];

    // Act + Assert
    for (event, field) in cases {
        let reply = call(&s.router, &event).await;
        assert_eq!(reply.status, 400, "{field}: {}", reply.text);
        assert_eq!(reply.error_field(), Some(field), "{}", reply.text);
    }
    let unknown = call(
        &s.router,
        &create(&a, json!({"resource_type": "file", "file_id": file, "share_type": "view", "tenant_id": a.id})),
    )
    .await;
    assert_eq!(unknown.status, 400, "tenant_id is never taken from a body: {}", unknown.text);
    let malformed =
        call(&s.router, &ApiEvent::load("shared-links/create").caller(&a).raw_body("{", Some("application/json")))
            .await;
    assert_eq!((malformed.status, malformed.error_code()), (400, "malformed_json"));
    assert!(links(&s.t, &a).await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_on_every_route() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let b = s.t.tenant().await;
    let it = item(&s.t, &a, ProviderType::Dropbox, None).await;
    let link = s.t.store().create_link(&new_file_link(&a, it.file.base.id)).await.unwrap();
    Mock::given(wiremock::matchers::any()).respond_with(ResponseTemplate::new(500)).expect(0).mount(&s.server).await;

    // Act
    let by_file = call(
        &s.router,
        &create(&b, json!({"resource_type": "file", "file_id": it.file.base.id, "share_type": "view"})),
    )
    .await;
    let by_folder = call(
        &s.router,
        &create(&b, json!({"resource_type": "folder", "folder_id": it.folder.base.id, "share_type": "view"})),
    )
    .await;
    let unknown_file =
        call(&s.router, &create(&a, json!({"resource_type": "file", "file_id": Uuid::new_v4(), "share_type": "view"})))
            .await;
    let read = call(&s.router, &at("get", link.base.id).caller(&b)).await;
    let delete = call(&s.router, &at("delete", link.base.id).caller(&b)).await;
    let listed = call(&s.router, &ApiEvent::load("shared-links/list").caller(&b).query("")).await;

    // Assert
    for (reply, field) in [(by_file, Some("file_id")), (by_folder, Some("folder_id")), (unknown_file, Some("file_id"))]
    {
        assert_eq!(
            (reply.status, reply.error_code(), reply.error_field()),
            (404, "not_found", field),
            "{}",
            reply.text
        );
    }
    for reply in [read, delete] {
        assert_eq!((reply.status, reply.error_code()), (404, "not_found"), "{}", reply.text);
    }
    assert_eq!(listed.status, 200);
    assert!(listed.body["items"].as_array().unwrap().is_empty());
    assert!(links(&s.t, &b).await.is_empty());
    assert!(s.t.store().get_link(a.id, link.base.id).await.unwrap().is_active, "nothing written");
}

#[tokio::test]
async fn a_connection_that_is_not_active_cannot_share() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let it = item(&s.t, &a, ProviderType::Dropbox, None).await;
    let expired = ConnectionPatch { status: Some(ConnectionStatus::Expired), ..Default::default() };
    s.t.store().update_connection(a.id, it.connection.base.id, &expired).await.unwrap();

    // Act
    let reply = call(
        &s.router,
        &create(&a, json!({"resource_type": "file", "file_id": it.file.base.id, "share_type": "view"})),
    )
    .await;

    // Assert
    assert_eq!((reply.status, reply.error_code()), (409, "connection_not_active"), "{}", reply.text);
    assert!(links(&s.t, &a).await.is_empty());
}

#[tokio::test]
async fn lists_and_reads_links_page_by_page_with_filters() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let b = s.t.tenant().await;
    let it = item(&s.t, &a, ProviderType::Box, None).await;
    let other_file = s.t.store().create_file(&new_file(&a, it.folder.base.id)).await.unwrap();
    for _ in 0..4 {
        s.t.store().create_link(&new_file_link(&a, it.file.base.id)).await.unwrap();
    }
    let off = s.t.store().create_link(&new_file_link(&a, other_file.base.id)).await.unwrap();
    s.t.store().deactivate_link(a.id, off.base.id).await.unwrap();
    let theirs = item(&s.t, &b, ProviderType::Box, None).await;
    s.t.store().create_link(&new_file_link(&b, theirs.file.base.id)).await.unwrap();
    let list = |q: &str| ApiEvent::load("shared-links/list").caller(&a).query(q);

    // Act
    let mut pages = vec![call(&s.router, &list("limit=2")).await];
    while let Some(cursor) = pages.last().unwrap().body["next_cursor"].as_str().map(str::to_owned) {
        pages.push(call(&s.router, &list(&format!("limit=2&cursor={cursor}"))).await);
    }
    let by_file = call(&s.router, &list(&format!("file_id={}&is_active=true", it.file.base.id))).await;
    let inactive = call(&s.router, &list("is_active=false")).await;
    let read = call(&s.router, &at("get", off.base.id).caller(&a)).await;

    // Assert
    assert_eq!(pages.len(), 3, "five links in pages of two");
    let items: Vec<&Value> = pages.iter().flat_map(|p| p.body["items"].as_array().unwrap()).collect();
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(|l| l["tenant_id"] == json!(a.id)));
    assert_eq!(by_file.body["items"].as_array().unwrap().len(), 4);
    let inactive = inactive.body["items"].as_array().unwrap();
    assert_eq!(inactive.len(), 1);
    assert_eq!(inactive[0]["id"], json!(off.base.id));
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["is_active"], false);
    assert_eq!(read.body["share_url"], "https://example.com/s/abc");
}

#[tokio::test]
async fn delete_removes_the_link_at_graph_and_turns_it_off_once() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let it = item(&s.t, &a, ProviderType::OneDrive, Some(json!({"drive_id": "b!abc", "drive_type": "business"}))).await;
    let link = s.t.store().create_link(&new_file_link(&a, it.file.base.id)).await.unwrap();
    Mock::given(method("DELETE"))
        .and(path(format!("/v1.0/drives/b!abc/items/{}/permissions/share-1", it.file.provider_file_id).as_str()))
        .and(header("authorization", format!("Bearer {ACCESS}").as_str()))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&s.server)
        .await;

    // Act
    let first = call(&s.router, &at("delete", link.base.id).caller(&a)).await;
    let second = call(&s.router, &at("delete", link.base.id).caller(&a)).await;

    // Assert
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["is_active"], false);
    assert_eq!(second.status, 200, "turning off an inactive link again is a no-op: {}", second.text);
    assert!(!s.t.store().get_link(a.id, link.base.id).await.unwrap().is_active);
    assert!(errors(&s.t, &a).await.is_empty());
}

#[tokio::test]
async fn delete_at_dropbox_and_box_sends_their_own_removal() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let dropbox = item(&s.t, &a, ProviderType::Dropbox, None).await;
    let boxcom = item(&s.t, &a, ProviderType::Box, None).await;
    let mut dbx_link = new_file_link(&a, dropbox.file.base.id);
    dbx_link.provider_share_id = None;
    dbx_link.share_url = "https://www.dropbox.com/s/2sn712vy1ovegw8/factory.qsm?dl=0".into();
    let dbx_link = s.t.store().create_link(&dbx_link).await.unwrap();
    let mut box_link = new_file_link(&a, boxcom.file.base.id);
    box_link.provider_share_id = None;
    let box_link = s.t.store().create_link(&box_link).await.unwrap();
    Mock::given(method("POST"))
        .and(path("/2/sharing/revoke_shared_link"))
        .and(body_partial_json(json!({"url": dbx_link.share_url})))
        .respond_with(ResponseTemplate::new(200).set_body_raw("null", "application/json"))
        .expect(1)
        .mount(&s.server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/2.0/files/{}", boxcom.file.provider_file_id).as_str()))
        .and(body_partial_json(json!({"shared_link": null})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "file", "id": boxcom.file.provider_file_id, "etag": "2", "shared_link": null
        })))
        .expect(1)
        .mount(&s.server)
        .await;

    // Act
    let dbx = call(&s.router, &at("delete", dbx_link.base.id).caller(&a)).await;
    let bx = call(&s.router, &at("delete", box_link.base.id).caller(&a)).await;

    // Assert
    assert_eq!((dbx.status, &dbx.body["is_active"]), (200, &json!(false)), "{}", dbx.text);
    assert_eq!((bx.status, &bx.body["is_active"]), (200, &json!(false)), "{}", bx.text);
    assert!(errors(&s.t, &a).await.is_empty());
}

#[tokio::test]
async fn delete_turns_the_link_off_even_when_the_provider_fails_and_records_why() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let it = item(&s.t, &a, ProviderType::GDrive, None).await;
    let link = s.t.store().create_link(&new_file_link(&a, it.file.base.id)).await.unwrap();
    Mock::given(method("DELETE"))
        .and(path(format!("/drive/v3/files/{}/permissions/share-1", it.file.provider_file_id).as_str()))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "error": {"code": 500, "message": "Internal Error", "errors": [{"domain": "global", "reason": "backendError"}]}
        })))
        .expect(1)
        .mount(&s.server)
        .await;

    // Act
    let reply = call(&s.router, &at("delete", link.base.id).caller(&a)).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["is_active"], false);
    let recorded = errors(&s.t, &a).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].connection_id, it.connection.base.id);
    assert_eq!(recorded[0].error_type, ErrorType::Api);
    assert_eq!(recorded[0].error_metadata.as_ref().unwrap()["shared_link_id"], json!(link.base.id));
    assert!(!recorded[0].error_message.contains(ACCESS));
}

/// Every byte the database holds, WAL included.
async fn database_bytes(t: &TestApp) -> Vec<u8> {
    use secrecy::ExposeSecret as _;
    let config = t.app.current().await.unwrap().config.clone();
    let url = config.database_url.expose_secret();
    let file = url.strip_prefix("sqlite:").expect("tests run on SQLite").to_owned();
    let mut bytes = Vec::new();
    for path in [file.clone(), format!("{file}-wal")] {
        if let Ok(b) = std::fs::read(&path) {
            bytes.extend(b);
        }
    }
    assert!(!bytes.is_empty(), "no database at {file}");
    bytes
}

#[tokio::test]
async fn the_link_password_is_neither_stored_nor_logged() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let boxcom = item(&s.t, &a, ProviderType::Box, None).await;
    let dropbox = item(&s.t, &a, ProviderType::Dropbox, None).await;
    Mock::given(method("PUT"))
        .and(path(format!("/2.0/files/{}", boxcom.file.provider_file_id).as_str()))
        .and(body_partial_json(json!({"shared_link": {"password": PASSWORD}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "file",
            "id": boxcom.file.provider_file_id,
            "etag": "1",
            "shared_link": {
                "url": "https://app.box.com/s/8k2n4p6r8t0v2x4z6b8d",
                "access": "open",
                "effective_access": "open",
                "is_password_enabled": true,
                "permissions": {"can_download": false, "can_preview": true, "can_edit": false}
            }
        })))
        .expect(1)
        .mount(&s.server)
        .await;
    // Dropbox refuses: the failure path writes an error row and logs the most.
    Mock::given(method("POST"))
        .and(path("/2/sharing/create_shared_link_with_settings"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "error_summary": "settings_error/not_authorized/..",
            "error": {".tag": "settings_error", "settings_error": {".tag": "not_authorized"}}
        })))
        .expect(1)
        .mount(&s.server)
        .await;
    let (logs, guard) = testkit::logs::capture();
    let body = |it: &Item| json!({"resource_type": "file", "file_id": it.file.base.id, "share_type": "view", "password": PASSWORD});

    // Act
    let made = call(&s.router, &create(&a, body(&boxcom))).await;
    let refused = call(&s.router, &create(&a, body(&dropbox))).await;
    drop(guard);

    // Assert
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(made.body["password_protected"], true);
    assert_eq!(refused.status, 502, "{}", refused.text);
    assert_eq!(errors(&s.t, &a).await.len(), 1, "the refusal is recorded");
    let logged = logs.text();
    assert!(logged.contains("request rejected") || logged.contains("request failed"), "logs were captured: {logged}");
    for secret in [PASSWORD, ACCESS, REFRESH] {
        assert!(!logged.contains(secret), "{secret} logged");
        assert!(!made.text.contains(secret) && !refused.text.contains(secret));
    }
    let stored = database_bytes(&s.t).await;
    let url = b"https://app.box.com/s/8k2n4p6r8t0v2x4z6b8d";
    assert!(stored.windows(url.len()).any(|w| w == url), "the scan sees what was stored");
    assert!(!stored.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()), "the password reached the database");
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_json_400_naming_it() {
    // Arrange: %FF percent-decodes to a byte that is not UTF-8.
    let s = setup().await;
    let a = s.t.tenant().await;

    // Act
    let reply = call(&s.router, &ApiEvent::load("shared-links/delete").caller(&a).path("/shared-links/%FF")).await;

    // Assert: the JSON envelope naming the parameter, not axum's plain-text rejection.
    assert_eq!(
        (reply.status, reply.error_code(), reply.error_field()),
        (400, "invalid_field", Some("id")),
        "{}",
        reply.text
    );
}

// ---- the request's deadline -----------------------------------------------------------

/// Far past the budget below, and past the HTTP client's own 10 s timeout.
const STALLED: std::time::Duration = std::time::Duration::from_secs(20);
/// Half the HTTP client's timeout: an answer before this came from the request's deadline,
/// not from the client giving up.
const WELL_BEFORE_THE_CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const GRAPH_DRIVE: &str = "b!abc";

/// [`setup`] with a 1.5 s request budget.
async fn setup_with_short_budget() -> Setup {
    let server = MockServer::start().await;
    let mut config = provider_config(&server);
    config["request_budget_ms"] = json!(1500);
    let t = TestApp::with_config(config).await;
    let router = shared_links::router(t.app.clone());
    Setup { t, server, router }
}

async fn onedrive_item(s: &Setup, a: &Tenant) -> Item {
    item(&s.t, a, ProviderType::OneDrive, Some(json!({"drive_id": GRAPH_DRIVE, "drive_type": "business"}))).await
}

async fn mount_create_link(s: &Setup, it: &Item, delay: std::time::Duration) {
    Mock::given(method("POST"))
        .and(path(format!("/v1.0/drives/{GRAPH_DRIVE}/items/{}/createLink", it.file.provider_file_id).as_str()))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "perm-1", "link": {"type": "view", "scope": "anonymous", "webUrl": "https://1drv.ms/u/s!perm-1"}}))
                .set_delay(delay),
        )
        .expect(1)
        .mount(&s.server)
        .await;
}

/// The undo of a link the database refused: Graph's permission delete, answering after `delay`.
async fn mount_undo(s: &Setup, it: &Item, delay: std::time::Duration) {
    Mock::given(method("DELETE"))
        .and(path(format!("/v1.0/drives/{GRAPH_DRIVE}/items/{}/permissions/perm-1", it.file.provider_file_id).as_str()))
        .respond_with(ResponseTemplate::new(204).set_delay(delay))
        .expect(1)
        .mount(&s.server)
        .await;
}

/// Makes every INSERT of a shared link fail, as a database failing after the provider call.
fn refuse_link_inserts(t: &TestApp) {
    t.execute_sql(
        "CREATE TRIGGER refuse_links BEFORE INSERT ON cloud_shared_links BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    );
}

async fn create_view_link(s: &Setup, a: &Tenant, it: &Item) -> Reply {
    let body = json!({"resource_type": "file", "file_id": it.file.base.id, "share_type": "view"});
    tokio::time::timeout(WELL_BEFORE_THE_CLIENT_TIMEOUT, call(&s.router, &create(a, body)))
        .await
        .expect("the request answers within its budget, not after the provider")
}

#[tokio::test]
async fn a_provider_slower_than_the_request_budget_is_a_504_in_time_recorded_and_nothing_stored() {
    // Arrange
    let s = setup_with_short_budget().await;
    let a = s.t.tenant().await;
    let it = onedrive_item(&s, &a).await;
    mount_create_link(&s, &it, STALLED).await;

    // Act
    let reply = create_view_link(&s, &a, &it).await;

    // Assert
    assert_eq!((reply.status, reply.error_code()), (504, "provider_timeout"), "{}", reply.text);
    assert!(links(&s.t, &a).await.is_empty(), "nothing stored");
    let recorded = errors(&s.t, &a).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].error_type, ErrorType::Timeout);
    assert_eq!(recorded[0].error_metadata.as_ref().unwrap()["operation"], "create_shared_link");
}

#[tokio::test]
async fn a_link_the_database_refuses_is_removed_at_the_provider_again() {
    // Arrange
    let s = setup_with_short_budget().await;
    let a = s.t.tenant().await;
    let it = onedrive_item(&s, &a).await;
    mount_create_link(&s, &it, std::time::Duration::ZERO).await;
    mount_undo(&s, &it, std::time::Duration::ZERO).await;
    refuse_link_inserts(&s.t);

    // Act
    let reply = create_view_link(&s, &a, &it).await;

    // Assert
    assert_eq!(reply.status, 500, "{}", reply.text);
    assert!(links(&s.t, &a).await.is_empty());
    s.server.verify().await;
    assert!(errors(&s.t, &a).await.is_empty(), "the undo succeeded: nothing to record");
}

#[tokio::test]
async fn a_link_the_database_refuses_only_after_the_deadline_is_still_removed_at_the_provider() {
    // Arrange: the insert counts through a view of 20 million rows before it is refused,
    // which takes longer than the whole 1.5 s budget on any machine these tests run on.
    let s = setup_with_short_budget().await;
    let a = s.t.tenant().await;
    let it = onedrive_item(&s, &a).await;
    mount_create_link(&s, &it, std::time::Duration::ZERO).await;
    mount_undo(&s, &it, std::time::Duration::ZERO).await;
    s.t.execute_sql(
        "CREATE VIEW slow_count AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000) \
         SELECT count(*) AS n FROM c; \
         CREATE TRIGGER refuse_links_slowly BEFORE INSERT ON cloud_shared_links \
         BEGIN SELECT RAISE(ABORT, 'refused') FROM slow_count WHERE n > 0; END;",
    );
    let body = json!({"resource_type": "file", "file_id": it.file.base.id, "share_type": "view"});

    // Act
    let reply = call(&s.router, &create(&a, body)).await;

    // Assert
    assert_eq!(reply.status, 500, "{}", reply.text);
    assert!(links(&s.t, &a).await.is_empty());
    s.server.verify().await;
    assert!(errors(&s.t, &a).await.is_empty(), "the undo was attempted and succeeded: nothing to record");
}

#[tokio::test]
async fn an_undo_slower_than_the_budget_is_cut_off_and_recorded_in_time() {
    // Arrange
    let s = setup_with_short_budget().await;
    let a = s.t.tenant().await;
    let it = onedrive_item(&s, &a).await;
    mount_create_link(&s, &it, std::time::Duration::ZERO).await;
    mount_undo(&s, &it, STALLED).await;
    refuse_link_inserts(&s.t);

    // Act
    let reply = create_view_link(&s, &a, &it).await;

    // Assert
    assert_eq!(reply.status, 500, "{}", reply.text);
    assert!(links(&s.t, &a).await.is_empty());
    let recorded = errors(&s.t, &a).await;
    assert_eq!(recorded.len(), 1, "the link left at the provider is on record");
    assert_eq!(recorded[0].error_type, ErrorType::Timeout);
    assert_eq!(recorded[0].error_metadata.as_ref().unwrap()["operation"], "delete_unrecorded_shared_link");
}

#[tokio::test]
async fn a_failed_undo_is_recorded_without_the_token_the_provider_echoes() {
    // Arrange
    let s = setup_with_short_budget().await;
    let a = s.t.tenant().await;
    let it = onedrive_item(&s, &a).await;
    mount_create_link(&s, &it, std::time::Duration::ZERO).await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v1.0/drives/{GRAPH_DRIVE}/items/{}/permissions/perm-1", it.file.provider_file_id).as_str()))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "error": {"code": "accessDenied", "message": format!("token {ACCESS} may not delete this permission")}
        })))
        .expect(1)
        .mount(&s.server)
        .await;
    refuse_link_inserts(&s.t);

    // Act
    let reply = create_view_link(&s, &a, &it).await;

    // Assert
    assert_eq!(reply.status, 500, "{}", reply.text);
    let recorded = errors(&s.t, &a).await;
    assert_eq!(recorded.len(), 1, "the link left at the provider is on record");
    assert_eq!(recorded[0].error_metadata.as_ref().unwrap()["operation"], "delete_unrecorded_shared_link");
    assert!(!recorded[0].error_message.contains(ACCESS), "{}", recorded[0].error_message);
    assert!(recorded[0].error_message.contains(shared::error_rows::REDACTED), "{}", recorded[0].error_message);
}

#[tokio::test]
async fn a_removal_slower_than_the_budget_still_turns_the_link_off_in_time_and_is_recorded() {
    // Arrange
    let s = setup_with_short_budget().await;
    let a = s.t.tenant().await;
    let it = onedrive_item(&s, &a).await;
    let link = s.t.store().create_link(&new_file_link(&a, it.file.base.id)).await.unwrap();
    Mock::given(method("DELETE"))
        .and(path(
            format!("/v1.0/drives/{GRAPH_DRIVE}/items/{}/permissions/share-1", it.file.provider_file_id).as_str(),
        ))
        .respond_with(ResponseTemplate::new(204).set_delay(STALLED))
        .mount(&s.server)
        .await;

    // Act
    let reply =
        tokio::time::timeout(WELL_BEFORE_THE_CLIENT_TIMEOUT, call(&s.router, &at("delete", link.base.id).caller(&a)))
            .await
            .expect("the request answers within its budget, not after the provider");

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(!s.t.store().get_link(a.id, link.base.id).await.unwrap().is_active);
    let recorded = errors(&s.t, &a).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].error_type, ErrorType::Timeout);
}

#[tokio::test]
async fn a_file_or_folder_filter_naming_another_tenants_or_an_unknown_one_is_a_404() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let b = s.t.tenant().await;
    let it = item(&s.t, &a, ProviderType::Dropbox, None).await;
    let list = |tenant, query: String| ApiEvent::load("shared-links/list").caller(tenant).query(&query);
    let cases = [
        (format!("file_id={}", it.file.base.id), "file_id"),
        (format!("file_id={}", Uuid::new_v4()), "file_id"),
        (format!("folder_id={}", it.folder.base.id), "folder_id"),
        (format!("folder_id={}", Uuid::new_v4()), "folder_id"),
    ];

    for (query, field) in cases {
        // Act
        let reply = call(&s.router, &list(&b, query.clone())).await;

        // Assert
        assert_eq!(
            (reply.status, reply.error_code(), reply.error_field()),
            (404, "not_found", Some(field)),
            "{query}: {}",
            reply.text
        );
    }
    let own = call(&s.router, &list(&a, format!("file_id={}&folder_id={}", it.file.base.id, it.folder.base.id))).await;
    assert_eq!(own.status, 200, "{}", own.text);
}

/// The removal each provider documents for one stored link, expected once.
async fn mount_removal(s: &Setup, provider: ProviderType, it: &Item, link: &shared::db::SharedLink) {
    let file = &it.file.provider_file_id;
    let mock = match provider {
        ProviderType::OneDrive | ProviderType::SharePoint => {
            Mock::given(method("DELETE")).and(path(format!("/v1.0/drives/b!abc/items/{file}/permissions/share-1")))
        }
        ProviderType::GDrive => {
            Mock::given(method("DELETE")).and(path(format!("/drive/v3/files/{file}/permissions/share-1")))
        }
        ProviderType::Dropbox => Mock::given(method("POST"))
            .and(path("/2/sharing/revoke_shared_link"))
            .and(body_partial_json(json!({"url": link.share_url}))),
        ProviderType::Box => Mock::given(method("PUT"))
            .and(path(format!("/2.0/files/{file}")))
            .and(body_partial_json(json!({"shared_link": null}))),
    };
    let answer = match provider {
        ProviderType::Dropbox => ResponseTemplate::new(200).set_body_raw("null", "application/json"),
        ProviderType::Box => ResponseTemplate::new(200).set_body_json(json!({
            "type": "file", "id": file, "etag": "2", "shared_link": null
        })),
        _ => ResponseTemplate::new(204),
    };
    mock.respond_with(answer).expect(1).mount(&s.server).await;
}

/// Two rows standing for one provider link, as each provider hands them out: Graph and Drive
/// by permission id (createLink answers the existing permission of that type; Drive keeps one
/// `anyone` permission per role), Dropbox and Box by URL (the existing link, the item's one
/// link).
async fn two_rows_of_one_provider_link(
    s: &Setup,
    a: &Tenant,
    provider: ProviderType,
) -> (Item, shared::db::SharedLink, shared::db::SharedLink) {
    let metadata = matches!(provider, ProviderType::OneDrive | ProviderType::SharePoint)
        .then(|| json!({"drive_id": "b!abc", "drive_type": "business"}));
    let it = item(&s.t, a, provider, metadata).await;
    let mut new = new_file_link(a, it.file.base.id);
    if matches!(provider, ProviderType::Dropbox | ProviderType::Box) {
        new.provider_share_id = None;
        new.share_url = format!("https://{provider}.example/s/one-link");
    }
    let first = s.t.store().create_link(&new).await.unwrap();
    new.share_type = shared::db::ShareType::Download;
    let second = s.t.store().create_link(&new).await.unwrap();
    (it, first, second)
}

#[tokio::test]
async fn a_provider_link_several_rows_use_goes_at_the_provider_with_the_last_of_them() {
    for provider in [ProviderType::OneDrive, ProviderType::GDrive, ProviderType::Dropbox, ProviderType::Box] {
        // Arrange
        let s = setup().await;
        let a = s.t.tenant().await;
        let (it, first, second) = two_rows_of_one_provider_link(&s, &a, provider).await;
        mount_removal(&s, provider, &it, &first).await;

        // Act
        let first_off = call(&s.router, &at("delete", first.base.id).caller(&a)).await;
        let calls_after_first = s.server.received_requests().await.unwrap().len();
        let second_still = s.t.store().get_link(a.id, second.base.id).await.unwrap();
        let second_off = call(&s.router, &at("delete", second.base.id).caller(&a)).await;

        // Assert: nothing reached the provider until the last row went; then one removal
        // (the mock's expect(1), checked when the server drops).
        assert_eq!(
            (first_off.status, &first_off.body["is_active"]),
            (200, &json!(false)),
            "{provider}: {}",
            first_off.text
        );
        assert_eq!(calls_after_first, 0, "{provider}: the other row still uses the link");
        assert!(second_still.is_active, "{provider}: the other row stays active");
        assert_eq!(
            (second_off.status, &second_off.body["is_active"]),
            (200, &json!(false)),
            "{provider}: {}",
            second_off.text
        );
        assert!(errors(&s.t, &a).await.is_empty(), "{provider}");
    }
}

#[tokio::test]
async fn deleting_the_file_removes_a_provider_link_its_rows_share_once() {
    // Arrange
    let s = setup().await;
    let a = s.t.tenant().await;
    let (it, first, _second) = two_rows_of_one_provider_link(&s, &a, ProviderType::OneDrive).await;
    mount_removal(&s, ProviderType::OneDrive, &it, &first).await;
    let connection = s.t.store().get_connection(a.id, it.connection.base.id).await.unwrap();

    // Act
    let failed = shared::link_removal::remove_links(
        &s.t.app,
        &connection,
        shared::link_removal::Scope::File(&it.file),
        std::time::Duration::from_secs(5),
    )
    .await;

    // Assert (one DELETE: the mock's expect(1))
    assert_eq!(failed, 0);
    assert_eq!(s.server.received_requests().await.unwrap().len(), 1, "one removal for both rows");
    assert!(errors(&s.t, &a).await.is_empty());
}

#[tokio::test]
async fn a_404_that_is_not_drives_or_boxs_own_error_is_a_failure() {
    for provider in [ProviderType::GDrive, ProviderType::Box] {
        // Arrange
        let s = setup().await;
        let a = s.t.tenant().await;
        let it = item(&s.t, &a, provider, None).await;
        let mut new = new_file_link(&a, it.file.base.id);
        if provider == ProviderType::Box {
            new.provider_share_id = None;
        }
        let link = s.t.store().create_link(&new).await.unwrap();
        let removal = match provider {
            ProviderType::GDrive => Mock::given(method("DELETE"))
                .and(path(format!("/drive/v3/files/{}/permissions/share-1", it.file.provider_file_id))),
            _ => Mock::given(method("PUT")).and(path(format!("/2.0/files/{}", it.file.provider_file_id))),
        };
        removal
            .respond_with(ResponseTemplate::new(404).set_body_raw("<html><body>Not Found</body></html>", "text/html"))
            .expect(1)
            .mount(&s.server)
            .await;

        // Act
        let reply = call(&s.router, &at("delete", link.base.id).caller(&a)).await;

        // Assert
        assert_eq!((reply.status, &reply.body["is_active"]), (200, &json!(false)), "{provider}: {}", reply.text);
        let recorded = errors(&s.t, &a).await;
        assert_eq!(recorded.len(), 1, "{provider}: {recorded:?}");
    }
}

#[tokio::test]
async fn only_the_providers_own_not_found_counts_as_already_gone() {
    // Arrange: Graph's JSON `itemNotFound` for one link; an HTML 404 (a proxy, a wrong base
    // URL) for another.
    let s = setup().await;
    let a = s.t.tenant().await;
    let meta = Some(json!({"drive_id": "b!abc", "drive_type": "business"}));
    let gone = item(&s.t, &a, ProviderType::OneDrive, meta.clone()).await;
    let proxied = item(&s.t, &a, ProviderType::OneDrive, meta).await;
    let gone_link = s.t.store().create_link(&new_file_link(&a, gone.file.base.id)).await.unwrap();
    let proxied_link = s.t.store().create_link(&new_file_link(&a, proxied.file.base.id)).await.unwrap();
    Mock::given(method("DELETE"))
        .and(path(format!("/v1.0/drives/b!abc/items/{}/permissions/share-1", gone.file.provider_file_id)))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {"code": "itemNotFound", "message": "The resource could not be found."}
        })))
        .expect(1)
        .mount(&s.server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v1.0/drives/b!abc/items/{}/permissions/share-1", proxied.file.provider_file_id)))
        .respond_with(ResponseTemplate::new(404).set_body_raw("<html><body>Not Found</body></html>", "text/html"))
        .expect(1)
        .mount(&s.server)
        .await;

    // Act
    let already_gone = call(&s.router, &at("delete", gone_link.base.id).caller(&a)).await;
    let not_graph = call(&s.router, &at("delete", proxied_link.base.id).caller(&a)).await;

    // Assert: both rows are off; only the HTML 404 is recorded as a failure.
    assert_eq!((already_gone.status, &already_gone.body["is_active"]), (200, &json!(false)), "{}", already_gone.text);
    assert_eq!((not_graph.status, &not_graph.body["is_active"]), (200, &json!(false)), "{}", not_graph.text);
    let recorded = errors(&s.t, &a).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].error_metadata.as_ref().unwrap()["shared_link_id"], json!(proxied_link.base.id));
}

#[tokio::test]
async fn the_expiry_in_force_is_the_providers_and_the_answer_says_when_it_is_not_the_one_asked_for() {
    // Arrange: Graph caps the expiry by policy (a day earlier), Dropbox's account type sets
    // none, Box grants it, and Drive takes none (link-expiry removes its links on time).
    let s = setup().await;
    let a = s.t.tenant().await;
    let asked = future();
    let capped = (chrono::DateTime::parse_from_rfc3339(&asked).unwrap() - Duration::days(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let graph =
        item(&s.t, &a, ProviderType::OneDrive, Some(json!({"drive_id": "b!abc", "drive_type": "business"}))).await;
    let dropbox = item(&s.t, &a, ProviderType::Dropbox, None).await;
    let boxcom = item(&s.t, &a, ProviderType::Box, None).await;
    let drive = item(&s.t, &a, ProviderType::GDrive, None).await;
    Mock::given(method("POST"))
        .and(path(format!("/v1.0/drives/b!abc/items/{}/createLink", graph.file.provider_file_id)))
        .and(body_partial_json(json!({"expirationDateTime": asked})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "perm-capped", "roles": ["read"], "expirationDateTime": capped, "hasPassword": false,
            "link": {"type": "view", "scope": "anonymous", "webUrl": "https://1drv.ms/u/s!capped"}
        })))
        .mount(&s.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/2/sharing/create_shared_link_with_settings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            ".tag": "file", "url": "https://www.dropbox.com/s/noexpiry/factory.qsm?dl=0", "name": "factory.qsm",
            "link_permissions": {"can_revoke": true, "resolved_visibility": {".tag": "public"}},
            "id": "id:a4ayc_80_OEAAAAAAAAAXw", "path_lower": "/quodsi/models/factory.qsm"
        })))
        .mount(&s.server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/2.0/files/{}", boxcom.file.provider_file_id)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "file", "id": boxcom.file.provider_file_id, "etag": "1",
            "shared_link": {"url": "https://app.box.com/s/granted", "access": "open", "unshared_at": asked,
                            "is_password_enabled": false,
                            "permissions": {"can_download": false, "can_preview": true, "can_edit": false}}
        })))
        .mount(&s.server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/drive/v3/files/{}/permissions", drive.file.provider_file_id)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "drive#permission", "id": "anyoneWithLink", "type": "anyone", "role": "reader", "allowFileDiscovery": false
        })))
        .mount(&s.server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/drive/v3/files/{}", drive.file.provider_file_id)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "webViewLink": "https://drive.google.com/file/d/1abc/view?usp=drivesdk"
        })))
        .mount(&s.server)
        .await;
    let ask = |file_id: uuid::Uuid| json!({"resource_type": "file", "file_id": file_id, "share_type": "view", "expires_at": asked});

    // Act
    let replies = [
        call(&s.router, &create(&a, ask(graph.file.base.id.0))).await,
        call(&s.router, &create(&a, ask(dropbox.file.base.id.0))).await,
        call(&s.router, &create(&a, ask(boxcom.file.base.id.0))).await,
        call(&s.router, &create(&a, ask(drive.file.base.id.0))).await,
    ];

    // Assert: the answer and the stored row carry the expiry in force.
    let in_force = |v: &Value| v.as_str().map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc());
    let at = |t: &str| Some(chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc());
    let expected = [(at(&capped), false), (None, false), (at(&asked), true), (at(&asked), true)];
    for (reply, (expires_at, granted)) in replies.iter().zip(expected) {
        assert_eq!(reply.status, 201, "{}", reply.text);
        assert_eq!(in_force(&reply.body["expires_at"]), expires_at, "{}", reply.text);
        assert_eq!(reply.body["expiry_granted"], json!(granted), "{}", reply.text);
        assert_eq!(in_force(&reply.body["requested_expires_at"]), at(&asked), "{}", reply.text);
        let id: uuid::Uuid = reply.body["id"].as_str().unwrap().parse().unwrap();
        let stored = s.t.store().get_link(a.id, id.into()).await.unwrap();
        assert_eq!(stored.expires_at, expires_at, "{}", reply.text);
    }
}

#[tokio::test]
async fn a_dropbox_link_of_the_kind_asked_for_is_shared_by_a_second_row() {
    // Arrange: Dropbox already has a viewer link for the file; it answers the existing one's
    // metadata (SharedLinkAlreadyExistsMetadata) with its link_access_level.
    let s = setup().await;
    let a = s.t.tenant().await;
    let it = item(&s.t, &a, ProviderType::Dropbox, None).await;
    let url = "https://www.dropbox.com/s/2sn712vy1ovegw8/factory.qsm?dl=0";
    Mock::given(method("POST"))
        .and(path("/2/sharing/create_shared_link_with_settings"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "error_summary": "shared_link_already_exists/metadata/..",
            "error": {
                ".tag": "shared_link_already_exists",
                "shared_link_already_exists": {
                    ".tag": "metadata",
                    "metadata": {
                        ".tag": "file", "url": url, "name": "factory.qsm",
                        "link_permissions": {
                            "can_revoke": true,
                            "resolved_visibility": {".tag": "public"},
                            "link_access_level": {".tag": "viewer"},
                            "allow_download": true
                        },
                        "id": "id:a4ayc_80_OEAAAAAAAAAXw", "path_lower": "/quodsi/models/factory.qsm"
                    }
                }
            }
        })))
        .expect(2)
        .mount(&s.server)
        .await;
    let ask = |share_type: &str| json!({"resource_type": "file", "file_id": it.file.base.id, "share_type": share_type});

    // Act
    let view = call(&s.router, &create(&a, ask("view"))).await;
    let edit = call(&s.router, &create(&a, ask("edit"))).await;

    // Assert: the viewer link is shared by the new row; an editor link it is not, so that
    // request is the 409 it was.
    assert_eq!(view.status, 201, "{}", view.text);
    assert_eq!(view.body["share_url"], url);
    assert_eq!((edit.status, edit.error_code()), (409, "link_exists_at_provider"), "{}", edit.text);
    assert_eq!(links(&s.t, &a).await.len(), 1);
    assert!(errors(&s.t, &a).await.is_empty());
}
