//! A backend over a real store that refuses the transactions a test picks, as a database
//! fault would: `FaultyBackend::new(store, |steps| ...)` decides per call, and counts what it
//! refused. Everything else runs on the real engine, so the rest of the test sees real rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use shared::db::{Backend, DbError, DbResult, Step, StepOutcome, Stmt, Store};

type Decide = dyn Fn(&[Step]) -> bool + Send + Sync;

pub struct FaultyBackend {
    inner: Store,
    refuse: Box<Decide>,
    refused: AtomicUsize,
}

impl FaultyBackend {
    /// Refuses every call for which `refuse` answers true (with `DbError::Unavailable`).
    pub fn new(inner: Store, refuse: impl Fn(&[Step]) -> bool + Send + Sync + 'static) -> Arc<FaultyBackend> {
        Arc::new(FaultyBackend { inner, refuse: Box::new(refuse), refused: AtomicUsize::new(0) })
    }

    /// Refuses the first `times` transactions that contain `stmt`, then lets them through.
    pub fn first(inner: Store, stmt: Stmt, times: usize) -> Arc<FaultyBackend> {
        let seen = AtomicUsize::new(0);
        FaultyBackend::new(inner, move |steps| {
            steps.iter().any(|s| s.stmt == stmt) && seen.fetch_add(1, Ordering::SeqCst) < times
        })
    }

    /// How many calls were refused.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// A store over this backend.
    pub fn store(self: &Arc<Self>) -> Store {
        Store::new(Arc::clone(self) as Arc<dyn Backend>)
    }
}

#[async_trait::async_trait]
impl Backend for FaultyBackend {
    fn name(&self) -> &'static str {
        self.inner.backend().name()
    }

    fn sql(&self, stmt: Stmt) -> &'static str {
        self.inner.backend().sql(stmt)
    }

    async fn run(&self, steps: Vec<Step>) -> DbResult<Vec<StepOutcome>> {
        if (self.refuse)(&steps) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(DbError::unavailable(std::io::Error::other("injected database fault")));
        }
        self.inner.backend().run(steps).await
    }
}
