//! `oauth-callback` Lambda: the public end of connecting a cloud storage account (see the
//! crate's lib).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = shared::app::App::from_env().await?;
    lambda_http::run(oauth_callback::router(std::sync::Arc::new(app))).await
}
