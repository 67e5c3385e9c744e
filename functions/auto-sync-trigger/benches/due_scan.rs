//! How the auto-sync trigger scales with table size: 10,000 and 100,000 folders in total, the
//! same 1,000 of them due, on SQLite. Times the due scan alone and a whole run (scan plus the
//! 1,000 job inserts), alternating the two databases iteration by iteration so both see the
//! same machine noise, and prints medians and the large/small ratio.
//!
//! `cargo bench -p auto-sync-trigger --bench due_scan`

use std::time::{Duration, Instant};

use auto_sync_trigger::{Settings, run};
use chrono::Utc;
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
    let config = testkit::http::config_json(&url, serde_json::json!({}));
    let cache = ConfigCache::new(ConfigSource::Inline(config.into()), Duration::from_secs(3600));
    let app = App::from_cache(cache).await.unwrap();
    let t = testkit::Tenant::create(&app.store).await;
    let mut connections = Vec::new();
    for _ in 0..100 {
        connections.push(app.store.create_connection(&testkit::new_connection(&t)).await.unwrap().base.id);
    }
    let now = Utc::now();
    let fmt = |d: chrono::DateTime<Utc>| d.naive_utc().format(TS).to_string();
    let (recent, long_ago, created) =
        (fmt(now - chrono::Duration::minutes(1)), fmt(now - chrono::Duration::days(2)), fmt(now));
    let mut db = rusqlite::Connection::open(&path).unwrap();
    let tx = db.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO cloud_folders (id, tenant_id, created_at, updated_at, connection_id, folder_name, \
                 provider_folder_id, folder_type, auto_sync_enabled, last_sync_at, sync_frequency_minutes, \
                 folder_permissions) VALUES (?1, ?2, ?3, ?3, ?4, 'Models', ?5, 'models', ?6, ?7, ?8, 'read_write')",
            )
            .unwrap();
        for i in 0..total {
            let frequency = [15, 60, 1440][i % 3];
            // The first DUE folders are due (half never synced); of the rest, two in three
            // have auto-sync on but synced a minute ago, one in three has it off.
            let (auto, last, freq): (i32, Option<&str>, Option<i32>) = if i < DUE {
                (1, if i % 2 == 0 { None } else { Some(&long_ago) }, Some(frequency))
            } else if i % 3 == 0 {
                (0, Some(&recent), None)
            } else {
                (1, Some(&recent), Some(frequency))
            };
            insert
                .execute(rusqlite::params![
                    Uuid::new_v4().to_string(),
                    t.id.0.to_string(),
                    created,
                    connections[i % connections.len()].to_string(),
                    format!("fld-{i}"),
                    auto,
                    last,
                    freq
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    db.execute_batch("ANALYZE").unwrap();
    Db { total, app, path, _dir: dir }
}

fn reset(db: &Db) {
    rusqlite::Connection::open(&db.path).unwrap().execute("DELETE FROM cloud_sync_jobs", []).unwrap();
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
        let settings = Settings { batch_size: 1000, ..Settings::default() };
        let mut scans = [Vec::new(), Vec::new()];
        let mut runs = [Vec::new(), Vec::new()];
        for _ in 0..ITERATIONS {
            for (k, db) in dbs.iter().enumerate() {
                reset(db);
                let started = Instant::now();
                let due = db.app.store.scan_folders_due(db.app.store.now(), 1000).await.unwrap();
                scans[k].push(started.elapsed());
                assert_eq!(due.len(), DUE);
                let report = run(&db.app, &settings).await;
                assert_eq!(report.acted, DUE as u64);
                runs[k].push(Duration::from_millis(report.duration_ms));
            }
        }
        println!("auto-sync-trigger, {DUE} due folders, median of {ITERATIONS} (alternating databases)");
        println!("| folders in total | due scan | whole run (scan + {DUE} job inserts) |");
        println!("|---:|---:|---:|");
        for (k, db) in dbs.iter().enumerate() {
            println!(
                "| {} | {:.1} ms | {:.0} ms |",
                db.total,
                ms(median(scans[k].clone())),
                ms(median(runs[k].clone()))
            );
        }
        println!(
            "ratio 100k/10k: due scan {:.2}, whole run {:.2}",
            ms(median(scans[1].clone())) / ms(median(scans[0].clone())),
            ms(median(runs[1].clone())) / ms(median(runs[0].clone()))
        );
    });
}
