//! The world the sync worker's tests run in: a tenant's folder synced from a fake provider
//! (`testkit::sync_fakes`) over SQLite and a local object store, and helpers to run jobs and
//! read what they did.
#![allow(dead_code)] // each test binary uses its own part

use std::time::Duration;

use serde_json::{Value, json};
use shared::db::*;
use shared::job_queue::JobMessage;
use sync_worker::{Ran, Settings};
use testkit::http::TestApp;
use testkit::providers::{ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN};
use testkit::sync_fakes::{RemoteTree, mount};
use testkit::{Tenant, connect_with_tokens};
use wiremock::MockServer;

/// A tenant's folder synced from a fake provider.
pub struct World {
    pub t: TestApp,
    pub server: MockServer,
    pub tree: RemoteTree,
    pub tenant: Tenant,
    pub folder: Folder,
    pub connection: Connection,
}

/// Short waits, and uploads in parts of one Graph fragment (320 KiB) so that a file of a
/// megabyte goes through a session.
pub fn settings() -> Settings {
    Settings { max_inline_wait: Duration::from_secs(2), upload_part: 327_680, ..Settings::default() }
}

pub async fn world(provider: ProviderType, tree: RemoteTree) -> World {
    world_with(provider, tree, |_| {}).await
}

/// [`world`] with the folder adjusted before it is created.
pub async fn world_with(provider: ProviderType, tree: RemoteTree, adjust: impl FnOnce(&mut NewFolder)) -> World {
    let server = MockServer::start().await;
    let uri = server.uri();
    let providers = json!({ "providers": { provider.as_str(): {
        "client_id": "sync-client",
        "client_secret": CLIENT_SECRET,
        "token_url": format!("{uri}/token"),
        "api_base_url": uri,
    }}});
    let t = TestApp::with_config(providers).await;
    mount(&server, &tree).await;
    let tenant = t.tenant().await;
    let scope = tree.scope();
    let connection = connect_with_tokens(
        &t.app,
        &tenant,
        provider,
        ACCESS_TOKEN,
        Some(REFRESH_TOKEN),
        Some(scope.connection_metadata.clone()),
    )
    .await;
    let mut new = testkit::new_folder(&tenant, connection.base.id);
    new.provider_folder_id = scope.folder_id.clone();
    new.folder_path = scope.folder_path.clone();
    new.folder_type = FolderType::Models;
    adjust(&mut new);
    let folder = t.store().create_folder(&new).await.unwrap();
    World { t, server, tree, tenant, folder, connection }
}

impl World {
    pub async fn job(&self, job_type: JobType, metadata: Option<Value>) -> SyncJob {
        let new = NewSyncJob {
            tenant_id: self.tenant.id,
            folder_id: self.folder.base.id,
            initiated_by_user_id: Some(self.tenant.user),
            job_type,
            job_metadata: metadata,
        };
        self.t.store().create_job(&new).await.unwrap()
    }

    pub fn message(&self, job: &SyncJob) -> JobMessage {
        JobMessage { tenant_id: self.tenant.id, job_id: job.base.id }
    }

    pub async fn run(&self, job: &SyncJob) -> Ran {
        sync_worker::engine::run(&self.t.app, &settings(), self.message(job), None).await.unwrap()
    }

    /// Runs the job to its end over as many runs as it takes (each continuation re-claims it).
    pub async fn run_to_end(&self, job: &SyncJob) -> (Ran, usize) {
        let mut runs = 0;
        loop {
            runs += 1;
            let ran = self.run(job).await;
            if !matches!(ran, Ran::Continued { .. }) || runs > 50 {
                return (ran, runs);
            }
        }
    }

    pub async fn files(&self) -> Vec<CloudFile> {
        let filter = CloudFileFilter { folder_id: Some(self.folder.base.id), ..Default::default() };
        let mut files =
            self.t.store().list_files(self.tenant.id, &filter, PageRequest::first(200)).await.unwrap().items;
        files.sort_by(|a, b| a.file_path.cmp(&b.file_path));
        files
    }

    pub async fn file(&self, path: &str) -> Option<CloudFile> {
        self.files().await.into_iter().find(|f| f.file_path.as_deref() == Some(path))
    }

    pub async fn errors(&self) -> Vec<SyncError> {
        let filter = SyncErrorFilter { connection_id: Some(self.connection.base.id), ..Default::default() };
        self.t.store().list_errors(self.tenant.id, &filter, PageRequest::first(200)).await.unwrap().items
    }

    /// The bytes Quodsi holds for a file, read from the local object store's directory.
    pub fn stored_bytes(&self, file: &CloudFile) -> Vec<u8> {
        let key = file.file_metadata.as_ref().unwrap()["object_key"].as_str().expect("an object key").to_owned();
        assert!(key.starts_with(&format!("{}/{}/", self.tenant.id, self.folder.base.id)), "{key}");
        std::fs::read(self.t.objects_dir().join(&key)).unwrap_or_else(|e| panic!("{key}: {e}"))
    }

    /// How many times the provider served a file's bytes.
    pub async fn downloads(&self) -> usize {
        self.tree.downloads_served()
    }

    /// How many times the connection's tokens were refreshed at the provider.
    pub async fn refreshes(&self) -> usize {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests.iter().filter(|r| r.method.as_str() == "POST" && r.url.path() == "/token").count()
    }

    pub async fn cursor(&self) -> Option<SyncCursor> {
        let kind = CursorKind::of(self.connection.provider_type);
        self.t
            .store()
            .get_cursor(self.tenant.id, self.connection.base.id, Some(self.folder.base.id), kind)
            .await
            .unwrap()
    }

    /// Runs a new job of `job_type` to its end and checks that it completed.
    pub async fn sync(&self, job_type: JobType) -> SyncJob {
        let job = self.job(job_type, None).await;
        let (ran, _) = self.run_to_end(&job).await;
        assert_eq!(ran, Ran::Completed, "{job_type}: {:?}", self.errors().await);
        self.t.store().get_job(self.tenant.id, job.base.id).await.unwrap()
    }

    /// Replaces Quodsi's copy of the file at `path` (as a client's upload or the app would: a
    /// new object, so a new entity tag).
    pub async fn edit_copy(&self, path: &str, content: &[u8]) {
        let file = self.file(path).await.unwrap_or_else(|| panic!("no file at {path}"));
        let key = file.file_metadata.as_ref().unwrap()["object_key"].as_str().unwrap().to_owned();
        let target = self.t.objects_dir().join(&key);
        let fresh = target.with_extension("edit");
        std::fs::write(&fresh, content).unwrap();
        std::fs::rename(&fresh, &target).unwrap();
    }

    /// Deletes Quodsi's copy of the file at `path` (as the app deleting the file would).
    pub async fn delete_copy(&self, path: &str) {
        let file = self.file(path).await.unwrap_or_else(|| panic!("no file at {path}"));
        let key = file.file_metadata.as_ref().unwrap()["object_key"].as_str().unwrap().to_owned();
        std::fs::remove_file(self.t.objects_dir().join(&key)).unwrap();
    }
}
