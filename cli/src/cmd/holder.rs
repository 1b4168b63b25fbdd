//! `medrec holder`: a holder registers its gatekeeper on chain, the endpoint requesters read
//! its records at and the service key that anchors its access log, and anyone shows it.

use crate::chain::{self, Chain};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use clap::{Args, Subcommand};
use serde_json::json;

/// Longest endpoint the registry accepts.
const MAX_ENDPOINT: usize = 256;

/// Holder subcommands.
#[derive(Debug, Subcommand)]
pub enum HolderCmd {
    /// Register (or change) your gatekeeper's endpoint and its service key (provider)
    Register(RegisterArgs),
    /// Show the gatekeeper a holder registered
    Show(ShowArgs),
}

/// `holder register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Your gatekeeper's base URL: requesters read your records there and nowhere else
    #[arg(long)]
    pub endpoint: String,
    /// The address of your gatekeeper's own key (its `--service-keystore`): it may anchor your
    /// access log, and nothing else
    #[arg(long)]
    pub service_key: String,
}

/// `holder show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The holder [default: your account]
    pub holder: Option<String>,
}

/// The endpoint as registered: an http(s) URL without a trailing slash.
fn endpoint(s: &str) -> Result<String> {
    let e = s.trim().trim_end_matches('/');
    let url: alloy::transports::http::reqwest::Url = e
        .parse()
        .map_err(|err| CliError::input(format!("bad --endpoint {s:?}: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(CliError::input(format!(
            "bad --endpoint {s:?}: expected an http(s) URL"
        )));
    }
    if e.len() > MAX_ENDPOINT {
        return Err(CliError::input(format!(
            "bad --endpoint: {} bytes, expected at most {MAX_ENDPOINT}",
            e.len()
        )));
    }
    Ok(e.to_string())
}

/// Runs a holder subcommand.
pub async fn run(cmd: HolderCmd, settings: &Settings, out: Printer) -> Result<()> {
    match cmd {
        HolderCmd::Register(a) => {
            let endpoint = endpoint(&a.endpoint)?;
            let service_key = units::address(&a.service_key, "service key")?;
            let signer = keys::load(settings)?;
            let holder = signer.address();
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let tx = chain::send(
                &chain,
                chain
                    .records(&d)
                    .registerHolder(endpoint.clone(), service_key),
            )
            .await?;
            out.result(
                "holder register",
                json!({"holder": holder, "endpoint": endpoint, "serviceKey": service_key, "tx": tx}),
                &format!(
                    "registered the gatekeeper of {holder}\n  endpoint    {endpoint}\n  service key {service_key}\n  tx {} (block {})",
                    tx.tx_hash, tx.block_number
                ),
            );
        }
        HolderCmd::Show(a) => {
            let holder = super::address_or_own(a.holder.as_deref(), "holder", settings)?;
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let g = registered(&chain, &d, holder).await?;
            out.result(
                "holder show",
                json!({"holder": holder, "endpoint": g.endpoint, "serviceKey": g.serviceKey}),
                &format!(
                    "gatekeeper of {holder}\n  endpoint    {}\n  service key {}",
                    g.endpoint, g.serviceKey
                ),
            );
        }
    }
    Ok(())
}

/// The gatekeeper `holder` registered; a holder that registered none is a one-line error.
pub async fn registered(
    chain: &Chain,
    d: &crate::chain::Deployment,
    holder: alloy::primitives::Address,
) -> Result<medrec_bindings::record_registry::IRecordRegistry::Gatekeeper> {
    let g = chain
        .records(d)
        .gatekeeperOf(holder)
        .call()
        .await
        .map_err(|e| chain.err(e))?;
    if g.endpoint.is_empty() {
        return Err(CliError::input(format!(
            "the holder {holder} has registered no gatekeeper on chain (it runs: medrec holder register)"
        )));
    }
    Ok(g)
}
