//! The data layer's one error vocabulary. Constraint violations arrive typed and named, so
//! callers map them to 409/400 without looking at driver messages.

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No live row with that id for that tenant (another tenant's row is also "not found").
    #[error("not found")]
    NotFound,
    /// A unique index or key refused the row.
    #[error("conflicts with an existing row ({constraint})")]
    Conflict { constraint: String },
    /// A foreign key or CHECK constraint refused the row.
    #[error("violates constraint {constraint}")]
    Invalid { constraint: String },
    /// A value the data layer refuses before it reaches SQL (a length over the column size).
    #[error("{field}: {message}")]
    Validation { field: &'static str, message: String },
    /// The row is not in a state that allows the change (a job transition, say).
    #[error("{0}")]
    State(String),
    /// The database could not be reached or a connection could not be had.
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else the driver reported.
    #[error("database error")]
    Backend(#[source] BoxError),
    /// A stored value that does not decode (a bad enum string, a malformed timestamp).
    #[error("stored value does not decode: {0}")]
    Corrupt(String),
}

impl DbError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> DbError {
        DbError::Validation { field, message: message.into() }
    }

    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> DbError {
        DbError::Backend(Box::new(e))
    }

    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> DbError {
        DbError::Unavailable(Box::new(e))
    }

    /// The constraint named by a Conflict or Invalid error.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            DbError::Conflict { constraint } | DbError::Invalid { constraint } => Some(constraint),
            _ => None,
        }
    }
}

pub type DbResult<T> = Result<T, DbError>;
