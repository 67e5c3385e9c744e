//! Where the configuration document comes from, and the TTL cache that re-reads it so a
//! rotated secret reaches warm Lambdas without a redeploy.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{Config, ConfigError, into_secret};

/// ARN (or name) of the Secrets Manager secret holding the configuration. Used in AWS.
pub const CONFIG_SECRET_ARN_ENV: &str = "QUODSI_CONFIG_SECRET_ARN";
/// Path of a file holding the configuration JSON. Local runs.
pub const CONFIG_FILE_ENV: &str = "QUODSI_CONFIG_FILE";
/// The configuration JSON itself. Local runs and tests.
pub const CONFIG_JSON_ENV: &str = "QUODSI_CONFIG_JSON";
/// Seconds between re-reads of the configuration; [`DEFAULT_TTL`] when unset.
pub const CONFIG_TTL_ENV: &str = "QUODSI_CONFIG_TTL_SECONDS";
/// Long enough that Secrets Manager is called a handful of times per warm Lambda per hour;
/// short enough that a rotated secret is in use within minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// A place to read the configuration document from.
#[derive(Clone)]
pub enum ConfigSource {
    SecretsManager { client: aws_sdk_secretsmanager::Client, secret_id: String },
    File(PathBuf),
    Inline(SecretString),
}

impl fmt::Debug for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::SecretsManager { secret_id, .. } => {
                f.debug_struct("SecretsManager").field("secret_id", secret_id).finish_non_exhaustive()
            }
            ConfigSource::File(path) => f.debug_tuple("File").field(path).finish(),
            ConfigSource::Inline(_) => f.write_str("Inline([redacted])"),
        }
    }
}

impl ConfigSource {
    /// The source named by the process environment: the secret in
    /// `QUODSI_CONFIG_SECRET_ARN` (read with [`crate::aws::sdk_config`], which honours
    /// `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SECRETS_MANAGER` and `AWS_CA_BUNDLE`), else the file in
    /// `QUODSI_CONFIG_FILE`, else the JSON in `QUODSI_CONFIG_JSON`, in that order.
    pub async fn from_env() -> Result<ConfigSource, ConfigError> {
        ConfigSource::from_lookup(|name| std::env::var(name).ok()).await
    }

    /// [`ConfigSource::from_env`] with the variables read through `lookup`, so tests need not
    /// change the process environment.
    pub async fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ConfigSource, ConfigError> {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(secret_id) = set(CONFIG_SECRET_ARN_ENV) {
            let client = aws_sdk_secretsmanager::Client::new(crate::aws::sdk_config().await?);
            return Ok(ConfigSource::SecretsManager { client, secret_id });
        }
        if let Some(path) = set(CONFIG_FILE_ENV) {
            return Ok(ConfigSource::File(PathBuf::from(path)));
        }
        if let Some(json) = set(CONFIG_JSON_ENV) {
            return Ok(ConfigSource::Inline(into_secret(json)));
        }
        Err(ConfigError::NoSource)
    }

    /// The secret `secret_id` read with `client`.
    pub fn secrets_manager(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> ConfigSource {
        ConfigSource::SecretsManager { client, secret_id: secret_id.into() }
    }

    /// Reads and parses the document.
    pub async fn load(&self) -> Result<Config, ConfigError> {
        let text = self.read().await?;
        Config::from_json(text.expose_secret())
    }

    pub(crate) async fn read(&self) -> Result<SecretString, ConfigError> {
        match self {
            ConfigSource::SecretsManager { client, secret_id } => {
                let result = client.get_secret_value().secret_id(secret_id).send().await;
                let mut output = match result {
                    Ok(output) => output,
                    Err(e) => {
                        if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) {
                            return Err(ConfigError::SecretNotFound { secret_id: secret_id.clone() });
                        }
                        // Error responses of GetSecretValue never carry the secret value.
                        return Err(ConfigError::SecretsManager {
                            secret_id: secret_id.clone(),
                            message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
                        });
                    }
                };
                output
                    .secret_string
                    .take()
                    .map(into_secret)
                    .ok_or_else(|| ConfigError::SecretNotString { secret_id: secret_id.clone() })
            }
            ConfigSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map(into_secret)
                .map_err(|source| ConfigError::File { path: path.clone(), source }),
            ConfigSource::Inline(json) => Ok(json.clone()),
        }
    }
}

/// A keyed (per-process random) SipHash of the text: enough to tell a changed document from
/// the same one, and nothing an observer of the number could turn back into the secret.
fn fingerprint(text: &str) -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    static KEYS: std::sync::LazyLock<std::collections::hash_map::RandomState> =
        std::sync::LazyLock::new(std::collections::hash_map::RandomState::new);
    let mut h = KEYS.build_hasher();
    h.write(text.as_bytes());
    h.finish()
}

struct Loaded {
    config: Arc<Config>,
    /// Fingerprint of the document's text: a re-read that finds the same text keeps the same
    /// `Arc`, so nothing derived from it (vault, provider clients) is rebuilt for nothing.
    fingerprint: u64,
    /// When the next read is due (a failed refresh pushes it back a TTL too).
    refresh_at: Instant,
}

/// The configuration of this process: read on first use, shared as an `Arc`, and re-read
/// after the TTL. A failed re-read keeps the previous configuration (and is logged), so an
/// outage of Secrets Manager does not take down warm functions.
pub struct ConfigCache {
    source: ConfigSource,
    ttl: Duration,
    current: RwLock<Option<Loaded>>,
    /// One re-read at a time; concurrent callers wait for it rather than all calling
    /// Secrets Manager.
    refresh: tokio::sync::Mutex<()>,
}

impl fmt::Debug for ConfigCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigCache").field("source", &self.source).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl ConfigCache {
    /// A cache that reads nothing until the first [`ConfigCache::get`].
    pub fn new(source: ConfigSource, ttl: Duration) -> ConfigCache {
        ConfigCache { source, ttl, current: RwLock::new(None), refresh: tokio::sync::Mutex::new(()) }
    }

    /// The cold-start entry point: source and TTL from the environment, first read done, so a
    /// bad configuration stops start-up.
    pub async fn from_env() -> Result<ConfigCache, ConfigError> {
        let ttl = match std::env::var(CONFIG_TTL_ENV) {
            Ok(v) => Duration::from_secs(v.trim().parse().map_err(|_| ConfigError::Env {
                var: CONFIG_TTL_ENV,
                problem: "must be a whole number of seconds".into(),
            })?),
            Err(_) => DEFAULT_TTL,
        };
        let cache = ConfigCache::new(ConfigSource::from_env().await?, ttl);
        cache.get().await?;
        Ok(cache)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn source(&self) -> &ConfigSource {
        &self.source
    }

    fn fresh(&self, now: Instant) -> Option<Arc<Config>> {
        // A poisoned lock only means a panic elsewhere mid-write of an Option; the data is
        // still a whole value.
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().filter(|l| now < l.refresh_at).map(|l| Arc::clone(&l.config))
    }

    /// The current configuration, re-read first if the TTL has passed. Fails only if no
    /// configuration was ever read successfully.
    pub async fn get(&self) -> Result<Arc<Config>, ConfigError> {
        if let Some(config) = self.fresh(Instant::now()) {
            return Ok(config);
        }
        let _single_flight = self.refresh.lock().await;
        if let Some(config) = self.fresh(Instant::now()) {
            return Ok(config);
        }
        let read = self.source.read().await;
        let fingerprint = read.as_ref().ok().map(|text| fingerprint(text.expose_secret()));
        let unchanged = {
            let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut() {
                Some(previous) if fingerprint == Some(previous.fingerprint) => {
                    previous.refresh_at = Instant::now() + self.ttl;
                    Some(Arc::clone(&previous.config))
                }
                _ => None,
            }
        };
        if let Some(config) = unchanged {
            return Ok(config);
        }
        let result = read.and_then(|text| Config::from_json(text.expose_secret()));
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        let refresh_at = Instant::now() + self.ttl;
        match (result, guard.as_mut()) {
            (Ok(config), _) => {
                let config = Arc::new(config);
                let fingerprint = fingerprint.expect("a parsed document was read");
                *guard = Some(Loaded { config: Arc::clone(&config), fingerprint, refresh_at });
                tracing::debug!(source = ?self.source, "configuration loaded");
                Ok(config)
            }
            (Err(e), Some(previous)) => {
                // ConfigError never holds a secret value, so it can be logged whole.
                tracing::warn!(
                    source = ?self.source,
                    error = %e,
                    "configuration refresh failed; keeping the previous configuration"
                );
                previous.refresh_at = refresh_at;
                Ok(Arc::clone(&previous.config))
            }
            (Err(e), None) => Err(e),
        }
    }
}
