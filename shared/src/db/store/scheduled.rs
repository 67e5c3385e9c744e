//! Store operations of the scheduled functions. They cross tenants on purpose (a scan finds
//! due rows of every tenant); each write then names the row's own tenant.
//!
//! Every claim is a conditional write on what was read, so overlapping invocations divide the
//! work between them instead of doing it twice.

use chrono::{DateTime, Utc};

use super::{Store, affected, decode_first, json, step};
use crate::db::backend::When;
use crate::db::enums::ConnectionStatus;
use crate::db::error::{DbError, DbResult};
use crate::db::model::*;
use crate::db::stmt::Stmt;
use crate::db::value::{FromRow, Row, Value, opt, patch_some};

impl FromRow for RefreshCandidate {
    fn from_row(r: &mut Row) -> Result<Self, DbError> {
        Ok(RefreshCandidate {
            connection: Connection::from_row(r)?,
            token_refreshed_at: r.opt_ts()?,
            refresh_not_before: r.opt_ts()?,
            refresh_failures: r.i32()?,
            refresh_error_id: r.opt_uuid()?.map(SyncErrorId),
        })
    }
}

/// One `sync_frequency_minutes` value.
struct Frequency(i32);

impl FromRow for Frequency {
    fn from_row(r: &mut Row) -> Result<Self, DbError> {
        Ok(Frequency(r.i32()?))
    }
}

fn limit(n: usize) -> Value {
    Value::I64(i64::try_from(n).unwrap_or(i64::MAX))
}

fn error_insert(store: &Store, id: SyncErrorId, new: &NewSyncError) -> DbResult<crate::db::backend::Step> {
    new.validate()?;
    Ok(step(
        Stmt::ErrorInsert,
        vec![
            id.into(),
            new.tenant_id.into(),
            opt(new.sync_job_id),
            new.connection_id.into(),
            opt(new.file_id),
            new.error_type.into(),
            opt(new.error_code.clone()),
            new.error_message.clone().into(),
            opt(new.stack_trace.clone()),
            json(&new.error_metadata),
            store.now().into(),
        ],
    ))
}

impl Store {
    // ---- token refresh ----------------------------------------------------------------

    /// Active connections whose access token expires before `before`, soonest first, leaving
    /// out those held off (claimed by a running refresh, or backing off) past `now`.
    pub async fn scan_refresh_due(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        max: u16,
    ) -> DbResult<Vec<RefreshCandidate>> {
        self.all(Stmt::ConnRefreshDueScan, vec![before.into(), now.into(), limit(max.into())]).await
    }

    /// Active connections whose refresh token was last used at or before `cutoff` (never
    /// refreshed: created at or before it), leaving out those held off past `now`.
    pub async fn scan_keep_alive(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        max: u16,
    ) -> DbResult<Vec<RefreshCandidate>> {
        let mut rows: Vec<RefreshCandidate> =
            self.all(Stmt::ConnKeepAliveScan, vec![cutoff.into(), now.into(), limit(max.into())]).await?;
        let left = usize::from(max).saturating_sub(rows.len());
        if left > 0 {
            rows.extend(
                self.all::<RefreshCandidate>(Stmt::ConnKeepAliveNewScan, vec![cutoff.into(), now.into(), limit(left)])
                    .await?,
            );
        }
        Ok(rows)
    }

    /// One live connection with its refresh bookkeeping, whatever its status; NotFound when it
    /// is deleted or another tenant's.
    pub async fn get_refresh_candidate(&self, tenant: TenantId, id: ConnectionId) -> DbResult<RefreshCandidate> {
        self.one(Stmt::ConnRefreshGet, vec![tenant.into(), id.into()]).await
    }

    /// Claims the refresh of a connection as it was read: succeeds only if the row is still
    /// active, still holds the access token that was read and is not held off. Returns the
    /// row as claimed (re-read in the same statement), or `None` when another invocation got
    /// there first or the tokens changed meanwhile.
    pub async fn claim_refresh(
        &self,
        read: &RefreshCandidate,
        lease_until: DateTime<Utc>,
    ) -> DbResult<Option<RefreshCandidate>> {
        let c = &read.connection;
        decode_first(
            self.single(
                Stmt::ConnRefreshClaim,
                vec![
                    c.base.tenant_id.into(),
                    c.base.id.into(),
                    c.encrypted_access_token.clone().into(),
                    self.now().into(),
                    lease_until.into(),
                ],
            )
            .await?,
        )
    }

    /// Stores refreshed tokens in one write (the refresh token only when a new one came) and
    /// clears the lease, backoff and open-error pointer. False if the connection is gone.
    pub async fn store_refreshed_tokens(
        &self,
        tenant: TenantId,
        id: ConnectionId,
        t: &RefreshedTokens,
    ) -> DbResult<bool> {
        let now = self.now();
        let mut params = vec![tenant.into(), id.into(), now.into(), t.encrypted_access_token.clone().into()];
        params.extend(patch_some(t.encrypted_refresh_token.clone()));
        params.push(t.token_expiry.into());
        params.extend(patch_some(t.scope.clone()));
        Ok(self.count(Stmt::ConnRefreshStore, params).await? == 1)
    }

    /// Ends refreshing an active connection (`expired` or `revoked`) and records why, in one
    /// transaction. False (and no error row) if it was no longer active.
    pub async fn end_refresh(
        &self,
        tenant: TenantId,
        id: ConnectionId,
        status: ConnectionStatus,
        error: &NewSyncError,
    ) -> DbResult<bool> {
        let steps = vec![
            step(Stmt::ConnRefreshEnd, vec![tenant.into(), id.into(), self.now().into(), status.into()]),
            error_insert(self, SyncErrorId::generate(), error)?.when(When::PrevNonEmpty),
        ];
        let out = self.run(steps).await?;
        Ok(out.first().is_some_and(|o| affected(o) == 1))
    }

    /// Gives up a claim without a refresh; no attempt before `not_before`.
    pub async fn release_refresh(&self, tenant: TenantId, id: ConnectionId, not_before: DateTime<Utc>) -> DbResult<()> {
        self.count(Stmt::ConnRefreshRelease, vec![tenant.into(), id.into(), self.now().into(), not_before.into()])
            .await?;
        Ok(())
    }

    /// Records a failed attempt: one more retry on the episode's open error row if it is
    /// still open, else a new row that opens the episode; and the backoff until `retry_at`.
    pub async fn record_refresh_failure(
        &self,
        claimed: &RefreshCandidate,
        error: &NewSyncError,
        retry_at: DateTime<Utc>,
    ) -> DbResult<FailureRecord> {
        let c = &claimed.connection;
        let (tenant, id) = (c.base.tenant_id, c.base.id);
        let failed = |error_id: SyncErrorId| {
            step(
                Stmt::ConnRefreshFailed,
                vec![tenant.into(), id.into(), self.now().into(), retry_at.into(), error_id.into()],
            )
        };
        if let Some(open) = claimed.refresh_error_id {
            let bump = step(
                Stmt::ErrorBump,
                vec![
                    tenant.into(),
                    open.into(),
                    self.now().into(),
                    error.error_type.into(),
                    opt(error.error_code.clone()),
                    error.error_message.clone().into(),
                ],
            );
            let out = self.run(vec![bump, failed(open).when(When::PrevNonEmpty)]).await?;
            if out.first().is_some_and(|o| affected(o) == 1) {
                return Ok(FailureRecord::Bumped(open));
            }
        }
        let new_id = SyncErrorId::generate();
        self.run(vec![error_insert(self, new_id, error)?, failed(new_id)]).await?;
        Ok(FailureRecord::Opened(new_id))
    }

    // ---- auto-sync --------------------------------------------------------------------

    /// Live auto-sync folders of active connections whose last sync is older than their
    /// frequency (or never happened) and that have no pending or running job, at most `max`.
    /// A folder whose latest sync failed or was cancelled (which leaves `last_sync_at` as it
    /// was) is not due again until its frequency has passed since that job was created: the
    /// check seeks `ix_cloud_sync_jobs_folder_status` per candidate folder.
    ///
    /// The due test depends on each row's frequency, which no index can order by; so this
    /// walks the distinct frequencies (one index seek each) and, per frequency, seeks the
    /// folders synced before `now - frequency`. The cost follows the due folders and the
    /// number of distinct frequencies, not the size of the table.
    pub async fn scan_folders_due(&self, now: DateTime<Utc>, max: u16) -> DbResult<Vec<Folder>> {
        let max = usize::from(max);
        let mut due = Vec::new();
        let mut after = 0i32;
        while due.len() < max {
            let Some(Frequency(f)) = decode_first(self.single(Stmt::FolderNextFrequency, vec![after.into()]).await?)?
            else {
                break;
            };
            after = f;
            let cutoff = now - chrono::Duration::minutes(i64::from(f));
            let never: Vec<Folder> =
                self.all(Stmt::FolderNeverSyncedScan, vec![f.into(), limit(max - due.len()), cutoff.into()]).await?;
            due.extend(never);
            if due.len() >= max {
                break;
            }
            let synced: Vec<Folder> =
                self.all(Stmt::FolderDueScan, vec![cutoff.into(), f.into(), limit(max - due.len())]).await?;
            due.extend(synced);
        }
        Ok(due)
    }

    /// Fails a running job that has had no update since `updated_before` and records an error
    /// for it, in one transaction. `None` if the job moved on meanwhile (finished, or reported
    /// progress).
    pub async fn fail_stale_job(
        &self,
        job: &SyncJob,
        updated_before: DateTime<Utc>,
        message: &str,
        error: &NewSyncError,
    ) -> DbResult<Option<SyncJob>> {
        let now = self.now();
        let steps = vec![
            step(
                Stmt::JobFailStale,
                vec![job.base.tenant_id.into(), job.base.id.into(), updated_before.into(), now.into(), message.into()],
            ),
            error_insert(self, SyncErrorId::generate(), error)?.when(When::PrevNonEmpty),
        ];
        let mut out = self.run(steps).await?;
        if out.is_empty() {
            return Ok(None);
        }
        decode_first(out.swap_remove(0))
    }

    // ---- shared links -----------------------------------------------------------------

    /// Holds an active, expired link for the caller until `lease_until`, unless another run
    /// holds it. True when claimed.
    pub async fn claim_link_expiry(&self, id: LinkId, lease_until: DateTime<Utc>) -> DbResult<bool> {
        Ok(self.count(Stmt::LinkExpiryClaim, vec![id.into(), self.now().into(), lease_until.into()]).await? == 1)
    }
}
