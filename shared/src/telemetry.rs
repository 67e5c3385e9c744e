//! Logging for every function: JSON lines on stdout (CloudWatch keeps them), level from
//! `RUST_LOG` or else Lambda's `AWS_LAMBDA_LOG_LEVEL`, default `info`. The Lambda runtime
//! opens a span per invocation carrying the request id, and handlers add the function name
//! and the caller's tenant in their own spans; with the current span and its parents printed
//! on every line, each log line carries them.

use tracing_subscriber::EnvFilter;

/// The function's name as Lambda knows it (`AWS_LAMBDA_FUNCTION_NAME`), else the binary's.
pub fn function_name() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| {
        std::env::args()
            .next()
            .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown".to_owned())
    })
}

fn filter() -> EnvFilter {
    if let Ok(f) = EnvFilter::try_from_default_env() {
        return f;
    }
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()).unwrap_or_default();
    match level.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" => EnvFilter::new(level),
        // Lambda's FATAL has no tracing level; error is the nearest.
        "fatal" => EnvFilter::new("error"),
        _ => EnvFilter::new("info"),
    }
}

/// The JSON subscriber every function logs through, writing to `writer` (stdout in Lambda;
/// tests capture it).
pub fn subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_current_span(true)
        .with_span_list(true)
        .flatten_event(true)
        .with_target(false)
        .with_writer(writer)
        .finish()
}

/// Installs the JSON subscriber on stdout. Call once, first thing in `main`.
pub fn init() {
    tracing::subscriber::set_global_default(subscriber(std::io::stdout))
        .expect("telemetry::init is called once, before anything else installs a subscriber");
}

static FUNCTION_NAME: std::sync::LazyLock<String> = std::sync::LazyLock::new(function_name);

/// Middleware opening the span every log line of a request carries: the function, the
/// method and path, and the caller's tenant once [`crate::api::Caller`] has read it from the
/// verified claims (recorded into this span then).
pub async fn request_span(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        "request",
        function = %*FUNCTION_NAME,
        method = %req.method(),
        path = %req.uri().path(),
        tenant_id = tracing::field::Empty,
    );
    next.run(req).instrument(span).await
}
