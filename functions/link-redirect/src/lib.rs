//! The public redirect behind shared links: `GET /links/{id}`. It runs without the JWT
//! authorizer, so it reads no claims and answers only by the link id.
//!
//! An active, unexpired link counts the access (access_count and last_accessed_at, in the
//! same UPDATE that checks it is still live, so concurrent visits are all counted) and
//! answers 302 to the provider's share_url. A link that is deactivated or expired is 410
//! Gone; a deleted link or an id that never named one is 404. A malformed id is 400.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use shared::api::openapi::BearerJwt;
use shared::api::{ApiError, ErrorEnvelope, PathId};
use shared::app::App;
use shared::db::{DbError, LinkId};
use utoipa::OpenApi as _;

pub fn router(app: Arc<App>) -> Router {
    shared::api::function_router(Router::new().route("/links/{id}", get(follow)), app)
}

/// The operation names no security: the route is public (no authorizer in front of it). The
/// scheme is still declared so this document merges like every other function's.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "link-redirect", description = "The public address of a shared link."),
    paths(follow),
    modifiers(&BearerJwt)
)]
struct ApiDoc;

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[utoipa::path(
    get,
    path = "/links/{id}",
    operation_id = "follow_shared_link",
    tag = "link-redirect",
    params(("id" = uuid::Uuid, Path, description = "The shared link's id")),
    responses(
        (status = 302, description = "The access was counted; `Location` is the provider's share URL",
            headers(("Location" = String, description = "The provider's share URL"))),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 404, description = "No link has this id (or it was deleted)", body = ErrorEnvelope),
        (status = 410, description = "The link was turned off or has expired", body = ErrorEnvelope),
    )
)]
async fn follow(State(app): State<Arc<App>>, PathId(id): PathId<LinkId>) -> Result<Response, ApiError> {
    let link = match app.store.record_link_access(id).await {
        Ok(link) => link,
        Err(DbError::NotFound) => return Err(gone_or_unknown(&app, id).await),
        Err(e) => return Err(e.into()),
    };
    // from_bytes, not from_str: a provider URL with raw non-ASCII bytes is still a usable Location.
    let location = HeaderValue::from_bytes(link.share_url.as_bytes()).map_err(ApiError::internal)?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            // A cached redirect would skip this function and so the count; and the link id
            // is the only secret of a public link, so it must not leak through Referer.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
    )
        .into_response())
}

/// Tells a turned-off link (410) from an unknown or deleted one (404); either way nothing
/// is redirected.
async fn gone_or_unknown(app: &App, id: LinkId) -> ApiError {
    match app.store.get_link_public(id).await {
        Ok(_) => ApiError::Gone("this shared link has expired or was turned off".into()),
        Err(DbError::NotFound) => ApiError::NotFound,
        Err(e) => e.into(),
    }
}
