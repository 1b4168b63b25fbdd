//! The indexer's errors, each saying whether it is worth retrying.

/// What can stop or delay the indexer.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// The node failed or could not be reached; retried with backoff.
    #[error("rpc: {0}")]
    Rpc(String),
    /// The node refused a log range as too large or too slow; the range shrinks.
    #[error("log range too large: {0}")]
    RangeTooLarge(String),
    /// The database could not be reached or dropped the connection; retried with backoff.
    #[error("database unavailable: {0}")]
    DbUnavailable(String),
    /// The database refused a write that must succeed (constraint, schema): stops the indexer.
    #[error("database integrity: {0}")]
    Integrity(String),
    /// The chain reorganised deeper than the configured window: stops the indexer.
    #[error(
        "reorg deeper than the window of {window} blocks below block {cursor}: no stored block hash matches the chain; re-index from scratch (drop the database) after checking the node"
    )]
    DeepReorg {
        /// The indexed block where the mismatch was seen.
        cursor: u64,
        /// The configured window.
        window: u64,
    },
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
        matches!(
            self,
            Self::Rpc(_) | Self::DbUnavailable(_) | Self::RangeTooLarge(_)
        )
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
