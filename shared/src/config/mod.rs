//! The functions' configuration: one JSON document, from Secrets Manager in AWS or from a file
//! or an environment variable locally, parsed into a typed [`Config`] once per cold start and
//! re-read after a TTL (see [`ConfigCache`]).
//!
//! ```json
//! {
//!   "database_url": "sqlite://quodsi.db",
//!   "token_keys": { "k2025-01": "<base64 of 32 bytes>", "k2025-06": "<base64 of 32 bytes>" },
//!   "active_token_key": "k2025-06",
//!   "oauth_state_key": "<base64 of 32 bytes>",
//!   "providers": {
//!     "onedrive": { "client_id": "...", "client_secret": "...", "tenant": "common" },
//!     "gdrive": { "client_id": "...", "client_secret": "...", "token_url": "http://127.0.0.1:9000/token" }
//!   },
//!   "tenant_claim": "tenant_id",
//!   "return_to_allowlist": ["https://app.quodsi.com"],
//!   "oauth_redirect_base_url": "https://api.quodsi.com"
//! }
//! ```
//!
//! The document is walked by hand rather than through serde derive: serde's messages quote the
//! offending value ("invalid type: string \"...\""), and a value here is usually a secret.
//! Every error below names the field and never the value.

mod return_to;
mod source;

pub use source::{
    CONFIG_FILE_ENV, CONFIG_JSON_ENV, CONFIG_SECRET_ARN_ENV, CONFIG_TTL_ENV, ConfigCache, ConfigSource, DEFAULT_TTL,
};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use secrecy::zeroize::{Zeroize, Zeroizing};
use secrecy::{SecretBox, SecretString};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

use crate::db::ProviderType;
use crate::vault::{KEY_LEN, KeyId, STATE_KEY_LEN, TokenKeys, VaultError};

/// The budget of an HTTP request when the configuration sets none (`request_budget_ms`):
/// under the HTTP functions' 29 s Lambda timeout, itself under API Gateway's 30 s.
pub const DEFAULT_REQUEST_BUDGET: std::time::Duration = std::time::Duration::from_secs(25);

/// Default JWT claim holding the caller's tenant id.
pub const DEFAULT_TENANT_CLAIM: &str = "tenant_id";

/// Why a configuration could not be had. No variant carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration source: set {CONFIG_SECRET_ARN_ENV}, {CONFIG_FILE_ENV} or {CONFIG_JSON_ENV}")]
    NoSource,
    #[error("environment variable {var} {problem}")]
    Env { var: &'static str, problem: String },
    #[error("cannot read configuration file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration secret {secret_id} not found")]
    SecretNotFound { secret_id: String },
    #[error("configuration secret {secret_id} has no SecretString (binary secrets are not supported)")]
    SecretNotString { secret_id: String },
    #[error("cannot read configuration secret {secret_id}: {message}")]
    SecretsManager { secret_id: String, message: String },
    /// Only the position and category of a syntax error; serde_json's own message is not used
    /// so no fragment of the document can appear.
    #[error("configuration is not valid JSON ({category} error at line {line}, column {column})")]
    Json { category: &'static str, line: usize, column: usize },
    #[error("configuration field `{field}` {problem}")]
    Field { field: String, problem: String },
    #[error("cannot set up the AWS client that reads the configuration secret")]
    Aws(#[from] crate::aws::AwsSetupError),
}

impl ConfigError {
    fn field(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::Field { field: field.into(), problem: problem.into() }
    }

    /// The offending field, for a [`ConfigError::Field`].
    pub fn field_name(&self) -> Option<&str> {
        match self {
            ConfigError::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// One provider's OAuth client and optional endpoint overrides (tests point these at a local
/// fake; production leaves them out and gets each provider's well-known endpoints).
#[derive(Debug)]
pub struct ProviderConfig {
    pub client_id: String,
    pub client_secret: SecretString,
    /// Microsoft Entra tenant (`common`, `organizations` or a directory id); OneDrive and
    /// SharePoint only.
    pub tenant: Option<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub api_base_url: Option<String>,
    pub revoke_url: Option<String>,
    /// Replaces the provider definition's default scopes (e.g. Google's `drive` by the narrower
    /// `drive.file`), so a narrower grant is a configuration change, not a release.
    pub scopes: Option<Vec<String>>,
    /// Box only: the app's webhook signature keys (Developer Console, Webhooks, Manage
    /// signature keys). A delivery signed with neither is refused; with both absent, every
    /// Box notification is.
    pub webhook_primary_key: Option<SecretString>,
    pub webhook_secondary_key: Option<SecretString>,
}

/// The configured providers. A provider missing here is unconfigured: its endpoints answer
/// 503, nothing fails at start-up.
#[derive(Debug, Default)]
pub struct Providers(HashMap<ProviderType, ProviderConfig>);

impl Providers {
    pub fn get(&self, provider: ProviderType) -> Option<&ProviderConfig> {
        self.0.get(&provider)
    }

    pub fn configured(&self) -> impl Iterator<Item = ProviderType> + '_ {
        self.0.keys().copied()
    }
}

/// The parsed, validated configuration. Debug output redacts every secret.
#[derive(Debug)]
pub struct Config {
    /// May carry a password, so it is a secret.
    pub database_url: SecretString,
    pub token_keys: TokenKeys,
    pub oauth_state_key: SecretBox<[u8; STATE_KEY_LEN]>,
    pub providers: Providers,
    /// JWT claim holding the caller's tenant id.
    pub tenant_claim: String,
    /// Origins (`https://app.example.com`) or URL prefixes ending in `/` that a `return_to`
    /// may point at.
    pub return_to_allowlist: Vec<String>,
    /// Public base URL of the OAuth callback (`https://api.example.com`, or with a path
    /// prefix such as a stage); see [`Config::oauth_redirect_uri`].
    pub oauth_redirect_base_url: Option<String>,
    /// Public base URL of the webhook receivers (`https://api.example.com`): change
    /// subscriptions are made to `{webhook_base_url}/webhooks/{graph|gdrive|box}`. Without it
    /// no subscription is made and folders sync by polling alone.
    pub webhook_base_url: Option<String>,
    /// How long an HTTP request may take, provider calls included (`request_budget_ms`,
    /// default [`DEFAULT_REQUEST_BUDGET`]); the Lambda's own deadline cuts it shorter when it
    /// comes first. See `shared::deadline`.
    pub request_budget: std::time::Duration,
}

const TOP_LEVEL_FIELDS: &[&str] = &[
    "database_url",
    "token_keys",
    "active_token_key",
    "oauth_state_key",
    "providers",
    "tenant_claim",
    "return_to_allowlist",
    "oauth_redirect_base_url",
    "webhook_base_url",
    "request_budget_ms",
];

const PROVIDER_FIELDS: &[&str] = &[
    "client_id",
    "client_secret",
    "tenant",
    "authorize_url",
    "token_url",
    "api_base_url",
    "revoke_url",
    "scopes",
    "webhook_primary_key",
    "webhook_secondary_key",
];

impl Config {
    /// Parses and validates the JSON document. The error names the first bad field.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Json {
            category: match e.classify() {
                serde_json::error::Category::Io => "I/O",
                serde_json::error::Category::Syntax => "syntax",
                serde_json::error::Category::Data => "data",
                serde_json::error::Category::Eof => "unexpected end of input",
            },
            line: e.line(),
            column: e.column(),
        })?;
        let Value::Object(mut doc) = value else {
            return Err(ConfigError::field("(document)", "must be a JSON object"));
        };
        if let Some(unknown) = doc.keys().find(|k| !TOP_LEVEL_FIELDS.contains(&k.as_str())) {
            return Err(ConfigError::field(unknown.clone(), "is not a known field"));
        }

        let database_url = take_secret_string(&mut doc, "database_url", "database_url")?
            .ok_or_else(|| ConfigError::field("database_url", "is missing"))?;
        let token_keys = parse_token_keys(&mut doc)?;
        let oauth_state_key = match doc.remove("oauth_state_key") {
            Some(v) => decode_key(v, "oauth_state_key")?,
            None => return Err(ConfigError::field("oauth_state_key", "is missing")),
        };
        let providers = parse_providers(doc.remove("providers"))?;
        let tenant_claim = match take_string(&mut doc, "tenant_claim", "tenant_claim")? {
            Some(claim) => claim,
            None => DEFAULT_TENANT_CLAIM.to_owned(),
        };
        let return_to_allowlist = parse_allowlist(doc.remove("return_to_allowlist"))?;
        let oauth_redirect_base_url = parse_base_url(&mut doc, "oauth_redirect_base_url")?;
        let webhook_base_url = parse_base_url(&mut doc, "webhook_base_url")?;
        let request_budget = parse_request_budget(&mut doc)?;

        Ok(Config {
            database_url,
            token_keys,
            oauth_state_key,
            providers,
            tenant_claim,
            return_to_allowlist,
            oauth_redirect_base_url,
            webhook_base_url,
            request_budget,
        })
    }

    /// The `redirect_uri` registered with `provider`: `{oauth_redirect_base_url}/oauth/callback/{provider}`.
    /// `None` when the base is not configured, since no callback can be reached then.
    pub fn oauth_redirect_uri(&self, provider: ProviderType) -> Option<String> {
        self.oauth_redirect_base_url.as_deref().map(|base| callback_uri(base, provider))
    }

    /// Whether `url` is an allowed `return_to`. An origin entry admits that exact origin (any
    /// path); a prefix entry ends in `/` and admits the paths under it. Compared on parsed URLs
    /// (scheme, host, port, path), and a `return_to` whose path a browser would resolve
    /// elsewhere than it reads (dot segments, encoded slashes) is refused: see `return_to.rs`.
    pub fn is_return_to_allowed(&self, url: &str) -> bool {
        let Some(target) = return_to::parse_strict(url) else {
            return false;
        };
        self.return_to_allowlist
            .iter()
            .filter_map(|entry| return_to::parse_strict(entry))
            .any(|entry| return_to::admits(&entry, &target))
    }
}

/// The OAuth callback route under a base URL, shared with `providers::Registry`.
pub(crate) fn callback_uri(base: &str, provider: ProviderType) -> String {
    format!("{}/oauth/callback/{provider}", base.trim_end_matches('/'))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Removes an optional string field; `path` is the dotted name used in errors.
fn take_string(obj: &mut Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, ConfigError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(ConfigError::field(path, "must not be empty")),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ConfigError::field(path, format!("must be a string, not {}", type_name(&other)))),
    }
}

/// Like [`take_string`], for a secret: the parsed copy is zeroized once it is in the secret.
fn take_secret_string(
    obj: &mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<SecretString>, ConfigError> {
    Ok(take_string(obj, key, path)?.map(into_secret))
}

/// Moves a string into a secret and wipes the original. `SecretString::from(String)` would
/// shrink the buffer, and a shrink may reallocate and leave an unzeroized copy behind;
/// `From<&str>` allocates exactly.
pub(crate) fn into_secret(mut s: String) -> SecretString {
    let secret = SecretString::from(s.as_str());
    s.zeroize();
    secret
}

/// Decodes a base64 string into a 32-byte key without the key passing through an unzeroized
/// buffer.
fn decode_key(value: Value, path: &str) -> Result<SecretBox<[u8; KEY_LEN]>, ConfigError> {
    let Value::String(mut text) = value else {
        return Err(ConfigError::field(
            path,
            format!("must be a base64 string of {KEY_LEN} bytes, not {}", type_name(&value)),
        ));
    };
    // Room for one byte too many, so an over-long key is told apart from bad base64.
    let mut buf = Zeroizing::new([0u8; KEY_LEN + 3]);
    let decoded = STANDARD_PAD_INDIFFERENT.decode_slice(text.trim().as_bytes(), &mut buf[..]);
    text.zeroize();
    match decoded {
        Ok(KEY_LEN) => Ok(SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| k.copy_from_slice(&buf[..KEY_LEN]))),
        Ok(n) => Err(ConfigError::field(path, format!("must decode to {KEY_LEN} bytes, not {n}"))),
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            Err(ConfigError::field(path, format!("must decode to {KEY_LEN} bytes, not more")))
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => Err(ConfigError::field(path, "is not valid base64")),
    }
}

fn parse_token_keys(doc: &mut Map<String, Value>) -> Result<TokenKeys, ConfigError> {
    let entries = match doc.remove("token_keys") {
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ConfigError::field(
                "token_keys",
                format!("must be an object of key id to base64 key, not {}", type_name(&other)),
            ));
        }
        None => return Err(ConfigError::field("token_keys", "is missing")),
    };
    if entries.is_empty() {
        return Err(ConfigError::field("token_keys", "must hold at least one key"));
    }
    let mut keys = BTreeMap::new();
    for (id, value) in entries {
        // An invalid id is not echoed: it is not known to be a harmless name.
        let key_id = KeyId::new(id).map_err(|_| {
            ConfigError::field("token_keys", "has a key id that is not 1 to 32 characters of A-Z a-z 0-9 . _ -")
        })?;
        let key = decode_key(value, &format!("token_keys.{key_id}"))?;
        keys.insert(key_id, key);
    }
    let active = match take_string(doc, "active_token_key", "active_token_key")? {
        Some(id) => KeyId::new(id).map_err(|_| ConfigError::field("active_token_key", "is not a valid key id"))?,
        None => return Err(ConfigError::field("active_token_key", "is missing")),
    };
    TokenKeys::new(active, keys).map_err(|e| match e {
        VaultError::ActiveKeyMissing(active) => {
            ConfigError::field("active_token_key", format!("names key `{active}`, which is not in `token_keys`"))
        }
        other => ConfigError::field("active_token_key", other.to_string()),
    })
}

fn parse_providers(value: Option<Value>) -> Result<Providers, ConfigError> {
    let entries = match value {
        None | Some(Value::Null) => return Ok(Providers::default()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ConfigError::field("providers", format!("must be an object, not {}", type_name(&other))));
        }
    };
    let mut providers = HashMap::new();
    for (name, entry) in entries {
        let provider: ProviderType = name.parse().map_err(|_| {
            ConfigError::field(
                format!("providers.{name}"),
                "is not a known provider (onedrive, sharepoint, gdrive, dropbox, box)",
            )
        })?;
        let path = format!("providers.{name}");
        let mut fields = match entry {
            // A placeholder entry means "not configured", like an absent one.
            Value::Null => continue,
            Value::Object(map) if map.is_empty() => continue,
            Value::Object(map) => map,
            other => {
                return Err(ConfigError::field(path, format!("must be an object, not {}", type_name(&other))));
            }
        };
        if let Some(unknown) = fields.keys().find(|k| !PROVIDER_FIELDS.contains(&k.as_str())) {
            return Err(ConfigError::field(format!("{path}.{unknown}"), "is not a known field"));
        }
        let field = |f: &str| format!("{path}.{f}");
        let client_id = take_string(&mut fields, "client_id", &field("client_id"))?
            .ok_or_else(|| ConfigError::field(field("client_id"), "is missing"))?;
        let client_secret = take_secret_string(&mut fields, "client_secret", &field("client_secret"))?
            .ok_or_else(|| ConfigError::field(field("client_secret"), "is missing"))?;
        let tenant = take_string(&mut fields, "tenant", &field("tenant"))?;
        if tenant.is_some() && !matches!(provider, ProviderType::OneDrive | ProviderType::SharePoint) {
            return Err(ConfigError::field(field("tenant"), "applies to onedrive and sharepoint only"));
        }
        let mut url = |key: &str| -> Result<Option<String>, ConfigError> {
            let path = field(key);
            let value = take_string(&mut fields, key, &path)?;
            if let Some(u) = &value {
                check_http_url(u, &path)?;
            }
            Ok(value)
        };
        let authorize_url = url("authorize_url")?;
        let token_url = url("token_url")?;
        let api_base_url = url("api_base_url")?;
        let revoke_url = url("revoke_url")?;
        let scopes = parse_scopes(fields.remove("scopes"), &field("scopes"))?;
        let webhook_primary_key =
            take_secret_string(&mut fields, "webhook_primary_key", &field("webhook_primary_key"))?;
        let webhook_secondary_key =
            take_secret_string(&mut fields, "webhook_secondary_key", &field("webhook_secondary_key"))?;
        if (webhook_primary_key.is_some() || webhook_secondary_key.is_some()) && provider != ProviderType::Box {
            return Err(ConfigError::field(field("webhook_primary_key"), "applies to box only"));
        }
        let config = ProviderConfig {
            client_id,
            client_secret,
            tenant,
            authorize_url,
            token_url,
            api_base_url,
            revoke_url,
            scopes,
            webhook_primary_key,
            webhook_secondary_key,
        };
        providers.insert(provider, config);
    }
    Ok(Providers(providers))
}

/// Scopes are sent space-separated, so one holding a space would silently become two.
fn parse_scopes(value: Option<Value>, path: &str) -> Result<Option<Vec<String>>, ConfigError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(ConfigError::field(path, "must hold at least one scope (leave it out for the defaults)"));
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ConfigError::field(path, format!("must be an array of strings, not {}", type_name(&other))));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) if s.is_empty() || s.chars().any(char::is_whitespace) => {
                Err(ConfigError::field(format!("{path}[{i}]"), "must be one non-empty scope without spaces"))
            }
            Value::String(s) => Ok(s),
            other => {
                Err(ConfigError::field(format!("{path}[{i}]"), format!("must be a string, not {}", type_name(&other))))
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The callback base is joined with `/oauth/callback/{provider}`, so a query or fragment in it
/// would end up before the path; a trailing `/` is dropped so the join has exactly one.
/// A public base URL (`oauth_redirect_base_url`, `webhook_base_url`): HTTP(S), no query or
/// fragment, kept without a trailing slash.
fn parse_base_url(doc: &mut Map<String, Value>, field: &'static str) -> Result<Option<String>, ConfigError> {
    let Some(base) = take_string(doc, field, field)? else {
        return Ok(None);
    };
    check_http_url(&base, field)?;
    if base.contains(['?', '#']) {
        return Err(ConfigError::field(field, "must not have a query or fragment"));
    }
    Ok(Some(base.trim_end_matches('/').to_owned()))
}

/// Milliseconds, 100 to 900000 (the longest a Lambda runs).
fn parse_request_budget(doc: &mut Map<String, Value>) -> Result<std::time::Duration, ConfigError> {
    const FIELD: &str = "request_budget_ms";
    match doc.remove(FIELD) {
        None | Some(Value::Null) => Ok(DEFAULT_REQUEST_BUDGET),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(ms @ 100..=900_000) => Ok(std::time::Duration::from_millis(ms)),
            _ => Err(ConfigError::field(FIELD, "must be a whole number of milliseconds from 100 to 900000")),
        },
        Some(other) => Err(ConfigError::field(FIELD, format!("must be a number, not {}", type_name(&other)))),
    }
}

/// An absolute http(s) URL with a host. Plain http is accepted because tests point providers
/// at a local fake; production overrides are reviewed with the secret.
fn check_http_url(url: &str, path: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| ConfigError::field(path, "must be an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || url.chars().any(char::is_whitespace) {
        return Err(ConfigError::field(path, "must be an absolute URL with a host and no credentials"));
    }
    Ok(())
}

fn parse_allowlist(value: Option<Value>) -> Result<Vec<String>, ConfigError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ConfigError::field(
                "return_to_allowlist",
                format!("must be an array of strings, not {}", type_name(&other)),
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("return_to_allowlist[{i}]");
            let Value::String(entry) = item else {
                return Err(ConfigError::field(path, format!("must be a string, not {}", type_name(&item))));
            };
            check_http_url(&entry, &path)?;
            let Some(url) = return_to::parse_strict(&entry) else {
                return Err(ConfigError::field(
                    path,
                    "must be an http(s) URL without credentials, dot segments or encoded slashes",
                ));
            };
            // An entry with a path must end in `/`: `https://a.test/app` as a prefix would
            // also admit `https://a.test/application-of-someone-else`.
            if url.query().is_some() || url.fragment().is_some() || !url.path().ends_with('/') {
                return Err(ConfigError::field(path, "must be an origin (no path) or a prefix ending in `/`"));
            }
            Ok(entry)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::json;

    const KEY_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="; // 32 x 'A'
    const KEY_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="; // 32 x 'B'
    const STATE_KEY: &str = "U1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1M="; // 32 x 'S'
    const CLIENT_SECRET: &str = "client-secret-must-not-leak-7d1e";
    const DB_PASSWORD: &str = "db-password-must-not-leak-91ab";

    fn good() -> Value {
        json!({
            "database_url": format!("mssql://app:{DB_PASSWORD}@db.internal/quodsi"),
            "token_keys": { "k1": KEY_A, "k2": KEY_B },
            "active_token_key": "k2",
            "oauth_state_key": STATE_KEY,
            "providers": {
                "onedrive": { "client_id": "od-client", "client_secret": CLIENT_SECRET, "tenant": "common" },
                "gdrive": {
                    "client_id": "gd-client", "client_secret": CLIENT_SECRET,
                    "token_url": "http://127.0.0.1:9000/token"
                },
                "dropbox": {}
            },
            "return_to_allowlist": ["https://app.quodsi.com", "http://localhost:3000/app/"]
        })
    }

    fn with(mutate: impl FnOnce(&mut Map<String, Value>)) -> Result<Config, ConfigError> {
        let mut doc = good();
        mutate(doc.as_object_mut().unwrap());
        Config::from_json(&doc.to_string())
    }

    /// Asserts the error names `field` and quotes no secret.
    fn assert_field_error(result: Result<Config, ConfigError>, field: &str) {
        let err = result.expect_err("configuration should be refused");
        let msg = err.to_string();
        assert_eq!(err.field_name(), Some(field), "{msg}");
        assert!(msg.contains(field), "{msg}");
        for secret in [KEY_A, KEY_B, STATE_KEY, CLIENT_SECRET, DB_PASSWORD] {
            assert!(!msg.contains(secret), "secret in error: {msg}");
        }
    }

    #[test]
    fn a_complete_document_loads() {
        let config = Config::from_json(&good().to_string()).unwrap();
        assert!(config.database_url.expose_secret().starts_with("mssql://app:"));
        assert_eq!(config.token_keys.active().as_str(), "k2");
        assert_eq!(config.token_keys.keys().len(), 2);
        let k1 = KeyId::new("k1").unwrap();
        assert_eq!(config.token_keys.keys()[&k1].expose_secret(), &[b'A'; KEY_LEN]);
        assert_eq!(config.oauth_state_key.expose_secret(), &[b'S'; KEY_LEN]);
        let od = config.providers.get(ProviderType::OneDrive).unwrap();
        assert_eq!(od.client_id, "od-client");
        assert_eq!(od.client_secret.expose_secret(), CLIENT_SECRET);
        assert_eq!(od.tenant.as_deref(), Some("common"));
        let gd = config.providers.get(ProviderType::GDrive).unwrap();
        assert_eq!(gd.token_url.as_deref(), Some("http://127.0.0.1:9000/token"));
        assert!(config.providers.get(ProviderType::Dropbox).is_none());
        assert!(config.providers.get(ProviderType::Box).is_none());
        assert_eq!(config.tenant_claim, DEFAULT_TENANT_CLAIM);
        assert_eq!(config.return_to_allowlist.len(), 2);
        assert_eq!(config.request_budget, DEFAULT_REQUEST_BUDGET);
    }

    #[test]
    fn the_request_budget_is_milliseconds_in_range() {
        let with = |v: Value| {
            let mut doc = good();
            doc["request_budget_ms"] = v;
            Config::from_json(&doc.to_string())
        };

        let set = with(json!(1500)).unwrap();
        let refused = [json!(99), json!(900_001), json!(-1), json!(1.5), json!("1500")].map(|v| with(v).unwrap_err());

        assert_eq!(set.request_budget, std::time::Duration::from_millis(1500));
        for e in refused {
            assert_eq!(e.field_name(), Some("request_budget_ms"), "{e}");
        }
    }

    #[test]
    fn debug_output_redacts_every_secret() {
        let config = Config::from_json(&good().to_string()).unwrap();
        let dbg = format!("{config:?}");
        assert!(dbg.contains("od-client"), "{dbg}");
        for secret in [CLIENT_SECRET, DB_PASSWORD, "65, 65, 65", "83, 83, 83"] {
            assert!(!dbg.contains(secret), "secret in Debug: {dbg}");
        }
    }

    #[test]
    fn providers_and_optional_fields_may_be_absent() {
        let config = with(|d| {
            d.remove("providers");
            d.remove("return_to_allowlist");
            d.insert("tenant_claim".into(), json!("custom:tenant"));
        })
        .unwrap();
        assert_eq!(config.providers.configured().count(), 0);
        assert!(config.return_to_allowlist.is_empty());
        assert_eq!(config.tenant_claim, "custom:tenant");
    }

    #[test]
    fn missing_required_fields_are_named() {
        for field in ["database_url", "token_keys", "active_token_key", "oauth_state_key"] {
            assert_field_error(
                with(|d| {
                    d.remove(field);
                }),
                field,
            );
        }
        assert_field_error(
            with(|d| {
                d["providers"]["onedrive"].as_object_mut().unwrap().remove("client_secret");
            }),
            "providers.onedrive.client_secret",
        );
        assert_field_error(
            with(|d| {
                d["providers"]["gdrive"].as_object_mut().unwrap().remove("client_id");
            }),
            "providers.gdrive.client_id",
        );
    }

    #[test]
    fn bad_keys_are_named_without_their_value() {
        assert_field_error(with(|d| d["token_keys"]["k1"] = json!(format!("!{CLIENT_SECRET}!"))), "token_keys.k1");
        // 31 bytes, 33 bytes, and a number where a string belongs.
        assert_field_error(
            with(|d| d["token_keys"]["k1"] = json!(STANDARD_PAD_INDIFFERENT.encode([1u8; 31]))),
            "token_keys.k1",
        );
        assert_field_error(
            with(|d| d["token_keys"]["k1"] = json!(STANDARD_PAD_INDIFFERENT.encode([1u8; 33]))),
            "token_keys.k1",
        );
        assert_field_error(
            with(|d| d["oauth_state_key"] = json!(STANDARD_PAD_INDIFFERENT.encode([1u8; 16]))),
            "oauth_state_key",
        );
        assert_field_error(with(|d| d["oauth_state_key"] = json!(12345)), "oauth_state_key");
        assert_field_error(with(|d| d["token_keys"] = json!({})), "token_keys");
        assert_field_error(with(|d| d["token_keys"] = json!(KEY_A)), "token_keys");
        assert_field_error(
            with(|d| {
                d["token_keys"].as_object_mut().unwrap().insert(KEY_B.into(), json!(KEY_A));
            }),
            "token_keys",
        );
    }

    #[test]
    fn the_active_key_must_be_among_the_keys() {
        let err = with(|d| d["active_token_key"] = json!("k9")).unwrap_err();
        assert_eq!(err.field_name(), Some("active_token_key"));
        assert!(err.to_string().contains("k9"), "{err}");
        assert_field_error(with(|d| d["active_token_key"] = json!(KEY_A)), "active_token_key");
    }

    #[test]
    fn unknown_providers_and_fields_are_named() {
        assert_field_error(
            with(|d| d["providers"]["icloud"] = json!({"client_id": "x", "client_secret": CLIENT_SECRET})),
            "providers.icloud",
        );
        assert_field_error(
            with(|d| d["providers"]["gdrive"]["tokn_url"] = json!("https://x.test")),
            "providers.gdrive.tokn_url",
        );
        assert_field_error(with(|d| d["providers"]["gdrive"]["tenant"] = json!("common")), "providers.gdrive.tenant");
        assert_field_error(with(|d| d["providers"]["box"] = json!(CLIENT_SECRET)), "providers.box");
        assert_field_error(
            with(|d| {
                d.insert("active_token_keys".into(), json!("k1"));
            }),
            "active_token_keys",
        );
    }

    #[test]
    fn wrong_types_are_named_without_their_value() {
        assert_field_error(
            with(|d| d["providers"]["onedrive"]["client_secret"] = json!([CLIENT_SECRET])),
            "providers.onedrive.client_secret",
        );
        assert_field_error(with(|d| d["database_url"] = json!({"url": DB_PASSWORD})), "database_url");
        assert_field_error(with(|d| d["database_url"] = json!("  ")), "database_url");
        assert_field_error(
            with(|d| d["providers"]["gdrive"]["token_url"] = json!("ftp://x.test/token")),
            "providers.gdrive.token_url",
        );
        assert_field_error(
            with(|d| d["return_to_allowlist"] = json!(["https://a.test/app"])),
            "return_to_allowlist[0]",
        );
        assert_field_error(with(|d| d["return_to_allowlist"] = json!("https://a.test")), "return_to_allowlist");
    }

    #[test]
    fn a_bad_allowlist_entry_is_reported_once_at_startup() {
        // Arrange
        let refused = with(|d| d["return_to_allowlist"] = json!(["https://a.test/app"])).unwrap_err();

        // Act
        let printed = crate::error_chain(&crate::app::StartupError::from(refused));

        // Assert
        assert_eq!(
            printed,
            "configuration field `return_to_allowlist[0]` must be an origin (no path) or a prefix ending in `/`"
        );
    }

    #[test]
    fn allowlist_entries_that_resolve_elsewhere_than_they_read_are_refused() {
        for entry in
            ["https://a.test/app/../", "https://a.test/%2e%2e/", "https://a.test/a%2fb/", "https://a.test/?x=1"]
        {
            assert_field_error(with(|d| d["return_to_allowlist"] = json!([entry])), "return_to_allowlist[0]");
        }
    }

    #[test]
    fn malformed_json_reports_position_only() {
        let text = format!("{{\"database_url\": \"{DB_PASSWORD}\", \"token_keys\": {{ oops");
        let err = Config::from_json(&text).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Json { line: 1, .. }), "{msg}");
        assert!(!msg.contains(DB_PASSWORD), "{msg}");
        assert!(!msg.contains("oops"), "{msg}");
        assert_field_error(Config::from_json("[1, 2]"), "(document)");
    }

    #[test]
    fn redirect_uri_is_built_from_the_callback_base() {
        let absent = Config::from_json(&good().to_string()).unwrap();
        assert_eq!(absent.oauth_redirect_uri(ProviderType::GDrive), None);

        let config = with(|d| {
            d.insert("oauth_redirect_base_url".into(), json!("https://api.quodsi.test/prod/"));
        })
        .unwrap();
        assert_eq!(
            config.oauth_redirect_uri(ProviderType::SharePoint).as_deref(),
            Some("https://api.quodsi.test/prod/oauth/callback/sharepoint")
        );

        for bad in [json!("api.quodsi.test"), json!("https://api.quodsi.test/?stage=prod"), json!(["x"])] {
            assert_field_error(
                with(|d| {
                    d.insert("oauth_redirect_base_url".into(), bad);
                }),
                "oauth_redirect_base_url",
            );
        }
    }

    #[test]
    fn provider_scopes_replace_the_defaults() {
        let config = with(|d| d["providers"]["gdrive"]["scopes"] = json!(["openid", "email"])).unwrap();
        let gd = config.providers.get(ProviderType::GDrive).unwrap();
        assert_eq!(gd.scopes.as_deref(), Some(&["openid".to_owned(), "email".to_owned()][..]));
        assert!(config.providers.get(ProviderType::OneDrive).unwrap().scopes.is_none());

        assert_field_error(with(|d| d["providers"]["gdrive"]["scopes"] = json!([])), "providers.gdrive.scopes");
        assert_field_error(with(|d| d["providers"]["gdrive"]["scopes"] = json!("openid")), "providers.gdrive.scopes");
        assert_field_error(
            with(|d| d["providers"]["gdrive"]["scopes"] = json!(["openid", "a b"])),
            "providers.gdrive.scopes[1]",
        );
        assert_field_error(
            with(|d| d["providers"]["gdrive"]["scopes"] = json!(["openid", 7])),
            "providers.gdrive.scopes[1]",
        );
    }

    #[test]
    fn return_to_matches_whole_origins_or_slash_prefixes() {
        let config = Config::from_json(&good().to_string()).unwrap();
        assert!(config.is_return_to_allowed("https://app.quodsi.com"));
        assert!(config.is_return_to_allowed("https://app.quodsi.com/models/1?x=1"));
        assert!(config.is_return_to_allowed("http://localhost:3000/app/done"));
        assert!(!config.is_return_to_allowed("https://app.quodsi.com.evil.test/"));
        assert!(!config.is_return_to_allowed("https://app.quodsi.com:8443/"));
        assert!(!config.is_return_to_allowed("https://app.quodsi.com@evil.test/"));
        assert!(!config.is_return_to_allowed("http://localhost:3000/application"));
        assert!(!config.is_return_to_allowed("http://app.quodsi.com/"));
        assert!(!config.is_return_to_allowed("http://localhost:3000/app/../admin"));
        assert!(!config.is_return_to_allowed("http://localhost:3000/app/%2e%2e/admin"));
        assert!(!config.is_return_to_allowed("http://localhost:3000/app/..%2f..%2fadmin"));
        // The callback appends its query before the fragment (oauth-callback location.rs).
        assert!(config.is_return_to_allowed("https://app.quodsi.com#x"));
    }
}
