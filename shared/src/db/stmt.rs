//! Every statement the data layer sends, by name. Each backend maps a [`Stmt`] to its own
//! SQL text with an exhaustive `match`, so a statement cannot exist for one engine only, and
//! the T-SQL parse test can reach every string through [`Stmt::ALL`].
//!
//! The parameter order given on each variant is the contract both SQL texts follow
//! (`?1..?n` in SQLite, `@P1..@Pn` in T-SQL); `store.rs` builds the parameters once.
//! "patch(x)" stands for two parameters: a change-it flag and the new value.

use std::fmt;

macro_rules! statements {
    ($($(#[$meta:meta])* $name:ident => $rows:literal),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Stmt { $($(#[$meta])* $name),+ }

        impl Stmt {
            pub const ALL: &'static [Stmt] = &[$(Stmt::$name),+];

            /// Whether the statement returns rows (SELECT, RETURNING / OUTPUT); otherwise
            /// the backend reports the affected-row count.
            pub fn returns_rows(self) -> bool {
                match self { $(Stmt::$name => $rows),+ }
            }
        }

        impl fmt::Display for Stmt {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self { $(Stmt::$name => f.write_str(stringify!($name))),+ }
            }
        }
    };
}

statements! {
    /// id, name, now — inserts the tenant unless it exists (local runs and tests only).
    TenantEnsure => false,
    /// id, tenant_id, email, now — inserts the user unless it exists (local runs and tests only).
    UserEnsure => false,

    /// id, tenant_id, user_id, provider_type, provider_user_id, provider_user_email,
    /// encrypted_access_token, encrypted_refresh_token, token_expiry, scope, status,
    /// display_name, connection_metadata, now
    ConnInsert => true,
    /// tenant_id, id
    ConnGet => true,
    /// tenant_id, id — the id of the tenant's connection with this id, deleted or not
    ConnKnown => true,
    /// tenant_id, after, limit, provider_type?, status?, user_id?
    ConnList => true,
    /// tenant_id, id, now, patch(display_name), patch(connection_metadata), patch(status),
    /// patch(last_used_at), patch(last_sync_at)
    ConnUpdate => true,
    /// tenant_id, id, now — soft-deletes and marks revoked
    ConnSoftDelete => true,
    /// tenant_id, connection_id, now
    ConnSoftDeleteFolders => false,
    /// tenant_id, connection_id, now — cancels the live jobs of the connection's folders
    ConnCancelJobs => false,
    /// tenant_id, connection_id, now — deactivates links to the connection's folders and files
    ConnDeactivateLinks => false,
    /// tenant_id, after, limit, connection_id — active links to the connection's live folders
    /// and to files in them, in index order, each with the provider's id of its item
    ConnLinkList => true,
    /// tenant_id, after, limit, folder_id — active links to the live folder and to files in
    /// it, in index order, each with the provider's id of its item
    FolderLinkList => true,
    /// before, limit — active, live connections whose token expires before `before`
    ConnTokenScan => true,
    /// after, limit — every connection of every tenant, deleted ones too (key rotation)
    ConnScanAll => true,
    /// tenant_id, id, expected_access, access, refresh, now — compare-and-swap of the tokens
    ConnSwapTokens => false,
    /// tenant_id, user_id, provider_type, provider_user_id — the live row of one provider account
    ConnGetByAccount => true,
    /// tenant_id, id, now, access, patch(refresh), token_expiry, scope, provider_user_email,
    /// patch(display_name), connection_metadata — a new grant on a live row: active again, with
    /// the refresh bookkeeping reset; returns it
    ConnReconnect => true,
    /// before, now, limit — active, live connections whose token expires before `before` and
    /// whose refresh is not held off (lease or backoff) past `now`; with the refresh columns
    ConnRefreshDueScan => true,
    /// cutoff, now, limit — active, live connections last refreshed at or before `cutoff`
    ConnKeepAliveScan => true,
    /// cutoff, now, limit — active, live connections never refreshed, created at or before `cutoff`
    ConnKeepAliveNewScan => true,
    /// tenant_id, id — one live connection with the refresh columns, whatever its status (the
    /// provider-call path reads it before claiming a refresh on demand)
    ConnRefreshGet => true,
    /// tenant_id, id, expected_access, now, lease_until — claims the refresh of a connection
    /// still holding the access token that was read, unless held off; returns it
    ConnRefreshClaim => true,
    /// tenant_id, id, now, access, patch(refresh), token_expiry, patch(scope) — stores
    /// refreshed tokens and clears the lease, backoff and open error
    ConnRefreshStore => false,
    /// tenant_id, id, now, status — ends refreshing an active connection (expired / revoked)
    ConnRefreshEnd => false,
    /// tenant_id, id, now, not_before — releases the claim, holding refreshes off until `not_before`
    ConnRefreshRelease => false,
    /// tenant_id, id, now, not_before, error_id — records a failed attempt: backoff, failure
    /// count, the open error of the episode
    ConnRefreshFailed => false,

    /// id, tenant_id, connection_id, folder_name, provider_folder_id, folder_path, folder_type,
    /// is_default_export_folder, is_default_import_folder, auto_sync_enabled,
    /// sync_frequency_minutes, folder_permissions, now — inserts nothing (returns no row) when
    /// the connection is revoked, expired, in error or deleted, decided by the database in the
    /// same statement; an unknown connection or another tenant's is a constraint violation
    FolderInsert => true,
    /// tenant_id, connection_id — a no-op UPDATE of the connection that matches (affected 1)
    /// only while it is active and live; run before FolderInsert in the same transaction so
    /// the insert waits for, and then sees, a concurrent revoke or delete (see sql.rs headers)
    FolderLockConnection => false,
    /// tenant_id, connection_id, keep_id, now
    FolderClearDefaultExport => false,
    /// tenant_id, connection_id, keep_id, now
    FolderClearDefaultImport => false,
    /// tenant_id, id
    FolderGet => true,
    /// tenant_id, id — the id of the tenant's folder with this id, deleted or not
    FolderKnown => true,
    /// tenant_id, after, limit, connection_id?, folder_type?
    FolderList => true,
    /// tenant_id, id, now, patch(folder_name), patch(folder_path), patch(folder_type),
    /// patch(is_default_export_folder), patch(is_default_import_folder),
    /// patch(auto_sync_enabled), patch(sync_frequency_minutes), patch(folder_permissions),
    /// patch(last_sync_at)
    FolderUpdate => true,
    /// tenant_id, id, now
    FolderSoftDelete => true,
    /// tenant_id, folder_id, now — cancels the folder's live jobs
    FolderCancelJobs => false,
    /// tenant_id, folder_id, now — deactivates links to the folder and its files
    FolderDeactivateLinks => false,
    /// after — the smallest sync_frequency_minutes above `after` among live auto-sync folders
    FolderNextFrequency => true,
    /// cutoff, frequency, limit — live auto-sync folders of active connections with this
    /// frequency, last synced at or before `cutoff`, that have no live job and no (not deleted)
    /// failed or cancelled job that ended (completed_at, else updated_at) after `cutoff` (a
    /// sync that keeps failing is retried once per frequency after its failure, not every run)
    FolderDueScan => true,
    /// frequency, limit, cutoff — as FolderDueScan for folders never synced
    FolderNeverSyncedScan => true,

    /// id, tenant_id, folder_id, initiated_by_user_id, job_type, job_metadata, now — inserts
    /// nothing (returns no row) when the folder is deleted or its connection is not active and
    /// live, decided in the same statement; an unknown folder is a constraint violation
    JobInsert => true,
    /// tenant_id, folder_id — a no-op UPDATE of the folder's connection that matches only while
    /// it is active and live; first of the row locks taken before JobInsert (connection, then
    /// folder: the order delete_connection takes them in)
    JobLockConnection => false,
    /// tenant_id, folder_id — a no-op UPDATE of the folder that matches only while it is live;
    /// the second row lock taken before JobInsert
    JobLockFolder => false,
    /// tenant_id, id
    JobGet => true,
    /// tenant_id, after, limit, folder_id?, status?
    JobList => true,
    /// tenant_id, id, expected_status, now, status, patch(progress_percentage),
    /// patch(files_processed), patch(files_total), patch(bytes_transferred),
    /// patch(error_message), patch(job_metadata)
    JobUpdate => true,
    /// tenant_id, folder_id, now — records a completed sync on the folder
    JobTouchFolder => false,
    /// tenant_id, folder_id, now — records a completed sync on the folder's connection
    JobTouchConnection => false,
    /// tenant_id, id, now
    JobSoftDelete => true,
    /// limit — pending jobs of every tenant, oldest first
    JobPendingScan => true,
    /// updated_before, limit — running jobs of every tenant not updated since `updated_before`
    JobStaleScan => true,
    /// tenant_id, id, updated_before, now, error_message — fails a running job not updated since
    /// `updated_before`; returns it
    JobFailStale => true,

    /// id, tenant_id, folder_id, quodsi_file_type, quodsi_entity_id, provider_file_id,
    /// file_name, file_path, file_size_bytes, content_hash, mime_type, cloud_created_at,
    /// cloud_modified_at, last_synced_at, sync_status, upload_url, download_url,
    /// file_metadata, now
    FileInsert => true,
    /// tenant_id, id
    FileGet => true,
    /// tenant_id, id — the id of the tenant's file record with this id, deleted or not
    FileKnown => true,
    /// tenant_id, after, limit, folder_id?, quodsi_file_type?, sync_status?, quodsi_entity_id?
    FileList => true,
    /// tenant_id, id, now, patch(file_name), patch(file_path), patch(file_size_bytes),
    /// patch(content_hash), patch(mime_type), patch(cloud_modified_at), patch(last_synced_at),
    /// patch(sync_status), patch(upload_url), patch(download_url), patch(file_metadata)
    FileUpdate => true,
    /// tenant_id, id, now
    FileSoftDelete => true,
    /// tenant_id, file_id, now
    FileDeactivateLinks => false,

    /// id, tenant_id, created_by_user_id, resource_type, file_id, folder_id,
    /// provider_share_id, share_url, share_type, password_protected, expires_at, now
    LinkInsert => true,
    /// tenant_id, id
    LinkGet => true,
    /// id — the public redirect, which has no tenant
    LinkGetPublic => true,
    /// tenant_id, after, limit, file_id?, folder_id?, is_active?
    LinkList => true,
    /// id, now — counts an access of an active, unexpired link and returns it
    LinkRecordAccess => true,
    /// tenant_id, id, now
    LinkDeactivate => true,
    /// tenant_id, id, now
    LinkSoftDelete => true,
    /// now, limit — active links of every tenant whose expires_at has passed and that no
    /// link-expiry run holds (expiry_claimed_until unset or past)
    LinkExpiredScan => true,
    /// id, now, lease_until — holds an active, expired link for one link-expiry run unless
    /// another holds it; affected 1 when claimed
    LinkExpiryClaim => false,
    /// id, now — deactivates the link if it is still active and expired
    LinkExpire => false,

    /// id, tenant_id, sync_job_id, connection_id, file_id, error_type, error_code,
    /// error_message, stack_trace, error_metadata, now
    ErrorInsert => true,
    /// tenant_id, id
    ErrorGet => true,
    /// tenant_id, after, limit, connection_id?, error_type?, unresolved
    ErrorList => true,
    /// tenant_id, id, resolution_notes, now — only an unresolved error
    ErrorResolve => true,
    /// tenant_id, id, now
    ErrorSoftDelete => true,
    /// tenant_id, id, now, error_type, error_code, error_message — counts one more failure on
    /// an open error (retry_count + 1)
    ErrorBump => false,

    // ---- the sync worker ----
    /// tenant_id, connection_id, folder_id?, cursor_kind — the live cursor of that scope
    CursorGet => true,
    /// tenant_id, connection_id, folder_id?, cursor_kind, now, cursor_value, folder_map,
    /// last_polled_at — replaces the live cursor of that scope (affected 0: there is none)
    CursorUpdate => false,
    /// id, tenant_id, connection_id, folder_id, cursor_kind, cursor_value, folder_map,
    /// last_polled_at, now
    CursorInsert => false,

    // ---- change notifications ----
    /// id, tenant_id, connection_id, folder_id, subscription_kind, provider_subscription_id,
    /// provider_resource, encrypted_secret, expires_at, now — returns the row
    SubscriptionInsert => true,
    /// subscription_kind, provider_subscription_id — the live subscription a notification
    /// names, whatever its tenant (a notification names none)
    SubscriptionByProviderId => true,
    /// tenant_id, connection_id — the connection's live subscriptions
    SubscriptionsOfConnection => true,
    /// tenant_id, id, now — notes an authentic notification
    SubscriptionNotified => false,
    /// tenant_id, id, now, message_number — notes a Drive message if its number is above every
    /// one accepted on the channel (affected 0: a replay)
    SubscriptionMessage => false,
    /// tenant_id, id, now
    SubscriptionSoftDelete => false,
    /// before, limit — live subscriptions expiring before `before`, soonest first, every tenant
    SubscriptionDueScan => true,
    /// tenant_id, id, now, provider_subscription_id, provider_resource, encrypted_secret,
    /// expires_at — the subscription as renewed (Drive's renewal is a new channel, numbered
    /// from 1 again: the last message number is cleared)
    SubscriptionRenew => false,
    /// after_index, limit — live subscriptions with a secret, of every tenant, by index_id
    /// (the key rotation's scan)
    SubscriptionSecretScan => true,
    /// tenant_id, id, now, expected_secret, new_secret — rewrites the secret only if it is
    /// still the one read
    SubscriptionSwapSecret => false,
    /// provider_type, provider_user_id, limit — the live, active connections of a provider
    /// account across tenants (a Dropbox notification names accounts only)
    ConnectionsOfAccount => true,
    /// tenant_id, id, now, lease_id, lease_until — claims a pending job, or a running one whose
    /// lease ran out: running, started_at kept or set, the lease taken; returns it
    JobClaim => true,
    /// tenant_id, id, lease_id, now, lease_until, progress_percentage, files_processed,
    /// files_total, bytes_transferred, job_metadata — renews the lease and records progress and
    /// the checkpoint, only under the lease that claimed the job and while it runs
    JobHeartbeat => false,
    /// tenant_id, id, lease_id, now — gives the lease up (the job stays running, claimable at
    /// once by the next delivery of its message)
    JobRelease => false,
    /// tenant_id, id, lease_id, now, status, error_message — ends a running job under its
    /// lease (completed or failed), clearing the lease; returns it
    JobEnd => true,
    /// tenant_id, id, now — the job's message was sent to the queue now
    JobDispatched => false,
    /// before, limit — live pending jobs created before `before` whose message was never sent
    /// or last sent before it, oldest first
    JobUndispatchedScan => true,
    /// before, limit — live running jobs whose lease ran out before `before` and whose message
    /// was not sent since, oldest lease first
    JobLeaseExpiredScan => true,
    /// tenant_id, folder_id, provider_file_id — the folder's live file with this provider id
    FileGetByProvider => true,
    /// tenant_id, folder_id, provider_file_id, now, file_name, file_path, file_size_bytes,
    /// content_hash, mime_type, cloud_created_at, cloud_modified_at, sync_status, file_metadata,
    /// seen_by_job_id — a sync's view of a file on its live row (and no pending delete)
    FileSyncUpdate => false,
    /// id, tenant_id, folder_id, quodsi_file_type, provider_file_id, file_name, file_path,
    /// file_size_bytes, content_hash, mime_type, cloud_created_at, cloud_modified_at,
    /// sync_status, file_metadata, seen_by_job_id, now
    FileSyncInsert => false,
    /// tenant_id, folder_id, provider_file_id, job_id, now — marks the live file for deletion
    /// by the job
    FileMarkDeleteById => false,
    /// tenant_id, folder_id, path_lower, path_prefix_pattern, job_id, now — marks the live files
    /// at a path (lower-cased, under the folder) or below it for deletion by the job
    FileMarkDeleteByPath => false,
    /// tenant_id, folder_id, job_id, now — marks the live files the job's full listing did not
    /// see for deletion by the job
    FileMarkUnseen => false,
    /// tenant_id, folder_id — how many live files the folder has
    FileCountLive => true,
    /// tenant_id, folder_id, job_id — how many live files the job marked for deletion
    FileCountDeleting => true,
    /// tenant_id, folder_id, job_id, now — deactivates the links of the files the job marked
    FileDeactivateDeletingLinks => false,
    /// tenant_id, folder_id, job_id, now — soft-deletes the files the job marked
    FileApplyDeletes => false,
    /// tenant_id, folder_id, job_id, now — drops the job's deletion marks (the guard refused)
    FileClearDeleting => false,
    /// tenant_id, folder_id, after, limit — live files of the folder waiting for a download,
    /// in index order
    FileNeedsDownloadScan => true,
    /// tenant_id, folder_id, now — the folder's live files whose last download failed wait
    /// for one again
    FileRetryFailed => false,
}
