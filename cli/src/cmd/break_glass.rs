//! `medrec break-glass`: emergency access by a credentialed provider, always visible to the
//! patient; the operator sets its cap.

use crate::chain::{self, Chain};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::primitives::{aliases::U40, keccak256};
use clap::{Args, Subcommand};
use serde_json::json;

/// Break-glass subcommands.
#[derive(Debug, Subcommand)]
pub enum BreakGlassCmd {
    /// Provider: open emergency access to all of a patient's categories
    Open(OpenArgs),
    /// Provider or patient: close emergency access early
    Close(CloseArgs),
    /// Show a provider's emergency access to a patient
    Show(ShowArgs),
    /// Operator: set the longest emergency window (governance role)
    SetCap(CapArgs),
}

/// `break-glass open`.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The patient
    pub patient: String,
    /// Why (hashed; only the hash goes on chain)
    #[arg(long)]
    pub reason: String,
    /// How long, at most the cap
    #[arg(long = "for", default_value = "4h")]
    pub for_: String,
}

/// `break-glass close`.
#[derive(Debug, Args)]
pub struct CloseArgs {
    /// The patient
    pub patient: String,
    /// The provider [default: your account]
    #[arg(long)]
    pub provider: Option<String>,
}

/// `break-glass show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The patient
    pub patient: String,
    /// The provider
    #[arg(long)]
    pub provider: String,
}

/// `break-glass set-cap`.
#[derive(Debug, Args)]
pub struct CapArgs {
    /// The longest window, e.g. 24h (at most 7d)
    pub cap: String,
}

/// Runs a break-glass subcommand.
pub async fn run(cmd: BreakGlassCmd, settings: &Settings, out: Printer) -> Result<()> {
    match cmd {
        BreakGlassCmd::Open(a) => {
            let patient = units::address(&a.patient, "patient")?;
            let secs = units::duration(&a.for_)?;
            if a.reason.trim().is_empty() {
                return Err(CliError::input("--reason is empty"));
            }
            let reason = keccak256(a.reason.as_bytes());
            let signer = keys::load(settings)?;
            let provider = signer.address();
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let consent = chain.consent(&d);
            let call = consent.openEmergencyAccess(patient, reason, units::to_u40(secs, "--for")?);
            let tx = chain::send(&chain, call).await?;
            out.result(
                "break-glass open",
                json!({"patient": patient, "provider": provider, "reasonHash": reason, "seconds": secs, "tx": tx}),
                &format!(
                    "break-glass: {provider} may read all of {patient} for {secs} s; the patient sees it (tx {})",
                    tx.tx_hash
                ),
            );
        }
        BreakGlassCmd::Close(a) => {
            let patient = units::address(&a.patient, "patient")?;
            let provider_arg = a
                .provider
                .as_deref()
                .map(|p| units::address(p, "provider"))
                .transpose()?;
            let signer = keys::load(settings)?;
            let provider = provider_arg.unwrap_or(signer.address());
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let tx = chain::send(
                &chain,
                chain.consent(&d).closeEmergencyAccess(patient, provider),
            )
            .await?;
            out.result(
                "break-glass close",
                json!({"patient": patient, "provider": provider, "tx": tx}),
                &format!(
                    "closed the emergency access of {provider} to {patient} (tx {})",
                    tx.tx_hash
                ),
            );
        }
        BreakGlassCmd::Show(a) => {
            let patient = units::address(&a.patient, "patient")?;
            let provider = units::address(&a.provider, "provider")?;
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let e = chain
                .consent(&d)
                .emergencyAccessOf(patient, provider)
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            let now = chain.now().await?;
            let opened: u64 = e.openedAt.to();
            let until: u64 = e.expiresAt.to();
            let open = now < until;
            let human = if opened == 0 {
                format!("no emergency access of {provider} to {patient}")
            } else {
                format!(
                    "emergency access of {provider} to {patient}: {}, opened {}, until {}",
                    if open { "open" } else { "closed" },
                    units::format_time(opened),
                    units::format_time(until)
                )
            };
            out.result(
                "break-glass show",
                json!({"patient": patient, "provider": provider, "openedAt": opened, "expiresAt": until, "open": open}),
                &human,
            );
        }
        BreakGlassCmd::SetCap(a) => {
            let secs = units::duration(&a.cap)?;
            let signer = keys::load(settings)?;
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let cap = U40::from(secs.min(1 << 39));
            let tx = chain::send(&chain, chain.consent(&d).setEmergencyCap(cap)).await?;
            out.result(
                "break-glass set-cap",
                json!({"cap": secs, "tx": tx}),
                &format!("break-glass cap set to {secs} s (tx {})", tx.tx_hash),
            );
        }
    }
    Ok(())
}
