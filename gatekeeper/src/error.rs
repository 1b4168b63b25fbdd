//! The gatekeeper's errors.

/// What can go wrong in the gatekeeper.
#[derive(Debug, thiserror::Error)]
pub enum GkError {
    /// Bad configuration (key file, URLs, deployment).
    #[error("{0}")]
    Config(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The node failed.
    #[error("chain: {0}")]
    Chain(String),
    /// Something that should not happen (a stored record that does not decrypt).
    #[error("{0}")]
    Internal(String),
}

/// The gatekeeper's result type.
pub type Result<T, E = GkError> = std::result::Result<T, E>;
