//! The follower against a scripted chain: ranges, reorgs found at their fork (including one
//! that happens while a range is read), deep reorgs refused.

#![allow(clippy::unwrap_used, missing_docs)]

use alloy::primitives::{Address, B256, LogData};
use alloy::rpc::types::Log;
use medrec_chain::{
    Advance, ChainError, Follower, FollowerOpts, Header, LogFilter, Source, read_range,
};
use std::sync::Mutex;

/// A change to the chain, made while a read is under way.
type Edit = Box<dyn FnOnce(&mut Vec<Header>) + Send>;

/// A chain of blocks, each with one log; block `n` of branch `b` has hash (b, n).
struct Chain {
    blocks: Mutex<Vec<Header>>,
    /// Called once, inside the next logs() call: changes the chain under a read.
    during_logs: Mutex<Option<Edit>>,
}

fn hash(branch: u8, n: u64) -> B256 {
    let mut h = [0u8; 32];
    h[0] = branch;
    h[24..].copy_from_slice(&n.to_be_bytes());
    B256::from(h)
}

/// Extends the chain with `branch`'s blocks up to block `to`.
fn grow(blocks: &mut Vec<Header>, branch: u8, to: u64) {
    while blocks.len() as u64 <= to {
        let n = blocks.len() as u64;
        let parent_hash = blocks.last().map_or(B256::ZERO, |b| b.hash);
        blocks.push(Header {
            number: n,
            hash: hash(branch, n),
            parent_hash,
            timestamp: 1_000 + n,
        });
    }
}

/// Replaces the blocks above `fork` by `branch`'s, up to `to`.
fn reorg(blocks: &mut Vec<Header>, fork: u64, branch: u8, to: u64) {
    blocks.truncate(fork as usize + 1);
    grow(blocks, branch, to);
}

impl Chain {
    fn new(len: u64) -> Self {
        let mut blocks = vec![];
        grow(&mut blocks, 1, len);
        Self {
            blocks: Mutex::new(blocks),
            during_logs: Mutex::new(None),
        }
    }

    fn edit(&self, f: impl FnOnce(&mut Vec<Header>)) {
        f(&mut self.blocks.lock().unwrap());
    }
}

impl Source for Chain {
    async fn head(&self) -> medrec_chain::Result<u64> {
        Ok(self.blocks.lock().unwrap().len() as u64 - 1)
    }

    async fn header(&self, n: u64) -> medrec_chain::Result<Option<Header>> {
        Ok(self.blocks.lock().unwrap().get(n as usize).copied())
    }

    async fn logs(&self, _: &LogFilter, from: u64, to: u64) -> medrec_chain::Result<Vec<Log>> {
        let logs = self.blocks.lock().unwrap()[from as usize..=to as usize]
            .iter()
            .rev() // any order: the range sorts them
            .map(|b| Log {
                inner: alloy::primitives::Log {
                    address: Address::ZERO,
                    data: LogData::new_unchecked(vec![b.hash], Default::default()),
                },
                block_hash: Some(b.hash),
                block_number: Some(b.number),
                log_index: Some(0),
                transaction_hash: Some(B256::ZERO),
                ..Default::default()
            })
            .collect();
        if let Some(f) = self.during_logs.lock().unwrap().take() {
            f(&mut self.blocks.lock().unwrap());
        }
        Ok(logs)
    }
}

fn opts(window: u64) -> FollowerOpts {
    FollowerOpts {
        start_block: 1,
        confirmations: 0,
        reorg_window: window,
        initial_range: 4,
        max_range: 4,
    }
}

/// Advances until caught up; the logs' block numbers read.
async fn catch_up(f: &mut Follower<Chain>) -> Vec<u64> {
    let mut read = vec![];
    loop {
        match f.advance(None).await.unwrap() {
            Advance::Range(r) => read.extend(r.logs.iter().map(|l| l.block_number.unwrap())),
            Advance::CaughtUp { .. } => return read,
            Advance::Reorged { fork } => panic!("unexpected reorg to {fork}"),
        }
    }
}

#[tokio::test]
async fn ranges_cover_every_block_once_in_order() {
    let mut f = Follower::new(Chain::new(10), LogFilter::default(), opts(64));
    assert_eq!(catch_up(&mut f).await, (1..=10).collect::<Vec<_>>());
    assert_eq!(f.cursor(), Some(10));
    f.source().edit(|b| grow(b, 1, 13));
    assert_eq!(catch_up(&mut f).await, vec![11, 12, 13]);
}

#[tokio::test]
async fn a_reorg_below_the_cursor_goes_back_to_the_fork() {
    let mut f = Follower::new(Chain::new(10), LogFilter::default(), opts(64));
    catch_up(&mut f).await;
    // Blocks 8.. replaced by a longer branch: the next range does not hang on block 10.
    f.source().edit(|b| reorg(b, 7, 2, 12));
    // The fork is the newest remembered block still on the chain: ranges end at 1..4, 5..8,
    // 9..10, so 5 is the newest remembered block below 8.
    match f.advance(None).await.unwrap() {
        Advance::Reorged { fork } => assert_eq!(fork, 5),
        other => panic!("expected a reorg, got {other:?}"),
    }
    let read = catch_up(&mut f).await;
    assert_eq!(read, (6..=12).collect::<Vec<_>>());
    let hashes: Vec<B256> = {
        let r = read_range(f.source(), &LogFilter::default(), 8, 12)
            .await
            .unwrap();
        r.logs.iter().map(|l| l.topics()[0]).collect()
    };
    assert!(hashes.iter().zip(8..).all(|(h, n)| *h == hash(2, n)));
}

#[tokio::test]
async fn a_shorter_branch_is_noticed_when_caught_up() {
    let mut f = Follower::new(Chain::new(10), LogFilter::default(), opts(64));
    catch_up(&mut f).await;
    // Block 10 gone, 9 replaced: the head is now below the cursor.
    f.source().edit(|b| reorg(b, 8, 3, 9));
    match f.advance(None).await.unwrap() {
        Advance::Reorged { fork } => assert_eq!(fork, 8),
        other => panic!("expected a reorg, got {other:?}"),
    }
    assert_eq!(catch_up(&mut f).await, vec![9]);
}

#[tokio::test]
async fn a_reorg_during_the_read_is_retried_not_trusted() {
    let chain = Chain::new(10);
    *chain.during_logs.lock().unwrap() = Some(Box::new(|b| reorg(b, 6, 4, 10)));
    let e = read_range(&chain, &LogFilter::default(), 5, 10)
        .await
        .unwrap_err();
    assert!(matches!(e, ChainError::Moved(_)), "{e}");
    assert!(e.is_retryable());
    // The first block changing (the last one kept) is noticed too.
    *chain.during_logs.lock().unwrap() = Some(Box::new(|b| reorg(b, 2, 5, 10)));
    let e = read_range(&chain, &LogFilter::default(), 5, 5)
        .await
        .unwrap_err();
    assert!(matches!(e, ChainError::Moved(_)), "{e}");
    // Read again, the range is the new branch's.
    let r = read_range(&chain, &LogFilter::default(), 5, 10)
        .await
        .unwrap();
    assert_eq!(r.from.hash, hash(5, 5));
    assert_eq!(r.to.hash, hash(5, 10));
    assert!(r.hangs_on(hash(5, 4)));
}

#[tokio::test]
async fn a_reorg_deeper_than_the_window_is_not_retryable() {
    let mut f = Follower::new(Chain::new(20), LogFilter::default(), opts(3));
    catch_up(&mut f).await;
    f.source().edit(|b| reorg(b, 10, 6, 21));
    let e = f.advance(None).await.unwrap_err();
    assert_eq!(
        e,
        ChainError::DeepReorg {
            cursor: 20,
            window: 3
        }
    );
    assert!(!e.is_retryable());
    // A follower that can rebuild its state starts again.
    f.restart();
    assert_eq!(catch_up(&mut f).await, (1..=21).collect::<Vec<_>>());
}

/// The way an in-memory follower folds logs into state (the gatekeeper's opt-ins): what came
/// from blocks above a fork is dropped, and the state equals a fold of the new chain.
#[tokio::test]
async fn state_folded_from_ranges_survives_reorgs() {
    async fn fold(f: &mut Follower<Chain>, seen: &mut Vec<(u64, B256)>) {
        loop {
            match f.advance(None).await.unwrap() {
                Advance::Range(r) => seen.extend(
                    r.logs
                        .iter()
                        .map(|l| (l.block_number.unwrap(), l.topics()[0])),
                ),
                Advance::Reorged { fork } => seen.retain(|(n, _)| *n <= fork),
                Advance::CaughtUp { .. } => return,
            }
        }
    }
    let mut f = Follower::new(Chain::new(30), LogFilter::default(), opts(64));
    let mut seen = vec![];
    fold(&mut f, &mut seen).await;
    for (i, fork) in [25u64, 12, 28, 3].into_iter().enumerate() {
        let branch = 10 + i as u8;
        f.source().edit(|b| reorg(b, fork, branch, 31 + i as u64));
        fold(&mut f, &mut seen).await;
        let want: Vec<(u64, B256)> = f
            .source()
            .blocks
            .lock()
            .unwrap()
            .iter()
            .skip(1)
            .map(|b| (b.number, b.hash))
            .collect();
        assert_eq!(seen, want, "after a reorg at {fork}");
    }
}
