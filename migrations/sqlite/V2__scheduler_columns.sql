-- Bookkeeping of the token-refresh function (issue 6); see migrations/mssql/V2 for what each
-- column means. Timestamps are TEXT like every other timestamp here.

ALTER TABLE cloud_connections ADD COLUMN token_refreshed_at TEXT NULL;
ALTER TABLE cloud_connections ADD COLUMN refresh_not_before TEXT NULL;
ALTER TABLE cloud_connections ADD COLUMN refresh_failures INTEGER NOT NULL DEFAULT 0 CONSTRAINT ck_cloud_connections_refresh_failures CHECK (refresh_failures >= 0);
ALTER TABLE cloud_connections ADD COLUMN refresh_error_id TEXT NULL;
