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

/// Libraries that log what passes through them at debug and trace: the Lambda runtime the raw
/// event (bearer tokens, OAuth codes, link passwords), the HTTP and TLS stacks headers, the
/// SQL Server driver bound parameters. They stay at `info` whatever level is asked for, so
/// turning the level up to debug a function never writes a secret to CloudWatch.
const PINNED: &[&str] = &[
    "lambda_runtime=info",
    "lambda_runtime_api_client=info",
    "lambda_http=info",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "reqwest=info",
    "rustls=info",
    "tiberius=info",
    "aws_smithy_runtime=info",
    "aws_smithy_runtime_api=info",
    "aws_smithy_http_client=info",
    "aws_config=info",
    "aws_sdk_secretsmanager=info",
    "wiremock=info",
];

/// The filter for a `RUST_LOG` value, else a Lambda `AWS_LAMBDA_LOG_LEVEL`, else `info`; the
/// pinned libraries are capped at `info` in every case.
fn filter_from(rust_log: Option<&str>, lambda_level: Option<&str>) -> EnvFilter {
    let base = rust_log.and_then(|r| EnvFilter::try_new(r).ok()).unwrap_or_else(|| {
        match lambda_level.map(str::to_ascii_lowercase).as_deref() {
            Some(level @ ("trace" | "debug" | "info" | "warn" | "error")) => EnvFilter::new(level),
            // Lambda's FATAL has no tracing level; error is the nearest.
            Some("fatal") => EnvFilter::new("error"),
            _ => EnvFilter::new("info"),
        }
    });
    PINNED.iter().fold(base, |f, d| f.add_directive(d.parse().expect("the pinned directives are valid")))
}

fn filter() -> EnvFilter {
    filter_from(std::env::var("RUST_LOG").ok().as_deref(), std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref())
}

/// The JSON subscriber every function logs through, writing to `writer` (stdout in Lambda;
/// tests capture it).
pub fn subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    subscriber_with(writer, filter())
}

fn subscriber_with<W>(writer: W, filter: EnvFilter) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Capture {
        type Writer = Capture;
        fn make_writer(&'w self) -> Capture {
            self.clone()
        }
    }

    fn logged_at(rust_log: Option<&str>, lambda_level: Option<&str>) -> String {
        let capture = Capture::default();
        let subscriber = subscriber_with(capture.clone(), filter_from(rust_log, lambda_level));
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers", "raw event: Bearer secret-jwt");
            tracing::debug!(target: "tiberius::tds", "param: refresh-token-secret");
            tracing::trace!(target: "shared::db", "our own trace");
            tracing::info!(target: "lambda_runtime", "runtime info");
        });
        String::from_utf8(capture.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn raising_the_level_never_lets_the_runtime_or_drivers_log_payloads() {
        for (rust_log, lambda) in
            [(Some("trace"), None), (None, Some("TRACE")), (Some("lambda_runtime=trace,trace"), None)]
        {
            let out = logged_at(rust_log, lambda);

            assert!(out.contains("our own trace"), "{rust_log:?}/{lambda:?}: {out}");
            assert!(out.contains("runtime info"), "{out}");
            assert!(!out.contains("secret"), "{rust_log:?}/{lambda:?}: {out}");
        }
    }

    #[test]
    fn the_default_level_is_info() {
        let out = logged_at(None, None);

        assert!(out.contains("runtime info"));
        assert!(!out.contains("our own trace"));
    }
}
