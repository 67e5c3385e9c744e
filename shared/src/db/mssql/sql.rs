//! T-SQL text of every statement. Parameter order: see `Stmt` (`@Pn` is the n-th, bound
//! positionally by tiberius and sent through `sp_executesql`).
//!
//! Rules these strings follow, and why:
//! * Tables are schema-qualified (`dbo.`): an unqualified name resolves per user, which
//!   makes SQL Server compile and cache a separate plan per default schema.
//! * `OUTPUT INSERTED.…` replaces SQLite's `RETURNING`; `SELECT TOP (@Pn) … ORDER BY`
//!   replaces `LIMIT`.
//! * A patch flag is a BIT parameter, so it is tested as `@Pn = 1`.
//! * Literal predicates stay literal (`is_deleted = 0`, `status = 'active'`,
//!   `is_active = 1`): SQL Server only matches a filtered index when the query's predicate
//!   implies the index filter at compile time, which a parameter never does.
//! * tiberius sends strings as NVARCHAR. Comparing a VARCHAR column with an NVARCHAR
//!   parameter converts the *column* (NVARCHAR has the higher precedence), which turns an
//!   index seek into a scan; so every such comparison casts the parameter to the column's
//!   declared type instead. Assignments (SET, VALUES) need no cast.
//! * A VARCHAR column holding user or provider text is returned as `(col + N'') AS col`
//!   (the `cols!(tsql …)` lists of `columns.rs`, and the link lists' `provider_item_id`):
//!   sent as VARCHAR, text outside the server's code page would reach tiberius as `?`.
//! * A parameter appears only where an expression may: the backend replaces `@Pn` by a
//!   typed `CAST(NULL AS …)` when the parameter is a NULL tiberius would send untyped (see
//!   `convert::column_data`), and that text must parse too (`tests/tests/tsql_parse.rs`).
//! * No MERGE, no table hints, no SERIALIZABLE: Babelfish ignores hints, and every write
//!   here is a single statement whose WHERE clause carries the condition it depends on.
//! * An INSERT under a parent that must be live (FolderInsert, JobInsert) is preceded in the
//!   same transaction by a no-op `UPDATE … SET updated_at = updated_at` of the parent row(s)
//!   whose WHERE matches only a live, active parent, and runs only if that matched. Under
//!   READ_COMMITTED_SNAPSHOT (Azure SQL) and on Babelfish (PostgreSQL snapshots) the
//!   INSERT's own `NOT EXISTS` reads the last committed parent and misses a revoke/delete in
//!   flight; an UPDATE instead waits on the parent's row lock and re-evaluates its WHERE
//!   against the committed result, so it serialises against the delete without hints. The
//!   locks are taken connection first, then folder, the order delete_connection takes them.

use crate::db::stmt::Stmt;

pub fn sql(stmt: Stmt) -> &'static str {
    match stmt {
        Stmt::TenantEnsure => {
            "INSERT INTO dbo.tenants (id, name, created_at) SELECT @P1, @P2, @P3 \
             WHERE NOT EXISTS (SELECT 1 FROM dbo.tenants WHERE id = @P1)"
        }
        Stmt::UserEnsure => {
            "INSERT INTO dbo.users (id, tenant_id, email, created_at) SELECT @P1, @P2, @P3, @P4 \
             WHERE NOT EXISTS (SELECT 1 FROM dbo.users WHERE id = @P1)"
        }

        Stmt::ConnInsert => concat!(
            "INSERT INTO dbo.cloud_connections (id, tenant_id, user_id, provider_type, provider_user_id, \
             provider_user_email, encrypted_access_token, encrypted_refresh_token, token_expiry, scope, \
             status, display_name, connection_metadata, created_at, updated_at) OUTPUT ",
            connection_cols!(tsql INSERTED),
            " VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P12, @P13, @P14, @P14)"
        ),
        Stmt::ConnKnown => "SELECT id FROM dbo.cloud_connections WHERE tenant_id = @P1 AND id = @P2",
        Stmt::ConnGet => concat!(
            "SELECT ",
            connection_cols!(tsql),
            " FROM dbo.cloud_connections WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::ConnList => concat!(
            "SELECT TOP (@P3) ",
            connection_cols!(tsql),
            " FROM dbo.cloud_connections WHERE tenant_id = @P1 AND is_deleted = 0 AND index_id > @P2 \
             AND (@P4 IS NULL OR provider_type = CAST(@P4 AS VARCHAR(50))) \
             AND (@P5 IS NULL OR status = CAST(@P5 AS VARCHAR(20))) \
             AND (@P6 IS NULL OR user_id = @P6) ORDER BY index_id"
        ),
        Stmt::ConnUpdate => concat!(
            "UPDATE dbo.cloud_connections SET \
             display_name = CASE WHEN @P4 = 1 THEN @P5 ELSE display_name END, \
             connection_metadata = CASE WHEN @P6 = 1 THEN @P7 ELSE connection_metadata END, \
             status = CASE WHEN @P8 = 1 THEN @P9 ELSE status END, \
             last_used_at = CASE WHEN @P10 = 1 THEN @P11 ELSE last_used_at END, \
             last_sync_at = CASE WHEN @P12 = 1 THEN @P13 ELSE last_sync_at END, \
             updated_at = @P3 OUTPUT ",
            connection_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::ConnSoftDelete => concat!(
            "UPDATE dbo.cloud_connections SET is_deleted = 1, status = 'revoked', updated_at = @P3 OUTPUT ",
            connection_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::ConnSoftDeleteFolders => {
            "UPDATE dbo.cloud_folders SET is_deleted = 1, updated_at = @P3 \
             WHERE tenant_id = @P1 AND connection_id = @P2 AND is_deleted = 0"
        }
        Stmt::ConnCancelJobs => {
            "UPDATE dbo.cloud_sync_jobs SET status = 'cancelled', completed_at = @P3, updated_at = @P3 \
             WHERE tenant_id = @P1 AND is_deleted = 0 AND status IN ('pending', 'running') \
             AND folder_id IN (SELECT id FROM dbo.cloud_folders WHERE tenant_id = @P1 AND connection_id = @P2)"
        }
        Stmt::ConnDeactivateLinks => {
            "UPDATE dbo.cloud_shared_links SET is_active = 0, updated_at = @P3 \
             WHERE tenant_id = @P1 AND is_active = 1 AND is_deleted = 0 \
             AND (folder_id IN (SELECT id FROM dbo.cloud_folders WHERE tenant_id = @P1 AND connection_id = @P2) \
             OR file_id IN (SELECT f.id FROM dbo.cloud_files f JOIN dbo.cloud_folders d \
             ON d.tenant_id = f.tenant_id AND d.id = f.folder_id \
             WHERE d.tenant_id = @P1 AND d.connection_id = @P2))"
        }
        Stmt::ConnLinkList => concat!(
            "SELECT TOP (@P3) ",
            link_cols!(tsql),
            ", (provider_item_id + N'') AS provider_item_id FROM (SELECT ",
            link_cols!(t),
            ", d.provider_folder_id AS provider_item_id FROM dbo.cloud_shared_links t \
             JOIN dbo.cloud_folders d ON d.tenant_id = t.tenant_id AND d.id = t.folder_id \
             WHERE t.tenant_id = @P1 AND d.tenant_id = @P1 AND d.connection_id = @P4 AND d.is_deleted = 0 \
             AND t.is_active = 1 AND t.is_deleted = 0 AND t.index_id > @P2 \
             UNION ALL SELECT ",
            link_cols!(t),
            ", f.provider_file_id FROM dbo.cloud_shared_links t \
             JOIN dbo.cloud_files f ON f.tenant_id = t.tenant_id AND f.id = t.file_id \
             JOIN dbo.cloud_folders d ON d.tenant_id = f.tenant_id AND d.id = f.folder_id \
             WHERE t.tenant_id = @P1 AND d.tenant_id = @P1 AND d.connection_id = @P4 AND d.is_deleted = 0 \
             AND t.is_active = 1 AND t.is_deleted = 0 AND t.index_id > @P2) x ORDER BY index_id"
        ),
        Stmt::FolderLinkList => concat!(
            "SELECT TOP (@P3) ",
            link_cols!(tsql),
            ", (provider_item_id + N'') AS provider_item_id FROM (SELECT ",
            link_cols!(t),
            ", d.provider_folder_id AS provider_item_id FROM dbo.cloud_shared_links t \
             JOIN dbo.cloud_folders d ON d.tenant_id = t.tenant_id AND d.id = t.folder_id \
             WHERE t.tenant_id = @P1 AND d.tenant_id = @P1 AND d.id = @P4 AND d.is_deleted = 0 \
             AND t.is_active = 1 AND t.is_deleted = 0 AND t.index_id > @P2 \
             UNION ALL SELECT ",
            link_cols!(t),
            ", f.provider_file_id FROM dbo.cloud_shared_links t \
             JOIN dbo.cloud_files f ON f.tenant_id = t.tenant_id AND f.id = t.file_id \
             JOIN dbo.cloud_folders d ON d.tenant_id = f.tenant_id AND d.id = f.folder_id \
             WHERE t.tenant_id = @P1 AND d.tenant_id = @P1 AND d.id = @P4 AND d.is_deleted = 0 \
             AND t.is_active = 1 AND t.is_deleted = 0 AND t.index_id > @P2) x ORDER BY index_id"
        ),
        Stmt::ConnTokenScan => concat!(
            "SELECT TOP (@P2) ",
            connection_cols!(tsql),
            " FROM dbo.cloud_connections WHERE status = 'active' AND token_expiry < @P1 AND is_deleted = 0 \
             ORDER BY token_expiry, index_id"
        ),
        Stmt::ConnScanAll => concat!(
            "SELECT TOP (@P2) ",
            connection_cols!(tsql),
            " FROM dbo.cloud_connections WHERE index_id > @P1 ORDER BY index_id"
        ),
        Stmt::ConnSwapTokens => {
            "UPDATE dbo.cloud_connections SET encrypted_access_token = @P4, \
             encrypted_refresh_token = @P5, updated_at = @P6 \
             WHERE tenant_id = @P1 AND id = @P2 AND encrypted_access_token = @P3"
        }
        Stmt::ConnGetByAccount => concat!(
            "SELECT ",
            connection_cols!(tsql),
            " FROM dbo.cloud_connections WHERE tenant_id = @P1 AND user_id = @P2 \
             AND provider_type = CAST(@P3 AS VARCHAR(50)) AND provider_user_id = CAST(@P4 AS VARCHAR(255)) \
             AND is_deleted = 0"
        ),
        Stmt::ConnReconnect => concat!(
            "UPDATE dbo.cloud_connections SET encrypted_access_token = @P4, \
             encrypted_refresh_token = CASE WHEN @P5 = 1 THEN @P6 ELSE encrypted_refresh_token END, \
             token_expiry = @P7, scope = @P8, provider_user_email = @P9, \
             display_name = CASE WHEN @P10 = 1 THEN @P11 ELSE display_name END, connection_metadata = @P12, \
             status = 'active', token_refreshed_at = @P3, refresh_not_before = NULL, refresh_failures = 0, \
             refresh_error_id = NULL, updated_at = @P3 OUTPUT ",
            connection_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::ConnRefreshDueScan => concat!(
            "SELECT TOP (@P3) ",
            connection_cols!(tsql),
            ", ",
            refresh_cols!(tsql),
            " FROM dbo.cloud_connections WHERE status = 'active' AND token_expiry < @P1 AND is_deleted = 0 \
             AND (refresh_not_before IS NULL OR refresh_not_before <= @P2) ORDER BY token_expiry, index_id"
        ),
        Stmt::ConnKeepAliveScan => concat!(
            "SELECT TOP (@P3) ",
            connection_cols!(tsql),
            ", ",
            refresh_cols!(tsql),
            " FROM dbo.cloud_connections WHERE status = 'active' AND is_deleted = 0 AND token_refreshed_at <= @P1 \
             AND (refresh_not_before IS NULL OR refresh_not_before <= @P2) ORDER BY token_refreshed_at, index_id"
        ),
        Stmt::ConnKeepAliveNewScan => concat!(
            "SELECT TOP (@P3) ",
            connection_cols!(tsql),
            ", ",
            refresh_cols!(tsql),
            " FROM dbo.cloud_connections WHERE status = 'active' AND is_deleted = 0 AND token_refreshed_at IS NULL \
             AND created_at <= @P1 AND (refresh_not_before IS NULL OR refresh_not_before <= @P2) \
             ORDER BY created_at, index_id"
        ),
        // The claim compares the access-token ciphertext that was read: every token write
        // re-encrypts it under a fresh nonce, so it changes whenever anyone refreshed (or
        // re-keyed) the row since.
        Stmt::ConnRefreshGet => concat!(
            "SELECT ",
            connection_cols!(tsql),
            ", ",
            refresh_cols!(tsql),
            " FROM dbo.cloud_connections WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::ConnRefreshClaim => concat!(
            "UPDATE dbo.cloud_connections SET refresh_not_before = @P5, updated_at = @P4 OUTPUT ",
            connection_cols!(tsql INSERTED),
            ", ",
            refresh_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0 AND status = 'active' \
             AND encrypted_access_token = @P3 AND (refresh_not_before IS NULL OR refresh_not_before <= @P4)"
        ),
        Stmt::ConnRefreshStore => {
            "UPDATE dbo.cloud_connections SET encrypted_access_token = @P4, \
             encrypted_refresh_token = CASE WHEN @P5 = 1 THEN @P6 ELSE encrypted_refresh_token END, \
             token_expiry = @P7, scope = CASE WHEN @P8 = 1 THEN @P9 ELSE scope END, token_refreshed_at = @P3, \
             refresh_not_before = NULL, refresh_failures = 0, refresh_error_id = NULL, updated_at = @P3 \
             WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        }
        Stmt::ConnRefreshEnd => {
            "UPDATE dbo.cloud_connections SET status = @P4, refresh_not_before = NULL, refresh_failures = 0, \
             refresh_error_id = NULL, updated_at = @P3 \
             WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0 AND status = 'active'"
        }
        Stmt::ConnRefreshRelease => {
            "UPDATE dbo.cloud_connections SET refresh_not_before = @P4, updated_at = @P3 \
             WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        }
        Stmt::ConnRefreshFailed => {
            "UPDATE dbo.cloud_connections SET refresh_not_before = @P4, refresh_failures = refresh_failures + 1, \
             refresh_error_id = @P5, updated_at = @P3 WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        }

        Stmt::FolderInsert => concat!(
            "INSERT INTO dbo.cloud_folders (id, tenant_id, connection_id, folder_name, provider_folder_id, \
             folder_path, folder_type, is_default_export_folder, is_default_import_folder, \
             auto_sync_enabled, sync_frequency_minutes, folder_permissions, created_at, updated_at) OUTPUT ",
            folder_cols!(tsql INSERTED),
            " SELECT @P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P12, @P13, @P13 \
             WHERE NOT EXISTS (SELECT 1 FROM dbo.cloud_connections c WHERE c.id = @P3 \
             AND (c.status <> 'active' OR c.is_deleted = 1))"
        ),
        Stmt::FolderLockConnection => {
            "UPDATE dbo.cloud_connections SET updated_at = updated_at \
             WHERE tenant_id = @P1 AND id = @P2 AND status = 'active' AND is_deleted = 0"
        }
        Stmt::FolderClearDefaultExport => {
            "UPDATE dbo.cloud_folders SET is_default_export_folder = 0, updated_at = @P4 \
             WHERE tenant_id = @P1 AND connection_id = @P2 AND is_default_export_folder = 1 \
             AND is_deleted = 0 AND id <> @P3"
        }
        Stmt::FolderClearDefaultImport => {
            "UPDATE dbo.cloud_folders SET is_default_import_folder = 0, updated_at = @P4 \
             WHERE tenant_id = @P1 AND connection_id = @P2 AND is_default_import_folder = 1 \
             AND is_deleted = 0 AND id <> @P3"
        }
        Stmt::FolderKnown => "SELECT id FROM dbo.cloud_folders WHERE tenant_id = @P1 AND id = @P2",
        Stmt::FolderGet => concat!(
            "SELECT ",
            folder_cols!(tsql),
            " FROM dbo.cloud_folders WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::FolderList => concat!(
            "SELECT TOP (@P3) ",
            folder_cols!(tsql),
            " FROM dbo.cloud_folders WHERE tenant_id = @P1 AND is_deleted = 0 AND index_id > @P2 \
             AND (@P4 IS NULL OR connection_id = @P4) \
             AND (@P5 IS NULL OR folder_type = CAST(@P5 AS VARCHAR(50))) ORDER BY index_id"
        ),
        Stmt::FolderUpdate => concat!(
            "UPDATE dbo.cloud_folders SET \
             folder_name = CASE WHEN @P4 = 1 THEN @P5 ELSE folder_name END, \
             folder_path = CASE WHEN @P6 = 1 THEN @P7 ELSE folder_path END, \
             folder_type = CASE WHEN @P8 = 1 THEN @P9 ELSE folder_type END, \
             is_default_export_folder = CASE WHEN @P10 = 1 THEN @P11 ELSE is_default_export_folder END, \
             is_default_import_folder = CASE WHEN @P12 = 1 THEN @P13 ELSE is_default_import_folder END, \
             auto_sync_enabled = CASE WHEN @P14 = 1 THEN @P15 ELSE auto_sync_enabled END, \
             sync_frequency_minutes = CASE WHEN @P16 = 1 THEN @P17 ELSE sync_frequency_minutes END, \
             folder_permissions = CASE WHEN @P18 = 1 THEN @P19 ELSE folder_permissions END, \
             last_sync_at = CASE WHEN @P20 = 1 THEN @P21 ELSE last_sync_at END, \
             updated_at = @P3 OUTPUT ",
            folder_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::FolderSoftDelete => concat!(
            "UPDATE dbo.cloud_folders SET is_deleted = 1, updated_at = @P3 OUTPUT ",
            folder_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::FolderCancelJobs => {
            "UPDATE dbo.cloud_sync_jobs SET status = 'cancelled', completed_at = @P3, updated_at = @P3 \
             WHERE tenant_id = @P1 AND folder_id = @P2 AND is_deleted = 0 AND status IN ('pending', 'running')"
        }
        Stmt::FolderDeactivateLinks => {
            "UPDATE dbo.cloud_shared_links SET is_active = 0, updated_at = @P3 \
             WHERE tenant_id = @P1 AND is_active = 1 AND is_deleted = 0 \
             AND (folder_id = @P2 OR file_id IN (SELECT id FROM dbo.cloud_files WHERE tenant_id = @P1 AND folder_id = @P2))"
        }
        Stmt::FolderNextFrequency => {
            "SELECT TOP (1) sync_frequency_minutes FROM dbo.cloud_folders WHERE auto_sync_enabled = 1 \
             AND is_deleted = 0 AND sync_frequency_minutes > @P1 ORDER BY sync_frequency_minutes"
        }
        Stmt::FolderDueScan => concat!(
            "SELECT TOP (@P3) ",
            folder_cols!(tsql t),
            " FROM dbo.cloud_folders t JOIN dbo.cloud_connections c ON c.tenant_id = t.tenant_id AND c.id = t.connection_id \
             WHERE t.auto_sync_enabled = 1 AND t.is_deleted = 0 AND t.sync_frequency_minutes = @P2 \
             AND t.last_sync_at <= @P1 AND c.status = 'active' AND c.is_deleted = 0 \
             AND NOT EXISTS (SELECT 1 FROM dbo.cloud_sync_jobs j WHERE j.folder_id = t.id \
             AND j.is_deleted = 0 AND j.status IN ('pending', 'running')) \
             AND NOT EXISTS (SELECT 1 FROM dbo.cloud_sync_jobs r WHERE r.tenant_id = t.tenant_id \
             AND r.folder_id = t.id AND r.is_deleted = 0 AND r.status IN ('failed', 'cancelled') \
             AND COALESCE(r.completed_at, r.updated_at) > @P1) \
             ORDER BY t.last_sync_at, t.index_id"
        ),
        Stmt::FolderNeverSyncedScan => concat!(
            "SELECT TOP (@P2) ",
            folder_cols!(tsql t),
            " FROM dbo.cloud_folders t JOIN dbo.cloud_connections c ON c.tenant_id = t.tenant_id AND c.id = t.connection_id \
             WHERE t.auto_sync_enabled = 1 AND t.is_deleted = 0 AND t.sync_frequency_minutes = @P1 \
             AND t.last_sync_at IS NULL AND c.status = 'active' AND c.is_deleted = 0 \
             AND NOT EXISTS (SELECT 1 FROM dbo.cloud_sync_jobs j WHERE j.folder_id = t.id \
             AND j.is_deleted = 0 AND j.status IN ('pending', 'running')) \
             AND NOT EXISTS (SELECT 1 FROM dbo.cloud_sync_jobs r WHERE r.tenant_id = t.tenant_id \
             AND r.folder_id = t.id AND r.is_deleted = 0 AND r.status IN ('failed', 'cancelled') \
             AND COALESCE(r.completed_at, r.updated_at) > @P3) \
             ORDER BY t.index_id"
        ),

        Stmt::JobInsert => concat!(
            "INSERT INTO dbo.cloud_sync_jobs (id, tenant_id, folder_id, initiated_by_user_id, job_type, \
             job_metadata, created_at, updated_at) OUTPUT ",
            job_cols!(tsql INSERTED),
            " SELECT @P1, @P2, @P3, @P4, @P5, @P6, @P7, @P7 \
             WHERE NOT EXISTS (SELECT 1 FROM dbo.cloud_folders d JOIN dbo.cloud_connections c \
             ON c.tenant_id = d.tenant_id AND c.id = d.connection_id WHERE d.id = @P3 \
             AND (d.is_deleted = 1 OR c.status <> 'active' OR c.is_deleted = 1))"
        ),
        Stmt::JobLockConnection => {
            "UPDATE dbo.cloud_connections SET updated_at = updated_at \
             WHERE tenant_id = @P1 AND status = 'active' AND is_deleted = 0 \
             AND id = (SELECT d.connection_id FROM dbo.cloud_folders d WHERE d.tenant_id = @P1 AND d.id = @P2)"
        }
        Stmt::JobLockFolder => {
            "UPDATE dbo.cloud_folders SET updated_at = updated_at \
             WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        }
        Stmt::JobGet => concat!(
            "SELECT ",
            job_cols!(tsql),
            " FROM dbo.cloud_sync_jobs WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::JobList => concat!(
            "SELECT TOP (@P3) ",
            job_cols!(tsql),
            " FROM dbo.cloud_sync_jobs WHERE tenant_id = @P1 AND is_deleted = 0 AND index_id > @P2 \
             AND (@P4 IS NULL OR folder_id = @P4) \
             AND (@P5 IS NULL OR status = CAST(@P5 AS VARCHAR(50))) ORDER BY index_id"
        ),
        // Every SET expression reads the row as it was before the UPDATE (as in SQLite), so
        // `started_at IS NULL` sees the old value.
        Stmt::JobUpdate => concat!(
            "UPDATE dbo.cloud_sync_jobs SET status = @P5, \
             started_at = CASE WHEN @P5 = 'running' AND started_at IS NULL THEN @P4 ELSE started_at END, \
             completed_at = CASE WHEN @P5 IN ('completed', 'failed', 'cancelled') THEN @P4 ELSE completed_at END, \
             progress_percentage = CASE WHEN @P6 = 1 THEN @P7 ELSE progress_percentage END, \
             files_processed = CASE WHEN @P8 = 1 THEN @P9 ELSE files_processed END, \
             files_total = CASE WHEN @P10 = 1 THEN @P11 ELSE files_total END, \
             bytes_transferred = CASE WHEN @P12 = 1 THEN @P13 ELSE bytes_transferred END, \
             error_message = CASE WHEN @P14 = 1 THEN @P15 ELSE error_message END, \
             job_metadata = CASE WHEN @P16 = 1 THEN @P17 ELSE job_metadata END, \
             updated_at = @P4 OUTPUT ",
            job_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0 AND status = CAST(@P3 AS VARCHAR(50))"
        ),
        Stmt::JobTouchFolder => {
            "UPDATE dbo.cloud_folders SET last_sync_at = @P3, updated_at = @P3 \
             WHERE tenant_id = @P1 AND id = @P2"
        }
        Stmt::JobTouchConnection => {
            "UPDATE dbo.cloud_connections SET last_sync_at = @P3, updated_at = @P3 \
             WHERE tenant_id = @P1 AND id = (SELECT connection_id FROM dbo.cloud_folders WHERE tenant_id = @P1 AND id = @P2)"
        }
        Stmt::JobSoftDelete => concat!(
            "UPDATE dbo.cloud_sync_jobs SET is_deleted = 1, updated_at = @P3 OUTPUT ",
            job_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        // index_id breaks ties between equal timestamps so a page is deterministic.
        Stmt::JobPendingScan => concat!(
            "SELECT TOP (@P1) ",
            job_cols!(tsql),
            " FROM dbo.cloud_sync_jobs WHERE status = 'pending' AND is_deleted = 0 ORDER BY created_at, index_id"
        ),
        Stmt::JobStaleScan => concat!(
            "SELECT TOP (@P2) ",
            job_cols!(tsql),
            " FROM dbo.cloud_sync_jobs WHERE status = 'running' AND is_deleted = 0 AND updated_at < @P1 \
             ORDER BY updated_at, index_id"
        ),
        Stmt::JobFailStale => concat!(
            "UPDATE dbo.cloud_sync_jobs SET status = 'failed', completed_at = @P4, error_message = @P5, \
             updated_at = @P4 OUTPUT ",
            job_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0 AND status = 'running' AND updated_at < @P3"
        ),

        Stmt::FileInsert => concat!(
            "INSERT INTO dbo.cloud_files (id, tenant_id, folder_id, quodsi_file_type, quodsi_entity_id, \
             provider_file_id, file_name, file_path, file_size_bytes, content_hash, mime_type, \
             cloud_created_at, cloud_modified_at, last_synced_at, sync_status, upload_url, download_url, \
             file_metadata, created_at, updated_at) OUTPUT ",
            file_cols!(tsql INSERTED),
            " VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P12, @P13, @P14, @P15, \
             @P16, @P17, @P18, @P19, @P19)"
        ),
        Stmt::FileKnown => "SELECT id FROM dbo.cloud_files WHERE tenant_id = @P1 AND id = @P2",
        Stmt::FileGet => concat!(
            "SELECT ",
            file_cols!(tsql),
            " FROM dbo.cloud_files WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::FileList => concat!(
            "SELECT TOP (@P3) ",
            file_cols!(tsql),
            " FROM dbo.cloud_files WHERE tenant_id = @P1 AND is_deleted = 0 AND index_id > @P2 \
             AND (@P4 IS NULL OR folder_id = @P4) \
             AND (@P5 IS NULL OR quodsi_file_type = CAST(@P5 AS VARCHAR(50))) \
             AND (@P6 IS NULL OR sync_status = CAST(@P6 AS VARCHAR(50))) \
             AND (@P7 IS NULL OR quodsi_entity_id = @P7) ORDER BY index_id"
        ),
        Stmt::FileUpdate => concat!(
            "UPDATE dbo.cloud_files SET \
             file_name = CASE WHEN @P4 = 1 THEN @P5 ELSE file_name END, \
             file_path = CASE WHEN @P6 = 1 THEN @P7 ELSE file_path END, \
             file_size_bytes = CASE WHEN @P8 = 1 THEN @P9 ELSE file_size_bytes END, \
             content_hash = CASE WHEN @P10 = 1 THEN @P11 ELSE content_hash END, \
             mime_type = CASE WHEN @P12 = 1 THEN @P13 ELSE mime_type END, \
             cloud_modified_at = CASE WHEN @P14 = 1 THEN @P15 ELSE cloud_modified_at END, \
             last_synced_at = CASE WHEN @P16 = 1 THEN @P17 ELSE last_synced_at END, \
             sync_status = CASE WHEN @P18 = 1 THEN @P19 ELSE sync_status END, \
             upload_url = CASE WHEN @P20 = 1 THEN @P21 ELSE upload_url END, \
             download_url = CASE WHEN @P22 = 1 THEN @P23 ELSE download_url END, \
             file_metadata = CASE WHEN @P24 = 1 THEN @P25 ELSE file_metadata END, \
             updated_at = @P3 OUTPUT ",
            file_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::FileSoftDelete => concat!(
            "UPDATE dbo.cloud_files SET is_deleted = 1, updated_at = @P3 OUTPUT ",
            file_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::FileDeactivateLinks => {
            "UPDATE dbo.cloud_shared_links SET is_active = 0, updated_at = @P3 \
             WHERE tenant_id = @P1 AND file_id = @P2 AND is_active = 1 AND is_deleted = 0"
        }

        Stmt::LinkInsert => concat!(
            "INSERT INTO dbo.cloud_shared_links (id, tenant_id, created_by_user_id, resource_type, file_id, \
             folder_id, provider_share_id, share_url, share_type, password_protected, expires_at, \
             created_at, updated_at) OUTPUT ",
            link_cols!(tsql INSERTED),
            " VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P12, @P12)"
        ),
        Stmt::LinkGet => concat!(
            "SELECT ",
            link_cols!(tsql),
            " FROM dbo.cloud_shared_links WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::LinkGetPublic => {
            concat!("SELECT ", link_cols!(tsql), " FROM dbo.cloud_shared_links WHERE id = @P1 AND is_deleted = 0")
        }
        Stmt::LinkList => concat!(
            "SELECT TOP (@P3) ",
            link_cols!(tsql),
            " FROM dbo.cloud_shared_links WHERE tenant_id = @P1 AND is_deleted = 0 AND index_id > @P2 \
             AND (@P4 IS NULL OR file_id = @P4) AND (@P5 IS NULL OR folder_id = @P5) \
             AND (@P6 IS NULL OR is_active = @P6) ORDER BY index_id"
        ),
        Stmt::LinkRecordAccess => concat!(
            "UPDATE dbo.cloud_shared_links SET access_count = access_count + 1, last_accessed_at = @P2, \
             updated_at = @P2 OUTPUT ",
            link_cols!(tsql INSERTED),
            " WHERE id = @P1 AND is_active = 1 AND is_deleted = 0 AND (expires_at IS NULL OR expires_at > @P2)"
        ),
        Stmt::LinkDeactivate => concat!(
            "UPDATE dbo.cloud_shared_links SET is_active = 0, updated_at = @P3 OUTPUT ",
            link_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::LinkSoftDelete => concat!(
            "UPDATE dbo.cloud_shared_links SET is_deleted = 1, is_active = 0, updated_at = @P3 OUTPUT ",
            link_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::LinkExpiredScan => concat!(
            "SELECT TOP (@P2) ",
            link_cols!(tsql),
            " FROM dbo.cloud_shared_links WHERE expires_at IS NOT NULL AND is_active = 1 AND expires_at <= @P1 \
             AND is_deleted = 0 AND (expiry_claimed_until IS NULL OR expiry_claimed_until <= @P1) \
             ORDER BY expires_at, index_id"
        ),
        // The conditions are evaluated again on the row the UPDATE locks, so of two runs
        // claiming the same link only one gets it.
        Stmt::LinkExpiryClaim => {
            "UPDATE dbo.cloud_shared_links SET expiry_claimed_until = @P3, updated_at = @P2 \
             WHERE id = @P1 AND is_active = 1 AND is_deleted = 0 AND expires_at <= @P2 \
             AND (expiry_claimed_until IS NULL OR expiry_claimed_until <= @P2)"
        }
        Stmt::LinkExpire => {
            "UPDATE dbo.cloud_shared_links SET is_active = 0, updated_at = @P2 \
             WHERE id = @P1 AND is_active = 1 AND expires_at <= @P2"
        }

        Stmt::ErrorInsert => concat!(
            "INSERT INTO dbo.cloud_sync_errors (id, tenant_id, sync_job_id, connection_id, file_id, error_type, \
             error_code, error_message, stack_trace, error_metadata, created_at, updated_at) OUTPUT ",
            error_cols!(tsql INSERTED),
            " VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P11)"
        ),
        Stmt::ErrorGet => concat!(
            "SELECT ",
            error_cols!(tsql),
            " FROM dbo.cloud_sync_errors WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::ErrorList => concat!(
            "SELECT TOP (@P3) ",
            error_cols!(tsql),
            " FROM dbo.cloud_sync_errors WHERE tenant_id = @P1 AND is_deleted = 0 AND index_id > @P2 \
             AND (@P4 IS NULL OR connection_id = @P4) \
             AND (@P5 IS NULL OR error_type = CAST(@P5 AS VARCHAR(50))) \
             AND (@P6 = 0 OR resolved_at IS NULL) ORDER BY index_id"
        ),
        Stmt::ErrorResolve => concat!(
            "UPDATE dbo.cloud_sync_errors SET resolved_at = @P4, resolution_notes = @P3, updated_at = @P4 OUTPUT ",
            error_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0 AND resolved_at IS NULL"
        ),
        Stmt::ErrorSoftDelete => concat!(
            "UPDATE dbo.cloud_sync_errors SET is_deleted = 1, updated_at = @P3 OUTPUT ",
            error_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        ),
        Stmt::ErrorBump => {
            "UPDATE dbo.cloud_sync_errors SET retry_count = retry_count + 1, error_type = @P4, error_code = @P5, \
             error_message = @P6, updated_at = @P3 \
             WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0 AND resolved_at IS NULL"
        }

        Stmt::CursorGet => concat!(
            "SELECT ",
            cursor_cols!(tsql),
            " FROM dbo.cloud_sync_cursors WHERE tenant_id = @P1 AND connection_id = @P2 \
             AND (folder_id = @P3 OR (folder_id IS NULL AND @P3 IS NULL)) \
             AND cursor_kind = CAST(@P4 AS VARCHAR(50)) AND is_deleted = 0"
        ),
        Stmt::CursorUpdate => {
            "UPDATE dbo.cloud_sync_cursors SET cursor_value = @P6, folder_map = @P7, last_polled_at = @P8, \
             updated_at = @P5 WHERE tenant_id = @P1 AND connection_id = @P2 \
             AND (folder_id = @P3 OR (folder_id IS NULL AND @P3 IS NULL)) \
             AND cursor_kind = CAST(@P4 AS VARCHAR(50)) AND is_deleted = 0"
        }
        Stmt::SubscriptionInsert => concat!(
            "INSERT INTO dbo.cloud_sync_subscriptions (id, tenant_id, connection_id, folder_id, subscription_kind, \
             provider_subscription_id, provider_resource, encrypted_secret, expires_at, created_at, updated_at) OUTPUT ",
            subscription_cols!(tsql INSERTED),
            " VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P10)"
        ),
        Stmt::SubscriptionByProviderId => concat!(
            "SELECT ",
            subscription_cols!(tsql),
            " FROM dbo.cloud_sync_subscriptions WHERE subscription_kind = CAST(@P1 AS VARCHAR(50)) \
             AND provider_subscription_id = CAST(@P2 AS VARCHAR(255)) AND is_deleted = 0"
        ),
        Stmt::SubscriptionsOfConnection => concat!(
            "SELECT ",
            subscription_cols!(tsql),
            " FROM dbo.cloud_sync_subscriptions WHERE tenant_id = @P1 AND connection_id = @P2 AND is_deleted = 0 \
             ORDER BY index_id"
        ),
        Stmt::SubscriptionNotified => {
            "UPDATE dbo.cloud_sync_subscriptions SET last_notified_at = @P3, updated_at = @P3 \
             WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        }
        Stmt::SubscriptionMessage => {
            "UPDATE dbo.cloud_sync_subscriptions SET last_message_number = @P4, last_notified_at = @P3, updated_at = @P3 \
             WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0 \
             AND (last_message_number IS NULL OR last_message_number < @P4)"
        }
        Stmt::SubscriptionSoftDelete => {
            "UPDATE dbo.cloud_sync_subscriptions SET is_deleted = 1, updated_at = @P3 \
             WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        }
        Stmt::SubscriptionDueScan => concat!(
            "SELECT TOP (@P2) ",
            subscription_cols!(tsql),
            " FROM dbo.cloud_sync_subscriptions WHERE is_deleted = 0 AND expires_at < @P1 ORDER BY expires_at, index_id"
        ),
        Stmt::SubscriptionRenew => {
            "UPDATE dbo.cloud_sync_subscriptions SET provider_subscription_id = @P4, provider_resource = @P5, \
             encrypted_secret = @P6, expires_at = @P7, last_message_number = NULL, updated_at = @P3 \
             WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        }
        Stmt::SubscriptionSecretScan => concat!(
            "SELECT TOP (@P2) ",
            subscription_cols!(tsql),
            " FROM dbo.cloud_sync_subscriptions WHERE index_id > @P1 AND is_deleted = 0 \
             AND encrypted_secret IS NOT NULL ORDER BY index_id"
        ),
        Stmt::SubscriptionSwapSecret => {
            "UPDATE dbo.cloud_sync_subscriptions SET encrypted_secret = @P5, updated_at = @P3 \
             WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0 AND encrypted_secret = @P4"
        }
        Stmt::ConnectionsOfAccount => concat!(
            "SELECT TOP (@P3) ",
            connection_cols!(tsql),
            " FROM dbo.cloud_connections WHERE provider_type = CAST(@P1 AS VARCHAR(50)) \
             AND provider_user_id = CAST(@P2 AS VARCHAR(255)) AND is_deleted = 0 AND status = 'active' ORDER BY index_id"
        ),
        Stmt::CursorInsert => {
            "INSERT INTO dbo.cloud_sync_cursors (id, tenant_id, connection_id, folder_id, cursor_kind, cursor_value, \
             folder_map, last_polled_at, created_at, updated_at) VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P9)"
        }
        Stmt::JobClaim => concat!(
            "UPDATE dbo.cloud_sync_jobs SET status = 'running', started_at = COALESCE(started_at, @P3), \
             worker_lease_id = @P4, worker_lease_until = @P5, updated_at = @P3 OUTPUT ",
            job_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0 \
             AND (status = 'pending' OR (status = 'running' AND (worker_lease_until IS NULL OR worker_lease_until <= @P3)))"
        ),
        Stmt::JobHeartbeat => {
            "UPDATE dbo.cloud_sync_jobs SET worker_lease_until = @P5, progress_percentage = @P6, files_processed = @P7, \
             files_total = @P8, bytes_transferred = @P9, job_metadata = @P10, updated_at = @P4 \
             WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0 AND status = 'running' AND worker_lease_id = @P3"
        }
        Stmt::JobRelease => {
            "UPDATE dbo.cloud_sync_jobs SET worker_lease_until = @P4, updated_at = @P4 \
             WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0 AND status = 'running' AND worker_lease_id = @P3"
        }
        Stmt::JobEnd => concat!(
            "UPDATE dbo.cloud_sync_jobs SET status = @P5, completed_at = @P4, error_message = @P6, \
             worker_lease_id = NULL, worker_lease_until = NULL, updated_at = @P4 OUTPUT ",
            job_cols!(tsql INSERTED),
            " WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0 AND status = 'running' AND worker_lease_id = @P3"
        ),
        Stmt::JobDispatched => {
            "UPDATE dbo.cloud_sync_jobs SET dispatched_at = @P3 WHERE tenant_id = @P1 AND id = @P2 AND is_deleted = 0"
        }
        Stmt::JobUndispatchedScan => concat!(
            "SELECT TOP (@P2) ",
            job_cols!(tsql),
            " FROM dbo.cloud_sync_jobs WHERE status = 'pending' AND is_deleted = 0 AND created_at < @P1 \
             AND (dispatched_at IS NULL OR dispatched_at < @P1) ORDER BY created_at, index_id"
        ),
        Stmt::JobLeaseExpiredScan => concat!(
            "SELECT TOP (@P2) ",
            job_cols!(tsql),
            " FROM dbo.cloud_sync_jobs WHERE status = 'running' AND is_deleted = 0 AND worker_lease_until < @P1 \
             AND (dispatched_at IS NULL OR dispatched_at < @P1) ORDER BY worker_lease_until, index_id"
        ),
        Stmt::FileGetByProvider => concat!(
            "SELECT ",
            file_cols!(tsql),
            " FROM dbo.cloud_files WHERE tenant_id = @P1 AND folder_id = @P2 \
             AND provider_file_id = CAST(@P3 AS VARCHAR(255)) AND is_deleted = 0"
        ),
        Stmt::FileSyncUpdate => {
            "UPDATE dbo.cloud_files SET file_name = @P5, file_path = @P6, file_size_bytes = @P7, content_hash = @P8, \
             mime_type = @P9, cloud_created_at = @P10, cloud_modified_at = @P11, sync_status = @P12, \
             file_metadata = @P13, seen_by_job_id = @P14, deleting_by_job_id = NULL, updated_at = @P4 \
             WHERE tenant_id = @P1 AND folder_id = @P2 AND provider_file_id = CAST(@P3 AS VARCHAR(255)) AND is_deleted = 0"
        }
        Stmt::FileSyncInsert => {
            "INSERT INTO dbo.cloud_files (id, tenant_id, folder_id, quodsi_file_type, provider_file_id, file_name, \
             file_path, file_size_bytes, content_hash, mime_type, cloud_created_at, cloud_modified_at, sync_status, \
             file_metadata, seen_by_job_id, created_at, updated_at) \
             VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P12, @P13, @P14, @P15, @P16, @P16)"
        }
        Stmt::FileMarkDeleteById => {
            "UPDATE dbo.cloud_files SET deleting_by_job_id = @P4, updated_at = @P5 \
             WHERE tenant_id = @P1 AND folder_id = @P2 AND provider_file_id = CAST(@P3 AS VARCHAR(255)) AND is_deleted = 0"
        }
        Stmt::FileMarkDeleteByPath => {
            "UPDATE dbo.cloud_files SET deleting_by_job_id = @P5, updated_at = @P6 \
             WHERE tenant_id = @P1 AND folder_id = @P2 AND is_deleted = 0 \
             AND (LOWER(file_path) = @P3 OR LOWER(file_path) LIKE @P4 ESCAPE '\\')"
        }
        Stmt::FileMarkUnseen => {
            "UPDATE dbo.cloud_files SET deleting_by_job_id = @P3, updated_at = @P4 \
             WHERE tenant_id = @P1 AND folder_id = @P2 AND is_deleted = 0 \
             AND (seen_by_job_id IS NULL OR seen_by_job_id <> @P3)"
        }
        Stmt::FileCountLive => {
            "SELECT COUNT_BIG(*) FROM dbo.cloud_files WHERE tenant_id = @P1 AND folder_id = @P2 AND is_deleted = 0"
        }
        Stmt::FileCountDeleting => {
            "SELECT COUNT_BIG(*) FROM dbo.cloud_files WHERE tenant_id = @P1 AND folder_id = @P2 AND is_deleted = 0 \
             AND deleting_by_job_id = @P3"
        }
        Stmt::FileDeactivateDeletingLinks => {
            "UPDATE dbo.cloud_shared_links SET is_active = 0, updated_at = @P4 WHERE tenant_id = @P1 AND is_active = 1 \
             AND file_id IN (SELECT id FROM dbo.cloud_files WHERE tenant_id = @P1 AND folder_id = @P2 \
             AND is_deleted = 0 AND deleting_by_job_id = @P3)"
        }
        Stmt::FileApplyDeletes => {
            "UPDATE dbo.cloud_files SET is_deleted = 1, deleting_by_job_id = NULL, updated_at = @P4 \
             WHERE tenant_id = @P1 AND folder_id = @P2 AND is_deleted = 0 AND deleting_by_job_id = @P3"
        }
        Stmt::FileClearDeleting => {
            "UPDATE dbo.cloud_files SET deleting_by_job_id = NULL, updated_at = @P4 \
             WHERE tenant_id = @P1 AND folder_id = @P2 AND is_deleted = 0 AND deleting_by_job_id = @P3"
        }
        Stmt::FileNeedsDownloadScan => concat!(
            "SELECT TOP (@P4) ",
            file_cols!(tsql),
            " FROM dbo.cloud_files WHERE tenant_id = @P1 AND folder_id = @P2 AND is_deleted = 0 \
             AND sync_status = 'needs_download' AND index_id > @P3 ORDER BY index_id"
        ),
        Stmt::FileRetryFailed => {
            "UPDATE dbo.cloud_files SET sync_status = 'needs_download', updated_at = @P3 \
             WHERE tenant_id = @P1 AND folder_id = @P2 AND is_deleted = 0 AND sync_status = 'error'"
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// VARCHAR columns that hold only the values their CHECK constraint lists (ASCII words),
    /// with that constraint: they may be returned as plain VARCHAR. See `columns.rs`.
    const ENUM_COLUMNS: &[(&str, &str)] = &[
        ("provider_type", "ck_cloud_connections_provider_type"),
        ("status", "ck_cloud_connections_status"),
        ("status", "ck_cloud_sync_jobs_status"),
        ("folder_type", "ck_cloud_folders_folder_type"),
        ("folder_permissions", "ck_cloud_folders_permissions"),
        ("job_type", "ck_cloud_sync_jobs_job_type"),
        ("quodsi_file_type", "ck_cloud_files_file_type"),
        ("sync_status", "ck_cloud_files_sync_status"),
        ("resource_type", "ck_cloud_shared_links_resource"),
        ("share_type", "ck_cloud_shared_links_share_type"),
        ("error_type", "ck_cloud_sync_errors_error_type"),
        ("cursor_kind", "ck_cloud_sync_cursors_kind"),
        ("subscription_kind", "ck_cloud_sync_subscriptions_kind"),
    ];

    /// Names a statement returns that carry a text column under another name: the link
    /// lists return `cloud_folders.provider_folder_id` / `cloud_files.provider_file_id` as it.
    const ALIASED_TEXT: &[&str] = &["provider_item_id"];

    /// Every T-SQL migration, comments removed.
    fn migrations() -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/mssql");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        assert!(files.len() >= 4, "migrations not found in {}", dir.display());
        files
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                text.lines().map(|l| l.split("--").next().unwrap_or_default().to_owned()).collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Columns the migrations declare `VARCHAR(n)` (not NVARCHAR): the word before the type.
    fn varchar_columns(schema: &str) -> BTreeSet<String> {
        let words: Vec<&str> = schema.split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| w[1].to_ascii_uppercase().starts_with("VARCHAR("))
            .map(|w| w[0].to_owned())
            .collect()
    }

    /// The VARCHAR columns that carry user or provider text, per the schema.
    fn text_columns() -> BTreeSet<String> {
        let enums: BTreeSet<&str> = ENUM_COLUMNS.iter().map(|(c, _)| *c).collect();
        let mut text: BTreeSet<String> =
            varchar_columns(&migrations()).into_iter().filter(|c| !enums.contains(c.as_str())).collect();
        text.extend(ALIASED_TEXT.iter().map(|c| (*c).to_owned()));
        text
    }

    /// Splits at the commas outside parentheses.
    fn top_level_items(list: &str) -> Vec<&str> {
        let (mut items, mut depth, mut start) = (Vec::new(), 0i32, 0);
        for (i, c) in list.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(list[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(list[start..].trim());
        items
    }

    /// Where `word` (surrounded by spaces) first occurs outside parentheses, from `from`.
    fn top_level_find(text: &str, from: usize, word: &str) -> Option<usize> {
        let mut depth = 0i32;
        for (i, c) in text[from..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 && text[from + i..].starts_with(word) => return Some(from + i),
                _ => {}
            }
        }
        None
    }

    /// The list of columns a statement returns to the client: its OUTPUT list, or the select
    /// list of a statement that starts with SELECT. `None` when it returns none.
    fn returned_list(text: &str) -> Option<&str> {
        if let Some(at) = text.find(" OUTPUT ") {
            let start = at + " OUTPUT ".len();
            let end = [" VALUES ", " SELECT ", " WHERE "]
                .iter()
                .filter_map(|w| top_level_find(text, start, w))
                .min()
                .expect("an OUTPUT list ends");
            return Some(&text[start..end]);
        }
        let mut rest = text.strip_prefix("SELECT ")?;
        if let Some(after_top) = rest.strip_prefix("TOP (") {
            rest = &after_top[after_top.find(") ").expect("TOP (…) closes") + 2..];
        }
        let end = top_level_find(rest, 0, " FROM ").expect("a select list ends at FROM");
        Some(&rest[..end])
    }

    fn identifiers(item: &str) -> impl Iterator<Item = &str> {
        item.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty())
    }

    /// `(col + N'') AS col` or `(q.col + N'') AS col`: the column, if the item has that form.
    fn safe_read(item: &str) -> Option<&str> {
        let (expr, alias) = item.split_once(" AS ")?;
        let inner = expr.strip_prefix('(')?.strip_suffix(" + N'')")?;
        let column = inner.rsplit('.').next()?;
        (column == alias).then_some(alias)
    }

    #[test]
    fn varchar_text_columns_are_returned_as_nvarchar() {
        // Arrange
        let text_columns = text_columns();
        let mut seen_safe = BTreeSet::new();
        let mut failures = Vec::new();

        // Act
        for stmt in Stmt::ALL {
            let text = sql(*stmt);
            let Some(list) = returned_list(text) else {
                assert!(!stmt.returns_rows(), "{stmt}: returns rows but no list was found");
                continue;
            };
            for item in top_level_items(list) {
                if let Some(column) = safe_read(item) {
                    seen_safe.insert(column.to_owned());
                } else if let Some(column) = identifiers(item).find(|w| text_columns.contains(*w)) {
                    failures.push(format!("{stmt}: `{item}` returns {column} as VARCHAR"));
                }
            }
        }

        // Assert
        assert!(failures.is_empty(), "read these as `(col + N'') AS col`:\n{}", failures.join("\n"));
        let never: Vec<_> = text_columns.difference(&seen_safe).collect();
        assert!(never.is_empty(), "text columns no statement returns (is the list right?): {never:?}");
    }

    #[test]
    fn the_text_columns_are_the_schemas_varchar_columns_without_a_value_list() {
        // Arrange
        let schema = migrations();
        let varchar = varchar_columns(&schema);

        // Act
        let text = text_columns();

        // Assert: the examples are among them, enum-like columns are not...
        for column in [
            "folder_name",
            "provider_folder_id",
            "provider_file_id",
            "content_hash",
            "mime_type",
            "provider_user_id",
            "provider_user_email",
            "provider_share_id",
            "error_code",
            "provider_item_id",
        ] {
            assert!(text.contains(column), "{column} is not treated as text");
        }
        // ...and every exempt column is a VARCHAR whose named CHECK constraint limits it.
        for (column, constraint) in ENUM_COLUMNS {
            assert!(varchar.contains(*column), "{column} is not a VARCHAR column");
            let check = schema
                .split("CONSTRAINT ")
                .find(|c| c.starts_with(&format!("{constraint} CHECK")))
                .unwrap_or_else(|| panic!("no CHECK constraint {constraint}"));
            assert!(identifiers(check).any(|w| w == *column), "{constraint} does not constrain {column}");
            assert!(!text.contains(*column), "{column} is listed as text");
        }
    }

    #[test]
    fn the_returned_list_parser_finds_select_and_output_lists() {
        assert_eq!(returned_list("SELECT TOP (@P3) a, (b + N'') AS b FROM t"), Some("a, (b + N'') AS b"));
        assert_eq!(
            returned_list("UPDATE t SET x = CASE WHEN @P1 = 1 THEN 2 END OUTPUT INSERTED.a, INSERTED.b WHERE id = 1"),
            Some("INSERTED.a, INSERTED.b")
        );
        assert_eq!(
            returned_list("INSERT INTO t (a) OUTPUT INSERTED.a SELECT @P1 WHERE NOT EXISTS (SELECT 1)"),
            Some("INSERTED.a")
        );
        assert_eq!(returned_list("UPDATE t SET a = 1 WHERE b = 2"), None);
        assert_eq!(safe_read("(INSERTED.folder_name + N'') AS folder_name"), Some("folder_name"));
        assert_eq!(safe_read("(t.folder_name + N'') AS other"), None);
        assert_eq!(safe_read("folder_name"), None);
    }

    #[test]
    fn sqlite_texts_read_columns_as_they_are() {
        for stmt in Stmt::ALL {
            assert!(!crate::db::sqlite::sql(*stmt).contains("N''"), "{stmt}: T-SQL read form in SQLite");
        }
    }
}
