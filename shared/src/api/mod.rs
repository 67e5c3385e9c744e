//! What every HTTP function shares: the error vocabulary and its mapping to responses, the
//! caller extractor, body/query extractors and pagination.

mod auth;
mod error;
mod extract;
pub mod openapi;
mod page;
mod time;

pub use auth::{Caller, TenantClaim, VerifiedClaims};
pub use error::{ApiError, ErrorBody, ErrorEnvelope};
pub use extract::{
    JsonBody, MAX_BODY_BYTES, MAX_PROVIDER_ID_CHARS, PathId, PathParam, PathParams, QueryParams, bounded_text,
    no_route, parse_id, parse_json, provider_item_id,
};
pub use page::{Cursor, Limit, ListResponse, decode_cursor, encode_cursor, page_request};
pub use time::Timestamp;

/// What every function's router ends with: the JSON 404 for paths it does not own, and the
/// request span that puts the function and the caller's tenant on every log line.
pub fn function_router<S: Clone + Send + Sync + 'static>(routes: axum::Router<S>, state: S) -> axum::Router {
    routes.fallback(no_route).layer(axum::middleware::from_fn(crate::telemetry::request_span)).with_state(state)
}
