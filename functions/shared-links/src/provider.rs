//! Reaching the provider behind a link: the file or folder it is for, that folder's connection,
//! the connection's decrypted access token, and the record left when the provider fails.

use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};
use shared::api::ApiError;
use shared::app::{App, Current};
use shared::db::{CloudFile, Connection, DbError, ErrorType, Folder, NewSyncError, ResourceType, SharedLink, TenantId};
use shared::deadline::{Deadline, RequestClock};
use shared::error_rows::scrub_error_row;
use shared::providers::{ExistingLink, LinkTarget, Provider, ProviderError, SharedLinkRequest};
use shared::vault::TokenContext;
use uuid::Uuid;

/// The item a link is for, with the folder and connection it lives in.
pub(crate) struct Resolved {
    pub resource_type: ResourceType,
    pub file: Option<CloudFile>,
    pub folder: Folder,
    pub connection: Connection,
}

impl Resolved {
    /// The item named in a create request; any of the three rows missing (or another
    /// tenant's) is a 404 naming the body field, since the item cannot be reached either way.
    pub async fn for_resource(
        app: &App,
        tenant: TenantId,
        resource_type: ResourceType,
        id: Uuid,
    ) -> Result<Resolved, ApiError> {
        let field = match resource_type {
            ResourceType::File => "file_id",
            ResourceType::Folder => "folder_id",
        };
        let named = |e: DbError| match e {
            DbError::NotFound => ApiError::not_found_field(field),
            other => other.into(),
        };
        let (file, folder) = match resource_type {
            ResourceType::File => {
                let file = app.store.get_file(tenant, id).await.map_err(named)?;
                let folder = app.store.get_folder(tenant, file.folder_id).await.map_err(named)?;
                (Some(file), folder)
            }
            ResourceType::Folder => (None, app.store.get_folder(tenant, id).await.map_err(named)?),
        };
        let connection = app.store.get_connection(tenant, folder.connection_id).await.map_err(named)?;
        Ok(Resolved { resource_type, file, folder, connection })
    }

    /// The item of a stored link; `None` when it (or its folder or connection) is gone, in
    /// which case deleting it took the link's activity with it already.
    pub async fn for_link(app: &App, link: &SharedLink) -> Result<Option<Resolved>, ApiError> {
        let (resource_type, id) = match (link.file_id, link.folder_id) {
            (Some(file), _) => (ResourceType::File, file),
            (None, Some(folder)) => (ResourceType::Folder, folder),
            (None, None) => return Ok(None),
        };
        match Resolved::for_resource(app, link.base.tenant_id, resource_type, id).await {
            Ok(r) => Ok(Some(r)),
            Err(ApiError::NotFoundField { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn target(&self) -> LinkTarget<'_> {
        let item_id = match &self.file {
            Some(file) => file.provider_file_id.as_str(),
            None => self.folder.provider_folder_id.as_str(),
        };
        LinkTarget {
            resource_type: self.resource_type,
            item_id,
            connection_metadata: self.connection.connection_metadata.as_ref(),
        }
    }

    pub fn file_id(&self) -> Option<Uuid> {
        self.file.as_ref().map(|f| f.base.id)
    }

    pub fn folder_id(&self) -> Option<Uuid> {
        self.file.is_none().then_some(self.folder.base.id)
    }
}

/// The configuration in force and the connection's access token, ready for a provider call.
pub(crate) struct ProviderCall {
    current: Arc<Current>,
    connection: Connection,
    token: SecretString,
}

impl ProviderCall {
    /// An unconfigured provider is a 503 (ours to fix, not the caller's); a token that does
    /// not decrypt is a fault of ours too, and logged with its reason by ApiError.
    pub async fn prepare(app: &App, resolved: &Resolved) -> Result<ProviderCall, ApiError> {
        let current = app.current_for_request().await?;
        let connection = resolved.connection.clone();
        if let Err(e) = current.providers().and_then(|r| r.get(connection.provider_type)) {
            return Err(unavailable(&e));
        }
        let ctx = TokenContext::access(connection.base.tenant_id, connection.base.id);
        let token = current.vault.decrypt(ctx, &connection.encrypted_access_token).map_err(ApiError::internal)?;
        Ok(ProviderCall { current, connection, token })
    }

    pub fn provider(&self) -> &dyn Provider {
        // `prepare` refused to build a call for a provider the registry lacks, and the
        // registry never changes under an `Arc<Current>`.
        self.current.providers().and_then(|r| r.get(self.connection.provider_type)).expect("checked in prepare")
    }

    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// What a provider's error text must not carry into an error row: the access token and
    /// the link password, when there is one.
    pub fn secrets<'a>(&'a self, request: &'a SharedLinkRequest) -> Vec<&'a str> {
        let mut secrets = vec![self.token.expose_secret()];
        secrets.extend(request.password.as_ref().map(|p| p.expose_secret()));
        secrets
    }

    /// The request's deadline under the configuration in force.
    pub fn deadline(&self, clock: &RequestClock) -> Deadline {
        clock.deadline(self.current.config.request_budget)
    }

    /// Stamps last_used_at; a failure only loses that stamp, so it is logged, not returned.
    pub async fn touch_connection(&self, app: &App) {
        let patch = shared::db::ConnectionPatch { last_used_at: Some(app.store.now()), ..Default::default() };
        if let Err(e) =
            app.store.update_connection(self.connection.base.tenant_id, self.connection.base.id, &patch).await
        {
            tracing::warn!(error = %shared::error_chain(&e), connection_id = %self.connection.base.id, "could not stamp last_used_at");
        }
    }
}

fn unavailable(e: &ProviderError) -> ApiError {
    tracing::error!(error = %e, "provider unavailable");
    ApiError::Unavailable {
        code: "provider_unavailable",
        message: "this provider is not available right now; try again later".into(),
    }
}

/// The 502 of a failed provider call. The message says what failed at which provider; the
/// provider's own description is kept for the error row.
pub(crate) fn bad_gateway(resolved: &Resolved, what: &str, e: &ProviderError) -> ApiError {
    let provider = resolved.connection.provider_type;
    let hint = if e.is_transient() { "; try again shortly" } else { "" };
    ApiError::BadGateway { code: "provider_error", message: format!("{provider} could not {what}{hint}") }
}

/// cloud_sync_errors.error_code is VARCHAR(100).
fn clip(code: String) -> String {
    if code.len() <= 100 {
        return code;
    }
    let mut end = 100;
    while !code.is_char_boundary(end) {
        end -= 1;
    }
    code[..end].to_owned()
}

/// Leaves a cloud_sync_errors row for a provider failure, scrubbed by
/// [`scrub_error_row`] of `secrets` (the access token, a link password) and of any credential
/// the provider's text quotes. Failing to write it must not hide the failure being reported,
/// so that is logged instead.
#[allow(clippy::too_many_arguments)] // each is one column or the scrubbing of them
pub(crate) async fn record(
    app: &App,
    resolved: &Resolved,
    operation: &str,
    error_type: ErrorType,
    error_code: Option<String>,
    message: String,
    link_id: Option<Uuid>,
    secrets: &[&str],
) {
    let new = NewSyncError {
        tenant_id: resolved.connection.base.tenant_id,
        sync_job_id: None,
        connection_id: resolved.connection.base.id,
        file_id: resolved.file_id(),
        error_type,
        error_code: error_code.map(clip),
        error_message: message,
        stack_trace: None,
        error_metadata: Some(serde_json::json!({
            "operation": operation,
            "provider_type": resolved.connection.provider_type,
            "resource_type": resolved.resource_type,
            "file_id": resolved.file_id(),
            "folder_id": resolved.folder.base.id,
            "shared_link_id": link_id,
        })),
    };
    let new = scrub_error_row(new, secrets);
    if let Err(e) = app.store.create_error(&new).await {
        tracing::error!(error = %shared::error_chain(&e), operation, "could not record a provider failure");
    }
}

pub(crate) async fn record_failure(
    app: &App,
    resolved: &Resolved,
    operation: &str,
    e: &ProviderError,
    link_id: Option<Uuid>,
    secrets: &[&str],
) {
    let provider = resolved.connection.provider_type;
    let message = format!("{operation} at {provider} failed: {e}");
    record(app, resolved, operation, e.error_type(), e.error_code(), message, link_id, secrets).await;
}

/// Deletes a stored link at its provider, recording any failure; the caller deactivates it
/// locally whatever happens here. The call keeps the deadline's reserve for that.
pub(crate) async fn remove_at_provider(app: &App, link: &SharedLink, clock: &RequestClock) -> Result<(), ApiError> {
    let Some(resolved) = Resolved::for_link(app, link).await? else {
        return Ok(());
    };
    const OP: &str = "delete_shared_link";
    let call = match ProviderCall::prepare(app, &resolved).await {
        Ok(call) => call,
        Err(ApiError::Internal(e)) => {
            let message = format!("the connection's access token cannot be read: {e}");
            record(app, &resolved, OP, ErrorType::Auth, None, message, Some(link.base.id), &[]).await;
            return Ok(());
        }
        Err(ApiError::Unavailable { message, .. }) => {
            record(app, &resolved, OP, ErrorType::Validation, None, message, Some(link.base.id), &[]).await;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let existing = ExistingLink { provider_share_id: link.provider_share_id.as_deref(), share_url: &link.share_url };
    let target = resolved.target();
    let delete = call.provider().delete_shared_link(call.token(), &target, &existing);
    if let Err(e) = call.deadline(clock).call(delete).await {
        record_failure(app, &resolved, OP, &e, Some(link.base.id), &[call.token().expose_secret()]).await;
    }
    Ok(())
}
