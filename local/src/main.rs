//! `quodsi-local`: the local API on the embedded database.
//!
//! * `quodsi-local serve` — every HTTP function on 127.0.0.1:3000 (routes as in
//!   template.yaml), timed functions on their schedules; files under `.local/`.
//! * `quodsi-local token --tenant <uuid> --user <uuid>` — prints a bearer token for that
//!   user and creates the tenant and user rows if missing.
//! * `quodsi-local run <token-refresh|auto-sync-trigger|link-expiry|sync-worker>` — one run of
//!   a timed function (or of the sync worker over the waiting jobs) now, printing its report.
//!
//! `serve` also runs the sync worker in-process, on the jobs waiting for one, and keeps the
//! synced files' bytes under `.local/objects/`.
//! * `quodsi-local demo-connection --tenant <uuid> --user <uuid>` — a connection row to try
//!   the API with when no provider is configured (its tokens are placeholders, encrypted
//!   like real ones; refreshing it fails and is recorded, as it would for a revoked grant).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use shared::db::{TenantId, UserId};

#[derive(Parser)]
#[command(about = "Quodsi cloud connections, run locally on an embedded SQLite database")]
struct Cli {
    /// Folder for the local configuration, keys and database.
    #[arg(long, default_value = ".local", global = true)]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the HTTP API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: SocketAddr,
    },
    /// Prints a development bearer token, creating the tenant and user rows if missing.
    Token {
        #[arg(long)]
        tenant: uuid::Uuid,
        #[arg(long)]
        user: uuid::Uuid,
        #[arg(long)]
        email: Option<String>,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 12)]
        hours: i64,
    },
    /// Runs a timed function once and prints its report.
    Run {
        /// token-refresh, auto-sync-trigger, link-expiry, or sync-worker (runs the waiting jobs).
        function: String,
    },
    /// Creates a connection for a tenant's user and prints its id: a placeholder OneDrive one,
    /// or, with `--api-base-url`, one to a provider fake (`provider-fake` prints the arguments).
    DemoConnection {
        #[arg(long)]
        tenant: uuid::Uuid,
        #[arg(long)]
        user: uuid::Uuid,
        #[command(flatten)]
        fake: quodsi_local::setup::FakeProvider,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("quodsi-local: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Token { tenant, user, email, hours } => {
            let (app, auth) = quodsi_local::open(&cli.dir).await?;
            let (tenant, user) = (TenantId(tenant), UserId(user));
            app.store.ensure_tenant(tenant, "local tenant").await.map_err(|e| shared::error_chain(&e))?;
            app.store.ensure_user(user, tenant, email.as_deref()).await.map_err(|e| shared::error_chain(&e))?;
            println!("{}", auth.sign(tenant.0, user.0, chrono::Duration::hours(hours)));
            Ok(())
        }
        Command::Run { function } => {
            shared::telemetry::init();
            let (app, _) = quodsi_local::open(&cli.dir).await?;
            let settings = quodsi_local::TimedSettings::from_env()?;
            let report = quodsi_local::run_timed(&app, &settings, &function).await.ok_or_else(|| {
                let names: Vec<_> = quodsi_local::SCHEDULES.iter().map(|(n, _)| *n).collect();
                format!("no timed function {function}; there are {}", names.join(", "))
            })?;
            println!("{}", serde_json::to_string(&report).expect("a report is JSON"));
            Ok(())
        }
        Command::DemoConnection { tenant, user, fake } => {
            // The provider's endpoints go into the configuration before the app reads it.
            quodsi_local::setup::ensure(&cli.dir).map_err(|e| format!("cannot prepare {}: {e}", cli.dir.display()))?;
            quodsi_local::setup::point_at_fake(&cli.dir.join("config.json"), &fake)?;
            let (app, _) = quodsi_local::open(&cli.dir).await?;
            let id = quodsi_local::setup::demo_connection(&app, TenantId(tenant), UserId(user), &fake).await?;
            println!("{id}");
            Ok(())
        }
        Command::Serve { addr } => {
            shared::telemetry::init();
            let (app, auth) = quodsi_local::open(&cli.dir).await?;
            let settings = Arc::new(quodsi_local::TimedSettings::from_env()?);
            quodsi_local::spawn_schedules(Arc::clone(&app), Arc::clone(&settings));
            quodsi_local::spawn_worker(Arc::clone(&app), settings);
            let listener =
                tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            tracing::info!(%addr, "local API listening");
            eprintln!("quodsi-local: serving the API on http://{addr} (Ctrl-C stops)");
            axum::serve(listener, quodsi_local::router(app, auth))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
                .map_err(|e| e.to_string())
        }
    }
}
