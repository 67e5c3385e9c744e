//! The baseline of the cold-start benchmark (scripts/bench-lambda): a lambda_http function
//! that answers every request with a fixed body and does nothing at start-up.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async {
        Ok::<_, Error>(Response::builder().status(200).body(Body::from("hello")).expect("a static response"))
    }))
    .await
}
