-- Change notifications: the providers' subscriptions that push changes to the webhook
-- receivers; see migrations/mssql/V6.

CREATE TABLE cloud_sync_subscriptions (
    id TEXT NOT NULL,
    index_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
    is_deleted INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1)),
    connection_id TEXT NOT NULL,
    folder_id TEXT NULL,
    subscription_kind TEXT NOT NULL CHECK (length(CAST(subscription_kind AS BLOB)) <= 50),
    provider_subscription_id TEXT NOT NULL CHECK (length(CAST(provider_subscription_id AS BLOB)) <= 255),
    provider_resource TEXT NULL CHECK (provider_resource IS NULL OR length(provider_resource) <= 1000),
    encrypted_secret BLOB NULL,
    expires_at TEXT NULL,
    last_notified_at TEXT NULL,
    CONSTRAINT fk_cloud_sync_subscriptions_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_subscriptions_connection FOREIGN KEY (connection_id) REFERENCES cloud_connections (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_subscriptions_folder FOREIGN KEY (folder_id) REFERENCES cloud_folders (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_sync_subscriptions_tenant_consistency FOREIGN KEY (tenant_id, connection_id) REFERENCES cloud_connections (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_cloud_sync_subscriptions_folder_tenant FOREIGN KEY (tenant_id, folder_id) REFERENCES cloud_folders (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT ck_cloud_sync_subscriptions_kind CHECK (subscription_kind IN ('graph_subscription', 'drive_channel', 'box_webhook'))
);

CREATE UNIQUE INDEX ix_cloud_sync_subscriptions_id ON cloud_sync_subscriptions (id);
CREATE UNIQUE INDEX ix_cloud_sync_subscriptions_tenant_id_lookup ON cloud_sync_subscriptions (tenant_id, id);
CREATE UNIQUE INDEX ix_cloud_sync_subscriptions_provider_id ON cloud_sync_subscriptions (subscription_kind, provider_subscription_id) WHERE is_deleted = 0;
CREATE INDEX ix_cloud_sync_subscriptions_connection ON cloud_sync_subscriptions (connection_id) WHERE is_deleted = 0;
CREATE INDEX ix_cloud_sync_subscriptions_expires_at ON cloud_sync_subscriptions (expires_at) WHERE is_deleted = 0;

CREATE INDEX ix_cloud_connections_provider_user ON cloud_connections (provider_type, provider_user_id) WHERE is_deleted = 0;
