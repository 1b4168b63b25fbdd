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
use medrec_chain::{Advance, Backoff, ChainError, Follower, FollowerOpts, LogFilter, Rpc};
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
    state: tokio::sync::Mutex<OptInState>,
}

struct OptInState {
    /// Where the registry's logs have been read to.
    follower: Follower<Rpc>,
    /// Per study, its changes in chain order.
    changes: HashMap<U256, Vec<Change>>,
}

impl OptInState {
    /// Reads the registry's changes up to block `to` (`None`: the head). A chain error worth
    /// retrying is retried `retries` times, each logged; any other is returned at once.
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
}

impl OptIns {
    /// Nothing read yet of the study registry at `registry`.
    pub fn new(provider: DynProvider, registry: Address) -> Self {
        let filter = LogFilter {
            addresses: vec![registry],
            topics: vec![
                StudyRegistry::OptedIn::SIGNATURE_HASH,
                StudyRegistry::Withdrew::SIGNATURE_HASH,
            ],
        };
        let follower = Follower::new(Rpc::new(provider), filter, FollowerOpts::default());
        Self {
            state: tokio::sync::Mutex::new(OptInState {
                follower,
                changes: HashMap::new(),
            }),
        }
    }

    /// The patients opted in to `study` at the end of block `at`.
    pub async fn consenting(&self, study: U256, at: u64) -> Result<HashSet<Address>, ChainError> {
        let mut st = self.state.lock().await;
        st.catch_up(Some(at), QUERY_RETRIES).await?;
        let mut set: HashSet<Address> = HashSet::new();
        for &(block, _, patient, opted_in) in st.changes.get(&study).into_iter().flatten() {
            if block > at {
                break;
            }
            if opted_in {
                set.insert(patient);
            } else {
                set.remove(&patient);
            }
        }
        Ok(set)
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
