//! `browse` Lambda: the folder picker's HTTP API (see the crate's lib).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = shared::app::App::from_env().await?;
    lambda_http::run(browse::router(std::sync::Arc::new(app))).await
}
