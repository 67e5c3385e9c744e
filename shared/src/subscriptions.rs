//! The change subscriptions' lifecycle: a connection has the subscriptions its auto-syncing
//! folders need, and no others. [`reconcile`] compares what is wanted with what is stored and
//! makes or removes the difference at the provider; it runs after any change to a folder's
//! auto-sync (a create, a patch, a delete). [`remove_all`] runs before a connection goes, and
//! [`renew_due`] (from auto-sync-trigger, every minute) keeps subscriptions alive before the
//! provider ends them.
//!
//! What a subscription covers is the provider's ([`WatchScope`]): one per connection for
//! Graph (the drive root) and Drive (the change feed), one per folder for Box, none for
//! Dropbox (the app's webhook). Without `webhook_base_url` nothing is made: folders sync by
//! polling alone. Polling stays the safety net either way: a subscription the provider refuses
//! is an error row on the connection, and the folder keeps syncing on its schedule.

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;

use crate::app::App;
use crate::db::{
    Connection, ConnectionId, DbError, Folder, FolderFilter, FolderId, NewSyncSubscription, PageRequest,
    SubscriptionKind, SyncSubscription, TenantId,
};
use crate::deadline::Deadline;
use crate::provider_call::ProviderCall;
use crate::providers::{WatchRequest, WatchScope, Watched, Watching};
use crate::schedule::{Report, RowOutcome};
use crate::vault::{TokenContext, Vault, VaultError};

/// How long a subscription is asked to last: Graph allows under 30 days, Drive channels are
/// capped by Google (a week is accepted for the changes feed); either answers what it grants.
pub const LIFETIME: Duration = Duration::days(6);
/// A subscription expiring within this is renewed.
pub const RENEW_BEFORE: Duration = Duration::days(1);
/// The most folders of one connection considered (a bound on one reconciliation's work).
const MAX_FOLDERS: usize = 1000;

/// The receiver a provider's subscriptions notify.
fn address(base: &str, kind: SubscriptionKind) -> String {
    let route = match kind {
        SubscriptionKind::GraphSubscription => "graph",
        SubscriptionKind::DriveChannel => "gdrive",
        SubscriptionKind::BoxWebhook => "box",
    };
    format!("{base}/webhooks/{route}")
}

/// A new secret for a subscription (Graph clientState is at most 128 characters): 32 random
/// bytes, hex.
fn new_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    SecretString::from(hex::encode(bytes))
}

/// The folders of a connection that sync by themselves, oldest first, at most a thousand.
pub async fn auto_sync_folders(app: &App, tenant: TenantId, connection: ConnectionId) -> Result<Vec<Folder>, DbError> {
    let filter = FolderFilter { connection_id: Some(connection), ..FolderFilter::default() };
    let mut folders = Vec::new();
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
    loop {
        let rows = app.store.list_folders(tenant, &filter, page).await?;
        folders.extend(rows.items.into_iter().filter(|f| f.auto_sync_enabled));
        match rows.next_after {
            Some(after) if folders.len() < MAX_FOLDERS => page = PageRequest { after: Some(after), ..page },
            _ => {
                folders.truncate(MAX_FOLDERS);
                return Ok(folders);
            }
        }
    }
}

/// Makes and removes subscriptions at the provider until the connection has exactly those
/// its auto-syncing folders need. Never fails the caller: a failure is logged and recorded as
/// an error row on the connection, and polling goes on.
pub async fn reconcile(app: &App, deadline: &Deadline, tenant: TenantId, connection: ConnectionId) {
    if let Err(e) = try_reconcile(app, deadline, tenant, connection).await {
        tracing::warn!(connection_id = %connection, error = %crate::error_chain(&e), "subscriptions not reconciled");
    }
}

async fn try_reconcile(
    app: &App,
    deadline: &Deadline,
    tenant: TenantId,
    connection: ConnectionId,
) -> Result<(), DbError> {
    let current = match app.current().await {
        Ok(current) => current,
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), "configuration unavailable: subscriptions left as they are");
            return Ok(());
        }
    };
    let Some(base) = current.config.webhook_base_url.clone() else { return Ok(()) };
    let connection = match app.store.get_connection(tenant, connection).await {
        Ok(c) => c,
        Err(DbError::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    let stored = app.store.subscriptions_of_connection(tenant, connection.base.id).await?;
    let folders = auto_sync_folders(app, tenant, connection.base.id).await?;
    let call = match ProviderCall::open(app, connection.clone()).await {
        Ok(call) => call,
        // Not active, or the provider not configured: nothing can be made or removed now;
        // rows left behind are removed with the connection.
        Err(e) => {
            tracing::info!(connection_id = %connection.base.id, error = %e, "no provider call: subscriptions left as they are");
            return Ok(());
        }
    };
    match call.provider().watch_scope() {
        WatchScope::App => {}
        WatchScope::Connection(kind) => {
            let wanted = folders.first();
            match (wanted, stored.is_empty()) {
                (Some(folder), true) => make(app, deadline, &call, &base, kind, folder, None).await?,
                (None, false) => {
                    for subscription in &stored {
                        remove(app, deadline, &call, subscription).await?;
                    }
                }
                _ => {}
            }
        }
        WatchScope::Folder(kind) => {
            for folder in &folders {
                if !stored.iter().any(|s| s.folder_id == Some(folder.base.id)) {
                    make(app, deadline, &call, &base, kind, folder, Some(folder)).await?;
                }
            }
            for subscription in &stored {
                if !folders.iter().any(|f| Some(f.base.id) == subscription.folder_id) {
                    remove(app, deadline, &call, subscription).await?;
                }
            }
        }
    }
    Ok(())
}

/// Makes one subscription and records it; a refusal is an error row.
async fn make(
    app: &App,
    deadline: &Deadline,
    call: &ProviderCall,
    base: &str,
    kind: SubscriptionKind,
    folder: &Folder,
    owner: Option<&Folder>,
) -> Result<(), DbError> {
    let connection = call.connection();
    let secret = new_secret();
    let address = address(base, kind);
    let expires_at = app.store.now() + LIFETIME;
    let request = WatchRequest {
        address: &address,
        secret: &secret,
        folder_id: &folder.provider_folder_id,
        metadata: connection.connection_metadata.as_ref(),
        expires_at,
    };
    let watching = match call.run(deadline, |a| a.provider.watch(a.token, &request)).await {
        Ok(watching) => watching,
        Err(e) => {
            call.error_row("watch", &e, "the provider refused a change subscription; the folder syncs by polling")
                .record(&app.store)
                .await;
            return Ok(());
        }
    };
    let row = new_row(call, kind, owner.map(|f| f.base.id), &watching, uses_secret(kind).then_some(&secret));
    if let Err(e) = app.store.create_subscription(&row).await {
        // Not recorded, so it would notify for ever unknown: removed again at once.
        let watched = Watched {
            provider_subscription_id: &watching.provider_subscription_id,
            provider_resource: watching.provider_resource.as_deref(),
        };
        let _ = call.undo(deadline, deadline.reserve() / 2, |a| a.provider.unwatch(a.token, &watched)).await;
        return Err(e);
    }
    tracing::info!(connection_id = %connection.base.id, kind = %kind, "change subscription made");
    Ok(())
}

/// The secret stored with `subscription`, decrypted (`None`: it has none, as Box's).
pub fn secret_of(vault: &Vault, subscription: &SyncSubscription) -> Result<Option<SecretString>, VaultError> {
    let Some(ciphertext) = &subscription.encrypted_secret else { return Ok(None) };
    let context = TokenContext::subscription(subscription.base.tenant_id, subscription.connection_id);
    vault.decrypt(context, ciphertext).map(Some)
}

/// Graph and Drive echo a secret back in every notification; Box signs with the app's keys.
fn uses_secret(kind: SubscriptionKind) -> bool {
    kind != SubscriptionKind::BoxWebhook
}

fn new_row(
    call: &ProviderCall,
    kind: SubscriptionKind,
    folder_id: Option<FolderId>,
    watching: &Watching,
    secret: Option<&SecretString>,
) -> NewSyncSubscription {
    let connection = call.connection();
    let (tenant, id) = (connection.base.tenant_id, connection.base.id);
    let encrypted = secret.map(|s| call.current().vault.encrypt(TokenContext::subscription(tenant, id), s));
    NewSyncSubscription {
        tenant_id: tenant,
        connection_id: id,
        folder_id,
        subscription_kind: kind,
        provider_subscription_id: watching.provider_subscription_id.clone(),
        provider_resource: watching.provider_resource.clone(),
        encrypted_secret: encrypted,
        expires_at: watching.expires_at,
    }
}

/// Removes one subscription at the provider, then its row; a provider failure is an error
/// row and the row goes anyway (an unknown subscription's notifications are dropped).
async fn remove(
    app: &App,
    deadline: &Deadline,
    call: &ProviderCall,
    subscription: &SyncSubscription,
) -> Result<(), DbError> {
    let watched = Watched {
        provider_subscription_id: &subscription.provider_subscription_id,
        provider_resource: subscription.provider_resource.as_deref(),
    };
    if let Err(e) = call.run(deadline, |a| a.provider.unwatch(a.token, &watched)).await {
        call.error_row("unwatch", &e, "the provider did not remove a change subscription").record(&app.store).await;
    }
    app.store.delete_subscription(subscription.base.tenant_id, subscription.base.id).await
}

/// Removes every subscription of a connection that is about to go (at the provider while
/// its tokens still work, then the rows).
pub async fn remove_all(app: &App, deadline: &Deadline, connection: &Connection) {
    let (tenant, id) = (connection.base.tenant_id, connection.base.id);
    let stored = match app.store.subscriptions_of_connection(tenant, id).await {
        Ok(stored) if stored.is_empty() => return,
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!(connection_id = %id, error = %crate::error_chain(&e), "subscriptions not removed");
            return;
        }
    };
    let call = ProviderCall::open(app, connection.clone()).await;
    for subscription in &stored {
        let result = match &call {
            Ok(call) => remove(app, deadline, call, subscription).await,
            Err(_) => app.store.delete_subscription(tenant, subscription.base.id).await,
        };
        if let Err(e) = result {
            tracing::warn!(connection_id = %id, error = %crate::error_chain(&e), "a subscription row was not removed");
        }
    }
}

/// Renews the subscriptions that expire within [`RENEW_BEFORE`], at most `max`; each is a row
/// of the report. A renewal the provider refuses is an error row; the subscription then ends
/// at the provider and the folders keep syncing by polling until the next reconciliation.
pub async fn renew_due(app: &App, deadline: &Deadline, now: DateTime<Utc>, max: u16) -> Report {
    let mut report = Report::default();
    let Ok(current) = app.current().await else { return report };
    let Some(base) = current.config.webhook_base_url.clone() else { return report };
    let due = match app.store.subscriptions_due(now + RENEW_BEFORE, max).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), "cannot scan subscriptions to renew");
            report.count(RowOutcome::Failed);
            return report;
        }
    };
    for subscription in due {
        report.count(renew_one(app, deadline, &base, &subscription).await);
    }
    report
}

async fn renew_one(app: &App, deadline: &Deadline, base: &str, subscription: &SyncSubscription) -> RowOutcome {
    let tenant = subscription.base.tenant_id;
    let Ok(connection) = app.store.get_connection(tenant, subscription.connection_id).await else {
        return RowOutcome::Skipped;
    };
    let Ok(call) = ProviderCall::open(app, connection).await else { return RowOutcome::Skipped };
    let kind = subscription.subscription_kind;
    // Drive's renewal is a new channel: it gets a new secret; Graph keeps its clientState.
    let kept = match kind {
        SubscriptionKind::GraphSubscription => secret_of(&call.current().vault, subscription).ok().flatten(),
        _ => None,
    };
    let secret = kept.unwrap_or_else(new_secret);
    let folder_id = match subscription.folder_id {
        Some(folder) => match app.store.get_folder(tenant, folder).await {
            Ok(f) => f.provider_folder_id,
            Err(_) => return RowOutcome::Skipped,
        },
        None => String::new(),
    };
    let address = address(base, kind);
    let request = WatchRequest {
        address: &address,
        secret: &secret,
        folder_id: &folder_id,
        metadata: call.connection().connection_metadata.as_ref(),
        expires_at: app.store.now() + LIFETIME,
    };
    let existing = Watched {
        provider_subscription_id: &subscription.provider_subscription_id,
        provider_resource: subscription.provider_resource.as_deref(),
    };
    match call.run(deadline, |a| a.provider.renew_watch(a.token, &existing, &request)).await {
        Ok(watching) => {
            let row = new_row(&call, kind, subscription.folder_id, &watching, uses_secret(kind).then_some(&secret));
            match app.store.renew_subscription(tenant, subscription.base.id, &row).await {
                Ok(()) => RowOutcome::Acted,
                Err(_) => RowOutcome::Failed,
            }
        }
        Err(e) => {
            call.error_row(
                "renew_watch",
                &e,
                "the provider did not renew a change subscription; the folders sync by polling",
            )
            .record(&app.store)
            .await;
            // The row stays: a later run tries again until the provider ends it.
            RowOutcome::Failed
        }
    }
}

/// What a rotation of the subscription secrets did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SecretRotation {
    pub scanned: u64,
    /// Rewritten under the active key.
    pub rewritten: u64,
    /// Did not decrypt (left as they are: the subscription stops authenticating, and the next
    /// reconciliation or renewal replaces it).
    pub failed: u64,
}

/// Re-encrypts under the vault's active key every subscription secret that is under another
/// (after a token-key rotation, before the old key is retired). A secret rewritten between
/// read and write (a renewal) is left to that writer: it is under the active key already.
pub async fn rotate_secrets(app: &App, vault: &crate::vault::Vault) -> Result<SecretRotation, DbError> {
    const BATCH: u16 = 200;
    let mut report = SecretRotation::default();
    let mut after = 0;
    loop {
        let rows = app.store.scan_subscription_secrets(after, BATCH).await?;
        for row in &rows {
            after = row.base.index_id;
            let Some(ciphertext) = &row.encrypted_secret else { continue };
            report.scanned += 1;
            if vault.is_current(ciphertext) {
                continue;
            }
            let context = TokenContext::subscription(row.base.tenant_id, row.connection_id);
            match vault.decrypt(context, ciphertext) {
                Ok(secret) => {
                    let rewritten = vault.encrypt(context, &secret);
                    if app
                        .store
                        .swap_subscription_secret(row.base.tenant_id, row.base.id, ciphertext, rewritten)
                        .await?
                    {
                        report.rewritten += 1;
                    }
                }
                Err(e) => {
                    tracing::error!(subscription = %row.base.id, error = %e, "a subscription secret does not decrypt");
                    report.failed += 1;
                }
            }
        }
        if rows.len() < usize::from(BATCH) {
            return Ok(report);
        }
    }
}
