-- The sync worker: change cursors, job claims and dispatch, and the marks a sync run leaves
-- on the files it saw or is about to delete; see migrations/mssql/V5.

CREATE TABLE cloud_sync_cursors (
    id TEXT NOT NULL,
    index_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    is_deleted INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1)),
    connection_id TEXT NOT NULL,
    folder_id TEXT NULL,
    cursor_kind TEXT NOT NULL CHECK (length(CAST(cursor_kind AS BLOB)) <= 50),
    cursor_value TEXT NOT NULL,
    folder_map TEXT NULL,
    last_polled_at TEXT NULL,
    CONSTRAINT fk_cloud_sync_cursors_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_cursors_connection FOREIGN KEY (connection_id) REFERENCES cloud_connections (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_cursors_folder FOREIGN KEY (folder_id) REFERENCES cloud_folders (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_sync_cursors_tenant_consistency FOREIGN KEY (tenant_id, connection_id) REFERENCES cloud_connections (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_cursors_folder_tenant FOREIGN KEY (tenant_id, folder_id) REFERENCES cloud_folders (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_sync_cursors_kind CHECK (cursor_kind IN ('graph_delta', 'drive_changes', 'dropbox_list_folder', 'box_events'))
);

CREATE UNIQUE INDEX ix_cloud_sync_cursors_id ON cloud_sync_cursors (id);
CREATE UNIQUE INDEX ix_cloud_sync_cursors_tenant_id_lookup ON cloud_sync_cursors (tenant_id, id);
CREATE UNIQUE INDEX ix_cloud_sync_cursors_scope ON cloud_sync_cursors (connection_id, folder_id, cursor_kind) WHERE is_deleted = 0;

ALTER TABLE cloud_sync_jobs ADD COLUMN worker_lease_id TEXT NULL;
ALTER TABLE cloud_sync_jobs ADD COLUMN worker_lease_until TEXT NULL;
ALTER TABLE cloud_sync_jobs ADD COLUMN dispatched_at TEXT NULL;

ALTER TABLE cloud_files ADD COLUMN seen_by_job_id TEXT NULL;
ALTER TABLE cloud_files ADD COLUMN deleting_by_job_id TEXT NULL;
