//! The embedded SQLite backend: local runs and CI. Bundled SQLite, WAL, a busy timeout,
//! foreign keys on, and the same constraints as SQL Server enforced by the engine.

mod pool;
mod sql;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, ToSql, ffi};

use super::backend::{Backend, Step, StepOutcome, When};
use super::error::{DbError, DbResult};
use super::stmt::Stmt;
use super::value::{Cell, Row, SQLITE_TIMESTAMP_FORMAT, Value};

pub use sql::sql;

mod embedded {
    refinery::embed_migrations!("../migrations/sqlite");
}

/// The same migrations as `embedded`, listed by the build script (`shared/build.rs`) as
/// (version, name, SQL), for [`history_is_current`].
mod listed {
    include!(concat!(env!("OUT_DIR"), "/sqlite_migrations.rs"));
}

/// How long a writer waits for another connection's write transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections kept open; SQLite serialises writers anyway, so a few readers suffice.
const POOL_SIZE: usize = 8;

pub struct SqliteBackend {
    pool: pool::Pool,
    names: Arc<LazyConstraintNames>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend").field("path", &self.path).finish_non_exhaustive()
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    configure(&conn)?;
    Ok(conn)
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file and brings it to the newest schema.
    pub async fn open(path: impl Into<PathBuf>) -> DbResult<SqliteBackend> {
        let path = path.into();
        let p = path.clone();
        let (conn, report) = tokio::task::spawn_blocking(move || -> DbResult<_> {
            let mut conn = open_connection(&p).map_err(DbError::unavailable)?;
            let report = migrate_connection(&mut conn)?;
            Ok((conn, report))
        })
        .await
        .map_err(DbError::backend)??;
        tracing::debug!(path = %path.display(), %report, "sqlite database ready");
        let opener_path = path.clone();
        Ok(SqliteBackend {
            // The connection that migrated is kept: each new connection parses the schema again.
            pool: pool::Pool::new(POOL_SIZE, move || open_connection(&opener_path), conn),
            names: Arc::default(),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub(crate) fn migrate_connection(conn: &mut Connection) -> DbResult<String> {
    if history_is_current(conn) {
        return Ok(super::describe_migrations(std::iter::empty()));
    }
    let report = embedded::migrations::runner().run(conn).map_err(DbError::backend)?;
    Ok(super::describe_migrations(report.applied_migrations().iter().map(|m| m.to_string())))
}

/// Whether the file's migration history is exactly the embedded migrations: the same versions,
/// names and checksums, so refinery's runner would apply and refuse nothing. Then the runner
/// is not built, which spares every open (each cold start of a function on SQLite) the
/// regexes it compiles to parse the migrations' names; anything else, a new file or one
/// behind, ahead or changed, goes to the runner, which migrates or says what is wrong.
fn history_is_current(conn: &Connection) -> bool {
    let history = conn
        .prepare("SELECT version, name, checksum FROM refinery_schema_history ORDER BY version")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get::<_, i32>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
    let Ok(history) = history else { return false };
    history.len() == listed::MIGRATIONS.len()
        && history.iter().zip(listed::MIGRATIONS).all(|((version, name, checksum), (v, n, sql))| {
            version == v && name == n && *checksum == refinery_checksum(*v, n, sql).to_string()
        })
}

/// refinery's checksum of a migration (`refinery_core::Migration::unapplied`): SipHash-1-3 of
/// its name, version and SQL, hashed in that order.
fn refinery_checksum(version: i32, name: &str, sql: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = siphasher::sip::SipHasher13::new();
    name.hash(&mut hasher);
    version.hash(&mut hasher);
    sql.hash(&mut hasher);
    hasher.finish()
}

/// Migrates a SQLite file without keeping it open (the `migrate` command).
pub async fn migrate_file(path: PathBuf) -> DbResult<String> {
    tokio::task::spawn_blocking(move || {
        let mut conn = open_connection(&path).map_err(DbError::unavailable)?;
        migrate_connection(&mut conn)
    })
    .await
    .map_err(DbError::backend)?
}

#[async_trait::async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn sql(&self, stmt: Stmt) -> &'static str {
        sql(stmt)
    }

    async fn run(&self, steps: Vec<Step>) -> DbResult<Vec<StepOutcome>> {
        crate::db::validate::step_timestamps(&steps)?;
        let names = Arc::clone(&self.names);
        self.pool.with(move |conn| run_steps(conn, &steps, &names)).await.map_err(DbError::unavailable)?
    }
}

fn is_read(stmt: Stmt) -> bool {
    sql(stmt).starts_with("SELECT")
}

fn run_steps(conn: &mut Connection, steps: &[Step], names: &LazyConstraintNames) -> DbResult<Vec<StepOutcome>> {
    if let [only] = steps
        && is_read(only.stmt)
    {
        return run_one(conn, only).map(|o| vec![o]).map_err(|e| map_error(conn, e, names));
    }
    // IMMEDIATE takes the write lock up front: a deferred transaction that later needs to
    // upgrade can fail with SQLITE_BUSY without the busy timeout ever applying.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| map_error(conn, e, names))?;
    let mut outcomes = Vec::with_capacity(steps.len());
    for step in steps {
        let skip = match step.when {
            When::Always => false,
            When::PrevEmpty => outcomes.last().is_some_and(|o: &StepOutcome| !o.is_empty()),
            When::PrevNonEmpty => outcomes.last().is_none_or(|o: &StepOutcome| o.is_empty()),
        };
        if skip {
            outcomes.push(StepOutcome::Skipped);
            continue;
        }
        match run_one(conn, step) {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                let err = map_error(conn, e, names);
                rollback(conn);
                return Err(err);
            }
        }
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        // A deferred foreign key fails the COMMIT and leaves the transaction open, so the
        // violating row can still be found and the constraint named.
        let err = map_error(conn, e, names);
        rollback(conn);
        return Err(err);
    }
    Ok(outcomes)
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(error = %e, "sqlite rollback failed");
    }
}

fn run_one(conn: &Connection, step: &Step) -> rusqlite::Result<StepOutcome> {
    let mut st = conn.prepare_cached(sql(step.stmt))?;
    for (i, p) in step.params.iter().enumerate() {
        st.raw_bind_parameter(i + 1, p)?;
    }
    if step.stmt.returns_rows() {
        let width = st.column_count();
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(width);
            for i in 0..width {
                cells.push(cell(r.get_ref(i)?)?);
            }
            out.push(Row::new(cells));
        }
        Ok(StepOutcome::Rows(out))
    } else {
        Ok(StepOutcome::Affected(st.raw_execute()? as u64))
    }
}

fn cell(v: ValueRef<'_>) -> rusqlite::Result<Cell> {
    Ok(match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Real(r) => Cell::Real(r),
        ValueRef::Text(t) => {
            Cell::Text(std::str::from_utf8(t).map_err(|e| rusqlite::Error::Utf8Error(0, e))?.to_owned())
        }
        ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
    })
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null(_) => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Bool(b) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i64::from(*b))),
            Value::I32(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i64::from(*i))),
            Value::I64(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Uuid(u) => ToSqlOutput::Owned(rusqlite::types::Value::Text(u.hyphenated().to_string())),
            Value::Timestamp(t) => {
                ToSqlOutput::Owned(rusqlite::types::Value::Text(t.format(SQLITE_TIMESTAMP_FORMAT).to_string()))
            }
            Value::Hundredths(h) => ToSqlOutput::Owned(rusqlite::types::Value::Real(*h as f64 / 100.0)),
        })
    }
}

/// Maps a driver error to the store's vocabulary, naming the constraint where one failed.
fn map_error(conn: &Connection, e: rusqlite::Error, names: &LazyConstraintNames) -> DbError {
    let (code, msg) = match &e {
        rusqlite::Error::SqliteFailure(code, msg) => (*code, msg.clone().unwrap_or_default()),
        _ => return DbError::backend(e),
    };
    match code.code {
        ErrorCode::ConstraintViolation => match code.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                let cols = msg.trim_start_matches("UNIQUE constraint failed: ");
                let constraint = names
                    .get(conn)
                    .and_then(|names| names.unique.get(cols))
                    .cloned()
                    .or_else(|| cols.strip_prefix("index '").map(|s| s.trim_end_matches('\'').to_owned()))
                    .unwrap_or_else(|| cols.to_owned());
                DbError::Conflict { constraint }
            }
            ffi::SQLITE_CONSTRAINT_CHECK => {
                DbError::Invalid { constraint: msg.trim_start_matches("CHECK constraint failed: ").to_owned() }
            }
            ffi::SQLITE_CONSTRAINT_NOTNULL => DbError::Invalid {
                constraint: format!("not_null:{}", msg.trim_start_matches("NOT NULL constraint failed: ")),
            },
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => DbError::Invalid {
                constraint: names
                    .get(conn)
                    .and_then(|names| names.failed_foreign_key(conn))
                    .unwrap_or_else(|| "foreign_key".to_owned()),
            },
            _ => DbError::backend(e),
        },
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen => DbError::unavailable(e),
        _ => DbError::backend(e),
    }
}

/// [`ConstraintNames`], read on the first constraint failure rather than at open: reading them
/// is some queries per table, and most cold starts (every function's, on SQLite) meet no
/// constraint failure at all.
#[derive(Debug, Default)]
pub(crate) struct LazyConstraintNames(OnceLock<ConstraintNames>);

impl LazyConstraintNames {
    /// The names, read through `conn` if no connection has read them yet. `None` if that read
    /// fails; the failure is then mapped with SQLite's own wording, and the next one tries again.
    fn get(&self, conn: &Connection) -> Option<&ConstraintNames> {
        if let Some(names) = self.0.get() {
            return Some(names);
        }
        match ConstraintNames::read(conn) {
            // Two connections may read at once: the schema is the same, the first stored wins.
            Ok(names) => Some(self.0.get_or_init(|| names)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the schema's constraint names");
                None
            }
        }
    }
}

/// Constraint names, read from the migrated schema itself so they cannot drift from it.
#[derive(Debug, Default)]
pub(crate) struct ConstraintNames {
    /// "table.col_a, table.col_b" (SQLite's wording) → unique index name.
    unique: HashMap<String, String>,
    /// (table, "col_a,col_b") → foreign key constraint name.
    foreign: HashMap<(String, String), String>,
}

impl ConstraintNames {
    fn read(conn: &Connection) -> rusqlite::Result<ConstraintNames> {
        let mut names = ConstraintNames::default();
        let tables: Vec<(String, String)> = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (table, ddl) in &tables {
            let indexes: Vec<(String, bool)> = conn
                .prepare("SELECT name, \"unique\" FROM pragma_index_list(?1)")?
                .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (index, unique) in indexes.into_iter().filter(|(_, u)| *u) {
                let _ = unique;
                let cols: Vec<String> = conn
                    .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?
                    .query_map([&index], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let key = cols.iter().map(|c| format!("{table}.{c}")).collect::<Vec<_>>().join(", ");
                names.unique.insert(key, index);
            }
            for (name, cols) in foreign_keys_in(ddl) {
                names.foreign.insert((table.clone(), cols), name);
            }
        }
        Ok(names)
    }

    /// The name of a foreign key the open transaction violates.
    fn failed_foreign_key(&self, conn: &Connection) -> Option<String> {
        let (table, fk_id): (String, i64) = conn
            .query_row("SELECT \"table\", fkid FROM pragma_foreign_key_check LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .ok()?;
        let cols: Vec<String> = conn
            .prepare("SELECT \"from\" FROM pragma_foreign_key_list(?1) WHERE id = ?2 ORDER BY seq")
            .ok()?
            .query_map(rusqlite::params![table, fk_id], |r| r.get(0))
            .ok()?
            .collect::<Result<_, _>>()
            .ok()?;
        self.foreign.get(&(table, cols.join(","))).cloned()
    }
}

/// `CONSTRAINT name FOREIGN KEY (a, b)` clauses of a CREATE TABLE, as (name, "a,b").
fn foreign_keys_in(ddl: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = ddl;
    while let Some(at) = rest.find("CONSTRAINT ") {
        rest = &rest[at + "CONSTRAINT ".len()..];
        let mut words = rest.split_whitespace();
        let (Some(name), Some("FOREIGN"), Some("KEY")) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Some(open) = rest.find('(') else { break };
        let Some(close) = rest[open..].find(')') else { break };
        let cols = rest[open + 1..open + close].split(',').map(str::trim).collect::<Vec<_>>().join(",");
        out.push((name.to_owned(), cols));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listed_migrations_are_the_ones_refinery_embeds() {
        // Arrange
        let runner = embedded::migrations::runner();

        // Act
        let embedded: Vec<(i32, String, u64)> =
            runner.get_migrations().iter().map(|m| (m.version(), m.name().to_owned(), m.checksum())).collect();
        let listed: Vec<(i32, String, u64)> =
            listed::MIGRATIONS.iter().map(|(v, n, sql)| (*v, (*n).to_owned(), refinery_checksum(*v, n, sql))).collect();

        // Assert
        assert_eq!(listed, embedded);
    }

    #[test]
    fn only_a_history_equal_to_the_embedded_migrations_is_current() {
        // Arrange
        let mut conn = Connection::open_in_memory().unwrap();
        let new_file = history_is_current(&conn);

        // Act
        migrate_connection(&mut conn).unwrap();
        let migrated = history_is_current(&conn);
        let again = migrate_connection(&mut conn).unwrap();
        conn.execute("UPDATE refinery_schema_history SET checksum = '1' WHERE version = 1", []).unwrap();
        let changed = history_is_current(&conn);
        let refused = migrate_connection(&mut conn).unwrap_err();

        // Assert: a changed migration is still refinery's to refuse.
        assert!(!new_file);
        assert!(migrated);
        assert_eq!(again, crate::db::describe_migrations(std::iter::empty()));
        assert!(!changed);
        assert!(crate::error_chain(&refused).contains("cloud_schema"), "{}", crate::error_chain(&refused));
    }

    #[test]
    fn foreign_key_clauses_are_read_from_ddl() {
        let ddl = "CREATE TABLE t (a TEXT, b TEXT, CONSTRAINT fk_a FOREIGN KEY (a) REFERENCES p (id), \
                   CONSTRAINT ck_x CHECK (a <> b), CONSTRAINT fk_ab FOREIGN KEY (b, a) REFERENCES q (x, y))";
        assert_eq!(
            foreign_keys_in(ddl),
            vec![("fk_a".to_owned(), "a".to_owned()), ("fk_ab".to_owned(), "b,a".to_owned())]
        );
    }

    #[test]
    fn every_statement_prepares_against_the_migrated_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        migrate_connection(&mut conn).unwrap();
        for stmt in Stmt::ALL {
            conn.prepare(sql(*stmt)).unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
    }
}
