-- The claim of the link-expiry function on an expired link; see migrations/mssql/V4.

ALTER TABLE cloud_shared_links ADD COLUMN expiry_claimed_until TEXT NULL;
