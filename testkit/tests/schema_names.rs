//! Every index and constraint name in the seed appears in both migration folders. The only
//! names SQLite carries differently are the clustered `ix_<table>_index_id` indexes, which
//! are SQLite's rowid; migrations/README.md maps them and this test holds it to that.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read_dir_sql(dir: &str) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(root().join(dir)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sql") {
            text.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    text
}

/// Backticked `ix_`, `fk_` and `ck_` names of the seed.
fn seed_names() -> BTreeSet<String> {
    let seed = std::fs::read_to_string(root().join("docs/seed-002-cloud-connections.md")).unwrap();
    seed.split('`')
        .filter(|w| (w.starts_with("ix_") || w.starts_with("fk_") || w.starts_with("ck_")) && !w.contains(' '))
        .map(str::to_owned)
        .collect()
}

fn defined(sql: &str, name: &str) -> bool {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == name)
}

#[test]
fn the_seed_lists_the_expected_names() {
    let names = seed_names();
    // 6 tables: 7+8+7+9+7+7 indexes, 4+5+6+5+6+5 constraints.
    assert_eq!(names.len(), 45 + 31, "{names:?}");
}

#[test]
fn every_seed_name_is_in_the_sql_server_migrations() {
    let sql = read_dir_sql("migrations/mssql");
    let missing: Vec<_> = seed_names().into_iter().filter(|n| !defined(&sql, n)).collect();
    assert!(missing.is_empty(), "missing from migrations/mssql: {missing:?}");
}

#[test]
fn every_seed_name_is_in_the_sqlite_migrations_or_mapped() {
    let sql = read_dir_sql("migrations/sqlite");
    let readme = std::fs::read_to_string(root().join("migrations/README.md")).unwrap();
    let (present, absent): (Vec<_>, Vec<_>) = seed_names().into_iter().partition(|n| defined(&sql, n));

    assert!(present.len() > 60, "{present:?}");
    for name in &absent {
        assert!(name.ends_with("_index_id"), "{name} is missing from migrations/sqlite");
    }
    assert_eq!(absent.len(), 6, "one rowid mapping per table: {absent:?}");
    assert!(readme.contains("`ix_<table>_index_id` CLUSTERED") && readme.contains("the rowid"));
    // The seed's six tables, cloud_sync_cursors (V5) and cloud_sync_subscriptions (V6), each
    // keyed by its rowid.
    assert_eq!(sql.matches("    index_id INTEGER PRIMARY KEY AUTOINCREMENT,\n").count(), 8);
}
