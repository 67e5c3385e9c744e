//! Removing shared links at their provider: one stored link (`shared-links` DELETE,
//! `link-expiry`), or every active link into something about to be deleted here (a connection
//! before its grant is revoked, a folder or a file). Deleting locally only deactivates a link,
//! and revoking a grant does not delete the public links made with it, so without this the
//! links would keep working at Google, Dropbox, Box or Microsoft.
//!
//! Best effort: nothing here fails a request. Each link the provider does not remove becomes a
//! cloud_sync_errors row on the connection; a failure before any link can be tried
//! (configuration, provider set-up, stored token) or running out of time becomes one row.
//! Every call goes through [`ProviderCall`].

use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::json;
use tokio::time::Instant;

use crate::app::App;
use crate::config::DEFAULT_REQUEST_BUDGET;
use crate::db::{
    CloudFile, Connection, ConnectionId, ConnectionLink, DbError, DbResult, FileId, FolderId, Page, PageRequest,
    ResourceType, SharedLink, SharedLinkFilter, TenantId,
};
use crate::deadline::{Deadline, RequestClock};
use crate::provider_call::{CallError, ProviderCall};
use crate::providers::{ExistingLink, LinkTarget, ProviderError};

const OPERATION: &str = "remove_shared_link";
/// Links read per query.
const BATCH: u16 = 100;
/// Provider calls in flight at once.
const CONCURRENCY: usize = 8;

/// The item a stored link is for, and the connection it lives in.
#[derive(Debug, Clone)]
pub struct LinkedItem {
    /// The provider's id of the file or folder (`provider_file_id` / `provider_folder_id`).
    pub provider_item_id: String,
    pub file_id: Option<FileId>,
    pub folder_id: FolderId,
    pub connection: Connection,
}

/// The item and connection behind a link; `None` when the file, folder or connection is
/// gone, whose deletion took the link's activity with it already.
pub async fn linked_item(app: &App, link: &SharedLink) -> DbResult<Option<LinkedItem>> {
    let store = &app.store;
    let tenant = link.base.tenant_id;
    let (file, folder_id) = match (link.resource_type, link.file_id, link.folder_id) {
        (ResourceType::File, Some(file_id), _) => {
            let Some(file) = gone(store.get_file(tenant, file_id).await)? else { return Ok(None) };
            let folder = file.folder_id;
            (Some(file), folder)
        }
        (ResourceType::Folder, _, Some(folder_id)) => (None, folder_id),
        // ck_cloud_shared_links_resource rules this out.
        _ => return Ok(None),
    };
    let Some(folder) = gone(store.get_folder(tenant, folder_id).await)? else { return Ok(None) };
    let Some(connection) = gone(store.get_connection(tenant, folder.connection_id).await)? else {
        return Ok(None);
    };
    Ok(Some(LinkedItem {
        provider_item_id: match &file {
            Some(file) => file.provider_file_id.clone(),
            None => folder.provider_folder_id.clone(),
        },
        file_id: file.map(|f| f.base.id),
        folder_id,
        connection,
    }))
}

/// A row that may be gone: NotFound is `None`.
fn gone<T>(r: DbResult<T>) -> DbResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(DbError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Which links a provider must be asked to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Every link (the user turned it off, or its item is going).
    Always,
    /// Only where the provider cannot expire links by itself (an expired link).
    UnlessProviderExpiresIt,
}

/// What became of one stored link at its provider.
#[derive(Debug)]
pub enum LinkRemoval {
    Removed,
    /// Left at the provider: another active row uses the same provider link (see
    /// [`provider_link_key`]); it goes when the last of them does.
    StillInUse,
    /// Nothing to do: the item or connection is gone, or the provider expires it by itself.
    NotNeeded,
    /// Not removed; the failure is recorded as an error row.
    Recorded(CallError),
    /// Not removed, and the error row could not be written either.
    Unrecorded(CallError),
}

/// Removes one stored link at its provider under `deadline` (keeping `leave` of it), and
/// records a failure; `operation` names it in the error row.
pub async fn remove_link(
    app: &App,
    link: &SharedLink,
    need: Need,
    deadline: &Deadline,
    leave: Duration,
    operation: &str,
) -> DbResult<LinkRemoval> {
    let Some(item) = linked_item(app, link).await? else { return Ok(LinkRemoval::NotNeeded) };
    if another_row_uses(app, link).await? {
        return Ok(LinkRemoval::StillInUse);
    }
    let call = match app.current().await {
        Ok(current) => ProviderCall::with_current(app.store.clone(), current, item.connection.clone()),
        Err(e) => Err(CallError::Configuration(e)),
    };
    let outcome = match &call {
        Ok(call) if need == Need::UnlessProviderExpiresIt && call.provider().expires_links_natively() => {
            return Ok(LinkRemoval::NotNeeded);
        }
        Ok(call) => {
            let target = LinkTarget {
                resource_type: link.resource_type,
                item_id: &item.provider_item_id,
                connection_metadata: item.connection.connection_metadata.as_ref(),
            };
            let existing =
                ExistingLink { provider_share_id: link.provider_share_id.as_deref(), share_url: &link.share_url };
            call.run_leaving(deadline, leave, |a| a.provider.delete_shared_link(a.token, &target, &existing)).await
        }
        Err(_) => Ok(()),
    };
    let error = match (call, outcome) {
        (Ok(_), Ok(())) => return Ok(LinkRemoval::Removed),
        (Ok(call), Err(e)) => {
            let row = call.error_row(
                operation,
                &e,
                &format!("the shared link {} could not be removed at the provider", link.base.id),
            );
            (row, e)
        }
        (Err(e), _) => {
            let row = e.error_row(
                &item.connection,
                operation,
                &format!("the shared link {} could not be removed at the provider", link.base.id),
            );
            (row, e)
        }
    };
    let (row, e) = error;
    let mut row = row.metadata(json!({ "link_id": link.base.id, "shared_link_id": link.base.id }));
    if let Some(file) = item.file_id {
        row = row.file(file);
    }
    tracing::warn!(
        link_id = %link.base.id,
        error_type = e.error_type().as_str(),
        "a shared link may still be live at the provider"
    );
    Ok(if row.record(&app.store).await { LinkRemoval::Recorded(e) } else { LinkRemoval::Unrecorded(e) })
}

/// The provider link a row stands for. Providers hand the same link to several requests
/// (Graph's createLink answers the existing permission of that type and scope, Drive keeps one
/// `anyone` permission per role, Dropbox answers `shared_link_already_exists` with the
/// existing link, Box holds one shared link per item), so several rows can stand for one
/// provider link: its permission id where the provider has one, else its URL, on one item.
pub fn provider_link_key(link: &SharedLink) -> (ResourceType, Option<FileId>, Option<FolderId>, &str) {
    let identity = link.provider_share_id.as_deref().unwrap_or(&link.share_url);
    (link.resource_type, link.file_id, link.folder_id, identity)
}

/// Whether an active row other than `link` stands for the same provider link.
async fn another_row_uses(app: &App, link: &SharedLink) -> DbResult<bool> {
    let filter = match link.resource_type {
        ResourceType::File => SharedLinkFilter { file_id: link.file_id, folder_id: None, is_active: Some(true) },
        ResourceType::Folder => SharedLinkFilter { file_id: None, folder_id: link.folder_id, is_active: Some(true) },
    };
    let key = provider_link_key(link);
    let mut after = None;
    loop {
        let page = app.store.list_links(link.base.tenant_id, &filter, PageRequest { after, limit: BATCH }).await?;
        if page.items.iter().any(|other| other.base.id != link.base.id && provider_link_key(other) == key) {
            return Ok(true);
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(false),
        }
    }
}

/// Which links to remove. All of them must be on `connection`'s folders.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every active link into the connection (on its live folders and files in them).
    Connection,
    /// The active links into a live folder: its own and those of files in it.
    Folder(FolderId),
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

/// For a DELETE of a folder or file: removes the active links the deletion will deactivate
/// at the provider of `connection_id`, within the request's deadline less its reserve (kept
/// for the deletion itself). A connection that is gone took its links' activity with it:
/// nothing to do. Only reading the connection can fail here; the removal itself is best
/// effort (see [`remove_links`]).
pub async fn before_deleting(
    app: &App,
    clock: &RequestClock,
    tenant: TenantId,
    connection_id: ConnectionId,
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
    remove_links(app, &connection, scope, deadline.remaining().saturating_sub(deadline.reserve())).await;
    Ok(())
}

/// Removes the active links of `scope` at `connection`'s provider, all within `budget`,
/// calls in flight included; a failure is recorded, never returned. Returns how many links
/// the provider did not remove.
pub async fn remove_links(app: &App, connection: &Connection, scope: Scope<'_>, budget: Duration) -> usize {
    let deadline = Deadline::at(Instant::now() + budget);
    let mut call: Option<ProviderCall> = None;
    let mut after = None;
    let mut failed = 0;
    let mut tried = std::collections::HashSet::new();
    let meta =
        |link: Option<&ConnectionLink>| json!({ "deleted": scope.as_str(), "link_id": link.map(|l| l.link.base.id) });
    loop {
        let page = match scope.page(app, connection, PageRequest { after, limit: BATCH }).await {
            Ok(page) => page,
            Err(e) => {
                let why = format!("the links could not be read: {}", crate::error_chain(&e));
                record_local(app, connection, scope, &CallError::Store(e), &why).await;
                return failed + 1;
            }
        };
        if page.items.is_empty() {
            return failed;
        }
        if call.is_none() {
            let opened = match app.current().await {
                Ok(current) => ProviderCall::with_current(app.store.clone(), current, connection.clone()),
                Err(e) => Err(CallError::Configuration(e)),
            };
            match opened {
                Ok(opened) => call = Some(opened),
                Err(e) => {
                    let why = "its active shared links were not removed at the provider";
                    record_local(app, connection, scope, &e, why).await;
                    return failed + page.items.len();
                }
            }
        }
        let Some(call) = &call else { return failed };
        let mut token_refused = false;
        let mut out_of_time = 0;
        // Every row of the scope goes, so a provider link several rows stand for is removed
        // once.
        let first_of_their_link: Vec<ConnectionLink> = page
            .items
            .into_iter()
            .filter(|l| {
                let (kind, file, folder, identity) = provider_link_key(&l.link);
                tried.insert((kind, file, folder, identity.to_owned()))
            })
            .collect();
        let outcomes: Vec<(ConnectionLink, Option<CallError>)> = futures_util::stream::iter(first_of_their_link)
            .map(|link| remove_one(call, &deadline, link))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (link, outcome) in outcomes {
            match outcome {
                None => {}
                Some(CallError::Provider(ProviderError::Timeout)) => out_of_time += 1,
                Some(e) => {
                    failed += 1;
                    token_refused |= e.error_type() == crate::db::ErrorType::Auth;
                    let what = format!(
                        "the shared link {} was not removed at {}",
                        link.link.base.id, connection.provider_type
                    );
                    let mut row = call.error_row(OPERATION, &e, &what).metadata(meta(Some(&link)));
                    if let Some(file) = link.link.file_id {
                        row = row.file(file);
                    }
                    warn(connection, scope, Some(&link), &e);
                    row.record(&app.store).await;
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
            record_local(app, connection, scope, &CallError::Provider(ProviderError::Timeout), &why).await;
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
            let refused = CallError::Provider(ProviderError::Rejected { status: 401, code: None, description: None });
            record_local(app, connection, scope, &refused, &why).await;
            return failed + 1;
        }
        if Instant::now() >= deadline.instant() {
            let why = format!(
                "removing its shared links at the provider stopped after {}; links after index {} were not tried",
                seconds(budget),
                after.unwrap_or_default()
            );
            record_local(app, connection, scope, &CallError::Provider(ProviderError::Timeout), &why).await;
            return failed + 1;
        }
    }
}

/// Removes one link of a batch; `None` when removed, or the failure (a timeout when the
/// budget ran out before or during the call).
async fn remove_one(
    call: &ProviderCall,
    deadline: &Deadline,
    link: ConnectionLink,
) -> (ConnectionLink, Option<CallError>) {
    let outcome = {
        let target = LinkTarget {
            resource_type: link.link.resource_type,
            item_id: &link.provider_item_id,
            connection_metadata: call.connection().connection_metadata.as_ref(),
        };
        let existing =
            ExistingLink { provider_share_id: link.link.provider_share_id.as_deref(), share_url: &link.link.share_url };
        call.run_leaving(deadline, Duration::ZERO, |a| a.provider.delete_shared_link(a.token, &target, &existing)).await
    };
    (link, outcome.err())
}

/// "12s", or "1.5s" for a budget with a fraction.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{:.1}s", d.as_secs_f64()) }
}

fn warn(connection: &Connection, scope: Scope<'_>, link: Option<&ConnectionLink>, e: &CallError) {
    tracing::warn!(
        connection_id = %connection.base.id,
        link_id = ?link.map(|l| l.link.base.id),
        error_type = e.error_type().as_str(),
        deleted = scope.as_str(),
        "a shared link of a deleted connection, folder or file may still be live at the provider"
    );
}

/// One row for a failure that concerns no single link (set-up, reading, time, a refused token).
async fn record_local(app: &App, connection: &Connection, scope: Scope<'_>, e: &CallError, why: &str) {
    warn(connection, scope, None, e);
    let row = e.error_row(connection, OPERATION, why).metadata(json!({ "deleted": scope.as_str() }));
    row.record(&app.store).await;
}
