//! The column list of each table, in the order the decoders in `value.rs` read them. Both
//! backends build their SELECT / RETURNING / OUTPUT lists from these, so the order is
//! written once.
//!
//! * `cols!()` gives `a, b` and `cols!(t)` gives `t.a, t.b` for the alias `t`: the plain
//!   lists, for SQLite and for T-SQL subqueries whose columns the client never receives.
//! * `cols!(tsql)`, `cols!(tsql t)` and `cols!(tsql INSERTED)` give the lists a T-SQL
//!   statement returns to the client: the same columns in the same order, except that a
//!   column marked `name: varchar` reads as `(name + N'') AS name`.
//!
//! `: varchar` marks a VARCHAR column that carries user or provider text (names, provider
//! ids, e-mail addresses, hashes, MIME types, error codes). The server sends a VARCHAR value
//! in the code page of its collation, and a client that did not negotiate UTF-8 (tiberius
//! 0.13 neither asks for it at login nor reads the collation's UTF-8 flag) receives `?` for
//! every character outside that code page: Babelfish does this to text it stored correctly,
//! and SQL Server can with its `_UTF8` collations. `+ N''` makes the value NVARCHAR, which
//! travels as UTF-16 and always arrives intact; NULL stays NULL (CONCAT_NULL_YIELDS_NULL is
//! ON in every session, see `mssql/pool.rs`). It is `+ N''` rather than CAST or CONVERT
//! because Babelfish refuses `CAST(INSERTED.col AS …)` in an OUTPUT clause.
//!
//! VARCHAR columns left unmarked hold one of the values their CHECK constraint lists
//! (`provider_type`, `status`, `folder_type`, `folder_permissions`, `job_type`,
//! `quodsi_file_type`, `sync_status`, `resource_type`, `share_type`, `error_type`): ASCII
//! words, the same in every code page. `mssql::sql`'s tests hold both lists to the schema.

macro_rules! define_columns {
    ($name:ident: $first:ident $(: $first_kind:ident)? $(, $rest:ident $(: $rest_kind:ident)?)* $(,)?) => {
        macro_rules! $name {
            () => { concat!(stringify!($first) $(, ", ", stringify!($rest))*) };
            (t) => { concat!("t.", stringify!($first) $(, ", t.", stringify!($rest))*) };
            (tsql) => {
                concat!(tsql_column!("", $first $(: $first_kind)?) $(, ", ", tsql_column!("", $rest $(: $rest_kind)?))*)
            };
            (tsql t) => {
                concat!(tsql_column!("t.", $first $(: $first_kind)?) $(, ", ", tsql_column!("t.", $rest $(: $rest_kind)?))*)
            };
            (tsql INSERTED) => {
                concat!(
                    tsql_column!("INSERTED.", $first $(: $first_kind)?)
                    $(, ", ", tsql_column!("INSERTED.", $rest $(: $rest_kind)?))*
                )
            };
        }
    };
}

/// One column of a T-SQL list returned to the client; see the module header.
macro_rules! tsql_column {
    ($prefix:literal, $col:ident) => {
        concat!($prefix, stringify!($col))
    };
    ($prefix:literal, $col:ident: varchar) => {
        concat!("(", $prefix, stringify!($col), " + N'') AS ", stringify!($col))
    };
}

define_columns!(connection_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    user_id, provider_type, provider_user_id: varchar, provider_user_email: varchar, encrypted_access_token,
    encrypted_refresh_token, token_expiry, scope, last_used_at, last_sync_at, status,
    display_name, connection_metadata);

define_columns!(folder_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    connection_id, folder_name: varchar, provider_folder_id: varchar, folder_path, folder_type,
    is_default_export_folder, is_default_import_folder, auto_sync_enabled, last_sync_at,
    sync_frequency_minutes, folder_permissions);

define_columns!(job_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    folder_id, initiated_by_user_id, job_type, status, started_at, completed_at,
    progress_percentage, files_processed, files_total, bytes_transferred, error_message,
    job_metadata);

define_columns!(file_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    folder_id, quodsi_file_type, quodsi_entity_id, provider_file_id: varchar, file_name, file_path,
    file_size_bytes, content_hash: varchar, mime_type: varchar, cloud_created_at, cloud_modified_at,
    last_synced_at, sync_status, upload_url, download_url, file_metadata);

define_columns!(link_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    created_by_user_id, resource_type, file_id, folder_id, provider_share_id: varchar, share_url,
    share_type, password_protected, expires_at, access_count, last_accessed_at, is_active);

define_columns!(error_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    sync_job_id, connection_id, file_id, error_type, error_code: varchar, error_message, stack_trace,
    retry_count, resolved_at, resolution_notes, error_metadata);

// The token-refresh bookkeeping added by migration V2, read after connection_cols.
define_columns!(refresh_cols:
    token_refreshed_at, refresh_not_before, refresh_failures, refresh_error_id);

define_columns!(cursor_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    connection_id, folder_id, cursor_kind, cursor_value, folder_map, last_polled_at);

define_columns!(subscription_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    connection_id, folder_id, subscription_kind, provider_subscription_id: varchar, provider_resource,
    encrypted_secret, expires_at, last_notified_at, last_message_number);
