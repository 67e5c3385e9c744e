//! `link-expiry` Lambda, invoked every 15 minutes by EventBridge (see the crate's lib).

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};

// One thread: below 1,769 MB a function has at most one vCPU of time, and a second worker
// thread costs every cold start its launch (BENCHMARKS.md, "Cold start over HTTPS").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let settings = Arc::new(link_expiry::Settings::from_env()?);
    let app = Arc::new(shared::app::App::from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (app, settings) = (app.clone(), settings.clone());
        async move { link_expiry::handler(&app, &settings, event).await }
    }))
    .await
}
