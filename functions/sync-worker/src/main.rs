//! `sync-worker` Lambda, fed by the sync-job queue (see the crate's lib).

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // Each downloaded chunk outlives the client's read buffer; see shared::memory.
    shared::memory::keep_freed_memory();
    let settings = Arc::new(sync_worker::Settings::from_env()?);
    let app = Arc::new(shared::app::App::from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (app, settings) = (app.clone(), settings.clone());
        async move { sync_worker::handler(&app, &settings, event).await }
    }))
    .await
}
