//! Rows of the six tables, the inputs that create and change them, and the list filters.
//! Field names are the seed's column names; they are also the JSON names of the API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::fmt;
use uuid::Uuid;

use super::enums::*;
use super::error::DbError;

macro_rules! id_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { self.0.fmt(f) }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self { $name(u) }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid { id.0 }
        }

        impl $name {
            /// A fresh random (v4) id, for a row about to be inserted.
            pub fn generate() -> Self { $name(Uuid::new_v4()) }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> { Uuid::parse_str(s).map($name) }
        }
    };
}

id_newtype!(
    /// The tenant a row belongs to. Only ever taken from verified JWT claims or from a row.
    TenantId
);
id_newtype!(
    /// A user of the `users` table (owned by another schema).
    UserId
);
id_newtype!(
    /// The id of a `cloud_connections` row.
    ConnectionId
);
id_newtype!(
    /// The id of a `cloud_folders` row.
    FolderId
);
id_newtype!(
    /// The id of a `cloud_sync_jobs` row.
    JobId
);
id_newtype!(
    /// The id of a `cloud_files` row.
    FileId
);
id_newtype!(
    /// The id of a `cloud_shared_links` row.
    LinkId
);
id_newtype!(
    /// The id of a `cloud_sync_errors` row.
    SyncErrorId
);

/// `cloud_sync_jobs.progress_percentage`, DECIMAL(5,2) in 0..=100, held as hundredths so it
/// round-trips exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Percent(u16);

impl Percent {
    pub const MAX_HUNDREDTHS: u16 = 10_000;

    pub fn from_hundredths(h: u16) -> Option<Percent> {
        (h <= Self::MAX_HUNDREDTHS).then_some(Percent(h))
    }

    /// Accepts 0..=100 with at most two decimals (more are rounded to the nearest hundredth).
    pub fn from_f64(v: f64) -> Option<Percent> {
        if !v.is_finite() || !(0.0..=100.0).contains(&v) {
            return None;
        }
        Percent::from_hundredths((v * 100.0).round() as u16)
    }

    pub fn hundredths(self) -> u16 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

// Serialised as a plain number, so the document says so rather than describing the u16.
impl utoipa::PartialSchema for Percent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .minimum(Some(0))
            .maximum(Some(100))
            .multiple_of(Some(0.01))
            .build()
            .into()
    }
}

impl utoipa::ToSchema for Percent {}

impl Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        Percent::from_f64(v).ok_or_else(|| serde::de::Error::custom("progress_percentage must be between 0 and 100"))
    }
}

/// Columns every table has (the seed's BaseEntity), `I` being the table's id type. In the API
/// a resource shows its id, tenant and timestamps; `index_id` (the keyset position, which the
/// opaque list cursor carries) and `is_deleted` (a deleted row is never answered) are storage
/// internals and stay out of it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Base<I> {
    pub id: I,
    #[serde(skip)]
    pub index_id: i64,
    pub tenant_id: TenantId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub is_deleted: bool,
}

/// A `cloud_connections` row. The encrypted token columns are never serialised.
#[derive(Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Connection {
    #[serde(flatten)]
    pub base: Base<ConnectionId>,
    pub user_id: UserId,
    pub provider_type: ProviderType,
    pub provider_user_id: String,
    pub provider_user_email: Option<String>,
    #[serde(skip)]
    pub encrypted_access_token: Vec<u8>,
    #[serde(skip)]
    pub encrypted_refresh_token: Option<Vec<u8>>,
    pub token_expiry: DateTime<Utc>,
    pub scope: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub status: ConnectionStatus,
    pub display_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub connection_metadata: Option<Json>,
}

impl fmt::Debug for Connection {
    // Ciphertext is not a secret by itself, but it has no business in logs either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("base", &self.base)
            .field("user_id", &self.user_id)
            .field("provider_type", &self.provider_type)
            .field("provider_user_id", &self.provider_user_id)
            .field("encrypted_access_token", &"[redacted]")
            .field("encrypted_refresh_token", &self.encrypted_refresh_token.as_ref().map(|_| "[redacted]"))
            .field("token_expiry", &self.token_expiry)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A `cloud_folders` row.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Folder {
    #[serde(flatten)]
    pub base: Base<FolderId>,
    pub connection_id: ConnectionId,
    pub folder_name: String,
    pub provider_folder_id: String,
    pub folder_path: Option<String>,
    pub folder_type: FolderType,
    pub is_default_export_folder: bool,
    pub is_default_import_folder: bool,
    pub auto_sync_enabled: bool,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub sync_frequency_minutes: Option<i32>,
    pub folder_permissions: FolderPermissions,
}

/// A `cloud_sync_jobs` row.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SyncJob {
    #[serde(flatten)]
    pub base: Base<JobId>,
    pub folder_id: FolderId,
    pub initiated_by_user_id: Option<UserId>,
    pub job_type: JobType,
    pub status: JobStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub progress_percentage: Percent,
    pub files_processed: i32,
    pub files_total: Option<i32>,
    pub bytes_transferred: i64,
    pub error_message: Option<String>,
    /// The details the job was created with.
    // The sync worker keeps its checkpoint beside them under JOB_CHECKPOINT_KEY: stored and
    // read here, never serialised out. (A `///` line would be the API document's description.)
    #[schema(value_type = Option<Object>)]
    #[serde(serialize_with = "client_job_metadata")]
    pub job_metadata: Option<Json>,
}

/// The key of the sync worker's checkpoint in `job_metadata`: where a run is (cursors, the
/// folders it has listed, an upload session encrypted by the vault). It belongs to the worker:
/// a client cannot set it (POST /sync-jobs refuses it) and does not see it.
pub const JOB_CHECKPOINT_KEY: &str = "checkpoint";

/// `job_metadata` as a client sees it: without the worker's checkpoint, and `null` when the
/// checkpoint was all there was (as it was when the job was created).
fn client_job_metadata<S: serde::Serializer>(metadata: &Option<Json>, serializer: S) -> Result<S::Ok, S::Error> {
    match metadata {
        Some(Json::Object(map)) if map.contains_key(JOB_CHECKPOINT_KEY) => {
            let client: serde_json::Map<String, Json> =
                map.iter().filter(|(key, _)| *key != JOB_CHECKPOINT_KEY).map(|(k, v)| (k.clone(), v.clone())).collect();
            if client.is_empty() { serializer.serialize_none() } else { serializer.serialize_some(&client) }
        }
        other => other.serialize(serializer),
    }
}

/// A `cloud_files` row.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CloudFile {
    #[serde(flatten)]
    pub base: Base<FileId>,
    pub folder_id: FolderId,
    pub quodsi_file_type: QuodsiFileType,
    pub quodsi_entity_id: Option<Uuid>,
    pub provider_file_id: String,
    pub file_name: String,
    pub file_path: Option<String>,
    pub file_size_bytes: i64,
    pub content_hash: Option<String>,
    pub mime_type: Option<String>,
    pub cloud_created_at: Option<DateTime<Utc>>,
    pub cloud_modified_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub sync_status: SyncStatus,
    pub upload_url: Option<String>,
    pub download_url: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub file_metadata: Option<Json>,
}

/// A `cloud_shared_links` row.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SharedLink {
    #[serde(flatten)]
    pub base: Base<LinkId>,
    pub created_by_user_id: UserId,
    pub resource_type: ResourceType,
    pub file_id: Option<FileId>,
    pub folder_id: Option<FolderId>,
    pub provider_share_id: Option<String>,
    pub share_url: String,
    pub share_type: ShareType,
    pub password_protected: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub access_count: i32,
    pub last_accessed_at: Option<DateTime<Utc>>,
    pub is_active: bool,
}

/// An active link into a connection, with the provider's id of the item it shares
/// (`provider_folder_id` of its folder or `provider_file_id` of its file), which removing the
/// link at the provider needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLink {
    pub link: SharedLink,
    pub provider_item_id: String,
}

/// A `cloud_sync_errors` row.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SyncError {
    #[serde(flatten)]
    pub base: Base<SyncErrorId>,
    pub sync_job_id: Option<JobId>,
    pub connection_id: ConnectionId,
    pub file_id: Option<FileId>,
    pub error_type: ErrorType,
    pub error_code: Option<String>,
    pub error_message: String,
    pub stack_trace: Option<String>,
    pub retry_count: i32,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution_notes: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub error_metadata: Option<Json>,
}

// ---- inputs ---------------------------------------------------------------------------

/// A new `cloud_connections` row; the tokens arrive already encrypted by the vault.
#[derive(Clone)]
pub struct NewConnection {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub provider_type: ProviderType,
    pub provider_user_id: String,
    pub provider_user_email: Option<String>,
    pub encrypted_access_token: Vec<u8>,
    pub encrypted_refresh_token: Option<Vec<u8>>,
    pub token_expiry: DateTime<Utc>,
    pub scope: String,
    pub status: ConnectionStatus,
    pub display_name: Option<String>,
    pub connection_metadata: Option<Json>,
}

/// A completed OAuth grant for one provider account, as [`Store::upsert_connection`] stores
/// it. The tokens are not here: the vault binds a ciphertext to its connection id, which is
/// only known once the store has found or chosen the row.
///
/// [`Store::upsert_connection`]: super::Store::upsert_connection
#[derive(Debug, Clone)]
pub struct ConnectionGrant {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub provider_type: ProviderType,
    pub provider_user_id: String,
    pub provider_user_email: Option<String>,
    pub token_expiry: DateTime<Utc>,
    pub scope: String,
    /// Replaces the stored name only when given.
    pub display_name: Option<String>,
    pub connection_metadata: Option<Json>,
}

/// Tokens encrypted for one connection id. A missing refresh token keeps the stored one on a
/// reconnect (Google, for one, issues a refresh token only on the first consent).
pub struct SealedTokens {
    pub access: Vec<u8>,
    pub refresh: Option<Vec<u8>>,
}

/// What [`Store::upsert_connection`] did.
///
/// [`Store::upsert_connection`]: super::Store::upsert_connection
#[derive(Debug, Clone)]
pub struct UpsertedConnection {
    pub connection: Connection,
    /// A new row, as opposed to new tokens on the account's live row.
    pub created: bool,
}

/// Changes to a connection. `None` leaves a column alone; `Some(None)` sets it to NULL.
#[derive(Debug, Clone, Default)]
pub struct ConnectionPatch {
    pub display_name: Option<Option<String>>,
    pub connection_metadata: Option<Option<Json>>,
    pub status: Option<ConnectionStatus>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_sync_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewFolder {
    pub tenant_id: TenantId,
    pub connection_id: ConnectionId,
    pub folder_name: String,
    pub provider_folder_id: String,
    pub folder_path: Option<String>,
    pub folder_type: FolderType,
    pub is_default_export_folder: bool,
    pub is_default_import_folder: bool,
    pub auto_sync_enabled: bool,
    pub sync_frequency_minutes: Option<i32>,
    pub folder_permissions: FolderPermissions,
}

#[derive(Debug, Clone, Default)]
pub struct FolderPatch {
    pub folder_name: Option<String>,
    pub folder_path: Option<Option<String>>,
    pub folder_type: Option<FolderType>,
    pub is_default_export_folder: Option<bool>,
    pub is_default_import_folder: Option<bool>,
    pub auto_sync_enabled: Option<bool>,
    pub sync_frequency_minutes: Option<Option<i32>>,
    pub folder_permissions: Option<FolderPermissions>,
    pub last_sync_at: Option<Option<DateTime<Utc>>>,
}

#[derive(Debug, Clone)]
pub struct NewSyncJob {
    pub tenant_id: TenantId,
    pub folder_id: FolderId,
    pub initiated_by_user_id: Option<UserId>,
    pub job_type: JobType,
    pub job_metadata: Option<Json>,
}

/// A state change and/or progress report for a job. The transition is checked against
/// [`JobStatus::can_become`] and applied only if the job is still in the status it was read in.
#[derive(Debug, Clone, Default)]
pub struct JobUpdate {
    pub status: Option<JobStatus>,
    pub progress_percentage: Option<Percent>,
    pub files_processed: Option<i32>,
    pub files_total: Option<Option<i32>>,
    pub bytes_transferred: Option<i64>,
    pub error_message: Option<Option<String>>,
    pub job_metadata: Option<Option<Json>>,
}

#[derive(Debug, Clone)]
pub struct NewCloudFile {
    pub tenant_id: TenantId,
    pub folder_id: FolderId,
    pub quodsi_file_type: QuodsiFileType,
    pub quodsi_entity_id: Option<Uuid>,
    pub provider_file_id: String,
    pub file_name: String,
    pub file_path: Option<String>,
    pub file_size_bytes: i64,
    pub content_hash: Option<String>,
    pub mime_type: Option<String>,
    pub cloud_created_at: Option<DateTime<Utc>>,
    pub cloud_modified_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub sync_status: SyncStatus,
    pub upload_url: Option<String>,
    pub download_url: Option<String>,
    pub file_metadata: Option<Json>,
}

#[derive(Debug, Clone, Default)]
pub struct CloudFilePatch {
    pub file_name: Option<String>,
    pub file_path: Option<Option<String>>,
    pub file_size_bytes: Option<i64>,
    pub content_hash: Option<Option<String>>,
    pub mime_type: Option<Option<String>>,
    pub cloud_modified_at: Option<Option<DateTime<Utc>>>,
    pub last_synced_at: Option<Option<DateTime<Utc>>>,
    pub sync_status: Option<SyncStatus>,
    pub upload_url: Option<Option<String>>,
    pub download_url: Option<Option<String>>,
    pub file_metadata: Option<Option<Json>>,
}

#[derive(Debug, Clone)]
pub struct NewSharedLink {
    pub tenant_id: TenantId,
    pub created_by_user_id: UserId,
    pub resource_type: ResourceType,
    pub file_id: Option<FileId>,
    pub folder_id: Option<FolderId>,
    pub provider_share_id: Option<String>,
    pub share_url: String,
    pub share_type: ShareType,
    pub password_protected: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewSyncError {
    pub tenant_id: TenantId,
    pub sync_job_id: Option<JobId>,
    pub connection_id: ConnectionId,
    pub file_id: Option<FileId>,
    pub error_type: ErrorType,
    pub error_code: Option<String>,
    pub error_message: String,
    pub stack_trace: Option<String>,
    pub error_metadata: Option<Json>,
}

// ---- lists ----------------------------------------------------------------------------

/// Keyset page request: rows with `index_id` greater than `after`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<i64>,
    pub limit: u16,
}

impl PageRequest {
    pub const MAX_LIMIT: u16 = 200;
    pub const DEFAULT_LIMIT: u16 = 50;

    pub fn first(limit: u16) -> PageRequest {
        PageRequest { after: None, limit }
    }

    pub fn validate(&self) -> Result<(), DbError> {
        if self.limit == 0 || self.limit > Self::MAX_LIMIT {
            return Err(DbError::validation("limit", format!("must be between 1 and {}", Self::MAX_LIMIT)));
        }
        Ok(())
    }
}

/// One page of a keyset list; `next_after` is the `index_id` to continue after, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    pub provider_type: Option<ProviderType>,
    pub status: Option<ConnectionStatus>,
    pub user_id: Option<UserId>,
}

#[derive(Debug, Clone, Default)]
pub struct FolderFilter {
    pub connection_id: Option<ConnectionId>,
    pub folder_type: Option<FolderType>,
}

#[derive(Debug, Clone, Default)]
pub struct SyncJobFilter {
    pub folder_id: Option<FolderId>,
    pub status: Option<JobStatus>,
}

#[derive(Debug, Clone, Default)]
pub struct CloudFileFilter {
    pub folder_id: Option<FolderId>,
    pub quodsi_file_type: Option<QuodsiFileType>,
    pub sync_status: Option<SyncStatus>,
    pub quodsi_entity_id: Option<Uuid>,
}

#[derive(Debug, Clone, Default)]
pub struct SharedLinkFilter {
    pub file_id: Option<FileId>,
    pub folder_id: Option<FolderId>,
    pub is_active: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct SyncErrorFilter {
    pub connection_id: Option<ConnectionId>,
    pub error_type: Option<ErrorType>,
    /// Only errors with no resolved_at.
    pub unresolved: bool,
}

// ---- scheduled functions --------------------------------------------------------------

/// A connection with the token-refresh bookkeeping of migration V2 (see
/// `migrations/mssql/V2__scheduler_columns.sql`).
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshCandidate {
    pub connection: Connection,
    pub token_refreshed_at: Option<DateTime<Utc>>,
    /// No attempt before this time: the lease of the invocation refreshing it, or the backoff.
    pub refresh_not_before: Option<DateTime<Utc>>,
    pub refresh_failures: i32,
    /// The open error row of the current failure episode.
    pub refresh_error_id: Option<SyncErrorId>,
}

/// Tokens a refresh returned, already encrypted by the vault. `encrypted_refresh_token: None`
/// keeps the stored refresh token.
#[derive(Clone)]
pub struct RefreshedTokens {
    pub encrypted_access_token: Vec<u8>,
    pub encrypted_refresh_token: Option<Vec<u8>>,
    pub token_expiry: DateTime<Utc>,
    pub scope: Option<String>,
}

impl fmt::Debug for RefreshedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshedTokens")
            .field("encrypted_refresh_token", &self.encrypted_refresh_token.as_ref().map(|_| "[redacted]"))
            .field("token_expiry", &self.token_expiry)
            .finish_non_exhaustive()
    }
}

/// What recording a failed refresh did to the error rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureRecord {
    /// The episode's open error row counted one more retry.
    Bumped(SyncErrorId),
    /// A new episode: a new error row.
    Opened(SyncErrorId),
}

// ---- the sync worker ------------------------------------------------------------------

/// A `cloud_sync_cursors` row (migration V5): where a folder's sync left off at its provider.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncCursor {
    pub base: Base<Uuid>,
    pub connection_id: ConnectionId,
    /// `None`: a connection-wide cursor.
    pub folder_id: Option<FolderId>,
    pub cursor_kind: CursorKind,
    /// The provider's opaque cursor text, whole.
    pub cursor_value: String,
    /// The synced subtree's folders (provider id → path under the synced folder), for feeds
    /// that name parents by id.
    pub folder_map: Option<Json>,
    /// When the cursor was last read to its end.
    pub last_polled_at: Option<DateTime<Utc>>,
}

/// A cursor to keep, replacing the one of its scope.
#[derive(Debug, Clone)]
pub struct NewSyncCursor {
    pub tenant_id: TenantId,
    pub connection_id: ConnectionId,
    pub folder_id: Option<FolderId>,
    pub cursor_kind: CursorKind,
    pub cursor_value: String,
    pub folder_map: Option<Json>,
    pub last_polled_at: Option<DateTime<Utc>>,
}

// ---- change notifications ------------------------------------------------------------

/// A `cloud_sync_subscriptions` row (migration V6): a provider's change subscription that
/// pushes notifications to the webhook receivers.
#[derive(Clone, PartialEq)]
pub struct SyncSubscription {
    pub base: Base<Uuid>,
    pub connection_id: ConnectionId,
    /// `None`: the subscription covers the connection (a Graph drive root, a Drive channel).
    pub folder_id: Option<FolderId>,
    pub subscription_kind: SubscriptionKind,
    /// The provider's id of it, which notifications name.
    pub provider_subscription_id: String,
    /// What it watches (Graph `resource`, Drive `resourceId`).
    pub provider_resource: Option<String>,
    /// Graph clientState or the Drive channel token, encrypted by the vault
    /// (`TokenKind::SubscriptionSecret`).
    pub encrypted_secret: Option<Vec<u8>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_notified_at: Option<DateTime<Utc>>,
    /// The highest Drive `X-Goog-Message-Number` accepted on the channel (migration V7).
    pub last_message_number: Option<i64>,
}

impl std::fmt::Debug for SyncSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncSubscription")
            .field("id", &self.base.id)
            .field("tenant_id", &self.base.tenant_id)
            .field("connection_id", &self.connection_id)
            .field("folder_id", &self.folder_id)
            .field("subscription_kind", &self.subscription_kind)
            .field("provider_subscription_id", &self.provider_subscription_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A subscription to record.
#[derive(Clone)]
pub struct NewSyncSubscription {
    pub tenant_id: TenantId,
    pub connection_id: ConnectionId,
    pub folder_id: Option<FolderId>,
    pub subscription_kind: SubscriptionKind,
    pub provider_subscription_id: String,
    pub provider_resource: Option<String>,
    pub encrypted_secret: Option<Vec<u8>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A provider file as a sync run found it, for its folder's `cloud_files` row (found by
/// `provider_file_id`, or made).
#[derive(Debug, Clone)]
pub struct SyncedFile {
    pub tenant_id: TenantId,
    pub folder_id: FolderId,
    /// Used only when the row is made: a file's type to Quodsi does not change with a sync.
    pub quodsi_file_type: QuodsiFileType,
    pub provider_file_id: String,
    pub file_name: String,
    /// The path under the synced folder (`Scenarios/line-2.qsim`).
    pub file_path: Option<String>,
    pub file_size_bytes: i64,
    pub content_hash: Option<String>,
    pub mime_type: Option<String>,
    pub cloud_created_at: Option<DateTime<Utc>>,
    pub cloud_modified_at: Option<DateTime<Utc>>,
    pub sync_status: SyncStatus,
    pub file_metadata: Option<Json>,
    /// The job whose full listing saw the file (`None` for a change feed's view).
    pub seen_by_job_id: Option<JobId>,
}

/// A job as the worker that claimed it holds it: every write under the lease names it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobLease {
    pub job: SyncJob,
    pub lease_id: Uuid,
}

/// What a worker reports with each heartbeat: the lease's new end, progress and the
/// checkpoint (the job's metadata).
#[derive(Debug, Clone)]
pub struct JobProgress {
    pub lease_until: DateTime<Utc>,
    pub progress_percentage: Percent,
    pub files_processed: i32,
    pub files_total: Option<i32>,
    pub bytes_transferred: i64,
    pub job_metadata: Option<Json>,
}
