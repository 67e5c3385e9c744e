//! Logging for every function: JSON lines on stdout (CloudWatch keeps them), level from
//! `RUST_LOG` or else Lambda's `AWS_LAMBDA_LOG_LEVEL`, default `info`. The Lambda runtime
//! opens a span per invocation carrying the request id, and handlers add the function name
//! and the caller's tenant in their own spans; with the current span and its parents printed
//! on every line, each log line carries them.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;

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
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tiberius",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_config",
    "aws_sdk_secretsmanager",
    "wiremock",
];

/// The filter for a `RUST_LOG` value (`level` or `target=level`, comma-separated), else a
/// Lambda `AWS_LAMBDA_LOG_LEVEL`, else `info`; the pinned libraries are capped at `info` in
/// every case. A target filter rather than tracing-subscriber's `EnvFilter`: that one compiles
/// regexes when it parses its directives, about a millisecond of every cold start
/// (BENCHMARKS.md), for span and field filters no function uses.
fn filter_from(rust_log: Option<&str>, lambda_level: Option<&str>) -> Targets {
    let base = rust_log.and_then(|r| r.parse::<Targets>().ok()).unwrap_or_else(|| {
        let level = match lambda_level.map(str::to_ascii_lowercase).as_deref() {
            Some("trace") => LevelFilter::TRACE,
            Some("debug") => LevelFilter::DEBUG,
            Some("warn") => LevelFilter::WARN,
            // Lambda's FATAL has no tracing level; error is the nearest.
            Some("error" | "fatal") => LevelFilter::ERROR,
            _ => LevelFilter::INFO,
        };
        Targets::new().with_default(level)
    });
    // A later directive for the same target replaces the earlier one, so these win.
    PINNED.iter().fold(base, |f, target| f.with_target(*target, LevelFilter::INFO))
}

fn filter() -> Targets {
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

fn subscriber_with<W>(writer: W, filter: Targets) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .flatten_event(true)
        .with_target(false)
        .with_writer(writer);
    tracing_subscriber::registry().with(filter).with(json)
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
    fn a_rust_log_with_targets_is_honoured_and_a_bad_one_falls_back_to_info() {
        let targeted = logged_at(Some("shared=trace,warn"), None);
        let bad = logged_at(Some("shared=[{bad"), None);

        assert!(targeted.contains("our own trace"), "{targeted}");
        assert!(targeted.contains("runtime info"), "pinned libraries keep info: {targeted}");
        assert!(!bad.contains("our own trace") && bad.contains("runtime info"), "{bad}");
    }

    #[test]
    fn the_default_level_is_info() {
        let out = logged_at(None, None);

        assert!(out.contains("runtime info"));
        assert!(!out.contains("our own trace"));
    }
}
