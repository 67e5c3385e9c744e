//! The folder picker: what a connection's drive holds at the provider, so a user configures a
//! folder by picking it rather than by knowing its provider id.
//!
//! - `GET /connections/{id}/items` — the children of a folder (`parent_id`; the drive's root
//!   without it), one provider page at a time, with an opaque cursor ([`cursor`]);
//! - `POST /connections/{id}/items` — a new folder at the provider (the name checked against
//!   the provider's rules first; a name already there is a 409 with the existing item's id);
//! - `GET /connections/{id}/sites` and `GET /connections/{id}/sites/{site_id}/drives` — a
//!   SharePoint connection's sites and their document libraries; a library's `root_id` is the
//!   `parent_id` that browses it, and ids inside it carry the library (see
//!   `shared::providers::browse`).
//!
//! Nothing is stored by browsing. Every provider call goes through
//! [`shared::provider_call::ProviderCall`] (fresh token, one refresh on a 401) under the
//! request's deadline, and its failures map to HTTP the one shared way: throttled 429 with
//! `Retry-After`, timeout 504, other provider failures 502, provider not configured 503, a
//! connection that is not active 409. A connection of another tenant is a 404.

mod cursor;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::api::openapi::BearerJwt;
use shared::api::{
    ApiError, Caller, ErrorEnvelope, JsonBody, Limit, PathId, PathParams, QueryParams, provider_item_id,
};
use shared::app::App;
use shared::content_hash::HashAlg;
use shared::db::{Connection, ConnectionId, PageRequest, ProviderType, TenantId};
use shared::deadline::{Deadline, RequestClock};
use shared::provider_call::ProviderCall;
use shared::providers::browse::{MAX_NAME_CHARS, check_name, child_path};
use shared::providers::{Created, Entry, ItemKind, Library, Site};
use utoipa::OpenApi as _;

use crate::cursor::Listing;

pub fn router(app: Arc<App>) -> Router {
    shared::api::function_router(
        Router::new()
            .route("/connections/{id}/items", get(list_items).post(create_folder))
            .route("/connections/{id}/sites", get(list_sites))
            .route("/connections/{id}/sites/{site_id}/drives", get(list_libraries)),
        app,
    )
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "browse",
        description = "The folder picker: folders, SharePoint sites and libraries at a connection's provider."
    ),
    paths(list_items, create_folder, list_sites, list_libraries),
    modifiers(&BearerJwt)
)]
struct ApiDoc;

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// A file or folder at the provider.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BrowseItem)]
struct Item {
    /// The provider's id: what `parent_id` and `POST /folders`' `provider_folder_id` take.
    id: String,
    name: String,
    kind: KindDoc,
    /// From the drive's root (`/Models/2026`), when the provider tells it (Google Drive does
    /// below the root only through the folder browsed).
    path: Option<String>,
    /// Bytes, for files.
    size: Option<i64>,
    modified_at: Option<DateTime<Utc>>,
    /// The provider's content hash, lowercase hex, in `hash_algorithm`.
    hash: Option<String>,
    /// `quickxor` (OneDrive, SharePoint), `md5` (Google Drive), `dropbox` (Dropbox's content
    /// hash), `sha1` (Box).
    hash_algorithm: Option<&'static str>,
    mime_type: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum KindDoc {
    File,
    Folder,
}

impl Item {
    fn new(entry: Entry, provider: ProviderType, parent_path: Option<&str>) -> Item {
        let path = entry.path.or_else(|| parent_path.map(|p| child_path(p, &entry.item.name)));
        let item = entry.item;
        let hash_algorithm = item.hash.as_ref().map(|_| HashAlg::for_provider(provider).name());
        Item {
            kind: match item.kind {
                ItemKind::File => KindDoc::File,
                ItemKind::Folder => KindDoc::Folder,
            },
            id: item.id,
            name: item.name,
            path,
            size: item.size,
            modified_at: item.modified_at,
            hash: item.hash,
            hash_algorithm,
            mime_type: item.mime_type,
        }
    }
}

/// One page of a folder's children.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BrowseItemPage)]
struct ItemPage {
    /// The folder listed, on the first page of a listing with `parent_id`; `null` otherwise.
    parent: Option<Item>,
    items: Vec<Item>,
    /// Pass as `cursor` for the next page; `null` after the last. Opaque, for this connection
    /// only, honoured for an hour.
    next_cursor: Option<String>,
}

/// The connection named in the path: the caller's (another tenant's is a 404 like an unknown
/// one), ready for provider calls.
async fn open_call(app: &App, tenant: TenantId, id: ConnectionId) -> Result<ProviderCall, ApiError> {
    let connection: Connection = app.store.get_connection(tenant, id).await?;
    Ok(ProviderCall::open(app, connection).await?)
}

fn deadline(clock: &RequestClock, call: &ProviderCall) -> Deadline {
    clock.deadline(call.current().config.request_budget)
}

/// The provider's page size for a `limit` (provider pages are at most this many items; a
/// `folders_only` page may hold fewer).
fn page_size(limit: Option<Limit>) -> u16 {
    limit.map_or(PageRequest::DEFAULT_LIMIT, Limit::get)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ItemsQuery {
    /// The folder whose children to list (an id this API answered, or `root`); the drive's
    /// root when absent. With `cursor`, absent or the same as the listing's.
    #[param(min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$")]
    parent_id: Option<String>,
    /// Only folders (the provider's page is filtered, so a page may hold fewer than `limit`).
    #[serde(default)]
    folders_only: bool,
    #[param(inline)]
    limit: Option<Limit>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, max_length = 8192, pattern = r"^[A-Za-z0-9_-]+$")]
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/connections/{id}/items",
    operation_id = "list_connection_items",
    tag = "browse",
    params(("id" = Uuid, Path, description = "The connection's id"), ItemsQuery),
    responses(
        (status = 200, description = "One page of the folder's children at the provider, folders first where the provider orders them so", body = ItemPage),
        (status = 400, description = "An invalid query parameter (named): a cursor that is not this connection's, expired or altered; a parent_id that names a file", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No connection of the caller's tenant has this id, or parent_id names nothing at the provider", body = ErrorEnvelope),
        (status = 409, description = "The connection is not active; reconnect it", body = ErrorEnvelope),
        (status = 429, description = "The provider throttles the connection; Retry-After says how long to wait when the provider said", body = ErrorEnvelope),
        (status = 502, description = "The provider failed", body = ErrorEnvelope),
        (status = 503, description = "The provider is not configured here", body = ErrorEnvelope),
        (status = 504, description = "The provider did not answer in time", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn list_items(
    State(app): State<Arc<App>>,
    clock: RequestClock,
    caller: Caller,
    PathId(id): PathId<ConnectionId>,
    QueryParams(q): QueryParams<ItemsQuery>,
) -> Result<axum::Json<ItemPage>, ApiError> {
    let parent_id = q.parent_id.map(|p| provider_item_id("parent_id", p)).transpose()?;
    let cursor_text = q.cursor.map(non_empty_cursor).transpose()?;
    let call = open_call(&app, caller.tenant_id, id).await?;
    let now = app.store.now();
    let sealer = &call.current().state_sealer;
    let deadline = deadline(&clock, &call);

    // Where this page starts: a listing's first page, or the page a cursor continues.
    let (listing, page, parent) = match cursor_text {
        Some(text) => {
            let opened = cursor::open(sealer, caller.tenant_id, id, &text, now)?;
            let Listing::Items { parent, .. } = &opened.listing else {
                return Err(ApiError::invalid_field("cursor", "continues another kind of listing"));
            };
            if parent_id.is_some() && parent_id != *parent {
                return Err(ApiError::invalid_field("parent_id", "differs from the listing the cursor continues"));
            }
            (opened.listing, Some(opened.next), None)
        }
        None => {
            let (parent, parent_path) = parent_folder(&call, &deadline, parent_id.as_deref()).await?;
            let parent_ref = parent.as_ref().map(|p| p.item.id.clone()).or(parent_id);
            (Listing::Items { parent: parent_ref, parent_path, folders_only: q.folders_only }, None, parent)
        }
    };
    let Listing::Items { parent: parent_ref, parent_path, folders_only } = &listing else {
        unreachable!("matched above")
    };
    let metadata = call.connection().connection_metadata.as_ref();
    let limit = page_size(q.limit);
    let entries = call
        .run(&deadline, |a| a.provider.browse(a.token, metadata, parent_ref.as_deref(), page.as_deref(), limit))
        .await?;
    let provider = call.provider_type();
    let items = entries
        .entries
        .into_iter()
        .filter(|e| !folders_only || e.item.kind == ItemKind::Folder)
        .map(|e| Item::new(e, provider, parent_path.as_deref()))
        .collect();
    let parent = parent.map(|p| Item::new(p, provider, None));
    let next_cursor = entries.next.map(|next| cursor::seal(sealer, caller.tenant_id, id, listing.clone(), next, now));
    Ok(axum::Json(ItemPage { parent, items, next_cursor }))
}

/// The folder `parent_id` names (a 404 or 400 naming it otherwise), and its path: the
/// provider's when it gives one, `/` for the drive's root (no `parent_id`).
async fn parent_folder(
    call: &ProviderCall,
    deadline: &Deadline,
    parent_id: Option<&str>,
) -> Result<(Option<Entry>, Option<String>), ApiError> {
    match parent_id {
        Some(id) => {
            let parent = call.existing_folder(deadline, "parent_id", id).await?;
            let path = parent.path.clone();
            Ok((Some(parent), path))
        }
        None => Ok((None, Some("/".to_owned()))),
    }
}

/// An empty cursor is named as such; anything else is opened by [`cursor::open`], which
/// refuses what it did not seal (an over-long text among it).
fn non_empty_cursor(text: String) -> Result<String, ApiError> {
    if text.is_empty() {
        return Err(ApiError::invalid_field("cursor", "must not be empty"));
    }
    Ok(text)
}

/// A folder to create at the provider.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BrowseCreateFolderRequest)]
struct CreateBody {
    /// The folder to create it in (an id this API answered, or `root`); the drive's root when
    /// absent or null.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$")]
    parent_id: Option<String>,
    /// The new folder's name, checked against the provider's naming rules (characters it
    /// refuses, reserved names, length) before the provider is asked.
    #[schema(min_length = 1, max_length = 255)]
    name: String,
}

#[utoipa::path(
    post,
    path = "/connections/{id}/items",
    operation_id = "create_connection_folder",
    tag = "browse",
    params(("id" = Uuid, Path, description = "The connection's id")),
    request_body = CreateBody,
    responses(
        (status = 201, description = "The folder, created at the provider", body = Item),
        (status = 400, description = "Malformed JSON, an invalid field (named): a name the provider refuses, a parent_id that names a file", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No connection of the caller's tenant has this id, or parent_id names nothing at the provider", body = ErrorEnvelope),
        (status = 409, description = "The connection is not active (`connection_not_active`), or an item of that name is already in the parent (`name_exists`, with its id in `existing_id`)", body = ErrorEnvelope),
        (status = 429, description = "The provider throttles the connection", body = ErrorEnvelope),
        (status = 502, description = "The provider failed", body = ErrorEnvelope),
        (status = 503, description = "The provider is not configured here", body = ErrorEnvelope),
        (status = 504, description = "The provider did not answer in time", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn create_folder(
    State(app): State<Arc<App>>,
    clock: RequestClock,
    caller: Caller,
    PathId(id): PathId<ConnectionId>,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, axum::Json<Item>), ApiError> {
    let parent_id = body.parent_id.map(|p| provider_item_id("parent_id", p)).transpose()?;
    if body.name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid_field("name", format!("must be at most {MAX_NAME_CHARS} characters")));
    }
    let connection = app.store.get_connection(caller.tenant_id, id).await?;
    check_name(connection.provider_type, &body.name).map_err(|why| ApiError::invalid_field("name", why))?;
    let call = ProviderCall::open(&app, connection).await?;
    let deadline = deadline(&clock, &call);
    let (parent, parent_path) = parent_folder(&call, &deadline, parent_id.as_deref()).await?;
    let metadata = call.connection().connection_metadata.as_ref();
    let name = body.name.as_str();
    let created = call.run(&deadline, |a| a.provider.create_folder(a.token, metadata, parent.as_ref(), name)).await?;
    match created {
        Created::Folder(entry) => {
            Ok((StatusCode::CREATED, axum::Json(Item::new(*entry, call.provider_type(), parent_path.as_deref()))))
        }
        Created::Exists { id } => Err(ApiError::Exists {
            code: "name_exists",
            message: format!("name: an item named `{name}` is already in the parent folder"),
            field: Some("name".into()),
            existing_id: id,
        }),
    }
}

/// A SharePoint site.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BrowseSite)]
struct SiteOut {
    /// The site's Graph id (`host,site-collection-id,site-id`).
    id: String,
    name: String,
    web_url: Option<String>,
    description: Option<String>,
}

impl From<Site> for SiteOut {
    fn from(s: Site) -> SiteOut {
        SiteOut { id: s.id, name: s.name, web_url: s.web_url, description: s.description }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BrowseSitePage)]
struct SitePageOut {
    items: Vec<SiteOut>,
    /// Pass as `cursor` for the next page; `null` after the last.
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SitesQuery {
    /// Words to look for in site names and descriptions; every site the user can see when
    /// absent.
    #[param(min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$")]
    search: Option<String>,
    #[param(inline)]
    limit: Option<Limit>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, max_length = 8192, pattern = r"^[A-Za-z0-9_-]+$")]
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/connections/{id}/sites",
    operation_id = "list_connection_sites",
    tag = "browse",
    params(("id" = Uuid, Path, description = "The connection's id"), SitesQuery),
    responses(
        (status = 200, description = "One page of the SharePoint sites the connection's user can see", body = SitePageOut),
        (status = 400, description = "An invalid query parameter (named), or a connection whose provider has no sites (`unsupported_by_provider`)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No connection of the caller's tenant has this id", body = ErrorEnvelope),
        (status = 409, description = "The connection is not active", body = ErrorEnvelope),
        (status = 429, description = "The provider throttles the connection", body = ErrorEnvelope),
        (status = 502, description = "The provider failed", body = ErrorEnvelope),
        (status = 503, description = "The provider is not configured here", body = ErrorEnvelope),
        (status = 504, description = "The provider did not answer in time", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn list_sites(
    State(app): State<Arc<App>>,
    clock: RequestClock,
    caller: Caller,
    PathId(id): PathId<ConnectionId>,
    QueryParams(q): QueryParams<SitesQuery>,
) -> Result<axum::Json<SitePageOut>, ApiError> {
    let search = q.search.map(|s| provider_item_id("search", s)).transpose()?;
    let cursor_text = q.cursor.map(non_empty_cursor).transpose()?;
    let call = open_call(&app, caller.tenant_id, id).await?;
    let now = app.store.now();
    let sealer = &call.current().state_sealer;
    let (listing, page) = match cursor_text {
        Some(text) => {
            let opened = cursor::open(sealer, caller.tenant_id, id, &text, now)?;
            let Listing::Sites { search: listed } = &opened.listing else {
                return Err(ApiError::invalid_field("cursor", "continues another kind of listing"));
            };
            if search.is_some() && search != *listed {
                return Err(ApiError::invalid_field("search", "differs from the search the cursor continues"));
            }
            (opened.listing, Some(opened.next))
        }
        None => (Listing::Sites { search }, None),
    };
    let Listing::Sites { search } = &listing else { unreachable!("built above") };
    let limit = page_size(q.limit);
    let deadline = deadline(&clock, &call);
    let sites = call.run(&deadline, |a| a.provider.sites(a.token, search.as_deref(), page.as_deref(), limit)).await?;
    let next_cursor = sites.next.map(|next| cursor::seal(sealer, caller.tenant_id, id, listing.clone(), next, now));
    Ok(axum::Json(SitePageOut { items: sites.sites.into_iter().map(SiteOut::from).collect(), next_cursor }))
}

/// A document library of a site.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BrowseLibrary)]
struct LibraryOut {
    /// The library's Graph drive id.
    id: String,
    name: String,
    /// `documentLibrary` for a SharePoint library.
    drive_type: Option<String>,
    web_url: Option<String>,
    /// Pass as `parent_id` to browse the library from its root.
    root_id: String,
}

impl From<Library> for LibraryOut {
    fn from(l: Library) -> LibraryOut {
        LibraryOut { id: l.id, name: l.name, drive_type: l.drive_type, web_url: l.web_url, root_id: l.root_id }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BrowseLibraryList)]
struct LibraryList {
    items: Vec<LibraryOut>,
}

#[utoipa::path(
    get,
    path = "/connections/{id}/sites/{site_id}/drives",
    operation_id = "list_site_libraries",
    tag = "browse",
    params(
        ("id" = Uuid, Path, description = "The connection's id"),
        ("site_id" = String, Path, description = "A site's id as `GET /connections/{id}/sites` answers it", min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001f\u007f-\u009f/]+$"),
    ),
    responses(
        (status = 200, description = "The site's document libraries", body = LibraryList),
        (status = 400, description = "An invalid path parameter (named), or a connection whose provider has no sites (`unsupported_by_provider`)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No connection of the caller's tenant has this id, or the provider has no such site", body = ErrorEnvelope),
        (status = 409, description = "The connection is not active", body = ErrorEnvelope),
        (status = 429, description = "The provider throttles the connection", body = ErrorEnvelope),
        (status = 502, description = "The provider failed", body = ErrorEnvelope),
        (status = 503, description = "The provider is not configured here", body = ErrorEnvelope),
        (status = 504, description = "The provider did not answer in time", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn list_libraries(
    State(app): State<Arc<App>>,
    clock: RequestClock,
    caller: Caller,
    params: PathParams,
) -> Result<axum::Json<LibraryList>, ApiError> {
    let id: ConnectionId = params.id("id")?;
    let site_id = provider_item_id("site_id", params.get("site_id")?.to_owned())?;
    if site_id.contains('/') {
        return Err(ApiError::invalid_field("site_id", "must not contain `/`"));
    }
    let call = open_call(&app, caller.tenant_id, id).await?;
    let deadline = deadline(&clock, &call);
    let metadata = call.connection().connection_metadata.as_ref();
    let libraries = match call.run(&deadline, |a| a.provider.libraries(a.token, metadata, &site_id)).await {
        Ok(libraries) => libraries,
        // Graph's answer for a site id that names no site (or one the user cannot see).
        Err(e) if e.provider_error().is_some_and(is_not_found) => return Err(ApiError::not_found_field("site_id")),
        Err(e) => return Err(e.into()),
    };
    Ok(axum::Json(LibraryList { items: libraries.into_iter().map(LibraryOut::from).collect() }))
}

fn is_not_found(e: &shared::providers::ProviderError) -> bool {
    matches!(e, shared::providers::ProviderError::Rejected { status: 404 | 400, .. })
}
