//! The repository: every operation the functions need, written once over [`Backend`].
//! Every tenant-facing operation takes the tenant id and scopes its SQL with it; only the
//! scans for scheduled functions (named `scan_*`, `*_due`, `*_expired`) and the public link
//! redirect cross tenants.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::backend::{Backend, Step, StepOutcome, When};
use super::enums::{ConnectionStatus, JobStatus, ProviderType};
use super::error::{DbError, DbResult};
use super::model::*;
use super::stmt::Stmt;
use super::value::{FromRow, Value, micros, opt, patch, patch_some};

// The scans and claims of the scheduled functions (token refresh, auto-sync, link expiry).
mod scheduled;
// What the sync worker reads and writes: cursors, job leases, files as synced.
mod sync;

type Clock = dyn Fn() -> DateTime<Utc> + Send + Sync;

/// The data layer. Cheap to clone; built once per cold start and shared.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    clock: Arc<Clock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend.name()).finish()
    }
}

fn step(stmt: Stmt, params: Vec<Value>) -> Step {
    Step::new(stmt, params)
}

fn decode_rows<T: FromRow>(outcome: StepOutcome) -> DbResult<Vec<T>> {
    match outcome {
        StepOutcome::Rows(rows) => rows.into_iter().map(|mut r| T::from_row(&mut r)).collect(),
        StepOutcome::Affected(_) | StepOutcome::Skipped => Ok(Vec::new()),
    }
}

fn decode_first<T: FromRow>(outcome: StepOutcome) -> DbResult<Option<T>> {
    Ok(decode_rows(outcome)?.into_iter().next())
}

fn affected(outcome: &StepOutcome) -> u64 {
    match outcome {
        StepOutcome::Rows(r) => r.len() as u64,
        StepOutcome::Affected(n) => *n,
        StepOutcome::Skipped => 0,
    }
}

/// A list query fetches one row more than the page to learn whether another page follows.
fn paged<T>(mut rows: Vec<T>, page: PageRequest, index_of: impl Fn(&T) -> i64) -> Page<T> {
    let limit = usize::from(page.limit);
    let next_after = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(&index_of)
    } else {
        None
    };
    Page { items: rows, next_after }
}

fn page_params(tenant: TenantId, page: PageRequest) -> DbResult<Vec<Value>> {
    page.validate()?;
    Ok(vec![tenant.into(), Value::I64(page.after.unwrap_or(0)), Value::I64(i64::from(page.limit) + 1)])
}

impl FromRow for ConnectionLink {
    fn from_row(r: &mut super::value::Row) -> DbResult<Self> {
        Ok(ConnectionLink { link: SharedLink::from_row(r)?, provider_item_id: r.text()? })
    }
}

fn json(v: &Option<serde_json::Value>) -> Value {
    opt(v.as_ref())
}

fn json_patch(v: &Option<Option<serde_json::Value>>) -> [Value; 2] {
    patch(v.as_ref().map(|inner| inner.as_ref()))
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>) -> Store {
        Store { backend, clock: Arc::new(Utc::now) }
    }

    /// Replaces the clock (tests move time; production uses the system clock).
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Store {
        self.clock = Arc::new(clock);
        self
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Now, at the microsecond precision both engines store (cut by the same function that
    /// cuts every timestamp parameter, [`micros`]).
    pub fn now(&self) -> DateTime<Utc> {
        micros((self.clock)())
    }

    async fn run(&self, steps: Vec<Step>) -> DbResult<Vec<StepOutcome>> {
        self.backend.run(steps).await
    }

    async fn single(&self, stmt: Stmt, params: Vec<Value>) -> DbResult<StepOutcome> {
        let mut out = self.run(vec![step(stmt, params)]).await?;
        out.pop().ok_or_else(|| DbError::Corrupt(format!("{stmt} returned no outcome")))
    }

    async fn one<T: FromRow>(&self, stmt: Stmt, params: Vec<Value>) -> DbResult<T> {
        decode_first(self.single(stmt, params).await?)?.ok_or(DbError::NotFound)
    }

    async fn all<T: FromRow>(&self, stmt: Stmt, params: Vec<Value>) -> DbResult<Vec<T>> {
        decode_rows(self.single(stmt, params).await?)
    }

    async fn count(&self, stmt: Stmt, params: Vec<Value>) -> DbResult<u64> {
        Ok(affected(&self.single(stmt, params).await?))
    }

    /// Runs steps in one transaction and decodes the first row of step `at`.
    async fn script_row<T: FromRow>(&self, steps: Vec<Step>, at: usize) -> DbResult<T> {
        let outcome = self
            .run(steps)
            .await?
            .into_iter()
            .nth(at)
            .ok_or_else(|| DbError::Corrupt("transaction returned too few outcomes".into()))?;
        decode_first(outcome)?.ok_or(DbError::NotFound)
    }

    // ---- tenants and users (owned by other schemas; local runs and tests create them) ----

    pub async fn ensure_tenant(&self, id: TenantId, name: &str) -> DbResult<()> {
        self.count(Stmt::TenantEnsure, vec![id.into(), name.into(), self.now().into()]).await?;
        Ok(())
    }

    pub async fn ensure_user(&self, id: UserId, tenant: TenantId, email: Option<&str>) -> DbResult<()> {
        self.count(Stmt::UserEnsure, vec![id.into(), tenant.into(), opt(email), self.now().into()]).await?;
        Ok(())
    }

    // ---- connections ----------------------------------------------------------------

    pub async fn create_connection(&self, new: &NewConnection) -> DbResult<Connection> {
        new.validate()?;
        self.one(
            Stmt::ConnInsert,
            vec![
                Uuid::new_v4().into(),
                new.tenant_id.into(),
                new.user_id.into(),
                new.provider_type.into(),
                new.provider_user_id.clone().into(),
                opt(new.provider_user_email.clone()),
                new.encrypted_access_token.clone().into(),
                opt(new.encrypted_refresh_token.clone()),
                new.token_expiry.into(),
                new.scope.clone().into(),
                new.status.into(),
                opt(new.display_name.clone()),
                json(&new.connection_metadata),
                self.now().into(),
            ],
        )
        .await
    }

    /// Ok when the tenant has, or had, a connection with this id (soft-deleted ones count:
    /// their errors and history are still listed); NotFound otherwise.
    pub async fn known_connection(&self, tenant: TenantId, id: ConnectionId) -> DbResult<()> {
        self.known(Stmt::ConnKnown, tenant, id).await
    }

    /// Ok when the tenant has, or had, a folder with this id; NotFound otherwise.
    pub async fn known_folder(&self, tenant: TenantId, id: FolderId) -> DbResult<()> {
        self.known(Stmt::FolderKnown, tenant, id).await
    }

    /// Ok when the tenant has, or had, a file record with this id; NotFound otherwise.
    pub async fn known_file(&self, tenant: TenantId, id: FileId) -> DbResult<()> {
        self.known(Stmt::FileKnown, tenant, id).await
    }

    async fn known(&self, stmt: Stmt, tenant: TenantId, id: impl Into<Value>) -> DbResult<()> {
        match self.count(stmt, vec![tenant.into(), id.into()]).await? {
            0 => Err(DbError::NotFound),
            _ => Ok(()),
        }
    }

    pub async fn get_connection(&self, tenant: TenantId, id: ConnectionId) -> DbResult<Connection> {
        self.one(Stmt::ConnGet, vec![tenant.into(), id.into()]).await
    }

    pub async fn list_connections(
        &self,
        tenant: TenantId,
        filter: &ConnectionFilter,
        page: PageRequest,
    ) -> DbResult<Page<Connection>> {
        let mut params = page_params(tenant, page)?;
        params.extend([opt(filter.provider_type), opt(filter.status), opt(filter.user_id)]);
        let rows = self.all::<Connection>(Stmt::ConnList, params).await?;
        Ok(paged(rows, page, |c| c.base.index_id))
    }

    pub async fn update_connection(
        &self,
        tenant: TenantId,
        id: ConnectionId,
        p: &ConnectionPatch,
    ) -> DbResult<Connection> {
        p.validate()?;
        let mut params = vec![tenant.into(), id.into(), self.now().into()];
        params.extend(patch(p.display_name.clone()));
        params.extend(json_patch(&p.connection_metadata));
        params.extend(patch_some(p.status));
        params.extend(patch_some(p.last_used_at));
        params.extend(patch_some(p.last_sync_at));
        self.one(Stmt::ConnUpdate, params).await
    }

    /// Marks the connection revoked and deleted, deletes its folders, cancels their live jobs
    /// and deactivates every link into them, in one transaction.
    pub async fn delete_connection(&self, tenant: TenantId, id: ConnectionId) -> DbResult<Connection> {
        let p = || vec![Value::from(tenant), id.into(), self.now().into()];
        self.script_row(
            vec![
                step(Stmt::ConnSoftDelete, p()),
                step(Stmt::ConnCancelJobs, p()).when(When::PrevNonEmpty),
                step(Stmt::ConnDeactivateLinks, p()),
                step(Stmt::ConnSoftDeleteFolders, p()),
            ],
            0,
        )
        .await
    }

    /// One page of the active links into a connection (on its live folders and on files in
    /// them), in index order, each with the provider's id of its item: what disconnecting
    /// removes at the provider before the grant is revoked.
    pub async fn list_connection_links(
        &self,
        tenant: TenantId,
        connection: ConnectionId,
        page: PageRequest,
    ) -> DbResult<Page<ConnectionLink>> {
        let mut params = page_params(tenant, page)?;
        params.push(connection.into());
        let rows = self.all::<ConnectionLink>(Stmt::ConnLinkList, params).await?;
        Ok(paged(rows, page, |l| l.link.base.index_id))
    }

    /// One page of the active links into a live folder (its own and those of files in it), in
    /// index order, each with the provider's id of its item: what deleting the folder removes
    /// at the provider first.
    pub async fn list_folder_links(
        &self,
        tenant: TenantId,
        folder: FolderId,
        page: PageRequest,
    ) -> DbResult<Page<ConnectionLink>> {
        let mut params = page_params(tenant, page)?;
        params.push(folder.into());
        let rows = self.all::<ConnectionLink>(Stmt::FolderLinkList, params).await?;
        Ok(paged(rows, page, |l| l.link.base.index_id))
    }

    /// Active, live connections of every tenant whose token expires before `before`, soonest
    /// first.
    pub async fn scan_connections_expiring(&self, before: DateTime<Utc>, limit: u16) -> DbResult<Vec<Connection>> {
        self.all(Stmt::ConnTokenScan, vec![before.into(), Value::I64(i64::from(limit))]).await
    }

    /// Every connection of every tenant, deleted ones included, in index order (key rotation).
    pub async fn scan_connections(&self, after_index: i64, limit: u16) -> DbResult<Vec<Connection>> {
        self.all(Stmt::ConnScanAll, vec![after_index.into(), Value::I64(i64::from(limit))]).await
    }

    /// Replaces both encrypted tokens if the access token is still `expected_access`;
    /// returns whether it wrote. Someone else's newer write always wins.
    pub async fn swap_connection_tokens(
        &self,
        tenant: TenantId,
        id: ConnectionId,
        expected_access: &[u8],
        access: Vec<u8>,
        refresh: Option<Vec<u8>>,
    ) -> DbResult<bool> {
        let n = self
            .count(
                Stmt::ConnSwapTokens,
                vec![
                    tenant.into(),
                    id.into(),
                    expected_access.to_vec().into(),
                    access.into(),
                    opt(refresh),
                    self.now().into(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// The live connection of one provider account of a user, if there is one.
    pub async fn find_connection_by_account(
        &self,
        tenant: TenantId,
        user: UserId,
        provider: ProviderType,
        provider_user_id: &str,
    ) -> DbResult<Option<Connection>> {
        let params = vec![tenant.into(), user.into(), provider.into(), provider_user_id.to_owned().into()];
        decode_first(self.single(Stmt::ConnGetByAccount, params).await?)
    }

    /// Stores a grant on the account's live row (new tokens, scope, expiry, metadata, active
    /// again; same id) or, when the account has none, on a new row: never a second live row.
    /// `seal` encrypts the tokens for the id the row has or gets, and may be called more than
    /// once when the row changes underneath.
    ///
    /// No MERGE (see `mssql/sql.rs`): read, then update on the condition the row is still
    /// live, else insert. Two callbacks for one account racing to insert meet on the unique
    /// index; the loser goes round once more and updates the winner's row.
    pub async fn upsert_connection(
        &self,
        grant: &ConnectionGrant,
        seal: impl Fn(ConnectionId) -> SealedTokens + Send + Sync,
    ) -> DbResult<UpsertedConnection> {
        const UNIQUE_ACCOUNT: &str = "ix_cloud_connections_tenant_user_provider";
        let (tenant, user, provider) = (grant.tenant_id, grant.user_id, grant.provider_type);
        let as_new = |tokens: SealedTokens| NewConnection {
            tenant_id: tenant,
            user_id: user,
            provider_type: provider,
            provider_user_id: grant.provider_user_id.clone(),
            provider_user_email: grant.provider_user_email.clone(),
            encrypted_access_token: tokens.access,
            encrypted_refresh_token: tokens.refresh,
            token_expiry: grant.token_expiry,
            scope: grant.scope.clone(),
            status: ConnectionStatus::Active,
            display_name: grant.display_name.clone(),
            connection_metadata: grant.connection_metadata.clone(),
        };
        as_new(SealedTokens { access: Vec::new(), refresh: None }).validate()?;
        for attempt in 0..2 {
            if let Some(live) = self.find_connection_by_account(tenant, user, provider, &grant.provider_user_id).await?
            {
                let tokens = seal(live.base.id);
                let mut params = vec![tenant.into(), live.base.id.into(), self.now().into(), tokens.access.into()];
                params.extend(patch(tokens.refresh.map(Some)));
                params.extend([
                    grant.token_expiry.into(),
                    grant.scope.clone().into(),
                    opt(grant.provider_user_email.clone()),
                ]);
                params.extend(patch(grant.display_name.clone().map(Some)));
                params.push(json(&grant.connection_metadata));
                if let Some(connection) = decode_first(self.single(Stmt::ConnReconnect, params).await?)? {
                    return Ok(UpsertedConnection { connection, created: false });
                }
                // Deleted between the read and the update: the key is free, so insert.
            }
            let id = ConnectionId::generate();
            let new = as_new(seal(id));
            match self.insert_connection(id, &new).await {
                Ok(connection) => return Ok(UpsertedConnection { connection, created: true }),
                Err(DbError::Conflict { constraint }) if constraint == UNIQUE_ACCOUNT && attempt == 0 => continue,
                Err(e) => return Err(e),
            }
        }
        Err(DbError::State("the connection of this account changed during the update; try again".into()))
    }

    async fn insert_connection(&self, id: ConnectionId, new: &NewConnection) -> DbResult<Connection> {
        self.one(
            Stmt::ConnInsert,
            vec![
                id.into(),
                new.tenant_id.into(),
                new.user_id.into(),
                new.provider_type.into(),
                new.provider_user_id.clone().into(),
                opt(new.provider_user_email.clone()),
                new.encrypted_access_token.clone().into(),
                opt(new.encrypted_refresh_token.clone()),
                new.token_expiry.into(),
                new.scope.clone().into(),
                new.status.into(),
                opt(new.display_name.clone()),
                json(&new.connection_metadata),
                self.now().into(),
            ],
        )
        .await
    }

    // ---- folders --------------------------------------------------------------------

    fn clear_defaults(
        &self,
        tenant: TenantId,
        connection: ConnectionId,
        keep: FolderId,
        export: bool,
        import: bool,
    ) -> Vec<Step> {
        let p = || vec![Value::from(tenant), connection.into(), keep.into(), self.now().into()];
        let mut steps = Vec::new();
        if export {
            steps.push(step(Stmt::FolderClearDefaultExport, p()));
        }
        if import {
            steps.push(step(Stmt::FolderClearDefaultImport, p()));
        }
        steps
    }

    /// Creates a folder; making it a default folder clears the connection's previous default
    /// in the same transaction. NotFound when the connection is not active and live: the
    /// transaction first takes the connection's row lock with a no-op UPDATE that matches
    /// only an active, live connection, and inserts only if it matched, so a revoke or delete
    /// in flight is waited for and seen even under snapshot reads (see mssql/sql.rs).
    pub async fn create_folder(&self, new: &NewFolder) -> DbResult<Folder> {
        new.validate()?;
        let id = FolderId::generate();
        let lock = || step(Stmt::FolderLockConnection, vec![new.tenant_id.into(), new.connection_id.into()]);
        let mut steps = vec![lock()];
        let clears = self.clear_defaults(
            new.tenant_id,
            new.connection_id,
            id,
            new.is_default_export_folder,
            new.is_default_import_folder,
        );
        if !clears.is_empty() {
            // The insert is conditional on the step just before it: take the (already held)
            // lock again after the clears so that step is the connection check.
            steps.extend(clears);
            steps.push(lock());
        }
        let at = steps.len();
        steps.push(
            step(
                Stmt::FolderInsert,
                vec![
                    id.into(),
                    new.tenant_id.into(),
                    new.connection_id.into(),
                    new.folder_name.clone().into(),
                    new.provider_folder_id.clone().into(),
                    opt(new.folder_path.clone()),
                    new.folder_type.into(),
                    new.is_default_export_folder.into(),
                    new.is_default_import_folder.into(),
                    new.auto_sync_enabled.into(),
                    opt(new.sync_frequency_minutes),
                    new.folder_permissions.into(),
                    self.now().into(),
                ],
            )
            .when(When::PrevNonEmpty),
        );
        self.script_row(steps, at).await
    }

    pub async fn get_folder(&self, tenant: TenantId, id: FolderId) -> DbResult<Folder> {
        self.one(Stmt::FolderGet, vec![tenant.into(), id.into()]).await
    }

    pub async fn list_folders(
        &self,
        tenant: TenantId,
        filter: &FolderFilter,
        page: PageRequest,
    ) -> DbResult<Page<Folder>> {
        let mut params = page_params(tenant, page)?;
        params.extend([opt(filter.connection_id), opt(filter.folder_type)]);
        let rows = self.all::<Folder>(Stmt::FolderList, params).await?;
        Ok(paged(rows, page, |f| f.base.index_id))
    }

    pub async fn update_folder(&self, tenant: TenantId, id: FolderId, p: &FolderPatch) -> DbResult<Folder> {
        p.validate()?;
        let becomes_export = p.is_default_export_folder == Some(true);
        let becomes_import = p.is_default_import_folder == Some(true);
        let mut steps = Vec::new();
        if becomes_export || becomes_import {
            // The connection comes from the tenant-scoped read (a folder never changes
            // connection), so another tenant's folder id clears nothing: it is NotFound here.
            let folder = self.get_folder(tenant, id).await?;
            steps = self.clear_defaults(tenant, folder.connection_id, id, becomes_export, becomes_import);
        }
        let at = steps.len();
        let mut params = vec![tenant.into(), id.into(), self.now().into()];
        params.extend(patch_some(p.folder_name.clone()));
        params.extend(patch(p.folder_path.clone()));
        params.extend(patch_some(p.folder_type));
        params.extend(patch_some(p.is_default_export_folder));
        params.extend(patch_some(p.is_default_import_folder));
        params.extend(patch_some(p.auto_sync_enabled));
        params.extend(patch(p.sync_frequency_minutes));
        params.extend(patch_some(p.folder_permissions));
        params.extend(patch(p.last_sync_at));
        steps.push(step(Stmt::FolderUpdate, params));
        self.script_row(steps, at).await
    }

    /// Deletes the folder, cancels its live jobs and deactivates links into it.
    pub async fn delete_folder(&self, tenant: TenantId, id: FolderId) -> DbResult<Folder> {
        let p = || vec![Value::from(tenant), id.into(), self.now().into()];
        self.script_row(
            vec![
                step(Stmt::FolderSoftDelete, p()),
                step(Stmt::FolderCancelJobs, p()).when(When::PrevNonEmpty),
                step(Stmt::FolderDeactivateLinks, p()),
            ],
            0,
        )
        .await
    }

    // ---- sync jobs --------------------------------------------------------------------

    /// Creates a pending job. A second live job for the same folder is a Conflict on
    /// `ix_cloud_sync_jobs_folder_live`. NotFound when the folder is deleted or its connection
    /// is not active and live: the transaction first takes the row locks of the connection,
    /// then the folder (delete_connection's order) with no-op UPDATEs that match only live
    /// rows, and inserts only if both matched, so a delete or revoke in flight is waited for
    /// and seen even under snapshot reads (see mssql/sql.rs).
    pub async fn create_job(&self, new: &NewSyncJob) -> DbResult<SyncJob> {
        let p = || vec![Value::from(new.tenant_id), new.folder_id.into()];
        self.script_row(
            vec![
                step(Stmt::JobLockConnection, p()),
                step(Stmt::JobLockFolder, p()).when(When::PrevNonEmpty),
                step(
                    Stmt::JobInsert,
                    vec![
                        Uuid::new_v4().into(),
                        new.tenant_id.into(),
                        new.folder_id.into(),
                        opt(new.initiated_by_user_id),
                        new.job_type.into(),
                        json(&new.job_metadata),
                        self.now().into(),
                    ],
                )
                .when(When::PrevNonEmpty),
            ],
            2,
        )
        .await
    }

    pub async fn get_job(&self, tenant: TenantId, id: JobId) -> DbResult<SyncJob> {
        self.one(Stmt::JobGet, vec![tenant.into(), id.into()]).await
    }

    pub async fn list_jobs(
        &self,
        tenant: TenantId,
        filter: &SyncJobFilter,
        page: PageRequest,
    ) -> DbResult<Page<SyncJob>> {
        let mut params = page_params(tenant, page)?;
        params.extend([opt(filter.folder_id), opt(filter.status)]);
        let rows = self.all::<SyncJob>(Stmt::JobList, params).await?;
        Ok(paged(rows, page, |j| j.base.index_id))
    }

    /// Applies a transition and/or progress report. Without a status it reports progress on a
    /// running job. The write is conditional on the status the job was read in, so two
    /// racing updates cannot both apply; completion stamps last_sync_at on the folder and
    /// its connection in the same transaction.
    pub async fn update_job(&self, tenant: TenantId, id: JobId, u: &JobUpdate) -> DbResult<SyncJob> {
        let current = self.get_job(tenant, id).await?;
        let target = u.status.unwrap_or(current.status);
        if !current.status.can_become(target) {
            return Err(DbError::State(format!("a {} job cannot become {}", current.status.as_str(), target.as_str())));
        }
        let now = self.now();
        let mut params = vec![tenant.into(), id.into(), current.status.into(), now.into(), target.into()];
        params.extend(patch_some(u.progress_percentage));
        params.extend(patch_some(u.files_processed));
        params.extend(patch(u.files_total));
        params.extend(patch_some(u.bytes_transferred));
        params.extend(patch(u.error_message.clone()));
        params.extend(json_patch(&u.job_metadata));
        let mut steps = vec![step(Stmt::JobUpdate, params)];
        if target == JobStatus::Completed {
            let p = || vec![Value::from(tenant), current.folder_id.into(), now.into()];
            steps.push(step(Stmt::JobTouchFolder, p()).when(When::PrevNonEmpty));
            steps.push(step(Stmt::JobTouchConnection, p()).when(When::PrevNonEmpty));
        }
        match self.script_row(steps, 0).await {
            Err(DbError::NotFound) => {
                let now_status = self.get_job(tenant, id).await?.status;
                Err(DbError::State(format!("the job changed while updating: it is now {}", now_status.as_str())))
            }
            other => other,
        }
    }

    pub async fn delete_job(&self, tenant: TenantId, id: JobId) -> DbResult<SyncJob> {
        self.one(Stmt::JobSoftDelete, vec![tenant.into(), id.into(), self.now().into()]).await
    }

    /// Pending jobs of every tenant, oldest first.
    pub async fn scan_jobs_pending(&self, limit: u16) -> DbResult<Vec<SyncJob>> {
        self.all(Stmt::JobPendingScan, vec![Value::I64(i64::from(limit))]).await
    }

    /// Running jobs of every tenant with no update since `updated_before`.
    pub async fn scan_jobs_stale(&self, updated_before: DateTime<Utc>, limit: u16) -> DbResult<Vec<SyncJob>> {
        self.all(Stmt::JobStaleScan, vec![updated_before.into(), Value::I64(i64::from(limit))]).await
    }

    // ---- files ------------------------------------------------------------------------

    pub async fn create_file(&self, new: &NewCloudFile) -> DbResult<CloudFile> {
        new.validate()?;
        self.one(
            Stmt::FileInsert,
            vec![
                Uuid::new_v4().into(),
                new.tenant_id.into(),
                new.folder_id.into(),
                new.quodsi_file_type.into(),
                opt(new.quodsi_entity_id),
                new.provider_file_id.clone().into(),
                new.file_name.clone().into(),
                opt(new.file_path.clone()),
                new.file_size_bytes.into(),
                opt(new.content_hash.clone()),
                opt(new.mime_type.clone()),
                opt(new.cloud_created_at),
                opt(new.cloud_modified_at),
                opt(new.last_synced_at),
                new.sync_status.into(),
                opt(new.upload_url.clone()),
                opt(new.download_url.clone()),
                json(&new.file_metadata),
                self.now().into(),
            ],
        )
        .await
    }

    pub async fn get_file(&self, tenant: TenantId, id: FileId) -> DbResult<CloudFile> {
        self.one(Stmt::FileGet, vec![tenant.into(), id.into()]).await
    }

    pub async fn list_files(
        &self,
        tenant: TenantId,
        filter: &CloudFileFilter,
        page: PageRequest,
    ) -> DbResult<Page<CloudFile>> {
        let mut params = page_params(tenant, page)?;
        params.extend([
            opt(filter.folder_id),
            opt(filter.quodsi_file_type),
            opt(filter.sync_status),
            opt(filter.quodsi_entity_id),
        ]);
        let rows = self.all::<CloudFile>(Stmt::FileList, params).await?;
        Ok(paged(rows, page, |f| f.base.index_id))
    }

    pub async fn update_file(&self, tenant: TenantId, id: FileId, p: &CloudFilePatch) -> DbResult<CloudFile> {
        p.validate()?;
        let mut params = vec![tenant.into(), id.into(), self.now().into()];
        params.extend(patch_some(p.file_name.clone()));
        params.extend(patch(p.file_path.clone()));
        params.extend(patch_some(p.file_size_bytes));
        params.extend(patch(p.content_hash.clone()));
        params.extend(patch(p.mime_type.clone()));
        params.extend(patch(p.cloud_modified_at));
        params.extend(patch(p.last_synced_at));
        params.extend(patch_some(p.sync_status));
        params.extend(patch(p.upload_url.clone()));
        params.extend(patch(p.download_url.clone()));
        params.extend(json_patch(&p.file_metadata));
        self.one(Stmt::FileUpdate, params).await
    }

    /// Deletes the file record and deactivates links to it.
    pub async fn delete_file(&self, tenant: TenantId, id: FileId) -> DbResult<CloudFile> {
        let p = || vec![Value::from(tenant), id.into(), self.now().into()];
        self.script_row(
            vec![step(Stmt::FileSoftDelete, p()), step(Stmt::FileDeactivateLinks, p()).when(When::PrevNonEmpty)],
            0,
        )
        .await
    }

    // ---- shared links -----------------------------------------------------------------

    pub async fn create_link(&self, new: &NewSharedLink) -> DbResult<SharedLink> {
        new.validate()?;
        self.one(
            Stmt::LinkInsert,
            vec![
                Uuid::new_v4().into(),
                new.tenant_id.into(),
                new.created_by_user_id.into(),
                new.resource_type.into(),
                opt(new.file_id),
                opt(new.folder_id),
                opt(new.provider_share_id.clone()),
                new.share_url.clone().into(),
                new.share_type.into(),
                new.password_protected.into(),
                opt(new.expires_at),
                self.now().into(),
            ],
        )
        .await
    }

    pub async fn get_link(&self, tenant: TenantId, id: LinkId) -> DbResult<SharedLink> {
        self.one(Stmt::LinkGet, vec![tenant.into(), id.into()]).await
    }

    /// The link behind the public redirect, whichever tenant owns it.
    pub async fn get_link_public(&self, id: LinkId) -> DbResult<SharedLink> {
        self.one(Stmt::LinkGetPublic, vec![id.into()]).await
    }

    pub async fn list_links(
        &self,
        tenant: TenantId,
        filter: &SharedLinkFilter,
        page: PageRequest,
    ) -> DbResult<Page<SharedLink>> {
        let mut params = page_params(tenant, page)?;
        params.extend([opt(filter.file_id), opt(filter.folder_id), opt(filter.is_active)]);
        let rows = self.all::<SharedLink>(Stmt::LinkList, params).await?;
        Ok(paged(rows, page, |l| l.base.index_id))
    }

    /// Counts one access of an active, unexpired link atomically and returns it; NotFound
    /// when the link is inactive, expired, deleted or unknown.
    pub async fn record_link_access(&self, id: LinkId) -> DbResult<SharedLink> {
        self.one(Stmt::LinkRecordAccess, vec![id.into(), self.now().into()]).await
    }

    pub async fn deactivate_link(&self, tenant: TenantId, id: LinkId) -> DbResult<SharedLink> {
        self.one(Stmt::LinkDeactivate, vec![tenant.into(), id.into(), self.now().into()]).await
    }

    pub async fn delete_link(&self, tenant: TenantId, id: LinkId) -> DbResult<SharedLink> {
        self.one(Stmt::LinkSoftDelete, vec![tenant.into(), id.into(), self.now().into()]).await
    }

    /// Active links of every tenant whose expires_at is at or before `now`, oldest first.
    pub async fn scan_links_expired(&self, now: DateTime<Utc>, limit: u16) -> DbResult<Vec<SharedLink>> {
        self.all(Stmt::LinkExpiredScan, vec![now.into(), Value::I64(i64::from(limit))]).await
    }

    /// Deactivates an expired link if it is still active; true if this call did it.
    pub async fn expire_link(&self, id: LinkId) -> DbResult<bool> {
        Ok(self.count(Stmt::LinkExpire, vec![id.into(), self.now().into()]).await? == 1)
    }

    // ---- sync errors ------------------------------------------------------------------

    pub async fn create_error(&self, new: &NewSyncError) -> DbResult<SyncError> {
        new.validate()?;
        self.one(
            Stmt::ErrorInsert,
            vec![
                Uuid::new_v4().into(),
                new.tenant_id.into(),
                opt(new.sync_job_id),
                new.connection_id.into(),
                opt(new.file_id),
                new.error_type.into(),
                opt(new.error_code.clone()),
                new.error_message.clone().into(),
                opt(new.stack_trace.clone()),
                json(&new.error_metadata),
                self.now().into(),
            ],
        )
        .await
    }

    pub async fn get_error(&self, tenant: TenantId, id: SyncErrorId) -> DbResult<SyncError> {
        self.one(Stmt::ErrorGet, vec![tenant.into(), id.into()]).await
    }

    pub async fn list_errors(
        &self,
        tenant: TenantId,
        filter: &SyncErrorFilter,
        page: PageRequest,
    ) -> DbResult<Page<SyncError>> {
        let mut params = page_params(tenant, page)?;
        params.extend([opt(filter.connection_id), opt(filter.error_type), filter.unresolved.into()]);
        let rows = self.all::<SyncError>(Stmt::ErrorList, params).await?;
        Ok(paged(rows, page, |e| e.base.index_id))
    }

    /// Resolves an open error; resolving twice is a State error, an unknown id NotFound.
    pub async fn resolve_error(&self, tenant: TenantId, id: SyncErrorId, notes: Option<&str>) -> DbResult<SyncError> {
        match self.one(Stmt::ErrorResolve, vec![tenant.into(), id.into(), opt(notes), self.now().into()]).await {
            Err(DbError::NotFound) => {
                self.get_error(tenant, id).await?;
                Err(DbError::State("the error is already resolved".into()))
            }
            other => other,
        }
    }

    pub async fn delete_error(&self, tenant: TenantId, id: SyncErrorId) -> DbResult<SyncError> {
        self.one(Stmt::ErrorSoftDelete, vec![tenant.into(), id.into(), self.now().into()]).await
    }
}
