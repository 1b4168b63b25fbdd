//! `medrec grant`, `revoke`, `cancel-signatures`, `relay`, `show-grant`, `check`: consent.

use crate::chain::{self, Chain, Deployment};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::signed::{GrantMessage, RelationshipMessage, Unsigned};
use crate::units;
use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use clap::Args;
use medrec_protocol::clock::now_secs;
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
    /// How long the grant lasts from its start (by this machine's clock), e.g. 90d
    #[arg(long = "for", conflicts_with = "until")]
    pub for_: Option<String>,
    /// Until when the grant lasts (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, UTC)
    #[arg(long)]
    pub until: Option<String>,
    /// When the grant starts [default: now, from the block that includes it]
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
    /// The relationship's signature epoch (with --chain-id, signs with no node at all; the
    /// issue time is then this machine's clock, unchecked: the registries refuse a message
    /// issued more than 5 minutes ahead of the chain) [default: read from the chain, with the
    /// time of the last signed message applied, so that this one comes after it; the issue
    /// time is then this machine's clock, at most the registries' skew ahead of the latest
    /// block]
    #[arg(long, requires = "sign_only")]
    pub epoch: Option<u32>,
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

/// `cancel-signatures`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The grantee whose outstanding signed grants and revocations become void
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
    /// The signed message written by a `--sign-only` command ('-': stdin)
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

/// Whose signature epoch a signed message is ordered in.
pub enum Relationship {
    /// A patient and a grantee (consent registry).
    Consent {
        /// The patient.
        patient: Address,
        /// The grantee.
        grantee: Address,
    },
    /// A study and a study pseudonym (study registry).
    Study {
        /// The study.
        id: U256,
        /// The patient's pseudonym in it.
        pseudonym: Address,
    },
}

/// What a `--sign-only` message is signed with.
pub struct SigningContext {
    /// The chain id of the domain.
    pub chain_id: u64,
    /// The deployment (its registries are the verifying contracts).
    pub deployment: Deployment,
    /// The relationship's epoch.
    pub epoch: u32,
    /// The signer's issue time: this machine's clock, after the last signed message applied
    /// and (online) at most the registries' skew ahead of the latest block.
    pub issued_at: u64,
    /// The signature's deadline.
    pub deadline: U256,
}

/// Reads the epoch and the last signed time of `rel` from the chain, or, with `--epoch` and
/// `--chain-id`, signs offline with this machine's clock. Online, the issue time is never more
/// than the registry's `MAX_SIGNATURE_SKEW` ahead of the latest block, which it would refuse;
/// offline nothing bounds it (a clock that far ahead makes the relay fail, and the signer signs
/// again). A study message is issued at the latest block's time rounded down to the minute
/// (offline: this clock's, rounded) with the one deadline window of every study message.
pub async fn signing_context(
    settings: &Settings,
    sign: &SignOnly,
    rel: Relationship,
) -> Result<SigningContext> {
    let deadline_in = units::duration(&sign.deadline)?;
    let now = now_secs();
    let deadline = U256::from(now + deadline_in);
    let study = matches!(rel, Relationship::Study { .. });
    if study && deadline_in != medrec_protocol::study_tags::STUDY_SIGNATURE_WINDOW {
        // One window for every study message: a deadline of the signer's choosing would tell
        // the pseudonyms of one signer apart from the rest.
        return Err(CliError::input(format!(
            "study messages all have the same deadline, {} seconds after their issue time: --deadline is not taken",
            medrec_protocol::study_tags::STUDY_SIGNATURE_WINDOW
        )));
    }
    if let (Some(epoch), Some(chain_id)) = (sign.epoch, settings.chain_id) {
        let deployment = chain::read_deployment(&settings.deployments, chain_id)?;
        let (issued_at, deadline) = if study {
            // Offline: this machine's clock, rounded as the chain's would be.
            medrec_protocol::study_tags::study_signed_times(now, 0, u64::MAX)
                .map(|(i, d)| (i, U256::from(d)))
                .unwrap_or((now, deadline))
        } else {
            (now, deadline)
        };
        return Ok(SigningContext {
            chain_id,
            deployment,
            epoch,
            issued_at,
            deadline,
        });
    }
    let chain = Chain::connect(settings).await?;
    let deployment = chain.deployment(settings).await?;
    let (epoch, signed_at, skew): (u32, u64, u64) = match rel {
        Relationship::Consent { patient, grantee } => {
            let consent = chain.consent(&deployment);
            let g = consent
                .grantOf(patient, grantee)
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            let skew = consent
                .MAX_SIGNATURE_SKEW()
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            (g.epoch.to(), g.signedAt.to(), skew.to())
        }
        Relationship::Study { id, pseudonym } => {
            let studies = super::study::studies(&chain, &deployment)?;
            let p = studies
                .participationOf(id, pseudonym)
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            let skew = studies
                .MAX_SIGNATURE_SKEW()
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            (p.epoch.to(), p.signedAt.to(), skew.to())
        }
    };
    let latest = chain.now().await?;
    if study {
        // A study message's times are the chain's, not this machine's clock (which would
        // fingerprint the signer across its pseudonyms).
        let (issued_at, deadline) =
            medrec_protocol::study_tags::study_signed_times(latest, signed_at, latest + skew)
                .ok_or_else(|| no_issue_time(signed_at, latest + skew, study))?;
        return Ok(SigningContext {
            chain_id: chain.chain_id,
            deployment,
            epoch: sign.epoch.unwrap_or(epoch),
            issued_at,
            deadline: U256::from(deadline),
        });
    }
    let issued_at = medrec_bindings::bounded_issued_at(now, signed_at, latest + skew)
        .ok_or_else(|| no_issue_time(signed_at, latest + skew, study))?;
    Ok(SigningContext {
        chain_id: chain.chain_id,
        deployment,
        epoch: sign.epoch.unwrap_or(epoch),
        issued_at,
        deadline,
    })
}

/// Why no issue time fits: the relationship's signatures are void for good (its last epoch), or
/// its last signed message is dated after what the chain accepts now.
fn no_issue_time(signed_at: u64, ceiling: u64, study: bool) -> CliError {
    if signed_at >= (1 << 40) - 1 && study {
        // A study pseudonym has no direct path: it can only ever sign.
        CliError::input(
            "this study participation's signatures are void for good (its epoch reached the maximum): it can change no more",
        )
    } else if signed_at >= (1 << 40) - 1 {
        CliError::input(
            "this relationship's signatures are void for good (its epoch reached the maximum): send the change without --sign-only",
        )
    } else {
        CliError::input(format!(
            "the last signed message applied here was issued at {signed_at}, after what the chain accepts now ({ceiling}): try again in {} seconds",
            signed_at + 1 - ceiling
        ))
    }
}

/// Prints or writes a signed message.
pub fn emit_signed(
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

    // The window is measured on this machine's clock, not the last block's time: an idle chain
    // lags the wall clock by its idle gap, which would shorten the window or end it at once.
    let (start, end) =
        super::consent_window(from, a.for_.as_deref(), a.until.as_deref(), now_secs())?;
    // The same range checks as a sent grant.
    units::to_u40(from.unwrap_or(0), "--from")?;
    units::to_u40(end, "--until")?;

    if a.sign.sign_only {
        let rel = Relationship::Consent { patient, grantee };
        let ctx = signing_context(settings, &a.sign, rel).await?;
        let message = GrantMessage {
            patient,
            grantee,
            categories,
            purpose,
            not_before: from.unwrap_or(0),
            expires_at: end,
            signer: me,
            epoch: ctx.epoch,
            issued_at: ctx.issued_at,
            deadline: ctx.deadline,
        };
        let contract = ctx.deployment.consent_registry;
        let msg =
            SignedMessage::sign(&signer, ctx.chain_id, contract, Unsigned::Grant(message)).await?;
        return emit_signed(out, &msg, a.sign.out.as_ref(), "grant");
    }

    let chain = Chain::connect_signer(settings, signer).await?;
    let d = chain.deployment(settings).await?;
    refuse_before_valid_since(&chain, &d, grantee).await?;
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

/// Refuses a grant that could never count: the grantee's credential was issued again within
/// the current second, so its `validSince` (that block's time + 1) is after both this machine's
/// clock and the latest block's time, and a grant made in that second is ignored by the
/// registry without a revert.
async fn refuse_before_valid_since(chain: &Chain, d: &Deployment, grantee: Address) -> Result<()> {
    let valid_since: u64 = chain
        .participants(d)
        .validSinceOf(grantee)
        .call()
        .await
        .map_err(|e| chain.err(e))?
        .to();
    if valid_since > chain.now().await?.max(now_secs()) {
        return Err(CliError::input(format!(
            "{grantee}'s credential was issued again this second: a grant now would never count; try again in a second"
        )));
    }
    Ok(())
}

/// What `revoke` and `cancel-signatures` share: the grantee and patient from the command line
/// (the patient defaults to the signer's account) and, with `--sign-only`, the message signed
/// in the relationship's current epoch and written instead of sent (`None` then). Otherwise
/// the signer, patient and grantee to send the transaction with.
async fn relationship_command(
    grantee: &str,
    patient: Option<&str>,
    sign: &SignOnly,
    settings: &Settings,
    out: Printer,
    what: &str,
    kind: fn(RelationshipMessage) -> Unsigned,
) -> Result<Option<(PrivateKeySigner, Address, Address)>> {
    let grantee = units::address(grantee, "grantee")?;
    let patient_arg = patient.map(|p| units::address(p, "patient")).transpose()?;
    let signer = keys::load(settings)?;
    let me = signer.address();
    let patient = patient_arg.unwrap_or(me);
    if !sign.sign_only {
        return Ok(Some((signer, patient, grantee)));
    }
    let rel = Relationship::Consent { patient, grantee };
    let ctx = signing_context(settings, sign, rel).await?;
    let message = RelationshipMessage {
        patient,
        grantee,
        signer: me,
        epoch: ctx.epoch,
        issued_at: ctx.issued_at,
        deadline: ctx.deadline,
    };
    let contract = ctx.deployment.consent_registry;
    let msg = SignedMessage::sign(&signer, ctx.chain_id, contract, kind(message)).await?;
    emit_signed(out, &msg, sign.out.as_ref(), what)?;
    Ok(None)
}

/// Runs `revoke`.
pub async fn run_revoke(a: RevokeArgs, settings: &Settings, out: Printer) -> Result<()> {
    let Some((signer, patient, grantee)) = relationship_command(
        &a.grantee,
        a.patient.as_deref(),
        &a.sign,
        settings,
        out,
        "revoke",
        Unsigned::Revoke,
    )
    .await?
    else {
        return Ok(());
    };
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

/// Runs `cancel-signatures`.
pub async fn run_cancel(a: CancelArgs, settings: &Settings, out: Printer) -> Result<()> {
    let Some((signer, patient, grantee)) = relationship_command(
        &a.grantee,
        a.patient.as_deref(),
        &a.sign,
        settings,
        out,
        "cancel-signatures",
        Unsigned::CancelSignatures,
    )
    .await?
    else {
        return Ok(());
    };
    let chain = Chain::connect_signer(settings, signer).await?;
    let d = chain.deployment(settings).await?;
    let consent = chain.consent(&d);
    let tx = chain::send(&chain, consent.cancelSignatures(patient, grantee)).await?;
    out.result(
        "cancel-signatures",
        json!({"patient": patient, "grantee": grantee, "tx": tx}),
        &format!(
            "every outstanding signed grant or revocation of {patient} for {grantee} is void (tx {}, block {})",
            tx.tx_hash, tx.block_number
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
    let (registry, expected) = if msg.is_study() {
        let r = super::study::studies(&chain, &d)?;
        ("study registry", *r.address())
    } else {
        ("consent registry", d.consent_registry)
    };
    if chain_id != chain.chain_id || contract != expected {
        return Err(CliError::input(format!(
            "the message was signed for chain {chain_id}, contract {contract}; this is chain {}, {registry} {expected}",
            chain.chain_id
        )));
    }
    let consent = chain.consent(&d);
    // Each call is estimated before it is sent: a stale or otherwise refused message is
    // reported by its error name and costs nothing.
    let (kind, mut data, human, tx) = match msg {
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
                m.epoch,
                m.issuedAt,
                m.deadline,
                signature,
            );
            let human = format!(
                "relayed the grant of {} to {} signed by {}",
                m.patient, m.grantee, m.signer
            );
            let who = json!({"patient": m.patient, "grantee": m.grantee, "signer": m.signer});
            ("grant", who, human, chain::send(&chain, call).await?)
        }
        SignedMessage::Revoke(s) => {
            let (m, signature) = (s.message.to_revoke()?, s.signature);
            let call = consent.revokeBySig(
                m.patient, m.grantee, m.signer, m.epoch, m.issuedAt, m.deadline, signature,
            );
            let human = format!(
                "relayed the revocation of {}'s access to {} signed by {}",
                m.grantee, m.patient, m.signer
            );
            let who = json!({"patient": m.patient, "grantee": m.grantee, "signer": m.signer});
            ("revoke", who, human, chain::send(&chain, call).await?)
        }
        SignedMessage::CancelSignatures(s) => {
            let (m, signature) = (s.message.to_cancel()?, s.signature);
            let call = consent.cancelBySig(
                m.patient, m.grantee, m.signer, m.epoch, m.issuedAt, m.deadline, signature,
            );
            let human = format!(
                "relayed the cancellation of {}'s outstanding signatures for {} signed by {}",
                m.patient, m.grantee, m.signer
            );
            let who = json!({"patient": m.patient, "grantee": m.grantee, "signer": m.signer});
            (
                "cancelSignatures",
                who,
                human,
                chain::send(&chain, call).await?,
            )
        }
        // Study messages are signed by a study pseudonym: the relay names it and nothing else.
        SignedMessage::OptIn(s) => {
            let (m, signature) = (s.message.to_opt_in()?, s.signature);
            let r = super::study::studies(&chain, &d)?;
            let call = r.optInBySig(
                m.studyId,
                m.pseudonym,
                m.tags,
                m.epoch,
                m.issuedAt,
                m.deadline,
                signature,
            );
            let human = format!(
                "relayed the opt-in of pseudonym {} to study {}",
                m.pseudonym, m.studyId
            );
            let who = json!({"pseudonym": m.pseudonym, "studyId": m.studyId.to_string()});
            ("optIn", who, human, chain::send(&chain, call).await?)
        }
        SignedMessage::Withdraw(s) => {
            let (m, signature) = (s.message.to_withdraw()?, s.signature);
            let r = super::study::studies(&chain, &d)?;
            let call = r.withdrawBySig(
                m.studyId,
                m.pseudonym,
                m.epoch,
                m.issuedAt,
                m.deadline,
                signature,
            );
            let human = format!(
                "relayed the withdrawal of pseudonym {} from study {}",
                m.pseudonym, m.studyId
            );
            let who = json!({"pseudonym": m.pseudonym, "studyId": m.studyId.to_string()});
            ("withdraw", who, human, chain::send(&chain, call).await?)
        }
        SignedMessage::CancelStudySignatures(s) => {
            let (m, signature) = (s.message.to_cancel()?, s.signature);
            let r = super::study::studies(&chain, &d)?;
            let call = r.cancelBySig(
                m.studyId,
                m.pseudonym,
                m.epoch,
                m.issuedAt,
                m.deadline,
                signature,
            );
            let human = format!(
                "relayed the cancellation of pseudonym {}'s outstanding signatures for study {}",
                m.pseudonym, m.studyId
            );
            let who = json!({"pseudonym": m.pseudonym, "studyId": m.studyId.to_string()});
            let tx = chain::send(&chain, call).await?;
            ("cancelStudySignatures", who, human, tx)
        }
    };
    data["type"] = kind.into();
    data["tx"] = json!(tx);
    out.result("relay", data, &format!("{human} (tx {})", tx.tx_hash));
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
    let valid_since: u64 = chain
        .participants(&d)
        .validSinceOf(grantee)
        .call()
        .await
        .map_err(|e| chain.err(e))?
        .to();
    let now = chain.now().await?;
    let nb: u64 = g.notBefore.to();
    let exp: u64 = g.expiresAt.to();
    let emergency_until: u64 = e.expiresAt.to();
    let granted_at: u64 = g.grantedAt.to();
    let state = if g.categories == 0 {
        "none"
    } else if granted_at < valid_since {
        // Given before the grantee was credentialed again: it counts for nothing.
        "void (given before the grantee's current credential)"
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
               "readableMask": readable, "epoch": g.epoch.to::<u32>(), "signedAt": g.signedAt.to::<u64>(),
               "asOf": now}),
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
    // The mask, checked here: the node is not told which category is asked about.
    let allowed = medrec_bindings::mask_covers(
        chain
            .consent(&d)
            .readableCategories(grantee, patient)
            .call()
            .await
            .map_err(|e| chain.err(e))?,
        category,
    );
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
