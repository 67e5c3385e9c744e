//! Change subscriptions at the providers, in one vocabulary: what a subscription covers
//! ([`WatchScope`]), making one, renewing it before the provider ends it, and removing it.
//! The receivers that take the notifications are the `webhooks` function; the lifecycle
//! (when to make, renew and remove) is `crate::subscriptions`.
//!
//! - Microsoft Graph: `POST /subscriptions` on the drive root (`changeType: updated`, the only
//!   one drive items have; Business and SharePoint allow no folder below the root), at most
//!   42,300 minutes ahead; renewed with `PATCH /subscriptions/{id}`; `DELETE` removes it.
//! - Google Drive: `changes/watch` from a start page token, one channel for the connection's
//!   change feed; a channel cannot be extended, so renewing makes a new one and stops the old
//!   (`channels/stop` with its id and resource id).
//! - Box: `POST /webhooks` on the folder (never the root `0`, which Box refuses), with the
//!   triggers that change a folder's contents; no expiry; `DELETE /webhooks/{id}`.
//! - Dropbox: the webhook belongs to the app (App Console), nothing per connection.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;

use crate::db::SubscriptionKind;

/// What one subscription of a provider covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchScope {
    /// Nothing per connection: the app's own webhook (Dropbox).
    App,
    /// The connection's whole drive or change feed (Graph, Drive): one per connection.
    Connection(SubscriptionKind),
    /// One folder and what is below it (Box): one per folder.
    Folder(SubscriptionKind),
}

/// A subscription to make (or to renew: the same values, the expiry moved).
#[derive(Debug, Clone, Copy)]
pub struct WatchRequest<'a> {
    /// The receiver's public URL (`{webhook_base_url}/webhooks/graph`).
    pub address: &'a str,
    /// Graph's clientState, Drive's channel token; Box signs with the app's keys instead.
    pub secret: &'a SecretString,
    /// The folder (Box); the connection's scope otherwise.
    pub folder_id: &'a str,
    /// The connection's metadata (Graph's drive id).
    pub metadata: Option<&'a Value>,
    /// The expiry asked for; the provider may grant less.
    pub expires_at: DateTime<Utc>,
}

/// A subscription the provider made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watching {
    pub provider_subscription_id: String,
    /// What it watches (Graph's resource, Drive's resource id).
    pub provider_resource: Option<String>,
    /// When the provider ends it; `None`: never (Box).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A subscription made earlier, as stored.
#[derive(Debug, Clone, Copy)]
pub struct Watched<'a> {
    pub provider_subscription_id: &'a str,
    pub provider_resource: Option<&'a str>,
}
