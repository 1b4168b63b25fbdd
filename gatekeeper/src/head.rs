//! How old the node's latest block is. The chain answers `canRead` as of its latest block: a
//! node that stopped syncing, or a chain that makes a block only when a transaction arrives,
//! answers with an old clock, so a grant that has expired by the wall clock (or was revoked
//! in blocks the node has not seen) still reads as live. Reads are refused while the head is
//! older than the bound (`--max-head-age`).
//!
//! A background task looks at the head every [`crate::config::HEAD_EVERY`]; a read only
//! compares two numbers. When the node cannot be reached, the head it last gave grows old
//! and reads stop once it is older than the bound.

use alloy::eips::BlockNumberOrTag;
use alloy::providers::{DynProvider, Provider};
use medrec_protocol::clock;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The node's latest block as last seen, and the bound on its age.
#[derive(Debug)]
pub struct Head {
    number: AtomicU64,
    timestamp: AtomicU64,
    max_age_secs: u64,
}

impl Head {
    /// The node's latest block now, or a one-line error.
    pub async fn fetch(provider: &DynProvider, max_age_secs: u64) -> Result<Self, String> {
        let (number, timestamp) = latest(provider).await?;
        Ok(Self {
            number: AtomicU64::new(number),
            timestamp: AtomicU64::new(timestamp),
            max_age_secs,
        })
    }

    /// The number of the latest block seen.
    pub fn number(&self) -> u64 {
        self.number.load(Ordering::Relaxed)
    }

    /// Seconds between the latest block's timestamp and the wall clock (0 if it is ahead).
    pub fn age_secs(&self) -> u64 {
        clock::now_secs().saturating_sub(self.timestamp.load(Ordering::Relaxed))
    }

    /// The head's age when it is older than the bound.
    pub fn stale(&self) -> Option<u64> {
        let age = self.age_secs();
        (age > self.max_age_secs).then_some(age)
    }

    fn set(&self, number: u64, timestamp: u64) {
        self.timestamp.store(timestamp, Ordering::Relaxed);
        self.number.store(number, Ordering::Relaxed);
    }
}

/// The latest block's number and timestamp.
async fn latest(provider: &DynProvider) -> Result<(u64, u64), String> {
    match provider.get_block_by_number(BlockNumberOrTag::Latest).await {
        Ok(Some(b)) => Ok((b.header.number, b.header.timestamp)),
        Ok(None) => Err("the node has no latest block".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Looks at the node's latest block every `every`, forever.
pub async fn follow(head: Arc<Head>, provider: DynProvider, every: Duration) {
    let mut failing = false;
    loop {
        tokio::time::sleep(every).await;
        match latest(&provider).await {
            Ok((number, timestamp)) => {
                if failing {
                    tracing::info!(target: "medrec::gatekeeper", block = number, "the node answers again");
                }
                failing = false;
                head.set(number, timestamp);
            }
            Err(e) => {
                // Said once per outage, not twice a second.
                if !failing {
                    tracing::warn!(target: "medrec::gatekeeper", error = %e, "cannot read the node's latest block");
                }
                failing = true;
            }
        }
    }
}
