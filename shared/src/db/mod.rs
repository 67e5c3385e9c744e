//! The data layer: one [`Store`] over two engines, SQL Server (production) and SQLite
//! (embedded, local runs and CI). SQL text lives only in `sqlite/` and `mssql/`.

#[macro_use]
mod columns;
mod backend;
mod enums;
mod error;
mod model;
mod stmt;
mod store;
mod validate;
mod value;

pub mod mssql;
pub mod sqlite;

pub use backend::{Backend, Step, StepOutcome, When};
pub use enums::*;
pub use error::{BoxError, DbError, DbResult};
pub use model::*;
pub use stmt::Stmt;
pub use store::Store;
pub use validate::{TIMESTAMP_RANGE, timestamp_in_range};
pub use value::{Cell, Kind, Row, Value};

use std::path::PathBuf;
use std::sync::Arc;

/// Where the data lives, parsed from a database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite:<path>` or `sqlite://<path>`.
    Sqlite(PathBuf),
    /// Anything else: an ADO.NET (`server=tcp:host,1433;...`) or JDBC
    /// (`jdbc:sqlserver://host:1433;...`) connection string for SQL Server.
    SqlServer(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<DatabaseUrl, DbError> {
        let url = url.trim();
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(DbError::validation("database_url", "sqlite: needs a file path"));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if url.is_empty() {
            return Err(DbError::validation("database_url", "is empty"));
        }
        Ok(DatabaseUrl::SqlServer(url.to_owned()))
    }
}

/// Opens the store a URL names. A SQLite file is created and migrated on open; a SQL
/// Server database is expected to be migrated already (by `migrate`, once per deploy).
pub async fn open(url: &str) -> DbResult<Store> {
    let backend: Arc<dyn Backend> = match DatabaseUrl::parse(url)? {
        DatabaseUrl::Sqlite(path) => Arc::new(sqlite::SqliteBackend::open(path).await?),
        DatabaseUrl::SqlServer(conn) => Arc::new(mssql::MssqlBackend::connect(&conn).await?),
    };
    Ok(Store::new(backend))
}

/// Brings the database a URL names to the newest schema; returns a one-line report.
pub async fn migrate(url: &str) -> DbResult<String> {
    match DatabaseUrl::parse(url)? {
        DatabaseUrl::Sqlite(path) => sqlite::migrate_file(path).await,
        DatabaseUrl::SqlServer(conn) => mssql::migrate(&conn).await,
    }
}

pub(crate) fn describe_migrations(applied: impl Iterator<Item = String>) -> String {
    let applied: Vec<String> = applied.collect();
    if applied.is_empty() {
        "schema is up to date; no migration applied".to_owned()
    } else {
        format!("applied {} migration(s): {}", applied.len(), applied.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_engine() {
        assert_eq!(DatabaseUrl::parse("sqlite:./q.db").unwrap(), DatabaseUrl::Sqlite("./q.db".into()));
        assert_eq!(DatabaseUrl::parse("sqlite:///tmp/q.db").unwrap(), DatabaseUrl::Sqlite("/tmp/q.db".into()));
        assert!(matches!(DatabaseUrl::parse("server=tcp:db,1433;user=a").unwrap(), DatabaseUrl::SqlServer(_)));
        assert!(DatabaseUrl::parse("sqlite:").is_err());
        assert!(DatabaseUrl::parse("  ").is_err());
    }
}
