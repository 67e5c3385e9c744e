//! The SQL Server backend: Azure SQL, SQL Server 2019+ and Babelfish for Aurora PostgreSQL
//! over TDS (tiberius, rustls), pooled with bb8.
//!
//! Every statement is sent through `sp_executesql` with bound parameters, so plans are
//! cached per statement and no value is ever formatted into SQL text (a NULL of some types
//! is written as a typed `NULL` literal: see `convert::column_data`). A single reading
//! statement runs on its own; anything else runs in one explicit transaction on one
//! connection, with XACT_ABORT on, so a failure anywhere rolls all of it back.

mod convert;
mod errors;
mod pool;
mod sql;

use std::time::Duration;

use tiberius::error::Error as TdsError;
use tiberius::{Config, Query};

use super::backend::{Backend, Step, StepOutcome, When};
use super::error::{DbError, DbResult};
use super::stmt::Stmt;
use super::value::{Row, Value};
use pool::{Conn, Manager, TdsClient, batch, open_connection};

pub use sql::sql;

mod embedded {
    refinery::embed_migrations!("../migrations/mssql");
}

/// A Lambda instance serves one request at a time; a few connections cover the requests
/// that issue queries concurrently without holding many sessions per instance on the server.
const POOL_MAX_SIZE: u32 = 4;
/// How long a request waits for a connection (including opening one) before giving up; with
/// [`REQUEST_COMMAND_TIMEOUT`] it fits inside the HTTP functions' Lambda timeout.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections are closed before the usual NAT / gateway idle limits (AWS NAT: 350 s)
/// would cut them silently.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Connections are renewed now and then so that, after an Azure failover or scaling
/// operation, the pool moves to the new node instead of keeping redirected sessions.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Database creation and migrations can take far longer than a request.
const ADMIN_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// The SQL Server backend. Cheap to share: the pool is reference-counted.
pub struct MssqlBackend {
    pool: bb8::Pool<Manager>,
    last_error: pool::LastError,
}

impl std::fmt::Debug for MssqlBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password; only the pool's state is shown.
        let state = self.pool.state();
        f.debug_struct("MssqlBackend")
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .finish_non_exhaustive()
    }
}

impl MssqlBackend {
    /// Connects with an ADO.NET or JDBC connection string. One connection is opened (and
    /// its session configured) up front, so a wrong password or an unreachable server is
    /// reported now with the server's own message rather than as a checkout timeout later.
    pub async fn connect(conn_str: &str) -> DbResult<MssqlBackend> {
        MssqlBackend::with_config(pool_config(pool::parse_config(conn_str)?)).await
    }

    async fn with_config(config: Config) -> DbResult<MssqlBackend> {
        let first = open_connection(&config).await.map_err(DbError::unavailable)?;
        let last_error = pool::LastError::default();
        let pool = bb8::Pool::builder()
            .max_size(POOL_MAX_SIZE)
            .min_idle(None)
            .test_on_check_out(true)
            .connection_timeout(CHECKOUT_TIMEOUT)
            .idle_timeout(Some(IDLE_TIMEOUT))
            .max_lifetime(Some(MAX_LIFETIME))
            .error_sink(Box::new(last_error.clone()))
            .build_unchecked(Manager::new(config));
        // Cannot fail on an empty pool of size 4 with a healthy connection; if it did, the
        // connection is dropped and the pool opens its own on first use.
        if pool.add(first).is_err() {
            tracing::debug!("first sql server connection not pooled");
        }
        Ok(MssqlBackend { pool, last_error })
    }

    async fn checkout(&self) -> DbResult<bb8::PooledConnection<'_, Manager>> {
        self.pool.get().await.map_err(|e| match e {
            bb8::RunError::User(e) => DbError::unavailable(e),
            bb8::RunError::TimedOut => {
                DbError::unavailable(pool::CheckoutTimeout { timeout: CHECKOUT_TIMEOUT, last: self.last_error.take() })
            }
        })
    }
}

#[async_trait::async_trait]
impl Backend for MssqlBackend {
    fn name(&self) -> &'static str {
        "mssql"
    }

    fn sql(&self, stmt: Stmt) -> &'static str {
        sql(stmt)
    }

    async fn run(&self, steps: Vec<Step>) -> DbResult<Vec<StepOutcome>> {
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        crate::db::validate::step_timestamps(&steps)?;
        let mut deadlock_retried = false;
        let mut reconnected = false;
        loop {
            let mut conn = self.checkout().await?;
            let failure = match attempt(&mut conn, &steps).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(f) => f,
            };
            drop(conn);
            match failure {
                // The server rolled the victim's transaction back entirely: run it again once.
                Failure { error: StepError::Driver(e), .. } if errors::is_deadlock(&e) => {
                    if deadlock_retried {
                        return Err(DbError::unavailable(e));
                    }
                    deadlock_retried = true;
                    tracing::warn!(error = %e, "sql server deadlock victim; retrying the transaction");
                }
                // The connection died before anything that could change data was sent.
                Failure { error: StepError::Driver(e), nothing_sent: true, .. } if !reconnected => {
                    reconnected = true;
                    tracing::warn!(error = %e, "sql server connection lost; retrying on a new one");
                }
                Failure { error, .. } => return Err(error.into_db_error()),
            }
        }
    }
}

fn is_read(stmt: Stmt) -> bool {
    sql(stmt).starts_with("SELECT")
}

#[derive(Debug)]
enum StepError {
    Driver(TdsError),
    Decode(DbError),
}

impl StepError {
    fn into_db_error(self) -> DbError {
        match self {
            StepError::Driver(e) => errors::to_db_error(e),
            StepError::Decode(e) => e,
        }
    }

    fn breaks_connection(&self) -> bool {
        match self {
            StepError::Driver(e) => errors::breaks_connection(e),
            StepError::Decode(_) => false,
        }
    }
}

#[derive(Debug)]
struct Failure {
    error: StepError,
    /// Whether the connection is unusable now (then it is discarded, and the server rolls
    /// back whatever the session had open when the socket closes).
    lost: bool,
    /// Whether the failure came on the first request of the checkout (the only statement of
    /// a read, or BEGIN TRANSACTION): then no data can have changed and a rerun is safe.
    nothing_sent: bool,
}

/// One try of the steps on one connection. The connection stays marked broken unless the
/// try ends in a known state: committed, rolled back, or a read that finished.
async fn attempt(conn: &mut Conn, steps: &[Step]) -> Result<Vec<StepOutcome>, Failure> {
    conn.broken = true;
    let result = match steps {
        [only] if is_read(only.stmt) => run_step(&mut conn.client, only).await.map(|o| vec![o]).map_err(|error| {
            let lost = error.breaks_connection();
            Failure { error, lost, nothing_sent: lost }
        }),
        _ => transaction(&mut conn.client, steps).await,
    };
    conn.broken = result.as_ref().is_err_and(|f| f.lost);
    result
}

async fn transaction(client: &mut TdsClient, steps: &[Step]) -> Result<Vec<StepOutcome>, Failure> {
    if let Err(e) = batch(client, "BEGIN TRANSACTION").await {
        let error = StepError::Driver(e);
        let lost = error.breaks_connection();
        let mut failure = abort(client, error).await;
        failure.nothing_sent = lost;
        return Err(failure);
    }
    let mut outcomes = Vec::with_capacity(steps.len());
    for step in steps {
        // Identical to the SQLite backend: judged on the previous step's outcome.
        let skip = match step.when {
            When::Always => false,
            When::PrevEmpty => outcomes.last().is_some_and(|o: &StepOutcome| !o.is_empty()),
            When::PrevNonEmpty => outcomes.last().is_none_or(|o: &StepOutcome| o.is_empty()),
        };
        if skip {
            outcomes.push(StepOutcome::Skipped);
            continue;
        }
        match run_step(client, step).await {
            Ok(o) => outcomes.push(o),
            Err(error) => return Err(abort(client, error).await),
        }
    }
    if let Err(e) = batch(client, "COMMIT TRANSACTION").await {
        // If the connection died during COMMIT the outcome is unknown; it is reported as
        // unavailable and never retried.
        return Err(abort(client, StepError::Driver(e)).await);
    }
    Ok(outcomes)
}

/// Ends a failed transaction. With XACT_ABORT on, SQL Server has usually rolled it back
/// already; the guarded ROLLBACK covers the errors that do not abort it. If even that fails,
/// the connection is given up so an open transaction never goes back to the pool.
async fn abort(client: &mut TdsClient, error: StepError) -> Failure {
    if error.breaks_connection() {
        return Failure { error, lost: true, nothing_sent: false };
    }
    match batch(client, "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION").await {
        Ok(()) => Failure { error, lost: false, nothing_sent: false },
        Err(rollback) => {
            tracing::error!(error = %rollback, "sql server rollback failed; dropping the connection");
            Failure { error, lost: true, nothing_sent: false }
        }
    }
}

/// The T-SQL text a statement is sent as with these parameters: [`sql`] with a typed NULL
/// written in place of each NULL parameter tiberius would send untyped (see
/// `convert::column_data`). Public so the parse test can check every text that can be sent.
pub fn sent_sql(stmt: Stmt, params: &[Value]) -> std::borrow::Cow<'static, str> {
    convert::sent_text(sql(stmt), params)
}

/// Runs one statement with its parameters bound (never formatted into the text; a NULL of
/// some kinds becomes the literal `NULL` of its type, see [`sent_sql`]).
async fn run_step(client: &mut TdsClient, step: &Step) -> Result<StepOutcome, StepError> {
    let mut query = Query::new(sent_sql(step.stmt, &step.params));
    for p in &step.params {
        query.bind(convert::column_data(p));
    }
    if step.stmt.returns_rows() {
        let rows = query
            .query(client)
            .await
            .map_err(StepError::Driver)?
            .into_first_result()
            .await
            .map_err(StepError::Driver)?;
        let rows = rows
            .into_iter()
            .map(|r| r.into_iter().map(convert::cell).collect::<Result<Vec<_>, _>>().map(Row::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(StepError::Decode)?;
        Ok(StepOutcome::Rows(rows))
    } else {
        let result = query.execute(client).await.map_err(StepError::Driver)?;
        Ok(StepOutcome::Affected(result.total()))
    }
}

/// What the server is, for the few places where Azure SQL Database, Babelfish and SQL
/// Server need different administrative statements.
#[derive(Debug, Clone, Copy)]
struct ServerKind {
    babelfish: bool,
    /// SERVERPROPERTY('EngineEdition'): 5 is Azure SQL Database.
    engine_edition: Option<i32>,
}

impl ServerKind {
    async fn detect(client: &mut TdsClient) -> Result<ServerKind, TdsError> {
        // SERVERPROPERTY('babelfish') is '1' on Babelfish and NULL on SQL Server.
        let row = client
            .simple_query(
                "SELECT CAST(SERVERPROPERTY('babelfish') AS VARCHAR(10)) AS babelfish, \
                 CAST(SERVERPROPERTY('EngineEdition') AS INT) AS engine_edition",
            )
            .await?
            .into_row()
            .await?;
        let Some(row) = row else {
            return Err(TdsError::Protocol("server properties returned no row".into()));
        };
        Ok(ServerKind {
            babelfish: row.try_get::<&str, _>(0)?.is_some_and(|v| v.trim() == "1"),
            engine_edition: row.try_get::<i32, _>(1)?,
        })
    }

    fn is_azure_sql_database(self) -> bool {
        !self.babelfish && self.engine_edition == Some(5)
    }
}

/// Refuses a SQL Server database whose collation is not UTF-8: the seed's VARCHAR columns
/// hold user text (folder names, emails) that a code-page collation would turn into '?'.
/// Babelfish stores all text as UTF-8 whatever collation it reports.
async fn require_utf8(client: &mut TdsClient, server: ServerKind) -> DbResult<()> {
    if server.babelfish {
        return Ok(());
    }
    let row = client
        .simple_query("SELECT CAST(DATABASEPROPERTYEX(DB_NAME(), 'Collation') AS NVARCHAR(128))")
        .await
        .map_err(errors::to_db_error)?
        .into_row()
        .await
        .map_err(errors::to_db_error)?;
    let collation = match &row {
        Some(row) => row.try_get::<&str, _>(0).map_err(errors::to_db_error)?.unwrap_or_default(),
        None => "",
    };
    if collation.to_ascii_lowercase().ends_with("_utf8") {
        Ok(())
    } else {
        Err(DbError::State(format!(
            "the database collation '{collation}' is not UTF-8; create the database with \
             COLLATE Latin1_General_100_CI_AS_SC_UTF8 (SQL Server 2019+ / Azure SQL)"
        )))
    }
}

/// Applies the embedded migrations on an open connection.
async fn migrate_connection(conn: &mut Conn) -> DbResult<String> {
    let server = ServerKind::detect(&mut conn.client).await.map_err(errors::to_db_error)?;
    require_utf8(&mut conn.client, server).await?;
    let report = embedded::migrations::runner().run_async(&mut conn.client).await.map_err(DbError::backend)?;
    Ok(super::describe_migrations(report.applied_migrations().iter().map(|m| m.to_string())))
}

fn admin_config(mut config: Config) -> Config {
    config.command_timeout(Some(ADMIN_COMMAND_TIMEOUT));
    config
}

/// Brings the database a connection string names to the newest schema (migrations/mssql,
/// applied with refinery, each migration in its own transaction); returns a one-line report.
pub async fn migrate(conn_str: &str) -> DbResult<String> {
    let config = admin_config(pool::parse_config(conn_str)?);
    let mut conn = open_connection(&config).await.map_err(DbError::unavailable)?;
    migrate_connection(&mut conn).await
}

/// A database made for one test run, dropped by [`TestDatabase::drop_database`].
pub struct TestDatabase {
    admin: Config,
    name: String,
    server: ServerKind,
    dropped: bool,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Database names cannot be parameters. The name is generated here, checked to be plain
/// `[a-z0-9_]`, and only then bracket-quoted into the statement.
fn quoted_database_name(name: &str) -> DbResult<String> {
    let plain = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        Ok(format!("[{name}]"))
    } else {
        Err(DbError::validation("database", format!("'{name}' is not a plain database name")))
    }
}

/// Test support for the conformance suite: connects to the server a connection string
/// names, creates a fresh UTF-8 database `quodsi_test_<random hex>`, migrates it and
/// returns a backend pointing at it.
///
/// On Azure SQL Database the database is created at the Basic service objective, so a
/// database a crashed run leaves behind costs little. On Babelfish (which must run in
/// multi-database mode for this) no collation is given: text is always UTF-8 there.
pub async fn create_test_database(server_conn_str: &str) -> DbResult<(MssqlBackend, TestDatabase)> {
    let admin = admin_config(pool::parse_config(server_conn_str)?);
    let mut conn = open_connection(&admin).await.map_err(DbError::unavailable)?;
    let server = ServerKind::detect(&mut conn.client).await.map_err(errors::to_db_error)?;
    let name = format!("quodsi_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let quoted = quoted_database_name(&name)?;
    let collate = if server.babelfish { "" } else { " COLLATE Latin1_General_100_CI_AS_SC_UTF8" };
    let tier = if server.is_azure_sql_database() { " (EDITION = 'Basic', SERVICE_OBJECTIVE = 'Basic')" } else { "" };
    batch(&mut conn.client, &format!("CREATE DATABASE {quoted}{collate}{tier}")).await.map_err(errors::to_db_error)?;
    drop(conn);
    let db = TestDatabase { admin: admin.clone(), name, server, dropped: false };

    let mut config = admin;
    config.database(&db.name);
    let setup = async {
        let mut conn = open_new_database(&config, server).await?;
        migrate_connection(&mut conn).await?;
        drop(conn);
        MssqlBackend::with_config(pool_config(config.clone())).await
    };
    match setup.await {
        Ok(backend) => Ok((backend, db)),
        Err(e) => {
            if let Err(drop_error) = db.drop_database().await {
                tracing::warn!(error = %drop_error, "could not drop the test database after a failed setup");
            }
            Err(e)
        }
    }
}

/// The request-time command timeout. With the checkout timeout it stays under the HTTP
/// functions' 29 s Lambda timeout, so a stuck database answers the client a JSON 503
/// (database_unavailable) instead of API Gateway's bare timeout.
const REQUEST_COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// The longest a single-statement write can take on SQL Server before it fails: a pool
/// checkout, then a command timeout for each of BEGIN TRANSACTION, the statement and COMMIT.
/// SQLite answers far sooner, so this bounds either engine. Callers that must finish a write
/// (a refreshed token) keep this much time for it.
pub const fn worst_case_single_write() -> Duration {
    Duration::from_secs(CHECKOUT_TIMEOUT.as_secs() + 3 * REQUEST_COMMAND_TIMEOUT.as_secs())
}

fn pool_config(mut config: Config) -> Config {
    config.command_timeout(Some(REQUEST_COMMAND_TIMEOUT));
    config
}

/// Connects to a database that was just created. Azure SQL Database can take a while to
/// bring it online and answers 40613 / 4060 meanwhile.
async fn open_new_database(config: &Config, server: ServerKind) -> DbResult<Conn> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(if server.is_azure_sql_database() { 180 } else { 30 });
    loop {
        match open_connection(config).await {
            Ok(conn) => return Ok(conn),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "new test database not reachable yet");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(DbError::unavailable(e)),
        }
    }
}

impl TestDatabase {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database. Drop the backend first: its pooled sessions hold the database
    /// open (SQL Server ends them anyway; Azure SQL Database and Babelfish cannot).
    pub async fn drop_database(mut self) -> DbResult<()> {
        let quoted = quoted_database_name(&self.name)?;
        let mut conn = open_connection(&self.admin).await.map_err(DbError::unavailable)?;
        if !self.server.babelfish && !self.server.is_azure_sql_database() {
            // Ends every other session in the database (a backend still alive, a hung
            // test) and rolls their work back, so the DROP cannot be blocked.
            batch(&mut conn.client, &format!("ALTER DATABASE {quoted} SET SINGLE_USER WITH ROLLBACK IMMEDIATE"))
                .await
                .map_err(errors::to_db_error)?;
        }
        let mut tries = 0;
        loop {
            match batch(&mut conn.client, &format!("DROP DATABASE {quoted}")).await {
                Ok(()) => break,
                // 3702: still in use — sessions of a pool that was just dropped can linger
                // for a moment where SINGLE_USER is not available.
                Err(TdsError::Server(t)) if t.code() == 3702 && tries < 10 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(errors::to_db_error(e)),
            }
        }
        self.dropped = true;
        Ok(())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.dropped {
            tracing::warn!(database = %self.name, "test database was not dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::sqlite;

    /// The `@Pn` / `?n` indexes a statement uses.
    fn placeholders(sql: &str, sigil: &str) -> std::collections::BTreeSet<u32> {
        sql.match_indices(sigil)
            .filter_map(|(at, _)| {
                let digits: String = sql[at + sigil.len()..].chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect()
    }

    #[test]
    fn every_statement_has_tsql() {
        for stmt in Stmt::ALL {
            let text = sql(*stmt);
            assert!(!text.trim().is_empty(), "{stmt}");
            assert!(!text.contains('?'), "{stmt}: SQLite placeholder in T-SQL");
            for word in ["RETURNING", "LIMIT", "MERGE", "CREATE OR ALTER", "WITH (", "SERIALIZABLE", "strftime"] {
                assert!(!text.contains(word), "{stmt}: {word}");
            }
        }
    }

    #[test]
    fn parameters_match_the_sqlite_text() {
        // Both texts follow the parameter order documented on `Stmt`; the same set of
        // indexes in both catches a parameter added, dropped or renumbered on one side.
        for stmt in Stmt::ALL {
            let tsql = placeholders(sql(*stmt), "@P");
            let lite = placeholders(sqlite::sql(*stmt), "?");
            assert!(!tsql.is_empty() || !lite.is_empty(), "{stmt}: no parameters at all");
            assert_eq!(tsql.last(), lite.last(), "{stmt}: highest parameter differs");
            assert_eq!(tsql, lite, "{stmt}: parameter sets differ");
        }
    }

    #[test]
    fn row_returning_statements_select_or_output() {
        for stmt in Stmt::ALL {
            let text = sql(*stmt);
            let outputs = text.contains(" OUTPUT INSERTED.");
            if stmt.returns_rows() {
                assert!(text.starts_with("SELECT ") || outputs, "{stmt} returns rows but neither selects nor outputs");
            } else {
                assert!(!text.starts_with("SELECT ") && !outputs, "{stmt} returns no rows but produces some");
            }
        }
    }

    /// VARCHAR columns (per the seed) that a WHERE clause may compare with a parameter.
    const VARCHAR_COLUMNS: &[&str] = &[
        "provider_type",
        "provider_user_id",
        "provider_user_email",
        "status",
        "folder_name",
        "provider_folder_id",
        "folder_type",
        "folder_permissions",
        "job_type",
        "quodsi_file_type",
        "provider_file_id",
        "content_hash",
        "mime_type",
        "sync_status",
        "resource_type",
        "provider_share_id",
        "share_type",
        "error_type",
        "error_code",
    ];

    #[test]
    fn varchar_columns_are_never_compared_with_a_bare_nvarchar_parameter() {
        for stmt in Stmt::ALL {
            let text = sql(*stmt);
            let Some((_, filter)) = text.split_once(" WHERE ") else { continue };
            let words: Vec<&str> = filter.split_whitespace().collect();
            for w in words.windows(3) {
                let column = w[0].trim_start_matches('(').rsplit('.').next().unwrap_or_default();
                let compares = ["=", "<>", "<", "<=", ">", ">="].contains(&w[1]);
                if compares && VARCHAR_COLUMNS.contains(&column) {
                    assert!(!w[2].starts_with("@P"), "{stmt}: {} {} {} needs CAST", w[0], w[1], w[2]);
                }
            }
        }
    }

    #[test]
    fn filtered_index_predicates_stay_literal() {
        // A filtered index is only matched when the predicate is a literal; the one optional
        // is_active filter (LinkList) is not served by a filtered index.
        for stmt in Stmt::ALL {
            let text = sql(*stmt);
            for column in ["is_deleted", "auto_sync_enabled", "is_active"] {
                if column == "is_active" && *stmt == Stmt::LinkList {
                    continue;
                }
                for op in ["= @P", "<> @P", "= CAST(@P"] {
                    assert!(!text.contains(&format!("{column} {op}")), "{stmt}: {column} compared with a parameter");
                }
            }
        }
    }

    #[test]
    fn only_reads_run_outside_a_transaction() {
        assert!(is_read(Stmt::ConnGet));
        assert!(is_read(Stmt::FolderDueScan));
        assert!(!is_read(Stmt::ConnInsert));
        assert!(!is_read(Stmt::TenantEnsure));
        assert!(!is_read(Stmt::LinkRecordAccess));
    }

    #[test]
    fn database_names_are_checked_before_quoting() {
        assert_eq!(quoted_database_name("quodsi_test_0a1b").unwrap(), "[quodsi_test_0a1b]");
        for bad in ["", "a]b", "x; DROP DATABASE y", "Quodsi", "a-b", "a b"] {
            assert!(quoted_database_name(bad).is_err(), "{bad}");
        }
    }
}
