//! `medrec forget`: the holder erases a record (issue 16, step 7). Its gatekeeper first
//! destroys the record's data key and ciphertext, deletes its research facts and logs the
//! erasure; then the chain marks the pointer erased (`RecordRegistry.erase`, proven by the id
//! formula, nothing disclosed). Both steps are idempotent, so running the command again after
//! either failed finishes the job.
//!
//! The order goes only to the endpoint the holder registered on chain, after its `/health`
//! says it serves this holder: the chain's mark must never stand for a destruction that did
//! not happen (a wrong URL, a wrong path, another holder's gatekeeper). A gatekeeper that
//! keeps no such record (`no_such_record`, never a route's `not_found`) leaves the chain
//! unmarked unless `--force` says to mark it anyway.

use crate::chain::{self, Chain};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::transports::http::reqwest;
use clap::Args;
use medrec_protocol::clock::{READ_VALIDITY_SECS, now_secs};
use medrec_protocol::envelope::random_nonce;
use medrec_protocol::error::ErrorCode;
use medrec_protocol::health::{HEALTH_PATH, Health};
use medrec_protocol::records::{self as wire, EraseRequest, Erased};
use serde_json::json;

/// `forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Record id (0x + 64 hex)
    pub id: String,
    /// The gatekeeper URL you expect: refused unless it is the endpoint you registered on
    /// chain, where the erasure is sent in any case
    #[arg(long)]
    pub gatekeeper_url: Option<String>,
    /// Mark the pointer erased on chain even if your gatekeeper keeps no such record (its data
    /// was never there, or was lost): nothing is destroyed then
    #[arg(long)]
    pub force: bool,
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
    // Only the endpoint this holder registered on chain, and only if the gatekeeper there
    // serves this holder: anywhere else a refusal or a 404 would say nothing of the record.
    let base = super::holder::gatekeeper_url(&chain, &d, me).await?;
    if let Some(given) = &a.gatekeeper_url {
        let same = super::holder::checked_endpoint(given.trim().trim_end_matches('/'))
            .is_ok_and(|g| g == base);
        if !same {
            return Err(CliError::input(format!(
                "--gatekeeper-url {given:?} is not the endpoint you registered on chain ({base}); records are erased only there"
            )));
        }
    }
    let base = base.as_str();
    let http = super::records::client()?;
    let unreachable =
        |e: reqwest::Error| CliError::Rpc(format!("cannot reach your gatekeeper at {base}: {e}"));
    // A stale node answers 503 with the same body: whom it serves is all that is asked here.
    let health = http
        .get(format!("{base}{HEALTH_PATH}"))
        .send()
        .await
        .map_err(unreachable)?;
    let health: Health = serde_json::from_slice(
        &super::records::body(health, &format!("your gatekeeper at {base}")).await?,
    )
    .map_err(|e| {
        CliError::Rpc(format!(
            "the endpoint you registered ({base}) does not answer as a gatekeeper: {e}"
        ))
    })?;
    if health.holder != me {
        return Err(CliError::Integrity(format!(
            "the gatekeeper at your registered endpoint {base} serves {}, not you: nothing erased, the chain not marked",
            health.holder
        )));
    }
    // Gatekeeper first: the data key is what erasure destroys; the chain's mark follows.
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
    let resp = http
        .post(wire::erase_url(base, id))
        .json(&signed)
        .send()
        .await
        .map_err(unreachable)?;
    let at_gatekeeper = if resp.status().is_success() {
        let e: Erased = super::records::answer(resp, &format!("the gatekeeper at {base}")).await?;
        if e.erased_now {
            "erased"
        } else {
            "erased before"
        }
    } else if resp.status().as_u16() == ErrorCode::NoSuchRecord.status() {
        let (code, msg) = super::records::error_body(resp).await;
        if code != ErrorCode::NoSuchRecord.as_str() {
            return Err(CliError::input(format!(
                "erase: your gatekeeper at {base} answered 404 ({code}): {msg}; nothing erased, the chain not marked"
            )));
        }
        if !a.force {
            return Err(CliError::Refused(format!(
                "your gatekeeper at {base} keeps no record {id}, so nothing was destroyed: the chain is not marked (--force marks it anyway)"
            )));
        }
        out.progress(&format!(
            "your gatekeeper at {base} keeps no record {id}: nothing to destroy there (--force)"
        ));
        "absent"
    } else {
        return Err(super::records::refusal("erase", resp).await);
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
