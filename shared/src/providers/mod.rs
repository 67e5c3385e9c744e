//! The cloud-storage providers: one definition per provider (its endpoints, scopes, OAuth quirks,
//! identity lookup and shared links) behind the [`Provider`] trait, and a [`Registry`] that
//! builds the configured ones once per cold start.
//!
//! Three layers, one file each: this module holds the [`Provider`] trait, the values it takes
//! and returns, [`ProviderError`] and the [`Registry`]; `oauth_client` the OAuth client every
//! definition uses for authorization URLs and token requests; `http` the HTTP plumbing
//! (sending, JSON answers, the providers' error bodies, `Retry-After`). Each provider is one
//! file beside them. Adding a provider means one new file implementing [`Provider`] and one
//! line in [`Registry::with_settings`].
//!
//! Tokens are [`SecretString`]s from the moment they are parsed; no error, Debug or Display
//! output here carries one, and nothing here logs.
//!
//! Every endpoint can be pointed elsewhere by [`ProviderConfig`]: `authorize_url` and
//! `token_url` replace the URLs whole, `revoke_url` replaces the revocation URL, and
//! `api_base_url` replaces the scheme and host of every API call, the provider's documented path
//! being appended to it (`{api_base_url}/v1.0/me`, `{api_base_url}/2.0/users/me`, ...).

mod boxcom;
pub mod browse;
mod dropbox;
mod google;
mod http;
mod microsoft;
pub mod notify;
mod oauth_client;
pub mod sync;
pub mod upload;

pub use browse::{Created, Entry, EntryPage, Library, Site, SitePage};
pub use http::parse_retry_after;
pub use notify::{WatchRequest, WatchScope, Watched, Watching};
pub use sync::{Change, ChangePage, ChildPage, Download, ItemKind, RemoteItem, SyncScope};
pub use upload::{Replace, Sent, UploadRules, UploadSession, UploadTarget, WholeFile};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use oauth2::{PkceCodeChallenge, PkceCodeVerifier};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Providers, into_secret};
use crate::db::{ErrorType, ProviderType, ResourceType, ShareType};

/// Total time allowed for one outbound call (connect, request, response body).
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to establish the connection (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Provider-supplied descriptions are cut to this many characters: they go into error rows and
/// logs, and Microsoft's carry trace ids and timestamps that make them long.
pub const MAX_DESCRIPTION_CHARS: usize = 300;

/// The longest a transfer (a download or upload body) may go without a byte moving.
pub const DEFAULT_TRANSFER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Timeouts of the HTTP clients all providers share: one for API calls (bounded as a whole),
/// one for file transfers (bounded by silence, since a large file takes long by right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub transfer_read_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            transfer_read_timeout: DEFAULT_TRANSFER_READ_TIMEOUT,
        }
    }
}

/// The two HTTP clients every provider definition gets.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    /// API calls: connect and total timeouts.
    pub api: reqwest::Client,
    /// File bodies: a connect timeout and a read timeout, no total one.
    pub transfer: reqwest::Client,
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
    /// The expiry the provider reports it set (Graph `expirationDateTime`, which a tenant's
    /// policy may cap; Dropbox `expires`; Box `unshared_at`), `None` when the link does not
    /// expire at the provider: an account type that refuses expiries, or Drive, which takes
    /// none (link-expiry removes its links instead).
    pub expires_at: Option<DateTime<Utc>>,
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
    /// A change cursor the provider no longer honours (Graph 410, Dropbox `reset`, a rejected
    /// Drive page token): the folder must be listed afresh from a new cursor.
    #[error("the provider asks for a full resync: {0}")]
    ResyncRequired(String),
    /// A conditional write found the provider's copy other than the one it was based on (Graph
    /// and Box 412, Dropbox `path/conflict`, Drive's head revision moved), or a new file's name
    /// taken: nothing was written, and a blind retry would fail the same way.
    #[error("the provider's copy changed or the name is taken: {0}")]
    Conflict(String),
    /// A resumable upload session the provider no longer has (expired, cancelled): the upload
    /// starts over.
    #[error("the provider no longer has the upload session")]
    UploadSessionGone,
}

impl From<crate::deadline::TimedOut> for ProviderError {
    fn from(_: crate::deadline::TimedOut) -> ProviderError {
        ProviderError::Timeout
    }
}

fn opt_prefix(prefix: &str, value: &Option<String>) -> String {
    value.as_ref().map(|v| format!("{prefix}{v}")).unwrap_or_default()
}

impl ProviderError {
    /// The `cloud_sync_errors.error_type` this failure is recorded as.
    pub fn error_type(&self) -> ErrorType {
        match self {
            ProviderError::NotConfigured { .. } | ProviderError::Unsupported(_) | ProviderError::Conflict(_) => {
                ErrorType::Validation
            }
            ProviderError::InvalidGrant { .. } => ErrorType::Auth,
            ProviderError::Timeout => ErrorType::Timeout,
            ProviderError::Network(_) => ErrorType::Network,
            ProviderError::RateLimited { .. }
            | ProviderError::Server { .. }
            | ProviderError::Malformed(_)
            | ProviderError::ResyncRequired(_)
            | ProviderError::UploadSessionGone => ErrorType::Api,
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
            ProviderError::ResyncRequired(_) => Some("resync_required".to_owned()),
            ProviderError::Conflict(_) => Some("conflict".to_owned()),
            ProviderError::UploadSessionGone => Some("upload_session_gone".to_owned()),
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

    /// Removes a link. A link (or item) the provider says it no longer has (its own JSON error:
    /// Graph `itemNotFound`, Drive `notFound`, Box `not_found`, Dropbox `shared_link_not_found`)
    /// counts as removed, so the link-expiry job can retry safely; any other 404 is a failure.
    async fn delete_shared_link(
        &self,
        access_token: &SecretString,
        target: &LinkTarget<'_>,
        link: &ExistingLink<'_>,
    ) -> Result<(), ProviderError>;

    // ---- sync (see [`sync`]) ------------------------------------------------------------

    /// A change cursor marking now, taken before a first crawl so that nothing changed during
    /// the crawl is missed: the first `changes` call from it replays those changes.
    async fn start_cursor(&self, access_token: &SecretString, scope: &SyncScope<'_>) -> Result<String, ProviderError> {
        let _ = (access_token, scope);
        Err(ProviderError::Unsupported(format!("{} cannot sync yet", self.provider_type())))
    }

    /// One page of the direct children of `folder_id` (the synced folder or one below it);
    /// `page` is the previous page's `next`.
    async fn list_children(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        folder_id: &str,
        page: Option<&str>,
    ) -> Result<ChildPage, ProviderError> {
        let _ = (access_token, scope, folder_id, page);
        Err(ProviderError::Unsupported(format!("{} cannot sync yet", self.provider_type())))
    }

    /// One page of changes since `cursor` (a stored cursor, or the previous page's `next`). A
    /// cursor the provider no longer honours is [`ProviderError::ResyncRequired`].
    async fn changes(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        cursor: &str,
    ) -> Result<ChangePage, ProviderError> {
        let _ = (access_token, scope, cursor);
        Err(ProviderError::Unsupported(format!("{} cannot sync yet", self.provider_type())))
    }

    /// A file's bytes, streamed. A pre-authenticated URL the provider redirects to is followed
    /// here, without the bearer token, and never returned, logged or stored.
    async fn download(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        item: &RemoteItem,
    ) -> Result<Download, ProviderError> {
        let _ = (access_token, scope, item);
        Err(ProviderError::Unsupported(format!("{} cannot sync yet", self.provider_type())))
    }

    // ---- uploads (see [`upload`]) ---------------------------------------------------------

    /// How this provider takes a file's bytes: the largest single-request upload and the
    /// session part size.
    fn upload_rules(&self) -> UploadRules {
        UploadRules::NONE
    }

    /// A file of at most [`UploadRules::simple_max`] bytes in one request: a new file (failing
    /// with [`ProviderError::Conflict`] when the name is taken) or a new version of
    /// `target.replace`, conditional on its revision.
    async fn upload_small(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        body: bytes::Bytes,
    ) -> Result<RemoteItem, ProviderError> {
        let _ = (access_token, scope, target, body);
        Err(ProviderError::Unsupported(format!("{} cannot upload yet", self.provider_type())))
    }

    /// Opens a resumable upload session for `target` (conditional as [`Provider::upload_small`]).
    async fn start_upload(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
    ) -> Result<UploadSession, ProviderError> {
        let _ = (access_token, scope, target);
        Err(ProviderError::Unsupported(format!("{} cannot upload yet", self.provider_type())))
    }

    /// Sends the part of `target` that starts at `offset`; the session's last part answers the
    /// file when the provider ends the session by itself (Graph, Drive).
    async fn upload_part(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        session: &UploadSession,
        offset: u64,
        part: bytes::Bytes,
    ) -> Result<Sent, ProviderError> {
        let _ = (access_token, scope, target, session, offset, part);
        Err(ProviderError::Unsupported(format!("{} cannot upload yet", self.provider_type())))
    }

    /// Where a session resumes: the first byte the provider has not received (a run that ended
    /// mid-part, or whose last checkpoint is behind, asks before sending on).
    /// [`ProviderError::UploadSessionGone`] when the session is no more.
    async fn upload_offset(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        session: &UploadSession,
    ) -> Result<u64, ProviderError> {
        let _ = (access_token, scope, target, session);
        Err(ProviderError::Unsupported(format!("{} cannot upload yet", self.provider_type())))
    }

    /// Commits a session whose parts are all sent, for providers that commit separately
    /// (Dropbox `finish`, Box `commit`); the others' last part has ended it already.
    async fn finish_upload(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        target: &UploadTarget<'_>,
        session: &UploadSession,
        whole: &WholeFile,
    ) -> Result<RemoteItem, ProviderError> {
        let _ = (access_token, scope, target, session, whole);
        Err(ProviderError::Unsupported(format!("{} ends an upload session with its last part", self.provider_type())))
    }

    /// Deletes a file Quodsi deleted, to the provider's trash or recycle bin, only if it is
    /// still the version `base` describes ([`ProviderError::Conflict`] otherwise); a file already
    /// gone counts as deleted.
    async fn delete_file(
        &self,
        access_token: &SecretString,
        scope: &SyncScope<'_>,
        base: &Replace<'_>,
    ) -> Result<(), ProviderError> {
        let _ = (access_token, scope, base);
        Err(ProviderError::Unsupported(format!("{} cannot delete files yet", self.provider_type())))
    }

    /// Cancels a session (an upload given up or started over); one already gone counts as
    /// cancelled.
    async fn cancel_upload(&self, access_token: &SecretString, session: &UploadSession) -> Result<(), ProviderError> {
        let _ = (access_token, session);
        Ok(())
    }

    // ---- the folder picker (see [`browse`]) ---------------------------------------------

    /// One page of the children of `parent` (the drive's root when `None`), at most about
    /// `limit` of them; `page` is the previous page's `next`. A parent the provider does not
    /// have is a [`ProviderError::Rejected`] 404 (the caller checks the parent first with
    /// [`Provider::item`]).
    async fn browse(
        &self,
        access_token: &SecretString,
        metadata: Option<&Value>,
        parent: Option<&str>,
        page: Option<&str>,
        limit: u16,
    ) -> Result<EntryPage, ProviderError>;

    /// The item `id` names, or `None` when the provider has no such item (or only in its
    /// trash, or `id` cannot be one of its ids: ids come from callers).
    async fn item(
        &self,
        access_token: &SecretString,
        metadata: Option<&Value>,
        id: &str,
    ) -> Result<Option<Entry>, ProviderError>;

    /// A new folder `name` in `parent` (a folder [`Provider::item`] returned; the root when
    /// `None`), never a second item of the same name: an existing one is answered as
    /// [`Created::Exists`]. `name` has passed [`browse::check_name`].
    async fn create_folder(
        &self,
        access_token: &SecretString,
        metadata: Option<&Value>,
        parent: Option<&Entry>,
        name: &str,
    ) -> Result<Created, ProviderError>;

    // ---- change subscriptions (see [`notify`]) -------------------------------------------

    /// What one of this provider's subscriptions covers.
    fn watch_scope(&self) -> WatchScope;

    /// Makes a subscription that notifies `request.address`.
    async fn watch(&self, access_token: &SecretString, request: &WatchRequest<'_>) -> Result<Watching, ProviderError>;

    /// Keeps `existing` going until about `request.expires_at`: the same subscription with a
    /// later expiry, or a new one that replaces it (the old one removed).
    async fn renew_watch(
        &self,
        access_token: &SecretString,
        existing: &Watched<'_>,
        request: &WatchRequest<'_>,
    ) -> Result<Watching, ProviderError>;

    /// Removes a subscription; one the provider no longer has counts as removed.
    async fn unwatch(&self, access_token: &SecretString, existing: &Watched<'_>) -> Result<(), ProviderError>;

    /// SharePoint sites matching `search` (all the user can see when `None`).
    async fn sites(
        &self,
        access_token: &SecretString,
        search: Option<&str>,
        page: Option<&str>,
        limit: u16,
    ) -> Result<SitePage, ProviderError> {
        let _ = (access_token, search, page, limit);
        Err(ProviderError::Unsupported(format!("{} has no SharePoint sites; browse its drive", self.provider_type())))
    }

    /// The document libraries of a SharePoint site; `metadata` tells the connection's own
    /// library, whose items keep plain ids.
    async fn libraries(
        &self,
        access_token: &SecretString,
        metadata: Option<&Value>,
        site_id: &str,
    ) -> Result<Vec<Library>, ProviderError> {
        let _ = (access_token, metadata, site_id);
        Err(ProviderError::Unsupported(format!("{} has no SharePoint sites; browse its drive", self.provider_type())))
    }
}

/// The configured providers, built once per cold start. Clones are cheap: the definitions and
/// their one HTTP client are shared.
#[derive(Debug, Clone)]
pub struct Registry {
    providers: HashMap<ProviderType, Result<Arc<dyn Provider>, String>>,
    redirect_base: Option<String>,
}

/// The TLS configuration of every provider client: what reqwest builds by default (aws-lc-rs,
/// TLS 1.2 and 1.3, the platform's roots through rustls-platform-verifier, HTTP/2 or HTTP/1.1
/// by ALPN), built once per process. Each reqwest client would otherwise build its own
/// verifier, and a verifier loads and parses the platform's root certificates when it is made:
/// 1.2 ms of CPU each on this machine, paid twice per registry (the API and the transfer client) and again at
/// every registry built later (token-refresh builds one per run). The clones share the verifier
/// and the TLS session cache, so a registry built later also resumes earlier sessions.
fn provider_tls() -> Result<rustls::ClientConfig, ProviderError> {
    static TLS: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    if let Some(tls) = TLS.get() {
        return Ok(tls.clone());
    }
    let failed =
        |e: rustls::Error| ProviderError::Network(format!("cannot build the HTTP client's TLS configuration: {e}"));
    let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(crypto.clone()).map_err(failed)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(crypto)
        .with_safe_default_protocol_versions()
        .map_err(failed)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // reqwest sets ALPN itself only on configurations it builds; these are its defaults with
    // its `http2` feature on. A TLS setting made later on a client builder (a minimum version,
    // SNI) would not apply to this configuration: such settings belong here.
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Kept only once built: a failure (no roots readable) is tried again at the next registry.
    Ok(TLS.get_or_init(|| tls).clone())
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
        let tls = provider_tls()?;
        let built_client = |b: reqwest::ClientBuilder| {
            // A 307/308 from a token endpoint would re-send the client secret and refresh token
            // to wherever it points; the downloads that redirect (Graph, Box) are followed by
            // hand, without the bearer token.
            b.tls_backend_preconfigured(tls.clone())
                .connect_timeout(settings.connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("quodsi-cloud-connections/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| {
                    ProviderError::Network(format!("cannot build the HTTP client: {}", crate::error_chain(&e)))
                })
        };
        let http = Clients {
            api: built_client(reqwest::Client::builder().timeout(settings.total_timeout))?,
            transfer: built_client(reqwest::Client::builder().read_timeout(settings.transfer_read_timeout))?,
        };
        let mut built = HashMap::new();
        for provider in providers.configured() {
            let Some(config) = providers.get(provider) else { continue };
            let definition: Result<Arc<dyn Provider>, String> = match provider {
                ProviderType::OneDrive | ProviderType::SharePoint => {
                    microsoft::Microsoft::new(provider, config, &http).map(|p| Arc::new(p) as _)
                }
                ProviderType::GDrive => google::Google::new(config, &http).map(|p| Arc::new(p) as _),
                ProviderType::Dropbox => dropbox::Dropbox::new(config, &http).map(|p| Arc::new(p) as _),
                ProviderType::Box => boxcom::BoxCom::new(config, &http).map(|p| Arc::new(p) as _),
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
    fn pkce_challenge_is_s256_of_the_verifier() {
        // RFC 7636 appendix B.
        let pkce = Pkce::from_verifier(SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert_eq!(pkce.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let fresh = Pkce::generate();
        assert_eq!(fresh.verifier().expose_secret().len(), 43);
        assert_eq!(format!("{fresh:?}"), "Pkce([redacted])");
    }
}
