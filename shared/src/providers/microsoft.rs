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

use async_trait::async_trait;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{
    Answer, bearer, download_response, endpoint, expect_success, int_field, json_response, parse_url, path_id,
    required_str, send, str_field, time_field,
};
use super::oauth_client::{OAuthClient, scopes_or};
use super::{
    AuthorizeRequest, Change, ChangePage, ChildPage, Clients, CreatedLink, Download, ExistingLink, Identity, ItemKind,
    LinkTarget, Pkce, Provider, ProviderError, RefreshTokenRotation, RemoteItem, SharedLinkRequest, SyncScope,
    TokenSet, password_unsupported, share_type_unsupported,
};
use crate::config::ProviderConfig;
use crate::content_hash::{HashAlg, normalize};
use crate::db::{ProviderType, ShareType};

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
/// Children per page; Graph's default is 200.
const CHILDREN_PAGE: &str = "1000";
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

    /// `/drives/{drive-id}/items/{item-id}` with the drive recorded at connection time, or the
    /// signed-in user's own drive when none was.
    fn item_path<'a>(target: &'a LinkTarget<'a>) -> Result<Vec<&'a str>, ProviderError> {
        let mut path = Self::drive_path(target.connection_metadata)?;
        path.extend(["items", path_id(target.item_id, "drive item id")?]);
        Ok(path)
    }

    /// `/drives/{drive-id}`, or `/me/drive` when the connection recorded no drive.
    fn drive_path(metadata: Option<&Value>) -> Result<Vec<&str>, ProviderError> {
        Ok(match metadata.and_then(|m| str_field(m, "drive_id")) {
            Some(drive) => vec!["v1.0", "drives", path_id(drive, "drive id")?],
            None => vec!["v1.0", "me", "drive"],
        })
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

/// A driveItem with a `file` or `folder` facet (others, such as OneNote packages, are not
/// synced: `None`).
fn drive_item(value: &Value) -> Result<Option<RemoteItem>, ProviderError> {
    let file = value.get("file");
    let kind = match (file, value.get("folder")) {
        (Some(_), _) => ItemKind::File,
        (None, Some(_)) => ItemKind::Folder,
        (None, None) => return Ok(None),
    };
    let what = "Graph driveItem";
    let quick_xor = file.and_then(|f| f.get("hashes")).and_then(|h| str_field(h, "quickXorHash"));
    Ok(Some(RemoteItem {
        id: required_str(value, "id", what)?,
        name: required_str(value, "name", what)?,
        kind,
        parent_id: value.get("parentReference").and_then(|p| str_field(p, "id")).map(str::to_owned),
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
        let mut path = Self::drive_path(scope.connection_metadata)?;
        if personal {
            path.extend(["items", path_id(scope.folder_id, "drive item id")?, "delta"]);
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
        let url = match page {
            Some(link) => self.graph_link(link).ok_or_else(|| {
                ProviderError::Malformed("a Graph children page link is not on the Graph host".to_owned())
            })?,
            None => {
                let mut path = Self::drive_path(scope.connection_metadata)?;
                path.extend(["items", path_id(folder_id, "drive item id")?, "children"]);
                let mut url = endpoint(&self.graph, &path);
                url.query_pairs_mut().append_pair("$top", CHILDREN_PAGE).append_pair("$select", ITEM_SELECT);
                url
            }
        };
        let mut page: Value = self.get_answer(access_token, url).await?.json("Graph children")?;
        let mut items = Vec::new();
        for value in items_of(&mut page, "Graph children")? {
            items.extend(drive_item(&value)?);
        }
        Ok(ChildPage { items, next: str_field(&page, "@odata.nextLink").map(str::to_owned) })
    }

    async fn changes(
        &self,
        access_token: &SecretString,
        _scope: &SyncScope<'_>,
        cursor: &str,
    ) -> Result<ChangePage, ProviderError> {
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
                    id: Some(required_str(&value, "id", "Graph deleted item")?),
                    path_lower: None,
                });
            } else if let Some(item) = drive_item(&value)? {
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
        let mut path = Self::drive_path(scope.connection_metadata)?;
        path.extend(["items", path_id(&item.id, "drive item id")?, "content"]);
        let response = send(bearer(self.transfer.get(endpoint(&self.graph, &path)), access_token)).await?;
        download_response(&self.transfer, response).await
    }
}
