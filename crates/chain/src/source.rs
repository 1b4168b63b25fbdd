//! Where a follower reads the chain: the [`Source`] trait and its JSON-RPC implementation.

use crate::error::{ChainError, Result};
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, Log};
use std::future::Future;

/// What a follower knows of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Its number.
    pub number: u64,
    /// Its hash.
    pub hash: B256,
    /// Its parent's hash.
    pub parent_hash: B256,
    /// Its time (unix seconds).
    pub timestamp: u64,
}

/// Which logs a follower reads: emitted by any of `addresses`, with any of `topics` as their
/// first topic (the event signature).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// The contracts.
    pub addresses: Vec<Address>,
    /// The event signatures (topic 0).
    pub topics: Vec<B256>,
}

/// The chain as a follower sees it. Every future is `Send` so that ranges can be read ahead
/// on other tasks.
pub trait Source: Send + Sync {
    /// The head's block number.
    fn head(&self) -> impl Future<Output = Result<u64>> + Send;
    /// Block `n`'s header; `None` if the chain has no block `n` (yet, or any more).
    fn header(&self, n: u64) -> impl Future<Output = Result<Option<Header>>> + Send;
    /// The logs of blocks `from..=to` that match `filter`, in any order.
    fn logs(
        &self,
        filter: &LogFilter,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<Vec<Log>>> + Send;

    /// Block `n`'s header, which must exist.
    fn header_of(&self, n: u64) -> impl Future<Output = Result<Header>> + Send {
        async move { self.header(n).await?.ok_or(ChainError::MissingBlock(n)) }
    }
}

/// A node over JSON-RPC.
#[derive(Debug, Clone)]
pub struct Rpc {
    provider: DynProvider,
}

impl Rpc {
    /// A source reading through `provider`.
    pub fn new(provider: DynProvider) -> Self {
        Self { provider }
    }

    /// A source reading from the node at `url` over HTTP.
    pub fn connect_http(url: &str) -> Result<Self> {
        let parsed = url
            .parse()
            .map_err(|_| ChainError::Config(format!("bad RPC URL {url:?}")))?;
        Ok(Self::new(
            ProviderBuilder::new().connect_http(parsed).erased(),
        ))
    }

    /// The provider, for the calls a follower does not make.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The chain id.
    pub async fn chain_id(&self) -> Result<u64> {
        self.provider.get_chain_id().await.map_err(transport)
    }
}

fn transport(e: impl std::fmt::Display) -> ChainError {
    ChainError::Transport(e.to_string())
}

/// Whether a node's refusal of eth_getLogs says the range was too large or too slow (nodes
/// word it differently: "block range too large", "max results limit", "request timed out",
/// "too many logs").
fn too_large(msg: &str) -> bool {
    let lower = msg.to_ascii_lowercase();
    ["too many", "limit", "timeout", "timed out", "range"]
        .iter()
        .any(|w| lower.contains(w))
}

impl Source for Rpc {
    async fn head(&self) -> Result<u64> {
        self.provider.get_block_number().await.map_err(transport)
    }

    async fn header(&self, n: u64) -> Result<Option<Header>> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .map_err(transport)?;
        Ok(block.map(|b| Header {
            number: b.header.number,
            hash: b.header.hash,
            parent_hash: b.header.parent_hash,
            timestamp: b.header.timestamp,
        }))
    }

    async fn logs(&self, filter: &LogFilter, from: u64, to: u64) -> Result<Vec<Log>> {
        let f = Filter::new()
            .address(filter.addresses.clone())
            .event_signature(filter.topics.clone())
            .from_block(from)
            .to_block(to);
        self.provider.get_logs(&f).await.map_err(|e| {
            let msg = e.to_string();
            if too_large(&msg) {
                ChainError::RangeTooLarge(msg)
            } else {
                ChainError::Transport(msg)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::too_large;

    #[test]
    fn refusals_that_mean_a_smaller_range() {
        assert!(too_large("query exceeds max results limit"));
        assert!(too_large("Block range too large"));
        assert!(too_large("request timed out"));
        assert!(!too_large("connection refused"));
    }
}
