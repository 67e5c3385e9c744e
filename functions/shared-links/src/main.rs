//! `shared-links` Lambda: the HTTP API over cloud_shared_links (see the crate's lib).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = shared::app::App::from_env().await?;
    lambda_http::run(shared_links::router(std::sync::Arc::new(app))).await
}
