//! The push half of the sync worker against the Microsoft Graph fake (`testkit::sync_fakes`,
//! uploads in `sync_fakes_uploads.rs`): Quodsi's changed copies go up as new versions on the
//! condition that the provider's copy is still the one the last sync saw, in one request or
//! through a session of 320 KiB fragments that outlives a killed worker; a file changed on both
//! sides keeps both versions; nothing a folder's permissions forbid is ever sent.

use std::time::Duration;

use serde_json::Value;
use shared::db::*;
use sync_worker::{Ran, Settings};
use testkit::sync_fakes::{PREAUTH_SECRET, RemoteTree, fixture_content};
use wiremock::{Mock, Request, ResponseTemplate};

mod common;
use common::*;

const GRAPH: ProviderType = ProviderType::OneDrive;
/// The providers the worker uploads to.
const UPLOADERS: [ProviderType; 4] =
    [ProviderType::OneDrive, ProviderType::Dropbox, ProviderType::Box, ProviderType::GDrive];

async fn synced_world(provider: ProviderType) -> World {
    let w = world(provider, RemoteTree::scenario(provider)).await;
    w.sync(JobType::Download).await;
    w
}

fn header(r: &Request, name: &str) -> Option<String> {
    r.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Whether a request is part of an upload (any provider's).
fn is_upload(r: &Request) -> bool {
    let p = r.url.path();
    p.starts_with("/upload/")
        || p.ends_with("/createUploadSession")
        || (r.method.as_str() == "PUT" && p.ends_with("/content"))
        || p.starts_with("/2/files/upload")
        || p.starts_with("/api/2.0/files/")
        || p.starts_with("/upload/drive/")
}

/// The upload requests the provider received: `(method, path, Content-Range, If-Match,
/// whether an Authorization header came)`.
async fn uploads(w: &World) -> Vec<(String, String, Option<String>, Option<String>, bool)> {
    let requests: Vec<Request> = w.server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| is_upload(r))
        .map(|r| {
            (
                r.method.to_string(),
                testkit::sync_fakes::decode_segment(r.url.path()),
                header(r, "content-range"),
                header(r, "if-match"),
                r.headers.contains_key("authorization"),
            )
        })
        .collect()
}

/// Where a session part starts, if the request sends one: Graph's, Box's and Drive's
/// `Content-Range` (not Drive's status query, `bytes */N`), Dropbox's `append_v2` cursor offset
/// (with bytes).
fn part_start(r: &Request) -> Option<u64> {
    if let Some(range) = header(r, "content-range").filter(|range| !range.starts_with("bytes */")) {
        return range.strip_prefix("bytes ")?.split('-').next()?.parse().ok();
    }
    if r.url.path() == "/2/files/upload_session/append_v2" && !r.body.is_empty() {
        let argument: Value = serde_json::from_str(&header(r, "dropbox-api-arg")?).ok()?;
        return argument["cursor"]["offset"].as_u64();
    }
    None
}

/// The session parts the provider received, as `(start, length)`.
async fn parts(w: &World) -> Vec<(u64, usize)> {
    let requests: Vec<Request> = w.server.received_requests().await.unwrap_or_default();
    requests.iter().filter_map(|r| part_start(r).map(|start| (start, r.body.len()))).collect()
}

/// How many upload sessions were opened.
async fn sessions_opened(w: &World) -> usize {
    let requests: Vec<Request> = w.server.received_requests().await.unwrap_or_default();
    let opens = |r: &&Request| {
        let p = r.url.path();
        p.ends_with("/createUploadSession")
            || p == "/2/files/upload_session/start"
            || (r.method.as_str() == "POST" && p.ends_with("/upload_sessions"))
            || r.url.query_pairs().any(|(k, v)| k == "uploadType" && v == "resumable")
                && !r.url.query().unwrap_or_default().contains("upload_id")
    };
    requests.iter().filter(opens).count()
}

/// The parts of a megabyte in 320 KiB parts.
const MEGABYTE_PARTS: [(u64, usize); 4] = [(0, 327_680), (327_680, 327_680), (655_360, 327_680), (983_040, 16_960)];

/// A file that goes through a session, and its parts as `(start, length)`: a megabyte in the
/// worker's 320 KiB parts (Drive: 256 KiB), or for Box (sessions from 20 MB) 20 MB in the
/// 8 MiB parts it sets.
fn session_sized(provider: ProviderType) -> (usize, Vec<(u64, usize)>) {
    match provider {
        ProviderType::Box => (20_000_000, vec![(0, 8_388_608), (8_388_608, 8_388_608), (16_777_216, 3_222_784)]),
        // Drive's chunks are multiples of 256 KiB: 320 KiB rounds down to one.
        ProviderType::GDrive => {
            (1_000_000, vec![(0, 262_144), (262_144, 262_144), (524_288, 262_144), (786_432, 213_568)])
        }
        _ => (1_000_000, MEGABYTE_PARTS.to_vec()),
    }
}

/// The upload requests a write on a changed base makes before it is refused: the write itself,
/// except on Drive, whose base is read and compared before anything is sent.
fn refused_writes(provider: ProviderType) -> usize {
    usize::from(provider != ProviderType::GDrive)
}

fn meta<'a>(file: &'a CloudFile, key: &str) -> Option<&'a str> {
    file.file_metadata.as_ref()?.get(key)?.as_str()
}

#[tokio::test]
async fn an_upload_job_sends_each_changed_copy_as_a_new_version_on_its_base_revision() {
    // Arrange: after a first sync, Quodsi's copies of two files change: one small, one of a
    // megabyte (four fragments of at most 320 KiB).
    let w = synced_world(GRAPH).await;
    let small = b"line 1, revised in Quodsi\n".repeat(60);
    let large = fixture_content("a larger factory model", 1_000_000);
    let small_base = w.tree.expect("factory-line.qsim").revision.unwrap();
    let large_base = w.tree.expect("Scenarios/baseline.qsim").revision.unwrap();
    let untouched = w.tree.expect("warehouse-layout.qsim");
    w.edit_copy("factory-line.qsim", &small).await;
    w.edit_copy("Scenarios/baseline.qsim", &large).await;

    // Act
    let job = w.sync(JobType::Upload).await;
    let requests_after_first = uploads(&w).await.len();
    w.sync(JobType::Upload).await;

    // Assert: the provider has Quodsi's versions, written on the base revisions.
    assert_eq!(w.tree.expect("factory-line.qsim").content, small);
    assert_eq!(w.tree.expect("Scenarios/baseline.qsim").content, large);
    assert_eq!(w.tree.expect("warehouse-layout.qsim"), untouched, "an unchanged copy is not sent");
    let sent = uploads(&w).await;
    let small_id = w.tree.expect("factory-line.qsim").id;
    let large_id = w.tree.expect("Scenarios/baseline.qsim").id;
    let simple: Vec<_> = sent.iter().filter(|r| r.1.ends_with(&format!("/items/{small_id}/content"))).collect();
    assert_eq!(simple.len(), 1, "{sent:?}");
    assert_eq!((simple[0].0.as_str(), simple[0].3.as_deref()), ("PUT", Some(small_base.as_str())));
    let session: Vec<_> =
        sent.iter().filter(|r| r.1.ends_with(&format!("/items/{large_id}/createUploadSession"))).collect();
    assert_eq!(session.len(), 1, "{sent:?}");
    assert_eq!(session[0].3.as_deref(), Some(large_base.as_str()), "the session is conditional too");
    let fragments: Vec<_> = sent.iter().filter(|r| r.1.starts_with("/upload/graph/")).collect();
    assert_eq!(
        fragments.iter().map(|r| r.2.clone().unwrap()).collect::<Vec<_>>(),
        [
            "bytes 0-327679/1000000",
            "bytes 327680-655359/1000000",
            "bytes 655360-983039/1000000",
            "bytes 983040-999999/1000000"
        ],
        "fragments of 320 KiB in order, each once"
    );
    assert!(fragments.iter().all(|r| !r.4), "no Authorization header goes to the upload URL");
    assert_eq!(requests_after_first, sent.len(), "a second upload job had nothing to send");

    // Assert: the rows agree with the provider.
    for path in ["factory-line.qsim", "Scenarios/baseline.qsim"] {
        let file = w.file(path).await.unwrap();
        let remote = w.tree.expect(path);
        assert_eq!(file.sync_status, SyncStatus::Synced, "{path}");
        assert_eq!(file.content_hash, remote.hash, "{path}: the provider's hash of what was sent");
        assert_eq!(file.file_size_bytes, remote.size, "{path}");
        assert_eq!(meta(&file, "revision"), remote.revision.as_deref(), "{path}: the new base revision");
        assert_eq!(w.stored_bytes(&file), remote.content, "{path}: Quodsi's copy is the one sent");
    }
    assert_eq!((job.files_total, job.files_processed), (Some(2), 2));
    assert_eq!(job.bytes_transferred, (small.len() + large.len()) as i64);
    assert!(w.errors().await.is_empty(), "{:?}", w.errors().await);
}

#[tokio::test]
async fn a_dropbox_upload_commits_by_path_on_the_base_rev_with_each_parts_content_hash() {
    // Arrange
    let w = synced_world(ProviderType::Dropbox).await;
    let small = b"revised in Quodsi\n".repeat(40);
    let large = fixture_content("a larger Dropbox model", 1_000_000);
    let small_rev = w.tree.expect("factory-line.qsim").revision.unwrap();
    let large_rev = w.tree.expect("Scenarios/baseline.qsim").revision.unwrap();
    w.edit_copy("factory-line.qsim", &small).await;
    w.edit_copy("Scenarios/baseline.qsim", &large).await;

    // Act
    let job = w.sync(JobType::Upload).await;

    // Assert
    assert_eq!(w.tree.expect("factory-line.qsim").content, small);
    assert_eq!(w.tree.expect("Scenarios/baseline.qsim").content, large);
    let requests: Vec<Request> = w.server.received_requests().await.unwrap();
    let argument = |r: &Request| serde_json::from_str::<Value>(&header(r, "dropbox-api-arg").unwrap()).unwrap();
    let simple: Vec<Value> = requests.iter().filter(|r| r.url.path() == "/2/files/upload").map(argument).collect();
    assert_eq!(simple.len(), 1);
    assert_eq!(simple[0]["path"], "/quodsi models/factory-line.qsim", "by path_lower");
    assert_eq!(simple[0]["mode"], serde_json::json!({ ".tag": "update", "update": small_rev }));
    assert_eq!((simple[0]["autorename"].clone(), simple[0]["strict_conflict"].clone()), (false.into(), true.into()));
    let finish: Vec<Value> =
        requests.iter().filter(|r| r.url.path() == "/2/files/upload_session/finish").map(argument).collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["cursor"]["offset"], 1_000_000);
    assert_eq!(finish[0]["commit"]["mode"], serde_json::json!({ ".tag": "update", "update": large_rev }));
    let appends: Vec<Value> =
        requests.iter().filter(|r| r.url.path() == "/2/files/upload_session/append_v2").map(argument).collect();
    assert!(appends.iter().all(|a| a["content_hash"].as_str().is_some_and(|h| h.len() == 64)), "{appends:?}");
    assert_eq!(appends.last().unwrap()["close"], true, "the last part closes the session");
    assert_eq!(parts(&w).await, MEGABYTE_PARTS);
    assert_eq!((job.files_total, job.files_processed), (Some(2), 2));
    for path in ["factory-line.qsim", "Scenarios/baseline.qsim"] {
        let file = w.file(path).await.unwrap();
        assert_eq!((file.sync_status, file.content_hash.clone()), (SyncStatus::Synced, w.tree.expect(path).hash));
    }
    assert!(w.errors().await.is_empty(), "{:?}", w.errors().await);
}

#[tokio::test]
async fn a_box_upload_is_multipart_under_20_mb_and_chunked_above_with_digests_and_if_match() {
    // Arrange
    let w = synced_world(ProviderType::Box).await;
    let small = fixture_content("a Box model of a megabyte", 1_000_000);
    let large = fixture_content("a Box model of twenty megabytes", 20_000_000);
    let small_etag = w.tree.expect("factory-line.qsim").revision.unwrap();
    let large_etag = w.tree.expect("Scenarios/baseline.qsim").revision.unwrap();
    let (small_id, large_id) = (w.tree.expect("factory-line.qsim").id, w.tree.expect("Scenarios/baseline.qsim").id);
    w.edit_copy("factory-line.qsim", &small).await;
    w.edit_copy("Scenarios/baseline.qsim", &large).await;

    // Act
    w.sync(JobType::Upload).await;

    // Assert
    assert!(w.tree.expect("factory-line.qsim").content == small);
    assert!(w.tree.expect("Scenarios/baseline.qsim").content == large);
    let requests: Vec<Request> = w.server.received_requests().await.unwrap();
    let direct: Vec<&Request> =
        requests.iter().filter(|r| r.url.path() == format!("/api/2.0/files/{small_id}/content")).collect();
    assert_eq!(direct.len(), 1, "under 20 MB: one multipart request");
    assert_eq!(header(direct[0], "if-match"), Some(small_etag));
    let sha1 = w.tree.expect("factory-line.qsim").hash.unwrap();
    assert_eq!(header(direct[0], "content-md5"), Some(sha1), "Box's content-md5 takes the SHA-1");
    let opened: Vec<&Request> =
        requests.iter().filter(|r| r.url.path() == format!("/api/2.0/files/{large_id}/upload_sessions")).collect();
    assert_eq!(opened.len(), 1, "20 MB: a chunked session");
    let part_requests: Vec<&Request> = requests.iter().filter(|r| r.method.as_str() == "PUT").collect();
    assert_eq!(parts(&w).await, session_sized(ProviderType::Box).1, "Box's 8 MiB parts, in order");
    assert!(part_requests.iter().all(|r| header(r, "digest").is_some_and(|d| d.starts_with("sha="))));
    let commits: Vec<&Request> = requests.iter().filter(|r| r.url.path().ends_with("/commit")).collect();
    assert_eq!(commits.len(), 2, "the first commit was answered 202 (processing) and repeated");
    assert!(commits.iter().all(|r| header(r, "if-match").as_deref() == Some(large_etag.as_str())));
    let listed: Value = serde_json::from_slice(&commits[1].body).unwrap();
    assert_eq!(listed["parts"].as_array().map(Vec::len), Some(3));
    for path in ["factory-line.qsim", "Scenarios/baseline.qsim"] {
        let file = w.file(path).await.unwrap();
        assert_eq!((file.sync_status, file.content_hash.clone()), (SyncStatus::Synced, w.tree.expect(path).hash));
    }
    assert!(w.errors().await.is_empty(), "{:?}", w.errors().await);
}

#[tokio::test]
async fn a_drive_upload_reads_the_head_revision_right_before_writing_and_resumes_with_a_status_query() {
    // Arrange: a small and a megabyte copy changed; the session's third chunk never answered.
    let w = synced_world(ProviderType::GDrive).await;
    let small = b"revised in Quodsi\n".repeat(40);
    w.edit_copy("factory-line.qsim", &small).await;
    let job = kill_during_third_part(&w, ProviderType::GDrive).await;
    let (small_id, large_id) = (w.tree.expect("factory-line.qsim").id, w.tree.expect("Scenarios/baseline.qsim").id);

    // Act
    let resumed = sync_worker::engine::run(&w.t.app, &quick(), w.message(&job), None).await.unwrap();

    // Assert
    assert_eq!(resumed, Ran::Completed, "{:?}", w.errors().await);
    assert_eq!(w.tree.expect("factory-line.qsim").content, small);
    let requests: Vec<Request> = w.server.received_requests().await.unwrap();
    let position = |f: &dyn Fn(&Request) -> bool| requests.iter().position(f).expect("the request");
    let read_head = position(&|r| {
        r.method.as_str() == "GET"
            && r.url.path() == format!("/drive/v3/files/{small_id}")
            && r.url.query().unwrap_or_default().contains("headRevisionId")
    });
    let write =
        position(&|r| r.method.as_str() == "PATCH" && r.url.path() == format!("/upload/drive/v3/files/{small_id}"));
    assert!(read_head < write, "the base is checked before the write");
    assert!(requests[write].url.query().unwrap().contains("uploadType=media"));
    let opened =
        position(&|r| r.method.as_str() == "PATCH" && r.url.path() == format!("/upload/drive/v3/files/{large_id}"));
    assert!(requests[opened].url.query().unwrap().contains("uploadType=resumable"));
    assert_eq!(header(&requests[opened], "x-upload-content-length").as_deref(), Some("1000000"));
    let status = requests.iter().filter(|r| header(r, "content-range").as_deref() == Some("bytes */1000000")).count();
    assert_eq!(status, 1, "the resumed run asked the session where it stood");
    assert_eq!(
        w.file("Scenarios/baseline.qsim").await.unwrap().content_hash,
        w.tree.expect("Scenarios/baseline.qsim").hash
    );
}

#[tokio::test]
async fn every_uploader_keeps_both_versions_of_a_file_changed_on_both_sides() {
    for provider in UPLOADERS {
        // Arrange
        let w = synced_world(provider).await;
        let theirs = b"edited at the provider\n".repeat(40);
        let ours = b"edited in Quodsi\n".repeat(50);
        w.tree.modify("factory-line.qsim", theirs.clone());
        w.edit_copy("factory-line.qsim", &ours).await;

        // Act
        w.sync(JobType::Upload).await;
        let uploads_after_first = uploads(&w).await.len();
        w.sync(JobType::Upload).await;

        // Assert: the provider's version stands; Quodsi's is beside it under a conflict name.
        assert_eq!(w.tree.expect("factory-line.qsim").content, theirs, "{provider}: never overwritten");
        let file = w.file("factory-line.qsim").await.unwrap();
        assert_eq!(file.sync_status, SyncStatus::Conflict, "{provider}");
        let copy_name = meta(&file, "conflict_copy_name").expect("the conflict copy's name").to_owned();
        assert!(
            copy_name.starts_with("factory-line (Quodsi conflict 20") && copy_name.ends_with(").qsim"),
            "{provider}: {copy_name}"
        );
        let copy = w.tree.expect(&copy_name);
        assert_eq!(copy.content, ours, "{provider}: Quodsi's version is at the provider");
        assert_eq!(Some(copy.id.as_str()), meta(&file, "conflict_copy_id"));
        assert_eq!(w.stored_bytes(&file), ours, "{provider}: and still in Quodsi");
        let errors = w.errors().await;
        assert_eq!(errors.len(), 1, "{provider}: {errors:?}");
        assert_eq!((errors[0].error_code.as_deref(), errors[0].file_id), (Some("conflict"), Some(file.base.id)));
        assert!(errors[0].error_message.contains(&copy_name), "{}", errors[0].error_message);
        let expected = refused_writes(provider) + 1;
        assert_eq!(uploads_after_first, expected, "{provider}: the refused conditional write, then the copy");
        assert_eq!(uploads(&w).await.len(), expected, "{provider}: a later sync leaves the conflict to the user");
    }
}

#[tokio::test]
async fn every_uploader_syncs_a_file_changed_the_same_way_on_both_sides_without_a_transfer() {
    for provider in UPLOADERS {
        // Arrange
        let w = synced_world(provider).await;
        let same = b"the same edit on both sides\n".repeat(30);
        w.tree.modify("throughput-results.csv", same.clone());
        w.edit_copy("throughput-results.csv", &same).await;

        // Act
        w.sync(JobType::Upload).await;

        // Assert
        let file = w.file("throughput-results.csv").await.unwrap();
        let remote = w.tree.expect("throughput-results.csv");
        assert_eq!(file.sync_status, SyncStatus::Synced, "{provider}");
        assert_eq!(file.content_hash, remote.hash, "{provider}");
        assert_eq!(meta(&file, "revision"), remote.revision.as_deref(), "{provider}: the new base revision");
        assert_eq!(uploads(&w).await.len(), refused_writes(provider), "{provider}: only the refused conditional write");
        assert!(w.errors().await.is_empty(), "{provider}: {:?}", w.errors().await);
    }
}

#[tokio::test]
async fn every_uploader_puts_back_a_file_deleted_at_the_provider_but_changed_in_quodsi() {
    for provider in UPLOADERS {
        // Arrange
        let w = synced_world(provider).await;
        let ours = b"kept in Quodsi\n".repeat(20);
        w.tree.delete("Scenarios/baseline.qsim");
        w.edit_copy("Scenarios/baseline.qsim", &ours).await;

        // Act
        w.sync(JobType::Upload).await;

        // Assert
        let back = w.tree.expect("Scenarios/baseline.qsim");
        assert_eq!(back.content, ours, "{provider}: a change beats a delete");
        let file = w.file("Scenarios/baseline.qsim").await.unwrap();
        assert_eq!((file.provider_file_id.as_str(), file.sync_status), (back.id.as_str(), SyncStatus::Synced));
        assert_eq!(file.content_hash, back.hash, "{provider}");
        assert_eq!(w.stored_bytes(&file), ours, "{provider}");
        assert!(w.errors().await.is_empty(), "{provider}: {:?}", w.errors().await);
    }
}

#[tokio::test]
async fn every_uploader_in_a_bidirectional_job_pulls_pushes_and_never_downloads_over_a_changed_copy() {
    for provider in UPLOADERS {
        // Arrange: one file changed at the provider, one in Quodsi, one on both sides.
        let w = synced_world(provider).await;
        let downloads_before = w.tree.downloads_served();
        let pulled = b"new at the provider\n".repeat(20);
        let pushed = b"new in Quodsi\n".repeat(20);
        w.tree.modify("factory-line.qsim", pulled.clone());
        w.edit_copy("throughput-results.csv", &pushed).await;
        w.tree.modify("warehouse-layout.qsim", b"theirs\n".repeat(9));
        w.edit_copy("warehouse-layout.qsim", &b"ours\n".repeat(9)).await;

        // Act
        w.sync(JobType::Bidirectional).await;

        // Assert
        let factory = w.file("factory-line.qsim").await.unwrap();
        assert_eq!((factory.sync_status, w.stored_bytes(&factory)), (SyncStatus::Synced, pulled), "{provider}");
        assert_eq!(w.tree.expect("throughput-results.csv").content, pushed, "{provider}");
        assert_eq!(w.file("throughput-results.csv").await.unwrap().sync_status, SyncStatus::Synced);
        let both = w.file("warehouse-layout.qsim").await.unwrap();
        assert_eq!(both.sync_status, SyncStatus::Conflict, "{provider}");
        assert_eq!(w.stored_bytes(&both), b"ours\n".repeat(9), "{provider}: not downloaded over");
        assert_eq!(w.tree.expect("warehouse-layout.qsim").content, b"theirs\n".repeat(9), "{provider}");
        assert_eq!(w.tree.expect(meta(&both, "conflict_copy_name").unwrap()).content, b"ours\n".repeat(9));
        assert_eq!(w.tree.downloads_served() - downloads_before, 1, "{provider}: only the file changed there alone");
        assert_eq!(w.errors().await.len(), 1, "{provider}: one conflict row: {:?}", w.errors().await);
    }
}

#[tokio::test]
async fn a_download_job_keeps_a_copy_changed_in_quodsi_and_says_it_is_a_conflict() {
    // Arrange
    let w = synced_world(ProviderType::GDrive).await;
    let downloads_before = w.tree.downloads_served();
    w.tree.modify("factory-line.qsim", b"theirs\n".repeat(9));
    w.edit_copy("factory-line.qsim", &b"ours\n".repeat(9)).await;

    // Act
    w.sync(JobType::Download).await;

    // Assert
    let file = w.file("factory-line.qsim").await.unwrap();
    assert_eq!(file.sync_status, SyncStatus::Conflict);
    assert_eq!(w.stored_bytes(&file), b"ours\n".repeat(9));
    assert_eq!(w.tree.downloads_served(), downloads_before, "the provider's version was not fetched over it");
    let errors = w.errors().await;
    assert_eq!(errors.iter().map(|e| e.error_code.as_deref()).collect::<Vec<_>>(), [Some("conflict")]);
}

#[tokio::test]
async fn a_read_only_folder_never_sees_an_upload() {
    // Arrange
    let w =
        world_with(GRAPH, RemoteTree::scenario(GRAPH), |f| f.folder_permissions = FolderPermissions::ReadOnly).await;
    w.sync(JobType::Download).await;
    w.edit_copy("factory-line.qsim", &b"ours\n".repeat(9)).await;
    let upload = w.job(JobType::Upload, None).await;

    // Act
    let refused = w.run(&upload).await;
    w.sync(JobType::Bidirectional).await;

    // Assert
    assert_eq!(refused, Ran::Failed);
    assert!(w.errors().await.iter().any(|e| e.error_code.as_deref() == Some("folder_read_only")));
    assert!(uploads(&w).await.is_empty(), "not one upload request");
    assert_ne!(w.tree.expect("factory-line.qsim").content, b"ours\n".repeat(9));
}

/// Matches the request that sends the session part starting at `0`.
struct PartAt(u64);

impl wiremock::Match for PartAt {
    fn matches(&self, request: &Request) -> bool {
        part_start(request) == Some(self.0)
    }
}

/// A file big enough for a session whose third part never gets an answer: the worker is
/// killed (its future dropped) once that part has been sent, and its lease left to lapse.
async fn kill_during_third_part(w: &World, provider: ProviderType) -> SyncJob {
    let (size, planned) = session_sized(provider);
    w.edit_copy("Scenarios/baseline.qsim", &fixture_content("resumed model", size)).await;
    let third = planned[2].0;
    Mock::given(PartAt(third))
        .respond_with(ResponseTemplate::new(500).set_delay(Duration::from_secs(60)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&w.server)
        .await;
    let job = w.job(JobType::Upload, None).await;
    let settings = quick();
    let run = sync_worker::engine::run(&w.t.app, &settings, w.message(&job), None);
    let third_sent = async {
        while !parts(w).await.iter().any(|(start, _)| *start == third) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        ran = run => panic!("{provider}: the run ended before it was killed: {ran:?}"),
        () = third_sent => {}
    }
    tokio::time::sleep(quick().lease + Duration::from_millis(100)).await;
    job
}

/// A short lease and a heartbeat after every step, so a killed run's job is free again soon.
fn quick() -> Settings {
    Settings { lease: Duration::from_secs(2), heartbeat: Duration::from_millis(1), ..settings() }
}

#[tokio::test]
async fn every_uploader_resumes_an_upload_killed_after_two_parts_at_the_third() {
    for provider in UPLOADERS {
        // Arrange
        let w = synced_world(provider).await;
        let job = kill_during_third_part(&w, provider).await;
        let checkpoint = w.t.store().get_job(w.tenant.id, job.base.id).await.unwrap().job_metadata.unwrap();

        // Act
        let resumed = sync_worker::engine::run(&w.t.app, &quick(), w.message(&job), None).await.unwrap();

        // Assert
        assert_eq!(resumed, Ran::Completed, "{provider}: {:?}", w.errors().await);
        let (size, sent) = session_sized(provider);
        let content = fixture_content("resumed model", size);
        assert!(w.tree.expect("Scenarios/baseline.qsim").content == content, "{provider}: the bytes arrived whole");
        let mut expected = sent[..3].to_vec();
        expected.extend_from_slice(&sent[2..]);
        assert_eq!(
            parts(&w).await,
            expected,
            "{provider}: the third part again (it was never answered), the first two not"
        );
        assert_eq!(sessions_opened(&w).await, 1, "{provider}: the session was resumed, not opened again");
        let upload = &checkpoint["checkpoint"]["upload"];
        assert_eq!(upload["offset"], sent[2].0, "{provider}: the checkpoint had the two parts");
        let kept = serde_json::to_string(&checkpoint).unwrap();
        assert!(!kept.contains(PREAUTH_SECRET) && !kept.contains("/upload"), "{provider}: the session is encrypted");
        let file = w.file("Scenarios/baseline.qsim").await.unwrap();
        assert_eq!(file.content_hash, w.tree.expect("Scenarios/baseline.qsim").hash, "{provider}");
        let done = w.t.store().get_job(w.tenant.id, job.base.id).await.unwrap();
        assert!(done.job_metadata.as_ref().and_then(|m| m["checkpoint"].get("upload")).is_none_or(Value::is_null));
    }
}

#[tokio::test]
async fn every_uploader_starts_over_cleanly_when_the_session_expired() {
    for provider in UPLOADERS {
        // Arrange
        let w = synced_world(provider).await;
        let job = kill_during_third_part(&w, provider).await;
        w.tree.expire_upload_sessions();

        // Act
        let resumed = sync_worker::engine::run(&w.t.app, &quick(), w.message(&job), None).await.unwrap();

        // Assert
        assert_eq!(resumed, Ran::Completed, "{provider}: {:?}", w.errors().await);
        let content = fixture_content("resumed model", session_sized(provider).0);
        assert!(w.tree.expect("Scenarios/baseline.qsim").content == content, "{provider}");
        assert_eq!(sessions_opened(&w).await, 2, "{provider}: a new session");
        let starts = parts(&w).await.iter().filter(|(start, _)| *start == 0).count();
        assert_eq!(starts, 2, "{provider}: sent again from the start");
        assert_eq!(w.file("Scenarios/baseline.qsim").await.unwrap().sync_status, SyncStatus::Synced);
    }
}

/// Puts an object of the tenant's into Quodsi's store (what an export names).
fn put_object(w: &World, key: &str, content: &[u8]) {
    let path = w.t.objects_dir().join(format!("{}/{key}", w.tenant.id));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[tokio::test]
async fn every_uploader_exports_named_objects_as_new_files_or_new_versions_and_never_over_a_stranger() {
    for provider in UPLOADERS {
        // Arrange: a synced folder; at the provider, a file the folder has not seen yet.
        let w = synced_world(provider).await;
        w.tree.add_file("handmade.csv", b"made at the provider\n".to_vec());
        let results = b"run,throughput\n42,118.5\n".repeat(10);
        let model = b"the exported model\n".repeat(30);
        put_object(&w, "exports/run-42/results.csv", &results);
        put_object(&w, "exports/run-42/model.qsim", &model);
        put_object(&w, "exports/run-42/handmade.csv", b"Quodsi's handmade\n");
        let metadata = serde_json::json!({ "objects": [
            { "key": "exports/run-42/results.csv", "name": "Run 42 results.csv" },
            { "key": "exports/run-42/model.qsim", "name": "factory-line.qsim" },
            { "key": "exports/run-42/handmade.csv" },
        ]});
        let job = w.job(JobType::Export, Some(metadata)).await;

        // Act
        let (ran, _) = w.run_to_end(&job).await;

        // Assert: a new file, a new version of a synced one, and a stranger kept.
        assert_eq!(ran, Ran::Completed, "{provider}: {:?}", w.errors().await);
        assert_eq!(w.tree.expect("Run 42 results.csv").content, results, "{provider}");
        assert_eq!(w.tree.expect("factory-line.qsim").content, model, "{provider}: a re-export is a new version");
        assert_eq!(w.tree.expect("handmade.csv").content, b"made at the provider\n", "{provider}: never overwritten");
        let exported = w.file("Run 42 results.csv").await.expect("the export is tracked");
        assert_eq!(exported.quodsi_file_type, QuodsiFileType::Export, "{provider}");
        assert_eq!(
            (exported.sync_status, exported.content_hash.clone()),
            (SyncStatus::Synced, w.tree.expect("Run 42 results.csv").hash)
        );
        assert_eq!(w.stored_bytes(&exported), results, "{provider}: Quodsi's copy is in the folder");
        let factory = w.file("factory-line.qsim").await.unwrap();
        assert_eq!(
            (factory.sync_status, factory.content_hash.clone()),
            (SyncStatus::Synced, w.tree.expect("factory-line.qsim").hash)
        );
        assert_eq!(w.stored_bytes(&factory), model, "{provider}");
        let errors = w.errors().await;
        assert_eq!(errors.len(), 1, "{provider}: {errors:?}");
        assert_eq!(errors[0].error_code.as_deref(), Some("conflict"));
        let beside = w
            .files()
            .await
            .into_iter()
            .find(|f| f.file_name.starts_with("handmade (Quodsi conflict "))
            .expect("beside");
        assert_eq!(w.tree.expect(&beside.file_name).content, b"Quodsi's handmade\n", "{provider}");
        let done = w.t.store().get_job(w.tenant.id, job.base.id).await.unwrap();
        assert_eq!((done.files_total, done.files_processed), (Some(3), 3), "{provider}");
    }
}

#[tokio::test]
async fn every_uploader_rides_out_a_short_429_storm_and_continues_after_a_long_one() {
    for provider in UPLOADERS {
        // Arrange: three throttled answers that ask for no wait, then one that asks for a minute.
        let w = synced_world(provider).await;
        let (size, planned) = session_sized(provider);
        let content = fixture_content("throttled model", size);
        w.edit_copy("Scenarios/baseline.qsim", &content).await;
        for _ in 0..3 {
            w.tree.inject(
                testkit::sync_fakes::Endpoint::Upload,
                testkit::sync_fakes::Fault::RateLimited { retry_after_secs: 0 },
            );
        }
        let job = w.job(JobType::Upload, None).await;

        // Act
        let stormed = w.run(&job).await;
        w.edit_copy("factory-line.qsim", b"a later edit\n").await;
        w.tree.inject(
            testkit::sync_fakes::Endpoint::Upload,
            testkit::sync_fakes::Fault::RateLimited { retry_after_secs: 60 },
        );
        let later = w.job(JobType::Upload, None).await;
        let waited = w.run(&later).await;

        // Assert
        assert_eq!(stormed, Ran::Completed, "{provider}: {:?}", w.errors().await);
        assert!(w.tree.expect("Scenarios/baseline.qsim").content == content, "{provider}");
        let sent: Vec<(u64, usize)> = parts(&w).await;
        for part in &planned {
            assert!(sent.contains(part), "{provider}: {part:?} in {sent:?}");
        }
        assert!(w.tree.faults_served(), "{provider}");
        assert!(
            matches!(waited, Ran::Continued { delay } if delay >= Duration::from_secs(60)),
            "{provider}: a wait past the run's patience continues the job after it: {waited:?}"
        );
        assert_ne!(w.tree.expect("factory-line.qsim").content, b"a later edit\n", "{provider}: not sent yet");
        assert!(w.errors().await.is_empty(), "{provider}: {:?}", w.errors().await);
    }
}

#[tokio::test]
async fn two_deliveries_of_an_upload_job_send_it_once() {
    // Arrange
    let w = synced_world(ProviderType::Dropbox).await;
    w.edit_copy("Scenarios/baseline.qsim", &fixture_content("sent once", 1_000_000)).await;
    let job = w.job(JobType::Upload, None).await;

    // Act
    let (x, y) = tokio::join!(w.run(&job), w.run(&job));

    // Assert
    let mut outcomes = [format!("{x:?}"), format!("{y:?}")];
    outcomes.sort();
    assert_eq!(outcomes, ["Completed", "NotClaimed"]);
    assert_eq!(sessions_opened(&w).await, 1);
    assert_eq!(parts(&w).await, MEGABYTE_PARTS);
}

#[tokio::test]
async fn every_uploader_marks_a_file_error_when_the_provider_stored_other_bytes() {
    for provider in UPLOADERS {
        // Arrange
        let w = synced_world(provider).await;
        w.edit_copy("factory-line.qsim", b"sent intact, stored damaged\n").await;
        w.tree.corrupt_next_upload();

        // Act
        w.sync(JobType::Upload).await;

        // Assert
        let file = w.file("factory-line.qsim").await.unwrap();
        assert_eq!(file.sync_status, SyncStatus::Error, "{provider}: never synced");
        let errors = w.errors().await;
        assert_eq!(
            errors.iter().map(|e| e.error_code.as_deref()).collect::<Vec<_>>(),
            [Some("hash_mismatch")],
            "{provider}"
        );
        assert_eq!(errors[0].file_id, Some(file.base.id));
    }
}

#[tokio::test]
async fn a_cancelled_upload_stops_at_its_next_part_and_gives_the_session_up() {
    // Arrange: the third fragment is slow; the job is cancelled while it is on its way.
    let w = synced_world(GRAPH).await;
    w.edit_copy("Scenarios/baseline.qsim", &fixture_content("cancelled model", 1_000_000)).await;
    Mock::given(PartAt(655_360))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_millis(500)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&w.server)
        .await;
    let job = w.job(JobType::Upload, None).await;
    let settings = quick();
    let run = sync_worker::engine::run(&w.t.app, &settings, w.message(&job), None);
    let cancel = async {
        while !parts(&w).await.iter().any(|(start, _)| *start == 655_360) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let update = JobUpdate { status: Some(JobStatus::Cancelled), ..JobUpdate::default() };
        w.t.store().update_job(w.tenant.id, job.base.id, &update).await.unwrap();
    };

    // Act
    let (ran, ()) = tokio::join!(run, cancel);

    // Assert
    assert_eq!(ran.unwrap(), Ran::Stopped);
    assert_eq!(w.t.store().get_job(w.tenant.id, job.base.id).await.unwrap().status, JobStatus::Cancelled);
    assert_eq!(w.tree.open_upload_sessions(), 0, "the session was cancelled at the provider");
    let deletes = w.server.received_requests().await.unwrap().iter().filter(|r| r.method.as_str() == "DELETE").count();
    assert_eq!(deletes, 1);
    assert_ne!(w.tree.expect("Scenarios/baseline.qsim").content, fixture_content("cancelled model", 1_000_000));
}

#[tokio::test]
async fn every_uploader_deletes_at_the_provider_what_quodsi_deleted_only_if_unchanged_there() {
    for provider in UPLOADERS {
        // Arrange: two copies deleted in Quodsi; one of the two files changed at the provider.
        let w = synced_world(provider).await;
        let gone = w.tree.expect("throughput-results.csv");
        w.delete_copy("throughput-results.csv").await;
        w.delete_copy("factory-line.qsim").await;
        w.tree.modify("factory-line.qsim", b"changed at the provider meanwhile\n".to_vec());

        // Act
        w.sync(JobType::Upload).await;

        // Assert
        assert!(w.tree.item("throughput-results.csv").is_none(), "{provider}: deleted at the provider");
        assert!(w.file("throughput-results.csv").await.is_none(), "{provider}: and its row");
        assert_eq!(
            w.tree.expect("factory-line.qsim").content,
            b"changed at the provider meanwhile\n",
            "{provider}: a change at the provider beats the delete"
        );
        let back = w.file("factory-line.qsim").await.unwrap();
        assert_eq!(back.sync_status, SyncStatus::NeedsDownload, "{provider}: it comes back at the next pull");
        if provider == GRAPH || provider == ProviderType::Box {
            let requests: Vec<Request> = w.server.received_requests().await.unwrap();
            let delete = requests
                .iter()
                .find(|r| r.method.as_str() == "DELETE" && r.url.path().ends_with(&gone.id))
                .expect("a DELETE");
            assert_eq!(header(delete, "if-match"), gone.revision, "{provider}: conditional on the base");
        }
        w.sync(JobType::Download).await;
        let restored = w.file("factory-line.qsim").await.unwrap();
        assert_eq!(w.stored_bytes(&restored), b"changed at the provider meanwhile\n", "{provider}");
        assert!(w.errors().await.is_empty(), "{provider}: {:?}", w.errors().await);
    }
}

#[tokio::test]
async fn every_uploader_deletes_nothing_when_most_of_quodsis_copies_are_gone() {
    for provider in UPLOADERS {
        // Arrange: three of four copies gone (a store gone wrong looks like this).
        let w = synced_world(provider).await;
        for path in ["throughput-results.csv", "factory-line.qsim", "warehouse-layout.qsim"] {
            w.delete_copy(path).await;
        }
        let job = w.job(JobType::Upload, None).await;

        // Act
        let ran = w.run(&job).await;

        // Assert
        assert_eq!(ran, Ran::Failed, "{provider}");
        for path in ["throughput-results.csv", "factory-line.qsim", "warehouse-layout.qsim"] {
            assert!(w.tree.item(path).is_some(), "{provider}: {path} kept at the provider");
            assert!(w.file(path).await.is_some(), "{provider}: {path} kept in the folder");
        }
        let errors = w.errors().await;
        assert_eq!(errors[0].error_code.as_deref(), Some("mass_delete_guard"), "{provider}");
    }
}
