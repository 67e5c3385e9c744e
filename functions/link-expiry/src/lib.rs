//! Link expiry, run every 15 minutes by an EventBridge schedule.
//!
//! Deactivates (`is_active = 0`) active shared links whose `expires_at` has passed, a batch at
//! a time: one UPDATE claims and deactivates up to `LINK_EXPIRY_BATCH_SIZE` links and returns
//! them, so overlapping invocations never handle the same link twice.
//!
//! Where the provider cannot expire a link by itself (the provider module says which:
//! [`Provider::expires_links_natively`], false for Google Drive), the link is also removed at
//! the provider with the connection's access token. That is best effort: a failure becomes a
//! `cloud_sync_errors` row for the connection and the local deactivation stands, since the
//! link must stop resolving here whatever the provider does.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lambda_runtime::LambdaEvent;
use serde_json::json;
use shared::app::App;
use shared::db::{DbError, ErrorType, NewSyncError, ResourceType, SharedLink, TenantId};
use shared::providers::{ExistingLink, HttpSettings, LinkTarget, ProviderError, Registry};
use shared::schedule::{Env, Report, SettingsError};
use shared::vault::{TokenContext, Vault};
use uuid::Uuid;

pub const FUNCTION: &str = "link-expiry";

/// Settings read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Links deactivated per statement (`LINK_EXPIRY_BATCH_SIZE`, default 500).
    pub batch_size: u16,
    /// Provider removals in flight at once (`LINK_EXPIRY_CONCURRENCY`, default 8).
    pub concurrency: usize,
    /// No new batch after this much time (`LINK_EXPIRY_TIME_BUDGET_SECONDS`, default 240);
    /// keep it below the function's timeout.
    pub time_budget: Duration,
    /// Total time for one provider call (`LINK_EXPIRY_PROVIDER_TIMEOUT_MS`, default 10000).
    pub provider_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            batch_size: 500,
            concurrency: 8,
            time_budget: Duration::from_secs(240),
            provider_timeout: Duration::from_secs(10),
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(Env::process())
    }

    pub fn from_lookup<F: Fn(&str) -> Option<String>>(env: Env<F>) -> Result<Settings, SettingsError> {
        Ok(Settings {
            batch_size: env.number("LINK_EXPIRY_BATCH_SIZE", 500, 1, 5000)? as u16,
            concurrency: env.number("LINK_EXPIRY_CONCURRENCY", 8, 1, 64)? as usize,
            time_budget: env.seconds("LINK_EXPIRY_TIME_BUDGET_SECONDS", 240, 1, 900)?,
            provider_timeout: env.millis("LINK_EXPIRY_PROVIDER_TIMEOUT_MS", 10_000, 100, 120_000)?,
        })
    }
}

/// The Lambda handler: any event (EventBridge sends a Scheduled Event) runs the job once.
pub async fn handler(
    app: &App,
    settings: &Settings,
    event: LambdaEvent<serde_json::Value>,
) -> Result<Report, lambda_runtime::Error> {
    shared::schedule::log_event(FUNCTION, &event.payload);
    let report = run(app, settings).await;
    report.log(FUNCTION);
    Ok(report)
}

/// One run. `acted` counts deactivated links; `failed` counts provider removals that failed
/// (each also an error row) and failed batches.
pub async fn run(app: &App, settings: &Settings) -> Report {
    let started = Instant::now();
    let deadline = started + settings.time_budget;
    let mut report = Report::default();
    // Without a configuration there is no vault or provider client, but deactivating needs
    // neither: links still expire, and only their removal at the provider is skipped.
    let current = app.current().await.map_err(|e| tracing::error!(error = %e, "configuration unavailable")).ok();
    let http = HttpSettings {
        connect_timeout: settings.provider_timeout.min(shared::providers::DEFAULT_CONNECT_TIMEOUT),
        total_timeout: settings.provider_timeout,
    };
    let registry = current.as_ref().and_then(|c| {
        Registry::with_settings(&c.config.providers, None, http)
            .map_err(|e| tracing::error!(error = %e, "cannot build the provider clients"))
            .ok()
    });
    while Instant::now() < deadline {
        let links = match app.store.expire_links_batch(app.store.now(), settings.batch_size).await {
            Ok(links) => links,
            Err(e) => {
                tracing::error!(error = %shared::error_chain(&e), "deactivating expired links failed");
                report.failed += 1;
                break;
            }
        };
        let n = links.len() as u64;
        report.scanned += n;
        report.acted += n;
        let full = links.len() >= usize::from(settings.batch_size);
        if let (Some(current), Some(registry)) = (&current, &registry) {
            let vault = &current.vault;
            let removed: Vec<bool> = futures_util::stream::iter(links)
                .map(|link| async move { remove_at_provider(app, vault, registry, &link).await })
                .buffer_unordered(settings.concurrency)
                .collect()
                .await;
            let failures = removed.iter().filter(|ok| !**ok).count();
            report.failed += failures as u64;
        }
        if !full {
            break;
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// Why a link could not be removed at the provider.
enum RemoveError {
    Provider(ProviderError),
    Db(DbError),
    Token(shared::vault::VaultError),
}

/// Removes the link at its provider when the provider cannot expire it by itself. False when
/// that was needed and failed (an error row records why).
async fn remove_at_provider(app: &App, vault: &Vault, registry: &Registry, link: &SharedLink) -> bool {
    let tenant = link.base.tenant_id;
    let (connection_id, outcome) = match try_remove(app, vault, registry, link).await {
        Ok(()) => return true,
        Err((None, RemoveError::Db(DbError::NotFound))) => {
            // The file, folder or connection was deleted meanwhile; deleting them
            // deactivated their links already, and there is no connection to record against.
            return true;
        }
        Err((connection, e)) => (connection, e),
    };
    let (error_type, code, message) = match &outcome {
        RemoveError::Provider(e) => (e.error_type(), e.error_code(), e.to_string()),
        RemoveError::Token(e) => (ErrorType::Validation, Some("token_undecryptable".into()), e.to_string()),
        RemoveError::Db(e) => (ErrorType::Api, None, format!("database: {}", shared::error_chain(e))),
    };
    tracing::warn!(link_id = %link.base.id, error_type = error_type.as_str(), code = ?code, "expired link not removed at the provider");
    let Some(connection_id) = connection_id else { return false };
    let row = NewSyncError {
        tenant_id: tenant,
        sync_job_id: None,
        connection_id,
        file_id: link.file_id,
        error_type,
        error_code: code,
        error_message: format!("the expired shared link could not be removed at the provider: {message}"),
        stack_trace: None,
        error_metadata: Some(json!({ "source": FUNCTION, "link_id": link.base.id })),
    };
    if let Err(e) = app.store.create_error(&row).await {
        tracing::warn!(link_id = %link.base.id, error = %shared::error_chain(&e), "cannot record the error");
    }
    false
}

/// Finds the item and connection behind a link and deletes the link at the provider if the
/// provider needs that. The error carries the connection when it is known.
async fn try_remove(
    app: &App,
    vault: &Vault,
    registry: &Registry,
    link: &SharedLink,
) -> Result<(), (Option<Uuid>, RemoveError)> {
    let store = &app.store;
    let tenant: TenantId = link.base.tenant_id;
    let db = |e: DbError| (None, RemoveError::Db(e));
    let (item_id, folder_id) = match (link.resource_type, link.file_id, link.folder_id) {
        (ResourceType::File, Some(file_id), _) => {
            let file = store.get_file(tenant, file_id).await.map_err(db)?;
            (file.provider_file_id, file.folder_id)
        }
        (ResourceType::Folder, _, Some(folder_id)) => (String::new(), folder_id),
        // ck_cloud_shared_links_resource rules this out.
        _ => return Ok(()),
    };
    let folder = store.get_folder(tenant, folder_id).await.map_err(db)?;
    let item_id = if item_id.is_empty() { folder.provider_folder_id.clone() } else { item_id };
    let conn = store.get_connection(tenant, folder.connection_id).await.map_err(db)?;
    let known = Some(conn.base.id);
    let provider = registry.get(conn.provider_type).map_err(|e| (known, RemoveError::Provider(e)))?;
    if provider.expires_links_natively() {
        return Ok(());
    }
    let access = vault
        .decrypt(TokenContext::access(tenant, conn.base.id), &conn.encrypted_access_token)
        .map_err(|e| (known, RemoveError::Token(e)))?;
    let target = LinkTarget {
        resource_type: link.resource_type,
        item_id: &item_id,
        connection_metadata: conn.connection_metadata.as_ref(),
    };
    let existing = ExistingLink { provider_share_id: link.provider_share_id.as_deref(), share_url: &link.share_url };
    provider.delete_shared_link(&access, &target, &existing).await.map_err(|e| (known, RemoveError::Provider(e)))?;
    tracing::debug!(link_id = %link.base.id, provider = conn.provider_type.as_str(), "expired link removed at the provider");
    Ok(())
}
