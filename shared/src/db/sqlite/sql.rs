//! SQLite text of every statement. Parameter order: see `Stmt` (`?n` is the n-th).
//!
//! FolderInsert and JobInsert run after no-op lock UPDATEs of their parent rows
//! (FolderLockConnection; JobLockConnection, JobLockFolder), as in T-SQL where they make the
//! insert serialise against a concurrent delete under snapshot reads (see mssql/sql.rs).
//! SQLite serialises writers anyway; the same steps keep both engines' behaviour identical.

use crate::db::stmt::Stmt;

pub fn sql(stmt: Stmt) -> &'static str {
    match stmt {
        Stmt::TenantEnsure => {
            "INSERT INTO tenants (id, name, created_at) SELECT ?1, ?2, ?3 \
             WHERE NOT EXISTS (SELECT 1 FROM tenants WHERE id = ?1)"
        }
        Stmt::UserEnsure => {
            "INSERT INTO users (id, tenant_id, email, created_at) SELECT ?1, ?2, ?3, ?4 \
             WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = ?1)"
        }

        Stmt::ConnInsert => concat!(
            "INSERT INTO cloud_connections (id, tenant_id, user_id, provider_type, provider_user_id, \
             provider_user_email, encrypted_access_token, encrypted_refresh_token, token_expiry, scope, \
             status, display_name, connection_metadata, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14) RETURNING ",
            connection_cols!()
        ),
        Stmt::ConnKnown => "SELECT id FROM cloud_connections WHERE tenant_id = ?1 AND id = ?2",
        Stmt::ConnGet => concat!(
            "SELECT ",
            connection_cols!(),
            " FROM cloud_connections WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        ),
        Stmt::ConnList => concat!(
            "SELECT ",
            connection_cols!(),
            " FROM cloud_connections WHERE tenant_id = ?1 AND is_deleted = 0 AND index_id > ?2 \
             AND (?4 IS NULL OR provider_type = ?4) AND (?5 IS NULL OR status = ?5) \
             AND (?6 IS NULL OR user_id = ?6) ORDER BY index_id LIMIT ?3"
        ),
        Stmt::ConnUpdate => concat!(
            "UPDATE cloud_connections SET \
             display_name = CASE WHEN ?4 THEN ?5 ELSE display_name END, \
             connection_metadata = CASE WHEN ?6 THEN ?7 ELSE connection_metadata END, \
             status = CASE WHEN ?8 THEN ?9 ELSE status END, \
             last_used_at = CASE WHEN ?10 THEN ?11 ELSE last_used_at END, \
             last_sync_at = CASE WHEN ?12 THEN ?13 ELSE last_sync_at END, \
             updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 RETURNING ",
            connection_cols!()
        ),
        Stmt::ConnSoftDelete => concat!(
            "UPDATE cloud_connections SET is_deleted = 1, status = 'revoked', updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 RETURNING ",
            connection_cols!()
        ),
        Stmt::ConnSoftDeleteFolders => {
            "UPDATE cloud_folders SET is_deleted = 1, updated_at = ?3 \
             WHERE tenant_id = ?1 AND connection_id = ?2 AND is_deleted = 0"
        }
        Stmt::ConnCancelJobs => {
            "UPDATE cloud_sync_jobs SET status = 'cancelled', completed_at = ?3, updated_at = ?3 \
             WHERE tenant_id = ?1 AND is_deleted = 0 AND status IN ('pending', 'running') \
             AND folder_id IN (SELECT id FROM cloud_folders WHERE tenant_id = ?1 AND connection_id = ?2)"
        }
        Stmt::ConnDeactivateLinks => {
            "UPDATE cloud_shared_links SET is_active = 0, updated_at = ?3 \
             WHERE tenant_id = ?1 AND is_active = 1 AND is_deleted = 0 \
             AND (folder_id IN (SELECT id FROM cloud_folders WHERE tenant_id = ?1 AND connection_id = ?2) \
             OR file_id IN (SELECT f.id FROM cloud_files f JOIN cloud_folders d \
             ON d.tenant_id = f.tenant_id AND d.id = f.folder_id \
             WHERE d.tenant_id = ?1 AND d.connection_id = ?2))"
        }
        Stmt::ConnLinkList => concat!(
            "SELECT ",
            link_cols!(t),
            ", d.provider_folder_id FROM cloud_shared_links t JOIN cloud_folders d \
             ON d.tenant_id = t.tenant_id AND d.id = t.folder_id \
             WHERE t.tenant_id = ?1 AND d.tenant_id = ?1 AND d.connection_id = ?4 AND d.is_deleted = 0 \
             AND t.is_active = 1 AND t.is_deleted = 0 AND t.index_id > ?2 \
             UNION ALL SELECT ",
            link_cols!(t),
            ", f.provider_file_id FROM cloud_shared_links t JOIN cloud_files f \
             ON f.tenant_id = t.tenant_id AND f.id = t.file_id JOIN cloud_folders d \
             ON d.tenant_id = f.tenant_id AND d.id = f.folder_id \
             WHERE t.tenant_id = ?1 AND d.tenant_id = ?1 AND d.connection_id = ?4 AND d.is_deleted = 0 \
             AND t.is_active = 1 AND t.is_deleted = 0 AND t.index_id > ?2 \
             ORDER BY 2 LIMIT ?3" // 2: index_id
        ),
        Stmt::FolderLinkList => concat!(
            "SELECT ",
            link_cols!(t),
            ", d.provider_folder_id FROM cloud_shared_links t JOIN cloud_folders d \
             ON d.tenant_id = t.tenant_id AND d.id = t.folder_id \
             WHERE t.tenant_id = ?1 AND d.tenant_id = ?1 AND d.id = ?4 AND d.is_deleted = 0 \
             AND t.is_active = 1 AND t.is_deleted = 0 AND t.index_id > ?2 \
             UNION ALL SELECT ",
            link_cols!(t),
            ", f.provider_file_id FROM cloud_shared_links t JOIN cloud_files f \
             ON f.tenant_id = t.tenant_id AND f.id = t.file_id JOIN cloud_folders d \
             ON d.tenant_id = f.tenant_id AND d.id = f.folder_id \
             WHERE t.tenant_id = ?1 AND d.tenant_id = ?1 AND d.id = ?4 AND d.is_deleted = 0 \
             AND t.is_active = 1 AND t.is_deleted = 0 AND t.index_id > ?2 \
             ORDER BY 2 LIMIT ?3" // 2: index_id
        ),
        Stmt::ConnTokenScan => concat!(
            "SELECT ",
            connection_cols!(),
            " FROM cloud_connections WHERE status = 'active' AND token_expiry < ?1 AND is_deleted = 0 \
             ORDER BY token_expiry LIMIT ?2"
        ),
        Stmt::ConnScanAll => concat!(
            "SELECT ",
            connection_cols!(),
            " FROM cloud_connections WHERE index_id > ?1 ORDER BY index_id LIMIT ?2"
        ),
        Stmt::ConnSwapTokens => {
            "UPDATE cloud_connections SET encrypted_access_token = ?4, \
             encrypted_refresh_token = ?5, updated_at = ?6 \
             WHERE tenant_id = ?1 AND id = ?2 AND encrypted_access_token = ?3"
        }
        Stmt::ConnGetByAccount => concat!(
            "SELECT ",
            connection_cols!(),
            " FROM cloud_connections WHERE tenant_id = ?1 AND user_id = ?2 AND provider_type = ?3 \
             AND provider_user_id = ?4 AND is_deleted = 0"
        ),
        Stmt::ConnReconnect => concat!(
            "UPDATE cloud_connections SET encrypted_access_token = ?4, \
             encrypted_refresh_token = CASE WHEN ?5 THEN ?6 ELSE encrypted_refresh_token END, \
             token_expiry = ?7, scope = ?8, provider_user_email = ?9, \
             display_name = CASE WHEN ?10 THEN ?11 ELSE display_name END, connection_metadata = ?12, \
             status = 'active', token_refreshed_at = ?3, refresh_not_before = NULL, refresh_failures = 0, \
             refresh_error_id = NULL, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 RETURNING ",
            connection_cols!()
        ),
        Stmt::ConnRefreshDueScan => concat!(
            "SELECT ",
            connection_cols!(),
            ", ",
            refresh_cols!(),
            " FROM cloud_connections WHERE status = 'active' AND token_expiry < ?1 AND is_deleted = 0 \
             AND (refresh_not_before IS NULL OR refresh_not_before <= ?2) ORDER BY token_expiry LIMIT ?3"
        ),
        Stmt::ConnKeepAliveScan => concat!(
            "SELECT ",
            connection_cols!(),
            ", ",
            refresh_cols!(),
            " FROM cloud_connections WHERE status = 'active' AND is_deleted = 0 AND token_refreshed_at <= ?1 \
             AND (refresh_not_before IS NULL OR refresh_not_before <= ?2) ORDER BY token_refreshed_at LIMIT ?3"
        ),
        Stmt::ConnKeepAliveNewScan => concat!(
            "SELECT ",
            connection_cols!(),
            ", ",
            refresh_cols!(),
            " FROM cloud_connections WHERE status = 'active' AND is_deleted = 0 AND token_refreshed_at IS NULL \
             AND created_at <= ?1 AND (refresh_not_before IS NULL OR refresh_not_before <= ?2) \
             ORDER BY created_at LIMIT ?3"
        ),
        Stmt::ConnRefreshGet => concat!(
            "SELECT ",
            connection_cols!(),
            ", ",
            refresh_cols!(),
            " FROM cloud_connections WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        ),
        Stmt::ConnRefreshClaim => concat!(
            "UPDATE cloud_connections SET refresh_not_before = ?5, updated_at = ?4 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 AND status = 'active' \
             AND encrypted_access_token = ?3 AND (refresh_not_before IS NULL OR refresh_not_before <= ?4) RETURNING ",
            connection_cols!(),
            ", ",
            refresh_cols!()
        ),
        Stmt::ConnRefreshStore => {
            "UPDATE cloud_connections SET encrypted_access_token = ?4, \
             encrypted_refresh_token = CASE WHEN ?5 THEN ?6 ELSE encrypted_refresh_token END, \
             token_expiry = ?7, scope = CASE WHEN ?8 THEN ?9 ELSE scope END, token_refreshed_at = ?3, \
             refresh_not_before = NULL, refresh_failures = 0, refresh_error_id = NULL, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        }
        Stmt::ConnRefreshEnd => {
            "UPDATE cloud_connections SET status = ?4, refresh_not_before = NULL, refresh_failures = 0, \
             refresh_error_id = NULL, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 AND status = 'active'"
        }
        Stmt::ConnRefreshRelease => {
            "UPDATE cloud_connections SET refresh_not_before = ?4, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        }
        Stmt::ConnRefreshFailed => {
            "UPDATE cloud_connections SET refresh_not_before = ?4, refresh_failures = refresh_failures + 1, \
             refresh_error_id = ?5, updated_at = ?3 WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        }

        Stmt::FolderInsert => concat!(
            "INSERT INTO cloud_folders (id, tenant_id, connection_id, folder_name, provider_folder_id, \
             folder_path, folder_type, is_default_export_folder, is_default_import_folder, \
             auto_sync_enabled, sync_frequency_minutes, folder_permissions, created_at, updated_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13 \
             WHERE NOT EXISTS (SELECT 1 FROM cloud_connections c WHERE c.id = ?3 \
             AND (c.status <> 'active' OR c.is_deleted = 1)) RETURNING ",
            folder_cols!()
        ),
        Stmt::FolderLockConnection => {
            "UPDATE cloud_connections SET updated_at = updated_at \
             WHERE tenant_id = ?1 AND id = ?2 AND status = 'active' AND is_deleted = 0"
        }
        Stmt::FolderClearDefaultExport => {
            "UPDATE cloud_folders SET is_default_export_folder = 0, updated_at = ?4 \
             WHERE tenant_id = ?1 AND connection_id = ?2 AND is_default_export_folder = 1 \
             AND is_deleted = 0 AND id <> ?3"
        }
        Stmt::FolderClearDefaultImport => {
            "UPDATE cloud_folders SET is_default_import_folder = 0, updated_at = ?4 \
             WHERE tenant_id = ?1 AND connection_id = ?2 AND is_default_import_folder = 1 \
             AND is_deleted = 0 AND id <> ?3"
        }
        Stmt::FolderKnown => "SELECT id FROM cloud_folders WHERE tenant_id = ?1 AND id = ?2",
        Stmt::FolderGet => concat!(
            "SELECT ",
            folder_cols!(),
            " FROM cloud_folders WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        ),
        Stmt::FolderList => concat!(
            "SELECT ",
            folder_cols!(),
            " FROM cloud_folders WHERE tenant_id = ?1 AND is_deleted = 0 AND index_id > ?2 \
             AND (?4 IS NULL OR connection_id = ?4) AND (?5 IS NULL OR folder_type = ?5) \
             ORDER BY index_id LIMIT ?3"
        ),
        Stmt::FolderUpdate => concat!(
            "UPDATE cloud_folders SET \
             folder_name = CASE WHEN ?4 THEN ?5 ELSE folder_name END, \
             folder_path = CASE WHEN ?6 THEN ?7 ELSE folder_path END, \
             folder_type = CASE WHEN ?8 THEN ?9 ELSE folder_type END, \
             is_default_export_folder = CASE WHEN ?10 THEN ?11 ELSE is_default_export_folder END, \
             is_default_import_folder = CASE WHEN ?12 THEN ?13 ELSE is_default_import_folder END, \
             auto_sync_enabled = CASE WHEN ?14 THEN ?15 ELSE auto_sync_enabled END, \
             sync_frequency_minutes = CASE WHEN ?16 THEN ?17 ELSE sync_frequency_minutes END, \
             folder_permissions = CASE WHEN ?18 THEN ?19 ELSE folder_permissions END, \
             last_sync_at = CASE WHEN ?20 THEN ?21 ELSE last_sync_at END, \
             updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 RETURNING ",
            folder_cols!()
        ),
        Stmt::FolderSoftDelete => concat!(
            "UPDATE cloud_folders SET is_deleted = 1, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 RETURNING ",
            folder_cols!()
        ),
        Stmt::FolderCancelJobs => {
            "UPDATE cloud_sync_jobs SET status = 'cancelled', completed_at = ?3, updated_at = ?3 \
             WHERE tenant_id = ?1 AND folder_id = ?2 AND is_deleted = 0 AND status IN ('pending', 'running')"
        }
        Stmt::FolderDeactivateLinks => {
            "UPDATE cloud_shared_links SET is_active = 0, updated_at = ?3 \
             WHERE tenant_id = ?1 AND is_active = 1 AND is_deleted = 0 \
             AND (folder_id = ?2 OR file_id IN (SELECT id FROM cloud_files WHERE tenant_id = ?1 AND folder_id = ?2))"
        }
        Stmt::FolderNextFrequency => {
            "SELECT sync_frequency_minutes FROM cloud_folders WHERE auto_sync_enabled = 1 AND is_deleted = 0 \
             AND sync_frequency_minutes > ?1 ORDER BY sync_frequency_minutes LIMIT 1"
        }
        Stmt::FolderDueScan => concat!(
            "SELECT ",
            folder_cols!(t),
            " FROM cloud_folders t JOIN cloud_connections c ON c.tenant_id = t.tenant_id AND c.id = t.connection_id \
             WHERE t.auto_sync_enabled = 1 AND t.is_deleted = 0 AND t.sync_frequency_minutes = ?2 \
             AND t.last_sync_at <= ?1 AND c.status = 'active' AND c.is_deleted = 0 \
             AND NOT EXISTS (SELECT 1 FROM cloud_sync_jobs j WHERE j.folder_id = t.id \
             AND j.is_deleted = 0 AND j.status IN ('pending', 'running')) \
             AND NOT EXISTS (SELECT 1 FROM cloud_sync_jobs r WHERE r.tenant_id = t.tenant_id \
             AND r.folder_id = t.id AND r.is_deleted = 0 AND r.status IN ('failed', 'cancelled') \
             AND COALESCE(r.completed_at, r.updated_at) > ?1) \
             ORDER BY t.last_sync_at LIMIT ?3"
        ),
        Stmt::FolderNeverSyncedScan => concat!(
            "SELECT ",
            folder_cols!(t),
            " FROM cloud_folders t JOIN cloud_connections c ON c.tenant_id = t.tenant_id AND c.id = t.connection_id \
             WHERE t.auto_sync_enabled = 1 AND t.is_deleted = 0 AND t.sync_frequency_minutes = ?1 \
             AND t.last_sync_at IS NULL AND c.status = 'active' AND c.is_deleted = 0 \
             AND NOT EXISTS (SELECT 1 FROM cloud_sync_jobs j WHERE j.folder_id = t.id \
             AND j.is_deleted = 0 AND j.status IN ('pending', 'running')) \
             AND NOT EXISTS (SELECT 1 FROM cloud_sync_jobs r WHERE r.tenant_id = t.tenant_id \
             AND r.folder_id = t.id AND r.is_deleted = 0 AND r.status IN ('failed', 'cancelled') \
             AND COALESCE(r.completed_at, r.updated_at) > ?3) \
             ORDER BY t.index_id LIMIT ?2"
        ),

        Stmt::JobInsert => concat!(
            "INSERT INTO cloud_sync_jobs (id, tenant_id, folder_id, initiated_by_user_id, job_type, \
             job_metadata, created_at, updated_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7 \
             WHERE NOT EXISTS (SELECT 1 FROM cloud_folders d JOIN cloud_connections c \
             ON c.tenant_id = d.tenant_id AND c.id = d.connection_id WHERE d.id = ?3 \
             AND (d.is_deleted = 1 OR c.status <> 'active' OR c.is_deleted = 1)) RETURNING ",
            job_cols!()
        ),
        Stmt::JobLockConnection => {
            "UPDATE cloud_connections SET updated_at = updated_at \
             WHERE tenant_id = ?1 AND status = 'active' AND is_deleted = 0 \
             AND id = (SELECT d.connection_id FROM cloud_folders d WHERE d.tenant_id = ?1 AND d.id = ?2)"
        }
        Stmt::JobLockFolder => {
            "UPDATE cloud_folders SET updated_at = updated_at WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        }
        Stmt::JobGet => {
            concat!("SELECT ", job_cols!(), " FROM cloud_sync_jobs WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0")
        }
        Stmt::JobList => concat!(
            "SELECT ",
            job_cols!(),
            " FROM cloud_sync_jobs WHERE tenant_id = ?1 AND is_deleted = 0 AND index_id > ?2 \
             AND (?4 IS NULL OR folder_id = ?4) AND (?5 IS NULL OR status = ?5) \
             ORDER BY index_id LIMIT ?3"
        ),
        Stmt::JobUpdate => concat!(
            "UPDATE cloud_sync_jobs SET status = ?5, \
             started_at = CASE WHEN ?5 = 'running' AND started_at IS NULL THEN ?4 ELSE started_at END, \
             completed_at = CASE WHEN ?5 IN ('completed', 'failed', 'cancelled') THEN ?4 ELSE completed_at END, \
             progress_percentage = CASE WHEN ?6 THEN ?7 ELSE progress_percentage END, \
             files_processed = CASE WHEN ?8 THEN ?9 ELSE files_processed END, \
             files_total = CASE WHEN ?10 THEN ?11 ELSE files_total END, \
             bytes_transferred = CASE WHEN ?12 THEN ?13 ELSE bytes_transferred END, \
             error_message = CASE WHEN ?14 THEN ?15 ELSE error_message END, \
             job_metadata = CASE WHEN ?16 THEN ?17 ELSE job_metadata END, \
             updated_at = ?4 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 AND status = ?3 RETURNING ",
            job_cols!()
        ),
        Stmt::JobTouchFolder => {
            "UPDATE cloud_folders SET last_sync_at = ?3, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2"
        }
        Stmt::JobTouchConnection => {
            "UPDATE cloud_connections SET last_sync_at = ?3, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = (SELECT connection_id FROM cloud_folders WHERE tenant_id = ?1 AND id = ?2)"
        }
        Stmt::JobSoftDelete => concat!(
            "UPDATE cloud_sync_jobs SET is_deleted = 1, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 RETURNING ",
            job_cols!()
        ),
        Stmt::JobPendingScan => concat!(
            "SELECT ",
            job_cols!(),
            " FROM cloud_sync_jobs WHERE status = 'pending' AND is_deleted = 0 ORDER BY created_at LIMIT ?1"
        ),
        Stmt::JobStaleScan => concat!(
            "SELECT ",
            job_cols!(),
            " FROM cloud_sync_jobs WHERE status = 'running' AND is_deleted = 0 AND updated_at < ?1 \
             ORDER BY updated_at LIMIT ?2"
        ),
        Stmt::JobFailStale => concat!(
            "UPDATE cloud_sync_jobs SET status = 'failed', completed_at = ?4, error_message = ?5, updated_at = ?4 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 AND status = 'running' AND updated_at < ?3 \
             RETURNING ",
            job_cols!()
        ),

        Stmt::FileInsert => concat!(
            "INSERT INTO cloud_files (id, tenant_id, folder_id, quodsi_file_type, quodsi_entity_id, \
             provider_file_id, file_name, file_path, file_size_bytes, content_hash, mime_type, \
             cloud_created_at, cloud_modified_at, last_synced_at, sync_status, upload_url, download_url, \
             file_metadata, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?19) \
             RETURNING ",
            file_cols!()
        ),
        Stmt::FileKnown => "SELECT id FROM cloud_files WHERE tenant_id = ?1 AND id = ?2",
        Stmt::FileGet => {
            concat!("SELECT ", file_cols!(), " FROM cloud_files WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0")
        }
        Stmt::FileList => concat!(
            "SELECT ",
            file_cols!(),
            " FROM cloud_files WHERE tenant_id = ?1 AND is_deleted = 0 AND index_id > ?2 \
             AND (?4 IS NULL OR folder_id = ?4) AND (?5 IS NULL OR quodsi_file_type = ?5) \
             AND (?6 IS NULL OR sync_status = ?6) AND (?7 IS NULL OR quodsi_entity_id = ?7) \
             ORDER BY index_id LIMIT ?3"
        ),
        Stmt::FileUpdate => concat!(
            "UPDATE cloud_files SET \
             file_name = CASE WHEN ?4 THEN ?5 ELSE file_name END, \
             file_path = CASE WHEN ?6 THEN ?7 ELSE file_path END, \
             file_size_bytes = CASE WHEN ?8 THEN ?9 ELSE file_size_bytes END, \
             content_hash = CASE WHEN ?10 THEN ?11 ELSE content_hash END, \
             mime_type = CASE WHEN ?12 THEN ?13 ELSE mime_type END, \
             cloud_modified_at = CASE WHEN ?14 THEN ?15 ELSE cloud_modified_at END, \
             last_synced_at = CASE WHEN ?16 THEN ?17 ELSE last_synced_at END, \
             sync_status = CASE WHEN ?18 THEN ?19 ELSE sync_status END, \
             upload_url = CASE WHEN ?20 THEN ?21 ELSE upload_url END, \
             download_url = CASE WHEN ?22 THEN ?23 ELSE download_url END, \
             file_metadata = CASE WHEN ?24 THEN ?25 ELSE file_metadata END, \
             updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 RETURNING ",
            file_cols!()
        ),
        Stmt::FileSoftDelete => concat!(
            "UPDATE cloud_files SET is_deleted = 1, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 RETURNING ",
            file_cols!()
        ),
        Stmt::FileDeactivateLinks => {
            "UPDATE cloud_shared_links SET is_active = 0, updated_at = ?3 \
             WHERE tenant_id = ?1 AND file_id = ?2 AND is_active = 1 AND is_deleted = 0"
        }

        Stmt::LinkInsert => concat!(
            "INSERT INTO cloud_shared_links (id, tenant_id, created_by_user_id, resource_type, file_id, \
             folder_id, provider_share_id, share_url, share_type, password_protected, expires_at, \
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12) \
             RETURNING ",
            link_cols!()
        ),
        Stmt::LinkGet => concat!(
            "SELECT ",
            link_cols!(),
            " FROM cloud_shared_links WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        ),
        Stmt::LinkGetPublic => {
            concat!("SELECT ", link_cols!(), " FROM cloud_shared_links WHERE id = ?1 AND is_deleted = 0")
        }
        Stmt::LinkList => concat!(
            "SELECT ",
            link_cols!(),
            " FROM cloud_shared_links WHERE tenant_id = ?1 AND is_deleted = 0 AND index_id > ?2 \
             AND (?4 IS NULL OR file_id = ?4) AND (?5 IS NULL OR folder_id = ?5) \
             AND (?6 IS NULL OR is_active = ?6) ORDER BY index_id LIMIT ?3"
        ),
        Stmt::LinkRecordAccess => concat!(
            "UPDATE cloud_shared_links SET access_count = access_count + 1, last_accessed_at = ?2, \
             updated_at = ?2 WHERE id = ?1 AND is_active = 1 AND is_deleted = 0 \
             AND (expires_at IS NULL OR expires_at > ?2) RETURNING ",
            link_cols!()
        ),
        Stmt::LinkDeactivate => concat!(
            "UPDATE cloud_shared_links SET is_active = 0, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 RETURNING ",
            link_cols!()
        ),
        Stmt::LinkSoftDelete => concat!(
            "UPDATE cloud_shared_links SET is_deleted = 1, is_active = 0, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 RETURNING ",
            link_cols!()
        ),
        Stmt::LinkExpiredScan => concat!(
            "SELECT ",
            link_cols!(),
            " FROM cloud_shared_links WHERE expires_at IS NOT NULL AND is_active = 1 AND expires_at <= ?1 \
             AND is_deleted = 0 AND (expiry_claimed_until IS NULL OR expiry_claimed_until <= ?1) \
             ORDER BY expires_at LIMIT ?2"
        ),
        Stmt::LinkExpiryClaim => {
            "UPDATE cloud_shared_links SET expiry_claimed_until = ?3, updated_at = ?2 \
             WHERE id = ?1 AND is_active = 1 AND is_deleted = 0 AND expires_at <= ?2 \
             AND (expiry_claimed_until IS NULL OR expiry_claimed_until <= ?2)"
        }
        Stmt::LinkExpire => {
            "UPDATE cloud_shared_links SET is_active = 0, updated_at = ?2 \
             WHERE id = ?1 AND is_active = 1 AND expires_at <= ?2"
        }

        Stmt::ErrorInsert => concat!(
            "INSERT INTO cloud_sync_errors (id, tenant_id, sync_job_id, connection_id, file_id, error_type, \
             error_code, error_message, stack_trace, error_metadata, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11) RETURNING ",
            error_cols!()
        ),
        Stmt::ErrorGet => concat!(
            "SELECT ",
            error_cols!(),
            " FROM cloud_sync_errors WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        ),
        Stmt::ErrorList => concat!(
            "SELECT ",
            error_cols!(),
            " FROM cloud_sync_errors WHERE tenant_id = ?1 AND is_deleted = 0 AND index_id > ?2 \
             AND (?4 IS NULL OR connection_id = ?4) AND (?5 IS NULL OR error_type = ?5) \
             AND (?6 = 0 OR resolved_at IS NULL) ORDER BY index_id LIMIT ?3"
        ),
        Stmt::ErrorResolve => concat!(
            "UPDATE cloud_sync_errors SET resolved_at = ?4, resolution_notes = ?3, updated_at = ?4 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 AND resolved_at IS NULL RETURNING ",
            error_cols!()
        ),
        Stmt::ErrorSoftDelete => concat!(
            "UPDATE cloud_sync_errors SET is_deleted = 1, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 RETURNING ",
            error_cols!()
        ),
        Stmt::ErrorBump => {
            "UPDATE cloud_sync_errors SET retry_count = retry_count + 1, error_type = ?4, error_code = ?5, \
             error_message = ?6, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 AND resolved_at IS NULL"
        }

        Stmt::CursorGet => concat!(
            "SELECT ",
            cursor_cols!(),
            " FROM cloud_sync_cursors WHERE tenant_id = ?1 AND connection_id = ?2 \
             AND (folder_id = ?3 OR (folder_id IS NULL AND ?3 IS NULL)) AND cursor_kind = ?4 AND is_deleted = 0"
        ),
        Stmt::CursorUpdate => {
            "UPDATE cloud_sync_cursors SET cursor_value = ?6, folder_map = ?7, last_polled_at = ?8, updated_at = ?5 \
             WHERE tenant_id = ?1 AND connection_id = ?2 AND (folder_id = ?3 OR (folder_id IS NULL AND ?3 IS NULL)) \
             AND cursor_kind = ?4 AND is_deleted = 0"
        }
        Stmt::SubscriptionInsert => concat!(
            "INSERT INTO cloud_sync_subscriptions (id, tenant_id, connection_id, folder_id, subscription_kind, \
             provider_subscription_id, provider_resource, encrypted_secret, expires_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) RETURNING ",
            subscription_cols!()
        ),
        Stmt::SubscriptionByProviderId => concat!(
            "SELECT ",
            subscription_cols!(),
            " FROM cloud_sync_subscriptions WHERE subscription_kind = ?1 AND provider_subscription_id = ?2 \
             AND is_deleted = 0"
        ),
        Stmt::SubscriptionsOfConnection => concat!(
            "SELECT ",
            subscription_cols!(),
            " FROM cloud_sync_subscriptions WHERE tenant_id = ?1 AND connection_id = ?2 AND is_deleted = 0 \
             ORDER BY index_id"
        ),
        Stmt::SubscriptionNotified => {
            "UPDATE cloud_sync_subscriptions SET last_notified_at = ?3, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        }
        Stmt::SubscriptionMessage => {
            "UPDATE cloud_sync_subscriptions SET last_message_number = ?4, last_notified_at = ?3, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 \
             AND (last_message_number IS NULL OR last_message_number < ?4)"
        }
        Stmt::SubscriptionSoftDelete => {
            "UPDATE cloud_sync_subscriptions SET is_deleted = 1, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        }
        Stmt::SubscriptionDueScan => concat!(
            "SELECT ",
            subscription_cols!(),
            " FROM cloud_sync_subscriptions WHERE is_deleted = 0 AND expires_at < ?1 ORDER BY expires_at LIMIT ?2"
        ),
        Stmt::SubscriptionRenew => {
            "UPDATE cloud_sync_subscriptions SET provider_subscription_id = ?4, provider_resource = ?5, \
             encrypted_secret = ?6, expires_at = ?7, last_message_number = NULL, updated_at = ?3 WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        }
        Stmt::SubscriptionSecretScan => concat!(
            "SELECT ",
            subscription_cols!(),
            " FROM cloud_sync_subscriptions WHERE index_id > ?1 AND is_deleted = 0 AND encrypted_secret IS NOT NULL \
             ORDER BY index_id LIMIT ?2"
        ),
        Stmt::SubscriptionSwapSecret => {
            "UPDATE cloud_sync_subscriptions SET encrypted_secret = ?5, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 AND encrypted_secret = ?4"
        }
        Stmt::ConnectionsOfAccount => concat!(
            "SELECT ",
            connection_cols!(),
            " FROM cloud_connections WHERE provider_type = ?1 AND provider_user_id = ?2 AND is_deleted = 0 \
             AND status = 'active' ORDER BY index_id LIMIT ?3"
        ),
        Stmt::CursorInsert => {
            "INSERT INTO cloud_sync_cursors (id, tenant_id, connection_id, folder_id, cursor_kind, cursor_value, \
             folder_map, last_polled_at, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)"
        }
        Stmt::JobClaim => concat!(
            "UPDATE cloud_sync_jobs SET status = 'running', started_at = COALESCE(started_at, ?3), \
             worker_lease_id = ?4, worker_lease_until = ?5, updated_at = ?3 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 \
             AND (status = 'pending' OR (status = 'running' AND (worker_lease_until IS NULL OR worker_lease_until <= ?3))) \
             RETURNING ",
            job_cols!()
        ),
        Stmt::JobHeartbeat => {
            "UPDATE cloud_sync_jobs SET worker_lease_until = ?5, progress_percentage = ?6, files_processed = ?7, \
             files_total = ?8, bytes_transferred = ?9, job_metadata = ?10, updated_at = ?4 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 AND status = 'running' AND worker_lease_id = ?3"
        }
        Stmt::JobRelease => {
            "UPDATE cloud_sync_jobs SET worker_lease_until = ?4, updated_at = ?4 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 AND status = 'running' AND worker_lease_id = ?3"
        }
        Stmt::JobEnd => concat!(
            "UPDATE cloud_sync_jobs SET status = ?5, completed_at = ?4, error_message = ?6, worker_lease_id = NULL, \
             worker_lease_until = NULL, updated_at = ?4 \
             WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0 AND status = 'running' AND worker_lease_id = ?3 \
             RETURNING ",
            job_cols!()
        ),
        Stmt::JobDispatched => {
            "UPDATE cloud_sync_jobs SET dispatched_at = ?3 WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0"
        }
        Stmt::JobUndispatchedScan => concat!(
            "SELECT ",
            job_cols!(),
            " FROM cloud_sync_jobs WHERE status = 'pending' AND is_deleted = 0 AND created_at < ?1 \
             AND (dispatched_at IS NULL OR dispatched_at < ?1) ORDER BY created_at LIMIT ?2"
        ),
        Stmt::JobLeaseExpiredScan => concat!(
            "SELECT ",
            job_cols!(),
            " FROM cloud_sync_jobs WHERE status = 'running' AND is_deleted = 0 AND worker_lease_until < ?1 \
             AND (dispatched_at IS NULL OR dispatched_at < ?1) ORDER BY worker_lease_until LIMIT ?2"
        ),
        Stmt::FileGetByProvider => concat!(
            "SELECT ",
            file_cols!(),
            " FROM cloud_files WHERE tenant_id = ?1 AND folder_id = ?2 AND provider_file_id = ?3 AND is_deleted = 0"
        ),
        Stmt::FileSyncUpdate => {
            "UPDATE cloud_files SET file_name = ?5, file_path = ?6, file_size_bytes = ?7, content_hash = ?8, \
             mime_type = ?9, cloud_created_at = ?10, cloud_modified_at = ?11, sync_status = ?12, file_metadata = ?13, \
             seen_by_job_id = ?14, deleting_by_job_id = NULL, updated_at = ?4 \
             WHERE tenant_id = ?1 AND folder_id = ?2 AND provider_file_id = ?3 AND is_deleted = 0"
        }
        Stmt::FileSyncInsert => {
            "INSERT INTO cloud_files (id, tenant_id, folder_id, quodsi_file_type, provider_file_id, file_name, \
             file_path, file_size_bytes, content_hash, mime_type, cloud_created_at, cloud_modified_at, sync_status, \
             file_metadata, seen_by_job_id, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)"
        }
        Stmt::FileMarkDeleteById => {
            "UPDATE cloud_files SET deleting_by_job_id = ?4, updated_at = ?5 \
             WHERE tenant_id = ?1 AND folder_id = ?2 AND provider_file_id = ?3 AND is_deleted = 0"
        }
        Stmt::FileMarkDeleteByPath => {
            "UPDATE cloud_files SET deleting_by_job_id = ?5, updated_at = ?6 \
             WHERE tenant_id = ?1 AND folder_id = ?2 AND is_deleted = 0 \
             AND (lower(file_path) = ?3 OR lower(file_path) LIKE ?4 ESCAPE '\\')"
        }
        Stmt::FileMarkUnseen => {
            "UPDATE cloud_files SET deleting_by_job_id = ?3, updated_at = ?4 \
             WHERE tenant_id = ?1 AND folder_id = ?2 AND is_deleted = 0 AND (seen_by_job_id IS NULL OR seen_by_job_id <> ?3)"
        }
        Stmt::FileCountLive => {
            "SELECT COUNT(*) FROM cloud_files WHERE tenant_id = ?1 AND folder_id = ?2 AND is_deleted = 0"
        }
        Stmt::FileCountDeleting => {
            "SELECT COUNT(*) FROM cloud_files WHERE tenant_id = ?1 AND folder_id = ?2 AND is_deleted = 0 \
             AND deleting_by_job_id = ?3"
        }
        Stmt::FileDeactivateDeletingLinks => {
            "UPDATE cloud_shared_links SET is_active = 0, updated_at = ?4 WHERE tenant_id = ?1 AND is_active = 1 \
             AND file_id IN (SELECT id FROM cloud_files WHERE tenant_id = ?1 AND folder_id = ?2 AND is_deleted = 0 \
             AND deleting_by_job_id = ?3)"
        }
        Stmt::FileApplyDeletes => {
            "UPDATE cloud_files SET is_deleted = 1, deleting_by_job_id = NULL, updated_at = ?4 \
             WHERE tenant_id = ?1 AND folder_id = ?2 AND is_deleted = 0 AND deleting_by_job_id = ?3"
        }
        Stmt::FileClearDeleting => {
            "UPDATE cloud_files SET deleting_by_job_id = NULL, updated_at = ?4 \
             WHERE tenant_id = ?1 AND folder_id = ?2 AND is_deleted = 0 AND deleting_by_job_id = ?3"
        }
        Stmt::FileNeedsDownloadScan => concat!(
            "SELECT ",
            file_cols!(),
            " FROM cloud_files WHERE tenant_id = ?1 AND folder_id = ?2 AND is_deleted = 0 \
             AND sync_status = 'needs_download' AND index_id > ?3 ORDER BY index_id LIMIT ?4"
        ),
        Stmt::FileRetryFailed => {
            "UPDATE cloud_files SET sync_status = 'needs_download', updated_at = ?3 \
             WHERE tenant_id = ?1 AND folder_id = ?2 AND is_deleted = 0 AND sync_status = 'error'"
        }
    }
}
