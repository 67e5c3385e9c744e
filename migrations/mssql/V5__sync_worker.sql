-- The sync worker (issue 12): change cursors, job claims and dispatch, and the marks a sync
-- run leaves on the files it saw or is about to delete. New columns are nullable, one per
-- ALTER TABLE … ADD (Babelfish refuses several items in one ADD), so each is metadata-only on
-- SQL Server 2019+ / Azure SQL. The one index on the new table is in this batch only because
-- the table is created in it too; no statement here reads a column this batch adds.
--
-- cloud_sync_cursors: where a folder's sync left off at its provider.
-- * connection_id, folder_id: whose cursor. folder_id NULL is a connection-wide cursor (a
--   provider feed shared by every folder of the connection); the worker keeps one per folder,
--   so a failing folder never holds another back.
-- * cursor_kind: which provider feed (Graph delta link, Drive start page token, Dropbox
--   list_folder cursor, Box stream position); cursor_value is the provider's opaque text,
--   kept whole (a Graph deltaLink is a URL of any length).
-- * folder_map: JSON of the subtree's folders (provider id → path under the synced folder),
--   for feeds that cover the whole account and name parents by id (Graph Business, Drive, Box).
-- * last_polled_at: when the cursor was last read to its end (Box keeps events for a limited
--   time, so an old position means a fresh crawl).
--
-- cloud_sync_jobs:
-- * worker_lease_id, worker_lease_until: the claim of the worker running the job. A claim is a
--   conditional UPDATE that wins only on a pending job or a running one whose lease ran out;
--   progress, checkpoints and the end are written only under the lease id that claimed it.
-- * dispatched_at: when the job's message was last sent to the queue; the auto-sync sweep
--   sends it again when it is old and the job still waits.
--
-- cloud_files:
-- * seen_by_job_id: the job whose full listing last saw the file; after a full listing, live
--   files of the folder it did not see are gone at the provider.
-- * deleting_by_job_id: the job that found the file deleted at the provider; the deletes are
--   applied together at the end of the run, only if they pass the mass-delete guard.
-- Neither has a foreign key: each is a mark a run checks, not a relation.

SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;

CREATE TABLE dbo.cloud_sync_cursors (
    id UNIQUEIDENTIFIER NOT NULL CONSTRAINT df_cloud_sync_cursors_id DEFAULT NEWID(),
    index_id BIGINT IDENTITY(1, 1) NOT NULL,
    tenant_id UNIQUEIDENTIFIER NOT NULL,
    created_at DATETIME2 NOT NULL CONSTRAINT df_cloud_sync_cursors_created_at DEFAULT SYSUTCDATETIME(),
    updated_at DATETIME2 NOT NULL CONSTRAINT df_cloud_sync_cursors_updated_at DEFAULT SYSUTCDATETIME(),
    is_deleted BIT NOT NULL CONSTRAINT df_cloud_sync_cursors_is_deleted DEFAULT 0,
    connection_id UNIQUEIDENTIFIER NOT NULL,
    folder_id UNIQUEIDENTIFIER NULL,
    cursor_kind VARCHAR(50) NOT NULL,
    cursor_value NVARCHAR(MAX) NOT NULL,
    folder_map NVARCHAR(MAX) NULL,
    last_polled_at DATETIME2 NULL,
    CONSTRAINT ix_cloud_sync_cursors_id PRIMARY KEY NONCLUSTERED (id),
    CONSTRAINT fk_cloud_sync_cursors_tenant FOREIGN KEY (tenant_id) REFERENCES dbo.tenants (id),
    CONSTRAINT fk_cloud_sync_cursors_connection FOREIGN KEY (connection_id) REFERENCES dbo.cloud_connections (id),
    CONSTRAINT fk_cloud_sync_cursors_folder FOREIGN KEY (folder_id) REFERENCES dbo.cloud_folders (id),
    CONSTRAINT ck_cloud_sync_cursors_tenant_consistency FOREIGN KEY (tenant_id, connection_id) REFERENCES dbo.cloud_connections (tenant_id, id),
    CONSTRAINT fk_cloud_sync_cursors_folder_tenant FOREIGN KEY (tenant_id, folder_id) REFERENCES dbo.cloud_folders (tenant_id, id),
    CONSTRAINT ck_cloud_sync_cursors_kind CHECK (cursor_kind IN ('graph_delta', 'drive_changes', 'dropbox_list_folder', 'box_events'))
);

CREATE UNIQUE CLUSTERED INDEX ix_cloud_sync_cursors_index_id ON dbo.cloud_sync_cursors (index_id);
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_sync_cursors_tenant_id_lookup ON dbo.cloud_sync_cursors (tenant_id, id);
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_sync_cursors_scope ON dbo.cloud_sync_cursors (connection_id, folder_id, cursor_kind) WHERE is_deleted = 0;

ALTER TABLE dbo.cloud_sync_jobs ADD worker_lease_id UNIQUEIDENTIFIER NULL;
ALTER TABLE dbo.cloud_sync_jobs ADD worker_lease_until DATETIME2 NULL;
ALTER TABLE dbo.cloud_sync_jobs ADD dispatched_at DATETIME2 NULL;

ALTER TABLE dbo.cloud_files ADD seen_by_job_id UNIQUEIDENTIFIER NULL;
ALTER TABLE dbo.cloud_files ADD deleting_by_job_id UNIQUEIDENTIFIER NULL;
