//! `medrec deploy`: deploy the four registries and write the deployments file.

use crate::chain::{self, Chain};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use clap::Args;
use serde_json::json;

/// `deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Governance account [default: the deploying account]
    #[arg(long)]
    pub admin: Option<String>,
    /// Longest break-glass window
    #[arg(long, default_value = "24h")]
    pub emergency_cap: String,
    /// Deploy again even if the deployments file names live contracts
    #[arg(long)]
    pub force: bool,
}

/// Runs `deploy`.
pub async fn run(a: DeployArgs, settings: &Settings, out: Printer) -> Result<()> {
    let cap = units::duration(&a.emergency_cap)?;
    if cap > 7 * 86_400 {
        return Err(CliError::input("--emergency-cap is at most 7d"));
    }
    let admin_arg = a
        .admin
        .as_deref()
        .map(|s| units::address(s, "admin"))
        .transpose()?;
    let signer = keys::load(settings)?;
    let deployer = signer.address();
    let chain = Chain::connect_signer(settings, signer).await?;
    if !a.force
        && let Ok(d) = chain.deployment(settings).await
    {
        return Err(CliError::Deployment(format!(
            "already deployed on chain {} (record registry {}); use --force to deploy again",
            chain.chain_id, d.record_registry
        )));
    }

    let admin = admin_arg.unwrap_or(deployer);
    out.progress("deploying the participant, consent, record and study registries...");
    let d = medrec_bindings::deployment::deploy(&chain.provider, admin, cap)
        .await
        .map_err(|e| chain.err(e))?;
    let file = chain::write_deployment(&settings.deployments, &d)?;
    out.result(
        "deploy",
        json!({"deployment": d, "file": file}),
        &format!(
            "deployed on chain {}\n  participant registry {}\n  consent registry     {}\n  record registry      {}\n  study registry       {}\n  admin                {admin}\nwritten to {}",
            d.chain_id,
            d.participant_registry,
            d.consent_registry,
            d.record_registry,
            d.study_registry.unwrap_or_default(),
            file.display()
        ),
    );
    Ok(())
}
