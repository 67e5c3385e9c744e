-- Replay detection for Drive channels; see migrations/mssql/V7.

ALTER TABLE cloud_sync_subscriptions ADD COLUMN last_message_number INTEGER NULL;
