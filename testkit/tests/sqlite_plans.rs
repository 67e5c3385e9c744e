//! Every statement the SQLite backend sends is planned against the migrated schema, and no
//! plan may read a whole table: each table access must go through an index (or the rowid).
//! SQLite plans without statistics here, which is the pessimistic case: with ANALYZE data
//! the planner only has more reason to pick the indexes.
//!
//! Plans are taken with foreign keys off. With them on, an INSERT into a parent table also
//! compiles lookups of child rows (to settle deferred violations), some without an index;
//! SQLite guards those with OP_FkIfZero, so they run only while the transaction already
//! has an outstanding violation, i.e. on the way to a rejected COMMIT, never on a hot path.

use rusqlite::Connection;
use shared::db::{Stmt, sqlite};

fn planner(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "foreign_keys", false).unwrap();
    conn
}

fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    // Parameters stay unbound (NULL): the plan depends on the SQL, not on the values.
    let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("plannable");
    let mut rows = st.raw_query();
    let mut lines = Vec::new();
    while let Some(r) = rows.next().expect("plan row") {
        lines.push(r.get::<_, String>(3).expect("detail"));
    }
    lines
}

/// A plan line that reads a table without an index: "SCAN t" (a full scan), as opposed to
/// "SCAN t USING INDEX ix" (walking an index in order), "SEARCH t USING ..." and
/// "SCAN CONSTANT ROW" (the one-row source of INSERT ... SELECT).
fn full_scan(line: &str) -> bool {
    line.starts_with("SCAN ") && !line.contains(" USING ") && line != "SCAN CONSTANT ROW"
}

#[tokio::test]
async fn no_statement_scans_a_whole_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plans.db");
    sqlite::SqliteBackend::open(path.clone()).await.expect("migrated database");
    let conn = planner(&path);

    let mut failures = Vec::new();
    for stmt in Stmt::ALL {
        let sql = sqlite::sql(*stmt);
        let lines = plan(&conn, sql);
        // An INSERT ... VALUES reads no table, so it has no plan lines; everything else does.
        assert!(!lines.is_empty() || sql.contains(" VALUES ("), "{stmt} has no plan");
        if lines.iter().any(|l| full_scan(l)) {
            failures.push(format!("{stmt}: {lines:?}"));
        }
    }

    assert!(failures.is_empty(), "full table scans:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn hot_queries_use_the_seed_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plans.db");
    sqlite::SqliteBackend::open(path.clone()).await.expect("migrated database");
    let conn = planner(&path);
    let expect = [
        (Stmt::ConnList, "ix_cloud_connections_tenant_active"),
        (Stmt::ConnGet, "ix_cloud_connections_tenant_id_lookup"),
        (Stmt::ConnKnown, "ix_cloud_connections_tenant_id_lookup"),
        (Stmt::FolderKnown, "ix_cloud_folders_tenant_id_lookup"),
        (Stmt::FileKnown, "ix_cloud_files_tenant_id_lookup"),
        (Stmt::ConnGetByAccount, "ix_cloud_connections_tenant_user_provider"),
        (Stmt::ConnTokenScan, "ix_cloud_connections_token_expiry"),
        (Stmt::FolderList, "ix_cloud_folders_tenant_active"),
        (Stmt::FolderDueScan, "ix_cloud_folders_auto_sync_due"),
        (Stmt::FolderNeverSyncedScan, "ix_cloud_folders_auto_sync_due"),
        (Stmt::FolderDueScan, "ix_cloud_sync_jobs_folder_status"),
        (Stmt::FolderNeverSyncedScan, "ix_cloud_sync_jobs_folder_status"),
        (Stmt::ConnRefreshDueScan, "ix_cloud_connections_token_expiry"),
        (Stmt::ConnKeepAliveScan, "ix_cloud_connections_keep_alive"),
        (Stmt::ConnKeepAliveNewScan, "ix_cloud_connections_keep_alive"),
        (Stmt::JobList, "ix_cloud_sync_jobs_tenant_active"),
        (Stmt::FileList, "ix_cloud_files_tenant_active"),
        (Stmt::LinkList, "ix_cloud_shared_links_tenant_active"),
        (Stmt::ConnLinkList, "ix_cloud_shared_links_tenant_active"),
        (Stmt::FolderLinkList, "ix_cloud_shared_links_tenant_active"),
        (Stmt::LinkExpiredScan, "ix_cloud_shared_links_expires"),
        (Stmt::LinkGetPublic, "ix_cloud_shared_links_id"),
        (Stmt::LinkExpiryClaim, "ix_cloud_shared_links_id"),
        (Stmt::ErrorList, "ix_cloud_sync_errors_tenant_active"),
        (Stmt::JobPendingScan, "ix_cloud_sync_jobs_status_created"),
    ];

    for (stmt, index) in expect {
        let lines = plan(&conn, sqlite::sql(stmt));
        assert!(lines.iter().any(|l| l.contains(index)), "{stmt} does not use {index}: {lines:?}");
    }
}
