//! How link expiry scales with table size: 10,000 and 100,000 shared links in total, the same
//! 1,000 of them expired and active, on SQLite (links of a OneDrive connection, which expires
//! links itself, so no provider call is timed). Alternates the two databases iteration by
//! iteration so both see the same machine noise, and prints medians and the large/small ratio.
//!
//! `cargo bench -p link-expiry --bench expiry_scan`

use std::time::{Duration, Instant};

use chrono::Utc;
use link_expiry::{Settings, run};
use shared::app::App;
use shared::config::{ConfigCache, ConfigSource};
use uuid::Uuid;

const DUE: usize = 1_000;
const ITERATIONS: usize = 15;
const TS: &str = "%Y-%m-%d %H:%M:%S%.6f";

struct Db {
    total: usize,
    app: App,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(total: usize) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let url = format!("sqlite:{}", path.display());
    let providers = serde_json::json!({ "providers": { "onedrive": { "client_id": "c", "client_secret": "s" } } });
    let config = testkit::http::config_json(&url, providers);
    let cache = ConfigCache::new(ConfigSource::Inline(config.into()), Duration::from_secs(3600));
    let app = App::from_cache(cache).await.unwrap();
    let t = testkit::Tenant::create(&app.store).await;
    let conn = app.store.create_connection(&testkit::new_connection(&t)).await.unwrap();
    let mut folders = Vec::new();
    for _ in 0..100 {
        folders.push(app.store.create_folder(&testkit::new_folder(&t, conn.base.id)).await.unwrap().base.id);
    }
    let now = Utc::now();
    let fmt = |d: chrono::DateTime<Utc>| d.naive_utc().format(TS).to_string();
    let mut db = rusqlite::Connection::open(&path).unwrap();
    let tx = db.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO cloud_shared_links (id, tenant_id, created_at, updated_at, created_by_user_id, \
                 resource_type, folder_id, provider_share_id, share_url, share_type, expires_at, is_active) \
                 VALUES (?1, ?2, ?3, ?3, ?4, 'folder', ?5, ?6, 'https://example.com/s', 'view', ?7, ?8)",
            )
            .unwrap();
        for i in 0..total {
            // The first DUE links are expired and active; of the rest, a third never expire,
            // a third expire next month and a third expired long ago and were deactivated.
            let (share, expires, active) = if i < DUE {
                (format!("due-{i}"), Some(fmt(now - chrono::Duration::minutes(1 + i as i64))), 1)
            } else {
                match i % 3 {
                    0 => (format!("l-{i}"), None, 1),
                    1 => (format!("l-{i}"), Some(fmt(now + chrono::Duration::days(30))), 1),
                    _ => (format!("l-{i}"), Some(fmt(now - chrono::Duration::days(30))), 0),
                }
            };
            insert
                .execute(rusqlite::params![
                    Uuid::new_v4().to_string(),
                    t.id.0.to_string(),
                    fmt(now),
                    t.user.0.to_string(),
                    folders[i % folders.len()].to_string(),
                    share,
                    expires,
                    active
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    db.execute_batch("ANALYZE").unwrap();
    Db { total, app, path, _dir: dir }
}

fn reset(db: &Db) {
    rusqlite::Connection::open(&db.path)
        .unwrap()
        .execute("UPDATE cloud_shared_links SET is_active = 1, expiry_claimed_until = NULL WHERE provider_share_id LIKE 'due-%'", [])
        .unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dbs = [setup(10_000).await, setup(100_000).await];
        let settings = Settings { batch_size: 500, ..Settings::default() };
        let mut runs = [Vec::new(), Vec::new()];
        for _ in 0..ITERATIONS {
            for (k, db) in dbs.iter().enumerate() {
                reset(db);
                let started = Instant::now();
                let report = run(&db.app, &settings).await;
                runs[k].push(started.elapsed());
                assert_eq!((report.acted, report.failed), (DUE as u64, 0));
            }
        }
        println!(
            "link-expiry, {DUE} expired active links, batches of 500, median of {ITERATIONS} (alternating databases)"
        );
        println!("| links in total | whole run |");
        println!("|---:|---:|");
        for (k, db) in dbs.iter().enumerate() {
            println!("| {} | {:.0} ms |", db.total, ms(median(runs[k].clone())));
        }
        println!("ratio 100k/10k: {:.2}", ms(median(runs[1].clone())) / ms(median(runs[0].clone())));
    });
}
