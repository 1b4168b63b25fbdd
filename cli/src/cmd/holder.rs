//! `medrec holder`: a holder registers its gatekeeper on chain, the endpoint requesters read
//! its records at and the service key that anchors its access log, and anyone shows it.

use crate::chain::{self, Chain};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::primitives::Address;
use alloy::transports::http::reqwest;
use clap::{Args, Subcommand};
use medrec_protocol::participant::Role;
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
    /// Your gatekeeper's base URL, http(s) without user info, query or fragment: requesters
    /// read your records there and nowhere else
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

/// Why `s` is not an endpoint a requester may send a signed request to, or its normal form
/// (the parsed URL without a trailing slash). Only http(s) with a host, and no user info,
/// query or fragment: a gatekeeper's base URL needs none of them, and each lets a registration
/// send a request somewhere other than it shows, or carry something into it.
pub(crate) fn checked_endpoint(s: &str) -> std::result::Result<String, String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains white space or control characters".into());
    }
    let url: reqwest::Url = s.parse().map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("not an http(s) URL with a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it carries user info".into());
    }
    if url.query().is_some() {
        return Err("it carries a query".into());
    }
    if url.fragment().is_some() {
        return Err("it carries a fragment".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// The endpoint to register: checked as requesters check it, without a trailing slash.
fn endpoint(s: &str) -> Result<String> {
    let e = s.trim().trim_end_matches('/');
    let e = checked_endpoint(e)
        .map_err(|why| CliError::input(format!("bad --endpoint {s:?}: {why}")))?;
    if e.len() > MAX_ENDPOINT {
        return Err(CliError::input(format!(
            "bad --endpoint: {} bytes, expected at most {MAX_ENDPOINT}",
            e.len()
        )));
    }
    Ok(e)
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
            // A registration may hold any string: one medrec would not send to is shown escaped,
            // with the reason.
            let (shown, refused) = match checked_endpoint(&g.endpoint) {
                Ok(_) => (g.endpoint.clone(), None),
                Err(why) => (format!("{:?}", g.endpoint), Some(why)),
            };
            let note = refused.as_ref().map_or(String::new(), |why| {
                format!("\n  medrec sends no request there: {why}")
            });
            out.result(
                "holder show",
                json!({"holder": holder, "endpoint": g.endpoint, "serviceKey": g.serviceKey,
                       "endpointRefused": refused}),
                &format!(
                    "gatekeeper of {holder}\n  endpoint    {shown}\n  service key {}{note}",
                    g.serviceKey
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
    holder: Address,
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

/// The base URL of `holder`'s gatekeeper that `get` and `access-log` send their signed
/// requests to: the endpoint it registered on chain and nothing else, refused (exit 2) when
/// there is none or when it is not a plain http(s) URL (the registry checks only its length).
pub async fn gatekeeper_url(
    chain: &Chain,
    d: &crate::chain::Deployment,
    holder: Address,
) -> Result<String> {
    let g = registered(chain, d, holder).await?;
    checked_endpoint(&g.endpoint).map_err(|why| {
        CliError::input(format!(
            "the holder {holder} registered the endpoint {:?}, to which medrec sends no request: {why}",
            g.endpoint
        ))
    })
}

/// As [`gatekeeper_url`], for a holder that must also be a credentialed provider now (a
/// revoked holder's registration stays on chain, and so does any stranger's): refused (exit 2)
/// before any request is sent to it.
pub async fn credentialed_gatekeeper_url(
    chain: &Chain,
    d: &crate::chain::Deployment,
    holder: Address,
) -> Result<String> {
    let credentialed = chain
        .participants(d)
        .isCredentialed(holder, Role::Provider.to_solidity())
        .call()
        .await
        .map_err(|e| chain.err(e))?;
    if !credentialed {
        return Err(CliError::input(format!(
            "the holder {holder} is not a credentialed provider now: medrec sends it no request"
        )));
    }
    gatekeeper_url(chain, d, holder).await
}
