//! `medrec participant`: the operator credentials providers and researchers.

use crate::chain::{self, Chain};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::primitives::keccak256;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

/// Participant subcommands.
#[derive(Debug, Subcommand)]
pub enum ParticipantCmd {
    /// Credential an account as a provider or researcher (governance role)
    Add(AddArgs),
    /// Revoke an account's credential (governance role)
    Revoke(AddressArg),
    /// Show an account's credential
    Show(AddressArg),
}

/// What a credential makes its holder.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// A provider: may hold grants, anchor pointers, open break-glass
    Provider,
    /// A researcher: may run studies
    Researcher,
}

/// `participant add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The account to credential
    pub address: String,
    /// The role it gets
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Reference of the off-chain credential document (hashed; only the hash goes on chain)
    #[arg(long = "ref")]
    pub reference: String,
    /// How long the credential lasts, e.g. 365d
    #[arg(long = "for", conflicts_with = "until")]
    pub for_: Option<String>,
    /// Until when the credential lasts (YYYY-MM-DD)
    #[arg(long)]
    pub until: Option<String>,
}

/// An account argument.
#[derive(Debug, Args)]
pub struct AddressArg {
    /// The account
    pub address: String,
}

fn role_name(r: u8) -> &'static str {
    match r {
        1 => "provider",
        2 => "researcher",
        _ => "none",
    }
}

/// Runs a participant subcommand.
pub async fn run(cmd: ParticipantCmd, settings: &Settings, out: Printer) -> Result<()> {
    match cmd {
        ParticipantCmd::Add(a) => {
            let account = units::address(&a.address, "participant")?;
            if a.reference.trim().is_empty() {
                return Err(CliError::input("--ref is empty"));
            }
            let signer = keys::load(settings)?;
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let now = chain.now().await?;
            let until = super::window_end(a.for_.as_deref(), a.until.as_deref(), now)?;
            let role = match a.role {
                RoleArg::Provider => 1u8,
                RoleArg::Researcher => 2u8,
            };
            let reference = keccak256(a.reference.as_bytes());
            let participants = chain.participants(&d);
            let call = participants.issueCredential(
                account,
                role,
                reference,
                units::to_u40(until, "--until")?,
            );
            let tx = chain::send(&chain, call).await?;
            out.result(
                "participant add",
                json!({"account": account, "role": role_name(role), "ref": reference,
                       "expiresAt": until, "tx": tx}),
                &format!(
                    "credentialed {account} as {} until {} (tx {})",
                    role_name(role),
                    units::format_time(until),
                    tx.tx_hash
                ),
            );
        }
        ParticipantCmd::Revoke(a) => {
            let account = units::address(&a.address, "participant")?;
            let signer = keys::load(settings)?;
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let tx = chain::send(&chain, chain.participants(&d).revokeCredential(account)).await?;
            out.result(
                "participant revoke",
                json!({"account": account, "tx": tx}),
                &format!("revoked the credential of {account} (tx {})", tx.tx_hash),
            );
        }
        ParticipantCmd::Show(a) => {
            let account = units::address(&a.address, "participant")?;
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let c = chain
                .participants(&d)
                .credentialOf(account)
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            let now = chain.now().await?;
            let expires: u64 = c.expiresAt.to();
            let live = c.role != 0 && !c.revoked && now < expires;
            let role = role_name(c.role);
            let human = if c.role == 0 {
                format!("{account} has no credential")
            } else {
                format!(
                    "{account}: {role}, {}, expires {}{}",
                    if live { "live" } else { "not live" },
                    units::format_time(expires),
                    if c.revoked { " (revoked)" } else { "" }
                )
            };
            out.result(
                "participant show",
                json!({"account": account, "role": role, "ref": c.r#ref, "issuedAt": c.issuedAt.to::<u64>(),
                       "expiresAt": expires, "revoked": c.revoked, "live": live}),
                &human,
            );
        }
    }
    Ok(())
}
