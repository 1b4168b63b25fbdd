//! `medrec anchor`, `anchor-batch`, `pointer`: record pointers.
//!
//! A pointer carries a salted commitment to its record (`records::commitment`), never its
//! category or content hash: `anchor` and `anchor-batch` choose a random salt per record (or
//! take the one given) and print the opening (category and salt), which the holder keeps with
//! the record and gives to its readers; `medrec put` leaves that to the gatekeeper.

use crate::chain::{self, Chain, Deployment};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use clap::{Args, Subcommand};
use medrec_bindings::record_registry::{IRecordRegistry, RecordRegistry};
use medrec_chain::MAX_LOG_RANGE;
use medrec_protocol::records as wire;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Longest locator the registry accepts.
const MAX_LOCATOR: usize = 256;
/// Most pointers per transaction the registry accepts.
const MAX_BATCH: usize = 200;

/// `anchor`.
#[derive(Debug, Args)]
pub struct AnchorArgs {
    /// The record file (its SHA-256 is anchored; the file stays here)
    pub file: PathBuf,
    /// The patient the record belongs to
    #[arg(long)]
    pub patient: String,
    /// The record's category
    #[arg(long, short = 'c')]
    pub category: String,
    /// Your own reference for the record (opaque: requesters read at the endpoint you
    /// registered with `medrec holder register`, never at a locator)
    #[arg(long)]
    pub locator: String,
    /// Record id, if you give it: it must be the one the registry derives, keccak256 of
    /// (holder, patient, commitment) [default: that id]
    #[arg(long)]
    pub id: Option<String>,
    /// The commitment's salt (0x + 64 hex) [default: a fresh random one, printed: keep it with
    /// the record]. It must be random and used once: a fixed or reused salt makes the category
    /// and the content guessable from the commitment again (all zeros is refused)
    #[arg(long)]
    pub salt: Option<String>,
    /// Id of an earlier record of yours (same patient) that this one amends
    #[arg(long)]
    pub supersedes: Option<String>,
}

/// `anchor-batch`.
#[derive(Debug, Args)]
pub struct AnchorBatchArgs {
    /// JSON manifest: [{"file","patient","category","locator","id"?,"salt"?}, ...]; paths
    /// relative to it. A salt given must be random and used once (all zeros, or one used
    /// twice in the manifest, is refused): a fixed salt makes the category and content guessable
    pub manifest: PathBuf,
    /// Pointers per transaction (1-200)
    #[arg(long, default_value_t = 50)]
    pub batch_size: usize,
}

/// Pointer subcommands.
#[derive(Debug, Subcommand)]
pub enum PointerCmd {
    /// Show a pointer as anchored, and whether it was superseded
    Show(IdArg),
    /// Check a file's bytes and the record's opening against a pointer's commitment
    Verify(VerifyArgs),
}

/// A record id argument.
#[derive(Debug, Args)]
pub struct IdArg {
    /// Record id (0x + 64 hex, or the text it was derived from)
    pub id: String,
}

/// `pointer verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Record id
    pub id: String,
    /// The file to check
    pub file: PathBuf,
    /// The record's category (from its holder)
    #[arg(long, short = 'c')]
    pub category: String,
    /// The record's salt (from its holder)
    #[arg(long)]
    pub salt: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEntry {
    file: PathBuf,
    patient: String,
    category: String,
    locator: String,
    id: Option<String>,
    salt: Option<String>,
}

/// A JSON manifest's entries (at least one) and the folder its relative paths start from.
pub fn read_manifest<T: serde::de::DeserializeOwned>(path: &Path) -> Result<(Vec<T>, PathBuf)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Io(format!("cannot read {}: {e}", path.display())))?;
    let entries: Vec<T> = serde_json::from_str(&text)
        .map_err(|e| CliError::input(format!("bad manifest {}: {e}", path.display())))?;
    if entries.is_empty() {
        return Err(CliError::input("the manifest lists no records"));
    }
    Ok((
        entries,
        path.parent().unwrap_or(Path::new(".")).to_path_buf(),
    ))
}

fn sha256_file(path: &Path) -> Result<B256> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::Io(format!("cannot read {}: {e}", path.display())))?;
    Ok(B256::from_slice(&Sha256::digest(&bytes)))
}

/// The record's id: the registry's (holder, patient, commitment) formula; an explicit id
/// must be that one (the registry refuses any other with RecordIdNotBound).
fn bound_id(
    explicit: Option<B256>,
    holder: Address,
    patient: Address,
    commitment: B256,
) -> Result<B256> {
    let id = wire::record_id(holder, patient, commitment);
    match explicit {
        Some(given) if given != id => Err(CliError::input(format!(
            "record id {given} is not this record's id {id}: an id is keccak256(holder, patient, commitment)"
        ))),
        _ => Ok(id),
    }
}

/// The opening of a record of `category`: the salt given, or a fresh random one. An all-zero
/// salt is refused: it hides nothing, anyone can try each category and known document with it.
fn opening(category: u8, salt: Option<&str>) -> Result<wire::Opening> {
    Ok(match salt {
        Some(s) => {
            let salt = units::b256(s, "salt")?;
            if salt.is_zero() {
                return Err(CliError::input(
                    "salt 0x00…00 hides nothing: give a random salt, or none for a fresh one",
                ));
            }
            wire::Opening { category, salt }
        }
        None => wire::Opening::new(category),
    })
}

fn check_locator(l: &str) -> Result<()> {
    if l.is_empty() || l.len() > MAX_LOCATOR {
        return Err(CliError::input(format!(
            "bad locator: {} bytes, expected 1 to {MAX_LOCATOR}",
            l.len()
        )));
    }
    Ok(())
}

/// A pointer as anchored, read back from its event.
#[derive(Debug, Clone)]
pub struct Anchored {
    /// The record id.
    pub record_id: B256,
    /// The patient.
    pub patient: Address,
    /// The holder.
    pub holder: Address,
    /// Its hiding commitment (the category and the content hash are the holder's to tell).
    pub commitment: B256,
    /// Where it lives.
    pub locator: String,
    /// The block it was anchored in.
    pub block: u64,
}

/// The logs matching `filter` from block `from` to the latest, read in ranges of
/// [`MAX_LOG_RANGE`] blocks (nodes cap a call's range or the size of its answer, so a chain of
/// any length is read in bounded ranges); with `first_only`, stops after the first range that
/// has any.
pub(crate) async fn scan_logs(
    chain: &Chain,
    filter: &Filter,
    from: u64,
    first_only: bool,
) -> Result<Vec<Log>> {
    let node = |e| crate::error::from_transport(e, &chain.url);
    let latest = chain.provider.get_block_number().await.map_err(node)?;
    let mut found = vec![];
    let mut start = from;
    while start <= latest {
        let end = latest.min(start.saturating_add(MAX_LOG_RANGE - 1));
        let range = filter.clone().from_block(start).to_block(end);
        found.extend(chain.provider.get_logs(&range).await.map_err(node)?);
        if first_only && !found.is_empty() {
            break;
        }
        start = end + 1;
    }
    Ok(found)
}

/// Finds the `PointerAnchored` event of `id`, reading from the deployment's block on.
pub async fn find_pointer(chain: &Chain, d: &Deployment, id: B256) -> Result<Anchored> {
    let filter = Filter::new()
        .address(d.record_registry)
        .event_signature(RecordRegistry::PointerAnchored::SIGNATURE_HASH)
        .topic1(id);
    let logs = scan_logs(chain, &filter, d.start_block, true).await?;
    let log = logs.first().ok_or_else(|| {
        CliError::input(format!(
            "unknown record {id}: no pointer anchored with this id"
        ))
    })?;
    let ev = log
        .log_decode::<RecordRegistry::PointerAnchored>()
        .map_err(|e| CliError::Rpc(format!("cannot decode the pointer event: {e}")))?;
    let e = ev.inner.data;
    Ok(Anchored {
        record_id: e.recordId,
        patient: e.patient,
        holder: e.holder,
        commitment: e.commitment,
        locator: e.locator,
        block: log.block_number.unwrap_or_default(),
    })
}

/// Runs `anchor`.
pub async fn run_anchor(a: AnchorArgs, settings: &Settings, out: Printer) -> Result<()> {
    let patient = units::address(&a.patient, "patient")?;
    let category = units::category(&a.category)?;
    check_locator(&a.locator)?;
    let explicit_id = a.id.as_deref().map(units::record_id).transpose()?;
    let supersedes = a.supersedes.as_deref().map(units::record_id).transpose()?;
    let opening = opening(category, a.salt.as_deref())?;
    let content_hash = sha256_file(&a.file)?;
    let signer = keys::load(settings)?;
    let holder = signer.address();
    let commitment = opening.commit(patient, holder, content_hash);
    let record_id = bound_id(explicit_id, holder, patient, commitment)?;
    let chain = Chain::connect_signer(settings, signer).await?;
    let d = chain.deployment(settings).await?;
    let p = IRecordRegistry::Pointer {
        recordId: record_id,
        patient,
        commitment,
        locator: a.locator.clone(),
        supersedes: supersedes.unwrap_or(B256::ZERO),
    };
    let tx = chain::send(&chain, chain.records(&d).anchor(p)).await?;
    out.result(
        "anchor",
        json!({"recordId": record_id, "patient": patient, "holder": holder,
               "category": medrec_bindings::category_name(category), "contentHash": content_hash,
               "commitment": commitment, "salt": opening.salt,
               "locator": a.locator, "supersedes": supersedes, "tx": tx}),
        &format!(
            "anchored record {record_id}\n  sha256 {content_hash}\n  patient {patient}, category {}\n  salt {} (keep it with the record: its readers need it)\n  tx {} (block {}, gas {})",
            medrec_bindings::category_name(category),
            opening.salt,
            tx.tx_hash,
            tx.block_number,
            tx.gas_used
        ),
    );
    Ok(())
}

/// Runs `anchor-batch`.
pub async fn run_batch(a: AnchorBatchArgs, settings: &Settings, out: Printer) -> Result<()> {
    if a.batch_size == 0 || a.batch_size > MAX_BATCH {
        return Err(CliError::input(format!(
            "--batch-size must be 1 to {MAX_BATCH}"
        )));
    }
    let (entries, base) = read_manifest::<ManifestEntry>(&a.manifest)?;
    let base = base.as_path();
    let signer = keys::load(settings)?;
    let holder = signer.address();
    // Check every entry before sending anything.
    let mut pointers = Vec::with_capacity(entries.len());
    let mut openings = Vec::with_capacity(entries.len());
    let mut salts = std::collections::HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        let at = |err: CliError| CliError::input(format!("manifest entry {}: {err}", i + 1));
        let patient = units::address(&e.patient, "patient").map_err(at)?;
        let category = units::category(&e.category).map_err(at)?;
        check_locator(&e.locator).map_err(at)?;
        let path = if e.file.is_absolute() {
            e.file.clone()
        } else {
            base.join(&e.file)
        };
        let content_hash = sha256_file(&path)?;
        let explicit =
            e.id.as_deref()
                .map(units::record_id)
                .transpose()
                .map_err(at)?;
        let opening = opening(category, e.salt.as_deref()).map_err(at)?;
        // A salt given twice makes the two commitments comparable: refused.
        if e.salt.is_some() && !salts.insert(opening.salt) {
            return Err(at(CliError::input(format!(
                "salt {} is used by an earlier entry: each record needs its own random salt",
                opening.salt
            ))));
        }
        let commitment = opening.commit(patient, holder, content_hash);
        let record_id = bound_id(explicit, holder, patient, commitment).map_err(at)?;
        openings.push(
            json!({"recordId": record_id, "category": medrec_bindings::category_name(category),
                             "salt": opening.salt}),
        );
        pointers.push(IRecordRegistry::Pointer {
            recordId: record_id,
            patient,
            commitment,
            locator: e.locator.clone(),
            supersedes: B256::ZERO,
        });
    }
    // Listed in the manifest's order; anchored with a patient's records together, in record-id
    // order (random, as the salts are): the manifest's order, often by category name, would
    // otherwise be the order of the logs.
    let ids: Vec<B256> = pointers.iter().map(|p| p.recordId).collect();
    pointers.sort_by_key(|p| (p.patient, p.recordId));
    let chain = Chain::connect_signer(settings, signer).await?;
    let d = chain.deployment(settings).await?;
    let records = chain.records(&d);
    let mut done = 0usize;
    let mut gas = 0u64;
    let mut txs = vec![];
    for chunk in pointers.chunks(a.batch_size) {
        let tx = chain::send(&chain, records.anchorBatch(chunk.to_vec()))
            .await
            .map_err(|e| match e {
                CliError::Revert(r) => CliError::Revert(medrec_bindings::DecodedRevert {
                    name: r.name,
                    args: {
                        let mut args = r.args;
                        args.push(("anchoredBefore".into(), done.to_string()));
                        args
                    },
                }),
                other => other,
            })?;
        done += chunk.len();
        gas += tx.gas_used;
        out.progress(&format!(
            "anchored {done}/{} (tx {})",
            pointers.len(),
            tx.tx_hash
        ));
        txs.push(tx);
    }
    out.result(
        "anchor-batch",
        json!({"anchored": done, "recordIds": ids, "openings": openings, "gasUsed": gas, "txs": txs}),
        &format!(
            "anchored {done} records in {} transactions, {} gas per record (their openings: --json; keep them with the records)",
            txs.len(),
            gas / done.max(1) as u64
        ),
    );
    Ok(())
}

/// Runs a pointer subcommand.
pub async fn run_pointer(cmd: PointerCmd, settings: &Settings, out: Printer) -> Result<()> {
    match cmd {
        PointerCmd::Show(a) => {
            let id = units::record_id(&a.id)?;
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let p = find_pointer(&chain, &d, id).await?;
            let state = chain
                .records(&d)
                .pointerOf(id)
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            let superseded = (state.supersededBy != B256::ZERO).then_some(state.supersededBy);
            let break_glass = chain
                .records(&d)
                .anchoredUnderBreakGlass(id)
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            let mut human = format!(
                "record {id}\n  patient    {}\n  holder     {}\n  commitment {} (its category and content: from the holder)\n  locator    {}\n  anchored in block {}",
                p.patient, p.holder, p.commitment, p.locator, p.block
            );
            if let Some(s) = superseded {
                human.push_str(&format!("\n  superseded by {s}"));
            }
            if break_glass {
                human.push_str(
                    "\n  ANCHORED UNDER BREAK-GLASS: the holder had no live grant of the patient",
                );
            }
            out.result(
                "pointer show",
                json!({"recordId": id, "patient": p.patient, "holder": p.holder,
                       "commitment": p.commitment, "locator": p.locator, "block": p.block, "supersededBy": superseded,
                       "breakGlass": break_glass}),
                &human,
            );
        }
        PointerCmd::Verify(a) => {
            let id = units::record_id(&a.id)?;
            let opening = wire::Opening {
                category: units::category(&a.category)?,
                salt: units::b256(&a.salt, "salt")?,
            };
            let actual = sha256_file(&a.file)?;
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let p = find_pointer(&chain, &d, id).await?;
            let stored = chain
                .records(&d)
                .pointerOf(id)
                .call()
                .await
                .map_err(|e| chain.err(e))?
                .commitment;
            if !opening.opens(stored, p.patient, p.holder, actual) {
                return Err(CliError::Integrity(format!(
                    "MISMATCH: {} (sha256 {actual}) with this category and salt does not open record {id}'s commitment {stored}",
                    a.file.display()
                )));
            }
            out.result(
                "pointer verify",
                json!({"recordId": id, "file": a.file, "contentHash": actual, "verified": true}),
                &format!(
                    "verified: {} matches record {id} ({actual})",
                    a.file.display()
                ),
            );
        }
    }
    Ok(())
}
