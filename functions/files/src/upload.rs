//! `POST /files/{id}/upload-url`: the Quodsi app sends a new version of a file's bytes
//! straight to Quodsi's copy. In AWS the answer is a presigned S3 `PUT` URL of that copy, valid
//! for [`URL_TTL`], so the bytes never pass through a function; in the local run (a directory,
//! which cannot presign) it is a URL of the local server's `PUT /local-uploads/{token}`, the
//! token sealed with the service's state key (tenant, file, key, expiry), which acts as S3's
//! signature does.
//!
//! The URL is a credential for that one object: it goes to the caller in this answer only
//! (`Cache-Control: no-store`), never into a log line. The row keeps `upload_url` without its
//! signature or token, and `file_metadata` the expiry and the entity tag the copy had, so the
//! new bytes are recognised by the object itself, not by anything the client says: once the
//! copy's entity tag differs, a read of the file turns it `needs_upload` (see [`settle`]), and
//! an upload or bidirectional job sends it (conditionally, as every push).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::api::{ApiError, Caller, ErrorEnvelope, PathId};
use shared::app::App;
use shared::db::{CloudFile, CloudFilePatch, FileId, FolderPermissions, SyncStatus, TenantId};
use shared::objects::{ObjectKey, Objects};
use shared::vault::StateSealer;

/// How long an upload URL works.
pub const URL_TTL: Duration = Duration::from_secs(15 * 60);
/// The sealer's purpose: an upload token is no OAuth state or cursor.
const PURPOSE: &str = "upload-url/v1";
/// Where the local run takes uploads.
pub const LOCAL_UPLOAD_PATH: &str = "/local-uploads";

/// The answer: where to `PUT` the bytes, until when.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = FileUploadUrl)]
pub(crate) struct UploadUrl {
    /// `PUT` the new bytes here, without an Authorization header (S3's presigned URL in AWS).
    upload_url: String,
    method: &'static str,
    #[schema(value_type = String, format = DateTime)]
    expires_at: DateTime<Utc>,
    file_id: FileId,
}

/// What a local upload token carries.
#[derive(Debug, Serialize, Deserialize)]
pub struct Token {
    pub tenant: TenantId,
    pub file: FileId,
    pub key: String,
    pub expires_at: DateTime<Utc>,
}

/// A local upload token: sealed, so its holder can write only that key until it expires.
pub fn seal(sealer: &StateSealer, token: &Token) -> String {
    sealer.seal(PURPOSE, &serde_json::to_vec(token).expect("a token serialises"))
}

/// The token `sealed` names, if it was sealed here and has not expired.
pub fn open(sealer: &StateSealer, sealed: &str, now: DateTime<Utc>) -> Option<(Token, ObjectKey)> {
    let blob = sealer.open(PURPOSE, sealed).ok()?;
    let token: Token = serde_json::from_slice(blob.expose_secret()).ok()?;
    let key = ObjectKey::of_tenant(token.tenant, token.key.strip_prefix(&format!("{}/", token.tenant))?).ok()?;
    (token.expires_at > now).then_some((token, key))
}

/// The key of the file's Quodsi copy: the stored one, or where a download would put it.
fn copy_key(file: &CloudFile) -> Result<ObjectKey, ApiError> {
    let stored = file.file_metadata.as_ref().and_then(|m| m.get("object_key")).and_then(Value::as_str);
    if let Some(key) = stored.and_then(|k| ObjectKey::stored_under(k, file.base.tenant_id, file.folder_id)) {
        return Ok(key);
    }
    let path = file.file_path.clone().unwrap_or_else(|| file.file_name.clone());
    let segments: Vec<&str> = path.split('/').collect();
    ObjectKey::for_file(file.base.tenant_id, file.folder_id, &segments).map_err(|e| {
        ApiError::conflict("unstorable_path", format!("the file's path cannot be a key in Quodsi's files: {e}"))
    })
}

fn store(app: &App) -> Result<&Objects, ApiError> {
    app.objects().map_err(|why| {
        tracing::error!(error = %why, "object store unavailable");
        ApiError::Unavailable {
            code: "object_store_unavailable",
            message: "Quodsi's files cannot be written right now".into(),
        }
    })
}

#[utoipa::path(
    post,
    path = "/files/{id}/upload-url",
    operation_id = "create_file_upload_url",
    tag = "files",
    params(("id" = uuid::Uuid, Path, description = "The file record's id")),
    responses(
        (status = 201, description = "A short-lived URL to PUT the file's new bytes to (no Authorization header)", body = UploadUrl),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No live file of the caller's tenant has this id", body = ErrorEnvelope),
        (status = 409, description = "The file's folder is read_only (code folder_read_only), or its path cannot be a key", body = ErrorEnvelope),
        (status = 503, description = "Quodsi's object store is not configured or not reachable", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
pub(crate) async fn upload_url(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<FileId>,
) -> Result<Response, ApiError> {
    let file = app.store.get_file(caller.tenant_id, id).await?;
    let folder = app.store.get_folder(caller.tenant_id, file.folder_id).await?;
    if folder.folder_permissions == FolderPermissions::ReadOnly {
        return Err(ApiError::conflict(
            "folder_read_only",
            "the file's folder is read_only: Quodsi never writes to it",
        ));
    }
    let key = copy_key(&file)?;
    let objects = store(&app)?;
    let unavailable = |e: shared::objects::ObjectsError| {
        tracing::error!(file_id = %id, error = %shared::error_chain(&e), "preparing an upload failed");
        ApiError::Unavailable {
            code: "object_store_unavailable",
            message: "Quodsi's files cannot be written right now".into(),
        }
    };
    let before = objects.head(&key).await.map_err(unavailable)?;
    let expires_at = app.store.now() + chrono::Duration::from_std(URL_TTL).expect("a short TTL");
    let (url, kept) = match objects.presigned_put(&key, URL_TTL).await.map_err(unavailable)? {
        Some(url) => {
            let mut bare = url.clone();
            bare.set_query(None);
            (url.to_string(), bare.to_string())
        }
        None => {
            let current = app.current_for_request().await?;
            let base = current
                .config
                .webhook_base_url
                .clone()
                .or_else(|| current.config.oauth_redirect_base_url.clone())
                .ok_or_else(|| ApiError::Unavailable {
                    code: "object_store_unavailable",
                    message: "the local run has no public base URL to take uploads at".into(),
                })?;
            let token = Token { tenant: caller.tenant_id, file: id, key: key.as_str().to_owned(), expires_at };
            let base = format!("{}{LOCAL_UPLOAD_PATH}", base.trim_end_matches('/'));
            (format!("{base}/{}", seal(&current.state_sealer, &token)), base)
        }
    };
    let mut metadata = match file.file_metadata.clone() {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    metadata.insert("upload_url_expires_at".into(), json!(expires_at));
    metadata.insert("upload_base_etag".into(), json!(before.as_ref().and_then(|b| b.e_tag.clone())));
    let patch = CloudFilePatch {
        upload_url: Some(Some(kept)),
        file_metadata: Some(Some(Value::Object(metadata))),
        ..CloudFilePatch::default()
    };
    app.store.update_file(caller.tenant_id, id, &patch).await?;
    let body = UploadUrl { upload_url: url, method: "PUT", expires_at, file_id: id };
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], axum::Json(body))
        .into_response())
}

/// A file with an upload URL out: if Quodsi's copy is no longer the one it had when the URL was
/// made, the new bytes are there and the file is `needs_upload`; an expired URL with nothing
/// new is forgotten. Anything else leaves the file as it is.
pub(crate) async fn settle(app: &App, file: CloudFile) -> Result<CloudFile, ApiError> {
    let Some(metadata) = file.file_metadata.as_ref().and_then(Value::as_object) else { return Ok(file) };
    let Some(expires_at) =
        metadata.get("upload_url_expires_at").and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
    else {
        return Ok(file);
    };
    let Ok(objects) = app.objects() else { return Ok(file) };
    let Ok(key) = copy_key(&file) else { return Ok(file) };
    let now_copy = match objects.head(&key).await {
        Ok(copy) => copy,
        Err(e) => {
            tracing::warn!(file_id = %file.base.id, error = %shared::error_chain(&e), "cannot check a pending upload");
            return Ok(file);
        }
    };
    let base = metadata.get("upload_base_etag").and_then(Value::as_str);
    let arrived = now_copy.as_ref().is_some_and(|copy| copy.e_tag.as_deref() != base);
    if !arrived && expires_at > app.store.now() {
        return Ok(file);
    }
    let mut metadata = metadata.clone();
    metadata.remove("upload_url_expires_at");
    metadata.remove("upload_base_etag");
    if arrived && !metadata.contains_key("object_key") {
        // A copy made by the client where none was: it is the file's copy from now on, and an
        // unknown base (no object_etag) sends it.
        metadata.insert("object_key".into(), json!(key.as_str()));
    }
    // Only a file Quodsi and the provider agree on becomes `needs_upload`: a conflict, or a
    // file whose provider version is still on its way, keeps its state (a sync settles it).
    let flips = arrived && matches!(file.sync_status, SyncStatus::Synced | SyncStatus::Error);
    let patch = CloudFilePatch {
        upload_url: Some(None),
        sync_status: flips.then_some(SyncStatus::NeedsUpload),
        file_metadata: Some(Some(Value::Object(metadata))),
        ..CloudFilePatch::default()
    };
    Ok(app.store.update_file(file.base.tenant_id, file.base.id, &patch).await?)
}
