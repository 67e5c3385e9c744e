//! The column list of each table, in the order the decoders in `value.rs` read them. Both
//! backends build their SELECT / RETURNING / OUTPUT lists from these, so the order is
//! written once. `cols!()` gives `a, b`, `cols!(INSERTED)` gives `INSERTED.a, INSERTED.b`,
//! `cols!(t)` gives `t.a, t.b` for the alias `t`.

macro_rules! define_columns {
    ($name:ident: $first:ident $(, $rest:ident)* $(,)?) => {
        macro_rules! $name {
            () => { concat!(stringify!($first) $(, ", ", stringify!($rest))*) };
            (INSERTED) => { concat!("INSERTED.", stringify!($first) $(, ", INSERTED.", stringify!($rest))*) };
            (t) => { concat!("t.", stringify!($first) $(, ", t.", stringify!($rest))*) };
        }
    };
}

define_columns!(connection_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    user_id, provider_type, provider_user_id, provider_user_email, encrypted_access_token,
    encrypted_refresh_token, token_expiry, scope, last_used_at, last_sync_at, status,
    display_name, connection_metadata);

define_columns!(folder_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    connection_id, folder_name, provider_folder_id, folder_path, folder_type,
    is_default_export_folder, is_default_import_folder, auto_sync_enabled, last_sync_at,
    sync_frequency_minutes, folder_permissions);

define_columns!(job_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    folder_id, initiated_by_user_id, job_type, status, started_at, completed_at,
    progress_percentage, files_processed, files_total, bytes_transferred, error_message,
    job_metadata);

define_columns!(file_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    folder_id, quodsi_file_type, quodsi_entity_id, provider_file_id, file_name, file_path,
    file_size_bytes, content_hash, mime_type, cloud_created_at, cloud_modified_at,
    last_synced_at, sync_status, upload_url, download_url, file_metadata);

define_columns!(link_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    created_by_user_id, resource_type, file_id, folder_id, provider_share_id, share_url,
    share_type, password_protected, expires_at, access_count, last_accessed_at, is_active);

define_columns!(error_cols:
    id, index_id, tenant_id, created_at, updated_at, is_deleted,
    sync_job_id, connection_id, file_id, error_type, error_code, error_message, stack_trace,
    retry_count, resolved_at, resolution_notes, error_metadata);

// The token-refresh bookkeeping added by migration V2, read after connection_cols.
define_columns!(refresh_cols:
    token_refreshed_at, refresh_not_before, refresh_failures, refresh_error_id);
