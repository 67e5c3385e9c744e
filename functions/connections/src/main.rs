//! `connections` Lambda: the HTTP API over cloud_connections (see the crate's lib).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = shared::app::App::from_env().await?;
    lambda_http::run(connections::router(std::sync::Arc::new(app))).await
}
