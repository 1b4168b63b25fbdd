//! `medrec participant`: the operator credentials providers and researchers.
//!
//! A credential's reference (a licence number, an IRB approval) goes on chain only as a salted
//! commitment ([`medrec_protocol::commitment`]); `add` prints the salt (and writes it with
//! `--salt-out`) for the credentialed party, and `verify-ref` checks a reference against it.

use crate::chain::{self, Chain};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use clap::{Args, Subcommand, ValueEnum};
use medrec_protocol::commitment;
use serde_json::json;
use std::path::PathBuf;

/// Participant subcommands.
#[derive(Debug, Subcommand)]
pub enum ParticipantCmd {
    /// Credential an account as a provider or researcher (governance role)
    Add(AddArgs),
    /// Revoke an account's credential (governance role)
    Revoke(AddressArg),
    /// Show an account's credential
    Show(AddressArg),
    /// Check a credential's reference and salt against its commitment on chain
    VerifyRef(VerifyRefArgs),
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
    /// Reference of the off-chain credential document (only a salted commitment goes on chain;
    /// the salt is printed, for the credentialed party to keep)
    #[arg(long = "ref")]
    pub reference: String,
    /// Also write the reference and its salt to this file (JSON, owner-only), before the
    /// transaction is sent
    #[arg(long)]
    pub salt_out: Option<PathBuf>,
    /// How long the credential lasts, e.g. 365d
    #[arg(long = "for", conflicts_with = "until")]
    pub for_: Option<String>,
    /// Until when the credential lasts (YYYY-MM-DD)
    #[arg(long)]
    pub until: Option<String>,
}

/// `participant verify-ref`.
#[derive(Debug, Args)]
pub struct VerifyRefArgs {
    /// The credentialed account
    pub address: String,
    /// The file `add --salt-out` wrote
    #[arg(long, conflicts_with_all = ["reference", "salt"])]
    pub file: Option<PathBuf>,
    /// The reference
    #[arg(long = "ref", requires = "salt")]
    pub reference: Option<String>,
    /// Its salt (0x and 64 hex digits)
    #[arg(long, requires = "reference")]
    pub salt: Option<String>,
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
            let (salt, reference) = commitment::commit(&a.reference);
            let file = json!({"kind": "medrec credential reference", "version": 1,
                              "account": account, "ref": a.reference, "salt": salt,
                              "commitment": reference});
            let signer = keys::load(settings)?;
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let now = chain.now().await?;
            let until = super::window_end(a.for_.as_deref(), a.until.as_deref(), now)?;
            let role = match a.role {
                RoleArg::Provider => 1u8,
                RoleArg::Researcher => 2u8,
            };
            // The salt is the only way to open the commitment: on disk before it is on chain.
            if let Some(path) = &a.salt_out {
                super::break_glass::write_private_json(path, &file)?;
            }
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
                       "salt": salt, "saltFile": a.salt_out, "expiresAt": until, "tx": tx}),
                &format!(
                    "credentialed {account} as {} until {} (tx {})\nreference salt {salt}: give it \
                     with the reference to {account}{}",
                    role_name(role),
                    units::format_time(until),
                    tx.tx_hash,
                    a.salt_out
                        .as_ref()
                        .map_or_else(String::new, |p| format!(" (also in {})", p.display()))
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
        ParticipantCmd::VerifyRef(a) => {
            let account = units::address(&a.address, "participant")?;
            let (reference, salt) = match (&a.file, &a.reference, &a.salt) {
                (Some(path), _, _) => {
                    let doc = super::break_glass::read_json(path)?;
                    let salt = super::break_glass::field(&doc, "salt", path)?;
                    (
                        super::break_glass::field(&doc, "ref", path)?.to_string(),
                        units::b256(salt, "salt")?,
                    )
                }
                (None, Some(r), Some(s)) => (r.clone(), units::b256(s, "salt")?),
                _ => {
                    return Err(CliError::input(
                        "give --file FILE, or --ref TEXT and --salt 0x...",
                    ));
                }
            };
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let c = chain
                .participants(&d)
                .credentialOf(account)
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            if c.role == 0 {
                return Err(CliError::input(format!("{account} has no credential")));
            }
            if !commitment::verify(c.r#ref, salt, &reference) {
                return Err(CliError::Integrity(format!(
                    "the reference and salt do not open the credential commitment {} of {account}",
                    c.r#ref
                )));
            }
            out.result(
                "participant verify-ref",
                json!({"account": account, "ref": reference, "commitment": c.r#ref, "verified": true}),
                &format!("verified: {account}'s credential was issued for {reference:?}"),
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
