//! `medrec break-glass`: emergency access by a credentialed provider, always visible to the
//! patient, bounded by governance's policy and justified afterwards.
//!
//! The reason goes on chain only as a salted commitment ([`medrec_protocol::commitment`]):
//! `open` draws the salt, prints it with the reason (and writes both with `--salt-out`), and the
//! provider hands them to the patient and to governance, who check them with `verify-reason`.

use crate::chain::{self, Chain};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::primitives::{Address, B256, aliases::U40};
use clap::{Args, Subcommand};
use medrec_bindings::consent_registry::{ConsentRegistry, IConsentRegistry};
use medrec_protocol::commitment;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Break-glass subcommands.
#[derive(Debug, Subcommand)]
pub enum BreakGlassCmd {
    /// Provider: open emergency access to a patient's categories (less those the patient's
    /// rule excludes); prints the reason's salt, to give to the patient and governance
    Open(OpenArgs),
    /// Provider or patient: close emergency access early (a patient's close starts a
    /// cooling-off for that provider, and also refuses a recent opening that already ended)
    Close(CloseArgs),
    /// Show a provider's emergency access to a patient
    Show(ShowArgs),
    /// Anyone: check a reason and its salt against an opening's commitment on chain
    VerifyReason(VerifyReasonArgs),
    /// Show an opening: who, when, its review and whether it is overdue
    Status(IdArg),
    /// Patient: set (or show) the sensitive categories break-glass never opens
    Rule(RuleArgs),
    /// Operator: record governance's review of an opening (governance role)
    Review(ReviewArgs),
    /// Anyone: record openings not reviewed by their deadline as overdue
    Overdue(OverdueArgs),
    /// Operator: clear the unjustified openings counted against a provider (governance role)
    Clear(ClearArgs),
    /// Show the policy in force
    Policy,
    /// Operator: set the policy (governance role)
    SetPolicy(PolicyArgs),
    /// Operator: set the longest emergency window (governance role)
    SetCap(CapArgs),
}

/// `break-glass open`.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The patient
    pub patient: String,
    /// Why. Only a salted commitment goes on chain; keep the reason and the salt printed
    /// (or written by --salt-out) for the justification
    #[arg(long)]
    pub reason: String,
    /// How long, at most the cap
    #[arg(long = "for", default_value = "4h")]
    pub for_: String,
    /// Also write the reason, salt and opening id to this file (JSON, owner-only), written
    /// before the transaction is sent
    #[arg(long)]
    pub salt_out: Option<PathBuf>,
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

/// `break-glass verify-reason`.
#[derive(Debug, Args)]
pub struct VerifyReasonArgs {
    /// The opening's id [default: the one in --file]
    pub id: Option<u64>,
    /// The file `open --salt-out` wrote (reason, salt, id)
    #[arg(long, conflicts_with_all = ["reason", "salt"])]
    pub file: Option<PathBuf>,
    /// The reason, as the provider gave it
    #[arg(long, requires = "salt")]
    pub reason: Option<String>,
    /// The salt, as the provider gave it (0x and 64 hex digits)
    #[arg(long, requires = "reason")]
    pub salt: Option<String>,
}

/// An opening's id.
#[derive(Debug, Args)]
pub struct IdArg {
    /// The opening's id (printed by `open`)
    pub id: u64,
}

/// `break-glass rule`.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// Categories break-glass never opens, from mental-health, sexual-health, substance-use,
    /// genetics (replaces the earlier rule)
    #[arg(long, conflicts_with = "clear")]
    pub exclude: Option<String>,
    /// Remove the rule: break-glass opens every category again
    #[arg(long)]
    pub clear: bool,
    /// Whose rule to show [default: your account]
    #[arg(long, conflicts_with_all = ["exclude", "clear"])]
    pub patient: Option<String>,
}

/// `break-glass review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The opening's id
    pub id: u64,
    /// The reason given checks out and justified the access
    #[arg(
        long,
        conflicts_with = "unjustified",
        required_unless_present = "unjustified"
    )]
    pub justified: bool,
    /// It did not (counts against the provider)
    #[arg(long)]
    pub unjustified: bool,
}

/// `break-glass overdue`.
#[derive(Debug, Args)]
pub struct OverdueArgs {
    /// The openings' ids
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<u64>,
    /// Every opening that is pending past its deadline (asks the chain about each opening)
    #[arg(long)]
    pub all: bool,
}

/// `break-glass clear`.
#[derive(Debug, Args)]
pub struct ClearArgs {
    /// The provider
    pub provider: String,
}

/// `break-glass set-policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Openings per provider and patient within --period (1 to 5)
    #[arg(long, default_value_t = 3)]
    pub max_openings: u8,
    /// The rolling period those are counted in, e.g. 30d (0: no bound)
    #[arg(long, default_value = "30d")]
    pub period: String,
    /// After the patient closes an opening, how long that provider may not reopen, e.g. 7d
    #[arg(long, default_value = "7d")]
    pub cooling_off: String,
    /// How long governance has to review an opening as justified, e.g. 72h
    #[arg(long, default_value = "72h")]
    pub justify_within: String,
    /// Unjustified or overdue openings at which a provider may open no more
    #[arg(long, default_value_t = 3)]
    pub max_unjustified: u16,
    /// Openings of one provider, to any patients, awaiting review at which it may open no
    /// more until governance reviews one (1 to 1000)
    #[arg(long, default_value_t = 5)]
    pub max_pending: u16,
}

/// `break-glass set-cap`.
#[derive(Debug, Args)]
pub struct CapArgs {
    /// The longest window, e.g. 24h (at most 7d)
    pub cap: String,
}

/// The names of an opening's review status, in the contract's order.
const REVIEW: [&str; 5] = ["none", "pending", "justified", "unjustified", "overdue"];

/// The categories a patient's rule may exclude (the contract's `EMERGENCY_SENSITIVE`).
const SENSITIVE: [&str; 4] = [
    "mental-health",
    "sexual-health",
    "substance-use",
    "genetics",
];

/// Seconds as the CLI's durations are typed (`30d`, `72h`, `90s`).
fn span(secs: u64) -> String {
    match secs {
        0 => "0".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s => format!("{s}s"),
    }
}

fn sensitive_mask() -> u64 {
    SENSITIVE
        .iter()
        .filter_map(|n| medrec_bindings::category_index(n))
        .fold(0, |m, i| m | 1 << i)
}

fn mask_names(mask: u64) -> Vec<String> {
    (0..64u8)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| {
            medrec_bindings::CATEGORIES
                .iter()
                .find(|(_, j)| *j == i)
                .map_or_else(|| i.to_string(), |(n, _)| (*n).to_string())
        })
        .collect()
}

/// Writes `doc` to `path` readable by its owner alone (it holds a salt, and for break-glass a
/// reason about a patient), through a temporary file so that it is never half-written.
pub fn write_private_json(path: &Path, doc: &Value) -> Result<()> {
    let err = |e: std::io::Error| CliError::Io(format!("cannot write {}: {e}", path.display()));
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let text = serde_json::to_string_pretty(doc).map_err(|e| CliError::Io(e.to_string()))?;
    let mut f = opts.open(&tmp).map_err(err)?;
    std::io::Write::write_all(&mut f, format!("{text}\n").as_bytes()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Reads a file `write_private_json` wrote, as JSON.
pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Io(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::input(format!("{} is not JSON: {e}", path.display())))
}

/// The field `key` of a salt file, as text.
pub fn field<'a>(doc: &'a Value, key: &str, path: &Path) -> Result<&'a str> {
    doc.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::input(format!("{} has no text field {key:?}", path.display())))
}

/// Runs a break-glass subcommand.
pub async fn run(cmd: BreakGlassCmd, settings: &Settings, out: Printer) -> Result<()> {
    match cmd {
        BreakGlassCmd::Open(a) => open(a, settings, out).await?,
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
            let c = chain.consent(&d);
            let e = c
                .emergencyAccessOf(patient, provider)
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            let bounds = c
                .emergencyBoundsOf(patient, provider)
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            let now = chain.now().await?;
            let opened: u64 = e.openedAt.to();
            let until: u64 = e.expiresAt.to();
            let open = now < until;
            let cooling: u64 = bounds.coolingOffUntil.to();
            let cooling = (cooling > now).then_some(cooling);
            let mut human = if opened == 0 {
                format!("no emergency access of {provider} to {patient}")
            } else {
                format!(
                    "emergency access of {provider} to {patient}: {}, opened {}, until {}",
                    if open { "open" } else { "closed" },
                    units::format_time(opened),
                    units::format_time(until)
                )
            };
            if let Some(t) = cooling {
                human.push_str(&format!(
                    "; the patient closed it: no reopening before {}",
                    units::format_time(t)
                ));
            }
            out.result(
                "break-glass show",
                json!({"patient": patient, "provider": provider, "openedAt": opened, "expiresAt": until,
                       "open": open, "coolingOffUntil": cooling}),
                &human,
            );
        }
        BreakGlassCmd::VerifyReason(a) => verify_reason(a, settings, out).await?,
        BreakGlassCmd::Status(a) => {
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let (o, overdue) = opening(&chain, &d, a.id).await?;
            let status = REVIEW.get(usize::from(o.status)).copied().unwrap_or("?");
            let review_by: u64 = o.reviewBy.to();
            out.result(
                "break-glass status",
                json!({"id": a.id, "patient": o.patient, "provider": o.provider,
                       "openedAt": o.openedAt.to::<u64>(), "reviewBy": review_by,
                       "status": status, "overdue": overdue, "reasonHash": o.reasonHash}),
                &format!(
                    "opening {} of {} to {}: {status}{}, review due {}",
                    a.id,
                    o.provider,
                    o.patient,
                    if overdue && status == "pending" {
                        " (overdue)"
                    } else {
                        ""
                    },
                    units::format_time(review_by)
                ),
            );
        }
        BreakGlassCmd::Rule(a) => rule(a, settings, out).await?,
        BreakGlassCmd::Review(a) => {
            let justified = a.justified;
            let signer = keys::load(settings)?;
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let (tx, receipt) = chain::send_receipt(
                &chain,
                chain.consent(&d).reviewEmergencyAccess(a.id, justified),
            )
            .await?;
            let unjustified = receipt
                .inner
                .logs()
                .iter()
                .find_map(|l| {
                    l.log_decode::<ConsentRegistry::EmergencyAccessReviewed>()
                        .ok()
                })
                .map(|e| e.inner.data.unjustified);
            out.result(
                "break-glass review",
                json!({"id": a.id, "justified": justified, "unjustified": unjustified, "tx": tx}),
                &format!(
                    "opening {} reviewed as {}; its provider has {} unjustified (tx {})",
                    a.id,
                    if justified {
                        "justified"
                    } else {
                        "unjustified"
                    },
                    unjustified.unwrap_or_default(),
                    tx.tx_hash
                ),
            );
        }
        BreakGlassCmd::Overdue(a) => {
            let signer = keys::load(settings)?;
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let ids = if a.all {
                let c = chain.consent(&d);
                let count = c
                    .emergencyOpeningCount()
                    .call()
                    .await
                    .map_err(|e| chain.err(e))?;
                let mut due = Vec::new();
                for id in 1..=count {
                    let (o, overdue) = opening(&chain, &d, id).await?;
                    // Pending (1) and past its deadline: recorded ones are overdue (4) already.
                    if overdue && o.status == 1 {
                        due.push(id);
                    }
                }
                due
            } else {
                a.ids
            };
            let mut done = Vec::new();
            for id in ids {
                let tx = chain::send(&chain, chain.consent(&d).recordEmergencyOverdue(id)).await?;
                done.push(json!({"id": id, "tx": tx}));
                out.progress(&format!(
                    "opening {id} recorded as overdue (tx {})",
                    tx.tx_hash
                ));
            }
            let n = done.len();
            out.result(
                "break-glass overdue",
                json!({"recorded": done}),
                &format!("{n} opening(s) recorded as overdue"),
            );
        }
        BreakGlassCmd::Clear(a) => {
            let provider = units::address(&a.provider, "provider")?;
            let signer = keys::load(settings)?;
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let tx = chain::send(
                &chain,
                chain.consent(&d).clearEmergencyUnjustified(provider),
            )
            .await?;
            out.result(
                "break-glass clear",
                json!({"provider": provider, "tx": tx}),
                &format!(
                    "cleared the unjustified openings of {provider} (tx {})",
                    tx.tx_hash
                ),
            );
        }
        BreakGlassCmd::Policy => {
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let c = chain.consent(&d);
            let p = c.emergencyPolicy().call().await.map_err(|e| chain.err(e))?;
            let cap: u64 = c
                .emergencyCap()
                .call()
                .await
                .map_err(|e| chain.err(e))?
                .to();
            let (period, cool, within): (u64, u64, u64) =
                (p.period.to(), p.coolingOff.to(), p.justifyWithin.to());
            out.result(
                "break-glass policy",
                json!({"cap": cap, "maxOpenings": p.maxOpenings, "period": period,
                       "coolingOff": cool, "justifyWithin": within,
                       "maxUnjustified": p.maxUnjustified, "maxPending": p.maxPending}),
                &format!(
                    "at most {} per opening; {} opening(s) per provider and patient in {}; \
                     {} cooling-off after the patient closes one; review within {}; \
                     a provider with {} unjustified, or {} awaiting review, opens no more",
                    span(cap),
                    p.maxOpenings,
                    span(period),
                    span(cool),
                    span(within),
                    p.maxUnjustified,
                    p.maxPending
                ),
            );
        }
        BreakGlassCmd::SetPolicy(a) => {
            let secs = |s: &str, what: &str| -> Result<U40> {
                let v = if s.trim() == "0" {
                    0
                } else {
                    units::duration(s)?
                };
                units::to_u40(v, what)
            };
            let policy = IConsentRegistry::EmergencyPolicy {
                maxOpenings: a.max_openings,
                period: secs(&a.period, "--period")?,
                coolingOff: secs(&a.cooling_off, "--cooling-off")?,
                justifyWithin: secs(&a.justify_within, "--justify-within")?,
                maxUnjustified: a.max_unjustified,
                maxPending: a.max_pending,
            };
            let signer = keys::load(settings)?;
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let tx = chain::send(&chain, chain.consent(&d).setEmergencyPolicy(policy)).await?;
            out.result(
                "break-glass set-policy",
                json!({"maxOpenings": a.max_openings, "period": a.period, "coolingOff": a.cooling_off,
                       "justifyWithin": a.justify_within, "maxUnjustified": a.max_unjustified,
                       "maxPending": a.max_pending, "tx": tx}),
                &format!("break-glass policy set (tx {})", tx.tx_hash),
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

async fn open(a: OpenArgs, settings: &Settings, out: Printer) -> Result<()> {
    let patient = units::address(&a.patient, "patient")?;
    let secs = units::duration(&a.for_)?;
    if a.reason.trim().is_empty() {
        return Err(CliError::input("--reason is empty"));
    }
    let (salt, reason_hash) = commitment::commit(&a.reason);
    let signer = keys::load(settings)?;
    let provider = signer.address();
    let file = |id: Option<u64>, review_by: Option<u64>| {
        json!({"kind": "medrec break-glass reason", "version": 1, "id": id,
               "patient": patient, "provider": provider, "reason": a.reason,
               "salt": salt, "reasonHash": reason_hash, "reviewBy": review_by})
    };
    // The salt is the only way to justify the opening: it is on disk before the opening is.
    if let Some(path) = &a.salt_out {
        write_private_json(path, &file(None, None))?;
    }
    let chain = Chain::connect_signer(settings, signer).await?;
    let d = chain.deployment(settings).await?;
    let consent = chain.consent(&d);
    let call = consent.openEmergencyAccess(patient, reason_hash, units::to_u40(secs, "--for")?);
    let (tx, receipt) = chain::send_receipt(&chain, call).await?;
    let due = receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| {
            l.log_decode::<ConsentRegistry::EmergencyJustificationDue>()
                .ok()
        })
        .map(|e| (e.inner.data.id, e.inner.data.reviewBy.to::<u64>()))
        .ok_or_else(|| CliError::Rpc("no EmergencyJustificationDue event in the receipt".into()))?;
    let (id, review_by) = due;
    if let Some(path) = &a.salt_out {
        write_private_json(path, &file(Some(id), Some(review_by)))?;
    }
    out.result(
        "break-glass open",
        json!({"id": id, "patient": patient, "provider": provider, "reasonHash": reason_hash,
               "salt": salt, "reason": a.reason, "reviewBy": review_by, "seconds": secs,
               "saltFile": a.salt_out, "tx": tx}),
        &format!(
            "break-glass {id}: {provider} may read {patient} for {secs} s; the patient sees it (tx {})\n\
             justify it by {}: give the patient and governance the reason and this salt, which \
             only you hold ({}):\n  salt {salt}\n  check: medrec break-glass verify-reason {id} --reason '{}' --salt {salt}",
            tx.tx_hash,
            units::format_time(review_by),
            a.salt_out.as_ref().map_or_else(
                || "keep it: it is not stored anywhere else; --salt-out FILE writes it".to_string(),
                |p| format!("also in {}", p.display())
            ),
            a.reason.replace('\'', "'\\''"),
        ),
    );
    Ok(())
}

async fn opening(
    chain: &Chain,
    d: &medrec_bindings::deployment::Deployment,
    id: u64,
) -> Result<(IConsentRegistry::EmergencyOpening, bool)> {
    let c = chain.consent(d);
    let o = c
        .emergencyOpening(id)
        .call()
        .await
        .map_err(|e| chain.err(e))?;
    if o.status == 0 {
        return Err(CliError::input(format!(
            "there is no break-glass opening {id}"
        )));
    }
    let overdue = c
        .isEmergencyOverdue(id)
        .call()
        .await
        .map_err(|e| chain.err(e))?;
    Ok((o, overdue))
}

async fn verify_reason(a: VerifyReasonArgs, settings: &Settings, out: Printer) -> Result<()> {
    let (id, reason, salt): (u64, String, B256) = match (&a.file, &a.reason, &a.salt) {
        (Some(path), _, _) => {
            let doc = read_json(path)?;
            let id = match a.id {
                Some(id) => id,
                None => doc.get("id").and_then(Value::as_u64).ok_or_else(|| {
                    CliError::input(format!(
                        "{} has no opening id (the opening was not sent?); give the id",
                        path.display()
                    ))
                })?,
            };
            let salt = units::b256(field(&doc, "salt", path)?, "salt")?;
            (id, field(&doc, "reason", path)?.to_string(), salt)
        }
        (None, Some(reason), Some(salt)) => {
            let id =
                a.id.ok_or_else(|| CliError::input("give the opening's id"))?;
            (id, reason.clone(), units::b256(salt, "salt")?)
        }
        _ => {
            return Err(CliError::input(
                "give --file FILE, or --reason TEXT and --salt 0x...",
            ));
        }
    };
    let chain = Chain::connect(settings).await?;
    let d = chain.deployment(settings).await?;
    let (o, _) = opening(&chain, &d, id).await?;
    if !commitment::verify(o.reasonHash, salt, &reason) {
        return Err(CliError::Integrity(format!(
            "the reason and salt do not open break-glass {id}'s commitment {}",
            o.reasonHash
        )));
    }
    out.result(
        "break-glass verify-reason",
        json!({"id": id, "patient": o.patient, "provider": o.provider, "reason": reason,
               "reasonHash": o.reasonHash, "verified": true}),
        &format!(
            "verified: {} opened break-glass {id} to {} for {reason:?}",
            o.provider, o.patient
        ),
    );
    Ok(())
}

async fn rule(a: RuleArgs, settings: &Settings, out: Printer) -> Result<()> {
    let set = match (&a.exclude, a.clear) {
        (Some(list), _) => {
            let mask = units::categories(list)?;
            if mask & !sensitive_mask() != 0 {
                return Err(CliError::input(format!(
                    "a rule may exclude only {}; not {}",
                    SENSITIVE.join(", "),
                    mask_names(mask & !sensitive_mask()).join(", ")
                )));
            }
            Some(mask)
        }
        (None, true) => Some(0),
        (None, false) => None,
    };
    let Some(mask) = set else {
        let patient = super::address_or_own(a.patient.as_deref(), "patient", settings)?;
        let chain = Chain::connect(settings).await?;
        let d = chain.deployment(settings).await?;
        let mask = chain
            .consent(&d)
            .emergencyRuleOf(patient)
            .call()
            .await
            .map_err(|e| chain.err(e))?;
        let names = mask_names(mask);
        out.result(
            "break-glass rule",
            json!({"patient": patient, "excluded": names, "mask": mask}),
            &if names.is_empty() {
                format!("{patient}: break-glass opens every category")
            } else {
                format!("{patient}: break-glass never opens {}", names.join(", "))
            },
        );
        return Ok(());
    };
    let signer = keys::load(settings)?;
    let patient: Address = signer.address();
    let chain = Chain::connect_signer(settings, signer).await?;
    let d = chain.deployment(settings).await?;
    let tx = chain::send(&chain, chain.consent(&d).setEmergencyRule(mask)).await?;
    let names = mask_names(mask);
    out.result(
        "break-glass rule",
        json!({"patient": patient, "excluded": names, "mask": mask, "tx": tx}),
        &if names.is_empty() {
            format!(
                "rule cleared: break-glass opens every category (tx {})",
                tx.tx_hash
            )
        } else {
            format!(
                "break-glass never opens {} of {patient} (tx {})",
                names.join(", "),
                tx.tx_hash
            )
        },
    );
    Ok(())
}
