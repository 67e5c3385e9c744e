//! Change subscriptions follow a connection's auto-syncing folders: made at the provider when
//! a folder turns auto-sync on, removed when the last one turns it off or goes, renewed before
//! the provider ends them. Through the folders router and `shared::subscriptions`, against the
//! sync fakes (`testkit::sync_fakes`: Graph subscriptions, Drive channels, Box webhooks in the
//! providers' documented shapes).

use serde_json::{Value, json};
use shared::db::{
    Connection, ErrorType, PageRequest, ProviderType, SubscriptionKind, SyncErrorFilter, SyncSubscription,
};
use shared::deadline::Deadline;
use testkit::http::{ApiEvent, Reply, TestApp, call};
use testkit::providers::{ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN};
use testkit::sync_fakes::{Endpoint, Fault, RemoteTree, mount};
use testkit::{Tenant, connect_with_tokens};
use wiremock::MockServer;

const WEBHOOKS: &str = "https://api.quodsi.test/prod";

struct World {
    t: TestApp,
    _server: MockServer,
    tree: RemoteTree,
    tenant: Tenant,
    connection: Connection,
    router: axum::Router,
}

async fn world(provider: ProviderType, webhook_base_url: Option<&str>) -> World {
    let tree = RemoteTree::scenario(provider);
    let server = MockServer::start().await;
    let uri = server.uri();
    let mut config = json!({ "providers": { provider.as_str(): {
        "client_id": "folders-client",
        "client_secret": CLIENT_SECRET,
        "token_url": format!("{uri}/token"),
        "api_base_url": uri,
    }}});
    if let Some(base) = webhook_base_url {
        config["webhook_base_url"] = json!(base);
    }
    let t = TestApp::with_config(config).await;
    mount(&server, &tree).await;
    let tenant = t.tenant().await;
    let metadata = tree.scope().connection_metadata;
    let connection =
        connect_with_tokens(&t.app, &tenant, provider, ACCESS_TOKEN, Some(REFRESH_TOKEN), Some(metadata)).await;
    let router = folders::router(t.app.clone());
    World { t, _server: server, tree, tenant, connection, router }
}

impl World {
    /// Configures the remote folder at `path` (`""`: the synced folder) with auto-sync on.
    async fn configure(&self, path: &str) -> Reply {
        let id = if path.is_empty() { self.tree.synced_folder_id() } else { self.tree.expect(path).id };
        let body = json!({
            "connection_id": self.connection.base.id,
            "provider_folder_id": id,
            "folder_type": "models",
            "auto_sync_enabled": true,
        });
        call(&self.router, &ApiEvent::load("folders/create").caller(&self.tenant).json(&body)).await
    }

    async fn auto_sync(&self, folder: &Reply, on: bool) -> Reply {
        let id = folder.body["id"].as_str().unwrap();
        let event = ApiEvent::load("folders/patch")
            .caller(&self.tenant)
            .path(&format!("/folders/{id}"))
            .json(&json!({ "auto_sync_enabled": on }));
        call(&self.router, &event).await
    }

    async fn rows(&self) -> Vec<SyncSubscription> {
        self.t.store().subscriptions_of_connection(self.tenant.id, self.connection.base.id).await.unwrap()
    }

    async fn errors(&self) -> Vec<shared::db::SyncError> {
        let filter = SyncErrorFilter { connection_id: Some(self.connection.base.id), ..Default::default() };
        self.t.store().list_errors(self.tenant.id, &filter, PageRequest::first(50)).await.unwrap().items
    }
}

fn deadline() -> Deadline {
    Deadline::after(std::time::Duration::from_secs(20))
}

#[tokio::test]
async fn auto_sync_on_makes_the_subscription_its_scope_needs_and_off_removes_it() {
    for (provider, kind, per_folder) in [
        (ProviderType::OneDrive, Some(SubscriptionKind::GraphSubscription), false),
        (ProviderType::GDrive, Some(SubscriptionKind::DriveChannel), false),
        (ProviderType::Box, Some(SubscriptionKind::BoxWebhook), true),
        (ProviderType::Dropbox, None, false),
    ] {
        // Arrange
        let w = world(provider, Some(WEBHOOKS)).await;

        // Act: two auto-syncing folders, then auto-sync off on one, then on the other.
        let synced = w.configure("").await;
        let scenarios = w.configure("Scenarios").await;
        let with_both = (w.rows().await, w.tree.watches());
        w.auto_sync(&synced, false).await;
        let with_one = (w.rows().await, w.tree.watches());
        w.auto_sync(&scenarios, false).await;
        let with_none = (w.rows().await, w.tree.watches());

        // Assert
        assert_eq!((synced.status, scenarios.status), (201, 201), "{provider}: {}", synced.text);
        let Some(kind) = kind else {
            assert!(with_both.0.is_empty() && with_both.1.is_empty(), "{provider}: the app's webhook, nothing to make");
            continue;
        };
        let wanted = if per_folder { 2 } else { 1 };
        assert_eq!(
            with_both.0.len(),
            wanted,
            "{provider}: one per {}",
            if per_folder { "folder" } else { "connection" }
        );
        assert_eq!(with_both.1.len(), wanted, "{provider}: and the provider holds as many");
        let row = &with_both.0[0];
        assert_eq!(row.subscription_kind, kind, "{provider}");
        let ids: Vec<&str> = with_both.1.iter().map(|w| w["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&row.provider_subscription_id.as_str()), "{provider}: the row names the provider's");
        // Drive's channel answer names no address; its fake refuses any but `…/webhooks/gdrive`.
        if let Some(address) = with_both.1[0]["notificationUrl"].as_str().or(with_both.1[0]["address"].as_str()) {
            assert!(address.starts_with(WEBHOOKS) && address.contains("/webhooks/"), "{provider}: {address}");
        }
        match kind {
            SubscriptionKind::BoxWebhook => assert!(row.encrypted_secret.is_none(), "Box signs with the app's keys"),
            _ => {
                let secret = with_both.1[0]["clientState"].as_str().or(with_both.1[0]["token"].as_str()).unwrap();
                assert_eq!(secret.len(), 64, "{provider}: a fresh random secret");
                assert!(
                    row.encrypted_secret.as_ref().is_some_and(|c| !c.windows(8).any(|w| w == &secret.as_bytes()[..8])),
                    "{provider}: stored encrypted"
                );
                assert!(row.expires_at.is_some(), "{provider}: the provider's expiry");
            }
        }
        assert_eq!(
            with_one.0.len(),
            wanted - 1 + usize::from(!per_folder),
            "{provider}: the other folder still needs it"
        );
        assert_eq!(with_one.1.len(), with_one.0.len(), "{provider}");
        assert!(with_none.0.is_empty() && with_none.1.is_empty(), "{provider}: none left anywhere");
        assert!(w.errors().await.is_empty(), "{provider}: {:?}", w.errors().await);
    }
}

#[tokio::test]
async fn a_subscription_the_provider_refuses_is_an_error_row_and_the_folder_is_configured() {
    // Arrange
    let w = world(ProviderType::OneDrive, Some(WEBHOOKS)).await;
    w.tree.inject(Endpoint::Watch, Fault::ServerError);

    // Act
    let folder = w.configure("").await;

    // Assert
    assert_eq!(folder.status, 201, "{}", folder.text);
    assert!(w.rows().await.is_empty());
    let errors = w.errors().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].error_type, ErrorType::Api);
    assert_eq!(errors[0].error_metadata.as_ref().unwrap()["operation"], "watch");
    assert!(!errors[0].error_message.contains(ACCESS_TOKEN));
}

#[tokio::test]
async fn without_a_webhook_base_url_nothing_is_subscribed() {
    // Arrange
    let w = world(ProviderType::Box, None).await;

    // Act
    let folder = w.configure("").await;

    // Assert
    assert_eq!(folder.status, 201);
    assert!(w.rows().await.is_empty() && w.tree.watches().is_empty());
}

#[tokio::test]
async fn renewal_extends_a_graph_subscription_and_replaces_a_drive_channel() {
    for provider in [ProviderType::OneDrive, ProviderType::GDrive] {
        // Arrange: a subscription about to end.
        let w = world(provider, Some(WEBHOOKS)).await;
        w.configure("").await;
        let before = w.rows().await.remove(0);
        let soon = (w.t.store().now() + chrono::Duration::hours(2)).naive_utc().format("%Y-%m-%d %H:%M:%S%.6f");
        w.t.execute_sql(&format!(
            "UPDATE cloud_sync_subscriptions SET expires_at = '{soon}' WHERE id = '{}'",
            before.base.id
        ));

        // Act
        let report = shared::subscriptions::renew_due(&w.t.app, &deadline(), w.t.store().now(), 10).await;

        // Assert
        assert_eq!((report.scanned, report.acted), (1, 1), "{provider}");
        let after = w.rows().await.remove(0);
        assert_eq!(after.base.id, before.base.id, "{provider}: the same row");
        assert!(after.expires_at.unwrap() > w.t.store().now() + chrono::Duration::days(5), "{provider}");
        let watches = w.tree.watches();
        assert_eq!(watches.len(), 1, "{provider}: the old channel stopped");
        assert_eq!(watches[0]["id"], json!(after.provider_subscription_id), "{provider}");
        if provider == ProviderType::OneDrive {
            assert_eq!(after.provider_subscription_id, before.provider_subscription_id, "Graph renews in place");
        } else {
            assert_ne!(after.provider_subscription_id, before.provider_subscription_id, "a new Drive channel");
        }
        let quiet = shared::subscriptions::renew_due(&w.t.app, &deadline(), w.t.store().now(), 10).await;
        assert_eq!(quiet.scanned, 0, "{provider}: nothing due any more");
    }
}

#[tokio::test]
async fn a_connection_that_goes_takes_its_subscriptions_with_it() {
    // Arrange
    let w = world(ProviderType::Box, Some(WEBHOOKS)).await;
    w.configure("").await;
    w.configure("Scenarios").await;
    assert_eq!(w.tree.watches().len(), 2);

    // Act
    shared::subscriptions::remove_all(&w.t.app, &deadline(), &w.connection).await;

    // Assert
    assert!(w.rows().await.is_empty());
    assert!(w.tree.watches().is_empty(), "removed at the provider");
    let gone: Vec<Value> = w.tree.watches();
    assert!(gone.is_empty());
}
