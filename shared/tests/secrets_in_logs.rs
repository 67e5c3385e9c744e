//! Everything `tracing` emits while tokens are encrypted, decrypted and rotated, states are
//! sealed, and configuration is loaded, refreshed and refused, searched for every secret
//! involved. One test on purpose: the capture is the thread's default subscriber.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use shared::config::{Config, ConfigCache, ConfigSource};
use shared::db::{ConnectionId, ConnectionStatus, NewConnection, ProviderType, TenantId, UserId};
use shared::vault::{StateSealer, TokenContext, Vault, rotate_token_keys};
use std::time::Duration;
use testkit::moto::Moto;
use uuid::Uuid;

const KEY_OLD: &str = "b2xkLW9sZC1vbGQtb2xkLW9sZC1vbGQtb2xkLW9sZC0="; // "old-old-...-" (32 bytes)
const KEY_NEW: &str = "bmV3LW5ldy1uZXctbmV3LW5ldy1uZXctbmV3LW5ldy0="; // "new-new-...-" (32 bytes)
const STATE_KEY: &str = "c3RhdGUtc3RhdGUtc3RhdGUtc3RhdGUtc3RhdGUtc3Q="; // "state-state-...st"
const CLIENT_SECRET: &str = "gdrive-client-secret-zz91-never-logged";
const DB_PASSWORD: &str = "db-pass-zz92-never-logged";
const ACCESS_TOKEN: &str = "ya29.access-token-zz93-never-logged";
const REFRESH_TOKEN: &str = "1//refresh-token-zz94-never-logged";
const STATE_SECRET: &str = "pkce-verifier-zz95-never-logged";

fn document(active: &str) -> serde_json::Value {
    json!({
        "database_url": format!("server=tcp:db;password={DB_PASSWORD}"),
        "token_keys": { "old": KEY_OLD, "new": KEY_NEW },
        "active_token_key": active,
        "oauth_state_key": STATE_KEY,
        "providers": { "gdrive": { "client_id": "gd-client", "client_secret": CLIENT_SECRET } }
    })
}

#[tokio::test]
async fn no_token_or_key_reaches_the_logs() {
    let (logs, _guard) = testkit::logs::capture();
    let moto = Moto::start();

    // Configuration: a good secret, a refresh that fails (secret deleted), a bad secret.
    let arn = moto.create_secret("quodsi-logs", &document("old").to_string()).await;
    let cache = ConfigCache::new(ConfigSource::secrets_manager(moto.client(), &arn), Duration::from_millis(100));
    let before = cache.get().await.unwrap();
    moto.client().delete_secret().secret_id(&arn).force_delete_without_recovery(true).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(std::sync::Arc::ptr_eq(&before, &cache.get().await.unwrap()));
    let mut bad = document("old");
    bad["token_keys"]["old"] = json!(format!("{CLIENT_SECRET}{DB_PASSWORD}"));
    let bad_arn = moto.create_secret("quodsi-logs-bad", &bad.to_string()).await;
    let err = ConfigSource::secrets_manager(moto.client(), &bad_arn).load().await.unwrap_err();
    tracing::error!(error = %err, "configuration refused");
    tracing::debug!(config = ?before, "loaded configuration");

    // Tokens under the old key, in a real store.
    let old_vault = Vault::from_keys(&before.token_keys);
    let dir = tempfile::tempdir().unwrap();
    let store = shared::db::open(&format!("sqlite:{}", dir.path().join("l.db").display())).await.unwrap();
    let (tenant, user) = (TenantId(Uuid::new_v4()), UserId(Uuid::new_v4()));
    store.ensure_tenant(tenant, "t").await.unwrap();
    store.ensure_user(user, tenant, None).await.unwrap();
    let placeholder = vec![0u8];
    let conn = store
        .create_connection(&NewConnection {
            tenant_id: tenant,
            user_id: user,
            provider_type: ProviderType::GDrive,
            provider_user_id: "u".into(),
            provider_user_email: None,
            encrypted_access_token: placeholder.clone(),
            encrypted_refresh_token: None,
            token_expiry: chrono::Utc::now(),
            scope: "drive.file".into(),
            status: ConnectionStatus::Active,
            display_name: None,
            connection_metadata: None,
        })
        .await
        .unwrap();
    let id = conn.base.id;
    let access = old_vault.encrypt(TokenContext::access(tenant, id), &SecretString::from(ACCESS_TOKEN));
    let refresh = old_vault.encrypt(TokenContext::refresh(tenant, id), &SecretString::from(REFRESH_TOKEN));
    let plain = old_vault.decrypt(TokenContext::access(tenant, id), &access).unwrap();
    assert_eq!(plain.expose_secret(), ACCESS_TOKEN);
    tracing::debug!(token = ?plain, "decrypted token");
    assert!(store.swap_connection_tokens(tenant, id, &placeholder, access, Some(refresh)).await.unwrap());
    // A row whose refresh token does not decrypt, so the failure path logs too.
    let broken = store
        .create_connection(&NewConnection {
            tenant_id: tenant,
            user_id: user,
            provider_type: ProviderType::GDrive,
            provider_user_id: "u2".into(),
            provider_user_email: None,
            encrypted_access_token: old_vault
                .encrypt(TokenContext::access(tenant, ConnectionId::generate()), &SecretString::from(ACCESS_TOKEN)),
            encrypted_refresh_token: None,
            token_expiry: chrono::Utc::now(),
            scope: "drive.file".into(),
            status: ConnectionStatus::Active,
            display_name: None,
            connection_metadata: None,
        })
        .await
        .unwrap();

    // Rotation to the new key.
    let rotated: Config = Config::from_json(&document("new").to_string()).unwrap();
    let new_vault = Vault::from_keys(&rotated.token_keys);
    tracing::debug!(vault = ?new_vault, "rotating");
    let report = rotate_token_keys(&store, &new_vault, 0, 1, None).await.unwrap();
    assert_eq!((report.rewritten, report.failed), (1, 1));
    let row = store.get_connection(tenant, id).await.unwrap();
    tracing::debug!(row = ?row, "rotated row");
    assert_eq!(broken.base.tenant_id, tenant);

    // OAuth state.
    let sealer = StateSealer::new(&rotated.oauth_state_key);
    let sealed = sealer.seal("oauth-state/gdrive", STATE_SECRET.as_bytes());
    let opened = sealer.open("oauth-state/gdrive", &sealed).unwrap();
    assert_eq!(opened.expose_secret(), STATE_SECRET.as_bytes());
    tracing::debug!(state = ?opened, sealer = ?sealer, "state opened");

    let text = logs.text();
    // The capture works, and it saw every part of the cycle above.
    for expected in [
        "configuration loaded",
        "configuration refresh failed",
        "configuration refused",
        "token_keys.old",
        "token key rotation run finished",
        "token does not decrypt",
        "GetSecretValue",
    ] {
        assert!(text.contains(expected), "log lacks {expected:?}");
    }
    for secret in [
        KEY_OLD,
        KEY_NEW,
        STATE_KEY,
        CLIENT_SECRET,
        DB_PASSWORD,
        ACCESS_TOKEN,
        REFRESH_TOKEN,
        STATE_SECRET,
        "old-old-old",
        "new-new-new",
        "state-state",
    ] {
        assert!(!text.contains(secret), "secret {secret:?} in the logs");
    }
}
