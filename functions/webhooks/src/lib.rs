//! The providers' change-notification receivers: public routes (no JWT), one per provider
//! family, that authenticate a notification, find the folders it touches and queue one sync
//! job each (none for a folder that has a live job), then answer at once: the sync runs in the
//! worker. Nothing in a notification names a tenant; each is tied to its rows by what only
//! the provider and this service know.
//!
//! - `POST /webhooks/graph`: the subscription handshake (`?validationToken=` echoed as
//!   `text/plain`), then notifications whose `subscriptionId` names a stored subscription and
//!   whose `clientState` equals its secret (decrypted from the vault, compared in constant
//!   time). Lifecycle notifications (`reauthorizationRequired`, `missed`, …) queue a sync too:
//!   a missed change is caught by the next delta.
//! - `GET /webhooks/dropbox?challenge=`: echoed as `text/plain` with `nosniff`; `POST`
//!   notifications carry `X-Dropbox-Signature`, the hex HMAC-SHA256 of the raw body under the
//!   app secret, and name accounts (`list_folder.accounts`), which map to connections across
//!   tenants.
//! - `POST /webhooks/box`: `BOX-SIGNATURE-PRIMARY` or `-SECONDARY`, the base64 HMAC-SHA256 of
//!   the raw body followed by `BOX-DELIVERY-TIMESTAMP` under the app's signature keys, and a
//!   timestamp at most ten minutes old; the `webhook.id` names the folder's subscription.
//! - `POST /webhooks/gdrive`: `X-Goog-Channel-ID` names a stored channel,
//!   `X-Goog-Channel-Token` equals its secret and `X-Goog-Message-Number` is above every number
//!   accepted on the channel (replays are refused); the first message (`sync`) only confirms
//!   the channel.
//!
//! A notification that does not authenticate is a 401 (Dropbox and Box: a bad or stale
//! signature, 403) and queues nothing; one that names a subscription this service no longer
//! has is acknowledged (202) so the provider stops retrying, and queues nothing.

pub mod verify;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use shared::api::{ApiError, QueryParams, parse_json};
use shared::app::App;
use shared::db::{Connection, DbError, Folder, ProviderType, SubscriptionKind, SyncSubscription};
use shared::dispatch::{Queued, queue_sync};
use shared::subscriptions::auto_sync_folders;

pub fn router(app: Arc<App>) -> Router {
    shared::api::function_router(
        Router::new()
            .route("/webhooks/graph", post(graph))
            .route("/webhooks/dropbox", get(dropbox_challenge).post(dropbox))
            .route("/webhooks/box", post(boxcom))
            .route("/webhooks/gdrive", post(gdrive)),
        app,
    )
}

/// The most connections one Dropbox account maps to (one per tenant that connected it).
const MAX_ACCOUNT_CONNECTIONS: u16 = 100;
/// A handshake token or challenge longer than this is not the provider's.
const MAX_ECHO_CHARS: usize = 1024;

/// What a receiver did with a notification, for its 202 answer and its log line.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Accepted {
    /// Notifications that authenticated.
    pub notifications: usize,
    /// Sync jobs queued.
    pub queued: usize,
    /// Folders that already had a live job.
    pub already_live: usize,
}

impl Accepted {
    fn add(&mut self, other: Accepted) {
        self.notifications += other.notifications;
        self.queued += other.queued;
        self.already_live += other.already_live;
    }
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        (StatusCode::ACCEPTED, axum::Json(self)).into_response()
    }
}

/// A provider's handshake: the value echoed as plain text that no browser sniffs as HTML.
fn echo(value: &str) -> Result<Response, ApiError> {
    if value.is_empty() || value.chars().count() > MAX_ECHO_CHARS || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request("invalid_handshake", "the handshake value is not one a provider sends"));
    }
    let mut response = (StatusCode::OK, value.to_owned()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}

fn refused(message: &str) -> ApiError {
    ApiError::Unauthorized(message.to_owned())
}

/// Notes the notification on its subscription and queues a sync of each folder it covers.
async fn queue_for(app: &App, subscription: &SyncSubscription, trigger: &str) -> Result<Accepted, ApiError> {
    if let Err(e) = app.store.subscription_notified(subscription.base.tenant_id, subscription.base.id).await {
        tracing::warn!(error = %shared::error_chain(&e), "cannot note the notification");
    }
    queue_covered(app, subscription, trigger).await
}

/// Queues a sync of each folder a subscription covers: its folder, or every auto-syncing
/// folder of its connection.
async fn queue_covered(app: &App, subscription: &SyncSubscription, trigger: &str) -> Result<Accepted, ApiError> {
    let tenant = subscription.base.tenant_id;
    let folders = match subscription.folder_id {
        Some(id) => match app.store.get_folder(tenant, id).await {
            Ok(folder) if folder.auto_sync_enabled => vec![folder],
            Ok(_) | Err(DbError::NotFound) => Vec::new(),
            Err(e) => return Err(e.into()),
        },
        None => auto_sync_folders(app, tenant, subscription.connection_id).await?,
    };
    Ok(queue_folders(app, &folders, trigger).await)
}

async fn queue_folders(app: &App, folders: &[Folder], trigger: &str) -> Accepted {
    let mut accepted = Accepted { notifications: 1, ..Accepted::default() };
    for folder in folders {
        match queue_sync(app, folder, trigger).await {
            Queued::Queued(_) => accepted.queued += 1,
            Queued::AlreadyLive => accepted.already_live += 1,
            Queued::Gone | Queued::Failed => {}
        }
    }
    accepted
}

/// The stored secret of a subscription, decrypted: one that does not decrypt is a fault of
/// ours (a retired key), not the sender's.
async fn secret_of(app: &App, subscription: &SyncSubscription) -> Result<Option<secrecy::SecretString>, ApiError> {
    let current = app.current().await.map_err(ApiError::internal)?;
    shared::subscriptions::secret_of(&current.vault, subscription).map_err(ApiError::internal)
}

// ---- Microsoft Graph ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct GraphQuery {
    #[serde(rename = "validationToken")]
    validation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GraphNotifications {
    value: Vec<GraphNotification>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphNotification {
    subscription_id: String,
    client_state: Option<String>,
    lifecycle_event: Option<String>,
}

async fn graph(
    State(app): State<Arc<App>>,
    QueryParams(query): QueryParams<GraphQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(token) = query.validation_token {
        return echo(&token);
    }
    let notifications: GraphNotifications = parse_json(&body)?;
    let mut accepted = Accepted::default();
    let mut forged = 0;
    for n in &notifications.value {
        let found = app.store.find_subscription(SubscriptionKind::GraphSubscription, &n.subscription_id).await?;
        let Some(subscription) = found else {
            // Not (or no longer) ours: acknowledged, so Graph stops sending it; nothing queued.
            tracing::info!(subscription_id = %n.subscription_id, "notification of an unknown Graph subscription");
            continue;
        };
        let secret = secret_of(&app, &subscription).await?;
        if !verify::same_secret(secret.as_ref(), n.client_state.as_deref()) {
            forged += 1;
            tracing::warn!(subscription = %subscription.base.id, "a Graph notification's clientState does not match");
            continue;
        }
        let trigger = match &n.lifecycle_event {
            Some(event) => format!("webhook:graph:{event}"),
            None => "webhook:graph".to_owned(),
        };
        accepted.add(queue_for(&app, &subscription, &trigger).await?);
    }
    if forged > 0 && accepted.notifications == 0 {
        return Err(refused("the notification's clientState does not match its subscription"));
    }
    Ok(accepted.into_response())
}

// ---- Dropbox --------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct Challenge {
    challenge: String,
}

async fn dropbox_challenge(QueryParams(query): QueryParams<Challenge>) -> Result<Response, ApiError> {
    echo(&query.challenge)
}

#[derive(Debug, Deserialize)]
struct DropboxNotification {
    list_folder: Option<DropboxAccounts>,
}

#[derive(Debug, Deserialize)]
struct DropboxAccounts {
    accounts: Vec<String>,
}

async fn dropbox(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let current = app.current().await.map_err(ApiError::internal)?;
    let Some(config) = current.config.providers.get(ProviderType::Dropbox) else {
        return Err(forbidden("Dropbox is not configured here"));
    };
    let signature = headers.get("x-dropbox-signature").and_then(|v| v.to_str().ok());
    if !verify::dropbox(&config.client_secret, &body, signature) {
        return Err(forbidden("X-Dropbox-Signature does not match the body"));
    }
    let notification: DropboxNotification = parse_json(&body)?;
    let accounts = notification.list_folder.map(|l| l.accounts).unwrap_or_default();
    let mut accepted = Accepted::default();
    for account in accounts.iter().take(MAX_ACCOUNT_CONNECTIONS.into()) {
        let connections: Vec<Connection> =
            app.store.connections_of_account(ProviderType::Dropbox, account, MAX_ACCOUNT_CONNECTIONS).await?;
        for connection in connections {
            let folders = auto_sync_folders(&app, connection.base.tenant_id, connection.base.id).await?;
            accepted.add(queue_folders(&app, &folders, "webhook:dropbox").await);
        }
    }
    Ok(accepted.into_response())
}

/// A 403 for a delivery whose signature does not verify (what Dropbox's and Box's examples
/// answer): the sender is not the provider.
fn forbidden(message: &str) -> ApiError {
    ApiError::Forbidden(message.to_owned())
}

// ---- Box ------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct BoxEvent {
    trigger: Option<String>,
    webhook: BoxWebhookRef,
}

#[derive(Debug, Deserialize)]
struct BoxWebhookRef {
    id: String,
}

async fn boxcom(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let current = app.current().await.map_err(ApiError::internal)?;
    let keys = current
        .config
        .providers
        .get(ProviderType::Box)
        .map(|c| (c.webhook_primary_key.clone(), c.webhook_secondary_key.clone()));
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let delivery = verify::BoxDelivery {
        timestamp: header("box-delivery-timestamp"),
        primary: header("box-signature-primary"),
        secondary: header("box-signature-secondary"),
        version: header("box-signature-version"),
        algorithm: header("box-signature-algorithm"),
    };
    let (primary, secondary) = keys.unwrap_or_default();
    verify::boxcom(&delivery, &body, primary.as_ref(), secondary.as_ref(), app.store.now())
        .map_err(|why| forbidden(&why))?;
    let event: BoxEvent = parse_json(&body)?;
    let Some(subscription) = app.store.find_subscription(SubscriptionKind::BoxWebhook, &event.webhook.id).await? else {
        tracing::info!(webhook_id = %event.webhook.id, "notification of an unknown Box webhook");
        return Ok(Accepted::default().into_response());
    };
    if event.trigger.as_deref() == Some("WEBHOOK.DELETED") {
        // Box removed the webhook (auto-cleanup): the folder is back to polling alone.
        app.store.delete_subscription(subscription.base.tenant_id, subscription.base.id).await?;
        return Ok(Accepted { notifications: 1, ..Accepted::default() }.into_response());
    }
    Ok(queue_for(&app, &subscription, "webhook:box").await?.into_response())
}

// ---- Google Drive ---------------------------------------------------------------------

async fn gdrive(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(channel) = header("x-goog-channel-id") else {
        return Err(refused("X-Goog-Channel-ID is missing"));
    };
    let Some(subscription) = app.store.find_subscription(SubscriptionKind::DriveChannel, channel).await? else {
        tracing::info!(channel, "notification of an unknown Drive channel");
        return Ok(Accepted::default().into_response());
    };
    let secret = secret_of(&app, &subscription).await?;
    if !verify::same_secret(secret.as_ref(), header("x-goog-channel-token")) {
        return Err(refused("X-Goog-Channel-Token does not match the channel"));
    }
    if subscription.provider_resource.as_deref().is_some_and(|r| Some(r) != header("x-goog-resource-id")) {
        return Err(refused("X-Goog-Resource-ID is not the channel's resource"));
    }
    // Drive numbers a channel's messages in increasing order: a number not above the last
    // accepted one is a replay (or a late retry whose change the later message's sync reads).
    let Some(number) = header("x-goog-message-number").and_then(|n| n.parse::<i64>().ok()) else {
        return Err(refused("X-Goog-Message-Number is missing or not a number"));
    };
    if !app.store.subscription_message(subscription.base.tenant_id, subscription.base.id, number).await? {
        return Err(refused("X-Goog-Message-Number was already accepted on this channel"));
    }
    match header("x-goog-resource-state") {
        // The channel's first message: it works; nothing changed yet.
        Some("sync") => Ok(Accepted { notifications: 1, ..Accepted::default() }.into_response()),
        _ => Ok(queue_covered(&app, &subscription, "webhook:gdrive").await?.into_response()),
    }
}
