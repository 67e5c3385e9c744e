//! What an engine must do for the store: run statements, alone or several in one
//! transaction, and report constraint violations by name.

use super::error::DbResult;
use super::stmt::Stmt;
use super::value::{Row, Value};

/// When a step of a transaction runs, judged on the step before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// Only if the previous step returned or touched no row (e.g. INSERT after an UPDATE
    /// that matched nothing).
    PrevEmpty,
    /// Only if the previous step returned or touched a row.
    PrevNonEmpty,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub stmt: Stmt,
    pub params: Vec<Value>,
    pub when: When,
}

impl Step {
    pub fn new(stmt: Stmt, params: Vec<Value>) -> Step {
        Step { stmt, params, when: When::Always }
    }

    pub fn when(mut self, when: When) -> Step {
        self.when = when;
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Rows(Vec<Row>),
    Affected(u64),
    Skipped,
}

impl StepOutcome {
    pub fn is_empty(&self) -> bool {
        match self {
            StepOutcome::Rows(r) => r.is_empty(),
            StepOutcome::Affected(n) => *n == 0,
            StepOutcome::Skipped => true,
        }
    }
}

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// "sqlite" or "mssql", for logs and test names.
    fn name(&self) -> &'static str;

    /// Runs the steps in order. A single reading step runs on its own; anything else runs in
    /// one transaction that is committed only if every step succeeds. Constraint violations
    /// come back as `DbError::Conflict` / `DbError::Invalid` naming the constraint.
    async fn run(&self, steps: Vec<Step>) -> DbResult<Vec<StepOutcome>>;

    /// The SQL text of a statement (for plan and parse checks). SQL Server sends it as is
    /// unless a parameter is a NULL it writes into the text (`mssql::sent_sql`).
    fn sql(&self, stmt: Stmt) -> &'static str;
}
