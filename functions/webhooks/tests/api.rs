//! The webhook receivers through their real router, fed API Gateway events from
//! `events/webhooks/` (bodies and headers as each provider documents them), against SQLite
//! with seeded connections, folders and subscriptions.

use chrono::{Duration, SecondsFormat};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::db::{
    Connection, FolderFilter, NewSyncSubscription, PageRequest, ProviderType, SubscriptionKind, SyncJob, SyncJobFilter,
    SyncSubscription,
};
use shared::vault::TokenContext;
use testkit::http::{ApiEvent, Reply, TestApp, call};
use testkit::providers::{ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN};
use testkit::{Tenant, connect_with_tokens, new_folder};
use webhooks::verify;

const GRAPH_SUBSCRIPTION: &str = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07";
const CLIENT_STATE: &str = "secretClientValue";
const DROPBOX_ACCOUNT: &str = "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc";
const BOX_WEBHOOK: &str = "1234567890";
const DRIVE_CHANNEL: &str = "4ba78bf0-6a47-11e2-bcfd-0800200c9a66";
const DRIVE_TOKEN: &str = "398348u3tu83ut8uu38";
const DRIVE_RESOURCE: &str = "ret08u3rv24htgh289g";
/// Box's sample signature keys (box-python-sdk, `test_validate_message`).
const BOX_PRIMARY: &str = "SamplePrimaryKey";
const BOX_SECONDARY: &str = "SampleSecondaryKey";

struct World {
    t: TestApp,
    router: axum::Router,
    tenant: Tenant,
}

async fn world() -> World {
    let provider = |secret: &str| json!({ "client_id": "webhook-client", "client_secret": secret });
    let mut boxcom = provider(CLIENT_SECRET);
    boxcom["webhook_primary_key"] = json!(BOX_PRIMARY);
    boxcom["webhook_secondary_key"] = json!(BOX_SECONDARY);
    let t = TestApp::with_config(json!({ "providers": {
        "onedrive": provider(CLIENT_SECRET),
        "gdrive": provider(CLIENT_SECRET),
        "dropbox": provider(CLIENT_SECRET),
        "box": boxcom,
    }}))
    .await;
    let tenant = t.tenant().await;
    let router = webhooks::router(t.app.clone());
    World { t, router, tenant }
}

impl World {
    async fn connection(&self, tenant: &Tenant, provider: ProviderType) -> Connection {
        let connection =
            connect_with_tokens(&self.t.app, tenant, provider, ACCESS_TOKEN, Some(REFRESH_TOKEN), None).await;
        if provider == ProviderType::Dropbox {
            // The account id a Dropbox notification names.
            let sql = format!(
                "UPDATE cloud_connections SET provider_user_id = '{DROPBOX_ACCOUNT}' WHERE id = '{}'",
                connection.base.id
            );
            self.t.execute_sql(&sql);
        }
        connection
    }

    /// A folder of the connection; auto-syncing or not.
    async fn folder(&self, tenant: &Tenant, connection: &Connection, auto_sync: bool) -> shared::db::Folder {
        let mut new = new_folder(tenant, connection.base.id);
        new.auto_sync_enabled = auto_sync;
        new.sync_frequency_minutes = auto_sync.then_some(60);
        self.t.store().create_folder(&new).await.unwrap()
    }

    async fn subscription(
        &self,
        connection: &Connection,
        folder: Option<&shared::db::Folder>,
        kind: SubscriptionKind,
        provider_id: &str,
        secret: Option<&str>,
        resource: Option<&str>,
    ) -> SyncSubscription {
        let current = self.t.app.current().await.unwrap();
        let (tenant, id) = (connection.base.tenant_id, connection.base.id);
        let encrypted = secret
            .map(|s| current.vault.encrypt(TokenContext::subscription(tenant, id), &SecretString::from(s.to_owned())));
        let new = NewSyncSubscription {
            tenant_id: tenant,
            connection_id: id,
            folder_id: folder.map(|f| f.base.id),
            subscription_kind: kind,
            provider_subscription_id: provider_id.to_owned(),
            provider_resource: resource.map(str::to_owned),
            encrypted_secret: encrypted,
            expires_at: Some(self.t.store().now() + Duration::days(2)),
        };
        self.t.store().create_subscription(&new).await.unwrap()
    }

    async fn jobs(&self, tenant: &Tenant) -> Vec<SyncJob> {
        self.t.store().list_jobs(tenant.id, &SyncJobFilter::default(), PageRequest::first(200)).await.unwrap().items
    }

    async fn send(&self, event: &ApiEvent) -> Reply {
        call(&self.router, event).await
    }
}

/// A Box delivery of `body`, signed now with Box's sample keys (or `stamp` when given).
fn box_event(body: &Value, stamp: &str, primary_key: &str) -> ApiEvent {
    let text = body.to_string();
    let sign = |key: &str| verify::box_signature(key, text.as_bytes(), stamp);
    let mut event = ApiEvent::load("webhooks/box-notification").raw_body(&text, Some("application/json"));
    let headers = &mut event.0["headers"];
    headers["box-delivery-timestamp"] = json!(stamp);
    headers["box-signature-primary"] = json!(sign(primary_key));
    headers["box-signature-secondary"] = json!(sign("not-the-secondary-key"));
    event
}

fn now_stamp(w: &World) -> String {
    w.t.store().now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test]
async fn graph_handshake_echoes_the_validation_token_as_plain_text() {
    // Arrange
    let w = world().await;

    // Act
    let reply = w.send(&ApiEvent::load("webhooks/graph-validation")).await;

    // Assert
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.text,
        "Validation: Testing client application reachability for subscription Request-Id: 25b01c4a-0e1d-4f2a-9f0c-1d2e3f4a5b6c",
        "the token decoded, as Graph's handshake asks"
    );
    assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn a_graph_notification_with_its_client_state_queues_each_auto_syncing_folder_once() {
    // Arrange: a drive-root subscription of a connection with two auto-syncing folders and one
    // that syncs only on demand.
    let w = world().await;
    let c = w.connection(&w.tenant, ProviderType::OneDrive).await;
    let (a, b) = (w.folder(&w.tenant, &c, true).await, w.folder(&w.tenant, &c, true).await);
    w.folder(&w.tenant, &c, false).await;
    w.subscription(&c, None, SubscriptionKind::GraphSubscription, GRAPH_SUBSCRIPTION, Some(CLIENT_STATE), None).await;
    let event = ApiEvent::load("webhooks/graph-notification");

    // Act
    let first = w.send(&event).await;
    let again = w.send(&event).await;

    // Assert
    assert_eq!(first.status, 202, "{}", first.text);
    assert_eq!(first.body, json!({ "notifications": 1, "queued": 2, "already_live": 0 }));
    assert_eq!(again.body, json!({ "notifications": 1, "queued": 0, "already_live": 2 }), "nothing twice");
    let jobs = w.jobs(&w.tenant).await;
    let mut folders: Vec<_> = jobs.iter().map(|j| j.folder_id).collect();
    folders.sort();
    let mut expected = vec![a.base.id, b.base.id];
    expected.sort();
    assert_eq!(folders, expected);
    assert!(jobs.iter().all(|j| j.job_metadata == Some(json!({ "trigger": "webhook:graph" }))));
    let noted = w.t.store().subscriptions_of_connection(w.tenant.id, c.base.id).await.unwrap();
    assert!(noted[0].last_notified_at.is_some());
}

#[tokio::test]
async fn a_forged_graph_notification_is_a_401_and_an_unknown_subscription_queues_nothing() {
    // Arrange
    let w = world().await;
    let c = w.connection(&w.tenant, ProviderType::OneDrive).await;
    w.folder(&w.tenant, &c, true).await;
    w.subscription(&c, None, SubscriptionKind::GraphSubscription, GRAPH_SUBSCRIPTION, Some(CLIENT_STATE), None).await;
    let mut forged = ApiEvent::load("webhooks/graph-notification");
    let mut body: Value = serde_json::from_str(forged.0["body"].as_str().unwrap()).unwrap();
    body["value"][0]["clientState"] = json!("guessed");
    forged = forged.json(&body);
    body["value"][0]["subscriptionId"] = json!("00000000-0000-0000-0000-000000000000");
    let unknown = ApiEvent::load("webhooks/graph-notification").json(&body);
    let malformed = ApiEvent::load("webhooks/graph-notification").raw_body("{\"value\":", Some("application/json"));

    // Act
    let forged = w.send(&forged).await;
    let unknown = w.send(&unknown).await;
    let malformed = w.send(&malformed).await;

    // Assert
    assert_eq!((forged.status, forged.error_code()), (401, "unauthorized"), "{}", forged.text);
    assert!(!forged.text.contains(CLIENT_STATE), "the secret is never echoed");
    assert_eq!(unknown.status, 202, "acknowledged so Graph stops retrying: {}", unknown.text);
    assert_eq!(unknown.body["queued"], 0);
    assert_eq!((malformed.status, malformed.error_code()), (400, "malformed_json"));
    assert!(w.jobs(&w.tenant).await.is_empty(), "nothing queued");
}

#[tokio::test]
async fn dropbox_challenge_is_echoed_as_plain_text_with_nosniff() {
    // Arrange
    let w = world().await;

    // Act
    let reply = w.send(&ApiEvent::load("webhooks/dropbox-challenge")).await;
    let hostile = w.send(&ApiEvent::load("webhooks/dropbox-challenge").query("challenge=%3Cscript%3E%0A")).await;

    // Assert
    assert_eq!((reply.status, reply.text.as_str()), (200, "a1b2c3d4e5f6"));
    assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(hostile.status, 400, "a control character is no Dropbox challenge");
}

#[test]
fn dropbox_signatures_are_hmac_sha256_of_the_body_in_hex() {
    // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    let key = SecretString::from("Jefe".to_owned());
    let data = b"what do ya want for nothing?";
    let known = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    assert!(verify::dropbox(&key, data, Some(known)));
    assert!(verify::dropbox(&key, data, Some(&known.to_uppercase())), "hex of either case");
    assert!(!verify::dropbox(&key, b"what do ya want for nothing!", Some(known)));
    assert!(!verify::dropbox(&key, data, None));
    assert!(!verify::dropbox(&key, data, Some("not hex")));
}

#[tokio::test]
async fn a_signed_dropbox_notification_queues_the_accounts_folders_in_every_tenant_and_a_bad_one_nothing() {
    // Arrange: the same Dropbox account connected by two tenants.
    let w = world().await;
    let other = w.t.tenant().await;
    let mine = w.connection(&w.tenant, ProviderType::Dropbox).await;
    let theirs = w.connection(&other, ProviderType::Dropbox).await;
    w.folder(&w.tenant, &mine, true).await;
    w.folder(&other, &theirs, true).await;
    let event = ApiEvent::load("webhooks/dropbox-notification");
    let body = event.0["body"].as_str().unwrap().to_owned();
    let signed = {
        let mut e = event.clone();
        e.0["headers"]["x-dropbox-signature"] = json!(verify::hex_hmac(CLIENT_SECRET, body.as_bytes()));
        e
    };
    let tampered = signed.clone().raw_body(&body.replace("12345678", "87654321"), Some("application/json"));

    // Act
    let unsigned = w.send(&event).await;
    let tampered = w.send(&tampered).await;
    let accepted = w.send(&signed).await;

    // Assert
    assert_eq!((unsigned.status, unsigned.error_code()), (403, "forbidden"), "{}", unsigned.text);
    assert_eq!(tampered.status, 403);
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    assert_eq!(accepted.body["queued"], 2, "one folder in each tenant");
    assert_eq!(w.jobs(&w.tenant).await.len(), 1);
    assert_eq!(w.jobs(&other).await.len(), 1);
}

#[test]
fn box_signatures_verify_with_boxs_own_example() {
    // box-python-sdk's test_validate_message: the event, its timestamp and both signatures.
    let body = br#"{"type":"webhook_event","webhook":{"id":"1234567890"},"trigger":"FILE.UPLOADED","source":{"id":"1234567890","type":"file","name":"Test.txt"}}"#;
    let stamp = "2020-01-01T00:00:00-07:00";
    let delivery = verify::BoxDelivery {
        timestamp: Some(stamp),
        primary: Some("6TfeAW3A1PASkgboxxA5yqHNKOwFyMWuEXny/FPD5hI="),
        secondary: Some("v+1CD1Jdo3muIcbpv5lxxgPglOqMfsNHPV899xWYydo="),
        version: Some("1"),
        algorithm: Some("HmacSHA256"),
    };
    let at = chrono::DateTime::parse_from_rfc3339(stamp).unwrap().with_timezone(&chrono::Utc);
    let (primary, secondary) =
        (SecretString::from(BOX_PRIMARY.to_owned()), SecretString::from(BOX_SECONDARY.to_owned()));
    let wrong = SecretString::from("IncorrectKey".to_owned());

    assert_eq!(verify::boxcom(&delivery, body, Some(&primary), Some(&secondary), at + Duration::minutes(1)), Ok(()));
    assert_eq!(verify::boxcom(&delivery, body, Some(&wrong), Some(&secondary), at), Ok(()), "the secondary suffices");
    assert_eq!(verify::boxcom(&delivery, body, Some(&primary), None, at), Ok(()), "and so does the primary");
    assert!(verify::boxcom(&delivery, body, Some(&wrong), Some(&wrong), at).is_err());
    assert!(verify::boxcom(&delivery, &body[1..], Some(&primary), Some(&secondary), at).is_err(), "a changed body");
    assert!(verify::boxcom(&delivery, body, Some(&primary), None, at + Duration::minutes(11)).is_err(), "stale");
    assert!(
        verify::boxcom(&delivery, body, Some(&primary), None, at - Duration::minutes(5)).is_err(),
        "from the future"
    );
    let v2 = verify::BoxDelivery { version: Some("2"), ..delivery };
    assert!(verify::boxcom(&v2, body, Some(&primary), None, at).is_err(), "an unknown signature version");
    assert_eq!(
        verify::box_signature(BOX_PRIMARY, body, stamp),
        "6TfeAW3A1PASkgboxxA5yqHNKOwFyMWuEXny/FPD5hI=",
        "the test helper signs as Box does"
    );
}

#[tokio::test]
async fn a_signed_box_notification_queues_its_folder_and_a_stale_or_forged_one_nothing() {
    // Arrange: a webhook on one auto-syncing folder; another folder of the connection.
    let w = world().await;
    let c = w.connection(&w.tenant, ProviderType::Box).await;
    let watched = w.folder(&w.tenant, &c, true).await;
    w.folder(&w.tenant, &c, true).await;
    w.subscription(&c, Some(&watched), SubscriptionKind::BoxWebhook, BOX_WEBHOOK, None, None).await;
    let body: Value =
        serde_json::from_str(ApiEvent::load("webhooks/box-notification").0["body"].as_str().unwrap()).unwrap();

    // Act
    let documented = w.send(&ApiEvent::load("webhooks/box-notification")).await;
    let forged = w.send(&box_event(&body, &now_stamp(&w), "IncorrectKey")).await;
    let accepted = w.send(&box_event(&body, &now_stamp(&w), BOX_PRIMARY)).await;

    // Assert
    assert_eq!((documented.status, documented.error_code()), (403, "forbidden"), "Box's 2020 example is stale now");
    assert_eq!(forged.status, 403);
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    assert_eq!(accepted.body["queued"], 1, "only the webhook's folder");
    let jobs = w.jobs(&w.tenant).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].folder_id, watched.base.id);
}

#[tokio::test]
async fn a_box_webhook_deleted_by_box_is_forgotten() {
    // Arrange
    let w = world().await;
    let c = w.connection(&w.tenant, ProviderType::Box).await;
    let watched = w.folder(&w.tenant, &c, true).await;
    w.subscription(&c, Some(&watched), SubscriptionKind::BoxWebhook, BOX_WEBHOOK, None, None).await;
    let body = json!({
        "type": "webhook_event", "id": "eb0c4e06-751f-442c-86f8-fd5bb404976e", "trigger": "WEBHOOK.DELETED",
        "webhook": { "id": BOX_WEBHOOK }, "additional_info": { "reason": "auto_cleanup" },
    });

    // Act
    let reply = w.send(&box_event(&body, &now_stamp(&w), BOX_PRIMARY)).await;

    // Assert
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert!(w.t.store().find_subscription(SubscriptionKind::BoxWebhook, BOX_WEBHOOK).await.unwrap().is_none());
    assert!(w.jobs(&w.tenant).await.is_empty());
}

#[tokio::test]
async fn a_drive_channel_message_with_its_token_queues_the_connections_folders_after_the_sync_message() {
    // Arrange
    let w = world().await;
    let c = w.connection(&w.tenant, ProviderType::GDrive).await;
    w.folder(&w.tenant, &c, true).await;
    w.subscription(&c, None, SubscriptionKind::DriveChannel, DRIVE_CHANNEL, Some(DRIVE_TOKEN), Some(DRIVE_RESOURCE))
        .await;
    let event = ApiEvent::load("webhooks/gdrive-notification");
    let with = |name: &str, value: &str| {
        let mut e = event.clone();
        e.0["headers"][name] = json!(value);
        e
    };

    let mut sync_message = with("x-goog-resource-state", "sync");
    sync_message.0["headers"]["x-goog-message-number"] = json!("1");

    // Act
    let sync = w.send(&sync_message).await;
    let jobs_after_sync = w.jobs(&w.tenant).await.len();
    let wrong_token = w.send(&with("x-goog-channel-token", "guessed")).await;
    let wrong_resource = w.send(&with("x-goog-resource-id", "another")).await;
    let unknown = w.send(&with("x-goog-channel-id", "not-a-channel")).await;
    let change = w.send(&event).await;
    let noted = w.t.store().find_subscription(SubscriptionKind::DriveChannel, DRIVE_CHANNEL).await.unwrap().unwrap();

    // Assert
    assert_eq!(sync.status, 202);
    assert_eq!(jobs_after_sync, 0, "the sync message only confirms the channel");
    assert_eq!((wrong_token.status, wrong_token.error_code()), (401, "unauthorized"));
    assert_eq!(wrong_resource.status, 401);
    assert_eq!((unknown.status, unknown.body["queued"].clone()), (202, json!(0)));
    assert_eq!(change.status, 202, "{}", change.text);
    assert_eq!(change.body["queued"], 1);
    let folders =
        w.t.store().list_folders(w.tenant.id, &FolderFilter::default(), PageRequest::first(10)).await.unwrap();
    assert_eq!(w.jobs(&w.tenant).await[0].folder_id, folders.items[0].base.id);
    assert_eq!(noted.last_message_number, Some(10), "the change's number is the channel's last");
    assert!(noted.last_notified_at.is_some());
}

#[tokio::test]
async fn a_replayed_or_late_drive_message_is_refused_and_queues_nothing() {
    // Arrange: message 10 was accepted and queued a job, which is still live.
    let w = world().await;
    let c = w.connection(&w.tenant, ProviderType::GDrive).await;
    w.folder(&w.tenant, &c, true).await;
    w.subscription(&c, None, SubscriptionKind::DriveChannel, DRIVE_CHANNEL, Some(DRIVE_TOKEN), Some(DRIVE_RESOURCE))
        .await;
    let numbered = |n: &str| {
        let mut e = ApiEvent::load("webhooks/gdrive-notification");
        e.0["headers"]["x-goog-message-number"] = json!(n);
        e
    };
    let first = w.send(&numbered("10")).await;

    // Act
    let replayed = w.send(&numbered("10")).await;
    let late = w.send(&numbered("7")).await;
    let unnumbered = w.send(&numbered("ten")).await;
    let jobs_after_refusals = w.jobs(&w.tenant).await.len();
    let next = w.send(&numbered("11")).await;

    // Assert
    assert_eq!((first.status, first.body["queued"].clone()), (202, json!(1)), "{}", first.text);
    for refused in [&replayed, &late, &unnumbered] {
        assert_eq!((refused.status, refused.error_code()), (401, "unauthorized"), "{}", refused.text);
        assert!(refused.text.contains("X-Goog-Message-Number"), "{}", refused.text);
    }
    assert_eq!(jobs_after_refusals, 1, "a refused message queues nothing");
    assert_eq!(next.status, 202, "{}", next.text);
    assert_eq!(
        (next.body["queued"].clone(), next.body["already_live"].clone()),
        (json!(0), json!(1)),
        "a newer message is accepted: the folder's job is live"
    );
}
