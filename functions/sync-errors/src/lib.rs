//! The sync-errors API: `GET /sync-errors` (connection_id, error_type, unresolved, limit,
//! cursor), `GET /sync-errors/{id}` and `POST /sync-errors/{id}/resolve`. Every query is
//! scoped to the caller's tenant; another tenant's id is a 404 like an unknown one.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;
use shared::api::{ApiError, Caller, JsonBody, ListResponse, QueryParams, bounded_text, page_request, parse_id};
use shared::app::App;
use shared::db::{ErrorType, SyncError, SyncErrorFilter};
use uuid::Uuid;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/sync-errors", get(list))
        .route("/sync-errors/{id}", get(read))
        .route("/sync-errors/{id}/resolve", post(resolve))
        .fallback(shared::api::no_route)
        .with_state(app)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    connection_id: Option<Uuid>,
    error_type: Option<ErrorType>,
    #[serde(default)]
    unresolved: bool,
    limit: Option<u16>,
    cursor: Option<String>,
}

async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<axum::Json<ListResponse<SyncError>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let filter = SyncErrorFilter { connection_id: q.connection_id, error_type: q.error_type, unresolved: q.unresolved };
    let rows = app.store.list_errors(caller.tenant_id, &filter, page).await?;
    Ok(axum::Json(ListResponse::from_page(rows, |e| e)))
}

async fn read(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<SyncError>, ApiError> {
    let id = parse_id(&id)?;
    Ok(axum::Json(app.store.get_error(caller.tenant_id, id).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    resolution_notes: Option<String>,
}

/// Longest resolution note accepted (NVARCHAR(MAX) holds more; a note is prose).
const MAX_NOTES_CHARS: usize = 4000;

async fn resolve(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<JsonBody<ResolveBody>>,
) -> Result<axum::Json<SyncError>, ApiError> {
    let id = parse_id(&id)?;
    let body = body.map(|JsonBody(b)| b).unwrap_or_default();
    let notes = body.resolution_notes.map(|n| bounded_text("resolution_notes", n, MAX_NOTES_CHARS)).transpose()?;
    Ok(axum::Json(app.store.resolve_error(caller.tenant_id, id, notes.as_deref()).await?))
}
