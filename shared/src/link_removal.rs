//! Removing shared links at their provider before their item is deleted here: before a
//! connection's grant is revoked (`connections` DELETE), and before a folder or file is
//! deleted (`folders` and `files` DELETE). Deleting locally only deactivates a link, and
//! revoking a grant does not delete the public links made with it, so without this the
//! links would keep working at Google, Dropbox, Box or Microsoft.
//!
//! Best effort: nothing here fails the request. Each link the provider does not remove
//! becomes a cloud_sync_errors row on the connection; a failure before any link can be tried
//! (configuration, provider set-up, stored token) or running out of time becomes one row.
//! The links are deactivated by the local deletion whatever happens.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::app::{App, Current};
use crate::config::DEFAULT_REQUEST_BUDGET;
use crate::db::{
    CloudFile, Connection, ConnectionLink, DbError, DbResult, ErrorType, NewSyncError, Page, PageRequest, ProviderType,
    SharedLinkFilter, TenantId,
};
use crate::deadline::RequestClock;
use crate::error_rows::{MAX_ERROR_CODE_BYTES, MAX_ERROR_MESSAGE_BYTES, scrub_error_row, scrub_error_text};
use crate::providers::{ExistingLink, LinkTarget, ProviderError};
use crate::vault::TokenContext;

const OPERATION: &str = "remove_shared_link";
/// Links read per query.
const BATCH: u16 = 100;
/// Provider calls in flight at once.
const CONCURRENCY: usize = 8;

/// Which links to remove. All of them must be on `connection`'s folders.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every active link into the connection (on its live folders and files in them).
    Connection,
    /// The active links into a live folder: its own and those of files in it.
    Folder(Uuid),
    /// The active links of a file.
    File(&'a CloudFile),
}

impl Scope<'_> {
    fn as_str(&self) -> &'static str {
        match self {
            Scope::Connection => "connection",
            Scope::Folder(_) => "folder",
            Scope::File(_) => "file",
        }
    }

    async fn page(&self, app: &App, connection: &Connection, page: PageRequest) -> DbResult<Page<ConnectionLink>> {
        let tenant = connection.base.tenant_id;
        match self {
            Scope::Connection => app.store.list_connection_links(tenant, connection.base.id, page).await,
            Scope::Folder(folder) => app.store.list_folder_links(tenant, *folder, page).await,
            Scope::File(file) => {
                let filter = SharedLinkFilter { file_id: Some(file.base.id), folder_id: None, is_active: Some(true) };
                let links = app.store.list_links(tenant, &filter, page).await?;
                let item = |link| ConnectionLink { link, provider_item_id: file.provider_file_id.clone() };
                Ok(Page { items: links.items.into_iter().map(item).collect(), next_after: links.next_after })
            }
        }
    }
}

/// What became of one link.
enum Removal {
    Done,
    Failed(ProviderError),
    /// Not tried, or cut off, because the budget ran out.
    OutOfTime,
}

/// For a DELETE of a folder or file: removes the active links the deletion will deactivate
/// at the provider of `connection_id`, within the request's deadline less its reserve (kept
/// for the deletion itself). A connection that is gone took its links' activity with it:
/// nothing to do. Only reading the connection can fail here; the removal itself is best
/// effort (see [`remove_at_provider`]).
pub async fn before_deleting(
    app: &App,
    clock: &RequestClock,
    tenant: TenantId,
    connection_id: Uuid,
    scope: Scope<'_>,
) -> Result<(), DbError> {
    let connection = match app.store.get_connection(tenant, connection_id).await {
        Ok(connection) => connection,
        Err(DbError::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    // A configuration that cannot be read is recorded by the removal itself.
    let budget = app.current().await.map(|c| c.config.request_budget).unwrap_or(DEFAULT_REQUEST_BUDGET);
    let deadline = clock.deadline(budget);
    remove_at_provider(app, &connection, scope, deadline.remaining().saturating_sub(deadline.reserve())).await;
    Ok(())
}

/// Removes the active links of `scope` at `connection`'s provider, all within `budget`,
/// calls in flight included; a failure is recorded, never returned. Returns how many links
/// the provider did not remove.
pub async fn remove_at_provider(app: &App, connection: &Connection, scope: Scope<'_>, budget: Duration) -> usize {
    let deadline = Instant::now() + budget;
    let mut setup: Option<(Arc<Current>, SecretString)> = None;
    let mut after = None;
    let mut failed = 0;
    loop {
        let page = match scope.page(app, connection, PageRequest { after, limit: BATCH }).await {
            Ok(page) => page,
            Err(e) => {
                let why = format!("the links could not be read: {}", crate::error_chain(&e));
                record(app, connection, scope, None, ErrorType::Api, None, why).await;
                return failed + 1;
            }
        };
        if page.items.is_empty() {
            return failed;
        }
        if setup.is_none() {
            match prepare(app, connection).await {
                Ok(ready) => setup = Some(ready),
                Err((error_type, why)) => {
                    let why = format!("its active shared links were not removed at the provider: {why}");
                    record(app, connection, scope, None, error_type, None, why).await;
                    return failed + page.items.len();
                }
            }
        }
        let Some((current, access)) = &setup else { return failed };
        let mut token_refused = false;
        let mut out_of_time = 0;
        for (link, outcome) in remove_batch(current, access, connection, page.items, deadline).await {
            match outcome {
                Removal::Done => {}
                Removal::OutOfTime => out_of_time += 1,
                Removal::Failed(e) => {
                    failed += 1;
                    token_refused |= e.error_type() == ErrorType::Auth;
                    // A provider may quote the request (the token, the client secret) in its error.
                    let client_secret =
                        current.config.providers.get(connection.provider_type).map(|p| p.client_secret.expose_secret());
                    let mut secrets = vec![access.expose_secret()];
                    secrets.extend(client_secret);
                    let why = scrub_error_text(
                        &format!(
                            "the shared link {} was not removed at {}: {e}",
                            link.link.base.id, connection.provider_type
                        ),
                        &secrets,
                        MAX_ERROR_MESSAGE_BYTES,
                    );
                    let code = e.error_code().map(|c| scrub_error_text(&c, &secrets, MAX_ERROR_CODE_BYTES));
                    record(app, connection, scope, Some(&link), e.error_type(), code, why).await;
                }
            }
        }
        if out_of_time > 0 {
            let why = format!(
                "removing its shared links at the provider stopped after {}: {out_of_time} link(s) of the last \
                 batch{} were not removed",
                seconds(budget),
                if page.next_after.is_some() { " and every later one" } else { "" }
            );
            record(app, connection, scope, None, ErrorType::Timeout, None, why).await;
            return failed + out_of_time;
        }
        after = match page.next_after {
            Some(next) => Some(next),
            None => return failed,
        };
        if token_refused {
            // The provider refused the token itself: every further link would fail the same
            // way, one error row each, so stop with one row saying so.
            let why = format!(
                "the provider refused the access token; its shared links after index {} were not tried",
                after.unwrap_or_default()
            );
            record(app, connection, scope, None, ErrorType::Auth, None, why).await;
            return failed + 1;
        }
        if Instant::now() >= deadline {
            let why = format!(
                "removing its shared links at the provider stopped after {}; links after index {} were not tried",
                seconds(budget),
                after.unwrap_or_default()
            );
            record(app, connection, scope, None, ErrorType::Timeout, None, why).await;
            return failed + 1;
        }
    }
}

/// The configuration and the access token the removals use.
async fn prepare(app: &App, connection: &Connection) -> Result<(Arc<Current>, SecretString), (ErrorType, String)> {
    let current = app.current().await.map_err(|e| (ErrorType::Validation, format!("configuration: {e}")))?;
    current
        .providers()
        .and_then(|r| r.get(connection.provider_type).map(|_| ()))
        .map_err(|e| (e.error_type(), e.to_string()))?;
    let context = TokenContext::access(connection.base.tenant_id, connection.base.id);
    let access = current
        .vault
        .decrypt(context, &connection.encrypted_access_token)
        .map_err(|e| (ErrorType::Auth, format!("stored token: {e}")))?;
    Ok((current, access))
}

/// Removes one batch, at most [`CONCURRENCY`] calls at a time and nothing past `deadline`;
/// the outcome of each link.
async fn remove_batch(
    current: &Arc<Current>,
    access: &SecretString,
    connection: &Connection,
    links: Vec<ConnectionLink>,
    deadline: Instant,
) -> Vec<(ConnectionLink, Removal)> {
    let mut running = JoinSet::new();
    let mut done = Vec::with_capacity(links.len());
    let metadata = connection.connection_metadata.clone();
    for link in links {
        if running.len() >= CONCURRENCY
            && let Some(joined) = running.join_next().await
        {
            done.push(joined);
        }
        if Instant::now() >= deadline {
            done.push(Ok((link, Removal::OutOfTime)));
            continue;
        }
        let (current, access, metadata) = (Arc::clone(current), access.clone(), metadata.clone());
        let provider = connection.provider_type;
        let task = async move {
            let call = remove_one(&current, provider, &access, metadata.as_ref(), &link);
            let outcome = match tokio::time::timeout_at(deadline, call).await {
                Ok(Ok(())) => Removal::Done,
                Ok(Err(e)) => Removal::Failed(e),
                Err(_) => Removal::OutOfTime,
            };
            (link, outcome)
        };
        running.spawn(task.instrument(tracing::Span::current()));
    }
    while let Some(joined) = running.join_next().await {
        done.push(joined);
    }
    done.into_iter()
        .filter_map(|joined| joined.map_err(|e| tracing::error!(error = %e, "a link removal task failed")).ok())
        .collect()
}

async fn remove_one(
    current: &Current,
    provider: ProviderType,
    access: &SecretString,
    metadata: Option<&serde_json::Value>,
    link: &ConnectionLink,
) -> Result<(), ProviderError> {
    let provider = current.providers()?.get(provider)?;
    let target = LinkTarget {
        resource_type: link.link.resource_type,
        item_id: &link.provider_item_id,
        connection_metadata: metadata,
    };
    let existing =
        ExistingLink { provider_share_id: link.link.provider_share_id.as_deref(), share_url: &link.link.share_url };
    provider.delete_shared_link(access, &target, &existing).await
}

/// "12s", or "1.5s" for a budget with a fraction.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{:.1}s", d.as_secs_f64()) }
}

async fn record(
    app: &App,
    connection: &Connection,
    scope: Scope<'_>,
    link: Option<&ConnectionLink>,
    error_type: ErrorType,
    error_code: Option<String>,
    message: String,
) {
    tracing::warn!(
        connection_id = %connection.base.id,
        link_id = ?link.map(|l| l.link.base.id),
        error_type = error_type.as_str(),
        deleted = scope.as_str(),
        "a shared link of a deleted connection, folder or file may still be live at the provider"
    );
    let new = NewSyncError {
        tenant_id: connection.base.tenant_id,
        sync_job_id: None,
        connection_id: connection.base.id,
        file_id: link.and_then(|l| l.link.file_id),
        error_type,
        error_code,
        error_message: message,
        stack_trace: None,
        error_metadata: Some(json!({
            "operation": OPERATION,
            "deleted": scope.as_str(),
            "provider_type": connection.provider_type,
            "link_id": link.map(|l| l.link.base.id),
        })),
    };
    let new = scrub_error_row(new, &[]);
    if let Err(e) = app.store.create_error(&new).await {
        tracing::error!(error = %crate::error_chain(&e), connection_id = %connection.base.id, "could not record a link left at the provider");
    }
}
