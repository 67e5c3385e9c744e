//! What the sync worker reads from a provider, in one vocabulary for all of them: a folder's
//! children page by page (the first sync's crawl), a change cursor taken before that crawl,
//! the changes since a cursor page by page, and a file's bytes as a stream.
//!
//! Each provider maps its own API onto these (research note §1–§3):
//! - Microsoft Graph: `/children` for the crawl; `root/delta?token=latest` for the start cursor
//!   and `root/delta` (Business, SharePoint) or the folder's own delta (Personal) for changes;
//!   a 410 is [`ProviderError::ResyncRequired`]; `/content` answers a 302 to a pre-authenticated
//!   URL that is fetched without the bearer token and never kept.
//! - Google Drive: `files.list` with `'<id>' in parents`; `changes/startPageToken` and
//!   `changes.list` (the whole account: the worker keeps what is inside the folder); a rejected
//!   page token is a resync; `alt=media` downloads, and Google editor files have no bytes.
//! - Dropbox: `list_folder` (not recursive) for the crawl, `list_folder/get_latest_cursor`
//!   (recursive, on the folder) for the start cursor and `list_folder/continue` for changes;
//!   a 409 `reset` is a resync; deleted entries carry a path, no id; `/2/files/download`.
//! - Box: `/folders/{id}/items` with markers; `events?stream_position=now` and the user's event
//!   stream (the whole account: the worker keeps what is inside the folder); `/files/{id}/content`
//!   answers a 302 like Graph's.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use serde_json::Value;

use super::ProviderError;

/// The configured folder a sync reads, addressed the provider's way.
#[derive(Debug, Clone, Copy)]
pub struct SyncScope<'a> {
    /// `cloud_folders.provider_folder_id`.
    pub folder_id: &'a str,
    /// `cloud_folders.folder_path` (Dropbox addresses folders by path as well as by id).
    pub folder_path: Option<&'a str>,
    /// The connection's metadata as identity returned it (Graph's drive id and drive type).
    pub connection_metadata: Option<&'a Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    File,
    Folder,
}

/// A file or folder as a provider lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteItem {
    /// The provider's id (Dropbox `id:…`, Box and Drive ids, Graph item ids).
    pub id: String,
    pub name: String,
    pub kind: ItemKind,
    /// The provider's id of the folder it is in, where the provider says (all but Dropbox).
    pub parent_id: Option<String>,
    /// Dropbox's `path_lower` (the key of its deletes); the path where another provider gives
    /// one. Never needed to place an item: the worker places items by parent id or by path
    /// under the synced folder.
    pub path_lower: Option<String>,
    /// `path_display` (Dropbox), for the folder-relative path the worker stores.
    pub path_display: Option<String>,
    pub size: Option<i64>,
    /// The provider's content hash in its own algorithm (`content_hash::HashAlg::for_provider`),
    /// already normalised to lowercase hex; `None` when the provider gives none.
    pub hash: Option<String>,
    /// The provider's revision token (Graph `eTag`, Drive `headRevisionId`, Dropbox `rev`, Box
    /// `etag`): what a later conditional write is checked against.
    pub revision: Option<String>,
    pub mime_type: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub modified_at: Option<DateTime<Utc>>,
    /// False for items without bytes of their own (Google Docs, Sheets, Slides; Dropbox's
    /// non-downloadable files): the worker records them and does not download them.
    pub downloadable: bool,
}

/// One page of a folder's direct children.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildPage {
    pub items: Vec<RemoteItem>,
    /// Where the next page starts (opaque), or `None` after the last.
    pub next: Option<String>,
}

/// One change since a cursor.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Created, changed, renamed or moved: the item as it is now (possibly outside the synced
    /// folder: the worker decides what belongs to it).
    Upsert(RemoteItem),
    /// Deleted, trashed or no longer reachable. Dropbox names the path only (and the deletion
    /// covers everything below it); the others name the id.
    Deleted { id: Option<String>, path_lower: Option<String> },
}

/// One page of changes.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePage {
    pub changes: Vec<Change>,
    /// More changes follow: pass this to the next `changes` call (opaque).
    pub next: Option<String>,
    /// The last page carries the cursor to keep for the next sync (`@odata.deltaLink`,
    /// `newStartPageToken`, Dropbox's final cursor, Box's `next_stream_position`). Box's
    /// stream never ends: its page has both `next` (when full) and this.
    pub cursor: Option<String>,
}

/// A file's bytes on their way, in bounded memory.
pub struct Download {
    pub body: BoxStream<'static, Result<Bytes, ProviderError>>,
    /// `Content-Length`, when the provider sent one.
    pub size: Option<u64>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download").field("size", &self.size).finish_non_exhaustive()
    }
}
