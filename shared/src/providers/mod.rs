//! The cloud-storage providers: one definition per provider (its endpoints, scopes, OAuth quirks,
//! identity lookup and shared links) behind the [`Provider`] trait, and a [`Registry`] that
//! builds the configured ones once per cold start.
//!
//! Adding a provider means one new file implementing [`Provider`] and one line in
//! [`Registry::with_settings`].
//!
//! Tokens are [`SecretString`]s from the moment they are parsed; no error, Debug or Display
//! output here carries one, and nothing here logs.
//!
//! Every endpoint can be pointed elsewhere by [`ProviderConfig`]: `authorize_url` and
//! `token_url` replace the URLs whole, `revoke_url` replaces the revocation URL, and
//! `api_base_url` replaces the scheme and host of every API call, the provider's documented path
//! being appended to it (`{api_base_url}/v1.0/me`, `{api_base_url}/2.0/users/me`, ...).

mod boxcom;
mod dropbox;
mod google;
mod microsoft;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ProviderConfig, Providers, into_secret};
use crate::db::{ErrorType, ProviderType, ResourceType, ShareType};

/// Total time allowed for one outbound call (connect, request, response body).
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to establish the connection (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Provider-supplied descriptions are cut to this many characters: they go into error rows and
/// logs, and Microsoft's carry trace ids and timestamps that make them long.
pub const MAX_DESCRIPTION_CHARS: usize = 300;

/// Timeouts of the one HTTP client all providers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings { connect_timeout: DEFAULT_CONNECT_TIMEOUT, total_timeout: DEFAULT_TOTAL_TIMEOUT }
    }
}

/// What a refresh does to the refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshTokenRotation {
    /// A new refresh token comes with every refresh and replaces the old one (Microsoft).
    Rotates,
    /// The refresh token is not rotated: keep the stored one (Google, Dropbox).
    Keep,
    /// Every refresh returns a new refresh token and kills the old one at once (Box): the new
    /// one must be stored before anything else can fail, or the connection is lost.
    SingleUse,
}

/// The tokens a code exchange or refresh returned.
///
/// After a refresh, store `refresh_token` when it is `Some` and keep the stored one when it is
/// `None`: that is right for every [`RefreshTokenRotation`], because a [`SingleUse`] provider's
/// refresh without a new refresh token is reported as [`ProviderError::Malformed`].
///
/// [`SingleUse`]: RefreshTokenRotation::SingleUse
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Lifetime of the access token as the provider stated it.
    pub expires_in: Option<Duration>,
    /// Granted scopes, space-separated, when the provider says (Box does not).
    pub scope: Option<String>,
}

impl TokenSet {
    /// When the access token expires, counted from `issued_at` (take the time before the call).
    pub fn expires_at(&self, issued_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let lifetime = chrono::Duration::from_std(self.expires_in?).ok()?;
        issued_at.checked_add_signed(lifetime)
    }
}

/// Who the tokens belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The provider's stable id of the account (`cloud_connections.provider_user_id`).
    pub provider_user_id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// Provider-specific facts kept as `connection_metadata` (drive id and type, site id,
    /// account type, ...). The provider reads its own keys back from it for shared links.
    pub metadata: Value,
}

/// A PKCE verifier (RFC 7636, S256). The verifier travels sealed in the OAuth state; the
/// challenge goes into the authorization URL.
#[derive(Clone)]
pub struct Pkce {
    verifier: SecretString,
}

impl fmt::Debug for Pkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pkce([redacted])")
    }
}

impl Pkce {
    /// A new random verifier (32 random bytes, base64url: 43 characters).
    pub fn generate() -> Pkce {
        let (_, verifier) = PkceCodeChallenge::new_random_sha256();
        Pkce { verifier: into_secret(verifier.into_secret()) }
    }

    /// A verifier read back from the sealed state.
    pub fn from_verifier(verifier: SecretString) -> Pkce {
        Pkce { verifier }
    }

    pub fn verifier(&self) -> &SecretString {
        &self.verifier
    }

    /// The S256 challenge: base64url(SHA-256(verifier)).
    pub fn challenge(&self) -> String {
        let verifier = PkceCodeVerifier::new(self.verifier.expose_secret().to_owned());
        PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str().to_owned()
    }
}

/// What the authorization URL is built from.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizeRequest<'a> {
    /// The sealed state, returned unchanged to the callback.
    pub state: &'a str,
    /// Must be the same in [`Provider::exchange_code`]; see [`Registry::redirect_uri`].
    pub redirect_uri: &'a str,
    /// Used only by providers that do PKCE ([`Provider::uses_pkce`]); the others ignore it.
    pub pkce: &'a Pkce,
    /// Further query parameters (`login_hint`, `domain_hint`, ...). They replace a provider
    /// default of the same name; the parameters of the OAuth exchange itself are refused.
    pub extra_params: &'a [(&'a str, &'a str)],
}

/// The item a shared link is for.
#[derive(Debug, Clone, Copy)]
pub struct LinkTarget<'a> {
    pub resource_type: ResourceType,
    /// The provider's id of the file or folder (`provider_file_id` / `provider_folder_id`).
    pub item_id: &'a str,
    /// The connection's metadata as [`Provider::identity`] returned it (Microsoft reads the
    /// drive id from it).
    pub connection_metadata: Option<&'a Value>,
}

/// The link asked for.
#[derive(Debug, Clone)]
pub struct SharedLinkRequest {
    pub share_type: ShareType,
    pub password: Option<SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A link the provider created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedLink {
    /// The provider's id of the link where it has one (Microsoft and Google permission ids);
    /// Dropbox and Box identify a link by its URL or by the item, so theirs is `None`.
    pub provider_share_id: Option<String>,
    pub share_url: String,
}

/// A link created earlier, as stored (`provider_share_id`, `share_url`).
#[derive(Debug, Clone, Copy)]
pub struct ExistingLink<'a> {
    pub provider_share_id: Option<&'a str>,
    pub share_url: &'a str,
}

/// Why a provider call failed. No variant carries a token, a client secret or a link password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("provider {provider} is not configured: {hint}")]
    NotConfigured { provider: ProviderType, hint: String },
    /// The token endpoint refused the grant (`invalid_grant`, or Microsoft's
    /// `interaction_required`). `revoked` is true when it is a refresh token that the provider
    /// says is expired or revoked: the connection needs the user to sign in again.
    #[error("the provider refused the grant ({code}{}){}", opt_prefix(" ", sub_code), opt_prefix(": ", description))]
    InvalidGrant { code: String, sub_code: Option<String>, description: Option<String>, revoked: bool },
    #[error("rate limited by the provider{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("provider server error (HTTP {status})")]
    Server { status: u16 },
    #[error("provider call timed out")]
    Timeout,
    #[error("cannot reach the provider: {0}")]
    Network(String),
    /// A success status whose body is not what the provider documents.
    #[error("malformed provider response: {0}")]
    Malformed(String),
    /// Any other refusal (4xx, or a 3xx, since redirects are not followed).
    #[error("provider rejected the request (HTTP {status}{}){}", opt_prefix(" ", code), opt_prefix(": ", description))]
    Rejected { status: u16, code: Option<String>, description: Option<String> },
    /// Something this provider cannot do (a link password on Google Drive, a comment link on
    /// Box, ...); the API answers 400.
    #[error("{0}")]
    Unsupported(String),
}

fn opt_prefix(prefix: &str, value: &Option<String>) -> String {
    value.as_ref().map(|v| format!("{prefix}{v}")).unwrap_or_default()
}

impl ProviderError {
    /// The `cloud_sync_errors.error_type` this failure is recorded as.
    pub fn error_type(&self) -> ErrorType {
        match self {
            ProviderError::NotConfigured { .. } | ProviderError::Unsupported(_) => ErrorType::Validation,
            ProviderError::InvalidGrant { .. } => ErrorType::Auth,
            ProviderError::Timeout => ErrorType::Timeout,
            ProviderError::Network(_) => ErrorType::Network,
            ProviderError::RateLimited { .. } | ProviderError::Server { .. } | ProviderError::Malformed(_) => {
                ErrorType::Api
            }
            // Drive reports a full account as a 403, so the code is looked at before the status.
            ProviderError::Rejected { code: Some(code), .. } if is_storage_quota_code(code) => ErrorType::Quota,
            ProviderError::Rejected { status, .. } => match status {
                401 => ErrorType::Auth,
                403 => ErrorType::Permission,
                507 => ErrorType::Quota,
                _ => ErrorType::Api,
            },
        }
    }

    /// The provider's own code for the failure, most specific first ("AADSTS70000" before
    /// "invalid_grant"), or the HTTP status when that is all there is.
    pub fn error_code(&self) -> Option<String> {
        match self {
            ProviderError::InvalidGrant { code, sub_code, .. } => {
                Some(sub_code.clone().unwrap_or_else(|| code.clone()))
            }
            ProviderError::RateLimited { .. } => Some("429".to_owned()),
            ProviderError::Server { status } => Some(status.to_string()),
            ProviderError::Rejected { status, code, .. } => Some(code.clone().unwrap_or_else(|| status.to_string())),
            ProviderError::NotConfigured { .. }
            | ProviderError::Timeout
            | ProviderError::Network(_)
            | ProviderError::Malformed(_)
            | ProviderError::Unsupported(_) => None,
        }
    }

    /// Whether the same call may succeed later without anything changing.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Server { .. }
                | ProviderError::Timeout
                | ProviderError::Network(_)
        )
    }

    /// The wait the provider asked for, for a [`ProviderError::RateLimited`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

fn is_storage_quota_code(code: &str) -> bool {
    // Graph, Google Drive, Dropbox and Box names for "the account is out of space".
    matches!(code, "quotaLimitReached" | "storageQuotaExceeded" | "insufficient_space" | "storage_limit_exceeded")
}

/// One provider definition.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    fn provider_type(&self) -> ProviderType;

    /// The scopes asked for (configured, or the definition's defaults), for a connection's
    /// `scope` when the token response does not state the granted ones.
    fn scopes(&self) -> &[String];

    fn uses_pkce(&self) -> bool;

    fn refresh_token_rotation(&self) -> RefreshTokenRotation;

    /// Whether the provider expires a link by itself; if not, the link-expiry job must delete
    /// it at `expires_at`.
    fn expires_links_natively(&self) -> bool;

    fn supports_link_password(&self) -> bool;

    /// The URL to send the user's browser to.
    fn authorization_url(&self, request: &AuthorizeRequest<'_>) -> Result<String, ProviderError>;

    /// Redeems the callback's code. `redirect_uri` must be the one the authorization URL had.
    async fn exchange_code(&self, code: &str, pkce: &Pkce, redirect_uri: &str) -> Result<TokenSet, ProviderError>;

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError>;

    async fn identity(&self, access_token: &SecretString) -> Result<Identity, ProviderError>;

    /// Revokes the grant at the provider, so disconnecting really disconnects. Each provider
    /// uses the token its revocation endpoint wants (Dropbox the access token, Google and Box
    /// the refresh token when there is one); a provider without revocation returns `Ok`.
    async fn revoke(
        &self,
        access_token: &SecretString,
        refresh_token: Option<&SecretString>,
    ) -> Result<(), ProviderError>;

    async fn create_shared_link(
        &self,
        access_token: &SecretString,
        target: &LinkTarget<'_>,
        request: &SharedLinkRequest,
    ) -> Result<CreatedLink, ProviderError>;

    /// Removes a link. A link (or item) the provider no longer has counts as removed, so the
    /// link-expiry job can retry safely.
    async fn delete_shared_link(
        &self,
        access_token: &SecretString,
        target: &LinkTarget<'_>,
        link: &ExistingLink<'_>,
    ) -> Result<(), ProviderError>;
}

/// The configured providers, built once per cold start. Clones are cheap: the definitions and
/// their one HTTP client are shared.
#[derive(Debug, Clone)]
pub struct Registry {
    providers: HashMap<ProviderType, Result<Arc<dyn Provider>, String>>,
    redirect_base: Option<String>,
}

impl Registry {
    /// The registry of `config`'s providers with the default timeouts. Fails (with
    /// [`ProviderError::Network`]) only if the HTTP client cannot be built.
    pub fn from_config(config: &Config) -> Result<Registry, ProviderError> {
        Registry::with_settings(&config.providers, config.oauth_redirect_base_url.as_deref(), HttpSettings::default())
    }

    /// A provider whose configuration is unusable (an endpoint URL that does not parse) is
    /// left out with the reason, so it answers [`ProviderError::NotConfigured`] and the others
    /// keep working. Only a failure to build the HTTP client fails the whole registry.
    pub fn with_settings(
        providers: &Providers,
        redirect_base: Option<&str>,
        settings: HttpSettings,
    ) -> Result<Registry, ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            // A 307/308 from a token endpoint would re-send the client secret and refresh token
            // to wherever it points; no endpoint used here redirects on purpose.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("quodsi-cloud-connections/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Network(format!("cannot build the HTTP client: {}", crate::error_chain(&e))))?;
        let mut built = HashMap::new();
        for provider in providers.configured() {
            let Some(config) = providers.get(provider) else { continue };
            let definition: Result<Arc<dyn Provider>, String> = match provider {
                ProviderType::OneDrive | ProviderType::SharePoint => {
                    microsoft::Microsoft::new(provider, config, http.clone()).map(|p| Arc::new(p) as _)
                }
                ProviderType::GDrive => google::Google::new(config, http.clone()).map(|p| Arc::new(p) as _),
                ProviderType::Dropbox => dropbox::Dropbox::new(config, http.clone()).map(|p| Arc::new(p) as _),
                ProviderType::Box => boxcom::BoxCom::new(config, http.clone()).map(|p| Arc::new(p) as _),
            };
            built.insert(provider, definition.map_err(|e| format!("{e} in `providers.{provider}`")));
        }
        Ok(Registry { providers: built, redirect_base: redirect_base.map(|b| b.trim_end_matches('/').to_owned()) })
    }

    pub fn get(&self, provider: ProviderType) -> Result<&dyn Provider, ProviderError> {
        match self.providers.get(&provider) {
            Some(Ok(definition)) => Ok(definition.as_ref()),
            Some(Err(hint)) => Err(ProviderError::NotConfigured { provider, hint: hint.clone() }),
            None => Err(ProviderError::NotConfigured {
                provider,
                hint: format!(
                    "add `providers.{provider}` with `client_id` and `client_secret` to the configuration document"
                ),
            }),
        }
    }

    /// The providers that [`Registry::get`] returns.
    pub fn available(&self) -> impl Iterator<Item = ProviderType> + '_ {
        self.providers.iter().filter(|(_, d)| d.is_ok()).map(|(p, _)| *p)
    }

    /// `{oauth_redirect_base_url}/oauth/callback/{provider}`, the redirect URI to register with
    /// each provider.
    pub fn redirect_uri(&self, provider: ProviderType) -> Result<String, ProviderError> {
        match &self.redirect_base {
            Some(base) => Ok(crate::config::callback_uri(base, provider)),
            None => Err(ProviderError::NotConfigured {
                provider,
                hint: "set `oauth_redirect_base_url` (the public base URL of the OAuth callback) in the configuration \
                       document"
                    .to_owned(),
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plumbing shared by the definitions.

/// Parses an endpoint URL at start-up; the message names the configuration field.
pub(crate) fn parse_url(url: &str, field: &str) -> Result<Url, String> {
    Url::parse(url).map_err(|_| format!("`{field}` is not a valid URL"))
}

/// `base` with `segments` appended, each percent-encoded: item ids come from the database and
/// must not be able to change the path.
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// An id that goes into a URL path. `endpoint` encodes `/` and `%`, but drops `.` and `..`
/// segments, so such an id would silently address another resource.
pub(crate) fn path_id<'a>(id: &'a str, what: &str) -> Result<&'a str, ProviderError> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(ProviderError::Unsupported(format!("`{id}` is not a valid {what}")));
    }
    Ok(id)
}

/// The scopes of a definition: the configured ones, or its defaults.
pub(crate) fn scopes_or(config: &ProviderConfig, defaults: &[&str]) -> Vec<String> {
    config.scopes.clone().unwrap_or_else(|| defaults.iter().map(|s| (*s).to_owned()).collect())
}

/// When an `invalid_grant` on a refresh means the refresh token is dead.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RevokedWhen {
    /// Any `invalid_grant` (or `interaction_required`) on a refresh.
    AnyRefusal,
    /// Only when the description says so (Google answers `invalid_grant` for malformed requests
    /// too, and "Token has been expired or revoked." for a dead token).
    DescriptionContains(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    Code,
    Refresh,
}

/// The OAuth client of one provider: authorization URLs through the `oauth2` crate, token
/// requests through reqwest.
///
/// oauth2's token requests report a refusal as the parsed error body only: the HTTP status, the
/// `Retry-After` header and non-standard fields such as Microsoft's `error_codes` are gone by
/// then, and a 429 or 5xx with an HTML body becomes an opaque parse error. The sync worker needs
/// all of those to tell a dead grant from a throttled or failing provider, so the token calls
/// are made here and the standard token response (RFC 6749 section 5.1) is parsed by hand.
#[derive(Debug, Clone)]
pub(crate) struct OAuthClient {
    pub http: reqwest::Client,
    pub client_id: String,
    pub client_secret: SecretString,
    pub authorize_url: Url,
    pub token_url: Url,
    pub revoked_when: RevokedWhen,
}

/// Parameters the OAuth exchange sets itself; a caller's extra parameter may not replace them.
const RESERVED_PARAMS: &[&str] =
    &["response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"];

impl OAuthClient {
    pub fn new(config: &ProviderConfig, http: reqwest::Client, authorize: &str, token: &str) -> Result<Self, String> {
        Ok(OAuthClient {
            http,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            authorize_url: parse_url(config.authorize_url.as_deref().unwrap_or(authorize), "authorize_url")?,
            token_url: parse_url(config.token_url.as_deref().unwrap_or(token), "token_url")?,
            revoked_when: RevokedWhen::AnyRefusal,
        })
    }

    /// The authorization URL with the provider's own parameters (`defaults`), overridden by the
    /// caller's extra parameters of the same name.
    pub fn authorization_url(
        &self,
        request: &AuthorizeRequest<'_>,
        scopes: &[String],
        pkce: bool,
        defaults: &[(&str, &str)],
    ) -> Result<String, ProviderError> {
        if let Some((name, _)) = request.extra_params.iter().find(|(n, _)| RESERVED_PARAMS.contains(n)) {
            return Err(ProviderError::Unsupported(format!(
                "authorization parameter `{name}` is set by the provider definition and cannot be overridden"
            )));
        }
        let redirect = RedirectUrl::new(request.redirect_uri.to_owned())
            .map_err(|_| ProviderError::Unsupported("the redirect URI is not a valid URL".to_owned()))?;
        let client = oauth2::basic::BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(self.authorize_url.clone()));
        let mut auth = client
            .authorize_url(|| CsrfToken::new(request.state.to_owned()))
            .set_redirect_uri(Cow::Owned(redirect))
            .add_scopes(scopes.iter().cloned().map(Scope::new));
        if pkce {
            let verifier = PkceCodeVerifier::new(request.pkce.verifier().expose_secret().to_owned());
            auth = auth.set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier));
        }
        for (name, value) in defaults {
            if !request.extra_params.iter().any(|(n, _)| n == name) {
                auth = auth.add_extra_param(*name, *value);
            }
        }
        for (name, value) in request.extra_params {
            auth = auth.add_extra_param(*name, *value);
        }
        Ok(auth.url().0.to_string())
    }

    /// `grant_type=authorization_code`, with the client secret in the body (every provider here
    /// accepts `client_secret_post`).
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce: Option<&Pkce>,
        redirect_uri: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<TokenSet, ProviderError> {
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "authorization_code"), ("code", code)];
        if let Some(uri) = redirect_uri {
            form.push(("redirect_uri", uri));
        }
        if let Some(pkce) = pkce {
            form.push(("code_verifier", pkce.verifier().expose_secret()));
        }
        form.extend_from_slice(extra);
        self.token_request(form, Grant::Code).await
    }

    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        extra: &[(&str, &str)],
    ) -> Result<TokenSet, ProviderError> {
        let mut form: Vec<(&str, &str)> =
            vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
        form.extend_from_slice(extra);
        self.token_request(form, Grant::Refresh).await
    }

    async fn token_request(&self, mut form: Vec<(&str, &str)>, grant: Grant) -> Result<TokenSet, ProviderError> {
        form.push(("client_id", &self.client_id));
        form.push(("client_secret", self.client_secret.expose_secret()));
        let request = self.http.post(self.token_url.clone()).header("accept", "application/json").form(&form);
        let response = send(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body(response).await?;
        if !status.is_success() {
            return Err(token_error(status, &headers, &body, grant, self.revoked_when));
        }
        parse_token_response(&body)
    }
}

/// Sends a request; a failure before any response is a timeout or a network error.
pub(crate) async fn send(request: RequestBuilder) -> Result<Response, ProviderError> {
    request.send().await.map_err(transport_error)
}

async fn read_body(response: Response) -> Result<Vec<u8>, ProviderError> {
    response.bytes().await.map(|b| b.to_vec()).map_err(transport_error)
}

fn transport_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        // The URL is dropped: it is ours and adds nothing, and a future endpoint might carry
        // something in its query.
        ProviderError::Network(truncate(&crate::error_chain(&e.without_url())))
    }
}

/// Reads a JSON success body, or turns a failure status into the matching error.
pub(crate) async fn json_response<T: DeserializeOwned>(response: Response, what: &str) -> Result<T, ProviderError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_body(response).await?;
    if !status.is_success() {
        return Err(api_error(status, &headers, &body));
    }
    serde_json::from_slice(&body).map_err(|e| malformed(what, &e))
}

/// Checks a response whose success body does not matter. With `missing_ok`, a 404 counts as
/// success (the thing to delete is already gone).
pub(crate) async fn expect_success(response: Response, missing_ok: bool) -> Result<(), ProviderError> {
    let status = response.status();
    if status.is_success() || (missing_ok && status == StatusCode::NOT_FOUND) {
        return Ok(());
    }
    let headers = response.headers().clone();
    let body = read_body(response).await?;
    Err(api_error(status, &headers, &body))
}

/// serde_json's message can quote a value from the body, and a body may hold a token, so only
/// the category and position are kept.
pub(crate) fn malformed(what: &str, e: &serde_json::Error) -> ProviderError {
    let category = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "unexpected JSON shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    ProviderError::Malformed(format!("{what}: {category} at line {}, column {}", e.line(), e.column()))
}

#[derive(serde::Deserialize)]
struct RawTokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<u64>,
    scope: Option<String>,
}

/// `expires_in` as a number, or as a numeric string as some token services send it.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| serde::de::Error::custom("bad expires_in")),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| serde::de::Error::custom("bad expires_in")),
        Some(_) => Err(serde::de::Error::custom("bad expires_in")),
    }
}

pub(crate) fn parse_token_response(body: &[u8]) -> Result<TokenSet, ProviderError> {
    let raw: RawTokenResponse = serde_json::from_slice(body).map_err(|e| malformed("token response", &e))?;
    let access_token = raw
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ProviderError::Malformed("token response has no access_token".to_owned()))?;
    Ok(TokenSet {
        access_token: into_secret(access_token),
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(into_secret),
        expires_in: raw.expires_in.map(Duration::from_secs),
        scope: raw.scope.filter(|s| !s.is_empty()),
    })
}

/// The error fields of RFC 6749 section 5.2, plus Microsoft's `error_codes`.
#[derive(Debug, Default)]
struct OAuthErrorBody {
    error: Option<String>,
    description: Option<String>,
    sub_code: Option<String>,
}

fn parse_oauth_error(body: &[u8]) -> OAuthErrorBody {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return OAuthErrorBody::default();
    };
    let error = map.get("error").and_then(Value::as_str).map(truncate);
    let description = map.get("error_description").and_then(Value::as_str).map(truncate);
    let sub_code = map
        .get("error_codes")
        .and_then(Value::as_array)
        .and_then(|codes| codes.first())
        .and_then(Value::as_u64)
        .map(|n| format!("AADSTS{n}"))
        .or_else(|| description.as_deref().and_then(aadsts_prefix));
    OAuthErrorBody { error, description, sub_code }
}

/// "AADSTS70000: ..." → "AADSTS70000", for a Microsoft error without `error_codes`.
fn aadsts_prefix(description: &str) -> Option<String> {
    let rest = description.strip_prefix("AADSTS")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("AADSTS{digits}"))
}

fn token_error(status: StatusCode, headers: &HeaderMap, body: &[u8], grant: Grant, rule: RevokedWhen) -> ProviderError {
    if let Some(e) = throttled_or_server(status, headers) {
        return e;
    }
    let parsed = parse_oauth_error(body);
    match parsed.error.as_deref() {
        Some(code @ ("invalid_grant" | "interaction_required")) => {
            let revoked = grant == Grant::Refresh
                && match rule {
                    RevokedWhen::AnyRefusal => true,
                    RevokedWhen::DescriptionContains(needle) => parsed
                        .description
                        .as_deref()
                        .is_some_and(|d| d.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())),
                };
            ProviderError::InvalidGrant {
                code: code.to_owned(),
                sub_code: parsed.sub_code,
                description: parsed.description,
                revoked,
            }
        }
        _ => ProviderError::Rejected {
            status: status.as_u16(),
            code: parsed.sub_code.or(parsed.error),
            description: parsed.description,
        },
    }
}

fn throttled_or_server(status: StatusCode, headers: &HeaderMap) -> Option<ProviderError> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Some(ProviderError::RateLimited { retry_after: retry_after(headers) });
    }
    if status.is_server_error() {
        return Some(ProviderError::Server { status: status.as_u16() });
    }
    None
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(RETRY_AFTER)?.to_str().ok().and_then(|v| parse_retry_after(v, Utc::now()))
}

/// A `Retry-After` value: delay-seconds, or an HTTP-date (RFC 9110 section 10.2.3) counted
/// from `now` (a date in the past means no wait).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok().map(Duration::from_secs);
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is a subset of RFC 2822.
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// A failed API (not token) call. The error body shapes differ by provider; this reads the
/// code and message of each:
/// - OAuth: `{"error": "...", "error_description": "..."}`
/// - Microsoft Graph: `{"error": {"code": "itemNotFound", "message": "..."}}`
/// - Google: `{"error": {"code": 404, "message": "...", "errors": [{"reason": "notFound"}]}}`
/// - Dropbox: `{"error_summary": "path/not_found/..", "error": {".tag": "path", ...}}`
/// - Box: `{"type": "error", "status": 404, "code": "not_found", "message": "..."}`
pub(crate) fn api_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    if let Some(e) = throttled_or_server(status, headers) {
        return e;
    }
    let (code, description) = api_error_fields(body);
    // Google Drive throttles with 403 and these reasons rather than with 429.
    if status == StatusCode::FORBIDDEN && matches!(code.as_deref(), Some("rateLimitExceeded" | "userRateLimitExceeded"))
    {
        return ProviderError::RateLimited { retry_after: retry_after(headers) };
    }
    ProviderError::Rejected { status: status.as_u16(), code, description }
}

pub(crate) fn api_error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(truncate);
    match map.get("error") {
        Some(Value::String(code)) => (Some(truncate(code)), text(map.get("error_description"))),
        Some(Value::Object(inner)) if map.contains_key("error_summary") => {
            (text(inner.get(".tag")), text(map.get("error_summary")))
        }
        Some(Value::Object(inner)) => {
            let reason =
                inner.get("errors").and_then(Value::as_array).and_then(|e| e.first()).and_then(|e| e.get("reason"));
            let code = text(reason).or_else(|| text(inner.get("code"))).or_else(|| text(inner.get("status")));
            (code, text(inner.get("message")))
        }
        _ => (text(map.get("code")), text(map.get("message"))),
    }
}

/// One line of at most [`MAX_DESCRIPTION_CHARS`] characters (plus an ellipsis when cut), with
/// control characters and runs of whitespace folded into single spaces.
pub(crate) fn truncate(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DESCRIPTION_CHARS * 4));
    let mut kept = 0;
    for c in text.chars().map(|c| if c.is_control() || c.is_whitespace() { ' ' } else { c }) {
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if kept == MAX_DESCRIPTION_CHARS {
            out.truncate(out.trim_end().len());
            out.push('…');
            return out;
        }
        out.push(c);
        kept += 1;
    }
    out.truncate(out.trim_end().len());
    out
}

/// `Authorization: Bearer` for an API call.
pub(crate) fn bearer(request: RequestBuilder, access_token: &SecretString) -> RequestBuilder {
    request.bearer_auth(access_token.expose_secret())
}

/// A string field of a JSON object.
pub(crate) fn str_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

/// A required string field of a documented response.
pub(crate) fn required_str(value: &Value, key: &str, what: &str) -> Result<String, ProviderError> {
    str_field(value, key)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ProviderError::Malformed(format!("{what} has no `{key}`")))
}

/// The link-password refusal, shared so every provider words it the same.
pub(crate) fn password_unsupported(provider: ProviderType) -> ProviderError {
    ProviderError::Unsupported(format!("{provider} shared links cannot have a password"))
}

pub(crate) fn share_type_unsupported(provider: ProviderType, share_type: ShareType, what: &str) -> ProviderError {
    ProviderError::Unsupported(format!("{provider} cannot create a `{share_type}` link for a {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Thu, 01 Jan 2026 00:01:30 GMT", now), Some(Duration::from_secs(90)));
        assert_eq!(parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn descriptions_become_one_short_line() {
        let long = format!("AADSTS70000: bad\r\nTrace ID: x\r\n{}", "y".repeat(1000));
        let short = truncate(&long);
        assert!(short.starts_with("AADSTS70000: bad Trace ID: x y"), "{short}");
        assert_eq!(short.chars().count(), MAX_DESCRIPTION_CHARS + 1);
        assert!(short.ends_with('…'));
        assert_eq!(truncate("  a \t\n b  "), "a b");
        assert_eq!(truncate(&"é".repeat(MAX_DESCRIPTION_CHARS)).chars().count(), MAX_DESCRIPTION_CHARS);
    }

    #[test]
    fn aadsts_codes_come_from_error_codes_or_the_description() {
        let with_codes =
            parse_oauth_error(br#"{"error":"invalid_grant","error_description":"x","error_codes":[700082]}"#);
        assert_eq!(with_codes.sub_code.as_deref(), Some("AADSTS700082"));
        let from_text = parse_oauth_error(br#"{"error":"invalid_grant","error_description":"AADSTS50173: gone"}"#);
        assert_eq!(from_text.sub_code.as_deref(), Some("AADSTS50173"));
        let google = parse_oauth_error(br#"{"error":"invalid_grant","error_description":"Bad Request"}"#);
        assert_eq!(google.sub_code, None);
    }

    #[test]
    fn api_error_bodies_of_each_provider_are_read() {
        let graph = br#"{"error":{"code":"itemNotFound","message":"The resource could not be found."}}"#;
        assert_eq!(api_error_fields(graph).0.as_deref(), Some("itemNotFound"));
        let google = br#"{"error":{"code":404,"message":"File not found: abc.","errors":[{"domain":"global","reason":"notFound","message":"File not found: abc."}]}}"#;
        assert_eq!(api_error_fields(google), (Some("notFound".into()), Some("File not found: abc.".into())));
        let dropbox = br#"{"error_summary":"shared_link_not_found/..","error":{".tag":"shared_link_not_found"}}"#;
        assert_eq!(api_error_fields(dropbox).0.as_deref(), Some("shared_link_not_found"));
        let boxcom = br#"{"type":"error","status":404,"code":"not_found","message":"Not Found","request_id":"abc"}"#;
        assert_eq!(api_error_fields(boxcom), (Some("not_found".into()), Some("Not Found".into())));
        assert_eq!(api_error_fields(b"<html>oops</html>"), (None, None));
    }

    #[test]
    fn google_403_rate_limits_are_rate_limits() {
        let body = br#"{"error":{"code":403,"message":"User Rate Limit Exceeded","errors":[{"reason":"userRateLimitExceeded"}]}}"#;
        let e = api_error(StatusCode::FORBIDDEN, &HeaderMap::new(), body);
        assert_eq!(e, ProviderError::RateLimited { retry_after: None });
        assert!(e.is_transient());
    }

    #[test]
    fn error_types_follow_the_status() {
        let rejected = |status| ProviderError::Rejected { status, code: None, description: None };
        assert_eq!(rejected(401).error_type(), ErrorType::Auth);
        assert_eq!(rejected(403).error_type(), ErrorType::Permission);
        assert_eq!(rejected(404).error_type(), ErrorType::Api);
        assert_eq!(rejected(507).error_type(), ErrorType::Quota);
        let quota =
            ProviderError::Rejected { status: 403, code: Some("storageQuotaExceeded".into()), description: None };
        assert_eq!(quota.error_type(), ErrorType::Quota);
        assert_eq!(ProviderError::Timeout.error_type(), ErrorType::Timeout);
        assert_eq!(ProviderError::Network("x".into()).error_type(), ErrorType::Network);
        assert_eq!(rejected(404).error_code().as_deref(), Some("404"));
    }

    #[test]
    fn ids_that_would_vanish_from_a_path_are_refused() {
        let base = Url::parse("https://graph.test/v1.0").unwrap();
        assert_eq!(endpoint(&base, &["items", "a/b%c", "x"]).as_str(), "https://graph.test/v1.0/items/a%2Fb%25c/x");
        for bad in ["", ".", ".."] {
            assert!(matches!(path_id(bad, "item id"), Err(ProviderError::Unsupported(_))), "{bad:?}");
        }
        assert_eq!(path_id("01BYE5RZ!54927", "item id"), Ok("01BYE5RZ!54927"));
    }

    #[test]
    fn pkce_challenge_is_s256_of_the_verifier() {
        // RFC 7636 appendix B.
        let pkce = Pkce::from_verifier(SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert_eq!(pkce.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let fresh = Pkce::generate();
        assert_eq!(fresh.verifier().expose_secret().len(), 43);
        assert_eq!(format!("{fresh:?}"), "Pkce([redacted])");
    }
}
