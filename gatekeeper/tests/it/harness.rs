//! A chain, a database and a running gatekeeper per test.

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256, aliases::U40, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct};
use medrec_bindings::{ConsentRegistry, ParticipantRegistry};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use medrec_test_support::{Mined, Proc, free_port, now};

pub const GOV_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub rpc: String,
    pub gov: PrivateKeySigner,
    pub participants: Address,
    pub consent: Address,
    pub records: Address,
    pub studies: Address,
    pub extra_dbs: Vec<String>,
    pub domain: Eip712Domain,
    pub admin_url: String,
    pub db: String,
    pub gk_url: String,
    pub gk_holder: PrivateKeySigner,
    pub http: alloy::transports::http::reqwest::Client,
    _gk: Option<Proc>,
    _anvil: Proc,
}

impl Drop for World {
    fn drop(&mut self) {
        self._gk.take();
        let admin = self.admin_url.clone();
        let mut dbs = self.extra_dbs.clone();
        dbs.push(self.db.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    for db in dbs {
                        let sql = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
                    }
                }
            });
        })
        .join();
    }
}

impl World {
    /// anvil + contracts + a credentialed holder running its gatekeeper.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let anvil = Proc(
            Command::new(repo_root().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"))
                .args(["--port", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let rpc = format!("http://127.0.0.1:{port}");
        let gov: PrivateKeySigner = GOV_KEY.parse().unwrap();
        let p = provider(&rpc, &gov);
        let deadline = Instant::now() + Duration::from_secs(15);
        let chain_id = loop {
            if let Ok(id) = p.get_chain_id().await {
                break id;
            }
            assert!(Instant::now() < deadline, "anvil did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let d = medrec_bindings::deployment::deploy(&p, gov.address(), 86_400)
            .await
            .unwrap();
        std::fs::write(
            dir.path().join("deployment.json"),
            serde_json::to_string(&d).unwrap(),
        )
        .unwrap();
        let (participants, consent, records) = (
            d.participant_registry,
            d.consent_registry,
            d.record_registry,
        );
        let studies = d.study_registry.unwrap();
        let admin_url = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL must point to a PostgreSQL role that may create databases (see script/pg.sh)");
        let db = format!("medrec_gk_it_{}_{port}", std::process::id());
        {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("connect to DATABASE_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&mut c)
            .await
            .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut c)
                .await
                .unwrap();
        }
        let gk_holder = PrivateKeySigner::random();
        let mut w = World {
            dir,
            rpc,
            gov,
            participants,
            consent,
            records,
            studies,
            extra_dbs: vec![],
            domain: medrec_bindings::gatekeeper_domain(chain_id, records),
            admin_url,
            db,
            gk_url: String::new(),
            gk_holder: gk_holder.clone(),
            http: alloy::transports::http::reqwest::Client::new(),
            _gk: None,
            _anvil: anvil,
        };
        w.fund(gk_holder.address()).await;
        w.credential(gk_holder.address()).await;
        w.start_gatekeeper(&[]).await;
        w
    }

    pub fn db_url(&self) -> String {
        let (base, _) = self.admin_url.rsplit_once('/').unwrap();
        format!("{base}/{}", self.db)
    }

    pub async fn start_gatekeeper(&mut self, extra: &[&str]) {
        self._gk.take();
        let key = self.dir.path().join("master.key");
        if !key.exists() {
            std::fs::write(&key, alloy::hex::encode([42u8; 32])).unwrap();
        }
        let port = free_port();
        let bin = env!("CARGO_BIN_EXE_medrec-gatekeeper");
        let child = Command::new(bin)
            .arg("serve")
            .args([
                "--holder",
                &self.gk_holder.address().to_string(),
                "--database-url",
                &self.db_url(),
            ])
            .args([
                "--rpc-url",
                &self.rpc,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--master-key-file")
            .arg(&key)
            .arg("--deployments")
            .arg(self.dir.path().join("deployment.json"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self._gk = Some(Proc(child));
        self.gk_url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while self
            .http
            .get(format!("{}/health", self.gk_url))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the gatekeeper did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `/health` answer of the gatekeeper at `url`.
    pub async fn health(&self, url: &str) -> Value {
        let r = self.http.get(format!("{url}/health")).send().await.unwrap();
        r.json().await.unwrap()
    }

    pub fn as_(&self, who: &PrivateKeySigner) -> DynProvider {
        provider(&self.rpc, who)
    }

    pub async fn fund(&self, a: Address) {
        let p = self.as_(&self.gov);
        let _: Value = p
            .raw_request("anvil_setBalance".into(), (a, U256::from(10u128.pow(20))))
            .await
            .unwrap();
    }

    pub async fn credential(&self, a: Address) {
        self.credential_as(a, 1).await;
    }

    /// Credentials `a` as a provider (1) or researcher (2).
    pub async fn credential_as(&self, a: Address, role: u8) {
        let p = ParticipantRegistry::new(self.participants, self.as_(&self.gov));
        p.issueCredential(
            a,
            role,
            keccak256(b"licence"),
            U40::from(now() + 365 * 86_400),
        )
        .mined()
        .await;
    }

    /// A funded new account.
    pub async fn account(&self) -> PrivateKeySigner {
        let s = PrivateKeySigner::random();
        self.fund(s.address()).await;
        s
    }

    pub async fn grant(
        &self,
        patient: &PrivateKeySigner,
        grantee: Address,
        categories: u64,
        secs: u64,
    ) -> u64 {
        let c = ConsentRegistry::new(self.consent, self.as_(patient));
        let r = c
            .grant(
                patient.address(),
                grantee,
                categories,
                1,
                U40::from(0u64),
                U40::from(now() + secs),
            )
            .mined()
            .await;
        assert!(r.status());
        r.block_number.unwrap()
    }

    pub async fn revoke(&self, patient: &PrivateKeySigner, grantee: Address) {
        let c = ConsentRegistry::new(self.consent, self.as_(patient));
        c.revoke(patient.address(), grantee).mined().await;
    }

    /// Creates an empty database for another holder's gatekeeper; returns its URL.
    pub async fn extra_db(&mut self, suffix: &str) -> String {
        use sqlx::Connection;
        let db = format!("{}_{suffix}", self.db);
        let mut c = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&mut c)
        .await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut c)
            .await
            .unwrap();
        self.extra_dbs.push(db.clone());
        let (base, _) = self.admin_url.rsplit_once('/').unwrap();
        format!("{base}/{db}")
    }

    /// Starts a gatekeeper for `holder` on `db_url`; returns it and its URL.
    pub async fn spawn_gatekeeper(
        &self,
        holder: Address,
        db_url: &str,
        extra: &[&str],
    ) -> (Proc, String) {
        let key = self.dir.path().join(format!("master-{holder}.key"));
        std::fs::write(&key, alloy::hex::encode([43u8; 32])).unwrap();
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_medrec-gatekeeper"))
            .arg("serve")
            .args(["--holder", &holder.to_string(), "--database-url", db_url])
            .args([
                "--rpc-url",
                &self.rpc,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--master-key-file")
            .arg(&key)
            .arg("--deployments")
            .arg(self.dir.path().join("deployment.json"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.http.get(format!("{url}/health")).send().await.is_err() {
            assert!(Instant::now() < deadline, "the gatekeeper did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (Proc(child), url)
    }

    /// Uploads `bytes` for `patient` as `holder` to the gatekeeper at `url`.
    pub async fn upload_to(
        &self,
        holder: &PrivateKeySigner,
        url: &str,
        patient: Address,
        category: u8,
        bytes: &[u8],
    ) -> B256 {
        let hash = B256::from_slice(&Sha256::digest(bytes));
        let up = medrec_bindings::eip712::Upload {
            holder: holder.address(),
            patient,
            category,
            contentHash: hash,
            nonce: U256::from_be_bytes(rand_bytes()),
            issuedAt: now(),
        };
        let sig = holder
            .sign_hash(&up.eip712_signing_hash(&self.domain))
            .await
            .unwrap();
        let resp = self
            .http
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
        v["recordId"].as_str().unwrap().parse().unwrap()
    }

    /// Uploads `bytes` for `patient` as the holder; returns the record id.
    pub async fn upload(&self, patient: Address, category: u8, bytes: &[u8]) -> B256 {
        let hash = B256::from_slice(&Sha256::digest(bytes));
        let up = medrec_bindings::eip712::Upload {
            holder: self.gk_holder.address(),
            patient,
            category,
            contentHash: hash,
            nonce: U256::from_be_bytes(rand_bytes()),
            issuedAt: now(),
        };
        let sig = self
            .gk_holder
            .sign_hash(&up.eip712_signing_hash(&self.domain))
            .await
            .unwrap();
        let resp = self
            .http
            .post(format!("{}/v1/records", self.gk_url))
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
        assert_eq!(v["contentHash"], format!("{hash}"));
        v["recordId"].as_str().unwrap().parse().unwrap()
    }

    /// A read request signed by `signer` (who may differ from `requester`).
    #[allow(clippy::too_many_arguments)]
    pub async fn read_as(
        &self,
        signer: &PrivateKeySigner,
        requester: Address,
        id: B256,
        audience: Address,
        issued: u64,
        expires: u64,
        nonce: U256,
    ) -> (u16, Vec<u8>) {
        let req = medrec_bindings::eip712::RecordRequest {
            requester,
            recordId: id,
            audience,
            nonce,
            issuedAt: issued,
            expiresAt: expires,
        };
        let sig = signer
            .sign_hash(&req.eip712_signing_hash(&self.domain))
            .await
            .unwrap();
        let body = json!({"request": req, "signature": format!("0x{}", alloy::hex::encode(sig.as_bytes()))});
        self.post_raw(
            &format!("/v1/records/{id}/read"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// A fresh, well-formed read by `who`.
    pub async fn read(&self, who: &PrivateKeySigner, id: B256) -> (u16, Vec<u8>) {
        let t = now();
        self.read_as(
            who,
            who.address(),
            id,
            self.gk_holder.address(),
            t,
            t + 60,
            U256::from_be_bytes(rand_bytes()),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let r = self
            .http
            .post(format!("{}{path}", self.gk_url))
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    /// The access log rows: (requester, allowed, reason).
    pub async fn log(&self) -> Vec<(Address, bool, String)> {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&self.db_url()).await.unwrap();
        let rows: Vec<(Vec<u8>, bool, String)> =
            sqlx::query_as("SELECT requester, allowed, reason FROM gk_access_log ORDER BY seq")
                .fetch_all(&mut c)
                .await
                .unwrap();
        rows.into_iter()
            .map(|(r, a, why)| (Address::from_slice(&r), a, why))
            .collect()
    }

    /// The access log rows as (seq, access, at_ms), to recompute hashes.
    pub async fn log_rows(&self) -> Vec<(u64, medrec_bindings::access_log::Access, u64)> {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&self.db_url()).await.unwrap();
        type Row = (i64, i64, Vec<u8>, Vec<u8>, Vec<u8>, bool, String, Vec<u8>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, at_ms, requester, record_id, patient, allowed, reason, nonce FROM gk_access_log ORDER BY seq",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(seq, at, r, id, p, allowed, reason, nonce)| {
                let a = medrec_bindings::access_log::Access {
                    requester: Address::from_slice(&r),
                    record_id: B256::from_slice(&id),
                    patient: Address::from_slice(&p),
                    allowed,
                    reason,
                    nonce: B256::from_slice(&nonce),
                    expires_at: 0,
                };
                (seq as u64, a, at as u64)
            })
            .collect()
    }

    /// The record registry's address.
    pub fn records_address(&self) -> Address {
        self.records
    }

    /// Runs SQL on the gatekeeper's database.
    pub async fn sql(&self, sql: String) {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&self.db_url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

pub fn rand_bytes() -> [u8; 32] {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

pub fn provider(rpc: &str, who: &PrivateKeySigner) -> DynProvider {
    let p = ProviderBuilder::new()
        .wallet(EthereumWallet::from(who.clone()))
        .connect_http(rpc.parse().unwrap());
    p.client().set_poll_interval(Duration::from_millis(20));
    p.erased()
}

/// Official HL7 FHIR R4 examples (npm hl7.fhir.r4.examples), installed by `npm ci`.
pub fn fhir_example(name: &str) -> Vec<u8> {
    let p = repo_root()
        .join("node_modules/hl7.fhir.r4.examples")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run npm ci)", p.display()))
}

/// The `medrec` binary built beside the gatekeeper.
pub fn medrec_cli() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_BIN_EXE_medrec-gatekeeper")).with_file_name("medrec");
    assert!(
        p.exists(),
        "{} missing: build the workspace (cargo build --workspace)",
        p.display()
    );
    p
}

/// Imports `key` as keystore `name` through the CLI (password file "pw" unless one exists).
pub fn import_key(w: &World, name: &str, key: &PrivateKeySigner) {
    let dir = w.dir.path();
    if !dir.join("password").exists() {
        std::fs::write(dir.join("password"), "pw\n").unwrap();
    }
    let file = dir.join(format!("{name}.key"));
    std::fs::write(&file, alloy::hex::encode(key.to_bytes())).unwrap();
    let out = run_cli(
        w,
        &[
            "account",
            "import",
            name,
            "--private-key-file",
            &file.to_string_lossy(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(file).unwrap();
}

/// Runs the `medrec` CLI with this world's settings.
pub fn run_cli(w: &World, args: &[&str]) -> std::process::Output {
    let dir = w.dir.path();
    Command::new(medrec_cli())
        .args(args)
        .env("HOME", dir)
        .env("MEDREC_RPC_URL", &w.rpc)
        .env("MEDREC_KEYSTORE_DIR", dir.join("keystores"))
        .env("MEDREC_PASSWORD_FILE", dir.join("password"))
        .env("MEDREC_DEPLOYMENTS", dir.join("deployment.json"))
        .env("MEDREC_GATEKEEPER_URL", &w.gk_url)
        .output()
        .unwrap()
}
