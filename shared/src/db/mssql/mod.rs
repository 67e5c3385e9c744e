//! PLACEHOLDER until the SQL Server backend lands (helper writing it). Not to be committed.
use super::error::{DbError, DbResult};
pub struct MssqlBackend;
impl MssqlBackend {
    pub async fn connect(_: &str) -> DbResult<MssqlBackend> { Err(DbError::State("mssql not yet".into())) }
}
#[async_trait::async_trait]
impl super::Backend for MssqlBackend {
    fn name(&self) -> &'static str { "mssql" }
    fn sql(&self, _: super::Stmt) -> &'static str { "" }
    async fn run(&self, _: Vec<super::Step>) -> DbResult<Vec<super::Outcome>> { Err(DbError::State("x".into())) }
}
pub async fn migrate(_: &str) -> DbResult<String> { Err(DbError::State("mssql not yet".into())) }
pub struct TestDatabase;
impl TestDatabase { pub async fn drop_database(self) -> DbResult<()> { Ok(()) } }
pub async fn create_test_database(_: &str) -> DbResult<(MssqlBackend, TestDatabase)> { Err(DbError::State("x".into())) }
