//! The study registry's opt-ins and withdrawals, read once from its logs and then followed
//! block by block: a query folds the changes up to the block it pins instead of reading
//! every opt-in of the study from the chain again.
//!
//! The chain is read with medrec-chain's [`Follower`] (hash-bracketed ranges, reorg
//! detection): after a reorg the changes of the blocks no longer on the chain are dropped and
//! those blocks read again; after a reorg deeper than the follower remembers, everything is.

use alloy::primitives::{Address, U256};
use alloy::providers::DynProvider;
use alloy::sol_types::SolEvent;
use medrec_bindings::StudyRegistry;
use medrec_chain::{Advance, Backoff, ChainError, Follower, FollowerOpts, LogFilter, Rpc, Source};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// One opt-in or withdrawal: (block, log index, patient, opted in).
type Change = (u64, u64, Address, bool);

/// How many times a query retries a chain error worth retrying before it is refused (with
/// [`Backoff`]'s waits: about 3 s in all).
const QUERY_RETRIES: u32 = 5;

/// The opt-ins and withdrawals of one study registry read so far.
pub struct OptIns {
    state: tokio::sync::Mutex<OptInState<Rpc>>,
}

struct OptInState<S> {
    /// Where the registry's logs have been read to.
    follower: Follower<S>,
    /// Per study, its changes in chain order.
    changes: HashMap<U256, Vec<Change>>,
}

impl<S: Source> OptInState<S> {
    /// Nothing read yet of the study registry at `registry`.
    fn new(src: S, registry: Address, opts: FollowerOpts) -> Self {
        let filter = LogFilter {
            addresses: vec![registry],
            topics: vec![
                StudyRegistry::OptedIn::SIGNATURE_HASH,
                StudyRegistry::Withdrew::SIGNATURE_HASH,
            ],
        };
        Self {
            follower: Follower::new(src, filter, opts),
            changes: HashMap::new(),
        }
    }

    /// Reads the registry's changes up to block `to` (`None`: the head). A chain error worth
    /// retrying is retried `retries` times, each retry logged; any other is logged and returned
    /// at once.
    async fn catch_up(&mut self, to: Option<u64>, retries: u32) -> Result<(), ChainError> {
        let mut backoff = Backoff::default();
        let mut left = retries;
        loop {
            let e = match self.follower.advance(to).await {
                Ok(Advance::Range(range)) => {
                    self.fold(&range.logs);
                    continue;
                }
                Ok(Advance::Reorged { fork }) => {
                    tracing::warn!(target: "medrec::gatekeeper", fork, "reorg: reading the opt-ins above the fork again");
                    for changes in self.changes.values_mut() {
                        changes.retain(|c| c.0 <= fork);
                    }
                    continue;
                }
                Ok(Advance::CaughtUp { head }) => match to {
                    // The node's head is below the block asked for: its changes are not known.
                    Some(to) if self.follower.cursor().is_none_or(|n| n < to) => {
                        tracing::debug!(target: "medrec::gatekeeper", to, head, "the block asked for is not on the node's chain yet");
                        ChainError::MissingBlock(to)
                    }
                    _ => return Ok(()),
                },
                Err(e @ ChainError::DeepReorg { .. }) => {
                    tracing::warn!(target: "medrec::gatekeeper", error = %e, "reading every opt-in again");
                    self.follower.restart();
                    self.changes.clear();
                    continue;
                }
                Err(e) => e,
            };
            if !e.is_retryable() {
                tracing::error!(target: "medrec::gatekeeper", error = %e, "reading opt-ins");
                return Err(e);
            }
            if left == 0 {
                return Err(e);
            }
            left -= 1;
            let wait = backoff.next_wait();
            tracing::warn!(target: "medrec::gatekeeper", error = %e, ?wait, "reading opt-ins; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Adds a range's opt-ins and withdrawals (in chain order, after those read before).
    fn fold(&mut self, logs: &[alloy::rpc::types::Log]) {
        for l in logs {
            let (Some(study), Some(patient), Some(block), Some(index)) = (
                l.topics().get(1),
                l.topics().get(2),
                l.block_number,
                l.log_index,
            ) else {
                continue;
            };
            let opted_in = l.topic0() == Some(&StudyRegistry::OptedIn::SIGNATURE_HASH);
            self.changes
                .entry(U256::from_be_bytes(study.0))
                .or_default()
                .push((block, index, Address::from_word(*patient), opted_in));
        }
    }

    /// The patients opted in to `study` at the end of block `at`, of the changes read.
    fn live_at(&self, study: U256, at: u64) -> HashSet<Address> {
        let mut set = HashSet::new();
        for &(block, _, patient, opted_in) in self.changes.get(&study).into_iter().flatten() {
            if block > at {
                break;
            }
            if opted_in {
                set.insert(patient);
            } else {
                set.remove(&patient);
            }
        }
        set
    }
}

impl OptIns {
    /// Nothing read yet of the study registry at `registry`.
    pub fn new(provider: DynProvider, registry: Address) -> Self {
        let st = OptInState::new(Rpc::new(provider), registry, FollowerOpts::default());
        Self {
            state: tokio::sync::Mutex::new(st),
        }
    }

    /// The patients opted in to `study` at the end of block `at`.
    pub async fn consenting(&self, study: U256, at: u64) -> Result<HashSet<Address>, ChainError> {
        let mut st = self.state.lock().await;
        st.catch_up(Some(at), QUERY_RETRIES).await?;
        Ok(st.live_at(study, at))
    }

    /// The patients opted in to `study` both at block `at` and at block `now` (`at <= now`):
    /// a query pinned before a withdrawal does not count the patient who withdrew since.
    pub async fn consenting_throughout(
        &self,
        study: U256,
        at: u64,
        now: u64,
    ) -> Result<HashSet<Address>, ChainError> {
        let mut st = self.state.lock().await;
        st.catch_up(Some(now.max(at)), QUERY_RETRIES).await?;
        let later = st.live_at(study, now);
        Ok(st
            .live_at(study, at)
            .into_iter()
            .filter(|p| later.contains(p))
            .collect())
    }
}

/// Follows the registry's opt-ins as blocks arrive, so that queries find them read already.
/// A failed read is logged and tried again after [`Backoff`]'s wait (the lock is not held
/// meanwhile, so queries go on and retry by themselves).
pub async fn follow(opt_ins: Arc<OptIns>, every: Duration) {
    let mut backoff = Backoff::default();
    loop {
        let read = opt_ins.state.lock().await.catch_up(None, 0).await;
        let wait = match read {
            Ok(()) => {
                backoff.reset();
                every
            }
            Err(e) => {
                let wait = backoff.next_wait().max(every);
                if e.is_retryable() {
                    tracing::warn!(target: "medrec::gatekeeper", error = %e, ?wait, "following opt-ins; retrying");
                }
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{B256, LogData};
    use alloy::rpc::types::Log;
    use medrec_chain::Header;
    use std::sync::Mutex;

    const REGISTRY: Address = Address::repeat_byte(0xee);

    /// An opt-in (or withdrawal) of `patient` to `study`.
    type Event = (u64, u8, bool);

    /// A scripted chain: per block, its header and the opt-in events it holds.
    #[derive(Default)]
    struct Chain(Mutex<Vec<(Header, Vec<Event>)>>);

    impl Chain {
        /// Replaces the blocks above `fork` by `branch`'s, with `events` per new block.
        fn build(&self, fork: Option<u64>, branch: u8, events: &[Vec<Event>]) {
            let mut blocks = self.0.lock().unwrap();
            blocks.truncate(fork.map_or(0, |f| f as usize + 1));
            for ev in events {
                let number = blocks.len() as u64;
                let parent_hash = blocks.last().map_or(B256::ZERO, |b| b.0.hash);
                let mut hash = B256::repeat_byte(branch);
                hash.0[24..].copy_from_slice(&number.to_be_bytes());
                let header = Header {
                    number,
                    hash,
                    parent_hash,
                    timestamp: number,
                };
                blocks.push((header, ev.clone()));
            }
        }
    }

    fn log(h: &Header, index: u64, &(study, patient, opted_in): &Event) -> Log {
        let topic0 = if opted_in {
            StudyRegistry::OptedIn::SIGNATURE_HASH
        } else {
            StudyRegistry::Withdrew::SIGNATURE_HASH
        };
        let topics = vec![
            topic0,
            U256::from(study).into(),
            Address::repeat_byte(patient).into_word(),
        ];
        Log {
            inner: alloy::primitives::Log {
                address: REGISTRY,
                data: LogData::new_unchecked(topics, Default::default()),
            },
            block_hash: Some(h.hash),
            block_number: Some(h.number),
            log_index: Some(index),
            transaction_hash: Some(B256::ZERO),
            ..Default::default()
        }
    }

    impl Source for &Chain {
        async fn head(&self) -> medrec_chain::Result<u64> {
            Ok(self.0.lock().unwrap().len() as u64 - 1)
        }

        async fn header(&self, n: u64) -> medrec_chain::Result<Option<Header>> {
            Ok(self.0.lock().unwrap().get(n as usize).map(|b| b.0))
        }

        async fn logs(&self, _: &LogFilter, from: u64, to: u64) -> medrec_chain::Result<Vec<Log>> {
            let blocks = self.0.lock().unwrap();
            Ok(blocks[from as usize..=to as usize]
                .iter()
                .flat_map(|(h, evs)| evs.iter().zip(0..).map(|(e, i)| log(h, i, e)))
                .collect())
        }
    }

    fn patients(ps: &[u8]) -> HashSet<Address> {
        ps.iter().map(|&p| Address::repeat_byte(p)).collect()
    }

    fn opts(window: u64) -> FollowerOpts {
        FollowerOpts {
            reorg_window: window,
            initial_range: 2,
            max_range: 2,
            ..FollowerOpts::default()
        }
    }

    /// Blocks 0..=6: patients 1 and 2 opt in to study 7 (blocks 2, 3), patient 3 to study 8
    /// (block 3), patient 1 withdraws (block 5).
    fn chain() -> Chain {
        let c = Chain::default();
        let (a, b, none) = ((7, 1, true), (7, 2, true), vec![]);
        c.build(
            None,
            1,
            &[
                none.clone(),
                none.clone(),
                vec![a],
                vec![b, (8, 3, true)],
                none.clone(),
                vec![(7, 1, false)],
                none,
            ],
        );
        c
    }

    #[tokio::test]
    async fn the_patients_opted_in_at_the_pinned_block_count() {
        let c = chain();
        let mut st = OptInState::new(&c, REGISTRY, opts(64));
        st.catch_up(Some(4), 0).await.unwrap();
        assert_eq!(st.live_at(U256::from(7), 1), patients(&[]));
        assert_eq!(st.live_at(U256::from(7), 2), patients(&[1]));
        assert_eq!(st.live_at(U256::from(7), 4), patients(&[1, 2]));
        assert_eq!(st.live_at(U256::from(8), 4), patients(&[3]));
        // Read on to the head: the withdrawal counts from its block on, not before.
        st.catch_up(None, 0).await.unwrap();
        assert_eq!(st.live_at(U256::from(7), 4), patients(&[1, 2]));
        assert_eq!(st.live_at(U256::from(7), 6), patients(&[2]));
        // A block the node's chain does not reach yet is not answered from what was read.
        assert_eq!(
            st.catch_up(Some(9), 0).await,
            Err(ChainError::MissingBlock(9))
        );
    }

    #[tokio::test]
    async fn changes_read_before_a_reorg_are_dropped_above_the_fork_and_read_again() {
        for window in [64, 1] {
            let c = chain();
            let mut st = OptInState::new(&c, REGISTRY, opts(window));
            st.catch_up(None, 0).await.unwrap();
            // Above block 2 a new branch: patient 4 opts in (block 4), nobody withdraws.
            c.build(Some(2), 2, &[vec![], vec![(7, 4, true)], vec![], vec![]]);
            st.catch_up(Some(6), 0).await.unwrap();
            assert_eq!(
                st.live_at(U256::from(7), 6),
                patients(&[1, 4]),
                "window {window}"
            );
            assert_eq!(
                st.live_at(U256::from(8), 6),
                patients(&[]),
                "window {window}"
            );
            // A shorter branch that no longer reaches the block read before.
            c.build(Some(3), 3, &[vec![(7, 5, true)]]);
            st.catch_up(None, 0).await.unwrap();
            assert_eq!(
                st.live_at(U256::from(7), 9),
                patients(&[1, 5]),
                "window {window}"
            );
        }
    }
}
