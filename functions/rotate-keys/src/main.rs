//! `rotate-keys` Lambda: re-encrypts tokens under the active key (see the crate's lib).

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};

// One thread: below 1,769 MB a function has at most one vCPU of time, and a second worker
// thread costs every cold start its launch (BENCHMARKS.md, "Cold start over HTTPS").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let app = Arc::new(shared::app::App::from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let app = Arc::clone(&app);
        async move { rotate_keys::handle(&app, event.payload).await }
    }))
    .await
}
