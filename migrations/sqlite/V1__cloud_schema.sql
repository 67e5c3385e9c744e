-- Seed 002 (Quodsi cloud connection management) for SQLite, the embedded engine of local
-- runs and CI. migrations/README.md maps every seed name to what carries it here.
--
-- Conventions of this file:
--   * index_id INTEGER PRIMARY KEY AUTOINCREMENT is the rowid, SQLite's clustered key
--     (the seed's ix_*_index_id), never reused, so keyset pages stay stable.
--   * UUIDs are lowercase hyphenated TEXT; timestamps are UTC TEXT 'YYYY-MM-DD HH:MM:SS.ffffff'
--     (fixed width, so text order is time order); BIT is INTEGER 0/1.
--   * VARCHAR(n) limits are checked in UTF-8 bytes, NVARCHAR(n) in characters.
--   * Foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at COMMIT, where the store
--     asks PRAGMA foreign_key_check which constraint failed, so errors name it.
--   * The seed's ck_*_tenant_consistency CHECKs (subqueries) are composite foreign keys
--     (tenant_id, parent_id) -> parent(tenant_id, id) under the seed's name.

CREATE TABLE IF NOT EXISTS tenants (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now'))
);

CREATE TABLE IF NOT EXISTS users (
    id TEXT NOT NULL PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    email TEXT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    CONSTRAINT fk_users_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE UNIQUE INDEX IF NOT EXISTS ix_users_tenant_id_lookup ON users (tenant_id, id);

CREATE TABLE cloud_connections (
    id TEXT NOT NULL,
    index_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    is_deleted INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1)),
    user_id TEXT NOT NULL,
    provider_type TEXT NOT NULL CHECK (length(CAST(provider_type AS BLOB)) <= 50),
    provider_user_id TEXT NOT NULL CHECK (length(CAST(provider_user_id AS BLOB)) <= 255),
    provider_user_email TEXT NULL CHECK (length(CAST(provider_user_email AS BLOB)) <= 255),
    encrypted_access_token BLOB NOT NULL,
    encrypted_refresh_token BLOB NULL,
    token_expiry TEXT NOT NULL,
    scope TEXT NOT NULL,
    last_used_at TEXT NULL,
    last_sync_at TEXT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (length(CAST(status AS BLOB)) <= 20),
    display_name TEXT NULL CHECK (length(display_name) <= 255),
    connection_metadata TEXT NULL,
    CONSTRAINT fk_cloud_connections_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_connections_user FOREIGN KEY (user_id) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_connections_tenant_consistency FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_connections_provider_type CHECK (provider_type IN ('onedrive', 'gdrive', 'dropbox', 'box', 'sharepoint')),
    CONSTRAINT ck_cloud_connections_status CHECK (status IN ('active', 'revoked', 'expired', 'error'))
);

CREATE UNIQUE INDEX ix_cloud_connections_id ON cloud_connections (id);
CREATE INDEX ix_cloud_connections_tenant_active ON cloud_connections (tenant_id, index_id) WHERE is_deleted = 0;
CREATE UNIQUE INDEX ix_cloud_connections_tenant_id_lookup ON cloud_connections (tenant_id, id);
CREATE UNIQUE INDEX ix_cloud_connections_tenant_user_provider ON cloud_connections (tenant_id, user_id, provider_type, provider_user_id) WHERE is_deleted = 0;
CREATE INDEX ix_cloud_connections_status ON cloud_connections (tenant_id, status) WHERE is_deleted = 0;
CREATE INDEX ix_cloud_connections_token_expiry ON cloud_connections (token_expiry) WHERE status = 'active';

CREATE TABLE cloud_folders (
    id TEXT NOT NULL,
    index_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    is_deleted INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1)),
    connection_id TEXT NOT NULL,
    folder_name TEXT NOT NULL CHECK (length(CAST(folder_name AS BLOB)) <= 255),
    provider_folder_id TEXT NOT NULL CHECK (length(CAST(provider_folder_id AS BLOB)) <= 255),
    folder_path TEXT NULL,
    folder_type TEXT NOT NULL CHECK (length(CAST(folder_type AS BLOB)) <= 50),
    is_default_export_folder INTEGER NOT NULL DEFAULT 0 CHECK (is_default_export_folder IN (0, 1)),
    is_default_import_folder INTEGER NOT NULL DEFAULT 0 CHECK (is_default_import_folder IN (0, 1)),
    auto_sync_enabled INTEGER NOT NULL DEFAULT 0 CHECK (auto_sync_enabled IN (0, 1)),
    last_sync_at TEXT NULL,
    sync_frequency_minutes INTEGER NULL,
    folder_permissions TEXT NOT NULL DEFAULT 'read_write' CHECK (length(CAST(folder_permissions AS BLOB)) <= 50),
    CONSTRAINT fk_cloud_folders_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_folders_connection FOREIGN KEY (connection_id) REFERENCES cloud_connections (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_folders_tenant_consistency FOREIGN KEY (tenant_id, connection_id) REFERENCES cloud_connections (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_folders_folder_type CHECK (folder_type IN ('export', 'import', 'archive', 'models', 'results', 'general')),
    CONSTRAINT ck_cloud_folders_permissions CHECK (folder_permissions IN ('read_only', 'read_write', 'write_only')),
    CONSTRAINT ck_cloud_folders_sync_frequency CHECK (
        (sync_frequency_minutes IS NULL AND auto_sync_enabled = 0)
        OR (sync_frequency_minutes IS NOT NULL AND sync_frequency_minutes BETWEEN 5 AND 10080))
);

CREATE UNIQUE INDEX ix_cloud_folders_id ON cloud_folders (id);
CREATE INDEX ix_cloud_folders_tenant_active ON cloud_folders (tenant_id, index_id) WHERE is_deleted = 0;
CREATE UNIQUE INDEX ix_cloud_folders_tenant_id_lookup ON cloud_folders (tenant_id, id);
CREATE INDEX ix_cloud_folders_tenant_connection ON cloud_folders (tenant_id, connection_id) WHERE is_deleted = 0;
CREATE UNIQUE INDEX ix_cloud_folders_provider_folder ON cloud_folders (connection_id, provider_folder_id) WHERE is_deleted = 0;
-- The two default-folder indexes cover the same columns; their key order differs only so
-- that SQLite's "UNIQUE constraint failed: <columns>" message tells them apart.
CREATE UNIQUE INDEX ix_cloud_folders_default_export ON cloud_folders (tenant_id, connection_id) WHERE is_default_export_folder = 1 AND is_deleted = 0;
CREATE UNIQUE INDEX ix_cloud_folders_default_import ON cloud_folders (connection_id, tenant_id) WHERE is_default_import_folder = 1 AND is_deleted = 0;
CREATE INDEX ix_cloud_folders_auto_sync ON cloud_folders (auto_sync_enabled, sync_frequency_minutes) WHERE auto_sync_enabled = 1 AND is_deleted = 0;

CREATE TABLE cloud_sync_jobs (
    id TEXT NOT NULL,
    index_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    is_deleted INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1)),
    folder_id TEXT NOT NULL,
    initiated_by_user_id TEXT NULL,
    job_type TEXT NOT NULL CHECK (length(CAST(job_type AS BLOB)) <= 50),
    status TEXT NOT NULL DEFAULT 'pending' CHECK (length(CAST(status AS BLOB)) <= 50),
    started_at TEXT NULL,
    completed_at TEXT NULL,
    progress_percentage REAL NOT NULL DEFAULT 0,
    files_processed INTEGER NOT NULL DEFAULT 0,
    files_total INTEGER NULL,
    bytes_transferred INTEGER NOT NULL DEFAULT 0,
    error_message TEXT NULL,
    job_metadata TEXT NULL,
    CONSTRAINT fk_cloud_sync_jobs_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_jobs_folder FOREIGN KEY (folder_id) REFERENCES cloud_folders (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_jobs_initiated_by FOREIGN KEY (initiated_by_user_id) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_sync_jobs_tenant_consistency FOREIGN KEY (tenant_id, folder_id) REFERENCES cloud_folders (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_jobs_initiated_by_tenant FOREIGN KEY (tenant_id, initiated_by_user_id) REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_sync_jobs_job_type CHECK (job_type IN ('upload', 'download', 'bidirectional', 'export', 'import')),
    CONSTRAINT ck_cloud_sync_jobs_status CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    CONSTRAINT ck_cloud_sync_jobs_progress_range CHECK (progress_percentage BETWEEN 0 AND 100),
    CONSTRAINT ck_cloud_sync_jobs_file_counts CHECK (
        files_processed >= 0
        AND (files_total IS NULL OR (files_total >= 0 AND files_processed <= files_total))),
    CONSTRAINT ck_cloud_sync_jobs_bytes CHECK (bytes_transferred >= 0)
);

CREATE UNIQUE INDEX ix_cloud_sync_jobs_id ON cloud_sync_jobs (id);
CREATE INDEX ix_cloud_sync_jobs_tenant_active ON cloud_sync_jobs (tenant_id, index_id) WHERE is_deleted = 0;
CREATE UNIQUE INDEX ix_cloud_sync_jobs_tenant_id_lookup ON cloud_sync_jobs (tenant_id, id);
CREATE INDEX ix_cloud_sync_jobs_folder_status ON cloud_sync_jobs (tenant_id, folder_id, status, created_at DESC);
CREATE INDEX ix_cloud_sync_jobs_status_created ON cloud_sync_jobs (status, created_at DESC);
CREATE INDEX ix_cloud_sync_jobs_running ON cloud_sync_jobs (status) WHERE status IN ('pending', 'running');
CREATE UNIQUE INDEX ix_cloud_sync_jobs_folder_live ON cloud_sync_jobs (folder_id) WHERE is_deleted = 0 AND status IN ('pending', 'running');

CREATE TABLE cloud_files (
    id TEXT NOT NULL,
    index_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    is_deleted INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1)),
    folder_id TEXT NOT NULL,
    quodsi_file_type TEXT NOT NULL CHECK (length(CAST(quodsi_file_type AS BLOB)) <= 50),
    quodsi_entity_id TEXT NULL,
    provider_file_id TEXT NOT NULL CHECK (length(CAST(provider_file_id AS BLOB)) <= 255),
    file_name TEXT NOT NULL CHECK (length(file_name) <= 255),
    file_path TEXT NULL,
    file_size_bytes INTEGER NOT NULL,
    content_hash TEXT NULL CHECK (length(CAST(content_hash AS BLOB)) <= 64),
    mime_type TEXT NULL CHECK (length(CAST(mime_type AS BLOB)) <= 255),
    cloud_created_at TEXT NULL,
    cloud_modified_at TEXT NULL,
    last_synced_at TEXT NULL,
    sync_status TEXT NOT NULL DEFAULT 'synced' CHECK (length(CAST(sync_status AS BLOB)) <= 50),
    upload_url TEXT NULL,
    download_url TEXT NULL,
    file_metadata TEXT NULL,
    CONSTRAINT fk_cloud_files_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_files_folder FOREIGN KEY (folder_id) REFERENCES cloud_folders (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_files_tenant_consistency FOREIGN KEY (tenant_id, folder_id) REFERENCES cloud_folders (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_files_file_type CHECK (quodsi_file_type IN ('model', 'result', 'animation', 'export', 'import', 'document', 'image')),
    CONSTRAINT ck_cloud_files_sync_status CHECK (sync_status IN ('synced', 'needs_upload', 'needs_download', 'conflict', 'error')),
    CONSTRAINT ck_cloud_files_size CHECK (file_size_bytes >= 0)
);

CREATE UNIQUE INDEX ix_cloud_files_id ON cloud_files (id);
CREATE INDEX ix_cloud_files_tenant_active ON cloud_files (tenant_id, index_id) WHERE is_deleted = 0;
CREATE UNIQUE INDEX ix_cloud_files_tenant_id_lookup ON cloud_files (tenant_id, id);
CREATE INDEX ix_cloud_files_folder_type ON cloud_files (tenant_id, folder_id, quodsi_file_type);
CREATE UNIQUE INDEX ix_cloud_files_provider_file ON cloud_files (folder_id, provider_file_id) WHERE is_deleted = 0;
CREATE INDEX ix_cloud_files_entity ON cloud_files (tenant_id, quodsi_entity_id, quodsi_file_type) WHERE quodsi_entity_id IS NOT NULL;
CREATE INDEX ix_cloud_files_sync_status ON cloud_files (sync_status, last_synced_at) WHERE sync_status <> 'synced';
CREATE INDEX ix_cloud_files_content_hash ON cloud_files (content_hash) WHERE content_hash IS NOT NULL;

CREATE TABLE cloud_shared_links (
    id TEXT NOT NULL,
    index_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    is_deleted INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1)),
    created_by_user_id TEXT NOT NULL,
    resource_type TEXT NOT NULL CHECK (length(CAST(resource_type AS BLOB)) <= 20),
    file_id TEXT NULL,
    folder_id TEXT NULL,
    provider_share_id TEXT NULL CHECK (length(CAST(provider_share_id AS BLOB)) <= 255),
    share_url TEXT NOT NULL,
    share_type TEXT NOT NULL CHECK (length(CAST(share_type AS BLOB)) <= 50),
    password_protected INTEGER NOT NULL DEFAULT 0 CHECK (password_protected IN (0, 1)),
    expires_at TEXT NULL,
    access_count INTEGER NOT NULL DEFAULT 0,
    last_accessed_at TEXT NULL,
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    CONSTRAINT fk_cloud_shared_links_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_shared_links_created_by FOREIGN KEY (created_by_user_id) REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_shared_links_file FOREIGN KEY (file_id) REFERENCES cloud_files (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_shared_links_folder FOREIGN KEY (folder_id) REFERENCES cloud_folders (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_shared_links_created_by_tenant FOREIGN KEY (tenant_id, created_by_user_id) REFERENCES users (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_shared_links_file_tenant FOREIGN KEY (tenant_id, file_id) REFERENCES cloud_files (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_shared_links_folder_tenant FOREIGN KEY (tenant_id, folder_id) REFERENCES cloud_folders (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_shared_links_resource CHECK (
        (resource_type = 'file' AND file_id IS NOT NULL AND folder_id IS NULL)
        OR (resource_type = 'folder' AND folder_id IS NOT NULL AND file_id IS NULL)),
    CONSTRAINT ck_cloud_shared_links_share_type CHECK (share_type IN ('view', 'edit', 'download', 'comment'))
);

CREATE UNIQUE INDEX ix_cloud_shared_links_id ON cloud_shared_links (id);
CREATE INDEX ix_cloud_shared_links_tenant_active ON cloud_shared_links (tenant_id, index_id) WHERE is_deleted = 0;
CREATE UNIQUE INDEX ix_cloud_shared_links_tenant_id_lookup ON cloud_shared_links (tenant_id, id);
CREATE INDEX ix_cloud_shared_links_file ON cloud_shared_links (tenant_id, file_id) WHERE file_id IS NOT NULL AND is_deleted = 0;
CREATE INDEX ix_cloud_shared_links_folder ON cloud_shared_links (tenant_id, folder_id) WHERE folder_id IS NOT NULL AND is_deleted = 0;
CREATE INDEX ix_cloud_shared_links_expires ON cloud_shared_links (expires_at) WHERE expires_at IS NOT NULL AND is_active = 1;

CREATE TABLE cloud_sync_errors (
    id TEXT NOT NULL,
    index_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    is_deleted INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1)),
    sync_job_id TEXT NULL,
    connection_id TEXT NOT NULL,
    file_id TEXT NULL,
    error_type TEXT NOT NULL CHECK (length(CAST(error_type AS BLOB)) <= 50),
    error_code TEXT NULL CHECK (length(CAST(error_code AS BLOB)) <= 100),
    error_message TEXT NOT NULL,
    stack_trace TEXT NULL,
    retry_count INTEGER NOT NULL DEFAULT 0,
    resolved_at TEXT NULL,
    resolution_notes TEXT NULL,
    error_metadata TEXT NULL,
    CONSTRAINT fk_cloud_sync_errors_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_errors_sync_job FOREIGN KEY (sync_job_id) REFERENCES cloud_sync_jobs (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_errors_connection FOREIGN KEY (connection_id) REFERENCES cloud_connections (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_errors_file FOREIGN KEY (file_id) REFERENCES cloud_files (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_errors_sync_job_tenant FOREIGN KEY (tenant_id, sync_job_id) REFERENCES cloud_sync_jobs (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_errors_connection_tenant FOREIGN KEY (tenant_id, connection_id) REFERENCES cloud_connections (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_errors_file_tenant FOREIGN KEY (tenant_id, file_id) REFERENCES cloud_files (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_sync_errors_error_type CHECK (error_type IN ('auth', 'network', 'quota', 'permission', 'api', 'validation', 'timeout'))
);

CREATE UNIQUE INDEX ix_cloud_sync_errors_id ON cloud_sync_errors (id);
CREATE INDEX ix_cloud_sync_errors_tenant_active ON cloud_sync_errors (tenant_id, index_id) WHERE is_deleted = 0;
CREATE UNIQUE INDEX ix_cloud_sync_errors_tenant_id_lookup ON cloud_sync_errors (tenant_id, id);
CREATE INDEX ix_cloud_sync_errors_connection_type ON cloud_sync_errors (tenant_id, connection_id, error_type, created_at DESC);
CREATE INDEX ix_cloud_sync_errors_unresolved ON cloud_sync_errors (error_type, created_at DESC) WHERE resolved_at IS NULL;
CREATE INDEX ix_cloud_sync_errors_sync_job ON cloud_sync_errors (sync_job_id) WHERE sync_job_id IS NOT NULL;
