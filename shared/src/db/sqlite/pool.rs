//! A small pool of SQLite connections whose work runs on tokio's blocking threads.
//!
//! SQLite calls block (on disk, and on the busy timeout while another connection writes), so
//! they must not run on async worker threads: with two workers, two tasks waiting on each
//! other's write lock would stall the runtime. The first connection is given (the one that
//! migrated the file); more are opened as needed, kept for reuse, and dropped if a job panics.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::Semaphore;

type Opener = dyn Fn() -> rusqlite::Result<Connection> + Send + Sync;

pub(crate) struct Pool {
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
    open: Arc<Opener>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    #[error("could not open a sqlite connection")]
    Open(#[source] rusqlite::Error),
    #[error("a sqlite job did not finish")]
    Join(#[source] tokio::task::JoinError),
    #[error("the sqlite pool is closed")]
    Closed,
}

impl Pool {
    /// A pool of at most `size` connections, starting with `first` and opening more with `open`.
    pub(crate) fn new(
        size: usize,
        open: impl Fn() -> rusqlite::Result<Connection> + Send + Sync + 'static,
        first: Connection,
    ) -> Pool {
        let mut idle = Vec::with_capacity(size);
        idle.push(first);
        Pool { idle: Arc::new(Mutex::new(idle)), permits: Arc::new(Semaphore::new(size)), open: Arc::new(open) }
    }

    /// Runs `job` on a pooled connection on a blocking thread.
    pub(crate) async fn with<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> R + Send + 'static,
    ) -> Result<R, PoolError> {
        let permit = Arc::clone(&self.permits).acquire_owned().await.map_err(|_| PoolError::Closed)?;
        let idle = Arc::clone(&self.idle);
        let open = Arc::clone(&self.open);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let pooled = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let mut conn = match pooled {
                Some(c) => c,
                None => open().map_err(PoolError::Open)?,
            };
            let out = job(&mut conn);
            idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            Ok(out)
        })
        .await
        .map_err(PoolError::Join)?
    }
}
