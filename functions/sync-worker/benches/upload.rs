//! A 1 GiB upload through a Graph upload session, in a child process of its own (so its peak
//! memory, VmHWM, is the worker's and not the fake's), against a fake served by this process on
//! loopback that takes every fragment (and drops its bytes); beside it in the same rounds, the
//! baseline: a plain loop that reads the same file in the same 10 MiB chunks and `PUT`s each to
//! the same fake, one after the other.
//!
//! The worker's run is an `upload` job of one file whose Quodsi copy (1 GiB in the local object
//! store) changed: the session opened on the base `eTag`, each fragment read from the store on
//! the copy's entity tag, QuickXorHash computed beside the transfer, the checkpoint written at
//! every heartbeat, the row updated at the end.
//!
//! Both children run with glibc's mmap threshold fixed as template.yaml fixes it for the
//! function (`MALLOC_MMAP_THRESHOLD_`).
//!
//! `cargo bench -p sync-worker --bench upload` (add `-- --rounds N`, default 3)

mod common;
use common::{child_line, median, peak_rss_kib};

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use futures_util::StreamExt as _;
use serde_json::json;
use shared::db::{FolderType, JobType, NewSyncJob, ProviderType, SyncStatus, SyncedFile};
use shared::job_queue::JobMessage;
use shared::objects::ObjectKey;

const GIB: u64 = 1 << 30;
/// The worker's default part (10 MiB, 32 x 320 KiB), and the baseline's chunk.
const PART: u64 = 10 << 20;
const PATTERN: usize = 256 * 1024;
const FILE_ID: &str = "01BENCHBIGFILE000000000000000001";
const BASE_ETAG: &str = "\"{BENCH-0000-0000-0000-000000000001},1\"";

/// Writes `size` bytes of a repeated pattern to `path`, untimed.
fn write_big(path: &std::path::Path, size: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let pattern: Vec<u8> = (0..PATTERN).map(|i| (i * 31 % 251) as u8).collect();
    let mut file = std::fs::File::create(path).unwrap();
    let mut left = size;
    while left > 0 {
        let n = left.min(PATTERN as u64) as usize;
        file.write_all(&pattern[..n]).unwrap();
        left -= n as u64;
    }
    file.sync_all().unwrap();
}

/// Reads a request's body to the end and drops it; the byte count.
async fn drain(body: Body) -> u64 {
    let mut stream = body.into_data_stream();
    let mut bytes = 0;
    while let Some(chunk) = stream.next().await {
        bytes += chunk.map(|c| c.len() as u64).unwrap_or(0);
    }
    bytes
}

fn range_end(headers: &HeaderMap) -> (u64, u64) {
    let range = headers.get("content-range").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (span, total) = range.trim_start_matches("bytes ").split_once('/').unwrap_or(("0-0", "0"));
    let last = span.split('-').nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
    (last, total.parse().unwrap_or(0))
}

async fn create_session(Path((drive, _item)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let _ = drive;
    axum::Json(json!({
        "uploadUrl": format!("http://{host}/up/bench-session"),
        "expirationDateTime": "2026-12-31T00:00:00.000Z",
    }))
    .into_response()
}

/// A fragment: 202 with the next range, or the driveItem after the last.
async fn fragment(headers: HeaderMap, body: Body) -> Response {
    let (last, total) = range_end(&headers);
    drain(body).await;
    if last + 1 < total {
        return (StatusCode::ACCEPTED, axum::Json(json!({ "nextExpectedRanges": [format!("{}-", last + 1)] })))
            .into_response();
    }
    axum::Json(json!({
        "id": FILE_ID, "name": "big.bin", "eTag": "\"{BENCH-0000-0000-0000-000000000001},2\"", "size": total,
        "file": { "mimeType": "application/octet-stream" },
        "parentReference": { "driveId": "b!bench", "id": "01BENCHFOLDER" },
        "createdDateTime": "2026-11-01T10:00:00Z", "lastModifiedDateTime": "2026-12-06T10:00:00Z",
    }))
    .into_response()
}

/// The baseline's target: takes the chunk, answers 202.
async fn raw(body: Body) -> StatusCode {
    drain(body).await;
    StatusCode::ACCEPTED
}

fn serve() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route("/v1.0/drives/{drive}/items/{item}/createUploadSession", post(create_session))
                .route("/up/bench-session", put(fragment))
                .route("/raw", put(raw));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// Child: an upload job of the 1 GiB file; prints `seconds bytes peak_kib`.
async fn child_job(addr: SocketAddr) {
    let t = testkit::http::TestApp::with_config(json!({ "providers": { "onedrive": {
        "client_id": "bench", "client_secret": "bench-secret", "token_url": format!("http://{addr}/token"),
        "api_base_url": format!("http://{addr}"),
    }}}))
    .await;
    let tenant = t.tenant().await;
    let metadata = json!({ "drive_id": "b!bench", "drive_type": "business", "account_type": "business" });
    let connection = testkit::connect_with_tokens(
        &t.app,
        &tenant,
        ProviderType::OneDrive,
        "bench-access",
        Some("bench-refresh"),
        Some(metadata),
    )
    .await;
    let mut folder = testkit::new_folder(&tenant, connection.base.id);
    folder.provider_folder_id = "01BENCHFOLDER".into();
    folder.folder_type = FolderType::Results;
    let folder = t.store().create_folder(&folder).await.unwrap();
    let key = ObjectKey::for_file(tenant.id, folder.base.id, &["big.bin"]).unwrap();
    write_big(&t.objects_dir().join(key.as_str()), GIB);
    let row = SyncedFile {
        tenant_id: tenant.id,
        folder_id: folder.base.id,
        quodsi_file_type: FolderType::Results.file_type(),
        provider_file_id: FILE_ID.into(),
        file_name: "big.bin".into(),
        file_path: Some("big.bin".into()),
        file_size_bytes: 1,
        content_hash: Some("0".repeat(40)),
        mime_type: None,
        cloud_created_at: None,
        cloud_modified_at: None,
        sync_status: SyncStatus::Synced,
        // The copy's recorded entity tag is not the file's: Quodsi's copy changed.
        file_metadata: Some(json!({ "object_key": key.as_str(), "object_etag": "before", "revision": BASE_ETAG })),
        seen_by_job_id: None,
    };
    t.store().upsert_synced_file(&row).await.unwrap();
    let job = NewSyncJob {
        tenant_id: tenant.id,
        folder_id: folder.base.id,
        initiated_by_user_id: None,
        job_type: JobType::Upload,
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
    let errors =
        t.store().list_errors(tenant.id, &Default::default(), shared::db::PageRequest::first(10)).await.unwrap();
    assert!(errors.items.is_empty(), "{:?}", errors.items);
    println!("{seconds} {} {}", done.bytes_transferred, peak_rss_kib());
}

/// Child: the baseline, the same file read in the same chunks and `PUT` one after the other;
/// prints `seconds bytes peak_kib`.
async fn child_put_loop(addr: SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    write_big(&path, GIB);
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut file = std::fs::File::open(&path).unwrap();
    let mut sent = 0u64;
    while sent < GIB {
        let n = PART.min(GIB - sent);
        let mut chunk = vec![0u8; n as usize];
        file.read_exact(&mut chunk).unwrap();
        let range = format!("bytes {sent}-{}/{GIB}", sent + n - 1);
        let answer = client.put(format!("http://{addr}/raw")).header("content-range", range).body(chunk).send().await;
        assert_eq!(answer.unwrap().status().as_u16(), 202);
        sent += n;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{seconds} {sent} {}", peak_rss_kib());
}

struct Measured {
    seconds: f64,
    bytes: u64,
    peak_kib: u64,
}

/// glibc's mmap threshold as template.yaml fixes it for the sync-worker function
/// (`MALLOC_MMAP_THRESHOLD_`): each child runs as the function does.
const MMAP_THRESHOLD: &str = "1048576";

fn in_child(mode: &str, addr: SocketAddr) -> Measured {
    let f = child_line(mode, addr, &[("MALLOC_MMAP_THRESHOLD_", MMAP_THRESHOLD)]);
    Measured { seconds: f[0].parse().unwrap(), bytes: f[1].parse().unwrap(), peak_kib: f[2].parse().unwrap() }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let (mode, addr): (&str, SocketAddr) = (&args[at + 1], args[at + 2].parse().unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        match mode {
            "job" => rt.block_on(child_job(addr)),
            "put-loop" => rt.block_on(child_put_loop(addr)),
            other => panic!("unknown child mode {other}"),
        }
        return;
    }
    let rounds: usize = args.iter().position(|a| a == "--rounds").map(|i| args[i + 1].parse().unwrap()).unwrap_or(3);
    let addr = serve();
    let (mut loop_rate, mut worker_rate, mut loop_peak, mut worker_peak) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let plain = in_child("put-loop", addr);
        let worker = in_child("job", addr);
        assert_eq!((plain.bytes, worker.bytes), (GIB, GIB), "every byte sent");
        eprintln!(
            "round {round}: put loop {:.2}s ({} KiB), worker {:.2}s ({} KiB)",
            plain.seconds, plain.peak_kib, worker.seconds, worker.peak_kib
        );
        loop_rate.push(GIB as f64 / plain.seconds / (1 << 20) as f64);
        worker_rate.push(GIB as f64 / worker.seconds / (1 << 20) as f64);
        loop_peak.push(plain.peak_kib as f64);
        worker_peak.push(worker.peak_kib as f64);
    }
    let (lr, wr) = (median(loop_rate), median(worker_rate));
    let wp = median(worker_peak) / 1024.0;
    println!("1 GiB upload through a Graph session, 10 MiB parts (median of {rounds}):");
    println!("  plain PUT loop: {lr:>7.0} MiB/s, peak RSS {:>6.1} MiB", median(loop_peak) / 1024.0);
    println!("  sync worker:    {wr:>7.0} MiB/s, peak RSS {wp:>6.1} MiB");
    println!("  throughput worker / loop: {:.2} (goal >= 0.8)", wr / lr);
    println!("  worker peak RSS {wp:.1} MiB (goal <= one part + 32 MiB = {:.0} MiB)", (PART >> 20) as f64 + 32.0);
    std::io::stdout().flush().unwrap();
}
