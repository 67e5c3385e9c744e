//! The cold-start benchmark's comparison of TLS crypto providers (scripts/bench-lambda,
//! BENCHMARKS.md "Cold start over HTTPS"): lambda-hello-config with the Secrets Manager client
//! on rustls over *ring* instead of aws-lc, with the functions' trust store. Built only with
//! `--features ring`; no function uses it.

use std::time::Duration;

use aws_smithy_http_client::tls::{Provider, TlsContext, rustls_provider::CryptoMode};
use lambda_http::{Body, Error, Request, Response, service_fn};
use shared::config::{ConfigCache, ConfigSource};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The same trust as the functions' AWS clients (shared::aws), on ring.
    let trust = shared::aws::trust_store(shared::aws::ca_bundle().as_deref())?;
    let tls = TlsContext::builder().with_trust_store(trust).build()?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls)
        .build_https();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http).load().await;
    let secret_id = std::env::var("QUODSI_CONFIG_SECRET_ARN")?;
    let source = ConfigSource::secrets_manager(aws_sdk_secretsmanager::Client::new(&sdk), secret_id);
    let config = ConfigCache::new(source, Duration::from_secs(300));
    let config = &config;
    lambda_http::run(service_fn(move |_: Request| async move {
        let _ = config.get().await?;
        Ok::<_, Error>(Response::builder().status(200).body(Body::from("hello")).expect("a static response"))
    }))
    .await
}
