//! Dropbox: OAuth 2 with PKCE and `token_access_type=offline`, the API v2 RPC endpoints
//! (`POST` with a JSON argument) for identity, revocation, shared links and folder listings,
//! and the content endpoint `/2/files/download` (argument in the `Dropbox-API-Arg` header).
//!
//! Sync (research note §1.3): the crawl is `list_folder` without recursion, one folder at a
//! time; the change cursor is `list_folder/get_latest_cursor` on the synced folder, recursive
//! and with deleted entries, so `list_folder/continue` from it yields the whole subtree's
//! changes. Deleted entries carry a path and no id. A `reset` (409) on a cursor means it is no
//! longer honoured: [`ProviderError::ResyncRequired`].
//!
//! Uploads (research note §3.3, [`super::upload`]): `files/upload` for a file up to one part,
//! else `upload_session/start`, `append_v2` and `finish` on the content host, each request
//! carrying the `content_hash` of its bytes. The commit is by path with `autorename: false` and
//! `strict_conflict: true`: `add` for a new file, `update` with the base `rev` for a new version
//! (`add` when no base revision is known), so a changed or deleted file, or a taken name, is a
//! `path/conflict` and nothing is overwritten. Dropbox has no session status call: a session
//! resumes from the `correct_offset` an empty `append_v2` at offset 0 is answered with.

use async_trait::async_trait;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{
    Answer, api_error_fields, bearer, download_response, endpoint, expect_success, int_field, json_response, parse_url,
    required_str, send, str_field, time_field,
};
use super::oauth_client::{OAuthClient, scopes_or};
use super::upload::{Replace, Sent, UploadRules, UploadSession, UploadTarget, WholeFile};
use super::{
    AuthorizeRequest, Change, ChangePage, ChildPage, Clients, Created, CreatedLink, Download, Entry, EntryPage,
    ExistingLink, Identity, ItemKind, LinkTarget, Pkce, Provider, ProviderError, RefreshTokenRotation, RemoteItem,
    SharedLinkRequest, SyncScope, TokenSet, WatchRequest, WatchScope, Watched, Watching,
};
use crate::config::ProviderConfig;
use crate::content_hash::{DropboxContentHash, HashAlg, normalize};
use crate::db::{ProviderType, ShareType};

const AUTHORIZE: &str = "https://www.dropbox.com/oauth2/authorize";
const TOKEN: &str = "https://api.dropboxapi.com/oauth2/token";
const API: &str = "https://api.dropboxapi.com";
/// Content-upload and content-download endpoints live on their own host.
const CONTENT: &str = "https://content.dropboxapi.com";
/// The most entries Dropbox returns in one `list_folder` page ("approximate", 1..=2000).
const LIST_LIMIT: u32 = 2000;
const SCOPES: &[&str] = &[
    "account_info.read",
    "files.metadata.read",
    "files.content.read",
    "files.content.write",
    "sharing.read",
    "sharing.write",
];

#[derive(Debug)]
pub(crate) struct Dropbox {
    oauth: OAuthClient,
    /// File bodies (downloads, uploads): bounded by silence, not by total time.
    transfer: reqwest::Client,
    api: Url,
    /// `content.dropboxapi.com`, or `api_base_url` when that is set (a fake serves both).
    content: Url,
    revoke_url: Url,
    scopes: Vec<String>,
}

impl Dropbox {
    pub fn new(config: &ProviderConfig, http: &Clients) -> Result<Dropbox, String> {
        let oauth = OAuthClient::new(config, http.api.clone(), AUTHORIZE, TOKEN)?;
        let api = parse_url(config.api_base_url.as_deref().unwrap_or(API), "api_base_url")?;
        let content = parse_url(config.api_base_url.as_deref().unwrap_or(CONTENT), "api_base_url")?;
        let revoke_url = match &config.revoke_url {
            Some(url) => parse_url(url, "revoke_url")?,
            None => endpoint(&api, &["2", "auth", "token", "revoke"]),
        };
        Ok(Dropbox {
            oauth,
            transfer: http.transfer.clone(),
            api,
            content,
            revoke_url,
            scopes: scopes_or(config, SCOPES),
        })
    }

    /// A `files/list_folder*` call. A cursor Dropbox no longer honours (409 `reset`) is a
    /// resync; a 429 without `Retry-After` takes the wait from the body's `retry_after`.
    async fn list_call(
        &self,
        access_token: &SecretString,
        route: &[&str],
        argument: &Value,
    ) -> Result<Value, ProviderError> {
        let mut path = vec!["2", "files"];
        path.extend_from_slice(route);
        let answer = Answer::read(send(self.rpc(endpoint(&self.api, &path), access_token, argument)).await?).await?;
        if answer.status.as_u16() == 409 && answer.code().as_deref() == Some("reset") {
            return Err(ProviderError::ResyncRequired("Dropbox reset the list_folder cursor".to_owned()));
        }
        answer.json("Dropbox folder listing").map_err(|e| with_body_retry_after(e, &answer.body))
    }

    /// An RPC call. Endpoints without arguments take the JSON `null`, as the API explorer
    /// sends it: an empty body gets a 400 for its missing or form content type.
    fn rpc(&self, url: Url, access_token: &SecretString, argument: &Value) -> reqwest::RequestBuilder {
        bearer(self.oauth.http.post(url), access_token).json(argument)
    }
}

/// Dropbox's `RateLimitError` carries `retry_after` (seconds) in the body as well; the header
/// wins when both are there, since that is what HTTP clients and proxies honour.
fn with_body_retry_after(error: ProviderError, body: &[u8]) -> ProviderError {
    match error {
        ProviderError::RateLimited { retry_after: None } => {
            let seconds = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|b| b.get("error").and_then(|e| e.get("retry_after")).and_then(Value::as_u64));
            ProviderError::RateLimited { retry_after: seconds.map(std::time::Duration::from_secs) }
        }
        other => other,
    }
}

/// JSON made "HTTP header safe" for `Dropbox-API-Arg`: the character 0x7F and every non-ASCII
/// character written as a JSON `\uXXXX` escape (UTF-16 code units, so a character beyond the
/// Basic Multilingual Plane becomes a surrogate pair), as Dropbox's JSON-encoding reference
/// asks. serde_json already escapes the control characters below 0x20.
fn header_safe_json(value: &Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() && c != '\u{7f}' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// A `list_folder` page: its entries, and the cursor with whether more follow.
struct ListPage {
    entries: Vec<Value>,
    cursor: String,
    has_more: bool,
}

fn list_page(mut page: Value) -> Result<ListPage, ProviderError> {
    let cursor = required_str(&page, "cursor", "Dropbox folder listing")?;
    let has_more = page.get("has_more").and_then(Value::as_bool).unwrap_or(false);
    let entries = match page.get_mut("entries").map(Value::take) {
        Some(Value::Array(entries)) => entries,
        _ => return Err(ProviderError::Malformed("Dropbox folder listing has no `entries`".to_owned())),
    };
    Ok(ListPage { entries, cursor, has_more })
}

/// A `FileMetadata` or `FolderMetadata` entry. `parent_id` is known only to the caller (a
/// listing of one folder); a change names paths, not parents.
fn item(entry: &Value, kind: ItemKind, parent_id: Option<&str>) -> Result<RemoteItem, ProviderError> {
    let what = "Dropbox metadata entry";
    let file = kind == ItemKind::File;
    Ok(RemoteItem {
        id: required_str(entry, "id", what)?,
        name: required_str(entry, "name", what)?,
        kind,
        parent_id: parent_id.map(str::to_owned),
        path_lower: str_field(entry, "path_lower").map(str::to_owned),
        path_display: str_field(entry, "path_display").map(str::to_owned),
        size: if file { int_field(entry, "size") } else { None },
        hash: str_field(entry, "content_hash").and_then(|h| normalize(HashAlg::Dropbox, h)),
        revision: str_field(entry, "rev").map(str::to_owned),
        mime_type: None,
        // Dropbox keeps no creation time; `client_modified` is "not verified" and for display only.
        created_at: None,
        modified_at: time_field(entry, "server_modified"),
        // Files that must be exported (Paper docs, ...) say `is_downloadable: false`.
        downloadable: file && entry.get("is_downloadable").and_then(Value::as_bool).unwrap_or(true),
    })
}

fn change(entry: &Value) -> Result<Option<Change>, ProviderError> {
    Ok(match str_field(entry, ".tag") {
        Some("file") => Some(Change::Upsert(item(entry, ItemKind::File, None)?)),
        Some("folder") => Some(Change::Upsert(item(entry, ItemKind::Folder, None)?)),
        Some("deleted") => Some(Change::Deleted {
            id: None,
            path_lower: Some(required_str(entry, "path_lower", "Dropbox deleted entry")?),
        }),
        // A tag added after this was written: not something the worker can place.
        _ => None,
    })
}

/// Dropbox's upload rules: at most 150 MiB a request, any part size in a sequential session.
const UPLOAD_RULES: UploadRules =
    UploadRules { simple_max: 150 << 20, session_min: 0, part_multiple: 1, part_max: 150 << 20 };

/// The `CommitInfo` of an upload: by path, never renaming, never overwriting anything but
/// the base revision.
fn commit_info(target: &UploadTarget<'_>) -> Result<Value, ProviderError> {
    let (path, mode) = match target.replace {
        Some(replace) => {
            let path = replace.path.ok_or_else(|| {
                ProviderError::Unsupported(format!("the Dropbox path of `{}` is not known", replace.id))
            })?;
            let mode = match replace.revision {
                Some(rev) => json!({ ".tag": "update", "update": rev }),
                None => json!({ ".tag": "add" }),
            };
            (path.to_owned(), mode)
        }
        None => {
            let parent = target.parent_path.ok_or_else(|| {
                ProviderError::Unsupported("the Dropbox path of the folder to upload into is not known".to_owned())
            })?;
            (format!("{}/{}", parent.trim_end_matches('/'), target.name), json!({ ".tag": "add" }))
        }
    };
    Ok(json!({ "path": path, "mode": mode, "autorename": false, "strict_conflict": true, "mute": true }))
}

/// The lowercase hex `content_hash` of one request's bytes.
fn content_hash(bytes: &[u8]) -> String {
    let mut hash = DropboxContentHash::new();
    hash.update(bytes);
    hex::encode(hash.finish())
}

/// How an upload call failed, from its `error_summary`: a write conflict (a changed or
/// deleted base, a taken name), a session Dropbox no longer has, or the usual classification.
fn upload_error(answer: &Answer) -> ProviderError {
    let summary = api_error_fields(&answer.body).1.unwrap_or_default();
    if answer.status.as_u16() == 409 {
        if summary.starts_with("path/conflict") {
            return ProviderError::Conflict(format!("Dropbox answered {summary}"));
        }
        if summary.starts_with("not_found") || summary.starts_with("lookup_failed/not_found") {
            return ProviderError::UploadSessionGone;
        }
    }
    with_body_retry_after(answer.error(), &answer.body)
}

/// The `correct_offset` of an `incorrect_offset` answer (inline, or under `lookup_failed`).
fn correct_offset(answer: &Answer) -> Option<u64> {
    if answer.status.as_u16() != 409 {
        return None;
    }
    let body: Value = serde_json::from_slice(&answer.body).ok()?;
    let error = body.get("error")?;
    let lookup = if str_field(error, ".tag") == Some("lookup_failed") { error.get("lookup_failed")? } else { error };
    (str_field(lookup, ".tag") == Some("incorrect_offset")).then(|| lookup.get("correct_offset")?.as_u64())?
}

impl Dropbox {
    /// A content-upload call (`files/upload`, `files/upload_session/…`): the argument in
    /// `Dropbox-API-Arg`, the bytes as the body.
    async fn upload_call(
        &self,
        access_token: &SecretString,
        route: &[&str],
        argument: &Value,
        body: bytes::Bytes,
    ) -> Result<Answer, ProviderError> {
        let mut path = vec!["2", "files"];
        path.extend_from_slice(route);
        let url = endpoint(&self.content, &path);
        let request = bearer(self.transfer.post(url), access_token)
            .header("Dropbox-API-Arg", header_safe_json(argument))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        Answer::read(send(request).await?).await
    }

    /// The file an upload wrote (`FileMetadata`), or why not.
    fn uploaded(answer: &Answer) -> Result<RemoteItem, ProviderError> {
        if !answer.status.is_success() {
            return Err(upload_error(answer));
        }
        let value: Value = answer.json("Dropbox file metadata")?;
        item(&value, ItemKind::File, None)
    }
}

fn app_level_webhook() -> ProviderError {
    ProviderError::Unsupported(
        "Dropbox's webhook belongs to the app: there is no subscription per connection".to_owned(),
    )
}

/// The picker's entry of a metadata entry (`.tag` file or folder; `None` for others).
fn entry(value: &Value) -> Result<Option<Entry>, ProviderError> {
    let kind = match str_field(value, ".tag") {
        Some("file") => ItemKind::File,
        Some("folder") => ItemKind::Folder,
        _ => return Ok(None),
    };
    let item = item(value, kind, None)?;
    let path = item.path_display.clone();
    Ok(Some(Entry { item, path }))
}

impl Dropbox {
    /// `get_metadata` of an id or path: `None` for `path/not_found`, and for the 400 Dropbox
    /// answers an argument that is no id or path at all (ids come from callers).
    async fn metadata(&self, access_token: &SecretString, path: &str) -> Result<Option<Entry>, ProviderError> {
        let url = endpoint(&self.api, &["2", "files", "get_metadata"]);
        let argument = json!({ "path": path, "include_deleted": false });
        let answer = Answer::read(send(self.rpc(url, access_token, &argument)).await?).await?;
        let not_found = answer.status.as_u16() == 409
            && api_error_fields(&answer.body).1.is_some_and(|summary| summary.starts_with("path/not_found"));
        if not_found || answer.status.as_u16() == 400 {
            return Ok(None);
        }
        let value: Value = answer.json("Dropbox metadata").map_err(|e| with_body_retry_after(e, &answer.body))?;
        entry(&value)
    }
}

#[async_trait]
impl Provider for Dropbox {
    fn provider_type(&self) -> ProviderType {
        ProviderType::Dropbox
    }

    fn scopes(&self) -> &[String] {
        &self.scopes
    }

    fn uses_pkce(&self) -> bool {
        true
    }

    fn refresh_token_rotation(&self) -> RefreshTokenRotation {
        RefreshTokenRotation::Keep
    }

    fn expires_links_natively(&self) -> bool {
        true
    }

    fn supports_link_password(&self) -> bool {
        true
    }

    fn authorization_url(&self, request: &AuthorizeRequest<'_>) -> Result<String, ProviderError> {
        // Without token_access_type=offline Dropbox issues a short-lived access token only.
        self.oauth.authorization_url(request, &self.scopes, true, &[("token_access_type", "offline")])
    }

    async fn exchange_code(&self, code: &str, pkce: &Pkce, redirect_uri: &str) -> Result<TokenSet, ProviderError> {
        self.oauth.exchange_code(code, Some(pkce), Some(redirect_uri), &[]).await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError> {
        self.oauth.refresh(refresh_token, &[]).await
    }

    async fn identity(&self, access_token: &SecretString) -> Result<Identity, ProviderError> {
        let url = endpoint(&self.api, &["2", "users", "get_current_account"]);
        let account: Value =
            json_response(send(self.rpc(url, access_token, &Value::Null)).await?, "Dropbox account").await?;
        let verified = account.get("email_verified").and_then(Value::as_bool).unwrap_or(false);
        let root = account.get("root_info");
        Ok(Identity {
            provider_user_id: required_str(&account, "account_id", "Dropbox account")?,
            // Dropbox: "Do not rely on this without checking the email_verified field."
            email: str_field(&account, "email").filter(|_| verified).map(str::to_owned),
            display_name: account.get("name").and_then(|n| str_field(n, "display_name")).map(str::to_owned),
            metadata: json!({
                "account_type": account.get("account_type").and_then(|t| str_field(t, ".tag")),
                "email_verified": verified,
                "root_namespace_id": root.and_then(|r| str_field(r, "root_namespace_id")),
                "home_namespace_id": root.and_then(|r| str_field(r, "home_namespace_id")),
                "team_member_id": str_field(&account, "team_member_id"),
            }),
        })
    }

    /// `/2/auth/token/revoke` takes the access token and disables its refresh token with it.
    async fn revoke(&self, access: &SecretString, _refresh: Option<&SecretString>) -> Result<(), ProviderError> {
        match expect_success(send(self.rpc(self.revoke_url.clone(), access, &Value::Null)).await?, &[]).await {
            // An already invalid token: the grant is gone, which is what was asked.
            Err(ProviderError::Rejected { status: 401, .. }) => Ok(()),
            other => other,
        }
    }

    async fn create_shared_link(
        &self,
        access_token: &SecretString,
        target: &LinkTarget<'_>,
        request: &SharedLinkRequest,
    ) -> Result<CreatedLink, ProviderError> {
        let mut settings = json!({ "audience": "public" });
        match request.share_type {
            // Dropbox viewers may also comment, so a view link is the nearest comment link.
            ShareType::View | ShareType::Comment => settings["access"] = json!("viewer"),
            ShareType::Download => {
                settings["access"] = json!("viewer");
                settings["allow_download"] = json!(true);
            }
            ShareType::Edit => settings["access"] = json!("editor"),
        }
        if let Some(at) = request.expires_at {
            settings["expires"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        if let Some(password) = &request.password {
            settings["require_password"] = json!(true);
            settings["link_password"] = json!(password.expose_secret());
        }
        // A path or an "id:..." file id both work as `path`.
        let argument = json!({ "path": target.item_id, "settings": settings });
        let url = endpoint(&self.api, &["2", "sharing", "create_shared_link_with_settings"]);
        let answer = Answer::read(send(self.rpc(url, access_token, &argument)).await?).await?;
        let link: Value = match existing_link_to_share(&answer, request, &settings) {
            Some(existing) => existing,
            None => answer.json("Dropbox shared link")?,
        };
        // The metadata's `id` is the file's, not the link's: a link is known by its URL.
        Ok(CreatedLink {
            provider_share_id: None,
            share_url: required_str(&link, "url", "Dropbox shared link")?,
            expires_at: time_field(&link, "expires"),
        })
    }

    async fn delete_shared_link(
        &self,
        access_token: &SecretString,
        _target: &LinkTarget<'_>,
        link: &ExistingLink<'_>,
    ) -> Result<(), ProviderError> {
        let url = endpoint(&self.api, &["2", "sharing", "revoke_shared_link"]);
        let response = send(self.rpc(url, access_token, &json!({ "url": link.share_url }))).await?;
        match expect_success(response, &[]).await {
            Err(ProviderError::Rejected { status: 409, code: Some(code), .. }) if code == "shared_link_not_found" => {
                Ok(())
            }
            other => other,
        }
    }

    /// `list_folder/get_latest_cursor`, recursive with deleted entries, on the synced folder
    /// (its path when the folder has one, else its id).
    async fn start_cursor(&self, access_token: &SecretString, scope: &SyncScope<'_>) -> Result<String, ProviderError> {
        // Dropbox names its root "", and refuses "/".
        let path = match scope.folder_path {
            Some("/") => "",
            Some(path) => path,
            None => scope.folder_id,
        };
        let argument = json!({
            "path": path,
            "recursive": true,
            "include_deleted": true,
        });
        let answer = self.list_call(access_token, &["list_folder", "get_latest_cursor"], &argument).await?;
        required_str(&answer, "cursor", "Dropbox latest cursor")
    }

    async fn list_children(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        folder_id: &str,
        page: Option<&str>,
    ) -> Result<ChildPage, ProviderError> {
        let answer = match page {
            None => {
                let argument = json!({
                    "path": folder_id,
                    "recursive": false,
                    "include_deleted": false,
                    "limit": LIST_LIMIT,
                });
                self.list_call(access_token, &["list_folder"], &argument).await?
            }
            Some(cursor) => {
                self.list_call(access_token, &["list_folder", "continue"], &json!({ "cursor": cursor })).await?
            }
        };
        let page = list_page(answer)?;
        let mut items = Vec::with_capacity(page.entries.len());
        for entry in &page.entries {
            let kind = match str_field(entry, ".tag") {
                Some("file") => ItemKind::File,
                Some("folder") => ItemKind::Folder,
                _ => continue,
            };
            items.push(item(entry, kind, Some(folder_id))?);
        }
        Ok(ChildPage { items, next: page.has_more.then_some(page.cursor) })
    }

    async fn changes(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        cursor: &str,
    ) -> Result<ChangePage, ProviderError> {
        let answer = self.list_call(access_token, &["list_folder", "continue"], &json!({ "cursor": cursor })).await?;
        let page = list_page(answer)?;
        let mut changes = Vec::with_capacity(page.entries.len());
        for entry in &page.entries {
            changes.extend(change(entry)?);
        }
        // Dropbox's cursor is one value: it pages while `has_more`, and the last one is kept.
        let (next, cursor) = if page.has_more { (Some(page.cursor), None) } else { (None, Some(page.cursor)) };
        Ok(ChangePage { changes, next, cursor })
    }

    fn upload_rules(&self) -> UploadRules {
        UPLOAD_RULES
    }

    async fn upload_small(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        body: bytes::Bytes,
    ) -> Result<RemoteItem, ProviderError> {
        let mut argument = commit_info(target)?;
        argument["content_hash"] = json!(content_hash(&body));
        Self::uploaded(&self.upload_call(access_token, &["upload"], &argument, body).await?)
    }

    /// `upload_session/start` without bytes: the parts follow with `append_v2`, each of which
    /// can be retried at its offset.
    async fn start_upload(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
    ) -> Result<UploadSession, ProviderError> {
        commit_info(target)?;
        let answer = self
            .upload_call(access_token, &["upload_session", "start"], &json!({ "close": false }), bytes::Bytes::new())
            .await?;
        if !answer.status.is_success() {
            return Err(upload_error(&answer));
        }
        let value: Value = answer.json("Dropbox upload session")?;
        Ok(UploadSession {
            handle: required_str(&value, "session_id", "Dropbox upload session")?,
            part_size: None,
            // "A single upload session can be used for a maximum of 7 days."
            expires_at: Some(chrono::Utc::now() + chrono::Duration::days(7)),
            parts: Vec::new(),
        })
    }

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
        let argument = json!({
            "cursor": { "session_id": session.handle, "offset": offset },
            "close": end >= target.size,
            "content_hash": content_hash(&part),
        });
        let answer = self.upload_call(access_token, &["upload_session", "append_v2"], &argument, part).await?;
        if answer.status.is_success() {
            return Ok(Sent::Next(end));
        }
        match correct_offset(&answer) {
            Some(offset) => Ok(Sent::Next(offset)),
            None => Err(upload_error(&answer)),
        }
    }

    async fn upload_offset(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        _target: &UploadTarget<'_>,
        session: &UploadSession,
    ) -> Result<u64, ProviderError> {
        let argument = json!({ "cursor": { "session_id": session.handle, "offset": 0 }, "close": false });
        let answer =
            self.upload_call(access_token, &["upload_session", "append_v2"], &argument, bytes::Bytes::new()).await?;
        if answer.status.is_success() {
            return Ok(0);
        }
        correct_offset(&answer).ok_or_else(|| upload_error(&answer))
    }

    async fn finish_upload(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        session: &UploadSession,
        _whole: &WholeFile,
    ) -> Result<RemoteItem, ProviderError> {
        let argument = json!({
            "cursor": { "session_id": session.handle, "offset": target.size },
            "commit": commit_info(target)?,
        });
        Self::uploaded(
            &self.upload_call(access_token, &["upload_session", "finish"], &argument, bytes::Bytes::new()).await?,
        )
    }

    /// `delete_v2` of the file's path with `parent_rev` the base `rev`: Dropbox deletes it only
    /// if that is still its revision (it keeps deleted files for restoring).
    async fn delete_file(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        base: &Replace<'_>,
    ) -> Result<(), ProviderError> {
        let path = base
            .path
            .ok_or_else(|| ProviderError::Unsupported(format!("the Dropbox path of `{}` is not known", base.id)))?;
        let mut argument = json!({ "path": path });
        if let Some(rev) = base.revision {
            argument["parent_rev"] = json!(rev);
        }
        let url = endpoint(&self.api, &["2", "files", "delete_v2"]);
        let answer = Answer::read(send(self.rpc(url, access_token, &argument)).await?).await?;
        if answer.status.is_success() {
            return Ok(());
        }
        let summary = api_error_fields(&answer.body).1.unwrap_or_default();
        if answer.status.as_u16() == 409 {
            if summary.starts_with("path_lookup/not_found") {
                return Ok(());
            }
            return Err(ProviderError::Conflict(format!("Dropbox answered {summary}")));
        }
        Err(with_body_retry_after(answer.error(), &answer.body))
    }

    /// `POST /2/files/download` on the content host, the file named by its id.
    async fn download(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        item: &RemoteItem,
    ) -> Result<Download, ProviderError> {
        if item.kind != ItemKind::File || !item.downloadable {
            return Err(ProviderError::Unsupported(format!(
                "Dropbox item `{}` has no bytes to download (export-only file or folder)",
                item.id
            )));
        }
        let url = endpoint(&self.content, &["2", "files", "download"]);
        let argument = header_safe_json(&json!({ "path": item.id }));
        let request = bearer(self.transfer.post(url), access_token).header("Dropbox-API-Arg", argument);
        let response = send(request).await?;
        if response.status().as_u16() == 429 {
            let answer = Answer::read(response).await?;
            return Err(with_body_retry_after(answer.error(), &answer.body));
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
        let answer = match page {
            None => {
                let argument = json!({
                    "path": parent.unwrap_or(""),
                    "recursive": false,
                    "include_deleted": false,
                    "limit": limit,
                });
                self.list_call(access_token, &["list_folder"], &argument).await?
            }
            Some(cursor) => {
                self.list_call(access_token, &["list_folder", "continue"], &json!({ "cursor": cursor })).await?
            }
        };
        let page = list_page(answer)?;
        let mut entries = Vec::with_capacity(page.entries.len());
        for value in &page.entries {
            entries.extend(entry(value)?);
        }
        Ok(EntryPage { entries, next: page.has_more.then_some(page.cursor) })
    }

    async fn item(
        &self,
        access_token: &SecretString,
        _metadata: Option<&Value>,
        id: &str,
    ) -> Result<Option<Entry>, ProviderError> {
        self.metadata(access_token, id).await
    }

    /// `create_folder_v2` at the parent's path without autorename; a `path/conflict` is
    /// answered with the id of what is there.
    async fn create_folder(
        &self,
        access_token: &SecretString,
        _metadata: Option<&Value>,
        parent: Option<&Entry>,
        name: &str,
    ) -> Result<Created, ProviderError> {
        let parent_path = match parent {
            None => "",
            Some(p) => p.item.path_display.as_deref().ok_or_else(|| {
                ProviderError::Malformed("the Dropbox parent folder has no `path_display`".to_owned())
            })?,
        };
        let path = format!("{parent_path}/{name}");
        let url = endpoint(&self.api, &["2", "files", "create_folder_v2"]);
        let argument = json!({ "path": path, "autorename": false });
        let answer = Answer::read(send(self.rpc(url, access_token, &argument)).await?).await?;
        let conflict = answer.status.as_u16() == 409
            && api_error_fields(&answer.body).1.is_some_and(|summary| summary.starts_with("path/conflict"));
        if conflict {
            return match self.metadata(access_token, &path).await? {
                Some(existing) => Ok(Created::Exists { id: existing.item.id }),
                None => Err(answer.error()),
            };
        }
        let mut created: Value =
            answer.json("Dropbox folder creation").map_err(|e| with_body_retry_after(e, &answer.body))?;
        let mut metadata = created.get_mut("metadata").map(Value::take).unwrap_or(Value::Null);
        // `create_folder_v2` answers a FolderMetadata without its `.tag`.
        metadata[".tag"] = json!("folder");
        entry(&metadata)?
            .map(|entry| Created::Folder(Box::new(entry)))
            .ok_or_else(|| ProviderError::Malformed("Dropbox folder creation has no `metadata`".to_owned()))
    }

    /// Dropbox's webhook is the app's (App Console): it names the accounts that changed, and
    /// there is nothing to make, renew or remove per connection. The lifecycle never asks.
    fn watch_scope(&self) -> WatchScope {
        WatchScope::App
    }

    async fn watch(&self, _token: &SecretString, _request: &WatchRequest<'_>) -> Result<Watching, ProviderError> {
        Err(app_level_webhook())
    }

    async fn renew_watch(
        &self,
        _token: &SecretString,
        _existing: &Watched<'_>,
        _request: &WatchRequest<'_>,
    ) -> Result<Watching, ProviderError> {
        Err(app_level_webhook())
    }

    async fn unwatch(&self, _token: &SecretString, _existing: &Watched<'_>) -> Result<(), ProviderError> {
        Err(app_level_webhook())
    }
}

/// Dropbox keeps one link per item and answers a second request `shared_link_already_exists`
/// with the existing link's metadata. That link is shared (see `shared::link_removal`) when
/// it is the kind asked for: the same access level, downloads allowed for a download link, and
/// no password asked for (whether the existing link has the one asked for cannot be told).
/// Otherwise `None`, and the 409 stands.
fn existing_link_to_share(answer: &Answer, request: &SharedLinkRequest, settings: &Value) -> Option<Value> {
    if answer.status.as_u16() != 409 || request.password.is_some() {
        return None;
    }
    let body: Value = serde_json::from_slice(&answer.body).ok()?;
    let error = body.get("error")?;
    if str_field(error, ".tag") != Some("shared_link_already_exists") {
        return None;
    }
    let metadata = error.get("shared_link_already_exists")?.get("metadata")?;
    let permissions = metadata.get("link_permissions")?;
    let access = permissions.get("link_access_level").and_then(|l| str_field(l, ".tag"));
    let wanted = str_field(settings, "access");
    let downloads_ok =
        settings.get("allow_download") != Some(&json!(true)) || permissions.get("allow_download") == Some(&json!(true));
    (access.is_some() && access == wanted && downloads_ok).then(|| metadata.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_arguments_escape_0x7f_and_non_ascii() {
        // Dropbox's JSON-encoding reference: {"field": "some_üñîcødé_and_" + chr(0x7F)}.
        let value = json!({ "field": "some_üñîcødé_and_\u{7f}" });
        assert_eq!(header_safe_json(&value), r#"{"field":"some_\u00fc\u00f1\u00eec\u00f8d\u00e9_and_\u007f"}"#);
        // Beyond the Basic Multilingual Plane: a UTF-16 surrogate pair, as JSON requires.
        assert_eq!(header_safe_json(&json!({ "path": "/a😀" })), r#"{"path":"/a\ud83d\ude00"}"#);
        // Quotes and backslashes stay escaped the JSON way, and the result parses back.
        let tricky = json!({ "path": "/\"quoted\" \\ Modèle" });
        let safe = header_safe_json(&tricky);
        assert!(safe.is_ascii(), "{safe}");
        assert_eq!(serde_json::from_str::<Value>(&safe).unwrap(), tricky);
    }

    #[test]
    fn a_rate_limit_without_retry_after_header_takes_the_bodys_wait() {
        let body = br#"{"error_summary":"too_many_requests/..","error":{"reason":{".tag":"too_many_requests"},"retry_after":300}}"#;
        let from_body = with_body_retry_after(ProviderError::RateLimited { retry_after: None }, body);
        assert_eq!(from_body, ProviderError::RateLimited { retry_after: Some(std::time::Duration::from_secs(300)) });
        let header = ProviderError::RateLimited { retry_after: Some(std::time::Duration::from_secs(10)) };
        assert_eq!(with_body_retry_after(header.clone(), body), header);
    }
}
