//! A private anvil and the medrec world on it: the registries deployed, accounts funded and
//! credentialed, contract calls sent and mined.

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::{EthereumWallet, Network};
use alloy::node_bindings::AnvilInstance;
use alloy::primitives::{Address, U256, aliases::U40, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use medrec_bindings::ParticipantRegistry;
use medrec_bindings::deployment::Deployment;
use medrec_protocol::participant::Role;
use std::path::Path;
use std::time::Duration;

/// anvil's first development key (hex, no `0x`): the deployer and governance account.
pub const GOV_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// The ParticipantRegistry's role of a provider (record holder or requester), as a number.
pub const PROVIDER: u8 = Role::Provider.to_solidity();
/// The ParticipantRegistry's role of a researcher, as a number.
pub const RESEARCHER: u8 = Role::Researcher.to_solidity();

/// The governance account's signer.
pub fn gov() -> PrivateKeySigner {
    GOV_KEY.parse().unwrap()
}

/// A private anvil (the native binary, through alloy's node bindings), stopped when dropped
/// (SIGTERM, so that it removes its state files, then SIGKILL).
pub struct Anvil {
    /// Its port on 127.0.0.1.
    pub port: u16,
    _node: AnvilInstance,
}

impl Anvil {
    /// Starts anvil on a port the OS chooses, chain id 31337, with further command-line
    /// `args`; returns once it listens.
    pub fn start(args: &[&str]) -> Self {
        // alloy reads anvil's stdout until "Listening on": never `--silent`, which hides it.
        let node = alloy::node_bindings::Anvil::at(crate::foundry_bin("anvil"))
            .host("127.0.0.1")
            .chain_id(31337)
            .timeout(30_000)
            .args(args)
            .try_spawn()
            .unwrap_or_else(|e| panic!("anvil did not start: {e}"));
        Self {
            port: node.port(),
            _node: node,
        }
    }

    /// Its JSON-RPC URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Makes anvil at `p` mine a block every `secs` seconds from now on, as a consortium chain
/// does, instead of one per transaction (a transaction then waits for the next block): its
/// latest block stays as fresh as the wall clock, where on demand "now" on chain is the last
/// transaction's time. `anvil --block-time N` does the same from the start.
pub async fn mine_every(p: &DynProvider, secs: u64) {
    let _: serde_json::Value = p
        .raw_request("evm_setIntervalMining".into(), (secs,))
        .await
        .unwrap();
}

/// A provider at `rpc` that signs with `who` and polls for receipts every `poll` (alloy's
/// 250 ms default caps a test at a few transactions per second on anvil).
pub fn wallet_provider(rpc: &str, who: &PrivateKeySigner, poll: Duration) -> DynProvider {
    let p = ProviderBuilder::new()
        .wallet(EthereumWallet::from(who.clone()))
        .connect_http(rpc.parse().unwrap());
    p.client().set_poll_interval(poll);
    p.erased()
}

/// Deploys the four registries from `p`'s account with `admin` as their governance (the
/// longest break-glass access one day), and writes the deployments file to `file`.
pub async fn deploy(p: &DynProvider, admin: Address, file: &Path) -> Deployment {
    let d = medrec_bindings::deployment::deploy(p, admin, 86_400)
        .await
        .unwrap_or_else(|e| panic!("deploying the registries: {e}"));
    write_deployment(file, &d);
    d
}

/// Writes deployment `d` to `file` (the format `medrec_bindings::deployment::read` reads).
pub fn write_deployment(file: &Path, d: &Deployment) {
    std::fs::write(file, serde_json::to_string_pretty(d).unwrap()).unwrap();
}

/// Gives `who` 100 ETH (anvil_setBalance).
pub async fn fund(p: &DynProvider, who: Address) {
    let _: serde_json::Value = p
        .raw_request("anvil_setBalance".into(), (who, U256::from(10u128.pow(20))))
        .await
        .unwrap();
}

/// Credentials `who` in `role` ([`PROVIDER`], [`RESEARCHER`]) until `expires` (seconds since
/// the epoch); `gov` is a provider of the governance account.
pub async fn credential(
    gov: &DynProvider,
    participants: Address,
    who: Address,
    role: u8,
    expires: u64,
) {
    ParticipantRegistry::new(participants, gov.clone())
        .issueCredential(who, role, keccak256(b"licence"), U40::from(expires))
        .mined()
        .await;
}

/// Registers `holder`'s gatekeeper (`RecordRegistry.registerHolder`): requesters read its
/// records at `endpoint`; `service_key` may anchor its access log. `holder` is a provider
/// signing as the holder.
pub async fn register_holder(
    holder: &DynProvider,
    records: Address,
    endpoint: &str,
    service_key: Address,
) {
    let r = medrec_bindings::RecordRegistry::new(records, holder.clone())
        .registerHolder(endpoint.to_string(), service_key)
        .mined()
        .await;
    assert!(
        alloy::network::ReceiptResponse::status(&r),
        "registerHolder reverted"
    );
}

/// A contract call sent and waited for.
pub trait Mined<N: Network> {
    /// Sends the call and waits for its receipt; panics if either fails.
    fn mined(self) -> impl std::future::Future<Output = N::ReceiptResponse> + Send;
}

impl<P, D, N> Mined<N> for CallBuilder<P, D, N>
where
    P: Provider<N> + Send + Sync,
    D: CallDecoder + Send + Sync,
    N: Network,
{
    async fn mined(self) -> N::ReceiptResponse {
        self.send().await.unwrap().get_receipt().await.unwrap()
    }
}
