//! The indexer's errors, each saying whether it is worth retrying.

/// What can stop or delay the indexer.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// Following the chain failed: retried with backoff if the chain follower says it is
    /// worth it (the node, a range too large, a chain that moved under a read), else it stops
    /// the indexer (a reorg deeper than the window, a malformed answer).
    #[error(transparent)]
    Chain(#[from] medrec_chain::ChainError),
    /// The database could not be reached or dropped the connection; retried with backoff.
    #[error("database unavailable: {0}")]
    DbUnavailable(String),
    /// The database refused a write that must succeed (constraint, schema): stops the indexer.
    #[error("database integrity: {0}")]
    Integrity(String),
    /// The database was indexed for another chain or deployment.
    #[error("the database holds another deployment: {0}")]
    WrongDeployment(String),
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
}

impl IndexerError {
    /// Whether waiting and trying again can fix it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Chain(e) => e.is_retryable(),
            Self::DbUnavailable(_) => true,
            _ => false,
        }
    }
}

impl medrec_chain::Retryable for IndexerError {
    fn is_retryable(&self) -> bool {
        IndexerError::is_retryable(self)
    }
}

impl From<sqlx::Error> for IndexerError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                // 08: connection exception, 57: operator intervention (shutdown), 53: resources.
                if code.starts_with("08") || code.starts_with("57") || code.starts_with("53") {
                    Self::DbUnavailable(e.to_string())
                } else {
                    Self::Integrity(e.to_string())
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::DbUnavailable(e.to_string()),
            _ => Self::Integrity(e.to_string()),
        }
    }
}

/// The indexer's result type.
pub type Result<T, E = IndexerError> = std::result::Result<T, E>;
