//! A change notification end to end: a folder turns auto-sync on (folders router), the
//! subscription is made at the fake provider with a fresh secret, and a notification carrying
//! what the provider would send back (Graph's clientState, Drive's channel token) is accepted
//! by the receiver (webhooks router) and queues the folder's sync; the same notification with
//! another secret queues nothing.

use serde_json::json;
use shared::db::{PageRequest, ProviderType, SyncJobFilter};
use testkit::connect_with_tokens;
use testkit::http::{ApiEvent, TestApp, call};
use testkit::providers::{ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN};
use testkit::sync_fakes::{RemoteTree, mount};
use wiremock::MockServer;

#[tokio::test]
async fn a_subscription_this_service_made_is_honoured_by_its_receiver() {
    for provider in [ProviderType::OneDrive, ProviderType::GDrive] {
        // Arrange: auto-sync turned on through the API, so the subscription is made.
        let tree = RemoteTree::scenario(provider);
        let server = MockServer::start().await;
        let uri = server.uri();
        let t = TestApp::with_config(json!({
            "webhook_base_url": "https://api.quodsi.test",
            "providers": { provider.as_str(): {
                "client_id": "e2e", "client_secret": CLIENT_SECRET, "token_url": format!("{uri}/token"), "api_base_url": uri,
            }},
        }))
        .await;
        mount(&server, &tree).await;
        let tenant = t.tenant().await;
        let metadata = tree.scope().connection_metadata;
        let connection =
            connect_with_tokens(&t.app, &tenant, provider, ACCESS_TOKEN, Some(REFRESH_TOKEN), Some(metadata)).await;
        let body = json!({
            "connection_id": connection.base.id, "provider_folder_id": tree.synced_folder_id(),
            "folder_type": "models", "auto_sync_enabled": true,
        });
        let made =
            call(&folders::router(t.app.clone()), &ApiEvent::load("folders/create").caller(&tenant).json(&body)).await;
        assert_eq!(made.status, 201, "{}", made.text);
        let watch = tree.watches().remove(0);
        let receiver = webhooks::router(t.app.clone());
        let notify = |secret: &str| match provider {
            ProviderType::OneDrive => ApiEvent::load("webhooks/graph-notification").json(&json!({ "value": [{
                "subscriptionId": watch["id"], "clientState": secret, "changeType": "updated",
                "resource": watch["resource"], "subscriptionExpirationDateTime": watch["expirationDateTime"],
                "tenantId": "bb8775a4-4d8c-42cf-a1d4-4d58c2bb668f",
            }]})),
            _ => {
                let mut event = ApiEvent::load("webhooks/gdrive-notification");
                let headers = &mut event.0["headers"];
                headers["x-goog-channel-id"] = watch["id"].clone();
                headers["x-goog-channel-token"] = json!(secret);
                headers["x-goog-resource-id"] = watch["resourceId"].clone();
                event
            }
        };
        let secret = watch["clientState"].as_str().or(watch["token"].as_str()).unwrap().to_owned();

        // Act
        let forged = call(&receiver, &notify("0".repeat(64).as_str())).await;
        let accepted = call(&receiver, &notify(&secret)).await;

        // Assert
        assert_eq!(forged.status, 401, "{provider}: {}", forged.text);
        assert_eq!(accepted.status, 202, "{provider}: {}", accepted.text);
        assert_eq!(accepted.body["queued"], 1, "{provider}");
        let jobs = t.store().list_jobs(tenant.id, &SyncJobFilter::default(), PageRequest::first(10)).await.unwrap();
        assert_eq!(jobs.items.len(), 1, "{provider}");
    }
}
