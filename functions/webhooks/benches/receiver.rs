//! Notifications per second the receivers accept and act on, against a plain axum handler
//! that answers 202 to the same request (the floor: routing and a response, nothing else).
//! In one process, on SQLite, requests sent one after another through each router
//! (`tower::ServiceExt::oneshot`), rounds interleaved so both see the same machine noise.
//!
//! - `dropbox`: a signed Dropbox notification naming an account connected once with one
//!   auto-syncing folder: HMAC over the body, the connections of the account, the folder,
//!   and a job insert (the first one queues; the rest find the folder's live job);
//! - `graph`: a Graph notification of a stored subscription: the lookup, the vault decrypting
//!   its clientState, the constant-time compare, the folder and the job insert as above.
//!
//! `cargo bench -p webhooks --bench receiver`

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use secrecy::SecretString;
use serde_json::json;
use shared::app::App;
use shared::config::{ConfigCache, ConfigSource};
use shared::db::{NewSyncSubscription, ProviderType, SubscriptionKind};
use shared::vault::TokenContext;
use tower::ServiceExt as _;

const SECRET: &str = "cs-bench-dropbox-app-secret";
const ACCOUNT: &str = "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc";
const SUBSCRIPTION: &str = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07";
const CLIENT_STATE: &str = "secretClientValue";
const REQUESTS: usize = 2_000;
const ROUNDS: usize = 5;

async fn app(dir: &std::path::Path) -> Arc<App> {
    let url = format!("sqlite:{}", dir.join("bench.db").display());
    let provider = json!({ "client_id": "bench", "client_secret": SECRET });
    let config =
        testkit::http::config_json(&url, json!({ "providers": { "dropbox": provider, "onedrive": provider } }));
    let cache = ConfigCache::new(ConfigSource::Inline(config.into()), Duration::from_secs(3600));
    let app = Arc::new(App::from_cache(cache).await.unwrap());
    let t = testkit::Tenant::create(&app.store).await;
    for provider in [ProviderType::Dropbox, ProviderType::OneDrive] {
        let mut new = testkit::new_connection(&t);
        new.provider_type = provider;
        new.provider_user_id = ACCOUNT.to_owned();
        let connection = app.store.create_connection(&new).await.unwrap();
        let mut folder = testkit::new_folder(&t, connection.base.id);
        folder.auto_sync_enabled = true;
        folder.sync_frequency_minutes = Some(60);
        app.store.create_folder(&folder).await.unwrap();
        if provider == ProviderType::OneDrive {
            let vault = &app.current().await.unwrap().vault;
            let context = TokenContext::subscription(t.id, connection.base.id);
            let secret = vault.encrypt(context, &SecretString::from(CLIENT_STATE.to_owned()));
            let subscription = NewSyncSubscription {
                tenant_id: t.id,
                connection_id: connection.base.id,
                folder_id: None,
                subscription_kind: SubscriptionKind::GraphSubscription,
                provider_subscription_id: SUBSCRIPTION.to_owned(),
                provider_resource: None,
                encrypted_secret: Some(secret),
                expires_at: None,
            };
            app.store.create_subscription(&subscription).await.unwrap();
        }
    }
    app
}

fn request(path: &str, body: &str, signature: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(path).header("content-type", "application/json");
    if let Some(signature) = signature {
        builder = builder.header("x-dropbox-signature", signature);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

/// Notifications per second through `router`, `REQUESTS` of them one after another.
async fn rate(router: &axum::Router, path: &str, body: &str, signature: Option<&str>) -> f64 {
    let started = Instant::now();
    for _ in 0..REQUESTS {
        let response = router.clone().oneshot(request(path, body, signature)).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    REQUESTS as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    let receiver = webhooks::router(app);
    let floor = axum::Router::new().route("/{*path}", axum::routing::post(|| async { StatusCode::ACCEPTED }));
    let dropbox = json!({ "list_folder": { "accounts": [ACCOUNT] }, "delta": { "users": [12345678] } }).to_string();
    let signature = webhooks::verify::hex_hmac(SECRET, dropbox.as_bytes());
    let graph = json!({ "value": [{ "subscriptionId": SUBSCRIPTION, "clientState": CLIENT_STATE,
        "changeType": "updated", "resource": "drives/b!abc/root" }] })
    .to_string();

    println!("{REQUESTS} notifications a round, {ROUNDS} rounds, medians");
    println!("| receiver | notifications/s | plain axum 202 /s | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, path, body, signature) in [
        ("dropbox", "/webhooks/dropbox", dropbox.as_str(), Some(signature.as_str())),
        ("graph", "/webhooks/graph", graph.as_str(), None),
    ] {
        let (mut ours, mut plain) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            ours.push(rate(&receiver, path, body, signature).await);
            plain.push(rate(&floor, path, body, signature).await);
        }
        let (ours, plain) = (median(ours), median(plain));
        println!("| {name} | {ours:.0} | {plain:.0} | {:.3} |", ours / plain);
    }
}
