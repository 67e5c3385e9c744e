-- Seed 002 (Quodsi cloud connection management) for SQL Server 2019+, Azure SQL and
-- Babelfish for Aurora PostgreSQL. migrations/README.md maps every seed name and explains
-- each place where the seed could not be taken literally.
--
-- * The database must use a UTF-8 collation (e.g. Latin1_General_100_CI_AS_SC_UTF8) on
--   SQL Server / Azure SQL: the seed's VARCHAR columns hold user text such as folder names.
--   Babelfish always stores UTF-8. `migrate` refuses a non-UTF-8 SQL Server database.
-- * Timestamps are UTC: defaults use SYSUTCDATETIME(); the application binds UTC values.
-- * ck_*_tenant_consistency: SQL Server rejects subqueries in CHECK constraints, so each is a
--   composite foreign key (tenant_id, parent_id) -> parent (tenant_id, id) under the seed's
--   name, backed by the parent's ix_*_tenant_id_lookup index made UNIQUE.
-- * The seed's "PK NONCLUSTERED on id" and "ix_*_id UNIQUE NONCLUSTERED on id" are one
--   index: the primary key constraint is named ix_*_id, so id is not indexed twice.
-- * ix_*_index_id is UNIQUE CLUSTERED: IDENTITY values are unique, and a unique clustered
--   key spares SQL Server the hidden uniquifier.
-- * Defaults are named df_<table>_<column> so later migrations can alter them.

SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;

-- tenants and users belong to other schemas; they are created here only where missing so a
-- fresh database (tests, a new environment) is complete.
IF OBJECT_ID(N'dbo.tenants', N'U') IS NULL
    CREATE TABLE dbo.tenants (
        id UNIQUEIDENTIFIER NOT NULL CONSTRAINT pk_tenants PRIMARY KEY,
        name NVARCHAR(255) NOT NULL,
        created_at DATETIME2 NOT NULL CONSTRAINT df_tenants_created_at DEFAULT SYSUTCDATETIME()
    );

IF OBJECT_ID(N'dbo.users', N'U') IS NULL
    CREATE TABLE dbo.users (
        id UNIQUEIDENTIFIER NOT NULL CONSTRAINT pk_users PRIMARY KEY,
        tenant_id UNIQUEIDENTIFIER NOT NULL CONSTRAINT fk_users_tenant REFERENCES dbo.tenants (id),
        email NVARCHAR(255) NULL,
        created_at DATETIME2 NOT NULL CONSTRAINT df_users_created_at DEFAULT SYSUTCDATETIME()
    );

-- The composite tenant-consistency keys below reference users (tenant_id, id), which needs
-- a unique index on exactly those columns, even on a users table another schema created.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_users_tenant_id_lookup' AND object_id = OBJECT_ID(N'dbo.users'))
    CREATE UNIQUE NONCLUSTERED INDEX ix_users_tenant_id_lookup ON dbo.users (tenant_id, id);

CREATE TABLE dbo.cloud_connections (
    id UNIQUEIDENTIFIER NOT NULL CONSTRAINT df_cloud_connections_id DEFAULT NEWID(),
    index_id BIGINT IDENTITY(1, 1) NOT NULL,
    tenant_id UNIQUEIDENTIFIER NOT NULL,
    created_at DATETIME2 NOT NULL CONSTRAINT df_cloud_connections_created_at DEFAULT SYSUTCDATETIME(),
    updated_at DATETIME2 NOT NULL CONSTRAINT df_cloud_connections_updated_at DEFAULT SYSUTCDATETIME(),
    is_deleted BIT NOT NULL CONSTRAINT df_cloud_connections_is_deleted DEFAULT 0,
    user_id UNIQUEIDENTIFIER NOT NULL,
    provider_type VARCHAR(50) NOT NULL,
    provider_user_id VARCHAR(255) NOT NULL,
    provider_user_email VARCHAR(255) NULL,
    encrypted_access_token VARBINARY(MAX) NOT NULL,
    encrypted_refresh_token VARBINARY(MAX) NULL,
    token_expiry DATETIME2 NOT NULL,
    scope NVARCHAR(MAX) NOT NULL,
    last_used_at DATETIME2 NULL,
    last_sync_at DATETIME2 NULL,
    status VARCHAR(20) NOT NULL CONSTRAINT df_cloud_connections_status DEFAULT 'active',
    display_name NVARCHAR(255) NULL,
    connection_metadata NVARCHAR(MAX) NULL,
    CONSTRAINT ix_cloud_connections_id PRIMARY KEY NONCLUSTERED (id),
    CONSTRAINT fk_cloud_connections_tenant FOREIGN KEY (tenant_id) REFERENCES dbo.tenants (id),
    CONSTRAINT fk_cloud_connections_user FOREIGN KEY (user_id) REFERENCES dbo.users (id),
    CONSTRAINT ck_cloud_connections_tenant_consistency FOREIGN KEY (tenant_id, user_id) REFERENCES dbo.users (tenant_id, id),
    CONSTRAINT ck_cloud_connections_provider_type CHECK (provider_type IN ('onedrive', 'gdrive', 'dropbox', 'box', 'sharepoint')),
    CONSTRAINT ck_cloud_connections_status CHECK (status IN ('active', 'revoked', 'expired', 'error'))
);

CREATE UNIQUE CLUSTERED INDEX ix_cloud_connections_index_id ON dbo.cloud_connections (index_id);
CREATE NONCLUSTERED INDEX ix_cloud_connections_tenant_active ON dbo.cloud_connections (tenant_id, index_id) WHERE is_deleted = 0;
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_connections_tenant_id_lookup ON dbo.cloud_connections (tenant_id, id);
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_connections_tenant_user_provider ON dbo.cloud_connections (tenant_id, user_id, provider_type, provider_user_id) WHERE is_deleted = 0;
CREATE NONCLUSTERED INDEX ix_cloud_connections_status ON dbo.cloud_connections (tenant_id, status) WHERE is_deleted = 0;
CREATE NONCLUSTERED INDEX ix_cloud_connections_token_expiry ON dbo.cloud_connections (token_expiry) WHERE status = 'active';

CREATE TABLE dbo.cloud_folders (
    id UNIQUEIDENTIFIER NOT NULL CONSTRAINT df_cloud_folders_id DEFAULT NEWID(),
    index_id BIGINT IDENTITY(1, 1) NOT NULL,
    tenant_id UNIQUEIDENTIFIER NOT NULL,
    created_at DATETIME2 NOT NULL CONSTRAINT df_cloud_folders_created_at DEFAULT SYSUTCDATETIME(),
    updated_at DATETIME2 NOT NULL CONSTRAINT df_cloud_folders_updated_at DEFAULT SYSUTCDATETIME(),
    is_deleted BIT NOT NULL CONSTRAINT df_cloud_folders_is_deleted DEFAULT 0,
    connection_id UNIQUEIDENTIFIER NOT NULL,
    folder_name VARCHAR(255) NOT NULL,
    provider_folder_id VARCHAR(255) NOT NULL,
    folder_path NVARCHAR(MAX) NULL,
    folder_type VARCHAR(50) NOT NULL,
    is_default_export_folder BIT NOT NULL CONSTRAINT df_cloud_folders_is_default_export_folder DEFAULT 0,
    is_default_import_folder BIT NOT NULL CONSTRAINT df_cloud_folders_is_default_import_folder DEFAULT 0,
    auto_sync_enabled BIT NOT NULL CONSTRAINT df_cloud_folders_auto_sync_enabled DEFAULT 0,
    last_sync_at DATETIME2 NULL,
    sync_frequency_minutes INT NULL,
    folder_permissions VARCHAR(50) NOT NULL CONSTRAINT df_cloud_folders_folder_permissions DEFAULT 'read_write',
    CONSTRAINT ix_cloud_folders_id PRIMARY KEY NONCLUSTERED (id),
    CONSTRAINT fk_cloud_folders_tenant FOREIGN KEY (tenant_id) REFERENCES dbo.tenants (id),
    CONSTRAINT fk_cloud_folders_connection FOREIGN KEY (connection_id) REFERENCES dbo.cloud_connections (id),
    CONSTRAINT ck_cloud_folders_tenant_consistency FOREIGN KEY (tenant_id, connection_id) REFERENCES dbo.cloud_connections (tenant_id, id),
    CONSTRAINT ck_cloud_folders_folder_type CHECK (folder_type IN ('export', 'import', 'archive', 'models', 'results', 'general')),
    CONSTRAINT ck_cloud_folders_permissions CHECK (folder_permissions IN ('read_only', 'read_write', 'write_only')),
    CONSTRAINT ck_cloud_folders_sync_frequency CHECK (
        (sync_frequency_minutes IS NULL AND auto_sync_enabled = 0)
        OR (sync_frequency_minutes IS NOT NULL AND sync_frequency_minutes BETWEEN 5 AND 10080))
);

CREATE UNIQUE CLUSTERED INDEX ix_cloud_folders_index_id ON dbo.cloud_folders (index_id);
CREATE NONCLUSTERED INDEX ix_cloud_folders_tenant_active ON dbo.cloud_folders (tenant_id, index_id) WHERE is_deleted = 0;
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_folders_tenant_id_lookup ON dbo.cloud_folders (tenant_id, id);
CREATE NONCLUSTERED INDEX ix_cloud_folders_tenant_connection ON dbo.cloud_folders (tenant_id, connection_id) WHERE is_deleted = 0;
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_folders_provider_folder ON dbo.cloud_folders (connection_id, provider_folder_id) WHERE is_deleted = 0;
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_folders_default_export ON dbo.cloud_folders (tenant_id, connection_id) WHERE is_default_export_folder = 1 AND is_deleted = 0;
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_folders_default_import ON dbo.cloud_folders (connection_id, tenant_id) WHERE is_default_import_folder = 1 AND is_deleted = 0;
CREATE NONCLUSTERED INDEX ix_cloud_folders_auto_sync ON dbo.cloud_folders (auto_sync_enabled, sync_frequency_minutes) WHERE auto_sync_enabled = 1 AND is_deleted = 0;

CREATE TABLE dbo.cloud_sync_jobs (
    id UNIQUEIDENTIFIER NOT NULL CONSTRAINT df_cloud_sync_jobs_id DEFAULT NEWID(),
    index_id BIGINT IDENTITY(1, 1) NOT NULL,
    tenant_id UNIQUEIDENTIFIER NOT NULL,
    created_at DATETIME2 NOT NULL CONSTRAINT df_cloud_sync_jobs_created_at DEFAULT SYSUTCDATETIME(),
    updated_at DATETIME2 NOT NULL CONSTRAINT df_cloud_sync_jobs_updated_at DEFAULT SYSUTCDATETIME(),
    is_deleted BIT NOT NULL CONSTRAINT df_cloud_sync_jobs_is_deleted DEFAULT 0,
    folder_id UNIQUEIDENTIFIER NOT NULL,
    initiated_by_user_id UNIQUEIDENTIFIER NULL,
    job_type VARCHAR(50) NOT NULL,
    status VARCHAR(50) NOT NULL CONSTRAINT df_cloud_sync_jobs_status DEFAULT 'pending',
    started_at DATETIME2 NULL,
    completed_at DATETIME2 NULL,
    progress_percentage DECIMAL(5, 2) NOT NULL CONSTRAINT df_cloud_sync_jobs_progress_percentage DEFAULT 0,
    files_processed INT NOT NULL CONSTRAINT df_cloud_sync_jobs_files_processed DEFAULT 0,
    files_total INT NULL,
    bytes_transferred BIGINT NOT NULL CONSTRAINT df_cloud_sync_jobs_bytes_transferred DEFAULT 0,
    error_message NVARCHAR(MAX) NULL,
    job_metadata NVARCHAR(MAX) NULL,
    CONSTRAINT ix_cloud_sync_jobs_id PRIMARY KEY NONCLUSTERED (id),
    CONSTRAINT fk_cloud_sync_jobs_tenant FOREIGN KEY (tenant_id) REFERENCES dbo.tenants (id),
    CONSTRAINT fk_cloud_sync_jobs_folder FOREIGN KEY (folder_id) REFERENCES dbo.cloud_folders (id),
    CONSTRAINT fk_cloud_sync_jobs_initiated_by FOREIGN KEY (initiated_by_user_id) REFERENCES dbo.users (id),
    CONSTRAINT ck_cloud_sync_jobs_tenant_consistency FOREIGN KEY (tenant_id, folder_id) REFERENCES dbo.cloud_folders (tenant_id, id),
    CONSTRAINT fk_cloud_sync_jobs_initiated_by_tenant FOREIGN KEY (tenant_id, initiated_by_user_id) REFERENCES dbo.users (tenant_id, id),
    CONSTRAINT ck_cloud_sync_jobs_job_type CHECK (job_type IN ('upload', 'download', 'bidirectional', 'export', 'import')),
    CONSTRAINT ck_cloud_sync_jobs_status CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    CONSTRAINT ck_cloud_sync_jobs_progress_range CHECK (progress_percentage BETWEEN 0 AND 100),
    CONSTRAINT ck_cloud_sync_jobs_file_counts CHECK (
        files_processed >= 0
        AND (files_total IS NULL OR (files_total >= 0 AND files_processed <= files_total))),
    CONSTRAINT ck_cloud_sync_jobs_bytes CHECK (bytes_transferred >= 0)
);

CREATE UNIQUE CLUSTERED INDEX ix_cloud_sync_jobs_index_id ON dbo.cloud_sync_jobs (index_id);
CREATE NONCLUSTERED INDEX ix_cloud_sync_jobs_tenant_active ON dbo.cloud_sync_jobs (tenant_id, index_id) WHERE is_deleted = 0;
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_sync_jobs_tenant_id_lookup ON dbo.cloud_sync_jobs (tenant_id, id);
CREATE NONCLUSTERED INDEX ix_cloud_sync_jobs_folder_status ON dbo.cloud_sync_jobs (tenant_id, folder_id, status, created_at DESC);
CREATE NONCLUSTERED INDEX ix_cloud_sync_jobs_status_created ON dbo.cloud_sync_jobs (status, created_at DESC);
CREATE NONCLUSTERED INDEX ix_cloud_sync_jobs_running ON dbo.cloud_sync_jobs (status) WHERE status IN ('pending', 'running');
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_sync_jobs_folder_live ON dbo.cloud_sync_jobs (folder_id) WHERE is_deleted = 0 AND status IN ('pending', 'running');

CREATE TABLE dbo.cloud_files (
    id UNIQUEIDENTIFIER NOT NULL CONSTRAINT df_cloud_files_id DEFAULT NEWID(),
    index_id BIGINT IDENTITY(1, 1) NOT NULL,
    tenant_id UNIQUEIDENTIFIER NOT NULL,
    created_at DATETIME2 NOT NULL CONSTRAINT df_cloud_files_created_at DEFAULT SYSUTCDATETIME(),
    updated_at DATETIME2 NOT NULL CONSTRAINT df_cloud_files_updated_at DEFAULT SYSUTCDATETIME(),
    is_deleted BIT NOT NULL CONSTRAINT df_cloud_files_is_deleted DEFAULT 0,
    folder_id UNIQUEIDENTIFIER NOT NULL,
    quodsi_file_type VARCHAR(50) NOT NULL,
    quodsi_entity_id UNIQUEIDENTIFIER NULL,
    provider_file_id VARCHAR(255) NOT NULL,
    file_name NVARCHAR(255) NOT NULL,
    file_path NVARCHAR(MAX) NULL,
    file_size_bytes BIGINT NOT NULL,
    content_hash VARCHAR(64) NULL,
    mime_type VARCHAR(255) NULL,
    cloud_created_at DATETIME2 NULL,
    cloud_modified_at DATETIME2 NULL,
    last_synced_at DATETIME2 NULL,
    sync_status VARCHAR(50) NOT NULL CONSTRAINT df_cloud_files_sync_status DEFAULT 'synced',
    upload_url NVARCHAR(MAX) NULL,
    download_url NVARCHAR(MAX) NULL,
    file_metadata NVARCHAR(MAX) NULL,
    CONSTRAINT ix_cloud_files_id PRIMARY KEY NONCLUSTERED (id),
    CONSTRAINT fk_cloud_files_tenant FOREIGN KEY (tenant_id) REFERENCES dbo.tenants (id),
    CONSTRAINT fk_cloud_files_folder FOREIGN KEY (folder_id) REFERENCES dbo.cloud_folders (id),
    CONSTRAINT ck_cloud_files_tenant_consistency FOREIGN KEY (tenant_id, folder_id) REFERENCES dbo.cloud_folders (tenant_id, id),
    CONSTRAINT ck_cloud_files_file_type CHECK (quodsi_file_type IN ('model', 'result', 'animation', 'export', 'import', 'document', 'image')),
    CONSTRAINT ck_cloud_files_sync_status CHECK (sync_status IN ('synced', 'needs_upload', 'needs_download', 'conflict', 'error')),
    CONSTRAINT ck_cloud_files_size CHECK (file_size_bytes >= 0)
);

CREATE UNIQUE CLUSTERED INDEX ix_cloud_files_index_id ON dbo.cloud_files (index_id);
CREATE NONCLUSTERED INDEX ix_cloud_files_tenant_active ON dbo.cloud_files (tenant_id, index_id) WHERE is_deleted = 0;
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_files_tenant_id_lookup ON dbo.cloud_files (tenant_id, id);
CREATE NONCLUSTERED INDEX ix_cloud_files_folder_type ON dbo.cloud_files (tenant_id, folder_id, quodsi_file_type);
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_files_provider_file ON dbo.cloud_files (folder_id, provider_file_id) WHERE is_deleted = 0;
CREATE NONCLUSTERED INDEX ix_cloud_files_entity ON dbo.cloud_files (tenant_id, quodsi_entity_id, quodsi_file_type) WHERE quodsi_entity_id IS NOT NULL;
CREATE NONCLUSTERED INDEX ix_cloud_files_sync_status ON dbo.cloud_files (sync_status, last_synced_at) WHERE sync_status <> 'synced';
CREATE NONCLUSTERED INDEX ix_cloud_files_content_hash ON dbo.cloud_files (content_hash) WHERE content_hash IS NOT NULL;

CREATE TABLE dbo.cloud_shared_links (
    id UNIQUEIDENTIFIER NOT NULL CONSTRAINT df_cloud_shared_links_id DEFAULT NEWID(),
    index_id BIGINT IDENTITY(1, 1) NOT NULL,
    tenant_id UNIQUEIDENTIFIER NOT NULL,
    created_at DATETIME2 NOT NULL CONSTRAINT df_cloud_shared_links_created_at DEFAULT SYSUTCDATETIME(),
    updated_at DATETIME2 NOT NULL CONSTRAINT df_cloud_shared_links_updated_at DEFAULT SYSUTCDATETIME(),
    is_deleted BIT NOT NULL CONSTRAINT df_cloud_shared_links_is_deleted DEFAULT 0,
    created_by_user_id UNIQUEIDENTIFIER NOT NULL,
    resource_type VARCHAR(20) NOT NULL,
    file_id UNIQUEIDENTIFIER NULL,
    folder_id UNIQUEIDENTIFIER NULL,
    provider_share_id VARCHAR(255) NULL,
    share_url NVARCHAR(MAX) NOT NULL,
    share_type VARCHAR(50) NOT NULL,
    password_protected BIT NOT NULL CONSTRAINT df_cloud_shared_links_password_protected DEFAULT 0,
    expires_at DATETIME2 NULL,
    access_count INT NOT NULL CONSTRAINT df_cloud_shared_links_access_count DEFAULT 0,
    last_accessed_at DATETIME2 NULL,
    is_active BIT NOT NULL CONSTRAINT df_cloud_shared_links_is_active DEFAULT 1,
    CONSTRAINT ix_cloud_shared_links_id PRIMARY KEY NONCLUSTERED (id),
    CONSTRAINT fk_cloud_shared_links_tenant FOREIGN KEY (tenant_id) REFERENCES dbo.tenants (id),
    CONSTRAINT fk_cloud_shared_links_created_by FOREIGN KEY (created_by_user_id) REFERENCES dbo.users (id),
    CONSTRAINT fk_cloud_shared_links_file FOREIGN KEY (file_id) REFERENCES dbo.cloud_files (id),
    CONSTRAINT fk_cloud_shared_links_folder FOREIGN KEY (folder_id) REFERENCES dbo.cloud_folders (id),
    CONSTRAINT fk_cloud_shared_links_created_by_tenant FOREIGN KEY (tenant_id, created_by_user_id) REFERENCES dbo.users (tenant_id, id),
    CONSTRAINT fk_cloud_shared_links_file_tenant FOREIGN KEY (tenant_id, file_id) REFERENCES dbo.cloud_files (tenant_id, id),
    CONSTRAINT fk_cloud_shared_links_folder_tenant FOREIGN KEY (tenant_id, folder_id) REFERENCES dbo.cloud_folders (tenant_id, id),
    CONSTRAINT ck_cloud_shared_links_resource CHECK (
        (resource_type = 'file' AND file_id IS NOT NULL AND folder_id IS NULL)
        OR (resource_type = 'folder' AND folder_id IS NOT NULL AND file_id IS NULL)),
    CONSTRAINT ck_cloud_shared_links_share_type CHECK (share_type IN ('view', 'edit', 'download', 'comment'))
);

CREATE UNIQUE CLUSTERED INDEX ix_cloud_shared_links_index_id ON dbo.cloud_shared_links (index_id);
CREATE NONCLUSTERED INDEX ix_cloud_shared_links_tenant_active ON dbo.cloud_shared_links (tenant_id, index_id) WHERE is_deleted = 0;
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_shared_links_tenant_id_lookup ON dbo.cloud_shared_links (tenant_id, id);
CREATE NONCLUSTERED INDEX ix_cloud_shared_links_file ON dbo.cloud_shared_links (tenant_id, file_id) WHERE file_id IS NOT NULL AND is_deleted = 0;
CREATE NONCLUSTERED INDEX ix_cloud_shared_links_folder ON dbo.cloud_shared_links (tenant_id, folder_id) WHERE folder_id IS NOT NULL AND is_deleted = 0;
CREATE NONCLUSTERED INDEX ix_cloud_shared_links_expires ON dbo.cloud_shared_links (expires_at) WHERE expires_at IS NOT NULL AND is_active = 1;

CREATE TABLE dbo.cloud_sync_errors (
    id UNIQUEIDENTIFIER NOT NULL CONSTRAINT df_cloud_sync_errors_id DEFAULT NEWID(),
    index_id BIGINT IDENTITY(1, 1) NOT NULL,
    tenant_id UNIQUEIDENTIFIER NOT NULL,
    created_at DATETIME2 NOT NULL CONSTRAINT df_cloud_sync_errors_created_at DEFAULT SYSUTCDATETIME(),
    updated_at DATETIME2 NOT NULL CONSTRAINT df_cloud_sync_errors_updated_at DEFAULT SYSUTCDATETIME(),
    is_deleted BIT NOT NULL CONSTRAINT df_cloud_sync_errors_is_deleted DEFAULT 0,
    sync_job_id UNIQUEIDENTIFIER NULL,
    connection_id UNIQUEIDENTIFIER NOT NULL,
    file_id UNIQUEIDENTIFIER NULL,
    error_type VARCHAR(50) NOT NULL,
    error_code VARCHAR(100) NULL,
    error_message NVARCHAR(MAX) NOT NULL,
    stack_trace NVARCHAR(MAX) NULL,
    retry_count INT NOT NULL CONSTRAINT df_cloud_sync_errors_retry_count DEFAULT 0,
    resolved_at DATETIME2 NULL,
    resolution_notes NVARCHAR(MAX) NULL,
    error_metadata NVARCHAR(MAX) NULL,
    CONSTRAINT ix_cloud_sync_errors_id PRIMARY KEY NONCLUSTERED (id),
    CONSTRAINT fk_cloud_sync_errors_tenant FOREIGN KEY (tenant_id) REFERENCES dbo.tenants (id),
    CONSTRAINT fk_cloud_sync_errors_sync_job FOREIGN KEY (sync_job_id) REFERENCES dbo.cloud_sync_jobs (id),
    CONSTRAINT fk_cloud_sync_errors_connection FOREIGN KEY (connection_id) REFERENCES dbo.cloud_connections (id),
    CONSTRAINT fk_cloud_sync_errors_file FOREIGN KEY (file_id) REFERENCES dbo.cloud_files (id),
    CONSTRAINT fk_cloud_sync_errors_sync_job_tenant FOREIGN KEY (tenant_id, sync_job_id) REFERENCES dbo.cloud_sync_jobs (tenant_id, id),
    CONSTRAINT fk_cloud_sync_errors_connection_tenant FOREIGN KEY (tenant_id, connection_id) REFERENCES dbo.cloud_connections (tenant_id, id),
    CONSTRAINT fk_cloud_sync_errors_file_tenant FOREIGN KEY (tenant_id, file_id) REFERENCES dbo.cloud_files (tenant_id, id),
    CONSTRAINT ck_cloud_sync_errors_error_type CHECK (error_type IN ('auth', 'network', 'quota', 'permission', 'api', 'validation', 'timeout'))
);

CREATE UNIQUE CLUSTERED INDEX ix_cloud_sync_errors_index_id ON dbo.cloud_sync_errors (index_id);
CREATE NONCLUSTERED INDEX ix_cloud_sync_errors_tenant_active ON dbo.cloud_sync_errors (tenant_id, index_id) WHERE is_deleted = 0;
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_sync_errors_tenant_id_lookup ON dbo.cloud_sync_errors (tenant_id, id);
CREATE NONCLUSTERED INDEX ix_cloud_sync_errors_connection_type ON dbo.cloud_sync_errors (tenant_id, connection_id, error_type, created_at DESC);
CREATE NONCLUSTERED INDEX ix_cloud_sync_errors_unresolved ON dbo.cloud_sync_errors (error_type, created_at DESC) WHERE resolved_at IS NULL;
CREATE NONCLUSTERED INDEX ix_cloud_sync_errors_sync_job ON dbo.cloud_sync_errors (sync_job_id) WHERE sync_job_id IS NOT NULL;
