//! The test kit: everything tests of more than one crate need, in one place and under one
//! name. Valid rows of every table and the tenants and users they belong to (this module),
//! API Gateway events through a function's real router (`http`), the scheduled functions'
//! clock and fault helpers (`scheduled`), wiremock fakes of the five providers (`providers`),
//! capture of every `tracing` event (`logs`), fakes of the providers' sync endpoints over a model
//! remote tree (`sync_fakes`), and moto's Secrets Manager (`moto`). The suites
//! that cut across crates (conformance, T-SQL parse, SQLite plans, OpenAPI, schema names,
//! secrets end to end) are this crate's own tests.

pub mod faults;
pub mod http;
pub mod logs;
pub mod moto;
pub mod providers;
pub mod scheduled;
pub mod sync_fakes;

use chrono::{Duration, Utc};
use shared::db::*;
use uuid::Uuid;

/// A tenant with one user, created for one test so tests never see each other's rows.
#[derive(Debug, Clone, Copy)]
pub struct Tenant {
    pub id: TenantId,
    pub user: UserId,
}

impl Tenant {
    pub async fn create(store: &Store) -> Tenant {
        let t = Tenant { id: TenantId(Uuid::new_v4()), user: UserId(Uuid::new_v4()) };
        store.ensure_tenant(t.id, "test tenant").await.expect("tenant");
        store.ensure_user(t.user, t.id, Some("user@example.com")).await.expect("user");
        t
    }

    /// Another user of the same tenant.
    pub async fn add_user(&self, store: &Store) -> UserId {
        let u = UserId(Uuid::new_v4());
        store.ensure_user(u, self.id, None).await.expect("user");
        u
    }
}

/// Every regular file below `root` (canonicalized first), recursively: what a local object
/// store holds on disk.
pub fn files_under(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", root.display()))];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

pub fn new_connection(t: &Tenant) -> NewConnection {
    NewConnection {
        tenant_id: t.id,
        user_id: t.user,
        provider_type: ProviderType::OneDrive,
        provider_user_id: format!("acct-{}", Uuid::new_v4().simple()),
        provider_user_email: Some("someone@example.com".into()),
        encrypted_access_token: vec![1, 2, 3, 4],
        encrypted_refresh_token: Some(vec![5, 6, 7]),
        token_expiry: Utc::now() + Duration::hours(1),
        scope: "Files.ReadWrite offline_access".into(),
        status: ConnectionStatus::Active,
        display_name: Some("Work OneDrive".into()),
        connection_metadata: Some(serde_json::json!({"drive_id": "b!abc", "drive_type": "business"})),
    }
}

/// A connection of `provider` for `t`'s user whose tokens are really encrypted by the app's
/// vault for its own row (the vault binds a ciphertext to the row id, so the tokens are written
/// after the insert), with `metadata` as its connection metadata.
pub async fn connect_with_tokens(
    app: &shared::app::App,
    t: &Tenant,
    provider: ProviderType,
    access: &str,
    refresh: Option<&str>,
    metadata: Option<serde_json::Value>,
) -> Connection {
    use secrecy::SecretString;
    let store = &app.store;
    let mut new = new_connection(t);
    new.provider_type = provider;
    new.connection_metadata = metadata;
    let created = store.create_connection(&new).await.expect("connection");
    let vault = &app.current().await.expect("configuration").vault;
    let id = created.base.id;
    let access = vault.encrypt(shared::vault::TokenContext::access(t.id, id), &SecretString::from(access.to_owned()));
    let refresh = refresh
        .map(|r| vault.encrypt(shared::vault::TokenContext::refresh(t.id, id), &SecretString::from(r.to_owned())));
    let swapped = store.swap_connection_tokens(t.id, id, &created.encrypted_access_token, access, refresh).await;
    assert!(swapped.expect("token write"), "the new connection's tokens were replaced");
    store.get_connection(t.id, id).await.expect("the connection")
}

pub fn new_folder(t: &Tenant, connection_id: ConnectionId) -> NewFolder {
    NewFolder {
        tenant_id: t.id,
        connection_id,
        folder_name: "Models".into(),
        provider_folder_id: format!("fld-{}", Uuid::new_v4().simple()),
        folder_path: Some("/Quodsi/Models".into()),
        folder_type: FolderType::Models,
        is_default_export_folder: false,
        is_default_import_folder: false,
        auto_sync_enabled: false,
        sync_frequency_minutes: None,
        folder_permissions: FolderPermissions::ReadWrite,
    }
}

pub fn new_job(t: &Tenant, folder_id: FolderId) -> NewSyncJob {
    NewSyncJob {
        tenant_id: t.id,
        folder_id,
        initiated_by_user_id: Some(t.user),
        job_type: JobType::Upload,
        job_metadata: None,
    }
}

pub fn new_file(t: &Tenant, folder_id: FolderId) -> NewCloudFile {
    NewCloudFile {
        tenant_id: t.id,
        folder_id,
        quodsi_file_type: QuodsiFileType::Model,
        quodsi_entity_id: Some(Uuid::new_v4()),
        provider_file_id: format!("file-{}", Uuid::new_v4().simple()),
        file_name: "factory.qsm".into(),
        file_path: Some("/Quodsi/Models/factory.qsm".into()),
        file_size_bytes: 2048,
        content_hash: Some("a".repeat(64)),
        mime_type: Some("application/json".into()),
        cloud_created_at: None,
        cloud_modified_at: None,
        last_synced_at: None,
        sync_status: SyncStatus::Synced,
        upload_url: None,
        download_url: None,
        file_metadata: None,
    }
}

pub fn new_file_link(t: &Tenant, file_id: FileId) -> NewSharedLink {
    NewSharedLink {
        tenant_id: t.id,
        created_by_user_id: t.user,
        resource_type: ResourceType::File,
        file_id: Some(file_id),
        folder_id: None,
        provider_share_id: Some("share-1".into()),
        share_url: "https://example.com/s/abc".into(),
        share_type: ShareType::View,
        password_protected: false,
        expires_at: None,
    }
}

pub fn new_error(t: &Tenant, connection_id: ConnectionId) -> NewSyncError {
    NewSyncError {
        tenant_id: t.id,
        sync_job_id: None,
        connection_id,
        file_id: None,
        error_type: ErrorType::Network,
        error_code: Some("ETIMEDOUT".into()),
        error_message: "the provider did not answer".into(),
        stack_trace: None,
        error_metadata: None,
    }
}

/// One of every kind of row for a tenant, linked together.
#[derive(Debug, Clone)]
pub struct Graph {
    pub connection: Connection,
    pub folder: Folder,
    pub job: SyncJob,
    pub file: CloudFile,
    pub link: SharedLink,
    pub error: SyncError,
}

impl Graph {
    pub async fn create(store: &Store, t: &Tenant) -> Graph {
        let connection = store.create_connection(&new_connection(t)).await.expect("connection");
        let folder = store.create_folder(&new_folder(t, connection.base.id)).await.expect("folder");
        let job = store.create_job(&new_job(t, folder.base.id)).await.expect("job");
        let file = store.create_file(&new_file(t, folder.base.id)).await.expect("file");
        let link = store.create_link(&new_file_link(t, file.base.id)).await.expect("link");
        let error = store.create_error(&new_error(t, connection.base.id)).await.expect("error");
        Graph { connection, folder, job, file, link, error }
    }
}
