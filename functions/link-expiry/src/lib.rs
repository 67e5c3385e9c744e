//! Link expiry, run every 15 minutes by an EventBridge schedule.
//!
//! Deactivates (`is_active = 0`) active shared links whose `expires_at` has passed. An expired
//! link no longer resolves here whatever `is_active` says (the redirect checks `expires_at`),
//! so `is_active = 1` on an expired link means "not finished at the provider yet", and that is
//! what makes a later run retry it.
//!
//! Expired links are read `LINK_EXPIRY_BATCH_SIZE` at a time; each is claimed (a lease on
//! `expiry_claimed_until`) so overlapping invocations never handle it twice, and only while
//! the time budget lasts: a link not reached is left, unclaimed, to the next run.
//!
//! Where the provider cannot expire a link by itself (the provider module says which:
//! [`Provider::expires_links_natively`], false for Google Drive), the link is first removed at
//! the provider with the connection's access token and deactivated after. A provider failure
//! (or a provider missing from the configuration) becomes a `cloud_sync_errors` row for the
//! connection and then the link is deactivated: the error row is its record. If not even the
//! error row can be written, the link stays active and the next run tries again once the
//! lease ends. Without a configuration nothing is claimed: the links wait for a run that has
//! one, and the run counts a failure.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lambda_runtime::LambdaEvent;
use secrecy::ExposeSecret as _;
use serde_json::json;
use shared::app::App;
use shared::app::Current;
use shared::db::{DbError, ErrorType, NewSyncError, ResourceType, SharedLink, TenantId};
use shared::error_rows::{MAX_ERROR_CODE_BYTES, MAX_ERROR_MESSAGE_BYTES, scrub_error_row, scrub_error_text};
use shared::providers::{ExistingLink, HttpSettings, LinkTarget, ProviderError, Registry};
use shared::schedule::{Env, Report, SettingsError, chrono_duration};
use shared::vault::TokenContext;
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

/// Held by a run for one link: the provider call and the writes around it, with room to spare.
const LEASE_SLACK: Duration = Duration::from_secs(120);

/// One run. `acted` counts deactivated links, `skipped` links left alone (held by another run,
/// or not reached within the budget), `failed` provider removals that failed (each an error
/// row; the link is deactivated too, so it also counts as acted), links left for a retry,
/// failed scans, and a run without a configuration.
pub async fn run(app: &App, settings: &Settings) -> Report {
    let started = Instant::now();
    let deadline = started + settings.time_budget;
    let mut report = Report::default();
    let http = HttpSettings {
        connect_timeout: settings.provider_timeout.min(shared::providers::DEFAULT_CONNECT_TIMEOUT),
        total_timeout: settings.provider_timeout,
    };
    // Without the configuration (or the provider clients) no link can be removed at its
    // provider, nor even told apart from one that needs no removal: leave them all, still
    // active, to the next run.
    let current = match app.current().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %shared::error_chain(&e), "configuration unavailable; expired links left to the next run");
            report.failed = 1;
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
    };
    let registry = match Registry::with_settings(&current.config.providers, None, http) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %shared::error_chain(&e), "cannot build the provider clients; expired links left to the next run");
            report.failed = 1;
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
    };
    let current = &*current;
    let registry = &registry;
    let lease = settings.provider_timeout + LEASE_SLACK;
    while Instant::now() < deadline {
        let links = match app.store.scan_links_expired(app.store.now(), settings.batch_size).await {
            Ok(links) => links,
            Err(e) => {
                tracing::error!(error = %shared::error_chain(&e), "reading expired links failed");
                report.failed += 1;
                break;
            }
        };
        let full = links.len() >= usize::from(settings.batch_size);
        let outcomes: Vec<Handled> = futures_util::stream::iter(links)
            .map(|link| async move {
                // Checked per link: one not started is left, unclaimed, to the next run.
                if Instant::now() >= deadline {
                    return Handled { deactivated: false, failed: false };
                }
                expire_one(app, current, registry, &link, lease).await
            })
            .buffer_unordered(settings.concurrency)
            .collect()
            .await;
        // A batch in which no link was deactivated (each held by another run, or neither
        // removed nor recorded) stops the run: the database is in trouble, or other runs
        // are on it.
        let moved = outcomes.iter().any(|h| h.deactivated);
        for h in outcomes {
            report.scanned += 1;
            report.acted += u64::from(h.deactivated);
            report.failed += u64::from(h.failed);
            report.skipped += u64::from(!h.deactivated && !h.failed);
        }
        if !full || !moved {
            break;
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// How one link was handled (neither: left alone).
#[derive(Debug, Clone, Copy)]
struct Handled {
    deactivated: bool,
    failed: bool,
}

/// Claims one expired link, removes it at its provider where needed, then deactivates it.
async fn expire_one(app: &App, current: &Current, registry: &Registry, link: &SharedLink, lease: Duration) -> Handled {
    let store = &app.store;
    let id = link.base.id;
    match store.claim_link_expiry(id, store.now() + chrono_duration(lease)).await {
        Ok(true) => {}
        // Another run holds it, or it was deactivated meanwhile.
        Ok(false) => return Handled { deactivated: false, failed: false },
        Err(e) => {
            tracing::warn!(link_id = %id, error = %shared::error_chain(&e), "cannot claim the expired link");
            return Handled { deactivated: false, failed: true };
        }
    }
    let removed = remove_at_provider(app, current, registry, link).await;
    if removed == Removal::Retry {
        // Neither removed nor recorded: the link stays active for a later run.
        return Handled { deactivated: false, failed: true };
    }
    let failed = removed == Removal::Recorded;
    match store.expire_link(id).await {
        Ok(deactivated) => Handled { deactivated, failed },
        Err(e) => {
            tracing::warn!(link_id = %id, error = %shared::error_chain(&e), "cannot deactivate the expired link");
            Handled { deactivated: false, failed: true }
        }
    }
}

/// How the provider side of an expired link ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// Removed, or nothing to remove (the provider expires links itself, or the link's file,
    /// folder or connection is gone).
    Done,
    /// Not removed; an error row records it.
    Recorded,
    /// Not removed and not recorded: try again later.
    Retry,
}

/// Why a link could not be removed at the provider.
enum RemoveError {
    /// Before the provider was called (not configured).
    Provider(ProviderError),
    /// The provider refused the removal; already scrubbed of the access token and the client
    /// secret.
    Refused {
        error_type: ErrorType,
        code: Option<String>,
        message: String,
    },
    Db(DbError),
    Token(shared::vault::VaultError),
}

/// Removes the link at its provider when the provider cannot expire it by itself.
async fn remove_at_provider(app: &App, current: &Current, registry: &Registry, link: &SharedLink) -> Removal {
    let tenant = link.base.tenant_id;
    let (connection_id, outcome) = match try_remove(app, current, registry, link).await {
        Ok(()) => return Removal::Done,
        Err((None, RemoveError::Db(DbError::NotFound))) => {
            // The file, folder or connection was deleted meanwhile; deleting them
            // deactivated their links already, and there is no connection to record against.
            return Removal::Done;
        }
        Err((connection, e)) => (connection, e),
    };
    let (error_type, code, message) = match &outcome {
        RemoveError::Provider(e) => (e.error_type(), e.error_code(), e.to_string()),
        RemoveError::Refused { error_type, code, message } => (*error_type, code.clone(), message.clone()),
        RemoveError::Token(e) => (ErrorType::Validation, Some("token_undecryptable".into()), e.to_string()),
        RemoveError::Db(e) => (ErrorType::Api, None, format!("database: {}", shared::error_chain(e))),
    };
    // A database error before the connection was known: nothing to record against.
    let Some(connection_id) = connection_id else {
        tracing::warn!(link_id = %link.base.id, error_type = error_type.as_str(), "expired link not removed at the provider");
        return Removal::Retry;
    };
    let row = scrub_error_row(
        NewSyncError {
            tenant_id: tenant,
            sync_job_id: None,
            connection_id,
            file_id: link.file_id,
            error_type,
            error_code: code,
            error_message: format!("the expired shared link could not be removed at the provider: {message}"),
            stack_trace: None,
            error_metadata: Some(json!({ "source": FUNCTION, "link_id": link.base.id })),
        },
        &[],
    );
    tracing::warn!(
        link_id = %link.base.id,
        error_type = error_type.as_str(),
        code = ?row.error_code,
        "expired link not removed at the provider"
    );
    match app.store.create_error(&row).await {
        Ok(_) => Removal::Recorded,
        Err(e) => {
            tracing::error!(link_id = %link.base.id, error = %shared::error_chain(&e), "cannot record the error; the link is retried");
            Removal::Retry
        }
    }
}

/// Finds the item and connection behind a link and deletes the link at the provider if the
/// provider needs that. The error carries the connection when it is known.
async fn try_remove(
    app: &App,
    current: &Current,
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
    let access = current
        .vault
        .decrypt(TokenContext::access(tenant, conn.base.id), &conn.encrypted_access_token)
        .map_err(|e| (known, RemoveError::Token(e)))?;
    let target = LinkTarget {
        resource_type: link.resource_type,
        item_id: &item_id,
        connection_metadata: conn.connection_metadata.as_ref(),
    };
    let existing = ExistingLink { provider_share_id: link.provider_share_id.as_deref(), share_url: &link.share_url };
    provider.delete_shared_link(&access, &target, &existing).await.map_err(|e| {
        // A provider may quote the request (the access token, the client secret) in its error.
        let client_secret = current.config.providers.get(conn.provider_type).map(|p| p.client_secret.expose_secret());
        let mut secrets = vec![access.expose_secret()];
        secrets.extend(client_secret);
        let scrub = |text: &str, max| scrub_error_text(text, &secrets, max);
        let refused = RemoveError::Refused {
            error_type: e.error_type(),
            code: e.error_code().map(|c| scrub(&c, MAX_ERROR_CODE_BYTES)),
            message: scrub(&e.to_string(), MAX_ERROR_MESSAGE_BYTES),
        };
        (known, refused)
    })?;
    tracing::debug!(link_id = %link.base.id, provider = conn.provider_type.as_str(), "expired link removed at the provider");
    Ok(())
}
