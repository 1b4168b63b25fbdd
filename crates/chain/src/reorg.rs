//! Reorg detection: the last block a follower shares with the chain.

use crate::error::{ChainError, Result};
use crate::source::Source;
use alloy::primitives::B256;
use std::collections::BTreeMap;

/// Finds the last block the follower shares with the chain: the newest of `stored` (block
/// numbers and hashes the follower saw, newest first) whose hash the chain still has, no more
/// than `window` blocks below `cursor`. A stored block the chain no longer has (a shorter
/// branch won) is skipped.
///
/// No match within the window is [`ChainError::DeepReorg`], which is not retryable: what the
/// follower built from the lost blocks can no longer be undone from what it remembers.
pub async fn find_fork<S: Source>(
    src: &S,
    stored: &[(u64, B256)],
    cursor: u64,
    window: u64,
) -> Result<(u64, B256)> {
    for &(n, hash) in stored {
        if cursor.saturating_sub(n) > window {
            break;
        }
        let Some(header) = src.header(n).await? else {
            continue;
        };
        if header.hash == hash {
            return Ok((n, hash));
        }
    }
    Err(ChainError::DeepReorg { cursor, window })
}

/// The hashes of the last blocks a follower saw, within a window below the newest: what
/// [`find_fork`] compares with the chain, for a follower that keeps no database.
#[derive(Debug, Clone, Default)]
pub struct RecentBlocks {
    blocks: BTreeMap<u64, B256>,
    window: u64,
}

impl RecentBlocks {
    /// Remembers blocks up to `window` below the newest one seen.
    pub fn new(window: u64) -> Self {
        Self {
            blocks: BTreeMap::new(),
            window,
        }
    }

    /// The window, in blocks.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Records block `n`'s hash, forgetting blocks that fell out of the window.
    pub fn record(&mut self, n: u64, hash: B256) {
        self.blocks.insert(n, hash);
        let keep_from = n.saturating_sub(self.window);
        self.blocks = self.blocks.split_off(&keep_from);
    }

    /// The stored hash of block `n`.
    pub fn get(&self, n: u64) -> Option<B256> {
        self.blocks.get(&n).copied()
    }

    /// The blocks remembered, newest first.
    pub fn newest_first(&self) -> Vec<(u64, B256)> {
        self.blocks.iter().rev().map(|(n, h)| (*n, *h)).collect()
    }

    /// Forgets every block above `fork` (they are no longer on the chain).
    pub fn rollback(&mut self, fork: u64) {
        self.blocks.split_off(&(fork + 1));
    }

    /// Whether no block is remembered.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::RecentBlocks;
    use alloy::primitives::B256;

    fn h(n: u8) -> B256 {
        B256::repeat_byte(n)
    }

    #[test]
    fn the_window_keeps_the_newest_blocks() {
        let mut r = RecentBlocks::new(3);
        for n in 1..=10u8 {
            r.record(n as u64, h(n));
        }
        assert_eq!(
            r.newest_first(),
            vec![(10, h(10)), (9, h(9)), (8, h(8)), (7, h(7))]
        );
        assert_eq!(r.get(6), None);
    }

    #[test]
    fn rollback_forgets_the_blocks_above_the_fork() {
        let mut r = RecentBlocks::new(64);
        for n in 1..=10u8 {
            r.record(n as u64, h(n));
        }
        r.rollback(7);
        assert_eq!(r.newest_first()[0], (7, h(7)));
        assert_eq!(r.get(8), None);
        r.rollback(0);
        assert!(r.is_empty());
    }
}
