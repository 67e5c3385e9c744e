//! `GET /files/{id}/content`: the Quodsi app reads a synced file. In AWS the answer is a 302 to
//! a presigned URL of Quodsi's copy in S3, valid for [`URL_TTL`]: the bytes never pass through
//! the function, and the URL (a credential for that one object) goes to the caller only, in
//! the `Location` header, never into a log line or a body. On a local directory (the local
//! run) the function serves the bytes itself.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use shared::api::{ApiError, Caller, ErrorEnvelope, PathId};
use shared::app::App;
use shared::db::{FileId, SyncStatus};
use shared::objects::{ObjectKey, ObjectsError};

/// How long the presigned URL of a content redirect works.
pub const URL_TTL: Duration = Duration::from_secs(5 * 60);

fn not_downloaded(why: &str) -> ApiError {
    ApiError::conflict("not_downloaded", format!("Quodsi holds no copy of this file's bytes: {why}"))
}

#[utoipa::path(
    get,
    path = "/files/{id}/content",
    operation_id = "get_file_content",
    tag = "files",
    params(("id" = uuid::Uuid, Path, description = "The file record's id")),
    responses(
        (status = 200, description = "The file's bytes (local run only)", content_type = "application/octet-stream"),
        (status = 302, description = "To a short-lived presigned URL of Quodsi's copy (in AWS); follow it without the Authorization header",
            headers(("Location" = String, description = "The presigned URL, valid for five minutes"))),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No verified token", body = ErrorEnvelope),
        (status = 404, description = "No live file of the caller's tenant has this id", body = ErrorEnvelope),
        (status = 409, description = "The file's bytes are not in Quodsi (not synced yet, or its sync failed; code not_downloaded)", body = ErrorEnvelope),
        (status = 503, description = "Quodsi's object store is not configured or not reachable", body = ErrorEnvelope),
    ),
    security(("bearer_jwt" = []))
)]
pub(crate) async fn content(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathId(id): PathId<FileId>,
) -> Result<Response, ApiError> {
    let file = app.store.get_file(caller.tenant_id, id).await?;
    let stored = file.file_metadata.as_ref().and_then(|m| m.get("object_key")).and_then(|k| k.as_str());
    let Some(stored) = stored else {
        return Err(not_downloaded("it has not been downloaded yet; run a sync of its folder"));
    };
    let Some(key) = ObjectKey::stored_under(stored, caller.tenant_id, file.folder_id) else {
        // A key outside the file's own prefix is never followed.
        tracing::error!(file_id = %id, "a file's stored object key is not under its tenant and folder");
        return Err(not_downloaded("its stored copy cannot be found"));
    };
    if file.sync_status == SyncStatus::Error {
        tracing::info!(file_id = %id, "serving the last good copy of a file whose latest sync failed");
    }
    let objects = app.objects().map_err(|why| {
        tracing::error!(error = %why, "object store unavailable");
        ApiError::Unavailable {
            code: "object_store_unavailable",
            message: "file contents cannot be read right now".into(),
        }
    })?;
    let unavailable = |e: ObjectsError| {
        tracing::error!(file_id = %id, error = %shared::error_chain(&e), "reading a file's copy failed");
        ApiError::Unavailable {
            code: "object_store_unavailable",
            message: "file contents cannot be read right now".into(),
        }
    };
    if let Some(url) = objects.presigned_get(&key, URL_TTL).await.map_err(unavailable)? {
        let location = HeaderValue::from_str(url.as_str()).map_err(ApiError::internal)?;
        return Ok((
            StatusCode::FOUND,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            ],
        )
            .into_response());
    }
    let body = match objects.get_stream(&key).await {
        Ok(body) => body,
        Err(ObjectsError::NotFound { .. }) => return Err(not_downloaded("its stored copy is missing; run a sync")),
        Err(e) => return Err(unavailable(e)),
    };
    let content_type = file
        .mime_type
        .as_deref()
        .and_then(|m| HeaderValue::from_str(m).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename*=UTF-8''{}",
        form_urlencoded::byte_serialize(file.file_name.as_bytes()).collect::<String>().replace('+', "%20")
    ))
    .map_err(ApiError::internal)?;
    let length = HeaderValue::from(body.meta.size);
    let stream = body.stream.map(|chunk| chunk.map_err(std::io::Error::other));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, length),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
