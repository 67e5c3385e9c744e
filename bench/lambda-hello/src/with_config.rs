//! The second baseline of the cold-start benchmark: the hello function plus the one start-up
//! step every real function must take, reading the configuration secret from Secrets Manager
//! (`shared::config::ConfigCache::from_env`, the AWS SDK over rustls). The gap between this
//! and a real function is what the function itself adds (database, routers, vault).

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = shared::config::ConfigCache::from_env().await?;
    let config = &config;
    lambda_http::run(service_fn(move |_: Request| async move {
        let _ = config.get().await?;
        Ok::<_, Error>(Response::builder().status(200).body(Body::from("hello")).expect("a static response"))
    }))
    .await
}
