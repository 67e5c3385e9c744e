//! Support for the scheduled functions' tests: an app over a fresh SQLite database whose
//! clock can be moved (backoffs, stale jobs and expiries are about time), and the EventBridge
//! events in `events/<function>/`.

use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::Value;
use shared::app::App;
use shared::config::{ConfigCache, ConfigSource};
use shared::db::Store;

use crate::Tenant;
use crate::http::{config_json, repo_root};

/// One database and one configuration (one set of token keys), seen through apps whose
/// clocks differ.
pub struct ClockedApp {
    /// The app on the real clock.
    pub app: Arc<App>,
    config: String,
    _dir: tempfile::TempDir,
}

impl ClockedApp {
    /// `extra` is merged into the configuration document (providers pointed at a fake, ...).
    pub async fn new(extra: Value) -> ClockedApp {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite:{}", dir.path().join("quodsi.db").display());
        let config = config_json(&url, extra);
        let app = App::from_cache(cache(&config)).await.expect("test app");
        ClockedApp { app: Arc::new(app), config, _dir: dir }
    }

    pub fn store(&self) -> &Store {
        &self.app.store
    }

    /// The same database and keys, with the clock moved by `offset` from the real one.
    pub async fn at(&self, offset: Duration) -> Arc<App> {
        let store = self.app.store.clone().with_clock(move || Utc::now() + offset);
        Arc::new(App::with_store(store, cache(&self.config)).await.expect("test app"))
    }

    /// The same keys over another store (e.g. one whose backend wraps this one's to inject
    /// faults).
    pub async fn with_store(&self, store: Store) -> Arc<App> {
        Arc::new(App::with_store(store, cache(&self.config)).await.expect("test app"))
    }

    pub async fn tenant(&self) -> Tenant {
        Tenant::create(self.store()).await
    }
}

fn cache(config: &str) -> ConfigCache {
    ConfigCache::new(ConfigSource::Inline(config.to_owned().into()), std::time::Duration::from_secs(300))
}

/// `events/<function>/scheduled.json`, the event EventBridge sends on a schedule.
pub fn scheduled_event(function: &str) -> Value {
    let path = repo_root().join("events").join(function).join("scheduled.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
