//! `link-redirect` Lambda: the public redirect behind shared links (see the crate's lib).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = shared::app::App::from_env().await?;
    lambda_http::run(link_redirect::router(std::sync::Arc::new(app))).await
}
