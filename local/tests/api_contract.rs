//! The API contract, checked from outside: schemathesis (PyPI, installed into `.venv` by
//! `scripts/test`) reads `openapi.json` and drives the local API on a loopback port with a
//! fresh database, a valid development token and a seeded connection, through every check and
//! all four phases (the documented examples, the coverage of every bound, fuzzing, and stateful
//! create → read → update → delete walks along the document's links). Any failure (a 5xx,
//! a status, header or body the document does not describe, a valid request refused, an
//! invalid one accepted) fails the test with schemathesis' report.
//!
//! The run is bounded (examples per operation and a time budget) and seeded, so CI sees the
//! same requests every time; `QUODSI_SCHEMATHESIS_SEED` picks another seed to explore.

use shared::db::{TenantId, UserId};

const MAX_EXAMPLES: &str = "40";
const MAX_SECONDS: &str = "150";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_does_what_openapi_json_says() {
    // Arrange: the local run in a fresh directory, a tenant with a connection, its token.
    let dir = tempfile::tempdir().unwrap();
    let (app, auth) = quodsi_local::open(dir.path()).await.expect("the local run opens");
    let (tenant, user) = (TenantId(uuid::Uuid::new_v4()), UserId(uuid::Uuid::new_v4()));
    let fake = quodsi_local::setup::FakeProvider {
        provider: "onedrive".into(),
        api_base_url: None,
        access_token: "contract-access-token".into(),
        refresh_token: "contract-refresh-token".into(),
        metadata: None,
    };
    quodsi_local::setup::demo_connection(&app, tenant, user, &fake).await.expect("a seeded connection");
    let token = auth.sign(tenant.0, user.0, chrono::Duration::hours(1));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, quodsi_local::router(app, auth)).into_future());
    let root = testkit::http::repo_root();
    let seed = std::env::var("QUODSI_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261206".into());
    let mut command = std::process::Command::new(root.join(".venv/bin/schemathesis"));
    command
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .args(["--config-file", &root.join("local/tests/schemathesis.toml").to_string_lossy()])
        .args(["run", &root.join("openapi.json").to_string_lossy(), "--url", &base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", MAX_EXAMPLES, "--max-time", MAX_SECONDS, "--seed", &seed])
        .args(["--workers", "2", "--generation-database", "none", "--continue-on-failure"]);

    // Act
    let run = tokio::task::spawn_blocking(move || command.output()).await.unwrap();
    server.abort();

    // Assert
    let run = run.expect("schemathesis runs (scripts/test installs it into .venv)");
    let report = String::from_utf8_lossy(&run.stdout);
    eprintln!("{report}");
    assert!(run.status.success(), "schemathesis found failures:\n{report}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(report.contains("No issues found"), "schemathesis ran no test:\n{report}");
}
