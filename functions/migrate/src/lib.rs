//! Schema migrations as a deploy step. The database sits in private subnets, so in AWS the
//! step runs as this Lambda inside the VPC, with the database URL from the configuration
//! secret like every other function:
//!
//! ```sh
//! aws lambda invoke --function-name <stack>-migrate --payload '{}' out.json && cat out.json
//! ```
//!
//! Locally, or wherever the database is reachable, the same binary is a command:
//! `migrate [DATABASE_URL]` (default `$QUODSI_DATABASE_URL`).

use secrecy::ExposeSecret as _;
use shared::config::ConfigCache;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Config(#[from] shared::config::ConfigError),
    #[error("migration failed")]
    Db(#[from] shared::db::DbError),
}

/// One invocation: migrates the database the configuration names and answers the report.
pub async fn handle(config: &ConfigCache) -> Result<serde_json::Value, MigrateError> {
    let config = config.get().await?;
    let report = shared::db::migrate(config.database_url.expose_secret())
        .await
        .inspect_err(|e| tracing::error!(error = %shared::error_chain(e), "migration failed"))?;
    tracing::info!(%report, "migration");
    Ok(serde_json::json!({ "report": report }))
}

impl From<MigrateError> for lambda_runtime::Diagnostic {
    fn from(e: MigrateError) -> Self {
        let error_type = match e {
            MigrateError::Config(_) => "ConfigUnavailable",
            MigrateError::Db(_) => "MigrationFailed",
        };
        // Neither variant's chain holds the connection string: DbError never quotes it.
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: shared::error_chain(&e) }
    }
}
