//! The picker's page cursors: the provider's own next-page token or link, sealed with the
//! OAuth-state key (`shared::vault::StateSealer`) together with what it belongs to (tenant,
//! connection, listing) and an expiry. The client sees an opaque string it cannot read, alter
//! or carry to another connection: a Graph `@odata.nextLink` names the drive, a Dropbox cursor
//! the account, and neither is the client's to aim.

use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use shared::api::ApiError;
use shared::db::{ConnectionId, TenantId};
use shared::vault::StateSealer;
use uuid::Uuid;

/// How long a cursor is honoured: long enough for a user to page through a folder, short
/// enough that a leaked one is soon worthless.
const LIFETIME: Duration = Duration::hours(1);
/// The sealer's purpose: a sealed OAuth state is no cursor, and the other way round.
const PURPOSE: &str = "browse-cursor/v1";
/// The longest cursor accepted, in characters (a sealed Graph link is well under 2 KiB).
const MAX_CURSOR_CHARS: usize = 8192;

/// What a cursor continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Listing {
    /// A folder's children (`parent` `None`: the root).
    Items { parent: Option<String>, parent_path: Option<String>, folders_only: bool },
    /// A site search.
    Sites { search: Option<String> },
}

#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    tenant: Uuid,
    connection: Uuid,
    listing: Listing,
    /// The provider's next page.
    next: String,
    expires_at: DateTime<Utc>,
}

/// A cursor opened and checked against the request.
#[derive(Debug)]
pub struct Opened {
    pub listing: Listing,
    pub next: String,
}

pub fn seal(
    sealer: &StateSealer,
    tenant: TenantId,
    connection: ConnectionId,
    listing: Listing,
    next: String,
    now: DateTime<Utc>,
) -> String {
    let sealed =
        Sealed { tenant: tenant.into(), connection: connection.into(), listing, next, expires_at: now + LIFETIME };
    let blob = serde_json::to_vec(&sealed).expect("a cursor serialises");
    sealer.seal(PURPOSE, &blob)
}

/// The cursor `text` if it was sealed here for this tenant and connection and has not expired;
/// a 400 naming `cursor` otherwise. Another tenant's cursor reads as tampered: nothing tells
/// the caller whose it was.
pub fn open(
    sealer: &StateSealer,
    tenant: TenantId,
    connection: ConnectionId,
    text: &str,
    now: DateTime<Utc>,
) -> Result<Opened, ApiError> {
    let invalid = || ApiError::invalid_field("cursor", "is not a cursor this listing handed out");
    if text.chars().count() > MAX_CURSOR_CHARS {
        return Err(invalid());
    }
    let blob = sealer.open(PURPOSE, text).map_err(|_| invalid())?;
    let sealed: Sealed = serde_json::from_slice(blob.expose_secret()).map_err(|_| invalid())?;
    if sealed.tenant != Uuid::from(tenant) {
        return Err(invalid());
    }
    if sealed.connection != Uuid::from(connection) {
        return Err(ApiError::invalid_field("cursor", "belongs to a listing of another connection"));
    }
    if sealed.expires_at <= now {
        return Err(ApiError::invalid_field("cursor", "has expired; start the listing again"));
    }
    Ok(Opened { listing: sealed.listing, next: sealed.next })
}
