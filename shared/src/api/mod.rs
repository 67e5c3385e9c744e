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
    JsonBody, MAX_BODY_BYTES, PathId, PathParam, QueryParams, bounded_text, no_route, parse_id, parse_json,
};
pub use page::{ListResponse, decode_cursor, encode_cursor, page_request};
pub use time::Timestamp;
