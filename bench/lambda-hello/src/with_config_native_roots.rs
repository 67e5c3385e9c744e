//! The cold-start benchmark's measure of what the AWS clients' compiled-in roots save
//! (scripts/bench-lambda, BENCHMARKS.md "Cold start over HTTPS"): lambda-hello-config with the
//! Secrets Manager client built the SDK's default way, as every function was before
//! `shared::aws`: `aws_config::load_defaults`, whose HTTPS client loads the platform's roots
//! (the bundle `SSL_CERT_FILE` names in the benchmark) before the first request.

use std::time::Duration;

use lambda_http::{Body, Error, Request, Response, service_fn};
use shared::config::{ConfigCache, ConfigSource};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let secret_id = std::env::var("QUODSI_CONFIG_SECRET_ARN")?;
    let source = ConfigSource::secrets_manager(aws_sdk_secretsmanager::Client::new(&sdk), secret_id);
    let config = ConfigCache::new(source, Duration::from_secs(300));
    config.get().await?;
    let config = &config;
    lambda_http::run(service_fn(move |_: Request| async move {
        let _ = config.get().await?;
        Ok::<_, Error>(Response::builder().status(200).body(Body::from("hello")).expect("a static response"))
    }))
    .await
}
