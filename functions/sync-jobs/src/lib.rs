//! The sync-jobs API: `POST /sync-jobs`, `GET /sync-jobs` (folder_id, status, limit, cursor),
//! `GET /sync-jobs/{id}`, `PATCH /sync-jobs/{id}` (progress and transitions) and
//! `POST /sync-jobs/{id}/cancel`. Every query is scoped to the caller's tenant; another
//! tenant's id is a 404 like an unknown one.
//!
//! A job moves pending → running → completed | failed, or pending | running → cancelled
//! ([`JobStatus::can_become`]); the store applies a transition only if the job is still in the
//! status it was read in, stamps started_at / completed_at, and on completion records the sync
//! on the folder and its connection in the same transaction.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Deserializer};
use shared::api::openapi::{BearerJwt, ClosedVariants};
use shared::api::{
    ApiError, Caller, Cursor, ErrorEnvelope, JsonBody, Limit, ListResponse, PathId, QueryParams, bounded_text,
    page_request,
};
use shared::app::App;
use shared::db::{
    ConnectionId, ConnectionStatus, DbError, Folder, FolderFilter, FolderId, JOB_CHECKPOINT_KEY, JobId, JobStatus,
    JobType, JobUpdate, NewSyncJob, PageRequest, Percent, ProviderType, SyncJob, SyncJobFilter, TenantId,
};
use shared::objects::ObjectKey;
use utoipa::OpenApi as _;

pub fn router(app: Arc<App>) -> Router {
    shared::api::function_router(
        Router::new()
            .route("/sync-jobs", get(list).post(create))
            .route("/sync-jobs/{id}", get(read).patch(update))
            .route("/sync-jobs/{id}/cancel", post(cancel)),
        app,
    )
}

/// Unknown fields are refused in every shape of the create request.
const CLOSED_CREATE_REQUEST: ClosedVariants = ClosedVariants("SyncJobCreateRequest");

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "sync-jobs", description = "Sync jobs between Quodsi and the caller's cloud folders."),
    paths(create, list, read, update, cancel),
    modifiers(&BearerJwt, &CLOSED_CREATE_REQUEST)
)]
struct ApiDoc;

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `error_message` is NVARCHAR(MAX); a worker's message longer than this is a dump, not a message.
const MAX_ERROR_MESSAGE_CHARS: usize = 4000;

/// Absent leaves the column alone, `null` clears it: serde alone folds both into `None`.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// For columns that cannot be NULL: `null` is refused (naming the field) instead of being
/// read as "leave it alone".
fn not_null<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn not_negative<T: PartialOrd + Default>(field: &'static str, value: Option<T>) -> Result<(), ApiError> {
    match value {
        Some(v) if v < T::default() => Err(ApiError::invalid_field(field, "must not be negative")),
        _ => Ok(()),
    }
}

/// The most provider files one import job may name.
const MAX_IMPORT_FILES: usize = 1000;
/// `cloud_files.provider_file_id` is VARCHAR(255).
const MAX_PROVIDER_ID_BYTES: usize = 255;

/// An import names the provider files it pulls: `job_metadata.file_ids`, 1 to 1000 distinct
/// provider ids. Checked before anything is written, so a bad list is a 400 naming it.
fn check_import(metadata: Option<&serde_json::Value>) -> Result<(), ApiError> {
    const FIELD: &str = "job_metadata.file_ids";
    let ids = metadata.and_then(|m| m.get("file_ids")).ok_or_else(|| {
        ApiError::invalid_field(FIELD, "is required for an import: the provider ids of the files to pull")
    })?;
    let ids = ids.as_array().ok_or_else(|| ApiError::invalid_field(FIELD, "must be an array of provider file ids"))?;
    if ids.is_empty() || ids.len() > MAX_IMPORT_FILES {
        return Err(ApiError::invalid_field(FIELD, format!("must name 1 to {MAX_IMPORT_FILES} files")));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        let field = format!("{FIELD}[{i}]");
        let id = id.as_str().ok_or_else(|| ApiError::invalid_field(field.clone(), "must be a string"))?;
        let printable = id.bytes().all(|b| (b' '..=b'~').contains(&b));
        if id.trim().is_empty() || id.len() > MAX_PROVIDER_ID_BYTES || !printable {
            return Err(ApiError::invalid_field(
                field,
                format!("must be a provider file id of 1 to {MAX_PROVIDER_ID_BYTES} printable ASCII characters"),
            ));
        }
        if !seen.insert(id) {
            return Err(ApiError::invalid_field(field, "names a file already in the list"));
        }
    }
    Ok(())
}

/// The most objects one export job may name.
const MAX_EXPORT_OBJECTS: usize = 100;

/// An export names the Quodsi objects it puts into the folder: `job_metadata.objects`, 1 to
/// 100 of `{"key": …, "name": …}`. Each key is relative to the tenant's prefix and names an
/// object there; each name (the key's last segment when absent) must be one the provider
/// takes, and the names distinct. Checked before anything is written.
async fn check_export(
    app: &App,
    tenant: TenantId,
    provider: ProviderType,
    metadata: Option<&serde_json::Value>,
) -> Result<(), ApiError> {
    const FIELD: &str = "job_metadata.objects";
    let objects = metadata.and_then(|m| m.get("objects")).ok_or_else(|| {
        ApiError::invalid_field(FIELD, "is required for an export: the Quodsi objects to put into the folder")
    })?;
    let objects = objects.as_array().ok_or_else(|| ApiError::invalid_field(FIELD, "must be an array of objects"))?;
    if objects.is_empty() || objects.len() > MAX_EXPORT_OBJECTS {
        return Err(ApiError::invalid_field(FIELD, format!("must name 1 to {MAX_EXPORT_OBJECTS} objects")));
    }
    let store = app.objects().map_err(|why| {
        tracing::error!(why, "no object store for an export");
        ApiError::Unavailable {
            code: "object_store_unavailable",
            message: "Quodsi's file store is not available".into(),
        }
    })?;
    let mut names = std::collections::BTreeSet::new();
    for (i, object) in objects.iter().enumerate() {
        let field = |name: &str| format!("{FIELD}[{i}].{name}");
        let Some(object) = object.as_object() else {
            return Err(ApiError::invalid_field(format!("{FIELD}[{i}]"), "must be an object with `key` and `name`"));
        };
        if let Some(unknown) = object.keys().find(|k| !matches!(k.as_str(), "key" | "name")) {
            return Err(ApiError::invalid_field(field(unknown), "is not a field of an export object"));
        }
        let key = object.get("key").and_then(serde_json::Value::as_str).ok_or_else(|| {
            ApiError::invalid_field(field("key"), "is required: the object's key relative to the tenant's files")
        })?;
        let object_key =
            ObjectKey::of_tenant(tenant, key).map_err(|e| ApiError::invalid_field(field("key"), e.to_string()))?;
        let name = match object.get("name") {
            None => key.rsplit('/').next().unwrap_or_default(),
            Some(name) => name.as_str().ok_or_else(|| ApiError::invalid_field(field("name"), "must be a string"))?,
        };
        shared::providers::browse::check_name(provider, name)
            .map_err(|why| ApiError::invalid_field(field("name"), why))?;
        if !names.insert(name.to_owned()) {
            return Err(ApiError::invalid_field(field("name"), "is the name of another object of the export"));
        }
        match store.head(&object_key).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(ApiError::invalid_field(field("key"), "names no object in Quodsi's files")),
            Err(e) => return Err(ApiError::internal(e)),
        }
    }
    Ok(())
}

/// The connection's default export folder (`is_default_export_folder`): a 404 naming
/// `connection_id` for a connection the caller does not have, a 409 when it has none.
async fn default_export_folder(app: &App, tenant: TenantId, connection: ConnectionId) -> Result<Folder, ApiError> {
    match app.store.get_connection(tenant, connection).await {
        Err(DbError::NotFound) => return Err(ApiError::not_found_field("connection_id")),
        other => other?,
    };
    let filter = FolderFilter { connection_id: Some(connection), ..FolderFilter::default() };
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
    loop {
        let rows = app.store.list_folders(tenant, &filter, page).await?;
        if let Some(folder) = rows.items.into_iter().find(|f| f.is_default_export_folder) {
            return Ok(folder);
        }
        match rows.next_after {
            Some(after) => page = PageRequest { after: Some(after), ..page },
            None => break,
        }
    }
    Err(ApiError::Conflict {
        code: "no_default_export_folder",
        message: "the connection has no default export folder; name folder_id, or mark one of its folders the default"
            .into(),
        field: Some("folder_id".into()),
    })
}

/// A job to start on one of the caller's folders. The tenant and the initiating user come from
/// the token, never from the body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// Required, except for an export that names `connection_id` instead: the connection's
    /// default export folder.
    folder_id: Option<FolderId>,
    connection_id: Option<ConnectionId>,
    /// Must fit the folder's permissions: a read_only folder is never written to
    /// (upload, export, bidirectional), a write_only folder never read from (download,
    /// import, bidirectional).
    job_type: JobType,
    /// Details for the worker; a JSON object. An import names the provider files to pull in
    /// `file_ids` (1 to 1000 distinct ids); other keys are kept as given, but for `checkpoint`,
    /// the worker's own (a 400).
    job_metadata: Option<serde_json::Value>,
}

/// The create request as the OpenAPI document states it, one shape per `job_type` (an import
/// must name its files). `CreateBody` parses the request, so a wrong field is a 400 naming
/// it; this type only describes it, and a test holds the two to the same fields.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "job_type", rename_all = "snake_case", deny_unknown_fields)]
#[schema(as = SyncJobCreateRequest)]
#[allow(dead_code)]
enum CreateRequestDoc {
    /// Pulls the provider files `job_metadata.file_ids` names into the folder's records.
    Import { folder_id: FolderId, job_metadata: ImportMetadata },
    /// Pulls the folder's whole subtree.
    Download {
        folder_id: FolderId,
        /// Details for the worker, kept as given; a `checkpoint` key is the worker's own (a 400).
        #[schema(value_type = Option<Object>)]
        job_metadata: Option<serde_json::Value>,
    },
    Upload {
        folder_id: FolderId,
        /// Details for the worker, kept as given; a `checkpoint` key is the worker's own (a 400).
        #[schema(value_type = Option<Object>)]
        job_metadata: Option<serde_json::Value>,
    },
    Bidirectional {
        folder_id: FolderId,
        /// Details for the worker, kept as given; a `checkpoint` key is the worker's own (a 400).
        #[schema(value_type = Option<Object>)]
        job_metadata: Option<serde_json::Value>,
    },
    /// Puts the Quodsi objects `job_metadata.objects` names into the folder; without
    /// `folder_id`, into the default export folder of `connection_id`.
    Export { folder_id: Option<FolderId>, connection_id: Option<ConnectionId>, job_metadata: ExportMetadata },
}

/// An export's `job_metadata`: other keys are kept as given, but for `checkpoint` (a 400).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = SyncJobExportMetadata)]
#[allow(dead_code)]
pub(crate) struct ExportMetadata {
    /// 1 to 100 objects, names distinct.
    #[schema(min_items = 1, max_items = 100)]
    objects: Vec<ExportObject>,
}

/// One object an export puts into the folder.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SyncJobExportObject)]
#[allow(dead_code)]
pub(crate) struct ExportObject {
    /// The object's key relative to the tenant's files (`exports/run-42/results.csv`): `/`
    /// between segments, none empty, `.` or `..`, no control character or backslash; it must
    /// name an object.
    #[schema(min_length = 1, max_length = 900, example = "exports/run-42/results.csv")]
    key: String,
    /// Its name in the folder (the key's last segment when absent), one the provider takes.
    #[schema(min_length = 1, max_length = 255)]
    name: Option<String>,
}

/// An import's `job_metadata`: other keys are kept as given, but for `checkpoint` (a 400).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = SyncJobImportMetadata)]
#[allow(dead_code)]
pub(crate) struct ImportMetadata {
    /// The provider ids of the files to pull: 1 to 1000, distinct, each 1 to 255 printable
    /// ASCII characters (`cloud_files.provider_file_id` is VARCHAR(255)), not all spaces.
    #[schema(schema_with = file_ids_schema)]
    file_ids: Vec<String>,
}

fn file_ids_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let id = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_PROVIDER_ID_BYTES))
        .pattern(Some("^[ -~]*[!-~][ -~]*$"));
    ArrayBuilder::new()
        .items(id)
        .min_items(Some(1))
        .max_items(Some(MAX_IMPORT_FILES))
        .unique_items(true)
        .examples([serde_json::json!(["id:a4ayc_80_OEAAAAAAAAAXw"])])
        .build()
}

#[utoipa::path(
    post,
    path = "/sync-jobs",
    operation_id = "create_sync_job",
    tag = "sync-jobs",
    request_body = CreateRequestDoc,
    responses(
        (status = 201, description = "The job, pending, initiated by the caller", body = SyncJob),
        (status = 400, description = "Malformed JSON or an invalid field (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "folder_id names no live folder of the caller's tenant (or connection_id no connection of it)", body = ErrorEnvelope),
        (status = 409, description = "The folder's connection is not active, the job type does not fit the folder's permissions, the folder already has a pending or running job, or an export without folder_id finds no default export folder", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, axum::Json<SyncJob>), ApiError> {
    if let Some(meta) = &body.job_metadata
        && !(meta.is_object() || meta.is_null())
    {
        return Err(ApiError::invalid_field("job_metadata", "must be a JSON object or null"));
    }
    // The worker resumes from this key: a client's value would steer what it lists, keeps and
    // deletes.
    if body.job_metadata.as_ref().is_some_and(|meta| meta.get(JOB_CHECKPOINT_KEY).is_some()) {
        return Err(ApiError::invalid_field(
            "job_metadata.checkpoint",
            "is the sync worker's own state and cannot be set by a client",
        ));
    }
    if body.job_type == JobType::Import {
        check_import(body.job_metadata.as_ref())?;
    }
    if body.connection_id.is_some() && body.job_type != JobType::Export {
        return Err(ApiError::invalid_field("connection_id", "is only for an export (without folder_id)"));
    }
    let folder = match (body.folder_id, body.connection_id) {
        (Some(id), connection) => {
            let folder = match app.store.get_folder(caller.tenant_id, id).await {
                Err(DbError::NotFound) => return Err(ApiError::not_found_field("folder_id")),
                other => other?,
            };
            if connection.is_some_and(|c| c != folder.connection_id) {
                return Err(ApiError::invalid_field("connection_id", "is not the folder's connection"));
            }
            folder
        }
        (None, Some(connection)) => default_export_folder(&app, caller.tenant_id, connection).await?,
        (None, None) if body.job_type == JobType::Export => {
            return Err(ApiError::invalid_field(
                "folder_id",
                "is required, or connection_id to export into the connection's default export folder",
            ));
        }
        (None, None) => return Err(ApiError::invalid_field("folder_id", "is required")),
    };
    // A deleted connection has deleted folders, so the folder read above already answered
    // for it; what is left to refuse is a connection that is revoked, expired or in error.
    let connection = app.store.get_connection(caller.tenant_id, folder.connection_id).await?;
    if connection.status != ConnectionStatus::Active {
        return Err(ApiError::Conflict {
            code: "connection_not_active",
            message: format!("the folder's connection is {}; reconnect it before syncing", connection.status),
            field: Some("folder_id".into()),
        });
    }
    if !folder.folder_permissions.allows(body.job_type) {
        return Err(ApiError::Conflict {
            code: "folder_permissions",
            message: format!("a {} job does not fit a {} folder", body.job_type, folder.folder_permissions),
            field: Some("job_type".into()),
        });
    }
    if body.job_type == JobType::Export {
        check_export(&app, caller.tenant_id, connection.provider_type, body.job_metadata.as_ref()).await?;
    }
    let new = NewSyncJob {
        tenant_id: caller.tenant_id,
        folder_id: folder.base.id,
        initiated_by_user_id: Some(caller.user_id),
        job_type: body.job_type,
        job_metadata: body.job_metadata.filter(|m| !m.is_null()),
    };
    let job = match app.store.create_job(&new).await {
        // The INSERT is conditional on a live folder of an active, live connection: the
        // folder or connection was deleted, or the connection revoked, after the checks above.
        Err(DbError::NotFound) => return Err(refused_job(&app, caller.tenant_id, folder.base.id).await),
        other => other?,
    };
    // Committed: now the worker may have it. A send that fails is logged, and
    // auto-sync-trigger's sweep sends the job again.
    shared::dispatch::dispatch(&app, &job, std::time::Duration::ZERO).await;
    Ok((StatusCode::CREATED, axum::Json(job)))
}

/// The answer to a job the database refused to insert: what the checks before it would say
/// now (404 for a deleted folder, 409 for a connection that is not active).
async fn refused_job(app: &App, tenant: TenantId, folder_id: FolderId) -> ApiError {
    let folder = match app.store.get_folder(tenant, folder_id).await {
        Err(DbError::NotFound) => return ApiError::not_found_field("folder_id"),
        Err(e) => return e.into(),
        Ok(folder) => folder,
    };
    let status = match app.store.get_connection(tenant, folder.connection_id).await {
        Ok(connection) => connection.status,
        Err(DbError::NotFound) => return ApiError::not_found_field("folder_id"),
        Err(e) => return e.into(),
    };
    let message = if status == ConnectionStatus::Active {
        "the folder's connection changed while the job was being created; try again".to_owned()
    } else {
        format!("the folder's connection is {status}; reconnect it before syncing")
    };
    ApiError::Conflict { code: "connection_not_active", message, field: Some("folder_id".into()) }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only the jobs of this folder.
    folder_id: Option<FolderId>,
    status: Option<JobStatus>,
    #[param(inline)]
    limit: Option<Limit>,
    #[param(inline)]
    cursor: Option<Cursor>,
}

#[utoipa::path(
    get,
    path = "/sync-jobs",
    operation_id = "list_sync_jobs",
    tag = "sync-jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of the caller's jobs, oldest first", body = ListResponse<SyncJob>),
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
) -> Result<axum::Json<ListResponse<SyncJob>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_ref())?;
    // Another tenant's (or an unknown) folder is a 404, as everywhere, not an empty page;
    // a deleted one of the tenant's still filters: its history stays listed.
    if let Some(id) = q.folder_id {
        app.store.known_folder(caller.tenant_id, id).await.map_err(ApiError::lookup("folder_id"))?;
    }
    let filter = SyncJobFilter { folder_id: q.folder_id, status: q.status };
    let rows = app.store.list_jobs(caller.tenant_id, &filter, page).await?;
    Ok(axum::Json(ListResponse::from(rows)))
}

#[utoipa::path(
    get,
    path = "/sync-jobs/{id}",
    operation_id = "get_sync_job",
    tag = "sync-jobs",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = SyncJob),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No job of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn read(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<JobId>,
) -> Result<axum::Json<SyncJob>, ApiError> {
    Ok(axum::Json(app.store.get_job(caller.tenant_id, id).await?))
}

/// A transition and/or a progress report. Without `status` it reports progress on a running
/// job; an absent field is left alone, `null` clears a nullable one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SyncJobPatchRequest)]
struct PatchBody {
    /// running (from pending), completed or failed (from running), cancelled (from pending or running).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    status: Option<JobStatus>,
    /// 0 to 100, two decimals.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    progress_percentage: Option<Percent>,
    /// At least 0 and at most files_total when that is known.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, minimum = 0)]
    files_processed: Option<i32>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 0)]
    files_total: Option<Option<i32>>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, minimum = 0)]
    bytes_transferred: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 4000, pattern = r"^[^\u0000]*$")]
    error_message: Option<Option<String>>,
}

impl PatchBody {
    /// Checks the counts against the job as it is now, since files_processed ≤ files_total
    /// spans two fields either of which may be left alone.
    fn into_update(self, current: &SyncJob) -> Result<JobUpdate, ApiError> {
        not_negative("files_processed", self.files_processed)?;
        not_negative("files_total", self.files_total.flatten())?;
        not_negative("bytes_transferred", self.bytes_transferred)?;
        let processed = self.files_processed.unwrap_or(current.files_processed);
        let total = self.files_total.unwrap_or(current.files_total);
        if let Some(total) = total
            && processed > total
        {
            let field = if self.files_processed.is_some() { "files_processed" } else { "files_total" };
            return Err(ApiError::invalid_field(
                field,
                format!("files_processed ({processed}) must not exceed files_total ({total})"),
            ));
        }
        let error_message = match self.error_message {
            Some(Some(m)) => Some(Some(bounded_text("error_message", m, MAX_ERROR_MESSAGE_CHARS)?)),
            other => other,
        };
        Ok(JobUpdate {
            status: self.status,
            progress_percentage: self.progress_percentage,
            files_processed: self.files_processed,
            files_total: self.files_total,
            bytes_transferred: self.bytes_transferred,
            error_message,
            job_metadata: None,
        })
    }
}

#[utoipa::path(
    patch,
    path = "/sync-jobs/{id}",
    operation_id = "update_sync_job",
    tag = "sync-jobs",
    params(("id" = Uuid, Path, description = "The job's id")),
    request_body = PatchBody,
    responses(
        (status = 200, description = "The job after the change", body = SyncJob),
        (status = 400, description = "Malformed JSON, an unknown or invalid field (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No job of the caller's tenant has this id", body = ErrorEnvelope),
        (status = 409, description = "The transition is not allowed from the job's status (code invalid_state)", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn update(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<JobId>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<axum::Json<SyncJob>, ApiError> {
    let current = app.store.get_job(caller.tenant_id, id).await?;
    let update = body.into_update(&current)?;
    Ok(axum::Json(app.store.update_job(caller.tenant_id, id, &update).await?))
}

#[utoipa::path(
    post,
    path = "/sync-jobs/{id}/cancel",
    operation_id = "cancel_sync_job",
    tag = "sync-jobs",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The cancelled job", body = SyncJob),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No job of the caller's tenant has this id", body = ErrorEnvelope),
        (status = 409, description = "The job has already completed, failed or been cancelled (code invalid_state)", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn cancel(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<JobId>,
) -> Result<axum::Json<SyncJob>, ApiError> {
    let update = JobUpdate { status: Some(JobStatus::Cancelled), ..Default::default() };
    Ok(axum::Json(app.store.update_job(caller.tenant_id, id, &update).await?))
}
