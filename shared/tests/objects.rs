//! Quodsi's object store against a local temporary directory and against moto's S3 on
//! 127.0.0.1: streaming writes (multipart on S3, the writing thread locally) and reads, hashes
//! taken on the way, metadata, deletes, presigned URLs, aborted writes, and keys made from nasty
//! provider names.

use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use sha2::{Digest as _, Sha256};
use shared::content_hash::{ContentHasher, HashAlg};
use shared::db::{FolderId, TenantId};
use shared::objects::{ObjectKey, Objects, ObjectsError, PART_SIZE};
use std::path::Path;
use std::time::Duration;
use testkit::moto::Moto;
use uuid::Uuid;

const MIB: usize = 1024 * 1024;
const TWELVE_MIB: usize = 12 * MIB;

/// A store on moto's S3: a fresh bucket, and the AWS variables a Lambda would have, given
/// through the lookup rather than the process environment.
fn s3_store(moto: &Moto, prefix: Option<&str>) -> Objects {
    let bucket = moto.create_bucket("quodsi-objects");
    let endpoint = moto.endpoint().to_owned();
    let url = match prefix {
        Some(p) => format!("s3://{bucket}/{p}"),
        None => format!("s3://{bucket}"),
    };
    Objects::from_url_with(&url, move |name| match name {
        "AWS_REGION" => Some("us-east-1".to_owned()),
        "AWS_ACCESS_KEY_ID" => Some("test".to_owned()),
        "AWS_SECRET_ACCESS_KEY" => Some("test-secret".to_owned()),
        "AWS_ENDPOINT_URL" => Some(endpoint.clone()),
        _ => None,
    })
    .expect("an s3:// store on moto")
}

fn local_store(dir: &Path) -> Objects {
    Objects::from_url(&format!("file://{}", dir.display())).expect("a file:// store")
}

fn new_key(path: &[&str]) -> (TenantId, FolderId, ObjectKey) {
    let tenant = TenantId(Uuid::new_v4());
    let folder = FolderId(Uuid::new_v4());
    let key = ObjectKey::for_file(tenant, folder, path).expect("a valid key");
    (tenant, folder, key)
}

/// Deterministic content: byte i is a mix of i, so a misplaced part is visible.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8).collect()
}

/// `data` as a stream of chunks of odd sizes, as a provider download delivers them.
fn chunked(data: &[u8], chunk: usize) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + use<> {
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        data.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    stream::iter(chunks)
}

async fn read_all(objects: &Objects, key: &ObjectKey) -> Vec<u8> {
    let body = objects.get_stream(key).await.expect("get_stream");
    let chunks: Vec<Bytes> = body.stream.try_collect().await.expect("read the stream");
    chunks.concat()
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The same checks for both stores: a 12 MiB body (multipart on S3), then read back.
async fn twelve_mib_round_trip(objects: &Objects) -> Option<String> {
    // Arrange
    let (_, _, key) = new_key(&["Scenarios", "line-2.qsim"]);
    let data = content(TWELVE_MIB);
    const { assert!(TWELVE_MIB > PART_SIZE, "the body is larger than one part, so it goes multipart") };

    // Act
    let put = objects.put_stream(&key, chunked(&data, MIB + 3)).await.expect("put_stream");
    let head = objects.head(&key).await.expect("head").expect("the object exists");
    let read = read_all(objects, &key).await;

    // Assert
    assert_eq!(put.size, TWELVE_MIB as u64);
    assert!(put.e_tag.is_some(), "the store returns an entity tag");
    assert_eq!(head.size, TWELVE_MIB as u64);
    assert_eq!(head.e_tag, put.e_tag, "head shows the tag the write returned");
    assert_eq!(read.len(), TWELVE_MIB);
    assert_eq!(sha256(&read), sha256(&data), "the bytes read back are the bytes written");
    put.e_tag
}

#[tokio::test]
async fn a_twelve_mebibyte_stream_is_written_to_a_local_directory_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let objects = local_store(dir.path());

    twelve_mib_round_trip(&objects).await;

    // Assert: one file on disk, no temporary file left behind.
    let files: Vec<_> = testkit::files_under(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("Scenarios/line-2.qsim"), "{files:?}");
}

#[tokio::test]
async fn a_twelve_mebibyte_stream_goes_through_multipart_to_moto_s3_and_back() {
    let moto = Moto::start();
    let objects = s3_store(&moto, Some("sync/objects"));

    let e_tag = twelve_mib_round_trip(&objects).await;

    // Assert: S3 tags a multipart object with its part count: 8 MiB + 4 MiB.
    let e_tag = e_tag.unwrap();
    assert!(e_tag.trim_matches('"').ends_with("-2"), "two parts: {e_tag}");
}

#[tokio::test]
async fn a_small_body_is_a_single_put_on_s3() {
    // Arrange
    let moto = Moto::start();
    let objects = s3_store(&moto, None);
    let (_, _, key) = new_key(&["small.csv"]);
    let data = b"a,b\n1,2\n".to_vec();

    // Act
    let put = objects.put_stream(&key, chunked(&data, 3)).await.unwrap();

    // Assert: a single PUT's ETag is the MD5 of the content (no part count).
    let md5 = hex::encode(md5::Md5::digest(&data));
    assert_eq!(put.e_tag.as_deref(), Some(format!("\"{md5}\"").as_str()));
    assert_eq!(put.size, data.len() as u64);
    assert_eq!(read_all(&objects, &key).await, data);
}

#[tokio::test]
async fn an_empty_body_stores_an_empty_object() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let objects = local_store(dir.path());
    let (_, _, key) = new_key(&["empty.txt"]);

    // Act
    let put = objects.put_stream(&key, chunked(&[], 1)).await.unwrap();

    // Assert
    assert_eq!(put.size, 0);
    assert_eq!(objects.head(&key).await.unwrap().map(|m| m.size), Some(0));
    assert!(read_all(&objects, &key).await.is_empty());
}

#[tokio::test]
async fn a_presigned_get_from_moto_returns_the_bytes_without_credentials() {
    // Arrange
    let moto = Moto::start();
    let objects = s3_store(&moto, Some("p"));
    let (_, _, key) = new_key(&["Models", "factory line #1: v2?.qsim"]);
    let data = content(100_000);
    objects.put_stream(&key, chunked(&data, 7_777)).await.unwrap();

    // Act
    let url = objects.presigned_get(&key, Duration::from_secs(300)).await.unwrap().expect("S3 presigns");
    let response = reqwest::get(url.clone()).await.unwrap();

    // Assert
    assert_eq!(response.status(), 200, "{url}");
    assert_eq!(response.bytes().await.unwrap().as_ref(), data.as_slice());
    let query = url.query().unwrap_or_default();
    assert!(query.contains("X-Amz-Signature=") && query.contains("X-Amz-Expires=300"), "{url}");
    assert!(!url.as_str().contains("test-secret"), "the secret key is not in the URL");
}

#[tokio::test]
async fn a_presigned_put_to_moto_stores_the_bytes() {
    // Arrange
    let moto = Moto::start();
    let objects = s3_store(&moto, None);
    let (_, _, key) = new_key(&["upload.bin"]);
    let data = content(4_321);

    // Act
    let url = objects.presigned_put(&key, Duration::from_secs(60)).await.unwrap().expect("S3 presigns");
    let response = reqwest::Client::new().put(url).body(data.clone()).send().await.unwrap();

    // Assert
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(objects.head(&key).await.unwrap().map(|m| m.size), Some(data.len() as u64));
    assert_eq!(read_all(&objects, &key).await, data);
}

#[tokio::test]
async fn a_local_directory_presigns_nothing() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let objects = local_store(dir.path());
    let (_, _, key) = new_key(&["a.qsim"]);

    // Act
    let get = objects.presigned_get(&key, Duration::from_secs(60)).await.unwrap();
    let put = objects.presigned_put(&key, Duration::from_secs(60)).await.unwrap();

    // Assert
    assert!(get.is_none() && put.is_none());
}

#[tokio::test]
async fn a_presigned_url_lifetime_beyond_seven_days_is_refused() {
    // Arrange
    let moto = Moto::start();
    let objects = s3_store(&moto, None);
    let (_, _, key) = new_key(&["a.qsim"]);

    // Act
    let got = objects.presigned_get(&key, Duration::from_secs(7 * 24 * 3600 + 1)).await;

    // Assert
    assert!(matches!(got, Err(ObjectsError::PresignTtl { .. })), "{got:?}");
}

/// Names a provider could send (Drive allows `/`, `\` and newlines; a hostile or broken
/// listing anything).
const NASTY: &[&str] = &[
    "../../../etc/passwd",
    "/absolute/path.qsim",
    "..\\..\\windows\\system32",
    "C:",
    "C:\\Users\\x.qsim",
    "nul\0byte.qsim",
    "new\nline\r.qsim",
    "100% done.csv",
    "%2E%2E",
    "~$lock.xlsx",
    "staged#1",
    "what?*\"<>|.qsim",
    "...",
    " leading and trailing ",
    "\u{202e}gnp.exe",
    "模型 😀.qsim",
];

#[tokio::test]
async fn every_nasty_name_stays_under_its_tenant_and_folder_in_a_local_directory() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let objects = local_store(dir.path());
    let tenant = TenantId(Uuid::new_v4());
    let folder = FolderId(Uuid::new_v4());
    let inside = dir.path().canonicalize().unwrap().join(tenant.to_string()).join(folder.to_string());

    for (i, name) in NASTY.iter().enumerate() {
        let key = ObjectKey::for_file(tenant, folder, &["sub", name]).unwrap();
        let data = format!("content of {name:?}").into_bytes();

        // Act
        objects.put_stream(&key, chunked(&data, 5)).await.unwrap_or_else(|e| panic!("{name:?}: {e}"));

        // Assert
        assert!(key.as_str().starts_with(&format!("{tenant}/{folder}/sub/")), "{name:?} -> {key}");
        assert_eq!(read_all(&objects, &key).await, data, "{name:?}");
        let files = testkit::files_under(dir.path());
        assert_eq!(files.len(), i + 1, "one more file for {name:?}: {files:?}");
        for f in &files {
            assert!(f.starts_with(inside.join("sub")), "{name:?} escaped to {}", f.display());
        }
        let on_disk = dir.path().canonicalize().unwrap().join(key.as_str());
        assert!(on_disk.is_file(), "{name:?}: the file is named exactly as its key: {}", on_disk.display());
    }
}

#[tokio::test]
async fn every_nasty_name_round_trips_on_moto_s3_under_its_tenant_prefix() {
    // Arrange
    let moto = Moto::start();
    let objects = s3_store(&moto, Some("root"));
    let tenant = TenantId(Uuid::new_v4());
    let folder = FolderId(Uuid::new_v4());

    for name in NASTY {
        let key = ObjectKey::for_file(tenant, folder, &[name]).unwrap();
        let data = format!("content of {name:?}").into_bytes();

        // Act
        objects.put_stream(&key, chunked(&data, 5)).await.unwrap_or_else(|e| panic!("{name:?}: {e}"));

        // Assert
        assert!(key.as_str().starts_with(&format!("{tenant}/{folder}/")), "{name:?} -> {key}");
        assert_eq!(read_all(&objects, &key).await, data, "{name:?}");
        let url = objects.presigned_get(&key, Duration::from_secs(60)).await.unwrap().unwrap();
        let fetched = reqwest::get(url).await.unwrap().bytes().await.unwrap();
        assert_eq!(fetched.as_ref(), data.as_slice(), "{name:?} through a presigned URL");
    }
}

async fn delete_then_head(objects: &Objects) {
    // Arrange
    let (_, _, key) = new_key(&["Exports", "gone.qsim"]);
    objects.put_stream(&key, chunked(b"bytes", 2)).await.unwrap();
    assert!(objects.head(&key).await.unwrap().is_some());

    // Act
    objects.delete(&key).await.unwrap();

    // Assert
    assert_eq!(objects.head(&key).await.unwrap(), None);
    objects.delete(&key).await.expect("deleting again succeeds");
    let missing = objects.get_stream(&key).await;
    assert!(matches!(missing, Err(ObjectsError::NotFound { .. })), "{missing:?}");
}

#[tokio::test]
async fn a_deleted_object_is_gone_from_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let objects = local_store(dir.path());

    delete_then_head(&objects).await;

    // Assert: the emptied directories went with it, the root stayed.
    assert!(dir.path().is_dir());
    assert!(testkit::files_under(dir.path()).is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no empty tenant directory left");
}

#[tokio::test]
async fn a_deleted_object_is_gone_from_moto_s3() {
    let moto = Moto::start();
    let objects = s3_store(&moto, None);

    delete_then_head(&objects).await;
}

/// A body that fails after `good` bytes, as a provider download cut off mid-way.
fn failing_after(good: usize) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    chunked(&content(good), MIB).chain(stream::once(async {
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "provider hung up"))
    }))
}

async fn a_failed_body_leaves_nothing(objects: &Objects, good: usize) {
    // Arrange
    let (_, _, key) = new_key(&["partial.qsim"]);

    // Act
    let got = objects.put_stream(&key, failing_after(good)).await;

    // Assert
    let err = got.expect_err("the body failed");
    assert!(matches!(err, ObjectsError::Body { .. }), "{err:?}");
    assert!(shared::error_chain(&err).contains("provider hung up"), "{err}");
    assert_eq!(objects.head(&key).await.unwrap(), None, "no partial object is visible");
}

#[tokio::test]
async fn a_body_that_fails_mid_way_leaves_no_object_in_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let objects = local_store(dir.path());

    a_failed_body_leaves_nothing(&objects, 2 * MIB).await;
    a_failed_body_leaves_nothing(&objects, 10 * MIB).await;

    // Assert: the abandoned write removed its temporary file.
    assert!(testkit::files_under(dir.path()).is_empty(), "{:?}", testkit::files_under(dir.path()));
}

#[tokio::test]
async fn a_body_that_fails_mid_way_leaves_no_object_on_moto_s3() {
    let moto = Moto::start();
    let objects = s3_store(&moto, None);

    a_failed_body_leaves_nothing(&objects, 2 * MIB).await;
    a_failed_body_leaves_nothing(&objects, 10 * MIB).await;
}

#[test]
fn a_plain_path_is_a_local_directory_created_if_missing() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("not").join("yet");

    // Act
    let objects = Objects::from_url(target.to_str().unwrap()).unwrap();

    // Assert
    assert!(target.is_dir());
    assert_eq!(objects.kind(), "local");
}

/// `data` hashed in one piece, the way the tests expect `put_stream_hashed` to have hashed it.
fn hash_of(alg: HashAlg, data: &[u8]) -> String {
    let mut hasher = ContentHasher::new(alg);
    hasher.update(data);
    hasher.finish().provider
}

async fn every_hash_on_the_way(objects: &Objects) {
    // Arrange: a body of more than one Dropbox block and one S3 part, in odd chunks.
    let data = content(9 * MIB + 5);

    for alg in HashAlg::ALL {
        let (_, _, key) = new_key(&["hashed", alg.name()]);

        // Act
        let (put, digests) =
            objects.put_stream_hashed(&key, alg, chunked(&data, 300_007)).await.expect("put_stream_hashed");

        // Assert
        let digests = digests.expect("the hash of what was written");
        assert_eq!(digests.provider, hash_of(alg, &data), "{}", alg.name());
        assert_eq!(digests.size, data.len() as u64, "{}", alg.name());
        assert_eq!(put.size, data.len() as u64, "{}", alg.name());
        assert_eq!(read_all(objects, &key).await, data, "{}: the bytes stored", alg.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_write_hashes_what_it_stores_with_every_providers_hash() {
    let dir = tempfile::tempdir().unwrap();
    let objects = local_store(dir.path());

    every_hash_on_the_way(&objects).await;

    // Assert: one file per hash, no temporary file left behind.
    assert_eq!(testkit::files_under(dir.path()).len(), HashAlg::ALL.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_moto_s3_hashes_what_it_stores_with_every_providers_hash() {
    let moto = Moto::start();
    let objects = s3_store(&moto, None);

    every_hash_on_the_way(&objects).await;
}

/// A body fed by the test: each chunk sent is the next chunk of the stream, which ends when
/// the sender is dropped.
fn fed() -> (tokio::sync::mpsc::Sender<Bytes>, impl futures_util::Stream<Item = Result<Bytes, std::io::Error>>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let body = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (Ok(chunk), rx)) });
    (tx, body)
}

/// Waits (up to 10 s) until a temporary file (`<name>#<n>`) under `dir` holds at least `bytes`:
/// the writing thread has the chunks sent so far.
async fn temporary_file_holds(dir: &Path, bytes: u64) -> std::path::PathBuf {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = testkit::files_under(dir).into_iter().find(|f| {
            f.file_name().is_some_and(|n| n.to_string_lossy().contains('#'))
                && std::fs::metadata(f).is_ok_and(|m| m.len() >= bytes)
        });
        if let Some(file) = found {
            return file;
        }
        assert!(std::time::Instant::now() < deadline, "no temporary file of {bytes} bytes under {}", dir.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_reader_sees_the_old_object_until_the_new_one_is_whole() {
    // Arrange: an object, then a new version of it on its way.
    let dir = tempfile::tempdir().unwrap();
    let objects = local_store(dir.path());
    let (_, _, key) = new_key(&["model.qsim"]);
    objects.put_stream(&key, chunked(b"version 1", 4)).await.unwrap();
    let (tx, body) = fed();
    let writing = tokio::spawn({
        let (objects, key) = (objects.clone(), key.clone());
        async move { objects.put_stream(&key, body).await }
    });
    tx.send(Bytes::from_static(b"version 2, ")).await.unwrap();
    tx.send(Bytes::from_static(b"longer")).await.unwrap();
    let temporary = temporary_file_holds(dir.path(), 17).await;

    // Act: read while the new bytes are on disk and the write is open, then end it.
    let during = read_all(&objects, &key).await;
    drop(tx);
    let put = writing.await.unwrap().expect("the write completes");
    let after = read_all(&objects, &key).await;

    // Assert
    assert_eq!(during, b"version 1", "the old object, whole, while the new one is written");
    assert_eq!(after, b"version 2, longer");
    assert_eq!(put.size, 17);
    assert!(!temporary.exists(), "the temporary file became the object");
    assert_eq!(testkit::files_under(dir.path()).len(), 1, "no temporary file left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_write_dropped_mid_way_leaves_no_file() {
    // Arrange: a write whose body stops delivering after one chunk.
    let dir = tempfile::tempdir().unwrap();
    let objects = local_store(dir.path());
    let (_, _, key) = new_key(&["cut-off.qsim"]);
    let (tx, body) = fed();
    tx.send(Bytes::from(content(MIB))).await.unwrap();
    let mut writing = Box::pin(objects.put_stream(&key, body));
    let started = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            _ = &mut writing => panic!("the body never ended, so the write cannot finish"),
            file = temporary_file_holds(dir.path(), MIB as u64) => file,
        }
    })
    .await
    .expect("the first chunk reaches the temporary file");

    // Act: the write is given up (a job cancelled, an invocation out of time) mid-body.
    drop(writing);

    // Assert: the writing thread removes its temporary file once it sees the write gone.
    assert!(started.to_string_lossy().ends_with("cut-off.qsim#1"), "{started:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !testkit::files_under(dir.path()).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(testkit::files_under(dir.path()).is_empty(), "{:?}", testkit::files_under(dir.path()));
    assert_eq!(objects.head(&key).await.unwrap(), None);
    drop(tx);
}

#[tokio::test]
async fn a_local_write_that_cannot_create_its_file_fails_and_keeps_what_was_there() {
    // Arrange: `model` is a file, so nothing can be written below it.
    let dir = tempfile::tempdir().unwrap();
    let objects = local_store(dir.path());
    let (tenant, folder, file_key) = new_key(&["model"]);
    objects.put_stream(&file_key, chunked(b"a file", 3)).await.unwrap();
    let below = ObjectKey::for_file(tenant, folder, &["model", "part.csv"]).unwrap();

    // Act
    let got = objects.put_stream_hashed(&below, HashAlg::QuickXor, chunked(&content(MIB), 65_536)).await;

    // Assert
    let err = got.expect_err("no directory can be made where a file is");
    assert!(matches!(err, ObjectsError::Store { operation: "write", .. }), "{err:?}");
    assert_eq!(read_all(&objects, &file_key).await, b"a file", "the file in the way is untouched");
    assert_eq!(testkit::files_under(dir.path()).len(), 1, "{:?}", testkit::files_under(dir.path()));
}
