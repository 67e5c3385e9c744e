//! `GET /oauth/callback/{provider}`: the public end of connecting a cloud storage account. The
//! provider's consent page sends the browser here with `code` and the `state` that
//! `oauth-authorize` sealed. No JWT authorizer stands in front of this route: the sealed state
//! is what says who is connecting.
//!
//! A state that does not open for this provider (altered, sealed for another provider, or
//! under another key) or is past its deadline is a 400 and nothing else happens: without a
//! trusted state there is no trusted place to send the browser. So is a good state that
//! arrives without the browser-binding cookie `oauth-authorize` set with it, or with another
//! browser's (`state_not_bound`): the code is not redeemed, nothing is stored. This is what
//! stops a victim who consents on an attacker's authorization URL from connecting the
//! victim's account into the attacker's tenant. A bound state's cookie is cleared.
//!
//! With a good state the browser always goes back to the state's `return_to` with a 302:
//! `connection_id=<id>&provider=<p>` on success, `connection_error=<code>&provider=<p>` on
//! any failure (consent denied, a failing token endpoint, a failing identity call, ...).
//! On success the account's live connection gets the new tokens (same id), or a new
//! connection is made when the account has none; both tokens are encrypted for that id.
//! A failure writes no connection; when the user already has the connection it concerns,
//! the failure is recorded on it as a cloud_sync_errors row. The provider calls run under
//! the request's [`Deadline`] and keep its reserve for storing the connection or recording
//! the failure: a slow provider ends in `connection_error=provider_timeout` in time, never in
//! a Lambda timeout after the code was redeemed. When the identity call fails
//! after a successful exchange, the fresh grant is revoked at the provider (best effort,
//! a failure only logged).

mod failure;
mod location;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::ExposeSecret;
use serde::Deserialize;
use shared::api::openapi::BearerJwt;
use shared::api::{ApiError, ErrorEnvelope, PathParam, QueryParams};
use shared::app::{App, Current};
use shared::db::{ConnectionFilter, ConnectionGrant, PageRequest, ProviderType, SealedTokens, UpsertedConnection};
use shared::deadline::{Deadline, RequestClock};
use shared::oauth::{BrowserBinding, OAuthState, StateError};
use shared::providers::ProviderError;
use shared::vault::TokenContext;
use utoipa::OpenApi as _;

use failure::{Failure, Stage};

pub fn router(app: Arc<App>) -> Router {
    shared::api::function_router(Router::new().route("/oauth/callback/{provider}", get(callback)), app)
}

/// The operation names no security: the route is public (no authorizer in front of it). The
/// scheme is still declared so this document merges like every other function's.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "oauth-callback", description = "Where the providers send the browser back after consent."),
    paths(callback),
    modifiers(&BearerJwt)
)]
struct ApiDoc;

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// What the provider appends to the redirect URI. Providers add parameters of their own
/// (Google `scope`, `authuser`, `prompt`; Microsoft `session_state`), so unknown ones are
/// ignored rather than refused.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CallbackQuery {
    /// The authorization code, on consent.
    code: Option<String>,
    /// The sealed state `oauth-authorize` put in the authorization URL (required: a callback
    /// without it cannot be tied to a request; 400 naming `state`).
    #[param(required = true, pattern = "^[A-Za-z0-9_-]+$")]
    state: Option<String>,
    /// RFC 6749 section 4.1.2.1: the provider's reason when there is no code
    /// (`access_denied` when the user declined).
    error: Option<String>,
    error_description: Option<String>,
}

/// Lifetime assumed for an access token whose lifetime the provider did not state: short, so
/// the refresh job renews it early rather than late.
const UNSTATED_TOKEN_LIFETIME: chrono::Duration = chrono::Duration::minutes(30);

#[utoipa::path(
    get,
    path = "/oauth/callback/{provider}",
    tag = "oauth",
    params(("provider" = ProviderType, Path, description = "The provider the state was made for"), CallbackQuery),
    responses(
        (status = 302, description = "Back to the state's return_to: with `connection_id` and `provider` when the connection is stored, with `connection_error` (`access_denied`, `invalid_grant`, `provider_timeout`, `provider_unavailable`, ...) and `provider` when it is not",
            headers(("Location" = String, description = "return_to with the outcome appended"),
                ("Set-Cookie" = String, description = "Clears the browser-binding cookie"))),
        (status = 400, description = "An unknown provider, a state that is missing, altered, expired or made for another provider, or a state not bound to this browser (`state_not_bound`: the cookie `oauth-authorize` set is missing or another's); nothing is stored", body = ErrorEnvelope),
    )
)]
async fn callback(
    State(app): State<Arc<App>>,
    clock: RequestClock,
    PathParam(provider): PathParam,
    headers: HeaderMap,
    QueryParams(query): QueryParams<CallbackQuery>,
) -> Result<Response, ApiError> {
    let provider: ProviderType = provider.parse().map_err(|_| {
        ApiError::invalid_field("provider", "must be one of onedrive, sharepoint, gdrive, dropbox, box")
    })?;
    let sealed =
        query.state.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
            ApiError::invalid_field("state", "is required; start connecting again from the application")
        })?;
    let current = app.current_for_request().await?;
    let state = OAuthState::open(&current.state_sealer, provider, sealed, app.store.now()).map_err(|e| {
        let code = match e {
            StateError::Invalid => "invalid_state",
            StateError::Expired => "expired_state",
        };
        ApiError::BadRequest {
            code,
            message: format!("{e}; start connecting again from the application"),
            field: Some("state".into()),
        }
    })?;
    let cookies: Vec<&str> = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
    if !state.is_bound_to(&cookies) {
        tracing::warn!(
            tenant_id = %state.tenant_id, user_id = %state.user_id, %provider,
            "a callback whose state is not bound to this browser was refused"
        );
        return Err(ApiError::BadRequest {
            code: "state_not_bound",
            message: "this connection was not started in this browser; start connecting again from the application"
                .into(),
            field: Some("state".into()),
        });
    }

    let deadline = clock.deadline(current.config.request_budget);
    let params = match connect(&app, &current, &state, &query, &deadline).await {
        Ok(UpsertedConnection { connection, created }) => {
            tracing::info!(
                tenant_id = %state.tenant_id, user_id = %state.user_id, %provider,
                connection_id = %connection.base.id, created, "connection stored"
            );
            vec![("connection_id", connection.base.id.to_string()), ("provider", provider.to_string())]
        }
        Err(failure) => {
            let client_secret = current.config.providers.get(provider).map(|c| c.client_secret.expose_secret());
            let secrets: Vec<&str> =
                [query.code.as_deref(), Some(state.pkce.verifier().expose_secret()), client_secret]
                    .into_iter()
                    .flatten()
                    .collect();
            failure.report(&app, &state, &secrets).await;
            vec![("connection_error", failure.user_code()), ("provider", provider.to_string())]
        }
    };
    let location = location::append(&state.return_to, &params);
    let location = HeaderValue::from_str(&location).map_err(ApiError::internal)?;
    let clear = HeaderValue::from_str(&BrowserBinding::clear_cookie(provider)).map_err(ApiError::internal)?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::SET_COOKIE, clear),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            // The callback URL carries the code and state; the next page need not see it.
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
    )
        .into_response())
}

/// Revokes a grant that will not be stored, best effort (a provider without revocation, such
/// as Microsoft, does nothing). A failure is only logged, by kind and code: the provider's
/// text could quote what it was sent.
/// It may use half the deadline's reserve: the failure is still to be recorded.
async fn revoke_unused(
    definition: &dyn shared::providers::Provider,
    tokens: &shared::providers::TokenSet,
    deadline: &Deadline,
) {
    let provider = definition.provider_type();
    let revoke = definition.revoke(&tokens.access_token, tokens.refresh_token.as_ref());
    match deadline.call_leaving(deadline.reserve() / 2, revoke).await {
        Ok(()) => tracing::info!(%provider, "the unused grant was revoked"),
        Err(e) => tracing::warn!(
            %provider,
            error_type = e.error_type().as_str(),
            error_code = e.error_code().as_deref().unwrap_or("none"),
            "the unused grant could not be revoked; it stays valid at the provider"
        ),
    }
}

/// Whether the user already has a live connection of this provider (in doubt, when the
/// store cannot say, as if they had).
async fn has_live_connection(app: &App, state: &OAuthState, provider: ProviderType) -> bool {
    let filter = ConnectionFilter { provider_type: Some(provider), status: None, user_id: Some(state.user_id) };
    match app.store.list_connections(state.tenant_id, &filter, PageRequest::first(1)).await {
        Ok(page) => !page.items.is_empty(),
        Err(e) => {
            tracing::warn!(error = %shared::error_chain(&e), "cannot tell whether the account is connected");
            true
        }
    }
}

/// Redeems the code, identifies the account and stores the connection. Nothing is written
/// unless every provider call succeeded; a grant whose account cannot be identified is
/// revoked again.
async fn connect(
    app: &App,
    current: &Current,
    state: &OAuthState,
    query: &CallbackQuery,
    deadline: &Deadline,
) -> Result<UpsertedConnection, Failure> {
    let provider = state.provider;
    if let Some(error) = &query.error {
        return Err(Failure::Refused { error: error.clone(), description: query.error_description.clone() });
    }
    let code = query.code.as_deref().filter(|c| !c.is_empty()).ok_or(Failure::MissingCode)?;
    let registry = current.providers().map_err(|e| Failure::provider(Stage::Setup, e))?;
    let definition = registry.get(provider).map_err(|e| Failure::provider(Stage::Setup, e))?;
    let redirect_uri = current.config.oauth_redirect_uri(provider).ok_or_else(|| {
        Failure::provider(
            Stage::Setup,
            ProviderError::NotConfigured { provider, hint: "set `oauth_redirect_base_url`".into() },
        )
    })?;

    let issued_at = app.store.now();
    let tokens = deadline
        .call(definition.exchange_code(code, &state.pkce, &redirect_uri))
        .await
        .map_err(|e| Failure::provider(Stage::TokenExchange, e))?;
    let identity = match deadline.call(definition.identity(&tokens.access_token)).await {
        Ok(identity) => identity,
        Err(e) => {
            // The exchange made a grant the provider keeps, and no connection will hold it.
            // But at Google a revocation ends the whole grant of the app for that account, so
            // when the user may be reconnecting an account already connected, revoking would
            // kill the working connection over a passing identity failure: leave it then.
            if has_live_connection(app, state, provider).await {
                tracing::info!(%provider, "identity failed on a reconnect; the grant is left for the existing connection");
            } else {
                revoke_unused(definition, &tokens, deadline).await;
            }
            return Err(Failure::provider(Stage::Identity, e));
        }
    };

    let grant = ConnectionGrant {
        tenant_id: state.tenant_id,
        user_id: state.user_id,
        provider_type: provider,
        provider_user_id: identity.provider_user_id.clone(),
        provider_user_email: identity.email,
        token_expiry: tokens.expires_at(issued_at).unwrap_or(issued_at + UNSTATED_TOKEN_LIFETIME),
        // Box states no scope: what was asked for is what a Box grant covers.
        scope: tokens.scope.clone().unwrap_or_else(|| definition.scopes().join(" ")),
        display_name: state.display_name.clone(),
        connection_metadata: Some(identity.metadata),
    };
    let (vault, tenant) = (&current.vault, state.tenant_id);
    let seal = |id| SealedTokens {
        access: vault.encrypt(TokenContext::access(tenant, id), &tokens.access_token),
        refresh: tokens.refresh_token.as_ref().map(|r| vault.encrypt(TokenContext::refresh(tenant, id), r)),
    };
    app.store
        .upsert_connection(&grant, seal)
        .await
        .map_err(|e| Failure::Store { provider_user_id: identity.provider_user_id, error: e })
}
