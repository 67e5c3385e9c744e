//! The sync worker's two heavy paths, each in a child process of its own (so its peak memory
//! is the worker's, not the fake's), against provider-shaped fakes served by this process on
//! loopback (Dropbox's, and for the download Microsoft Graph's too):
//!
//! 1. **Listing and reconciliation** of one folder of 10,000 and of 100,000 files, in pages of
//!    2,000 (Dropbox's page size), on a fresh SQLite database. The files are export-only (Dropbox
//!    `is_downloadable: false`), so the run is the listing and the `cloud_files` writes alone.
//!    Reports files/s and the peak RSS (VmHWM) of each, and the 100k/10k RSS ratio: memory
//!    must follow the page, not the folder.
//! 2. **A 1 GiB download** into the local object store (streamed, hashed with the provider's
//!    hash, checked, moved into place) against a plain streaming copy of the same bytes from the
//!    same fake (reqwest body → file), each round in turn: throughput ratio and the worker's
//!    peak RSS. The whole job runs twice: against Dropbox's shape (Dropbox's content hash) and
//!    against OneDrive's (Graph `root/delta?token=latest`, `/children`, `/content` answering 302
//!    to a pre-authenticated URL; QuickXorHash). Every provider's hash (QuickXorHash, MD5,
//!    Dropbox's, SHA-1) is also measured on the worker's transfer pipeline alone
//!    (`Objects::put_stream_hashed` → hash check → rename, the steps of `engine::download`
//!    after the provider's response), from the same fake in the same rounds. Each hash's speed
//!    on one core, in memory, is printed beside them: a download cannot hash faster than that
//!    on one core.
//!
//! `cargo bench -p sync-worker --bench sync` (add `-- --rounds N`, default 3; `-- --only listing`
//! or `-- --only download` for one half)

mod common;
use common::{child_line, median, peak_rss_kib};

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use shared::content_hash::{ContentHasher, HashAlg};
use shared::db::{FolderType, JobType, NewSyncJob, ProviderType};
use shared::job_queue::JobMessage;

const PAGE: usize = 2_000;
const CHUNK: usize = 256 * 1024;
const GIB: u64 = 1 << 30;

/// The bytes of the big file: a 256 KiB pattern, repeated.
fn pattern() -> Bytes {
    Bytes::from((0..CHUNK).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

fn body_of(size: u64) -> Body {
    let chunk = pattern();
    let chunks = size.div_ceil(CHUNK as u64);
    let stream = futures_util::stream::iter((0..chunks).map(move |i| {
        let left = size - i * CHUNK as u64;
        Ok::<_, std::io::Error>(chunk.slice(..(left.min(CHUNK as u64) as usize)))
    }));
    Body::from_stream(stream)
}

#[derive(Clone)]
struct Fake {
    files: usize,
    big: u64,
    big_hashes: BigHashes,
}

/// The big file's hash as each fake states it.
#[derive(Clone, Default)]
struct BigHashes {
    /// Dropbox's `content_hash`: 64 hex.
    dropbox: String,
    /// Graph's `quickXorHash`: base64 of the 20 bytes.
    quick_xor_base64: String,
}

/// The OneDrive fake's ids: Graph item ids of a OneDrive for Business drive.
const GRAPH_FOLDER_ID: &str = "01BENCHFOLDER0000000000000000000A";
const GRAPH_FILE_ID: &str = "01BENCHBIGFILE000000000000000000B";

fn entry(i: usize) -> Value {
    json!({
        ".tag": "file",
        "id": format!("id:bench{i:07}"),
        "name": format!("run-{i:07}.qres"),
        "path_lower": format!("/bench/run-{i:07}.qres"),
        "path_display": format!("/Bench/run-{i:07}.qres"),
        "client_modified": "2026-11-01T10:00:00Z",
        "server_modified": "2026-11-01T10:00:00Z",
        "rev": format!("{i:012x}"),
        "size": 512,
        "content_hash": format!("{:064x}", i as u128 * 2_654_435_761),
        "is_downloadable": false
    })
}

fn page(fake: &Fake, start: usize) -> Value {
    let end = (start + PAGE).min(fake.files);
    let mut entries: Vec<Value> = (start..end).map(entry).collect();
    if fake.big > 0 && start == 0 {
        entries.push(json!({
            ".tag": "file", "id": "id:big", "name": "big.bin", "path_lower": "/bench/big.bin",
            "path_display": "/Bench/big.bin", "server_modified": "2026-11-01T10:00:00Z", "rev": "0000000b1",
            "size": fake.big, "content_hash": fake.big_hashes.dropbox, "is_downloadable": true
        }));
    }
    let more = end < fake.files;
    json!({ "entries": entries, "cursor": if more { format!("page:{end}") } else { "latest".to_owned() }, "has_more": more })
}

async fn list_folder(State(fake): State<Fake>) -> axum::Json<Value> {
    axum::Json(page(&fake, 0))
}

async fn list_continue(State(fake): State<Fake>, body: Bytes) -> axum::Json<Value> {
    let cursor: Value = serde_json::from_slice(&body).unwrap_or_default();
    let cursor = cursor["cursor"].as_str().unwrap_or_default();
    match cursor.strip_prefix("page:").and_then(|n| n.parse().ok()) {
        Some(start) => axum::Json(page(&fake, start)),
        None => axum::Json(json!({ "entries": [], "cursor": "latest", "has_more": false })),
    }
}

async fn latest_cursor() -> axum::Json<Value> {
    axum::Json(json!({ "cursor": "latest" }))
}

async fn download(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    let result =
        json!({ "id": "id:big", "name": "big.bin", "size": fake.big, "content_hash": fake.big_hashes.dropbox });
    let mut response = (StatusCode::OK, body_of(fake.big)).into_response();
    let h = response.headers_mut();
    h.insert("dropbox-api-result", HeaderValue::from_str(&result.to_string()).unwrap());
    h.insert("content-length", HeaderValue::from(fake.big));
    h.insert("content-type", HeaderValue::from_static("application/octet-stream"));
    let _ = headers;
    response
}

async fn raw(State(fake): State<Fake>) -> Response {
    let mut response = (StatusCode::OK, body_of(fake.big)).into_response();
    response.headers_mut().insert("content-length", HeaderValue::from(fake.big));
    response
}

/// `http://{host}`: the host the client asked for, so Graph's links point back at this fake.
fn origin(headers: &HeaderMap) -> String {
    format!("http://{}", headers.get("host").and_then(|h| h.to_str().ok()).expect("a Host header"))
}

/// Graph `GET /me/drive/root/delta?token=latest`: no items, and the delta link (the cursor the
/// first sync stores once its crawl is applied).
async fn graph_delta(headers: HeaderMap) -> axum::Json<Value> {
    let origin = origin(&headers);
    axum::Json(json!({
        "@odata.context": format!("{origin}/v1.0/$metadata#Collection(driveItem)"),
        "value": [],
        "@odata.deltaLink": format!("{origin}/v1.0/me/drive/root/delta?token=MzslMjM0OzE7MzsxMjM0NTY3ODkw")
    }))
}

/// Graph `GET /me/drive/items/{folder}/children`: the big file, one page.
async fn graph_children(State(fake): State<Fake>, headers: HeaderMap) -> axum::Json<Value> {
    let origin = origin(&headers);
    axum::Json(json!({
        "@odata.context": format!("{origin}/v1.0/$metadata#drives('b%21bench')/items('{GRAPH_FOLDER_ID}')/children"),
        "value": [{
            "id": GRAPH_FILE_ID,
            "name": "big.bin",
            "size": fake.big,
            "eTag": "\"{B1B1B1B1-0000-4000-8000-00000000000B},1\"",
            "createdDateTime": "2026-11-01T10:00:00Z",
            "lastModifiedDateTime": "2026-11-01T10:00:00Z",
            "parentReference": {
                "driveType": "business",
                "driveId": "b!benchbenchbenchbenchbenchbenchbenchbenchbenchbenchbenchbench",
                "id": GRAPH_FOLDER_ID,
                "name": "Bench",
                "path": "/drive/root:/Bench"
            },
            "file": {
                "mimeType": "application/octet-stream",
                "hashes": { "quickXorHash": fake.big_hashes.quick_xor_base64 }
            }
        }]
    }))
}

/// Graph `GET /me/drive/items/{file}/content`: 302 to a pre-authenticated download URL.
async fn graph_content(headers: HeaderMap) -> Response {
    let location = format!("{}/raw?tempauth=bench", origin(&headers));
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert("location", HeaderValue::from_str(&location).unwrap());
    response
}

fn serve(fake: Fake) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route("/2/files/list_folder", post(list_folder))
                .route("/2/files/list_folder/continue", post(list_continue))
                .route("/2/files/list_folder/get_latest_cursor", post(latest_cursor))
                .route("/2/files/download", post(download))
                .route("/raw", get(raw))
                .route("/v1.0/me/drive/root/delta", get(graph_delta))
                .route(&format!("/v1.0/me/drive/items/{GRAPH_FOLDER_ID}/children"), get(graph_children))
                .route(&format!("/v1.0/me/drive/items/{GRAPH_FILE_ID}/content"), get(graph_content))
                .with_state(fake);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// Child: one worker job against the `provider`-shaped fake at `addr`, on a fresh database;
/// prints `seconds files bytes peak_kib`.
async fn child_job(addr: SocketAddr, provider: ProviderType) {
    let (name, folder_id, big_file_id) = match provider {
        ProviderType::Dropbox => ("dropbox", "id:benchfolder", "id:big"),
        ProviderType::OneDrive => ("onedrive", GRAPH_FOLDER_ID, GRAPH_FILE_ID),
        other => panic!("no {other} fake in this bench"),
    };
    let t = testkit::http::TestApp::with_config(json!({ "providers": { name: {
        "client_id": "bench", "client_secret": "bench-secret", "token_url": format!("http://{addr}/token"),
        "api_base_url": format!("http://{addr}"),
    }}}))
    .await;
    let tenant = t.tenant().await;
    let connection =
        testkit::connect_with_tokens(&t.app, &tenant, provider, "bench-access", Some("bench-refresh"), None).await;
    let mut folder = testkit::new_folder(&tenant, connection.base.id);
    folder.provider_folder_id = folder_id.into();
    folder.folder_path = Some("/Bench".into());
    folder.folder_type = FolderType::Results;
    let folder = t.store().create_folder(&folder).await.unwrap();
    let job = NewSyncJob {
        tenant_id: tenant.id,
        folder_id: folder.base.id,
        initiated_by_user_id: None,
        job_type: JobType::Download,
        job_metadata: None,
    };
    let job = t.store().create_job(&job).await.unwrap();
    let settings = sync_worker::Settings { local_run: Duration::from_secs(3600), ..Default::default() };
    let started = Instant::now();
    let ran =
        sync_worker::engine::run(&t.app, &settings, JobMessage { tenant_id: tenant.id, job_id: job.base.id }, None)
            .await
            .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(ran, sync_worker::Ran::Completed, "the bench job must complete");
    let done = t.store().get_job(tenant.id, job.base.id).await.unwrap();
    let files = t.store().count_live_files(tenant.id, folder.base.id).await.unwrap();
    // A download run: the big file is synced with the hash the fake states (a hash the worker
    // could not read would leave nothing to compare, and the run would still complete).
    if let Ok(expected) = std::env::var(EXPECTED_HASH_ENV) {
        let big = t.store().get_file_by_provider_id(tenant.id, folder.base.id, big_file_id).await.unwrap();
        let big = big.expect("the big file is recorded");
        assert_eq!(big.content_hash.as_deref(), Some(expected.as_str()), "{name}: the stored hash");
        assert_eq!(big.sync_status, shared::db::SyncStatus::Synced, "{name}: the big file is synced");
    }
    println!("{seconds} {files} {} {}", done.bytes_transferred, peak_rss_kib());
}

/// Child: the baseline, a plain streaming copy of the fake's bytes into a file; prints
/// `seconds 0 bytes peak_kib`.
async fn child_copy(addr: SocketAddr) {
    use futures_util::StreamExt as _;
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let response = client.get(format!("http://{addr}/raw")).send().await.unwrap();
    let mut file = std::fs::File::create(dir.path().join("copy.bin")).unwrap();
    let mut body = response.bytes_stream();
    let mut bytes = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len() as u64;
        file.write_all(&chunk).unwrap();
    }
    file.flush().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!("{seconds} 0 {bytes} {}", peak_rss_kib());
}

/// The hash a pipeline child checks its bytes against, and a download job child the stored
/// file's, passed from the parent (which hashes the fake's bytes once per algorithm, not once
/// per run).
const EXPECTED_HASH_ENV: &str = "QUODSI_BENCH_EXPECTED_HASH";

/// Child: the worker's transfer pipeline with `alg`'s hash, on the fake's plain bytes into a
/// local object store: tap the body, stream it into a temporary key, compare the hash with
/// [`EXPECTED_HASH_ENV`], rename into place (as `engine::download` does once the provider has
/// answered); prints `seconds 0 bytes peak_kib`.
async fn child_pipeline(addr: SocketAddr, alg: HashAlg) {
    use shared::db::{FolderId, TenantId};
    use shared::objects::{ObjectKey, Objects};
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::from_url(dir.path().to_str().unwrap()).unwrap();
    let (tenant, folder) = (TenantId(uuid::Uuid::new_v4()), FolderId(uuid::Uuid::new_v4()));
    let temporary = ObjectKey::for_file(tenant, folder, &[".incoming", "big.bin-job"]).unwrap();
    let target = ObjectKey::for_file(tenant, folder, &["big.bin"]).unwrap();
    let expected = std::env::var(EXPECTED_HASH_ENV).expect("the parent passes the expected hash");
    let client = reqwest::Client::new();
    let started = Instant::now();
    let response = client.get(format!("http://{addr}/raw")).send().await.unwrap();
    let (stored, digests) = objects.put_stream_hashed(&temporary, alg, response.bytes_stream()).await.unwrap();
    let digests = digests.unwrap();
    assert_eq!(digests.provider, expected, "{}: the pipeline's hash", alg.name());
    objects.rename(&temporary, &target).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!("{seconds} 0 {} {}", stored.size, peak_rss_kib());
}

struct Measured {
    seconds: f64,
    files: u64,
    bytes: u64,
    peak_kib: u64,
}

fn in_child(mode: &str, addr: SocketAddr, env: &[(&str, &str)]) -> Measured {
    let f = child_line(mode, addr, env);
    Measured {
        seconds: f[0].parse().unwrap(),
        files: f[1].parse().unwrap(),
        bytes: f[2].parse().unwrap(),
        peak_kib: f[3].parse().unwrap(),
    }
}

/// `alg`'s hash of the fake's first `size` bytes.
fn hash_of(alg: HashAlg, size: u64) -> String {
    let mut hasher = ContentHasher::new(alg);
    let chunk = pattern();
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        hasher.update(&chunk[..n]);
        left -= n as u64;
    }
    hasher.finish().provider
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        // Every child, the copy too, runs with the allocator settings of the worker's main.
        assert!(shared::memory::keep_freed_memory(), "glibc took the worker's allocator settings");
        let (mode, addr): (&str, SocketAddr) = (&args[at + 1], args[at + 2].parse().unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        match mode {
            "job-dropbox" => rt.block_on(child_job(addr, ProviderType::Dropbox)),
            "job-onedrive" => rt.block_on(child_job(addr, ProviderType::OneDrive)),
            "copy" => rt.block_on(child_copy(addr)),
            other => {
                let alg = other.strip_prefix("pipeline-").and_then(alg_named);
                let alg = alg.unwrap_or_else(|| panic!("unknown child mode {other}"));
                rt.block_on(child_pipeline(addr, alg))
            }
        }
        return;
    }
    let rounds: usize = args.iter().position(|a| a == "--rounds").map(|i| args[i + 1].parse().unwrap()).unwrap_or(3);
    let only = args.iter().position(|a| a == "--only").map(|i| args[i + 1].clone());
    if only.as_deref() != Some("download") {
        bench_listing(rounds);
    }
    if only.as_deref() != Some("listing") {
        bench_download(rounds);
    }
}

fn bench_listing(rounds: usize) {
    let small = serve(Fake { files: 10_000, big: 0, big_hashes: BigHashes::default() });
    let large = serve(Fake { files: 100_000, big: 0, big_hashes: BigHashes::default() });
    let (mut s_rate, mut l_rate, mut s_peak, mut l_peak) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let s = in_child("job-dropbox", small, &[]);
        let l = in_child("job-dropbox", large, &[]);
        assert_eq!((s.files, l.files), (10_000, 100_000), "every file recorded");
        eprintln!("round {round}: 10k {:.1}s {} KiB; 100k {:.1}s {} KiB", s.seconds, s.peak_kib, l.seconds, l.peak_kib);
        s_rate.push(s.files as f64 / s.seconds);
        l_rate.push(l.files as f64 / l.seconds);
        s_peak.push(s.peak_kib as f64);
        l_peak.push(l.peak_kib as f64);
    }
    let (sp, lp) = (median(s_peak), median(l_peak));
    println!("listing+reconciliation (median of {rounds}):");
    println!("  10,000 files:  {:>8.0} files/s, peak RSS {:>6.1} MiB", median(s_rate), sp / 1024.0);
    println!("  100,000 files: {:>8.0} files/s, peak RSS {:>6.1} MiB", median(l_rate), lp / 1024.0);
    println!("  peak RSS 100k / 10k: {:.2} (goal <= 1.2)", lp / sp);
}

/// Lowercase hex as Graph states a QuickXorHash: base64 of the bytes.
fn hex_to_base64(hex: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(hex::decode(hex).expect("a hash in hex"))
}

fn alg_named(name: &str) -> Option<HashAlg> {
    HashAlg::ALL.into_iter().find(|alg| alg.name() == name)
}

/// `alg` on one core over 256 MiB already in memory, in MiB/s.
fn hash_speed(alg: HashAlg) -> f64 {
    let chunk = pattern();
    let mut hasher = ContentHasher::new(alg);
    let started = Instant::now();
    for _ in 0..1024 {
        hasher.update(&chunk);
    }
    std::hint::black_box(hasher.finish());
    256.0 / started.elapsed().as_secs_f64()
}

fn bench_download(rounds: usize) {
    let hashes = HashAlg::ALL.map(|alg| hash_of(alg, GIB));
    let hash = |wanted: HashAlg| &hashes[HashAlg::ALL.iter().position(|alg| *alg == wanted).expect("one of them")];
    let big_hashes =
        BigHashes { dropbox: hash(HashAlg::Dropbox).clone(), quick_xor_base64: hex_to_base64(hash(HashAlg::QuickXor)) };
    let big = serve(Fake { files: 0, big: GIB, big_hashes });
    // One row per run in each round: the copy, the whole job against each fake, the pipeline
    // per hash (with the hash its bytes must have).
    let mut modes: Vec<(String, Option<&str>)> = vec![
        ("copy".to_owned(), None),
        ("job-dropbox".to_owned(), Some(hash(HashAlg::Dropbox).as_str())),
        ("job-onedrive".to_owned(), Some(hash(HashAlg::QuickXor).as_str())),
    ];
    modes.extend(
        HashAlg::ALL.iter().zip(&hashes).map(|(alg, hash)| (format!("pipeline-{}", alg.name()), Some(hash.as_str()))),
    );
    let (mut rates, mut peaks) = (vec![vec![]; modes.len()], vec![vec![]; modes.len()]);
    let mut speeds = vec![vec![]; HashAlg::ALL.len()];
    for round in 0..rounds {
        let mut line = format!("round {round}:");
        for (i, (mode, hash)) in modes.iter().enumerate() {
            let env: Vec<(&str, &str)> = hash.iter().map(|h| (EXPECTED_HASH_ENV, *h)).collect();
            let m = in_child(mode, big, &env);
            assert_eq!(m.bytes, GIB, "{mode}: every byte moved");
            if mode.starts_with("job-") {
                assert_eq!(m.files, 1, "{mode}: the big file is the folder's one file");
            }
            line += &format!(" {mode} {:.2}s {} KiB;", m.seconds, m.peak_kib);
            rates[i].push(GIB as f64 / m.seconds / (1 << 20) as f64);
            peaks[i].push(m.peak_kib as f64);
        }
        for (i, alg) in HashAlg::ALL.into_iter().enumerate() {
            speeds[i].push(hash_speed(alg));
        }
        eprintln!("{line}");
    }
    let rates: Vec<f64> = rates.into_iter().map(median).collect();
    let copy = rates[0];
    println!("1 GiB download (median of {rounds}); x copy: goal >= 0.8; worker peak RSS goal <= 64 MiB");
    println!("  {:<40} {:>7} {:>7} {:>14}", "", "MiB/s", "x copy", "peak RSS (MiB)");
    for (i, (mode, _)) in modes.iter().enumerate() {
        let label = match mode.as_str() {
            "copy" => "plain streaming copy".to_owned(),
            "job-dropbox" => "sync worker, whole job (Dropbox)".to_owned(),
            "job-onedrive" => "sync worker, whole job (OneDrive)".to_owned(),
            other => format!("worker's transfer pipeline, {}", other.trim_start_matches("pipeline-")),
        };
        let peak = median(peaks[i].clone()) / 1024.0;
        println!("  {label:<40} {:>7.0} {:>7.2} {peak:>14.1}", rates[i], rates[i] / copy);
    }
    println!("  each hash alone, one core, in memory (MiB/s):");
    for (alg, speed) in HashAlg::ALL.into_iter().zip(speeds) {
        println!("    {:<10} {:>7.0}", alg.name(), median(speed));
    }
    std::io::stdout().flush().unwrap();
}
