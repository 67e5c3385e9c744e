//! The local run's files, made on first start under `.local/` (ignored by git): the
//! configuration document the functions read (the same JSON as the Secrets Manager secret in
//! AWS) and the development authorizer's signing secret. Both hold fresh random keys.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

pub struct LocalFiles {
    pub config: PathBuf,
    pub jwt_secret: PathBuf,
    /// Quodsi's copies of synced files (the local object store).
    pub objects: PathBuf,
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::fill(&mut key);
    key
}

fn write_new(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Keys: readable by the developer only.
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

/// Makes `dir` and the files in it that are missing; never overwrites one.
pub fn ensure(dir: &Path) -> std::io::Result<LocalFiles> {
    std::fs::create_dir_all(dir)?;
    let files = LocalFiles {
        config: dir.join("config.json"),
        jwt_secret: dir.join("dev-jwt-secret"),
        objects: dir.join("objects"),
    };
    if !files.config.exists() {
        let db = dir.join("quodsi.db");
        let doc = json!({
            "database_url": format!("sqlite:{}", db.display()),
            "token_keys": { "local-1": STANDARD.encode(random_key()) },
            "active_token_key": "local-1",
            "oauth_state_key": STANDARD.encode(random_key()),
            "providers": {},
            // Register http://127.0.0.1:3000/oauth/callback/<provider> with a provider's app
            // to connect real accounts locally.
            "oauth_redirect_base_url": "http://127.0.0.1:3000",
            "return_to_allowlist": ["http://localhost:3000", "http://127.0.0.1:3000", "http://localhost:5173"],
        });
        write_new(&files.config, &serde_json::to_string_pretty(&doc).expect("JSON"))?;
    }
    if !files.jwt_secret.exists() {
        write_new(&files.jwt_secret, &STANDARD.encode(random_key()))?;
    }
    Ok(files)
}

/// The development authorizer's secret from its file.
pub fn read_jwt_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)?;
    STANDARD
        .decode(text.trim())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is not base64", path.display())))
}

/// Where `demo-connection` points a connection: by default a placeholder OneDrive one; with
/// `--api-base-url`, a provider fake (`cargo run -p testkit --bin provider-fake`).
#[derive(Debug, Clone, clap::Args)]
pub struct FakeProvider {
    /// onedrive, sharepoint, gdrive, dropbox or box.
    #[arg(long, default_value = "onedrive")]
    pub provider: String,
    /// The fake's URL: written into `.local/config.json` as the provider's API and token URL.
    #[arg(long)]
    pub api_base_url: Option<String>,
    #[arg(long, default_value = "demo-access-token")]
    pub access_token: String,
    #[arg(long, default_value = "demo-refresh-token")]
    pub refresh_token: String,
    /// The connection's `connection_metadata` (JSON), as the fake prints it.
    #[arg(long)]
    pub metadata: Option<String>,
}

/// Writes the fake's endpoints into the local configuration as the provider's, keeping the
/// rest of the document. Nothing is written without `--api-base-url`.
pub fn point_at_fake(config: &Path, fake: &FakeProvider) -> Result<(), String> {
    let Some(url) = &fake.api_base_url else { return Ok(()) };
    let provider: shared::db::ProviderType = fake.provider.parse().map_err(|e| format!("--provider: {e}"))?;
    let text = std::fs::read_to_string(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let mut doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", config.display()))?;
    let url = url.trim_end_matches('/');
    doc["providers"][provider.as_str()] = json!({
        "client_id": "local-fake",
        "client_secret": "local-fake-secret",
        "api_base_url": url,
        "token_url": format!("{url}/token"),
    });
    let text = serde_json::to_string_pretty(&doc).expect("JSON");
    std::fs::write(config, text).map_err(|e| format!("{}: {e}", config.display()))
}

/// A connection with the given (or placeholder) tokens, so the API can be tried without a
/// provider account. The tokens go through the vault like real ones.
pub async fn demo_connection(
    app: &shared::app::App,
    tenant: shared::db::TenantId,
    user: shared::db::UserId,
    fake: &FakeProvider,
) -> Result<shared::db::ConnectionId, String> {
    use secrecy::SecretString;
    use shared::db::{ConnectionStatus, NewConnection, ProviderType};
    use shared::vault::TokenContext;

    let provider: ProviderType = fake.provider.parse().map_err(|e| format!("--provider: {e}"))?;
    let metadata = match &fake.metadata {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("--metadata is not JSON: {e}"))?,
        None => json!({"demo": true}),
    };
    let db = |e: shared::db::DbError| shared::error_chain(&e);
    app.store.ensure_tenant(tenant, "local tenant").await.map_err(db)?;
    app.store.ensure_user(user, tenant, None).await.map_err(db)?;
    let placeholder = vec![0u8];
    let created = app
        .store
        .create_connection(&NewConnection {
            tenant_id: tenant,
            user_id: user,
            provider_type: provider,
            provider_user_id: format!("demo-{}", uuid::Uuid::new_v4().simple()),
            provider_user_email: Some("demo@example.com".into()),
            encrypted_access_token: placeholder.clone(),
            encrypted_refresh_token: None,
            token_expiry: chrono::Utc::now() + chrono::Duration::hours(1),
            scope: "Files.ReadWrite offline_access".into(),
            status: ConnectionStatus::Active,
            display_name: Some(format!("Demo {}", provider.as_str())),
            connection_metadata: Some(metadata),
        })
        .await
        .map_err(db)?;
    let id = created.base.id;
    let current = app.current().await.map_err(|e| e.to_string())?;
    let access =
        current.vault.encrypt(TokenContext::access(tenant, id), &SecretString::from(fake.access_token.clone()));
    let refresh =
        current.vault.encrypt(TokenContext::refresh(tenant, id), &SecretString::from(fake.refresh_token.clone()));
    app.store.swap_connection_tokens(tenant, id, &placeholder, access, Some(refresh)).await.map_err(db)?;
    Ok(id)
}
