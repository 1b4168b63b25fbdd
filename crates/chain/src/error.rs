//! What can go wrong while following the chain, and whether trying again can fix it.

/// An error of the chain follower.
///
/// Transport errors and a chain that moved under a read are retryable (the same call, later,
/// can succeed); integrity errors are not (the node answered something a follower must not
/// build on, or the chain reorganised deeper than the follower can undo).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The node failed or could not be reached.
    #[error("rpc: {0}")]
    Transport(String),
    /// The node refused a log range as too large or too slow: retry with a smaller range.
    #[error("log range too large: {0}")]
    RangeTooLarge(String),
    /// A block the read needs is not on the node's chain (a reorg in progress, or a node
    /// behind the one that answered the head).
    #[error("rpc: block {0} not found (reorg in progress?)")]
    MissingBlock(u64),
    /// The chain changed while a range was read (an end block's hash, a removed log, a log
    /// whose block hash is not its header's): the range is read again.
    #[error("rpc: {0}; retrying")]
    Moved(String),
    /// The node answered something malformed (a log without its block or index).
    #[error("chain integrity: {0}")]
    Integrity(String),
    /// The chain reorganised deeper than the window of blocks the follower remembers.
    #[error(
        "reorg deeper than the window of {window} blocks below block {cursor}: no stored block hash matches the chain; re-index from scratch (drop the database) after checking the node"
    )]
    DeepReorg {
        /// The followed block where the mismatch was seen.
        cursor: u64,
        /// The window, in blocks.
        window: u64,
    },
    /// Bad configuration (an RPC URL that does not parse).
    #[error("{0}")]
    Config(String),
}

/// Whether an error is worth retrying: the one question a retry loop asks.
pub trait Retryable {
    /// Whether waiting and trying again can fix it.
    fn is_retryable(&self) -> bool;
}

impl Retryable for ChainError {
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transport(_) | Self::RangeTooLarge(_) | Self::MissingBlock(_) | Self::Moved(_)
        )
    }
}

impl ChainError {
    /// Whether waiting and trying again can fix it.
    pub fn is_retryable(&self) -> bool {
        Retryable::is_retryable(self)
    }
}

/// The chain follower's result type.
pub type Result<T, E = ChainError> = std::result::Result<T, E>;
