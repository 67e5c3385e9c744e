-- Indexes of the scheduled functions (issue 6); see migrations/mssql/V3.

CREATE INDEX ix_cloud_connections_keep_alive ON cloud_connections (token_refreshed_at, created_at) WHERE status = 'active' AND is_deleted = 0;
CREATE INDEX ix_cloud_folders_auto_sync_due ON cloud_folders (auto_sync_enabled, sync_frequency_minutes, last_sync_at) WHERE auto_sync_enabled = 1 AND is_deleted = 0;
