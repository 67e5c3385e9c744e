//! `POST /connections/{provider}/authorize`: the first half of connecting a cloud storage
//! account. Answers the provider's authorization URL for the browser to open; the provider
//! sends the browser back to `oauth-callback` with a code and the state made here.
//!
//! The state is sealed with the configuration's OAuth-state key for this provider only, and
//! carries the caller's tenant and user, the PKCE verifier, `return_to`, the optional
//! `display_name` and a deadline ten minutes out. Nothing is stored: the state is the whole
//! login in flight, so an abandoned login leaves nothing behind.
//!
//! The answer also sets an HttpOnly cookie holding a random nonce whose hash is sealed into
//! the state ([`BrowserBinding`]): the callback accepts the state only from the browser
//! that has the cookie. The application must call this route so that the browser keeps the
//! cookie (`fetch` with `credentials: "include"`, the API on the callback's host) and then
//! send that same browser to `authorization_url`.
//!
//! `return_to` must match `return_to_allowlist`, or the callback would be an open redirect.
//! When the body leaves it out, the first allowlist entry is used: list the application's
//! usual landing page first.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::api::openapi::BearerJwt;
use shared::api::{ApiError, Caller, ErrorEnvelope, JsonBody, PathParam, bounded_text};
use shared::app::App;
use shared::db::ProviderType;
use shared::oauth::{BrowserBinding, OAuthState, STATE_LIFETIME};
use shared::providers::{AuthorizeRequest, Pkce, ProviderError};
use utoipa::OpenApi as _;

pub fn router(app: Arc<App>) -> Router {
    shared::api::function_router(Router::new().route("/connections/{provider}/authorize", post(authorize)), app)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "oauth-authorize", description = "Starting the OAuth connection of a cloud storage account."),
    paths(authorize),
    modifiers(&BearerJwt)
)]
struct ApiDoc;

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// NVARCHAR(255), like the column the name ends up in.
const MAX_DISPLAY_NAME: usize = 255;
/// Anything longer would make the sealed state, and so the authorization URL, unwieldy.
const MAX_RETURN_TO: usize = 2048;

/// Both fields are optional, and so is the body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AuthorizeBody {
    /// A name for the connection, at most 255 characters; a reconnect keeps the stored name
    /// when this is absent.
    #[schema(max_length = 255, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    display_name: Option<String>,
    /// Where the browser goes after the callback; must match the configured allowlist. The
    /// first allowlist entry when absent.
    #[schema(max_length = 2048, pattern = "^[!-~]+$")]
    return_to: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct AuthorizeResponse {
    /// The provider's consent page, with the sealed state and PKCE challenge.
    authorization_url: String,
    /// The state stops being accepted at this time.
    expires_at: DateTime<Utc>,
}

#[utoipa::path(
    post,
    path = "/connections/{provider}/authorize",
    tag = "oauth",
    params(("provider" = ProviderType, Path, description = "onedrive, sharepoint, gdrive, dropbox or box")),
    request_body(content = Option<AuthorizeBody>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "Send the browser to `authorization_url` before `expires_at`. The answer sets the HttpOnly browser-binding cookie the callback requires: call this route with credentials (`fetch(..., {credentials: \"include\"})`) from the browser that will consent", body = AuthorizeResponse,
            headers(("Set-Cookie" = String, description = "`__Host-quodsi-oauth-{provider}`: the nonce binding the state to this browser (HttpOnly, Secure, SameSite=Lax, ten minutes)"))),
        (status = 400, description = "An unknown provider, a return_to outside the allowlist, or an invalid field (named)", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 503, description = "The provider has no client credentials configured (the message says how to add them)", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
async fn authorize(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParam(provider): PathParam,
    body: Option<JsonBody<AuthorizeBody>>,
) -> Result<Response, ApiError> {
    let provider: ProviderType = provider.parse().map_err(|_| {
        ApiError::invalid_field("provider", "must be one of onedrive, sharepoint, gdrive, dropbox, box")
    })?;
    let body = body.map(|JsonBody(b)| b).unwrap_or_default();
    let display_name = match body.display_name {
        Some(name) if name.trim().is_empty() => {
            return Err(ApiError::invalid_field("display_name", "must not be empty (leave it out instead)"));
        }
        Some(name) => Some(bounded_text("display_name", name, MAX_DISPLAY_NAME)?),
        None => None,
    };

    let current = app.current_for_request().await?;
    let config = &current.config;
    let return_to = match body.return_to {
        // Printable ASCII only: it goes back out verbatim in a Location header.
        Some(url)
            if url.len() <= MAX_RETURN_TO
                && url.bytes().all(|b| b.is_ascii_graphic())
                && config.is_return_to_allowed(&url) =>
        {
            url
        }
        Some(_) => return Err(ApiError::invalid_field("return_to", "is not an allowed return URL")),
        None => config.return_to_allowlist.first().cloned().ok_or_else(|| ApiError::Unavailable {
            code: "return_to_not_configured",
            message: "no return URL is configured: add `return_to_allowlist` to the configuration document".into(),
        })?,
    };

    let registry = current.providers().map_err(ApiError::internal)?;
    let definition = registry.get(provider).map_err(not_configured)?;
    let redirect_uri = registry.redirect_uri(provider).map_err(not_configured)?;

    let pkce = Pkce::generate();
    let binding = BrowserBinding::generate();
    let expires_at = app.store.now() + STATE_LIFETIME;
    let state = OAuthState {
        tenant_id: caller.tenant_id,
        user_id: caller.user_id,
        provider,
        pkce,
        return_to,
        display_name,
        expires_at,
        browser_hash: binding.hash().to_owned(),
    };
    let sealed = state.seal(&current.state_sealer);
    let request =
        AuthorizeRequest { state: &sealed, redirect_uri: &redirect_uri, pkce: &state.pkce, extra_params: &[] };
    let authorization_url = definition.authorization_url(&request).map_err(ApiError::internal)?;
    tracing::info!(tenant_id = %caller.tenant_id, user_id = %caller.user_id, %provider, "authorization started");

    let response = AuthorizeResponse { authorization_url, expires_at };
    let cookie = HeaderValue::from_str(&binding.set_cookie(provider)).map_err(ApiError::internal)?;
    // The URL carries a live state; no cache in between should keep it.
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store")), (header::SET_COOKIE, cookie)],
        axum::Json(response),
    )
        .into_response())
}

fn not_configured(e: ProviderError) -> ApiError {
    match e {
        ProviderError::NotConfigured { .. } => {
            ApiError::Unavailable { code: "provider_not_configured", message: e.to_string() }
        }
        other => ApiError::internal(other),
    }
}
