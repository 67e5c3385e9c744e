//! Re-encryption of stored tokens under the active key, after a new key was added to the
//! configuration and made active. Old keys stay in the configuration (readable) until a run
//! reports no row left under them; only then can they be removed.
//!
//! The run walks `cloud_connections` by `index_id`, across all tenants and including
//! soft-deleted rows (their tokens are still ciphertext under the old key). Each rewrite is a
//! compare-and-swap on the access-token ciphertext, so a token refresh that lands between the
//! read and the write wins and the rotation leaves that row alone: the refresh wrote under the
//! active key anyway. A row whose token does not decrypt is counted and left untouched, so a
//! rotation never loses a refresh token.

use std::future::Future;

use super::{TokenContext, TokenKind, Vault, VaultError};
use crate::db::{Connection, ConnectionId, DbError, DbResult, TenantId};

/// What a rotation needs from the data layer. Implemented for [`crate::db::Store`]; a trait
/// so the rotation can be exercised against any backend.
pub trait TokenRowStore {
    /// Rows of every tenant, soft-deleted ones included, with `index_id > after_index`, in
    /// ascending `index_id` order, at most `limit` of them.
    fn scan_connections(&self, after_index: i64, limit: u16) -> impl Future<Output = DbResult<Vec<Connection>>> + Send;

    /// Writes `access` (and `refresh`) if the row's access-token ciphertext still equals
    /// `expected_access`; true if it wrote.
    fn swap_connection_tokens(
        &self,
        tenant: TenantId,
        id: ConnectionId,
        expected_access: &[u8],
        access: Vec<u8>,
        refresh: Option<Vec<u8>>,
    ) -> impl Future<Output = DbResult<bool>> + Send;
}

/// Counts of one rotation run. `scanned` is the sum of the four outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RotationReport {
    pub scanned: u64,
    /// Rewritten under the active key.
    pub rewritten: u64,
    /// Both tokens were already under the active key.
    pub already_current: u64,
    /// A token did not parse or decrypt; the row was left untouched.
    pub failed: u64,
    /// The access token changed between read and write (a concurrent refresh or disconnect);
    /// the row was left to that writer. A later run picks it up if it is still stale.
    pub changed_concurrently: u64,
    /// `index_id` of the last row looked at: pass it back to resume.
    pub cursor: i64,
    /// True when the scan reached the end of the table.
    pub complete: bool,
    /// Change-subscription secrets rewritten under the active key (rotate-keys does these
    /// once the connections are complete; see `crate::subscriptions::rotate_secrets`).
    pub subscription_secrets_rewritten: u64,
    /// Change-subscription secrets that did not decrypt.
    pub subscription_secrets_failed: u64,
}

/// A rotation stopped by a data-layer error; `report` holds the progress up to it, and its
/// cursor is where to resume.
#[derive(Debug, thiserror::Error)]
#[error("token key rotation stopped after index_id {}: {source}", report.cursor)]
pub struct RotationError {
    pub report: RotationReport,
    #[source]
    pub source: DbError,
}

/// Re-encrypts, in batches of `batch_size`, the tokens of rows after `after_index` that are
/// not under the vault's active key. Stops at the end of the table or after `max_batches`
/// batches (so a run fits in one Lambda invocation); resume from the returned cursor.
pub async fn rotate_token_keys<S: TokenRowStore + ?Sized>(
    store: &S,
    vault: &Vault,
    after_index: i64,
    batch_size: u16,
    max_batches: Option<u32>,
) -> Result<RotationReport, RotationError> {
    // A zero limit would scan nothing forever.
    let batch_size = batch_size.max(1);
    let mut report = RotationReport { cursor: after_index, ..RotationReport::default() };
    let mut batches = 0u32;
    loop {
        if max_batches.is_some_and(|max| batches >= max) {
            break;
        }
        batches += 1;
        let rows = match store.scan_connections(report.cursor, batch_size).await {
            Ok(rows) => rows,
            Err(source) => return Err(RotationError { report, source }),
        };
        let short_batch = rows.len() < usize::from(batch_size);
        let before = report.cursor;
        for row in &rows {
            if row.base.index_id <= report.cursor {
                // A store that does not honour `after_index` would make the run loop forever.
                continue;
            }
            if let Err(source) = rotate_row(store, vault, row, &mut report).await {
                return Err(RotationError { report, source });
            }
            report.cursor = row.base.index_id;
        }
        if short_batch {
            report.complete = true;
            break;
        }
        if report.cursor == before {
            tracing::error!(
                cursor = report.cursor,
                "token key rotation: the store returned no row after the cursor; stopping"
            );
            break;
        }
        tracing::debug!(cursor = report.cursor, scanned = report.scanned, "token key rotation: batch done");
    }
    tracing::info!(
        active_key = %vault.active_key_id(),
        scanned = report.scanned,
        rewritten = report.rewritten,
        already_current = report.already_current,
        failed = report.failed,
        changed_concurrently = report.changed_concurrently,
        cursor = report.cursor,
        complete = report.complete,
        "token key rotation run finished"
    );
    Ok(report)
}

async fn rotate_row<S: TokenRowStore + ?Sized>(
    store: &S,
    vault: &Vault,
    row: &Connection,
    report: &mut RotationReport,
) -> Result<(), DbError> {
    report.scanned += 1;
    let (access, refresh) = match reencrypt(vault, row) {
        Ok(Some(new)) => new,
        Ok(None) => {
            report.already_current += 1;
            return Ok(());
        }
        Err((kind, e)) => {
            report.failed += 1;
            tracing::warn!(
                tenant_id = %row.base.tenant_id,
                connection_id = %row.base.id,
                index_id = row.base.index_id,
                token = ?kind,
                error = %e,
                "token key rotation: token does not decrypt; row left untouched"
            );
            return Ok(());
        }
    };
    let wrote = store
        .swap_connection_tokens(row.base.tenant_id, row.base.id, &row.encrypted_access_token, access, refresh)
        .await?;
    if wrote {
        report.rewritten += 1;
    } else {
        report.changed_concurrently += 1;
        tracing::info!(
            tenant_id = %row.base.tenant_id,
            connection_id = %row.base.id,
            "token key rotation: row changed concurrently; left to the other writer"
        );
    }
    Ok(())
}

/// The row's tokens under the active key, or None if both already are. Everything is
/// decrypted before anything is produced, so a row with an unreadable refresh token is
/// reported and never half-rotated.
#[allow(clippy::type_complexity)]
fn reencrypt(vault: &Vault, row: &Connection) -> Result<Option<(Vec<u8>, Option<Vec<u8>>)>, (TokenKind, VaultError)> {
    let access = &row.encrypted_access_token;
    let refresh = row.encrypted_refresh_token.as_deref();
    let access_current = vault.is_current(access);
    let refresh_current = refresh.is_none_or(|r| vault.is_current(r));
    if access_current && refresh_current {
        return Ok(None);
    }
    let tenant = row.base.tenant_id;
    let actx = TokenContext::access(tenant, row.base.id);
    let rctx = TokenContext::refresh(tenant, row.base.id);
    let access_plain =
        if access_current { None } else { Some(vault.decrypt(actx, access).map_err(|e| (TokenKind::Access, e))?) };
    let refresh_plain = match refresh {
        Some(r) if !refresh_current => Some(vault.decrypt(rctx, r).map_err(|e| (TokenKind::Refresh, e))?),
        _ => None,
    };
    let new_access = match &access_plain {
        Some(p) => vault.encrypt(actx, p),
        None => access.clone(),
    };
    let new_refresh = match (&refresh_plain, refresh) {
        (Some(p), _) => Some(vault.encrypt(rctx, p)),
        (None, r) => r.map(<[u8]>::to_vec),
    };
    Ok(Some((new_access, new_refresh)))
}

impl TokenRowStore for crate::db::Store {
    fn scan_connections(&self, after_index: i64, limit: u16) -> impl Future<Output = DbResult<Vec<Connection>>> + Send {
        crate::db::Store::scan_connections(self, after_index, limit)
    }

    fn swap_connection_tokens(
        &self,
        tenant: TenantId,
        id: ConnectionId,
        expected_access: &[u8],
        access: Vec<u8>,
        refresh: Option<Vec<u8>>,
    ) -> impl Future<Output = DbResult<bool>> + Send {
        crate::db::Store::swap_connection_tokens(self, tenant, id, expected_access, access, refresh)
    }
}
