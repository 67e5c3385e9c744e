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

/// A OneDrive connection with placeholder tokens, so the API can be tried without a provider
/// account. The tokens go through the vault like real ones.
pub async fn demo_connection(
    app: &shared::app::App,
    tenant: shared::db::TenantId,
    user: shared::db::UserId,
) -> Result<shared::db::ConnectionId, String> {
    use secrecy::SecretString;
    use shared::db::{ConnectionStatus, NewConnection, ProviderType};
    use shared::vault::TokenContext;

    let db = |e: shared::db::DbError| shared::error_chain(&e);
    app.store.ensure_tenant(tenant, "local tenant").await.map_err(db)?;
    app.store.ensure_user(user, tenant, None).await.map_err(db)?;
    let placeholder = vec![0u8];
    let created = app
        .store
        .create_connection(&NewConnection {
            tenant_id: tenant,
            user_id: user,
            provider_type: ProviderType::OneDrive,
            provider_user_id: format!("demo-{}", uuid::Uuid::new_v4().simple()),
            provider_user_email: Some("demo@example.com".into()),
            encrypted_access_token: placeholder.clone(),
            encrypted_refresh_token: None,
            token_expiry: chrono::Utc::now() + chrono::Duration::hours(1),
            scope: "Files.ReadWrite offline_access".into(),
            status: ConnectionStatus::Active,
            display_name: Some("Demo OneDrive".into()),
            connection_metadata: Some(json!({"demo": true})),
        })
        .await
        .map_err(db)?;
    let id = created.base.id;
    let current = app.current().await.map_err(|e| e.to_string())?;
    let access = current.vault.encrypt(TokenContext::access(tenant, id), &SecretString::from("demo-access-token"));
    let refresh = current.vault.encrypt(TokenContext::refresh(tenant, id), &SecretString::from("demo-refresh-token"));
    app.store.swap_connection_tokens(tenant, id, &placeholder, access, Some(refresh)).await.map_err(db)?;
    Ok(id)
}
