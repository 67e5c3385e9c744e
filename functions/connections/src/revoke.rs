//! Revoking a connection's grant at its provider before the connection is deleted here.
//! Nothing in this module fails the request: every way revocation can go wrong becomes a
//! cloud_sync_errors row on the connection, so support can see which grants may still be
//! live at the provider.

use secrecy::{ExposeSecret as _, SecretString};
use shared::app::App;
use shared::db::{Connection, ErrorType, NewSyncError};
use shared::deadline::Deadline;
use shared::error_rows::{MAX_ERROR_CODE_BYTES, MAX_ERROR_MESSAGE_BYTES, scrub_error_row, scrub_error_text};
use shared::providers::ProviderError;
use shared::vault::TokenContext;

const OPERATION: &str = "revoke";

/// Revokes under `deadline`, keeping its reserve for the error row and the deletion: a
/// provider slower than that is recorded as a timeout.
pub(crate) async fn at_provider(app: &App, connection: &Connection, deadline: &Deadline) {
    let outcome = match try_revoke(app, connection, deadline).await {
        Ok(()) => return,
        Err(outcome) => outcome,
    };
    let provider = connection.provider_type;
    let (error_type, error_code, message) = match outcome {
        Failure::Provider { error_type, code, message } => {
            (error_type, code, format!("revoking the grant at {provider} failed: {message}"))
        }
        Failure::Local(error_type, why) => {
            (error_type, None, format!("the grant at {provider} was not revoked: {why}"))
        }
    };
    let new = NewSyncError {
        tenant_id: connection.base.tenant_id,
        sync_job_id: None,
        connection_id: connection.base.id,
        file_id: None,
        error_type,
        error_code,
        error_message: message,
        stack_trace: None,
        error_metadata: Some(serde_json::json!({ "operation": OPERATION, "provider_type": provider })),
    };
    let new = scrub_error_row(new, &[]);
    if let Err(e) = app.store.create_error(&new).await {
        tracing::error!(error = %shared::error_chain(&e), connection_id = %connection.base.id, "could not record a failed revocation");
    }
}

enum Failure {
    /// The provider refused; the code and text are scrubbed of the tokens and client secret.
    Provider { error_type: ErrorType, code: Option<String>, message: String },
    /// Revocation could not even be attempted (configuration, provider set-up, token).
    Local(ErrorType, String),
}

async fn try_revoke(app: &App, connection: &Connection, deadline: &Deadline) -> Result<(), Failure> {
    let current =
        app.current().await.map_err(|e| Failure::Local(ErrorType::Validation, format!("configuration: {e}")))?;
    let provider = current
        .providers()
        .and_then(|r| r.get(connection.provider_type))
        .map_err(|e| Failure::Local(ErrorType::Validation, e.to_string()))?;
    let (tenant, id) = (connection.base.tenant_id, connection.base.id);
    let unreadable = |e: shared::vault::VaultError| Failure::Local(ErrorType::Auth, format!("stored token: {e}"));
    let access = current.vault.decrypt(TokenContext::access(tenant, id), &connection.encrypted_access_token);
    let access = access.map_err(unreadable)?;
    let refresh: Option<SecretString> = match &connection.encrypted_refresh_token {
        Some(stored) => Some(current.vault.decrypt(TokenContext::refresh(tenant, id), stored).map_err(unreadable)?),
        None => None,
    };
    deadline.call(provider.revoke(&access, refresh.as_ref())).await.map_err(|e| {
        // A provider may quote the request (the tokens, the client secret) in its error.
        let client_secret =
            current.config.providers.get(connection.provider_type).map(|p| p.client_secret.expose_secret());
        let mut secrets = vec![access.expose_secret()];
        secrets.extend(refresh.as_ref().map(|r| r.expose_secret()));
        secrets.extend(client_secret);
        scrubbed(&e, &secrets)
    })
}

fn scrubbed(e: &ProviderError, secrets: &[&str]) -> Failure {
    Failure::Provider {
        error_type: e.error_type(),
        code: e.error_code().map(|c| scrub_error_text(&c, secrets, MAX_ERROR_CODE_BYTES)),
        message: scrub_error_text(&e.to_string(), secrets, MAX_ERROR_MESSAGE_BYTES),
    }
}
