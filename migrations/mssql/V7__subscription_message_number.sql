-- Replay detection for Drive channels (issue 16). A nullable column, so the statement is
-- metadata-only on SQL Server 2019+ / Azure SQL and runs on Babelfish.
--
-- * last_message_number: the highest X-Goog-Message-Number accepted on the channel. Drive
--   numbers a channel's messages in increasing order (the first, `sync`, is 1), so a message
--   whose number is not above it is a replay, or a late retry of a change that the sync queued
--   by the later message already reads; either way it queues nothing. A conditional UPDATE
--   (`last_message_number IS NULL OR last_message_number < @n`) accepts each number once,
--   also between concurrent deliveries. A renewal is a new channel, numbered from 1 again: it
--   clears the column.

SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;

ALTER TABLE dbo.cloud_sync_subscriptions ADD last_message_number BIGINT NULL;
