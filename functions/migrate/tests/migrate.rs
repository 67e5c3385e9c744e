//! The migrate Lambda's handler: migrates the database its configuration names, and a second
//! invocation finds nothing to do.

use std::time::Duration;

use shared::config::{ConfigCache, ConfigSource};

#[tokio::test]
async fn migrates_the_configured_database_once() {
    // Arrange: a configuration naming a new SQLite file.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("fresh.db").display());
    let cache = ConfigCache::new(
        ConfigSource::Inline(testkit::http::config_json(&url, serde_json::json!({})).into()),
        Duration::from_secs(60),
    );

    // Act
    let first = migrate::handle(&cache).await.unwrap();
    let second = migrate::handle(&cache).await.unwrap();

    // Assert
    let first = first["report"].as_str().unwrap();
    assert!(first.starts_with("applied "), "{first}");
    assert!(first.contains("V1__cloud_schema"), "{first}");
    assert_eq!(second["report"], "schema is up to date; no migration applied");
    let store = shared::db::open(&url).await.unwrap();
    assert!(store.scan_connections(0, 1).await.unwrap().is_empty(), "the schema is usable");
}
