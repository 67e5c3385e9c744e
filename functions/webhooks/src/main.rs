//! `webhooks` Lambda: the providers' change-notification receivers (see the crate's lib).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = shared::app::App::from_env().await?;
    lambda_http::run(webhooks::router(std::sync::Arc::new(app))).await
}
