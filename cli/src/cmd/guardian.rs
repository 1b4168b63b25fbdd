//! `medrec guardian`: a patient names guardians who may grant and revoke within a scope.

use crate::chain::{self, Chain};
use crate::error::Result;
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use clap::{Args, Subcommand};
use serde_json::json;

/// Guardian subcommands.
#[derive(Debug, Subcommand)]
pub enum GuardianCmd {
    /// Name (or re-name) a guardian over some categories for a period
    Add(AddArgs),
    /// Remove a guardian
    Remove(GuardianArg),
    /// Show a guardian's mandate
    Show(ShowArgs),
}

/// `guardian add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The guardian's account
    pub guardian: String,
    /// Categories the guardian may act on, comma-separated
    #[arg(long, short = 'c')]
    pub categories: String,
    /// How long the mandate lasts, e.g. 5y
    #[arg(long = "for", conflicts_with = "until")]
    pub for_: Option<String>,
    /// Until when the mandate lasts (YYYY-MM-DD)
    #[arg(long)]
    pub until: Option<String>,
    /// When the mandate starts [default: now]
    #[arg(long)]
    pub from: Option<String>,
}

/// A guardian argument.
#[derive(Debug, Args)]
pub struct GuardianArg {
    /// The guardian's account
    pub guardian: String,
}

/// `guardian show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The guardian's account
    pub guardian: String,
    /// The patient [default: your account]
    #[arg(long)]
    pub patient: Option<String>,
}

/// Runs a guardian subcommand.
pub async fn run(cmd: GuardianCmd, settings: &Settings, out: Printer) -> Result<()> {
    match cmd {
        GuardianCmd::Add(a) => {
            let guardian = units::address(&a.guardian, "guardian")?;
            let scope = units::categories(&a.categories)?;
            let from = a.from.as_deref().map(units::date).transpose()?;
            if a.for_.is_none() && a.until.is_none() {
                return Err(crate::error::CliError::input(
                    "give --for DURATION (e.g. 5y) or --until DATE",
                ));
            }
            let signer = keys::load(settings)?;
            let patient = signer.address();
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            // This machine's clock, not the last block's time (see `grant`).
            let (start, end) = super::consent_window(
                from,
                a.for_.as_deref(),
                a.until.as_deref(),
                medrec_protocol::clock::now_secs(),
            )?;
            let consent = chain.consent(&d);
            let call = consent.setGuardian(
                guardian,
                scope,
                units::to_u40(from.unwrap_or(0), "--from")?,
                units::to_u40(end, "--until")?,
            );
            let tx = chain::send(&chain, call).await?;
            let names = medrec_bindings::category_names(scope);
            out.result(
                "guardian add",
                json!({"patient": patient, "guardian": guardian, "scope": names, "notBefore": start,
                       "expiresAt": end, "tx": tx}),
                &format!(
                    "{guardian} is guardian of {patient} for {} until {} (tx {})",
                    names.join(","),
                    units::format_time(end),
                    tx.tx_hash
                ),
            );
        }
        GuardianCmd::Remove(a) => {
            let guardian = units::address(&a.guardian, "guardian")?;
            let signer = keys::load(settings)?;
            let patient = signer.address();
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let tx = chain::send(&chain, chain.consent(&d).removeGuardian(guardian)).await?;
            out.result(
                "guardian remove",
                json!({"patient": patient, "guardian": guardian, "tx": tx}),
                &format!(
                    "{guardian} is no longer guardian of {patient} (tx {})",
                    tx.tx_hash
                ),
            );
        }
        GuardianCmd::Show(a) => {
            let guardian = units::address(&a.guardian, "guardian")?;
            let patient = super::address_or_own(a.patient.as_deref(), "patient", settings)?;
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let g = chain
                .consent(&d)
                .guardianOf(patient, guardian)
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            let now = chain.now().await?;
            let nb: u64 = g.notBefore.to();
            let exp: u64 = g.expiresAt.to();
            let live = g.scope != 0 && now >= nb && now < exp;
            let names = medrec_bindings::category_names(g.scope);
            let human = if g.scope == 0 {
                format!("{guardian} is not a guardian of {patient}")
            } else {
                format!(
                    "{guardian} guardian of {patient}: {}, {} from {} until {}",
                    if live { "live" } else { "not live" },
                    names.join(","),
                    units::format_time(nb),
                    units::format_time(exp)
                )
            };
            out.result(
                "guardian show",
                json!({"patient": patient, "guardian": guardian, "scope": names, "notBefore": nb,
                       "expiresAt": exp, "live": live}),
                &human,
            );
        }
    }
    Ok(())
}
