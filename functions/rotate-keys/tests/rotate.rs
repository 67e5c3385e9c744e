//! The rotate-keys function: the payloads in events/rotate-keys/ drive a resumable rotation
//! of rows written under an old key to the configuration's active key.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde_json::json;
use shared::vault::{KeyId, TokenContext, Vault};
use testkit::http::TestApp;
use testkit::{Tenant, new_connection};

fn key(byte: u8) -> SecretBox<[u8; 32]> {
    SecretBox::new(Box::new([byte; 32]))
}

fn b64(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

fn event(name: &str) -> serde_json::Value {
    let path = testkit::http::repo_root().join("events/rotate-keys").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn rotates_every_row_to_the_active_key_across_resumed_invocations() {
    // Arrange: five connections written under "old"; the configuration now writes with "new".
    let t = TestApp::with_config(json!({
        "token_keys": { "old": b64(1), "new": b64(2) },
        "active_token_key": "new",
    }))
    .await;
    let old_id = KeyId::new("old").unwrap();
    let old = Vault::new(&old_id, [(&old_id, &key(1))]).unwrap();
    let tenant = Tenant::create(t.store()).await;
    let mut rows = Vec::new();
    for n in 0..5 {
        let placeholder = vec![0u8; 4];
        let c = t
            .store()
            .create_connection(&shared::db::NewConnection {
                encrypted_access_token: placeholder.clone(),
                encrypted_refresh_token: None,
                ..new_connection(&tenant)
            })
            .await
            .unwrap();
        let id = c.base.id;
        let access = old.encrypt(TokenContext::access(tenant.id, id), &SecretString::from(format!("access-{n}")));
        let refresh = old.encrypt(TokenContext::refresh(tenant.id, id), &SecretString::from(format!("refresh-{n}")));
        assert!(t.store().swap_connection_tokens(tenant.id, id, &placeholder, access, Some(refresh)).await.unwrap());
        rows.push((id, n));
    }

    // Act: a first invocation limited to two batches of two, then resume from its cursor.
    let first = rotate_keys::handle(&t.app, json!({"batch_size": 2, "max_batches": 2})).await.unwrap();
    let mut resume = event("resume");
    resume["after_index"] = json!(first.cursor);
    let second = rotate_keys::handle(&t.app, resume).await.unwrap();
    let third = rotate_keys::handle(&t.app, event("start")).await.unwrap();

    // Assert
    assert_eq!((first.rewritten, first.complete), (4, false));
    assert_eq!((second.rewritten, second.complete, second.failed), (1, true, 0));
    assert_eq!((third.rewritten, third.already_current, third.complete), (0, 5, true), "a re-run finds nothing to do");
    let new_id = KeyId::new("new").unwrap();
    let new_only = Vault::new(&new_id, [(&new_id, &key(2))]).unwrap();
    for (id, n) in rows {
        let c = t.store().get_connection(tenant.id, id).await.unwrap();
        let access = new_only.decrypt(TokenContext::access(tenant.id, id), &c.encrypted_access_token).unwrap();
        let refresh = new_only
            .decrypt(TokenContext::refresh(tenant.id, id), c.encrypted_refresh_token.as_deref().unwrap())
            .unwrap();
        assert_eq!(
            (access.expose_secret(), refresh.expose_secret()),
            (&*format!("access-{n}"), &*format!("refresh-{n}"))
        );
    }
}

#[tokio::test]
async fn a_malformed_payload_is_refused_before_any_work() {
    let t = TestApp::new().await;

    let unknown = rotate_keys::handle(&t.app, json!({"after": 3})).await;
    let zero = rotate_keys::handle(&t.app, json!({"batch_size": 0})).await;

    assert!(matches!(unknown, Err(rotate_keys::RotateError::BadRequest(_))), "{unknown:?}");
    assert!(matches!(zero, Err(rotate_keys::RotateError::BadRequest(_))), "{zero:?}");
}

#[tokio::test]
async fn subscription_secrets_are_rotated_once_the_connections_are_done() {
    // Arrange: a Graph subscription whose clientState was written under "old".
    let t = TestApp::with_config(json!({
        "token_keys": { "old": b64(1), "new": b64(2) },
        "active_token_key": "new",
    }))
    .await;
    let old_id = KeyId::new("old").unwrap();
    let old = Vault::new(&old_id, [(&old_id, &key(1))]).unwrap();
    let tenant = Tenant::create(t.store()).await;
    let c = t.store().create_connection(&new_connection(&tenant)).await.unwrap();
    let context = TokenContext::subscription(tenant.id, c.base.id);
    let subscription = t
        .store()
        .create_subscription(&shared::db::NewSyncSubscription {
            tenant_id: tenant.id,
            connection_id: c.base.id,
            folder_id: None,
            subscription_kind: shared::db::SubscriptionKind::GraphSubscription,
            provider_subscription_id: "7f105c7d-2dc5-4530-97cd-4e7ae6534c07".into(),
            provider_resource: Some("/drives/b!abc/root".into()),
            encrypted_secret: Some(old.encrypt(context, &SecretString::from("client-state-1".to_owned()))),
            expires_at: None,
        })
        .await
        .unwrap();

    // Act
    let report = rotate_keys::handle(&t.app, event("start")).await.unwrap();
    let again = rotate_keys::handle(&t.app, event("start")).await.unwrap();

    // Assert
    assert!(report.complete);
    assert_eq!((report.subscription_secrets_rewritten, report.subscription_secrets_failed), (1, 0));
    assert_eq!(again.subscription_secrets_rewritten, 0, "a re-run finds nothing to do");
    let new_id = KeyId::new("new").unwrap();
    let new_only = Vault::new(&new_id, [(&new_id, &key(2))]).unwrap();
    let row = t.store().subscriptions_of_connection(tenant.id, c.base.id).await.unwrap().remove(0);
    assert_eq!(row.base.id, subscription.base.id);
    let secret = new_only.decrypt(context, row.encrypted_secret.as_deref().unwrap()).unwrap();
    assert_eq!(secret.expose_secret(), "client-state-1");
}
