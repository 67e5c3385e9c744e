-- Change notifications (issue 16): the providers' subscriptions that push a change to the
-- webhook receivers, so a sync starts seconds after a save instead of at the next poll.
--
-- cloud_sync_subscriptions: one subscription at a provider.
-- * connection_id, folder_id: whose. folder_id is NULL for a subscription that covers the
--   connection (a Graph subscription on a drive root, a Drive changes channel); a Box webhook
--   belongs to one folder.
-- * subscription_kind: graph_subscription, drive_channel or box_webhook (Dropbox's webhook
--   belongs to the app, not to a connection: it has no row).
-- * provider_subscription_id: the provider's id (Graph subscription id, Drive channel id, Box
--   webhook id), the one thing a notification names; unique among live rows of a kind, so a
--   notification finds its row without naming a tenant.
-- * provider_resource: what the subscription watches (Graph `resource`, Drive `resourceId`,
--   needed to stop the channel).
-- * encrypted_secret: Graph clientState or the Drive channel token, encrypted by the token
--   vault; NULL for Box, whose deliveries are signed with the app's keys.
-- * expires_at: when the provider ends it (NULL: never, Box); renewed before.
-- * last_notified_at: the last authentic notification.

SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;

CREATE TABLE dbo.cloud_sync_subscriptions (
    id UNIQUEIDENTIFIER NOT NULL CONSTRAINT df_cloud_sync_subscriptions_id DEFAULT NEWID(),
    index_id BIGINT IDENTITY(1, 1) NOT NULL,
    tenant_id UNIQUEIDENTIFIER NOT NULL,
    created_at DATETIME2 NOT NULL CONSTRAINT df_cloud_sync_subscriptions_created_at DEFAULT SYSUTCDATETIME(),
    updated_at DATETIME2 NOT NULL CONSTRAINT df_cloud_sync_subscriptions_updated_at DEFAULT SYSUTCDATETIME(),
    is_deleted BIT NOT NULL CONSTRAINT df_cloud_sync_subscriptions_is_deleted DEFAULT 0,
    connection_id UNIQUEIDENTIFIER NOT NULL,
    folder_id UNIQUEIDENTIFIER NULL,
    subscription_kind VARCHAR(50) NOT NULL,
    provider_subscription_id VARCHAR(255) NOT NULL,
    provider_resource NVARCHAR(1000) NULL,
    encrypted_secret VARBINARY(MAX) NULL,
    expires_at DATETIME2 NULL,
    last_notified_at DATETIME2 NULL,
    CONSTRAINT ix_cloud_sync_subscriptions_id PRIMARY KEY NONCLUSTERED (id),
    CONSTRAINT fk_cloud_sync_subscriptions_tenant FOREIGN KEY (tenant_id) REFERENCES dbo.tenants (id),
    CONSTRAINT fk_cloud_sync_subscriptions_connection FOREIGN KEY (connection_id) REFERENCES dbo.cloud_connections (id),
    CONSTRAINT fk_cloud_sync_subscriptions_folder FOREIGN KEY (folder_id) REFERENCES dbo.cloud_folders (id),
    CONSTRAINT ck_cloud_sync_subscriptions_tenant_consistency FOREIGN KEY (tenant_id, connection_id) REFERENCES dbo.cloud_connections (tenant_id, id),
    CONSTRAINT fk_cloud_sync_subscriptions_folder_tenant FOREIGN KEY (tenant_id, folder_id) REFERENCES dbo.cloud_folders (tenant_id, id),
    CONSTRAINT ck_cloud_sync_subscriptions_kind CHECK (subscription_kind IN ('graph_subscription', 'drive_channel', 'box_webhook'))
);

CREATE UNIQUE CLUSTERED INDEX ix_cloud_sync_subscriptions_index_id ON dbo.cloud_sync_subscriptions (index_id);
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_sync_subscriptions_tenant_id_lookup ON dbo.cloud_sync_subscriptions (tenant_id, id);
CREATE UNIQUE NONCLUSTERED INDEX ix_cloud_sync_subscriptions_provider_id ON dbo.cloud_sync_subscriptions (subscription_kind, provider_subscription_id) WHERE is_deleted = 0;
CREATE NONCLUSTERED INDEX ix_cloud_sync_subscriptions_connection ON dbo.cloud_sync_subscriptions (connection_id) WHERE is_deleted = 0;
CREATE NONCLUSTERED INDEX ix_cloud_sync_subscriptions_expires_at ON dbo.cloud_sync_subscriptions (expires_at) WHERE is_deleted = 0;

-- A Dropbox notification names accounts, not tenants: the connections of an account are found
-- by provider and account id across tenants.
CREATE NONCLUSTERED INDEX ix_cloud_connections_provider_user ON dbo.cloud_connections (provider_type, provider_user_id) WHERE is_deleted = 0;
