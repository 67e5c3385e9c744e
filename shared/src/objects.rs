//! Quodsi's side of a sync: the object store that synced files are written to and read from.
//! It is S3 in AWS, a local directory for local runs, and moto's S3 in tests, all behind one
//! small type, [`Objects`].
//!
//! **Why `object_store` rather than `aws-sdk-s3`.** One interface covers both the local
//! directory and S3, so local runs and tests exercise the same code path as AWS. It has
//! streaming multipart writes ([`WriteMultipart`]) and presigned URLs through its
//! [`Signer`]. Its `aws` feature brings reqwest with rustls (aws-lc-rs), the same TLS stack as
//! the rest of the workspace, so nothing pulls in OpenSSL. With `aws-sdk-s3` we would have to
//! write and test a second, local implementation ourselves.
//!
//! **Atomic writes.** A reader never sees a partly written object. On S3 a small body is one
//! PUT and a large one a multipart upload, which S3 shows only when it completes. Locally one
//! blocking thread writes the chunks, as they come, to a temporary file (`<name>#<n>`, which a
//! key can never produce because `#` is escaped, and which `object_store` leaves out of its
//! listings) and renames it into place at the end. A write that fails part-way is aborted. On
//! S3 an upload that is cut off without an abort (a Lambda timeout, for example) leaves
//! invisible parts behind, so the bucket should carry an `AbortIncompleteMultipartUpload`
//! lifecycle rule.
//!
//! **Keys.** [`ObjectKey::for_file`] is the only way to make a key. It puts every file under
//! `{tenant}/{folder}/`, and turns the provider's file and folder names into segments that
//! cannot leave that prefix. See [`ObjectKey`] for the rules.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::{Method, Signer as _};
use object_store::{GetOptions, ObjectStore, ObjectStoreExt as _, PutPayloadMut, WriteMultipart};
use sha2::{Digest as _, Sha256};

use crate::content_hash::{ContentHasher, Digests, HashAlg, HashAlongside};
use crate::db::{FolderId, TenantId};

/// The URL type of presigned URLs (the `url` crate's, as object_store re-exports it).
pub use object_store::signer::Url;

/// Size of one part of a multipart upload to S3, and the most a small body is buffered before
/// the upload switches to multipart. S3 needs at least 5 MiB for every part but the last.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts uploading to S3 at the same time. With the part size this bounds the memory of one
/// [`Objects::put_stream`] to S3 to about `PART_SIZE * (MAX_PARTS_IN_FLIGHT + 2)` (32 MiB, plus
/// the largest chunk the body stream yields), however large the object.
pub const MAX_PARTS_IN_FLIGHT: usize = 2;

/// Chunks queued for the local store's writing thread: enough that neither side waits on the
/// other's jitter. A chunk is written, and dropped, as soon as it arrives, so a local write
/// holds a handful of chunks (reqwest hands out at most some hundreds of KiB at a time). Parts
/// of half a MiB, each a blocking task of its own (the way `object_store` writes a local
/// multipart upload), cost a 1 GiB download about a quarter of its speed: each chunk waited
/// for its part, crossed to another thread to be written, and the allocator kept taking fresh
/// pages for the chunks held (BENCHMARKS.md, sync worker).
const LOCAL_QUEUE_CHUNKS: usize = 8;

/// The longest lifetime SigV4 allows for a presigned URL.
pub const MAX_PRESIGN_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The AWS environment variables an `s3://` store reads, besides the URL. These are the
/// standard ones that `object_store` understands: static credentials (what Lambda sets), the
/// container and web-identity providers, region, and endpoint overrides
/// (`AWS_ENDPOINT_URL_S3` wins over `AWS_ENDPOINT_URL`).
pub const S3_ENV_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ALLOW_HTTP",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
    "AWS_METADATA_ENDPOINT",
    "AWS_IMDSV1_FALLBACK",
    "AWS_SERVER_SIDE_ENCRYPTION",
    "AWS_SSE_KMS_KEY_ID",
    "AWS_SSE_BUCKET_KEY_ENABLED",
];

type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a key could not be made from a provider path. No variant repeats the name itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectKeyError {
    #[error("a file key needs at least one path segment")]
    NoSegments,
    #[error("path segment {index} is empty")]
    EmptySegment { index: usize },
    #[error("path segment {index} is `{segment}`, which names no file and would leave its folder")]
    DotSegment { index: usize, segment: &'static str },
    #[error("key is {len} bytes, over the S3 maximum of {max}")]
    TooLong { len: usize, max: usize },
    #[error("path segment {index} holds a control character or a backslash")]
    BadCharacter { index: usize },
}

/// The key of one synced file: `{tenant}/{folder}/{seg1}/{seg2}/…`, where the segments are the
/// provider's folder and file names below the synced folder. A key never leaves its tenant's and
/// folder's prefix, and two different provider paths never give the same key.
///
/// Each name becomes one segment:
/// - **Escaped** (percent-encoded as `%XX` of its UTF-8 bytes, so the name stays readable and
///   the mapping stays one-to-one). `/` and `\` are legal in Google Drive names, and an
///   absolute path (`/etc/passwd`) becomes one harmless segment because its `/` are escaped.
///   `:` is escaped so no segment reads as a Windows drive (`C:`) or stream. Control characters
///   (NUL, CR, LF, DEL, C1) are escaped. `% ~ #` are escaped because `%` is the escape character,
///   `~` marks shortened segments, and the local store uses `#<n>` for its temporary files.
///   `? * " < > |` are escaped because Windows forbids them and `?` starts a URL query. Every
///   other character, non-ASCII included, is kept.
/// - **Refused**: an empty name, and `.` or `..`. No provider allows these as names, so one
///   means a broken or hostile listing. The worker should record it as an error for that file
///   rather than store the file under an invented name.
/// - **Shortened** when a segment is over 255 bytes after escaping (the usual file-name limit
///   of a local file system). It keeps a readable prefix, then `~` and 24 hex digits (96 bits)
///   of the SHA-256 of the full name, then the extension if it has one of up to 16 bytes. A
///   `~` is always escaped in a segment that is not shortened, so a shortened segment never
///   equals an ordinary one. Two long names share a segment only if their hashes collide.
/// - **Refused** as a whole when the key is over 1024 bytes (the S3 limit). There is no readable
///   way to shorten a deep path without losing its shape. [`Objects`] also refuses a key that
///   its `s3://bucket/prefix` would push over the limit.
///
/// Not handled: a case-insensitive local file system (macOS, Windows) merges names that differ
/// only in case, and Windows also drops trailing dots and spaces and reserves names like `CON`.
/// S3 and Linux keep all of these apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// The S3 limit on a key, in bytes.
    pub const MAX_LEN: usize = 1024;
    /// The longest segment, in bytes.
    pub const MAX_SEGMENT_LEN: usize = 255;
    /// Hex digits of the name's SHA-256 in a shortened segment.
    const SHORTENED_HASH_HEX: usize = 24;
    /// Longest extension kept on a shortened segment (dot included).
    const SHORTENED_MAX_EXT: usize = 16;

    /// The key of the file at `relative_path` (folder names, then the file name) below the
    /// synced folder `folder` of `tenant`.
    pub fn for_file(tenant: TenantId, folder: FolderId, relative_path: &[&str]) -> Result<ObjectKey, ObjectKeyError> {
        if relative_path.is_empty() {
            return Err(ObjectKeyError::NoSegments);
        }
        let mut key = format!("{}/{}", tenant.0.hyphenated(), folder.0.hyphenated());
        for (index, name) in relative_path.iter().enumerate() {
            match *name {
                "" => return Err(ObjectKeyError::EmptySegment { index }),
                "." => return Err(ObjectKeyError::DotSegment { index, segment: "." }),
                ".." => return Err(ObjectKeyError::DotSegment { index, segment: ".." }),
                _ => {}
            }
            key.push('/');
            key.push_str(&segment(name));
        }
        if key.len() > Self::MAX_LEN {
            return Err(ObjectKeyError::TooLong { len: key.len(), max: Self::MAX_LEN });
        }
        Ok(ObjectKey(key))
    }

    /// The key of an object of `tenant` named by a client relative to the tenant's prefix
    /// (`exports/run-42/results.csv`, an export's source): `/`-separated segments, none empty,
    /// `.` or `..`, none with a control character or a backslash, so the key stays under the
    /// tenant's prefix whatever the client sends.
    pub fn of_tenant(tenant: TenantId, relative: &str) -> Result<ObjectKey, ObjectKeyError> {
        if relative.is_empty() {
            return Err(ObjectKeyError::NoSegments);
        }
        for (index, segment) in relative.split('/').enumerate() {
            match segment {
                "" => return Err(ObjectKeyError::EmptySegment { index }),
                "." => return Err(ObjectKeyError::DotSegment { index, segment: "." }),
                ".." => return Err(ObjectKeyError::DotSegment { index, segment: ".." }),
                _ if segment.chars().any(|c| c.is_control() || c == '\\') => {
                    return Err(ObjectKeyError::BadCharacter { index });
                }
                _ => {}
            }
        }
        let key = format!("{}/{relative}", tenant.0.hyphenated());
        if key.len() > Self::MAX_LEN {
            return Err(ObjectKeyError::TooLong { len: key.len(), max: Self::MAX_LEN });
        }
        Ok(ObjectKey(key))
    }

    /// A key read back from storage (a row's `object_key`), accepted only if it is exactly what
    /// [`ObjectKey::for_file`] makes under this tenant and folder: a stored value is data, and
    /// nothing outside the prefix is read or deleted on its say-so.
    pub fn stored_under(stored: &str, tenant: TenantId, folder: FolderId) -> Option<ObjectKey> {
        let prefix = format!("{}/{}/", tenant.0.hyphenated(), folder.0.hyphenated());
        let rest = stored.strip_prefix(&prefix)?;
        let segments: Vec<&str> = rest.split('/').collect();
        let key = ObjectKey::for_file(tenant, folder, &segments).ok()?;
        (key.0 == stored).then_some(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ObjectKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn escaped(c: char) -> bool {
    c.is_control() || matches!(c, '%' | '/' | '\\' | ':' | '~' | '#' | '?' | '*' | '"' | '<' | '>' | '|')
}

/// One provider name as a key segment (see [`ObjectKey`]). `name` is neither empty nor a dot
/// segment.
fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if escaped(c) {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.len() <= ObjectKey::MAX_SEGMENT_LEN {
        return out;
    }
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    let hash = &digest[..ObjectKey::SHORTENED_HASH_HEX];
    // The extension tells a reader (and a browser downloading through a presigned URL) what the
    // file is; a "dot" at the start is a hidden-file name, not an extension.
    let ext = match out.rfind('.') {
        Some(dot) if dot > 0 && out.len() - dot <= ObjectKey::SHORTENED_MAX_EXT => &out[dot..],
        _ => "",
    };
    let budget = ObjectKey::MAX_SEGMENT_LEN - 1 - hash.len() - ext.len();
    let mut cut = budget;
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    // Do not split a `%XX` escape: back up to its `%`.
    // Bytes, not str: the two bytes before the cut may end a multi-byte character.
    if let Some(percent) = out.as_bytes()[cut.saturating_sub(2)..cut].iter().position(|&b| b == b'%') {
        cut = cut.saturating_sub(2) + percent;
    }
    format!("{}~{hash}{ext}", &out[..cut])
}

/// What a write stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// Bytes written.
    pub size: u64,
    /// The store's entity tag (S3's quoted ETag, or the local store's file tag).
    pub e_tag: Option<String>,
}

/// What is known about a stored object without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub e_tag: Option<String>,
    pub last_modified: DateTime<Utc>,
}

impl From<object_store::ObjectMeta> for ObjectMeta {
    fn from(m: object_store::ObjectMeta) -> Self {
        ObjectMeta { size: m.size, e_tag: m.e_tag, last_modified: m.last_modified }
    }
}

/// A stored object being read: its metadata and its bytes, streamed.
pub struct ObjectBody {
    pub meta: ObjectMeta,
    pub stream: BoxStream<'static, Result<Bytes, ObjectsError>>,
}

impl fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBody").field("meta", &self.meta).finish_non_exhaustive()
    }
}

/// Why an object store operation failed. No variant carries a credential; the configuration
/// URL is never repeated.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("object store URL is not valid: {problem}")]
    InvalidUrl { problem: String },
    #[error("object store URL scheme `{scheme}` is not supported (use s3://bucket/prefix, file:///path or a path)")]
    UnsupportedScheme { scheme: String },
    #[error("cannot create the local object directory {path}: {source}")]
    LocalDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot configure the object store: {source}")]
    Configure {
        #[source]
        source: object_store::Error,
    },
    #[error("key {key} with the store's prefix is {len} bytes, over the S3 maximum of {max}")]
    KeyTooLong { key: String, len: usize, max: usize },
    #[error("object {key} not found")]
    NotFound { key: String },
    #[error("object {key} changed while it was being read")]
    Changed { key: String },
    #[error("{operation} of object {key} failed: {source}")]
    Store {
        operation: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("reading the content to write to object {key} failed: {source}")]
    Body {
        key: String,
        #[source]
        source: BoxError,
    },
    #[error("presigned URL lifetime of {ttl:?} is not within 1 s and 7 days")]
    PresignTtl { ttl: Duration },
}

impl ObjectsError {
    fn store(operation: &'static str, key: &ObjectKey, source: object_store::Error) -> ObjectsError {
        match source {
            object_store::Error::NotFound { .. } => ObjectsError::NotFound { key: key.to_string() },
            source => ObjectsError::Store { operation, key: key.to_string(), source },
        }
    }
}

/// Quodsi's object store: S3 or a local directory. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Objects {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    backend: Backend,
    /// The `s3://bucket/prefix` prefix put before every key; empty for none.
    prefix: String,
}

enum Backend {
    S3 { s3: AmazonS3, bucket: String },
    Local { root: PathBuf, fs: Arc<LocalFileSystem> },
}

impl fmt::Debug for Objects {
    // Spelled out so no store's own Debug (credential providers included) can ever be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.backend {
            Backend::S3 { bucket, .. } => {
                f.debug_struct("Objects::S3").field("bucket", bucket).field("prefix", &self.inner.prefix).finish()
            }
            Backend::Local { root, .. } => f.debug_struct("Objects::Local").field("root", root).finish(),
        }
    }
}

impl Objects {
    /// The store named by `url`: `s3://bucket` or `s3://bucket/prefix` is S3, configured from the
    /// standard AWS environment ([`S3_ENV_VARS`]); `file:///abs/path` or a plain path is a local
    /// directory, created if missing.
    pub fn from_url(url: &str) -> Result<Objects, ObjectsError> {
        Objects::from_url_with(url, |name| std::env::var(name).ok())
    }

    /// [`Objects::from_url`] with the AWS variables read through `lookup`, so tests need not
    /// change the process environment.
    pub fn from_url_with(url: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Objects, ObjectsError> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("s3://") {
            return Objects::s3(rest, lookup);
        }
        if url.starts_with("file:") {
            let parsed = Url::parse(url).map_err(|e| ObjectsError::InvalidUrl { problem: e.to_string() })?;
            let path = parsed.to_file_path().map_err(|()| ObjectsError::InvalidUrl {
                problem: "a file: URL needs an absolute local path (file:///path) and no host".into(),
            })?;
            return Objects::local(path);
        }
        if let Some((scheme, _)) = url.split_once("://") {
            // Only the scheme is repeated: the rest might hold a user name or password.
            let scheme = scheme.chars().take(16).collect();
            return Err(ObjectsError::UnsupportedScheme { scheme });
        }
        if url.is_empty() {
            return Err(ObjectsError::InvalidUrl { problem: "it is empty".into() });
        }
        Objects::local(PathBuf::from(url))
    }

    fn s3(rest: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Objects, ObjectsError> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if !valid_bucket_name(bucket) {
            return Err(ObjectsError::InvalidUrl {
                problem: "the bucket name must be 3 to 63 lowercase letters, digits, dots and hyphens".into(),
            });
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            let bad = prefix
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == ".." || p.chars().any(|c| c.is_control() || escaped(c)));
            if bad {
                return Err(ObjectsError::InvalidUrl {
                    problem: "the prefix after the bucket must be plain segments (no empty, `.`, `..`, `%`, `:` or control characters)"
                        .into(),
                });
            }
        }

        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
        for name in S3_ENV_VARS {
            let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) else { continue };
            let key: AmazonS3ConfigKey =
                name.to_ascii_lowercase().parse().map_err(|source| ObjectsError::Configure { source })?;
            builder = builder.with_config(key, value);
        }
        // An explicit plain-HTTP endpoint (moto, a local S3) is allowed without also setting
        // AWS_ALLOW_HTTP, which the AWS SDKs do not know; real S3 endpoints are HTTPS.
        let endpoint = lookup("AWS_ENDPOINT_URL_S3")
            .filter(|v| !v.trim().is_empty())
            .or_else(|| lookup("AWS_ENDPOINT_URL").filter(|v| !v.trim().is_empty()));
        if endpoint.is_some_and(|e| e.trim_start().starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        let s3 = builder.build().map_err(|source| ObjectsError::Configure { source })?;
        Ok(Objects {
            inner: Arc::new(Inner {
                store: Arc::new(s3.clone()),
                backend: Backend::S3 { s3, bucket: bucket.to_owned() },
                prefix: prefix.to_owned(),
            }),
        })
    }

    fn local(path: PathBuf) -> Result<Objects, ObjectsError> {
        let root =
            std::path::absolute(&path).map_err(|source| ObjectsError::LocalDir { path: path.clone(), source })?;
        std::fs::create_dir_all(&root).map_err(|source| ObjectsError::LocalDir { path: root.clone(), source })?;
        let fs = LocalFileSystem::new_with_prefix(&root)
            .map_err(|source| ObjectsError::Configure { source })?
            // Deleting a synced folder's last file removes its emptied directories (never the root).
            .with_automatic_cleanup(true);
        let fs = Arc::new(fs);
        Ok(Objects {
            inner: Arc::new(Inner { store: fs.clone(), backend: Backend::Local { root, fs }, prefix: String::new() }),
        })
    }

    /// `"s3"` or `"local"`, for logs.
    pub fn kind(&self) -> &'static str {
        match self.inner.backend {
            Backend::S3 { .. } => "s3",
            Backend::Local { .. } => "local",
        }
    }

    fn path_of(&self, key: &ObjectKey) -> Result<Path, ObjectsError> {
        let full =
            if self.inner.prefix.is_empty() { key.0.clone() } else { format!("{}/{}", self.inner.prefix, key.0) };
        if full.len() > ObjectKey::MAX_LEN {
            return Err(ObjectsError::KeyTooLong { key: key.to_string(), len: full.len(), max: ObjectKey::MAX_LEN });
        }
        // Keys and prefixes are built to parse; a failure here is a bug in ObjectKey.
        Path::parse(&full).map_err(|e| ObjectsError::Store {
            operation: "key check",
            key: key.to_string(),
            source: e.into(),
        })
    }

    /// Writes `body` to `key`, replacing any object there, in bounded memory. On S3 a body up to
    /// one [`PART_SIZE`] is one request, a larger one a multipart upload of such parts with at
    /// most [`MAX_PARTS_IN_FLIGHT`] uploading at once; locally one thread writes each chunk as
    /// it comes. Readers see the old object or the whole new one, never a part (see the module
    /// documentation). An error from `body` aborts the write.
    pub async fn put_stream<S, E>(&self, key: &ObjectKey, body: S) -> Result<PutResult, ObjectsError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        match &self.inner.backend {
            Backend::S3 { .. } => self.put_s3(key, body).await,
            Backend::Local { fs, .. } => Ok(self.put_local(fs, key, None, body).await?.0),
        }
    }

    /// [`Objects::put_stream`], hashing the bytes with `alg` on their way: what was written, and
    /// the hash of every byte of it (`None` if the hashing thread was lost). A hash that costs
    /// about as much as the copy or more (MD5, SHA-1, SHA-256) runs on a thread of its own,
    /// beside the writes (`content_hash::HashAlongside`). A cheap one
    /// ([`HashAlg::cheaper_than_a_copy`]) is taken, locally, as each chunk arrives, while the
    /// chunk is in the cache of the core that received it: handing it to another thread would
    /// cost more than the hash.
    pub async fn put_stream_hashed<S, E>(
        &self,
        key: &ObjectKey,
        alg: HashAlg,
        body: S,
    ) -> Result<(PutResult, Option<Digests>), ObjectsError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        if let Backend::Local { fs, .. } = &self.inner.backend
            && alg.cheaper_than_a_copy()
        {
            return self.put_local(fs, key, Some(ContentHasher::new(alg)), body).await;
        }
        let (body, hash) = HashAlongside::tap(alg, body);
        let put = self.put_stream(key, body).await;
        // The body is dropped by now, so the hashing thread has had its last chunk.
        let digests = hash.finish().await;
        Ok((put?, digests))
    }

    async fn put_s3<S, E>(&self, key: &ObjectKey, body: S) -> Result<PutResult, ObjectsError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        let path = self.path_of(key)?;
        let body_error = |e: E| ObjectsError::Body { key: key.to_string(), source: e.into() };
        let mut body = std::pin::pin!(body);
        let mut size = 0u64;
        let mut first = PutPayloadMut::new();
        while first.content_length() < PART_SIZE {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(body_error)?;
                    size += chunk.len() as u64;
                    first.push(chunk);
                }
                None => {
                    let put = self.inner.store.put(&path, first.freeze()).await;
                    let put = put.map_err(|e| ObjectsError::store("write", key, e))?;
                    return Ok(PutResult { size, e_tag: put.e_tag });
                }
            }
        }

        let upload = self.inner.store.put_multipart(&path).await.map_err(|e| ObjectsError::store("write", key, e))?;
        let mut write = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        for chunk in first.freeze() {
            write.put(chunk);
        }
        loop {
            if let Err(e) = write.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
                abort(write).await;
                return Err(ObjectsError::store("write", key, e));
            }
            match body.next().await {
                Some(Ok(chunk)) => {
                    size += chunk.len() as u64;
                    write.put(chunk);
                }
                Some(Err(e)) => {
                    abort(write).await;
                    return Err(body_error(e));
                }
                None => break,
            }
        }
        // finish() aborts the upload itself when a part or the completion fails.
        let put = write.finish().await.map_err(|e| ObjectsError::store("write", key, e))?;
        Ok(PutResult { size, e_tag: put.e_tag })
    }

    /// The local store's write: the chunks go, in order and as they come, to one blocking thread
    /// that writes each to a temporary file next to the target, then renames the file into place
    /// once the body has ended. `hasher` hashes each chunk as it arrives (see
    /// [`Objects::put_stream_hashed`]). A failed body or a failed write removes the temporary file
    /// before this returns. So does a dropped future, once the thread has written the chunks
    /// already queued (at most [`LOCAL_QUEUE_CHUNKS`]); dropped after the body has ended, the
    /// object is published.
    async fn put_local<S, E>(
        &self,
        fs: &LocalFileSystem,
        key: &ObjectKey,
        mut hasher: Option<ContentHasher>,
        body: S,
    ) -> Result<(PutResult, Option<Digests>), ObjectsError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        let path = self.path_of(key)?;
        let target = fs.path_to_filesystem(&path).map_err(|e| ObjectsError::store("write", key, e))?;
        let (tx, rx) = tokio::sync::mpsc::channel(LOCAL_QUEUE_CHUNKS);
        let writer = tokio::task::spawn_blocking(move || write_local(&target, rx));
        let mut body = std::pin::pin!(body);
        let mut size = 0u64;
        let mut failed = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    size += chunk.len() as u64;
                    if let Some(hasher) = &mut hasher {
                        hasher.update(&chunk);
                    }
                    if tx.send(LocalWrite::Chunk(chunk)).await.is_err() {
                        break; // The writer stopped on an error, reported below.
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none() {
            let _ = tx.send(LocalWrite::Publish).await;
        }
        drop(tx);
        let written = writer.await;
        if let Some(e) = failed {
            return Err(ObjectsError::Body { key: key.to_string(), source: e.into() });
        }
        let local_error = |source: BoxError| {
            ObjectsError::store("write", key, object_store::Error::Generic { store: "LocalFileSystem", source })
        };
        let e_tag = match written {
            Ok(Ok(Written::Published { e_tag })) => e_tag,
            Ok(Ok(Written::Abandoned)) => return Err(local_error("the write ended before the body did".into())),
            Ok(Err(e)) => return Err(local_error(e.into())),
            Err(e) => return Err(local_error(format!("the writing thread failed: {e}").into())),
        };
        Ok((PutResult { size, e_tag: Some(e_tag) }, hasher.map(ContentHasher::finish)))
    }

    /// Reads the object at `key` as a stream of chunks. [`ObjectsError::NotFound`] if it is
    /// not there.
    pub async fn get_stream(&self, key: &ObjectKey) -> Result<ObjectBody, ObjectsError> {
        let path = self.path_of(key)?;
        let got = self.inner.store.get(&path).await.map_err(|e| ObjectsError::store("read", key, e))?;
        let meta = ObjectMeta::from(got.meta.clone());
        let owned = key.clone();
        let stream = got.into_stream().map_err(move |e| ObjectsError::store("read", &owned, e)).boxed();
        Ok(ObjectBody { meta, stream })
    }

    /// The bytes `range` of the object at `key` (an upload's part: bounded memory whatever the
    /// object's size), if its entity tag is still `e_tag`: [`ObjectsError::Changed`] when the
    /// object was replaced since (a part of another version must not join an upload),
    /// [`ObjectsError::NotFound`] if it is not there.
    pub async fn get_range(
        &self,
        key: &ObjectKey,
        range: std::ops::Range<u64>,
        e_tag: Option<&str>,
    ) -> Result<Bytes, ObjectsError> {
        let path = self.path_of(key)?;
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let options = GetOptions::new().with_range(Some(range)).with_if_match(e_tag.map(str::to_owned));
        let got = self.inner.store.get_opts(&path, options).await.map_err(|e| match e {
            object_store::Error::Precondition { .. } => ObjectsError::Changed { key: key.to_string() },
            e => ObjectsError::store("read", key, e),
        })?;
        got.bytes().await.map_err(|e| ObjectsError::store("read", key, e))
    }

    /// The object's metadata, or `None` if there is no object at `key`.
    pub async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, ObjectsError> {
        let path = self.path_of(key)?;
        match self.inner.store.head(&path).await {
            Ok(meta) => Ok(Some(meta.into())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(ObjectsError::store("head", key, e)),
        }
    }

    /// Moves the object at `from` to `to`, replacing any object there: an atomic rename on a
    /// local directory, a server-side copy and a delete on S3 (a reader of `to` sees the old
    /// or the whole new object either way).
    pub async fn rename(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), ObjectsError> {
        let (source, target) = (self.path_of(from)?, self.path_of(to)?);
        self.inner.store.rename(&source, &target).await.map_err(|e| ObjectsError::store("rename", from, e))
    }

    /// Copies the object at `from` to `to`, replacing any object there (server-side on S3).
    pub async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), ObjectsError> {
        let (source, target) = (self.path_of(from)?, self.path_of(to)?);
        self.inner.store.copy(&source, &target).await.map_err(|e| ObjectsError::store("copy", from, e))
    }

    /// Removes the object at `key`. Removing an object that is not there succeeds, as on S3,
    /// so a retried delete is harmless.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectsError> {
        let path = self.path_of(key)?;
        match self.inner.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ObjectsError::store("delete", key, e)),
        }
    }

    /// A URL that lets its holder GET the object for `ttl` without credentials: `Some` on S3,
    /// `None` on a local directory, whose bytes the local API serves itself.
    pub async fn presigned_get(&self, key: &ObjectKey, ttl: Duration) -> Result<Option<Url>, ObjectsError> {
        self.presign(Method::GET, key, ttl).await
    }

    /// A URL that lets its holder PUT the object's bytes for `ttl` (one request, so up to S3's
    /// 5 GB single-PUT limit): `Some` on S3, `None` on a local directory.
    pub async fn presigned_put(&self, key: &ObjectKey, ttl: Duration) -> Result<Option<Url>, ObjectsError> {
        self.presign(Method::PUT, key, ttl).await
    }

    async fn presign(&self, method: Method, key: &ObjectKey, ttl: Duration) -> Result<Option<Url>, ObjectsError> {
        let Backend::S3 { s3, .. } = &self.inner.backend else { return Ok(None) };
        if ttl < Duration::from_secs(1) || ttl > MAX_PRESIGN_TTL {
            return Err(ObjectsError::PresignTtl { ttl });
        }
        let path = self.path_of(key)?;
        let url = s3.signed_url(method, &path, ttl).await.map_err(|e| ObjectsError::store("presign", key, e))?;
        Ok(Some(url))
    }
}

/// What the local store's writing thread is sent.
enum LocalWrite {
    Chunk(Bytes),
    /// The body has ended: rename the file into place.
    Publish,
}

enum Written {
    /// Renamed into place, with the entity tag `object_store` gives the file.
    Published { e_tag: String },
    /// The sender went away before `Publish` (a failed body, a dropped write).
    Abandoned,
}

/// The local store's writing thread (see [`Objects::put_local`]): whatever happens, either the
/// object is published or its temporary file is gone.
fn write_local(target: &std::path::Path, mut rx: tokio::sync::mpsc::Receiver<LocalWrite>) -> std::io::Result<Written> {
    let (file, temporary) = temporary_file(target)?;
    let written = fill_and_publish(file, &mut rx, &temporary, target);
    if !matches!(written, Ok(Written::Published { .. })) {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

fn fill_and_publish(
    mut file: std::fs::File,
    rx: &mut tokio::sync::mpsc::Receiver<LocalWrite>,
    temporary: &std::path::Path,
    target: &std::path::Path,
) -> std::io::Result<Written> {
    use std::io::Write as _;
    while let Some(message) = rx.blocking_recv() {
        match message {
            LocalWrite::Chunk(chunk) => file.write_all(&chunk)?,
            LocalWrite::Publish => {
                // Read from the file itself, before the rename: once it is in place another
                // write may replace it.
                let e_tag = local_e_tag(&file.metadata()?);
                // Closed before it is published. A local disk reports a failed write at the
                // write; only a network file system could report one at close, which `File`
                // does not check (this store serves local runs).
                drop(file);
                std::fs::rename(temporary, target)?;
                return Ok(Written::Published { e_tag });
            }
        }
    }
    Ok(Written::Abandoned)
}

/// The entity tag `object_store`'s local store gives a file (and `head` reports): its inode,
/// modification time in microseconds and size, in hex, quoted.
fn local_e_tag(metadata: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(metadata);
    #[cfg(not(unix))]
    let inode = 0u64;
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{inode:x}-{mtime:x}-{:x}\"", metadata.len())
}

/// A new file `<target>#<n>` (the first `n` free), its directories created as needed: the
/// naming `object_store`'s own local writes use, so its listings never show one.
fn temporary_file(target: &std::path::Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    // The store removes a directory its last object leaves, so a directory made here can be gone
    // again before the file is created in it: made again, a few times.
    let (mut n, mut parents_made) = (1u32, 0);
    loop {
        let mut name = target.as_os_str().to_owned();
        name.push(format!("#{n}"));
        let path = PathBuf::from(name);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                n = n.checked_add(1).ok_or_else(|| std::io::Error::other("no free temporary file name"))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && parents_made < 3 => {
                let parent = target.parent().ok_or(e)?;
                std::fs::create_dir_all(parent)?;
                parents_made += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn abort(write: WriteMultipart) {
    // The caller reports the error that made it abort; a failed abort only leaves parts that
    // the bucket's lifecycle rule removes.
    if let Err(e) = write.abort().await {
        tracing::warn!(error = %e, "aborting a multipart upload failed");
    }
}

/// S3's rules for (general purpose) bucket names, enough to refuse a URL with a user name,
/// a port or a typo before any request is made.
fn valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn tenant() -> TenantId {
        TenantId(Uuid::from_u128(0x1111_1111_1111_4111_8111_1111_1111_1111))
    }

    fn folder() -> FolderId {
        FolderId(Uuid::from_u128(0x2222_2222_2222_4222_8222_2222_2222_2222))
    }

    fn key(path: &[&str]) -> Result<String, ObjectKeyError> {
        ObjectKey::for_file(tenant(), folder(), path).map(|k| k.0)
    }

    fn prefix() -> String {
        format!("{}/{}/", tenant(), folder())
    }

    #[test]
    fn an_ordinary_path_keeps_its_names_under_the_tenant_and_folder() {
        // Arrange
        let path = ["Scenarios", "line 2 (final) [v3].qsim"];

        // Act
        let got = key(&path).unwrap();

        // Assert
        assert_eq!(got, format!("{}Scenarios/line 2 (final) [v3].qsim", prefix()));
    }

    #[test]
    fn separators_colons_and_control_characters_are_percent_encoded() {
        // Arrange
        let cases = [
            ("a/b", "a%2Fb"),
            ("a\\b", "a%5Cb"),
            ("/etc/passwd", "%2Fetc%2Fpasswd"),
            ("C:", "C%3A"),
            ("C:\\Windows", "C%3A%5CWindows"),
            ("nul\0byte", "nul%00byte"),
            ("line\nbreak\r", "line%0Abreak%0D"),
            ("del\u{7f}", "del%7F"),
            ("c1\u{85}", "c1%C2%85"),
            ("100%", "100%25"),
            ("~$Budget.xlsx", "%7E$Budget.xlsx"),
            ("a#1", "a%231"),
            ("what?*\"<>|", "what%3F%2A%22%3C%3E%7C"),
            ("...", "..."),
            ("é 模型.qsim", "é 模型.qsim"),
        ];

        for (name, expected) in cases {
            // Act
            let got = key(&[name]).unwrap();

            // Assert
            assert_eq!(got, format!("{}{expected}", prefix()), "{name:?}");
        }
    }

    #[test]
    fn empty_and_dot_segments_and_empty_paths_are_refused() {
        // Arrange
        let cases: [(&[&str], ObjectKeyError); 4] = [
            (&[], ObjectKeyError::NoSegments),
            (&["a", ""], ObjectKeyError::EmptySegment { index: 1 }),
            (&["."], ObjectKeyError::DotSegment { index: 0, segment: "." }),
            (&["a", "..", "b"], ObjectKeyError::DotSegment { index: 1, segment: ".." }),
        ];

        for (path, expected) in cases {
            // Act
            let got = key(path);

            // Assert
            assert_eq!(got, Err(expected), "{path:?}");
        }
    }

    #[test]
    fn a_long_name_keeps_a_readable_prefix_a_hash_and_its_extension() {
        // Arrange
        let long_a = format!("{}.qsim", "a".repeat(300));
        let long_b = format!("{}b.qsim", "a".repeat(299));

        // Act
        let a = key(&[&long_a]).unwrap();
        let b = key(&[&long_b]).unwrap();

        // Assert
        let seg_a = a.rsplit('/').next().unwrap();
        let seg_b = b.rsplit('/').next().unwrap();
        assert_eq!(seg_a.len(), ObjectKey::MAX_SEGMENT_LEN);
        assert!(seg_a.starts_with(&"a".repeat(200)), "{seg_a}");
        assert!(seg_a.ends_with(".qsim"), "{seg_a}");
        assert_eq!(seg_a.matches('~').count(), 1);
        assert_ne!(seg_a, seg_b, "two long names that share a prefix stay distinct");
    }

    #[test]
    fn a_shortened_segment_never_splits_an_escape_or_a_character() {
        for pad in 0..4 {
            // Arrange: escapes and 3-byte characters straddling the cut at every offset.
            let name = format!("{}{}", "x".repeat(pad), "/模".repeat(100));

            // Act
            let got = key(&[&name]).unwrap();

            // Assert
            let seg = got.rsplit('/').next().unwrap();
            assert!(seg.len() <= ObjectKey::MAX_SEGMENT_LEN, "{pad}: {} bytes", seg.len());
            let (readable, _) = seg.split_once('~').unwrap();
            let bytes = readable.as_bytes();
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'%' {
                    assert!(i + 2 < bytes.len(), "{pad}: escape cut at the end: {readable}");
                }
            }
        }
    }

    #[test]
    fn a_key_over_the_s3_limit_is_refused() {
        // Arrange: five segments of 250 bytes are over 1024 with the prefix.
        let name = "n".repeat(250);
        let path = [name.as_str(); 5];

        // Act
        let got = key(&path);

        // Assert
        assert!(matches!(got, Err(ObjectKeyError::TooLong { max: 1024, .. })), "{got:?}");
        assert!(key(&path[..3]).is_ok(), "three such segments fit");
    }

    /// Nasty names from a deterministic generator: pieces that have broken path handling
    /// somewhere, glued at random.
    fn nasty_names(count: usize) -> Vec<String> {
        const PIECES: &[&str] = &[
            "..", ".", "/", "\\", "%", "%2F", "%2E%2E", "~", "#1", "C:", "c:\\", ":", "\0", "\n", "\r", "\t", "\u{7f}",
            "\u{85}", "\u{202e}", "a", "Z", "é", "模", "😀", " ", "?", "*", "\"", "<", ">", "|", "'", "$", "{", "}",
            "[", "]", "^", "`", "NUL", "con", ".qsim", "/..", "../", "./", "//",
        ];
        let mut state = 0x9e37_79b9_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                let parts = 1 + (next() % 8) as usize;
                (0..parts).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect::<String>()
            })
            .collect()
    }

    #[test]
    fn every_nasty_name_stays_inside_the_tenant_and_folder_as_one_segment() {
        for name in nasty_names(5000) {
            // Act
            let got = key(&["sub", &name]);

            // Assert
            let Ok(got) = got else {
                assert!(matches!(name.as_str(), "." | ".."), "only dot names are refused: {name:?}");
                continue;
            };
            let rest = got.strip_prefix(&prefix()).expect("tenant and folder prefix");
            let segments: Vec<&str> = rest.split('/').collect();
            assert_eq!(segments.len(), 2, "{name:?} -> {got}");
            assert_eq!(segments[0], "sub");
            let seg = segments[1];
            assert!(!seg.is_empty() && seg != "." && seg != "..", "{name:?} -> {seg}");
            assert!(!seg.chars().any(|c| c.is_control() || c == '\\' || c == ':'), "{name:?} -> {seg:?}");
            assert!(Path::parse(&got).is_ok(), "object_store accepts {got:?}");
        }
    }

    #[test]
    fn different_names_never_share_a_key() {
        // Arrange
        let mut names = nasty_names(5000);
        names.extend(["a/b", "a%2Fb", "a%252Fb", "a:b", "a%3Ab", "~x", "%7Ex"].map(String::from));
        names.extend((0..50).map(|i| format!("{}{i}", "long".repeat(80))));
        names.sort();
        names.dedup();
        let mut seen = std::collections::HashMap::new();

        for name in &names {
            // Act
            let Ok(got) = key(&[name]) else { continue };

            // Assert
            if let Some(other) = seen.insert(got.clone(), name) {
                panic!("{other:?} and {name:?} both map to {got}");
            }
        }
        assert!(seen.len() > 1000, "the generator made enough distinct names ({})", seen.len());
    }

    #[test]
    fn s3_urls_with_a_bad_bucket_or_prefix_are_refused_without_repeating_them() {
        // Arrange
        let urls = [
            "s3://",
            "s3://ab",
            "s3://user:hunter2@bucket",
            "s3://Bucket",
            "s3://bucket/../escape",
            "s3://bucket/a//b",
            "s3://bucket/a%2Fb",
        ];

        for url in urls {
            // Act
            let got = Objects::from_url_with(url, |_| None);

            // Assert
            let err = got.expect_err(url).to_string();
            assert!(err.starts_with("object store URL is not valid"), "{url}: {err}");
            assert!(!err.contains("hunter2") && !err.contains(url), "{url}: {err}");
        }
    }

    #[test]
    fn other_schemes_are_refused_naming_only_the_scheme() {
        // Act
        let got = Objects::from_url_with("https://user:hunter2@example.com/bucket", |_| None);

        // Assert
        let err = got.unwrap_err().to_string();
        assert!(err.contains("`https`"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn an_s3_store_with_a_prefix_refuses_keys_the_prefix_pushes_over_the_limit() {
        // Arrange
        let objects = Objects::from_url_with("s3://quodsi-objects/some/prefix", |name| {
            (name == "AWS_REGION").then(|| "eu-west-1".to_owned())
        })
        .unwrap();
        // 73 + 4 × 201 + 143 = 1020 bytes: a valid key, 1032 with "some/prefix/".
        let (long, last) = ("n".repeat(200), "n".repeat(142));
        let key = ObjectKey::for_file(tenant(), folder(), &[&long, &long, &long, &long, &last]).unwrap();
        assert_eq!(key.as_str().len(), 1020);

        // Act
        let got = objects.path_of(&key);

        // Assert
        assert!(matches!(got, Err(ObjectsError::KeyTooLong { max: 1024, .. })), "{got:?}");
        assert_eq!(objects.kind(), "s3");
        assert_eq!(format!("{objects:?}"), "Objects::S3 { bucket: \"quodsi-objects\", prefix: \"some/prefix\" }");
    }
}
