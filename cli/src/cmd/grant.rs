//! `medrec grant`, `revoke`, `relay`, `show-grant`, `check`: consent.

use crate::chain::{self, Chain, Deployment};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::signed::{GrantMessage, RevokeMessage};
use crate::units;
use alloy::primitives::{Address, U256};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

/// `grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The provider that gets access
    pub grantee: String,
    /// Categories, comma-separated (labs,notes,...; or numbers 0-63)
    #[arg(long, short = 'c')]
    pub categories: String,
    /// Purpose of use (treatment, payment, operations, research, patient-request,
    /// care-coordination, public-health)
    #[arg(long, default_value = "treatment")]
    pub purpose: String,
    /// How long the grant lasts from its start, e.g. 90d
    #[arg(long = "for", conflicts_with = "until")]
    pub for_: Option<String>,
    /// Until when the grant lasts (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, UTC)
    #[arg(long)]
    pub until: Option<String>,
    /// When the grant starts [default: now]
    #[arg(long)]
    pub from: Option<String>,
    /// The patient, when acting as their guardian [default: your account]
    #[arg(long)]
    pub patient: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sign: SignOnly,
}

/// Options to sign offline instead of sending.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sign offline (EIP-712) for someone else to relay")]
pub struct SignOnly {
    /// Sign only: print (or write) the signed message instead of sending a transaction
    #[arg(long)]
    pub sign_only: bool,
    /// How long the signature stays valid
    #[arg(long, default_value = "1d", requires = "sign_only")]
    pub deadline: String,
    /// Your next nonce (with --chain-id, signs with no node at all) [default: read from chain]
    #[arg(long, requires = "sign_only")]
    pub nonce: Option<u64>,
    /// Write the signed message to this file instead of stdout
    #[arg(long, requires = "sign_only")]
    pub out: Option<PathBuf>,
}

/// `revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The provider whose access ends
    pub grantee: String,
    /// The patient, when acting as their guardian [default: your account]
    #[arg(long)]
    pub patient: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sign: SignOnly,
}

/// `relay`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// The signed message written by `grant --sign-only` or `revoke --sign-only` ('-': stdin)
    pub file: PathBuf,
}

/// `show-grant`.
#[derive(Debug, Args)]
pub struct ShowGrantArgs {
    /// The grantee
    pub grantee: String,
    /// The patient [default: your account]
    #[arg(long)]
    pub patient: Option<String>,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The grantee asking to read
    #[arg(long)]
    pub grantee: String,
    /// The category to read
    #[arg(long, short = 'c')]
    pub category: String,
    /// The patient
    #[arg(long)]
    pub patient: String,
}

pub use crate::signed::SignedMessage;

/// The chain id and deployment for signing: offline when `--nonce` and `--chain-id` are given.
async fn signing_context(
    settings: &Settings,
    signer: Address,
    nonce: Option<u64>,
) -> Result<(u64, Deployment, U256, u64)> {
    let now_local = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    if let (Some(n), Some(chain_id)) = (nonce, settings.chain_id) {
        let d = chain::read_deployment(&settings.deployments, chain_id)?;
        return Ok((chain_id, d, U256::from(n), now_local));
    }
    let chain = Chain::connect(settings).await?;
    let d = chain.deployment(settings).await?;
    let nonce = match nonce {
        Some(n) => U256::from(n),
        None => chain
            .consent(&d)
            .nonces(signer)
            .call()
            .await
            .map_err(|e| chain.err(e))?,
    };
    let now = chain.now().await?;
    Ok((chain.chain_id, d, nonce, now))
}

fn emit_signed(
    out: Printer,
    msg: &SignedMessage,
    file: Option<&PathBuf>,
    what: &str,
) -> Result<()> {
    let text = msg.to_text()?;
    match file {
        Some(path) => {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text + "\n")
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| CliError::Io(format!("cannot write {}: {e}", path.display())))?;
            out.result(
                what,
                json!({"signed": msg, "file": path}),
                &format!("signed; relay it with: medrec relay {}", path.display()),
            );
        }
        None => out.result(what, json!({"signed": msg}), &text),
    }
    Ok(())
}

/// Runs `grant`.
pub async fn run_grant(a: GrantArgs, settings: &Settings, out: Printer) -> Result<()> {
    let grantee = units::address(&a.grantee, "grantee")?;
    let categories = units::categories(&a.categories)?;
    let purpose = units::purpose(&a.purpose)?;
    let from = a.from.as_deref().map(units::date).transpose()?;
    let patient_arg = a
        .patient
        .as_deref()
        .map(|p| units::address(p, "patient"))
        .transpose()?;
    if a.for_.is_none() && a.until.is_none() {
        return Err(CliError::input(
            "give --for DURATION (e.g. 90d) or --until DATE",
        ));
    }
    let signer = keys::load(settings)?;
    let me = signer.address();
    let patient = patient_arg.unwrap_or(me);

    if a.sign.sign_only {
        let deadline_in = units::duration(&a.sign.deadline)?;
        let (chain_id, d, nonce, now) = signing_context(settings, me, a.sign.nonce).await?;
        let start = from.unwrap_or(now);
        let end = super::window_end(a.for_.as_deref(), a.until.as_deref(), start)?;
        // The same range checks as a sent grant.
        units::to_u40(from.unwrap_or(0), "--from")?;
        units::to_u40(end, "--until")?;
        let message = GrantMessage {
            patient,
            grantee,
            categories,
            purpose,
            not_before: from.unwrap_or(0),
            expires_at: end,
            signer: me,
            nonce,
            deadline: U256::from(now + deadline_in),
        };
        let msg = SignedMessage::grant(&signer, chain_id, d.consent_registry, message).await?;
        return emit_signed(out, &msg, a.sign.out.as_ref(), "grant");
    }

    let chain = Chain::connect_signer(settings, signer).await?;
    let d = chain.deployment(settings).await?;
    let now = chain.now().await?;
    let start = from.unwrap_or(now);
    let end = super::window_end(a.for_.as_deref(), a.until.as_deref(), start)?;
    let consent = chain.consent(&d);
    let call = consent.grant(
        patient,
        grantee,
        categories,
        purpose,
        units::to_u40(from.unwrap_or(0), "--from")?,
        units::to_u40(end, "--until")?,
    );
    let tx = chain::send(&chain, call).await?;
    let names = medrec_bindings::category_names(categories);
    out.result(
        "grant",
        json!({"patient": patient, "grantee": grantee, "categories": names, "categoryMask": categories,
               "purpose": medrec_bindings::purpose_name(purpose), "notBefore": start, "expiresAt": end, "tx": tx}),
        &format!(
            "granted {grantee} access to {} of {patient} for {} from {} until {} (tx {}, block {})",
            names.join(","),
            medrec_bindings::purpose_name(purpose),
            units::format_time(start),
            units::format_time(end),
            tx.tx_hash,
            tx.block_number
        ),
    );
    Ok(())
}

/// Runs `revoke`.
pub async fn run_revoke(a: RevokeArgs, settings: &Settings, out: Printer) -> Result<()> {
    let grantee = units::address(&a.grantee, "grantee")?;
    let patient_arg = a
        .patient
        .as_deref()
        .map(|p| units::address(p, "patient"))
        .transpose()?;
    let signer = keys::load(settings)?;
    let me = signer.address();
    let patient = patient_arg.unwrap_or(me);

    if a.sign.sign_only {
        let deadline_in = units::duration(&a.sign.deadline)?;
        let (chain_id, d, nonce, now) = signing_context(settings, me, a.sign.nonce).await?;
        let message = RevokeMessage {
            patient,
            grantee,
            signer: me,
            nonce,
            deadline: U256::from(now + deadline_in),
        };
        let msg = SignedMessage::revoke(&signer, chain_id, d.consent_registry, message).await?;
        return emit_signed(out, &msg, a.sign.out.as_ref(), "revoke");
    }

    let chain = Chain::connect_signer(settings, signer).await?;
    let d = chain.deployment(settings).await?;
    let tx = chain::send(&chain, chain.consent(&d).revoke(patient, grantee)).await?;
    out.result(
        "revoke",
        json!({"patient": patient, "grantee": grantee, "tx": tx}),
        &format!(
            "revoked the access of {grantee} to {patient} from block {} (tx {})",
            tx.block_number, tx.tx_hash
        ),
    );
    Ok(())
}

/// Runs `relay`.
pub async fn run_relay(a: RelayArgs, settings: &Settings, out: Printer) -> Result<()> {
    let text = if a.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::Io(format!("cannot read stdin: {e}")))?
    } else {
        std::fs::read_to_string(&a.file)
            .map_err(|e| CliError::Io(format!("cannot read {}: {e}", a.file.display())))?
    };
    let msg = SignedMessage::parse(&text)?;
    let signer = keys::load(settings)?;
    let chain = Chain::connect_signer(settings, signer).await?;
    let d = chain.deployment(settings).await?;
    let (chain_id, contract) = msg.domain();
    if chain_id != chain.chain_id || contract != d.consent_registry {
        return Err(CliError::input(format!(
            "the message was signed for chain {chain_id}, contract {contract}; this is chain {}, contract {}",
            chain.chain_id, d.consent_registry
        )));
    }
    let consent = chain.consent(&d);
    match msg {
        SignedMessage::Grant(s) => {
            let (m, signature) = (s.message.to_eip712()?, s.signature);
            let call = consent.grantBySig(
                m.patient,
                m.grantee,
                m.categories,
                m.purpose,
                m.notBefore,
                m.expiresAt,
                m.signer,
                m.nonce,
                m.deadline,
                signature,
            );
            let tx = chain::send(&chain, call).await?;
            out.result(
                "relay",
                json!({"type": "grant", "patient": m.patient, "grantee": m.grantee, "signer": m.signer, "tx": tx}),
                &format!(
                    "relayed the grant of {} to {} signed by {} (tx {})",
                    m.patient, m.grantee, m.signer, tx.tx_hash
                ),
            );
        }
        SignedMessage::Revoke(s) => {
            let (m, signature) = (s.message.to_eip712(), s.signature);
            let call = consent.revokeBySig(
                m.patient, m.grantee, m.signer, m.nonce, m.deadline, signature,
            );
            let tx = chain::send(&chain, call).await?;
            out.result(
                "relay",
                json!({"type": "revoke", "patient": m.patient, "grantee": m.grantee, "signer": m.signer, "tx": tx}),
                &format!(
                    "relayed the revocation of {}'s access to {} signed by {} (tx {})",
                    m.grantee, m.patient, m.signer, tx.tx_hash
                ),
            );
        }
    }
    Ok(())
}

/// Runs `show-grant`.
pub async fn run_show(a: ShowGrantArgs, settings: &Settings, out: Printer) -> Result<()> {
    let grantee = units::address(&a.grantee, "grantee")?;
    let patient = super::address_or_own(a.patient.as_deref(), "patient", settings)?;
    let chain = Chain::connect(settings).await?;
    let d = chain.deployment(settings).await?;
    let consent = chain.consent(&d);
    let g = consent
        .grantOf(patient, grantee)
        .call()
        .await
        .map_err(|e| chain.err(e))?;
    let readable = consent
        .readableCategories(grantee, patient)
        .call()
        .await
        .map_err(|e| chain.err(e))?;
    let e = consent
        .emergencyAccessOf(patient, grantee)
        .call()
        .await
        .map_err(|e| chain.err(e))?;
    let now = chain.now().await?;
    let nb: u64 = g.notBefore.to();
    let exp: u64 = g.expiresAt.to();
    let emergency_until: u64 = e.expiresAt.to();
    let state = if g.categories == 0 {
        "none"
    } else if now < nb {
        "not yet started"
    } else if now >= exp {
        "expired"
    } else {
        "live"
    };
    let names = medrec_bindings::category_names(g.categories);
    let mut human = if g.categories == 0 {
        format!("no grant of {patient} to {grantee}")
    } else {
        format!(
            "grant of {patient} to {grantee}: {state}\n  categories {}\n  purpose    {}\n  from       {}\n  until      {}",
            names.join(","),
            medrec_bindings::purpose_name(g.purpose),
            units::format_time(nb),
            units::format_time(exp)
        )
    };
    let emergency_live = now < emergency_until;
    if emergency_live {
        human.push_str(&format!(
            "\n  break-glass open until {}",
            units::format_time(emergency_until)
        ));
    }
    human.push_str(&format!(
        "\n  readable now: {}",
        if readable == 0 {
            "nothing".to_string()
        } else if readable == u64::MAX {
            "everything (break-glass)".to_string()
        } else {
            medrec_bindings::category_names(readable).join(",")
        }
    ));
    out.result(
        "show-grant",
        json!({"patient": patient, "grantee": grantee, "state": state, "categories": names,
               "categoryMask": g.categories, "purpose": medrec_bindings::purpose_name(g.purpose),
               "notBefore": nb, "expiresAt": exp, "breakGlassUntil": if emergency_live { Some(emergency_until) } else { None },
               "readableMask": readable, "asOf": now}),
        &human,
    );
    Ok(())
}

/// Runs `check`.
pub async fn run_check(a: CheckArgs, settings: &Settings, out: Printer) -> Result<()> {
    let grantee = units::address(&a.grantee, "grantee")?;
    let patient = units::address(&a.patient, "patient")?;
    let category = units::category(&a.category)?;
    let chain = Chain::connect(settings).await?;
    let d = chain.deployment(settings).await?;
    let allowed = chain
        .consent(&d)
        .canRead(grantee, patient, category)
        .call()
        .await
        .map_err(|e| chain.err(e))?;
    let name = medrec_bindings::category_name(category);
    out.result(
        "check",
        json!({"grantee": grantee, "patient": patient, "category": name, "allowed": allowed}),
        &format!(
            "{}: {grantee} {} read {name} of {patient} now",
            if allowed { "yes" } else { "no" },
            if allowed { "may" } else { "may not" }
        ),
    );
    Ok(())
}
