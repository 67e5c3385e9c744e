//! Token key rotation, run by hand after a new key was added to the configuration secret and
//! made `active_token_key` (old keys stay in the secret, readable, until this reports
//! `complete` with nothing `failed`):
//!
//! ```sh
//! aws lambda invoke --function-name <stack>-rotate-keys --payload '{}' out.json
//! # not complete yet? resume where it stopped:
//! aws lambda invoke --function-name <stack>-rotate-keys --payload '{"after_index": 81234}' out.json
//! ```
//!
//! Each invocation does at most `max_batches` batches of `batch_size` rows so it ends well
//! inside the Lambda timeout; the answer carries the cursor to resume from. Rows are
//! rewritten by compare-and-swap, so it is safe to run beside token refreshes and to re-run.

use serde::Deserialize;
use shared::app::App;
use shared::vault::{RotationReport, rotate_token_keys};

/// The invocation payload; every field is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Resume after this `index_id` (the previous answer's `cursor`).
    #[serde(default)]
    pub after_index: i64,
    #[serde(default = "default_batch_size")]
    pub batch_size: u16,
    #[serde(default = "default_max_batches")]
    pub max_batches: u32,
}

fn default_batch_size() -> u16 {
    200
}

fn default_max_batches() -> u32 {
    200
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("the payload is not a rotation request: {0}")]
    BadRequest(String),
    #[error("configuration unavailable")]
    Config(#[from] shared::config::ConfigError),
    #[error(transparent)]
    Rotation(#[from] shared::vault::RotationError),
}

/// Runs one invocation's share of the rotation and reports it.
pub async fn handle(app: &App, payload: serde_json::Value) -> Result<RotationReport, RotateError> {
    // An empty invocation (`null` from some tools) means "start from the beginning".
    let payload = if payload.is_null() { serde_json::json!({}) } else { payload };
    let req: Request = serde_json::from_value(payload).map_err(|e| RotateError::BadRequest(e.to_string()))?;
    if req.batch_size == 0 || req.max_batches == 0 {
        return Err(RotateError::BadRequest("batch_size and max_batches must be at least 1".into()));
    }
    let current = app.current().await?;
    let mut report =
        rotate_token_keys(&app.store, &current.vault, req.after_index, req.batch_size, Some(req.max_batches))
            .await
            .inspect_err(|e| tracing::error!(error = %shared::error_chain(e), "token key rotation stopped"))?;
    if report.complete {
        // The change subscriptions' secrets are few: all of them once the connections are done.
        let secrets = shared::subscriptions::rotate_secrets(app, &current.vault)
            .await
            .map_err(|source| RotateError::Rotation(shared::vault::RotationError { report, source }))?;
        report.subscription_secrets_rewritten = secrets.rewritten;
        report.subscription_secrets_failed = secrets.failed;
    }
    tracing::info!(report = ?report, active_key = %current.vault.active_key_id(), "token key rotation");
    Ok(report)
}

impl From<RotateError> for lambda_runtime::Diagnostic {
    fn from(e: RotateError) -> Self {
        let error_type = match e {
            RotateError::BadRequest(_) => "BadRequest",
            RotateError::Config(_) => "ConfigUnavailable",
            RotateError::Rotation(_) => "RotationStopped",
        };
        // The chain names the cursor to resume from; no variant carries key material.
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: shared::error_chain(&e) }
    }
}
