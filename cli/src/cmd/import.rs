//! `medrec import`: a holder stores many FHIR records at its gatekeeper and anchors their
//! pointers in batches. Safe to run again after a failure: uploads are idempotent (the
//! gatekeeper keeps one copy per document of a patient, with the salt it chose for it, so a
//! record's id comes from the gatekeeper's answer) and records already anchored are skipped.

use crate::chain::{self, Chain};
use crate::cmd::anchor::read_manifest;
use crate::cmd::records::{client, upload};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::primitives::{Address, B256};
use clap::Args;
use medrec_bindings::record_registry::IRecordRegistry;
use medrec_protocol::records as wire;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// JSON manifest: [{"file","patient","category"}, ...]; paths relative to it
    pub manifest: PathBuf,
    /// Your gatekeeper's URL (the pointers' locators name it)
    #[arg(
        long,
        env = "MEDREC_GATEKEEPER_URL",
        default_value = medrec_protocol::records::DEFAULT_URL
    )]
    pub gatekeeper_url: String,
    /// Pointers per anchoring transaction (1-200)
    #[arg(long, default_value_t = 50)]
    pub batch_size: usize,
    /// Uploads in flight at once
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Also write the result (as `--json` prints it) to this file
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    file: PathBuf,
    patient: String,
    category: String,
}

struct Record {
    path: PathBuf,
    patient: Address,
    category: u8,
    hash: B256,
}

/// Runs `import`.
pub async fn run(a: ImportArgs, settings: &Settings, out: Printer) -> Result<()> {
    if a.batch_size == 0 || a.batch_size > 200 {
        return Err(CliError::input("--batch-size must be 1 to 200"));
    }
    if a.parallel == 0 || a.parallel > 64 {
        return Err(CliError::input("--parallel must be 1 to 64"));
    }
    let started = Instant::now();
    let (entries, base) = read_manifest::<Entry>(&a.manifest)?;
    let signer = keys::load(settings)?;
    let holder = signer.address();
    // Every entry is checked before anything is sent.
    let mut records = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let at = |err: CliError| CliError::input(format!("manifest entry {}: {err}", i + 1));
        let patient = units::address(&e.patient, "patient").map_err(at)?;
        let category = units::category(&e.category).map_err(at)?;
        let path = if e.file.is_absolute() {
            e.file.clone()
        } else {
            base.join(&e.file)
        };
        let bytes = std::fs::read(&path)
            .map_err(|err| CliError::Io(format!("cannot read {}: {err}", path.display())))?;
        if !wire::is_fhir(&bytes) {
            return Err(at(CliError::input(format!(
                "{} is not a FHIR R4 JSON resource",
                path.display()
            ))));
        }
        let hash = B256::from_slice(&Sha256::digest(&bytes));
        records.push(Record {
            path,
            patient,
            category,
            hash,
        });
    }
    let chain = Chain::connect_signer(settings, signer.clone()).await?;
    let d = chain.deployment(settings).await?;
    let registry = chain.records(&d);

    // Upload every record, a few at a time: the gatekeeper answers a record it keeps already
    // with its id and opening, which are not known before (the salt is the gatekeeper's).
    let gk = a.gatekeeper_url.trim_end_matches('/').to_string();
    let domain = medrec_bindings::gatekeeper_domain(chain.chain_id, d.record_registry);
    let http = client()?;
    let records = Arc::new(records);
    let mut uploads = tokio::task::JoinSet::new();
    let mut stored: Vec<Option<(B256, B256)>> = vec![None; records.len()];
    let mut uploaded = 0usize;
    let mut bytes_total = 0u64;
    let mut next = 0usize;
    let upload_started = Instant::now();
    while next < records.len() || !uploads.is_empty() {
        while next < records.len() && uploads.len() < a.parallel {
            let (records, i) = (records.clone(), next);
            let (http, gk, domain, signer) =
                (http.clone(), gk.clone(), domain.clone(), signer.clone());
            uploads.spawn(async move {
                let r = &records[i];
                let bytes = std::fs::read(&r.path)
                    .map_err(|e| CliError::Io(format!("cannot read {}: {e}", r.path.display())))?;
                if B256::from_slice(&Sha256::digest(&bytes)) != r.hash {
                    return Err(CliError::Io(format!(
                        "{} changed during the import",
                        r.path.display()
                    )));
                }
                let n = bytes.len() as u64;
                let what = (r.patient, r.category, r.hash);
                let up = upload(&http, &gk, &signer, &domain, what, bytes)
                    .await
                    .map_err(|e| match e {
                        CliError::Refused(m) => {
                            CliError::Refused(format!("{}: {m}", r.path.display()))
                        }
                        other => other,
                    })?;
                Ok((i, n, up.record_id, up.commitment))
            });
            next += 1;
        }
        if let Some(done) = uploads.join_next().await {
            let (i, n, id, commitment) =
                done.map_err(|e| CliError::Rpc(format!("an upload failed: {e}")))??;
            stored[i] = Some((id, commitment));
            bytes_total += n;
            uploaded += 1;
            if uploaded.is_multiple_of(1000) || uploaded == records.len() {
                out.progress(&format!("uploaded {uploaded}/{}", records.len()));
            }
        }
    }
    let upload_secs = upload_started.elapsed().as_secs_f64();
    let stored: Vec<(B256, B256)> = stored.into_iter().flatten().collect();

    // What is anchored already (an earlier run) is skipped.
    let mut anchored = vec![false; records.len()];
    let mut checks = tokio::task::JoinSet::new();
    let ids: Arc<Vec<B256>> = Arc::new(stored.iter().map(|(id, _)| *id).collect());
    for w in 0..a.parallel {
        let (registry, ids, parallel) = (registry.clone(), ids.clone(), a.parallel);
        checks.spawn(async move {
            let mut found = vec![];
            for i in (w..ids.len()).step_by(parallel) {
                let p = registry.pointerOf(ids[i]).call().await?;
                if p.commitment != B256::ZERO {
                    found.push(i);
                }
            }
            Ok::<_, alloy::contract::Error>(found)
        });
    }
    while let Some(done) = checks.join_next().await {
        let found = done
            .map_err(|e| CliError::Rpc(format!("checking pointers failed: {e}")))?
            .map_err(|e| chain.err(e))?;
        for i in found {
            anchored[i] = true;
        }
    }
    let todo: Vec<usize> = (0..records.len()).filter(|i| !anchored[*i]).collect();
    let skipped = records.len() - todo.len();
    if skipped > 0 {
        out.progress(&format!(
            "{skipped} of {} records are anchored already",
            records.len()
        ));
    }

    // Anchor the pointers, a batch per transaction, a patient's records together.
    let mut pointers: Vec<IRecordRegistry::Pointer> = todo
        .iter()
        .map(|&i| {
            let (id, commitment) = stored[i];
            IRecordRegistry::Pointer {
                recordId: id,
                patient: records[i].patient,
                commitment,
                locator: wire::locator(&gk, id),
                supersedes: B256::ZERO,
            }
        })
        .collect();
    // Within a patient's run, by record id (random, as its salt is): the manifest's order, often
    // by category name, would otherwise be the order of the logs on chain.
    pointers.sort_by_key(|p| (p.patient, p.recordId));
    let anchor_started = Instant::now();
    let (mut done, mut gas, mut txs) = (0usize, 0u64, 0usize);
    for chunk in pointers.chunks(a.batch_size) {
        let tx = chain::send(&chain, registry.anchorBatch(chunk.to_vec()))
            .await
            .map_err(|e| match e {
                CliError::Revert(mut r) => {
                    r.args
                        .push(("anchoredBefore".into(), (skipped + done).to_string()));
                    CliError::Revert(r)
                }
                other => other,
            })?;
        done += chunk.len();
        gas += tx.gas_used;
        txs += 1;
        if txs.is_multiple_of(20) || done == pointers.len() {
            out.progress(&format!("anchored {done}/{}", pointers.len()));
        }
    }
    let anchor_secs = anchor_started.elapsed().as_secs_f64();
    let mut result = json!({"holder": holder, "records": records.len(), "alreadyAnchored": skipped,
           "uploaded": uploaded, "bytes": bytes_total, "uploadSeconds": upload_secs,
           "anchored": done, "transactions": txs, "gasUsed": gas, "anchorSeconds": anchor_secs,
           "seconds": started.elapsed().as_secs_f64()});
    medrec_bindings::checksum_addresses(&mut result);
    if let Some(path) = &a.report {
        let tmp = path.with_extension("tmp");
        std::fs::write(
            &tmp,
            json!({"command": "import", "data": result}).to_string(),
        )
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| CliError::Io(format!("cannot write {}: {e}", path.display())))?;
    }
    out.result(
        "import",
        result,
        &format!(
            "imported {} records for {holder}: {uploaded} uploaded ({:.1} MB, {:.0}/s), {done} anchored in {txs} transactions ({} gas per record), {skipped} anchored already",
            records.len(),
            bytes_total as f64 / 1e6,
            uploaded as f64 / upload_secs.max(1e-9),
            gas / done.max(1) as u64
        ),
    );
    Ok(())
}
