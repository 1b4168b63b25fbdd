//! Connecting to the chain, finding the contracts, and sending transactions.

use crate::error::{CliError, Result, from_contract, from_transport};
use crate::opts::Settings;
use alloy::network::EthereumWallet;
use alloy::primitives::B256;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use backon::{ExponentialBuilder, Retryable};
use medrec_bindings::{ConsentRegistry, ParticipantRegistry, RecordRegistry};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Receipts are polled this often: fast on a local chain, harmless on others.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long to wait for the node to answer the first call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub use medrec_bindings::deployment::Deployment;

/// Reads the deployment of `chain_id`.
pub fn read_deployment(path: &Path, chain_id: u64) -> Result<Deployment> {
    medrec_bindings::deployment::read(path, chain_id).map_err(|e| {
        CliError::Deployment(format!("{e}; run 'medrec deploy' or give --deployments"))
    })
}

/// Writes a deployment atomically (temporary file, then rename).
pub fn write_deployment(path: &Path, d: &Deployment) -> Result<PathBuf> {
    let file = medrec_bindings::deployment::path(path, d.chain_id);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    let tmp = file.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(d).map_err(|e| CliError::Io(e.to_string()))?;
    std::fs::write(&tmp, text + "\n")
        .and_then(|()| std::fs::rename(&tmp, &file))
        .map_err(|e| CliError::Io(format!("cannot write {}: {e}", file.display())))?;
    Ok(file)
}

/// A connection to the node, checked against the expected chain id.
#[derive(Clone)]
pub struct Chain {
    /// The provider (with a wallet when signing).
    pub provider: DynProvider,
    /// The node's chain id.
    pub chain_id: u64,
    /// The node's URL, for messages.
    pub url: String,
}

impl Chain {
    /// Connects read-only.
    pub async fn connect(settings: &Settings) -> Result<Self> {
        let url = parse_url(&settings.rpc_url)?;
        let provider = ProviderBuilder::new().connect_http(url).erased();
        Self::check(provider, settings).await
    }

    /// Connects with `signer` as the sending wallet.
    pub async fn connect_signer(settings: &Settings, signer: PrivateKeySigner) -> Result<Self> {
        let url = parse_url(&settings.rpc_url)?;
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer))
            .connect_http(url)
            .erased();
        Self::check(provider, settings).await
    }

    async fn check(provider: DynProvider, settings: &Settings) -> Result<Self> {
        provider.client().set_poll_interval(POLL_INTERVAL);
        let url = settings.rpc_url.clone();
        let chain_id = tokio::time::timeout(CONNECT_TIMEOUT, provider.get_chain_id())
            .await
            .map_err(|_| CliError::Rpc(format!("cannot reach the node at {url}: timed out")))?
            .map_err(|e| from_transport(e, &url))?;
        if let Some(expected) = settings.chain_id
            && expected != chain_id
        {
            return Err(CliError::ChainMismatch {
                expected,
                actual: chain_id,
                url,
            });
        }
        Ok(Self {
            provider,
            chain_id,
            url,
        })
    }

    /// The deployment for this chain, checked to have code at its addresses.
    pub async fn deployment(&self, settings: &Settings) -> Result<Deployment> {
        let d = read_deployment(&settings.deployments, self.chain_id)?;
        let code = self
            .provider
            .get_code_at(d.record_registry)
            .await
            .map_err(|e| from_transport(e, &self.url))?;
        if code.is_empty() {
            return Err(CliError::Deployment(format!(
                "no contract at {} on chain {}: the deployments file is stale (was the chain restarted?)",
                d.record_registry, self.chain_id
            )));
        }
        Ok(d)
    }

    /// The participant registry of `d`.
    pub fn participants(
        &self,
        d: &Deployment,
    ) -> ParticipantRegistry::ParticipantRegistryInstance<DynProvider> {
        ParticipantRegistry::new(d.participant_registry, self.provider.clone())
    }

    /// The consent registry of `d`.
    pub fn consent(&self, d: &Deployment) -> ConsentRegistry::ConsentRegistryInstance<DynProvider> {
        ConsentRegistry::new(d.consent_registry, self.provider.clone())
    }

    /// The record registry of `d`.
    pub fn records(&self, d: &Deployment) -> RecordRegistry::RecordRegistryInstance<DynProvider> {
        RecordRegistry::new(d.record_registry, self.provider.clone())
    }

    /// The latest block's timestamp: "now" as the contracts see it.
    pub async fn now(&self) -> Result<u64> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| from_transport(e, &self.url))?
            .ok_or_else(|| CliError::Rpc("the node returned no latest block".into()))?;
        Ok(block.header.timestamp)
    }

    /// Maps a contract error to a [`CliError`].
    pub fn err(&self, e: alloy::contract::Error) -> CliError {
        from_contract(e, &self.url)
    }
}

/// What a sent transaction did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TxOutcome {
    /// The transaction hash.
    pub tx_hash: B256,
    /// The block it was included in.
    pub block_number: u64,
    /// Gas it used.
    pub gas_used: u64,
}

/// Sends a prepared contract call and waits for its receipt; a revert is decoded.
pub async fn send<P, C>(
    chain: &Chain,
    call: alloy::contract::CallBuilder<P, C>,
) -> Result<TxOutcome>
where
    P: Provider,
    C: alloy::contract::CallDecoder,
{
    send_receipt(chain, call).await.map(|(o, _)| o)
}

/// As [`send`], also returning the receipt (for the events it holds).
pub async fn send_receipt<P, C>(
    chain: &Chain,
    call: alloy::contract::CallBuilder<P, C>,
) -> Result<(TxOutcome, TransactionReceipt)>
where
    P: Provider,
    C: alloy::contract::CallDecoder,
{
    let pending = call.send().await.map_err(|e| chain.err(e))?;
    let receipt = wait_receipt(chain, *pending.tx_hash()).await?;
    if !receipt.status() {
        return Err(CliError::RevertUnknown(format!(
            "transaction {} reverted",
            receipt.transaction_hash
        )));
    }
    let outcome = TxOutcome {
        tx_hash: receipt.transaction_hash,
        block_number: receipt.block_number.unwrap_or_default(),
        gas_used: receipt.gas_used,
    };
    Ok((outcome, receipt))
}

/// How long to wait for a sent transaction's receipt.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(600);

/// Waits for a transaction's receipt: asked of the node at once, then after 10 ms and 10%
/// longer each time (up to 1 s apart), so that each wait is about a tenth of the time waited
/// so far: a local chain answers in milliseconds, the receipt is seen at most about 10% after
/// it exists, and a public chain is not flooded; gives up after ten minutes.
///
/// Not alloy's pending-transaction watcher: it polls at one fixed interval (the client's
/// `poll_interval`), which is either slow on a local chain or a flood on a public one; the
/// growing schedule is backon's.
async fn wait_receipt(chain: &Chain, hash: B256) -> Result<TransactionReceipt> {
    enum Wait {
        NotYet,
        Failed(CliError),
    }
    let schedule = ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(10))
        .with_factor(1.1)
        .with_max_delay(Duration::from_secs(1))
        .without_max_times()
        .with_total_delay(Some(RECEIPT_TIMEOUT));
    let ask = || async {
        match chain.provider.get_transaction_receipt(hash).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(Wait::NotYet),
            Err(e) => Err(Wait::Failed(CliError::Rpc(format!(
                "waiting for the receipt of {hash} failed: {e}"
            )))),
        }
    };
    ask.retry(schedule)
        .sleep(tokio::time::sleep)
        .when(|e| matches!(e, Wait::NotYet))
        .await
        .map_err(|e| match e {
            Wait::NotYet => CliError::Rpc(format!(
                "transaction {hash} was sent but not mined within ten minutes"
            )),
            Wait::Failed(e) => e,
        })
}

fn parse_url(s: &str) -> Result<reqwest_url::Url> {
    s.parse()
        .map_err(|_| CliError::input(format!("bad RPC URL {s:?}")))
}

mod reqwest_url {
    pub use alloy::transports::http::reqwest::Url;
}
