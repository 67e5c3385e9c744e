//! `migrate`: brings a database to the newest schema. Production runs it once per deploy
//! against SQL Server; local runs migrate their SQLite file on start and need not call it.
//!
//! Usage: `migrate [DATABASE_URL]` (default: `$QUODSI_DATABASE_URL`).

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let Some(url) = std::env::args().nth(1).or_else(|| std::env::var("QUODSI_DATABASE_URL").ok()) else {
        eprintln!("migrate: give the database URL as the argument or in QUODSI_DATABASE_URL");
        return ExitCode::from(2);
    };
    match shared::db::migrate(&url).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate: {}", shared::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
