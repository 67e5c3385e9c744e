//! What every function's OpenAPI document shares: the bearer JWT scheme the API Gateway
//! authorizer checks. Operations name it with `security(("bearer_jwt" = []))` one by one
//! rather than through a document-wide default, so a public route (the link redirect) merged
//! into the same document is not described as needing a token.

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The name operations use for the security scheme.
pub const BEARER_JWT: &str = "bearer_jwt";

/// Adds the bearer JWT scheme to a document (`#[openapi(modifiers(&BearerJwt))]`).
pub struct BearerJwt;

impl Modify for BearerJwt {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_JWT,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token of the Quodsi identity provider, verified by the API Gateway JWT authorizer. \
                         `sub` is the user; the tenant claim (`tenant_id` unless configured otherwise) is the \
                         only source of the tenant.",
                    ))
                    .build(),
            ),
        );
    }
}
