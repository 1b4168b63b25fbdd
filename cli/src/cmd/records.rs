//! `medrec put`, `get`: records through the holders' gatekeepers.

use crate::chain::{self, Chain};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use alloy::transports::http::reqwest;
use clap::Args;
use medrec_bindings::record_registry::IRecordRegistry;
use medrec_protocol::clock::{CLIENT_TIMEOUT, READ_VALIDITY_SECS, now_secs};
use medrec_protocol::envelope::{SIGNATURE_HEADER, UPLOAD_HEADER, random_nonce, sign_hex};
use medrec_protocol::records::{self as wire, FHIR_JSON, UPLOAD_PATH, Uploaded};
use medrec_protocol::{ErrorBody, RecordRequest, Signed, SignedRequest, Upload};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::PathBuf;

/// `put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The FHIR R4 JSON file to store at your gatekeeper and anchor on chain
    pub file: PathBuf,
    /// The patient the record belongs to
    #[arg(long)]
    pub patient: String,
    /// The record's category
    #[arg(long, short = 'c')]
    pub category: String,
    /// Your gatekeeper's URL
    #[arg(
        long,
        env = "MEDREC_GATEKEEPER_URL",
        default_value = medrec_protocol::records::DEFAULT_URL
    )]
    pub gatekeeper_url: String,
}

/// `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Record id (0x + 64 hex, or the text it was derived from)
    pub id: String,
    /// Write the record here (default: stdout)
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

/// The HTTP client for every request to a gatekeeper. It follows no redirect: a signed
/// request goes to the endpoint its holder registered and nowhere a response points to.
pub(crate) fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| CliError::Rpc(format!("cannot build an HTTP client: {e}")))
}

/// Signs a gatekeeper request under `domain`.
pub(crate) async fn sign<T: SignedRequest>(
    signer: &PrivateKeySigner,
    request: T,
    domain: &Eip712Domain,
) -> Result<Signed<T>> {
    Signed::sign(request, signer, domain)
        .await
        .map_err(|e| CliError::Key(format!("cannot sign: {e}")))
}

/// The typed answer in a gatekeeper's response; a malformed one is a one-line error naming
/// `from`.
pub(crate) async fn answer<T: DeserializeOwned>(resp: reqwest::Response, from: &str) -> Result<T> {
    serde_json::from_slice(&body(resp, from).await?)
        .map_err(|e| CliError::Rpc(format!("malformed answer from {from}: {e}")))
}

/// The whole body of a gatekeeper's response; a broken-off one is a one-line error naming
/// `from`.
pub(crate) async fn body(resp: reqwest::Response, from: &str) -> Result<Vec<u8>> {
    resp.bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| CliError::Rpc(format!("{from} broke off: {e}")))
}

/// A gatekeeper's error answer: its code as the gatekeeper wrote it and its message
/// (`unknown` and `no message` for what the body does not hold).
pub(crate) async fn error_body(resp: reqwest::Response) -> (String, String) {
    ErrorBody::describe(&resp.bytes().await.unwrap_or_default())
}

/// Uploads one record, signed by its holder; the id the gatekeeper stored it under, with the
/// opening it chose, checked: the commitment is the one the opening gives, the id the one the
/// commitment gives (else the holder would anchor what its own gatekeeper cannot open).
pub(crate) async fn upload(
    http: &reqwest::Client,
    base: &str,
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    (patient, category, hash): (alloy::primitives::Address, u8, B256),
    bytes: Vec<u8>,
) -> Result<Uploaded> {
    let upload = Upload {
        holder: signer.address(),
        patient,
        category,
        contentHash: hash,
        nonce: random_nonce(),
        issuedAt: now_secs(),
    };
    let sig = sign_hex(signer, &upload, domain)
        .await
        .map_err(|e| CliError::Key(format!("cannot sign: {e}")))?;
    let resp = http
        .post(format!("{base}{UPLOAD_PATH}"))
        .header(
            UPLOAD_HEADER,
            serde_json::to_string(&upload).map_err(|e| CliError::Io(e.to_string()))?,
        )
        .header(SIGNATURE_HEADER, sig)
        .header("content-type", FHIR_JSON)
        .body(bytes)
        .send()
        .await
        .map_err(|e| CliError::Rpc(format!("cannot reach the gatekeeper at {base}: {e}")))?;
    if !resp.status().is_success() {
        return Err(refusal("upload", resp).await);
    }
    let stored: Uploaded = answer(resp, &format!("the gatekeeper at {base}")).await?;
    let commitment = stored.opening.commit(patient, signer.address(), hash);
    if stored.content_hash != hash
        || stored.commitment != commitment
        || stored.record_id != wire::record_id(signer.address(), patient, commitment)
    {
        return Err(CliError::Integrity(format!(
            "the gatekeeper at {base} answered an id or opening that does not match the record"
        )));
    }
    Ok(stored)
}

/// The one line for a gatekeeper whose node is behind the chain (`503 chain_stale`, or its
/// health saying so): it serves nothing until the node catches up, which passes, so the
/// request is worth sending again later.
pub(crate) fn node_behind(what: &str) -> CliError {
    CliError::Rpc(format!(
        "{what}: the holder's node is behind the chain ({}), so its gatekeeper answers nothing now: try again later",
        medrec_protocol::health::CHAIN_STALE
    ))
}

/// [`node_behind`] for a gatekeeper's `503 chain_stale`; `None` for any other answer.
pub(crate) fn chain_stale(status: reqwest::StatusCode, code: &str, what: &str) -> Option<CliError> {
    (status == reqwest::StatusCode::SERVICE_UNAVAILABLE
        && code == medrec_protocol::health::CHAIN_STALE)
        .then(|| node_behind(what))
}

/// The gatekeeper's error as one line.
pub(crate) async fn refusal(what: &str, resp: reqwest::Response) -> CliError {
    let status = resp.status();
    if status.is_redirection() {
        let to: String = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|l| {
                String::from_utf8_lossy(l.as_bytes())
                    .chars()
                    .take(200)
                    .collect()
            })
            .unwrap_or_default();
        return CliError::Refused(format!(
            "{what}: the gatekeeper answered with a redirect ({status}) to {to:?}, which medrec never follows"
        ));
    }
    let (code, msg) = error_body(resp).await;
    if let Some(e) = chain_stale(status, &code, what) {
        e
    } else if status.as_u16() == 403 {
        CliError::Refused(format!("{what}: the gatekeeper refused ({code}): {msg}"))
    } else if status.is_server_error() {
        CliError::Rpc(format!(
            "{what}: the gatekeeper failed ({status}, {code}): {msg}"
        ))
    } else {
        CliError::input(format!(
            "{what}: the gatekeeper rejected the request ({status}, {code}): {msg}"
        ))
    }
}

/// Runs `put`.
pub async fn run_put(a: PutArgs, settings: &Settings, out: Printer) -> Result<()> {
    let patient = units::address(&a.patient, "patient")?;
    let category = units::category(&a.category)?;
    let bytes = std::fs::read(&a.file)
        .map_err(|e| CliError::Io(format!("cannot read {}: {e}", a.file.display())))?;
    if !wire::is_fhir(&bytes) {
        return Err(CliError::input(format!(
            "{} is not a FHIR R4 JSON resource",
            a.file.display()
        )));
    }
    let hash = B256::from_slice(&Sha256::digest(&bytes));
    let signer = keys::load(settings)?;
    let chain = Chain::connect_signer(settings, signer.clone()).await?;
    let d = chain.deployment(settings).await?;
    let domain = medrec_bindings::gatekeeper_domain(chain.chain_id, d.record_registry);
    let base = a.gatekeeper_url.trim_end_matches('/');
    let stored = upload(
        &client()?,
        base,
        &signer,
        &domain,
        (patient, category, hash),
        bytes,
    )
    .await?;
    let record_id = stored.record_id;
    if stored.opening.category != category {
        out.progress(&format!(
            "note: the gatekeeper keeps this document already, as category {}",
            medrec_bindings::category_name(stored.opening.category)
        ));
    }
    out.progress(&format!(
        "stored at the gatekeeper as {record_id}; anchoring..."
    ));
    let locator = wire::locator(base, record_id);
    let p = IRecordRegistry::Pointer {
        recordId: record_id,
        patient,
        commitment: stored.commitment,
        locator: locator.clone(),
        supersedes: B256::ZERO,
    };
    let records = chain.records(&d);
    let tx = match chain::send(&chain, records.anchor(p)).await {
        Ok(tx) => Some(tx),
        Err(CliError::Revert(r)) if r.name == "RecordExists" => {
            let same = records
                .pointerOf(record_id)
                .call()
                .await
                .map_err(|e| chain.err(e))?
                .commitment
                == stored.commitment;
            if !same {
                return Err(CliError::Revert(r));
            }
            None
        }
        Err(e) => {
            return Err(CliError::Rpc(format!(
                "stored at the gatekeeper but not anchored ({e}); run the same command again to anchor it"
            )));
        }
    };
    out.result(
        "put",
        json!({"recordId": record_id, "contentHash": hash, "commitment": stored.commitment,
               "salt": stored.opening.salt, "locator": locator, "patient": patient,
               "category": medrec_bindings::category_name(stored.opening.category), "tx": tx,
               "alreadyAnchored": tx.is_none()}),
        &format!(
            "record {record_id}\n  sha256  {hash}\n  at      {locator}\n  {}",
            match &tx {
                Some(t) => format!("anchored in block {} (tx {})", t.block_number, t.tx_hash),
                None => "already anchored".to_string(),
            }
        ),
    );
    Ok(())
}

/// Runs `get`.
pub async fn run_get(a: GetArgs, settings: &Settings, out: Printer) -> Result<()> {
    let id = units::record_id(&a.id)?;
    let signer = keys::load(settings)?;
    let me = signer.address();
    let chain = Chain::connect(settings).await?;
    let d = chain.deployment(settings).await?;
    let p = super::anchor::find_pointer(&chain, &d, id).await?;
    let erased_by_holder = || {
        CliError::Refused(format!(
            "record {id} was erased by its holder {}: its data key is destroyed",
            p.holder
        ))
    };
    if chain
        .records(&d)
        .erased(id)
        .call()
        .await
        .map_err(|e| chain.err(e))?
    {
        return Err(erased_by_holder());
    }
    // Only the endpoint the holder registered on chain, never a URL from the locator: a
    // pointer's locator is whatever its anchorer wrote, and the signed request must not go to
    // a stranger. Nor to a holder the consortium no longer credentials: its registration stays
    // on chain, but it may no longer hold records (nor anchor the read in its log).
    let base = super::holder::credentialed_gatekeeper_url(&chain, &d, p.holder).await?;
    let domain = medrec_bindings::gatekeeper_domain(chain.chain_id, d.record_registry);
    let issued = now_secs();
    let req = RecordRequest {
        requester: me,
        recordId: id,
        audience: p.holder,
        nonce: random_nonce(),
        issuedAt: issued,
        expiresAt: issued + READ_VALIDITY_SECS,
    };
    let signed = sign(&signer, req, &domain).await?;
    let url = wire::read_url(&base, id);
    let resp = client()?
        .post(&url)
        .json(&signed)
        .send()
        .await
        .map_err(|e| {
            CliError::Rpc(format!(
                "cannot reach the holder's gatekeeper at {url}: {e}"
            ))
        })?;
    if resp.status().as_u16() == medrec_protocol::ErrorCode::Erased.status() {
        return Err(erased_by_holder());
    }
    if !resp.status().is_success() {
        return Err(refusal("read", resp).await);
    }
    let opening = resp
        .headers()
        .get(wire::OPENING_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(wire::Opening::from_header);
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| CliError::Rpc(format!("the gatekeeper broke off: {e}")))?;
    let actual = B256::from_slice(&Sha256::digest(&bytes));
    let Some(opening) = opening else {
        return Err(CliError::Integrity(format!(
            "MISMATCH: the holder served no valid opening (category and salt) with the record, so it cannot be checked against the chain; nothing written (sha256 {actual})"
        )));
    };
    // The stored commitment, not only the event's: the registry's own state at the latest block.
    let committed = chain
        .records(&d)
        .pointerOf(id)
        .call()
        .await
        .map_err(|e| chain.err(e))?
        .commitment;
    if committed != p.commitment || !opening.opens(committed, p.patient, p.holder, actual) {
        return Err(CliError::Integrity(format!(
            "MISMATCH: the holder served bytes hashing to {actual} with an opening (category {}) that does not open the commitment the chain anchored, {committed}; nothing written",
            medrec_bindings::category_name(opening.category)
        )));
    }
    let break_glass = chain
        .records(&d)
        .anchoredUnderBreakGlass(id)
        .call()
        .await
        .map_err(|e| chain.err(e))?;
    if break_glass {
        out.progress(&format!(
            "note: {} anchored this record under break-glass, without a live grant",
            p.holder
        ));
    }
    match &a.out {
        Some(path) => {
            let tmp = path.with_extension("medrec-tmp");
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| CliError::Io(format!("cannot write {}: {e}", path.display())))?;
            out.result(
                "get",
                json!({"recordId": id, "contentHash": actual, "verified": true, "file": path, "size": bytes.len(),
                       "category": medrec_bindings::category_name(opening.category), "breakGlass": break_glass}),
                &format!("verified against the chain ({actual}); written to {}", path.display()),
            );
        }
        None if out.is_json() => {
            let content: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            out.result(
                "get",
                json!({"recordId": id, "contentHash": actual, "verified": true, "record": content,
                       "category": medrec_bindings::category_name(opening.category), "breakGlass": break_glass}),
                "",
            );
        }
        None => {
            let mut stdout = std::io::stdout();
            stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .map_err(|e| CliError::Io(format!("cannot write to stdout: {e}")))?;
        }
    }
    Ok(())
}
