//! Request rate and latency of the local API (quodsi-local's router: dev authorizer, request
//! span, the connections function's router, the store over SQLite) against a minimal axum +
//! rusqlite handler sending the very same SQL (`shared::db::sqlite::sql`) and writing the
//! row as JSON, measured in the same process and run, rounds interleaved.
//!
//! `cargo bench -p quodsi-local --bench api_rate` (options: ROUNDS, SECONDS, CONCURRENCY as
//! environment variables). Results and their reading are in BENCHMARKS.md.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use rusqlite::types::ValueRef;
use serde_json::{Map, Value, json};
use shared::app::App;
use shared::config::{ConfigCache, ConfigSource};
use shared::db::{ConnectionStatus, NewConnection, ProviderType, Stmt, TenantId, UserId};
use uuid::Uuid;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The baseline: a pool of rusqlite connections, used on blocking threads as any careful
/// axum + SQLite service would, and the tenant fixed (no authorizer).
#[derive(Clone)]
struct Baseline {
    idle: Arc<Mutex<Vec<rusqlite::Connection>>>,
    path: Arc<std::path::PathBuf>,
    tenant: String,
}

impl Baseline {
    async fn query(&self, sql: &'static str, params: Vec<rusqlite::types::Value>) -> Vec<Map<String, Value>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = this.idle.lock().unwrap().pop();
            let conn = conn.unwrap_or_else(|| {
                let c = rusqlite::Connection::open(&*this.path).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                c
            });
            let rows = {
                let mut stmt = conn.prepare_cached(sql).unwrap();
                let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
                let mut rows = stmt.query(rusqlite::params_from_iter(params)).unwrap();
                let mut out = Vec::new();
                while let Some(row) = rows.next().unwrap() {
                    let mut obj = Map::new();
                    for (i, name) in names.iter().enumerate() {
                        if name.starts_with("encrypted_") {
                            continue;
                        }
                        let v = match row.get_ref(i).unwrap() {
                            ValueRef::Null => Value::Null,
                            ValueRef::Integer(n) => json!(n),
                            ValueRef::Real(f) => json!(f),
                            ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                            ValueRef::Blob(_) => Value::Null,
                        };
                        obj.insert(name.clone(), v);
                    }
                    out.push(obj);
                }
                out
            };
            this.idle.lock().unwrap().push(conn);
            rows
        })
        .await
        .unwrap()
    }
}

async fn baseline_get(State(b): State<Baseline>, Path(id): Path<String>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let rows = b.query(shared::db::sqlite::sql(Stmt::ConnGet), vec![b.tenant.clone().into(), id.into()]).await;
    match rows.into_iter().next() {
        Some(row) => axum::Json(Value::Object(row)).into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

async fn baseline_list(State(b): State<Baseline>, Query(q): Query<ListQuery>) -> axum::Json<Value> {
    let limit = q.limit.unwrap_or(50);
    let null = rusqlite::types::Value::Null;
    let rows = b
        .query(
            shared::db::sqlite::sql(Stmt::ConnList),
            vec![b.tenant.clone().into(), 0i64.into(), (limit + 1).into(), null.clone(), null.clone(), null],
        )
        .await;
    let items: Vec<Value> = rows.into_iter().take(limit as usize).map(Value::Object).collect();
    axum::Json(json!({ "items": items, "next_cursor": Value::Null }))
}

struct Stats {
    requests: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> f64 {
        let mut l = self.latencies_us.clone();
        l.sort_unstable();
        l[((l.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0
    }
    fn mean_ms(&self) -> f64 {
        self.latencies_us.iter().sum::<u64>() as f64 / self.latencies_us.len() as f64 / 1000.0
    }
}

async fn load(client: &reqwest::Client, url: &str, bearer: Option<&str>, concurrency: usize, secs: f64) -> Stats {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, bearer) = (client.clone(), url.to_owned(), bearer.map(str::to_owned));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut req = client.get(&url);
                if let Some(b) = &bearer {
                    req = req.bearer_auth(b);
                }
                let resp = req.send().await.expect("the server answers");
                assert_eq!(resp.status(), 200, "{url}");
                resp.bytes().await.expect("a body");
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.unwrap());
    }
    Stats { requests: latencies_us.len() as u64, elapsed: started.elapsed(), latencies_us }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rounds: usize = env_or("ROUNDS", 3);
    let secs: f64 = env_or("SECONDS", 3.0);
    let concurrency: usize = env_or("CONCURRENCY", 8);

    // Arrange: one database, 5,000 connections over 25 tenants, 200 in the measured tenant.
    let dir = tempfile::tempdir().unwrap();
    let files = quodsi_local::setup::ensure(dir.path()).unwrap();
    let app = Arc::new(
        App::from_cache(ConfigCache::new(ConfigSource::File(files.config), Duration::from_secs(300))).await.unwrap(),
    );
    let auth =
        quodsi_local::DevAuth::new(quodsi_local::setup::read_jwt_secret(&files.jwt_secret).unwrap(), "tenant_id");
    let mut measured = None;
    for t in 0..25 {
        let (tenant, user) = (TenantId(Uuid::new_v4()), UserId(Uuid::new_v4()));
        app.store.ensure_tenant(tenant, "bench").await.unwrap();
        app.store.ensure_user(user, tenant, None).await.unwrap();
        let mut first = None;
        for n in 0..200 {
            let c = app
                .store
                .create_connection(&NewConnection {
                    tenant_id: tenant,
                    user_id: user,
                    provider_type: ProviderType::OneDrive,
                    provider_user_id: format!("acct-{t}-{n}"),
                    provider_user_email: Some(format!("user{n}@example.com")),
                    encrypted_access_token: vec![7; 180],
                    encrypted_refresh_token: Some(vec![8; 180]),
                    token_expiry: chrono::Utc::now() + chrono::Duration::hours(1),
                    scope: "Files.ReadWrite offline_access".into(),
                    status: ConnectionStatus::Active,
                    display_name: Some(format!("Drive {n}")),
                    connection_metadata: Some(json!({"drive_id": format!("b!{n}"), "drive_type": "business"})),
                })
                .await
                .unwrap();
            first.get_or_insert(c.base.id);
        }
        if t == 12 {
            measured = Some((tenant, user, first.unwrap()));
        }
    }
    let (tenant, user, conn_id) = measured.unwrap();
    let token = auth.sign(tenant.0, user.0, chrono::Duration::hours(1));

    let ours = quodsi_local::router(Arc::clone(&app), auth);
    let db_path = dir.path().join("quodsi.db");
    let baseline = Router::new()
        .route("/connections", get(baseline_list))
        .route("/connections/{id}", get(baseline_get))
        .with_state(Baseline {
            idle: Arc::new(Mutex::new(Vec::new())),
            path: Arc::new(db_path),
            tenant: tenant.to_string(),
        });
    let serve = |router: Router| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, router).into_future());
        format!("http://{addr}")
    };
    let (ours_url, base_url) = (serve(ours).await, serve(baseline).await);
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();

    // Warm both (prepared statements, pools, page cache).
    for (url, bearer) in [(&ours_url, Some(token.as_str())), (&base_url, None)] {
        load(&client, &format!("{url}/connections/{conn_id}"), bearer, concurrency, 0.5).await;
        load(&client, &format!("{url}/connections?limit=50"), bearer, concurrency, 0.5).await;
    }

    println!("concurrency {concurrency}, {rounds} interleaved rounds of {secs} s per server and route\n");
    println!("| route | server | req/s | mean ms | p50 ms | p99 ms |");
    println!("|---|---|---:|---:|---:|---:|");
    for (label, path) in [
        ("GET /connections/{id}", format!("/connections/{conn_id}")),
        ("GET /connections?limit=50", "/connections?limit=50".to_owned()),
    ] {
        let mut ours_all = Stats { requests: 0, elapsed: Duration::ZERO, latencies_us: Vec::new() };
        let mut base_all = Stats { requests: 0, elapsed: Duration::ZERO, latencies_us: Vec::new() };
        for _ in 0..rounds {
            for (all, url, bearer) in
                [(&mut ours_all, &ours_url, Some(token.as_str())), (&mut base_all, &base_url, None)]
            {
                let s = load(&client, &format!("{url}{path}"), bearer, concurrency, secs).await;
                all.requests += s.requests;
                all.elapsed += s.elapsed;
                all.latencies_us.extend(s.latencies_us);
            }
        }
        for (name, s) in [("quodsi-local", &ours_all), ("axum + rusqlite baseline", &base_all)] {
            println!(
                "| {label} | {name} | {:.0} | {:.3} | {:.3} | {:.3} |",
                s.rate(),
                s.mean_ms(),
                s.percentile(0.5),
                s.percentile(0.99)
            );
        }
        println!(
            "| {label} | **ratio** (ours / baseline mean latency) | {:.2}x rate | **{:.2}** | {:.2} | {:.2} |",
            ours_all.rate() / base_all.rate(),
            ours_all.mean_ms() / base_all.mean_ms(),
            ours_all.percentile(0.5) / base_all.percentile(0.5),
            ours_all.percentile(0.99) / base_all.percentile(0.99)
        );
    }
}
