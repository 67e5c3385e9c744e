//! Revoking a connection's grant at its provider before the connection is deleted here.
//! Nothing in this module fails the request: every way revocation can go wrong becomes a
//! cloud_sync_errors row on the connection, so support can see which grants may still be
//! live at the provider.

use secrecy::SecretString;
use shared::app::App;
use shared::db::{Connection, ErrorType, NewSyncError};
use shared::providers::ProviderError;
use shared::vault::TokenContext;

const OPERATION: &str = "revoke";

pub(crate) async fn at_provider(app: &App, connection: &Connection) {
    let outcome = match try_revoke(app, connection).await {
        Ok(()) => return,
        Err(outcome) => outcome,
    };
    let provider = connection.provider_type;
    let (error_type, error_code, message) = match outcome {
        Failure::Provider(e) => {
            (e.error_type(), e.error_code(), format!("revoking the grant at {provider} failed: {e}"))
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
        error_code: error_code.map(clip),
        error_message: message,
        stack_trace: None,
        error_metadata: Some(serde_json::json!({ "operation": OPERATION, "provider_type": provider })),
    };
    if let Err(e) = app.store.create_error(&new).await {
        tracing::error!(error = %e, connection_id = %connection.base.id, "could not record a failed revocation");
    }
}

enum Failure {
    Provider(ProviderError),
    /// Revocation could not even be attempted (configuration, provider set-up, token).
    Local(ErrorType, String),
}

async fn try_revoke(app: &App, connection: &Connection) -> Result<(), Failure> {
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
    provider.revoke(&access, refresh.as_ref()).await.map_err(Failure::Provider)
}

/// cloud_sync_errors.error_code is VARCHAR(100).
pub(crate) fn clip(code: String) -> String {
    if code.len() <= 100 {
        return code;
    }
    let mut end = 100;
    while !code.is_char_boundary(end) {
        end -= 1;
    }
    code[..end].to_owned()
}
