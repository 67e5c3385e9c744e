//! Google Drive: Google's OAuth 2.0 web-server flow, OpenID Connect userinfo for identity,
//! Drive v3 permissions for shared links, and Drive v3 files and changes for sync.
//!
//! Userinfo and Drive live on different hosts; a configured `api_base_url` replaces both, the
//! documented paths (`/v1/userinfo`, `/drive/v3/...`) staying as they are.
//!
//! Sync (research note §1.2, §3.2): the crawl is `files.list` with `'<id>' in parents`, one
//! folder per request; changes are `changes.list` from `changes/startPageToken`, and cover the
//! whole account (the worker keeps what is in the folder). A removed or trashed file is a
//! deletion. Drive does not document the status of a rejected page token, so any 4xx on
//! `changes.list` other than 401, 403 and 429 is [`ProviderError::ResyncRequired`]. Google
//! Docs editor files have no bytes (`alt=media` refuses them) and are never downloaded.
//!
//! Uploads (research note §3.2, [`super::upload`]): up to one part in one request (`multipart`
//! for a new file, `media` for a new version), else a resumable session whose URI comes back in
//! `Location`, chunks a multiple of 256 KiB answered 308 with the `Range` received, and a status
//! query (`Content-Range: bytes */N`) to resume. Drive v3 has no conditional write: right before
//! writing, the file's `headRevisionId` is read and compared with the base (and a new file's
//! name looked up in its folder, since Drive would make a twin); a small race remains between
//! that read and the write.

use async_trait::async_trait;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{
    Answer, bearer, download_response, endpoint, expect_success, int_field, json_response, parse_url, path_id,
    required_str, send, str_field, time_field,
};
use super::oauth_client::{OAuthClient, RevokedWhen, scopes_or};
use super::upload::{Replace, Sent, UploadRules, UploadSession, UploadTarget, WholeFile};
use super::{
    AuthorizeRequest, Change, ChangePage, ChildPage, Clients, Created, CreatedLink, Download, Entry, EntryPage,
    ExistingLink, Identity, ItemKind, LinkTarget, Pkce, Provider, ProviderError, RefreshTokenRotation, RemoteItem,
    SharedLinkRequest, SyncScope, TokenSet, WatchRequest, WatchScope, Watched, Watching, password_unsupported,
};
use crate::config::ProviderConfig;
use crate::content_hash::{HashAlg, normalize};
use crate::db::{ProviderType, ShareType, SubscriptionKind};

const AUTHORIZE: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const TOKEN: &str = "https://oauth2.googleapis.com/token";
const REVOKE: &str = "https://oauth2.googleapis.com/revoke";
const USERINFO_BASE: &str = "https://openidconnect.googleapis.com";
const DRIVE_BASE: &str = "https://www.googleapis.com";
/// `drive` rather than `drive.file`: the user picks folders in Quodsi, not through Google's
/// picker, so files the app did not create must be reachable. Narrow it with `scopes`.
const SCOPES: &[&str] = &["openid", "email", "https://www.googleapis.com/auth/drive"];
const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
/// Google's own types (Docs, Sheets, shortcuts, ...): no bytes of their own to download.
const GOOGLE_APPS_MIME: &str = "application/vnd.google-apps.";
/// The File fields sync reads (`fields=` replaces the default set).
const FILE_FIELDS: &str = "id,name,mimeType,parents,size,md5Checksum,modifiedTime,createdTime,trashed,headRevisionId";
/// The largest page `files.list` and `changes.list` allow.
const PAGE_SIZE: &str = "1000";
/// The alias of My Drive's root folder.
const ROOT: &str = "root";

#[derive(Debug)]
pub(crate) struct Google {
    oauth: OAuthClient,
    /// File bodies (downloads, uploads): bounded by silence, not by total time.
    transfer: reqwest::Client,
    revoke_url: Url,
    userinfo_base: Url,
    drive_base: Url,
    scopes: Vec<String>,
}

impl Google {
    pub fn new(config: &ProviderConfig, http: &Clients) -> Result<Google, String> {
        let mut oauth = OAuthClient::new(config, http.api.clone(), AUTHORIZE, TOKEN)?;
        oauth.revoked_when = RevokedWhen::DescriptionContains("expired or revoked");
        let api = |default: &str| parse_url(config.api_base_url.as_deref().unwrap_or(default), "api_base_url");
        Ok(Google {
            oauth,
            transfer: http.transfer.clone(),
            revoke_url: parse_url(config.revoke_url.as_deref().unwrap_or(REVOKE), "revoke_url")?,
            userinfo_base: api(USERINFO_BASE)?,
            drive_base: api(DRIVE_BASE)?,
            scopes: scopes_or(config, SCOPES),
        })
    }

    fn files(&self, segments: &[&str]) -> Url {
        let mut path = vec!["files"];
        path.extend_from_slice(segments);
        self.drive(&path)
    }

    /// `/drive/v3/{segments}?supportsAllDrives=true`.
    fn drive(&self, segments: &[&str]) -> Url {
        let mut path = vec!["drive", "v3"];
        path.extend_from_slice(segments);
        let mut url = endpoint(&self.drive_base, &path);
        // Items in shared drives are refused without it.
        url.query_pairs_mut().append_pair("supportsAllDrives", "true");
        url
    }

    async fn session_status(
        &self,
        access_token: &SecretString,
        target: &UploadTarget<'_>,
        session: &UploadSession,
    ) -> Result<Answer, ProviderError> {
        let request = bearer(self.transfer.put(self.session_url(session)?), access_token)
            .header(reqwest::header::CONTENT_RANGE, format!("bytes */{}", target.size))
            .header(reqwest::header::CONTENT_LENGTH, "0");
        Answer::read(send(request).await?).await
    }

    async fn get_answer(&self, access_token: &SecretString, url: Url) -> Result<Answer, ProviderError> {
        Answer::read(send(bearer(self.oauth.http.get(url), access_token)).await?).await
    }

    /// One page of `files.list` for `query`: the files and the next page token.
    async fn list(
        &self,
        access_token: &SecretString,
        query: &str,
        page: Option<&str>,
        page_size: &str,
    ) -> Result<(Vec<Value>, Option<String>), ProviderError> {
        let mut url = self.files(&[]);
        url.query_pairs_mut()
            .append_pair("q", query)
            .append_pair("pageSize", page_size)
            .append_pair("fields", &format!("nextPageToken,incompleteSearch,files({FILE_FIELDS})"))
            .append_pair("includeItemsFromAllDrives", "true");
        if let Some(token) = page {
            url.query_pairs_mut().append_pair("pageToken", token);
        }
        let mut list: Value = self.get_answer(access_token, url).await?.json("Drive file list")?;
        let next = str_field(&list, "nextPageToken").map(str::to_owned);
        match list.get_mut("files").map(Value::take) {
            Some(Value::Array(files)) => Ok((files, next)),
            _ => Err(ProviderError::Malformed("Drive file list has no `files`".to_owned())),
        }
    }
}

/// The picker's entry of a Drive file: My Drive's root is `/`; other items have no path here
/// (Drive keeps none, and a file may have several parents), the caller derives a child's from
/// its parent's.
fn drive_entry(file: &Value, listed_in: Option<&str>, is_root: bool) -> Result<Entry, ProviderError> {
    let item = drive_file(file, listed_in)?;
    Ok(Entry { item, path: is_root.then(|| "/".to_owned()) })
}

/// A Drive `File`. `listed_in` is the folder a listing asked for: of a file's parents (Drive
/// may still report several), that one is its parent here.
fn drive_file(file: &Value, listed_in: Option<&str>) -> Result<RemoteItem, ProviderError> {
    let what = "Drive file";
    let mime = required_str(file, "mimeType", what)?;
    let kind = if mime == FOLDER_MIME { ItemKind::Folder } else { ItemKind::File };
    let parents: Vec<&str> = file
        .get("parents")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let parent_id = match listed_in {
        Some(folder) if parents.contains(&folder) => Some(folder),
        _ => parents.first().copied(),
    };
    let has_bytes = kind == ItemKind::File && !mime.starts_with(GOOGLE_APPS_MIME);
    Ok(RemoteItem {
        id: required_str(file, "id", what)?,
        name: required_str(file, "name", what)?,
        kind,
        parent_id: parent_id.map(str::to_owned),
        path_lower: None,
        path_display: None,
        // `size` is an int64 sent as a string.
        size: if kind == ItemKind::File { int_field(file, "size") } else { None },
        hash: str_field(file, "md5Checksum").and_then(|h| normalize(HashAlg::Md5, h)),
        revision: str_field(file, "headRevisionId").map(str::to_owned),
        created_at: time_field(file, "createdTime"),
        modified_at: time_field(file, "modifiedTime"),
        mime_type: Some(mime),
        downloadable: has_bytes,
    })
}

/// A `Change`: removed (deleted, or access lost) or trashed is a deletion; a shared drive's own
/// change (`changeType: drive`) names no file and is skipped.
fn drive_change(change: &Value) -> Result<Option<Change>, ProviderError> {
    if str_field(change, "changeType") == Some("drive") {
        return Ok(None);
    }
    let file = change.get("file");
    let removed = change.get("removed").and_then(Value::as_bool).unwrap_or(false);
    let trashed = file.and_then(|f| f.get("trashed")).and_then(Value::as_bool).unwrap_or(false);
    Ok(Some(match file {
        Some(file) if !removed && !trashed => Change::Upsert(drive_file(file, None)?),
        _ => Change::Deleted { id: Some(required_str(change, "fileId", "Drive change")?), path_lower: None },
    }))
}

/// Drive's upload rules: one request up to 5 MB; resumable chunks a multiple of 256 KiB.
const UPLOAD_RULES: UploadRules =
    UploadRules { simple_max: 5 << 20, session_min: 0, part_multiple: 262_144, part_max: 256 << 20 };
const MULTIPART_BOUNDARY: &str = "quodsi-drive-upload-7d1b6e0c";

/// The first byte a resumable session has not received, from a 308's `Range: bytes=0-N`
/// (none received without one).
fn received_through(answer: &Answer) -> Result<u64, ProviderError> {
    match answer.headers.get(reqwest::header::RANGE).and_then(|v| v.to_str().ok()) {
        None => Ok(0),
        Some(range) => range
            .rsplit('-')
            .next()
            .and_then(|last| last.trim().parse::<u64>().ok())
            .map(|last| last + 1)
            .ok_or_else(|| ProviderError::Malformed("a Drive 308 has an unreadable Range".to_owned())),
    }
}

/// The file a finished upload answered, or why not (a file gone is a conflict).
fn drive_uploaded(answer: &Answer) -> Result<RemoteItem, ProviderError> {
    if answer.status == reqwest::StatusCode::NOT_FOUND {
        return Err(ProviderError::Conflict("the file is no longer at the provider".to_owned()));
    }
    drive_file(&answer.json::<Value>("Drive file")?, None)
}

impl Google {
    /// `/upload/drive/v3/files[/{id}]` with the upload type and the fields sync reads.
    fn upload_url(&self, id: Option<&str>, upload_type: &str) -> Result<Url, ProviderError> {
        let mut path = vec!["upload", "drive", "v3", "files"];
        path.extend(id.map(|id| path_id(id, "Drive file id")).transpose()?);
        let mut url = endpoint(&self.drive_base, &path);
        url.query_pairs_mut()
            .append_pair("uploadType", upload_type)
            .append_pair("supportsAllDrives", "true")
            .append_pair("fields", FILE_FIELDS);
        Ok(url)
    }

    /// A session URI, if it is on the configured Drive host: the bearer token goes nowhere else.
    fn session_url(&self, session: &UploadSession) -> Result<Url, ProviderError> {
        Url::parse(&session.handle)
            .ok()
            .filter(|url| url.origin() == self.drive_base.origin())
            .ok_or_else(|| ProviderError::Malformed("a Drive upload session URI is not on the Drive host".to_owned()))
    }

    /// The head revision of a file, `None` when it is gone (404, or in the trash).
    async fn head_revision(&self, access_token: &SecretString, id: &str) -> Result<Option<String>, ProviderError> {
        let mut url = self.files(&[path_id(id, "Drive file id")?]);
        url.query_pairs_mut().append_pair("fields", "headRevisionId,md5Checksum,trashed");
        let answer = self.get_answer(access_token, url).await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let head: Value = answer.json("Drive file")?;
        if head.get("trashed").and_then(Value::as_bool) == Some(true) {
            return Ok(None);
        }
        Ok(Some(str_field(&head, "headRevisionId").unwrap_or_default().to_owned()))
    }

    /// Drive has no `If-Match`: the base is checked right before the write. A new version
    /// needs the file's head revision to be the base's; a new file, its name free in the folder.
    async fn check_base(&self, access_token: &SecretString, target: &UploadTarget<'_>) -> Result<(), ProviderError> {
        match target.replace {
            Some(replace) => match self.head_revision(access_token, replace.id).await? {
                None => Err(ProviderError::Conflict("the file is no longer at the provider".to_owned())),
                Some(head) if replace.revision.is_some_and(|base| base != head) => {
                    Err(ProviderError::Conflict("the file's head revision is not the base's".to_owned()))
                }
                Some(_) => Ok(()),
            },
            None => {
                let query = format!(
                    "name = '{}' and '{}' in parents and trashed = false",
                    query_literal(target.name),
                    query_literal(target.parent_id)
                );
                let (existing, _) = self.list(access_token, &query, None, "1").await?;
                if existing.is_empty() {
                    Ok(())
                } else {
                    Err(ProviderError::Conflict(format!("`{}` is taken in the folder", target.name)))
                }
            }
        }
    }
}

/// A Drive query string literal: `\` and `'` escaped with a backslash.
fn query_literal(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

#[async_trait]
impl Provider for Google {
    fn provider_type(&self) -> ProviderType {
        ProviderType::GDrive
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

    /// `expirationTime` is allowed on user and group permissions only, not on `anyone`.
    fn expires_links_natively(&self) -> bool {
        false
    }

    fn supports_link_password(&self) -> bool {
        false
    }

    fn authorization_url(&self, request: &AuthorizeRequest<'_>) -> Result<String, ProviderError> {
        // A refresh token comes only with access_type=offline, and on a repeat consent only
        // when prompt=consent forces the consent screen again.
        self.oauth.authorization_url(request, &self.scopes, true, &[("access_type", "offline"), ("prompt", "consent")])
    }

    async fn exchange_code(&self, code: &str, pkce: &Pkce, redirect_uri: &str) -> Result<TokenSet, ProviderError> {
        self.oauth.exchange_code(code, Some(pkce), Some(redirect_uri), &[]).await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError> {
        self.oauth.refresh(refresh_token, &[]).await
    }

    async fn identity(&self, access_token: &SecretString) -> Result<Identity, ProviderError> {
        let url = endpoint(&self.userinfo_base, &["v1", "userinfo"]);
        let info: Value =
            json_response(send(bearer(self.oauth.http.get(url), access_token)).await?, "userinfo").await?;
        let verified = info.get("email_verified").and_then(Value::as_bool);
        let hosted_domain = str_field(&info, "hd");
        Ok(Identity {
            provider_user_id: required_str(&info, "sub", "userinfo")?,
            // An unverified address proves nothing about who the account belongs to.
            email: str_field(&info, "email").filter(|_| verified != Some(false)).map(str::to_owned),
            display_name: str_field(&info, "name").map(str::to_owned),
            metadata: json!({
                "account_type": if hosted_domain.is_some() { "workspace" } else { "consumer" },
                "hosted_domain": hosted_domain,
                "email_verified": verified,
            }),
        })
    }

    /// Revoking the refresh token ends the whole grant, access tokens included.
    async fn revoke(&self, access: &SecretString, refresh: Option<&SecretString>) -> Result<(), ProviderError> {
        let token = refresh.unwrap_or(access);
        let request = self.oauth.http.post(self.revoke_url.clone()).form(&[("token", token.expose_secret())]);
        match expect_success(send(request).await?, &[]).await {
            // Already expired or revoked: the grant is gone, which is what was asked.
            Err(ProviderError::Rejected { status: 400, code: Some(code), .. }) if code == "invalid_token" => Ok(()),
            other => other,
        }
    }

    async fn create_shared_link(
        &self,
        access_token: &SecretString,
        target: &LinkTarget<'_>,
        request: &SharedLinkRequest,
    ) -> Result<CreatedLink, ProviderError> {
        if request.password.is_some() {
            return Err(password_unsupported(ProviderType::GDrive));
        }
        let role = match request.share_type {
            ShareType::View | ShareType::Download => "reader",
            ShareType::Comment => "commenter",
            ShareType::Edit => "writer",
        };
        // No expirationTime: Drive refuses it for `anyone`; the link-expiry job deletes the
        // permission instead (expires_links_natively is false).
        let body = json!({ "role": role, "type": "anyone", "allowFileDiscovery": false });
        let item = path_id(target.item_id, "Drive file id")?;
        let create = bearer(self.oauth.http.post(self.files(&[item, "permissions"])), access_token).json(&body);
        let permission: Value = json_response(send(create).await?, "Drive permission").await?;
        let permission_id = required_str(&permission, "id", "Drive permission")?;

        let mut file_url = self.files(&[item]);
        file_url.query_pairs_mut().append_pair("fields", "webViewLink");
        let file: Value =
            json_response(send(bearer(self.oauth.http.get(file_url), access_token)).await?, "Drive file").await?;
        Ok(CreatedLink {
            provider_share_id: Some(permission_id),
            share_url: required_str(&file, "webViewLink", "Drive file")?,
            expires_at: None,
        })
    }

    async fn delete_shared_link(
        &self,
        access_token: &SecretString,
        target: &LinkTarget<'_>,
        link: &ExistingLink<'_>,
    ) -> Result<(), ProviderError> {
        let permission = link.provider_share_id.ok_or_else(|| {
            ProviderError::Unsupported("a gdrive link is deleted by its permission id, and none is stored".to_owned())
        })?;
        let item = path_id(target.item_id, "Drive file id")?;
        let url = self.files(&[item, "permissions", path_id(permission, "permission id")?]);
        expect_success(send(bearer(self.oauth.http.delete(url), access_token)).await?, &["notFound"]).await
    }

    async fn start_cursor(&self, access_token: &SecretString, _scope: &SyncScope<'_>) -> Result<String, ProviderError> {
        let url = self.drive(&["changes", "startPageToken"]);
        let token: Value = self.get_answer(access_token, url).await?.json("Drive start page token")?;
        required_str(&token, "startPageToken", "Drive start page token")
    }

    async fn list_children(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        folder_id: &str,
        page: Option<&str>,
    ) -> Result<ChildPage, ProviderError> {
        let mut url = self.files(&[]);
        url.query_pairs_mut()
            .append_pair("q", &format!("'{}' in parents and trashed = false", query_literal(folder_id)))
            .append_pair("pageSize", PAGE_SIZE)
            .append_pair("fields", &format!("nextPageToken,incompleteSearch,files({FILE_FIELDS})"))
            .append_pair("includeItemsFromAllDrives", "true");
        if let Some(token) = page {
            url.query_pairs_mut().append_pair("pageToken", token);
        }
        let list: Value = self.get_answer(access_token, url).await?.json("Drive file list")?;
        let files = list
            .get("files")
            .and_then(Value::as_array)
            .ok_or_else(|| ProviderError::Malformed("Drive file list has no `files`".to_owned()))?;
        let items = files.iter().map(|f| drive_file(f, Some(folder_id))).collect::<Result<_, _>>()?;
        Ok(ChildPage { items, next: str_field(&list, "nextPageToken").map(str::to_owned) })
    }

    async fn changes(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        cursor: &str,
    ) -> Result<ChangePage, ProviderError> {
        let mut url = self.drive(&["changes"]);
        url.query_pairs_mut()
            .append_pair("pageToken", cursor)
            .append_pair("pageSize", PAGE_SIZE)
            .append_pair("includeRemoved", "true")
            .append_pair("includeItemsFromAllDrives", "true")
            .append_pair("spaces", "drive")
            .append_pair(
                "fields",
                &format!("nextPageToken,newStartPageToken,changes(changeType,removed,fileId,time,file({FILE_FIELDS}))"),
            );
        let answer = self.get_answer(access_token, url).await?;
        let status = answer.status.as_u16();
        // 401 is the token, 403 a rate limit or a permission, 429 a rate limit: the page token
        // is not what is wrong.
        if answer.status.is_client_error() && !matches!(status, 401 | 403 | 429) {
            let code = answer.code().unwrap_or_else(|| status.to_string());
            return Err(ProviderError::ResyncRequired(format!("Drive refused the page token ({code})")));
        }
        let list: Value = answer.json("Drive change list")?;
        let entries = list
            .get("changes")
            .and_then(Value::as_array)
            .ok_or_else(|| ProviderError::Malformed("Drive change list has no `changes`".to_owned()))?;
        let mut changes = Vec::with_capacity(entries.len());
        for entry in entries {
            changes.extend(drive_change(entry)?);
        }
        Ok(ChangePage {
            changes,
            next: str_field(&list, "nextPageToken").map(str::to_owned),
            cursor: str_field(&list, "newStartPageToken").map(str::to_owned),
        })
    }

    /// `files/{id}?alt=media` with the bearer token. A Google Docs editor file has no bytes
    /// (it would need `files.export`, a conversion) and is refused here, before any call.
    async fn download(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        item: &RemoteItem,
    ) -> Result<Download, ProviderError> {
        let google_type = item.mime_type.as_deref().is_some_and(|m| m.starts_with(GOOGLE_APPS_MIME));
        if item.kind != ItemKind::File || !item.downloadable || google_type {
            return Err(ProviderError::Unsupported(format!(
                "Drive item `{}` has no bytes to download (a folder or a Google Docs editor file)",
                item.id
            )));
        }
        let mut url = self.files(&[path_id(&item.id, "Drive file id")?]);
        url.query_pairs_mut().append_pair("alt", "media");
        let response = send(bearer(self.transfer.get(url), access_token)).await?;
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
        let query = format!("'{}' in parents and trashed = false", query_literal(folder));
        let (files, next) = self.list(access_token, &query, page, &limit.to_string()).await?;
        let listed_in = if folder == ROOT { None } else { Some(folder) };
        let entries = files.iter().map(|f| drive_entry(f, listed_in, false)).collect::<Result<_, _>>()?;
        Ok(EntryPage { entries, next })
    }

    fn upload_rules(&self) -> UploadRules {
        UPLOAD_RULES
    }

    /// `PATCH …?uploadType=media` for a new version, `POST …?uploadType=multipart` (metadata,
    /// then the bytes) for a new file.
    async fn upload_small(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        body: bytes::Bytes,
    ) -> Result<RemoteItem, ProviderError> {
        self.check_base(access_token, target).await?;
        let request = match target.replace {
            Some(replace) => bearer(self.transfer.patch(self.upload_url(Some(replace.id), "media")?), access_token)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body),
            None => {
                let metadata = json!({ "name": target.name, "parents": [target.parent_id] });
                let mut related = Vec::with_capacity(body.len() + 512);
                related.extend_from_slice(
                    format!(
                        "--{MULTIPART_BOUNDARY}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n\
                         --{MULTIPART_BOUNDARY}\r\nContent-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                related.extend_from_slice(&body);
                related.extend_from_slice(format!("\r\n--{MULTIPART_BOUNDARY}--").as_bytes());
                bearer(self.transfer.post(self.upload_url(None, "multipart")?), access_token)
                    .header(reqwest::header::CONTENT_TYPE, format!("multipart/related; boundary={MULTIPART_BOUNDARY}"))
                    .body(related)
            }
        };
        drive_uploaded(&Answer::read(send(request).await?).await?)
    }

    /// A resumable session: `POST` (new file, its metadata) or `PATCH` (new version); the
    /// session URI is the answer's `Location`.
    async fn start_upload(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
    ) -> Result<UploadSession, ProviderError> {
        self.check_base(access_token, target).await?;
        let request = match target.replace {
            Some(replace) => {
                bearer(self.oauth.http.patch(self.upload_url(Some(replace.id), "resumable")?), access_token)
                    .json(&json!({}))
            }
            None => bearer(self.oauth.http.post(self.upload_url(None, "resumable")?), access_token)
                .json(&json!({ "name": target.name, "parents": [target.parent_id] })),
        };
        let request = request
            .header("X-Upload-Content-Type", "application/octet-stream")
            .header("X-Upload-Content-Length", target.size.to_string());
        let answer = Answer::read(send(request).await?).await?;
        if !answer.status.is_success() {
            return Err(drive_uploaded(&answer).err().unwrap_or_else(|| answer.error()));
        }
        let location = answer
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ProviderError::Malformed("a Drive resumable upload has no Location".to_owned()))?;
        let session =
            UploadSession { handle: location.to_owned(), part_size: None, expires_at: None, parts: Vec::new() };
        self.session_url(&session)?;
        Ok(session)
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
        let range = format!("bytes {offset}-{}/{}", offset + part.len() as u64 - 1, target.size);
        let request = bearer(self.transfer.put(self.session_url(session)?), access_token)
            .header(reqwest::header::CONTENT_RANGE, range)
            .body(part);
        let answer = Answer::read(send(request).await?).await?;
        match answer.status.as_u16() {
            308 => received_through(&answer).map(Sent::Next),
            200 | 201 => drive_uploaded(&answer).map(|item| Sent::Done(Box::new(item))),
            404 | 410 => Err(ProviderError::UploadSessionGone),
            _ => Err(answer.error()),
        }
    }

    /// The status query: `PUT` without bytes, `Content-Range: bytes */{size}`.
    async fn upload_offset(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        session: &UploadSession,
    ) -> Result<u64, ProviderError> {
        let answer = self.session_status(access_token, target, session).await?;
        match answer.status.as_u16() {
            308 => received_through(&answer),
            200 | 201 => Ok(target.size),
            404 | 410 => Err(ProviderError::UploadSessionGone),
            _ => Err(answer.error()),
        }
    }

    /// A session that has every byte already ended with the last of them; if that answer was
    /// lost, the status query gives the file.
    async fn finish_upload(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        session: &UploadSession,
        _whole: &WholeFile,
    ) -> Result<RemoteItem, ProviderError> {
        let answer = self.session_status(access_token, target, session).await?;
        match answer.status.as_u16() {
            200 | 201 => drive_uploaded(&answer),
            404 | 410 => Err(ProviderError::UploadSessionGone),
            _ => Err(answer.error()),
        }
    }

    /// Drive has no conditional delete: the head revision is compared first, then the file is
    /// moved to the trash (`trashed: true`), from which it can be restored.
    async fn delete_file(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        base: &Replace<'_>,
    ) -> Result<(), ProviderError> {
        match self.head_revision(access_token, base.id).await? {
            None => return Ok(()),
            Some(head) if base.revision.is_some_and(|rev| rev != head) => {
                return Err(ProviderError::Conflict("the file's head revision is not the base's".to_owned()));
            }
            Some(_) => {}
        }
        let url = self.files(&[path_id(base.id, "Drive file id")?]);
        let request = bearer(self.oauth.http.patch(url), access_token).json(&json!({ "trashed": true }));
        let answer = Answer::read(send(request).await?).await?;
        match answer.status.as_u16() {
            200..=299 | 404 => Ok(()),
            _ => Err(answer.error()),
        }
    }

    async fn cancel_upload(&self, access_token: &SecretString, session: &UploadSession) -> Result<(), ProviderError> {
        // Drive answers a cancelled session with 499; whatever it answers, the session expires.
        let _ = send(bearer(self.transfer.delete(self.session_url(session)?), access_token)).await?;
        Ok(())
    }

    /// `files.get`; a file in the trash counts as gone.
    async fn item(
        &self,
        access_token: &SecretString,
        _metadata: Option<&Value>,
        id: &str,
    ) -> Result<Option<Entry>, ProviderError> {
        let mut url = self.files(&[path_id(id, "Drive file id")?]);
        url.query_pairs_mut().append_pair("fields", FILE_FIELDS);
        let answer = self.get_answer(access_token, url).await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let file: Value = answer.json("Drive file")?;
        if file.get("trashed").and_then(Value::as_bool) == Some(true) {
            return Ok(None);
        }
        // `root` is answered with My Drive's real id.
        drive_entry(&file, None, id == ROOT).map(Some)
    }

    /// Drive lets one folder hold two items of one name, so an existing item of that name is
    /// looked up first and answered instead of a twin.
    async fn create_folder(
        &self,
        access_token: &SecretString,
        _metadata: Option<&Value>,
        parent: Option<&Entry>,
        name: &str,
    ) -> Result<Created, ProviderError> {
        let folder = parent.map_or(ROOT, |p| p.item.id.as_str());
        let query =
            format!("name = '{}' and '{}' in parents and trashed = false", query_literal(name), query_literal(folder));
        let (existing, _) = self.list(access_token, &query, None, "1").await?;
        if let Some(file) = existing.first() {
            return Ok(Created::Exists { id: required_str(file, "id", "Drive file")? });
        }
        let mut url = self.files(&[]);
        url.query_pairs_mut().append_pair("fields", FILE_FIELDS);
        let body = json!({ "name": name, "mimeType": FOLDER_MIME, "parents": [folder] });
        let request = bearer(self.oauth.http.post(url), access_token).json(&body);
        let file: Value = json_response(send(request).await?, "Drive file").await?;
        Ok(Created::Folder(Box::new(drive_entry(&file, Some(folder), false)?)))
    }

    fn watch_scope(&self) -> WatchScope {
        WatchScope::Connection(SubscriptionKind::DriveChannel)
    }

    /// A `changes.watch` channel from a start page token taken now: notifications for every
    /// change of the account's feed, which the worker filters by folder.
    async fn watch(&self, access_token: &SecretString, request: &WatchRequest<'_>) -> Result<Watching, ProviderError> {
        let token: Value = self
            .get_answer(access_token, self.drive(&["changes", "startPageToken"]))
            .await?
            .json("Drive start page token")?;
        let page_token = required_str(&token, "startPageToken", "Drive start page token")?;
        let mut url = self.drive(&["changes", "watch"]);
        url.query_pairs_mut().append_pair("pageToken", &page_token).append_pair("includeItemsFromAllDrives", "true");
        let body = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "type": "web_hook",
            "address": request.address,
            "token": request.secret.expose_secret(),
            "expiration": request.expires_at.timestamp_millis().to_string(),
        });
        let channel: Value =
            json_response(send(bearer(self.oauth.http.post(url), access_token).json(&body)).await?, "Drive channel")
                .await?;
        let expires_at = str_field(&channel, "expiration")
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(chrono::DateTime::from_timestamp_millis);
        Ok(Watching {
            provider_subscription_id: required_str(&channel, "id", "Drive channel")?,
            provider_resource: Some(required_str(&channel, "resourceId", "Drive channel")?),
            expires_at,
        })
    }

    /// A channel cannot be extended: a new one, then the old one stopped (a stop that fails
    /// leaves the old channel to expire by itself; its notifications name a channel no longer
    /// stored, and are acknowledged and dropped).
    async fn renew_watch(
        &self,
        access_token: &SecretString,
        existing: &Watched<'_>,
        request: &WatchRequest<'_>,
    ) -> Result<Watching, ProviderError> {
        let renewed = self.watch(access_token, request).await?;
        if let Err(e) = self.unwatch(access_token, existing).await {
            tracing::warn!(error = %e, "the replaced Drive channel was not stopped; it expires by itself");
        }
        Ok(renewed)
    }

    async fn unwatch(&self, access_token: &SecretString, existing: &Watched<'_>) -> Result<(), ProviderError> {
        let body = json!({ "id": existing.provider_subscription_id, "resourceId": existing.provider_resource });
        let request = bearer(self.oauth.http.post(self.drive(&["channels", "stop"])), access_token).json(&body);
        expect_success(send(request).await?, &["notFound"]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_literals_escape_quotes_and_backslashes() {
        assert_eq!(query_literal("1AbC"), "1AbC");
        assert_eq!(query_literal(r"a'b\c"), r"a\'b\\c");
    }
}
