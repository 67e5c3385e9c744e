//! Google Drive: Google's OAuth 2.0 web-server flow, OpenID Connect userinfo for identity, and
//! Drive v3 permissions for shared links.
//!
//! Userinfo and Drive live on different hosts; a configured `api_base_url` replaces both, the
//! documented paths (`/v1/userinfo`, `/drive/v3/...`) staying as they are.

use async_trait::async_trait;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{bearer, endpoint, expect_success, json_response, parse_url, path_id, required_str, send, str_field};
use super::oauth_client::{OAuthClient, RevokedWhen, scopes_or};
use super::{
    AuthorizeRequest, Clients, CreatedLink, ExistingLink, Identity, LinkTarget, Pkce, Provider, ProviderError,
    RefreshTokenRotation, SharedLinkRequest, TokenSet, password_unsupported,
};
use crate::config::ProviderConfig;
use crate::db::{ProviderType, ShareType};

const AUTHORIZE: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const TOKEN: &str = "https://oauth2.googleapis.com/token";
const REVOKE: &str = "https://oauth2.googleapis.com/revoke";
const USERINFO_BASE: &str = "https://openidconnect.googleapis.com";
const DRIVE_BASE: &str = "https://www.googleapis.com";
/// `drive` rather than `drive.file`: the user picks folders in Quodsi, not through Google's
/// picker, so files the app did not create must be reachable. Narrow it with `scopes`.
const SCOPES: &[&str] = &["openid", "email", "https://www.googleapis.com/auth/drive"];

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
        let mut path = vec!["drive", "v3", "files"];
        path.extend_from_slice(segments);
        let mut url = endpoint(&self.drive_base, &path);
        // Items in shared drives are refused without it.
        url.query_pairs_mut().append_pair("supportsAllDrives", "true");
        url
    }
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
        match expect_success(send(request).await?, false).await {
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
        expect_success(send(bearer(self.oauth.http.delete(url), access_token)).await?, true).await
    }
}
