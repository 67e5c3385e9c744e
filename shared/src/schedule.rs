//! What the scheduled functions (token-refresh, auto-sync-trigger, link-expiry) have in
//! common: the run report, settings read from environment variables once at cold start, and
//! the EventBridge scheduled event that invokes them. (Error rows are made safe by
//! [`crate::error_rows`], whoever writes them.)

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// The outcome of one run, returned to Lambda and logged. Counts only: never a token, and no
/// row contents beyond what the counters say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Rows the run looked at.
    pub scanned: u64,
    /// Rows it changed (refreshed, job created, link deactivated, stale job failed...).
    pub acted: u64,
    /// Rows it left alone on purpose (another invocation had them, nothing to do yet).
    pub skipped: u64,
    /// Rows whose handling failed; they are retried by a later run.
    pub failed: u64,
    pub duration_ms: u64,
}

/// How one row was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOutcome {
    Acted,
    Skipped,
    Failed,
}

impl Report {
    pub fn count(&mut self, outcome: RowOutcome) {
        self.scanned += 1;
        match outcome {
            RowOutcome::Acted => self.acted += 1,
            RowOutcome::Skipped => self.skipped += 1,
            RowOutcome::Failed => self.failed += 1,
        }
    }

    pub fn add(&mut self, other: &Report) {
        self.scanned += other.scanned;
        self.acted += other.acted;
        self.skipped += other.skipped;
        self.failed += other.failed;
    }

    /// One JSON log line with every counter as a field.
    pub fn log(&self, function: &str) {
        tracing::info!(
            function,
            scanned = self.scanned,
            acted = self.acted,
            skipped = self.skipped,
            failed = self.failed,
            duration_ms = self.duration_ms,
            "run finished"
        );
    }
}

/// A setting that cannot be used. The message names the variable, so a bad deploy says which
/// one to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {name}: {message}")]
pub struct SettingsError {
    pub name: &'static str,
    pub message: String,
}

/// Reads settings from a lookup (the process environment in production, a map in tests).
pub struct Env<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        fn get(name: &str) -> Option<String> {
            std::env::var(name).ok()
        }
        Env { lookup: get }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Env { lookup }
    }

    /// An unsigned integer in `min..=max`, or `default` when the variable is unset or empty.
    pub fn number(&self, name: &'static str, default: u64, min: u64, max: u64) -> Result<u64, SettingsError> {
        let Some(raw) = (self.lookup)(name).filter(|v| !v.trim().is_empty()) else {
            return Ok(default);
        };
        let value: u64 = raw
            .trim()
            .parse()
            .map_err(|_| SettingsError { name, message: format!("must be a whole number, not {raw:?}") })?;
        if !(min..=max).contains(&value) {
            return Err(SettingsError { name, message: format!("must be between {min} and {max}, not {value}") });
        }
        Ok(value)
    }

    pub fn seconds(&self, name: &'static str, default: u64, min: u64, max: u64) -> Result<Duration, SettingsError> {
        self.number(name, default, min, max).map(Duration::from_secs)
    }

    pub fn minutes(&self, name: &'static str, default: u64, min: u64, max: u64) -> Result<Duration, SettingsError> {
        self.number(name, default, min, max).map(|m| Duration::from_secs(m * 60))
    }

    pub fn millis(&self, name: &'static str, default: u64, min: u64, max: u64) -> Result<Duration, SettingsError> {
        self.number(name, default, min, max).map(Duration::from_millis)
    }
}

/// The fields of an EventBridge scheduled event worth a log line. Any JSON is accepted: a
/// manual test invocation with `{}` runs the job just the same.
pub fn log_event(function: &str, event: &Value) {
    let field = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    tracing::info!(
        function,
        event_id = field("id"),
        detail_type = field("detail-type"),
        scheduled_time = field("time"),
        "run started"
    );
}

/// Converts a std duration to chrono's for timestamp arithmetic (saturating; settings are
/// bounded far below the limit).
pub fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
