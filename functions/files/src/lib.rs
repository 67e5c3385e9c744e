//! The files API: `GET /files` (folder_id, quodsi_file_type, sync_status, quodsi_entity_id,
//! limit, cursor), `GET /files/{id}`, `GET /files/{id}/content` (the bytes Quodsi holds, see
//! [`content`]), `POST /files/{id}/upload-url` (a URL to send a new version's bytes to, see
//! [`upload`]), `POST /files`, `PATCH /files/{id}` and `DELETE /files/{id}`. Every query is scoped to the caller's tenant; another tenant's id is
//! a 404 like an unknown one. A file is recorded only in a live folder of the caller's tenant.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Deserializer};
use shared::api::openapi::BearerJwt;
use shared::api::{
    ApiError, Caller, Cursor, ErrorEnvelope, JsonBody, Limit, ListResponse, PathId, QueryParams, Timestamp,
    bounded_text, page_request,
};
use shared::app::App;
use shared::db::{
    CloudFile, CloudFileFilter, CloudFilePatch, DbError, FileId, FolderId, NewCloudFile, QuodsiFileType, SyncStatus,
    TenantId,
};
use shared::deadline::RequestClock;
use shared::link_removal::{self, Scope};
use utoipa::OpenApi as _;
use uuid::Uuid;

mod content;
pub mod upload;

pub fn router(app: Arc<App>) -> Router {
    shared::api::function_router(
        Router::new()
            .route("/files", get(list).post(create))
            .route("/files/{id}", get(read).patch(update).delete(remove))
            .route("/files/{id}/content", get(content::content))
            .route("/files/{id}/upload-url", axum::routing::post(upload::upload_url)),
        app,
    )
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "files", description = "Files synchronised between Quodsi and the caller's cloud folders."),
    paths(create, list, read, content::content, upload::upload_url, update, remove),
    modifiers(&BearerJwt)
)]
struct ApiDoc;

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// file_name is NVARCHAR(255), provider_file_id and mime_type VARCHAR(255), content_hash
/// VARCHAR(64): the store checks them in the engine's units (UTF-16 units, UTF-8 bytes); the
/// character bound here only refuses NULs and the grossly long before that.
const MAX_NAME: usize = 255;
const MAX_HASH: usize = 64;
/// `file_path` is NVARCHAR(MAX); a path longer than this is a mistake, not a file.
const MAX_PATH_CHARS: usize = 4000;
/// Pre-signed URLs carry signatures and policies and run to a few kilobytes.
const MAX_URL_CHARS: usize = 8192;

/// Absent leaves the column alone, `null` clears it: serde alone folds both into `None`.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// For columns that cannot be NULL: `null` is refused (naming the field) instead of being
/// read as "leave it alone".
fn not_null<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn text(field: &'static str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    value.map(|v| bounded_text(field, v, max)).transpose()
}

fn nullable_text(
    field: &'static str,
    value: Option<Option<String>>,
    max: usize,
) -> Result<Option<Option<String>>, ApiError> {
    value.map(|v| text(field, v, max)).transpose()
}

fn size(value: Option<i64>) -> Result<Option<i64>, ApiError> {
    match value {
        Some(n) if n < 0 => Err(ApiError::invalid_field("file_size_bytes", "must not be negative")),
        other => Ok(other),
    }
}

fn metadata(value: Option<&serde_json::Value>) -> Result<(), ApiError> {
    match value {
        Some(v) if !(v.is_object() || v.is_null()) => {
            Err(ApiError::invalid_field("file_metadata", "must be a JSON object or null"))
        }
        _ => Ok(()),
    }
}

/// A file to record in one of the caller's folders. The tenant comes from the token, never
/// from the body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FileCreateRequest)]
struct CreateBody {
    folder_id: FolderId,
    quodsi_file_type: QuodsiFileType,
    /// The Quodsi model, scenario or other entity the file belongs to.
    quodsi_entity_id: Option<Uuid>,
    /// The file's id at the provider; at most 255 bytes, unique among the folder's live files.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\u0000]*$")]
    provider_file_id: String,
    /// At most 255 characters (UTF-16 code units), not blank.
    #[schema(max_length = 255, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    file_name: String,
    #[schema(max_length = 4000, pattern = r"^[^\u0000]*$")]
    file_path: Option<String>,
    /// At least 0.
    #[schema(minimum = 0)]
    file_size_bytes: i64,
    /// At most 64 bytes.
    #[schema(max_length = 64, pattern = r"^[^\u0000]*$")]
    content_hash: Option<String>,
    /// At most 255 bytes.
    #[schema(max_length = 255, pattern = r"^[^\u0000]*$")]
    mime_type: Option<String>,
    /// RFC 3339, in years 0001 to 9999 (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    cloud_created_at: Option<Timestamp>,
    /// RFC 3339, in years 0001 to 9999 (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    cloud_modified_at: Option<Timestamp>,
    /// RFC 3339, in years 0001 to 9999 (UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    last_synced_at: Option<Timestamp>,
    /// Defaults to synced.
    sync_status: Option<SyncStatus>,
    #[schema(max_length = 8192, pattern = r"^[^\u0000]*$")]
    upload_url: Option<String>,
    #[schema(max_length = 8192, pattern = r"^[^\u0000]*$")]
    download_url: Option<String>,
    /// A JSON object.
    #[schema(value_type = Option<Object>)]
    file_metadata: Option<serde_json::Value>,
}

impl CreateBody {
    fn into_new(self, tenant_id: TenantId) -> Result<NewCloudFile, ApiError> {
        metadata(self.file_metadata.as_ref())?;
        Ok(NewCloudFile {
            tenant_id,
            folder_id: self.folder_id,
            quodsi_file_type: self.quodsi_file_type,
            quodsi_entity_id: self.quodsi_entity_id,
            provider_file_id: bounded_text("provider_file_id", self.provider_file_id, MAX_NAME)?,
            file_name: bounded_text("file_name", self.file_name, MAX_NAME)?,
            file_path: text("file_path", self.file_path, MAX_PATH_CHARS)?,
            file_size_bytes: size(Some(self.file_size_bytes))?.unwrap_or_default(),
            content_hash: text("content_hash", self.content_hash, MAX_HASH)?,
            mime_type: text("mime_type", self.mime_type, MAX_NAME)?,
            cloud_created_at: self.cloud_created_at.map(Timestamp::into_inner),
            cloud_modified_at: self.cloud_modified_at.map(Timestamp::into_inner),
            last_synced_at: self.last_synced_at.map(Timestamp::into_inner),
            sync_status: self.sync_status.unwrap_or(SyncStatus::Synced),
            upload_url: text("upload_url", self.upload_url, MAX_URL_CHARS)?,
            download_url: text("download_url", self.download_url, MAX_URL_CHARS)?,
            file_metadata: self.file_metadata.filter(|m| !m.is_null()),
        })
    }
}

#[utoipa::path(
    post,
    path = "/files",
    operation_id = "create_file",
    tag = "files",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The file record", body = CloudFile),
        (status = 400, description = "Malformed JSON or an invalid field (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "folder_id names no live folder of the caller's tenant", body = ErrorEnvelope),
        (status = 409, description = "The provider file is already recorded in the folder", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, axum::Json<CloudFile>), ApiError> {
    let new = body.into_new(caller.tenant_id)?;
    match app.store.get_folder(caller.tenant_id, new.folder_id).await {
        Err(DbError::NotFound) => return Err(ApiError::not_found_field("folder_id")),
        other => other?,
    };
    let file = app.store.create_file(&new).await?;
    Ok((StatusCode::CREATED, axum::Json(file)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only the files of this folder.
    folder_id: Option<FolderId>,
    quodsi_file_type: Option<QuodsiFileType>,
    sync_status: Option<SyncStatus>,
    /// Only the files of this Quodsi entity.
    quodsi_entity_id: Option<Uuid>,
    #[param(inline)]
    limit: Option<Limit>,
    #[param(inline)]
    cursor: Option<Cursor>,
}

#[utoipa::path(
    get,
    path = "/files",
    operation_id = "list_files",
    tag = "files",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of the caller's live files, oldest first", body = ListResponse<CloudFile>),
        (status = 400, description = "An invalid query parameter (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "folder_id names no folder of the caller's tenant (a deleted one still filters)", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<axum::Json<ListResponse<CloudFile>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_ref())?;
    // Another tenant's (or an unknown) folder is a 404, as everywhere, not an empty page;
    // a deleted one of the tenant's still filters: its history stays listed.
    if let Some(id) = q.folder_id {
        app.store.known_folder(caller.tenant_id, id).await.map_err(ApiError::lookup("folder_id"))?;
    }
    let filter = CloudFileFilter {
        folder_id: q.folder_id,
        quodsi_file_type: q.quodsi_file_type,
        sync_status: q.sync_status,
        quodsi_entity_id: q.quodsi_entity_id,
    };
    let mut rows = app.store.list_files(caller.tenant_id, &filter, page).await?;
    // Files with an upload URL out show whether new bytes arrived (no other file is looked at).
    let mut settled = Vec::with_capacity(rows.items.len());
    for file in std::mem::take(&mut rows.items) {
        settled.push(upload::settle(&app, file).await?);
    }
    rows.items = settled;
    Ok(axum::Json(ListResponse::from(rows)))
}

#[utoipa::path(
    get,
    path = "/files/{id}",
    operation_id = "get_file",
    tag = "files",
    params(("id" = Uuid, Path, description = "The file record's id")),
    responses(
        (status = 200, description = "The file record", body = CloudFile),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No live file of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn read(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<FileId>,
) -> Result<axum::Json<CloudFile>, ApiError> {
    let file = app.store.get_file(caller.tenant_id, id).await?;
    Ok(axum::Json(upload::settle(&app, file).await?))
}

/// Changes to a file record: an absent field is left alone, `null` clears a nullable one. The
/// folder, the provider file and the Quodsi type are fixed once recorded.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FilePatchRequest)]
struct PatchBody {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, max_length = 255, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    file_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 4000, pattern = r"^[^\u0000]*$")]
    file_path: Option<Option<String>>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, minimum = 0)]
    file_size_bytes: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 64, pattern = r"^[^\u0000]*$")]
    content_hash: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 255, pattern = r"^[^\u0000]*$")]
    mime_type: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    cloud_modified_at: Option<Option<Timestamp>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_synced_at: Option<Option<Timestamp>>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    sync_status: Option<SyncStatus>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 8192, pattern = r"^[^\u0000]*$")]
    upload_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 8192, pattern = r"^[^\u0000]*$")]
    download_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    file_metadata: Option<Option<serde_json::Value>>,
}

impl PatchBody {
    fn into_patch(self) -> Result<CloudFilePatch, ApiError> {
        metadata(self.file_metadata.as_ref().and_then(Option::as_ref))?;
        Ok(CloudFilePatch {
            file_name: text("file_name", self.file_name, MAX_NAME)?,
            file_path: nullable_text("file_path", self.file_path, MAX_PATH_CHARS)?,
            file_size_bytes: size(self.file_size_bytes)?,
            content_hash: nullable_text("content_hash", self.content_hash, MAX_HASH)?,
            mime_type: nullable_text("mime_type", self.mime_type, MAX_NAME)?,
            cloud_modified_at: self.cloud_modified_at.map(|t| t.map(Timestamp::into_inner)),
            last_synced_at: self.last_synced_at.map(|t| t.map(Timestamp::into_inner)),
            sync_status: self.sync_status,
            upload_url: nullable_text("upload_url", self.upload_url, MAX_URL_CHARS)?,
            download_url: nullable_text("download_url", self.download_url, MAX_URL_CHARS)?,
            file_metadata: self.file_metadata,
        })
    }
}

#[utoipa::path(
    patch,
    path = "/files/{id}",
    operation_id = "update_file",
    tag = "files",
    params(("id" = Uuid, Path, description = "The file record's id")),
    request_body = PatchBody,
    responses(
        (status = 200, description = "The changed file record", body = CloudFile),
        (status = 400, description = "Malformed JSON, an unknown or invalid field (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No live file of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn update(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<FileId>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<axum::Json<CloudFile>, ApiError> {
    let patch = body.into_patch()?;
    Ok(axum::Json(app.store.update_file(caller.tenant_id, id, &patch).await?))
}

#[utoipa::path(
    delete,
    path = "/files/{id}",
    operation_id = "delete_file",
    tag = "files",
    params(("id" = Uuid, Path, description = "The file record's id")),
    responses(
        (status = 200, description = "The file record as deleted; links to it are removed at the provider first, then deactivated. A link the provider does not remove is recorded as a sync error and does not stop the deletion", body = CloudFile),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No live file of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn remove(
    State(app): State<Arc<App>>,
    clock: RequestClock,
    caller: Caller,
    PathId(id): PathId<FileId>,
) -> Result<axum::Json<CloudFile>, ApiError> {
    let file = app.store.get_file(caller.tenant_id, id).await?;
    // Deleting only deactivates the links here; at the provider they would keep working. A
    // deleted folder took its files' links' activity with it already.
    match app.store.get_folder(caller.tenant_id, file.folder_id).await {
        Ok(folder) => {
            let scope = Scope::File(&file);
            link_removal::before_deleting(&app, &clock, caller.tenant_id, folder.connection_id, scope).await?;
        }
        Err(shared::db::DbError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(axum::Json(app.store.delete_file(caller.tenant_id, id).await?))
}
