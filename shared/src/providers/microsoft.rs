//! OneDrive and SharePoint: the Microsoft identity platform (v2 endpoints) for OAuth and
//! Microsoft Graph v1.0 for identity and shared links. The two differ only in scopes and in
//! what identity records: OneDrive the user's own drive, SharePoint the tenant's root site and
//! its default document library.

use async_trait::async_trait;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{bearer, endpoint, expect_success, json_response, parse_url, path_id, required_str, send, str_field};
use super::oauth_client::{OAuthClient, scopes_or};
use super::{
    AuthorizeRequest, Clients, CreatedLink, ExistingLink, Identity, LinkTarget, Pkce, Provider, ProviderError,
    RefreshTokenRotation, SharedLinkRequest, TokenSet, password_unsupported, share_type_unsupported,
};
use crate::config::ProviderConfig;
use crate::db::{ProviderType, ShareType};

const AUTHORITY: &str = "https://login.microsoftonline.com";
const GRAPH: &str = "https://graph.microsoft.com";
const DEFAULT_TENANT: &str = "common";
/// Without it the token endpoint issues no refresh token.
const OFFLINE_ACCESS: &str = "offline_access";
const ONEDRIVE_SCOPES: &[&str] = &[OFFLINE_ACCESS, "User.Read", "Files.ReadWrite"];
const SHAREPOINT_SCOPES: &[&str] = &[OFFLINE_ACCESS, "User.Read", "Sites.ReadWrite.All", "Files.ReadWrite.All"];

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
        let item = path_id(target.item_id, "drive item id")?;
        Ok(match target.connection_metadata.and_then(|m| str_field(m, "drive_id")) {
            Some(drive) => vec!["v1.0", "drives", path_id(drive, "drive id")?, "items", item],
            None => vec!["v1.0", "me", "drive", "items", item],
        })
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
        Ok(CreatedLink { provider_share_id: Some(required_str(&permission, "id", "Graph permission")?), share_url })
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
        expect_success(send(request).await?, true).await
    }
}
