//! Box: OAuth 2 without PKCE, single-use refresh tokens, the Content API 2.0 for identity, and
//! the `shared_link` field of a file or folder for shared links (an item has at most one).

use async_trait::async_trait;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{bearer, endpoint, expect_success, json_response, parse_url, path_id, required_str, send, str_field};
use super::oauth_client::{OAuthClient, scopes_or};
use super::{
    AuthorizeRequest, Clients, CreatedLink, ExistingLink, Identity, LinkTarget, Pkce, Provider, ProviderError,
    RefreshTokenRotation, SharedLinkRequest, TokenSet, share_type_unsupported,
};
use crate::config::ProviderConfig;
use crate::db::{ProviderType, ResourceType, ShareType};

const AUTHORIZE: &str = "https://account.box.com/api/oauth2/authorize";
const TOKEN: &str = "https://api.box.com/oauth2/token";
const REVOKE: &str = "https://api.box.com/oauth2/revoke";
const API: &str = "https://api.box.com";
const SCOPES: &[&str] = &["root_readwrite"];

#[derive(Debug)]
pub(crate) struct BoxCom {
    oauth: OAuthClient,
    /// File bodies (downloads, uploads): bounded by silence, not by total time.
    transfer: reqwest::Client,
    api: Url,
    revoke_url: Url,
    scopes: Vec<String>,
}

impl BoxCom {
    pub fn new(config: &ProviderConfig, http: &Clients) -> Result<BoxCom, String> {
        Ok(BoxCom {
            oauth: OAuthClient::new(config, http.api.clone(), AUTHORIZE, TOKEN)?,
            transfer: http.transfer.clone(),
            api: parse_url(config.api_base_url.as_deref().unwrap_or(API), "api_base_url")?,
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
        expect_success(send(self.oauth.http.post(self.revoke_url.clone()).form(&form)).await?, false).await
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
        Ok(CreatedLink { provider_share_id: None, share_url: url })
    }

    async fn delete_shared_link(
        &self,
        access_token: &SecretString,
        target: &LinkTarget<'_>,
        _link: &ExistingLink<'_>,
    ) -> Result<(), ProviderError> {
        let response = self.put_shared_link(access_token, target, Value::Null).await?;
        expect_success(response, true).await
    }
}
