//! What every function builds once per cold start and borrows for each invocation: the
//! configuration cache, the store, and the key material derived from the configuration.
//!
//! The derived values (vault, OAuth-state sealer) are rebuilt only when the configuration
//! cache hands out a new document (after its TTL, when the secret was rotated), never per
//! request: building a vault expands every AES key schedule.

use std::sync::{Arc, Mutex};

use secrecy::ExposeSecret;

use crate::api::{ApiError, TenantClaim};
use crate::config::{Config, ConfigCache, ConfigError};
use crate::db::{DbError, Store};
use crate::job_queue::JobQueue;
use crate::objects::Objects;
use crate::providers::{ProviderError, Registry};
use crate::vault::{StateSealer, Vault};

/// Why a function could not start. Printed once at cold start; carries no secret. The
/// message names the part and the cause follows as the source, so `error_chain` prints each
/// once ("database: ..."); a `ConfigError` already says "configuration ...".
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database")]
    Database(#[from] DbError),
}

/// The configuration in force and what is derived from it.
#[derive(Debug)]
pub struct Current {
    pub config: Arc<Config>,
    pub vault: Vault,
    pub state_sealer: StateSealer,
    /// Rebuilt with the configuration because client ids and secrets live in it; the one
    /// HTTP client inside is shared by every provider call until then. Built on first use:
    /// most functions never call a provider, and building a TLS client (its root store) is
    /// a measurable part of a cold start (BENCHMARKS.md).
    providers: std::sync::OnceLock<Result<Registry, ProviderError>>,
}

impl Current {
    fn derive(config: Arc<Config>) -> Current {
        Current {
            vault: Vault::from_keys(&config.token_keys),
            state_sealer: StateSealer::new(&config.oauth_state_key),
            providers: std::sync::OnceLock::new(),
            config,
        }
    }

    /// The configured providers (an error only if the HTTP client could not be built).
    pub fn providers(&self) -> Result<&Registry, ProviderError> {
        self.providers.get_or_init(|| Registry::from_config(&self.config)).as_ref().map_err(Clone::clone)
    }
}

/// Where Quodsi's copies of synced files live: `s3://bucket/prefix` in AWS, a directory
/// locally (see [`crate::objects`]).
pub const OBJECTS_URL_ENV: &str = "QUODSI_OBJECTS_URL";

/// The per-process context of a function.
pub struct App {
    pub store: Store,
    config: ConfigCache,
    /// Read at cold start: which JWT claim names the tenant. Changing it is a deploy.
    tenant_claim: String,
    current: Mutex<Arc<Current>>,
    /// Built on first use from the environment (only the functions that move file bytes use
    /// it), or given by a test or the local run.
    objects: std::sync::OnceLock<Result<Objects, String>>,
    /// The sync-job queue, built on first use from the environment (`Disabled` when no queue is
    /// configured, as in the local run), or given by a test.
    queue: tokio::sync::OnceCell<JobQueue>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("store", &self.store).field("tenant_claim", &self.tenant_claim).finish()
    }
}

impl App {
    /// The cold-start path: configuration from the environment (Secrets Manager in AWS, a file
    /// or inline JSON locally), then the database it names. A bad configuration or an
    /// unreachable database stops start-up with a message naming the problem.
    pub async fn from_env() -> Result<App, StartupError> {
        let cache = ConfigCache::from_env().await?;
        App::from_cache(cache).await
    }

    /// Builds the context from a configuration cache, opening the database it names.
    pub async fn from_cache(cache: ConfigCache) -> Result<App, StartupError> {
        let config = cache.get().await?;
        let store = crate::db::open(config.database_url.expose_secret()).await?;
        Ok(App::new(store, cache, config))
    }

    /// Builds the context over an already open store (tests, the local server).
    pub async fn with_store(store: Store, cache: ConfigCache) -> Result<App, StartupError> {
        let config = cache.get().await?;
        Ok(App::new(store, cache, config))
    }

    fn new(store: Store, cache: ConfigCache, config: Arc<Config>) -> App {
        let tenant_claim = config.tenant_claim.clone();
        App {
            store,
            config: cache,
            tenant_claim,
            current: Mutex::new(Arc::new(Current::derive(config))),
            objects: std::sync::OnceLock::new(),
            queue: tokio::sync::OnceCell::new(),
        }
    }

    /// This context with `objects` as its object store instead of the environment's.
    pub fn with_objects(self, objects: Objects) -> App {
        let _ = self.objects.set(Ok(objects));
        self
    }

    /// This context with `queue` as its sync-job queue instead of the environment's.
    pub fn with_queue(self, queue: JobQueue) -> App {
        let _ = self.queue.set(queue);
        self
    }

    /// Quodsi's object store, from [`OBJECTS_URL_ENV`]. The error names the problem, never a
    /// credential.
    pub fn objects(&self) -> Result<&Objects, String> {
        self.objects
            .get_or_init(|| match std::env::var(OBJECTS_URL_ENV) {
                Ok(url) if !url.trim().is_empty() => {
                    Objects::from_url(&url).map_err(|e| format!("{OBJECTS_URL_ENV}: {}", crate::error_chain(&e)))
                }
                _ => Err(format!("{OBJECTS_URL_ENV} is not set: no object store is configured")),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The sync-job queue, from the environment; a queue that cannot be configured is logged
    /// and taken as none (the auto-sync sweep dispatches what could not be sent).
    pub async fn queue(&self) -> &JobQueue {
        self.queue
            .get_or_init(|| async {
                JobQueue::from_env().await.unwrap_or_else(|e| {
                    tracing::error!(error = %crate::error_chain(&e), "the sync queue cannot be configured");
                    JobQueue::Disabled
                })
            })
            .await
    }

    /// The configuration in force, with its vault and state sealer; re-read after the
    /// configuration's TTL.
    pub async fn current(&self) -> Result<Arc<Current>, ConfigError> {
        let config = self.config.get().await?;
        let mut guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&guard.config, &config) {
            *guard = Arc::new(Current::derive(config));
        }
        Ok(Arc::clone(&guard))
    }

    /// [`App::current`] for HTTP handlers: a configuration that cannot be had is a 503.
    pub async fn current_for_request(&self) -> Result<Arc<Current>, ApiError> {
        self.current().await.map_err(|e| {
            tracing::error!(error = %crate::error_chain(&e), "configuration unavailable");
            ApiError::Unavailable {
                code: "configuration_unavailable",
                message: "the service configuration cannot be read; try again shortly".into(),
            }
        })
    }
}

impl TenantClaim for App {
    fn tenant_claim(&self) -> &str {
        &self.tenant_claim
    }
}

impl<T: TenantClaim + ?Sized> TenantClaim for Arc<T> {
    fn tenant_claim(&self) -> &str {
        (**self).tenant_claim()
    }
}
