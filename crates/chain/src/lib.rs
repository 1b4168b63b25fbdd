//! Following the medrec registries' logs on an EVM chain, the one way every medrec program
//! reads chain history.
//!
//! - [`Source`]: the three calls a follower makes (head, a block header, logs), answered by a
//!   node over JSON-RPC ([`Rpc`]) or by a scripted chain in tests.
//! - [`read_range`]: a hash-bracketed log range: the logs of blocks `from..=to` are trusted only
//!   if the hashes of both end blocks are the same before and after the logs were read.
//! - [`find_fork`] and [`RecentBlocks`]: reorg detection against the last blocks seen.
//! - [`next_range`]: ranges that adapt to the density of events and the node's speed.
//! - [`Follower`]: all of the above for a follower that keeps its state in memory.
//! - [`retry`] and [`Backoff`]: retries with exponential backoff (backon) for the errors that
//!   say they are worth retrying ([`ChainError::is_retryable`]).

mod error;
mod follower;
mod range;
mod reorg;
mod retry;
mod source;

pub use error::{ChainError, Result, Retryable};
pub use follower::{Advance, Follower, FollowerOpts};
pub use range::{MAX_LOG_RANGE, Range, TARGET_EVENTS, next_range, read_range};
pub use reorg::{RecentBlocks, find_fork};
pub use retry::{Backoff, backoff, retry};
pub use source::{Header, LogFilter, Rpc, Source};
