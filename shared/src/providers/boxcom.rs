//! Box: OAuth 2 without PKCE, single-use refresh tokens, the Content API 2.0 for identity and
//! sync, and the `shared_link` field of a file or folder for shared links (an item has at most
//! one).
//!
//! Sync (research note §1.4, §3.4): the crawl is `/folders/{id}/items` with marker paging; Box
//! has no change feed for one folder, so changes are the user's event stream
//! (`stream_type=changes`), which covers the whole account (the worker keeps what is in the
//! folder). The stream never ends: every page carries the position to keep, and a full page
//! says more may follow. Box documents no error for a position it no longer honours; a 400
//! on the stream (whose only variable parameter is the position) is taken as one and is
//! [`ProviderError::ResyncRequired`]. Events older than Box's retention are the worker's
//! concern (it re-crawls on age). `/files/{id}/content` answers a 302 to a pre-authenticated
//! URL, fetched without the token, or a 202 with `Retry-After` while the file is not ready.
//!
//! Uploads (research note §3.4, [`super::upload`]) go to the upload host: a file under 20 MB
//! (Box's least for a session) or up to one part in one multipart request, `attributes` before
//! `file`, with its SHA-1 in `content-md5` (which takes a SHA-1); a larger one through a
//! chunked session of the part size Box sets, each part with `Digest: sha=` (base64 SHA-1),
//! committed with the whole file's digest and the part list Box gives back. A new version
//! carries `If-Match` with the base `etag` (412 when it changed), a new file fails on a taken
//! name (409 `item_name_in_use`). The session's own URLs are not followed: they are built on
//! the configured upload host, so the token goes nowhere else.

use async_trait::async_trait;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use std::collections::HashSet;

use super::browse::child_path;
use super::http::{
    Answer, bearer, download_response, endpoint, expect_success, int_field, json_response, parse_url, path_id,
    required_str, retry_after, send, str_field, time_field,
};
use super::oauth_client::{OAuthClient, scopes_or};
use super::upload::{Replace, Sent, UploadRules, UploadSession, UploadTarget, WholeFile};
use super::{
    AuthorizeRequest, Change, ChangePage, ChildPage, Clients, Created, CreatedLink, Download, Entry, EntryPage,
    ExistingLink, Identity, ItemKind, LinkTarget, Pkce, Provider, ProviderError, RefreshTokenRotation, RemoteItem,
    SharedLinkRequest, SyncScope, TokenSet, WatchRequest, WatchScope, Watched, Watching, share_type_unsupported,
};
use crate::config::ProviderConfig;
use crate::content_hash::{HashAlg, normalize};
use crate::db::{ProviderType, ResourceType, ShareType, SubscriptionKind};

const AUTHORIZE: &str = "https://account.box.com/api/oauth2/authorize";
const TOKEN: &str = "https://api.box.com/oauth2/token";
const REVOKE: &str = "https://api.box.com/oauth2/revoke";
const API: &str = "https://api.box.com";
/// Uploads live on their own host (`/api/2.0/...`).
const UPLOAD: &str = "https://upload.box.com";
const SCOPES: &[&str] = &["root_readwrite"];
/// Events per page: the most the stream returns.
const EVENT_LIMIT: u64 = 500;
/// Items per folder page: the most `/folders/{id}/items` returns.
const ITEMS_LIMIT: &str = "1000";
/// `fields=` replaces Box's standard set, so every field sync reads is named.
const ITEM_FIELDS: &str =
    "type,id,etag,sha1,name,size,modified_at,content_modified_at,created_at,item_status,parent,file_version";
/// What a folder's webhook is told of: every change to what it holds (Box's trigger list).
const WEBHOOK_TRIGGERS: &[&str] = &[
    "FILE.UPLOADED",
    "FILE.TRASHED",
    "FILE.DELETED",
    "FILE.RESTORED",
    "FILE.MOVED",
    "FILE.RENAMED",
    "FOLDER.CREATED",
    "FOLDER.TRASHED",
    "FOLDER.DELETED",
    "FOLDER.RESTORED",
    "FOLDER.MOVED",
    "FOLDER.RENAMED",
];
/// The root folder ("All Files").
const ROOT: &str = "0";
/// [`ITEM_FIELDS`] and the ancestors, for an item's path.
const ENTRY_FIELDS: &str = "type,id,etag,sha1,name,size,modified_at,content_modified_at,created_at,item_status,parent,\
                            file_version,path_collection";
/// Events that leave their `source` as it now is (rclone's set, less the trash).
const UPSERT_EVENTS: &[&str] = &[
    "ITEM_CREATE",
    "ITEM_UPLOAD",
    "ITEM_MODIFY",
    "ITEM_MOVE",
    "ITEM_RENAME",
    "ITEM_COPY",
    "ITEM_UNDELETE_VIA_TRASH",
    "ITEM_MAKE_CURRENT_VERSION",
];

#[derive(Debug)]
pub(crate) struct BoxCom {
    oauth: OAuthClient,
    /// File bodies (downloads, uploads): bounded by silence, not by total time.
    transfer: reqwest::Client,
    api: Url,
    /// `upload.box.com`, or `api_base_url` when that is set (a fake serves both).
    upload: Url,
    revoke_url: Url,
    scopes: Vec<String>,
}

impl BoxCom {
    pub fn new(config: &ProviderConfig, http: &Clients) -> Result<BoxCom, String> {
        Ok(BoxCom {
            oauth: OAuthClient::new(config, http.api.clone(), AUTHORIZE, TOKEN)?,
            transfer: http.transfer.clone(),
            api: parse_url(config.api_base_url.as_deref().unwrap_or(API), "api_base_url")?,
            upload: parse_url(config.api_base_url.as_deref().unwrap_or(UPLOAD), "api_base_url")?,
            revoke_url: parse_url(config.revoke_url.as_deref().unwrap_or(REVOKE), "revoke_url")?,
            scopes: scopes_or(config, SCOPES),
        })
    }

    /// `PUT /2.0/files/{id}` or `/2.0/folders/{id}` with `fields=shared_link`: a shared link is
    /// created, changed and removed by updating the item.
    async fn put_shared_link(
        &self,
        access_token: &SecretString,
        target: &LinkTarget<'_>,
        shared_link: Value,
    ) -> Result<reqwest::Response, ProviderError> {
        let kind = match target.resource_type {
            ResourceType::File => "files",
            ResourceType::Folder => "folders",
        };
        let mut url = endpoint(&self.api, &["2.0", kind, path_id(target.item_id, "Box item id")?]);
        url.query_pairs_mut().append_pair("fields", "shared_link");
        let request = bearer(self.oauth.http.put(url), access_token).json(&json!({ "shared_link": shared_link }));
        send(request).await
    }
}

/// A file or folder (a web link or anything else is not synced: `None`). `listed_in` is the
/// folder a listing asked for, the parent when the entry names none.
fn box_item(value: &Value, listed_in: Option<&str>) -> Result<Option<RemoteItem>, ProviderError> {
    let kind = match str_field(value, "type") {
        Some("file") => ItemKind::File,
        Some("folder") => ItemKind::Folder,
        _ => return Ok(None),
    };
    let what = "Box item";
    let file = kind == ItemKind::File;
    let parent = value.get("parent").and_then(|p| str_field(p, "id"));
    Ok(Some(RemoteItem {
        id: required_str(value, "id", what)?,
        name: required_str(value, "name", what)?,
        kind,
        parent_id: parent.or(listed_in).map(str::to_owned),
        path_lower: None,
        path_display: None,
        size: if file { int_field(value, "size") } else { None },
        hash: str_field(value, "sha1").and_then(|h| normalize(HashAlg::Sha1, h)),
        revision: str_field(value, "etag").map(str::to_owned),
        mime_type: None,
        created_at: time_field(value, "created_at"),
        modified_at: time_field(value, "modified_at"),
        downloadable: file,
    }))
}

/// `next_stream_position`: a JSON number in most bodies, a string in Box's generated SDK. It
/// passes 2^53, so a number is only taken as an exact integer, never through a float.
fn stream_position(events: &Value) -> Result<String, ProviderError> {
    match events.get("next_stream_position") {
        Some(Value::String(position)) if !position.is_empty() => Ok(position.clone()),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        _ => Err(ProviderError::Malformed("Box events have no usable `next_stream_position`".to_owned())),
    }
}

/// One page of the event stream as changes: upserts of what the events leave, deletions of
/// what they trash, each event once (Box may send one more than once).
fn event_changes(events: &Value) -> Result<Vec<Change>, ProviderError> {
    let entries = events
        .get("entries")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::Malformed("Box events have no `entries`".to_owned()))?;
    let mut seen = HashSet::new();
    let mut changes = Vec::new();
    for event in entries {
        if let Some(id) = str_field(event, "event_id")
            && !seen.insert(id)
        {
            continue;
        }
        let Some(source) = event.get("source").filter(|s| matches!(str_field(s, "type"), Some("file" | "folder")))
        else {
            continue;
        };
        let event_type = str_field(event, "event_type").unwrap_or_default();
        let gone = matches!(str_field(source, "item_status"), Some("trashed" | "deleted"));
        if event_type == "ITEM_TRASH" || (gone && UPSERT_EVENTS.contains(&event_type)) {
            changes
                .push(Change::Deleted { id: Some(required_str(source, "id", "Box event source")?), path_lower: None });
        } else if UPSERT_EVENTS.contains(&event_type) {
            changes.extend(box_item(source, None)?.map(Change::Upsert));
        }
    }
    Ok(changes)
}

/// The picker's entry of a Box item, its path from `path_collection` when the answer has it.
fn box_entry(value: &Value, listed_in: Option<&str>) -> Result<Option<Entry>, ProviderError> {
    if str_field(value, "item_status").is_some_and(|status| status != "active") {
        return Ok(None);
    }
    let Some(item) = box_item(value, listed_in)? else { return Ok(None) };
    let path = if item.id == ROOT {
        Some("/".to_owned())
    } else {
        value.get("path_collection").and_then(|c| c.get("entries")).and_then(Value::as_array).map(|ancestors| {
            // The first ancestor is "All Files", the root.
            let parent = ancestors
                .iter()
                .skip(1)
                .filter_map(|a| str_field(a, "name"))
                .fold(String::from("/"), |p, n| child_path(&p, n));
            child_path(&parent, &item.name)
        })
    };
    Ok(Some(Entry { item, path }))
}

impl BoxCom {
    /// One page of `/folders/{id}/items` (marker paging): the raw entries and the next marker.
    async fn items(
        &self,
        access_token: &SecretString,
        folder_id: &str,
        page: Option<&str>,
        limit: &str,
    ) -> Result<(Vec<Value>, Option<String>), ProviderError> {
        let mut url = endpoint(&self.api, &["2.0", "folders", path_id(folder_id, "Box folder id")?, "items"]);
        url.query_pairs_mut()
            .append_pair("usemarker", "true")
            .append_pair("limit", limit)
            .append_pair("fields", ITEM_FIELDS);
        if let Some(marker) = page {
            url.query_pairs_mut().append_pair("marker", marker);
        }
        let mut listing: Value =
            json_response(send(bearer(self.oauth.http.get(url), access_token)).await?, "Box folder items").await?;
        // The last page has `next_marker` null, or (per the marker guide) empty.
        let next = str_field(&listing, "next_marker").filter(|m| !m.is_empty()).map(str::to_owned);
        match listing.get_mut("entries").map(Value::take) {
            Some(Value::Array(entries)) => Ok((entries, next)),
            _ => Err(ProviderError::Malformed("Box folder items have no `entries`".to_owned())),
        }
    }

    /// `GET /folders/{id}` or `/files/{id}`: `None` for a 404.
    async fn get_entry(
        &self,
        access_token: &SecretString,
        kind: &str,
        id: &str,
    ) -> Result<Option<Entry>, ProviderError> {
        let mut url = endpoint(&self.api, &["2.0", kind, id]);
        url.query_pairs_mut().append_pair("fields", ENTRY_FIELDS);
        let answer = Answer::read(send(bearer(self.oauth.http.get(url), access_token)).await?).await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        box_entry(&answer.json(&format!("Box {kind}"))?, None)
    }
}

/// Box's upload rules: one request up to 50 MB, sessions from 20 MB in parts of the size Box
/// sets (the most it sets is 128 MiB).
const UPLOAD_RULES: UploadRules =
    UploadRules { simple_max: 50_000_000, session_min: 20_000_000, part_multiple: 1, part_max: 128 << 20 };

/// `sha=<base64 SHA-1>`, Box's `Digest` of a part or of a whole file given as hex SHA-1.
fn sha_digest(sha1_hex: &str) -> Result<String, ProviderError> {
    let raw = hex::decode(sha1_hex).map_err(|_| ProviderError::Malformed("a SHA-1 is not hex".to_owned()))?;
    use base64::Engine as _;
    Ok(format!("sha={}", base64::engine::general_purpose::STANDARD.encode(raw)))
}

fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest as _;
    hex::encode(sha1::Sha1::digest(bytes))
}

/// What a write answered: the file (`{"entries": [File]}` or a File), or a conflict (412 on a
/// changed `etag`, 409 on a taken name, 404 on a file gone), or the usual classification.
fn box_written(answer: &Answer) -> Result<RemoteItem, ProviderError> {
    match answer.status.as_u16() {
        409 | 412 | 404 => {
            return Err(ProviderError::Conflict(format!(
                "Box answered {} ({})",
                answer.status.as_u16(),
                answer.code().unwrap_or_default()
            )));
        }
        // Parts still being processed: commit again after the wait Box names.
        202 => return Err(ProviderError::RateLimited { retry_after: retry_after(&answer.headers) }),
        _ => {}
    }
    let value: Value = answer.json("Box upload")?;
    let file = value.get("entries").and_then(|e| e.get(0)).unwrap_or(&value);
    box_item(file, None)?.ok_or_else(|| ProviderError::Malformed("the uploaded Box item is no file".to_owned()))
}

impl BoxCom {
    fn upload_url(&self, segments: &[&str]) -> Url {
        let mut path = vec!["api", "2.0", "files"];
        path.extend_from_slice(segments);
        endpoint(&self.upload, &path)
    }

    fn session_url(&self, session: &UploadSession, last: Option<&str>) -> Result<Url, ProviderError> {
        let id = path_id(&session.handle, "Box upload session id")?;
        let mut segments = vec!["upload_sessions", id];
        segments.extend(last);
        Ok(self.upload_url(&segments))
    }

    /// Every part of a session, in offset order (`GET …/parts`, paged by offset).
    async fn session_parts(
        &self,
        access_token: &SecretString,
        session: &UploadSession,
    ) -> Result<Vec<Value>, ProviderError> {
        let mut parts = Vec::new();
        loop {
            let mut url = self.session_url(session, Some("parts"))?;
            url.query_pairs_mut().append_pair("offset", &parts.len().to_string()).append_pair("limit", "1000");
            let answer = Answer::read(send(bearer(self.oauth.http.get(url), access_token)).await?).await?;
            if answer.status == reqwest::StatusCode::NOT_FOUND {
                return Err(ProviderError::UploadSessionGone);
            }
            let mut page: Value = answer.json("Box upload session parts")?;
            let entries = match page.get_mut("entries").map(Value::take) {
                Some(Value::Array(entries)) => entries,
                _ => return Err(ProviderError::Malformed("Box upload session parts have no `entries`".to_owned())),
            };
            let total = page.get("total_count").and_then(Value::as_u64).unwrap_or(0) as usize;
            let done = entries.is_empty();
            parts.extend(entries);
            if done || parts.len() >= total {
                break;
            }
        }
        parts.sort_by_key(|p| p.get("offset").and_then(Value::as_u64).unwrap_or(0));
        Ok(parts)
    }
}

/// The id of the item a 409 `item_name_in_use` names: `context_info.conflicts`, an array for a
/// folder creation (an object for an upload).
fn conflicting_id(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let conflicts = value.get("context_info")?.get("conflicts")?;
    let first = match conflicts {
        Value::Array(all) => all.first()?,
        one => one,
    };
    str_field(first, "id").map(str::to_owned)
}

#[async_trait]
impl Provider for BoxCom {
    fn provider_type(&self) -> ProviderType {
        ProviderType::Box
    }

    fn scopes(&self) -> &[String] {
        &self.scopes
    }

    fn uses_pkce(&self) -> bool {
        false
    }

    fn refresh_token_rotation(&self) -> RefreshTokenRotation {
        RefreshTokenRotation::SingleUse
    }

    fn expires_links_natively(&self) -> bool {
        true
    }

    fn supports_link_password(&self) -> bool {
        true
    }

    fn authorization_url(&self, request: &AuthorizeRequest<'_>) -> Result<String, ProviderError> {
        // Box always issues a refresh token; no offline parameter exists.
        self.oauth.authorization_url(request, &self.scopes, false, &[])
    }

    /// Box's token endpoint documents neither `redirect_uri` nor `code_verifier` for this
    /// grant, so neither is sent.
    async fn exchange_code(&self, code: &str, _pkce: &Pkce, _redirect_uri: &str) -> Result<TokenSet, ProviderError> {
        self.oauth.exchange_code(code, None, None, &[]).await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError> {
        let tokens = self.oauth.refresh(refresh_token, &[]).await?;
        if tokens.refresh_token.is_none() {
            // The old refresh token died with this call; without a new one the connection is
            // lost, and the caller must not keep the dead one thinking it still works.
            return Err(ProviderError::Malformed("Box refresh response has no new refresh_token".to_owned()));
        }
        Ok(tokens)
    }

    async fn identity(&self, access_token: &SecretString) -> Result<Identity, ProviderError> {
        let mut url = endpoint(&self.api, &["2.0", "users", "me"]);
        url.query_pairs_mut().append_pair("fields", "id,type,name,login,enterprise");
        let user: Value =
            json_response(send(bearer(self.oauth.http.get(url), access_token)).await?, "Box user").await?;
        let enterprise_id = user.get("enterprise").and_then(|e| str_field(e, "id"));
        Ok(Identity {
            provider_user_id: required_str(&user, "id", "Box user")?,
            email: str_field(&user, "login").map(str::to_owned),
            display_name: str_field(&user, "name").map(str::to_owned),
            metadata: json!({
                "account_type": if enterprise_id.is_some() { "enterprise" } else { "personal" },
                "enterprise_id": enterprise_id,
            }),
        })
    }

    /// Revoking either token ends the grant; the refresh token is preferred because the access
    /// token may already have expired.
    async fn revoke(&self, access: &SecretString, refresh: Option<&SecretString>) -> Result<(), ProviderError> {
        let token = refresh.unwrap_or(access);
        let form = [
            ("client_id", self.oauth.client_id.as_str()),
            ("client_secret", self.oauth.client_secret.expose_secret()),
            ("token", token.expose_secret()),
        ];
        expect_success(send(self.oauth.http.post(self.revoke_url.clone()).form(&form)).await?, &[]).await
    }

    async fn create_shared_link(
        &self,
        access_token: &SecretString,
        target: &LinkTarget<'_>,
        request: &SharedLinkRequest,
    ) -> Result<CreatedLink, ProviderError> {
        let permissions = match (request.share_type, target.resource_type) {
            (ShareType::View, _) => json!({ "can_preview": true, "can_download": false }),
            (ShareType::Download, _) => json!({ "can_preview": true, "can_download": true }),
            // Box allows can_edit on files only.
            (ShareType::Edit, ResourceType::File) => {
                json!({ "can_preview": true, "can_download": true, "can_edit": true })
            }
            (ShareType::Edit, ResourceType::Folder) => {
                return Err(share_type_unsupported(ProviderType::Box, request.share_type, "folder"));
            }
            // Commenting needs a Box account with access to the item, which an open link is not.
            (ShareType::Comment, _) => {
                return Err(share_type_unsupported(ProviderType::Box, request.share_type, "shared link"));
            }
        };
        // A password can only be set on an `open` link, which is what is created here.
        let mut shared_link = json!({ "access": "open", "permissions": permissions });
        if let Some(password) = &request.password {
            shared_link["password"] = json!(password.expose_secret());
        }
        if let Some(at) = request.expires_at {
            shared_link["unshared_at"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false));
        }
        let response = self.put_shared_link(access_token, target, shared_link).await?;
        let item: Value = json_response(response, "Box item").await?;
        let url = item
            .get("shared_link")
            .and_then(|l| str_field(l, "url"))
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::Malformed("Box item has no `shared_link.url`".to_owned()))?;
        let expires_at = item.get("shared_link").and_then(|l| time_field(l, "unshared_at"));
        Ok(CreatedLink { provider_share_id: None, share_url: url, expires_at })
    }

    async fn delete_shared_link(
        &self,
        access_token: &SecretString,
        target: &LinkTarget<'_>,
        _link: &ExistingLink<'_>,
    ) -> Result<(), ProviderError> {
        let response = self.put_shared_link(access_token, target, Value::Null).await?;
        // The item is gone (404 `not_found`, or `trashed`): so is its one shared link.
        expect_success(response, &["not_found", "trashed"]).await
    }

    /// `events?stream_position=now`: no events, and the position they start from.
    async fn start_cursor(&self, access_token: &SecretString, _scope: &SyncScope<'_>) -> Result<String, ProviderError> {
        let mut url = endpoint(&self.api, &["2.0", "events"]);
        url.query_pairs_mut().append_pair("stream_type", "changes").append_pair("stream_position", "now");
        let events: Value =
            json_response(send(bearer(self.oauth.http.get(url), access_token)).await?, "Box events").await?;
        stream_position(&events)
    }

    async fn list_children(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        folder_id: &str,
        page: Option<&str>,
    ) -> Result<ChildPage, ProviderError> {
        let page = self.items(access_token, folder_id, page, ITEMS_LIMIT).await?;
        let mut items = Vec::with_capacity(page.0.len());
        for entry in &page.0 {
            items.extend(box_item(entry, Some(folder_id))?);
        }
        Ok(ChildPage { items, next: page.1 })
    }

    async fn changes(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        cursor: &str,
    ) -> Result<ChangePage, ProviderError> {
        let mut url = endpoint(&self.api, &["2.0", "events"]);
        url.query_pairs_mut()
            .append_pair("stream_type", "changes")
            .append_pair("stream_position", cursor)
            .append_pair("limit", &EVENT_LIMIT.to_string());
        let answer = Answer::read(send(bearer(self.oauth.http.get(url), access_token)).await?).await?;
        if answer.status.as_u16() == 400 {
            let code = answer.code().unwrap_or_else(|| "400".to_owned());
            return Err(ProviderError::ResyncRequired(format!("Box refused the stream position ({code})")));
        }
        let events: Value = answer.json("Box events")?;
        let position = stream_position(&events)?;
        // Box may answer with fewer events than the limit while more are waiting ("the events
        // less than the limit requested can be returned even when there may be more events
        // remaining", `GET /events` `limit`), so only an empty chunk says the feed is read to
        // its end. The stream has no end, so the position is always the cursor to keep as well.
        let more = events.get("chunk_size").and_then(Value::as_u64).is_some_and(|n| n > 0);
        Ok(ChangePage {
            changes: event_changes(&events)?,
            next: more.then(|| position.clone()),
            cursor: Some(position),
        })
    }

    /// `/files/{id}/content`: a 302 to a pre-authenticated URL, fetched without the token, or a
    /// 202 with `Retry-After` while Box prepares the file (reported as a rate limit: try later).
    async fn download(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        item: &RemoteItem,
    ) -> Result<Download, ProviderError> {
        if item.kind != ItemKind::File {
            return Err(ProviderError::Unsupported(format!(
                "Box item `{}` is a folder: no bytes to download",
                item.id
            )));
        }
        let url = endpoint(&self.api, &["2.0", "files", path_id(&item.id, "Box file id")?, "content"]);
        let response = send(bearer(self.transfer.get(url), access_token)).await?;
        if response.status().as_u16() == 202 {
            return Err(ProviderError::RateLimited { retry_after: retry_after(response.headers()) });
        }
        download_response(&self.transfer, response).await
    }

    async fn browse(
        &self,
        access_token: &SecretString,
        _metadata: Option<&Value>,
        parent: Option<&str>,
        page: Option<&str>,
        limit: u16,
    ) -> Result<EntryPage, ProviderError> {
        let folder = parent.unwrap_or(ROOT);
        let (values, next) = self.items(access_token, folder, page, &limit.to_string()).await?;
        let mut entries = Vec::with_capacity(values.len());
        for value in &values {
            entries.extend(box_entry(value, Some(folder))?);
        }
        Ok(EntryPage { entries, next })
    }

    fn upload_rules(&self) -> UploadRules {
        UPLOAD_RULES
    }

    /// `POST /api/2.0/files/content` (new) or `/files/{id}/content` (new version, `If-Match`).
    async fn upload_small(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        body: bytes::Bytes,
    ) -> Result<RemoteItem, ProviderError> {
        let (url, attributes) = match target.replace {
            Some(replace) => (self.upload_url(&[path_id(replace.id, "Box file id")?, "content"]), json!({})),
            None => {
                (self.upload_url(&["content"]), json!({ "name": target.name, "parent": { "id": target.parent_id } }))
            }
        };
        let sha1 = sha1_hex(&body);
        let file = reqwest::multipart::Part::stream(body)
            .file_name(target.name.to_owned())
            .mime_str("application/octet-stream")
            .map_err(|e| ProviderError::Malformed(format!("cannot build the upload: {e}")))?;
        // Box reads the parts in order: `attributes` before `file`.
        let form = reqwest::multipart::Form::new().text("attributes", attributes.to_string()).part("file", file);
        let mut request = bearer(self.transfer.post(url), access_token).header("content-md5", sha1).multipart(form);
        if let Some(etag) = target.replace.and_then(|r| r.revision) {
            request = request.header(reqwest::header::IF_MATCH, etag);
        }
        box_written(&Answer::read(send(request).await?).await?)
    }

    /// `POST /api/2.0/files/upload_sessions` (new: a taken name is a 409 already) or
    /// `/files/{id}/upload_sessions` (new version: the `etag` is checked at the commit).
    async fn start_upload(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
    ) -> Result<UploadSession, ProviderError> {
        let (url, body) = match target.replace {
            Some(replace) => (
                self.upload_url(&[path_id(replace.id, "Box file id")?, "upload_sessions"]),
                json!({ "file_size": target.size }),
            ),
            None => (
                self.upload_url(&["upload_sessions"]),
                json!({ "folder_id": target.parent_id, "file_size": target.size, "file_name": target.name }),
            ),
        };
        let answer = Answer::read(send(bearer(self.oauth.http.post(url), access_token).json(&body)).await?).await?;
        if matches!(answer.status.as_u16(), 404 | 409 | 412) {
            return Err(box_written(&answer).err().unwrap_or_else(|| answer.error()));
        }
        let value: Value = answer.json("Box upload session")?;
        let part_size = value.get("part_size").and_then(Value::as_u64).filter(|size| *size > 0);
        Ok(UploadSession {
            handle: required_str(&value, "id", "Box upload session")?,
            part_size: Some(
                part_size
                    .ok_or_else(|| ProviderError::Malformed("a Box upload session has no part_size".to_owned()))?,
            ),
            expires_at: time_field(&value, "session_expires_at"),
            parts: Vec::new(),
        })
    }

    /// `PUT` of a part with its range and `Digest`.
    async fn upload_part(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        session: &UploadSession,
        offset: u64,
        part: bytes::Bytes,
    ) -> Result<Sent, ProviderError> {
        let end = offset + part.len() as u64;
        let range = format!("bytes {offset}-{}/{}", end - 1, target.size);
        let digest = sha_digest(&sha1_hex(&part))?;
        let request = bearer(self.transfer.put(self.session_url(session, None)?), access_token)
            .header(reqwest::header::CONTENT_RANGE, range)
            .header("digest", digest)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(part);
        let answer = Answer::read(send(request).await?).await?;
        match answer.status.as_u16() {
            200 | 201 => Ok(Sent::Next(end)),
            404 => Err(ProviderError::UploadSessionGone),
            // A range Box already has (a retried part): ask where the session stands.
            409 | 416 => self.upload_offset(access_token, _scope, target, session).await.map(Sent::Next),
            _ => Err(answer.error()),
        }
    }

    /// The end of the parts Box has, counted from the first byte without a gap.
    async fn upload_offset(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        _target: &UploadTarget<'_>,
        session: &UploadSession,
    ) -> Result<u64, ProviderError> {
        let mut next = 0;
        for part in self.session_parts(access_token, session).await? {
            let offset = part.get("offset").and_then(Value::as_u64).unwrap_or(u64::MAX);
            if offset != next {
                break;
            }
            next += part.get("size").and_then(Value::as_u64).unwrap_or(0);
        }
        Ok(next)
    }

    /// `POST …/commit` with the part list and the whole file's `Digest` (and `If-Match`).
    async fn finish_upload(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        session: &UploadSession,
        whole: &WholeFile,
    ) -> Result<RemoteItem, ProviderError> {
        let parts = self.session_parts(access_token, session).await?;
        let mut request = bearer(self.oauth.http.post(self.session_url(session, Some("commit"))?), access_token)
            .header("digest", sha_digest(&whole.hash)?)
            .json(&json!({ "parts": parts }));
        if let Some(etag) = target.replace.and_then(|r| r.revision) {
            request = request.header(reqwest::header::IF_MATCH, etag);
        }
        box_written(&Answer::read(send(request).await?).await?)
    }

    /// `DELETE /2.0/files/{id}` with `If-Match` on the base `etag` (the file goes to the trash).
    async fn delete_file(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        base: &Replace<'_>,
    ) -> Result<(), ProviderError> {
        let url = endpoint(&self.api, &["2.0", "files", path_id(base.id, "Box file id")?]);
        let mut request = bearer(self.oauth.http.delete(url), access_token);
        if let Some(etag) = base.revision {
            request = request.header(reqwest::header::IF_MATCH, etag);
        }
        let answer = Answer::read(send(request).await?).await?;
        match answer.status.as_u16() {
            200..=299 | 404 => Ok(()),
            412 => Err(ProviderError::Conflict("Box answered 412 (precondition_failed)".to_owned())),
            _ => Err(answer.error()),
        }
    }

    async fn cancel_upload(&self, access_token: &SecretString, session: &UploadSession) -> Result<(), ProviderError> {
        let request = bearer(self.oauth.http.delete(self.session_url(session, None)?), access_token);
        expect_success(send(request).await?, &["not_found"]).await
    }

    /// A folder first, then a file: Box addresses the two by separate routes. Box ids are
    /// numbers; anything else is no item, asked nothing.
    async fn item(
        &self,
        access_token: &SecretString,
        _metadata: Option<&Value>,
        id: &str,
    ) -> Result<Option<Entry>, ProviderError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        match self.get_entry(access_token, "folders", id).await? {
            Some(folder) => Ok(Some(folder)),
            None => self.get_entry(access_token, "files", id).await,
        }
    }

    async fn create_folder(
        &self,
        access_token: &SecretString,
        _metadata: Option<&Value>,
        parent: Option<&Entry>,
        name: &str,
    ) -> Result<Created, ProviderError> {
        let mut url = endpoint(&self.api, &["2.0", "folders"]);
        url.query_pairs_mut().append_pair("fields", ENTRY_FIELDS);
        let body = json!({ "name": name, "parent": { "id": parent.map_or(ROOT, |p| p.item.id.as_str()) } });
        let answer = Answer::read(send(bearer(self.oauth.http.post(url), access_token).json(&body)).await?).await?;
        if answer.status == reqwest::StatusCode::CONFLICT
            && let Some(id) = conflicting_id(&answer.body)
        {
            return Ok(Created::Exists { id });
        }
        box_entry(&answer.json("Box folder")?, None)?
            .map(|entry| Created::Folder(Box::new(entry)))
            .ok_or_else(|| ProviderError::Malformed("Box folder creation answered no active folder".to_owned()))
    }

    fn watch_scope(&self) -> WatchScope {
        WatchScope::Folder(SubscriptionKind::BoxWebhook)
    }

    /// A webhook on the folder, cascading to what is below it, with the triggers that change
    /// its contents.
    async fn watch(&self, access_token: &SecretString, request: &WatchRequest<'_>) -> Result<Watching, ProviderError> {
        if request.folder_id == ROOT {
            return Err(ProviderError::Unsupported("Box allows no webhook on the root folder".to_owned()));
        }
        let body = json!({
            "target": { "id": request.folder_id, "type": "folder" },
            "address": request.address,
            "triggers": WEBHOOK_TRIGGERS,
        });
        let url = endpoint(&self.api, &["2.0", "webhooks"]);
        let made: Value =
            json_response(send(bearer(self.oauth.http.post(url), access_token).json(&body)).await?, "Box webhook")
                .await?;
        Ok(Watching {
            provider_subscription_id: required_str(&made, "id", "Box webhook")?,
            provider_resource: None,
            expires_at: None,
        })
    }

    /// Box webhooks do not expire: nothing to renew.
    async fn renew_watch(
        &self,
        _access_token: &SecretString,
        existing: &Watched<'_>,
        _request: &WatchRequest<'_>,
    ) -> Result<Watching, ProviderError> {
        Ok(Watching {
            provider_subscription_id: existing.provider_subscription_id.to_owned(),
            provider_resource: existing.provider_resource.map(str::to_owned),
            expires_at: None,
        })
    }

    async fn unwatch(&self, access_token: &SecretString, existing: &Watched<'_>) -> Result<(), ProviderError> {
        let id = path_id(existing.provider_subscription_id, "Box webhook id")?;
        let url = endpoint(&self.api, &["2.0", "webhooks", id]);
        expect_success(send(bearer(self.oauth.http.delete(url), access_token)).await?, &["not_found"]).await
    }
}
