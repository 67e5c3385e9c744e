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
    /// A request whose sender is known not to be allowed (a webhook delivery whose signature
    /// does not verify).
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    /// An id in the body or query that names nothing the caller can see: a 404 like an
    /// unknown path id, naming the field so the client knows which id.
    #[error("{field}: not found")]
    NotFoundField { field: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String, field: Option<String> },
    /// A 409 for something that is already there, with the id of what is there.
    #[error("{message}")]
    Exists { code: &'static str, message: String, field: Option<String>, existing_id: String },
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
    /// The cloud provider did not answer in time.
    #[error("{message}")]
    GatewayTimeout { code: &'static str, message: String },
    /// The cloud provider throttles the connection; `Retry-After` says for how long when the
    /// provider said.
    #[error("{message}")]
    TooManyRequests { code: &'static str, message: String, retry_after: Option<std::time::Duration> },
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
    /// For a conflict with something already there (a folder of that name at the provider):
    /// its id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<String>,
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

    /// For the lookup of an id a body or query names (a list filter, say): not found is a
    /// 404 naming `field`; any other error maps as usual. `.map_err(ApiError::lookup("folder_id"))`.
    pub fn lookup(field: &'static str) -> impl FnOnce(DbError) -> ApiError {
        move |e| match e {
            DbError::NotFound => ApiError::not_found_field(field),
            e => e.into(),
        }
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
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::NotFoundField { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } | ApiError::Exists { .. } => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn parts(&self) -> (&str, String, Option<&str>) {
        match self {
            ApiError::BadRequest { code, message, field }
            | ApiError::Conflict { code, message, field }
            | ApiError::Exists { code, message, field, .. } => (code, message.clone(), field.as_deref()),
            ApiError::Unauthorized(m) => ("unauthorized", m.clone(), None),
            ApiError::Forbidden(m) => ("forbidden", m.clone(), None),
            ApiError::NotFound => ("not_found", "no such resource".to_owned(), None),
            ApiError::NotFoundField { field } => ("not_found", format!("{field}: no such resource"), Some(field)),
            ApiError::Gone(m) => ("gone", m.clone(), None),
            ApiError::UnsupportedMediaType(m) => ("unsupported_media_type", m.clone(), None),
            ApiError::Unavailable { code, message }
            | ApiError::BadGateway { code, message }
            | ApiError::GatewayTimeout { code, message }
            | ApiError::TooManyRequests { code, message, .. } => (code, message.clone(), None),
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
        let existing_id = match &self {
            ApiError::Exists { existing_id, .. } => Some(existing_id.clone()),
            _ => None,
        };
        let error = ErrorBody { code: code.to_owned(), message, field: field.map(str::to_owned), existing_id };
        let mut response = (status, Json(ErrorEnvelope { error })).into_response();
        if let ApiError::TooManyRequests { retry_after: Some(wait), .. } = &self {
            // Whole seconds, rounded up: a client that waits what it is told is not refused again.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.max(1).into());
        }
        response
    }
}

/// What each constraint of the migrations (both engines' names) means to an API client: the
/// request field at fault, if a request field can be, and a sentence. Looked up by exact
/// name; a constraint not listed (or a driver-made name such as `not_null:...`) names no
/// field. Ids that come from the token (tenant, user) name no field either. A test holds
/// the table to every unique index and constraint in `migrations/*/V*.sql`.
const CONSTRAINTS: &[(&str, Option<&str>, &str)] = &[
    // Keys and id lookups: the store makes every id, so a clash is never the client's field.
    ("pk_tenants", None, "the tenant already exists"),
    ("pk_users", None, "the user already exists"),
    ("ix_users_tenant_id_lookup", None, "the user already exists"),
    ("ix_cloud_connections_id", None, "a row with this id already exists"),
    ("ix_cloud_connections_index_id", None, "a row with this id already exists"),
    ("ix_cloud_connections_tenant_id_lookup", None, "a row with this id already exists"),
    ("ix_cloud_folders_id", None, "a row with this id already exists"),
    ("ix_cloud_folders_index_id", None, "a row with this id already exists"),
    ("ix_cloud_folders_tenant_id_lookup", None, "a row with this id already exists"),
    ("ix_cloud_sync_jobs_id", None, "a row with this id already exists"),
    ("ix_cloud_sync_jobs_index_id", None, "a row with this id already exists"),
    ("ix_cloud_sync_jobs_tenant_id_lookup", None, "a row with this id already exists"),
    ("ix_cloud_files_id", None, "a row with this id already exists"),
    ("ix_cloud_files_index_id", None, "a row with this id already exists"),
    ("ix_cloud_files_tenant_id_lookup", None, "a row with this id already exists"),
    ("ix_cloud_shared_links_id", None, "a row with this id already exists"),
    ("ix_cloud_shared_links_index_id", None, "a row with this id already exists"),
    ("ix_cloud_shared_links_tenant_id_lookup", None, "a row with this id already exists"),
    ("ix_cloud_sync_errors_id", None, "a row with this id already exists"),
    ("ix_cloud_sync_errors_index_id", None, "a row with this id already exists"),
    ("ix_cloud_sync_errors_tenant_id_lookup", None, "a row with this id already exists"),
    // Unique rules of the data model.
    (
        "ix_cloud_connections_tenant_user_provider",
        None,
        "this account of this provider is already connected for the user",
    ),
    (
        "ix_cloud_folders_provider_folder",
        Some("provider_folder_id"),
        "this provider folder is already configured on the connection",
    ),
    (
        "ix_cloud_folders_default_export",
        Some("is_default_export_folder"),
        "the connection already has a default export folder",
    ),
    (
        "ix_cloud_folders_default_import",
        Some("is_default_import_folder"),
        "the connection already has a default import folder",
    ),
    ("ix_cloud_sync_jobs_folder_live", Some("folder_id"), "the folder already has a pending or running sync job"),
    ("ix_cloud_files_provider_file", Some("provider_file_id"), "this provider file is already recorded in the folder"),
    // Foreign keys (the *_tenant_consistency ones are the composite tenant keys).
    ("fk_users_tenant", None, "no such tenant"),
    ("fk_cloud_connections_tenant", None, "no such tenant"),
    ("fk_cloud_connections_user", None, "no such user"),
    ("ck_cloud_connections_tenant_consistency", None, "the user does not belong to the tenant"),
    ("fk_cloud_folders_tenant", None, "no such tenant"),
    ("fk_cloud_folders_connection", Some("connection_id"), "no such connection"),
    ("ck_cloud_folders_tenant_consistency", Some("connection_id"), "no such connection"),
    ("fk_cloud_sync_jobs_tenant", None, "no such tenant"),
    ("fk_cloud_sync_jobs_folder", Some("folder_id"), "no such folder"),
    ("ck_cloud_sync_jobs_tenant_consistency", Some("folder_id"), "no such folder"),
    ("fk_cloud_sync_jobs_initiated_by", None, "no such user"),
    ("fk_cloud_sync_jobs_initiated_by_tenant", None, "the user does not belong to the tenant"),
    ("fk_cloud_files_tenant", None, "no such tenant"),
    ("fk_cloud_files_folder", Some("folder_id"), "no such folder"),
    ("ck_cloud_files_tenant_consistency", Some("folder_id"), "no such folder"),
    ("fk_cloud_shared_links_tenant", None, "no such tenant"),
    ("fk_cloud_shared_links_file", Some("file_id"), "no such file"),
    ("fk_cloud_shared_links_file_tenant", Some("file_id"), "no such file"),
    ("fk_cloud_shared_links_folder", Some("folder_id"), "no such folder"),
    ("fk_cloud_shared_links_folder_tenant", Some("folder_id"), "no such folder"),
    ("fk_cloud_shared_links_created_by", None, "no such user"),
    ("fk_cloud_shared_links_created_by_tenant", None, "the user does not belong to the tenant"),
    ("fk_cloud_sync_errors_tenant", None, "no such tenant"),
    ("fk_cloud_sync_errors_connection", Some("connection_id"), "no such connection"),
    ("fk_cloud_sync_errors_connection_tenant", Some("connection_id"), "no such connection"),
    ("fk_cloud_sync_errors_sync_job", Some("sync_job_id"), "no such sync job"),
    ("fk_cloud_sync_errors_sync_job_tenant", Some("sync_job_id"), "no such sync job"),
    ("fk_cloud_sync_errors_file", Some("file_id"), "no such file"),
    ("fk_cloud_sync_errors_file_tenant", Some("file_id"), "no such file"),
    // CHECK constraints.
    (
        "ck_cloud_connections_provider_type",
        Some("provider_type"),
        "must be one of onedrive, gdrive, dropbox, box, sharepoint",
    ),
    ("ck_cloud_connections_status", Some("status"), "must be one of active, revoked, expired, error"),
    ("ck_cloud_connections_refresh_failures", Some("refresh_failures"), "must not be negative"),
    (
        "ck_cloud_folders_folder_type",
        Some("folder_type"),
        "must be one of export, import, archive, models, results, general",
    ),
    ("ck_cloud_folders_permissions", Some("folder_permissions"), "must be one of read_only, read_write, write_only"),
    (
        "ck_cloud_folders_sync_frequency",
        Some("sync_frequency_minutes"),
        "auto-sync needs sync_frequency_minutes between 5 and 10080 (and any value given must be in that range)",
    ),
    ("ck_cloud_sync_jobs_job_type", Some("job_type"), "must be one of upload, download, bidirectional, export, import"),
    ("ck_cloud_sync_jobs_status", Some("status"), "must be one of pending, running, completed, failed, cancelled"),
    ("ck_cloud_sync_jobs_progress_range", Some("progress_percentage"), "must be between 0 and 100"),
    ("ck_cloud_sync_jobs_file_counts", Some("files_processed"), "must be between 0 and files_total"),
    ("ck_cloud_sync_jobs_bytes", Some("bytes_transferred"), "must not be negative"),
    ("ck_cloud_files_file_type", Some("quodsi_file_type"), "is not a known Quodsi file type"),
    ("ck_cloud_files_sync_status", Some("sync_status"), "is not a known sync status"),
    ("ck_cloud_files_size", Some("file_size_bytes"), "must not be negative"),
    (
        "ck_cloud_shared_links_resource",
        Some("resource_type"),
        "a file link needs file_id only, a folder link folder_id only",
    ),
    ("ck_cloud_shared_links_share_type", Some("share_type"), "is not a known share type"),
    ("ck_cloud_sync_errors_error_type", Some("error_type"), "is not a known error type"),
    // The sync worker's cursors (V5): written by the worker only, so no request field.
    ("ix_cloud_sync_cursors_id", None, "a row with this id already exists"),
    ("ix_cloud_sync_cursors_index_id", None, "a row with this id already exists"),
    ("ix_cloud_sync_cursors_tenant_id_lookup", None, "a row with this id already exists"),
    ("ix_cloud_sync_cursors_scope", None, "the folder already has a cursor of this kind"),
    ("fk_cloud_sync_cursors_tenant", None, "no such tenant"),
    ("fk_cloud_sync_cursors_connection", None, "no such connection"),
    ("fk_cloud_sync_cursors_folder", None, "no such folder"),
    ("ck_cloud_sync_cursors_tenant_consistency", None, "no such connection"),
    ("fk_cloud_sync_cursors_folder_tenant", None, "no such folder"),
    ("ck_cloud_sync_cursors_kind", None, "is not a known cursor kind"),
    ("ix_cloud_sync_subscriptions_id", None, "a row with this id already exists"),
    ("ix_cloud_sync_subscriptions_index_id", None, "a row with this id already exists"),
    ("ix_cloud_sync_subscriptions_tenant_id_lookup", None, "a row with this id already exists"),
    ("ix_cloud_sync_subscriptions_provider_id", None, "this provider subscription is already recorded"),
    ("fk_cloud_sync_subscriptions_tenant", None, "no such tenant"),
    ("fk_cloud_sync_subscriptions_connection", None, "no such connection"),
    ("fk_cloud_sync_subscriptions_folder", None, "no such folder"),
    ("ck_cloud_sync_subscriptions_tenant_consistency", None, "no such connection"),
    ("fk_cloud_sync_subscriptions_folder_tenant", None, "no such folder"),
    ("ck_cloud_sync_subscriptions_kind", None, "is not a known subscription kind"),
];

/// What a violated constraint means to an API client: the field at fault and a sentence.
fn explain(constraint: &str) -> (Option<&'static str>, &'static str) {
    CONSTRAINTS
        .iter()
        .find(|(name, _, _)| *name == constraint)
        .map_or((None, "the request breaks a rule of the data model"), |&(_, field, message)| (field, message))
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
    async fn foreign_keys_name_their_own_field_or_none() {
        // Arrange: names the substring match used to get wrong.
        let cases = [
            ("fk_cloud_sync_jobs_initiated_by", None),
            ("fk_cloud_connections_user", None),
            ("fk_cloud_folders_tenant", None),
            ("fk_cloud_files_tenant", None),
            ("fk_cloud_shared_links_created_by_tenant", None),
            ("fk_cloud_sync_errors_sync_job_tenant", Some("sync_job_id")),
            ("fk_cloud_files_folder", Some("folder_id")),
            ("foreign_key", None),
            ("not_null:cloud_files.file_name", None),
            ("FK_Orders_Users_connection", None),
        ];

        for (constraint, field) in cases {
            // Act
            let (status, json) = body(DbError::Invalid { constraint: constraint.into() }.into()).await;

            // Assert
            assert_eq!(status, StatusCode::BAD_REQUEST, "{constraint}");
            assert_eq!(json["error"]["field"].as_str(), field, "{constraint}: {json}");
        }
    }

    /// Every unique index and constraint the migrations of either engine declare (`ix_`,
    /// `fk_`, `ck_`, `pk_`, `uq_` names; non-unique indexes cannot be violated), read from
    /// `migrations/*/V*.sql`.
    fn migration_constraint_names() -> std::collections::BTreeSet<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut sql = String::new();
        for engine in ["mssql", "sqlite"] {
            let dir = std::fs::read_dir(root.join(engine)).expect("migrations directory");
            for entry in dir {
                let path = entry.expect("migration file").path();
                let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
                if file.starts_with('V') && file.ends_with(".sql") {
                    sql.push_str(&std::fs::read_to_string(&path).expect("migration text"));
                    sql.push('\n');
                }
            }
        }
        let code: String = sql.lines().map(|l| l.split("--").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
        let words = |text: &str| {
            text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let mut non_unique = std::collections::BTreeSet::new();
        for statement in code.split(';') {
            let w = words(statement);
            let upper: Vec<String> = w.iter().map(|x| x.to_ascii_uppercase()).collect();
            if upper.first().map(String::as_str) == Some("CREATE")
                && !upper.contains(&"UNIQUE".to_owned())
                && let Some(at) = upper.iter().position(|x| x == "INDEX")
                && let Some(name) =
                    w[at + 1..].iter().find(|x| !["IF", "NOT", "EXISTS"].contains(&x.to_ascii_uppercase().as_str()))
            {
                non_unique.insert(name.clone());
            }
        }
        words(&code)
            .into_iter()
            .filter(|w| w.len() > 3 && !w.ends_with('_'))
            .filter(|w| ["ix_", "fk_", "ck_", "pk_", "uq_"].iter().any(|p| w.starts_with(p)))
            .filter(|w| !non_unique.contains(w))
            .collect()
    }

    #[test]
    fn the_table_covers_every_constraint_of_the_migrations_and_nothing_else() {
        // Arrange
        let declared = migration_constraint_names();
        let listed: std::collections::BTreeSet<String> = CONSTRAINTS.iter().map(|(n, _, _)| (*n).to_owned()).collect();

        // Act
        let missing: Vec<_> = declared.difference(&listed).collect();
        let stale: Vec<_> = listed.difference(&declared).collect();

        // Assert
        assert!(declared.len() >= 70, "the migrations were read: {declared:?}");
        assert!(missing.is_empty(), "constraints without an entry in CONSTRAINTS: {missing:?}");
        assert!(stale.is_empty(), "CONSTRAINTS entries no migration declares: {stale:?}");
        assert_eq!(listed.len(), CONSTRAINTS.len(), "each constraint is listed once");
        for (name, field, _) in CONSTRAINTS {
            let table_field = ["tenant_id", "user_id"];
            assert!(
                field.is_none_or(|f| !table_field.contains(&f)),
                "{name}: ids from the token are not request fields"
            );
        }
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
