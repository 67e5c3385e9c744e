//! `migrate`: brings a database to the newest schema — a Lambda under the Lambda runtime,
//! a command elsewhere (see the crate's lib).

use std::process::ExitCode;
use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    shared::telemetry::init();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return match lambda().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "migrate stopped");
                ExitCode::FAILURE
            }
        };
    }
    let Some(url) = std::env::args().nth(1).or_else(|| std::env::var("QUODSI_DATABASE_URL").ok()) else {
        eprintln!("migrate: give the database URL as the argument or in QUODSI_DATABASE_URL");
        return ExitCode::from(2);
    };
    match shared::db::migrate(&url).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate: {}", shared::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

async fn lambda() -> Result<(), lambda_runtime::Error> {
    let config = Arc::new(shared::config::ConfigCache::from_env().await?);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let config = Arc::clone(&config);
        async move { migrate::handle(&config).await }
    }))
    .await
}
