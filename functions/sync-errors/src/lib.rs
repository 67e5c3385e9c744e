//! The sync-errors API: `GET /sync-errors` (connection_id, error_type, unresolved, limit,
//! cursor), `GET /sync-errors/{id}` and `POST /sync-errors/{id}/resolve`. Every query is
//! scoped to the caller's tenant; another tenant's id is a 404 like an unknown one.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;
use shared::api::openapi::BearerJwt;
use shared::api::{
    ApiError, Caller, Cursor, ErrorEnvelope, JsonBody, Limit, ListResponse, PathId, QueryParams, bounded_text,
    page_request,
};
use shared::app::App;
use shared::db::{ConnectionId, ErrorType, SyncError, SyncErrorFilter, SyncErrorId};
use utoipa::OpenApi as _;

pub fn router(app: Arc<App>) -> Router {
    shared::api::function_router(
        Router::new()
            .route("/sync-errors", get(list))
            .route("/sync-errors/{id}", get(read))
            .route("/sync-errors/{id}/resolve", post(resolve)),
        app,
    )
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "sync-errors", description = "Synchronisation errors of the caller's connections."),
    paths(list, read, resolve),
    modifiers(&BearerJwt)
)]
struct ApiDoc;

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only the errors of this connection.
    connection_id: Option<ConnectionId>,
    error_type: Option<ErrorType>,
    /// Only errors not yet resolved.
    #[serde(default)]
    unresolved: bool,
    #[param(inline)]
    limit: Option<Limit>,
    #[param(inline)]
    cursor: Option<Cursor>,
}

#[utoipa::path(
    get,
    path = "/sync-errors",
    operation_id = "list_sync_errors",
    tag = "sync-errors",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of the caller's errors, oldest first", body = ListResponse<SyncError>),
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
) -> Result<axum::Json<ListResponse<SyncError>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_ref())?;
    // Another tenant's (or an unknown) connection is a 404, as everywhere, not an empty page;
    // a deleted one of the tenant's still filters: its history stays listed.
    if let Some(id) = q.connection_id {
        app.store.known_connection(caller.tenant_id, id).await.map_err(ApiError::lookup("connection_id"))?;
    }
    let filter = SyncErrorFilter { connection_id: q.connection_id, error_type: q.error_type, unresolved: q.unresolved };
    let rows = app.store.list_errors(caller.tenant_id, &filter, page).await?;
    Ok(axum::Json(ListResponse::from(rows)))
}

#[utoipa::path(
    get,
    path = "/sync-errors/{id}",
    operation_id = "get_sync_error",
    tag = "sync-errors",
    params(("id" = Uuid, Path, description = "The error's id")),
    responses(
        (status = 200, description = "The error", body = SyncError),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No error of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn read(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<SyncErrorId>,
) -> Result<axum::Json<SyncError>, ApiError> {
    Ok(axum::Json(app.store.get_error(caller.tenant_id, id).await?))
}

/// The body is optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SyncErrorResolveRequest)]
struct ResolveBody {
    /// At most 4000 characters.
    #[schema(max_length = 4000, pattern = r"^[^\u0000]*$")]
    resolution_notes: Option<String>,
}

/// Longest resolution note accepted (NVARCHAR(MAX) holds more; a note is prose).
const MAX_NOTES_CHARS: usize = 4000;

#[utoipa::path(
    post,
    path = "/sync-errors/{id}/resolve",
    operation_id = "resolve_sync_error",
    tag = "sync-errors",
    params(("id" = Uuid, Path, description = "The error's id")),
    request_body(content = Option<ResolveBody>, description = "Optional resolution notes"),
    responses(
        (status = 200, description = "The resolved error", body = SyncError),
        (status = 400, description = "Malformed JSON or an invalid field (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No error of the caller's tenant has this id", body = ErrorEnvelope),
        (status = 409, description = "The error is already resolved (code invalid_state)", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn resolve(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<SyncErrorId>,
    body: Option<JsonBody<ResolveBody>>,
) -> Result<axum::Json<SyncError>, ApiError> {
    let body = body.map(|JsonBody(b)| b).unwrap_or_default();
    let notes = body.resolution_notes.map(|n| bounded_text("resolution_notes", n, MAX_NOTES_CHARS)).transpose()?;
    Ok(axum::Json(app.store.resolve_error(caller.tenant_id, id, notes.as_deref()).await?))
}
