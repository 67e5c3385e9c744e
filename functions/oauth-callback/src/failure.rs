//! Why a callback did not end in a stored connection, what the user is told (the
//! `connection_error` code of the redirect), what is logged, and the cloud_sync_errors row
//! written when the failure concerns a connection the user already has.
//!
//! Which connection that is: the account's live row when the identity is known (the failure
//! came after it), otherwise the user's one live connection of this provider. With several,
//! nothing says which account the user was reconnecting, so none is picked.

use shared::app::App;
use shared::db::{Connection, ConnectionFilter, DbError, ErrorType, NewSyncError, PageRequest};
use shared::error_rows::{ErrorRow, MAX_ERROR_CODE_BYTES, MAX_ERROR_MESSAGE_BYTES, scrub_error_text};
use shared::oauth::OAuthState;
use shared::providers::ProviderError;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Stage {
    /// Before any provider call: the provider's configuration.
    Setup,
    TokenExchange,
    Identity,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Setup => "setup",
            Stage::TokenExchange => "token_exchange",
            Stage::Identity => "identity",
        }
    }
}

#[derive(Debug)]
pub(crate) enum Failure {
    /// The provider redirected with `error` instead of a code (consent denied, ...).
    Refused {
        error: String,
        description: Option<String>,
    },
    /// Neither a code nor an error: not a callback any provider sends.
    MissingCode,
    Provider {
        stage: Stage,
        error: ProviderError,
    },
    /// Every provider call succeeded; storing the connection did not.
    Store {
        provider_user_id: String,
        error: DbError,
    },
}

/// Provider text quoted in a log line is kept to one short line.
const MAX_QUOTED_BYTES: usize = 300;

impl Failure {
    pub(crate) fn provider(stage: Stage, error: ProviderError) -> Failure {
        Failure::Provider { stage, error }
    }

    /// The `connection_error` the application receives: a fixed vocabulary (or the provider's
    /// own OAuth error code when it is a plain token), never free text.
    pub(crate) fn user_code(&self) -> String {
        let code = match self {
            Failure::Refused { error, .. } if is_token(error) => error.as_str(),
            Failure::Refused { .. } => "provider_error",
            Failure::MissingCode => "missing_code",
            Failure::Provider { error, .. } => match error {
                ProviderError::NotConfigured { .. } => "provider_not_configured",
                ProviderError::InvalidGrant { .. } => "invalid_grant",
                ProviderError::RateLimited { .. } => "provider_rate_limited",
                ProviderError::Server { .. } => "provider_unavailable",
                ProviderError::Timeout => "provider_timeout",
                ProviderError::Network(_) => "provider_unreachable",
                ProviderError::Malformed(_) | ProviderError::ResyncRequired(_) | ProviderError::UploadSessionGone => {
                    "provider_bad_response"
                }
                ProviderError::Rejected { .. } | ProviderError::Unsupported(_) | ProviderError::Conflict(_) => {
                    "provider_rejected"
                }
            },
            Failure::Store { .. } => "server_error",
        };
        code.to_owned()
    }

    /// Logs the failure and, where it concerns an existing connection, records it there.
    /// Neither the code, the state, the verifier nor any token is in either.
    /// `secrets` (the code, the verifier, the client secret) are cut out of whatever the
    /// provider said: a provider that quotes the request in its error text must not get
    /// them into a log line or an error row.
    pub(crate) async fn report(&self, app: &App, state: &OAuthState, secrets: &[&str]) {
        let (tenant_id, user_id, provider) = (state.tenant_id, state.user_id, state.provider);
        let quoted = |text: &str| scrub_error_text(text, secrets, MAX_QUOTED_BYTES);
        let (error_type, error_code, message, stage) = match self {
            Failure::Refused { error, description } => {
                let description = description.as_deref().map(quoted).unwrap_or_default();
                tracing::info!(
                    %tenant_id, %user_id, %provider, error = %quoted(error), description = %description,
                    "the provider returned an error instead of a code"
                );
                // The user's decision (or the provider's refusal) is not a fault of a connection.
                return;
            }
            Failure::MissingCode => (
                ErrorType::Api,
                Some("missing_code".to_owned()),
                format!("connecting {provider} failed: the callback had neither a code nor an error"),
                "callback",
            ),
            Failure::Provider { stage, error } => (
                error.error_type(),
                error.error_code().map(|c| scrub_error_text(&c, secrets, MAX_ERROR_CODE_BYTES)),
                scrub_error_text(
                    &format!("connecting {provider} failed during {}: {error}", stage.as_str()),
                    secrets,
                    MAX_ERROR_MESSAGE_BYTES,
                ),
                stage.as_str(),
            ),
            Failure::Store { error, .. } => {
                tracing::error!(
                    %tenant_id, %user_id, %provider, error = %shared::error_chain(error),
                    "could not store the connection"
                );
                // The database is what failed; writing an error row to it is not worth trying.
                return;
            }
        };
        tracing::warn!(
            %tenant_id, %user_id, %provider, stage, error_type = %error_type,
            error_code = error_code.as_deref().unwrap_or(""), error = %message, "connecting failed"
        );
        let Some(connection) = self.existing_connection(app, state).await else { return };
        let new = NewSyncError {
            tenant_id,
            sync_job_id: None,
            connection_id: connection.base.id,
            file_id: None,
            error_type,
            error_code,
            error_message: message,
            stack_trace: None,
            error_metadata: Some(serde_json::json!({
                "operation": "oauth_callback",
                "stage": stage,
                "provider_type": provider,
            })),
        };
        // Already scrubbed of the code, verifier and client secret above; recording scrubs any
        // credential the provider's text quotes and logs a row that cannot be written.
        ErrorRow::new(new, Vec::new()).record(&app.store).await;
    }

    async fn existing_connection(&self, app: &App, state: &OAuthState) -> Option<Connection> {
        let found = match self {
            Failure::Store { provider_user_id, .. } => {
                app.store
                    .find_connection_by_account(state.tenant_id, state.user_id, state.provider, provider_user_id)
                    .await
            }
            _ => {
                let filter = ConnectionFilter {
                    provider_type: Some(state.provider),
                    status: None,
                    user_id: Some(state.user_id),
                };
                app.store.list_connections(state.tenant_id, &filter, PageRequest::first(2)).await.map(|page| {
                    let mut items = page.items;
                    if items.len() == 1 { items.pop() } else { None }
                })
            }
        };
        found.unwrap_or_else(|e| {
            tracing::error!(error = %shared::error_chain(&e), "could not look up the connection of a failed connect");
            None
        })
    }
}

/// An OAuth error code as RFC 6749 allows them in practice (`access_denied`,
/// `consent_required`, ...): safe to hand back as is.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}
