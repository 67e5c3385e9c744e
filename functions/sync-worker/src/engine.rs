//! One run of a sync job, from its claim to its end or its continuation.
//!
//! 1. **Claim.** A conditional UPDATE takes a pending job, or a running one whose lease ran
//!    out, and leases it; every later write names the lease. A heartbeat renews the lease with
//!    progress and the checkpoint every few seconds; when it finds the lease gone (the job was
//!    cancelled, failed by the stale-job reaper, or claimed by another delivery) the run stops
//!    at once and writes nothing more.
//! 2. **List.** A folder without a stored cursor (or whose cursor the provider no longer
//!    honours) is crawled: the provider's change cursor is taken first, then the subtree is
//!    listed folder by folder, page by page, and every file seen is marked by the job. A
//!    folder with a cursor reads only the changes since it, page by page; changes outside the
//!    subtree are ignored, an item moved out counts as deleted. Files are upserted by provider
//!    id (so a repeated page changes nothing), and those whose content changed wait for a
//!    download. Deletions are marks, applied in step 4.
//! 3. **Download.** Each waiting file streams from the provider into the object store under a
//!    temporary key while its provider hash and SHA-256 are computed; only when the hash
//!    matches the listing does it replace Quodsi's copy. A file that fails is marked `error`
//!    with an error row naming it, and the run goes on.
//! 4. **Finish.** After a crawl, files it did not see are marked deleted too. The mass-delete
//!    guard refuses a run that would delete more than half the folder's tracked files, or a
//!    crawl that saw none while files are tracked: the marks are dropped, nothing is deleted,
//!    the cursor stays where it was and the job fails. Otherwise the deletions apply, the new
//!    cursor is kept, and the job completes (stamping the folder's and connection's
//!    `last_sync_at`).
//!
//! Provider calls go through [`ProviderCall`] (fresh tokens, one refresh after a 401).
//! Throttling (429/503 with `Retry-After`, Drive's 403 rate limits) and other passing
//! failures are retried with backoff and jitter; a wait longer than the run may spend
//! continues the job after that delay instead. Time runs out the same way: the checkpoint is
//! saved, the lease given up, and the job's message sent again.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use futures_util::future::BoxFuture;
use rand::RngExt as _;
use serde_json::{Value, json};
use shared::app::App;
use shared::content_hash::HashAlg;
use shared::db::{
    CloudFile, CloudFilePatch, Connection, ConnectionStatus, CursorKind, DbError, ErrorType, Folder, FolderPermissions,
    JobLease, JobProgress, JobStatus, JobType, NewSyncCursor, Percent, SyncJob, SyncStatus, SyncedFile,
};
use shared::deadline::Deadline;
use shared::dispatch::{self, Dispatched};
use shared::job_queue::JobMessage;
use shared::objects::{ObjectKey, Objects};
use shared::provider_call::{Attempt, CallError, ProviderCall};
use shared::providers::{Change, ItemKind, ProviderError, RemoteItem, SyncScope};
use shared::schedule::chrono_duration;
use tokio::time::Instant;

use crate::Settings;
use crate::checkpoint::{Checkpoint, Listing, Stage};
use crate::place::{Place, join, parent_path_lower, place, relative_path};

mod export;
mod push;

/// What a run did with its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// Another worker holds the job, or it ended, was cancelled or deleted: nothing to do.
    NotClaimed,
    Completed,
    /// The job failed (its error message and an error row say why).
    Failed,
    /// The job was cancelled (or its lease taken) while it ran; the run stopped.
    Stopped,
    /// Out of time, or asked to wait: the job goes on in another invocation after `delay`.
    Continued {
        delay: Duration,
    },
}

/// Why a job could not be handled at all: the database failed. The message is delivered again.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("database")]
    Store(#[from] DbError),
}

/// Why a run stops early.
enum Stop {
    /// Go on in another invocation after this delay.
    Continue(Duration),
    /// The lease is no longer ours: write nothing more.
    LeaseLost,
    /// The job fails: the error row's type and code, and the message.
    Fail {
        error_type: ErrorType,
        code: Option<String>,
        message: String,
    },
    Store(DbError),
}

impl From<DbError> for Stop {
    fn from(e: DbError) -> Stop {
        Stop::Store(e)
    }
}

/// Pages of downloads to look at per query.
const DOWNLOAD_BATCH: u16 = 20;
/// A temporary object's name: under the folder's prefix, out of the way of provider names.
const INCOMING: &str = ".incoming";
/// Assumed download speed when deciding whether a download still fits in the run.
const ASSUMED_BYTES_PER_SECOND: u64 = 20 * 1024 * 1024;

/// Runs the job `message` names, until it ends or the invocation's time (`end`) is up.
pub async fn run(app: &App, settings: &Settings, message: JobMessage, end: Option<Instant>) -> Result<Ran, RunError> {
    let store = &app.store;
    let lease_until = store.now() + chrono_duration(settings.lease);
    let Some(lease) = store.claim_job(message.tenant_id, message.job_id, lease_until).await? else {
        return Ok(Ran::NotClaimed);
    };
    let started = Instant::now();
    let stop_at = match end {
        Some(end) => end.checked_sub(settings.stop_margin).unwrap_or(started).max(started),
        None => started + settings.local_run,
    };
    let mut run = match Run::prepare(app, settings, lease, stop_at).await {
        Ok(run) => run,
        Err((lease, stop)) => return finish_early(app, &lease, stop).await,
    };
    let outcome = run.go().await;
    run.conclude(outcome).await
}

/// A job that cannot even start (its folder or connection gone or unusable, a job type this
/// worker does not run): failed with an error row, or left alone when the lease is gone.
async fn finish_early(app: &App, lease: &JobLease, stop: Stop) -> Result<Ran, RunError> {
    match stop {
        Stop::Fail { error_type, code, message } => {
            let job = &lease.job;
            match app.store.get_folder(job.base.tenant_id, job.folder_id).await {
                Ok(folder) => {
                    let row = job_error(job, &folder, error_type, code, &message);
                    if let Err(e) = app.store.create_error(&row).await {
                        tracing::error!(job_id = %job.base.id, error = %shared::error_chain(&e), "cannot record why the job failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(job_id = %job.base.id, error = %shared::error_chain(&e), "the failed job's folder cannot be read")
                }
            }
            match app.store.end_job(lease, JobStatus::Failed, Some(&message)).await {
                Ok(_) | Err(DbError::NotFound) => Ok(Ran::Failed),
                Err(e) => Err(e.into()),
            }
        }
        Stop::LeaseLost => Ok(Ran::Stopped),
        Stop::Continue(delay) => Ok(Ran::Continued { delay }),
        Stop::Store(e) => Err(e.into()),
    }
}

fn job_error(
    job: &SyncJob,
    folder: &Folder,
    error_type: ErrorType,
    code: Option<String>,
    message: &str,
) -> shared::db::NewSyncError {
    shared::error_rows::scrub_error_row(
        shared::db::NewSyncError {
            tenant_id: job.base.tenant_id,
            sync_job_id: Some(job.base.id),
            connection_id: folder.connection_id,
            file_id: None,
            error_type,
            error_code: code,
            error_message: message.to_owned(),
            stack_trace: None,
            error_metadata: Some(json!({ "operation": "sync", "folder_id": folder.base.id, "job_type": job.job_type })),
        },
        &[],
    )
}

/// The state of one run.
struct Run<'a> {
    app: &'a App,
    settings: &'a Settings,
    lease: JobLease,
    folder: Folder,
    connection: Connection,
    call: ProviderCall,
    objects: Objects,
    checkpoint: Checkpoint,
    /// An import's provider file ids; `None` for a full sync.
    wanted: Option<BTreeSet<String>>,
    stop_at: Instant,
    last_beat: Instant,
    hash_alg: HashAlg,
    /// Whether this run reads the provider (the job type and folder permissions allow it).
    pulls: bool,
    /// Whether it sends Quodsi's changed copies to the provider (an export: the objects it
    /// names).
    pushes: bool,
    /// An export's view of the folder's files by path, read once per invocation.
    export_rows: Option<std::collections::HashMap<String, CloudFile>>,
}

impl<'a> Run<'a> {
    async fn prepare(
        app: &'a App,
        settings: &'a Settings,
        lease: JobLease,
        stop_at: Instant,
    ) -> Result<Run<'a>, (JobLease, Stop)> {
        let fail =
            |error_type, code: &str, message: String| Stop::Fail { error_type, code: Some(code.into()), message };
        let job = &lease.job;
        let tenant = job.base.tenant_id;
        if job.job_type == JobType::Export && !export::names_objects(job.job_metadata.as_ref()) {
            let message = "an export names the objects it puts into the folder in job_metadata.objects".to_owned();
            return Err((lease, fail(ErrorType::Validation, "export_without_objects", message)));
        }
        let folder = match app.store.get_folder(tenant, job.folder_id).await {
            Ok(folder) => folder,
            Err(DbError::NotFound) => return Err((lease, Stop::LeaseLost)),
            Err(e) => return Err((lease, e.into())),
        };
        // The job type says which way bytes may go, the folder's permissions which way they
        // are allowed to: a bidirectional job does what both allow.
        let permissions = folder.folder_permissions;
        let pulls = matches!(job.job_type, JobType::Download | JobType::Import | JobType::Bidirectional)
            && permissions != FolderPermissions::WriteOnly;
        let pushes = matches!(job.job_type, JobType::Upload | JobType::Bidirectional | JobType::Export)
            && permissions != FolderPermissions::ReadOnly;
        if !pulls && !pushes {
            let (code, message) = match permissions {
                FolderPermissions::WriteOnly => {
                    ("folder_write_only", "the folder is write_only: nothing is read from it")
                }
                _ => ("folder_read_only", "the folder is read_only: nothing is written to it"),
            };
            return Err((lease, fail(ErrorType::Permission, code, message.to_owned())));
        }
        let connection = match app.store.get_connection(tenant, folder.connection_id).await {
            Ok(connection) => connection,
            Err(DbError::NotFound) => return Err((lease, Stop::LeaseLost)),
            Err(e) => return Err((lease, e.into())),
        };
        if connection.status != ConnectionStatus::Active {
            let message = format!("the folder's connection is {}; reconnect the account", connection.status);
            return Err((lease, fail(ErrorType::Auth, "connection_not_active", message)));
        }
        let objects = match app.objects() {
            Ok(objects) => objects.clone(),
            Err(why) => return Err((lease, fail(ErrorType::Validation, "object_store_unavailable", why))),
        };
        let call = match ProviderCall::open(app, connection.clone()).await {
            Ok(call) => call,
            Err(e) => {
                let stop = Stop::Fail {
                    error_type: e.error_type(),
                    code: e.error_code(),
                    message: format!("the provider cannot be called: {}", shared::error_chain(&e)),
                };
                return Err((lease, stop));
            }
        };
        let wanted = match job.job_type {
            JobType::Import => Some(import_ids(job.job_metadata.as_ref())),
            _ => None,
        };
        let mut checkpoint = Checkpoint::from_metadata(job.job_metadata.as_ref()).unwrap_or_default();
        if !pulls && checkpoint.stage == Stage::Listing {
            checkpoint.stage = Stage::Pushing;
        }
        let hash_alg = HashAlg::for_provider(connection.provider_type);
        Ok(Run {
            app,
            settings,
            lease,
            folder,
            connection,
            call,
            objects,
            checkpoint,
            wanted,
            stop_at,
            last_beat: Instant::now(),
            hash_alg,
            pulls,
            pushes,
            export_rows: None,
        })
    }

    fn scope(&self) -> SyncScope<'_> {
        SyncScope {
            folder_id: &self.folder.provider_folder_id,
            folder_path: self.folder.folder_path.as_deref(),
            connection_metadata: self.connection.connection_metadata.as_ref(),
        }
    }

    fn job(&self) -> &SyncJob {
        &self.lease.job
    }

    // ---- the run ------------------------------------------------------------------------

    async fn go(&mut self) -> Result<(), Stop> {
        if self.pulls && self.checkpoint.listing.is_none() {
            self.start().await?;
        }
        while self.checkpoint.stage == Stage::Listing {
            self.beat(false).await?;
            self.list_page().await?;
        }
        while self.checkpoint.stage == Stage::Downloading {
            self.beat(false).await?;
            self.download_batch().await?;
        }
        while self.checkpoint.stage == Stage::Pushing {
            self.beat(false).await?;
            if self.job().job_type == JobType::Export {
                self.export_next().await?;
            } else {
                self.push_batch().await?;
            }
        }
        self.beat(true).await?;
        if self.pulls { self.finish().await } else { Ok(()) }
    }

    /// The first step of a job: how to read the provider.
    async fn start(&mut self) -> Result<(), Stop> {
        let store = &self.app.store;
        let job = self.job();
        let (tenant, folder_id) = (job.base.tenant_id, self.folder.base.id);
        self.checkpoint.tracked_at_start = store.count_live_files(tenant, folder_id).await?;
        if self.wanted.is_none() {
            // What the last sync could not fetch is fetched again, changed at the provider or not.
            let retried = store.retry_failed_files(tenant, folder_id).await?;
            self.checkpoint.files_total += i32::try_from(retried).unwrap_or(i32::MAX);
        }
        self.checkpoint.folders.insert(self.folder.provider_folder_id.clone(), String::new());
        self.checkpoint.root_path_lower = self.folder.folder_path.as_deref().map(str::to_lowercase);
        let kind = CursorKind::of(self.connection.provider_type);
        let stored = if self.wanted.is_some() {
            // An import reads what it names and leaves the folder's cursor where it is.
            None
        } else {
            store.get_cursor(tenant, self.connection.base.id, Some(folder_id), kind).await?
        };
        let fresh_enough = |c: &shared::db::SyncCursor| {
            kind != CursorKind::BoxEvents
                || c.last_polled_at
                    .is_some_and(|at| store.now() - at < chrono_duration(self.settings.box_cursor_max_age))
        };
        match stored {
            Some(cursor) if fresh_enough(&cursor) => {
                if let Some(Value::Object(map)) = &cursor.folder_map {
                    for (id, path) in map {
                        if let Some(path) = path.as_str() {
                            self.checkpoint.folders.insert(id.clone(), path.to_owned());
                        }
                    }
                    if let Some(root) = map.get(ROOT_PATH_KEY).and_then(Value::as_str) {
                        self.checkpoint.root_path_lower = Some(root.to_owned());
                    }
                    self.checkpoint.folders.remove(ROOT_PATH_KEY);
                }
                self.checkpoint.listing = Some(Listing::Changes { next: cursor.cursor_value });
            }
            _ => self.start_crawl().await?,
        }
        Ok(())
    }

    /// A full listing, the change cursor taken before it.
    async fn start_crawl(&mut self) -> Result<(), Stop> {
        let start_cursor = if self.wanted.is_some() {
            None
        } else {
            let scope = self.scope();
            Some(self.provider(|a| a.provider.start_cursor(a.token, &scope), "take the change cursor").await?)
        };
        // The crawl learns the subtree afresh: a folder map kept from an earlier cursor would
        // make it skip folders it believes it knows.
        self.checkpoint.folders.clear();
        self.checkpoint.folders.insert(self.folder.provider_folder_id.clone(), String::new());
        let root = (self.folder.provider_folder_id.clone(), String::new());
        self.checkpoint.listing = Some(Listing::Crawl { start_cursor, queue: VecDeque::from([root]), page: None });
        self.checkpoint.files_seen = 0;
        Ok(())
    }

    async fn list_page(&mut self) -> Result<(), Stop> {
        match self.checkpoint.listing.clone() {
            Some(Listing::Crawl { start_cursor, mut queue, page }) => {
                let Some((folder_id, path)) = queue.front().cloned() else {
                    self.checkpoint.cursor_to_keep = start_cursor;
                    self.checkpoint.stage = Stage::Downloading;
                    return Ok(());
                };
                let scope = self.scope();
                let listed = self
                    .provider(
                        |a| a.provider.list_children(a.token, &scope, &folder_id, page.as_deref()),
                        "list the folder",
                    )
                    .await?;
                for item in &listed.items {
                    if folder_id == self.folder.provider_folder_id && self.checkpoint.root_path_lower.is_none() {
                        self.checkpoint.root_path_lower = parent_path_lower(item);
                    }
                    let child = join(&path, &item.name);
                    match item.kind {
                        ItemKind::Folder => {
                            if self.checkpoint.folders.insert(item.id.clone(), child.clone()).is_none() {
                                queue.push_back((item.id.clone(), child));
                            }
                        }
                        ItemKind::File => {
                            self.checkpoint.files_seen += 1;
                            self.reconcile(item, child, true).await?;
                        }
                    }
                }
                let page = listed.next;
                if page.is_none() {
                    queue.pop_front();
                }
                self.checkpoint.listing = Some(Listing::Crawl { start_cursor, queue, page });
                Ok(())
            }
            Some(Listing::Changes { next }) => {
                let scope = self.scope();
                let read = self.provider_raw(|a| a.provider.changes(a.token, &scope, &next), "read the changes").await;
                let page = match read {
                    Ok(page) => page,
                    Err(CallError::Provider(ProviderError::ResyncRequired(why))) => {
                        tracing::info!(job_id = %self.job().base.id, why, "the provider asked for a resync; crawling afresh");
                        return self.start_crawl().await;
                    }
                    Err(e) => return Err(self.provider_stop(e, "read the changes")),
                };
                self.apply_changes(page.changes).await?;
                if page.cursor.is_some() {
                    self.checkpoint.cursor_to_keep = page.cursor;
                }
                match page.next {
                    Some(next) => self.checkpoint.listing = Some(Listing::Changes { next }),
                    None => self.checkpoint.stage = Stage::Downloading,
                }
                Ok(())
            }
            None => Err(Stop::Fail {
                error_type: ErrorType::Api,
                code: Some("no_listing".into()),
                message: "the run has no listing to go on with".into(),
            }),
        }
    }

    /// Applies one page of changes: folders first (a page may name a folder after the files
    /// in it), then files and deletions.
    async fn apply_changes(&mut self, changes: Vec<Change>) -> Result<(), Stop> {
        let (tenant, folder_id, job_id) = (self.job().base.tenant_id, self.folder.base.id, self.job().base.id);
        let root = self.folder.provider_folder_id.clone();
        let mut placed_folder = true;
        while placed_folder {
            placed_folder = false;
            for change in &changes {
                let Change::Upsert(item) = change else { continue };
                if item.kind != ItemKind::Folder {
                    continue;
                }
                if let Place::Inside(path) = place(item, &root, &self.checkpoint) {
                    let old = self.checkpoint.folders.insert(item.id.clone(), path.clone());
                    placed_folder |= old.as_deref() != Some(path.as_str());
                }
            }
        }
        for change in changes {
            match change {
                Change::Upsert(item) => match (item.kind, place(&item, &root, &self.checkpoint)) {
                    (_, Place::Root) | (ItemKind::Folder, Place::Inside(_)) => {}
                    (ItemKind::File, Place::Inside(path)) => self.reconcile(&item, path, false).await?,
                    (ItemKind::File, Place::Outside) => {
                        // Moved out of the folder (or never in it: then this marks nothing).
                        self.app.store.mark_file_deleted(tenant, folder_id, &item.id, job_id).await?;
                    }
                    (ItemKind::Folder, Place::Outside) => {
                        if let Some(path) = self.checkpoint.folders.remove(&item.id) {
                            self.app.store.mark_path_deleted(tenant, folder_id, &path, job_id).await?;
                        }
                    }
                },
                Change::Deleted { id: Some(id), .. } => {
                    if let Some(path) = self.checkpoint.folders.remove(&id) {
                        self.app.store.mark_path_deleted(tenant, folder_id, &path, job_id).await?;
                    } else {
                        self.app.store.mark_file_deleted(tenant, folder_id, &id, job_id).await?;
                    }
                }
                Change::Deleted { id: None, path_lower: Some(lower) } => {
                    let relative =
                        self.checkpoint.root_path_lower.as_deref().and_then(|root| relative_path(&lower, root));
                    if let Some(relative) = relative {
                        self.app.store.mark_path_deleted(tenant, folder_id, relative, job_id).await?;
                    }
                }
                Change::Deleted { id: None, path_lower: None } => {}
            }
        }
        Ok(())
    }

    /// Records a file the listing found, and whether its bytes must be fetched.
    async fn reconcile(&mut self, item: &RemoteItem, path: String, seen: bool) -> Result<(), Stop> {
        if self.wanted.as_ref().is_some_and(|w| !w.contains(&item.id)) {
            return Ok(());
        }
        let store = &self.app.store;
        let (tenant, folder_id) = (self.job().base.tenant_id, self.folder.base.id);
        let existing = store.get_file_by_provider_id(tenant, folder_id, &item.id).await?;
        // A file in conflict (changed here and at the provider) waits for its user: neither
        // version replaces the other.
        let conflict = existing.as_ref().is_some_and(|f| f.sync_status == SyncStatus::Conflict);
        let changed = match &existing {
            None => true,
            Some(file) => file.sync_status != SyncStatus::Synced || content_differs(file, item),
        };
        let mut download = changed && item.downloadable && !conflict;
        let mut metadata = match existing.as_ref().and_then(|f| f.file_metadata.clone()) {
            Some(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        if !download
            && item.downloadable
            && let Some(file) = &existing
            && file.file_path.as_deref() != Some(path.as_str())
        {
            // Renamed or moved within the folder, same bytes: Quodsi's copy follows the name
            // rather than being fetched again; if it cannot, it is fetched again.
            match self.move_copy(&metadata, &path).await {
                Some(key) => {
                    metadata.insert("object_key".into(), json!(key.as_str()));
                }
                None => download = true,
            }
        }
        metadata.insert("revision".into(), json!(item.revision));
        metadata.insert("hash_alg".into(), json!(self.hash_alg.name()));
        metadata.insert("downloadable".into(), json!(item.downloadable));
        if let Some(lower) = &item.path_lower {
            metadata.insert("path_lower".into(), json!(lower));
        }
        if let Some(parent) = &item.parent_id {
            metadata.insert("parent_id".into(), json!(parent));
        }
        let file = SyncedFile {
            tenant_id: tenant,
            folder_id,
            quodsi_file_type: self.folder.folder_type.file_type(),
            provider_file_id: item.id.clone(),
            file_name: item.name.clone(),
            file_path: Some(path),
            file_size_bytes: item.size.unwrap_or(0).max(0),
            content_hash: item.hash.clone(),
            mime_type: item.mime_type.clone(),
            cloud_created_at: item.created_at,
            cloud_modified_at: item.modified_at,
            sync_status: match (conflict, download) {
                (true, _) => SyncStatus::Conflict,
                (false, true) => SyncStatus::NeedsDownload,
                (false, false) => SyncStatus::Synced,
            },
            file_metadata: Some(Value::Object(metadata)),
            seen_by_job_id: seen.then_some(self.job().base.id),
        };
        match store.upsert_synced_file(&file).await {
            Ok(()) => {}
            // A name or id the schema cannot hold (over 255 bytes): that file is skipped, the
            // rest of the folder goes on.
            Err(DbError::Validation { field, message }) => {
                self.record_file_error(
                    None,
                    ErrorType::Validation,
                    Some("unstorable_item"),
                    &format!("{field}: {message}"),
                )
                .await;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        if download && existing.as_ref().is_none_or(|f| f.sync_status != SyncStatus::NeedsDownload) {
            self.checkpoint.files_total += 1;
        }
        Ok(())
    }

    /// The key of Quodsi's copy of the file at `path` (relative to the folder, `/`-separated).
    fn key_of(&self, path: &str) -> Result<ObjectKey, shared::objects::ObjectKeyError> {
        let segments: Vec<&str> = path.split('/').collect();
        ObjectKey::for_file(self.job().base.tenant_id, self.folder.base.id, &segments)
    }

    /// Moves Quodsi's copy of a file (at `metadata`'s `object_key`) to the key of its new
    /// `path`; `None` when there is no copy to move or the store refused.
    async fn move_copy(&self, metadata: &serde_json::Map<String, Value>, path: &str) -> Option<ObjectKey> {
        let (tenant, folder_id) = (self.job().base.tenant_id, self.folder.base.id);
        let old = ObjectKey::stored_under(metadata.get("object_key")?.as_str()?, tenant, folder_id)?;
        let new = self.key_of(path).ok()?;
        if let Err(e) = self.objects.rename(&old, &new).await {
            tracing::warn!(job_id = %self.job().base.id, error = %shared::error_chain(&e), "moving a renamed file's copy failed; fetching it again");
            return None;
        }
        Some(new)
    }

    async fn download_batch(&mut self) -> Result<(), Stop> {
        let (tenant, folder_id) = (self.job().base.tenant_id, self.folder.base.id);
        let waiting = self
            .app
            .store
            .list_files_to_download(tenant, folder_id, self.checkpoint.download_after, DOWNLOAD_BATCH)
            .await?;
        if waiting.is_empty() {
            self.checkpoint.stage = if self.pushes { Stage::Pushing } else { Stage::Finishing };
            return Ok(());
        }
        for file in waiting {
            self.beat(false).await?;
            let estimate = Duration::from_secs(file.file_size_bytes.max(0) as u64 / ASSUMED_BYTES_PER_SECOND);
            if Instant::now() + estimate >= self.stop_at {
                return Err(Stop::Continue(Duration::ZERO));
            }
            self.download(&file).await?;
            self.checkpoint.download_after = file.base.index_id;
            self.checkpoint.files_processed =
                (self.checkpoint.files_processed + 1).min(self.checkpoint.files_total.max(1));
        }
        Ok(())
    }

    /// Streams one file into Quodsi's store and checks it; a failure of this file alone marks
    /// it `error` and the run goes on.
    async fn download(&mut self, file: &CloudFile) -> Result<(), Stop> {
        let (tenant, folder_id) = (self.job().base.tenant_id, self.folder.base.id);
        let path = file.file_path.clone().unwrap_or_else(|| file.file_name.clone());
        let target = match self.key_of(&path) {
            Ok(key) => key,
            Err(e) => {
                let why = format!("the file's path cannot be a key in Quodsi's store: {e}");
                return self.file_failed(file, ErrorType::Validation, Some("unstorable_path"), &why).await;
            }
        };
        if self.copy_changed(file).await?.is_some() {
            return self.changed_on_both_sides(file).await;
        }
        let temporary_name = format!("{}-{}", file.base.id, self.job().base.id);
        let temporary = ObjectKey::for_file(tenant, folder_id, &[INCOMING, &temporary_name])
            .expect("an id-based name under the folder is always a key");
        let item = RemoteItem {
            id: file.provider_file_id.clone(),
            name: file.file_name.clone(),
            kind: ItemKind::File,
            parent_id: None,
            path_lower: meta_str(file, "path_lower"),
            path_display: None,
            size: Some(file.file_size_bytes),
            hash: file.content_hash.clone(),
            revision: meta_str(file, "revision"),
            mime_type: file.mime_type.clone(),
            created_at: file.cloud_created_at,
            modified_at: file.cloud_modified_at,
            downloadable: true,
        };
        let scope = self.scope();
        let fetched = self.provider_raw(|a| a.provider.download(a.token, &scope, &item), "download the file").await;
        let download = match fetched {
            Ok(download) => download,
            Err(e @ CallError::Provider(_)) if !e.is_transient() => {
                let (error_type, code) = (e.error_type(), e.error_code());
                let why = self.call.scrub(&format!("downloading it failed: {e}"), 2000);
                return self.file_failed(file, error_type, code.as_deref(), &why).await;
            }
            Err(e) => return Err(self.provider_stop(e, "download a file")),
        };
        let stored = self.objects.put_stream_hashed(&temporary, self.hash_alg, download.body).await;
        let digests = match stored {
            Ok((_, digests)) => digests,
            Err(e) => {
                let _ = self.objects.delete(&temporary).await;
                let why = self.call.scrub(&format!("storing it failed: {}", shared::error_chain(&e)), 2000);
                return self.file_failed(file, ErrorType::Network, Some("transfer_failed"), &why).await;
            }
        };
        let Some(digests) = digests else {
            let _ = self.objects.delete(&temporary).await;
            return self.file_failed(file, ErrorType::Api, Some("hash_unavailable"), "the content hash was lost").await;
        };
        if let Some(expected) = &file.content_hash
            && expected != &digests.provider
        {
            let _ = self.objects.delete(&temporary).await;
            let why = format!(
                "the downloaded bytes hash to {} ({}), the provider listed {expected}: not kept",
                digests.provider,
                self.hash_alg.name()
            );
            return self.file_failed(file, ErrorType::Api, Some("hash_mismatch"), &why).await;
        }
        if self.copy_changed(file).await?.is_some() {
            // Changed here while the provider's version was on its way: that one is dropped.
            let _ = self.objects.delete(&temporary).await;
            return self.changed_on_both_sides(file).await;
        }
        if let Err(e) = self.objects.rename(&temporary, &target).await {
            let _ = self.objects.delete(&temporary).await;
            let why = format!("moving it into place failed: {}", shared::error_chain(&e));
            return self.file_failed(file, ErrorType::Api, Some("store_failed"), &why).await;
        }
        let previous = meta_str(file, "object_key");
        if let Some(previous) = previous.as_deref()
            && previous != target.as_str()
            && let Some(old) = ObjectKey::stored_under(previous, tenant, folder_id)
        {
            // The file was renamed or moved at the provider: its old copy goes.
            let _ = self.objects.delete(&old).await;
        }
        let mut metadata = match file.file_metadata.clone() {
            Some(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        metadata.insert("object_key".into(), json!(target.as_str()));
        // What Quodsi's copy is as of this sync: a later change to it (a client's upload, the
        // app) shows as another entity tag.
        match self.objects.head(&target).await {
            Ok(Some(stored)) => {
                metadata.insert("object_etag".into(), json!(stored.e_tag));
            }
            Ok(None) | Err(_) => {
                metadata.remove("object_etag");
            }
        }
        let patch = CloudFilePatch {
            file_size_bytes: Some(digests.size as i64),
            content_hash: Some(Some(digests.provider.clone())),
            last_synced_at: Some(Some(self.app.store.now())),
            sync_status: Some(SyncStatus::Synced),
            file_metadata: Some(Some(Value::Object(metadata))),
            ..CloudFilePatch::default()
        };
        self.app.store.update_file(tenant, file.base.id, &patch).await?;
        self.checkpoint.bytes_transferred = self.checkpoint.bytes_transferred.saturating_add(digests.size as i64);
        Ok(())
    }

    async fn file_failed(
        &mut self,
        file: &CloudFile,
        error_type: ErrorType,
        code: Option<&str>,
        why: &str,
    ) -> Result<(), Stop> {
        let patch = CloudFilePatch { sync_status: Some(SyncStatus::Error), ..CloudFilePatch::default() };
        self.app.store.update_file(self.job().base.tenant_id, file.base.id, &patch).await?;
        let message = format!("{} ({}): {why}", file.file_name, file.provider_file_id);
        self.record_file_error(Some(file), error_type, code, &message).await;
        Ok(())
    }

    async fn record_file_error(
        &self,
        file: Option<&CloudFile>,
        error_type: ErrorType,
        code: Option<&str>,
        message: &str,
    ) {
        let mut row = job_error(self.job(), &self.folder, error_type, code.map(str::to_owned), message);
        row.file_id = file.map(|f| f.base.id);
        if let Some(Value::Object(meta)) = &mut row.error_metadata
            && let Some(file) = file
        {
            meta.insert("provider_file_id".into(), json!(file.provider_file_id));
            meta.insert("file_name".into(), json!(file.file_name));
        }
        let row = shared::error_rows::ErrorRow::new(row, Vec::new());
        row.record(&self.app.store).await;
    }

    /// Step 4: the deletions behind the guard, the cursor, the end.
    async fn finish(&mut self) -> Result<(), Stop> {
        let store = &self.app.store;
        let job = self.job().clone();
        let (tenant, folder_id, job_id) = (job.base.tenant_id, self.folder.base.id, job.base.id);
        let crawled = matches!(self.checkpoint.listing, Some(Listing::Crawl { .. }));
        if self.wanted.is_none() {
            if crawled {
                store.mark_unseen_deleted(tenant, folder_id, job_id).await?;
            }
            let marked = store.count_marked_deleted(tenant, folder_id, job_id).await?;
            let tracked = self.checkpoint.tracked_at_start;
            let empty_crawl = crawled && self.checkpoint.files_seen == 0 && tracked > 0;
            if marked > 0 && (empty_crawl || marked * 2 > tracked) {
                store.clear_marked_deletes(tenant, folder_id, job_id).await?;
                let message = if empty_crawl {
                    format!(
                        "the provider listed no file in the folder while {tracked} are tracked; nothing was deleted"
                    )
                } else {
                    format!(
                        "the run would delete {marked} of the folder's {tracked} tracked files; nothing was deleted"
                    )
                };
                return Err(Stop::Fail {
                    error_type: ErrorType::Validation,
                    code: Some("mass_delete_guard".into()),
                    message,
                });
            }
            if marked > 0 {
                store.apply_marked_deletes(tenant, folder_id, job_id).await?;
            }
            if let Some(cursor) = self.checkpoint.cursor_to_keep.clone() {
                let mut map: serde_json::Map<String, Value> =
                    self.checkpoint.folders.iter().map(|(id, path)| (id.clone(), json!(path))).collect();
                if let Some(root) = &self.checkpoint.root_path_lower {
                    map.insert(ROOT_PATH_KEY.into(), json!(root));
                }
                store
                    .put_cursor(&NewSyncCursor {
                        tenant_id: tenant,
                        connection_id: self.connection.base.id,
                        folder_id: Some(folder_id),
                        cursor_kind: CursorKind::of(self.connection.provider_type),
                        cursor_value: cursor,
                        folder_map: Some(Value::Object(map)),
                        last_polled_at: Some(store.now()),
                    })
                    .await?;
            }
        }
        Ok(())
    }

    // ---- provider calls -----------------------------------------------------------------

    /// A provider call with the run's retries; a failure that remains stops the run.
    async fn provider<'env, T>(
        &self,
        f: impl for<'x> Fn(Attempt<'x, 'env>) -> BoxFuture<'x, Result<T, ProviderError>>,
        what: &str,
    ) -> Result<T, Stop> {
        self.provider_raw(f, what).await.map_err(|e| self.provider_stop(e, what))
    }

    /// A provider call, passing failures retried with backoff and jitter while the wait fits.
    async fn provider_raw<'env, T>(
        &self,
        f: impl for<'x> Fn(Attempt<'x, 'env>) -> BoxFuture<'x, Result<T, ProviderError>>,
        what: &str,
    ) -> Result<T, CallError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let deadline = Deadline::at(self.stop_at.max(Instant::now() + Duration::from_secs(5)));
            let error = match self.call.run(&deadline, &f).await {
                Ok(value) => return Ok(value),
                Err(e @ CallError::Provider(_)) => e,
                Err(other) => return Err(other),
            };
            if !error.is_transient() || attempt >= self.settings.call_attempts {
                return Err(error);
            }
            let wait = wait_for(&error, attempt);
            if wait > self.settings.max_inline_wait || Instant::now() + wait >= self.stop_at {
                return Err(error);
            }
            tracing::info!(job_id = %self.job().base.id, attempt, wait_ms = wait.as_millis() as u64, what, "provider call retried");
            tokio::time::sleep(wait).await;
        }
    }

    /// What a failure that remains does to the run: a passing one continues the job later
    /// (after the provider's wait), a database failure ends the run for the message to come
    /// again, anything else fails the job.
    fn provider_stop(&self, e: CallError, what: &str) -> Stop {
        if let CallError::Store(db) = e {
            return Stop::Store(db);
        }
        if e.is_transient() {
            return Stop::Continue(wait_for(&e, 1).max(Duration::from_secs(1)));
        }
        Stop::Fail {
            error_type: e.error_type(),
            code: e.error_code(),
            message: self.call.scrub(&format!("the provider could not {what}: {e}"), 2000),
        }
    }

    // ---- the lease ----------------------------------------------------------------------

    /// Renews the lease with progress and the checkpoint when a heartbeat is due (or `force`);
    /// out of time, stops to continue later.
    async fn beat(&mut self, force: bool) -> Result<(), Stop> {
        if !force && Instant::now() >= self.stop_at {
            self.heartbeat().await?;
            return Err(Stop::Continue(Duration::ZERO));
        }
        if force || self.last_beat.elapsed() >= self.settings.heartbeat {
            self.heartbeat().await?;
        }
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<(), Stop> {
        let c = &self.checkpoint;
        let total = c.files_total.max(c.files_processed);
        let hundredths = if total > 0 { (i64::from(c.files_processed) * 10_000 / i64::from(total)) as u16 } else { 0 };
        let progress = JobProgress {
            lease_until: self.app.store.now() + chrono_duration(self.settings.lease),
            progress_percentage: Percent::from_hundredths(hundredths.min(Percent::MAX_HUNDREDTHS)).unwrap_or_default(),
            files_processed: c.files_processed,
            files_total: (c.stage != Stage::Listing).then_some(total),
            bytes_transferred: c.bytes_transferred,
            job_metadata: Some(c.into_metadata(self.job().job_metadata.as_ref())),
        };
        self.last_beat = Instant::now();
        if self.app.store.heartbeat_job(&self.lease, &progress).await? { Ok(()) } else { Err(Stop::LeaseLost) }
    }

    /// Ends the run the way `outcome` says.
    async fn conclude(mut self, outcome: Result<(), Stop>) -> Result<Ran, RunError> {
        let store = &self.app.store;
        let job = self.job().clone();
        match outcome {
            Ok(()) => match store.end_job(&self.lease, JobStatus::Completed, None).await {
                Ok(_) => Ok(Ran::Completed),
                Err(DbError::NotFound) => Ok(Ran::Stopped),
                Err(e) => Err(e.into()),
            },
            Err(Stop::Continue(delay)) => {
                // The checkpoint first, so the next invocation goes on from here.
                match self.heartbeat().await {
                    Ok(()) => {}
                    Err(Stop::Store(e)) => return Err(e.into()),
                    Err(_) => return Ok(Ran::Stopped),
                }
                let store = &self.app.store;
                if !store.release_job(&self.lease).await? {
                    return Ok(Ran::Stopped);
                }
                let queued = dispatch::dispatch(self.app, &job, delay).await;
                tracing::info!(job_id = %job.base.id, delay_ms = delay.as_millis() as u64, ?queued, "sync job continues later");
                if queued == Dispatched::Failed {
                    // The sweep sends it again once the lapsed lease is old enough.
                    tracing::warn!(job_id = %job.base.id, "the continuation was not queued; the sweep will send it");
                }
                Ok(Ran::Continued { delay })
            }
            Err(Stop::LeaseLost) => Ok(Ran::Stopped),
            Err(stop @ Stop::Fail { .. }) => finish_early(self.app, &self.lease, stop).await,
            Err(Stop::Store(e)) => {
                // The lease lapses by itself; the message comes again.
                Err(e.into())
            }
        }
    }
}

/// Where the Dropbox root's path is kept in a cursor's folder map.
const ROOT_PATH_KEY: &str = "$root_path_lower";

/// An import's provider file ids, as `POST /sync-jobs` checked them.
fn import_ids(metadata: Option<&Value>) -> BTreeSet<String> {
    metadata
        .and_then(|m| m.get("file_ids"))
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn meta_str(file: &CloudFile, key: &str) -> Option<String> {
    file.file_metadata.as_ref()?.get(key)?.as_str().map(str::to_owned)
}

/// Whether the stored copy is out of date with what the provider lists now.
fn content_differs(file: &CloudFile, item: &RemoteItem) -> bool {
    if let (Some(stored), Some(listed)) = (&file.content_hash, &item.hash) {
        return stored != listed;
    }
    let stored_revision = file.file_metadata.as_ref().and_then(|m| m.get("revision")).and_then(Value::as_str);
    if let (Some(stored), Some(listed)) = (stored_revision, item.revision.as_deref()) {
        return stored != listed;
    }
    item.size.is_some_and(|s| s != file.file_size_bytes) || item.modified_at != file.cloud_modified_at
}

/// How long to wait after `attempt` failures: the provider's `Retry-After` when it gave one,
/// else 1, 2, 4, 8, 16 s with up to a second of jitter (so parallel workers do not retry in
/// step).
fn wait_for(e: &CallError, attempt: u32) -> Duration {
    if let Some(wait) = e.retry_after() {
        return wait;
    }
    let base = Duration::from_secs(1 << attempt.saturating_sub(1).min(4));
    base + Duration::from_millis(rand::rng().random_range(0..1000))
}
