//! `oauth-authorize` Lambda: starts connecting a cloud storage account (see the crate's lib).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = shared::app::App::from_env().await?;
    lambda_http::run(oauth_authorize::router(std::sync::Arc::new(app))).await
}
