//! Hash-bracketed log ranges, and how large the next one should be.

use crate::error::{ChainError, Result};
use crate::source::{Header, LogFilter, Source};
use alloy::rpc::types::Log;
use std::time::{Duration, Instant};

/// The logs of blocks `from..=to`, read between two reads of both end blocks' hashes that
/// agreed: on the chain whose end blocks are `from` and `to`, these are all the matching logs.
#[derive(Debug, Clone)]
pub struct Range {
    /// The first block.
    pub from: Header,
    /// The last block.
    pub to: Header,
    /// The matching logs, in chain order (block, then log index); none removed, each with
    /// its block number, block hash, log index and transaction hash.
    pub logs: Vec<Log>,
    /// How long eth_getLogs took (the node's share of the read).
    pub elapsed: Duration,
}

impl Range {
    /// Whether this range continues a chain whose last block has hash `parent`.
    pub fn hangs_on(&self, parent: alloy::primitives::B256) -> bool {
        self.from.parent_hash == parent
    }

    /// How many blocks the range spans.
    pub fn blocks(&self) -> u64 {
        self.to.number - self.from.number + 1
    }
}

/// Reads the logs of blocks `from..=to` matching `filter`, bracketed by the hashes of both end
/// blocks: the last block must not change while the logs are read (else they may be another
/// branch's), nor the first, which ties the range to what came before (a reorg between the two
/// header reads could otherwise join another branch's logs onto this one's past).
///
/// A chain that moved meanwhile gives [`ChainError::Moved`], which is retryable.
pub async fn read_range<S: Source>(
    src: &S,
    filter: &LogFilter,
    from: u64,
    to: u64,
) -> Result<Range> {
    let (first, last) = end_headers(src, from, to).await?;
    let started = Instant::now();
    let mut logs = src.logs(filter, from, to).await?;
    let elapsed = started.elapsed();
    let (first_after, last_after) = end_headers(src, from, to).await?;
    if last_after.hash != last.hash {
        return Err(ChainError::Moved(format!(
            "block {to} changed while reading logs"
        )));
    }
    if first_after.hash != first.hash {
        return Err(ChainError::Moved(format!(
            "block {from} changed while reading logs"
        )));
    }
    let mut keys = Vec::with_capacity(logs.len());
    for log in &logs {
        if log.removed {
            return Err(ChainError::Moved("the node returned a removed log".into()));
        }
        let (Some(number), Some(hash), Some(index), Some(_)) = (
            log.block_number,
            log.block_hash,
            log.log_index,
            log.transaction_hash,
        ) else {
            return Err(ChainError::Integrity(
                "log without block, index or transaction (pending?)".into(),
            ));
        };
        if (number == to && hash != last.hash) || (number == from && hash != first.hash) {
            return Err(ChainError::Moved(
                "a log's block hash differs from the header".into(),
            ));
        }
        if !(from..=to).contains(&number) {
            return Err(ChainError::Integrity(format!(
                "the node returned a log of block {number} for blocks {from}..={to}"
            )));
        }
        keys.push((number, index));
    }
    if !keys.is_sorted() {
        logs.sort_by_key(|l| (l.block_number, l.log_index));
    }
    Ok(Range {
        from: first,
        to: last,
        logs,
        elapsed,
    })
}

/// The headers of `from` and `to` (one read when they are the same block).
async fn end_headers<S: Source>(src: &S, from: u64, to: u64) -> Result<(Header, Header)> {
    if from == to {
        let h = src.header_of(from).await?;
        Ok((h, h))
    } else {
        tokio::try_join!(src.header_of(from), src.header_of(to))
    }
}

/// The largest log range, in blocks, a medrec program asks of a node in one eth_getLogs call
/// unless configured otherwise: many nodes and providers refuse larger ranges, and a follower
/// that adapts its ranges ([`next_range`]) grows up to it.
pub const MAX_LOG_RANGE: u64 = 10_000;

/// Events per range aimed at when a range falls outside 5,000-20,000: small enough that reading
/// the next range overlaps handling this one from the first range on, large enough to amortise
/// a call (and, in the indexer, a transaction).
pub const TARGET_EVENTS: u64 = 10_000;

/// The next log range in blocks, after `blocks` blocks gave `events` events in `elapsed`.
/// Outside 5,000-20,000 events the range jumps to the event density's estimate of
/// [`TARGET_EVENTS`] (at most doubling when the density is unknown); it halves on a slow call.
pub fn next_range(range: u64, blocks: u64, events: u64, elapsed: Duration, max: u64) -> u64 {
    let blocks = blocks.max(1);
    let next = if elapsed > Duration::from_secs(2) {
        range / 2
    } else if events > 20_000 {
        (blocks * TARGET_EVENTS / events).min(range / 2)
    } else if events < 5_000 && elapsed < Duration::from_millis(500) {
        match (blocks * TARGET_EVENTS).checked_div(events) {
            Some(estimate) => estimate.max(range),
            None => range * 2,
        }
    } else {
        range
    };
    next.clamp(1, max.max(1))
}

#[cfg(test)]
mod tests {
    use super::next_range;
    use std::time::Duration;

    const FAST: Duration = Duration::from_millis(50);

    #[test]
    fn the_range_aims_at_ten_thousand_events_outside_the_band() {
        // 1,000 events per block: from 100 blocks (100,000 events) straight to 10 blocks.
        assert_eq!(next_range(100, 100, 100_000, FAST, 10_000), 10);
        // Inside 5,000-20,000 events it stays.
        assert_eq!(next_range(10, 10, 10_000, FAST, 10_000), 10);
        assert_eq!(next_range(10, 10, 19_000, FAST, 10_000), 10);
        // Sparse: grows to the density's estimate, never shrinks below the current range.
        assert_eq!(next_range(10, 10, 100, FAST, 10_000), 1_000);
        assert_eq!(next_range(10, 3, 4_000, FAST, 10_000), 10);
        // No events: doubles; capped by the largest range.
        assert_eq!(next_range(10, 10, 0, FAST, 10_000), 20);
        assert_eq!(next_range(8_000, 8_000, 0, FAST, 10_000), 10_000);
        assert_eq!(next_range(10, 10, 1, FAST, 50), 50);
    }

    #[test]
    fn too_many_events_or_a_slow_call_shrink_it() {
        // Always at least halves when over 20,000 events, down to one block.
        assert_eq!(next_range(4, 4, 30_000, FAST, 10_000), 1);
        assert_eq!(next_range(1, 1, 50_000, FAST, 10_000), 1);
        assert_eq!(next_range(100, 100, 21_000, FAST, 10_000), 47);
        assert_eq!(
            next_range(100, 100, 10_000, Duration::from_secs(3), 10_000),
            50
        );
        // A slow call with few events does not grow it.
        assert_eq!(
            next_range(100, 100, 10, Duration::from_millis(800), 10_000),
            100
        );
    }
}
