//! Token key rotation: against an in-memory store (to steer races and failures) and against
//! the real SQLite store.

use chrono::Utc;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use shared::db::{
    Base, Connection, ConnectionId, ConnectionStatus, DbError, DbResult, NewConnection, ProviderType, TenantId, UserId,
};
use shared::vault::{
    KEY_LEN, KeyId, RotationReport, TokenContext, TokenKey, TokenRowStore, Vault, key_id_of, rotate_token_keys,
};
use std::sync::Mutex;
use uuid::Uuid;

fn key(byte: u8) -> TokenKey {
    SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| k.fill(byte))
}

fn vault(active: &str, keys: &[(&str, u8)]) -> Vault {
    let keys: Vec<(KeyId, TokenKey)> = keys.iter().map(|(id, b)| (KeyId::new(*id).unwrap(), key(*b))).collect();
    Vault::new(&KeyId::new(active).unwrap(), keys.iter().map(|(id, k)| (id, k))).unwrap()
}

fn old_vault() -> Vault {
    vault("k1", &[("k1", 1)])
}
fn rotating_vault() -> Vault {
    vault("k2", &[("k1", 1), ("k2", 2)])
}
fn new_only_vault() -> Vault {
    vault("k2", &[("k2", 2)])
}

fn access_plain(index: i64) -> String {
    format!("access-token-{index}")
}
fn refresh_plain(index: i64) -> String {
    format!("refresh-token-{index}")
}

/// A row with both tokens encrypted by `v` (refresh omitted if `with_refresh` is false).
fn row(v: &Vault, index: i64, with_refresh: bool) -> Connection {
    let tenant = TenantId(Uuid::new_v4());
    let id = ConnectionId::generate();
    let now = Utc::now();
    Connection {
        base: Base { id, index_id: index, tenant_id: tenant, created_at: now, updated_at: now, is_deleted: false },
        user_id: UserId(Uuid::new_v4()),
        provider_type: ProviderType::OneDrive,
        provider_user_id: format!("user-{index}"),
        provider_user_email: None,
        encrypted_access_token: v.encrypt(TokenContext::access(tenant, id), &SecretString::from(access_plain(index))),
        encrypted_refresh_token: with_refresh
            .then(|| v.encrypt(TokenContext::refresh(tenant, id), &SecretString::from(refresh_plain(index)))),
        token_expiry: now,
        scope: "Files.ReadWrite".into(),
        last_used_at: None,
        last_sync_at: None,
        status: ConnectionStatus::Active,
        display_name: None,
        connection_metadata: None,
    }
}

/// Rows in memory, with hooks to fail a scan or to win a race against the rotation.
#[derive(Default)]
struct MemoryStore {
    rows: Mutex<Vec<Connection>>,
    /// Scans with this `after_index` fail (once).
    fail_scan_after: Mutex<Option<i64>>,
    /// Before the swap of this connection, a "concurrent refresh" rewrites its tokens.
    race_on: Mutex<Option<ConnectionId>>,
    racer: Option<Vault>,
}

impl TokenRowStore for MemoryStore {
    async fn scan_connections(&self, after_index: i64, limit: u16) -> DbResult<Vec<Connection>> {
        if self.fail_scan_after.lock().unwrap().take_if(|a| *a == after_index).is_some() {
            return Err(DbError::State("injected scan failure".into()));
        }
        let rows = self.rows.lock().unwrap();
        Ok(rows.iter().filter(|r| r.base.index_id > after_index).take(usize::from(limit)).cloned().collect())
    }

    async fn swap_connection_tokens(
        &self,
        tenant: TenantId,
        id: ConnectionId,
        expected_access: &[u8],
        access: Vec<u8>,
        refresh: Option<Vec<u8>>,
    ) -> DbResult<bool> {
        let mut rows = self.rows.lock().unwrap();
        let row = rows.iter_mut().find(|r| r.base.tenant_id == tenant && r.base.id == id).ok_or(DbError::NotFound)?;
        if self.race_on.lock().unwrap().take_if(|r| *r == id).is_some() {
            let racer = self.racer.as_ref().unwrap();
            row.encrypted_access_token =
                racer.encrypt(TokenContext::access(tenant, id), &SecretString::from("refreshed-access"));
            row.encrypted_refresh_token =
                Some(racer.encrypt(TokenContext::refresh(tenant, id), &SecretString::from("refreshed-refresh")));
        }
        if row.encrypted_access_token != expected_access {
            return Ok(false);
        }
        row.encrypted_access_token = access;
        row.encrypted_refresh_token = refresh;
        Ok(true)
    }
}

fn decrypt_row(v: &Vault, r: &Connection) -> (String, Option<String>) {
    let (tenant, id) = (r.base.tenant_id, r.base.id);
    let access = v.decrypt(TokenContext::access(tenant, id), &r.encrypted_access_token).unwrap();
    let refresh = r
        .encrypted_refresh_token
        .as_ref()
        .map(|t| v.decrypt(TokenContext::refresh(tenant, id), t).unwrap().expose_secret().to_owned());
    (access.expose_secret().to_owned(), refresh)
}

/// Rows 10..=70 step 10: old with refresh, old without, already new, new access with an old
/// refresh, old with a corrupt refresh, corrupt access, and a soft-deleted old row.
fn mixed_rows() -> Vec<Connection> {
    let old = old_vault();
    let new = new_only_vault();
    let mut rows = vec![
        row(&old, 10, true),
        row(&old, 20, false),
        row(&new, 30, true),
        row(&old, 40, true),
        row(&old, 50, true),
        row(&old, 60, true),
        row(&old, 70, true),
    ];
    // Row 40: a refresh that already wrote the access token under k2, refresh token still k1.
    let r = &mut rows[3];
    r.encrypted_access_token =
        new.encrypt(TokenContext::access(r.base.tenant_id, r.base.id), &SecretString::from(access_plain(40)));
    // Row 50: refresh token tampered with. Row 60: access token tampered with.
    let last = rows[4].encrypted_refresh_token.as_ref().unwrap().len() - 1;
    rows[4].encrypted_refresh_token.as_mut().unwrap()[last] ^= 1;
    let last = rows[5].encrypted_access_token.len() - 1;
    rows[5].encrypted_access_token[last] ^= 1;
    rows[6].base.is_deleted = true;
    rows
}

#[tokio::test]
async fn rotation_rewrites_stale_rows_and_never_touches_unreadable_ones() {
    let rows = mixed_rows();
    let store = MemoryStore { rows: Mutex::new(rows.clone()), ..MemoryStore::default() };
    let report = rotate_token_keys(&store, &rotating_vault(), 0, 2, None).await.unwrap();
    assert_eq!(
        report,
        RotationReport {
            scanned: 7,
            rewritten: 4,
            already_current: 1,
            failed: 2,
            changed_concurrently: 0,
            cursor: 70,
            complete: true,
            subscription_secrets_rewritten: 0,
            subscription_secrets_failed: 0,
        }
    );

    let after = store.rows.lock().unwrap().clone();
    let new = new_only_vault();
    for (before, now) in rows.iter().zip(&after) {
        let i = before.base.index_id;
        if i == 50 || i == 60 {
            // Failed rows are byte-for-byte what they were: the refresh token is not lost.
            assert_eq!(now.encrypted_access_token, before.encrypted_access_token);
            assert_eq!(now.encrypted_refresh_token, before.encrypted_refresh_token);
            continue;
        }
        assert_eq!(key_id_of(&now.encrypted_access_token), Ok("k2"), "row {i}");
        if let Some(r) = &now.encrypted_refresh_token {
            assert_eq!(key_id_of(r), Ok("k2"), "row {i}");
        }
        let (access, refresh) = decrypt_row(&new, now);
        assert_eq!(access, access_plain(i));
        let expected_refresh = (i != 20).then(|| refresh_plain(i));
        assert_eq!(refresh, expected_refresh, "row {i}");
    }
    // Row 30 was already current and row 40's access token too: both kept their bytes.
    assert_eq!(after[2].encrypted_access_token, rows[2].encrypted_access_token);
    assert_eq!(after[3].encrypted_access_token, rows[3].encrypted_access_token);

    // A second run finds nothing left to do but the two unreadable rows.
    let again = rotate_token_keys(&store, &rotating_vault(), 0, 100, None).await.unwrap();
    assert_eq!((again.scanned, again.rewritten, again.already_current, again.failed), (7, 0, 5, 2));
}

#[tokio::test]
async fn rotation_is_resumable_from_its_cursor() {
    let store = MemoryStore { rows: Mutex::new(mixed_rows()), ..MemoryStore::default() };
    let v = rotating_vault();
    let first = rotate_token_keys(&store, &v, 0, 2, Some(1)).await.unwrap();
    assert_eq!((first.scanned, first.cursor, first.complete), (2, 20, false));
    assert_eq!(first.rewritten, 2);
    let second = rotate_token_keys(&store, &v, first.cursor, 2, Some(2)).await.unwrap();
    assert_eq!((second.scanned, second.cursor, second.complete), (4, 60, false));
    let rest = rotate_token_keys(&store, &v, second.cursor, 2, None).await.unwrap();
    assert_eq!((rest.scanned, rest.cursor, rest.complete), (1, 70, true));
    let total = [first, second, rest]
        .iter()
        .fold((0, 0, 0), |t, r| (t.0 + r.rewritten, t.1 + r.already_current, t.2 + r.failed));
    assert_eq!(total, (4, 1, 2));
}

#[tokio::test]
async fn a_store_error_reports_progress_to_resume_from() {
    let store =
        MemoryStore { rows: Mutex::new(mixed_rows()), fail_scan_after: Mutex::new(Some(40)), ..MemoryStore::default() };
    let v = rotating_vault();
    let err = rotate_token_keys(&store, &v, 0, 2, None).await.unwrap_err();
    assert_eq!((err.report.scanned, err.report.cursor), (4, 40));
    assert!(!err.report.complete);
    assert!(err.to_string().contains("after index_id 40"), "{err}");
    let rest = rotate_token_keys(&store, &v, err.report.cursor, 2, None).await.unwrap();
    assert_eq!((rest.scanned, rest.complete), (3, true));
    assert_eq!(err.report.rewritten + rest.rewritten, 4);
}

#[tokio::test]
async fn a_concurrent_token_refresh_wins_over_the_rotation() {
    let rows = mixed_rows();
    let raced = rows[0].base.id;
    let store = MemoryStore {
        rows: Mutex::new(rows),
        race_on: Mutex::new(Some(raced)),
        racer: Some(rotating_vault()),
        ..MemoryStore::default()
    };
    let report = rotate_token_keys(&store, &rotating_vault(), 0, 10, None).await.unwrap();
    assert_eq!((report.scanned, report.rewritten, report.changed_concurrently), (7, 3, 1));
    let after = store.rows.lock().unwrap()[0].clone();
    let (access, refresh) = decrypt_row(&new_only_vault(), &after);
    assert_eq!(access, "refreshed-access");
    assert_eq!(refresh.as_deref(), Some("refreshed-refresh"));
}

#[tokio::test]
async fn rotation_against_the_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("rotation.db").display());
    let store = shared::db::open(&url).await.unwrap();
    let old = old_vault();

    // Two tenants; one connection soft-deleted; one without a refresh token.
    let mut expected = Vec::new();
    for (n, with_refresh) in [(1, true), (2, false), (3, true), (4, true)] {
        let tenant = TenantId(Uuid::new_v4());
        let user = UserId(Uuid::new_v4());
        store.ensure_tenant(tenant, "tenant").await.unwrap();
        store.ensure_user(user, tenant, None).await.unwrap();
        let placeholder = vec![0u8; 4];
        let created = store
            .create_connection(&NewConnection {
                tenant_id: tenant,
                user_id: user,
                provider_type: ProviderType::GDrive,
                provider_user_id: format!("user-{n}"),
                provider_user_email: None,
                encrypted_access_token: placeholder.clone(),
                encrypted_refresh_token: None,
                token_expiry: Utc::now(),
                scope: "drive.file".into(),
                status: ConnectionStatus::Active,
                display_name: None,
                connection_metadata: None,
            })
            .await
            .unwrap();
        // The id is assigned by the insert, and the ciphertext is bound to it: write the real
        // tokens once the id is known.
        let id = created.base.id;
        let access = old.encrypt(TokenContext::access(tenant, id), &SecretString::from(access_plain(n)));
        let refresh =
            with_refresh.then(|| old.encrypt(TokenContext::refresh(tenant, id), &SecretString::from(refresh_plain(n))));
        assert!(store.swap_connection_tokens(tenant, id, &placeholder, access, refresh).await.unwrap());
        if n == 3 {
            store.delete_connection(tenant, id).await.unwrap();
        }
        expected.push((tenant, id, n, with_refresh));
    }

    let report = rotate_token_keys(&store, &rotating_vault(), 0, 3, None).await.unwrap();
    assert_eq!(
        (report.scanned, report.rewritten, report.already_current, report.failed, report.complete),
        (4, 4, 0, 0, true)
    );

    let rows = store.scan_connections(0, 100).await.unwrap();
    assert_eq!(rows.len(), 4);
    let new = new_only_vault();
    for (tenant, id, n, with_refresh) in expected {
        let r = rows.iter().find(|r| r.base.id == id).unwrap();
        assert_eq!(r.base.tenant_id, tenant);
        let (access, refresh) = decrypt_row(&new, r);
        assert_eq!(access, access_plain(n));
        assert_eq!(refresh, with_refresh.then(|| refresh_plain(n)));
    }
    let again = rotate_token_keys(&store, &rotating_vault(), 0, 3, None).await.unwrap();
    assert_eq!((again.rewritten, again.already_current), (0, 4));
}
