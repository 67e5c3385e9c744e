//! Revoking a connection's grant at its provider before the connection is deleted here.
//! Nothing in this module fails the request: every way revocation can go wrong becomes a
//! cloud_sync_errors row on the connection, so support can see which grants may still be
//! live at the provider.

use shared::app::App;
use shared::db::Connection;
use shared::deadline::Deadline;
use shared::provider_call::{CallError, ProviderCall};

const OPERATION: &str = "revoke";

/// Revokes under `deadline`, keeping its reserve for the error row and the deletion: a
/// provider slower than that is recorded as a timeout.
pub(crate) async fn at_provider(app: &App, connection: &Connection, deadline: &Deadline) {
    let provider = connection.provider_type;
    // Whatever the connection's status: a grant the provider still honours is revoked.
    let call = match app.current().await {
        Ok(current) => ProviderCall::with_current(app.store.clone(), current, connection.clone()),
        Err(e) => Err(CallError::Configuration(e)),
    };
    let call = match call {
        Ok(call) => call,
        Err(e) => {
            let row = e.error_row(connection, OPERATION, &format!("the grant at {provider} was not revoked"));
            row.record(&app.store).await;
            return;
        }
    };
    let revoked = match call.refresh_token().await {
        Ok(refresh) => call.run(deadline, |a| a.provider.revoke(a.token, refresh.as_ref())).await,
        Err(e) => Err(e),
    };
    if let Err(e) = revoked {
        let what = match &e {
            CallError::Provider(_) => format!("revoking the grant at {provider} failed"),
            _ => format!("the grant at {provider} was not revoked"),
        };
        call.error_row(OPERATION, &e, &what).record(&app.store).await;
    }
}
