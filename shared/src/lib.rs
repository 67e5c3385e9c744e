//! Common crate of the Quodsi cloud-connection functions: data access, crypto, provider
//! clients and configuration.
pub mod api;
pub mod app;
pub mod aws;
pub mod config;
pub mod content_hash;
pub mod db;
pub mod deadline;
pub mod dispatch;
pub mod error_rows;
pub mod job_queue;
pub mod link_removal;
pub mod memory;
pub mod oauth;
pub mod objects;
pub mod provider_call;
pub mod providers;
pub mod schedule;
pub mod subscriptions;
pub mod telemetry;
pub mod tokens;
pub mod vault;

/// An error and its causes on one line ("a: b: c"), for logs and command-line messages.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
