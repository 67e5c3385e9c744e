//! Configuration from a real Secrets Manager API (moto's server): present, absent, invalid and
//! rotated secrets, and the environment-driven cold-start path; and whom the clients trust over
//! TLS (moto serving HTTPS): the AWS clients and the provider clients.

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use shared::config::{ConfigCache, ConfigError, ConfigSource};
use shared::db::ProviderType;
use std::time::Duration;
use testkit::moto::Moto;

const KEY_1: &str = "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE="; // 32 x '1'
const KEY_2: &str = "MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI="; // 32 x '2'
const STATE_KEY: &str = "c3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3M="; // 32 x 's'
const CLIENT_SECRET: &str = "od-client-secret-do-not-log-4f0c";
const DB_PASSWORD: &str = "db-password-do-not-log-8b2e";
const SECRETS: &[&str] = &[KEY_1, KEY_2, STATE_KEY, CLIENT_SECRET, DB_PASSWORD];

fn document(client_id: &str) -> Value {
    json!({
        "database_url": format!("server=tcp:db,1433;user id=app;password={DB_PASSWORD}"),
        "token_keys": { "k1": KEY_1, "k2": KEY_2 },
        "active_token_key": "k2",
        "oauth_state_key": STATE_KEY,
        "providers": {
            "onedrive": { "client_id": client_id, "client_secret": CLIENT_SECRET, "tenant": "organizations" }
        },
        "tenant_claim": "custom:tenant_id",
        "return_to_allowlist": ["https://app.quodsi.com"]
    })
}

fn client_id(config: &shared::config::Config) -> &str {
    &config.providers.get(ProviderType::OneDrive).expect("onedrive configured").client_id
}

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "secret value in: {text}");
    }
}

#[tokio::test]
async fn a_present_secret_loads() {
    let moto = Moto::start();
    let arn = moto.create_secret("quodsi-config", &document("client-v1").to_string()).await;
    let config = ConfigSource::secrets_manager(moto.client(), &arn).load().await.unwrap();
    assert_eq!(client_id(&config), "client-v1");
    assert_eq!(config.token_keys.active().as_str(), "k2");
    assert_eq!(config.token_keys.keys().len(), 2);
    assert_eq!(config.oauth_state_key.expose_secret(), &[b's'; 32]);
    assert!(config.database_url.expose_secret().ends_with(DB_PASSWORD));
    assert_eq!(config.tenant_claim, "custom:tenant_id");
    assert!(config.providers.get(ProviderType::Box).is_none());
    assert_no_secret(&format!("{config:?}"));
}

#[tokio::test]
async fn an_absent_secret_is_a_clear_error() {
    let moto = Moto::start();
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:quodsi-absent-Ab12Cd";
    let source = ConfigSource::secrets_manager(moto.client(), arn);
    let err = source.load().await.unwrap_err();
    assert!(matches!(&err, ConfigError::SecretNotFound { secret_id } if secret_id == arn), "{err:?}");
    assert_eq!(err.to_string(), format!("configuration secret {arn} not found"));
    // With nothing loaded before, the cache has nothing to fall back on.
    let cache = ConfigCache::new(source, Duration::from_secs(60));
    assert!(matches!(cache.get().await.unwrap_err(), ConfigError::SecretNotFound { .. }));
}

#[tokio::test]
async fn an_invalid_secret_names_the_field_and_not_the_secret() {
    let moto = Moto::start();
    let malformed = format!("{{\"database_url\": \"{DB_PASSWORD}\", \"token_keys\": {{");
    let cases: Vec<(String, Option<&str>)> = vec![
        (malformed, None),
        (
            {
                let mut d = document("c");
                d["token_keys"]["k1"] = json!(format!("{CLIENT_SECRET}!!"));
                d.to_string()
            },
            Some("token_keys.k1"),
        ),
        (
            {
                let mut d = document("c");
                d["oauth_state_key"] = json!(&KEY_1[..20]);
                d.to_string()
            },
            Some("oauth_state_key"),
        ),
        (
            {
                let mut d = document("c");
                d["active_token_key"] = json!("k3");
                d.to_string()
            },
            Some("active_token_key"),
        ),
        (
            {
                let mut d = document("c");
                d["providers"]["skydrive"] = json!({"client_id": "x", "client_secret": CLIENT_SECRET});
                d.to_string()
            },
            Some("providers.skydrive"),
        ),
        (
            {
                let mut d = document("c");
                d.as_object_mut().unwrap().remove("database_url");
                d.to_string()
            },
            Some("database_url"),
        ),
        (
            {
                let mut d = document("c");
                d["providers"]["onedrive"]["client_secret"] = json!(42);
                d.to_string()
            },
            Some("providers.onedrive.client_secret"),
        ),
    ];
    for (text, field) in cases {
        let arn = moto.create_secret("quodsi-bad", &text).await;
        let err = ConfigSource::secrets_manager(moto.client(), &arn).load().await.unwrap_err();
        let msg = err.to_string();
        assert_no_secret(&msg);
        assert_no_secret(&format!("{err:?}"));
        match field {
            Some(field) => {
                assert_eq!(err.field_name(), Some(field), "{msg}");
                assert!(msg.contains(&format!("`{field}`")), "{msg}");
            }
            None => assert!(matches!(err, ConfigError::Json { .. }), "{msg}"),
        }
    }
}

#[tokio::test]
async fn a_rotated_secret_is_picked_up_after_the_ttl() {
    let moto = Moto::start();
    let arn = moto.create_secret("quodsi-rotating", &document("client-v1").to_string()).await;
    let ttl = Duration::from_millis(200);
    let short = ConfigCache::new(ConfigSource::secrets_manager(moto.client(), &arn), ttl);
    // A TTL no test run outlives: shows that a cached configuration is not re-read early,
    // without depending on how fast this machine is.
    let long = ConfigCache::new(ConfigSource::secrets_manager(moto.client(), &arn), Duration::from_secs(3600));
    let first = short.get().await.unwrap();
    assert_eq!(client_id(&first), "client-v1");
    let cached = long.get().await.unwrap();
    assert_eq!(client_id(&cached), "client-v1");
    // Within the TTL the same Arc is handed out, not a fresh read.
    assert!(std::sync::Arc::ptr_eq(&cached, &long.get().await.unwrap()));

    moto.client()
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(document("client-v2").to_string())
        .send()
        .await
        .unwrap();

    assert_eq!(client_id(&long.get().await.unwrap()), "client-v1");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(client_id(&short.get().await.unwrap()), "client-v2");
    assert_eq!(client_id(&long.get().await.unwrap()), "client-v1");

    // The secret disappears: refreshes fail, and the last good configuration keeps serving.
    moto.client().delete_secret().secret_id(&arn).force_delete_without_recovery(true).send().await.unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(client_id(&short.get().await.unwrap()), "client-v2");
    assert!(matches!(
        ConfigSource::secrets_manager(moto.client(), &arn).load().await.unwrap_err(),
        ConfigError::SecretNotFound { .. }
    ));
}

#[tokio::test]
async fn an_unchanged_secret_re_read_after_the_ttl_keeps_the_same_configuration() {
    // Arrange
    let moto = Moto::start();
    let arn = moto.create_secret("quodsi-steady", &document("client-v1").to_string()).await;
    let ttl = Duration::from_millis(100);
    let cache = ConfigCache::new(ConfigSource::secrets_manager(moto.client(), &arn), ttl);
    let first = cache.get().await.unwrap();

    // Act: the TTL passes and the secret is read again, unchanged; then it changes.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let again = cache.get().await.unwrap();
    moto.client()
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(document("client-v2").to_string())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let changed = cache.get().await.unwrap();

    // Assert: the same Arc (nothing derived from it is rebuilt), then a new one.
    assert!(std::sync::Arc::ptr_eq(&first, &again));
    assert!(!std::sync::Arc::ptr_eq(&first, &changed));
    assert_eq!(client_id(&changed), "client-v2");
}

const CHILD_MARKER: &str = "QUODSI_TEST_CONFIG_FROM_ENV_CHILD";

/// The cold-start path reads the secret named by `QUODSI_CONFIG_SECRET_ARN` with the default
/// AWS configuration, which must honour `AWS_ENDPOINT_URL`. The environment is set for a
/// child run of this very test, so the parallel tests of this process keep theirs.
#[tokio::test]
async fn from_env_reads_the_secret_named_by_the_environment() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        let cache = ConfigCache::from_env().await.unwrap();
        assert_eq!(cache.ttl(), Duration::from_secs(7));
        assert!(matches!(cache.source(), ConfigSource::SecretsManager { .. }));
        let config = cache.get().await.unwrap();
        assert_eq!(client_id(&config), "client-from-env");
        return;
    }
    let moto = Moto::start();
    let arn = moto.create_secret("quodsi-env", &document("client-from-env").to_string()).await;
    run_child(
        "from_env_reads_the_secret_named_by_the_environment",
        &[
            ("QUODSI_CONFIG_SECRET_ARN", arn.as_ref()),
            ("QUODSI_CONFIG_TTL_SECONDS", "7".as_ref()),
            ("AWS_ENDPOINT_URL", moto.endpoint().as_ref()),
        ],
    );
}

/// Runs the test `name` of this binary again in a child process with `env` (plus dummy AWS
/// credentials and no AWS files), so the parallel tests of this process keep their environment;
/// fails unless the child passes.
fn run_child(name: &str, env: &[(&str, &std::ffi::OsStr)]) {
    let missing = std::env::temp_dir().join(format!("no-aws-config-{}", uuid::Uuid::new_v4()));
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_MARKER, "1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", &missing)
        .env("AWS_SHARED_CREDENTIALS_FILE", &missing)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env_remove("QUODSI_CONFIG_FILE")
        .env_remove("QUODSI_CONFIG_JSON");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child run failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

/// moto over TLS holding a configuration secret (client id `client-over-tls`); its ARN and
/// the PEM file of the CA that signed moto's certificate.
async fn moto_over_tls_with_secret() -> (Moto, String, std::path::PathBuf) {
    let moto = Moto::start_tls();
    let arn = moto.create_secret("quodsi-tls", &document("client-over-tls").to_string()).await;
    let ca = moto.ca_file().expect("moto over TLS has a CA");
    (moto, arn, ca)
}

/// Over HTTPS the cold-start path trusts the CA bundle that `AWS_CA_BUNDLE` names (the AWS
/// SDKs' setting) in place of the compiled-in Amazon roots.
#[tokio::test]
async fn over_https_the_secret_is_read_trusting_aws_ca_bundle() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        // Act
        let config = ConfigCache::from_env().await.unwrap().get().await.unwrap();

        // Assert
        assert_eq!(client_id(&config), "client-over-tls");
        return;
    }
    // Arrange
    let (moto, arn, ca) = moto_over_tls_with_secret().await;

    // Act + Assert (in the child)
    run_child(
        "over_https_the_secret_is_read_trusting_aws_ca_bundle",
        &[
            ("QUODSI_CONFIG_SECRET_ARN", arn.as_ref()),
            ("AWS_ENDPOINT_URL", moto.endpoint().as_ref()),
            ("AWS_CA_BUNDLE", ca.as_os_str()),
        ],
    );
}

/// Without `AWS_CA_BUNDLE` the AWS clients trust Amazon Trust Services' roots only: a CA the
/// platform's roots would include (through `SSL_CERT_FILE`) is not trusted, and the failure
/// says why without the secret.
#[tokio::test]
async fn over_https_the_platform_roots_are_not_trusted() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        // Act
        let err = ConfigCache::from_env().await.unwrap_err();

        // Assert
        let chain = shared::error_chain(&err);
        assert!(matches!(err, ConfigError::SecretsManager { .. }), "{err:?}");
        assert!(chain.contains("UnknownIssuer"), "{chain}");
        assert_no_secret(&chain);
        return;
    }
    // Arrange
    let (moto, arn, ca) = moto_over_tls_with_secret().await;

    // Act + Assert (in the child)
    run_child(
        "over_https_the_platform_roots_are_not_trusted",
        &[
            ("QUODSI_CONFIG_SECRET_ARN", arn.as_ref()),
            ("AWS_ENDPOINT_URL", moto.endpoint().as_ref()),
            ("SSL_CERT_FILE", ca.as_os_str()),
        ],
    );
}

/// An `AWS_CA_BUNDLE` without a certificate stops the cold start with an error naming the
/// variable and the file, before any request.
#[tokio::test]
async fn an_aws_ca_bundle_without_a_certificate_stops_the_cold_start() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        // Act
        let err = ConfigCache::from_env().await.unwrap_err();

        // Assert
        let chain = shared::error_chain(&err);
        let bundle = std::env::var("AWS_CA_BUNDLE").unwrap();
        assert!(matches!(err, ConfigError::Aws(_)), "{err:?}");
        assert!(chain.contains(&format!("AWS_CA_BUNDLE names {bundle}, which holds no PEM certificate")), "{chain}");
        return;
    }
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();

    // Act + Assert (in the child)
    run_child(
        "an_aws_ca_bundle_without_a_certificate_stops_the_cold_start",
        &[
            (
                "QUODSI_CONFIG_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:quodsi-none-Ab12Cd".as_ref(),
            ),
            ("AWS_ENDPOINT_URL", "https://127.0.0.1:9".as_ref()),
            ("AWS_CA_BUNDLE", empty.as_os_str()),
        ],
    );
}

/// One Dropbox call on each provider client, against `endpoint`: a token refresh (the API
/// client) and a download (the transfer client). Both fail, moto being no Dropbox; what matters
/// is how.
async fn dropbox_calls_on_both_clients(endpoint: &str) -> [shared::providers::ProviderError; 2] {
    use shared::providers::{ItemKind, RemoteItem, SyncScope};
    let registry = testkit::providers::registry(json!({ "dropbox": {
        "client_id": "tls", "client_secret": "tls-secret",
        "token_url": format!("{endpoint}/oauth2/token"), "api_base_url": endpoint,
    }}));
    let dropbox = registry.get(ProviderType::Dropbox).unwrap();
    let token = secrecy::SecretString::from("access-token-over-tls");
    let scope = SyncScope { folder_id: "id:folder", folder_path: Some("/Folder"), connection_metadata: None };
    let item = RemoteItem {
        id: "id:file".into(),
        name: "model.qmod".into(),
        kind: ItemKind::File,
        parent_id: None,
        path_lower: Some("/folder/model.qmod".into()),
        path_display: None,
        size: Some(1),
        hash: None,
        revision: None,
        mime_type: None,
        created_at: None,
        modified_at: None,
        downloadable: true,
    };
    let refreshed = dropbox.refresh(&secrecy::SecretString::from("refresh-token-over-tls")).await;
    let downloaded = dropbox.download(&token, &scope, &item).await;
    [refreshed.expect_err("moto is no token endpoint"), downloaded.expect_err("moto is no Dropbox")]
}

/// Both provider clients verify a server against the platform's roots (`SSL_CERT_FILE` names
/// them here), through the one TLS configuration the registry builds for both: with moto's CA
/// among those roots both calls get as far as an HTTP answer.
#[tokio::test]
async fn over_https_both_provider_clients_trust_the_platform_roots() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        // Act
        let endpoint = std::env::var("QUODSI_TEST_TLS_ENDPOINT").unwrap();
        let errors = dropbox_calls_on_both_clients(&endpoint).await;

        // Assert: moto, no Dropbox, answered both with an HTTP 500: the answer came back over TLS.
        use shared::providers::ProviderError;
        let [refreshed, downloaded] = errors;
        assert!(matches!(refreshed, ProviderError::Server { status: 500 }), "{refreshed:?}");
        assert!(matches!(downloaded, ProviderError::Server { status: 500 }), "{downloaded:?}");
        return;
    }
    // Arrange
    let moto = Moto::start_tls();
    let ca = moto.ca_file().expect("moto over TLS has a CA");

    // Act + Assert (in the child)
    run_child(
        "over_https_both_provider_clients_trust_the_platform_roots",
        &[("QUODSI_TEST_TLS_ENDPOINT", moto.endpoint().as_ref()), ("SSL_CERT_FILE", ca.as_os_str())],
    );
}

/// With platform roots that do not include moto's CA, both provider clients refuse the server,
/// and say why without the tokens.
#[tokio::test]
async fn over_https_both_provider_clients_refuse_an_unknown_issuer() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        // Act
        let endpoint = std::env::var("QUODSI_TEST_TLS_ENDPOINT").unwrap();
        let errors = dropbox_calls_on_both_clients(&endpoint).await;

        // Assert
        for err in errors {
            let chain = shared::error_chain(&err);
            assert!(matches!(err, shared::providers::ProviderError::Network(_)), "{err:?}");
            assert!(chain.contains("UnknownIssuer"), "{chain}");
            assert!(!chain.contains("token-over-tls") && !chain.contains("tls-secret"), "{chain}");
        }
        return;
    }
    // Arrange: Amazon's roots stand in for a platform bundle without moto's CA.
    let moto = Moto::start_tls();
    let roots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/aws/amazon-trust-services-roots.pem");

    // Act + Assert (in the child)
    run_child(
        "over_https_both_provider_clients_refuse_an_unknown_issuer",
        &[("QUODSI_TEST_TLS_ENDPOINT", moto.endpoint().as_ref()), ("SSL_CERT_FILE", roots.as_os_str())],
    );
}
