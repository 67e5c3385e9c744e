//! Dropbox: OAuth 2 with PKCE and `token_access_type=offline`, and the API v2 RPC endpoints
//! (`POST` with a JSON argument) for identity, revocation and shared links.

use async_trait::async_trait;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{bearer, endpoint, expect_success, json_response, parse_url, required_str, send, str_field};
use super::oauth_client::{OAuthClient, scopes_or};
use super::{
    AuthorizeRequest, Clients, CreatedLink, ExistingLink, Identity, LinkTarget, Pkce, Provider, ProviderError,
    RefreshTokenRotation, SharedLinkRequest, TokenSet,
};
use crate::config::ProviderConfig;
use crate::db::{ProviderType, ShareType};

const AUTHORIZE: &str = "https://www.dropbox.com/oauth2/authorize";
const TOKEN: &str = "https://api.dropboxapi.com/oauth2/token";
const API: &str = "https://api.dropboxapi.com";
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
    revoke_url: Url,
    scopes: Vec<String>,
}

impl Dropbox {
    pub fn new(config: &ProviderConfig, http: &Clients) -> Result<Dropbox, String> {
        let oauth = OAuthClient::new(config, http.api.clone(), AUTHORIZE, TOKEN)?;
        let api = parse_url(config.api_base_url.as_deref().unwrap_or(API), "api_base_url")?;
        let revoke_url = match &config.revoke_url {
            Some(url) => parse_url(url, "revoke_url")?,
            None => endpoint(&api, &["2", "auth", "token", "revoke"]),
        };
        Ok(Dropbox { oauth, transfer: http.transfer.clone(), api, revoke_url, scopes: scopes_or(config, SCOPES) })
    }

    /// An RPC call. Endpoints without arguments take the JSON `null`, as the API explorer
    /// sends it: an empty body gets a 400 for its missing or form content type.
    fn rpc(&self, url: Url, access_token: &SecretString, argument: &Value) -> reqwest::RequestBuilder {
        bearer(self.oauth.http.post(url), access_token).json(argument)
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
        match expect_success(send(self.rpc(self.revoke_url.clone(), access, &Value::Null)).await?, false).await {
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
        let link: Value =
            json_response(send(self.rpc(url, access_token, &argument)).await?, "Dropbox shared link").await?;
        // The metadata's `id` is the file's, not the link's: a link is known by its URL.
        Ok(CreatedLink { provider_share_id: None, share_url: required_str(&link, "url", "Dropbox shared link")? })
    }

    async fn delete_shared_link(
        &self,
        access_token: &SecretString,
        _target: &LinkTarget<'_>,
        link: &ExistingLink<'_>,
    ) -> Result<(), ProviderError> {
        let url = endpoint(&self.api, &["2", "sharing", "revoke_shared_link"]);
        let response = send(self.rpc(url, access_token, &json!({ "url": link.share_url }))).await?;
        match expect_success(response, false).await {
            Err(ProviderError::Rejected { status: 409, code: Some(code), .. }) if code == "shared_link_not_found" => {
                Ok(())
            }
            other => other,
        }
    }
}
