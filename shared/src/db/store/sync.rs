//! Store operations of the sync worker: change cursors, the lease on a job, files as a sync
//! run finds them, and the marks that defer deletions to the end of a run (the mass-delete
//! guard decides then whether they apply).
//!
//! Every write to a running job names the lease that claimed it: a worker whose lease ran out
//! (it stalled, and another delivery of the message claimed the job) can no longer write.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, decode_first, json, step};
use crate::db::backend::When;
use crate::db::enums::JobStatus;
use crate::db::error::{DbError, DbResult};
use crate::db::model::*;
use crate::db::stmt::Stmt;
use crate::db::value::{FromRow, Row, Value, opt};

impl FromRow for SyncCursor {
    fn from_row(r: &mut Row) -> Result<Self, DbError> {
        Ok(SyncCursor {
            base: Base::from_row(r)?,
            connection_id: r.uuid()?.into(),
            folder_id: r.opt_uuid()?.map(Into::into),
            cursor_kind: r.parsed()?,
            cursor_value: r.text()?,
            folder_map: r.opt_json()?,
            last_polled_at: r.opt_ts()?,
        })
    }
}

impl FromRow for SyncSubscription {
    fn from_row(r: &mut Row) -> Result<Self, DbError> {
        Ok(SyncSubscription {
            base: Base::from_row(r)?,
            connection_id: r.uuid()?.into(),
            folder_id: r.opt_uuid()?.map(Into::into),
            subscription_kind: r.parsed()?,
            provider_subscription_id: r.text()?,
            provider_resource: r.opt_text()?,
            encrypted_secret: r.opt_bytes()?,
            expires_at: r.opt_ts()?,
            last_notified_at: r.opt_ts()?,
            last_message_number: r.opt_i64()?,
        })
    }
}

/// A `COUNT(*)`.
struct Count(i64);

impl FromRow for Count {
    fn from_row(r: &mut Row) -> Result<Self, DbError> {
        Ok(Count(r.i64()?))
    }
}

fn limit(n: u16) -> Value {
    Value::I64(i64::from(n))
}

/// `LIKE` pattern of everything below `path` (`path/…`), its wildcards escaped with `\`.
fn below(path: &str) -> String {
    let mut pattern = String::with_capacity(path.len() + 3);
    for c in path.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str("/%");
    pattern
}

impl Store {
    // ---- cursors ------------------------------------------------------------------------

    /// The live cursor of a scope, if one is kept.
    pub async fn get_cursor(
        &self,
        tenant: TenantId,
        connection: ConnectionId,
        folder: Option<FolderId>,
        kind: crate::db::CursorKind,
    ) -> DbResult<Option<SyncCursor>> {
        let params = vec![tenant.into(), connection.into(), opt(folder), kind.into()];
        decode_first(self.single(Stmt::CursorGet, params).await?)
    }

    /// Keeps `cursor` as its scope's cursor: replaces the live one, or makes it.
    pub async fn put_cursor(&self, cursor: &NewSyncCursor) -> DbResult<()> {
        let now = self.now();
        let c = cursor;
        let map = json(&c.folder_map);
        let scope = || vec![Value::from(c.tenant_id), c.connection_id.into(), opt(c.folder_id), c.cursor_kind.into()];
        let mut update = scope();
        update.extend([now.into(), c.cursor_value.clone().into(), map.clone(), opt(c.last_polled_at)]);
        let insert = vec![
            Uuid::new_v4().into(),
            c.tenant_id.into(),
            c.connection_id.into(),
            opt(c.folder_id),
            c.cursor_kind.into(),
            c.cursor_value.clone().into(),
            map,
            opt(c.last_polled_at),
            now.into(),
        ];
        self.run(vec![step(Stmt::CursorUpdate, update), step(Stmt::CursorInsert, insert).when(When::PrevEmpty)])
            .await?;
        Ok(())
    }

    // ---- change subscriptions -----------------------------------------------------------

    /// Records a subscription made at a provider.
    pub async fn create_subscription(&self, new: &NewSyncSubscription) -> DbResult<SyncSubscription> {
        let params = vec![
            Uuid::new_v4().into(),
            new.tenant_id.into(),
            new.connection_id.into(),
            opt(new.folder_id),
            new.subscription_kind.into(),
            new.provider_subscription_id.clone().into(),
            opt(new.provider_resource.clone()),
            opt(new.encrypted_secret.clone()),
            opt(new.expires_at),
            self.now().into(),
        ];
        self.one(Stmt::SubscriptionInsert, params).await
    }

    /// The live subscription a notification names, whatever its tenant: the notification is
    /// authenticated against the row before anything is believed.
    pub async fn find_subscription(
        &self,
        kind: crate::db::SubscriptionKind,
        provider_subscription_id: &str,
    ) -> DbResult<Option<SyncSubscription>> {
        let params = vec![kind.into(), provider_subscription_id.to_owned().into()];
        decode_first(self.single(Stmt::SubscriptionByProviderId, params).await?)
    }

    pub async fn subscriptions_of_connection(
        &self,
        tenant: TenantId,
        connection: ConnectionId,
    ) -> DbResult<Vec<SyncSubscription>> {
        self.all(Stmt::SubscriptionsOfConnection, vec![tenant.into(), connection.into()]).await
    }

    /// Notes an authentic notification on the subscription.
    pub async fn subscription_notified(&self, tenant: TenantId, id: Uuid) -> DbResult<()> {
        self.single(Stmt::SubscriptionNotified, vec![tenant.into(), id.into(), self.now().into()]).await?;
        Ok(())
    }

    /// Accepts message `number` of a Drive channel if it is above every number accepted
    /// before (and notes the notification); false: a replayed or late message.
    pub async fn subscription_message(&self, tenant: TenantId, id: Uuid, number: i64) -> DbResult<bool> {
        let params = vec![tenant.into(), id.into(), self.now().into(), Value::I64(number)];
        Ok(self.count(Stmt::SubscriptionMessage, params).await? == 1)
    }

    pub async fn delete_subscription(&self, tenant: TenantId, id: Uuid) -> DbResult<()> {
        self.single(Stmt::SubscriptionSoftDelete, vec![tenant.into(), id.into(), self.now().into()]).await?;
        Ok(())
    }

    /// Live subscriptions that expire before `before`, soonest first, of every tenant.
    pub async fn subscriptions_due(&self, before: DateTime<Utc>, max: u16) -> DbResult<Vec<SyncSubscription>> {
        self.all(Stmt::SubscriptionDueScan, vec![before.into(), limit(max)]).await
    }

    /// Records a renewal: the provider's (possibly new) id and resource, the secret, the expiry.
    pub async fn renew_subscription(&self, tenant: TenantId, id: Uuid, renewed: &NewSyncSubscription) -> DbResult<()> {
        let params = vec![
            tenant.into(),
            id.into(),
            self.now().into(),
            renewed.provider_subscription_id.clone().into(),
            opt(renewed.provider_resource.clone()),
            opt(renewed.encrypted_secret.clone()),
            opt(renewed.expires_at),
        ];
        self.single(Stmt::SubscriptionRenew, params).await?;
        Ok(())
    }

    /// Live subscriptions holding a secret with `index_id > after_index`, every tenant, in
    /// index order (the key rotation's scan).
    pub async fn scan_subscription_secrets(&self, after_index: i64, max: u16) -> DbResult<Vec<SyncSubscription>> {
        self.all(Stmt::SubscriptionSecretScan, vec![Value::I64(after_index), limit(max)]).await
    }

    /// Replaces a subscription's secret ciphertext if it is still `expected`; true if it did.
    pub async fn swap_subscription_secret(
        &self,
        tenant: TenantId,
        id: Uuid,
        expected: &[u8],
        secret: Vec<u8>,
    ) -> DbResult<bool> {
        let params = vec![tenant.into(), id.into(), self.now().into(), expected.to_vec().into(), secret.into()];
        Ok(!self.single(Stmt::SubscriptionSwapSecret, params).await?.is_empty())
    }

    /// The live, active connections of one provider account, across tenants (at most `max`):
    /// a Dropbox notification names the account, and every tenant that connected it syncs.
    pub async fn connections_of_account(
        &self,
        provider: crate::db::ProviderType,
        provider_user_id: &str,
        max: u16,
    ) -> DbResult<Vec<Connection>> {
        let params = vec![provider.into(), provider_user_id.to_owned().into(), limit(max)];
        self.all(Stmt::ConnectionsOfAccount, params).await
    }

    // ---- job leases ---------------------------------------------------------------------

    /// Claims a job for a worker until `lease_until`: a pending job, or a running one whose
    /// lease ran out (its worker stalled or stopped). `None` when it is neither (another
    /// worker holds it, or it ended, was cancelled or deleted).
    pub async fn claim_job(
        &self,
        tenant: TenantId,
        id: JobId,
        lease_until: DateTime<Utc>,
    ) -> DbResult<Option<JobLease>> {
        let lease_id = Uuid::new_v4();
        let params = vec![tenant.into(), id.into(), self.now().into(), lease_id.into(), lease_until.into()];
        let job: Option<SyncJob> = decode_first(self.single(Stmt::JobClaim, params).await?)?;
        Ok(job.map(|job| JobLease { job, lease_id }))
    }

    /// Renews the lease and records progress and the checkpoint. False when the lease is no
    /// longer this worker's (the job was cancelled, failed by the reaper, or claimed again).
    pub async fn heartbeat_job(&self, lease: &JobLease, progress: &JobProgress) -> DbResult<bool> {
        let job = &lease.job;
        let params = vec![
            job.base.tenant_id.into(),
            job.base.id.into(),
            lease.lease_id.into(),
            self.now().into(),
            progress.lease_until.into(),
            progress.progress_percentage.into(),
            progress.files_processed.into(),
            opt(progress.files_total),
            progress.bytes_transferred.into(),
            json(&progress.job_metadata),
        ];
        Ok(self.count(Stmt::JobHeartbeat, params).await? == 1)
    }

    /// Gives the lease up without ending the job: the next delivery of its message claims it
    /// at once and goes on from the checkpoint.
    pub async fn release_job(&self, lease: &JobLease) -> DbResult<bool> {
        let job = &lease.job;
        let params = vec![job.base.tenant_id.into(), job.base.id.into(), lease.lease_id.into(), self.now().into()];
        Ok(self.count(Stmt::JobRelease, params).await? == 1)
    }

    /// Ends a running job under its lease: completed (stamping the folder's and connection's
    /// `last_sync_at` in the same transaction) or failed with a message. `NotFound` when the
    /// lease is no longer this worker's.
    pub async fn end_job(&self, lease: &JobLease, status: JobStatus, error_message: Option<&str>) -> DbResult<SyncJob> {
        if !matches!(status, JobStatus::Completed | JobStatus::Failed) {
            return Err(DbError::State(format!("a worker ends a job completed or failed, not {status}")));
        }
        let job = &lease.job;
        let now = self.now();
        let (tenant, id) = (job.base.tenant_id, job.base.id);
        let mut steps = vec![step(
            Stmt::JobEnd,
            vec![tenant.into(), id.into(), lease.lease_id.into(), now.into(), status.into(), opt(error_message)],
        )];
        if status == JobStatus::Completed {
            let p = || vec![Value::from(tenant), job.folder_id.into(), now.into()];
            steps.push(step(Stmt::JobTouchFolder, p()).when(When::PrevNonEmpty));
            steps.push(step(Stmt::JobTouchConnection, p()).when(When::PrevNonEmpty));
        }
        self.script_row(steps, 0).await
    }

    /// Notes that the job's message was sent to the queue now.
    pub async fn mark_dispatched(&self, tenant: TenantId, id: JobId) -> DbResult<()> {
        self.count(Stmt::JobDispatched, vec![tenant.into(), id.into(), self.now().into()]).await?;
        Ok(())
    }

    /// Jobs whose message may have been lost: pending ones created before `before` whose
    /// message was never sent or last sent before it, then running ones whose lease ran out
    /// before it and whose message was not sent since; at most `max` in all.
    pub async fn scan_jobs_to_dispatch(&self, before: DateTime<Utc>, max: u16) -> DbResult<Vec<SyncJob>> {
        let mut jobs: Vec<SyncJob> = self.all(Stmt::JobUndispatchedScan, vec![before.into(), limit(max)]).await?;
        let left = max.saturating_sub(u16::try_from(jobs.len()).unwrap_or(u16::MAX));
        if left > 0 {
            jobs.extend(self.all::<SyncJob>(Stmt::JobLeaseExpiredScan, vec![before.into(), limit(left)]).await?);
        }
        Ok(jobs)
    }

    // ---- files as synced ----------------------------------------------------------------

    /// The folder's live file with this provider id.
    pub async fn get_file_by_provider_id(
        &self,
        tenant: TenantId,
        folder: FolderId,
        provider_file_id: &str,
    ) -> DbResult<Option<CloudFile>> {
        let params = vec![tenant.into(), folder.into(), provider_file_id.into()];
        decode_first(self.single(Stmt::FileGetByProvider, params).await?)
    }

    /// Writes a sync's view of a file on its folder's live row of that provider id (clearing a
    /// pending delete: the file is there after all), or makes the row.
    pub async fn upsert_synced_file(&self, f: &SyncedFile) -> DbResult<()> {
        f.validate()?;
        let now = self.now();
        let update = vec![
            f.tenant_id.into(),
            f.folder_id.into(),
            f.provider_file_id.clone().into(),
            now.into(),
            f.file_name.clone().into(),
            opt(f.file_path.clone()),
            f.file_size_bytes.into(),
            opt(f.content_hash.clone()),
            opt(f.mime_type.clone()),
            opt(f.cloud_created_at),
            opt(f.cloud_modified_at),
            f.sync_status.into(),
            json(&f.file_metadata),
            opt(f.seen_by_job_id),
        ];
        let insert = vec![
            Uuid::new_v4().into(),
            f.tenant_id.into(),
            f.folder_id.into(),
            f.quodsi_file_type.into(),
            f.provider_file_id.clone().into(),
            f.file_name.clone().into(),
            opt(f.file_path.clone()),
            f.file_size_bytes.into(),
            opt(f.content_hash.clone()),
            opt(f.mime_type.clone()),
            opt(f.cloud_created_at),
            opt(f.cloud_modified_at),
            f.sync_status.into(),
            json(&f.file_metadata),
            opt(f.seen_by_job_id),
            now.into(),
        ];
        self.run(vec![step(Stmt::FileSyncUpdate, update), step(Stmt::FileSyncInsert, insert).when(When::PrevEmpty)])
            .await?;
        Ok(())
    }

    /// Marks the folder's live file with this provider id for deletion by `job`.
    pub async fn mark_file_deleted(
        &self,
        tenant: TenantId,
        folder: FolderId,
        provider_file_id: &str,
        job: JobId,
    ) -> DbResult<u64> {
        let params = vec![tenant.into(), folder.into(), provider_file_id.into(), job.into(), self.now().into()];
        self.count(Stmt::FileMarkDeleteById, params).await
    }

    /// Marks the folder's live files at `path` (under the folder, compared lower-cased) or
    /// below it for deletion by `job`: a deleted folder takes its files with it.
    pub async fn mark_path_deleted(&self, tenant: TenantId, folder: FolderId, path: &str, job: JobId) -> DbResult<u64> {
        let lower = path.to_lowercase();
        let params = vec![
            tenant.into(),
            folder.into(),
            lower.clone().into(),
            below(&lower).into(),
            job.into(),
            self.now().into(),
        ];
        self.count(Stmt::FileMarkDeleteByPath, params).await
    }

    /// Marks the folder's live files that `job`'s full listing did not see for deletion by it.
    pub async fn mark_unseen_deleted(&self, tenant: TenantId, folder: FolderId, job: JobId) -> DbResult<u64> {
        self.count(Stmt::FileMarkUnseen, vec![tenant.into(), folder.into(), job.into(), self.now().into()]).await
    }

    /// How many live files the folder has.
    pub async fn count_live_files(&self, tenant: TenantId, folder: FolderId) -> DbResult<u64> {
        let count: Count = self.one(Stmt::FileCountLive, vec![tenant.into(), folder.into()]).await?;
        Ok(u64::try_from(count.0).unwrap_or(0))
    }

    /// How many live files of the folder `job` marked for deletion.
    pub async fn count_marked_deleted(&self, tenant: TenantId, folder: FolderId, job: JobId) -> DbResult<u64> {
        let count: Count = self.one(Stmt::FileCountDeleting, vec![tenant.into(), folder.into(), job.into()]).await?;
        Ok(u64::try_from(count.0).unwrap_or(0))
    }

    /// Applies `job`'s deletion marks in one transaction: the files' links are deactivated and
    /// the files soft-deleted. Returns how many files.
    pub async fn apply_marked_deletes(&self, tenant: TenantId, folder: FolderId, job: JobId) -> DbResult<u64> {
        let p = || vec![Value::from(tenant), folder.into(), job.into(), self.now().into()];
        let out =
            self.run(vec![step(Stmt::FileDeactivateDeletingLinks, p()), step(Stmt::FileApplyDeletes, p())]).await?;
        Ok(out.last().map(super::affected).unwrap_or(0))
    }

    /// Drops `job`'s deletion marks: the mass-delete guard refused them.
    pub async fn clear_marked_deletes(&self, tenant: TenantId, folder: FolderId, job: JobId) -> DbResult<u64> {
        self.count(Stmt::FileClearDeleting, vec![tenant.into(), folder.into(), job.into(), self.now().into()]).await
    }

    /// Puts the folder's live files whose last download failed back in line for one (a sync
    /// retries what the previous one could not fetch). Returns how many.
    pub async fn retry_failed_files(&self, tenant: TenantId, folder: FolderId) -> DbResult<u64> {
        self.count(Stmt::FileRetryFailed, vec![tenant.into(), folder.into(), self.now().into()]).await
    }

    /// One page of the folder's live files waiting for a download, in index order after
    /// `after`.
    pub async fn list_files_to_download(
        &self,
        tenant: TenantId,
        folder: FolderId,
        after: i64,
        max: u16,
    ) -> DbResult<Vec<CloudFile>> {
        let params = vec![tenant.into(), folder.into(), Value::I64(after), limit(max)];
        self.all(Stmt::FileNeedsDownloadScan, params).await
    }
}

#[cfg(test)]
mod tests {
    use super::below;

    #[test]
    fn paths_below_a_folder_escape_like_wildcards() {
        assert_eq!(below("scenarios"), "scenarios/%");
        assert_eq!(below("a_b%c\\d"), "a\\_b\\%c\\\\d/%");
    }
}
