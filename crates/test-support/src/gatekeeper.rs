//! A `medrec-gatekeeper` run against a test world, and the signed requests it serves.

use crate::{Proc, free_port, wait_http};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct};
use alloy::transports::http::reqwest;
use medrec_bindings::eip712::{RecordRequest, Upload};
use serde_json::{Value, json};
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
            .stderr(Stdio::null());
        (c, format!("http://127.0.0.1:{port}"))
    }

    /// Spawns `command` (from [`Gatekeeper::command`]) and waits until `url` serves `/health`.
    pub async fn serve(mut command: Command, url: &str) -> Proc {
        let child = Proc(command.spawn().expect("spawn medrec-gatekeeper"));
        let http = reqwest::Client::new();
        wait_http(&http, &format!("{url}/health"), Duration::from_secs(20)).await;
        child
    }

    /// Starts it with `extra` arguments; the process and its base URL.
    pub async fn start(&self, extra: &[&str]) -> (Proc, String) {
        let (mut c, url) = self.command();
        c.args(extra);
        (Self::serve(c, &url).await, url)
    }
}

/// Uploads `bytes` for `patient` in `category`, signed by `holder`, to the gatekeeper at
/// `url`; panics unless it is stored. Returns the record id and the whole answer.
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
) -> (B256, Value) {
    let up = Upload {
        holder: holder.address(),
        patient,
        category,
        contentHash: B256::from_slice(&Sha256::digest(bytes)),
        nonce,
        issuedAt: crate::now(),
    };
    let sig = holder
        .sign_hash(&up.eip712_signing_hash(domain))
        .await
        .unwrap();
    let resp = http
        .post(format!("{url}/v1/records"))
        .header("x-medrec-upload", serde_json::to_string(&up).unwrap())
        .header(
            "x-medrec-signature",
            format!("0x{}", alloy::hex::encode(sig.as_bytes())),
        )
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "upload: {}", resp.status());
    let v: Value = resp.json().await.unwrap();
    let id = v["recordId"].as_str().unwrap().parse().unwrap();
    (id, v)
}

/// The body of a read request `req` signed by `signer`.
pub async fn signed_read(
    signer: &PrivateKeySigner,
    req: &RecordRequest,
    domain: &Eip712Domain,
) -> String {
    let sig = signer
        .sign_hash(&req.eip712_signing_hash(domain))
        .await
        .unwrap();
    json!({"request": req, "signature": format!("0x{}", alloy::hex::encode(sig.as_bytes()))})
        .to_string()
}
