//! `medrec forget`: the holder erases a record (issue 16, step 7). Its gatekeeper first
//! destroys the record's data key and ciphertext, deletes its research facts and logs the
//! erasure; then the chain marks the pointer erased (`RecordRegistry.erase`, proven by the id
//! formula, nothing disclosed). Both steps are idempotent, so running the command again after
//! either failed finishes the job.

use crate::chain::{self, Chain};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use clap::Args;
use medrec_protocol::clock::{READ_VALIDITY_SECS, now_secs};
use medrec_protocol::envelope::random_nonce;
use medrec_protocol::records::{self as wire, EraseRequest, Erased};
use serde_json::json;

/// `forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Record id (0x + 64 hex)
    pub id: String,
    /// Your gatekeeper's URL
    #[arg(
        long,
        env = "MEDREC_GATEKEEPER_URL",
        default_value = medrec_protocol::records::DEFAULT_URL
    )]
    pub gatekeeper_url: String,
}

/// Runs `forget`.
pub async fn run(a: ForgetArgs, settings: &Settings, out: Printer) -> Result<()> {
    let id = units::record_id(&a.id)?;
    let signer = keys::load(settings)?;
    let me = signer.address();
    let chain = Chain::connect_signer(settings, signer.clone()).await?;
    let d = chain.deployment(settings).await?;
    let p = super::anchor::find_pointer(&chain, &d, id).await?;
    if p.holder != me {
        return Err(CliError::input(format!(
            "record {id} is held by {}, not by {me}: only its holder can erase it",
            p.holder
        )));
    }
    // Gatekeeper first: the data key is what erasure destroys; the chain's mark follows.
    let base = a.gatekeeper_url.trim_end_matches('/');
    let domain = medrec_bindings::gatekeeper_domain(chain.chain_id, d.record_registry);
    let issued = now_secs();
    let req = EraseRequest {
        holder: me,
        recordId: id,
        audience: me,
        nonce: random_nonce(),
        issuedAt: issued,
        expiresAt: issued + READ_VALIDITY_SECS,
    };
    let signed = super::records::sign(&signer, req, &domain).await?;
    let resp = super::records::client()?
        .post(wire::erase_url(base, id))
        .json(&signed)
        .send()
        .await
        .map_err(|e| CliError::Rpc(format!("cannot reach the gatekeeper at {base}: {e}")))?;
    let at_gatekeeper = if resp.status().as_u16() == 404 {
        out.progress(&format!(
            "your gatekeeper at {base} does not keep record {id}: nothing to destroy there"
        ));
        "absent"
    } else if !resp.status().is_success() {
        return Err(super::records::refusal("erase", resp).await);
    } else {
        let e: Erased = super::records::answer(resp, &format!("the gatekeeper at {base}")).await?;
        if e.erased_now {
            "erased"
        } else {
            "erased before"
        }
    };
    // Then the chain, unless an earlier run marked it already.
    let records = chain.records(&d);
    let marked = records.erased(id).call().await.map_err(|e| chain.err(e))?;
    let tx = if marked {
        None
    } else {
        Some(
            chain::send(&chain, records.erase(id, p.patient))
                .await
                .map_err(|e| {
                    CliError::Rpc(format!(
                        "erased at the gatekeeper but not marked on chain ({e}); run the same command again to finish"
                    ))
                })?,
        )
    };
    out.result(
        "forget",
        json!({"recordId": id, "patient": p.patient, "gatekeeper": at_gatekeeper,
               "tx": tx, "alreadyMarked": marked}),
        &format!(
            "record {id}: {at_gatekeeper} at the gatekeeper; {}",
            match &tx {
                Some(t) => format!(
                    "marked erased on chain in block {} (tx {})",
                    t.block_number, t.tx_hash
                ),
                None => "marked erased on chain before".to_string(),
            }
        ),
    );
    Ok(())
}
