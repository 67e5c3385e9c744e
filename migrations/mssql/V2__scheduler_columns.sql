-- Bookkeeping of the token-refresh function (issue 6). Nullable columns and a named default,
-- so the statements are metadata-only on SQL Server 2019+ / Azure SQL and run on Babelfish.
-- The indexes over these columns are in V3: a separate migration is a separate batch, so no
-- statement is compiled against a column the same batch is still adding.
--
-- * token_refreshed_at: when token-refresh last stored new tokens (NULL: never, since the
--   connection was created); drives the keep-alive refresh of idle refresh tokens.
-- * refresh_not_before: no refresh attempt before this time. Holds the claim of the
--   invocation refreshing the row (a lease) and, after a failure, the backoff.
-- * refresh_failures: consecutive failed attempts, for the exponential backoff.
-- * refresh_error_id: the open cloud_sync_errors row of the current failure episode, whose
--   retry_count later failures increment instead of adding rows. No foreign key: it is a
--   pointer the function checks (an error resolved or deleted meanwhile starts a new episode).

--
-- One column per ALTER TABLE … ADD, its DEFAULT and CHECK inline: Babelfish refuses an ADD of
-- several items (two columns, or a column and a table constraint), which SQL Server accepts.

SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;

ALTER TABLE dbo.cloud_connections ADD token_refreshed_at DATETIME2 NULL;
ALTER TABLE dbo.cloud_connections ADD refresh_not_before DATETIME2 NULL;
ALTER TABLE dbo.cloud_connections ADD refresh_failures INT NOT NULL
    CONSTRAINT df_cloud_connections_refresh_failures DEFAULT 0
    CONSTRAINT ck_cloud_connections_refresh_failures CHECK (refresh_failures >= 0);
ALTER TABLE dbo.cloud_connections ADD refresh_error_id UNIQUEIDENTIFIER NULL;
