//! Deleting a folder or a file removes its active shared links at the provider first
//! (`shared::link_removal`, the implementation `connections` DELETE uses too), then deletes
//! locally. Graph is faked by wiremock: `DELETE /v1.0/drives/{drive}/items/{item}/permissions/{id}`
//! answers 204 (<https://learn.microsoft.com/graph/api/permission-delete>).

use secrecy::SecretString;
use serde_json::{Value, json};
use shared::db::{
    CloudFile, Connection, ErrorType, Folder, NewSharedLink, PageRequest, ProviderType, ResourceType, SharedLink,
    SyncErrorFilter,
};
use shared::vault::TokenContext;
use testkit::http::{ApiEvent, TestApp, call};
use testkit::{Tenant, new_connection, new_file, new_file_link, new_folder};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCESS: &str = "fake-access-token-Lq8Zr4Tm";
const DRIVE: &str = "b!drive";

struct World {
    t: TestApp,
    server: MockServer,
    tenant: Tenant,
    connection: Connection,
    folder: Folder,
    file: CloudFile,
    /// A second file in the folder.
    sibling: CloudFile,
}

async fn world() -> World {
    let server = MockServer::start().await;
    let providers =
        json!({"onedrive": {"client_id": "od-client", "client_secret": "od-secret", "api_base_url": server.uri()}});
    let t = TestApp::with_config(json!({ "providers": providers })).await;
    let tenant = t.tenant().await;
    let mut new = new_connection(&tenant);
    new.provider_type = ProviderType::OneDrive;
    new.connection_metadata = Some(json!({"drive_id": DRIVE, "drive_type": "business"}));
    let c = t.store().create_connection(&new).await.unwrap();
    let current = t.app.current().await.unwrap();
    let access = current.vault.encrypt(TokenContext::access(tenant.id, c.base.id), &SecretString::from(ACCESS));
    assert!(
        t.store()
            .swap_connection_tokens(tenant.id, c.base.id, &new.encrypted_access_token, access, None)
            .await
            .unwrap()
    );
    let connection = t.store().get_connection(tenant.id, c.base.id).await.unwrap();
    let folder = t.store().create_folder(&new_folder(&tenant, connection.base.id)).await.unwrap();
    let file = t.store().create_file(&new_file(&tenant, folder.base.id)).await.unwrap();
    let sibling = t.store().create_file(&new_file(&tenant, folder.base.id)).await.unwrap();
    World { t, server, tenant, connection, folder, file, sibling }
}

async fn file_link(w: &World, file: &CloudFile, permission: &str) -> SharedLink {
    let mut new = new_file_link(&w.tenant, file.base.id);
    new.provider_share_id = Some(permission.to_owned());
    w.t.store().create_link(&new).await.unwrap()
}

async fn folder_link(w: &World, folder: &Folder, permission: &str) -> SharedLink {
    let new = NewSharedLink {
        resource_type: ResourceType::Folder,
        file_id: None,
        folder_id: Some(folder.base.id),
        provider_share_id: Some(permission.to_owned()),
        ..new_file_link(&w.tenant, w.file.base.id)
    };
    w.t.store().create_link(&new).await.unwrap()
}

/// Graph's permission delete for `item`, answering `status`.
async fn mount_delete(w: &World, item: &str, permission: &str, status: u16) {
    Mock::given(method("DELETE"))
        .and(path(format!("/v1.0/drives/{DRIVE}/items/{item}/permissions/{permission}").as_str()))
        .and(header("authorization", format!("Bearer {ACCESS}").as_str()))
        .respond_with(ResponseTemplate::new(status).set_body_json(json!({"error": {"code": "generalException"}})))
        .expect(1)
        .mount(&w.server)
        .await;
}

async fn delete(w: &World, kind: &str, id: impl std::fmt::Display) -> testkit::http::Reply {
    let event = ApiEvent::load(&format!("{kind}/delete")).caller(&w.tenant).path(&format!("/{kind}/{id}"));
    let router = match kind {
        "folders" => folders::router(w.t.app.clone()),
        _ => files::router(w.t.app.clone()),
    };
    call(&router, &event).await
}

async fn is_active(w: &World, link: &SharedLink) -> bool {
    w.t.store().get_link(w.tenant.id, link.base.id).await.unwrap().is_active
}

async fn errors(w: &World) -> Vec<shared::db::SyncError> {
    w.t.store().list_errors(w.tenant.id, &SyncErrorFilter::default(), PageRequest::first(50)).await.unwrap().items
}

fn deleted_paths(received: &[wiremock::Request]) -> Vec<String> {
    let mut paths: Vec<String> =
        received.iter().filter(|r| r.method.as_str() == "DELETE").map(|r| r.url.path().to_owned()).collect();
    paths.sort();
    paths
}

fn permission_path(item: &str, permission: &str) -> String {
    format!("/v1.0/drives/{DRIVE}/items/{item}/permissions/{permission}")
}

#[tokio::test]
async fn deleting_a_folder_removes_its_and_its_files_active_links_at_the_provider_first() {
    // Arrange
    let w = world().await;
    let own = folder_link(&w, &w.folder, "perm-folder").await;
    let of_file = file_link(&w, &w.file, "perm-file").await;
    let of_sibling = file_link(&w, &w.sibling, "perm-sibling").await;
    let inactive = file_link(&w, &w.file, "perm-old").await;
    w.t.store().deactivate_link(w.tenant.id, inactive.base.id).await.unwrap();
    let other_folder = w.t.store().create_folder(&new_folder(&w.tenant, w.connection.base.id)).await.unwrap();
    let elsewhere = folder_link(&w, &other_folder, "perm-elsewhere").await;
    mount_delete(&w, &w.folder.provider_folder_id, "perm-folder", 204).await;
    mount_delete(&w, &w.file.provider_file_id, "perm-file", 204).await;
    mount_delete(&w, &w.sibling.provider_file_id, "perm-sibling", 204).await;

    // Act
    let reply = delete(&w, "folders", w.folder.base.id).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    w.server.verify().await;
    let mut expected = vec![
        permission_path(&w.folder.provider_folder_id, "perm-folder"),
        permission_path(&w.file.provider_file_id, "perm-file"),
        permission_path(&w.sibling.provider_file_id, "perm-sibling"),
    ];
    expected.sort();
    assert_eq!(deleted_paths(&w.server.received_requests().await.unwrap()), expected, "only the folder's active links");
    for link in [&own, &of_file, &of_sibling] {
        assert!(!is_active(&w, link).await, "deactivated here too");
    }
    assert!(is_active(&w, &elsewhere).await, "another folder's link is untouched");
    assert!(errors(&w).await.is_empty());
}

#[tokio::test]
async fn deleting_a_file_removes_its_active_links_at_the_provider_first() {
    // Arrange
    let w = world().await;
    let first = file_link(&w, &w.file, "perm-1").await;
    let second = file_link(&w, &w.file, "perm-2").await;
    let of_sibling = file_link(&w, &w.sibling, "perm-sibling").await;
    let of_folder = folder_link(&w, &w.folder, "perm-folder").await;
    mount_delete(&w, &w.file.provider_file_id, "perm-1", 204).await;
    mount_delete(&w, &w.file.provider_file_id, "perm-2", 204).await;

    // Act
    let reply = delete(&w, "files", w.file.base.id).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.text);
    w.server.verify().await;
    assert_eq!(deleted_paths(&w.server.received_requests().await.unwrap()).len(), 2, "the file's links only");
    assert!(!is_active(&w, &first).await && !is_active(&w, &second).await);
    assert!(is_active(&w, &of_sibling).await && is_active(&w, &of_folder).await);
    assert!(errors(&w).await.is_empty());
}

#[tokio::test]
async fn a_link_the_provider_does_not_remove_is_recorded_and_the_delete_stands() {
    for kind in ["folders", "files"] {
        // Arrange
        let w = world().await;
        let link = file_link(&w, &w.file, "perm-1").await;
        mount_delete(&w, &w.file.provider_file_id, "perm-1", 403).await;
        let id = if kind == "folders" { w.folder.base.id.to_string() } else { w.file.base.id.to_string() };

        // Act
        let reply = delete(&w, kind, &id).await;

        // Assert
        assert_eq!(reply.status, 200, "{kind}: {}", reply.text);
        assert!(reply.body.get("is_deleted").is_none(), "{kind}: deletion shows as a 404 after it");
        assert_eq!(reply.body["id"], Value::String(id.clone()), "{kind}: the deleted item is answered");
        w.server.verify().await;
        assert!(!is_active(&w, &link).await, "{kind}: deactivated here regardless");
        let recorded = errors(&w).await;
        assert_eq!(recorded.len(), 1, "{kind}");
        assert_eq!(recorded[0].connection_id, w.connection.base.id, "{kind}");
        assert_eq!(recorded[0].file_id, Some(w.file.base.id), "{kind}");
        assert_eq!(recorded[0].error_type, ErrorType::Permission, "{kind}");
        let metadata = recorded[0].error_metadata.as_ref().unwrap();
        assert_eq!(metadata["operation"], "remove_shared_link", "{kind}");
        assert_eq!(metadata["deleted"], if kind == "folders" { "folder" } else { "file" });
        assert_eq!(metadata["link_id"], json!(link.base.id), "{kind}");
    }
}

#[tokio::test]
async fn without_active_links_no_provider_is_called() {
    // Arrange
    let w = world().await;
    let inactive = file_link(&w, &w.file, "perm-old").await;
    w.t.store().deactivate_link(w.tenant.id, inactive.base.id).await.unwrap();

    // Act
    let file = delete(&w, "files", w.file.base.id).await;
    let folder = delete(&w, "folders", w.folder.base.id).await;

    // Assert
    assert_eq!((file.status, folder.status), (200, 200), "{} {}", file.text, folder.text);
    assert!(w.server.received_requests().await.unwrap().is_empty());
    assert!(errors(&w).await.is_empty());
}
