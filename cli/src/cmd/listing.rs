//! `medrec grants`, `patients`, `records`, `timeline`: listings read from the indexer's API.
//!
//! The indexer answers them only to those entitled (issue 16), so every request is signed by
//! the account in use (`-a`): an EIP-712 `IndexerRequest` under this deployment's indexer
//! domain (the chain id from `--chain-id`, else the node's; the consent registry from the
//! deployments file), valid for 60 s, in the `x-medrec-request` header.

use crate::chain::Chain;
use crate::error::{CliError, Result};
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::sol_types::Eip712Domain;
use alloy::transports::http::reqwest;
use clap::Args;
use medrec_protocol::ErrorCode;
use medrec_protocol::indexer::{
    ErrorBody, GrantTerms, GranteePatients, PatientGrants, PatientPointers, Timeline, TimelineData,
};
use medrec_protocol::indexer_auth::{self, INDEXER_AUTH_HEADER, INDEXER_VALIDITY_SECS};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Options shared by the listings.
#[derive(Debug, Args)]
pub struct ListingOpts {
    /// Wait (up to 10 s) until the indexer has indexed this block: read your own writes
    #[arg(long)]
    pub min_block: Option<u64>,
}

/// `grants`.
#[derive(Debug, Args)]
pub struct GrantsArgs {
    /// The patient [default: your account]
    #[arg(long)]
    pub patient: Option<String>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub opts: ListingOpts,
}

/// `patients`.
#[derive(Debug, Args)]
pub struct PatientsArgs {
    /// The grantee [default: your account]
    #[arg(long)]
    pub grantee: Option<String>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub opts: ListingOpts,
}

/// `records`.
#[derive(Debug, Args)]
pub struct RecordsArgs {
    /// The patient [default: your account]
    #[arg(long)]
    pub patient: Option<String>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub opts: ListingOpts,
}

/// `timeline`.
#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// The patient [default: your account]
    #[arg(long)]
    pub patient: Option<String>,
    /// Only events from this block on
    #[arg(long)]
    pub from_block: Option<u64>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub opts: ListingOpts,
}

/// The EIP-712 domain the indexer checks this deployment's requests under.
async fn indexer_domain(settings: &Settings) -> Result<Eip712Domain> {
    let chain_id = match settings.chain_id {
        Some(id) => id,
        None => Chain::connect(settings).await?.chain_id,
    };
    let d = crate::chain::read_deployment(&settings.deployments, chain_id)?;
    Ok(indexer_auth::indexer_domain(chain_id, d.consent_registry))
}

/// GETs `path` from the indexer, signed by the account in use, and reads the answer as `T`,
/// one of `medrec_protocol::indexer`'s types (an error answer as the protocol's error body).
/// Every command that reads chain history from the indexer goes through here.
pub(crate) async fn get<T: DeserializeOwned>(
    settings: &Settings,
    path: &str,
    min_block: Option<u64>,
) -> Result<T> {
    get_as(settings, &crate::keys::load(settings)?, path, min_block).await
}

/// As [`get`], signed by `signer` (already decrypted).
pub(crate) async fn get_as<T: DeserializeOwned>(
    settings: &Settings,
    signer: &alloy::signers::local::PrivateKeySigner,
    path: &str,
    min_block: Option<u64>,
) -> Result<T> {
    let base = settings.indexer_url.trim_end_matches('/');
    let mut target = path.to_string();
    if let Some(b) = min_block {
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str(&format!("min_block={b}"));
    }
    let url = format!("{base}{target}");
    let domain = indexer_domain(settings).await?;
    let header = indexer_auth::sign_get(
        signer,
        &domain,
        &target,
        medrec_protocol::clock::now_secs(),
        INDEXER_VALIDITY_SECS,
    )
    .await
    .map_err(|e| CliError::Key(format!("cannot sign the indexer request: {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| CliError::Rpc(format!("cannot build an HTTP client: {e}")))?;
    let resp = client
        .get(&url)
        .header(INDEXER_AUTH_HEADER, header)
        .send()
        .await
        .map_err(|e| {
            CliError::Rpc(format!(
                "cannot reach the indexer at {base}: {}",
                first_line(&e)
            ))
        })?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| {
        CliError::Rpc(format!(
            "the indexer at {base} broke off: {}",
            first_line(&e)
        ))
    })?;
    if !status.is_success() {
        let body = serde_json::from_str::<ErrorBody>(&text).map_err(|_| {
            CliError::Rpc(format!(
                "the indexer at {base} answered {status} with something that is not JSON"
            ))
        })?;
        let me = signer.address();
        let msg = body.error.message;
        match body.error.code {
            ErrorCode::Denied => {
                let who_may = msg.strip_prefix("denied: ").unwrap_or(&msg);
                return Err(CliError::Refused(format!(
                    "the indexer refused {me} (the account in use): {who_may}"
                )));
            }
            ErrorCode::Unauthenticated => {
                return Err(CliError::Refused(format!(
                    "the indexer did not accept the request signed by {me}: {msg} (is this machine's clock right?)"
                )));
            }
            _ => {}
        }
        return Err(CliError::Rpc(format!(
            "the indexer at {base} answered {status}: {msg}"
        )));
    }
    serde_json::from_str(&text).map_err(|e| {
        CliError::Rpc(format!(
            "the indexer at {base} answered {status} with something this medrec cannot read: {e}"
        ))
    })
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// Prints `body` as the command's result: the answer itself under `--json`, else `lines`.
fn print<T: Serialize>(out: Printer, command: &str, body: &T, mut lines: Vec<String>, none: &str) {
    if lines.len() == 1 {
        lines.push(format!("  {none}"));
    }
    let data = serde_json::to_value(body).unwrap_or_default();
    out.result(command, data, &lines.join("\n"));
}

fn live(t: &GrantTerms) -> &'static str {
    if t.void {
        "void (given before the grantee's current credential)"
    } else if t.live {
        "live"
    } else {
        "not live"
    }
}

/// Runs `grants`.
pub async fn run_grants(a: GrantsArgs, settings: &Settings, out: Printer) -> Result<()> {
    let patient = super::address_or_own(a.patient.as_deref(), "patient", settings)?;
    let body: PatientGrants = get(
        settings,
        &format!("/v1/patients/{patient}/grants"),
        a.opts.min_block,
    )
    .await?;
    let mut lines = vec![format!("grants of {patient} (as of block {})", body.block)];
    for g in &body.grants {
        let t = &g.terms;
        lines.push(format!(
            "  {}  {}  {}  {} .. {}  {}",
            g.grantee,
            t.categories.join(","),
            t.purpose,
            units::format_time(t.not_before),
            units::format_time(t.expires_at),
            live(t)
        ));
    }
    print(out, "grants", &body, lines, "none");
    Ok(())
}

/// Runs `patients`.
pub async fn run_patients(a: PatientsArgs, settings: &Settings, out: Printer) -> Result<()> {
    let grantee = super::address_or_own(a.grantee.as_deref(), "grantee", settings)?;
    let body: GranteePatients = get(
        settings,
        &format!("/v1/grantees/{grantee}/patients"),
        a.opts.min_block,
    )
    .await?;
    let mut lines = vec![format!(
        "patients who granted {grantee} access (as of block {})",
        body.block
    )];
    for g in &body.patients {
        let t = &g.terms;
        lines.push(format!(
            "  {}  {}  until {}  {}",
            g.patient,
            t.categories.join(","),
            units::format_time(t.expires_at),
            live(t)
        ));
    }
    print(out, "patients", &body, lines, "none");
    Ok(())
}

/// Runs `records`: the patient's pointers from the indexer, each with its category from its
/// holder's gatekeeper (the chain and the indexer hold only a commitment to it), checked
/// against the pointer's commitment.
pub async fn run_records(a: RecordsArgs, settings: &Settings, out: Printer) -> Result<()> {
    let patient = super::address_or_own(a.patient.as_deref(), "patient", settings)?;
    let body: PatientPointers = match get(
        settings,
        &format!("/v1/patients/{patient}/pointers"),
        a.opts.min_block,
    )
    .await
    {
        Ok(body) => body,
        Err(CliError::Refused(why)) if a.patient.is_some() => {
            return records_from_holders(settings, patient, why, out).await;
        }
        Err(e) => return Err(e),
    };
    let categories = categories_from_holders(settings, &body).await?;
    let mut lines = vec![format!("records of {patient} (as of block {})", body.block)];
    let mut data = serde_json::to_value(&body).unwrap_or_default();
    for (i, p) in body.pointers.iter().enumerate() {
        let superseded = match &p.superseded_by {
            None => String::new(),
            Some(id) => format!("  superseded by {id}"),
        };
        // A pointer anchored without a grant is the patient's to question: say so first.
        let mark = if p.break_glass {
            "  ANCHORED UNDER BREAK-GLASS (the holder had no live grant)"
        } else {
            ""
        };
        // An erased record is listed by no holder: its category is gone with its data key.
        let category = match categories.get(&p.record_id) {
            _ if p.erased => "erased by its holder".to_string(),
            Some(Ok(c)) => medrec_bindings::category_name(*c),
            Some(Err(why)) => format!("category unknown ({why})"),
            None => "category unknown (its holder did not list it)".to_string(),
        };
        if let Some(Ok(c)) = categories.get(&p.record_id) {
            data["pointers"][i]["category"] = medrec_bindings::category_name(*c).into();
        }
        lines.push(format!(
            "  {}  {category}  held by {}  at {}{superseded}{mark}",
            p.record_id, p.holder, p.locator
        ));
    }
    if lines.len() == 1 {
        lines.push("  none".into());
    }
    out.result("records", data, &lines.join("\n"));
    Ok(())
}

/// The category of each of `body`'s pointers, as its holder's gatekeeper lists it to the
/// account in use ([`medrec_protocol::records::LIST_PATH`]) and as its commitment on chain
/// confirms; a holder that cannot be asked, or an opening that does not open the commitment,
/// is said instead.
async fn categories_from_holders(
    settings: &Settings,
    body: &PatientPointers,
) -> Result<std::collections::HashMap<alloy::primitives::B256, std::result::Result<u8, String>>> {
    let mut found = std::collections::HashMap::new();
    let holders: std::collections::BTreeSet<_> = body.pointers.iter().map(|p| p.holder).collect();
    if holders.is_empty() {
        return Ok(found);
    }
    let signer = crate::keys::load(settings)?;
    let chain = Chain::connect(settings).await?;
    let d = chain.deployment(settings).await?;
    let domain = medrec_bindings::gatekeeper_domain(chain.chain_id, d.record_registry);
    let http = super::records::client()?;
    for holder in holders {
        let mine: Vec<_> = body
            .pointers
            .iter()
            .filter(|p| p.holder == holder)
            .collect();
        let listed = list_at(&chain, &d, &http, &signer, &domain, holder, body.patient).await;
        for p in mine {
            let entry = match &listed {
                Err(why) => Err(why.clone()),
                Ok(l) => match l.records.iter().find(|r| r.record_id == p.record_id) {
                    None => continue,
                    Some(r)
                        if r.opening
                            .opens(p.commitment, p.patient, p.holder, r.content_hash) =>
                    {
                        Ok(r.opening.category)
                    }
                    Some(_) => {
                        Err("its holder listed an opening that does not open its commitment".into())
                    }
                },
            };
            found.insert(p.record_id, entry);
        }
    }
    Ok(found)
}

/// The holder's signed listing of `patient`'s records that `signer` may read now
/// ([`medrec_protocol::records::LIST_PATH`]), asked at the endpoint it registered on chain
/// while it is credentialed; what went wrong, in words, otherwise.
async fn list_at(
    chain: &Chain,
    d: &medrec_bindings::deployment::Deployment,
    http: &reqwest::Client,
    signer: &alloy::signers::local::PrivateKeySigner,
    domain: &Eip712Domain,
    holder: alloy::primitives::Address,
    patient: alloy::primitives::Address,
) -> std::result::Result<medrec_protocol::records::RecordList, String> {
    use medrec_protocol::records::{LIST_PATH, RecordListRequest};
    let base = super::holder::credentialed_gatekeeper_url(chain, d, holder)
        .await
        .map_err(|e| e.to_string())?;
    let issued = medrec_protocol::clock::now_secs();
    let req = RecordListRequest {
        requester: signer.address(),
        patient,
        audience: holder,
        nonce: medrec_protocol::envelope::random_nonce(),
        issuedAt: issued,
        expiresAt: issued + medrec_protocol::clock::READ_VALIDITY_SECS,
    };
    let signed = super::records::sign(signer, req, domain)
        .await
        .map_err(|e| e.to_string())?;
    let resp = http
        .post(format!("{base}{LIST_PATH}"))
        .json(&signed)
        .send()
        .await
        .map_err(|e| format!("its gatekeeper is unreachable: {}", first_line(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("its gatekeeper answered {}", resp.status()));
    }
    super::records::answer(resp, "the holder's gatekeeper")
        .await
        .map_err(|e| e.to_string())
}

/// `records --patient P` by a guardian of some of P's categories: the indexer answers a
/// pointer list only to the patient and a guardian of every category (a pointer's category is
/// a commitment it cannot read), so every credentialed holder that registered a gatekeeper is
/// asked for what it may show this guardian, and each record is checked against its
/// commitment on chain. Anyone else keeps the indexer's refusal.
async fn records_from_holders(
    settings: &Settings,
    patient: alloy::primitives::Address,
    refusal: String,
    out: Printer,
) -> Result<()> {
    let signer = crate::keys::load(settings)?;
    let chain = Chain::connect(settings).await?;
    let d = chain.deployment(settings).await?;
    let mandate = chain
        .consent(&d)
        .guardianOf(patient, signer.address())
        .call()
        .await
        .map_err(|e| chain.err(e))?;
    // Only a guardian whose mandate is live by this machine's clock asks the holders (each
    // decides liveness again by the chain); anyone else, an expired guardian included, keeps
    // the indexer's refusal, which says who may ask.
    let now = medrec_protocol::clock::now_secs();
    let live = mandate.scope != 0
        && mandate.notBefore.to::<u64>() <= now
        && now < mandate.expiresAt.to::<u64>();
    if !live {
        return Err(CliError::Refused(refusal));
    }
    let domain = medrec_bindings::gatekeeper_domain(chain.chain_id, d.record_registry);
    let http = super::records::client()?;
    let holders = super::study::registered_holders(&chain, &d).await?;
    let mut holders: Vec<_> = holders
        .into_iter()
        .filter(|(_, (_, credentialed))| *credentialed)
        .map(|(h, _)| h)
        .collect();
    holders.sort();
    let mut lines = vec![format!(
        "records of {patient} that their holders list to you, a guardian of some categories (the indexer lists them only to the patient and a guardian of every category)"
    )];
    let mut records = vec![];
    for holder in holders {
        let listed = match list_at(&chain, &d, &http, &signer, &domain, holder, patient).await {
            Ok(l) => l,
            Err(why) => {
                lines.push(format!("  holder {holder}: not asked ({why})"));
                continue;
            }
        };
        for r in listed.records {
            let (commitment, _) = chain
                .records(&d)
                .pointerOf(r.record_id)
                .call()
                .await
                .map(|p| (p.commitment, p.supersededBy))
                .map_err(|e| chain.err(e))?;
            let category = medrec_bindings::category_name(r.opening.category);
            if !r.opening.opens(commitment, patient, holder, r.content_hash) {
                lines.push(format!(
                    "  {}  held by {holder}: its opening does not open the commitment on chain (not shown)",
                    r.record_id
                ));
                continue;
            }
            lines.push(format!("  {}  {category}  held by {holder}", r.record_id));
            records.push(serde_json::json!({"recordId": r.record_id, "holder": holder, "category": category}));
        }
    }
    if records.is_empty() {
        lines.push("  none".into());
    }
    out.result(
        "records",
        serde_json::json!({"patient": patient, "fromHolders": true, "records": records}),
        &lines.join("\n"),
    );
    Ok(())
}

/// One timeline event in words.
fn describe(what: &TimelineData) -> String {
    match what {
        TimelineData::Granted {
            grantee,
            category_mask,
            expires_at,
            ..
        } => format!(
            "granted {grantee} {} until {}",
            medrec_bindings::category_names(*category_mask).join(","),
            units::format_time(*expires_at)
        ),
        TimelineData::Revoked { grantee, .. } => format!("revoked {grantee}"),
        TimelineData::GuardianSet { guardian, .. } => format!("named guardian {guardian}"),
        TimelineData::GuardianRemoved { guardian } => format!("removed guardian {guardian}"),
        TimelineData::BreakGlassOpened {
            provider,
            expires_at,
            ..
        } => format!(
            "BREAK-GLASS by {provider} until {}",
            units::format_time(*expires_at)
        ),
        TimelineData::BreakGlassClosed { provider, .. } => {
            format!("break-glass of {provider} closed")
        }
        TimelineData::PointerAnchored {
            record_id, holder, ..
        } => format!("record {record_id} anchored by {holder}"),
        TimelineData::PointerAnchoredUnderBreakGlass { record_id, holder } => format!(
            "record {record_id} was anchored by {holder} UNDER BREAK-GLASS, without a live grant"
        ),
        TimelineData::PointerErased { record_id, holder } => {
            format!("record {record_id} erased by its holder {holder}")
        }
        TimelineData::PointerSuperseded {
            old_record_id,
            new_record_id,
        } => format!("record {old_record_id} superseded by {new_record_id}"),
        TimelineData::BreakGlassReviewDue {
            opening_id,
            review_by,
            ..
        } => format!(
            "break-glass opening {opening_id} to be justified by {}",
            units::format_time(*review_by)
        ),
        TimelineData::BreakGlassReviewed {
            opening_id,
            justified,
            ..
        } => format!(
            "break-glass opening {opening_id} reviewed: {}",
            if *justified {
                "justified"
            } else {
                "UNJUSTIFIED"
            }
        ),
        TimelineData::BreakGlassOverdue { opening_id, .. } => {
            format!("break-glass opening {opening_id} OVERDUE: not justified in time")
        }
        TimelineData::ConsentSignaturesCancelled { grantee, .. } => {
            format!("signed grants and revocations for {grantee} cancelled")
        }
    }
}

/// Runs `timeline`.
pub async fn run_timeline(a: TimelineArgs, settings: &Settings, out: Printer) -> Result<()> {
    let patient = super::address_or_own(a.patient.as_deref(), "patient", settings)?;
    let mut path = format!("/v1/patients/{patient}/timeline");
    if let Some(b) = a.from_block {
        path.push_str(&format!("?from_block={b}"));
    }
    let signer = crate::keys::load(settings)?;
    let body: Timeline = get_as(settings, &signer, &path, a.opts.min_block).await?;
    // Study events name the patient's study pseudonyms, which only the patient can derive
    // (issue 16): the CLI finds them on chain for the patient's own timeline.
    let studies = if signer.address() == patient {
        super::study::own_study_events(settings, &signer, a.from_block, body.block).await?
    } else {
        vec![]
    };
    let mut lines = vec![format!(
        "what happened to {patient}'s records (as of block {})",
        body.block
    )];
    let mut events: Vec<(u64, u64, String)> = body
        .events
        .iter()
        .map(|e| (e.block, u64::from(e.log_index), describe(&e.what)))
        .collect();
    events.extend(studies.iter().map(|e| (e.block, e.log_index, e.describe())));
    events.sort();
    for (block, _, what) in events {
        lines.push(format!("  block {block:>6}  {what}"));
    }
    let mut data = serde_json::to_value(&body).unwrap_or_default();
    data["studyEvents"] = serde_json::to_value(&studies).unwrap_or_default();
    print(out, "timeline", &data, lines, "nothing yet");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Address;

    #[test]
    fn reviews_overdue_records_and_cancelled_signatures_are_described() {
        let a = Address::repeat_byte(0x11);
        let said = |w: TimelineData| describe(&w);
        assert_eq!(
            said(TimelineData::BreakGlassReviewed {
                opening_id: 2,
                provider: a,
                justified: false
            }),
            "break-glass opening 2 reviewed: UNJUSTIFIED"
        );
        assert_eq!(
            said(TimelineData::BreakGlassOverdue {
                opening_id: 1,
                provider: a
            }),
            "break-glass opening 1 OVERDUE: not justified in time"
        );
        assert_eq!(
            said(TimelineData::ConsentSignaturesCancelled {
                grantee: a,
                by: a,
                epoch: 1
            }),
            format!("signed grants and revocations for {a} cancelled")
        );
    }
}
