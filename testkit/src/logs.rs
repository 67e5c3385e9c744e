//! Captures everything `tracing` emits on the current thread, in both the text and the JSON
//! formats the functions may log in, so a test can search it for secrets.

use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Starts capturing at TRACE level, span events included, until the guard drops. Use from a
/// current-thread runtime: the subscriber is the thread's default.
pub fn capture() -> (Captured, DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(captured.clone())
                .with_ansi(false)
                .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(captured.clone())
                .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL),
        );
    let guard = tracing::subscriber::set_default(subscriber);
    // A callsite another test thread registers while this subscriber is being set can cache
    // "never interested" from the global default (tracing-core decides from the global
    // dispatcher alone while it believes it is the only one): those events would then be
    // missing from the capture, and a test that checks what was logged would fail now and then.
    // Recomputing every callsite's interest with this subscriber in place closes that window.
    tracing::callsite::rebuild_interest_cache();
    (captured, guard)
}
