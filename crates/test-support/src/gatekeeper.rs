//! A `medrec-gatekeeper` run against a test world, and the signed requests it serves.

use crate::{Proc, free_port, wait_http};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct};
use alloy::transports::http::reqwest;
use medrec_protocol::ResearchRequest;
use medrec_protocol::envelope::{SIGNATURE_HEADER, Signed, UPLOAD_HEADER, Upload, sign_hex};
use medrec_protocol::health::HEALTH_PATH;
use medrec_protocol::records::{UPLOAD_PATH, Uploaded};
use medrec_protocol::research::SignedQuery;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How to start `medrec-gatekeeper serve` for one holder.
pub struct Gatekeeper<'a> {
    /// The `medrec-gatekeeper` binary.
    pub bin: &'a Path,
    /// The holder it serves.
    pub holder: Address,
    /// Its database.
    pub database_url: &'a str,
    /// The chain's JSON-RPC URL.
    pub rpc_url: &'a str,
    /// Its master key file.
    pub master_key: &'a Path,
    /// The deployments file.
    pub deployments: &'a Path,
}

impl Gatekeeper<'_> {
    /// The command, listening on a free port, with its output discarded; and its base URL.
    /// Callers add arguments, environment or output before [`Gatekeeper::serve`].
    pub fn command(&self) -> (Command, String) {
        let port = free_port();
        let mut c = Command::new(self.bin);
        c.args(["serve", "--holder", &self.holder.to_string()])
            .args([
                "--database-url",
                self.database_url,
                "--rpc-url",
                self.rpc_url,
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--master-key-file")
            .arg(self.master_key)
            .arg("--deployments")
            .arg(self.deployments)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Test chains mine only when a transaction arrives: their latest block is as old as
            // the last transaction. A test about the chain's age passes --max-head-age.
            .env("MEDREC_MAX_HEAD_AGE", "86400")
            // Test cohorts are small: their research queries use epsilons up to the
            // vocabulary's largest so that a count is told from noise. A test about the
            // holder's cap passes --research-max-epsilon.
            .env("MEDREC_RESEARCH_MAX_EPSILON", "10");
        (c, format!("http://127.0.0.1:{port}"))
    }

    /// Spawns `command` (from [`Gatekeeper::command`]) and waits until `url` serves `/health`.
    pub async fn serve(mut command: Command, url: &str) -> Proc {
        let child = Proc(command.spawn().expect("spawn medrec-gatekeeper"));
        let http = reqwest::Client::new();
        wait_http(
            &http,
            &format!("{url}{HEALTH_PATH}"),
            Duration::from_secs(20),
        )
        .await;
        child
    }

    /// Starts it with `extra` arguments; the process and its base URL.
    pub async fn start(&self, extra: &[&str]) -> (Proc, String) {
        let (mut c, url) = self.command();
        c.args(extra);
        (Self::serve(c, &url).await, url)
    }
}

/// Sends `bytes` with upload message `up` signed by `signer` (who need not be `up.holder`)
/// to the gatekeeper at `url`, as a client does: the message and its signature in the upload
/// headers; the answer, whatever it is.
pub async fn send_upload(
    http: &reqwest::Client,
    url: &str,
    domain: &Eip712Domain,
    signer: &PrivateKeySigner,
    up: &Upload,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let signature = sign_hex(signer, up, domain).await.unwrap();
    http.post(format!("{url}{UPLOAD_PATH}"))
        .header(UPLOAD_HEADER, serde_json::to_string(up).unwrap())
        .header(SIGNATURE_HEADER, signature)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// Uploads `bytes` for `patient` in `category`, signed by `holder`, to the gatekeeper at
/// `url`; panics unless it is stored. Returns the gatekeeper's answer.
#[allow(clippy::too_many_arguments)]
pub async fn upload(
    http: &reqwest::Client,
    url: &str,
    domain: &Eip712Domain,
    holder: &PrivateKeySigner,
    patient: Address,
    category: u8,
    bytes: &[u8],
    nonce: U256,
) -> Uploaded {
    let up = Upload {
        holder: holder.address(),
        patient,
        category,
        contentHash: B256::from_slice(&Sha256::digest(bytes)),
        nonce,
        issuedAt: crate::now(),
    };
    let resp = send_upload(http, url, domain, holder, &up, bytes.to_vec()).await;
    assert!(resp.status().is_success(), "upload: {}", resp.status());
    resp.json().await.unwrap()
}

/// The body of request `req` (a read, an access-log request) signed by `signer`.
pub async fn signed_body<T: SolStruct + Serialize>(
    signer: &PrivateKeySigner,
    req: T,
    domain: &Eip712Domain,
) -> String {
    let signed = Signed::sign(req, signer, domain).await.unwrap();
    serde_json::to_string(&signed).unwrap()
}

/// The body of a research query `query` under request `req`, signed by `signer`.
pub async fn signed_query(
    signer: &PrivateKeySigner,
    req: ResearchRequest,
    query: &str,
    domain: &Eip712Domain,
) -> String {
    let signature = sign_hex(signer, &req, domain).await.unwrap();
    let signed = SignedQuery {
        request: req,
        query: query.to_string(),
        signature,
    };
    serde_json::to_string(&signed).unwrap()
}
