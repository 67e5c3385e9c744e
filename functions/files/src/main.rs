//! `files` Lambda: the HTTP API over cloud_files (see the crate's lib).

// One thread: below 1,769 MB a function has at most one vCPU of time, and a second worker
// thread costs every cold start its launch (BENCHMARKS.md, "Cold start over HTTPS").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = shared::app::App::from_env().await?;
    lambda_http::run(files::router(std::sync::Arc::new(app))).await
}
