//! The connections API: `GET /connections` (provider_type, status, limit, cursor),
//! `GET /connections/{id}`, `PATCH /connections/{id}` (display_name, connection_metadata) and
//! `DELETE /connections/{id}`. Every query is scoped to the caller's tenant; another tenant's
//! id is a 404 like an unknown one. The encrypted token columns are never serialised
//! (`Connection` skips them), so no response can carry them.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Deserializer};
use shared::api::openapi::BearerJwt;
use shared::api::{
    ApiError, Caller, Cursor, ErrorEnvelope, JsonBody, Limit, ListResponse, PathId, QueryParams, bounded_text,
    page_request,
};
use shared::app::App;
use shared::config::DEFAULT_REQUEST_BUDGET;
use shared::db::{Connection, ConnectionFilter, ConnectionId, ConnectionPatch, ConnectionStatus, ProviderType};
use shared::deadline::RequestClock;
use shared::link_removal::{self, Scope};
use utoipa::OpenApi as _;

mod revoke;

pub fn router(app: Arc<App>) -> Router {
    shared::api::function_router(
        Router::new()
            .route("/connections", get(list))
            .route("/connections/{id}", get(read).patch(update).delete(disconnect)),
        app,
    )
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "connections", description = "The caller's OAuth connections to cloud storage providers."),
    paths(list, read, update, disconnect),
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
    provider_type: Option<ProviderType>,
    status: Option<ConnectionStatus>,
    #[param(inline)]
    limit: Option<Limit>,
    #[param(inline)]
    cursor: Option<Cursor>,
}

#[utoipa::path(
    get,
    path = "/connections",
    operation_id = "list_connections",
    tag = "connections",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of the caller's live connections, oldest first; no token is ever included", body = ListResponse<Connection>),
        (status = 400, description = "An invalid query parameter (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<axum::Json<ListResponse<Connection>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_ref())?;
    let filter = ConnectionFilter { provider_type: q.provider_type, status: q.status, user_id: None };
    let rows = app.store.list_connections(caller.tenant_id, &filter, page).await?;
    Ok(axum::Json(ListResponse::from(rows)))
}

#[utoipa::path(
    get,
    path = "/connections/{id}",
    operation_id = "get_connection",
    tag = "connections",
    params(("id" = uuid::Uuid, Path, description = "The connection's id")),
    responses(
        (status = 200, description = "The connection (never its tokens)", body = Connection),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No live connection of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn read(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<ConnectionId>,
) -> Result<axum::Json<Connection>, ApiError> {
    Ok(axum::Json(app.store.get_connection(caller.tenant_id, id).await?))
}

/// Absent leaves the column alone, `null` clears it: serde alone folds both into `None`.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a connection: an absent field is left alone, `null` clears it. Everything else
/// (provider, account, tokens, status) is fixed here and changes only through OAuth.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConnectionPatchRequest)]
struct PatchBody {
    /// At most 255 characters, not blank.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 255, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    display_name: Option<Option<String>>,
    /// A JSON object.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    connection_metadata: Option<Option<serde_json::Value>>,
}

/// NVARCHAR(255): the store counts UTF-16 units; this refuses NULs and empty names first.
const MAX_DISPLAY_NAME: usize = 255;

impl PatchBody {
    fn into_patch(self) -> Result<ConnectionPatch, ApiError> {
        let display_name = match self.display_name {
            Some(Some(name)) => {
                if name.trim().is_empty() {
                    return Err(ApiError::invalid_field("display_name", "must not be empty (send null to clear it)"));
                }
                Some(Some(bounded_text("display_name", name, MAX_DISPLAY_NAME)?))
            }
            other => other,
        };
        if let Some(Some(meta)) = &self.connection_metadata
            && !meta.is_object()
        {
            return Err(ApiError::invalid_field("connection_metadata", "must be a JSON object or null"));
        }
        Ok(ConnectionPatch { display_name, connection_metadata: self.connection_metadata, ..Default::default() })
    }
}

#[utoipa::path(
    patch,
    path = "/connections/{id}",
    operation_id = "update_connection",
    tag = "connections",
    params(("id" = uuid::Uuid, Path, description = "The connection's id")),
    request_body = PatchBody,
    responses(
        (status = 200, description = "The changed connection", body = Connection),
        (status = 400, description = "Malformed JSON, an unknown or invalid field (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No live connection of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn update(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<ConnectionId>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<axum::Json<Connection>, ApiError> {
    let patch = body.into_patch()?;
    Ok(axum::Json(app.store.update_connection(caller.tenant_id, id, &patch).await?))
}

/// Kept for the revocation out of what the request's deadline leaves the provider calls
/// (half of it when that is less): the provider HTTP client's own timeout. Under the default
/// 25 s budget the link removal gets the other 12 s.
const REVOKE_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Disconnects: removes the connection's active shared links at the provider (revoking a
/// grant does not delete public links made with it), revokes the grant where it can, then
/// deletes locally. The user asked to disconnect, so a provider that refuses or is down does
/// not keep the connection alive here; each failure is recorded as a sync error for support
/// to follow up.
#[utoipa::path(
    delete,
    path = "/connections/{id}",
    operation_id = "delete_connection",
    tag = "connections",
    params(("id" = uuid::Uuid, Path, description = "The connection's id")),
    responses(
        (status = 200, description = "The connection as deleted (status revoked); its folders are deleted, their live jobs cancelled and links into them deactivated here and removed at the provider. A link the provider does not remove, or a failed revocation, is recorded as a sync error and does not stop the deletion", body = Connection),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No live connection of the caller's tenant has this id", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn disconnect(
    State(app): State<Arc<App>>,
    clock: RequestClock,
    caller: Caller,
    PathId(id): PathId<ConnectionId>,
) -> Result<axum::Json<Connection>, ApiError> {
    let connection = app.store.get_connection(caller.tenant_id, id).await?;
    // Both provider steps run under the request's deadline, measured from its arrival, and
    // keep its reserve for recording a failure and the deletion here. A configuration that
    // cannot be read is recorded by the steps themselves.
    let budget = app.current().await.map(|c| c.config.request_budget).unwrap_or(DEFAULT_REQUEST_BUDGET);
    let deadline = clock.deadline(budget);
    let for_calls = deadline.remaining().saturating_sub(deadline.reserve());
    let for_links = for_calls.saturating_sub(REVOKE_ALLOWANCE.min(for_calls / 2));
    // Before the revocation, which ends the access token the removals use.
    link_removal::remove_links(&app, &connection, Scope::Connection, for_links).await;
    shared::subscriptions::remove_all(&app, &deadline, &connection).await;
    revoke::at_provider(&app, &connection, &deadline).await;
    Ok(axum::Json(app.store.delete_connection(caller.tenant_id, id).await?))
}
