//! OneDrive and SharePoint: the Microsoft identity platform (v2 endpoints) for OAuth and
//! Microsoft Graph v1.0 for identity, shared links and sync. The two differ only in scopes and
//! in what identity records: OneDrive the user's own drive, SharePoint the tenant's root site
//! and its default document library.
//!
//! Sync (research note §1.1, §3.1): the crawl is `/children` with `$top` and `@odata.nextLink`;
//! changes come from `delta`, which OneDrive for Business and SharePoint allow on the drive root
//! only (so their feed covers the whole drive and the worker keeps what is in the folder),
//! while OneDrive Personal scopes it to the folder. The cursor is the whole `@odata.deltaLink`,
//! kept opaque; a 410, or a resync code in the body, is [`ProviderError::ResyncRequired`].
//! Links read back from storage are only followed on the configured Graph host, so a bearer
//! token never goes anywhere else. `/content` answers a 302 to a pre-authenticated URL that is
//! fetched without the token.
//!
//! Uploads (research note §3.1, [`super::upload`]): `PUT …/content` up to 4 MiB, else an upload
//! session whose fragments go to the pre-authenticated `uploadUrl` without the bearer token. A
//! new file is addressed under its parent (`items/{parent-id}:/{name}:/…`) with
//! `conflictBehavior=fail`; a new version by its id with `If-Match` on the base `eTag`.
//!
//! Item ids: an item of the connection's own drive (the one identity recorded) is its plain
//! Graph id; an item of another drive, such as a second SharePoint document library, is
//! `{drive-id}:{item-id}` ([`ItemRef`]), and so is every id listed or changed under it, so a
//! folder configured in that library is crawled, followed and downloaded there. Neither Graph
//! drive ids nor item ids contain a `:`. `root` (or `{drive-id}:root`) names a drive's root.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::browse::child_path;
use super::http::{
    Answer, bearer, download_response, endpoint, expect_success, int_field, json_response, parse_url, path_id,
    preauth_refused, required_str, send, str_field, time_field,
};
use super::notify::{WatchRequest, WatchScope, Watched, Watching};
use super::oauth_client::{OAuthClient, scopes_or};
use super::upload::{Replace, Sent, UploadRules, UploadSession, UploadTarget};
use super::{
    AuthorizeRequest, Change, ChangePage, ChildPage, Clients, Created, CreatedLink, Download, Entry, EntryPage,
    ExistingLink, Identity, ItemKind, Library, LinkTarget, Pkce, Provider, ProviderError, RefreshTokenRotation,
    RemoteItem, SharedLinkRequest, Site, SitePage, SyncScope, TokenSet, password_unsupported, share_type_unsupported,
};
use crate::config::ProviderConfig;
use crate::content_hash::{HashAlg, normalize};
use crate::db::{ProviderType, ShareType, SubscriptionKind};

const AUTHORITY: &str = "https://login.microsoftonline.com";
const GRAPH: &str = "https://graph.microsoft.com";
const DEFAULT_TENANT: &str = "common";
/// Without it the token endpoint issues no refresh token.
const OFFLINE_ACCESS: &str = "offline_access";
const ONEDRIVE_SCOPES: &[&str] = &[OFFLINE_ACCESS, "User.Read", "Files.ReadWrite"];
const SHAREPOINT_SCOPES: &[&str] = &[OFFLINE_ACCESS, "User.Read", "Sites.ReadWrite.All", "Files.ReadWrite.All"];
/// The driveItem properties sync reads, for `/children` and `delta` alike.
const ITEM_SELECT: &str =
    "id,name,size,eTag,createdDateTime,lastModifiedDateTime,parentReference,file,folder,deleted,root,package";
/// What the picker shows of an item: the sync fields and the parent's path.
const BROWSE_SELECT: &str =
    "id,name,size,eTag,createdDateTime,lastModifiedDateTime,parentReference,file,folder,root,package";
/// Children per page; Graph's default is 200.
const CHILDREN_PAGE: &str = "1000";
/// Pages of a site's drives read before the list is answered as it is.
const MAX_LIBRARY_PAGES: usize = 10;
/// The error codes of an expired delta token: the two the delta reference documents, and the
/// one seen in a live 410 body (OneDrive/onedrive-api-docs issue #1356).
const RESYNC_CODES: &[&str] = &["resyncChangesApplyDifferences", "resyncChangesUploadDifferences", "resyncRequired"];

#[derive(Debug)]
pub(crate) struct Microsoft {
    kind: ProviderType,
    oauth: OAuthClient,
    /// File bodies (downloads, upload fragments): bounded by silence, not by total time.
    transfer: reqwest::Client,
    graph: Url,
    scopes: Vec<String>,
    scope_param: String,
}

impl Microsoft {
    pub fn new(kind: ProviderType, config: &ProviderConfig, http: &Clients) -> Result<Microsoft, String> {
        let tenant = config.tenant.as_deref().unwrap_or(DEFAULT_TENANT);
        let authority = endpoint(&parse_url(AUTHORITY, "authority")?, &[tenant, "oauth2", "v2.0"]);
        let oauth = OAuthClient::new(
            config,
            http.api.clone(),
            endpoint(&authority, &["authorize"]).as_str(),
            endpoint(&authority, &["token"]).as_str(),
        )?;
        let defaults = if kind == ProviderType::SharePoint { SHAREPOINT_SCOPES } else { ONEDRIVE_SCOPES };
        let mut scopes = scopes_or(config, defaults);
        if !scopes.iter().any(|s| s == OFFLINE_ACCESS) {
            scopes.insert(0, OFFLINE_ACCESS.to_owned());
        }
        let graph = parse_url(config.api_base_url.as_deref().unwrap_or(GRAPH), "api_base_url")?;
        let scope_param = scopes.join(" ");
        Ok(Microsoft { kind, oauth, transfer: http.transfer.clone(), graph, scopes, scope_param })
    }

    async fn get(
        &self,
        access_token: &SecretString,
        path: &[&str],
        select: &str,
        what: &str,
    ) -> Result<Value, ProviderError> {
        let request =
            bearer(self.oauth.http.get(endpoint(&self.graph, path)), access_token).query(&[("$select", select)]);
        json_response(send(request).await?, what).await
    }

    /// `/drives/{drive-id}/items/{item-id}` (or `/root`) of a link's item.
    fn item_path<'a>(target: &'a LinkTarget<'a>) -> Result<Vec<&'a str>, ProviderError> {
        let item = ItemRef::parse(target.item_id);
        let mut path = Self::drive_path(target.connection_metadata, item.drive)?;
        path.extend(item.segments()?);
        Ok(path)
    }

    /// `/drives/{drive-id}` of the drive named (an item's own), else of the drive recorded at
    /// connection time, else `/me/drive`.
    fn drive_path<'a>(metadata: Option<&'a Value>, drive: Option<&'a str>) -> Result<Vec<&'a str>, ProviderError> {
        Ok(match drive.or_else(|| own_drive(metadata)) {
            Some(drive) => vec!["v1.0", "drives", path_id(drive, "drive id")?],
            None => vec!["v1.0", "me", "drive"],
        })
    }

    /// One page of `/children` of `folder` (its raw driveItems) and the next page's link.
    async fn children(
        &self,
        access_token: &SecretString,
        metadata: Option<&Value>,
        folder: ItemRef<'_>,
        page: Option<&str>,
        top: &str,
    ) -> Result<(Vec<Value>, Option<String>), ProviderError> {
        let url = match page {
            Some(link) => self.graph_link(link).ok_or_else(|| {
                ProviderError::Malformed("a Graph children page link is not on the Graph host".to_owned())
            })?,
            None => {
                let mut path = Self::drive_path(metadata, folder.drive)?;
                path.extend(folder.segments()?);
                path.push("children");
                let mut url = endpoint(&self.graph, &path);
                url.query_pairs_mut().append_pair("$top", top).append_pair("$select", ITEM_SELECT);
                url
            }
        };
        let mut page: Value = self.get_answer(access_token, url).await?.json("Graph children")?;
        let values = items_of(&mut page, "Graph children")?;
        Ok((values, str_field(&page, "@odata.nextLink").map(str::to_owned)))
    }

    /// A driveItem of the drive `ids` stands for, with its path.
    fn entry(value: &Value, ids: Ids<'_>) -> Result<Option<Entry>, ProviderError> {
        let Some(item) = drive_item(value, ids)? else { return Ok(None) };
        let path = if value.get("root").is_some() {
            Some("/".to_owned())
        } else {
            value
                .get("parentReference")
                .and_then(|p| str_field(p, "path"))
                .and_then(|p| p.split_once("root:"))
                // The path is URL-encoded (`/drive/root:/Festa%20della%20mamma`), being an API
                // path; the item's own name is not.
                .map(|(_, parent)| percent_decode_str(parent).decode_utf8_lossy().into_owned())
                .map(|parent| child_path(if parent.is_empty() { "/" } else { &parent }, &item.name))
        };
        Ok(Some(Entry { item, path }))
    }

    /// `GET` of a driveItem: `None` for a 404 (`itemNotFound`), and for the 400 Graph gives an
    /// id that cannot be one (`invalidRequest`): the ids come from the caller, and either way
    /// there is no such item.
    async fn get_item(
        &self,
        access_token: &SecretString,
        path: &[&str],
        ids: Ids<'_>,
    ) -> Result<Option<Entry>, ProviderError> {
        let mut url = endpoint(&self.graph, path);
        url.query_pairs_mut().append_pair("$select", BROWSE_SELECT);
        let answer = self.get_answer(access_token, url).await?;
        let invalid_id =
            answer.status == reqwest::StatusCode::BAD_REQUEST && answer.code().as_deref() == Some("invalidRequest");
        if answer.status == reqwest::StatusCode::NOT_FOUND || invalid_id {
            return Ok(None);
        }
        let value: Value = answer.json("Graph driveItem")?;
        Self::entry(&value, ids)
    }

    /// A link Graph handed out earlier (`@odata.nextLink`, `@odata.deltaLink`), if it is on the
    /// configured Graph host: the bearer token goes to no other.
    fn graph_link(&self, link: &str) -> Option<Url> {
        Url::parse(link).ok().filter(|url| url.origin() == self.graph.origin())
    }

    /// A GET of a Graph URL whose failure body is looked at for a resync signal first.
    async fn get_answer(&self, access_token: &SecretString, url: Url) -> Result<Answer, ProviderError> {
        Answer::read(send(bearer(self.oauth.http.get(url), access_token)).await?).await
    }
}

/// Graph's upload rules (research note §3.1): one request up to 4 MiB (the older documents'
/// limit, which rclone keeps), fragments a multiple of 320 KiB and under 60 MiB.
const UPLOAD_RULES: UploadRules =
    UploadRules { simple_max: 4 << 20, session_min: 0, part_multiple: 327_680, part_max: (60 << 20) - 1 };

impl Microsoft {
    /// The path of an upload's target followed by `last` (`content`, `createUploadSession`):
    /// `items/{id}/…` for a new version, `items/{parent-id}:/{name}:/…` for a new file; and
    /// the ids of the drive it is in.
    fn upload_path<'a>(
        metadata: Option<&'a Value>,
        target: &'a UploadTarget<'a>,
        last: &'a str,
    ) -> Result<(Vec<String>, Ids<'a>), ProviderError> {
        let (item, named) = match &target.replace {
            Some(replace) => (ItemRef::parse(replace.id), None),
            None => (ItemRef::parse(target.parent_id), Some(target.name)),
        };
        let mut path: Vec<String> = Self::drive_path(metadata, item.drive)?.into_iter().map(str::to_owned).collect();
        let mut segments: Vec<String> = item.segments()?.into_iter().map(str::to_owned).collect();
        if let Some(name) = named {
            let parent = segments.pop().unwrap_or_default();
            segments.extend([format!("{parent}:"), format!("{name}:")]);
        }
        path.extend(segments);
        path.push(last.to_owned());
        Ok((path, Ids::new(metadata, item.drive)))
    }

    /// A session's `uploadUrl`, if it may be followed: HTTPS, or HTTP when Graph itself is
    /// configured on HTTP (a local fake). The bearer token never goes to it.
    fn session_url(&self, session: &UploadSession) -> Result<Url, ProviderError> {
        let url = Url::parse(&session.handle)
            .map_err(|_| ProviderError::Malformed("a Graph uploadUrl is not a URL".to_owned()))?;
        match (self.graph.scheme(), url.scheme()) {
            (_, "https") | ("http", "http") => Ok(url),
            _ => Err(ProviderError::Malformed("a Graph uploadUrl has a scheme that is not followed".to_owned())),
        }
    }

    /// The file a finished write answered, or why it was refused.
    fn written(answer: &Answer, ids: Ids<'_>) -> Result<RemoteItem, ProviderError> {
        if let Some(conflict) = write_conflict(answer) {
            return Err(conflict);
        }
        let value: Value = answer.json("Graph driveItem")?;
        drive_item(&value, ids)?
            .ok_or_else(|| ProviderError::Malformed("the uploaded Graph item is no file".to_owned()))
    }
}

/// A write refused because of what the provider holds: a precondition (`If-Match`) failed or
/// a name is taken (`conflictBehavior=fail`), or the file to replace is gone.
fn write_conflict(answer: &Answer) -> Option<ProviderError> {
    match answer.status.as_u16() {
        409 | 412 => Some(ProviderError::Conflict(format!(
            "Graph answered {} ({})",
            answer.status.as_u16(),
            answer.code().unwrap_or_default()
        ))),
        404 => Some(ProviderError::Conflict("the file is no longer at the provider".to_owned())),
        _ => None,
    }
}

/// The first byte of an upload session's `nextExpectedRanges` (`["12345-"]`,
/// `["0-327679", "655360-"]`); all received when the list is empty.
fn next_expected(value: &Value, total: u64) -> Result<u64, ProviderError> {
    let Some(ranges) = value.get("nextExpectedRanges").and_then(Value::as_array) else {
        return Err(ProviderError::Malformed("a Graph upload session has no nextExpectedRanges".to_owned()));
    };
    match ranges.first().and_then(Value::as_str) {
        None => Ok(total),
        Some(range) => range
            .split('-')
            .next()
            .and_then(|start| start.trim().parse().ok())
            .ok_or_else(|| ProviderError::Malformed("a Graph nextExpectedRanges entry is not a range".to_owned())),
    }
}

/// A delta answer that asks for a fresh enumeration: a 410 on a delta URL (whatever its body),
/// or one of the resync codes anywhere in the body (where Graph puts it is not documented).
fn delta_resync(answer: &Answer) -> Option<ProviderError> {
    if answer.status.is_success() {
        return None;
    }
    let body = String::from_utf8_lossy(&answer.body);
    let code = RESYNC_CODES.iter().find(|code| body.contains(*code));
    match (answer.status.as_u16(), code) {
        (_, Some(code)) => Some(ProviderError::ResyncRequired(format!("Graph delta answered {code}"))),
        (410, None) => Some(ProviderError::ResyncRequired("Graph delta answered 410 Gone".to_owned())),
        _ => None,
    }
}

/// Graph's longest subscription on a driveItem: 42,300 minutes (under 30 days).
const MAX_SUBSCRIPTION: chrono::Duration = chrono::Duration::minutes(42_300);
/// A subscription (or its item) Graph no longer has.
const GRAPH_GONE: &[&str] = &["itemNotFound", "ResourceNotFound", "NotFound"];

/// The expiry to ask for: the one wanted, within Graph's limit from now.
fn graph_expiry(wanted: DateTime<Utc>) -> String {
    let latest = Utc::now() + MAX_SUBSCRIPTION - chrono::Duration::minutes(5);
    wanted.min(latest).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A Graph `subscription` answer.
fn graph_watching(value: &Value, resource: Option<String>) -> Result<Watching, ProviderError> {
    Ok(Watching {
        provider_subscription_id: required_str(value, "id", "Graph subscription")?,
        provider_resource: str_field(value, "resource").map(str::to_owned).or(resource),
        expires_at: time_field(value, "expirationDateTime"),
    })
}

/// The drive identity recorded for the connection (`connection_metadata.drive_id`).
fn own_drive(metadata: Option<&Value>) -> Option<&str> {
    metadata.and_then(|m| str_field(m, "drive_id"))
}

/// An item id as this provider hands them out (see the module's doc): the drive when it is
/// not the connection's own, and the item within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ItemRef<'a> {
    drive: Option<&'a str>,
    item: &'a str,
}

impl<'a> ItemRef<'a> {
    fn parse(id: &'a str) -> ItemRef<'a> {
        match id.split_once(':') {
            Some((drive, item)) if !drive.is_empty() && !item.is_empty() => ItemRef { drive: Some(drive), item },
            _ => ItemRef { drive: None, item: id },
        }
    }

    /// `items/{id}`, or `root` for the drive's root.
    fn segments(self) -> Result<Vec<&'a str>, ProviderError> {
        Ok(if self.item == "root" { vec!["root"] } else { vec!["items", path_id(self.item, "drive item id")?] })
    }
}

/// Where items of a call come from: the drive the call addressed, told apart from the
/// connection's own so the ids handed out carry it only when needed.
#[derive(Debug, Clone, Copy)]
struct Ids<'a> {
    /// The other drive, or `None` for the connection's own.
    drive: Option<&'a str>,
}

impl<'a> Ids<'a> {
    fn new(metadata: Option<&Value>, drive: Option<&'a str>) -> Ids<'a> {
        let own = own_drive(metadata);
        Ids { drive: drive.filter(|d| own.is_none_or(|own| !own.eq_ignore_ascii_case(d))) }
    }

    fn id(self, graph_id: &str) -> String {
        match self.drive {
            Some(drive) => format!("{drive}:{graph_id}"),
            None => graph_id.to_owned(),
        }
    }
}

/// A driveItem with a `file` or `folder` facet (others, such as OneNote packages, are not
/// synced: `None`).
fn drive_item(value: &Value, ids: Ids<'_>) -> Result<Option<RemoteItem>, ProviderError> {
    let file = value.get("file");
    let kind = match (file, value.get("folder")) {
        (Some(_), _) => ItemKind::File,
        (None, Some(_)) => ItemKind::Folder,
        (None, None) => return Ok(None),
    };
    let what = "Graph driveItem";
    let quick_xor = file.and_then(|f| f.get("hashes")).and_then(|h| str_field(h, "quickXorHash"));
    Ok(Some(RemoteItem {
        id: ids.id(&required_str(value, "id", what)?),
        name: required_str(value, "name", what)?,
        kind,
        parent_id: value.get("parentReference").and_then(|p| str_field(p, "id")).map(|p| ids.id(p)),
        path_lower: None,
        path_display: None,
        size: if kind == ItemKind::File { int_field(value, "size") } else { None },
        hash: quick_xor.and_then(|h| normalize(HashAlg::QuickXor, h)),
        revision: str_field(value, "eTag").map(str::to_owned),
        mime_type: file.and_then(|f| str_field(f, "mimeType")).map(str::to_owned),
        created_at: time_field(value, "createdDateTime"),
        modified_at: time_field(value, "lastModifiedDateTime"),
        downloadable: kind == ItemKind::File,
    }))
}

/// The `value` array of a collection page, taken out of it.
fn items_of(page: &mut Value, what: &str) -> Result<Vec<Value>, ProviderError> {
    match page.get_mut("value").map(Value::take) {
        Some(Value::Array(items)) => Ok(items),
        _ => Err(ProviderError::Malformed(format!("{what} has no `value`"))),
    }
}

#[async_trait]
impl Provider for Microsoft {
    fn provider_type(&self) -> ProviderType {
        self.kind
    }

    fn scopes(&self) -> &[String] {
        &self.scopes
    }

    fn uses_pkce(&self) -> bool {
        true
    }

    fn refresh_token_rotation(&self) -> RefreshTokenRotation {
        RefreshTokenRotation::Rotates
    }

    fn expires_links_natively(&self) -> bool {
        true
    }

    /// Graph takes a link password on OneDrive Personal drives only.
    fn supports_link_password(&self) -> bool {
        self.kind == ProviderType::OneDrive
    }

    fn authorization_url(&self, request: &AuthorizeRequest<'_>) -> Result<String, ProviderError> {
        self.oauth.authorization_url(request, &self.scopes, true, &[("response_mode", "query")])
    }

    async fn exchange_code(&self, code: &str, pkce: &Pkce, redirect_uri: &str) -> Result<TokenSet, ProviderError> {
        self.oauth.exchange_code(code, Some(pkce), Some(redirect_uri), &[("scope", &self.scope_param)]).await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError> {
        self.oauth.refresh(refresh_token, &[("scope", &self.scope_param)]).await
    }

    async fn identity(&self, access_token: &SecretString) -> Result<Identity, ProviderError> {
        let me = self.get(access_token, &["v1.0", "me"], "id,displayName,mail,userPrincipalName", "Graph user").await?;
        let provider_user_id = required_str(&me, "id", "Graph user")?;
        let email = str_field(&me, "mail").or_else(|| str_field(&me, "userPrincipalName")).map(str::to_owned);
        let display_name = str_field(&me, "displayName").map(str::to_owned);

        let metadata = if self.kind == ProviderType::SharePoint {
            let site =
                self.get(access_token, &["v1.0", "sites", "root"], "id,webUrl,displayName", "SharePoint site").await?;
            let drive =
                self.get(access_token, &["v1.0", "sites", "root", "drive"], "id,driveType", "SharePoint drive").await?;
            json!({
                "account_type": "business",
                "site_id": required_str(&site, "id", "SharePoint site")?,
                "site_url": str_field(&site, "webUrl"),
                "site_name": str_field(&site, "displayName"),
                "drive_id": required_str(&drive, "id", "SharePoint drive")?,
                "drive_type": str_field(&drive, "driveType"),
            })
        } else {
            let drive = self.get(access_token, &["v1.0", "me", "drive"], "id,driveType", "OneDrive drive").await?;
            let drive_type = str_field(&drive, "driveType");
            json!({
                "account_type": if drive_type == Some("personal") { "personal" } else { "business" },
                "drive_id": required_str(&drive, "id", "OneDrive drive")?,
                "drive_type": drive_type,
            })
        };
        Ok(Identity { provider_user_id, email, display_name, metadata })
    }

    /// The identity platform has no revocation endpoint for a single grant: the refresh token is
    /// simply forgotten (the user can remove the app at myapps / account.live.com).
    async fn revoke(&self, _access: &SecretString, _refresh: Option<&SecretString>) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn create_shared_link(
        &self,
        access_token: &SecretString,
        target: &LinkTarget<'_>,
        request: &SharedLinkRequest,
    ) -> Result<CreatedLink, ProviderError> {
        let link_type = match request.share_type {
            // A view link lets anyone download the file; Graph has no separate download link.
            ShareType::View | ShareType::Download => "view",
            ShareType::Edit => "edit",
            ShareType::Comment => return Err(share_type_unsupported(self.kind, request.share_type, "drive item")),
        };
        let mut body = json!({ "type": link_type, "scope": "anonymous" });
        if let Some(at) = request.expires_at {
            body["expirationDateTime"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        if let Some(password) = &request.password {
            let drive_type = target.connection_metadata.and_then(|m| str_field(m, "drive_type"));
            if !self.supports_link_password() || drive_type.is_some_and(|t| t != "personal") {
                return Err(password_unsupported(self.kind));
            }
            body["password"] = json!(password.expose_secret());
        }
        let mut path = Self::item_path(target)?;
        path.push("createLink");
        let request = bearer(self.oauth.http.post(endpoint(&self.graph, &path)), access_token).json(&body);
        let permission: Value = json_response(send(request).await?, "Graph permission").await?;
        let share_url = permission
            .get("link")
            .and_then(|l| str_field(l, "webUrl"))
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::Malformed("Graph permission has no `link.webUrl`".to_owned()))?;
        Ok(CreatedLink {
            provider_share_id: Some(required_str(&permission, "id", "Graph permission")?),
            share_url,
            expires_at: time_field(&permission, "expirationDateTime"),
        })
    }

    async fn delete_shared_link(
        &self,
        access_token: &SecretString,
        target: &LinkTarget<'_>,
        link: &ExistingLink<'_>,
    ) -> Result<(), ProviderError> {
        let permission = link.provider_share_id.ok_or_else(|| {
            ProviderError::Unsupported(format!(
                "a {} link is deleted by its permission id, and none is stored",
                self.kind
            ))
        })?;
        let mut path = Self::item_path(target)?;
        path.extend(["permissions", path_id(permission, "permission id")?]);
        let request = bearer(self.oauth.http.delete(endpoint(&self.graph, &path)), access_token);
        expect_success(send(request).await?, &["itemNotFound"]).await
    }

    /// `delta?token=latest`: on the drive root (Business, SharePoint), or on the folder itself
    /// (Personal, where delta can be scoped). Its `@odata.deltaLink` is the cursor.
    async fn start_cursor(&self, access_token: &SecretString, scope: &SyncScope<'_>) -> Result<String, ProviderError> {
        let personal = scope.connection_metadata.and_then(|m| str_field(m, "drive_type")) == Some("personal");
        let folder = ItemRef::parse(scope.folder_id);
        let mut path = Self::drive_path(scope.connection_metadata, folder.drive)?;
        if personal {
            path.extend(folder.segments()?);
            path.push("delta");
        } else {
            path.extend(["root", "delta"]);
        }
        let mut url = endpoint(&self.graph, &path);
        url.query_pairs_mut().append_pair("token", "latest").append_pair("$select", ITEM_SELECT);
        let answer = self.get_answer(access_token, url).await?;
        if let Some(resync) = delta_resync(&answer) {
            return Err(resync);
        }
        let page: Value = answer.json("Graph delta")?;
        required_str(&page, "@odata.deltaLink", "Graph delta")
    }

    async fn list_children(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        folder_id: &str,
        page: Option<&str>,
    ) -> Result<ChildPage, ProviderError> {
        // A subfolder's id carries its drive when the synced folder's does.
        let folder = ItemRef::parse(folder_id);
        let drive = folder.drive.or(ItemRef::parse(scope.folder_id).drive);
        let folder = ItemRef { drive, ..folder };
        let (values, next) =
            self.children(access_token, scope.connection_metadata, folder, page, CHILDREN_PAGE).await?;
        let ids = Ids::new(scope.connection_metadata, drive);
        let mut items = Vec::new();
        for value in &values {
            items.extend(drive_item(value, ids)?);
        }
        Ok(ChildPage { items, next })
    }

    async fn changes(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        cursor: &str,
    ) -> Result<ChangePage, ProviderError> {
        let ids = Ids::new(scope.connection_metadata, ItemRef::parse(scope.folder_id).drive);
        // A stored link that is not a Graph URL (or not on the configured host) cannot be
        // followed; a new cursor can be taken.
        let url = self.graph_link(cursor).ok_or_else(|| {
            ProviderError::ResyncRequired("the stored Graph delta link is not a link on the Graph host".to_owned())
        })?;
        let answer = self.get_answer(access_token, url).await?;
        if let Some(resync) = delta_resync(&answer) {
            return Err(resync);
        }
        let mut page: Value = answer.json("Graph delta")?;
        let mut changes = Vec::new();
        for value in items_of(&mut page, "Graph delta")? {
            if value.get("deleted").is_some() {
                changes.push(Change::Deleted {
                    id: Some(ids.id(&required_str(&value, "id", "Graph deleted item")?)),
                    path_lower: None,
                });
            } else if let Some(item) = drive_item(&value, ids)? {
                changes.push(Change::Upsert(item));
            }
        }
        Ok(ChangePage {
            changes,
            next: str_field(&page, "@odata.nextLink").map(str::to_owned),
            cursor: str_field(&page, "@odata.deltaLink").map(str::to_owned),
        })
    }

    /// `/content` answers 302 with a pre-authenticated URL, fetched without the bearer token.
    async fn download(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        item: &RemoteItem,
    ) -> Result<Download, ProviderError> {
        if item.kind != ItemKind::File {
            return Err(ProviderError::Unsupported(format!(
                "Graph item `{}` is a folder: no bytes to download",
                item.id
            )));
        }
        let file = ItemRef::parse(&item.id);
        let mut path = Self::drive_path(scope.connection_metadata, file.drive)?;
        path.extend(file.segments()?);
        path.push("content");
        let response = send(bearer(self.transfer.get(endpoint(&self.graph, &path)), access_token)).await?;
        download_response(&self.transfer, response).await
    }

    fn upload_rules(&self) -> UploadRules {
        UPLOAD_RULES
    }

    async fn upload_small(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        body: bytes::Bytes,
    ) -> Result<RemoteItem, ProviderError> {
        let (path, ids) = Self::upload_path(scope.connection_metadata, target, "content")?;
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let mut url = endpoint(&self.graph, &path);
        if target.replace.is_none() {
            url.query_pairs_mut().append_pair("@microsoft.graph.conflictBehavior", "fail");
        }
        let mut request = bearer(self.transfer.put(url), access_token);
        if let Some(revision) = target.replace.and_then(|r| r.revision) {
            request = request.header(reqwest::header::IF_MATCH, revision);
        }
        let request = request.header(reqwest::header::CONTENT_TYPE, "application/octet-stream").body(body);
        Self::written(&Answer::read(send(request).await?).await?, ids)
    }

    async fn start_upload(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
    ) -> Result<UploadSession, ProviderError> {
        let (path, _) = Self::upload_path(scope.connection_metadata, target, "createUploadSession")?;
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let behavior = if target.replace.is_some() { "replace" } else { "fail" };
        let body = json!({ "item": { "@microsoft.graph.conflictBehavior": behavior } });
        let mut request = bearer(self.oauth.http.post(endpoint(&self.graph, &path)), access_token).json(&body);
        if let Some(revision) = target.replace.and_then(|r| r.revision) {
            request = request.header(reqwest::header::IF_MATCH, revision);
        }
        let answer = Answer::read(send(request).await?).await?;
        if let Some(conflict) = write_conflict(&answer) {
            return Err(conflict);
        }
        let value: Value = answer.json("Graph upload session")?;
        let session = UploadSession {
            handle: required_str(&value, "uploadUrl", "Graph upload session")?,
            part_size: None,
            expires_at: time_field(&value, "expirationDateTime"),
            parts: Vec::new(),
        };
        self.session_url(&session)?;
        Ok(session)
    }

    /// A fragment `PUT` to the `uploadUrl`, with `Content-Range` and no `Authorization`.
    async fn upload_part(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        session: &UploadSession,
        offset: u64,
        part: bytes::Bytes,
    ) -> Result<Sent, ProviderError> {
        let url = self.session_url(session)?;
        let end = offset + part.len() as u64 - 1;
        let range = format!("bytes {offset}-{end}/{}", target.size);
        let request = self.transfer.put(url).header(reqwest::header::CONTENT_RANGE, range).body(part);
        let answer = Answer::read(send(request).await?).await?;
        match answer.status.as_u16() {
            202 => {
                let value: Value = serde_json::from_slice(&answer.body)
                    .map_err(|e| super::http::malformed("Graph upload session", &e))?;
                Ok(Sent::Next(next_expected(&value, target.size)?))
            }
            200 | 201 | 409 | 412 => {
                let (_, ids) = Self::upload_path(scope.connection_metadata, target, "content")?;
                Self::written(&answer, ids).map(|item| Sent::Done(Box::new(item)))
            }
            404 => Err(ProviderError::UploadSessionGone),
            // Graph already has that range: ask where it stands.
            416 => self.upload_offset(access_token, scope, target, session).await.map(Sent::Next),
            _ => Err(preauth_refused(answer.status, &answer.headers, "upload session")),
        }
    }

    async fn upload_offset(
        &self,
        _access_token: &SecretString,
        _scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        session: &UploadSession,
    ) -> Result<u64, ProviderError> {
        let answer = Answer::read(send(self.transfer.get(self.session_url(session)?)).await?).await?;
        match answer.status.as_u16() {
            200 => {
                let value: Value = serde_json::from_slice(&answer.body)
                    .map_err(|e| super::http::malformed("Graph upload session", &e))?;
                next_expected(&value, target.size)
            }
            404 => Err(ProviderError::UploadSessionGone),
            _ => Err(preauth_refused(answer.status, &answer.headers, "upload session")),
        }
    }

    /// `DELETE` with `If-Match` on the base `eTag` (the item goes to the recycle bin).
    async fn delete_file(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        base: &Replace<'_>,
    ) -> Result<(), ProviderError> {
        let item = ItemRef::parse(base.id);
        let mut path = Self::drive_path(scope.connection_metadata, item.drive)?;
        path.extend(item.segments()?);
        let mut request = bearer(self.oauth.http.delete(endpoint(&self.graph, &path)), access_token);
        if let Some(etag) = base.revision {
            request = request.header(reqwest::header::IF_MATCH, etag);
        }
        let answer = Answer::read(send(request).await?).await?;
        match answer.status.as_u16() {
            200..=299 | 404 => Ok(()),
            409 | 412 => Err(write_conflict(&answer).unwrap_or_else(|| answer.error())),
            _ => Err(answer.error()),
        }
    }

    async fn cancel_upload(&self, _access_token: &SecretString, session: &UploadSession) -> Result<(), ProviderError> {
        let answer = Answer::read(send(self.transfer.delete(self.session_url(session)?)).await?).await?;
        if answer.status.is_success() || answer.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(preauth_refused(answer.status, &answer.headers, "upload session"))
    }

    async fn browse(
        &self,
        access_token: &SecretString,
        metadata: Option<&Value>,
        parent: Option<&str>,
        page: Option<&str>,
        limit: u16,
    ) -> Result<EntryPage, ProviderError> {
        let folder = ItemRef::parse(parent.unwrap_or("root"));
        let (values, next) = self.children(access_token, metadata, folder, page, &limit.to_string()).await?;
        let ids = Ids::new(metadata, folder.drive);
        let mut entries = Vec::with_capacity(values.len());
        for value in &values {
            entries.extend(Self::entry(value, ids)?);
        }
        Ok(EntryPage { entries, next })
    }

    async fn item(
        &self,
        access_token: &SecretString,
        metadata: Option<&Value>,
        id: &str,
    ) -> Result<Option<Entry>, ProviderError> {
        let item = ItemRef::parse(id);
        let mut path = Self::drive_path(metadata, item.drive)?;
        path.extend(item.segments()?);
        self.get_item(access_token, &path, Ids::new(metadata, item.drive)).await
    }

    /// `POST …/children` failing on a name clash; the clash is answered with the existing
    /// item, read by its path under the parent (`items/{parent-id}:/{name}:`).
    async fn create_folder(
        &self,
        access_token: &SecretString,
        metadata: Option<&Value>,
        parent: Option<&Entry>,
        name: &str,
    ) -> Result<Created, ProviderError> {
        let folder = ItemRef::parse(parent.map_or("root", |p| p.item.id.as_str()));
        let ids = Ids::new(metadata, folder.drive);
        let mut path = Self::drive_path(metadata, folder.drive)?;
        path.extend(folder.segments()?);
        let mut create = path.clone();
        create.push("children");
        let body = json!({ "name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail" });
        let request = bearer(self.oauth.http.post(endpoint(&self.graph, &create)), access_token).json(&body);
        let answer = Answer::read(send(request).await?).await?;
        if answer.status == reqwest::StatusCode::CONFLICT {
            let last = path.pop().unwrap_or_default();
            let addressed = format!("{last}:");
            let named = format!("{name}:");
            path.extend([addressed.as_str(), named.as_str()]);
            return match self.get_item(access_token, &path, ids).await? {
                Some(existing) => Ok(Created::Exists { id: existing.item.id }),
                None => Err(answer.error()),
            };
        }
        let value: Value = answer.json("Graph driveItem")?;
        Self::entry(&value, ids)?
            .map(|entry| Created::Folder(Box::new(entry)))
            .ok_or_else(|| ProviderError::Malformed("the created Graph item has no folder facet".to_owned()))
    }

    /// `sites?search=`; without a search, `*` (every site the user can see).
    async fn sites(
        &self,
        access_token: &SecretString,
        search: Option<&str>,
        page: Option<&str>,
        limit: u16,
    ) -> Result<SitePage, ProviderError> {
        if self.kind != ProviderType::SharePoint {
            return Err(ProviderError::Unsupported(format!("{} has no SharePoint sites; browse its drive", self.kind)));
        }
        let url = match page {
            Some(link) => self.graph_link(link).ok_or_else(|| {
                ProviderError::Malformed("a Graph sites page link is not on the Graph host".to_owned())
            })?,
            None => {
                let mut url = endpoint(&self.graph, &["v1.0", "sites"]);
                url.query_pairs_mut()
                    .append_pair("search", search.unwrap_or("*"))
                    .append_pair("$top", &limit.to_string())
                    .append_pair("$select", "id,name,displayName,webUrl,description");
                url
            }
        };
        let mut page: Value = self.get_answer(access_token, url).await?.json("Graph sites")?;
        let mut sites = Vec::new();
        for value in items_of(&mut page, "Graph sites")? {
            let what = "Graph site";
            sites.push(Site {
                id: required_str(&value, "id", what)?,
                name: str_field(&value, "displayName")
                    .or_else(|| str_field(&value, "name"))
                    .map(str::to_owned)
                    .ok_or_else(|| ProviderError::Malformed("a Graph site has no name".to_owned()))?,
                web_url: str_field(&value, "webUrl").map(str::to_owned),
                description: str_field(&value, "description").filter(|d| !d.is_empty()).map(str::to_owned),
            });
        }
        Ok(SitePage { sites, next: str_field(&page, "@odata.nextLink").map(str::to_owned) })
    }

    /// `sites/{id}/drives`, every page (a site has a handful of libraries).
    async fn libraries(
        &self,
        access_token: &SecretString,
        metadata: Option<&Value>,
        site_id: &str,
    ) -> Result<Vec<Library>, ProviderError> {
        if self.kind != ProviderType::SharePoint {
            return Err(ProviderError::Unsupported(format!("{} has no SharePoint sites; browse its drive", self.kind)));
        }
        let mut url = endpoint(&self.graph, &["v1.0", "sites", path_id(site_id, "site id")?, "drives"]);
        url.query_pairs_mut().append_pair("$select", "id,name,driveType,webUrl");
        let mut libraries = Vec::new();
        for _ in 0..MAX_LIBRARY_PAGES {
            let mut page: Value = self.get_answer(access_token, url).await?.json("Graph drives")?;
            for value in items_of(&mut page, "Graph drives")? {
                let id = required_str(&value, "id", "Graph drive")?;
                let root_id = Ids::new(metadata, Some(&id)).id("root");
                libraries.push(Library {
                    name: required_str(&value, "name", "Graph drive")?,
                    drive_type: str_field(&value, "driveType").map(str::to_owned),
                    web_url: str_field(&value, "webUrl").map(str::to_owned),
                    root_id,
                    id,
                });
            }
            match str_field(&page, "@odata.nextLink").and_then(|l| self.graph_link(l)) {
                Some(next) => url = next,
                None => return Ok(libraries),
            }
        }
        Ok(libraries)
    }

    fn watch_scope(&self) -> WatchScope {
        WatchScope::Connection(SubscriptionKind::GraphSubscription)
    }

    /// A subscription on the root of the folder's drive: Business and SharePoint allow no
    /// other driveItem, and the delta the worker runs covers the drive anyway.
    async fn watch(&self, access_token: &SecretString, request: &WatchRequest<'_>) -> Result<Watching, ProviderError> {
        let drive = ItemRef::parse(request.folder_id).drive.or_else(|| own_drive(request.metadata));
        let resource = match drive {
            Some(drive) => format!("/drives/{}/root", path_id(drive, "drive id")?),
            None => "/me/drive/root".to_owned(),
        };
        let body = json!({
            "changeType": "updated",
            "notificationUrl": request.address,
            // Lifecycle events (reauthorizationRequired, missed, subscriptionRemoved) reach the
            // same receiver, which answers them with a sync: a missed change is in the delta.
            "lifecycleNotificationUrl": request.address,
            "resource": resource,
            "expirationDateTime": graph_expiry(request.expires_at),
            "clientState": request.secret.expose_secret(),
        });
        let call = bearer(self.oauth.http.post(endpoint(&self.graph, &["v1.0", "subscriptions"])), access_token);
        let made: Value = json_response(send(call.json(&body)).await?, "Graph subscription").await?;
        graph_watching(&made, Some(resource))
    }

    async fn renew_watch(
        &self,
        access_token: &SecretString,
        existing: &Watched<'_>,
        request: &WatchRequest<'_>,
    ) -> Result<Watching, ProviderError> {
        let id = path_id(existing.provider_subscription_id, "subscription id")?;
        let url = endpoint(&self.graph, &["v1.0", "subscriptions", id]);
        let body = json!({ "expirationDateTime": graph_expiry(request.expires_at) });
        let renewed: Value = json_response(
            send(bearer(self.oauth.http.patch(url), access_token).json(&body)).await?,
            "Graph subscription",
        )
        .await?;
        graph_watching(&renewed, existing.provider_resource.map(str::to_owned))
    }

    async fn unwatch(&self, access_token: &SecretString, existing: &Watched<'_>) -> Result<(), ProviderError> {
        let id = path_id(existing.provider_subscription_id, "subscription id")?;
        let url = endpoint(&self.graph, &["v1.0", "subscriptions", id]);
        expect_success(send(bearer(self.oauth.http.delete(url), access_token)).await?, GRAPH_GONE).await
    }
}
