//! The folders API: `POST /folders`, `GET /folders` (connection_id, folder_type, limit,
//! cursor), `GET /folders/{id}`, `PATCH /folders/{id}` and `DELETE /folders/{id}`. Every query
//! is scoped to the caller's tenant; another tenant's id is a 404 like an unknown one. A folder
//! is configured only on an active connection of the caller's tenant, and only for a folder the
//! provider has: `POST /folders` asks the provider for `provider_folder_id` (through the one
//! provider-call path) and stores the provider's own id, path and, unless the body names it,
//! name.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Deserializer};
use shared::api::openapi::BearerJwt;
use shared::api::{
    ApiError, Caller, Cursor, ErrorEnvelope, JsonBody, Limit, ListResponse, PathId, QueryParams, bounded_text,
    page_request, provider_item_id,
};
use shared::app::App;
use shared::db::{
    Connection, ConnectionId, ConnectionStatus, DbError, Folder, FolderFilter, FolderId, FolderPatch,
    FolderPermissions, FolderType, NewFolder, TenantId,
};
use shared::deadline::RequestClock;
use shared::link_removal::{self, Scope};
use shared::provider_call::ProviderCall;
use utoipa::OpenApi as _;

pub fn router(app: Arc<App>) -> Router {
    shared::api::function_router(
        Router::new()
            .route("/folders", get(list).post(create))
            .route("/folders/{id}", get(read).patch(update).delete(remove)),
        app,
    )
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "folders", description = "Folders configured in the caller's cloud connections."),
    paths(create, list, read, update, remove),
    modifiers(&BearerJwt)
)]
struct ApiDoc;

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// VARCHAR(255) columns: the store counts UTF-8 bytes; this refuses NULs first.
const MAX_NAME: usize = 255;
/// `folder_path` is NVARCHAR(MAX); a path longer than this is a mistake, not a folder.
const MAX_PATH_CHARS: usize = 4000;
/// ck_cloud_folders_sync_frequency: five minutes to a week.
const SYNC_MINUTES: std::ops::RangeInclusive<i32> = 5..=10080;

/// Absent leaves the column alone, `null` clears it: serde alone folds both into `None`.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// For columns that cannot be NULL: `null` is refused (naming the field) instead of being
/// read as "leave it alone".
fn not_null<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn checked_path(path: Option<String>) -> Result<Option<String>, ApiError> {
    path.map(|p| bounded_text("folder_path", p, MAX_PATH_CHARS)).transpose()
}

/// How often an auto-syncing folder syncs when the request does not say.
const DEFAULT_SYNC_MINUTES: i32 = 60;

/// The frequency a folder gets: the one given (5 to 10080, else a 400 naming the field), or,
/// for a folder that auto-syncs without one, [`DEFAULT_SYNC_MINUTES`], so the rule of
/// ck_cloud_folders_sync_frequency (auto-sync needs a frequency) always holds.
fn sync_minutes(auto_sync_enabled: bool, minutes: Option<i32>) -> Result<Option<i32>, ApiError> {
    match minutes {
        Some(m) if !SYNC_MINUTES.contains(&m) => {
            Err(ApiError::invalid_field("sync_frequency_minutes", "must be between 5 and 10080"))
        }
        None if auto_sync_enabled => Ok(Some(DEFAULT_SYNC_MINUTES)),
        other => Ok(other),
    }
}

/// The connection a folder is configured on: the caller's, and active.
async fn active_connection(app: &App, tenant: TenantId, id: ConnectionId) -> Result<Connection, ApiError> {
    match app.store.get_connection(tenant, id).await {
        Ok(c) if c.status == ConnectionStatus::Active => Ok(c),
        Ok(c) => Err(ApiError::Conflict {
            code: "connection_not_active",
            message: format!("the connection is {}; reconnect it before configuring folders", c.status),
            field: Some("connection_id".into()),
        }),
        Err(DbError::NotFound) => Err(ApiError::not_found_field("connection_id")),
        Err(e) => Err(e.into()),
    }
}

/// A folder to configure. The tenant comes from the token, never from the body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FolderCreateRequest)]
struct CreateBody {
    connection_id: ConnectionId,
    /// At most 255 bytes, not blank; the provider's name of the folder when absent or null.
    #[schema(max_length = 255, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    folder_name: Option<String>,
    /// The folder's id at the provider, as `GET /connections/{id}/items` answers it (`root`
    /// names the drive's root); at most 255 bytes, unique among the connection's live folders.
    /// The provider must have it, as a folder.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$")]
    provider_folder_id: String,
    /// Used when the provider tells no path (Google Drive below the root); the provider's path
    /// otherwise.
    #[schema(max_length = 4000, pattern = r"^[^\u0000]*$")]
    folder_path: Option<String>,
    folder_type: FolderType,
    /// Making it the default export folder clears the connection's previous one.
    #[serde(default)]
    is_default_export_folder: bool,
    /// Making it the default import folder clears the connection's previous one.
    #[serde(default)]
    is_default_import_folder: bool,
    #[serde(default)]
    auto_sync_enabled: bool,
    /// 5 to 10080; 60 when auto_sync_enabled is true and this is absent or null.
    #[schema(minimum = 5, maximum = 10080)]
    sync_frequency_minutes: Option<i32>,
    /// Defaults to read_write.
    folder_permissions: Option<FolderPermissions>,
}

impl CreateBody {
    /// The folder as the body gives it; the provider's answer fills in the rest
    /// ([`at_provider`]). An absent name is left empty until then.
    fn into_new(self, tenant_id: TenantId) -> Result<NewFolder, ApiError> {
        let sync_frequency_minutes = sync_minutes(self.auto_sync_enabled, self.sync_frequency_minutes)?;
        Ok(NewFolder {
            tenant_id,
            connection_id: self.connection_id,
            folder_name: match self.folder_name {
                Some(name) if name.trim().is_empty() => {
                    return Err(ApiError::invalid_field("folder_name", "must not be blank"));
                }
                Some(name) => bounded_text("folder_name", name, MAX_NAME)?,
                None => String::new(),
            },
            provider_folder_id: provider_item_id("provider_folder_id", self.provider_folder_id)?,
            folder_path: checked_path(self.folder_path)?,
            folder_type: self.folder_type,
            is_default_export_folder: self.is_default_export_folder,
            is_default_import_folder: self.is_default_import_folder,
            auto_sync_enabled: self.auto_sync_enabled,
            sync_frequency_minutes,
            folder_permissions: self.folder_permissions.unwrap_or(FolderPermissions::ReadWrite),
        })
    }
}

#[utoipa::path(
    post,
    path = "/folders",
    operation_id = "create_folder",
    tag = "folders",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The folder was configured", body = Folder),
        (status = 400, description = "Malformed JSON or an invalid field (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "connection_id names no connection of the caller's tenant, or provider_folder_id names nothing at the provider", body = ErrorEnvelope),
        (status = 409, description = "The connection is not active, or the provider folder is already configured on it", body = ErrorEnvelope),
        (status = 429, description = "The provider throttles the connection", body = ErrorEnvelope),
        (status = 502, description = "The provider failed", body = ErrorEnvelope),
        (status = 503, description = "The provider is not configured here", body = ErrorEnvelope),
        (status = 504, description = "The provider did not answer in time", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn create(
    State(app): State<Arc<App>>,
    clock: RequestClock,
    caller: Caller,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, axum::Json<Folder>), ApiError> {
    let mut new = body.into_new(caller.tenant_id)?;
    let connection = active_connection(&app, caller.tenant_id, new.connection_id).await?;
    at_provider(&app, &clock, connection, &mut new).await?;
    let folder = match app.store.create_folder(&new).await {
        // The INSERT is conditional on the connection being active and live: it was revoked,
        // expired or deleted after the check above. Read it again for the answer the check
        // would give now.
        Err(DbError::NotFound) => {
            active_connection(&app, caller.tenant_id, new.connection_id).await?;
            return Err(ApiError::Conflict {
                code: "connection_not_active",
                message: "the connection changed while the folder was being configured; try again".into(),
                field: Some("connection_id".into()),
            });
        }
        other => other?,
    };
    if folder.auto_sync_enabled {
        subscriptions_for(&app, &clock, &folder).await;
    }
    Ok((StatusCode::CREATED, axum::Json(folder)))
}

/// Checks the folder at the provider and takes the provider's word for it: its canonical id
/// (`root` becomes the root's real id, so one folder is never configured twice under two
/// names), its path when the provider tells one, and its name when the body gave none.
async fn at_provider(
    app: &App,
    clock: &RequestClock,
    connection: Connection,
    new: &mut NewFolder,
) -> Result<(), ApiError> {
    let call = ProviderCall::open(app, connection).await?;
    let deadline = clock.deadline(call.current().config.request_budget);
    let entry = call.existing_folder(&deadline, "provider_folder_id", &new.provider_folder_id).await?;
    new.provider_folder_id = bounded_text("provider_folder_id", entry.item.id, MAX_NAME)?;
    if let Some(path) = entry.path {
        new.folder_path = checked_path(Some(path))?;
    }
    if new.folder_name.is_empty() {
        // A drive's root may have no name of its own (Dropbox, Box's "All Files" has one).
        let name = if entry.item.name.is_empty() { "root".to_owned() } else { entry.item.name };
        new.folder_name = truncate_bytes(name, MAX_NAME);
    }
    Ok(())
}

/// Brings the connection's change subscriptions in line with its auto-syncing folders after
/// `folder`'s auto-sync changed (see `shared::subscriptions`). Never fails the request: the
/// folder is configured either way, and polling covers a subscription the provider refused.
async fn subscriptions_for(app: &App, clock: &RequestClock, folder: &Folder) {
    let budget = app.current().await.map(|c| c.config.request_budget).unwrap_or(shared::config::DEFAULT_REQUEST_BUDGET);
    let deadline = clock.deadline(budget);
    shared::subscriptions::reconcile(app, &deadline, folder.base.tenant_id, folder.connection_id).await;
}

/// `text` cut to at most `max` UTF-8 bytes on a character boundary: a provider's name may be
/// longer in bytes than the column (255 characters of Hangul are 765 bytes).
fn truncate_bytes(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only the folders of this connection.
    connection_id: Option<ConnectionId>,
    folder_type: Option<FolderType>,
    #[param(inline)]
    limit: Option<Limit>,
    #[param(inline)]
    cursor: Option<Cursor>,
}

#[utoipa::path(
    get,
    path = "/folders",
    operation_id = "list_folders",
    tag = "folders",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of the caller's live folders, oldest first", body = ListResponse<Folder>),
        (status = 400, description = "An invalid query parameter (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "connection_id names no connection of the caller's tenant (a deleted one still filters)", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<axum::Json<ListResponse<Folder>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_ref())?;
    // Another tenant's (or an unknown) connection is a 404, as everywhere, not an empty page;
    // a deleted one of the tenant's still filters: its history stays listed.
    if let Some(id) = q.connection_id {
        app.store.known_connection(caller.tenant_id, id).await.map_err(ApiError::lookup("connection_id"))?;
    }
    let filter = FolderFilter { connection_id: q.connection_id, folder_type: q.folder_type };
    let rows = app.store.list_folders(caller.tenant_id, &filter, page).await?;
    Ok(axum::Json(ListResponse::from(rows)))
}

#[utoipa::path(
    get,
    path = "/folders/{id}",
    operation_id = "get_folder",
    tag = "folders",
    params(("id" = Uuid, Path, description = "The folder's id")),
    responses(
        (status = 200, description = "The folder", body = Folder),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No live folder of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn read(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<FolderId>,
) -> Result<axum::Json<Folder>, ApiError> {
    Ok(axum::Json(app.store.get_folder(caller.tenant_id, id).await?))
}

/// Changes to a folder: an absent field is left alone, `null` clears a nullable one. The
/// connection and the provider folder are fixed once configured.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FolderPatchRequest)]
struct PatchBody {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, max_length = 255, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    folder_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 4000, pattern = r"^[^\u0000]*$")]
    folder_path: Option<Option<String>>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    folder_type: Option<FolderType>,
    /// true clears the connection's previous default export folder in the same transaction.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    is_default_export_folder: Option<bool>,
    /// true clears the connection's previous default import folder in the same transaction.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    is_default_import_folder: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    auto_sync_enabled: Option<bool>,
    /// 5 to 10080; null (or absent on a folder without one) while auto-sync is on means 60.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 5, maximum = 10080)]
    sync_frequency_minutes: Option<Option<i32>>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    folder_permissions: Option<FolderPermissions>,
}

impl PatchBody {
    /// Checks the body against the folder as it is now, since the auto-sync rule spans two
    /// fields either of which may be left alone.
    fn into_patch(self, current: &Folder) -> Result<FolderPatch, ApiError> {
        let auto_sync = self.auto_sync_enabled.unwrap_or(current.auto_sync_enabled);
        let minutes = self.sync_frequency_minutes.unwrap_or(current.sync_frequency_minutes);
        let settled = sync_minutes(auto_sync, minutes)?;
        // Written when the body set it, or when the default fills a gap the body opened.
        let sync_frequency_minutes = (self.sync_frequency_minutes.is_some() || settled != minutes).then_some(settled);
        Ok(FolderPatch {
            folder_name: self.folder_name.map(|n| bounded_text("folder_name", n, MAX_NAME)).transpose()?,
            folder_path: self.folder_path.map(checked_path).transpose()?,
            folder_type: self.folder_type,
            is_default_export_folder: self.is_default_export_folder,
            is_default_import_folder: self.is_default_import_folder,
            auto_sync_enabled: self.auto_sync_enabled,
            sync_frequency_minutes,
            folder_permissions: self.folder_permissions,
            last_sync_at: None,
        })
    }
}

#[utoipa::path(
    patch,
    path = "/folders/{id}",
    operation_id = "update_folder",
    tag = "folders",
    params(("id" = Uuid, Path, description = "The folder's id")),
    request_body = PatchBody,
    responses(
        (status = 200, description = "The changed folder", body = Folder),
        (status = 400, description = "Malformed JSON, an unknown or invalid field (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No live folder of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn update(
    State(app): State<Arc<App>>,
    clock: RequestClock,
    caller: Caller,
    PathId(id): PathId<FolderId>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<axum::Json<Folder>, ApiError> {
    let current = app.store.get_folder(caller.tenant_id, id).await?;
    let patch = body.into_patch(&current)?;
    let updated = app.store.update_folder(caller.tenant_id, id, &patch).await?;
    if updated.auto_sync_enabled != current.auto_sync_enabled {
        subscriptions_for(&app, &clock, &updated).await;
    }
    Ok(axum::Json(updated))
}

#[utoipa::path(
    delete,
    path = "/folders/{id}",
    operation_id = "delete_folder",
    tag = "folders",
    params(("id" = Uuid, Path, description = "The folder's id")),
    responses(
        (status = 200, description = "The folder as deleted; its live sync jobs are cancelled and links into it (its own and its files') removed at the provider first, then deactivated. A link the provider does not remove is recorded as a sync error and does not stop the deletion", body = Folder),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No live folder of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn remove(
    State(app): State<Arc<App>>,
    clock: RequestClock,
    caller: Caller,
    PathId(id): PathId<FolderId>,
) -> Result<axum::Json<Folder>, ApiError> {
    let folder = app.store.get_folder(caller.tenant_id, id).await?;
    // Deleting only deactivates the links here; at the provider they would keep working.
    link_removal::before_deleting(&app, &clock, caller.tenant_id, folder.connection_id, Scope::Folder(id)).await?;
    let deleted = app.store.delete_folder(caller.tenant_id, id).await?;
    if folder.auto_sync_enabled {
        subscriptions_for(&app, &clock, &folder).await;
    }
    Ok(axum::Json(deleted))
}
