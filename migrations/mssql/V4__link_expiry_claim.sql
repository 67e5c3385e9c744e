-- The claim of the link-expiry function on an expired link. A nullable column, so the
-- statement is metadata-only on SQL Server 2019+ / Azure SQL and runs on Babelfish.
--
-- * expiry_claimed_until: an invocation removing the expired link at its provider holds it
--   until then (a lease). The link stays active (it no longer resolves: it has expired) until
--   the provider removal succeeded or its failure was recorded, so a run that ends or dies
--   before that leaves it to the next run. The scan of expired links reads
--   ix_cloud_shared_links_expires and skips held rows.

SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;

ALTER TABLE dbo.cloud_shared_links ADD expiry_claimed_until DATETIME2 NULL;
