-- Indexes of the scheduled functions (issue 6); the columns come from V2.
--
-- * ix_cloud_connections_keep_alive: connections whose refresh token has not been used for
--   N days, found by a range seek (token_refreshed_at <= cutoff, or NULL with created_at <=
--   cutoff) instead of a scan of every active connection.
-- * ix_cloud_folders_auto_sync_due: auto-sync folders by (frequency, last sync). The trigger
--   walks the few distinct frequencies and seeks, for each, the folders synced before
--   now - frequency, so its cost follows the due folders, not the table. It leads with
--   auto_sync_enabled like the seed's ix_cloud_folders_auto_sync, of which it is an
--   extension, so a planner without statistics never prefers the shorter one.

SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;

CREATE NONCLUSTERED INDEX ix_cloud_connections_keep_alive ON dbo.cloud_connections (token_refreshed_at, created_at) WHERE status = 'active' AND is_deleted = 0;
CREATE NONCLUSTERED INDEX ix_cloud_folders_auto_sync_due ON dbo.cloud_folders (auto_sync_enabled, sync_frequency_minutes, last_sync_at) WHERE auto_sync_enabled = 1 AND is_deleted = 0;
