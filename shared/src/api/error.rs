//! The one error vocabulary of every HTTP function, and the one place it becomes a response:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`. Client mistakes are 4xx
//! naming the problem; faults are logged here with their cause chain and answered without
//! detail, so nothing internal (let alone a token) leaks into a response.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::db::{BoxError, DbError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String, field: Option<String> },
    #[error("{0}")]
    Unauthorized(String),
    #[error("not found")]
    NotFound,
    /// An id in the body or query that names nothing the caller can see: a 404 like an
    /// unknown path id, naming the field so the client knows which id.
    #[error("{field}: not found")]
    NotFoundField { field: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String, field: Option<String> },
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A dependency we rely on is not there (a provider without credentials, the database).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// The cloud provider failed; the message says what the user can do.
    #[error("{message}")]
    BadGateway { code: &'static str, message: String },
    #[error("internal error")]
    Internal(#[source] BoxError),
}

// Public so the OpenAPI document describes the very type that is rendered.
/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable reason, e.g. `invalid_field`, `not_found`, `conflict`, `invalid_state`.
    pub code: String,
    /// A sentence for a human.
    pub message: String,
    /// The request field (body, query or path) at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { code, message: message.into(), field: None }
    }

    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let field = field.into();
        ApiError::BadRequest {
            code: "invalid_field",
            message: format!("{field}: {}", message.into()),
            field: Some(field),
        }
    }

    pub fn not_found_field(field: impl Into<String>) -> ApiError {
        ApiError::NotFoundField { field: field.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Conflict { code, message: message.into(), field: None }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
        ApiError::Internal(Box::new(e))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound | ApiError::NotFoundField { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn parts(&self) -> (&str, String, Option<&str>) {
        match self {
            ApiError::BadRequest { code, message, field } | ApiError::Conflict { code, message, field } => {
                (code, message.clone(), field.as_deref())
            }
            ApiError::Unauthorized(m) => ("unauthorized", m.clone(), None),
            ApiError::NotFound => ("not_found", "no such resource".to_owned(), None),
            ApiError::NotFoundField { field } => ("not_found", format!("{field}: no such resource"), Some(field)),
            ApiError::Gone(m) => ("gone", m.clone(), None),
            ApiError::UnsupportedMediaType(m) => ("unsupported_media_type", m.clone(), None),
            ApiError::Unavailable { code, message } | ApiError::BadGateway { code, message } => {
                (code, message.clone(), None)
            }
            ApiError::Internal(_) => {
                ("internal", "something went wrong on our side; it has been logged".to_owned(), None)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %crate::error_chain(&self), "request failed");
        } else {
            tracing::info!(status = status.as_u16(), error = %self, "request rejected");
        }
        let (code, message, field) = self.parts();
        let error = ErrorBody { code: code.to_owned(), message, field: field.map(str::to_owned) };
        (status, Json(ErrorEnvelope { error })).into_response()
    }
}

/// What a violated constraint means to an API client: the field at fault and a sentence.
fn explain(constraint: &str) -> (Option<&'static str>, &'static str) {
    match constraint {
        "ix_cloud_connections_tenant_user_provider" => {
            (None, "this account of this provider is already connected for the user")
        }
        "ix_cloud_folders_provider_folder" => {
            (Some("provider_folder_id"), "this provider folder is already configured on the connection")
        }
        "ix_cloud_folders_default_export" => {
            (Some("is_default_export_folder"), "the connection already has a default export folder")
        }
        "ix_cloud_folders_default_import" => {
            (Some("is_default_import_folder"), "the connection already has a default import folder")
        }
        "ix_cloud_sync_jobs_folder_live" => (Some("folder_id"), "the folder already has a pending or running sync job"),
        "ix_cloud_files_provider_file" => {
            (Some("provider_file_id"), "this provider file is already recorded in the folder")
        }
        "ck_cloud_folders_sync_frequency" => (
            Some("sync_frequency_minutes"),
            "auto-sync needs sync_frequency_minutes between 5 and 10080 (and any value given must be in that range)",
        ),
        "ck_cloud_sync_jobs_progress_range" => (Some("progress_percentage"), "must be between 0 and 100"),
        "ck_cloud_sync_jobs_file_counts" => (Some("files_processed"), "must be between 0 and files_total"),
        "ck_cloud_sync_jobs_bytes" => (Some("bytes_transferred"), "must not be negative"),
        "ck_cloud_files_size" => (Some("file_size_bytes"), "must not be negative"),
        "ck_cloud_shared_links_resource" => {
            (Some("resource_type"), "a file link needs file_id only, a folder link folder_id only")
        }
        c if c.contains("_connection") => (Some("connection_id"), "no such connection"),
        c if c.contains("_folder") => (Some("folder_id"), "no such folder"),
        c if c.contains("_file") => (Some("file_id"), "no such file"),
        c if c.contains("_sync_job") => (Some("sync_job_id"), "no such sync job"),
        _ => (None, "the request breaks a rule of the data model"),
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        match e {
            DbError::NotFound => ApiError::NotFound,
            DbError::Validation { field, message } => ApiError::invalid_field(field, message),
            DbError::Conflict { constraint } => {
                let (field, message) = explain(&constraint);
                ApiError::Conflict { code: "conflict", message: message.to_owned(), field: field.map(str::to_owned) }
            }
            DbError::Invalid { constraint } => {
                let (field, message) = explain(&constraint);
                ApiError::BadRequest {
                    code: "constraint_violation",
                    message: match field {
                        Some(f) => format!("{f}: {message}"),
                        None => message.to_owned(),
                    },
                    field: field.map(str::to_owned),
                }
            }
            DbError::State(message) => ApiError::Conflict { code: "invalid_state", message, field: None },
            e @ DbError::Unavailable(_) => {
                tracing::error!(error = %crate::error_chain(&e), "database unavailable");
                ApiError::Unavailable {
                    code: "database_unavailable",
                    message: "the database is unavailable; try again shortly".into(),
                }
            }
            e @ (DbError::Backend(_) | DbError::Corrupt(_)) => ApiError::Internal(Box::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(e: ApiError) -> (StatusCode, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn constraint_errors_become_client_errors_naming_the_field() {
        let (status, json) =
            body(DbError::Conflict { constraint: "ix_cloud_sync_jobs_folder_live".into() }.into()).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(json["error"]["field"], "folder_id");

        let (status, json) =
            body(DbError::Invalid { constraint: "ck_cloud_folders_sync_frequency".into() }.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["error"]["code"], "constraint_violation");
        assert_eq!(json["error"]["field"], "sync_frequency_minutes");
    }

    #[tokio::test]
    async fn internal_errors_say_nothing_of_their_cause() {
        let secret = "ya29.secret-token-value";
        let (status, json) = body(DbError::Corrupt(secret.into()).into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!json.to_string().contains(secret));
        assert_eq!(json["error"]["code"], "internal");
    }
}
