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
use testkit::providers::{ACCESS_TOKEN, REFRESH_TOKEN, graph_permission, microsoft_tokens, mount_graph_folders};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MAX_EXAMPLES: &str = "30";
const MAX_SECONDS: &str = "150";

/// Graph as the API's operations reach it: a sharing link made (createLink, 201 with the
/// permission) or removed (204), the token endpoint, and a drive in which every id is a folder.
async fn graph_fake() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"/createLink$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(graph_permission("view")))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex(r"/permissions/[^/]+$"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"/token$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(microsoft_tokens(ACCESS_TOKEN, REFRESH_TOKEN)))
        .mount(&server)
        .await;
    // Items, folders made, sites and libraries, for the folder picker and `POST /folders`.
    mount_graph_folders(&server).await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_does_what_openapi_json_says() {
    // Arrange: the local run in a fresh directory, every provider configured against a fake
    // that answers the calls an API operation makes (a link created or removed at Graph), a
    // tenant with a OneDrive connection, its token.
    let dir = tempfile::tempdir().unwrap();
    let provider = graph_fake().await;
    let files = quodsi_local::setup::ensure(dir.path()).unwrap();
    for kind in ["onedrive", "sharepoint", "gdrive", "dropbox", "box"] {
        let fake = quodsi_local::setup::FakeProvider {
            provider: kind.into(),
            api_base_url: Some(provider.uri()),
            access_token: ACCESS_TOKEN.into(),
            refresh_token: REFRESH_TOKEN.into(),
            metadata: None,
        };
        quodsi_local::setup::point_at_fake(&files.config, &fake).unwrap();
    }
    let (app, auth) = quodsi_local::open(dir.path()).await.expect("the local run opens");
    let (tenant, user) = (TenantId(uuid::Uuid::new_v4()), UserId(uuid::Uuid::new_v4()));
    let fake = quodsi_local::setup::FakeProvider {
        provider: "onedrive".into(),
        api_base_url: None,
        access_token: ACCESS_TOKEN.into(),
        refresh_token: REFRESH_TOKEN.into(),
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
    let (generated, passed) = test_case_counts(&report).expect("schemathesis reports its test cases");
    assert!(generated > 1000 && passed == generated, "{passed} of {generated} test cases passed:\n{report}");
    assert!(report.contains("Tested: 35"), "every operation of openapi.json is tested:\n{report}");
}

/// `N generated, M passed` from the summary's "Test cases:" line.
fn test_case_counts(report: &str) -> Option<(u64, u64)> {
    let line = report.lines().find(|l| l.contains(" generated, "))?;
    let mut numbers = line.split(|c: char| !c.is_ascii_digit()).filter(|n| !n.is_empty()).map(|n| n.parse().ok());
    Some((numbers.next()??, numbers.next()??))
}
