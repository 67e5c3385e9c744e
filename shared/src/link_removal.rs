//! Removing a connection's shared links at its provider before the grant is revoked.
//! Revoking a grant does not delete the public links made with it, so without this a
//! disconnected account's links would keep working at Google, Dropbox, Box or Microsoft.
//!
//! Best effort, like revocation: nothing here fails the request. Each link the provider does
//! not remove becomes a cloud_sync_errors row on the connection; a failure before any link
//! can be tried (configuration, provider set-up, stored token) or running out of time
//! becomes one row. The links are deactivated here by the deletion whatever happens.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use shared::app::{App, Current};
use shared::db::{Connection, ConnectionLink, ErrorType, NewSyncError, PageRequest, ProviderType};
use shared::providers::{ExistingLink, LinkTarget, ProviderError};
use shared::schedule::{MAX_ERROR_CODE_BYTES, MAX_ERROR_MESSAGE_BYTES, scrub_error_row, scrub_error_text};
use shared::vault::TokenContext;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument as _;

const OPERATION: &str = "remove_shared_link";
/// Links read per query.
const BATCH: u16 = 100;
/// Provider calls in flight at once.
const CONCURRENCY: usize = 8;
/// The whole removal ends after this long, calls in flight included: the function has 29 s,
/// and revocation (up to the 10 s provider timeout) and the deletion still follow.
const BUDGET: Duration = Duration::from_secs(12);

/// What became of one link.
enum Removal {
    Done,
    Failed(ProviderError),
    /// Not tried, or cut off, because the budget ran out.
    OutOfTime,
}

/// Removes every active link into the connection at its provider; a failure is recorded,
/// never returned. Returns how many links the provider did not remove.
pub(crate) async fn remove_at_provider(app: &App, connection: &Connection) -> usize {
    let deadline = Instant::now() + BUDGET;
    let (tenant, id) = (connection.base.tenant_id, connection.base.id);
    let mut setup: Option<(Arc<Current>, SecretString)> = None;
    let mut after = None;
    let mut failed = 0;
    loop {
        let page = match app.store.list_connection_links(tenant, id, PageRequest { after, limit: BATCH }).await {
            Ok(page) => page,
            Err(e) => {
                let why = format!("the links could not be read: {}", shared::error_chain(&e));
                record(app, connection, None, ErrorType::Api, None, why).await;
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
                    record(app, connection, None, error_type, None, why).await;
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
                    record(app, connection, Some(&link), e.error_type(), code, why).await;
                }
            }
        }
        if out_of_time > 0 {
            let why = format!(
                "removing its shared links at the provider stopped after {}s: {out_of_time} link(s) of the last \
                 batch{} were not removed",
                BUDGET.as_secs(),
                if page.next_after.is_some() { " and every later one" } else { "" }
            );
            record(app, connection, None, ErrorType::Timeout, None, why).await;
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
            record(app, connection, None, ErrorType::Auth, None, why).await;
            return failed + 1;
        }
        if Instant::now() >= deadline {
            let why = format!(
                "removing its shared links at the provider stopped after {}s; links after index {} were not tried",
                BUDGET.as_secs(),
                after.unwrap_or_default()
            );
            record(app, connection, None, ErrorType::Timeout, None, why).await;
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

async fn record(
    app: &App,
    connection: &Connection,
    link: Option<&ConnectionLink>,
    error_type: ErrorType,
    error_code: Option<String>,
    message: String,
) {
    tracing::warn!(
        connection_id = %connection.base.id,
        link_id = ?link.map(|l| l.link.base.id),
        error_type = error_type.as_str(),
        "a shared link of a disconnected connection may still be live at the provider"
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
            "provider_type": connection.provider_type,
            "link_id": link.map(|l| l.link.base.id),
        })),
    };
    let new = scrub_error_row(new, &[]);
    if let Err(e) = app.store.create_error(&new).await {
        tracing::error!(error = %e, connection_id = %connection.base.id, "could not record a link left at the provider");
    }
}
