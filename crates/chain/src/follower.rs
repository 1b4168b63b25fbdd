//! A follower that keeps its place and the recent block hashes in memory: reads the chain range
//! by range, notices reorgs and says how far back they reach.
//!
//! A follower with a database of its own (the indexer) keeps them there instead and drives
//! [`read_range`], [`find_fork`] and [`next_range`] itself.

use crate::error::{ChainError, Result};
use crate::range::{MAX_LOG_RANGE, Range, next_range, read_range};
use crate::reorg::{RecentBlocks, find_fork};
use crate::source::{LogFilter, Source};
use alloy::primitives::B256;

/// How a [`Follower`] reads.
#[derive(Debug, Clone, Copy)]
pub struct FollowerOpts {
    /// The first block to read.
    pub start_block: u64,
    /// Blocks behind the head left unread until they are this deep.
    pub confirmations: u64,
    /// How far back a reorg may reach (blocks remembered).
    pub reorg_window: u64,
    /// First log range, in blocks.
    pub initial_range: u64,
    /// Largest log range, in blocks ([`MAX_LOG_RANGE`] by default).
    pub max_range: u64,
}

impl Default for FollowerOpts {
    fn default() -> Self {
        Self {
            start_block: 0,
            confirmations: 0,
            reorg_window: 64,
            initial_range: 1_000,
            max_range: MAX_LOG_RANGE,
        }
    }
}

/// What one [`Follower::advance`] did.
#[derive(Debug)]
pub enum Advance {
    /// Read the next range; the follower now stands at its last block.
    Range(Range),
    /// The chain reorganised: every block above `fork` that was read is no longer on the chain,
    /// and what was built from it must be dropped. The follower now stands at `fork`.
    Reorged {
        /// The last block the follower shares with the chain.
        fork: u64,
    },
    /// Nothing new up to the target; `head` is the chain's head.
    CaughtUp {
        /// The head seen.
        head: u64,
    },
}

/// Follows the logs that match a filter, in memory.
///
/// A follower that folds logs into its own state (the gatekeeper's opt-ins, say) keeps, with
/// each thing it derived, the block it came from, and on [`Advance::Reorged`] drops what came
/// from above the fork:
///
/// ```no_run
/// # async fn opt_ins(rpc: medrec_chain::Rpc, registry: alloy::primitives::Address) -> medrec_chain::Result<()> {
/// use medrec_chain::{Advance, Follower, FollowerOpts, LogFilter};
/// use medrec_bindings::StudyRegistry;
/// use alloy::sol_types::SolEvent;
///
/// let filter = LogFilter {
///     addresses: vec![registry],
///     topics: vec![StudyRegistry::OptedIn::SIGNATURE_HASH, StudyRegistry::Withdrew::SIGNATURE_HASH],
/// };
/// let mut follower = Follower::new(rpc, filter, FollowerOpts::default());
/// // (block, log index, opted in) per change, in chain order.
/// let mut changes: Vec<(u64, u64, bool)> = vec![];
/// let pinned = 1_000;
/// loop {
///     match follower.advance(Some(pinned)).await {
///         Ok(Advance::Range(range)) => {
///             for log in &range.logs {
///                 let opted = log.topic0() == Some(&StudyRegistry::OptedIn::SIGNATURE_HASH);
///                 changes.push((log.block_number.unwrap_or_default(), log.log_index.unwrap_or_default(), opted));
///             }
///         }
///         Ok(Advance::Reorged { fork }) => changes.retain(|c| c.0 <= fork),
///         Ok(Advance::CaughtUp { .. }) => break,
///         Err(medrec_chain::ChainError::DeepReorg { .. }) => {
///             follower.restart();
///             changes.clear();
///         }
///         Err(e) if e.is_retryable() => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
///         Err(e) => return Err(e),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Follower<S> {
    src: S,
    filter: LogFilter,
    opts: FollowerOpts,
    /// The last block read and its hash (`None`: nothing read yet).
    cursor: Option<(u64, B256)>,
    recent: RecentBlocks,
    range: u64,
}

impl<S: Source> Follower<S> {
    /// A follower of `filter`'s logs from `opts.start_block` on.
    pub fn new(src: S, filter: LogFilter, opts: FollowerOpts) -> Self {
        Self {
            src,
            filter,
            recent: RecentBlocks::new(opts.reorg_window),
            range: opts.initial_range.max(1),
            opts,
            cursor: None,
        }
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.src
    }

    /// The last block read (`None`: nothing read yet).
    pub fn cursor(&self) -> Option<u64> {
        self.cursor.map(|(n, _)| n)
    }

    /// Reads the next range up to `to` (at most the head less the confirmations), or notices a
    /// reorg. Call again until [`Advance::CaughtUp`]. A log range the node refuses as too large
    /// halves the next one; the error is returned to be retried.
    pub async fn advance(&mut self, to: Option<u64>) -> Result<Advance> {
        let head = self.src.head().await?;
        let mut target = head.saturating_sub(self.opts.confirmations);
        if let Some(to) = to {
            target = target.min(to);
        }
        let from = self.cursor.map_or(self.opts.start_block, |(n, _)| n + 1);
        if from > target {
            // Still notice a reorg that replaced (or removed) the last block read.
            if let Some((n, hash)) = self.cursor {
                let same = self.src.header(n).await?.is_some_and(|h| h.hash == hash);
                if !same {
                    return self.reorged(n).await;
                }
            }
            return Ok(Advance::CaughtUp { head });
        }
        let end = (from + self.range - 1).min(target);
        let range = match read_range(&self.src, &self.filter, from, end).await {
            Ok(r) => r,
            Err(e @ ChainError::RangeTooLarge(_)) => {
                self.range = (self.range / 2).max(1);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if let Some((n, hash)) = self.cursor
            && !range.hangs_on(hash)
        {
            return self.reorged(n).await;
        }
        self.range = next_range(
            self.range,
            range.blocks(),
            range.logs.len() as u64,
            range.elapsed,
            self.opts.max_range,
        );
        self.recent.record(range.from.number, range.from.hash);
        self.recent.record(range.to.number, range.to.hash);
        self.cursor = Some((range.to.number, range.to.hash));
        Ok(Advance::Range(range))
    }

    async fn reorged(&mut self, at: u64) -> Result<Advance> {
        let stored = self.recent.newest_first();
        match find_fork(&self.src, &stored, at, self.opts.reorg_window).await {
            Ok((fork, hash)) => {
                self.recent.rollback(fork);
                self.cursor = Some((fork, hash));
                tracing::warn!(target: "medrec::chain", from = at, to = fork, "reorg: back to the fork");
                Ok(Advance::Reorged { fork })
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets everything read: the next [`Follower::advance`] starts from the start block
    /// again (after a [`ChainError::DeepReorg`], for a follower that can rebuild its state).
    pub fn restart(&mut self) {
        self.cursor = None;
        self.recent = RecentBlocks::new(self.opts.reorg_window);
        self.range = self.opts.initial_range.max(1);
    }
}
