//! The backend-neutral conformance suite: every case runs against SQLite always, and against
//! SQL Server too when `QUODSI_TEST_MSSQL_URL` names a server (a fresh database is created
//! for the run and dropped after it). Cases are registered per backend at start-up, so a
//! backend that is not configured adds no cases rather than skipped ones.
//!
//! Constraint cases send rows the type system would never build (an unknown enum string,
//! a tenant that does not exist) straight through the backend with the same statements the
//! store uses, and assert the typed error names the constraint. A row that breaks more than
//! one constraint may be reported under any of them; the cases list exactly those.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use libtest_mimic::{Arguments, Failed, Trial};
use shared::db::*;
use testkit::*;
use uuid::Uuid;

type CaseFn = fn(Store) -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! cases {
    ($($name:ident),+ $(,)?) => {
        const CASES: &[(&str, CaseFn)] = &[$((stringify!($name), |s| Box::pin($name(s)))),+];
    };
}

cases!(
    connections_round_trip,
    connections_unique_live_account,
    connections_foreign_keys,
    connections_checks,
    connections_scans,
    connections_token_swap_is_compare_and_swap,
    connections_upsert_keeps_one_live_row_per_account,
    connection_delete_cascades,
    connection_links_lists_active_links_into_the_connection,
    folders_round_trip,
    folders_unique_provider_folder,
    folders_foreign_keys,
    folders_checks,
    folders_sync_frequency,
    folders_one_default_export_and_import,
    folders_due_scan,
    folder_and_job_inserts_refuse_an_inactive_or_deleted_connection,
    jobs_lifecycle,
    jobs_one_live_job_per_folder,
    jobs_foreign_keys,
    jobs_checks,
    jobs_scans,
    files_round_trip,
    files_unique_provider_file,
    files_foreign_keys,
    files_checks,
    links_round_trip_and_access,
    links_foreign_keys,
    links_checks,
    links_expiry,
    errors_round_trip,
    errors_foreign_keys,
    errors_checks,
    duplicate_ids_conflict,
    tenant_isolation,
    soft_deleted_rows_are_invisible,
    known_ids_include_deleted_rows_of_the_tenant_only,
    pagination_returns_every_row_once,
    validation_rejects_before_writing,
    text_round_trips_unicode,
    varchar_text_outside_code_page_1252_round_trips,
    refresh_claim_is_won_once_and_needs_the_token_that_was_read,
    refreshed_tokens_are_stored_and_clear_the_refresh_bookkeeping,
    ending_a_refresh_sets_the_status_and_records_one_error,
    releasing_a_refresh_holds_it_off_until_not_before,
    refresh_failures_open_an_episode_then_bump_it,
    refresh_scans_honour_the_lease,
    stale_jobs_fail_once_with_one_error,
    link_expiry_claim_is_won_once_until_the_lease_ends,
    folder_links_lists_active_links_into_the_folder,
    sync_cursors_are_kept_one_per_scope,
    subscriptions_are_found_by_provider_id_across_tenants_once_live,
    drive_message_numbers_are_accepted_once_each_and_renewal_starts_over,
    job_claims_are_won_once_and_leases_guard_every_write,
    jobs_to_dispatch_are_the_unsent_and_the_abandoned,
    synced_files_upsert_by_provider_id_and_deletes_wait_for_the_guard,
    unseen_and_path_deletes_mark_only_their_folder,
    downloads_wait_in_index_order_and_failed_ones_are_retried,
);

// ---- helpers --------------------------------------------------------------------------

async fn tenants(store: &Store) -> (Tenant, Tenant) {
    (Tenant::create(store).await, Tenant::create(store).await)
}

async fn raw(store: &Store, stmt: Stmt, params: Vec<Value>) -> DbResult<Vec<StepOutcome>> {
    store.backend().run(vec![Step::new(stmt, params)]).await
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: DbResult<T>, any_of: &[&str]) {
    match result {
        Err(DbError::Invalid { constraint }) => {
            assert!(any_of.contains(&constraint.as_str()), "rejected by {constraint}, expected one of {any_of:?}")
        }
        other => panic!("expected a violation of one of {any_of:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: DbResult<T>, name: &str) {
    match result {
        Err(DbError::Conflict { constraint }) => assert_eq!(constraint, name),
        other => panic!("expected a conflict on {name}, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: DbResult<T>) {
    assert!(matches!(result, Err(DbError::NotFound)), "expected NotFound, got {result:?}");
}

fn ts(d: chrono::DateTime<Utc>) -> Value {
    Value::from(d)
}

fn page(limit: u16) -> PageRequest {
    PageRequest::first(limit)
}

/// ConnInsert parameters of a valid row (see `Stmt::ConnInsert`).
fn conn_row(t: &Tenant) -> Vec<Value> {
    vec![
        Uuid::new_v4().into(),
        t.id.into(),
        t.user.into(),
        "onedrive".into(),
        format!("acct-{}", Uuid::new_v4().simple()).into(),
        Value::Null(Kind::Text),
        vec![1u8, 2].into(),
        Value::Null(Kind::Bytes),
        ts(Utc::now()),
        "scope".into(),
        "active".into(),
        Value::Null(Kind::Text),
        Value::Null(Kind::Text),
        ts(Utc::now()),
    ]
}

/// FolderInsert parameters of a valid row.
fn folder_row(t: &Tenant, connection: ConnectionId) -> Vec<Value> {
    vec![
        Uuid::new_v4().into(),
        t.id.into(),
        connection.into(),
        "Exports".into(),
        format!("fld-{}", Uuid::new_v4().simple()).into(),
        Value::Null(Kind::Text),
        "export".into(),
        false.into(),
        false.into(),
        false.into(),
        Value::Null(Kind::I32),
        "read_write".into(),
        ts(Utc::now()),
    ]
}

/// JobInsert parameters of a valid row.
fn job_row(t: &Tenant, folder: FolderId) -> Vec<Value> {
    vec![
        Uuid::new_v4().into(),
        t.id.into(),
        folder.into(),
        t.user.into(),
        "upload".into(),
        Value::Null(Kind::Text),
        ts(Utc::now()),
    ]
}

/// FileInsert parameters of a valid row.
fn file_row(t: &Tenant, folder: FolderId) -> Vec<Value> {
    vec![
        Uuid::new_v4().into(),
        t.id.into(),
        folder.into(),
        "model".into(),
        Value::Null(Kind::Uuid),
        format!("file-{}", Uuid::new_v4().simple()).into(),
        "a.qsm".into(),
        Value::Null(Kind::Text),
        Value::I64(10),
        Value::Null(Kind::Text),
        Value::Null(Kind::Text),
        Value::Null(Kind::Timestamp),
        Value::Null(Kind::Timestamp),
        Value::Null(Kind::Timestamp),
        "synced".into(),
        Value::Null(Kind::Text),
        Value::Null(Kind::Text),
        Value::Null(Kind::Text),
        ts(Utc::now()),
    ]
}

/// LinkInsert parameters of a valid file link.
fn link_row(t: &Tenant, file: FileId) -> Vec<Value> {
    vec![
        Uuid::new_v4().into(),
        t.id.into(),
        t.user.into(),
        "file".into(),
        file.into(),
        Value::Null(Kind::Uuid),
        Value::Null(Kind::Text),
        "https://example.com/s/x".into(),
        "view".into(),
        false.into(),
        Value::Null(Kind::Timestamp),
        ts(Utc::now()),
    ]
}

/// ErrorInsert parameters of a valid row.
fn error_row(t: &Tenant, connection: ConnectionId) -> Vec<Value> {
    vec![
        Uuid::new_v4().into(),
        t.id.into(),
        Value::Null(Kind::Uuid),
        connection.into(),
        Value::Null(Kind::Uuid),
        "api".into(),
        Value::Null(Kind::Text),
        "boom".into(),
        Value::Null(Kind::Text),
        Value::Null(Kind::Text),
        ts(Utc::now()),
    ]
}

// ---- connections ----------------------------------------------------------------------

async fn connections_round_trip(store: Store) {
    let (a, _) = tenants(&store).await;
    let new = new_connection(&a);

    let created = store.create_connection(&new).await.unwrap();
    let fetched = store.get_connection(a.id, created.base.id).await.unwrap();

    assert_eq!(fetched, created);
    assert_eq!(fetched.status, ConnectionStatus::Active);
    assert_eq!(fetched.encrypted_access_token, new.encrypted_access_token);
    assert_eq!(fetched.encrypted_refresh_token, new.encrypted_refresh_token);
    assert_eq!(fetched.token_expiry, new.token_expiry.trunc_subsecs_micro());
    assert_eq!(fetched.connection_metadata, new.connection_metadata);
    assert!(!fetched.base.is_deleted);

    let patched = store
        .update_connection(
            a.id,
            created.base.id,
            &ConnectionPatch {
                display_name: Some(None),
                connection_metadata: Some(Some(serde_json::json!({"site_id": "s1"}))),
                status: Some(ConnectionStatus::Error),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.display_name, None);
    assert_eq!(patched.connection_metadata, Some(serde_json::json!({"site_id": "s1"})));
    assert_eq!(patched.status, ConnectionStatus::Error);
    assert_eq!(patched.scope, created.scope, "unpatched columns keep their values");
    assert!(patched.base.updated_at > created.base.updated_at, "updated_at moves on every update");

    let by_status = store
        .list_connections(
            a.id,
            &ConnectionFilter { status: Some(ConnectionStatus::Error), ..Default::default() },
            page(50),
        )
        .await
        .unwrap();
    assert_eq!(by_status.items.len(), 1);
    let by_other_provider = store
        .list_connections(
            a.id,
            &ConnectionFilter { provider_type: Some(ProviderType::Box), ..Default::default() },
            page(50),
        )
        .await
        .unwrap();
    assert!(by_other_provider.items.is_empty());

    let deleted = store.delete_connection(a.id, created.base.id).await.unwrap();
    assert!(deleted.base.is_deleted);
    assert_eq!(deleted.status, ConnectionStatus::Revoked);
    assert_not_found(store.get_connection(a.id, created.base.id).await);
}

trait MicroTrunc {
    fn trunc_subsecs_micro(self) -> Self;
}
impl MicroTrunc for chrono::DateTime<Utc> {
    fn trunc_subsecs_micro(self) -> Self {
        use chrono::SubsecRound;
        self.trunc_subsecs(6)
    }
}

async fn connections_unique_live_account(store: Store) {
    let (a, _) = tenants(&store).await;
    let new = new_connection(&a);
    let first = store.create_connection(&new).await.unwrap();

    assert_conflict(store.create_connection(&new).await, "ix_cloud_connections_tenant_user_provider");

    let other_provider = NewConnection { provider_type: ProviderType::Dropbox, ..new.clone() };
    store.create_connection(&other_provider).await.unwrap();
    store.delete_connection(a.id, first.base.id).await.unwrap();
    let again = store.create_connection(&new).await.unwrap();
    assert_ne!(again.base.id, first.base.id, "a deleted account's key is free again");
}

async fn connections_foreign_keys(store: Store) {
    let (a, b) = tenants(&store).await;

    let mut p = conn_row(&a);
    p[1] = Uuid::new_v4().into();
    assert_invalid(
        raw(&store, Stmt::ConnInsert, p).await,
        &["fk_cloud_connections_tenant", "ck_cloud_connections_tenant_consistency"],
    );

    let mut p = conn_row(&a);
    p[2] = Uuid::new_v4().into();
    assert_invalid(
        raw(&store, Stmt::ConnInsert, p).await,
        &["fk_cloud_connections_user", "ck_cloud_connections_tenant_consistency"],
    );

    let mut p = conn_row(&a);
    p[2] = b.user.into();
    assert_invalid(raw(&store, Stmt::ConnInsert, p).await, &["ck_cloud_connections_tenant_consistency"]);

    let listed = store.list_connections(a.id, &ConnectionFilter::default(), page(50)).await.unwrap();
    assert!(listed.items.is_empty(), "no rejected row was written");
}

async fn connections_checks(store: Store) {
    let (a, _) = tenants(&store).await;

    let mut p = conn_row(&a);
    p[3] = "owncloud".into();
    assert_invalid(raw(&store, Stmt::ConnInsert, p).await, &["ck_cloud_connections_provider_type"]);

    let mut p = conn_row(&a);
    p[10] = "paused".into();
    assert_invalid(raw(&store, Stmt::ConnInsert, p).await, &["ck_cloud_connections_status"]);

    let mut p = conn_row(&a);
    p[4] = Value::Null(Kind::Text);
    assert_invalid(
        raw(&store, Stmt::ConnInsert, p).await,
        &["not_null:cloud_connections.provider_user_id", "not_null:provider_user_id"],
    );
}

async fn connections_scans(store: Store) {
    let (a, _) = tenants(&store).await;
    let now = Utc::now();
    let soon = store
        .create_connection(&NewConnection { token_expiry: now + Duration::minutes(5), ..new_connection(&a) })
        .await
        .unwrap();
    let later = store
        .create_connection(&NewConnection { token_expiry: now + Duration::hours(5), ..new_connection(&a) })
        .await
        .unwrap();
    let revoked = store
        .create_connection(&NewConnection {
            token_expiry: now + Duration::minutes(1),
            status: ConnectionStatus::Revoked,
            ..new_connection(&a)
        })
        .await
        .unwrap();
    let deleted = store
        .create_connection(&NewConnection { token_expiry: now + Duration::minutes(2), ..new_connection(&a) })
        .await
        .unwrap();
    store.delete_connection(a.id, deleted.base.id).await.unwrap();

    let due: Vec<ConnectionId> = store
        .scan_connections_expiring(now + Duration::minutes(15), 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.base.id)
        .collect();
    assert!(due.contains(&soon.base.id));
    assert!(!due.contains(&later.base.id));
    assert!(!due.contains(&revoked.base.id), "only active connections are refreshed");
    assert!(!due.contains(&deleted.base.id));

    let all: Vec<ConnectionId> =
        store.scan_connections(deleted.base.index_id - 1, 1).await.unwrap().into_iter().map(|c| c.base.id).collect();
    assert_eq!(all, vec![deleted.base.id], "the rotation scan sees deleted rows too");
}

async fn connections_token_swap_is_compare_and_swap(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();

    let stale =
        store.swap_connection_tokens(a.id, c.base.id, b"not-the-current", vec![9], Some(vec![9])).await.unwrap();
    let fresh = store
        .swap_connection_tokens(a.id, c.base.id, &c.encrypted_access_token, vec![7, 7], Some(vec![8, 8]))
        .await
        .unwrap();

    assert!(!stale);
    assert!(fresh);
    let after = store.get_connection(a.id, c.base.id).await.unwrap();
    assert_eq!(after.encrypted_access_token, vec![7, 7]);
    assert_eq!(after.encrypted_refresh_token, Some(vec![8, 8]));
}

fn grant(t: &Tenant, account: &str) -> ConnectionGrant {
    ConnectionGrant {
        tenant_id: t.id,
        user_id: t.user,
        provider_type: ProviderType::GDrive,
        provider_user_id: account.to_owned(),
        provider_user_email: Some("ada@example.test".into()),
        token_expiry: Utc::now().trunc_subsecs_micro() + Duration::hours(1),
        scope: "openid email".into(),
        display_name: Some("Drive".into()),
        connection_metadata: Some(serde_json::json!({"account_type": "consumer"})),
    }
}

/// Tokens that name the id they were sealed for, as the vault's binding does.
fn sealed_for(tag: u8, refresh: bool) -> impl Fn(ConnectionId) -> SealedTokens + Send + Sync {
    move |id| {
        let mut access = id.0.as_bytes().to_vec();
        access.push(tag);
        SealedTokens { access, refresh: refresh.then(|| vec![tag, tag]) }
    }
}

async fn connections_upsert_keeps_one_live_row_per_account(store: Store) {
    let (a, b) = tenants(&store).await;
    let account = format!("acct-{}", Uuid::new_v4().simple());

    let first = store.upsert_connection(&grant(&a, &account), sealed_for(1, true)).await.unwrap();
    assert!(first.created);
    let id = first.connection.base.id;
    let mut expected_access = id.0.as_bytes().to_vec();
    expected_access.push(1);
    assert_eq!(first.connection.encrypted_access_token, expected_access, "sealed for the id it got");
    assert_eq!(
        store.find_connection_by_account(a.id, a.user, ProviderType::GDrive, &account).await.unwrap().unwrap().base.id,
        id
    );
    store
        .update_connection(a.id, id, &ConnectionPatch { status: Some(ConnectionStatus::Revoked), ..Default::default() })
        .await
        .unwrap();

    // A reconnect: same row, new tokens; no refresh token keeps the stored one, no name keeps
    // the stored name, and the connection is active again.
    let again = grant(&a, &account);
    let again = ConnectionGrant { display_name: None, scope: "drive".into(), provider_user_email: None, ..again };
    let second = store.upsert_connection(&again, sealed_for(2, false)).await.unwrap();
    assert!(!second.created);
    let c = second.connection;
    assert_eq!(c.base.id, id);
    assert_eq!(c.encrypted_access_token.last(), Some(&2));
    assert_eq!(c.encrypted_refresh_token, Some(vec![1, 1]));
    assert_eq!(c.display_name.as_deref(), Some("Drive"));
    assert_eq!(
        (c.scope.as_str(), c.provider_user_email.as_deref(), c.status),
        ("drive", None, ConnectionStatus::Active)
    );
    assert_eq!(c.token_expiry, again.token_expiry);

    // Another account, another user, another tenant: rows of their own.
    let other = store.upsert_connection(&grant(&a, "another-account"), sealed_for(3, true)).await.unwrap();
    let other_tenant = store.upsert_connection(&grant(&b, &account), sealed_for(4, true)).await.unwrap();
    assert!(other.created && other_tenant.created);
    assert_ne!(other.connection.base.id, id);
    assert_ne!(other_tenant.connection.base.id, id);
    assert!(store.find_connection_by_account(b.id, a.user, ProviderType::GDrive, &account).await.unwrap().is_none());

    // A deleted account's next grant is a new row.
    store.delete_connection(a.id, id).await.unwrap();
    let fresh = store.upsert_connection(&grant(&a, &account), sealed_for(5, true)).await.unwrap();
    assert!(fresh.created);
    assert_ne!(fresh.connection.base.id, id);

    // Racing first grants of one account: one row, both callers answered with it.
    let race = format!("race-{}", Uuid::new_v4().simple());
    let (g1, g2) = (grant(&a, &race), grant(&a, &race));
    let (r1, r2) = futures_util::join!(
        store.upsert_connection(&g1, sealed_for(6, true)),
        store.upsert_connection(&g2, sealed_for(7, true))
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.connection.base.id, r2.connection.base.id);
    let live = store.find_connection_by_account(a.id, a.user, ProviderType::GDrive, &race).await.unwrap().unwrap();
    assert_eq!(live.base.id, r1.connection.base.id);

    assert!(matches!(
        store.upsert_connection(&grant(&a, ""), sealed_for(8, true)).await,
        Err(DbError::Validation { .. })
    ));
}

async fn connection_delete_cascades(store: Store) {
    let (a, _) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let folder_link = store
        .create_link(&NewSharedLink {
            resource_type: ResourceType::Folder,
            file_id: None,
            folder_id: Some(g.folder.base.id),
            ..new_file_link(&a, g.file.base.id)
        })
        .await
        .unwrap();

    store.delete_connection(a.id, g.connection.base.id).await.unwrap();

    assert_not_found(store.get_folder(a.id, g.folder.base.id).await);
    assert_eq!(store.get_job(a.id, g.job.base.id).await.unwrap().status, JobStatus::Cancelled);
    assert!(!store.get_link(a.id, g.link.base.id).await.unwrap().is_active);
    assert!(!store.get_link(a.id, folder_link.base.id).await.unwrap().is_active);
    assert_not_found(store.record_link_access(g.link.base.id).await);
}

async fn connection_links_lists_active_links_into_the_connection(store: Store) {
    // Arrange: a folder link and two file links into the connection, one of them inactive;
    // links into another connection of the tenant and into another tenant's graph.
    let (a, b) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let folder_link = store
        .create_link(&NewSharedLink {
            resource_type: ResourceType::Folder,
            file_id: None,
            folder_id: Some(g.folder.base.id),
            provider_share_id: Some("share-folder".into()),
            ..new_file_link(&a, g.file.base.id)
        })
        .await
        .unwrap();
    let second = store.create_link(&new_file_link(&a, g.file.base.id)).await.unwrap();
    let inactive = store.create_link(&new_file_link(&a, g.file.base.id)).await.unwrap();
    store.deactivate_link(a.id, inactive.base.id).await.unwrap();
    let other_connection = Graph::create(&store, &a).await;
    let other_tenant = Graph::create(&store, &b).await;

    // Act
    let first_page = store.list_connection_links(a.id, g.connection.base.id, page(2)).await.unwrap();
    let rest = store
        .list_connection_links(a.id, g.connection.base.id, PageRequest { after: first_page.next_after, limit: 2 })
        .await
        .unwrap();
    let cross_tenant = store.list_connection_links(b.id, g.connection.base.id, page(10)).await.unwrap();
    store.delete_connection(a.id, g.connection.base.id).await.unwrap();
    let after_delete = store.list_connection_links(a.id, g.connection.base.id, page(10)).await.unwrap();

    // Assert
    assert_eq!(first_page.items.len(), 2);
    assert!(first_page.next_after.is_some());
    assert_eq!(rest.next_after, None);
    let found: Vec<(LinkId, String)> =
        first_page.items.iter().chain(&rest.items).map(|l| (l.link.base.id, l.provider_item_id.clone())).collect();
    let mut expected = vec![
        (g.link.base.id, g.file.provider_file_id.clone()),
        (folder_link.base.id, g.folder.provider_folder_id.clone()),
        (second.base.id, g.file.provider_file_id.clone()),
    ];
    expected.sort_by_key(|(id, _)| *id);
    let mut sorted = found.clone();
    sorted.sort_by_key(|(id, _)| *id);
    assert_eq!(sorted, expected, "active links on the folder and its files, each once, no others");
    let index: Vec<i64> = first_page.items.iter().chain(&rest.items).map(|l| l.link.base.index_id).collect();
    assert!(index.windows(2).all(|w| w[0] < w[1]), "index order: {index:?}");
    assert!(!found.iter().any(|(id, _)| *id == other_connection.link.base.id || *id == other_tenant.link.base.id));
    assert!(cross_tenant.items.is_empty(), "another tenant sees none");
    assert!(after_delete.items.is_empty(), "deleting the connection leaves no active link");
}

// ---- folders --------------------------------------------------------------------------

async fn folder_and_job_inserts_refuse_an_inactive_or_deleted_connection(store: Store) {
    // Arrange: folders on an active connection, then the connection stops being usable the way
    // a revoke, a failed refresh or a delete would leave it after the caller's own check.
    let (a, _) = tenants(&store).await;
    let revoked = store.create_connection(&new_connection(&a)).await.unwrap();
    let revoked_folder = store.create_folder(&new_folder(&a, revoked.base.id)).await.unwrap();
    let expired = store.create_connection(&new_connection(&a)).await.unwrap();
    let deleted = store.create_connection(&new_connection(&a)).await.unwrap();
    let deleted_folder = store.create_folder(&new_folder(&a, deleted.base.id)).await.unwrap();
    let live = store.create_connection(&new_connection(&a)).await.unwrap();
    let live_folder = store.create_folder(&new_folder(&a, live.base.id)).await.unwrap();
    let gone_folder = store.create_folder(&new_folder(&a, live.base.id)).await.unwrap();
    let status = |s| ConnectionPatch { status: Some(s), ..Default::default() };
    store.update_connection(a.id, revoked.base.id, &status(ConnectionStatus::Revoked)).await.unwrap();
    store.update_connection(a.id, expired.base.id, &status(ConnectionStatus::Expired)).await.unwrap();
    store.delete_connection(a.id, deleted.base.id).await.unwrap();
    store.delete_folder(a.id, gone_folder.base.id).await.unwrap();
    let default_export =
        |c: Uuid| NewFolder { is_default_export_folder: true, ..new_folder(&a, ConnectionId::from(c)) };

    // Act
    let folder_on_revoked = store.create_folder(&new_folder(&a, revoked.base.id)).await;
    let default_on_expired = store.create_folder(&default_export(expired.base.id.0)).await;
    let folder_on_deleted = store.create_folder(&new_folder(&a, deleted.base.id)).await;
    let job_on_revoked = store.create_job(&new_job(&a, revoked_folder.base.id)).await;
    let job_on_deleted = store.create_job(&new_job(&a, deleted_folder.base.id)).await;
    let job_on_deleted_folder = store.create_job(&new_job(&a, gone_folder.base.id)).await;
    let folder_on_live = store.create_folder(&default_export(live.base.id.0)).await;
    let job_on_live = store.create_job(&new_job(&a, live_folder.base.id)).await;

    // Assert
    assert_not_found(folder_on_revoked);
    assert_not_found(default_on_expired);
    assert_not_found(folder_on_deleted);
    assert_not_found(job_on_revoked);
    assert_not_found(job_on_deleted);
    assert_not_found(job_on_deleted_folder);
    for c in [&revoked, &expired, &deleted] {
        let filter = FolderFilter { connection_id: Some(c.base.id), ..Default::default() };
        let folders = store.list_folders(a.id, &filter, page(10)).await.unwrap().items;
        assert!(folders.iter().all(|f| f.base.id == revoked_folder.base.id), "no folder written: {folders:?}");
    }
    let jobs = store.list_jobs(a.id, &SyncJobFilter::default(), page(10)).await.unwrap().items;
    assert_eq!(jobs.len(), 1, "only the live folder's job: {jobs:?}");
    assert_eq!(jobs[0].folder_id, live_folder.base.id);
    assert!(folder_on_live.unwrap().is_default_export_folder, "an active connection still takes folders");
    assert_eq!(job_on_live.unwrap().status, JobStatus::Pending);
}

async fn folders_round_trip(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let new = new_folder(&a, c.base.id);

    let created = store.create_folder(&new).await.unwrap();
    assert_eq!(store.get_folder(a.id, created.base.id).await.unwrap(), created);
    assert_eq!(created.folder_name, new.folder_name);
    assert!(!created.auto_sync_enabled);

    let patched = store
        .update_folder(
            a.id,
            created.base.id,
            &FolderPatch {
                folder_path: Some(None),
                auto_sync_enabled: Some(true),
                sync_frequency_minutes: Some(Some(60)),
                folder_permissions: Some(FolderPermissions::ReadOnly),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.folder_path, None);
    assert!(patched.auto_sync_enabled);
    assert_eq!(patched.sync_frequency_minutes, Some(60));
    assert_eq!(patched.folder_permissions, FolderPermissions::ReadOnly);
    assert_eq!(patched.folder_name, created.folder_name);
    assert!(patched.base.updated_at > created.base.updated_at);

    let filtered = store
        .list_folders(
            a.id,
            &FolderFilter { connection_id: Some(c.base.id), folder_type: Some(FolderType::Models) },
            page(10),
        )
        .await
        .unwrap();
    assert_eq!(filtered.items.len(), 1);

    store.delete_folder(a.id, created.base.id).await.unwrap();
    assert_not_found(store.get_folder(a.id, created.base.id).await);
    assert_not_found(store.delete_folder(a.id, created.base.id).await);
}

async fn folders_unique_provider_folder(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let new = new_folder(&a, c.base.id);
    let first = store.create_folder(&new).await.unwrap();

    assert_conflict(store.create_folder(&new).await, "ix_cloud_folders_provider_folder");

    store.delete_folder(a.id, first.base.id).await.unwrap();
    store.create_folder(&new).await.unwrap();
}

async fn folders_foreign_keys(store: Store) {
    let (a, b) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let cb = store.create_connection(&new_connection(&b)).await.unwrap();

    let mut p = folder_row(&a, c.base.id);
    p[1] = Uuid::new_v4().into();
    assert_invalid(
        raw(&store, Stmt::FolderInsert, p).await,
        &["fk_cloud_folders_tenant", "ck_cloud_folders_tenant_consistency"],
    );

    let p = folder_row(&a, ConnectionId::generate());
    assert_invalid(
        raw(&store, Stmt::FolderInsert, p).await,
        &["fk_cloud_folders_connection", "ck_cloud_folders_tenant_consistency"],
    );

    let p = folder_row(&a, cb.base.id);
    assert_invalid(raw(&store, Stmt::FolderInsert, p).await, &["ck_cloud_folders_tenant_consistency"]);
}

async fn folders_checks(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();

    let mut p = folder_row(&a, c.base.id);
    p[6] = "scratch".into();
    assert_invalid(raw(&store, Stmt::FolderInsert, p).await, &["ck_cloud_folders_folder_type"]);

    let mut p = folder_row(&a, c.base.id);
    p[11] = "read_everything".into();
    assert_invalid(raw(&store, Stmt::FolderInsert, p).await, &["ck_cloud_folders_permissions"]);
}

async fn folders_sync_frequency(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let with = |enabled: bool, minutes: Option<i32>| NewFolder {
        auto_sync_enabled: enabled,
        sync_frequency_minutes: minutes,
        ..new_folder(&a, c.base.id)
    };

    for (enabled, minutes) in [(true, None), (true, Some(4)), (true, Some(10081)), (false, Some(0)), (true, Some(-5))] {
        assert_invalid(store.create_folder(&with(enabled, minutes)).await, &["ck_cloud_folders_sync_frequency"]);
    }
    for (enabled, minutes) in [(true, Some(5)), (true, Some(10080)), (false, None), (false, Some(30))] {
        store.create_folder(&with(enabled, minutes)).await.unwrap();
    }

    let f = store.create_folder(&with(true, Some(15))).await.unwrap();
    assert_invalid(
        store
            .update_folder(a.id, f.base.id, &FolderPatch { sync_frequency_minutes: Some(None), ..Default::default() })
            .await,
        &["ck_cloud_folders_sync_frequency"],
    );
}

async fn folders_one_default_export_and_import(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let default_export = || NewFolder { is_default_export_folder: true, ..new_folder(&a, c.base.id) };

    let first = store.create_folder(&default_export()).await.unwrap();
    let second = store.create_folder(&default_export()).await.unwrap();

    assert!(
        !store.get_folder(a.id, first.base.id).await.unwrap().is_default_export_folder,
        "the old default was cleared"
    );
    assert!(second.is_default_export_folder);

    let third = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    store
        .update_folder(a.id, third.base.id, &FolderPatch { is_default_import_folder: Some(true), ..Default::default() })
        .await
        .unwrap();
    store
        .update_folder(a.id, first.base.id, &FolderPatch { is_default_import_folder: Some(true), ..Default::default() })
        .await
        .unwrap();
    assert!(!store.get_folder(a.id, third.base.id).await.unwrap().is_default_import_folder);
    assert!(store.get_folder(a.id, first.base.id).await.unwrap().is_default_import_folder);

    // The database itself refuses a second default, whatever the store would have cleared.
    let mut p = folder_row(&a, c.base.id);
    p[7] = true.into();
    assert_conflict(raw(&store, Stmt::FolderInsert, p).await, "ix_cloud_folders_default_export");
    let mut p = folder_row(&a, c.base.id);
    p[8] = true.into();
    assert_conflict(raw(&store, Stmt::FolderInsert, p).await, "ix_cloud_folders_default_import");
}

async fn folders_due_scan(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let auto = |minutes: i32| NewFolder {
        auto_sync_enabled: true,
        sync_frequency_minutes: Some(minutes),
        ..new_folder(&a, c.base.id)
    };
    let never_synced = store.create_folder(&auto(30)).await.unwrap();
    let recently = store.create_folder(&auto(30)).await.unwrap();
    let long_ago = store.create_folder(&auto(30)).await.unwrap();
    let busy = store.create_folder(&auto(30)).await.unwrap();
    let manual = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    let now = Utc::now();
    for (f, at) in [(&recently, now - Duration::minutes(10)), (&long_ago, now - Duration::minutes(31))] {
        store
            .update_folder(a.id, f.base.id, &FolderPatch { last_sync_at: Some(Some(at)), ..Default::default() })
            .await
            .unwrap();
    }
    store.create_job(&new_job(&a, busy.base.id)).await.unwrap();

    let due: Vec<FolderId> = store.scan_folders_due(now, 1000).await.unwrap().into_iter().map(|f| f.base.id).collect();

    assert!(due.contains(&never_synced.base.id));
    assert!(due.contains(&long_ago.base.id));
    assert!(!due.contains(&recently.base.id));
    assert!(!due.contains(&busy.base.id), "a folder with a live job is not due");
    assert!(!due.contains(&manual.base.id));

    store
        .update_connection(
            a.id,
            c.base.id,
            &ConnectionPatch { status: Some(ConnectionStatus::Expired), ..Default::default() },
        )
        .await
        .unwrap();
    let due_after: Vec<FolderId> =
        store.scan_folders_due(now, 1000).await.unwrap().into_iter().map(|f| f.base.id).collect();
    assert!(!due_after.contains(&never_synced.base.id), "folders of an inactive connection are never due");
}

// ---- jobs -----------------------------------------------------------------------------

async fn jobs_lifecycle(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let f = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();

    let job = store.create_job(&new_job(&a, f.base.id)).await.unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.progress_percentage, Percent::default());
    assert_eq!((job.files_processed, job.bytes_transferred, job.started_at), (0, 0, None));

    let early = store
        .update_job(a.id, job.base.id, &JobUpdate { status: Some(JobStatus::Completed), ..Default::default() })
        .await;
    assert!(matches!(early, Err(DbError::State(_))), "pending cannot complete: {early:?}");

    let running = store
        .update_job(
            a.id,
            job.base.id,
            &JobUpdate { status: Some(JobStatus::Running), files_total: Some(Some(10)), ..Default::default() },
        )
        .await
        .unwrap();
    assert!(running.started_at.is_some());
    let progressed = store
        .update_job(
            a.id,
            job.base.id,
            &JobUpdate {
                progress_percentage: Percent::from_f64(33.33),
                files_processed: Some(3),
                bytes_transferred: Some(4096),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(progressed.progress_percentage.hundredths(), 3333);
    assert_eq!(progressed.status, JobStatus::Running);
    assert_eq!(progressed.started_at, running.started_at, "started_at is set once");

    let done = store
        .update_job(a.id, job.base.id, &JobUpdate { status: Some(JobStatus::Completed), ..Default::default() })
        .await
        .unwrap();
    assert!(done.completed_at.is_some());
    assert_eq!(store.get_folder(a.id, f.base.id).await.unwrap().last_sync_at, done.completed_at);
    assert_eq!(store.get_connection(a.id, c.base.id).await.unwrap().last_sync_at, done.completed_at);

    let after_done = store
        .update_job(a.id, job.base.id, &JobUpdate { status: Some(JobStatus::Cancelled), ..Default::default() })
        .await;
    assert!(matches!(after_done, Err(DbError::State(_))), "a completed job is final: {after_done:?}");

    let listed = store
        .list_jobs(a.id, &SyncJobFilter { folder_id: Some(f.base.id), status: Some(JobStatus::Completed) }, page(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
}

async fn jobs_one_live_job_per_folder(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let f = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();

    let first = store.create_job(&new_job(&a, f.base.id)).await.unwrap();
    assert_conflict(store.create_job(&new_job(&a, f.base.id)).await, "ix_cloud_sync_jobs_folder_live");

    store
        .update_job(a.id, first.base.id, &JobUpdate { status: Some(JobStatus::Cancelled), ..Default::default() })
        .await
        .unwrap();
    store.create_job(&new_job(&a, f.base.id)).await.unwrap();
}

async fn jobs_foreign_keys(store: Store) {
    let (a, b) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let f = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    let cb = store.create_connection(&new_connection(&b)).await.unwrap();
    let fb = store.create_folder(&new_folder(&b, cb.base.id)).await.unwrap();

    let mut p = job_row(&a, f.base.id);
    p[1] = Uuid::new_v4().into();
    assert_invalid(
        raw(&store, Stmt::JobInsert, p).await,
        &[
            "fk_cloud_sync_jobs_tenant",
            "ck_cloud_sync_jobs_tenant_consistency",
            "fk_cloud_sync_jobs_initiated_by_tenant",
        ],
    );

    let p = job_row(&a, FolderId::generate());
    assert_invalid(
        raw(&store, Stmt::JobInsert, p).await,
        &["fk_cloud_sync_jobs_folder", "ck_cloud_sync_jobs_tenant_consistency"],
    );

    let p = job_row(&a, fb.base.id);
    assert_invalid(raw(&store, Stmt::JobInsert, p).await, &["ck_cloud_sync_jobs_tenant_consistency"]);

    let mut p = job_row(&a, f.base.id);
    p[3] = Uuid::new_v4().into();
    assert_invalid(
        raw(&store, Stmt::JobInsert, p).await,
        &["fk_cloud_sync_jobs_initiated_by", "fk_cloud_sync_jobs_initiated_by_tenant"],
    );

    let mut p = job_row(&a, f.base.id);
    p[3] = b.user.into();
    assert_invalid(raw(&store, Stmt::JobInsert, p).await, &["fk_cloud_sync_jobs_initiated_by_tenant"]);

    let mut p = job_row(&a, f.base.id);
    p[3] = Value::Null(Kind::Uuid);
    raw(&store, Stmt::JobInsert, p).await.expect("an auto-sync job has no initiating user");
}

/// JobUpdate parameters that move a pending job to running with one raw override.
fn job_update_row(t: &Tenant, job: JobId, at: usize, v: Value) -> Vec<Value> {
    let mut p: Vec<Value> = vec![t.id.into(), job.into(), "pending".into(), ts(Utc::now()), "running".into()];
    for _ in 0..6 {
        p.push(false.into());
        p.push(Value::Null(Kind::I64));
    }
    p[at] = v;
    if at >= 6 && at.is_multiple_of(2) {
        p[at - 1] = true.into();
    }
    p
}

async fn jobs_checks(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let f = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();

    let mut p = job_row(&a, f.base.id);
    p[4] = "mirror".into();
    assert_invalid(raw(&store, Stmt::JobInsert, p).await, &["ck_cloud_sync_jobs_job_type"]);

    let job = store.create_job(&new_job(&a, f.base.id)).await.unwrap();
    let id = job.base.id;
    assert_invalid(
        raw(&store, Stmt::JobUpdate, job_update_row(&a, id, 4, "paused".into())).await,
        &["ck_cloud_sync_jobs_status"],
    );
    assert_invalid(
        raw(&store, Stmt::JobUpdate, job_update_row(&a, id, 6, Value::Hundredths(10001))).await,
        &["ck_cloud_sync_jobs_progress_range"],
    );
    assert_invalid(
        raw(&store, Stmt::JobUpdate, job_update_row(&a, id, 6, Value::Hundredths(-1))).await,
        &["ck_cloud_sync_jobs_progress_range"],
    );

    store
        .update_job(
            a.id,
            id,
            &JobUpdate { status: Some(JobStatus::Running), files_total: Some(Some(3)), ..Default::default() },
        )
        .await
        .unwrap();
    assert_invalid(
        store.update_job(a.id, id, &JobUpdate { files_processed: Some(4), ..Default::default() }).await,
        &["ck_cloud_sync_jobs_file_counts"],
    );
    assert_invalid(
        store.update_job(a.id, id, &JobUpdate { files_processed: Some(-1), ..Default::default() }).await,
        &["ck_cloud_sync_jobs_file_counts"],
    );
    assert_invalid(
        store.update_job(a.id, id, &JobUpdate { bytes_transferred: Some(-1), ..Default::default() }).await,
        &["ck_cloud_sync_jobs_bytes"],
    );
    let unchanged = store.get_job(a.id, id).await.unwrap();
    assert_eq!((unchanged.files_processed, unchanged.bytes_transferred), (0, 0), "rejected updates wrote nothing");
}

async fn jobs_scans(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let f1 = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    let f2 = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    let pending = store.create_job(&new_job(&a, f1.base.id)).await.unwrap();
    let running = store.create_job(&new_job(&a, f2.base.id)).await.unwrap();
    store
        .update_job(a.id, running.base.id, &JobUpdate { status: Some(JobStatus::Running), ..Default::default() })
        .await
        .unwrap();

    let pending_ids: Vec<JobId> = store.scan_jobs_pending(1000).await.unwrap().into_iter().map(|j| j.base.id).collect();
    assert!(pending_ids.contains(&pending.base.id));
    assert!(!pending_ids.contains(&running.base.id));

    let stale_later: Vec<JobId> = store
        .scan_jobs_stale(Utc::now() + Duration::minutes(1), 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.base.id)
        .collect();
    let stale_earlier: Vec<JobId> = store
        .scan_jobs_stale(Utc::now() - Duration::hours(1), 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.base.id)
        .collect();
    assert!(stale_later.contains(&running.base.id));
    assert!(!stale_later.contains(&pending.base.id));
    assert!(!stale_earlier.contains(&running.base.id));
}

// ---- files ----------------------------------------------------------------------------

async fn files_round_trip(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let f = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    let new = new_file(&a, f.base.id);

    let created = store.create_file(&new).await.unwrap();
    assert_eq!(store.get_file(a.id, created.base.id).await.unwrap(), created);
    assert_eq!(created.content_hash, new.content_hash);

    let modified = Utc::now();
    let patched = store
        .update_file(
            a.id,
            created.base.id,
            &CloudFilePatch {
                sync_status: Some(SyncStatus::NeedsUpload),
                content_hash: Some(None),
                cloud_modified_at: Some(Some(modified)),
                file_size_bytes: Some(4096),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.sync_status, SyncStatus::NeedsUpload);
    assert_eq!(patched.content_hash, None);
    assert_eq!(patched.cloud_modified_at, Some(modified.trunc_subsecs_micro()));
    assert_eq!(patched.file_size_bytes, 4096);

    let by_entity = store
        .list_files(a.id, &CloudFileFilter { quodsi_entity_id: new.quodsi_entity_id, ..Default::default() }, page(10))
        .await
        .unwrap();
    assert_eq!(by_entity.items.len(), 1);
    let by_status = store
        .list_files(a.id, &CloudFileFilter { sync_status: Some(SyncStatus::Synced), ..Default::default() }, page(10))
        .await
        .unwrap();
    assert!(by_status.items.is_empty());

    let link = store.create_link(&new_file_link(&a, created.base.id)).await.unwrap();
    store.delete_file(a.id, created.base.id).await.unwrap();
    assert_not_found(store.get_file(a.id, created.base.id).await);
    assert!(!store.get_link(a.id, link.base.id).await.unwrap().is_active, "links to a deleted file stop working");
}

async fn files_unique_provider_file(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let f = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    let new = new_file(&a, f.base.id);
    let first = store.create_file(&new).await.unwrap();

    assert_conflict(store.create_file(&new).await, "ix_cloud_files_provider_file");

    store.delete_file(a.id, first.base.id).await.unwrap();
    store.create_file(&new).await.unwrap();
}

async fn files_foreign_keys(store: Store) {
    let (a, b) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let f = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    let cb = store.create_connection(&new_connection(&b)).await.unwrap();
    let fb = store.create_folder(&new_folder(&b, cb.base.id)).await.unwrap();

    let mut p = file_row(&a, f.base.id);
    p[1] = Uuid::new_v4().into();
    assert_invalid(
        raw(&store, Stmt::FileInsert, p).await,
        &["fk_cloud_files_tenant", "ck_cloud_files_tenant_consistency"],
    );
    let p = file_row(&a, FolderId::generate());
    assert_invalid(
        raw(&store, Stmt::FileInsert, p).await,
        &["fk_cloud_files_folder", "ck_cloud_files_tenant_consistency"],
    );
    let p = file_row(&a, fb.base.id);
    assert_invalid(raw(&store, Stmt::FileInsert, p).await, &["ck_cloud_files_tenant_consistency"]);
}

async fn files_checks(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let f = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();

    let mut p = file_row(&a, f.base.id);
    p[3] = "spreadsheet".into();
    assert_invalid(raw(&store, Stmt::FileInsert, p).await, &["ck_cloud_files_file_type"]);

    let mut p = file_row(&a, f.base.id);
    p[14] = "stale".into();
    assert_invalid(raw(&store, Stmt::FileInsert, p).await, &["ck_cloud_files_sync_status"]);

    let negative = NewCloudFile { file_size_bytes: -1, ..new_file(&a, f.base.id) };
    assert_invalid(store.create_file(&negative).await, &["ck_cloud_files_size"]);
}

// ---- shared links ---------------------------------------------------------------------

async fn links_round_trip_and_access(store: Store) {
    let (a, _) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    assert_eq!(store.get_link(a.id, g.link.base.id).await.unwrap(), g.link);
    assert!(g.link.is_active);
    assert_eq!(g.link.access_count, 0);

    let first = store.record_link_access(g.link.base.id).await.unwrap();
    let second = store.record_link_access(g.link.base.id).await.unwrap();
    assert_eq!((first.access_count, second.access_count), (1, 2));
    assert!(second.last_accessed_at.is_some());
    assert_eq!(store.get_link_public(g.link.base.id).await.unwrap().base.tenant_id, a.id);

    let listed = store
        .list_links(
            a.id,
            &SharedLinkFilter { file_id: Some(g.file.base.id), is_active: Some(true), ..Default::default() },
            page(10),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    let off = store.deactivate_link(a.id, g.link.base.id).await.unwrap();
    assert!(!off.is_active);
    assert_not_found(store.record_link_access(g.link.base.id).await);
    let inactive = store
        .list_links(a.id, &SharedLinkFilter { is_active: Some(false), ..Default::default() }, page(10))
        .await
        .unwrap();
    assert_eq!(inactive.items.len(), 1);

    store.delete_link(a.id, g.link.base.id).await.unwrap();
    assert_not_found(store.get_link(a.id, g.link.base.id).await);
    assert_not_found(store.get_link_public(g.link.base.id).await);
}

async fn links_foreign_keys(store: Store) {
    let (a, b) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let gb = Graph::create(&store, &b).await;
    let file = g.file.base.id;

    let mut p = link_row(&a, file);
    p[1] = Uuid::new_v4().into();
    assert_invalid(
        raw(&store, Stmt::LinkInsert, p).await,
        &[
            "fk_cloud_shared_links_tenant",
            "fk_cloud_shared_links_created_by_tenant",
            "fk_cloud_shared_links_file_tenant",
        ],
    );
    let mut p = link_row(&a, file);
    p[2] = Uuid::new_v4().into();
    assert_invalid(
        raw(&store, Stmt::LinkInsert, p).await,
        &["fk_cloud_shared_links_created_by", "fk_cloud_shared_links_created_by_tenant"],
    );
    let mut p = link_row(&a, file);
    p[2] = b.user.into();
    assert_invalid(raw(&store, Stmt::LinkInsert, p).await, &["fk_cloud_shared_links_created_by_tenant"]);

    let p = link_row(&a, FileId::generate());
    assert_invalid(
        raw(&store, Stmt::LinkInsert, p).await,
        &["fk_cloud_shared_links_file", "fk_cloud_shared_links_file_tenant"],
    );
    let p = link_row(&a, gb.file.base.id);
    assert_invalid(raw(&store, Stmt::LinkInsert, p).await, &["fk_cloud_shared_links_file_tenant"]);

    let folder_link = |folder: Uuid| {
        let mut p = link_row(&a, file);
        p[3] = "folder".into();
        p[4] = Value::Null(Kind::Uuid);
        p[5] = folder.into();
        p
    };
    assert_invalid(
        raw(&store, Stmt::LinkInsert, folder_link(Uuid::new_v4())).await,
        &["fk_cloud_shared_links_folder", "fk_cloud_shared_links_folder_tenant"],
    );
    assert_invalid(
        raw(&store, Stmt::LinkInsert, folder_link(gb.folder.base.id.0)).await,
        &["fk_cloud_shared_links_folder_tenant"],
    );
    raw(&store, Stmt::LinkInsert, folder_link(g.folder.base.id.0)).await.expect("a valid folder link");
}

async fn links_checks(store: Store) {
    let (a, _) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let (file, folder) = (g.file.base.id, g.folder.base.id);

    let mut p = link_row(&a, file);
    p[8] = "own".into();
    assert_invalid(raw(&store, Stmt::LinkInsert, p).await, &["ck_cloud_shared_links_share_type"]);

    let resource_cases: [(&str, Value, Value); 4] = [
        ("file", Value::Null(Kind::Uuid), Value::Null(Kind::Uuid)),
        ("file", file.into(), folder.into()),
        ("folder", file.into(), Value::Null(Kind::Uuid)),
        ("share", file.into(), Value::Null(Kind::Uuid)),
    ];
    for (resource, file_id, folder_id) in resource_cases {
        let mut p = link_row(&a, file);
        p[3] = resource.into();
        p[4] = file_id;
        p[5] = folder_id;
        assert_invalid(raw(&store, Stmt::LinkInsert, p).await, &["ck_cloud_shared_links_resource"]);
    }
}

async fn links_expiry(store: Store) {
    let (a, _) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let now = Utc::now();
    let expiring = |at| NewSharedLink { expires_at: Some(at), ..new_file_link(&a, g.file.base.id) };
    let past = store.create_link(&expiring(now - Duration::minutes(1))).await.unwrap();
    let future = store.create_link(&expiring(now + Duration::hours(1))).await.unwrap();

    assert_not_found(store.record_link_access(past.base.id).await);
    store.record_link_access(future.base.id).await.unwrap();

    let expired: Vec<LinkId> =
        store.scan_links_expired(now, 1000).await.unwrap().into_iter().map(|l| l.base.id).collect();
    assert!(expired.contains(&past.base.id));
    assert!(!expired.contains(&future.base.id));
    assert!(!expired.contains(&g.link.base.id), "a link without expiry never expires");

    assert!(store.expire_link(past.base.id).await.unwrap());
    assert!(!store.expire_link(past.base.id).await.unwrap(), "expiring twice does nothing");
    assert!(!store.expire_link(future.base.id).await.unwrap(), "an unexpired link is left alone");
    assert!(!store.get_link(a.id, past.base.id).await.unwrap().is_active);
}

// ---- sync errors ----------------------------------------------------------------------

async fn errors_round_trip(store: Store) {
    let (a, _) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    assert_eq!(store.get_error(a.id, g.error.base.id).await.unwrap(), g.error);
    assert_eq!(g.error.retry_count, 0);

    let unresolved = SyncErrorFilter { unresolved: true, ..Default::default() };
    assert_eq!(store.list_errors(a.id, &unresolved, page(10)).await.unwrap().items.len(), 1);

    let resolved = store.resolve_error(a.id, g.error.base.id, Some("reconnected")).await.unwrap();
    assert!(resolved.resolved_at.is_some());
    assert_eq!(resolved.resolution_notes.as_deref(), Some("reconnected"));
    assert!(matches!(store.resolve_error(a.id, g.error.base.id, None).await, Err(DbError::State(_))));
    assert!(store.list_errors(a.id, &unresolved, page(10)).await.unwrap().items.is_empty());

    let by_type = SyncErrorFilter {
        error_type: Some(ErrorType::Network),
        connection_id: Some(g.connection.base.id),
        unresolved: false,
    };
    assert_eq!(store.list_errors(a.id, &by_type, page(10)).await.unwrap().items.len(), 1);

    let full = store
        .create_error(&NewSyncError {
            sync_job_id: Some(g.job.base.id),
            file_id: Some(g.file.base.id),
            ..new_error(&a, g.connection.base.id)
        })
        .await
        .unwrap();
    assert_eq!(full.sync_job_id, Some(g.job.base.id));
    store.delete_error(a.id, full.base.id).await.unwrap();
    assert_not_found(store.get_error(a.id, full.base.id).await);
}

async fn errors_foreign_keys(store: Store) {
    let (a, b) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let gb = Graph::create(&store, &b).await;
    let conn = g.connection.base.id;

    let mut p = error_row(&a, conn);
    p[1] = Uuid::new_v4().into();
    assert_invalid(
        raw(&store, Stmt::ErrorInsert, p).await,
        &["fk_cloud_sync_errors_tenant", "fk_cloud_sync_errors_connection_tenant"],
    );
    let p = error_row(&a, ConnectionId::generate());
    assert_invalid(
        raw(&store, Stmt::ErrorInsert, p).await,
        &["fk_cloud_sync_errors_connection", "fk_cloud_sync_errors_connection_tenant"],
    );
    let p = error_row(&a, gb.connection.base.id);
    assert_invalid(raw(&store, Stmt::ErrorInsert, p).await, &["fk_cloud_sync_errors_connection_tenant"]);

    let mut p = error_row(&a, conn);
    p[2] = Uuid::new_v4().into();
    assert_invalid(
        raw(&store, Stmt::ErrorInsert, p).await,
        &["fk_cloud_sync_errors_sync_job", "fk_cloud_sync_errors_sync_job_tenant"],
    );
    let mut p = error_row(&a, conn);
    p[2] = gb.job.base.id.into();
    assert_invalid(raw(&store, Stmt::ErrorInsert, p).await, &["fk_cloud_sync_errors_sync_job_tenant"]);

    let mut p = error_row(&a, conn);
    p[4] = Uuid::new_v4().into();
    assert_invalid(
        raw(&store, Stmt::ErrorInsert, p).await,
        &["fk_cloud_sync_errors_file", "fk_cloud_sync_errors_file_tenant"],
    );
    let mut p = error_row(&a, conn);
    p[4] = gb.file.base.id.into();
    assert_invalid(raw(&store, Stmt::ErrorInsert, p).await, &["fk_cloud_sync_errors_file_tenant"]);
}

async fn errors_checks(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();

    let mut p = error_row(&a, c.base.id);
    p[5] = "cosmic_ray".into();
    assert_invalid(raw(&store, Stmt::ErrorInsert, p).await, &["ck_cloud_sync_errors_error_type"]);
}

// ---- cross-cutting --------------------------------------------------------------------

async fn duplicate_ids_conflict(store: Store) {
    // The copies go to tenant B, so only the id itself collides, not (tenant_id, id).
    let (a, b) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let gb = Graph::create(&store, &b).await;
    let with_id = |mut p: Vec<Value>, id: Value| {
        p[0] = id;
        p
    };
    let (cb, fb) = (gb.connection.base.id, gb.folder.base.id);
    assert_conflict(
        raw(&store, Stmt::ConnInsert, with_id(conn_row(&b), g.connection.base.id.into())).await,
        "ix_cloud_connections_id",
    );
    assert_conflict(
        raw(&store, Stmt::FolderInsert, with_id(folder_row(&b, cb), g.folder.base.id.into())).await,
        "ix_cloud_folders_id",
    );
    assert_conflict(
        raw(&store, Stmt::FileInsert, with_id(file_row(&b, fb), g.file.base.id.into())).await,
        "ix_cloud_files_id",
    );
    assert_conflict(
        raw(&store, Stmt::LinkInsert, with_id(link_row(&b, gb.file.base.id), g.link.base.id.into())).await,
        "ix_cloud_shared_links_id",
    );
    assert_conflict(
        raw(&store, Stmt::ErrorInsert, with_id(error_row(&b, cb), g.error.base.id.into())).await,
        "ix_cloud_sync_errors_id",
    );
    store
        .update_job(b.id, gb.job.base.id, &JobUpdate { status: Some(JobStatus::Cancelled), ..Default::default() })
        .await
        .unwrap();
    assert_conflict(
        raw(&store, Stmt::JobInsert, with_id(job_row(&b, fb), g.job.base.id.into())).await,
        "ix_cloud_sync_jobs_id",
    );
}

async fn tenant_isolation(store: Store) {
    let (a, b) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let bt = b.id;

    assert_not_found(store.get_connection(bt, g.connection.base.id).await);
    assert_not_found(store.get_folder(bt, g.folder.base.id).await);
    assert_not_found(store.get_job(bt, g.job.base.id).await);
    assert_not_found(store.get_file(bt, g.file.base.id).await);
    assert_not_found(store.get_link(bt, g.link.base.id).await);
    assert_not_found(store.get_error(bt, g.error.base.id).await);

    assert_not_found(
        store
            .update_connection(
                bt,
                g.connection.base.id,
                &ConnectionPatch { display_name: Some(None), ..Default::default() },
            )
            .await,
    );
    assert_not_found(
        store
            .update_folder(bt, g.folder.base.id, &FolderPatch { folder_name: Some("x".into()), ..Default::default() })
            .await,
    );
    assert_not_found(
        store
            .update_folder(
                bt,
                g.folder.base.id,
                &FolderPatch { is_default_export_folder: Some(true), ..Default::default() },
            )
            .await,
    );
    assert_not_found(
        store
            .update_job(bt, g.job.base.id, &JobUpdate { status: Some(JobStatus::Cancelled), ..Default::default() })
            .await,
    );
    assert_not_found(
        store.update_file(bt, g.file.base.id, &CloudFilePatch { file_size_bytes: Some(1), ..Default::default() }).await,
    );
    assert_not_found(store.deactivate_link(bt, g.link.base.id).await);
    assert_not_found(store.resolve_error(bt, g.error.base.id, None).await);

    assert_not_found(store.delete_connection(bt, g.connection.base.id).await);
    assert_not_found(store.delete_folder(bt, g.folder.base.id).await);
    assert_not_found(store.delete_job(bt, g.job.base.id).await);
    assert_not_found(store.delete_file(bt, g.file.base.id).await);
    assert_not_found(store.delete_link(bt, g.link.base.id).await);
    assert_not_found(store.delete_error(bt, g.error.base.id).await);
    assert!(
        !store
            .swap_connection_tokens(bt, g.connection.base.id, &g.connection.encrypted_access_token, vec![0], None)
            .await
            .unwrap()
    );

    let p = page(200);
    assert!(store.list_connections(bt, &ConnectionFilter::default(), p).await.unwrap().items.is_empty());
    assert!(
        store
            .list_folders(bt, &FolderFilter { connection_id: Some(g.connection.base.id), ..Default::default() }, p)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        store
            .list_jobs(bt, &SyncJobFilter { folder_id: Some(g.folder.base.id), ..Default::default() }, p)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(store.list_files(bt, &CloudFileFilter::default(), p).await.unwrap().items.is_empty());
    assert!(store.list_links(bt, &SharedLinkFilter::default(), p).await.unwrap().items.is_empty());
    assert!(store.list_errors(bt, &SyncErrorFilter::default(), p).await.unwrap().items.is_empty());

    // Tenant A's rows came through every attempt unchanged.
    let after = store.get_connection(a.id, g.connection.base.id).await.unwrap();
    assert_eq!(after, g.connection);
    assert_eq!(store.get_job(a.id, g.job.base.id).await.unwrap(), g.job);
    assert_eq!(store.get_folder(a.id, g.folder.base.id).await.unwrap(), g.folder);
}

async fn soft_deleted_rows_are_invisible(store: Store) {
    let (a, _) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let p = page(200);

    store.delete_error(a.id, g.error.base.id).await.unwrap();
    store.delete_link(a.id, g.link.base.id).await.unwrap();
    store.delete_job(a.id, g.job.base.id).await.unwrap();
    store.delete_file(a.id, g.file.base.id).await.unwrap();
    store.delete_folder(a.id, g.folder.base.id).await.unwrap();
    store.delete_connection(a.id, g.connection.base.id).await.unwrap();

    assert!(store.list_connections(a.id, &ConnectionFilter::default(), p).await.unwrap().items.is_empty());
    assert!(store.list_folders(a.id, &FolderFilter::default(), p).await.unwrap().items.is_empty());
    assert!(store.list_jobs(a.id, &SyncJobFilter::default(), p).await.unwrap().items.is_empty());
    assert!(store.list_files(a.id, &CloudFileFilter::default(), p).await.unwrap().items.is_empty());
    assert!(store.list_links(a.id, &SharedLinkFilter::default(), p).await.unwrap().items.is_empty());
    assert!(store.list_errors(a.id, &SyncErrorFilter::default(), p).await.unwrap().items.is_empty());
    assert_not_found(store.get_job(a.id, g.job.base.id).await);
    assert_not_found(store.get_error(a.id, g.error.base.id).await);
}

/// Walks every page of a list and checks each row comes exactly once, in index order.
async fn walk<F, Fut>(limit: u16, mut fetch: F) -> Vec<i64>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = DbResult<(Vec<i64>, Option<i64>)>>,
{
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (ids, next) = fetch(PageRequest { after, limit }).await.unwrap();
        assert!(ids.len() <= usize::from(limit));
        seen.extend(ids);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, seen, "pages are in index order without repeats");
    seen
}

fn ids<T>(p: Page<T>, f: impl Fn(&T) -> i64) -> (Vec<i64>, Option<i64>) {
    (p.items.iter().map(f).collect(), p.next_after)
}

async fn pagination_returns_every_row_once(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let mut folders = Vec::new();
    let mut files = Vec::new();
    for _ in 0..7 {
        let f = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();
        files.push(store.create_file(&new_file(&a, f.base.id)).await.unwrap().base.index_id);
        store.create_job(&new_job(&a, f.base.id)).await.unwrap();
        store.create_error(&new_error(&a, c.base.id)).await.unwrap();
        folders.push(f);
    }
    let removed = folders.remove(3);
    store.delete_folder(a.id, removed.base.id).await.unwrap();
    let s = &store;
    let t = a.id;

    let folder_pages = walk(3, |p| async move {
        s.list_folders(t, &FolderFilter::default(), p).await.map(|pg| ids(pg, |f| f.base.index_id))
    })
    .await;
    let file_pages = walk(2, |p| async move {
        s.list_files(t, &CloudFileFilter::default(), p).await.map(|pg| ids(pg, |f| f.base.index_id))
    })
    .await;
    let job_pages = walk(7, |p| async move {
        s.list_jobs(t, &SyncJobFilter::default(), p).await.map(|pg| ids(pg, |j| j.base.index_id))
    })
    .await;
    let error_pages = walk(1, |p| async move {
        s.list_errors(t, &SyncErrorFilter::default(), p).await.map(|pg| ids(pg, |e| e.base.index_id))
    })
    .await;

    assert_eq!(
        folder_pages,
        folders.iter().map(|f| f.base.index_id).collect::<Vec<_>>(),
        "the deleted folder is skipped"
    );
    assert_eq!(file_pages, files);
    assert_eq!(job_pages.len(), 7);
    assert_eq!(error_pages.len(), 7);

    let exact = store.list_jobs(t, &SyncJobFilter::default(), page(7)).await.unwrap();
    assert_eq!(exact.items.len(), 7);
    assert_eq!(exact.next_after, None, "a full last page says there is no next page");
}

async fn validation_rejects_before_writing(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();

    let long_name = NewFolder { folder_name: "x".repeat(256), ..new_folder(&a, c.base.id) };
    let long_utf8 = NewFolder { folder_name: "é".repeat(128), ..new_folder(&a, c.base.id) };
    let blank = NewFolder { folder_name: "  ".into(), ..new_folder(&a, c.base.id) };
    for bad in [long_name, long_utf8, blank] {
        assert!(matches!(store.create_folder(&bad).await, Err(DbError::Validation { field: "folder_name", .. })));
    }
    let long_hash = NewCloudFile { content_hash: Some("f".repeat(65)), ..new_file(&a, FolderId::generate()) };
    assert!(matches!(store.create_file(&long_hash).await, Err(DbError::Validation { field: "content_hash", .. })));
    for limit in [0, 201] {
        let r = store.list_connections(a.id, &ConnectionFilter::default(), PageRequest { after: None, limit }).await;
        assert!(matches!(r, Err(DbError::Validation { field: "limit", .. })));
    }
    assert!(store.list_folders(a.id, &FolderFilter::default(), page(10)).await.unwrap().items.is_empty());
}

async fn text_round_trips_unicode(store: Store) {
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let name = "Résultats 模型 ünïcødé";

    let f = store.create_folder(&NewFolder { folder_name: name.into(), ..new_folder(&a, c.base.id) }).await.unwrap();
    let file =
        store.create_file(&NewCloudFile { file_name: "плани 📈.qsm".into(), ..new_file(&a, f.base.id) }).await.unwrap();

    assert_eq!(store.get_folder(a.id, f.base.id).await.unwrap().folder_name, name);
    assert_eq!(store.get_file(a.id, file.base.id).await.unwrap().file_name, "плани 📈.qsm");
}

/// Every VARCHAR column that carries user or provider text, written with characters outside
/// code page 1252 and read back through each path: the row an INSERT returns (OUTPUT /
/// RETURNING), a SELECT, and the link lists' provider_item_id.
async fn varchar_text_outside_code_page_1252_round_trips(store: Store) {
    // Arrange
    let (a, _) = tenants(&store).await;
    let unique = |prefix: &str| format!("{prefix}-模型-Ωμέγα-{}", Uuid::new_v4().simple());
    let new_conn = NewConnection {
        provider_user_id: unique("acct"),
        provider_user_email: Some("ωμέγα@例え.jp".into()),
        ..new_connection(&a)
    };
    let folder_name = "模型 Ωμέγα Модели";
    let provider_folder_id = unique("fld");
    let provider_file_id = unique("file");
    let content_hash = "ハッシュ".repeat(3);
    let mime_type = "application/x-模型";
    let provider_share_id = unique("share");
    let error_code = "错误-E42";

    // Act
    let c = store.create_connection(&new_conn).await.unwrap();
    let f = store
        .create_folder(&NewFolder {
            folder_name: folder_name.into(),
            provider_folder_id: provider_folder_id.clone(),
            ..new_folder(&a, c.base.id)
        })
        .await
        .unwrap();
    let file = store
        .create_file(&NewCloudFile {
            provider_file_id: provider_file_id.clone(),
            content_hash: Some(content_hash.clone()),
            mime_type: Some(mime_type.into()),
            ..new_file(&a, f.base.id)
        })
        .await
        .unwrap();
    let link = store
        .create_link(&NewSharedLink {
            provider_share_id: Some(provider_share_id.clone()),
            ..new_file_link(&a, file.base.id)
        })
        .await
        .unwrap();
    let error = store
        .create_error(&NewSyncError { error_code: Some(error_code.into()), ..new_error(&a, c.base.id) })
        .await
        .unwrap();
    let read_c = store.get_connection(a.id, c.base.id).await.unwrap();
    let read_f = store.get_folder(a.id, f.base.id).await.unwrap();
    let read_file = store.get_file(a.id, file.base.id).await.unwrap();
    let read_link = store.get_link(a.id, link.base.id).await.unwrap();
    let read_error = store.get_error(a.id, error.base.id).await.unwrap();
    let listed = store.list_folder_links(a.id, f.base.id, page(10)).await.unwrap();

    // Assert
    for connection in [&c, &read_c] {
        assert_eq!(connection.provider_user_id, new_conn.provider_user_id);
        assert_eq!(connection.provider_user_email, new_conn.provider_user_email);
    }
    for folder in [&f, &read_f] {
        assert_eq!(folder.folder_name, folder_name);
        assert_eq!(folder.provider_folder_id, provider_folder_id);
    }
    for file in [&file, &read_file] {
        assert_eq!(file.provider_file_id, provider_file_id);
        assert_eq!(file.content_hash.as_deref(), Some(content_hash.as_str()));
        assert_eq!(file.mime_type.as_deref(), Some(mime_type));
    }
    for link in [&link, &read_link] {
        assert_eq!(link.provider_share_id.as_deref(), Some(provider_share_id.as_str()));
    }
    for error in [&error, &read_error] {
        assert_eq!(error.error_code.as_deref(), Some(error_code));
    }
    let items: Vec<&str> = listed.items.iter().map(|l| l.provider_item_id.as_str()).collect();
    assert_eq!(items, [provider_file_id.as_str()]);
}

// ---- scheduled functions: token refresh, stale jobs, link expiry -----------------------------

/// Scans cross tenants, and on SQL Server every case shares one database: a scan reads every
/// row it may and the cases look for their own.
const EVERY_ROW: u16 = u16::MAX;

/// The connection as the refresh scan returns it when due before `before` at `now`.
async fn due(store: &Store, id: ConnectionId, before: DateTime<Utc>, now: DateTime<Utc>) -> Option<RefreshCandidate> {
    store.scan_refresh_due(before, now, EVERY_ROW).await.unwrap().into_iter().find(|c| c.connection.base.id == id)
}

/// The stored refresh bookkeeping of an active connection whatever holds it off (read by a
/// scan whose `now` is past any lease or backoff a case sets).
async fn bookkeeping(store: &Store, id: ConnectionId) -> RefreshCandidate {
    let far = Utc::now() + Duration::days(365);
    due(store, id, far, far).await.expect("an active, live connection")
}

fn ids_of(rows: &[RefreshCandidate]) -> Vec<ConnectionId> {
    rows.iter().map(|c| c.connection.base.id).collect()
}

async fn due_connection(store: &Store, t: &Tenant) -> Connection {
    let soon = Utc::now() + Duration::minutes(5);
    store.create_connection(&NewConnection { token_expiry: soon, ..new_connection(t) }).await.unwrap()
}

/// Reads a due connection with the scan and claims it until `lease`, as token-refresh does.
async fn claimed(store: &Store, c: &Connection, lease: DateTime<Utc>) -> RefreshCandidate {
    let now = Utc::now();
    let read = due(store, c.base.id, now + Duration::minutes(15), now).await.expect("due");
    store.claim_refresh(&read, lease).await.unwrap().expect("claimed")
}

fn refresh_error(t: &Tenant, connection: ConnectionId, message: &str) -> NewSyncError {
    NewSyncError { error_type: ErrorType::Auth, error_message: message.into(), ..new_error(t, connection) }
}

async fn errors_of(store: &Store, t: &Tenant, connection: ConnectionId) -> Vec<SyncError> {
    let filter = SyncErrorFilter { connection_id: Some(connection), ..Default::default() };
    store.list_errors(t.id, &filter, page(50)).await.unwrap().items
}

async fn refresh_claim_is_won_once_and_needs_the_token_that_was_read(store: Store) {
    // Arrange: two due connections read by the scan; the second's token changes after the read.
    let (a, _) = tenants(&store).await;
    let now = Utc::now();
    let window = now + Duration::minutes(15);
    let first = due_connection(&store, &a).await;
    let second = due_connection(&store, &a).await;
    let read_first = due(&store, first.base.id, window, now).await.expect("first is due");
    let read_second = due(&store, second.base.id, window, now).await.expect("second is due");
    store.swap_connection_tokens(a.id, second.base.id, &second.encrypted_access_token, vec![9, 9], None).await.unwrap();
    let lease = now + Duration::minutes(5);

    // Act
    let winner = store.claim_refresh(&read_first, lease).await.unwrap();
    let loser = store.claim_refresh(&read_first, lease).await.unwrap();
    let stale = store.claim_refresh(&read_second, lease).await.unwrap();

    // Assert
    let winner = winner.expect("the first claim wins");
    assert_eq!(winner.connection.base.id, first.base.id);
    assert_eq!(winner.refresh_not_before, Some(lease.trunc_subsecs_micro()));
    assert!(loser.is_none(), "a second claim of the same read loses");
    assert!(stale.is_none(), "a claim on tokens that changed since the read fails");
    assert_eq!(bookkeeping(&store, first.base.id).await.refresh_not_before, Some(lease.trunc_subsecs_micro()));
    assert_eq!(bookkeeping(&store, second.base.id).await.refresh_not_before, None, "the failed claim wrote nothing");
    assert!(due(&store, first.base.id, window, now).await.is_none(), "the claimed row is held off");
}

async fn refreshed_tokens_are_stored_and_clear_the_refresh_bookkeeping(store: Store) {
    // Arrange: a claimed connection with a failed attempt on record; a second claimed one;
    // a third deleted meanwhile.
    let (a, _) = tenants(&store).await;
    let lease = Utc::now() + Duration::minutes(5);
    let c = due_connection(&store, &a).await;
    let claim = claimed(&store, &c, lease).await;
    store.record_refresh_failure(&claim, &refresh_error(&a, c.base.id, "503"), Utc::now()).await.unwrap();
    let kept = due_connection(&store, &a).await;
    claimed(&store, &kept, lease).await;
    let gone = due_connection(&store, &a).await;
    store.delete_connection(a.id, gone.base.id).await.unwrap();
    let expiry = Utc::now() + Duration::hours(2);
    let tokens = RefreshedTokens {
        encrypted_access_token: vec![7, 7, 7],
        encrypted_refresh_token: Some(vec![8, 8]),
        token_expiry: expiry,
        scope: Some("Files.Read offline_access".into()),
    };
    let access_only = RefreshedTokens { encrypted_refresh_token: None, scope: None, ..tokens.clone() };
    let before = Utc::now().trunc_subsecs_micro();

    // Act
    let stored = store.store_refreshed_tokens(a.id, c.base.id, &tokens).await.unwrap();
    let stored_access_only = store.store_refreshed_tokens(a.id, kept.base.id, &access_only).await.unwrap();
    let on_deleted = store.store_refreshed_tokens(a.id, gone.base.id, &tokens).await.unwrap();
    let after = Utc::now();

    // Assert
    assert!(stored && stored_access_only);
    assert!(!on_deleted, "a deleted connection is not written");
    let row = store.get_connection(a.id, c.base.id).await.unwrap();
    assert_eq!(row.encrypted_access_token, vec![7, 7, 7]);
    assert_eq!(row.encrypted_refresh_token, Some(vec![8, 8]));
    assert_eq!(row.token_expiry, expiry.trunc_subsecs_micro());
    assert_eq!(row.scope, "Files.Read offline_access");
    let book = bookkeeping(&store, c.base.id).await;
    let refreshed_at = book.token_refreshed_at.expect("token_refreshed_at is set");
    assert!(before <= refreshed_at && refreshed_at <= after, "{refreshed_at} not in [{before}, {after}]");
    assert_eq!((book.refresh_not_before, book.refresh_failures, book.refresh_error_id), (None, 0, None));
    let kept_row = store.get_connection(a.id, kept.base.id).await.unwrap();
    assert_eq!(kept_row.encrypted_access_token, vec![7, 7, 7]);
    assert_eq!(kept_row.encrypted_refresh_token, kept.encrypted_refresh_token, "no new refresh token keeps the old");
    assert_eq!(kept_row.scope, kept.scope, "no scope keeps the old");
    assert_eq!(bookkeeping(&store, kept.base.id).await.refresh_not_before, None);
}

async fn ending_a_refresh_sets_the_status_and_records_one_error(store: Store) {
    // Arrange
    let (a, _) = tenants(&store).await;
    let c = due_connection(&store, &a).await;
    let error = refresh_error(&a, c.base.id, "invalid_grant: the refresh token was revoked");

    // Act
    let first = store.end_refresh(a.id, c.base.id, ConnectionStatus::Expired, &error).await.unwrap();
    let second = store.end_refresh(a.id, c.base.id, ConnectionStatus::Revoked, &error).await.unwrap();

    // Assert
    assert!(first, "an active connection is ended");
    assert!(!second, "a connection no longer active is left alone");
    assert_eq!(store.get_connection(a.id, c.base.id).await.unwrap().status, ConnectionStatus::Expired);
    let errors = errors_of(&store, &a, c.base.id).await;
    assert_eq!(errors.len(), 1, "one error row, from the first call only");
    assert_eq!(errors[0].error_type, ErrorType::Auth);
    assert_eq!(errors[0].error_message, error.error_message);
    let far = Utc::now() + Duration::days(365);
    assert!(due(&store, c.base.id, far, far).await.is_none(), "an ended connection is never due");
}

async fn releasing_a_refresh_holds_it_off_until_not_before(store: Store) {
    // Arrange
    let (a, _) = tenants(&store).await;
    let now = Utc::now();
    let window = now + Duration::minutes(15);
    let c = due_connection(&store, &a).await;
    claimed(&store, &c, now + Duration::minutes(5)).await;
    let not_before = now + Duration::minutes(10);

    // Act
    store.release_refresh(a.id, c.base.id, not_before).await.unwrap();

    // Assert
    assert!(due(&store, c.base.id, window, now).await.is_none(), "held off before not_before");
    let at_not_before = due(&store, c.base.id, window, not_before).await.expect("due again at not_before");
    assert_eq!(at_not_before.refresh_not_before, Some(not_before.trunc_subsecs_micro()));
    let later = store.clone().with_clock(move || Utc::now() + Duration::minutes(11));
    assert!(later.claim_refresh(&at_not_before, not_before + Duration::minutes(5)).await.unwrap().is_some());
}

async fn refresh_failures_open_an_episode_then_bump_it(store: Store) {
    // Arrange: a claimed connection with no open error.
    let (a, _) = tenants(&store).await;
    let now = Utc::now();
    let c = due_connection(&store, &a).await;
    let first_claim = claimed(&store, &c, now + Duration::minutes(1)).await;
    assert_eq!(first_claim.refresh_error_id, None);
    let retry_at = now + Duration::minutes(2);
    let later = store.clone().with_clock(move || Utc::now() + Duration::minutes(3));
    let retry_again_at = now + Duration::minutes(10);

    // Act: a failure, then another after the backoff, as the next run would claim it.
    let opened = store.record_refresh_failure(&first_claim, &refresh_error(&a, c.base.id, "503"), retry_at).await;
    let after_first = bookkeeping(&store, c.base.id).await;
    let reread = due(&store, c.base.id, now + Duration::minutes(15), retry_at).await.expect("due after the backoff");
    let second_claim =
        later.claim_refresh(&reread, now + Duration::minutes(4)).await.unwrap().expect("claimed after the backoff");
    let bumped =
        later.record_refresh_failure(&second_claim, &refresh_error(&a, c.base.id, "504"), retry_again_at).await;
    let after_second = bookkeeping(&store, c.base.id).await;

    // Assert
    let Ok(FailureRecord::Opened(error_id)) = opened else { panic!("the first failure opens an episode: {opened:?}") };
    assert_eq!(
        (after_first.refresh_failures, after_first.refresh_error_id, after_first.refresh_not_before),
        (1, Some(error_id), Some(retry_at.trunc_subsecs_micro()))
    );
    assert_eq!(second_claim.refresh_error_id, Some(error_id), "the claim reads the open episode");
    assert_eq!(bumped.unwrap(), FailureRecord::Bumped(error_id));
    assert_eq!(
        (after_second.refresh_failures, after_second.refresh_error_id, after_second.refresh_not_before),
        (2, Some(error_id), Some(retry_again_at.trunc_subsecs_micro()))
    );
    let errors = errors_of(&store, &a, c.base.id).await;
    assert_eq!(errors.len(), 1, "one row per episode");
    assert_eq!((errors[0].base.id, errors[0].retry_count), (error_id, 1));
    assert_eq!(errors[0].error_message, "504", "the row tells the latest failure");
}

async fn refresh_scans_honour_the_lease(store: Store) {
    // Arrange: a connection due by expiry and one idle (never refreshed, expiry far off), each
    // claimed; and one refreshed a moment ago, unclaimed.
    let (a, _) = tenants(&store).await;
    let now = Utc::now();
    let window = now + Duration::minutes(15);
    let lease = now + Duration::minutes(5);
    let due_c = due_connection(&store, &a).await;
    claimed(&store, &due_c, lease).await;
    let idle = store
        .create_connection(&NewConnection { token_expiry: now + Duration::days(1), ..new_connection(&a) })
        .await
        .unwrap();
    let keep_alive_cutoff = Utc::now() + Duration::minutes(1);
    let idle_read = store.scan_keep_alive(keep_alive_cutoff, now, EVERY_ROW).await.unwrap();
    let idle_read = idle_read.into_iter().find(|c| c.connection.base.id == idle.base.id).expect("idle is read");
    store.claim_refresh(&idle_read, lease).await.unwrap().expect("idle claimed");
    let fresh = store
        .create_connection(&NewConnection { token_expiry: now + Duration::days(1), ..new_connection(&a) })
        .await
        .unwrap();
    let tokens = RefreshedTokens {
        encrypted_access_token: vec![3],
        encrypted_refresh_token: None,
        token_expiry: now + Duration::days(1),
        scope: None,
    };
    store.store_refreshed_tokens(a.id, fresh.base.id, &tokens).await.unwrap();

    // Act
    let due_during = ids_of(&store.scan_refresh_due(window, now, EVERY_ROW).await.unwrap());
    let due_after = ids_of(&store.scan_refresh_due(window, lease, EVERY_ROW).await.unwrap());
    let kept_during = ids_of(&store.scan_keep_alive(keep_alive_cutoff, now, EVERY_ROW).await.unwrap());
    let kept_after = ids_of(&store.scan_keep_alive(keep_alive_cutoff, lease, EVERY_ROW).await.unwrap());
    let kept_before_refresh =
        ids_of(&store.scan_keep_alive(now - Duration::minutes(1), lease, EVERY_ROW).await.unwrap());

    // Assert
    assert!(!due_during.contains(&due_c.base.id), "a leased connection is not due");
    assert!(due_after.contains(&due_c.base.id), "due again once the lease ends");
    assert!(!due_after.contains(&idle.base.id) && !due_after.contains(&fresh.base.id), "not expiring");
    assert!(!kept_during.contains(&idle.base.id), "a leased connection is not kept alive");
    assert!(kept_after.contains(&idle.base.id), "kept alive once the lease ends");
    assert!(kept_after.contains(&fresh.base.id), "refreshed before the cutoff");
    assert!(!kept_before_refresh.contains(&fresh.base.id), "refreshed after the cutoff");
    assert!(!kept_before_refresh.contains(&idle.base.id), "created after the cutoff");
}

async fn stale_jobs_fail_once_with_one_error(store: Store) {
    // Arrange: a running job.
    let (a, _) = tenants(&store).await;
    let c = store.create_connection(&new_connection(&a)).await.unwrap();
    let f = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();
    let job = store.create_job(&new_job(&a, f.base.id)).await.unwrap();
    let running = store
        .update_job(a.id, job.base.id, &JobUpdate { status: Some(JobStatus::Running), ..Default::default() })
        .await
        .unwrap();
    let error = NewSyncError {
        sync_job_id: Some(job.base.id),
        error_type: ErrorType::Timeout,
        error_message: "no progress for 30 minutes".into(),
        ..new_error(&a, c.base.id)
    };
    let message = "no progress for 30 minutes";

    // Act
    let not_yet = store.fail_stale_job(&running, running.base.updated_at, message, &error).await.unwrap();
    let failed = store.fail_stale_job(&running, Utc::now() + Duration::minutes(1), message, &error).await.unwrap();
    let again = store.fail_stale_job(&running, Utc::now() + Duration::minutes(1), message, &error).await.unwrap();

    // Assert
    assert!(not_yet.is_none(), "a job updated at the cutoff is not stale");
    let failed = failed.expect("the stale job fails");
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error_message.as_deref(), Some(message));
    assert!(failed.completed_at.is_some());
    assert!(again.is_none(), "a failed job is not failed again");
    let stored = store.get_job(a.id, job.base.id).await.unwrap();
    assert_eq!(stored, failed);
    let errors = errors_of(&store, &a, c.base.id).await;
    assert_eq!(errors.len(), 1, "one error row, from the call that failed the job");
    assert_eq!((errors[0].sync_job_id, errors[0].error_type), (Some(job.base.id), ErrorType::Timeout));
}

async fn link_expiry_claim_is_won_once_until_the_lease_ends(store: Store) {
    // Arrange: an expired link and one that expires later.
    let (a, _) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let now = Utc::now();
    let expiring = |at| NewSharedLink { expires_at: Some(at), ..new_file_link(&a, g.file.base.id) };
    let expired = store.create_link(&expiring(now - Duration::minutes(1))).await.unwrap();
    let unexpired = store.create_link(&expiring(now + Duration::hours(1))).await.unwrap();
    let lease = now + Duration::minutes(5);
    let after_lease = now + Duration::minutes(6);
    let later = store.clone().with_clock(move || Utc::now() + Duration::minutes(6));
    let expired_ids = |links: Vec<SharedLink>| links.into_iter().map(|l| l.base.id).collect::<Vec<_>>();

    // Act
    let first = store.claim_link_expiry(expired.base.id, lease).await.unwrap();
    let second = store.claim_link_expiry(expired.base.id, lease).await.unwrap();
    let too_early = store.claim_link_expiry(unexpired.base.id, lease).await.unwrap();
    let scanned_during = expired_ids(store.scan_links_expired(now, EVERY_ROW).await.unwrap());
    let scanned_after = expired_ids(store.scan_links_expired(after_lease, EVERY_ROW).await.unwrap());
    let reclaimed = later.claim_link_expiry(expired.base.id, after_lease + Duration::minutes(5)).await.unwrap();

    // Assert
    assert!(first, "the first claim wins");
    assert!(!second, "a second claim during the lease loses");
    assert!(!too_early, "an unexpired link cannot be claimed");
    assert!(!scanned_during.contains(&expired.base.id), "a held link is not scanned");
    assert!(scanned_after.contains(&expired.base.id), "scanned again once the lease ends");
    assert!(reclaimed, "claimable again once the lease ends");
    assert!(store.get_link(a.id, expired.base.id).await.unwrap().is_active, "a claim leaves the link active");
}

async fn folder_links_lists_active_links_into_the_folder(store: Store) {
    // Arrange: a folder link and two file links into the folder, one of them inactive; links
    // into another folder of the connection and into another tenant's graph.
    let (a, b) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let folder_link = store
        .create_link(&NewSharedLink {
            resource_type: ResourceType::Folder,
            file_id: None,
            folder_id: Some(g.folder.base.id),
            ..new_file_link(&a, g.file.base.id)
        })
        .await
        .unwrap();
    let second = store.create_link(&new_file_link(&a, g.file.base.id)).await.unwrap();
    let inactive = store.create_link(&new_file_link(&a, g.file.base.id)).await.unwrap();
    store.deactivate_link(a.id, inactive.base.id).await.unwrap();
    let sibling = store.create_folder(&new_folder(&a, g.connection.base.id)).await.unwrap();
    let sibling_file = store.create_file(&new_file(&a, sibling.base.id)).await.unwrap();
    let sibling_link = store.create_link(&new_file_link(&a, sibling_file.base.id)).await.unwrap();
    let other_tenant = Graph::create(&store, &b).await;

    // Act
    let first_page = store.list_folder_links(a.id, g.folder.base.id, page(2)).await.unwrap();
    let rest = store
        .list_folder_links(a.id, g.folder.base.id, PageRequest { after: first_page.next_after, limit: 2 })
        .await
        .unwrap();
    let cross_tenant = store.list_folder_links(b.id, g.folder.base.id, page(10)).await.unwrap();
    store.delete_folder(a.id, g.folder.base.id).await.unwrap();
    let after_delete = store.list_folder_links(a.id, g.folder.base.id, page(10)).await.unwrap();

    // Assert
    assert_eq!(first_page.items.len(), 2);
    assert!(first_page.next_after.is_some());
    assert_eq!(rest.next_after, None);
    let mut found: Vec<(LinkId, String)> =
        first_page.items.iter().chain(&rest.items).map(|l| (l.link.base.id, l.provider_item_id.clone())).collect();
    let index: Vec<i64> = first_page.items.iter().chain(&rest.items).map(|l| l.link.base.index_id).collect();
    assert!(index.windows(2).all(|w| w[0] < w[1]), "index order: {index:?}");
    let mut expected = vec![
        (g.link.base.id, g.file.provider_file_id.clone()),
        (folder_link.base.id, g.folder.provider_folder_id.clone()),
        (second.base.id, g.file.provider_file_id.clone()),
    ];
    expected.sort_by_key(|(id, _)| *id);
    found.sort_by_key(|(id, _)| *id);
    assert_eq!(found, expected, "active links on the folder and its files, each once, no others");
    assert!(!found.iter().any(|(id, _)| *id == sibling_link.base.id || *id == other_tenant.link.base.id));
    assert!(cross_tenant.items.is_empty(), "another tenant sees none");
    assert!(after_delete.items.is_empty(), "a deleted folder lists no links");
}

// ---- harness ----------------------------------------------------------------------------

/// The filter checks of the list endpoints: a deleted connection, folder or file of the
/// tenant is still known (its history stays listable); another tenant's or an unknown id is not.
async fn known_ids_include_deleted_rows_of_the_tenant_only(store: Store) {
    // Arrange
    let (a, b) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    store.delete_file(a.id, g.file.base.id).await.unwrap();
    store.delete_connection(a.id, g.connection.base.id).await.unwrap();

    // Act / Assert: deleted rows of the tenant are known.
    store.known_connection(a.id, g.connection.base.id).await.unwrap();
    store.known_folder(a.id, g.folder.base.id).await.unwrap();
    store.known_file(a.id, g.file.base.id).await.unwrap();
    // Another tenant's ids and unknown ids are not.
    assert!(matches!(store.known_connection(b.id, g.connection.base.id).await, Err(DbError::NotFound)));
    assert!(matches!(store.known_folder(b.id, g.folder.base.id).await, Err(DbError::NotFound)));
    assert!(matches!(store.known_file(b.id, g.file.base.id).await, Err(DbError::NotFound)));
    assert!(matches!(store.known_connection(a.id, ConnectionId::generate()).await, Err(DbError::NotFound)));
}

// ---- the sync worker -----------------------------------------------------------------

fn synced(t: &Tenant, folder: FolderId, provider_file_id: &str, hash: &str, job: Option<JobId>) -> SyncedFile {
    SyncedFile {
        tenant_id: t.id,
        folder_id: folder,
        quodsi_file_type: QuodsiFileType::Model,
        provider_file_id: provider_file_id.to_owned(),
        file_name: format!("{provider_file_id}.qsim"),
        file_path: Some(format!("Scenarios/{provider_file_id}.qsim")),
        file_size_bytes: 42,
        content_hash: Some(hash.to_owned()),
        mime_type: Some("application/octet-stream".into()),
        cloud_created_at: Some(Utc::now() - Duration::days(1)),
        cloud_modified_at: Some(Utc::now()),
        sync_status: SyncStatus::NeedsDownload,
        file_metadata: Some(serde_json::json!({"revision": "r1"})),
        seen_by_job_id: job,
    }
}

async fn sync_cursors_are_kept_one_per_scope(store: Store) {
    // Arrange
    let (a, b) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let (conn, folder) = (g.connection.base.id, Some(g.folder.base.id));
    let first = NewSyncCursor {
        tenant_id: a.id,
        connection_id: conn,
        folder_id: folder,
        cursor_kind: CursorKind::DropboxListFolder,
        cursor_value: format!("AAE{}", "x".repeat(5000)),
        folder_map: Some(serde_json::json!({"1ry5": "Scenarios"})),
        last_polled_at: Some(store.now()),
    };
    let connection_wide = NewSyncCursor { folder_id: None, cursor_kind: CursorKind::BoxEvents, ..first.clone() };

    // Act
    let none = store.get_cursor(a.id, conn, folder, CursorKind::DropboxListFolder).await.unwrap();
    store.put_cursor(&first).await.unwrap();
    store
        .put_cursor(&NewSyncCursor { cursor_value: "second".into(), folder_map: None, ..first.clone() })
        .await
        .unwrap();
    store.put_cursor(&connection_wide).await.unwrap();
    let kept = store.get_cursor(a.id, conn, folder, CursorKind::DropboxListFolder).await.unwrap();
    let wide = store.get_cursor(a.id, conn, None, CursorKind::BoxEvents).await.unwrap();
    let other_kind = store.get_cursor(a.id, conn, folder, CursorKind::GraphDelta).await.unwrap();
    let other_tenant = store.get_cursor(b.id, conn, folder, CursorKind::DropboxListFolder).await.unwrap();

    // Assert
    assert!(none.is_none());
    let kept = kept.expect("the folder's cursor");
    assert_eq!(kept.cursor_value, "second", "the second put replaced the first");
    assert_eq!(kept.folder_map, None);
    assert_eq!((kept.connection_id, kept.folder_id), (conn, folder));
    assert_eq!(wide.expect("the connection-wide cursor").cursor_value.len(), 5003, "long cursors are kept whole");
    assert!(other_kind.is_none() && other_tenant.is_none());
}

async fn subscriptions_are_found_by_provider_id_across_tenants_once_live(store: Store) {
    // Arrange: a Graph subscription of tenant A's connection, a Box webhook of B's folder.
    let (a, b) = tenants(&store).await;
    let ga = Graph::create(&store, &a).await;
    let gb = Graph::create(&store, &b).await;
    let expires = store.now() + Duration::days(2);
    let graph = NewSyncSubscription {
        tenant_id: a.id,
        connection_id: ga.connection.base.id,
        folder_id: None,
        subscription_kind: SubscriptionKind::GraphSubscription,
        provider_subscription_id: "7f105c7d-2dc5-4530-97cd-4e7ae6534c07".into(),
        provider_resource: Some("/drives/b!abc/root".into()),
        encrypted_secret: Some(vec![1, 2, 3, 0, 255]),
        expires_at: Some(expires),
    };
    let webhook = NewSyncSubscription {
        tenant_id: b.id,
        connection_id: gb.connection.base.id,
        folder_id: Some(gb.folder.base.id),
        subscription_kind: SubscriptionKind::BoxWebhook,
        provider_subscription_id: "4161".into(),
        provider_resource: None,
        encrypted_secret: None,
        expires_at: None,
    };

    // Act
    let made = store.create_subscription(&graph).await.unwrap();
    store.create_subscription(&webhook).await.unwrap();
    let twice = store.create_subscription(&graph).await;
    let found = store.find_subscription(SubscriptionKind::GraphSubscription, &graph.provider_subscription_id).await;
    let other_kind = store.find_subscription(SubscriptionKind::DriveChannel, &graph.provider_subscription_id).await;
    let box_found = store.find_subscription(SubscriptionKind::BoxWebhook, "4161").await.unwrap();
    store.subscription_notified(a.id, made.base.id).await.unwrap();
    let of_a = store.subscriptions_of_connection(a.id, ga.connection.base.id).await.unwrap();
    let b_cannot_see_a = store.subscriptions_of_connection(b.id, ga.connection.base.id).await.unwrap();
    store.delete_subscription(b.id, made.base.id).await.unwrap();
    let after_wrong_tenant =
        store.find_subscription(SubscriptionKind::GraphSubscription, &graph.provider_subscription_id).await;
    store.delete_subscription(a.id, made.base.id).await.unwrap();
    let after_delete =
        store.find_subscription(SubscriptionKind::GraphSubscription, &graph.provider_subscription_id).await;
    let again = store.create_subscription(&graph).await;

    // Assert
    assert_conflict(twice, "ix_cloud_sync_subscriptions_provider_id");
    let found = found.unwrap().expect("found by the id a notification names");
    assert_eq!(found.base.tenant_id, a.id);
    assert_eq!(found.encrypted_secret.as_deref(), Some(&[1, 2, 3, 0, 255][..]), "bytes round-trip");
    assert_eq!(found.expires_at, Some(expires.trunc_subsecs_micro()));
    assert_eq!(found.provider_resource.as_deref(), Some("/drives/b!abc/root"));
    assert!(other_kind.unwrap().is_none(), "ids are unique per kind");
    let box_found = box_found.expect("B's webhook");
    assert_eq!((box_found.base.tenant_id, box_found.folder_id), (b.id, Some(gb.folder.base.id)));
    assert_eq!(of_a.len(), 1);
    assert!(of_a[0].last_notified_at.is_some(), "the notification was noted");
    assert!(b_cannot_see_a.is_empty(), "tenant isolation");
    assert!(after_wrong_tenant.unwrap().is_some(), "another tenant cannot delete it");
    assert!(after_delete.unwrap().is_none(), "a deleted subscription names nothing");
    assert!(again.is_ok(), "the id is free again once the row is deleted: {again:?}");
}

async fn drive_message_numbers_are_accepted_once_each_and_renewal_starts_over(store: Store) {
    // Arrange: a Drive channel of tenant A.
    let (a, b) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let channel = NewSyncSubscription {
        tenant_id: a.id,
        connection_id: g.connection.base.id,
        folder_id: None,
        subscription_kind: SubscriptionKind::DriveChannel,
        provider_subscription_id: "01234567-89ab-cdef-0123-456789abcdef".into(),
        provider_resource: Some("o3hgv1538sdjfh".into()),
        encrypted_secret: Some(vec![9; 40]),
        expires_at: Some(store.now() + Duration::days(7)),
    };
    let made = store.create_subscription(&channel).await.unwrap();
    let id = made.base.id;

    // Act: numbers out of order, concurrent duplicates, another tenant, then a renewal.
    let first = store.subscription_message(a.id, id, 1).await.unwrap();
    let ten = store.subscription_message(a.id, id, 10).await.unwrap();
    let (dup_x, dup_y) =
        futures_util::join!(store.subscription_message(a.id, id, 12), store.subscription_message(a.id, id, 12));
    let replay = store.subscription_message(a.id, id, 12).await.unwrap();
    let late = store.subscription_message(a.id, id, 11).await.unwrap();
    let other_tenant = store.subscription_message(b.id, id, 99).await.unwrap();
    let before_renewal =
        store.find_subscription(SubscriptionKind::DriveChannel, &channel.provider_subscription_id).await;
    let renewed =
        NewSyncSubscription { provider_subscription_id: "fedcba98-7654-3210-fedc-ba9876543210".into(), ..channel };
    store.renew_subscription(a.id, id, &renewed).await.unwrap();
    let after_renewal =
        store.find_subscription(SubscriptionKind::DriveChannel, &renewed.provider_subscription_id).await;
    let new_channel_first = store.subscription_message(a.id, id, 1).await.unwrap();

    // Assert
    assert!(first && ten, "increasing numbers are accepted");
    assert!(dup_x.unwrap() ^ dup_y.unwrap(), "of two concurrent deliveries of one number, exactly one is accepted");
    assert!(!replay && !late, "a number not above the last accepted one is refused");
    assert!(!other_tenant, "another tenant cannot advance the channel");
    let before_renewal = before_renewal.unwrap().expect("the channel");
    assert_eq!(before_renewal.last_message_number, Some(12));
    assert!(before_renewal.last_notified_at.is_some());
    assert_eq!(after_renewal.unwrap().expect("the renewed channel").last_message_number, None);
    assert!(new_channel_first, "the new channel is numbered from 1 again");
}

async fn job_claims_are_won_once_and_leases_guard_every_write(store: Store) {
    // Arrange: a pending job.
    let (a, _) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let id = g.job.base.id;
    let lease_until = store.now() + Duration::minutes(5);
    let progress = |lease_until| JobProgress {
        lease_until,
        progress_percentage: Percent::from_hundredths(2500).unwrap(),
        files_processed: 1,
        files_total: Some(4),
        bytes_transferred: 1024,
        job_metadata: Some(serde_json::json!({"checkpoint": {"phase": "download"}})),
    };

    // Act: two claims, a heartbeat under each lease, a release, a claim after it, the end.
    let (first, second) =
        futures_util::join!(store.claim_job(a.id, id, lease_until), store.claim_job(a.id, id, lease_until));
    let winner = first.unwrap().or(second.unwrap()).expect("one claim wins");
    let stranger = JobLease { lease_id: Uuid::new_v4(), ..winner.clone() };
    let held = store.claim_job(a.id, id, lease_until).await.unwrap();
    let beat = store.heartbeat_job(&winner, &progress(lease_until)).await.unwrap();
    let stranger_beat = store.heartbeat_job(&stranger, &progress(lease_until)).await.unwrap();
    let after_beat = store.get_job(a.id, id).await.unwrap();
    let released = store.release_job(&winner).await.unwrap();
    let next = store.claim_job(a.id, id, lease_until).await.unwrap().expect("a released job is claimed again");
    let stale_end = store.end_job(&winner, JobStatus::Completed, None).await;
    let ended = store.end_job(&next, JobStatus::Completed, None).await.unwrap();
    let after_end = store.claim_job(a.id, id, lease_until).await.unwrap();

    // Assert
    assert_eq!(winner.job.status, JobStatus::Running);
    assert!(winner.job.started_at.is_some());
    assert!(held.is_none(), "a live lease is not claimed again");
    assert!(beat && !stranger_beat, "only the lease holder writes");
    assert_eq!((after_beat.files_processed, after_beat.files_total), (1, Some(4)));
    assert_eq!(after_beat.progress_percentage.hundredths(), 2500);
    assert_eq!(after_beat.job_metadata.as_ref().unwrap()["checkpoint"]["phase"], "download");
    assert!(released);
    assert_eq!(next.job.started_at, winner.job.started_at, "a job claimed again keeps its start");
    assert_ne!(next.lease_id, winner.lease_id);
    assert!(matches!(stale_end, Err(DbError::NotFound)), "a lost lease cannot end the job: {stale_end:?}");
    assert_eq!(ended.status, JobStatus::Completed);
    assert!(ended.completed_at.is_some());
    assert!(
        store.get_folder(a.id, g.folder.base.id).await.unwrap().last_sync_at.is_some(),
        "completion stamps the folder"
    );
    assert!(store.get_connection(a.id, g.connection.base.id).await.unwrap().last_sync_at.is_some());
    assert!(after_end.is_none(), "an ended job is never claimed");
}

async fn jobs_to_dispatch_are_the_unsent_and_the_abandoned(store: Store) {
    // Arrange: a pending job never sent, a pending one sent, a running one whose lease runs
    // out in a minute, and a running one holding its lease for an hour.
    let (a, _) = tenants(&store).await;
    let mut jobs = Vec::new();
    for _ in 0..4 {
        let c = store.create_connection(&new_connection(&a)).await.unwrap();
        let f = store.create_folder(&new_folder(&a, c.base.id)).await.unwrap();
        jobs.push(store.create_job(&new_job(&a, f.base.id)).await.unwrap());
    }
    let (unsent, sent, abandoned, live) = (&jobs[0], &jobs[1], &jobs[2], &jobs[3]);
    let t0 = store.now();
    store.mark_dispatched(a.id, sent.base.id).await.unwrap();
    store.claim_job(a.id, abandoned.base.id, t0 + Duration::minutes(1)).await.unwrap().expect("claimed");
    store.claim_job(a.id, live.base.id, t0 + Duration::hours(1)).await.unwrap().expect("claimed");
    // Ten minutes on: the sweep looks for messages not sent in the last five.
    let later = store.clone().with_clock(move || t0 + Duration::minutes(10));
    let cutoff = t0 + Duration::minutes(5);
    let ours = |jobs: Vec<SyncJob>| -> Vec<JobId> {
        let mine: Vec<JobId> = [unsent, sent, abandoned, live].iter().map(|j| j.base.id).collect();
        jobs.into_iter().map(|j| j.base.id).filter(|id| mine.contains(id)).collect()
    };

    // Act
    let before_cutoff = ours(store.scan_jobs_to_dispatch(t0 - Duration::minutes(1), 1000).await.unwrap());
    let due = ours(later.scan_jobs_to_dispatch(cutoff, 1000).await.unwrap());
    for id in &due {
        later.mark_dispatched(a.id, *id).await.unwrap();
    }
    let after_sending = ours(later.scan_jobs_to_dispatch(cutoff, 1000).await.unwrap());

    // Assert
    assert!(before_cutoff.is_empty(), "jobs younger than the cutoff are left to their first send: {before_cutoff:?}");
    assert!(due.contains(&unsent.base.id), "never sent: {due:?}");
    assert!(due.contains(&sent.base.id), "sent before the cutoff and still pending: {due:?}");
    assert!(due.contains(&abandoned.base.id), "its lease ran out: {due:?}");
    assert!(!due.contains(&live.base.id), "a held lease is not abandoned");
    assert!(after_sending.is_empty(), "sent again just now: {after_sending:?}");
}

async fn synced_files_upsert_by_provider_id_and_deletes_wait_for_the_guard(store: Store) {
    // Arrange
    let (a, _) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let folder = g.folder.base.id;
    let job = g.job.base.id;
    let link_to = |file: FileId| NewSharedLink { file_id: Some(file), ..new_file_link(&a, file) };

    // Act: two files listed, one listed again with a new hash, one marked deleted.
    store.upsert_synced_file(&synced(&a, folder, "id:A", "aaaa", Some(job))).await.unwrap();
    store.upsert_synced_file(&synced(&a, folder, "id:B", "bbbb", Some(job))).await.unwrap();
    let changed = SyncedFile { sync_status: SyncStatus::Synced, ..synced(&a, folder, "id:A", "cccc", Some(job)) };
    store.upsert_synced_file(&changed).await.unwrap();
    let b = store.get_file_by_provider_id(a.id, folder, "id:B").await.unwrap().expect("B is stored");
    let link = store.create_link(&link_to(b.base.id)).await.unwrap();
    let live_before = store.count_live_files(a.id, folder).await.unwrap();
    let marked = store.mark_file_deleted(a.id, folder, "id:B", job).await.unwrap();
    let counted = store.count_marked_deleted(a.id, folder, job).await.unwrap();
    let cleared = store.clear_marked_deletes(a.id, folder, job).await.unwrap();
    store.mark_file_deleted(a.id, folder, "id:B", job).await.unwrap();
    let applied = store.apply_marked_deletes(a.id, folder, job).await.unwrap();

    // Assert
    let a_row = store.get_file_by_provider_id(a.id, folder, "id:A").await.unwrap().expect("A is stored");
    assert_eq!(a_row.content_hash.as_deref(), Some("cccc"), "the second listing updated the row");
    assert_eq!(a_row.sync_status, SyncStatus::Synced);
    assert_eq!(a_row.file_path.as_deref(), Some("Scenarios/id:A.qsim"));
    assert_eq!(a_row.file_metadata.as_ref().unwrap()["revision"], "r1");
    assert_eq!(live_before, 3, "the graph's own file and the two synced");
    assert_eq!((marked, counted, cleared), (1, 1, 1));
    assert_eq!(applied, 1);
    assert!(store.get_file_by_provider_id(a.id, folder, "id:B").await.unwrap().is_none(), "B is deleted");
    assert!(!store.get_link(a.id, link.base.id).await.unwrap().is_active, "its link went with it");
    assert_eq!(store.count_live_files(a.id, folder).await.unwrap(), 2);
    store.upsert_synced_file(&synced(&a, folder, "id:B", "bbbb", Some(job))).await.unwrap();
    assert!(store.get_file_by_provider_id(a.id, folder, "id:B").await.unwrap().is_some(), "re-created as a new row");
}

async fn unseen_and_path_deletes_mark_only_their_folder(store: Store) {
    // Arrange: two folders of one connection, each with files; one listing saw some.
    let (a, _) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let other = store.create_folder(&new_folder(&a, g.connection.base.id)).await.unwrap();
    let (folder, job) = (g.folder.base.id, g.job.base.id);
    store.upsert_synced_file(&synced(&a, folder, "seen", "1", Some(job))).await.unwrap();
    let mut in_dir = synced(&a, folder, "in-dir", "2", Some(job));
    in_dir.file_path = Some("Old_Runs/deep/run.qres".into());
    store.upsert_synced_file(&in_dir).await.unwrap();
    let mut lookalike = synced(&a, folder, "lookalike", "3", Some(job));
    lookalike.file_path = Some("OldXRuns/run.qres".into());
    store.upsert_synced_file(&lookalike).await.unwrap();
    store.upsert_synced_file(&synced(&a, other.base.id, "elsewhere", "4", None)).await.unwrap();

    // Act
    let by_path = store.mark_path_deleted(a.id, folder, "old_runs", job).await.unwrap();
    let by_path_count = store.count_marked_deleted(a.id, folder, job).await.unwrap();
    store.clear_marked_deletes(a.id, folder, job).await.unwrap();
    let unseen = store.mark_unseen_deleted(a.id, folder, job).await.unwrap();
    let elsewhere = store.count_marked_deleted(a.id, other.base.id, job).await.unwrap();

    // Assert
    assert_eq!(by_path, 1, "the file below the deleted folder, compared lower-cased; `_` is no wildcard");
    assert_eq!(by_path_count, 1);
    assert_eq!(unseen, 1, "the graph's file, which the listing did not see");
    assert_eq!(elsewhere, 0, "another folder's files are never marked");
}

async fn downloads_wait_in_index_order_and_failed_ones_are_retried(store: Store) {
    // Arrange: three files waiting, one synced, one failed; another folder's failed file.
    let (a, _) = tenants(&store).await;
    let g = Graph::create(&store, &a).await;
    let other = store.create_folder(&new_folder(&a, g.connection.base.id)).await.unwrap();
    let (folder, job) = (g.folder.base.id, g.job.base.id);
    for id in ["w1", "w2", "w3"] {
        store.upsert_synced_file(&synced(&a, folder, id, "1", Some(job))).await.unwrap();
    }
    let done = SyncedFile { sync_status: SyncStatus::Synced, ..synced(&a, folder, "done", "2", Some(job)) };
    store.upsert_synced_file(&done).await.unwrap();
    let failed = SyncedFile { sync_status: SyncStatus::Error, ..synced(&a, folder, "failed", "3", Some(job)) };
    store.upsert_synced_file(&failed).await.unwrap();
    let failed_elsewhere = SyncedFile { sync_status: SyncStatus::Error, ..synced(&a, other.base.id, "x", "4", None) };
    store.upsert_synced_file(&failed_elsewhere).await.unwrap();

    // Act
    let first = store.list_files_to_download(a.id, folder, 0, 2).await.unwrap();
    let rest = store.list_files_to_download(a.id, folder, first[1].base.index_id, 2).await.unwrap();
    let retried = store.retry_failed_files(a.id, folder).await.unwrap();
    let after_retry = store.list_files_to_download(a.id, folder, 0, 10).await.unwrap();

    // Assert
    let names = |files: &[CloudFile]| files.iter().map(|f| f.provider_file_id.clone()).collect::<Vec<_>>();
    assert_eq!(names(&first), ["w1", "w2"], "in index order, at most the limit");
    assert_eq!(names(&rest), ["w3"], "after the given index");
    assert_eq!(retried, 1, "the folder's failed file only");
    assert_eq!(names(&after_retry), ["w1", "w2", "w3", "failed"]);
    let elsewhere = store.get_file_by_provider_id(a.id, other.base.id, "x").await.unwrap().unwrap();
    assert_eq!(elsewhere.sync_status, SyncStatus::Error, "another folder's file is left alone");
}

fn main() {
    let args = Arguments::from_args();
    let rt = Arc::new(tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime"));
    let scratch = Arc::new(tempfile::tempdir().expect("temp dir"));

    let mut trials = Vec::new();
    for (name, case) in CASES {
        let (rt, scratch, case) = (Arc::clone(&rt), Arc::clone(&scratch), *case);
        trials.push(Trial::test(format!("sqlite::{name}"), move || {
            rt.block_on(async {
                let path = scratch.path().join(format!("{}.db", Uuid::new_v4()));
                let backend =
                    shared::db::sqlite::SqliteBackend::open(path).await.map_err(|e| Failed::from(e.to_string()))?;
                case(Store::new(Arc::new(backend))).await;
                Ok(())
            })
        }));
    }

    let mssql = std::env::var("QUODSI_TEST_MSSQL_URL").ok().filter(|u| !u.trim().is_empty());
    let mut test_db = None;
    if let Some(url) = mssql {
        let (backend, db) = rt.block_on(shared::db::mssql::create_test_database(&url)).unwrap_or_else(|e| {
            panic!("QUODSI_TEST_MSSQL_URL is set but no test database could be made: {}", shared::error_chain(&e))
        });
        let store = Store::new(Arc::new(backend));
        test_db = Some(db);
        for (name, case) in CASES {
            let (rt, store, case) = (Arc::clone(&rt), store.clone(), *case);
            trials.push(Trial::test(format!("mssql::{name}"), move || {
                rt.block_on(case(store));
                Ok(())
            }));
        }
    }

    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(db) = test_db
        && let Err(e) = rt.block_on(db.drop_database())
    {
        eprintln!("could not drop the SQL Server test database: {}", shared::error_chain(&e));
    }
    conclusion.exit();
}
